//! Damaged layouts: a damaged primary GPT falls back to the backup, two
//! damaged headers are a named error, partitions past the end of a truncated
//! image are skipped with the reason, a looping EBR chain ends, damaged LVM
//! metadata (truncated text, checksum mismatch) affects only its PV, and
//! hundreds of random mutations of a real GPT + LVM image never panic.

use homeward::disk::BlockDevice;
use homeward::disk::layout::{LayoutError, MemDisk, Scheme, SkipReason, fuzz_one, resolve};
use homeward_tests::disk_layout::*;
use homeward_tests::fs_images::{pseudo_random, run_tool};
use std::sync::Arc;

const MIB: u64 = 1 << 20;

fn mem(bytes: Vec<u8>) -> Arc<dyn BlockDevice> {
    Arc::new(MemDisk::new(bytes, false))
}

/// 16 MiB GPT (sgdisk): p1 4 MiB, p2 4 MiB, p3 the rest.
fn gpt_bytes(dir: &std::path::Path) -> Vec<u8> {
    let path = image(dir, "gpt.img", 16 * MIB);
    let p = path.to_string_lossy().into_owned();
    run_tool(
        "sgdisk",
        &[
            "-n", "1:0:+4M", "-c", "1:one", "-n", "2:0:+4M", "-n", "3:0:0", &p,
        ],
    );
    std::fs::read(&path).unwrap()
}

#[test]
fn a_damaged_primary_gpt_header_falls_back_to_the_backup() {
    let dir = tempfile::tempdir().unwrap();
    let intact = gpt_bytes(dir.path());
    let want = resolve(mem(intact.clone())).unwrap().partitions;

    let mut bytes = intact.clone();
    bytes[512 + 40] ^= 0x01; // first usable LBA, CRC left as it was
    let layout = resolve(mem(bytes)).unwrap();
    assert_eq!(layout.partitions, want);
    assert_eq!(layout.volumes.len(), 3);
    let note = layout.notes.join("\n");
    assert!(
        note.contains("primary GPT is damaged (GPT header at LBA 1: CRC mismatch (stored 0x"),
        "{note}"
    );
    assert!(note.contains("the backup at LBA 32767 is used"), "{note}");

    // A damaged partition array (header intact) is caught by its own CRC.
    let mut bytes = intact.clone();
    bytes[1024 + 56] ^= 0x20; // a letter of p1's name
    let layout = resolve(mem(bytes)).unwrap();
    assert_eq!(layout.partitions, want);
    let note = layout.notes.join("\n");
    assert!(
        note.contains("GPT partition array at LBA 2: CRC mismatch"),
        "{note}"
    );
}

#[test]
fn both_gpt_headers_damaged_is_a_named_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = gpt_bytes(dir.path());
    let last = bytes.len() - 512;
    bytes[512 + 48] ^= 0xff;
    bytes[last + 48] ^= 0xff;
    let error = resolve(mem(bytes)).unwrap_err();
    assert!(matches!(error, LayoutError::GptDamaged { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("both GPT headers are damaged"),
        "{message}"
    );
    assert!(
        message.contains("GPT header at LBA 1: CRC mismatch (stored 0x"),
        "{message}"
    );
    assert!(
        message.contains("GPT header at LBA 32767: CRC mismatch"),
        "{message}"
    );
}

#[test]
fn partitions_past_the_end_of_a_truncated_image_are_skipped_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = gpt_bytes(dir.path());
    bytes.truncate(10 * MIB as usize); // p3 now runs past the end
    let layout = resolve(mem(bytes)).unwrap();
    assert_eq!(layout.scheme, Scheme::Gpt);
    let ids: Vec<&str> = layout.volumes.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(ids, ["p1", "p2"]);
    let p3 = layout.skipped.iter().find(|s| s.id == "p3").unwrap();
    assert!(
        matches!(
            &p3.reason,
            SkipReason::Damaged(LayoutError::PastEnd { number: 3, .. })
        ),
        "{p3:?}"
    );
    let message = p3.reason.to_string();
    assert!(
        message.contains("run past the end of the disk (20480 sectors)"),
        "{message}"
    );
    assert!(
        layout.notes.join("\n").contains("backup GPT is damaged"),
        "{:?}",
        layout.notes
    );

    // The same for an MBR entry (made with sfdisk, then the image cut).
    let path = image(dir.path(), "mbr.img", 16 * MIB);
    sfdisk(&path, "label: dos\nsize=4MiB, type=83\ntype=83\n");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(8 * MIB as usize);
    let layout = resolve(mem(bytes)).unwrap();
    assert_eq!(layout.volumes.len(), 1);
    assert!(
        layout.skipped[0]
            .reason
            .to_string()
            .contains("MBR partition 2")
    );
}

