//! Writing ext4 images: new files of several sizes, replacing, removing,
//! directories, symlinks and an entry in the 600-entry (hashed) directory.
//! After the writes `e2fsck -fn` must be clean, and `debugfs` and
//! `grub-fstest` (independent readers) must return the new bytes.

use homeward_fs_ext4::Handler;
use homeward_sdk::Error;
use homeward_sdk::fs::{FileDevice, FileSystem, MemDevice};
use homeward_sdk::types::FileKind;
use homeward_tests::fs_ext4::{OPTION_SETS, assert_fsck_clean, debugfs_cat, make_image};
use homeward_tests::fs_images::grub_cat;
use homeward_tests::fs_images::{pseudo_random, standard_tree};
use std::path::Path;

fn open_rw(img: &Path) -> Handler {
    Handler::open(
        Box::new(FileDevice::open(img, true).expect("open rw")),
        true,
    )
    .expect("open writable")
}

#[test]
fn writes_on_every_writable_option_set_pass_e2fsck_and_read_back_with_other_tools() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tree = standard_tree(0);
    let big = pseudo_random(1_300_000, 77);
    let medium = pseudo_random(70_000, 78);
    for set in OPTION_SETS.iter().filter(|s| s.writable) {
        let n = set.name;
        let img = make_image(dir.path(), set, &tree);
        let mut expected: Vec<(&str, Vec<u8>)> = Vec::new();
        {
            let mut fs = open_rw(&img);
            for (path, content) in [
                ("/etc/new-empty", Vec::new()),
                ("/etc/new-small", b"hello ext4\n".to_vec()),
                ("/etc/new-medium", medium.clone()),
                ("/var/new-big", big.clone()),
                // Replace with bigger, then smaller content.
                ("/etc/hostname", pseudo_random(9000, 5)),
                ("/var/lib/medium", b"now small\n".to_vec()),
            ] {
                fs.write_file(path, &content, 0o640)
                    .unwrap_or_else(|e| panic!("{n}: write {path}: {e:?}"));
                expected.push((path, content));
            }
            fs.remove("/etc/one").expect("remove file");
            fs.remove("/var/lib/long-link")
                .expect("remove slow symlink");
            fs.remove("/etc/localtime").expect("remove fast symlink");
            fs.create_dir("/opt", 0o755).expect("mkdir");
            fs.write_file("/opt/inside", b"in a new dir\n", 0o600)
                .expect("write inside");
            expected.push(("/opt/inside", b"in a new dir\n".to_vec()));
            fs.write_file("/many/entry-new", b"six hundred and one\n", 0o644)
                .expect("htree add");
            expected.push(("/many/entry-new", b"six hundred and one\n".to_vec()));
            fs.create_symlink("/etc/short-link", "hostname")
                .expect("fast symlink");
            fs.create_symlink("/etc/long-link", &"/long/target".repeat(10))
                .expect("slow symlink");
            fs.remove("/many/entry-0007-nnnnnnn")
                .expect("remove in htree");
            fs.sync().expect("sync");

            // The handler reads its own writes.
            for (path, content) in &expected {
                assert!(
                    fs.read_file(path, 0, u32::MAX).expect("read back") == *content,
                    "{n}: {path}"
                );
            }
            assert_eq!(fs.stat("/etc/new-medium").expect("stat").mode, 0o640);
            assert_eq!(fs.read_link("/etc/short-link").expect("link"), "hostname");
            assert_eq!(
                fs.read_link("/etc/long-link").expect("link"),
                "/long/target".repeat(10)
            );
            assert!(matches!(fs.stat("/etc/one"), Err(Error::NotFound(_))));
            let many = fs.read_dir("/many").expect("many");
            assert_eq!(many.len(), 600, "{n}: 600 - 1 + 1 entries");
            assert!(many.iter().any(|e| e.name == "entry-new"));
            let opt = fs.read_dir("/opt").expect("opt");
            assert_eq!(opt.len(), 1);
            assert_eq!(opt[0].kind, FileKind::Regular);
        }
        assert_fsck_clean(&img);
        for (path, content) in &expected {
            assert!(
                debugfs_cat(&img, path) == *content,
                "{n}: debugfs cat {path}"
            );
            assert!(
                grub_cat(&img, path) == *content,
                "{n}: grub-fstest cat {path}"
            );
        }
    }
}

#[test]
fn a_directory_that_outgrows_its_blocks_gets_new_ones() {
    let dir = tempfile::tempdir().expect("temp dir");
    for set in [&OPTION_SETS[1], &OPTION_SETS[4]] {
        let img = make_image(dir.path(), set, &standard_tree(0));
        {
            let mut fs = open_rw(&img);
            fs.create_dir("/grow", 0o700).expect("mkdir");
            for i in 0..300 {
                let path = format!("/grow/file-with-a-longish-name-{i:04}");
                fs.write_file(&path, format!("{i}\n").as_bytes(), 0o644)
                    .expect("write");
            }
            assert_eq!(fs.read_dir("/grow").expect("list").len(), 300);
        }
        assert_fsck_clean(&img);
        assert_eq!(
            debugfs_cat(&img, "/grow/file-with-a-longish-name-0299"),
            b"299\n"
        );
        assert_eq!(
            grub_cat(&img, "/grow/file-with-a-longish-name-0123"),
            b"123\n"
        );
    }
}

#[test]
fn write_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let img = make_image(dir.path(), &OPTION_SETS[0], &standard_tree(0));
    let bytes = std::fs::read(&img).expect("read image");

    let mut ro = Handler::open(Box::new(MemDevice::read_only(bytes.clone())), false).expect("open");
    assert!(matches!(
        ro.write_file("/x", b"x", 0o644),
        Err(Error::PermissionDenied(_))
    ));
    assert!(matches!(
        ro.remove("/etc/hostname"),
        Err(Error::PermissionDenied(_))
    ));
    assert!(Handler::open(Box::new(MemDevice::read_only(bytes.clone())), true).is_err());

    let mut fs =
        Handler::open(Box::new(MemDevice::writable(bytes.clone())), true).expect("open rw");
    assert!(
        fs.write_file("/etc/hostname/below", b"x", 0o644).is_err(),
        "parent is a file"
    );
    assert!(matches!(
        fs.write_file("/no/such/dir/file", b"x", 0o644),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(fs.remove("/etc/missing"), Err(Error::NotFound(_))));
    assert!(matches!(fs.remove("/etc"), Err(Error::InvalidInput(_))));
    assert!(matches!(
        fs.write_file("/etc", b"x", 0o644),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        fs.create_dir("/etc", 0o755),
        Err(Error::Conflict(_))
    ));

    // inline_data volumes are read-only for this handler.
    let inline = OPTION_SETS
        .iter()
        .find(|s| !s.writable)
        .expect("inline set");
    let img = make_image(dir.path(), inline, &standard_tree(0));
    match Handler::open(Box::new(FileDevice::open(&img, true).expect("open")), true) {
        Err(Error::Unsupported(msg)) => assert!(msg.contains("inline_data"), "{msg}"),
        Err(e) => panic!("expected unsupported, got {e:?}"),
        Ok(_) => panic!("expected unsupported"),
    }
}
