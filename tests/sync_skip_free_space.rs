//! `homeward sync --skip-free-space`: the data path copies only what the
//! guest's file systems use, as the handler plugins report it through the
//! partition table, and the copy is still a sound file system with every file.

use homeward_tests::disk_layout::{put_bytes, sfdisk};
use homeward_tests::fs_ext4::{assert_fsck_clean, debugfs_cat};
use homeward_tests::fs_images::*;
use homeward_tests::homeward;
use std::path::Path;

const MIB: u64 = 1 << 20;

/// A 48 MiB GPT disk whose partition 1 (1 MiB..33 MiB) holds the populated
/// ext4 `fs`, and whose partition 2 holds pseudo-random bytes no handler
/// recognises.
fn gpt_disk(dir: &Path, fs: &Path) -> std::path::PathBuf {
    let disk = dir.join("disk.img");
    sparse_file(&disk, 48 * MIB);
    sfdisk(
        &disk,
        "label: gpt\nstart=2048, size=65536, type=linux\nstart=67584, size=20480, type=linux\n",
    );
    put_bytes(&disk, MIB, &std::fs::read(fs).expect("ext4 image"));
    put_bytes(&disk, 33 * MIB, &pseudo_random(10 * MIB as usize, 9));
    disk
}

fn sent_bytes(report: &str) -> u64 {
    let at = report.find(" blocks sent (").expect("sync report");
    report[at + " blocks sent (".len()..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("bytes on the wire")
}

#[test]
fn free_space_is_not_copied_and_the_copy_is_a_clean_file_system() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = dir.path().join("fs.img");
    ext4_image(&fs, dir.path(), &standard_tree(1), &[]);
    // Delete the 3 MiB file: its blocks become free but keep its bytes, as
    // deleted data does on a real guest.
    let (ok, text) = homeward(&["fs", "rm", &fs.display().to_string(), "/var/lib/large"]);
    assert!(ok, "{text}");
    let disk = gpt_disk(dir.path(), &fs);
    let src = disk.display().to_string();

    let whole = dir.path().join("whole.img");
    let (ok, full_report) = homeward(&[
        "sync",
        "--from",
        &src,
        "--to",
        &whole.display().to_string(),
        "--no-compress",
    ]);
    assert!(ok, "{full_report}");

    let slim = dir.path().join("slim.img");
    let (ok, slim_report) = homeward(&[
        "sync",
        "--from",
        &src,
        "--to",
        &slim.display().to_string(),
        "--no-compress",
        "--skip-free-space",
        "--block-size",
        "64K",
    ]);
    assert!(ok, "{slim_report}");
    assert!(slim_report.contains("p1: ext4 (fs-ext4)"), "{slim_report}");
    assert!(
        slim_report.contains("p2: no file system recognised; copied whole"),
        "{slim_report}"
    );

    // The unrecognised partition alone is 10 MiB; the ext4 one holds well
    // under 8 MiB of data; the deleted 3 MiB must not travel.
    let (whole_sent, slim_sent) = (sent_bytes(&full_report), sent_bytes(&slim_report));
    assert!(
        slim_sent < whole_sent - 3 * MIB,
        "{slim_sent} vs {whole_sent}"
    );
    assert!(slim_sent > 10 * MIB, "p2 is copied whole: {slim_sent}");

    // The copy's partition 1 is a clean ext4 with every file intact.
    let copy = std::fs::read(&slim).expect("copy");
    let p1 = dir.path().join("p1.img");
    std::fs::write(&p1, &copy[MIB as usize..33 * MIB as usize]).expect("p1");
    assert_fsck_clean(&p1);
    for entry in standard_tree(0).iter().step_by(37) {
        if let TreeEntry::File(rel, content) = entry {
            assert!(
                debugfs_cat(&p1, &guest_path(rel)) == *content,
                "{} differs in the copy",
                rel.display()
            );
        }
    }
    // Partition 2 arrived byte for byte; the freed file's bytes did not.
    assert!(copy[33 * MIB as usize..43 * MIB as usize] == pseudo_random(10 * MIB as usize, 9)[..]);
    let large = pseudo_random(3 << 20, 4);
    let needle = &large[..4096];
    assert!(
        !copy
            .windows(needle.len())
            .step_by(4096)
            .any(|w| w == needle),
        "the deleted file's data was copied"
    );
}