#[test]
fn a_looping_ebr_chain_ends_and_keeps_the_logical_partitions_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = image(dir.path(), "ebr.img", 32 * MIB);
    sfdisk(
        &path,
        "label: dos\nsize=4MiB, type=83\ntype=5\nsize=4MiB, type=83\nsize=4MiB, type=82\ntype=83\n",
    );
    let dump = sfdisk_dump(&path);
    let mut bytes = std::fs::read(&path).unwrap();
    let ext = dump.iter().find(|e| e.kind == "5").unwrap().start as usize;
    let link = |bytes: &[u8], ebr: usize| {
        let at = ebr * 512 + 446 + 16 + 8;
        u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize
    };
    let ebr2 = ext + link(&bytes, ext);
    let ebr3 = ext + link(&bytes, ebr2);
    assert_eq!(link(&bytes, ebr3), 0, "EBR 3 ends the chain");
    // EBR 3 now links back to EBR 2.
    let entry = ebr3 * 512 + 446 + 16;
    bytes[entry + 4] = 0x05;
    bytes[entry + 8..entry + 12].copy_from_slice(&((ebr2 - ext) as u32).to_le_bytes());
    bytes[entry + 12..entry + 16].copy_from_slice(&2048u32.to_le_bytes());

    let layout = resolve(mem(bytes)).unwrap();
    let ids: Vec<&str> = layout.volumes.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(ids, ["p1", "p5", "p6", "p7"]);
    let note = layout.notes.join("\n");
    assert!(
        note.contains(&format!(
            "loops back to LBA {ebr2} after 3 logical partitions"
        )),
        "{note}"
    );
}

#[test]
fn damaged_lvm_metadata_affects_only_its_pv() {
    let dir = tempfile::tempdir().unwrap();
    let sample = lvm_sample(dir.path());
    let intact = std::fs::read(&sample.path).unwrap();
    let vg = &sample.vg;
    let layout = resolve(mem(intact.clone())).unwrap();
    let ids: Vec<&str> = layout.volumes.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "p1".to_string(),
            format!("{vg}/one"),
            format!("{vg}/two"),
            format!("{vg}/three")
        ]
    );

    // Truncated text, with consistent checksums: the parser names the line.
    let (_, _, size) = lvm_text_location(&intact, sample.pv_offset);
    let mut bytes = intact.clone();
    set_lvm_text_size(&mut bytes, sample.pv_offset, size / 2);
    let layout = resolve(mem(bytes)).unwrap();
    let ids: Vec<&str> = layout.volumes.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(ids, ["p1"]);
    let message = skip_reason(&layout, "p2");
    assert!(
        message.starts_with("damaged: LVM metadata text in the area at byte 4096 of p2"),
        "{message}"
    );
    assert!(message.contains("(line "), "{message}");
    assert!(message.contains("the end of the text"), "{message}");

    // A changed byte in the text: its checksum no longer matches.
    let (_, text, _) = lvm_text_location(&intact, sample.pv_offset);
    let mut bytes = intact.clone();
    let seqno = text + find(&bytes[text..], b"seqno = ").unwrap() + 8;
    bytes[seqno] = b'9';
    let layout = resolve(mem(bytes)).unwrap();
    let message = skip_reason(&layout, "p2");
    assert!(
        message.contains("LVM metadata text in the area at byte 4096 of p2"),
        "{message}"
    );
    assert!(message.contains("CRC mismatch (stored 0x"), "{message}");

    // A changed byte in the area header.
    let (mda, _, _) = lvm_text_location(&intact, sample.pv_offset);
    let mut bytes = intact.clone();
    bytes[mda + 100] ^= 1;
    let layout = resolve(mem(bytes)).unwrap();
    let message = skip_reason(&layout, "p2");
    assert!(
        message.contains("LVM metadata area at byte 4096 of p2"),
        "{message}"
    );
    assert!(message.contains("CRC mismatch"), "{message}");
    assert_eq!(layout.volumes.len(), 1, "p1 is still served");
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn random_mutations_of_a_real_image_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let sample = lvm_sample(dir.path());
    let intact = std::fs::read(&sample.path).unwrap();
    fuzz_one(&intact);
    let pv = sample.pv_offset as usize;
    let (mda, text, size) = lvm_text_location(&intact, sample.pv_offset);
    // The regions layout resolution reads: MBR and primary GPT, the PV label,
    // the metadata area header and text, the backup GPT.
    let regions = [
        0..34 * 512,
        pv..pv + 2048,
        mda..mda + 512,
        text..text + size,
        intact.len() - 33 * 512..intact.len(),
    ];
    let mut resolved = 0;
    for round in 0..300u64 {
        let noise = pseudo_random(64, round + 1);
        let mut bytes = intact.clone();
        let region = &regions[noise[0] as usize % regions.len()];
        let count = 1 + noise[1] as usize % 8;
        for i in 0..count {
            let pick = u32::from_le_bytes(noise[4 + i * 4..8 + i * 4].try_into().unwrap());
            let at = region.start + pick as usize % region.len();
            bytes[at] = noise[40 + i];
        }
        // Every other round, make the checksums agree again so the mutation
        // reaches the parsers behind them.
        if round % 2 == 0 {
            fix_gpt_crcs(&mut bytes);
            fix_lvm_crcs(&mut bytes, (mda, text, size));
        }
        fuzz_one(&bytes);
        if resolve(mem(bytes)).is_ok() {
            resolved += 1;
        }
    }
    // Most mutations leave a layout that resolves (with skipped entries).
    assert!(resolved > 100, "only {resolved} of 300 resolved");
    // Edge sizes: empty, one sector, odd lengths.
    for len in [0, 1, 511, 512, 513, 1024, 4096] {
        fuzz_one(&intact[..len]);
    }
}

/// Why `id` was skipped, as the operator reads it.
fn skip_reason(layout: &homeward::disk::Layout, id: &str) -> String {
    layout
        .skipped
        .iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("{id} is not skipped"))
        .reason
        .to_string()
}
