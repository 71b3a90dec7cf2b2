//! Writing ReiserFS through the handler: the standard tree populated from an
//! empty `mkreiserfs` volume, in-place rewrites, layout-changing rewrites,
//! removals and name-hash collisions must each leave a volume that
//! `reiserfsck --check` finds clean and that GRUB's independent driver
//! (`grub-fstest`) reads back identically; refusals say why.

use homeward_fs_reiserfs::Handler;
use homeward_sdk::Error;
use homeward_sdk::fs::{FileDevice, FileSystem};
use homeward_sdk::types::FileKind;
use homeward_tests::fs_images::{TreeEntry, grub_cat, guest_path, pseudo_random, standard_tree};
use homeward_tests::fs_reiserfs::*;
use std::path::Path;

/// Checks the volume is clean and that GRUB and the handler read `files` as `expected`.
fn assert_reads(image: &Path, files: &[(&str, &[u8])]) {
    assert_fsck_clean(image);
    let fs = open(image, false);
    for (path, expected) in files {
        assert!(
            fs.read_file(path, 0, u32::MAX).unwrap() == *expected,
            "{path}: handler reads other bytes"
        );
        assert!(
            grub_cat(image, path) == *expected,
            "{path}: grub-fstest reads other bytes"
        );
    }
}

fn free_blocks(image: &Path) -> u64 {
    open(image, false).info().free_blocks
}

#[test]
fn standard_tree_populates_clean() {
    let dir = tempfile::tempdir().unwrap();
    let tree = standard_tree(1);
    let image = populated(dir.path(), "w.img", &tree, 0o755, 0o644);
    assert_fsck_clean(&image);
    let fs = open(&image, false);
    for entry in &tree {
        match entry {
            TreeEntry::File(rel, content) => {
                assert!(
                    fs.read_file(&guest_path(rel), 0, u32::MAX).unwrap() == *content,
                    "{rel:?} differs"
                );
            }
            TreeEntry::Symlink(rel, target) => {
                assert_eq!(fs.read_link(&guest_path(rel)).unwrap(), *target)
            }
            TreeEntry::Dir(rel) => {
                assert_eq!(fs.stat(&guest_path(rel)).unwrap().kind, FileKind::Directory)
            }
        }
    }
    let large = pseudo_random(3 << 20, 4);
    assert!(
        grub_cat(&image, "/var/lib/large") == large,
        "grub-fstest reads the 3 MiB file"
    );
    assert_eq!(grub_ls(&image, "/many").len(), 600);
}

#[test]
fn rewrites_in_place_stay_clean() {
    let dir = tempfile::tempdir().unwrap();
    let image = populated(dir.path(), "w.img", &standard_tree(0)[..22], 0o755, 0o644);
    let before_free = free_blocks(&image);
    let used_before = debugreiserfs_used(&image, 4096, 10240);
    let mut fs = open(&image, true);
    let same = pseudo_random(4097, 20);
    let grown = pseudo_random(8000, 21); // into the slack of the second block
    let shrunk = pseudo_random(4500, 22);
    fs.write_file("/var/lib/block-4097", &same, 0o600).unwrap();
    fs.write_file("/var/lib/block-4095", &grown[..4000], 0o644)
        .unwrap();
    fs.write_file("/etc/hostname", b"web02.example.com\n", 0o644)
        .unwrap();
    fs.sync().unwrap();
    drop(fs);
    assert_reads(
        &image,
        &[
            ("/var/lib/block-4097", &same),
            ("/var/lib/block-4095", &grown[..4000]),
            ("/etc/hostname", b"web02.example.com\n"),
        ],
    );
    assert_eq!(
        free_blocks(&image),
        before_free,
        "same-size rewrites allocate nothing"
    );
    assert_eq!(
        debugreiserfs_used(&image, 4096, 10240),
        used_before,
        "same blocks in use"
    );
    let mut fs = open(&image, true);
    fs.write_file("/var/lib/block-4097", &grown, 0o644).unwrap();
    drop(fs);
    assert_reads(&image, &[("/var/lib/block-4097", &grown)]);
    let mut fs = open(&image, true);
    fs.write_file("/var/lib/block-4097", &shrunk, 0o644)
        .unwrap();
    assert_eq!(fs.stat("/var/lib/block-4097").unwrap().size, 4500);
    assert_eq!(fs.stat("/var/lib/block-4097").unwrap().mode, 0o644);
    drop(fs);
    assert_reads(&image, &[("/var/lib/block-4097", &shrunk)]);
    assert_eq!(free_blocks(&image), before_free);
}

