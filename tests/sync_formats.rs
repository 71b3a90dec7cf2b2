//! `homeward sync` between disk image formats, checked by the real tool: after a full sync (every source and target format among raw, VMDK monolithicFlat and VHD fixed) or a delta sync (only the changed blocks sent), `qemu-img compare` calls the target identical to the source. Also what goes on the wire for sparse and compressible sources, a non-default block size, and a target larger than its source.

use homeward::disk::ImageFormat;
use homeward_tests::images::{
    self, KIB, MIB, SyncReport, assert_identical, assert_prefix_identical, change_blocks,
    random_image, read_range, s, spread_regions, sync, write_repeating, write_sparse,
};
use std::path::{Path, PathBuf};

/// Size of the test images: 16 blocks of the default 1 MiB.
const SIZE: u64 = 16 * MIB;
/// Blocks of the default size in [`SIZE`].
const BLOCKS: u64 = SIZE / MIB;
/// Bytes each block sent adds on the wire besides its payload (framing and
/// digest; `BLOCK_OVERHEAD` in `host/src/sync/source.rs`).
const BLOCK_OVERHEAD: u64 = 64;

/// `dir/target.EXT` for `format`.
fn target_path(dir: &Path, format: ImageFormat) -> PathBuf {
    dir.join(format!("target.{}", images::extension(format)))
}

/// Full sync of the `from` image `src` to a new `to` image next to it, both
/// formats declared; returns the target and the summary.
fn full_sync_to(src: &Path, from: ImageFormat, to: ImageFormat) -> (PathBuf, SyncReport) {
    let dst = target_path(src.parent().unwrap(), to);
    let report = sync(&[
        "--from",
        s(src),
        "--to",
        s(&dst),
        "--from-format",
        from.cli_name(),
        "--to-format",
        to.cli_name(),
    ]);
    (dst, report)
}

/// A random `from` image in `dir`, fully synced to a new `to` image.
fn full_sync(dir: &Path, from: ImageFormat, to: ImageFormat) -> (PathBuf, PathBuf, SyncReport) {
    let src = random_image(dir, "source", from, SIZE, 1);
    let (dst, report) = full_sync_to(&src, from, to);
    (src, dst, report)
}

/// Full syncs of a `from` image to a new target of every format.
fn full_sync_to_every_format(from: ImageFormat) {
    let dir = tempfile::tempdir().unwrap();
    let src = random_image(dir.path(), "source", from, SIZE, 1);
    for to in ImageFormat::ALL {
        let (dst, report) = full_sync_to(&src, from, to);
        assert_eq!(report.mode, "full");
        assert_eq!(report.bytes, SIZE, "{from} → {to}: {report:?}");
        // Random data: no hole, nothing compresses, every block goes.
        assert_eq!(report.blocks_sent, BLOCKS, "{from} → {to}: {report:?}");
        assert_eq!(report.skipped, 0, "{from} → {to}: {report:?}");
        assert_eq!(report.attempts, 1, "{from} → {to}: {report:?}");
        assert_eq!(
            homeward::disk::detect(&dst).unwrap(),
            to,
            "{from} → {to}: the target was created in another format"
        );
        assert_identical(&src, from, &dst, to);
    }
}

#[test]
fn full_sync_from_raw_to_every_format() {
    full_sync_to_every_format(ImageFormat::Raw);
}

#[test]
fn full_sync_from_vmdk_to_every_format() {
    full_sync_to_every_format(ImageFormat::VmdkFlat);
}

#[test]
fn full_sync_from_vhd_to_every_format() {
    full_sync_to_every_format(ImageFormat::VhdFixed);
}

/// Full sync `from` → `to`, change `changed` blocks of the source in place,
/// delta sync: exactly those blocks go, the rest are skipped, and the target
/// is identical to the changed source.
fn delta_sync(from: ImageFormat, to: ImageFormat, changed: &[u64]) {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst, _) = full_sync(dir.path(), from, to);
    change_blocks(&src, from, MIB, changed, 77);
    let report = sync(&[
        "--from",
        s(&src),
        "--to",
        s(&dst),
        "--delta",
        "--from-format",
        from.cli_name(),
        "--to-format",
        to.cli_name(),
    ]);
    let n = changed.len() as u64;
    assert_eq!(report.mode, "delta");
    assert_eq!(report.blocks_sent, n, "{from} → {to}: {report:?}");
    assert_eq!(report.skipped, BLOCKS - n, "{from} → {to}: {report:?}");
    assert_eq!(
        report.wire_bytes,
        n * (MIB + BLOCK_OVERHEAD),
        "{from} → {to}: random blocks travel raw: {report:?}"
    );
    assert_identical(&src, from, &dst, to);
}

