//! XFS probe and used extents, compared with `xfs_db` on images `mkfs.xfs`
//! made with each option set under test.

use homeward_fs_xfs::Handler;
use homeward_sdk::Error;
use homeward_sdk::fs::{FileDevice, FileSystem, MemDevice};
use homeward_tests::fs_xfs::{OPTION_SETS, assert_used_matches_freesp, make_image, xfs_db_sb};

#[test]
fn probe_and_used_extents_agree_with_xfs_db() {
    for (name, options) in OPTION_SETS {
        let image = make_image(options);
        let dev = FileDevice::open(&image.path, false).unwrap();
        let info = Handler::probe(&dev)
            .unwrap()
            .unwrap_or_else(|| panic!("{name}: not recognised"));
        let sb = xfs_db_sb(&image.path);
        assert_eq!(info.fs_type, "xfs");
        assert_eq!(info.version, "5");
        assert_eq!(info.uuid, sb["uuid"], "{name}");
        assert_eq!(info.label, "", "{name}: fname is {}", sb["fname"]);
        assert_eq!(info.block_size.to_string(), sb["blocksize"], "{name}");
        assert_eq!(info.total_blocks.to_string(), sb["dblocks"], "{name}");
        assert_eq!(info.free_blocks.to_string(), sb["fdblocks"], "{name}");
        assert!(info.clean, "{name}: a fresh image has a clean log");
        for feature in ["crc", "ftype", "sparse_inodes", "bigtime"] {
            assert!(
                info.features.iter().any(|f| f == feature),
                "{name}: {feature} in {:?}",
                info.features
            );
        }
        let has = |f: &str| info.features.iter().any(|x| x == f);
        match name {
            "default" => {
                assert!(has("reflink") && has("finobt") && has("inobtcount") && !has("rmapbt"))
            }
            "reflink-rmapbt" => assert!(has("reflink") && has("rmapbt")),
            // inobtcount counts finobt blocks, so it goes with finobt.
            _ => assert!(!has("reflink") && !has("rmapbt") && !has("finobt") && !has("inobtcount")),
        }

        assert_used_matches_freesp(&image.path, name);
    }
}

#[test]
fn label_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.img");
    homeward_tests::fs_images::sparse_file(&path, homeward_tests::fs_xfs::IMAGE_SIZE);
    homeward_tests::fs_images::run_tool_env(
        "mkfs.xfs",
        &["-q", "-f", "-L", "rootfs", path.to_str().unwrap()],
        &homeward_tests::fs_xfs::MKFS_ENV,
    );
    let info = Handler::probe(&FileDevice::open(&path, false).unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(info.label, "rootfs");
    assert_eq!(
        format!("\"{}\"", info.label),
        xfs_db_sb(&path)["fname"].replace("\\000", "")
    );
}

#[test]
fn other_content_is_not_mine() {
    assert!(
        Handler::probe(&MemDevice::read_only(vec![0; 1 << 20]))
            .unwrap()
            .is_none()
    );
    assert!(
        Handler::probe(&MemDevice::read_only(vec![0; 100]))
            .unwrap()
            .is_none()
    );
    let mut ext = vec![0u8; 1 << 20];
    ext[1080..1082].copy_from_slice(&[0x53, 0xef]);
    assert!(
        Handler::probe(&MemDevice::read_only(ext))
            .unwrap()
            .is_none()
    );
}

#[test]
fn damaged_superblock_crc_is_named() {
    let image = make_image("");
    let mut bytes = std::fs::read(&image.path).unwrap();
    bytes[108] = b'X'; // sb_fname, without fixing the CRC
    let err = Handler::probe(&MemDevice::read_only(bytes)).unwrap_err();
    match err {
        Error::InvalidInput(m) => assert!(m.contains("xfs: superblock: CRC"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn dirty_log_is_not_clean() {
    let image = make_image("");
    let mut bytes = std::fs::read(&image.path).unwrap();
    let sb = xfs_db_sb(&image.path);
    let num = |k: &str| sb[k].parse::<u64>().unwrap();
    let (agblklog, agblocks, block) = (num("agblklog"), num("agblocks"), num("blocksize"));
    let logstart = num("logstart");
    let log = ((logstart >> agblklog) * agblocks + (logstart & ((1 << agblklog) - 1))) * block;
    // Clear the unmount flag of the one log record mkfs wrote: it now looks
    // like a transaction that needs replaying.
    let flags = log as usize + 512 + 9;
    assert_ne!(bytes[flags] & 0x20, 0, "mkfs's unmount record");
    bytes[flags] &= !0x20;
    let info = Handler::probe(&MemDevice::read_only(bytes.clone()))
        .unwrap()
        .unwrap();
    assert!(!info.clean);
    let err = Handler::open(Box::new(MemDevice::writable(bytes)), true)
        .err()
        .unwrap();
    assert!(
        matches!(err, Error::Conflict(ref m) if m.contains("log needs recovery")),
        "{err:?}"
    );
}

#[test]
fn v4_is_recognised_but_refused() {
    let image = homeward_tests::fs_xfs::make_image_with("crc=0", &[]);
    let dev = FileDevice::open(&image.path, false).unwrap();
    let info = Handler::probe(&dev).unwrap().unwrap();
    assert_eq!(
        (info.version.as_str(), info.uuid.as_str()),
        ("4", xfs_db_sb(&image.path)["uuid"].as_str())
    );
    assert!(!info.features.iter().any(|f| f == "crc"));
    assert!(matches!(
        Handler::used_extents(&dev),
        Err(Error::Unsupported(_))
    ));
    let dev = Box::new(FileDevice::open(&image.path, false).unwrap());
    assert!(matches!(
        Handler::open(dev, false),
        Err(Error::Unsupported(_))
    ));
}
