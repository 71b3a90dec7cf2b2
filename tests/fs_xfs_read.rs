//! Reading XFS: every file, directory and symlink of images `mkfs.xfs -p`
//! populated reads back as the source tree, for each option set; the
//! directory forms are confirmed with `xfs_db`.

use homeward_fs_xfs::Handler;
use homeward_sdk::Error;
use homeward_sdk::fs::{FileDevice, FileSystem};
use homeward_sdk::types::FileKind;
use homeward_tests::fs_images::{TreeEntry, guest_path, run_tool, stdout_text};
use homeward_tests::fs_xfs::{
    OPTION_SETS, XfsImage, big_dir, make_image, make_image_with, path_of, xfs_db_at, xfs_tree,
};
use std::collections::BTreeMap;
use std::path::Path;

fn open(image: &XfsImage) -> Handler {
    Handler::open(
        Box::new(FileDevice::open(&image.path, false).unwrap()),
        false,
    )
    .unwrap()
}

/// Expected (name, kind) listing of every directory, the root included.
fn expected_listings(tree: &[TreeEntry]) -> BTreeMap<String, Vec<(String, FileKind)>> {
    let mut out: BTreeMap<String, Vec<(String, FileKind)>> = BTreeMap::new();
    out.insert("/".into(), Vec::new());
    for entry in tree {
        let rel = path_of(entry);
        let kind = match entry {
            TreeEntry::File(..) => FileKind::Regular,
            TreeEntry::Dir(_) => {
                out.entry(guest_path(rel)).or_default();
                FileKind::Directory
            }
            TreeEntry::Symlink(..) => FileKind::Symlink,
        };
        let parent = rel.parent().map_or("/".to_string(), |p| {
            if p == Path::new("") {
                "/".into()
            } else {
                guest_path(p)
            }
        });
        let name = rel.file_name().unwrap().to_string_lossy().into_owned();
        out.entry(parent).or_default().push((name, kind));
    }
    for list in out.values_mut() {
        list.sort();
    }
    out
}

fn check_tree(name: &str, image: &XfsImage) {
    let fs = open(image);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for entry in &image.tree {
        let path = guest_path(path_of(entry));
        let stat = fs
            .stat(&path)
            .unwrap_or_else(|e| panic!("{name}: stat {path}: {e:?}"));
        assert!(
            stat.modified_at <= now_ms && stat.modified_at + 3_600_000 > now_ms,
            "{name}: {path} mtime"
        );
        match entry {
            TreeEntry::File(_, content) => {
                assert_eq!(stat.kind, FileKind::Regular, "{name}: {path}");
                assert_eq!(stat.size, content.len() as u64, "{name}: {path}");
                assert_eq!(
                    (stat.mode, stat.uid, stat.gid),
                    (0o644, 1000, 100),
                    "{name}: {path}"
                );
                let got = fs.read_file(&path, 0, content.len() as u32 + 100).unwrap();
                assert!(got == *content, "{name}: {path} content differs");
            }
            TreeEntry::Dir(_) => {
                assert_eq!(stat.kind, FileKind::Directory, "{name}: {path}");
                assert_eq!(stat.mode, 0o755);
            }
            TreeEntry::Symlink(_, target) => {
                assert_eq!(stat.kind, FileKind::Symlink, "{name}: {path}");
                assert_eq!(stat.size, target.len() as u64);
                assert_eq!(fs.read_link(&path).unwrap(), *target, "{name}: {path}");
            }
        }
    }
    for (dir, expected) in expected_listings(&image.tree) {
        let got: Vec<(String, FileKind)> = fs
            .read_dir(&dir)
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.kind))
            .collect();
        assert_eq!(got, expected, "{name}: listing of {dir}");
    }
}

#[test]
fn every_entry_reads_back_for_each_option_set() {
    for (name, options) in OPTION_SETS {
        check_tree(name, &make_image(options));
    }
}

/// `xfs_db` on the inode at `path`: its data fork format and block map.
fn xfs_db_inode(image: &Path, path: &str) -> (String, String) {
    let out = xfs_db_at(image, path, &["print core.format", "bmap"]);
    let text = stdout_text(&out);
    let (format, bmap) = text.split_once('\n').unwrap_or((&text, ""));
    (format.to_string(), bmap.to_string())
}