#[test]
fn delta_sync_raw_to_vmdk_sends_only_changed_blocks() {
    delta_sync(ImageFormat::Raw, ImageFormat::VmdkFlat, &[0, 7, 15]);
}

#[test]
fn delta_sync_vmdk_to_vhd_sends_only_changed_blocks() {
    delta_sync(ImageFormat::VmdkFlat, ImageFormat::VhdFixed, &[3]);
}

#[test]
fn delta_sync_vhd_to_raw_sends_only_changed_blocks() {
    // The last block of a VHD is the one just before its footer.
    delta_sync(ImageFormat::VhdFixed, ImageFormat::Raw, &[1, 2, 15]);
}

#[test]
fn delta_sync_raw_to_raw_sends_only_changed_blocks() {
    delta_sync(ImageFormat::Raw, ImageFormat::Raw, &[4, 5, 6, 9]);
}

#[test]
fn delta_sync_sends_nothing_when_nothing_changed_and_repairs_a_changed_target() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst, first) = full_sync(dir.path(), ImageFormat::Raw, ImageFormat::VhdFixed);
    let args = ["--from", s(&src), "--to", s(&dst), "--delta"];

    let unchanged = sync(&args);
    assert_eq!(unchanged.blocks_sent, 0, "{unchanged:?}");
    assert_eq!(unchanged.wire_bytes, 0, "{unchanged:?}");
    assert_eq!(unchanged.skipped, BLOCKS, "{unchanged:?}");
    assert_eq!(unchanged.digest, first.digest, "same disk, same digest");

    // Failback: the on-premises copy was written to; the delta puts it back.
    change_blocks(&dst, ImageFormat::VhdFixed, MIB, &[8, 12], 5);
    let repaired = sync(&args);
    assert_eq!(repaired.blocks_sent, 2, "{repaired:?}");
    assert_eq!(repaired.skipped, BLOCKS - 2, "{repaired:?}");
    assert_eq!(repaired.digest, first.digest);
    assert_identical(&src, ImageFormat::Raw, &dst, ImageFormat::VhdFixed);
}

#[test]
fn sparse_source_puts_only_its_data_on_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let size = 64 * MIB;
    // 32 extents of 200 KiB, one in every other 1 MiB block, at offsets that
    // are not block aligned: 9.8% of the disk holds data.
    let regions = spread_regions(size, 32, 200 * KIB, 68 * KIB);
    let data: u64 = regions.iter().map(|r| r.end - r.start).sum();
    let src = dir.path().join("sparse.raw");
    write_sparse(&src, size, &regions, 3);
    let allocated = images::allocated_bytes(&src);
    assert!(
        allocated < size / 8,
        "the temp file system did not keep {} sparse ({allocated} bytes allocated)",
        src.display()
    );

    let dst = dir.path().join("sparse-copy.vmdk");
    let report = sync(&["--from", s(&src), "--to", s(&dst), "--to-format", "vmdk"]);
    assert_eq!(report.bytes, size);
    assert_eq!(report.blocks_sent, 32, "blocks with data: {report:?}");
    assert_eq!(report.skipped, 32, "blocks that are holes: {report:?}");
    let share = report.wire_bytes as f64 / size as f64;
    assert!(
        share <= 0.11,
        "{:.1}% of a {:.1}%-allocated disk went on the wire: {report:?}",
        share * 100.0,
        data as f64 / size as f64 * 100.0
    );
    assert_identical(&src, ImageFormat::Raw, &dst, ImageFormat::VmdkFlat);
}

