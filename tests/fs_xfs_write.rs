//! Writing XFS: rewrites that fit the allocated blocks (same size, shorter,
//! longer into the last block's slack), growth that allocates blocks, and new
//! files in short-form directories leave an image `xfs_repair -n` finds
//! clean, whose free space `xfs_db freesp` and used extents agree on, and
//! that `grub-fstest` reads the new bytes from; what needs B+tree or
//! directory restructuring is `unsupported` (directories, symlinks and
//! removal: `fs_xfs_create`).

use homeward_fs_xfs::Handler;
use homeward_sdk::Error;
use homeward_sdk::fs::{FileDevice, FileSystem};
use homeward_tests::fs_images::{grub_cat, pseudo_random};
use homeward_tests::fs_xfs::{
    OPTION_SETS, assert_used_matches_freesp, block_map, last_file_of_ag, make_image, repair_check,
    rmap_levels, xfs_db_sb,
};

fn open_rw(path: &std::path::Path) -> Handler {
    Handler::open(Box::new(FileDevice::open(path, true).unwrap()), true).unwrap()
}

fn assert_unsupported(result: Result<(), Error>, what: &str) {
    match result {
        Err(Error::Unsupported(m)) => assert!(m.contains("rescue shell"), "{what}: {m}"),
        other => panic!("{what}: expected unsupported, got {other:?}"),
    }
}

#[test]
fn in_place_rewrites_are_clean_and_visible_to_grub() {
    for (name, options) in OPTION_SETS {
        let image = make_image(options);
        let (ok, report) = repair_check(&image.path);
        assert!(ok, "{name}: the fresh image is not clean:\n{report}");

        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let rewrites: Vec<(&str, Vec<u8>)> = vec![
            ("/etc/hostname", b"web02\n".to_vec()),            // same size
            ("/var/lib/block-4097", b"now short\n".to_vec()),  // 2 blocks -> part of 1
            ("/var/lib/block-4095", pseudo_random(4096, 9)),   // into the slack
            ("/var/lib/medium", pseudo_random(18 * 4096, 10)), // every allocated byte
            ("/many/entry-0007-nnnnnnn", b"rewritten\n".to_vec()),
        ];
        let mut fs = open_rw(&image.path);
        for (path, content) in &rewrites {
            fs.write_file(path, content, 0o600)
                .unwrap_or_else(|e| panic!("{name}: {path}: {e:?}"));
        }
        // Through a symlink with an absolute target: its target changes.
        fs.write_file("/etc/localtime", b"TZif2 other zone\n", 0o644)
            .unwrap();
        fs.sync().unwrap();
        drop(fs);

        let (ok, report) = repair_check(&image.path);
        assert!(ok, "{name}: xfs_repair -n after rewrites:\n{report}");
        let fs = Handler::open(
            Box::new(FileDevice::open(&image.path, false).unwrap()),
            false,
        )
        .unwrap();
        for (path, content) in &rewrites {
            assert!(
                grub_cat(&image.path, path) == *content,
                "{name}: grub-fstest cat {path}"
            );
            assert!(
                fs.read_file(path, 0, 1 << 20).unwrap() == *content,
                "{name}: read back {path}"
            );
            let stat = fs.stat(path).unwrap();
            assert_eq!(
                (stat.size, stat.mode),
                (content.len() as u64, 0o600),
                "{name}: {path}"
            );
            assert!(
                stat.modified_at >= before - 1000,
                "{name}: {path} mtime not updated"
            );
        }
        assert_eq!(
            grub_cat(&image.path, "/usr/share/zoneinfo/UTC"),
            b"TZif2 other zone\n"
        );
        // Untouched neighbours are untouched.
        assert_eq!(fs.read_file("/etc/one", 0, 10).unwrap(), b"x");
        assert_eq!(
            fs.read_file("/many/entry-0008-nnnnnnnn", 0, 100).unwrap(),
            b"entry 8\n"
        );
    }
}

