//! Damaged XFS images: truncations and deterministic byte flips in every kind
//! of metadata must never panic or hang the handler, and specific damages
//! give `invalid-input` errors naming the structure.

use homeward_fs_xfs::{Handler, fuzz_one};
use homeward_sdk::Error;
use homeward_sdk::fs::{FileSystem, MemDevice};
use homeward_tests::fs_images::{TreeEntry, pseudo_random, standard_tree};
use homeward_tests::fs_xfs::{
    big_dir, block_map, bmbt_child_offset, inode_offset, make_image_sized, remote_symlink_target,
    xfs_tree,
};
use std::sync::mpsc;
use std::time::Duration;

const SMALL: u64 = 16 << 20;

/// The XFS tree without the 3 MiB file, so it fits a one-AG 16 MiB image.
fn small_tree() -> Vec<TreeEntry> {
    let large = standard_tree(1).len() - standard_tree(0).len();
    assert_eq!(large, 1);
    xfs_tree()
        .into_iter()
        .filter(|e| !matches!(e, TreeEntry::File(p, _) if p.ends_with("large")))
        .collect()
}

/// Runs `fuzz_one` on `data` in a thread and fails if it panics or takes
/// more than 20 s (a hang).
fn survives(data: Vec<u8>, what: &str) {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        fuzz_one(&data);
        let _ = tx.send(());
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(()) => worker.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: the handler hangs"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: the handler panicked"),
    }
}

fn invalid_input(result: Result<impl std::fmt::Debug, Error>) -> String {
    match result {
        Err(Error::InvalidInput(m)) => m,
        other => panic!("expected invalid-input, got {other:?}"),
    }
}

#[test]
fn truncations_and_byte_flips_never_panic_or_hang() {
    let image = make_image_sized("", &small_tree(), SMALL);
    let pristine = std::fs::read(&image.path).unwrap();
    survives(pristine.clone(), "the pristine image");

    for len in [
        0,
        100,
        511,
        512,
        1024,
        4096,
        8192,
        65536,
        1 << 20,
        pristine.len() / 2,
        pristine.len() - 1,
    ] {
        survives(pristine[..len].to_vec(), &format!("truncated to {len}"));
    }

    // Where the metadata is: AG headers and B+tree roots (first 16 blocks),
    // the root inode chunk, the inodes of a few files, directory blocks of
    // every form, and the log's first blocks.
    let mut regions: Vec<(String, u64, u64)> =
        vec![("AG headers and B+tree roots".into(), 0, 16 * 4096)];
    let root = inode_offset(&image.path, "/");
    regions.push(("inode chunk".into(), root, 64 * 512));
    for path in ["/etc/hostname", "/var/lib/medium", "/etc/localtime"] {
        regions.push((
            format!("inode of {path}"),
            inode_offset(&image.path, path),
            512,
        ));
    }
    for dir in ["/blockdir", "/leafdir", "/many"] {
        for (_, offset, blocks) in block_map(&image.path, dir) {
            regions.push((format!("directory block of {dir}"), offset, blocks * 4096));
        }
    }
    let mut mutated = 0;
    for (i, (name, start, len)) in regions.iter().cycle().take(220).enumerate() {
        let noise = pseudo_random(16, i as u64 + 1);
        let mut data = pristine.clone();
        let flips = 1 + usize::from(noise[0] % 8);
        for k in 0..flips {
            let pos = u64::from(u32::from_le_bytes([
                noise[1 + k],
                noise[2 + k],
                noise[3 + k],
                noise[4 + k],
            ]));
            let at = (start + pos % len) as usize;
            data[at] ^= noise[8 + k % 8] | 1;
        }
        survives(data, &format!("mutation {i} in {name}"));
        mutated += 1;
    }
    assert!(mutated >= 200);
}

