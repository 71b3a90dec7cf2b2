//! Creating directories and inline symlinks, and removing files and
//! symlinks, in short-form XFS directories: after each batch `xfs_repair -n`
//! is clean, the used extents match `xfs_db freesp`, the superblock counters
//! moved by exactly what was created and freed, and `grub-fstest` reads the
//! new files through the new directories and follows the new symlinks.

use homeward_fs_xfs::Handler;
use homeward_sdk::Error;
use homeward_sdk::fs::{FileDevice, FileSystem};
use homeward_sdk::types::FileKind;
use homeward_tests::fs_images::{grub_cat, pseudo_random};
use homeward_tests::fs_xfs::{
    OPTION_SETS, assert_used_matches_freesp, make_image, repair_check, xfs_db_sb,
};
use std::collections::HashMap;
use std::path::Path;

fn open_rw(path: &Path) -> Handler {
    Handler::open(Box::new(FileDevice::open(path, true).unwrap()), true).unwrap()
}

fn counter(sb: &HashMap<String, String>, key: &str) -> i64 {
    sb[key].parse().unwrap()
}

/// `xfs_repair -n` clean, used extents equal `freesp`'s complement, and the
/// superblock's free inode and block counts moved by `inodes` and `blocks`
/// (negative: taken) with `icount` unchanged.
fn check_image(
    name: &str,
    image: &Path,
    before: &HashMap<String, String>,
    inodes: i64,
    blocks: i64,
) {
    let (ok, report) = repair_check(image);
    assert!(ok, "{name}: xfs_repair -n:\n{report}");
    let after = xfs_db_sb(image);
    assert_eq!(
        counter(&after, "ifree") - counter(before, "ifree"),
        inodes,
        "{name}: ifree"
    );
    assert_eq!(
        counter(&after, "fdblocks") - counter(before, "fdblocks"),
        blocks,
        "{name}: fdblocks"
    );
    assert_eq!(after["icount"], before["icount"], "{name}: icount");
    assert_used_matches_freesp(image, name);
}

#[test]
fn directories_and_symlinks_are_created_cleanly() {
    for (name, options) in OPTION_SETS {
        let image = make_image(options);
        let before = xfs_db_sb(&image.path);
        let file = pseudo_random(9000, 40); // 3 blocks
        let mut fs = open_rw(&image.path);
        fs.create_dir("/etc/newdir", 0o750).unwrap();
        fs.write_file("/etc/newdir/file.conf", &file, 0o640)
            .unwrap();
        fs.create_dir("/etc/newdir/sub", 0o755).unwrap();
        fs.create_dir("/etc/newdir/sub/deeper", 0o700).unwrap();
        fs.write_file("/etc/newdir/sub/deeper/x", b"deep\n", 0o644)
            .unwrap(); // 1 block
        fs.create_symlink("/etc/newlink", "hostname").unwrap();
        fs.create_symlink("/etc/newdir/abs", "/etc/newdir/file.conf")
            .unwrap();
        fs.create_symlink("/etc/newdir/sub/up", "../file.conf")
            .unwrap();
        assert!(matches!(
            fs.create_dir("/etc/newdir", 0o755),
            Err(Error::Conflict(_))
        ));
        fs.sync().unwrap();
        drop(fs);
        check_image(name, &image.path, &before, -8, -4);

        assert_eq!(
            grub_cat(&image.path, "/etc/newdir/file.conf"),
            file,
            "{name}"
        );
        assert_eq!(grub_cat(&image.path, "/etc/newdir/sub/deeper/x"), b"deep\n");
        assert_eq!(grub_cat(&image.path, "/etc/newlink"), b"web01\n", "{name}");
        assert_eq!(grub_cat(&image.path, "/etc/newdir/abs"), file, "{name}");
        assert_eq!(grub_cat(&image.path, "/etc/newdir/sub/up"), file, "{name}");

        let fs = Handler::open(
            Box::new(FileDevice::open(&image.path, false).unwrap()),
            false,
        )
        .unwrap();
        let stat = fs.stat("/etc/newdir").unwrap();
        assert_eq!(
            (stat.kind, stat.mode, stat.uid),
            (FileKind::Directory, 0o750, 0)
        );
        let names: Vec<(String, FileKind)> = fs
            .read_dir("/etc/newdir")
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.kind))
            .collect();
        assert_eq!(
            names,
            vec![
                ("abs".to_string(), FileKind::Symlink),
                ("file.conf".to_string(), FileKind::Regular),
                ("sub".to_string(), FileKind::Directory),
            ],
            "{name}"
        );
        assert!(fs.read_dir("/etc/newdir/sub/deeper").unwrap().len() == 1);
        assert_eq!(fs.read_link("/etc/newlink").unwrap(), "hostname");
        assert_eq!(fs.stat("/etc/newlink").unwrap().mode, 0o777);
        assert_eq!(
            fs.read_file("/etc/newdir/sub/up", 0, 1 << 20).unwrap(),
            file
        );
    }
}