#[test]
fn compressible_source_is_compressed_unless_told_not_to() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("text.raw");
    let text: String = (0..64)
        .map(|i| format!("{i:04} failback of vm-{i} to esxi-{} completed\n", i % 7))
        .collect();
    write_repeating(&src, SIZE, text.as_bytes());

    let packed = dir.path().join("packed.raw");
    let compressed = sync(&["--from", s(&src), "--to", s(&packed)]);
    assert_eq!(compressed.blocks_sent, BLOCKS, "{compressed:?}");
    assert!(
        compressed.wire_bytes < SIZE / 20,
        "repeated text should shrink to under 5% on the wire: {compressed:?}"
    );
    assert_identical(&src, ImageFormat::Raw, &packed, ImageFormat::Raw);

    let plain = dir.path().join("plain.raw");
    let uncompressed = sync(&["--from", s(&src), "--to", s(&plain), "--no-compress"]);
    assert_eq!(uncompressed.blocks_sent, BLOCKS, "{uncompressed:?}");
    assert_eq!(
        uncompressed.wire_bytes,
        SIZE + BLOCKS * BLOCK_OVERHEAD,
        "--no-compress sends every byte as is: {uncompressed:?}"
    );
    assert_eq!(uncompressed.digest, compressed.digest);
    assert_identical(&src, ImageFormat::Raw, &plain, ImageFormat::Raw);
}

#[test]
fn block_size_64k_for_full_and_delta_sync() {
    let dir = tempfile::tempdir().unwrap();
    let block = 64 * KIB;
    let blocks = SIZE / block;
    let src = random_image(dir.path(), "source", ImageFormat::Raw, SIZE, 11);
    let dst = target_path(dir.path(), ImageFormat::VhdFixed);
    let full = sync(&[
        "--from",
        s(&src),
        "--to",
        s(&dst),
        "--to-format",
        "vhd",
        "--block-size",
        "64K",
    ]);
    assert_eq!(full.blocks_sent, blocks, "{full:?}");
    assert_eq!(full.wire_bytes, SIZE + blocks * BLOCK_OVERHEAD, "{full:?}");
    assert_identical(&src, ImageFormat::Raw, &dst, ImageFormat::VhdFixed);

    change_blocks(&src, ImageFormat::Raw, block, &[0, 100, 255], 12);
    let delta = sync(&[
        "--from",
        s(&src),
        "--to",
        s(&dst),
        "--delta",
        "--block-size",
        "64K",
    ]);
    assert_eq!(delta.blocks_sent, 3, "{delta:?}");
    assert_eq!(delta.skipped, blocks - 3, "{delta:?}");
    assert_eq!(delta.wire_bytes, 3 * (block + BLOCK_OVERHEAD), "{delta:?}");
    assert_identical(&src, ImageFormat::Raw, &dst, ImageFormat::VhdFixed);
}

#[test]
fn larger_target_takes_the_source_and_keeps_its_tail() {
    let dir = tempfile::tempdir().unwrap();
    let src = random_image(dir.path(), "source", ImageFormat::VmdkFlat, SIZE, 21);
    let dst = random_image(
        dir.path(),
        "bigger",
        ImageFormat::VhdFixed,
        SIZE + 8 * MIB,
        22,
    );
    let tail = SIZE..SIZE + 8 * MIB;
    let tail_before = read_range(&dst, tail.clone());

    let full = sync(&["--from", s(&src), "--to", s(&dst)]);
    assert_eq!(
        full.bytes, SIZE,
        "only the source's size is synced: {full:?}"
    );
    // An existing target is not known to read as zeros: every block goes.
    assert_eq!(full.blocks_sent, BLOCKS, "{full:?}");
    // The source's bytes are the target's first SIZE bytes...
    assert_prefix_identical(
        &src,
        ImageFormat::VmdkFlat,
        &dst,
        ImageFormat::VhdFixed,
        SIZE,
    );
    // ...and the rest of the target is as it was (VHD data is at the start of
    // the file, so file offsets are disk offsets).
    assert!(
        read_range(&dst, tail.clone()) == tail_before,
        "the target's bytes past the source's size changed"
    );
    // Which `qemu-img compare` without a size window sees: the tail is not zero.
    let (same, text) = images::qemu_img(&["compare", "-f", "vmdk", "-F", "vpc", s(&src), s(&dst)]);
    assert!(!same, "qemu-img should see the kept tail: {text}");
    assert!(text.contains(&format!("offset {SIZE}")), "{text}");

    change_blocks(&src, ImageFormat::VmdkFlat, MIB, &[15], 23);
    let delta = sync(&["--from", s(&src), "--to", s(&dst), "--delta"]);
    assert_eq!(delta.blocks_sent, 1, "{delta:?}");
    assert_prefix_identical(
        &src,
        ImageFormat::VmdkFlat,
        &dst,
        ImageFormat::VhdFixed,
        SIZE,
    );
    assert!(read_range(&dst, tail) == tail_before);
}
