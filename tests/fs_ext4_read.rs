//! Reading ext4 images of every option set (1 KiB and 4 KiB blocks, 64bit and
//! 32-bit descriptors, metadata_csum on and off, indirect maps, inline data,
//! hashed directories): every file, directory and symlink of the standard
//! tree reads back as `mkfs.ext4 -d` stored it.

use homeward_fs_ext4::Handler;
use homeward_sdk::Error;
use homeward_sdk::fs::{FileDevice, FileSystem};
use homeward_sdk::types::FileKind;
use homeward_tests::fs_ext4::{OPTION_SETS, make_image};
use homeward_tests::fs_images::{TreeEntry, guest_path, standard_tree};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Expected listing of every directory: name → kind.
fn listings(tree: &[TreeEntry]) -> BTreeMap<String, BTreeMap<String, FileKind>> {
    let mut out: BTreeMap<String, BTreeMap<String, FileKind>> = BTreeMap::new();
    out.entry("/".into()).or_default();
    for entry in tree {
        let (rel, kind) = match entry {
            TreeEntry::File(p, _) => (p, FileKind::Regular),
            TreeEntry::Dir(p) => (p, FileKind::Directory),
            TreeEntry::Symlink(p, _) => (p, FileKind::Symlink),
        };
        if kind == FileKind::Directory {
            out.entry(guest_path(rel)).or_default();
        }
        let parent = rel.parent().map_or("/".to_string(), |p| {
            if p.as_os_str().is_empty() {
                "/".into()
            } else {
                guest_path(p)
            }
        });
        let name = rel
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        out.entry(parent).or_default().insert(name, kind);
    }
    out
}

fn check_tree(fs: &Handler, tree: &[TreeEntry], src: &Path, set: &str) {
    for (dir, expected) in listings(tree) {
        let got: BTreeMap<String, FileKind> = fs
            .read_dir(&dir)
            .unwrap_or_else(|e| panic!("{set}: read_dir {dir}: {e:?}"))
            .into_iter()
            .map(|e| (e.name, e.kind))
            .collect();
        // lost+found is mkfs's own.
        let got: BTreeMap<_, _> = got.into_iter().filter(|(n, _)| n != "lost+found").collect();
        assert_eq!(got, expected, "{set}: listing of {dir}");
    }
    for entry in tree {
        match entry {
            TreeEntry::File(rel, content) => {
                let path = guest_path(rel);
                let data = fs.read_file(&path, 0, u32::MAX).expect("read_file");
                assert!(data == *content, "{set}: content of {path} differs");
                if content.len() > 5000 {
                    let part = fs.read_file(&path, 4000, 1500).expect("partial read");
                    assert_eq!(part, content[4000..5500], "{set}: {path} at 4000");
                }
                let stat = fs.stat(&path).expect("stat");
                let meta = std::fs::symlink_metadata(src.join(rel)).expect("src meta");
                assert_eq!(stat.kind, FileKind::Regular, "{set}: {path}");
                assert_eq!(stat.size, content.len() as u64, "{set}: size of {path}");
                assert_eq!(
                    stat.mode,
                    meta.permissions().mode() & 0o7777,
                    "{set}: mode of {path}"
                );
            }
            TreeEntry::Symlink(rel, target) => {
                let path = guest_path(rel);
                assert_eq!(
                    fs.read_link(&path).expect("read_link"),
                    *target,
                    "{set}: {path}"
                );
                let stat = fs.stat(&path).expect("stat");
                assert_eq!(stat.kind, FileKind::Symlink, "{set}: {path}");
                assert_eq!(stat.size, target.len() as u64, "{set}: {path}");
            }
            TreeEntry::Dir(rel) => {
                let stat = fs.stat(&guest_path(rel)).expect("stat");
                assert_eq!(stat.kind, FileKind::Directory, "{set}: {rel:?}");
            }
        }
    }
}

#[test]
fn every_option_set_reads_back_the_standard_tree() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tree = standard_tree(1);
    for set in OPTION_SETS {
        let img = make_image(dir.path(), set, &tree);
        let fs = Handler::open(
            Box::new(FileDevice::open(&img, false).expect("open")),
            false,
        )
        .unwrap_or_else(|e| panic!("{}: open: {e:?}", set.name));
        let src = dir.path().join(format!("{}-src", set.name));
        check_tree(&fs, &tree, &src, set.name);
    }
}

#[test]
fn symlinks_resolve_inside_the_guest_and_the_last_one_is_not_followed_by_stat() {
    let dir = tempfile::tempdir().expect("temp dir");
    let img = make_image(dir.path(), &OPTION_SETS[0], &standard_tree(0));
    let fs = Handler::open(
        Box::new(FileDevice::open(&img, false).expect("open")),
        false,
    )
    .expect("open");
    // /etc/localtime -> /usr/share/zoneinfo/UTC (absolute: the guest's root).
    assert_eq!(
        fs.read_file("/etc/localtime", 0, 100).expect("read"),
        b"TZif2 fake zone data\n"
    );
    assert_eq!(
        fs.stat("/etc/localtime").expect("stat").kind,
        FileKind::Symlink
    );
    assert_eq!(
        fs.read_file("/var/lib/rel-link", 0, 10)
            .expect("read")
            .len(),
        10
    );
    assert_eq!(
        fs.read_dir("/../../etc/..").expect("root").len(),
        fs.read_dir("/").expect("root").len()
    );
}

#[test]
fn errors_name_what_is_wrong() {
    let dir = tempfile::tempdir().expect("temp dir");
    let img = make_image(dir.path(), &OPTION_SETS[1], &standard_tree(0));
    let fs = Handler::open(
        Box::new(FileDevice::open(&img, false).expect("open")),
        false,
    )
    .expect("open");
    assert!(matches!(fs.stat("/etc/nope"), Err(Error::NotFound(_))));
    assert!(matches!(
        fs.read_file("/no/such/file", 0, 1),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        fs.read_file("/etc", 0, 1),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        fs.read_dir("/etc/hostname"),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        fs.read_link("/etc/hostname"),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        fs.stat("/etc/hostname/below"),
        Err(Error::NotFound(_))
    ));
    assert_eq!(
        fs.read_file("/etc/hostname", 100, 10)
            .expect("past the end"),
        b""
    );
}
