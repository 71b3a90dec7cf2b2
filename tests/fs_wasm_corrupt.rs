//! Damaged file systems through the real plugins (wasm, sandboxed): every
//! answer is a result or a named error, never a trap, a deadline or a
//! runaway allocation in the host. The handlers' own tests
//! (`fs_<type>_corrupt.rs`) check the messages natively; this one checks that
//! the whole path, host included, holds.

use homeward::disk::BlockDevice;
use homeward::disk::layout::MemDisk;
use homeward::filesystem::{FsError, FsHandlers};
use homeward::plugin::PluginError;
use homeward_tests::fs_images::*;
use std::sync::Arc;

/// Mutated copies per file system: enough to hit every structure class
/// several times, few enough to keep the test near ten seconds.
const MUTATIONS: u64 = 60;

/// Fails the test when `error` is the plugin being stopped rather than
/// answering: a trap (panic), a deadline, exhausted fuel or memory.
fn assert_answered(error: &FsError, what: &str) {
    if let FsError::Plugin(e) = error {
        assert!(
            matches!(e, PluginError::Failed { .. }),
            "{what}: the handler was stopped instead of answering: {e}"
        );
    }
}

/// Probes, reads used extents, opens and walks `bytes`, asserting answers.
fn exercise(handlers: &FsHandlers, bytes: Vec<u8>, what: &str) -> usize {
    let device: Arc<dyn BlockDevice> = Arc::new(MemDisk::new(bytes, false));
    let detection = match handlers.detect(&device, "disk") {
        Ok(Some(d)) => d,
        Ok(None) => return 0,
        Err(e) => {
            assert_answered(&e, what);
            return 0;
        }
    };
    if let Err(e) = handlers.used_extents(&detection, &device, "disk") {
        assert_answered(&e, what);
    }
    let mut volume = match handlers.open(&detection, device, "disk", false) {
        Ok(v) => v,
        Err(e) => {
            assert_answered(&e, what);
            return 0;
        }
    };
    let mut visited = 0;
    let mut pending = vec!["/".to_string()];
    while let Some(dir) = pending.pop() {
        let entries = match volume.read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) => {
                assert_answered(&FsError::Plugin(e), what);
                continue;
            }
        };
        for entry in entries.into_iter().take(200) {
            visited += 1;
            let path = format!("{}/{}", dir.trim_end_matches('/'), entry.name);
            match entry.kind {
                homeward::guest_fs::FileKind::Directory if pending.len() < 50 => pending.push(path),
                _ => {
                    if let Err(e) = volume.read_file(&path, 0, 65536) {
                        assert_answered(&FsError::Plugin(e), what);
                    }
                }
            }
        }
    }
    visited
}

/// Deterministic damage: flips bytes in the first 64 KiB (superblocks, group
/// descriptors, AG headers) and in the used metadata-rich area after it.
fn mutate(original: &[u8], seed: u64, limit: usize) -> Vec<u8> {
    let mut bytes = original.to_vec();
    let noise = pseudo_random(64, seed);
    let span = limit.min(bytes.len());
    for pair in noise.chunks(4).take(12) {
        let at = u32::from_le_bytes([pair[0], pair[1], pair[2], pair[3]]) as usize;
        let at = if seed.is_multiple_of(2) {
            at % 65536.min(span)
        } else {
            at % span
        };
        bytes[at] ^= pair[0] | 1;
    }
    if seed.is_multiple_of(7) {
        // Truncated image: cut at a seed-dependent point.
        bytes.truncate(span / 2 + (seed as usize * 4096) % (span / 2));
    }
    bytes
}

fn run_mutations(handlers: &FsHandlers, original: &[u8], name: &str) {
    let walked = exercise(handlers, original.to_vec(), name);
    assert!(
        walked > 10,
        "the undamaged {name} image must walk ({walked} entries)"
    );
    for seed in 1..=MUTATIONS {
        let damaged = mutate(original, seed, 4 << 20);
        exercise(handlers, damaged, &format!("{name} mutation {seed}"));
    }
}

#[test]
fn damaged_ext4_images_never_stop_the_plugin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("ext4.img");
    ext4_image(
        &image,
        dir.path(),
        &standard_tree(0),
        &["-O", "metadata_csum,64bit"],
    );
    let (_runtime, handlers) = embedded_fs_handlers(false);
    run_mutations(&handlers, &std::fs::read(&image).expect("image"), "ext4");
}

#[test]
fn damaged_xfs_images_never_stop_the_plugin() {
    // The XFS tree: protofiles cannot name files with spaces.
    let image = homeward_tests::fs_xfs::make_image("");
    let (_runtime, handlers) = embedded_fs_handlers(false);
    run_mutations(
        &handlers,
        &std::fs::read(&image.path).expect("image"),
        "xfs",
    );
}

#[test]
fn damaged_reiserfs_images_never_stop_the_plugin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = homeward_tests::fs_reiserfs::make_image(dir.path(), "reiserfs.img", &[]);
    // Populate through the plugin's own writer (nothing else can write ReiserFS here).
    let (_runtime, writer) = embedded_fs_handlers(true);
    let device: Arc<dyn BlockDevice> =
        Arc::from(homeward::disk::open(&image, true, None).expect("open image"));
    let detection = writer
        .detect(&device, "disk")
        .expect("probe")
        .expect("reiserfs recognised");
    let mut volume = writer
        .open(&detection, device, "disk", true)
        .expect("open writable");
    for entry in standard_tree(0).iter().take(120) {
        match entry {
            TreeEntry::Dir(rel) => volume.create_dir(&guest_path(rel), 0o755),
            TreeEntry::File(rel, content) => volume.write_file(&guest_path(rel), content, 0o644),
            TreeEntry::Symlink(rel, target) => volume.create_symlink(&guest_path(rel), target),
        }
        .expect("populate reiserfs");
    }
    volume.close().expect("sync");
    let (_runtime, handlers) = embedded_fs_handlers(false);
    run_mutations(
        &handlers,
        &std::fs::read(&image).expect("image"),
        "reiserfs",
    );
}
