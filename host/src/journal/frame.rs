//! What the journal's two file kinds share: record checksums, telling a torn
//! tail from damage, and making directory changes durable.
//!
//! Both the points log and the undo segments are append-only sequences of
//! records that start with a magic and end with an xxh3-64 checksum. A crash
//! can only tear the *last* record: every append is synced before anything
//! depends on it. So when a record fails its checks, the file is torn there
//! if no whole record follows; if one does, the bad record was once durable
//! and the file is damaged, which the journal reports instead of guessing.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// xxh3-64 over the concatenation of `parts`.
pub(crate) fn checksum(parts: &[&[u8]]) -> u64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.digest()
}

/// Little-endian integers at fixed places of a byte slice; `None` when the
/// slice is too short (a torn or truncated record).
pub(crate) fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

pub(crate) fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// The first position after `from` (and before `end`) where `magic` starts
/// and `is_record` accepts a whole record; `None` when there is none, that
/// is, when everything from `from` on is a torn tail.
pub(crate) fn next_record(
    file: &File,
    from: u64,
    end: u64,
    magic: &[u8],
    mut is_record: impl FnMut(u64) -> bool,
) -> io::Result<Option<u64>> {
    const WINDOW: usize = 4 << 20;
    let mut buf = vec![0u8; WINDOW];
    let mut start = from.saturating_add(1);
    while start < end {
        let want = usize::try_from(end - start).unwrap_or(WINDOW).min(WINDOW);
        let window = &mut buf[..want];
        file.read_exact_at(window, start)?;
        let mut at = 0;
        while let Some(found) = find(&window[at..], magic) {
            let pos = start + (at + found) as u64;
            if is_record(pos) {
                return Ok(Some(pos));
            }
            at += found + 1;
        }
        // Windows overlap by the magic's length less one, so a magic across
        // a window edge is found in the next window.
        let step = want.saturating_sub(magic.len().saturating_sub(1)).max(1);
        start += step as u64;
        if want < WINDOW {
            break;
        }
    }
    Ok(None)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Makes creations, renames and removals in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn finds_a_record_across_window_edges_and_none_in_garbage() {
        let mut f = tempfile::tempfile().unwrap();
        let mut bytes = vec![0u8; (4 << 20) + 100];
        let at = (4 << 20) - 2;
        bytes[at..at + 4].copy_from_slice(b"HWJR");
        f.write_all(&bytes).unwrap();
        let end = bytes.len() as u64;
        assert_eq!(
            next_record(&f, 0, end, b"HWJR", |p| p == at as u64).unwrap(),
            Some(at as u64)
        );
        assert_eq!(next_record(&f, 0, end, b"HWJR", |_| false).unwrap(), None);
        assert_eq!(
            next_record(&f, at as u64, end, b"HWJR", |_| true).unwrap(),
            None
        );
    }
}