#[test]
fn growth_allocates_blocks_consistently() {
    for (name, options) in OPTION_SETS {
        let image = make_image(options);
        let free_before: u64 = xfs_db_sb(&image.path)["fdblocks"].parse().unwrap();
        let growths: Vec<(&str, Vec<u8>)> = vec![
            ("/etc/hostname", pseudo_random(9000, 20)), // 1 block -> 3
            ("/etc/empty", pseudo_random(5000, 21)),    // 0 blocks -> 2
            ("/var/lib/medium", pseudo_random(100_000, 22)), // 18 blocks -> 25
            ("/leafdir/leaf-entry-007", pseudo_random(40_000, 23)),
            ("/etc/hostname", pseudo_random(20_000, 24)), // again: 3 -> 5
        ];
        let mut expected = 26; // 2 + 2 + 7 + 9 + 2 + 2 + 2 blocks
        let mut growths = growths;
        growths.push((
            "/blockdir/file-03-of-a-block-directory",
            pseudo_random(9000, 26),
        ));
        growths.push(("/deep/a/b/c/d/leaf.txt", pseudo_random(9000, 27)));
        let mut extended_in_place = None;
        if options.contains("rmapbt=1") {
            // Lengthening the record of the file that ends an AG with a
            // two-level rmapbt updates its interior high keys. First, before
            // other growths take the free space after it.
            let levels = rmap_levels(&image.path);
            let (ag, _) = levels
                .iter()
                .enumerate()
                .find(|(_, l)| **l > 1)
                .expect("a two-level rmapbt");
            let (path, content) = last_file_of_ag(&image.path, &image.tree, ag as u64)
                .unwrap_or_else(|| panic!("{name}: no file ends AG {ag}"));
            let mut grown = content.clone();
            grown.extend(pseudo_random(3 * 4096, 28));
            let path: &'static str = Box::leak(path.into_boxed_str());
            growths.insert(0, (path, grown));
            extended_in_place = Some(path);
            expected += 3;
        }
        let mut fs = open_rw(&image.path);
        for (path, content) in &growths {
            fs.write_file(path, content, 0o644)
                .unwrap_or_else(|e| panic!("{name}: {path}: {e:?}"));
        }
        fs.sync().unwrap();
        let free_after = fs.info().free_blocks;
        drop(fs);
        assert_eq!(free_before - free_after, expected, "{name}");
        if let Some(path) = extended_in_place {
            assert_eq!(
                block_map(&image.path, path).len(),
                1,
                "{name}: {path} grew in place"
            );
        }
        assert_eq!(
            xfs_db_sb(&image.path)["fdblocks"],
            free_after.to_string(),
            "{name}"
        );

        let (ok, report) = repair_check(&image.path);
        assert!(ok, "{name}: xfs_repair -n after growth:\n{report}");
        for (i, (path, content)) in growths.iter().enumerate() {
            if growths[i + 1..].iter().any(|(later, _)| later == path) {
                continue; // rewritten again later
            }
            assert!(
                grub_cat(&image.path, path) == *content,
                "{name}: grub-fstest cat {path}"
            );
        }
        assert_used_matches_freesp(&image.path, &format!("{name} after growth"));
        let fs = Handler::open(
            Box::new(FileDevice::open(&image.path, false).unwrap()),
            false,
        )
        .unwrap();
        assert_eq!(
            fs.read_file("/var/lib/block-4095", 0, 5000).unwrap(),
            pseudo_random(4095, 1)
        );
    }
}