#[test]
fn rewrites_that_change_layout_stay_clean() {
    let dir = tempfile::tempdir().unwrap();
    let image = populated(dir.path(), "w.img", &standard_tree(0)[..22], 0o755, 0o644);
    let before_free = free_blocks(&image);
    let big = pseudo_random(10_000, 30);
    let mut fs = open(&image, true);
    fs.write_file("/etc/hostname", &big, 0o644).unwrap(); // tail -> 3 blocks
    fs.write_file("/var/lib/medium", b"now tiny\n", 0o644)
        .unwrap(); // 18 blocks -> tail
    fs.write_file("/etc/empty", &big[..5000], 0o644).unwrap(); // nothing -> 2 blocks
    fs.write_file("/etc/one", b"", 0o644).unwrap(); // tail -> nothing
    fs.write_file("/var/lib/rel-link", b"a file now\n", 0o644)
        .unwrap(); // symlink -> file
    drop(fs);
    assert_reads(
        &image,
        &[
            ("/etc/hostname", &big),
            ("/var/lib/medium", b"now tiny\n"),
            ("/etc/empty", &big[..5000]),
            ("/etc/one", b""),
            ("/var/lib/rel-link", b"a file now\n"),
        ],
    );
    let fs = open(&image, false);
    assert_eq!(
        fs.stat("/var/lib/rel-link").unwrap().kind,
        FileKind::Regular
    );
    // 3 + 2 blocks taken, 18 given back.
    assert_eq!(free_blocks(&image), before_free + 18 - 5);
}

#[test]
fn removals_stay_clean_and_free_space() {
    let dir = tempfile::tempdir().unwrap();
    let tree = standard_tree(0);
    let image = populated(dir.path(), "w.img", &tree, 0o755, 0o644);
    let before_large = free_blocks(&image);
    let large = pseudo_random(3 << 20, 4);
    let mut fs = open(&image, true);
    fs.write_file("/var/lib/large", &large, 0o644).unwrap();
    drop(fs);
    assert_reads(&image, &[("/var/lib/large", &large)]);
    let mut fs = open(&image, true);
    fs.remove("/var/lib/large").unwrap();
    fs.remove("/etc/localtime").unwrap();
    fs.remove("/var/lib/medium").unwrap();
    let many: Vec<String> = fs
        .read_dir("/many")
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    for name in many.iter().step_by(2) {
        fs.remove(&format!("/many/{name}")).unwrap();
    }
    fs.sync().unwrap();
    assert!(matches!(fs.stat("/var/lib/large"), Err(Error::NotFound(_))));
    assert_eq!(fs.read_dir("/many").unwrap().len(), 300);
    drop(fs);
    assert_fsck_clean(&image);
    assert_eq!(grub_ls(&image, "/many").len(), 300);
    // The large file's and medium's data blocks are free again (and some
    // leaves the emptied /many no longer needs).
    assert!(
        free_blocks(&image) >= before_large + 18,
        "data blocks are freed"
    );
    // Removed names can come back.
    let mut fs = open(&image, true);
    for name in many.iter().step_by(2) {
        fs.write_file(&format!("/many/{name}"), b"again\n", 0o644)
            .unwrap();
    }
    fs.create_symlink("/etc/localtime", "/usr/share/zoneinfo/UTC")
        .unwrap();
    drop(fs);
    assert_reads(
        &image,
        &[
            ("/etc/localtime", b"TZif2 fake zone data\n"),
            (&format!("/many/{}", many[0]), b"again\n"),
        ],
    );
    assert_eq!(grub_ls(&image, "/many").len(), 600);
}

/// The r5 hash's sort part, written independently of the handler's.
fn r5_hash_value(name: &[u8]) -> u32 {
    let mut a: u32 = 0;
    for &b in name {
        let c = b as i8 as i32;
        a = a
            .wrapping_add((c << 4) as u32)
            .wrapping_add((c >> 4) as u32)
            .wrapping_mul(11);
    }
    a & 0x7fff_ff80
}