#[test]
fn specific_damages_are_named() {
    let image = make_image_sized("", &small_tree(), SMALL);
    let pristine = std::fs::read(&image.path).unwrap();
    let open = |data: Vec<u8>| Handler::open(Box::new(MemDevice::read_only(data)), false);

    let mut data = pristine.clone();
    data[512..516].copy_from_slice(b"JUNK");
    let m = invalid_input(Handler::used_extents(&MemDevice::read_only(data)));
    assert!(m.contains("AG 0: AGF magic 0x4a554e4b"), "{m}");

    let mut data = pristine.clone();
    data[512 + 60] ^= 1; // agf_btreeblks, under the CRC
    let m = invalid_input(Handler::used_extents(&MemDevice::read_only(data)));
    assert!(m.contains("AG 0: AGF: CRC"), "{m}");

    // The bnobt root is block 1 with 4 KiB blocks.
    let mut data = pristine.clone();
    data[4096 + 100] ^= 0xff;
    let m = invalid_input(Handler::used_extents(&MemDevice::read_only(data)));
    assert!(m.contains("free-space B+tree (bnobt) block 1: CRC"), "{m}");

    // The AGI (third sector) is what a new file's inode comes from.
    let mut data = pristine.clone();
    data[1024..1028].copy_from_slice(b"JUNK");
    let mut fs = Handler::open(Box::new(MemDevice::writable(data)), true).unwrap();
    let m = invalid_input(fs.write_file("/etc/new-file", b"x\n", 0o644));
    assert!(m.contains("AG 0: AGI magic 0x4a554e4b"), "{m}");

    let mut data = pristine.clone();
    data[0] = b'x';
    assert!(
        Handler::probe(&MemDevice::read_only(data))
            .unwrap()
            .is_none(),
        "wrong magic: not mine"
    );

    let hostname = inode_offset(&image.path, "/etc/hostname") as usize;
    let mut data = pristine.clone();
    data[hostname + 8] ^= 1; // di_uid
    let fs = open(data).unwrap();
    let m = invalid_input(fs.read_file("/etc/hostname", 0, 10));
    assert!(m.starts_with("xfs: inode ") && m.contains(": CRC"), "{m}");

    let (_, dir_block, _) = block_map(&image.path, "/many")[0];
    let mut data = pristine.clone();
    data[dir_block as usize + 200] ^= 0x10;
    let fs = open(data).unwrap();
    let m = invalid_input(fs.read_dir("/many"));
    assert!(
        m.contains("directory inode") && m.contains("block 0: CRC"),
        "{m}"
    );
    // Other directories still read.
    assert_eq!(fs.read_file("/etc/hostname", 0, 10).unwrap(), b"web01\n");

    let (_, dir_block, _) = block_map(&image.path, "/blockdir")[0];
    let mut data = pristine.clone();
    data[dir_block as usize..dir_block as usize + 4].copy_from_slice(&[0; 4]);
    let fs = open(data).unwrap();
    let m = invalid_input(fs.read_dir("/blockdir"));
    assert!(
        m.contains("magic 0x00000000") && m.contains("damaged directory block"),
        "{m}"
    );
}

/// `mkfs.xfs` 6.1 `-p` writes block-stored symlink targets without the v5
/// header (`xfs_repair -n` reports "bad symlink header"): the handler says
/// the symlink block is damaged rather than returning garbage.
#[test]
fn headerless_remote_symlink_is_damaged() {
    let mut tree = vec![
        TreeEntry::Dir("etc".into()),
        TreeEntry::File("etc/hostname".into(), b"web01\n".to_vec()),
    ];
    tree.push(TreeEntry::Symlink(
        "remote-link".into(),
        remote_symlink_target(),
    ));
    let image = make_image_sized("", &tree, SMALL);
    let (ok, report) = homeward_tests::fs_xfs::repair_check(&image.path);
    assert!(!ok && report.contains("bad symlink header"), "{report}");
    let fs = Handler::open(
        Box::new(MemDevice::read_only(std::fs::read(&image.path).unwrap())),
        false,
    )
    .unwrap();
    let m = invalid_input(fs.read_link("/remote-link"));
    assert!(m.contains("damaged symlink block"), "{m}");
    assert_eq!(
        fs.stat("/remote-link").unwrap().size,
        remote_symlink_target().len() as u64
    );
}

/// The B+tree data fork of a big directory: flips in its root (in the inode)
/// and its block never panic, and a flip in the block is named.
#[test]
fn damaged_block_map_btree() {
    let image = make_image_sized("", &big_dir(2000), SMALL);
    let pristine = std::fs::read(&image.path).unwrap();
    let inode = inode_offset(&image.path, "/bigdir");
    let block = bmbt_child_offset(&image.path, "/bigdir");
    for i in 0..24u64 {
        let noise = pseudo_random(8, 1000 + i);
        let mut data = pristine.clone();
        let at = if i % 2 == 0 {
            inode + 176 + u64::from(noise[0]) % 336
        } else {
            block + u64::from(u16::from_le_bytes([noise[0], noise[1]])) % 4096
        };
        data[at as usize] ^= noise[2] | 1;
        survives(data, &format!("block-map mutation {i} at {at}"));
    }
    let mut data = pristine.clone();
    data[block as usize + 300] ^= 4;
    let fs = Handler::open(Box::new(MemDevice::read_only(data)), false).unwrap();
    let m = invalid_input(fs.read_dir("/bigdir"));
    assert!(
        m.contains("block-map B+tree block") && m.contains(": CRC"),
        "{m}"
    );
}
