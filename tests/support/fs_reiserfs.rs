//! ReiserFS images for the `fs_reiserfs_*` tests: making an empty volume
//! with `mkreiserfs` and reading what the real tools say about it (the tests
//! populate volumes through the handler: nothing else can without a mount):
//! `debugreiserfs` (superblock, bitmap), `reiserfsck --check` (consistency)
//! and `grub-fstest` (an independent reader).

use crate::fs_images::{TreeEntry, populate, run_tool, sparse_file, stdout_text, tool_output};
use homeward_fs_reiserfs::Handler;
use homeward_sdk::fs::{FileDevice, FileSystem};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Size of the test images: 40 MiB is the smallest with room for
/// mkreiserfs's default 32 MiB journal plus the standard tree at scale 1
/// (a smaller journal makes a "ReIsEr3Fs" non-standard-journal volume).
pub const IMAGE_SIZE: u64 = 40 << 20;

/// Makes an empty ReiserFS 3.6 image `name` in `dir` with `extra` mkreiserfs options.
pub fn make_image(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let path = dir.join(name);
    sparse_file(&path, IMAGE_SIZE);
    let mut args = vec!["-f", "-f", "-q"];
    args.extend_from_slice(extra);
    let p = path.to_str().expect("utf-8 temp path");
    args.push(p);
    run_tool("mkreiserfs", &args);
    path
}

/// The handler on `image`, natively, for writing when `writable`.
pub fn open(image: &Path, writable: bool) -> Handler {
    let dev = FileDevice::open(image, writable).expect("open image");
    Handler::open(Box::new(dev), writable).expect("handler opens the image")
}

/// A fresh image `dir/name` populated through the handler with `entries`
/// (directories `dir_mode`, files `file_mode`).
pub fn populated(
    dir: &Path,
    name: &str,
    entries: &[TreeEntry],
    dir_mode: u32,
    file_mode: u32,
) -> PathBuf {
    let image = make_image(dir, name, &[]);
    populate(&mut open(&image, true), entries, dir_mode, file_mode);
    image
}

/// `reiserfsck --check` on `image`: its exit code (0 clean, 1 fixable,
/// 2 fatal, 6/8 operational errors) and its output.
pub fn fsck(image: &Path) -> (i32, String) {
    let p = image.to_str().expect("utf-8 temp path");
    let out = tool_output("reiserfsck", &["--check", "-y", p], &[]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Fails the test unless `reiserfsck --check` finds no corruption.
pub fn assert_fsck_clean(image: &Path) {
    let (code, text) = fsck(image);
    assert!(
        code == 0 && text.contains("No corruptions found"),
        "reiserfsck --check exit {code}:\n{text}"
    );
}

/// The superblock fields `debugreiserfs IMG` prints, by label.
pub fn debugreiserfs_superblock(image: &Path) -> HashMap<String, String> {
    let out = stdout_text(&run_tool(
        "debugreiserfs",
        &[image.to_str().expect("utf-8")],
    ));
    let mut fields = HashMap::new();
    for line in out.lines() {
        if let Some((k, v)) = line.split_once(':') {
            fields
                .entry(k.trim().to_string())
                .or_insert_with(|| v.trim().to_string());
        }
    }
    fields
}

/// Used byte ranges per `debugreiserfs -m IMG`, whose lines read
/// `#0: block 17: Busy (0-8211) Free(8212-10239) Busy(10240-32767)`; busy
/// blocks past the volume's `block_count` (bitmap padding) are dropped.
pub fn debugreiserfs_used(image: &Path, block_size: u64, block_count: u64) -> Vec<(u64, u64)> {
    let out = stdout_text(&run_tool(
        "debugreiserfs",
        &["-m", image.to_str().expect("utf-8")],
    ));
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for line in out.lines().filter(|l| l.starts_with('#')) {
        let mut rest = line;
        while let Some(at) = rest.find("Busy") {
            rest = &rest[at + 4..];
            let open = rest.find('(').expect("(");
            let close = rest.find(')').expect(")");
            let (a, b) = rest[open + 1..close].split_once('-').expect("a-b");
            let (a, b): (u64, u64) = (
                a.trim().parse().expect("num"),
                b.trim().parse().expect("num"),
            );
            let b = b.min(block_count - 1);
            if a <= b {
                match ranges.last_mut() {
                    Some(last) if last.0 + last.1 == a * block_size => {
                        last.1 += (b - a + 1) * block_size
                    }
                    _ => ranges.push((a * block_size, (b - a + 1) * block_size)),
                }
            }
            rest = &rest[close..];
        }
    }
    ranges
}

/// `grub-fstest IMG ls DIR`: the words GRUB lists, sorted (directories end
/// in `/`; names are separated by spaces, so a name with spaces comes out as
/// several words).
pub fn grub_ls(image: &Path, dir: &str) -> Vec<String> {
    let out = stdout_text(&run_tool(
        "grub-fstest",
        &[image.to_str().expect("utf-8"), "ls", dir],
    ));
    let mut names: Vec<String> = out.split_whitespace().map(str::to_string).collect();
    names.sort();
    names
}