#[test]
fn names_with_the_same_hash_get_generations() {
    let mut seen = std::collections::HashMap::new();
    let letters = pseudo_random(8 * 200_000, 40);
    let pair = letters
        .chunks(8)
        .map(|c| {
            c.iter()
                .map(|b| char::from(b'a' + b % 26))
                .collect::<String>()
        })
        .find_map(|name| {
            seen.insert(r5_hash_value(name.as_bytes()), name.clone())
                .map(|other| (other, name))
        })
        .expect("a collision among 200000 names");
    let dir = tempfile::tempdir().unwrap();
    let image = make_image(dir.path(), "h.img", &[]);
    let mut fs = open(&image, true);
    fs.create_dir("/d", 0o755).unwrap();
    fs.write_file(&format!("/d/{}", pair.0), b"first\n", 0o644)
        .unwrap();
    fs.write_file(&format!("/d/{}", pair.1), b"second\n", 0o644)
        .unwrap();
    drop(fs);
    let (a, b) = (format!("/d/{}", pair.0), format!("/d/{}", pair.1));
    assert_reads(&image, &[(&a, b"first\n"), (&b, b"second\n")]);
    let mut fs = open(&image, true);
    fs.remove(&a).unwrap();
    assert_eq!(fs.read_file(&b, 0, 100).unwrap(), b"second\n");
    fs.write_file(&a, b"first again\n", 0o644).unwrap();
    drop(fs);
    assert_reads(&image, &[(&a, b"first again\n"), (&b, b"second\n")]);
}

#[test]
fn refusals_say_why_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let image = populated(dir.path(), "w.img", &standard_tree(0)[..12], 0o755, 0o644);
    let mut ro = open(&image, false);
    assert!(matches!(
        ro.write_file("/etc/x", b"x", 0o644),
        Err(Error::PermissionDenied(_))
    ));
    assert!(matches!(
        ro.remove("/etc/hostname"),
        Err(Error::PermissionDenied(_))
    ));
    let ro_dev = FileDevice::open(&image, false).unwrap();
    assert!(matches!(
        Handler::open(Box::new(ro_dev), true),
        Err(Error::PermissionDenied(_))
    ));
    let free = free_blocks(&image);
    let mut fs = open(&image, true);
    assert!(matches!(
        fs.create_dir("/etc", 0o755),
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        fs.create_symlink("/etc/hostname", "x"),
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        fs.write_file("/etc", b"x", 0o644),
        Err(Error::Conflict(_))
    ));
    assert!(matches!(fs.remove("/etc"), Err(Error::InvalidInput(_))));
    assert!(matches!(fs.remove("/etc/nope"), Err(Error::NotFound(_))));
    assert!(matches!(
        fs.write_file("/nope/x", b"x", 0o644),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        fs.write_file(&format!("/{}", "n".repeat(256)), b"x", 0o644),
        Err(Error::InvalidInput(_))
    ));
    let too_big = vec![7u8; 9 << 20];
    assert!(
        matches!(fs.write_file("/etc/huge", &too_big, 0o644), Err(Error::Conflict(ref m)) if m.contains("free"))
    );
    drop(fs);
    assert_fsck_clean(&image);
    assert_eq!(
        free_blocks(&image),
        free,
        "failed operations leave the volume as it was"
    );
    let tea = make_image(dir.path(), "tea.img", &["-h", "tea"]);
    let Err(err) = Handler::open(Box::new(FileDevice::open(&tea, true).unwrap()), true) else {
        panic!("tea-hashed volumes are not writable");
    };
    assert!(
        matches!(err, Error::Unsupported(ref m) if m.contains("tea") && m.contains("read-only")),
        "{err:?}"
    );
}

#[test]
fn a_file_of_several_indirect_items_stays_clean() {
    // 5 MiB is 1280 blocks: more pointers than one indirect item holds (1012).
    let dir = tempfile::tempdir().unwrap();
    let image = make_image(dir.path(), "big.img", &[]);
    let big = pseudo_random(5 << 20, 50);
    let mut fs = open(&image, true);
    fs.write_file("/big", &big, 0o644).unwrap();
    assert_eq!(
        fs.read_file("/big", (4 << 20) + 7, 10_000).unwrap(),
        big[(4 << 20) + 7..(4 << 20) + 10_007]
    );
    drop(fs);
    assert_reads(&image, &[("/big", &big)]);
    let mut fs = open(&image, true);
    fs.remove("/big").unwrap();
    drop(fs);
    assert_fsck_clean(&image);
}
