//! Probing ReiserFS and listing used extents: what the handler reports must
//! agree with `debugreiserfs` (superblock) and `debugreiserfs -m` (bitmap)
//! for each `mkreiserfs` option set, before and after populating.

use homeward_fs_reiserfs::Handler;
use homeward_sdk::Error;
use homeward_sdk::fs::{FileDevice, FileSystem, MemDevice};
use homeward_sdk::types::ByteRange;
use homeward_tests::fs_images::{populate, standard_tree};
use homeward_tests::fs_reiserfs::*;
use std::path::Path;

/// The mkreiserfs option sets under test, with a name for messages.
const OPTION_SETS: [(&str, &[&str]); 4] = [
    ("default", &[]),
    (
        "label-uuid",
        &[
            "-l",
            "homeward-test",
            "-u",
            "0b8a8c3e-5f0e-4d8c-9a51-2f6c1e7d3b24",
        ],
    ),
    ("tea-hash", &["-h", "tea"]),
    ("small-journal", &["--journal-size", "513"]),
];

fn probe(image: &Path) -> homeward_sdk::fs::FsInfo {
    let dev = FileDevice::open(image, false).unwrap();
    Handler::probe(&dev)
        .unwrap()
        .expect("the handler recognises the image")
}

fn used(image: &Path) -> Vec<(u64, u64)> {
    let dev = FileDevice::open(image, false).unwrap();
    Handler::used_extents(&dev)
        .unwrap()
        .into_iter()
        .map(|ByteRange { offset, length }| (offset, length))
        .collect()
}

fn assert_matches_debugreiserfs(image: &Path, set: &str) {
    let info = probe(image);
    let sb = debugreiserfs_superblock(image);
    let field = |k: &str| {
        sb.get(k)
            .unwrap_or_else(|| panic!("{set}: debugreiserfs has no {k:?}: {sb:?}"))
            .clone()
    };
    assert_eq!(info.fs_type, "reiserfs");
    assert_eq!(info.version, "3.6", "{set}");
    assert_eq!(info.uuid, field("UUID"), "{set}: uuid");
    assert_eq!(info.label, field("LABEL"), "{set}: label");
    assert_eq!(
        info.block_size.to_string(),
        field("Blocksize"),
        "{set}: block size"
    );
    assert_eq!(
        info.total_blocks.to_string(),
        field("Count of blocks on the device"),
        "{set}"
    );
    assert_eq!(
        info.free_blocks.to_string(),
        field("Free blocks (count of blocks - used [journal, bitmaps, data, reserved] blocks)"),
        "{set}: free blocks"
    );
    assert_eq!(
        format!("\"{}\"", info.features[0]),
        field("Hash function used to sort names"),
        "{set}: hash"
    );
    assert!(
        info.clean,
        "{set}: a fresh or cleanly written volume is clean"
    );
    let expected = debugreiserfs_used(image, u64::from(info.block_size), info.total_blocks);
    assert_eq!(
        used(image),
        expected,
        "{set}: used extents differ from debugreiserfs -m"
    );
}

#[test]
fn empty_volumes_match_debugreiserfs() {
    let dir = tempfile::tempdir().unwrap();
    for (set, options) in OPTION_SETS {
        let image = make_image(dir.path(), &format!("{set}.img"), options);
        assert_matches_debugreiserfs(&image, set);
        let info = probe(&image);
        match set {
            "label-uuid" => {
                assert_eq!(info.label, "homeward-test");
                assert_eq!(info.uuid, "0b8a8c3e-5f0e-4d8c-9a51-2f6c1e7d3b24");
            }
            "tea-hash" => assert_eq!(info.features[0], "tea"),
            "small-journal" => assert!(info.features.contains(&"nonstandard_journal".to_string())),
            _ => assert_eq!(info.features, ["r5", "attrs"]),
        }
    }
}

#[test]
fn populated_volume_matches_debugreiserfs() {
    let dir = tempfile::tempdir().unwrap();
    let image = make_image(dir.path(), "p.img", &[]);
    let before = probe(&image).free_blocks;
    let mut fs = open(&image, true);
    populate(&mut fs, &standard_tree(1), 0o755, 0o644);
    assert_eq!(
        fs.info().free_blocks,
        probe(&image).free_blocks,
        "info follows the writes"
    );
    drop(fs);
    assert!(
        probe(&image).free_blocks + 768 < before,
        "the 3 MiB file took its blocks"
    );
    assert_matches_debugreiserfs(&image, "populated");
    // The small-journal (ReIsEr3Fs) layout holds the same tree format.
    let small = make_image(dir.path(), "small.img", &["--journal-size", "513"]);
    populate(
        &mut open(&small, true),
        &standard_tree(0)[..40],
        0o755,
        0o644,
    );
    assert_fsck_clean(&small);
    assert_matches_debugreiserfs(&small, "small-journal populated");
}