#[test]
fn files_and_symlinks_are_removed_cleanly() {
    for (name, options) in OPTION_SETS {
        let image = make_image(options);
        let before = xfs_db_sb(&image.path);
        let mut fs = open_rw(&image.path);
        fs.remove("/etc/one").unwrap(); // 1 block
        fs.remove("/etc/empty").unwrap();
        fs.remove("/etc/localtime").unwrap(); // inline symlink
        fs.remove("/var/lib/medium").unwrap(); // 18 blocks
        fs.remove("/var/lib/rel-link").unwrap(); // dangling now
        // A file that grew (two extents), then goes.
        fs.write_file("/etc/hostname", &pseudo_random(9000, 41), 0o644)
            .unwrap();
        fs.remove("/etc/hostname").unwrap();
        // Created and removed again, and the freed inodes are used again.
        fs.create_dir("/etc/again", 0o755).unwrap();
        fs.write_file("/etc/again/f", &pseudo_random(5000, 42), 0o644)
            .unwrap();
        fs.remove("/etc/again/f").unwrap();
        fs.create_symlink("/etc/again/l", "../hostname").unwrap();
        fs.remove("/etc/again/l").unwrap();
        fs.write_file("/etc/one", b"back\n", 0o644).unwrap();
        assert!(matches!(
            fs.remove("/etc/one-more"),
            Err(Error::NotFound(_))
        ));
        fs.sync().unwrap();
        drop(fs);
        // Inodes: 6 removed, 4 created (2 of them removed again). Blocks:
        // /etc/one and /var/lib/medium freed, /etc/hostname grew by 2 then
        // freed 3, /etc/again/f came and went, /etc/one is back with one.
        check_image(name, &image.path, &before, 6 - 4 + 2, 1 + 18 + (3 - 2) - 1);

        assert_eq!(grub_cat(&image.path, "/etc/one"), b"back\n", "{name}");
        let fs = Handler::open(
            Box::new(FileDevice::open(&image.path, false).unwrap()),
            false,
        )
        .unwrap();
        for gone in [
            "/etc/empty",
            "/etc/localtime",
            "/var/lib/medium",
            "/etc/hostname",
        ] {
            assert!(
                matches!(fs.stat(gone), Err(Error::NotFound(_))),
                "{name}: {gone}"
            );
        }
        assert!(fs.read_dir("/etc/again").unwrap().is_empty());
        assert_eq!(
            fs.read_file("/var/lib/block-4095", 0, 5000).unwrap(),
            pseudo_random(4095, 1)
        );
    }
}

#[test]
fn what_we_cannot_do_is_refused_before_writing() {
    let image = make_image("");
    let before = std::fs::read(&image.path).unwrap();
    let mut fs = open_rw(&image.path);
    let unsupported = |r: Result<(), Error>, what: &str| match r {
        Err(Error::Unsupported(m)) => assert!(m.contains("rescue shell"), "{what}: {m}"),
        other => panic!("{what}: expected unsupported, got {other:?}"),
    };
    unsupported(
        fs.create_dir("/blockdir/d", 0o755),
        "mkdir in a block directory",
    );
    unsupported(
        fs.create_symlink("/etc/long", &"x".repeat(400)),
        "symlink needing a block",
    );
    unsupported(
        fs.remove("/many/entry-0007-nnnnnnn"),
        "remove from a node directory",
    );
    assert!(matches!(fs.remove("/etc"), Err(Error::InvalidInput(_))));
    assert!(matches!(
        fs.create_symlink("/etc/hostname", "x"),
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        fs.create_dir("/nope/dir", 0o755),
        Err(Error::NotFound(_))
    ));
    fs.sync().unwrap();
    drop(fs);
    assert!(
        std::fs::read(&image.path).unwrap() == before,
        "the image changed"
    );
}

/// Every regular file and symlink of every short-form directory of `dir`,
/// depth first: (path, is a file, size).
fn removable(fs: &Handler, dir: &str, out: &mut Vec<(String, bool, u64)>) {
    for entry in fs.read_dir(dir).unwrap() {
        let path = format!("{}/{}", dir.trim_end_matches('/'), entry.name);
        match entry.kind {
            FileKind::Directory => removable(fs, &path, out),
            FileKind::Regular | FileKind::Symlink => {
                let size = fs.stat(&path).unwrap().size;
                out.push((path, entry.kind == FileKind::Regular, size));
            }
            FileKind::Other => {}
        }
    }
}

#[test]
fn removing_everything_that_can_go_leaves_a_clean_file_system() {
    for (name, options) in OPTION_SETS {
        let image = make_image(options);
        let before = xfs_db_sb(&image.path);
        let mut fs = open_rw(&image.path);
        let mut candidates = Vec::new();
        removable(&fs, "/", &mut candidates);
        let (mut inodes, mut blocks, mut refused) = (0, 0, 0);
        for (path, is_file, size) in &candidates {
            match fs.remove(path) {
                Ok(()) => {
                    inodes += 1;
                    if *is_file {
                        blocks += size.div_ceil(4096) as i64;
                    }
                }
                Err(Error::Unsupported(m)) => {
                    assert!(
                        m.contains("block, leaf or node form"),
                        "{name}: {path}: {m}"
                    );
                    refused += 1;
                }
                Err(e) => panic!("{name}: {path}: {e:?}"),
            }
        }
        fs.sync().unwrap();
        drop(fs);
        assert!(
            inodes > 10 && refused > 0,
            "{name}: {inodes} removed, {refused} refused"
        );
        check_image(name, &image.path, &before, inodes, blocks);
        // What is left still reads, and new entries still fit.
        let mut fs = open_rw(&image.path);
        let mut left = Vec::new();
        removable(&fs, "/", &mut left);
        assert_eq!(left.len(), refused, "{name}");
        fs.create_dir("/etc/later", 0o755).unwrap();
        fs.write_file("/etc/later/f", &pseudo_random(30_000, 43), 0o644)
            .unwrap();
        fs.sync().unwrap();
        drop(fs);
        check_image(name, &image.path, &before, inodes - 2, blocks - 8);
        assert_eq!(
            grub_cat(&image.path, "/etc/later/f"),
            pseudo_random(30_000, 43)
        );
    }
}
