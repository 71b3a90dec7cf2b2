//! Damaged ReiserFS volumes: truncations and deterministic random byte
//! flips in the superblock, the bitmap, internal nodes and leaves of a
//! populated volume must never panic or hang the handler (every public call
//! runs through `fuzz_one`), and specific damages give errors that name the
//! structure.

use homeward_fs_reiserfs::{Handler, fuzz_one};
use homeward_sdk::Error;
use homeward_sdk::fs::{FileSystem, MemDevice};
use homeward_tests::fs_images::{populate, standard_tree};
use homeward_tests::fs_reiserfs::{make_image, open};
use std::sync::mpsc;
use std::time::Duration;

const BS: usize = 4096;
const SB: usize = 65536;

/// A populated volume's bytes (the standard tree at scale 0: a 3-level tree).
fn populated() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let image = make_image(dir.path(), "c.img", &[]);
    populate(&mut open(&image, true), &standard_tree(0), 0o755, 0o644);
    std::fs::read(&image).unwrap()
}

fn le16(b: &[u8], at: usize) -> usize {
    u16::from_le_bytes([b[at], b[at + 1]]) as usize
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// Where the tree's blocks are: the root and the leaves under it.
struct Layout {
    root: usize,
    leaves: Vec<usize>,
}

fn layout(img: &[u8]) -> Layout {
    let root = le32(img, SB + 8) as usize;
    assert_eq!(
        le16(img, SB + 68),
        3,
        "the populated tree has an internal root over leaves"
    );
    let node = &img[root * BS..];
    let n = le16(node, 2);
    let leaves = (0..=n)
        .map(|i| le32(node, 24 + n * 16 + i * 8) as usize)
        .collect();
    Layout { root, leaves }
}

/// Items of leaf `block`: (header offset in the image, key type code, entry count, length, location).
fn items(img: &[u8], block: usize) -> Vec<(usize, u32, usize, usize, usize)> {
    let base = block * BS;
    (0..le16(img, base + 2))
        .map(|i| {
            let ih = base + 24 + i * 24;
            let version = le16(img, ih + 22);
            let kind = if version == 0 {
                match le32(img, ih + 12) {
                    0 => 0,
                    500 => 3,
                    0xffff_fffe => 1,
                    _ => 2,
                }
            } else {
                le32(img, ih + 12) >> 28
            };
            (
                ih,
                kind,
                le16(img, ih + 16),
                le16(img, ih + 18),
                le16(img, ih + 20),
            )
        })
        .collect()
}

/// Runs `fuzz_one` on `data` and fails if it panics or takes over 20 s.
fn survives(data: Vec<u8>, what: &str) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let outcome = std::panic::catch_unwind(|| fuzz_one(&data));
        let _ = tx.send(outcome.is_ok());
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(true) => {}
        Ok(false) => panic!("{what}: the handler panicked"),
        Err(_) => panic!("{what}: the handler hung"),
    }
}

/// A deterministic xorshift generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn truncated_and_flipped_volumes_never_panic_or_hang() {
    let img = populated();
    let tree = layout(&img);
    survives(img.clone(), "the intact volume");
    let mut mutated = 0;
    for len in [
        0,
        100,
        SB,
        SB + 100,
        SB + 4096,
        1 << 20,
        8 << 20,
        20 << 20,
        33 << 20,
        img.len() - 4096,
        img.len() - 1,
    ] {
        survives(img[..len].to_vec(), &format!("truncated to {len}"));
        mutated += 1;
    }
    let mut regions: Vec<(String, usize, usize)> = vec![
        ("superblock".into(), SB, 256),
        ("object-id map".into(), SB + 204, 64),
        ("bitmap".into(), 17 * BS, 1100),
        ("root internal node".into(), tree.root * BS, BS),
    ];
    for &leaf in tree.leaves.iter().step_by(tree.leaves.len().div_ceil(6)) {
        regions.push((format!("leaf {leaf} headers"), leaf * BS, 24 + 24 * 12));
        regions.push((format!("leaf {leaf}"), leaf * BS, BS));
    }
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let per_region = 190usize.div_ceil(regions.len());
    for (name, start, len) in &regions {
        for round in 0..per_region {
            let mut data = img.clone();
            let flips = 1 + rng.below(8);
            for _ in 0..flips {
                let at = start + rng.below(*len);
                data[at] ^= 1 << rng.below(8);
            }
            survives(data, &format!("{name}, round {round}"));
            mutated += 1;
        }
    }
    assert!(mutated >= 200, "{mutated} mutated images");
}

