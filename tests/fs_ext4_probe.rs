//! ext4 probe and used extents, against `dumpe2fs` on images of every option
//! set: the superblock facts, and the used ranges byte for byte.

use homeward_fs_ext4::Handler;
use homeward_sdk::Error;
use homeward_sdk::fs::{FileDevice, FileSystem, MemDevice};
use homeward_tests::fs_ext4::{OPTION_SETS, dumpe2fs_header, dumpe2fs_used_bytes, make_image};
use homeward_tests::fs_images::standard_tree;

#[test]
fn probe_agrees_with_dumpe2fs_on_every_option_set() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tree = standard_tree(0);
    for set in OPTION_SETS {
        let img = make_image(dir.path(), set, &tree);
        let header = dumpe2fs_header(&img);
        let dev = FileDevice::open(&img, false).expect("open image");
        let info = Handler::probe(&dev)
            .expect("probe")
            .expect("an ext4 volume");
        let n = set.name;
        assert_eq!(info.fs_type, "ext4", "{n}");
        assert_eq!(info.uuid, header["Filesystem UUID"], "{n}");
        let label = match header["Filesystem volume name"].as_str() {
            "<none>" => "",
            other => other,
        };
        assert_eq!(info.label, label, "{n}");
        assert_eq!(info.block_size.to_string(), header["Block size"], "{n}");
        assert_eq!(info.total_blocks.to_string(), header["Block count"], "{n}");
        assert_eq!(info.free_blocks.to_string(), header["Free blocks"], "{n}");
        let features: Vec<&str> = header["Filesystem features"].split_whitespace().collect();
        assert_eq!(info.features, features, "{n}");
        assert_eq!(info.version, "1.0", "{n}");
        assert!(info.clean, "{n}: a fresh image is clean");
    }
}

#[test]
fn used_extents_equal_the_complement_of_dumpe2fs_free_ranges() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tree = standard_tree(1);
    for set in OPTION_SETS {
        let img = make_image(dir.path(), set, &tree);
        let dev = FileDevice::open(&img, false).expect("open image");
        let started = std::time::Instant::now();
        let used = Handler::used_extents(&dev).expect("used extents");
        let elapsed = started.elapsed();
        let ours: Vec<(u64, u64)> = used.iter().map(|r| (r.offset, r.length)).collect();
        assert_eq!(ours, dumpe2fs_used_bytes(&img), "{}", set.name);
        eprintln!(
            "{}: used_extents in {elapsed:?}, {} ranges",
            set.name,
            ours.len()
        );
    }
}

#[test]
fn ext2_and_ext3_layouts_are_named_as_blkid_names_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (kind, expected) in [("ext2", "ext2"), ("ext3", "ext3")] {
        let img = dir.path().join(format!("{kind}.img"));
        homeward_tests::fs_images::sparse_file(&img, 8 << 20);
        homeward_tests::fs_images::run_tool(
            "mkfs.ext4",
            &["-q", "-F", "-t", kind, img.to_str().expect("utf-8")],
        );
        let dev = FileDevice::open(&img, false).expect("open image");
        let info = Handler::probe(&dev).expect("probe").expect("mine");
        assert_eq!(info.fs_type, expected);
        let ours: Vec<(u64, u64)> = Handler::used_extents(&dev)
            .expect("used extents")
            .iter()
            .map(|r| (r.offset, r.length))
            .collect();
        assert_eq!(ours, dumpe2fs_used_bytes(&img), "{kind}");
    }
}

#[test]
fn other_content_is_not_mine() {
    assert!(
        Handler::probe(&MemDevice::read_only(vec![0; 1 << 20]))
            .expect("probe")
            .is_none()
    );
    assert!(
        Handler::probe(&MemDevice::read_only(vec![0; 100]))
            .expect("probe")
            .is_none()
    );
}

/// Rewrites the superblock checksum after a deliberate change.
fn reseal_superblock(bytes: &mut [u8]) {
    let crc = homeward_sdk::fs::crc32c_update(!0, &bytes[1024..1024 + 0x3fc]);
    bytes[1024 + 0x3fc..1024 + 0x400].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn an_unknown_incompat_feature_is_reported_and_refused_on_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let img = make_image(dir.path(), &OPTION_SETS[0], &standard_tree(0));
    let mut bytes = std::fs::read(&img).expect("read image");
    let incompat = 1024 + 0x60;
    let value = u32::from_le_bytes(bytes[incompat..incompat + 4].try_into().unwrap()) | 0x4000_0000;
    bytes[incompat..incompat + 4].copy_from_slice(&value.to_le_bytes());
    reseal_superblock(&mut bytes);
    let info = Handler::probe(&MemDevice::read_only(bytes.clone()))
        .expect("probe")
        .expect("still ext4");
    assert!(
        info.features.contains(&"incompat_0x40000000".to_string()),
        "{:?}",
        info.features
    );
    match Handler::open(Box::new(MemDevice::read_only(bytes)), false) {
        Err(Error::Unsupported(msg)) => assert!(msg.contains("incompat_0x40000000"), "{msg}"),
        Err(e) => panic!("expected unsupported, got {e:?}"),
        Ok(_) => panic!("expected unsupported, got an open volume"),
    }
}

#[test]
fn a_superblock_checksum_mismatch_is_invalid_input_naming_the_superblock() {
    let dir = tempfile::tempdir().expect("temp dir");
    let img = make_image(dir.path(), &OPTION_SETS[0], &standard_tree(0));
    let mut bytes = std::fs::read(&img).expect("read image");
    bytes[1024 + 0x78] ^= 0x20; // a label byte, checksum left stale
    match Handler::probe(&MemDevice::read_only(bytes)) {
        Err(Error::InvalidInput(msg)) => {
            assert!(
                msg.contains("superblock") && msg.contains("checksum"),
                "{msg}"
            )
        }
        other => panic!("expected invalid input, got {other:?}"),
    }
}
