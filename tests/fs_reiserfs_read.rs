//! Reading ReiserFS: files, directories, symlinks and metadata through the
//! handler agree with GRUB's independent ReiserFS driver (`grub-fstest`) on
//! a volume populated through the handler (nothing else can populate one
//! without a mount), and paths resolve inside the guest.

use homeward_sdk::Error;
use homeward_sdk::fs::FileSystem;
use homeward_sdk::types::FileKind;
use homeward_tests::fs_images::{TreeEntry, grub_cat, guest_path, standard_tree};
use homeward_tests::fs_reiserfs::*;

#[test]
fn files_read_like_grub_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let tree = standard_tree(1);
    let image = populated(dir.path(), "r.img", &tree, 0o750, 0o640);
    let fs = open(&image, false);
    let sample = [
        "/etc/hostname",
        "/etc/one",
        "/var/lib/block-4095",
        "/var/lib/block-4097",
        "/var/lib/medium",
        "/var/lib/large",
        "/names/with space",
        "/deep/a/b/c/d/leaf.txt",
    ];
    let last_many = format!("/many/entry-0599-{}", "n".repeat(599 % 40));
    for path in sample.into_iter().chain([last_many.as_str()]) {
        let ours = fs.read_file(path, 0, u32::MAX).unwrap();
        assert!(
            ours == grub_cat(&image, path),
            "{path}: handler and grub-fstest differ"
        );
    }
    for entry in &tree {
        if let TreeEntry::File(rel, content) = entry {
            assert!(
                fs.read_file(&guest_path(rel), 0, u32::MAX).unwrap() == *content,
                "{rel:?}"
            );
        }
    }
    // Partial reads across block boundaries and past the end.
    let medium = tree.iter().find_map(|e| match e {
        TreeEntry::File(rel, c) if rel.ends_with("medium") => Some(c.clone()),
        _ => None,
    });
    let medium = medium.unwrap();
    assert_eq!(
        fs.read_file("/var/lib/medium", 4000, 200).unwrap(),
        medium[4000..4200]
    );
    assert_eq!(
        fs.read_file("/var/lib/medium", 69_990, 100).unwrap(),
        medium[69_990..]
    );
    assert!(
        fs.read_file("/var/lib/medium", 70_000, 10)
            .unwrap()
            .is_empty()
    );
    assert!(fs.read_file("/etc/empty", 0, 10).unwrap().is_empty());
}

#[test]
fn directories_list_like_grub_lists_them() {
    let dir = tempfile::tempdir().unwrap();
    let image = populated(dir.path(), "r.img", &standard_tree(0), 0o750, 0o640);
    let fs = open(&image, false);
    for path in ["/", "/etc", "/var/lib", "/names", "/many"] {
        let ours: Vec<String> = fs
            .read_dir(path)
            .unwrap()
            .into_iter()
            .map(|e| {
                if e.kind == FileKind::Directory {
                    format!("{}/", e.name)
                } else {
                    e.name
                }
            })
            .collect();
        let mut sorted = ours.clone();
        sorted.sort();
        assert_eq!(ours, sorted, "{path}: sorted by name");
        // grub-fstest separates names by spaces: compare the words.
        let mut words: Vec<String> = ours
            .iter()
            .flat_map(|n| n.split_whitespace())
            .map(str::to_string)
            .collect();
        words.sort();
        assert_eq!(
            words,
            grub_ls(&image, path),
            "{path}: handler and grub-fstest list differently"
        );
    }
    assert_eq!(fs.read_dir("/many").unwrap().len(), 600);
    let kinds: Vec<(String, FileKind)> = fs
        .read_dir("/etc")
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.kind))
        .collect();
    assert!(kinds.contains(&("localtime".into(), FileKind::Symlink)));
    assert!(kinds.contains(&("sysconfig".into(), FileKind::Directory)));
    assert!(kinds.contains(&("hostname".into(), FileKind::Regular)));
}

#[test]
fn metadata_and_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    let image = populated(dir.path(), "r.img", &standard_tree(0), 0o750, 0o640);
    let fs = open(&image, false);
    let st = fs.stat("/etc/hostname").unwrap();
    assert_eq!(
        (st.kind, st.size, st.mode, st.uid, st.gid),
        (FileKind::Regular, 6, 0o640, 0, 0)
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        st.modified_at <= now_ms && st.modified_at + 600_000 > now_ms,
        "mtime is the write time"
    );
    let st = fs.stat("/etc/sysconfig").unwrap();
    assert_eq!((st.kind, st.mode), (FileKind::Directory, 0o750));
    // stat and read_link do not follow the last symlink; reads do.
    let st = fs.stat("/etc/localtime").unwrap();
    assert_eq!(
        (st.kind, st.size),
        (FileKind::Symlink, "/usr/share/zoneinfo/UTC".len() as u64)
    );
    assert_eq!(
        fs.read_link("/etc/localtime").unwrap(),
        "/usr/share/zoneinfo/UTC"
    );
    assert_eq!(
        fs.read_link("/var/lib/long-link").unwrap(),
        format!("/{}", "long-target-name/".repeat(8)) + "end"
    );
    // An absolute target resolves at the guest root.
    assert_eq!(
        fs.read_file("/etc/localtime", 0, 100).unwrap(),
        b"TZif2 fake zone data\n"
    );
    assert_eq!(
        fs.read_file("/var/lib/rel-link", 0, 5).unwrap(),
        fs.read_file("/var/lib/medium", 0, 5).unwrap()
    );
    assert_eq!(
        grub_cat(&image, "/var/lib/rel-link"),
        fs.read_file("/var/lib/medium", 0, u32::MAX).unwrap()
    );
    assert_eq!(
        fs.read_file("/../../etc/hostname", 0, 100).unwrap(),
        b"web01\n"
    );
    assert_eq!(
        fs.read_file("/names/caf\u{e9}-\u{d55c}\u{ad6d}\u{c5b4}.txt", 0, 100)
            .unwrap(),
        b"utf-8 name\n"
    );
}

#[test]
fn read_errors_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let image = populated(dir.path(), "r.img", &standard_tree(0)[..12], 0o750, 0o640);
    let fs = open(&image, false);
    assert!(matches!(fs.stat("/etc/nope"), Err(Error::NotFound(_))));
    assert!(matches!(
        fs.read_file("/nope/x", 0, 1),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        fs.read_dir("/etc/hostname/x"),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        fs.read_dir("/etc/hostname"),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        fs.read_file("/etc", 0, 1),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        fs.read_link("/etc/hostname"),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(fs.stat("etc"), Err(Error::InvalidInput(_))));
    // The empty volume mkreiserfs makes has an empty root.
    let empty = make_image(dir.path(), "e.img", &["-h", "tea"]);
    let fs = open(&empty, false);
    assert!(fs.read_dir("/").unwrap().is_empty());
    assert_eq!(fs.stat("/").unwrap().kind, FileKind::Directory);
}
