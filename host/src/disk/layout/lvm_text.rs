//! A parser for LVM2's text metadata format, the content of a metadata area.
//!
//! The format is nested sections of assignments:
//!
//! ```text
//! vg0 {
//!     id = "31R3yt-..."        # comments run to the end of the line
//!     extent_size = 8192
//!     status = ["RESIZEABLE", "READ", "WRITE"]
//!     physical_volumes { pv0 { id = "..." pe_start = 2048 } }
//! }
//! ```
//!
//! Values are strings (with `\"` and `\\` escapes), integers, and lists of
//! them. It is small enough that a hand-written tokenizer and recursive
//! descent parser are shorter than pulling in a crate, and both are bounded:
//! nesting is limited to [`MAX_DEPTH`] and the input is at most one metadata
//! area. Errors give the line, since the text is what `vgcfgbackup` writes and
//! an operator can look at the same spot.

use super::error::LayoutError;

/// The deepest nesting of sections and lists accepted (real metadata uses 4).
const MAX_DEPTH: usize = 32;

/// A value of an assignment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// A quoted string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A number with a fraction (kept as written; layout never needs one).
    Float(String),
    /// A bracketed list.
    List(Vec<Value>),
    /// A named section.
    Section(Section),
}

/// A section: its items in the order written.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Section {
    pub items: Vec<(String, Value)>,
}

impl Section {
    /// The first value named `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.items.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The integer `key`, if present and an integer.
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.get(key) {
            Some(Value::Int(n)) => Some(*n),
            _ => None,
        }
    }

    /// The string `key`, if present and a string.
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// The subsection `key`.
    pub fn section(&self, key: &str) -> Option<&Section> {
        match self.get(key) {
            Some(Value::Section(s)) => Some(s),
            _ => None,
        }
    }

    /// The list `key`.
    pub fn list(&self, key: &str) -> Option<&[Value]> {
        match self.get(key) {
            Some(Value::List(l)) => Some(l),
            _ => None,
        }
    }

    /// The subsections, with their names, in order.
    pub fn sections(&self) -> impl Iterator<Item = (&str, &Section)> {
        self.items.iter().filter_map(|(k, v)| match v {
            Value::Section(s) => Some((k.as_str(), s)),
            _ => None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// A run of name or number characters.
    Word(String),
    Str(String),
    Open,
    Close,
    ListOpen,
    ListClose,
    Equals,
    Comma,
}

/// Parses metadata `text`; `structure` names where it came from, for errors.
pub(crate) fn parse(text: &[u8], structure: &str) -> Result<Section, LayoutError> {
    let mut parser = Parser {
        text,
        pos: 0,
        line: 1,
        structure,
        peeked: None,
    };
    let root = parser.section_body(0, true)?;
    Ok(root)
}

struct Parser<'a> {
    text: &'a [u8],
    pos: usize,
    line: usize,
    structure: &'a str,
    peeked: Option<Option<Token>>,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'+')
}