#[test]
fn directory_forms_and_partial_reads() {
    let mut tree = xfs_tree();
    tree.extend(big_dir(2000));
    let image = make_image_with("", &tree);
    // 4 KiB directory blocks: the hash index starts at file block 8388608
    // (32 GiB) and a node directory's free index at 16777216 (64 GiB).
    let forms = [
        ("/etc", "local", false, false),
        ("/blockdir", "extents", false, false),
        ("/leafdir", "extents", true, false),
        ("/many", "extents", true, true),
    ];
    for (dir, format, leaf, free_index) in forms {
        let (got_format, bmap) = xfs_db_inode(&image.path, dir);
        assert!(got_format.contains(format), "{dir}: {got_format}");
        assert_eq!(bmap.contains("offset 8388608 "), leaf, "{dir}: {bmap}");
        assert_eq!(
            bmap.contains("offset 16777216 "),
            free_index,
            "{dir}: {bmap}"
        );
    }
    let (format, _) = xfs_db_inode(&image.path, "/bigdir");
    assert!(format.contains("btree"), "/bigdir: {format}");
    let (format, _) = xfs_db_inode(&image.path, "/var/lib/long-link");
    assert!(format.contains("local"), "inline symlink: {format}");

    // `xfs_db ls` agrees on the node directory's names.
    let out = run_tool(
        "xfs_db",
        &[
            "-r",
            "-c",
            "path /many",
            "-c",
            "ls",
            image.path.to_str().unwrap(),
        ],
    );
    let mut names: Vec<String> = stdout_text(&out)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5).map(str::to_string))
        .filter(|n| n != "." && n != "..")
        .collect();
    names.sort();
    let fs = open(&image);
    let listed: Vec<String> = fs
        .read_dir("/many")
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(listed, names);

    // The B+tree directory lists and resolves like the others.
    let big: Vec<(String, FileKind)> = fs
        .read_dir("/bigdir")
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.kind))
        .collect();
    assert_eq!(big, expected_listings(&big_dir(2000))["/bigdir"]);
    for i in [0, 999, 1999] {
        let path = format!("/bigdir/big-directory-entry-{i:05}-{}", "x".repeat(40));
        assert_eq!(
            fs.read_file(&path, 0, 100).unwrap(),
            format!("big {i}\n").into_bytes()
        );
    }

    let large = homeward_tests::fs_images::pseudo_random(3 << 20, 4);
    assert_eq!(
        fs.read_file("/var/lib/large", 1_000_001, 70_000).unwrap(),
        large[1_000_001..1_070_001]
    );
    assert_eq!(
        fs.read_file("/var/lib/large", (3 << 20) - 5, 100).unwrap(),
        large[(3 << 20) - 5..]
    );
    assert!(
        fs.read_file("/var/lib/large", 3 << 20, 100)
            .unwrap()
            .is_empty()
    );
    assert!(
        fs.read_file("/var/lib/large", u64::MAX, 100)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn symlinks_resolve_inside_the_guest_and_errors_are_typed() {
    let image = make_image("");
    let fs = open(&image);
    let medium = homeward_tests::fs_images::pseudo_random(70_000, 3);
    // Relative and absolute targets are followed by read_file, not by stat.
    assert_eq!(
        fs.read_file("/var/lib/rel-link", 0, 100_000).unwrap(),
        medium
    );
    assert_eq!(
        fs.read_file("/etc/localtime", 0, 100).unwrap(),
        b"TZif2 fake zone data\n"
    );
    assert_eq!(fs.stat("/etc/localtime").unwrap().kind, FileKind::Symlink);
    assert_eq!(fs.stat("/deep/a/b/../../a/b/c/d/leaf.txt").unwrap().size, 7);
    assert_eq!(fs.stat("/../../etc/hostname").unwrap().size, 6);
    // `..` after a followed symlink leaves the link's target directory.
    let up: Vec<String> = fs
        .read_dir("/etc/localtime/..")
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(up, ["UTC"]);

    assert!(matches!(fs.stat("/etc/nope"), Err(Error::NotFound(_))));
    assert!(matches!(
        fs.read_file("/nope/hostname", 0, 10),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        fs.read_file("/etc/hostname/x", 0, 10),
        Err(Error::NotFound(_))
    ));
    // The long target does not exist inside the guest.
    assert!(matches!(
        fs.read_file("/var/lib/long-link", 0, 10),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        fs.read_dir("/etc/hostname"),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        fs.read_file("/etc", 0, 10),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        fs.read_link("/etc/hostname"),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(fs.stat("relative"), Err(Error::InvalidInput(_))));
}
