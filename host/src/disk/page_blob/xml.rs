//! The two XML documents the page-blob device reads: `Get Page Ranges`'
//! `PageList` and the service's `Error`. Both are flat and small, so a
//! checked scan for the few elements needed replaces an XML parser; anything
//! malformed is an error, never a panic.

use std::ops::Range;

/// One page of a `Get Page Ranges` answer.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct PageList {
    /// Ranges holding pages (`PageRange`), as half-open byte ranges.
    pub pages: Vec<Range<u64>>,
    /// Ranges cleared since the previous snapshot (`ClearRange`, diffs only).
    pub cleared: Vec<Range<u64>>,
    /// Where the next page of the answer starts, when there is one.
    pub next_marker: Option<String>,
}

/// Parses a `PageList` document.
pub(super) fn parse_page_list(doc: &str) -> Result<PageList, String> {
    if !doc.contains("<PageList") {
        return Err("no PageList element".into());
    }
    let mut list = PageList::default();
    let mut rest = doc;
    loop {
        let page = rest.find("<PageRange>");
        let clear = rest.find("<ClearRange>");
        let (at, is_clear) = match (page, clear) {
            (Some(p), Some(c)) if c < p => (c, true),
            (Some(p), _) => (p, false),
            (None, Some(c)) => (c, true),
            (None, None) => break,
        };
        let close = if is_clear {
            "</ClearRange>"
        } else {
            "</PageRange>"
        };
        let body_start = at
            + if is_clear {
                "<ClearRange>".len()
            } else {
                "<PageRange>".len()
            };
        let end = rest[body_start..]
            .find(close)
            .ok_or_else(|| format!("unterminated {}", &close[2..close.len() - 1]))?;
        let body = &rest[body_start..body_start + end];
        let start = number(body, "Start")?;
        let last = number(body, "End")?;
        if last < start || !start.is_multiple_of(512) || !(last + 1).is_multiple_of(512) {
            return Err(format!(
                "range {start}..={last} is not whole 512-byte pages"
            ));
        }
        let range = start..last + 1;
        if is_clear {
            list.cleared.push(range);
        } else {
            list.pages.push(range);
        }
        rest = &rest[body_start + end + close.len()..];
    }
    list.next_marker = element_text(doc, "NextMarker")
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_string);
    Ok(list)
}

fn number(body: &str, name: &str) -> Result<u64, String> {
    let text = element_text(body, name).ok_or_else(|| format!("a range without {name}"))?;
    let n: u64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{name} {text:?} is not a byte offset"))?;
    // End is inclusive; End + 1 must not overflow.
    if n == u64::MAX {
        return Err(format!("{name} {n} is out of range"));
    }
    Ok(n)
}

/// The text of the first `<name>…</name>` in `doc`, unescaped for the five
/// predefined entities. `<name />` gives `None`.
pub(super) fn element_text<'d>(doc: &'d str, name: &str) -> Option<&'d str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = doc.find(&open)? + open.len();
    let len = doc[start..].find(&close)?;
    Some(&doc[start..start + len])
}

/// `&lt;` and friends back to characters, for messages.
pub(super) fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_list_with_both_kinds_and_a_marker() {
        let doc = "<?xml version=\"1.0\" encoding=\"utf-8\"?><PageList>\
            <PageRange><Start>0</Start><End>511</End></PageRange>\
            <ClearRange><Start>1024</Start><End>2047</End></ClearRange>\
            <PageRange><Start>4096</Start><End>8191</End></PageRange>\
            <NextMarker>abc</NextMarker></PageList>";
        let list = parse_page_list(doc).unwrap();
        assert_eq!(list.pages, vec![0..512, 4096..8192]);
        assert_eq!(list.cleared, vec![1024..2048]);
        assert_eq!(list.next_marker.as_deref(), Some("abc"));
    }

    #[test]
    fn empty_and_bad_lists() {
        assert_eq!(
            parse_page_list("<PageList />").unwrap(),
            PageList::default()
        );
        assert_eq!(
            parse_page_list("<PageList><NextMarker /></PageList>").unwrap(),
            PageList::default()
        );
        assert!(parse_page_list("<Blobs/>").is_err());
        assert!(
            parse_page_list("<PageList><PageRange><Start>0</Start></PageRange></PageList>")
                .is_err()
        );
        assert!(
            parse_page_list(
                "<PageList><PageRange><Start>0</Start><End>100</End></PageRange></PageList>"
            )
            .is_err()
        );
        assert!(parse_page_list("<PageList><PageRange><Start>512</Start><End>0</End>").is_err());
        assert!(
            parse_page_list(
                "<PageList><PageRange><Start>0</Start><End>18446744073709551615</End></PageRange></PageList>"
            )
            .is_err()
        );
    }
}
