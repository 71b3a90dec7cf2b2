//! ext4 images for the `fs_ext4_*` tests: the option sets they cover, making a
//! populated image with `mkfs.ext4 -d`, and what the real tools (`dumpe2fs`,
//! `debugfs`, `e2fsck`, `grub-fstest`) say about one.

use crate::fs_images::{TreeEntry, run_tool, sparse_file, stdout_text, tool_output, write_tree};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One way of making an ext4 image.
#[derive(Debug, Clone, Copy)]
pub struct OptionSet {
    /// Short name, used in file names and assertion messages.
    pub name: &'static str,
    /// Extra `mkfs.ext4` arguments.
    pub mkfs: &'static [&'static str],
    /// Image size in MiB.
    pub mib: u64,
    /// Whether the handler can write it (inline_data: read only).
    pub writable: bool,
    /// Run `e2fsck -fyD` after mkfs, which turns big directories into
    /// hashed (htree) ones.
    pub index_dirs: bool,
}

/// The option sets every test covers.
pub const OPTION_SETS: &[OptionSet] = &[
    OptionSet {
        name: "4k-default",
        mkfs: &["-b", "4096", "-L", "web-root"],
        mib: 32,
        writable: true,
        index_dirs: true,
    },
    OptionSet {
        name: "1k-default",
        mkfs: &["-b", "1024"],
        mib: 32,
        writable: true,
        index_dirs: false,
    },
    OptionSet {
        name: "4k-64bit-nocsum-uninit",
        mkfs: &["-b", "4096", "-O", "64bit,^metadata_csum,uninit_bg"],
        mib: 32,
        writable: true,
        index_dirs: true,
    },
    OptionSet {
        name: "1k-32bit-nocsum",
        mkfs: &["-b", "1024", "-O", "^metadata_csum,^64bit"],
        mib: 24,
        writable: true,
        index_dirs: true,
    },
    OptionSet {
        name: "1k-indirect",
        mkfs: &["-b", "1024", "-O", "^extent,^64bit,^flex_bg"],
        mib: 24,
        writable: true,
        index_dirs: false,
    },
    OptionSet {
        name: "4k-indirect-nocsum",
        mkfs: &["-b", "4096", "-O", "^extent,^64bit,^metadata_csum"],
        mib: 24,
        writable: true,
        index_dirs: true,
    },
    OptionSet {
        name: "4k-inline",
        mkfs: &["-b", "4096", "-O", "inline_data"],
        mib: 24,
        writable: false,
        index_dirs: false,
    },
];

/// Makes `dir/<set>.img` populated with `tree`.
pub fn make_image(dir: &Path, set: &OptionSet, tree: &[TreeEntry]) -> PathBuf {
    let src = dir.join(format!("{}-src", set.name));
    std::fs::create_dir_all(&src).expect("mkdir src");
    write_tree(&src, tree);
    let img = dir.join(format!("{}.img", set.name));
    sparse_file(&img, set.mib << 20);
    let mut args: Vec<&str> = vec!["-q", "-F"];
    args.extend(set.mkfs);
    let (src_s, img_s) = (src.to_str().expect("utf-8"), img.to_str().expect("utf-8"));
    args.extend(["-d", src_s, img_s]);
    run_tool("mkfs.ext4", &args);
    if set.index_dirs {
        let out = tool_output("e2fsck", &["-fyD", img_s], &[]);
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "e2fsck -fyD {img_s}: {out:?}"
        );
    }
    img
}

/// `dumpe2fs -h` as key → value.
pub fn dumpe2fs_header(img: &Path) -> BTreeMap<String, String> {
    let out = stdout_text(&run_tool("dumpe2fs", &["-h", img.to_str().expect("utf-8")]));
    out.lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Used byte ranges per `dumpe2fs`: the complement of every group's
/// "Free blocks:" ranges over the volume's blocks, merged.
pub fn dumpe2fs_used_bytes(img: &Path) -> Vec<(u64, u64)> {
    let out = stdout_text(&run_tool("dumpe2fs", &[img.to_str().expect("utf-8")]));
    let header = dumpe2fs_header(img);
    let block_size: u64 = header["Block size"].parse().expect("block size");
    let block_count: u64 = header["Block count"].parse().expect("block count");
    let mut free = Vec::new();
    for line in out.lines() {
        if !line.starts_with(' ') {
            continue;
        }
        let Some(ranges) = line.trim().strip_prefix("Free blocks:") else {
            continue;
        };
        for range in ranges.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            let (a, b) = range.split_once('-').unwrap_or((range, range));
            let (a, b): (u64, u64) = (a.parse().expect("start"), b.parse().expect("end"));
            free.push((a, b + 1));
        }
    }
    free.sort();
    let mut used = Vec::new();
    let mut at = 0;
    for (a, b) in free {
        if a > at {
            used.push((at * block_size, (a - at) * block_size));
        }
        at = at.max(b);
    }
    if at < block_count {
        used.push((at * block_size, (block_count - at) * block_size));
    }
    used
}

/// `debugfs -R "cat PATH" IMG`.
pub fn debugfs_cat(img: &Path, path: &str) -> Vec<u8> {
    let cmd = format!("cat {path}");
    run_tool("debugfs", &["-R", &cmd, img.to_str().expect("utf-8")]).stdout
}

/// Runs `e2fsck -fn` and fails the test with its report unless it is clean.
pub fn assert_fsck_clean(img: &Path) {
    let out = tool_output("e2fsck", &["-fn", img.to_str().expect("utf-8")], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "e2fsck -fn {} is not clean:\n{}\n{}",
        img.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