fn open_err(data: Vec<u8>) -> Error {
    match Handler::open(Box::new(MemDevice::read_only(data)), false) {
        Ok(_) => panic!("a damaged volume opened"),
        Err(e) => e,
    }
}

fn message(e: &Error) -> &str {
    match e {
        Error::InvalidInput(m) => m,
        other => panic!("expected invalid-input, got {other:?}"),
    }
}

#[test]
fn specific_damages_give_named_errors() {
    let img = populated();
    let tree = layout(&img);
    let opened =
        |data: Vec<u8>| Handler::open(Box::new(MemDevice::read_only(data)), false).unwrap();

    // A root node with the wrong level.
    let mut data = img.clone();
    data[tree.root * BS] = 7;
    let m = open_err(data);
    assert!(
        message(&m).contains(&format!("tree block {}: level 7, expected 2", tree.root)),
        "{m:?}"
    );

    // An internal node whose child pointer loops back to itself.
    let mut data = img.clone();
    let n = le16(&img, tree.root * BS + 2);
    let last_child = tree.root * BS + 24 + n * 16 + n * 8;
    data[last_child..last_child + 4].copy_from_slice(&(tree.root as u32).to_le_bytes());
    let fs = opened(data);
    let m = fs.read_dir("/many").unwrap_err();
    assert!(message(&m).contains("damaged"), "{m:?}");

    // The /many directory items: the leaves holding a directory item of many entries.
    let dir_items: Vec<_> = tree
        .leaves
        .iter()
        .flat_map(|&l| items(&img, l))
        .filter(|i| i.1 == 3 && i.2 > 20)
        .collect();
    let (ih, _, count, len, location) = dir_items[0];

    // An item body pointing past its leaf.
    let mut data = img.clone();
    data[ih + 20..ih + 22].copy_from_slice(&5000u16.to_le_bytes());
    let m = opened(data).read_dir("/many").unwrap_err();
    assert!(
        message(&m).contains("outside the item area") && message(&m).contains("damaged tree node"),
        "{m:?}"
    );

    // A directory entry whose name lies outside its item.
    let mut data = img.clone();
    let leaf_base = ih / BS * BS;
    let deh = leaf_base + location + (count - 1) * 16;
    data[deh + 12..deh + 14].copy_from_slice(&((len + 10) as u16).to_le_bytes());
    let m = opened(data).read_dir("/many").unwrap_err();
    assert!(message(&m).contains("damaged directory item"), "{m:?}");

    // An indirect item pointing past the volume.
    let (ih, ..) = tree
        .leaves
        .iter()
        .flat_map(|&l| items(&img, l))
        .find(|i| i.1 == 1)
        .unwrap();
    let body = ih / BS * BS + le16(&img, ih + 20);
    let mut data = img.clone();
    data[body..body + 4].copy_from_slice(&4_000_000u32.to_le_bytes());
    let fs = opened(data);
    let err = [
        "/var/lib/block-4095",
        "/var/lib/block-4097",
        "/var/lib/medium",
    ]
    .iter()
    .find_map(|p| fs.read_file(p, 0, u32::MAX).err())
    .expect("one of the block files reads the bad pointer");
    assert!(message(&err).contains("damaged indirect item"), "{err:?}");

    // An object-id map with an odd count.
    let mut data = img.clone();
    data[SB + 48] = 3;
    let m = open_err(data);
    assert!(message(&m).contains("object-id map"), "{m:?}");

    // A bitmap block placed past the end by a damaged block count.
    let truncated = img[..img.len() - BS].to_vec();
    let m = open_err(truncated);
    assert!(message(&m).contains("truncated"), "{m:?}");
}