impl Parser<'_> {
    fn error(&self, problem: impl Into<String>) -> LayoutError {
        LayoutError::damaged(format!("{} (line {})", self.structure, self.line), problem)
    }

    fn byte(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    /// The next token, `None` at the end of the text.
    fn lex(&mut self) -> Result<Option<Token>, LayoutError> {
        // Skip blanks and comments.
        loop {
            match self.byte() {
                Some(b'\n') => {
                    self.line += 1;
                    self.pos += 1;
                }
                Some(b) if b.is_ascii_whitespace() || b == 0 => self.pos += 1,
                Some(b'#') => {
                    while let Some(b) = self.byte() {
                        if b == b'\n' {
                            break;
                        }
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
        let Some(b) = self.byte() else {
            return Ok(None);
        };
        let single = match b {
            b'{' => Some(Token::Open),
            b'}' => Some(Token::Close),
            b'[' => Some(Token::ListOpen),
            b']' => Some(Token::ListClose),
            b'=' => Some(Token::Equals),
            b',' => Some(Token::Comma),
            _ => None,
        };
        if let Some(token) = single {
            self.pos += 1;
            return Ok(Some(token));
        }
        if b == b'"' {
            return self.string().map(Some);
        }
        if is_word_byte(b) {
            let start = self.pos;
            while self.byte().is_some_and(is_word_byte) {
                self.pos += 1;
            }
            let word = self.text.get(start..self.pos).unwrap_or_default();
            return Ok(Some(Token::Word(
                String::from_utf8_lossy(word).into_owned(),
            )));
        }
        Err(self.error(format!("unexpected character {:?}", char::from(b))))
    }

    /// A quoted string; `pos` is at the opening quote.
    fn string(&mut self) -> Result<Token, LayoutError> {
        let start_line = self.line;
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.byte() {
                None => {
                    self.line = start_line;
                    return Err(self.error("string not closed before the end of the text"));
                }
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Token::Str(String::from_utf8_lossy(&out).into_owned()));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    if let Some(escaped) = self.byte() {
                        out.push(escaped);
                        self.pos += 1;
                    }
                }
                Some(b) => {
                    if b == b'\n' {
                        self.line += 1;
                    }
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
    }

    fn next(&mut self) -> Result<Option<Token>, LayoutError> {
        match self.peeked.take() {
            Some(token) => Ok(token),
            None => self.lex(),
        }
    }

    fn peek(&mut self) -> Result<Option<&Token>, LayoutError> {
        if self.peeked.is_none() {
            let token = self.lex()?;
            self.peeked = Some(token);
        }
        Ok(self.peeked.as_ref().and_then(|t| t.as_ref()))
    }

    /// Items up to the closing `}` (or the end of the text, at the top).
    fn section_body(&mut self, depth: usize, top: bool) -> Result<Section, LayoutError> {
        if depth > MAX_DEPTH {
            return Err(self.error(format!("sections nested more than {MAX_DEPTH} deep")));
        }
        let mut section = Section::default();
        loop {
            let name = match self.next()? {
                None if top => return Ok(section),
                None => return Err(self.error("section not closed before the end of the text")),
                Some(Token::Close) if !top => return Ok(section),
                Some(Token::Word(name)) => name,
                other => {
                    return Err(self.error(format!(
                        "expected a name, found {}",
                        describe(other.as_ref())
                    )));
                }
            };
            match self.next()? {
                Some(Token::Equals) => {
                    let value = self.value(depth + 1)?;
                    section.items.push((name, value));
                }
                Some(Token::Open) => {
                    let inner = self.section_body(depth + 1, false)?;
                    section.items.push((name, Value::Section(inner)));
                }
                other => {
                    return Err(self.error(format!(
                        "expected `=` or `{{` after `{name}`, found {}",
                        describe(other.as_ref())
                    )));
                }
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, LayoutError> {
        if depth > MAX_DEPTH {
            return Err(self.error(format!("lists nested more than {MAX_DEPTH} deep")));
        }
        match self.next()? {
            Some(Token::Str(s)) => Ok(Value::Str(s)),
            Some(Token::Word(w)) => number(&w)
                .ok_or_else(|| self.error(format!("expected a value, found the bare word `{w}`"))),
            Some(Token::ListOpen) => {
                let mut list = Vec::new();
                loop {
                    if self.peek()? == Some(&Token::ListClose) {
                        self.next()?;
                        return Ok(Value::List(list));
                    }
                    list.push(self.value(depth + 1)?);
                    match self.next()? {
                        Some(Token::Comma) => {}
                        Some(Token::ListClose) => return Ok(Value::List(list)),
                        other => {
                            return Err(self.error(format!(
                                "expected `,` or `]` in a list, found {}",
                                describe(other.as_ref())
                            )));
                        }
                    }
                }
            }
            other => Err(self.error(format!(
                "expected a value, found {}",
                describe(other.as_ref())
            ))),
        }
    }
}

/// A token as the operator would read it in the text.
fn describe(token: Option<&Token>) -> String {
    match token {
        None => "the end of the text".to_string(),
        Some(Token::Word(w)) => format!("`{w}`"),
        Some(Token::Str(s)) => format!("the string {s:?}"),
        Some(Token::Open) => "`{`".to_string(),
        Some(Token::Close) => "`}`".to_string(),
        Some(Token::ListOpen) => "`[`".to_string(),
        Some(Token::ListClose) => "`]`".to_string(),
        Some(Token::Equals) => "`=`".to_string(),
        Some(Token::Comma) => "`,`".to_string(),
    }
}

/// A number as LVM writes them: an integer, or digits with a fraction.
fn number(word: &str) -> Option<Value> {
    if let Ok(n) = word.parse::<i64>() {
        return Some(Value::Int(n));
    }
    let digits = word.strip_prefix('-').unwrap_or(word);
    let numeric = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    numeric.then(|| Value::Float(word.to_string()))
}