#[test]
fn other_content_is_not_mine() {
    assert!(
        Handler::probe(&MemDevice::read_only(vec![0u8; 1 << 20]))
            .unwrap()
            .is_none()
    );
    assert!(
        Handler::probe(&MemDevice::read_only(vec![0u8; 1000]))
            .unwrap()
            .is_none()
    );
    let err = Handler::used_extents(&MemDevice::read_only(vec![0u8; 1 << 20])).unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput(ref m) if m.contains("not a ReiserFS volume")),
        "{err:?}"
    );
}

#[test]
fn a_pending_journal_transaction_is_not_clean() {
    let dir = tempfile::tempdir().unwrap();
    let image = make_image(dir.path(), "j.img", &[]);
    let mut bytes = std::fs::read(&image).unwrap();
    let le32 = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let sb = 65536;
    let (first, size) = (
        le32(&bytes, sb + 12) as usize,
        le32(&bytes, sb + 20) as usize,
    );
    let bs = 4096;
    let header = (first + size) * bs;
    let (last_flushed, start, mount_id) = (
        le32(&bytes, header),
        le32(&bytes, header + 4),
        le32(&bytes, header + 8),
    );
    // A one-block transaction at the replay start: descriptor, logged block, commit.
    let desc = (first + start as usize) * bs;
    let trans = last_flushed + 1;
    bytes[desc..desc + 4].copy_from_slice(&trans.to_le_bytes());
    bytes[desc + 4..desc + 8].copy_from_slice(&1u32.to_le_bytes());
    bytes[desc + 8..desc + 12].copy_from_slice(&mount_id.to_le_bytes());
    let root = le32(&bytes, sb + 8);
    bytes[desc + 12..desc + 16].copy_from_slice(&root.to_le_bytes());
    bytes[desc + bs - 12..desc + bs - 4].copy_from_slice(b"ReIsErLB");
    let commit = desc + 2 * bs;
    bytes[commit..commit + 4].copy_from_slice(&trans.to_le_bytes());
    bytes[commit + 4..commit + 8].copy_from_slice(&1u32.to_le_bytes());
    let info = Handler::probe(&MemDevice::read_only(bytes.clone()))
        .unwrap()
        .unwrap();
    assert!(
        !info.clean,
        "a committed, unflushed transaction needs replay"
    );
    let Err(err) = Handler::open(Box::new(MemDevice::writable(bytes.clone())), true) else {
        panic!("writing a volume that needs journal replay must be refused");
    };
    assert!(
        matches!(err, Error::Unsupported(ref m) if m.contains("reiserfsck")),
        "{err:?}"
    );
    // Without its commit block the transaction is incomplete: nothing to replay.
    bytes[commit..commit + 8].fill(0);
    assert!(
        Handler::probe(&MemDevice::read_only(bytes))
            .unwrap()
            .unwrap()
            .clean
    );
}

#[test]
fn a_damaged_superblock_is_an_error_not_another_fs() {
    let dir = tempfile::tempdir().unwrap();
    let image = make_image(dir.path(), "d.img", &[]);
    let bytes = std::fs::read(&image).unwrap();
    let mut bad_size = bytes.clone();
    bad_size[65536 + 44..65536 + 46].copy_from_slice(&3000u16.to_le_bytes());
    let err = Handler::probe(&MemDevice::read_only(bad_size)).unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput(ref m) if m.contains("superblock") && m.contains("3000")),
        "{err:?}"
    );
    let mut bad_root = bytes.clone();
    bad_root[65536 + 8..65536 + 12].copy_from_slice(&99_999u32.to_le_bytes());
    let err = Handler::probe(&MemDevice::read_only(bad_root)).unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput(ref m) if m.contains("root block 99999")),
        "{err:?}"
    );
    let truncated = bytes[..(20 << 20)].to_vec();
    let err = Handler::probe(&MemDevice::read_only(truncated)).unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput(ref m) if m.contains("truncated")),
        "{err:?}"
    );
}

#[test]
fn format_3_5_volumes_read_but_do_not_write() {
    let dir = tempfile::tempdir().unwrap();
    let image = make_image(dir.path(), "v35.img", &["--format", "3.5"]);
    let info = probe(&image);
    let sb = debugreiserfs_superblock(&image);
    assert_eq!(info.version, "3.5");
    assert_eq!(
        info.total_blocks.to_string(),
        sb["Count of blocks on the device"]
    );
    assert_eq!(
        info.free_blocks.to_string(),
        sb["Free blocks (count of blocks - used [journal, bitmaps, data, reserved] blocks)"]
    );
    let expected = debugreiserfs_used(&image, 4096, info.total_blocks);
    assert_eq!(used(&image), expected);
    let fs = Handler::open(Box::new(FileDevice::open(&image, false).unwrap()), false).unwrap();
    assert!(
        fs.read_dir("/").unwrap().is_empty(),
        "3.5 stat data and directory read"
    );
    assert_eq!(fs.stat("/").unwrap().mode, 0o755);
    let Err(err) = Handler::open(Box::new(FileDevice::open(&image, true).unwrap()), true) else {
        panic!("3.5 volumes are not writable");
    };
    assert!(
        matches!(err, Error::Unsupported(ref m) if m.contains("3.5")),
        "{err:?}"
    );
}
