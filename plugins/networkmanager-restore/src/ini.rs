//! A small, careful editor for NetworkManager's `key=value` files with
//! `[section]` headers (`NetworkManager.conf`, `conf.d/*.conf`).
//!
//! Line-based like [`homeward_sdk::guest::ShellVars`]: a change rewrites one
//! line, or inserts one after the section's last line, so comments, order and
//! unknown keys stay as they were.

/// The file, line by line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ini {
    lines: Vec<String>,
}

/// The section a `[name]` line opens.
fn section_of(line: &str) -> Option<&str> {
    line.trim()
        .strip_prefix('[')?
        .strip_suffix(']')
        .map(str::trim)
}

/// The key of a `key=value` line (not a comment).
fn key_of(line: &str) -> Option<&str> {
    let line = line.trim_start();
    if line.starts_with('#') || line.starts_with(';') {
        return None;
    }
    line.split_once('=').map(|(k, _)| k.trim())
}

impl Ini {
    /// Parses `text`.
    pub fn parse(text: &str) -> Self {
        Ini {
            lines: text.lines().map(str::to_string).collect(),
        }
    }

    /// Index of the last `key=` line in `section` (the last one wins in
    /// NetworkManager, as in GKeyFile).
    fn find(&self, section: &str, key: &str) -> Option<usize> {
        let mut current = None::<&str>;
        let mut found = None;
        for (i, line) in self.lines.iter().enumerate() {
            if let Some(name) = section_of(line) {
                current = Some(name);
            } else if current == Some(section) && key_of(line) == Some(key) {
                found = Some(i);
            }
        }
        found
    }

    /// The value of `key` in `section`, trimmed.
    pub fn get(&self, section: &str, key: &str) -> Option<String> {
        let line = self.lines.get(self.find(section, key)?)?;
        line.split_once('=').map(|(_, v)| v.trim().to_string())
    }

    /// Sets `key` in `section`: rewrites its last line, or adds it after the
    /// section's last non-blank line, or appends the section.
    pub fn set(&mut self, section: &str, key: &str, value: &str) {
        let rendered = format!("{key}={value}");
        if let Some(line) = self.find(section, key).and_then(|i| self.lines.get_mut(i)) {
            *line = rendered;
            return;
        }
        let mut current = None::<&str>;
        let mut last_in_section = None;
        for (i, line) in self.lines.iter().enumerate() {
            if let Some(name) = section_of(line) {
                current = Some(name);
                if name == section {
                    last_in_section = Some(i);
                }
            } else if current == Some(section) && !line.trim().is_empty() {
                last_in_section = Some(i);
            }
        }
        match last_in_section {
            Some(i) => self.lines.insert(i + 1, rendered),
            None => {
                if self.lines.last().is_some_and(|l| !l.trim().is_empty()) {
                    self.lines.push(String::new());
                }
                self.lines.push(format!("[{section}]"));
                self.lines.push(rendered);
            }
        }
    }

    /// The text, each line ending in a newline.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}
