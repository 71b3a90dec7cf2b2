//! `homeward fs`: the operator's window into a guest disk, driving the
//! embedded handler plugins (wasm, sandboxed) end to end, checked against the
//! real tools.

use homeward_tests::fs_ext4::{assert_fsck_clean, debugfs_cat};
use homeward_tests::fs_images::*;
use homeward_tests::homeward;
use std::path::Path;

fn arg(p: &Path) -> String {
    p.display().to_string()
}

fn dumpe2fs_field(image: &Path, field: &str) -> String {
    let out = stdout_text(&run_tool("dumpe2fs", &["-h", &arg(image)]));
    out.lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|v| v.trim_start_matches(':').trim().to_string())
        .unwrap_or_else(|| panic!("dumpe2fs -h has no {field}:\n{out}"))
}

#[test]
fn probe_ls_cat_readlink_on_a_bare_ext4_image() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("root.img");
    ext4_image(&image, dir.path(), &standard_tree(0), &[]);
    let img = arg(&image);

    let (ok, text) = homeward(&["fs", "probe", &img]);
    assert!(ok, "{text}");
    assert!(text.contains("volume disk"), "{text}");
    assert!(text.contains("handler:      fs-ext4"), "{text}");
    assert!(text.contains("label:        guestroot"), "{text}");
    let uuid = dumpe2fs_field(&image, "Filesystem UUID");
    assert!(text.contains(&format!("uuid:         {uuid}")), "{text}");

    let (ok, text) = homeward(&["fs", "ls", &img, "/etc"]);
    assert!(ok, "{text}");
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .collect();
    assert_eq!(
        names,
        [
            "NetworkManager",
            "empty",
            "hostname",
            "localtime",
            "one",
            "sysconfig"
        ],
        "{text}"
    );
    assert!(
        text.contains("localtime -> /usr/share/zoneinfo/UTC"),
        "{text}"
    );

    let (ok, text) = homeward(&["fs", "cat", &img, "/etc/hostname"]);
    assert!(ok, "{text}");
    assert_eq!(text, "web01\n");

    // The absolute symlink resolves inside the guest, not on this host.
    let (ok, text) = homeward(&["fs", "cat", &img, "/etc/localtime"]);
    assert!(ok, "{text}");
    assert_eq!(text, "TZif2 fake zone data\n");

    let (ok, text) = homeward(&["fs", "readlink", &img, "/var/lib/rel-link"]);
    assert!(ok, "{text}");
    assert_eq!(text, "medium\n");

    let (ok, text) = homeward(&["fs", "stat", &img, "/var/lib/medium"]);
    assert!(ok, "{text}");
    assert!(text.contains("size:     70000"), "{text}");

    let (ok, text) = homeward(&["fs", "cat", &img, "/etc/nothing-here"]);
    assert!(!ok);
    assert!(text.contains("not found"), "{text}");
}

#[test]
fn put_mkdir_ln_rm_leave_ext4_clean_and_readable_by_debugfs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("root.img");
    ext4_image(&image, dir.path(), &standard_tree(0), &[]);
    let img = arg(&image);
    let content = pseudo_random(300_000, 77);
    let from = dir.path().join("new-content");
    std::fs::write(&from, &content).expect("content");

    for args in [
        vec!["fs", "put", &img, "/etc/hostname", "--from", &arg(&from)],
        vec!["fs", "mkdir", &img, "/etc/homeward"],
        vec![
            "fs",
            "put",
            &img,
            "/etc/homeward/state",
            "--from",
            &arg(&from),
            "--mode",
            "600",
        ],
        vec!["fs", "ln", &img, "/etc/homeward/state", "/etc/state-link"],
        vec!["fs", "rm", &img, "/etc/one"],
    ] {
        let (ok, text) = homeward(&args);
        assert!(ok, "{args:?}: {text}");
    }

    assert_fsck_clean(&image);
    assert!(
        debugfs_cat(&image, "/etc/hostname") == content,
        "debugfs reads other bytes"
    );
    assert!(
        debugfs_cat(&image, "/etc/homeward/state") == content,
        "debugfs reads other bytes"
    );
    // `homeward()` returns text: compare the lossy forms of the bytes.
    let (ok, text) = homeward(&["fs", "cat", &img, "/etc/state-link"]);
    assert!(ok, "fs cat failed");
    assert!(
        text == String::from_utf8_lossy(&content),
        "the link reads other bytes"
    );
    let (ok, text) = homeward(&["fs", "stat", &img, "/etc/one"]);
    assert!(!ok && text.contains("not found"), "{text}");
    let (ok, text) = homeward(&["fs", "stat", &img, "/etc/homeward/state"]);
    assert!(ok && text.contains("mode:     0600"), "{text}");
}

#[test]
fn writing_needs_the_disk_write_grant_in_a_plugin_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("root.img");
    ext4_image(&image, dir.path(), &standard_tree(0), &[]);
    // A plugin set with the ext4 handler, without `disk-write`.
    let wasm = dir.path().join("fs-ext4.wasm");
    std::fs::write(
        &wasm,
        homeward::embedded::get("fs-ext4").expect("embedded").wasm,
    )
    .expect("write plugin");
    let set = homeward_tests::write_file(
        dir.path(),
        "homeward.toml",
        &format!("[plugins.fs-ext4]\npath = {:?}\n", arg(&wasm)),
    );
    let before = std::fs::read(&image).expect("image");
    let from = homeward_tests::write_file(dir.path(), "content", "changed\n");
    let (ok, text) = homeward(&[
        "fs",
        "put",
        "--config",
        &arg(&set),
        &arg(&image),
        "/etc/hostname",
        "--from",
        &arg(&from),
    ]);
    assert!(!ok, "{text}");
    assert!(text.contains("disk-write"), "{text}");
    assert_eq!(
        std::fs::read(&image).expect("image"),
        before,
        "nothing written"
    );
}

#[test]
fn used_through_the_plugin_equals_the_native_parser() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("root.img");
    ext4_image(&image, dir.path(), &standard_tree(1), &[]);
    let (ok, text) = homeward(&["fs", "used", &arg(&image)]);
    assert!(ok, "{text}");
    let through_wasm: Vec<(u64, u64)> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let mut f = l
                .split_whitespace()
                .map(|n| n.parse::<u64>().expect("number"));
            (f.next().expect("offset"), f.next().expect("length"))
        })
        .collect();
    let device = homeward_sdk::fs::FileDevice::open(&image, false).expect("image");
    let native: Vec<(u64, u64)> =
        <homeward_fs_ext4::Handler as homeward_sdk::fs::FileSystem>::used_extents(&device)
            .expect("native used extents")
            .into_iter()
            .map(|r| (r.offset, r.length))
            .collect();
    assert_eq!(through_wasm, native);
    assert!(!native.is_empty());
}
