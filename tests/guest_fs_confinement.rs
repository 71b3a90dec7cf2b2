//! Guest trees served from a host directory stay confined to their root:
//! absolute symlinks, relative escapes and `..` never reach the host.

use std::os::unix::fs::symlink;

use homeward::guest_fs::{DirTree, FileKind, GuestFsError, GuestTree};

#[test]
fn symlinks_and_dotdot_stay_inside_the_root() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "host secret").unwrap();
    let guest = tempfile::tempdir().unwrap();
    let root = guest.path();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/secret"), "guest secret").unwrap();
    std::fs::write(root.join("etc/hostname"), "web01\n").unwrap();
    // Absolute link: must mean the guest's /etc/secret.
    symlink("/etc/secret", root.join("etc/abs")).unwrap();
    // Relative escape attempts.
    let escape = format!("../../../../..{}/secret", outside.path().display());
    symlink(&escape, root.join("etc/rel")).unwrap();
    symlink(outside.path().join("secret"), root.join("etc/hostabs")).unwrap();
    symlink("loop2", root.join("etc/loop1")).unwrap();
    symlink("loop1", root.join("etc/loop2")).unwrap();

    let tree = DirTree::new(root).unwrap();
    assert_eq!(tree.read_file("/etc/hostname").unwrap(), b"web01\n");
    assert_eq!(tree.read_file("/etc/abs").unwrap(), b"guest secret");
    assert_eq!(tree.read_file("/../../etc/hostname").unwrap(), b"web01\n");
    for p in ["/etc/rel", "/etc/hostabs"] {
        match tree.read_file(p) {
            Err(GuestFsError::NotFound(_)) => {}
            other => panic!("{p} escaped or failed oddly: {other:?}"),
        }
    }
    assert!(matches!(
        tree.read_file("/etc/loop1"),
        Err(GuestFsError::SymlinkLoop(_))
    ));
    assert_eq!(tree.read_link("/etc/abs").unwrap(), "/etc/secret");
    assert_eq!(tree.stat("/etc/abs").unwrap().kind, FileKind::Symlink);
    assert!(matches!(
        tree.read_file("etc/hostname"),
        Err(GuestFsError::InvalidPath { .. })
    ));
    let names: Vec<_> = tree
        .read_dir("/etc")
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(
        names,
        [
            "abs", "hostabs", "hostname", "loop1", "loop2", "rel", "secret"
        ]
    );
    assert!(tree.exists("/etc"));
    assert!(!tree.exists("/nope"));
}