#[test]
fn new_files_in_short_form_directories() {
    for (name, options) in OPTION_SETS {
        let image = make_image(options);
        let sb_before = xfs_db_sb(&image.path);
        let created: Vec<(&str, Vec<u8>)> = vec![
            ("/etc/resolv.conf", b"nameserver 10.0.0.1\n".to_vec()),
            (
                "/etc/NetworkManager/system-connections/eth1.nmconnection",
                pseudo_random(300, 30),
            ),
            ("/etc/new-empty", Vec::new()),
            ("/deep/a/b/c/d/big", pseudo_random(20_000, 31)),
        ];
        let mut fs = open_rw(&image.path);
        for (path, content) in &created {
            fs.write_file(path, content, 0o600)
                .unwrap_or_else(|e| panic!("{name}: {path}: {e:?}"));
        }
        // Fill /etc until it would need the block form.
        let mut filled = 0;
        let refusal = loop {
            match fs.write_file(&format!("/etc/fill-{filled:02}"), b"fill\n", 0o644) {
                Ok(()) => filled += 1,
                Err(e) => break e,
            }
            assert!(filled < 100, "{name}: /etc never fills");
        };
        assert!(
            matches!(&refusal, Error::Unsupported(m) if m.contains("block directory")),
            "{name}: {refusal:?}"
        );
        assert!(filled > 0, "{name}: no room at all in /etc");
        fs.sync().unwrap();
        drop(fs);

        let (ok, report) = repair_check(&image.path);
        assert!(ok, "{name}: xfs_repair -n after creating files:\n{report}");
        let sb_after = xfs_db_sb(&image.path);
        let ifree =
            |sb: &std::collections::HashMap<String, String>| sb["ifree"].parse::<u64>().unwrap();
        assert_eq!(
            ifree(&sb_before) - ifree(&sb_after),
            4 + filled,
            "{name}: sb_ifree"
        );
        let fs = Handler::open(
            Box::new(FileDevice::open(&image.path, false).unwrap()),
            false,
        )
        .unwrap();
        for (path, content) in &created {
            assert!(
                grub_cat(&image.path, path) == *content,
                "{name}: grub-fstest cat {path}"
            );
            let stat = fs.stat(path).unwrap();
            assert_eq!(
                (stat.size, stat.mode, stat.uid),
                (content.len() as u64, 0o600, 0),
                "{name}: {path}"
            );
        }
        let etc: Vec<String> = fs
            .read_dir("/etc")
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert!(
            etc.contains(&"resolv.conf".to_string()) && etc.contains(&"fill-00".to_string()),
            "{etc:?}"
        );
        assert_eq!(fs.read_file("/etc/hostname", 0, 100).unwrap(), b"web01\n");
        assert_used_matches_freesp(&image.path, &format!("{name} after creating files"));
    }
}

#[test]
fn changes_that_need_more_than_we_do_are_unsupported() {
    let image = make_image("");
    let mut fs = open_rw(&image.path);
    assert_unsupported(
        fs.write_file("/blockdir/new", b"x", 0o644),
        "new file in a block directory",
    );
    assert_unsupported(
        fs.write_file("/many/new", b"x", 0o644),
        "new file in a node directory",
    );
    assert_unsupported(fs.create_dir("/blockdir/newdir", 0o755), "mkdir");
    assert_unsupported(
        fs.create_symlink("/etc/newlink", &"t".repeat(400)),
        "symlink needing a block",
    );
    assert_unsupported(fs.remove("/many/entry-0007-nnnnnnn"), "remove");
    // A symlink whose target is missing would create it.
    assert_unsupported(
        fs.write_file("/var/lib/long-link", b"x", 0o644),
        "dangling symlink",
    );

    assert!(matches!(
        fs.write_file("/nope/file", b"x", 0o644),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        fs.create_dir("/nope/dir", 0o755),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(fs.remove("/etc/nope"), Err(Error::NotFound(_))));
    assert!(matches!(
        fs.write_file("/etc", b"x", 0o644),
        Err(Error::Conflict(_))
    ));
    // An empty rewrite needs nothing: it is allowed.
    fs.write_file("/etc/one", b"", 0o644).unwrap();
    fs.sync().unwrap();
    drop(fs);
    let (ok, report) = repair_check(&image.path);
    assert!(ok, "after refused changes and one truncation:\n{report}");
    assert_eq!(grub_cat(&image.path, "/etc/one"), b"");
    assert_eq!(grub_cat(&image.path, "/etc/hostname"), b"web01\n");
}

#[test]
fn read_only_volumes_refuse_writes() {
    let image = make_image("");
    let mut fs = Handler::open(
        Box::new(FileDevice::open(&image.path, false).unwrap()),
        false,
    )
    .unwrap();
    assert!(matches!(
        fs.write_file("/etc/hostname", b"web02\n", 0o644),
        Err(Error::PermissionDenied(_))
    ));
    assert!(matches!(
        fs.create_dir("/etc/x", 0o755),
        Err(Error::PermissionDenied(_))
    ));
    let ro_dev = Box::new(FileDevice::open(&image.path, false).unwrap());
    assert!(matches!(
        Handler::open(ro_dev, true),
        Err(Error::PermissionDenied(_))
    ));
    assert_eq!(grub_cat(&image.path, "/etc/hostname"), b"web01\n");
}
