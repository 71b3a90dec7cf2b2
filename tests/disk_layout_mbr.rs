//! MBR layouts made with `sfdisk`: primary, extended and logical partitions
//! read as `sfdisk --dump` reports them, volumes as byte windows of the disk
//! (an ext4 file system inside a logical partition), a disk without a table
//! as one volume, and lookups by volume id.

use homeward::disk::layout::{PartitionType, Scheme, resolve};
use homeward_tests::disk_layout::*;

const MIB: u64 = 1 << 20;

/// 64 MiB: p1 Linux 16 MiB, p2 swap 8 MiB, p3 extended with logicals p5
/// (Linux, 8 MiB), p6 (LVM type, 8 MiB), p7 (Linux, rest).
fn mbr_image(dir: &std::path::Path) -> std::path::PathBuf {
    let path = image(dir, "mbr.img", 64 * MIB);
    sfdisk(
        &path,
        "label: dos\n\
         start=2048, size=16MiB, type=83, bootable\n\
         size=8MiB, type=82\n\
         type=5\n\
         size=8MiB, type=83\n\
         size=8MiB, type=8e\n\
         type=83\n",
    );
    path
}

#[test]
fn partitions_match_sfdisk_dump() {
    let dir = tempfile::tempdir().unwrap();
    let path = mbr_image(dir.path());
    let expected = sfdisk_dump(&path);
    assert_eq!(expected.len(), 6, "{expected:?}");

    let layout = resolve(open_disk(&path)).unwrap();
    assert_eq!(layout.scheme, Scheme::Mbr);
    assert!(layout.notes.is_empty(), "{:?}", layout.notes);
    let got: Vec<(u32, u64, u64, String)> = layout
        .partitions
        .iter()
        .map(|p| match p.kind {
            PartitionType::Mbr(id) => (p.number, p.first_lba, p.sectors, format!("{id:X}")),
            PartitionType::Gpt(_) => panic!("GPT type in an MBR table"),
        })
        .collect();
    let want: Vec<(u32, u64, u64, String)> = expected
        .iter()
        .map(|e| (e.number, e.start, e.size, e.kind.clone()))
        .collect();
    assert_eq!(got, want);

    // The extended container is a partition but not a volume.
    let ids: Vec<&str> = layout.volumes.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(ids, ["p1", "p2", "p5", "p6", "p7"]);
    for volume in &layout.volumes {
        let number: u32 = volume.id[1..].parse().unwrap();
        let entry = expected.iter().find(|e| e.number == number).unwrap();
        assert_eq!(volume.device.capacity(), entry.size * 512, "{}", volume.id);
    }
    let p5 = layout.volume("p5").unwrap();
    assert!(p5.description.contains("logical"), "{}", p5.description);
    assert!(
        p5.description.contains("0x83 (Linux)"),
        "{}",
        p5.description
    );
    assert!(
        layout.volume("p2").unwrap().description.contains("swap"),
        "{:?}",
        layout.volumes
    );
}

#[test]
fn an_ext4_file_system_in_a_logical_partition_is_readable_through_its_volume() {
    let dir = tempfile::tempdir().unwrap();
    let path = mbr_image(dir.path());
    let p5 = sfdisk_dump(&path)
        .into_iter()
        .find(|e| e.number == 5)
        .unwrap();
    let fs = ext4_bytes(dir.path(), p5.size * 512);
    put_bytes(&path, p5.start * 512, &fs);

    let layout = resolve(open_disk(&path)).unwrap();
    let volume = layout.volume("p5").unwrap();
    let mut magic = [0u8; 2];
    volume.device.read_at(&mut magic, EXT4_MAGIC_AT).unwrap();
    assert_eq!(u16::from_le_bytes(magic), 0xef53);
    // The whole window holds exactly the file system's bytes.
    let mut all = vec![0u8; fs.len()];
    volume.device.read_at(&mut all, 0).unwrap();
    assert!(all == fs, "p5 does not hold the bytes written at its start");
    let described = volume.device.describe();
    assert!(described.contains("mbr.img"), "{described}");
    assert!(
        described.contains(&format!("partition 5 (bytes {}..", p5.start * 512)),
        "{described}"
    );
    // Bounds are the partition's, not the disk's.
    let mut one = [0u8; 1];
    assert!(volume.device.read_at(&mut one, p5.size * 512).is_err());
    assert!(volume.device.read_at(&mut one, u64::MAX).is_err());
    assert!(!volume.device.writable());
}

#[test]
fn allocated_ranges_are_translated_into_the_partition() {
    let dir = tempfile::tempdir().unwrap();
    let path = mbr_image(dir.path());
    let p1 = sfdisk_dump(&path)
        .into_iter()
        .find(|e| e.number == 1)
        .unwrap();
    // Data 4 MiB into p1 of an otherwise sparse image.
    put_bytes(&path, p1.start * 512 + 4 * MIB, &[0xaa; 4096]);
    let layout = resolve(open_disk(&path)).unwrap();
    let ranges = layout
        .volume("p1")
        .unwrap()
        .device
        .allocated_ranges()
        .unwrap();
    let Some(ranges) = ranges else {
        // The file system cannot tell; nothing to translate.
        return;
    };
    assert!(
        ranges
            .iter()
            .any(|r| r.start <= 4 * MIB && r.end >= 4 * MIB + 4096),
        "{ranges:?}"
    );
    assert!(ranges.iter().all(|r| r.end <= p1.size * 512), "{ranges:?}");
    // p2 holds nothing: no ranges at all.
    let p2 = layout
        .volume("p2")
        .unwrap()
        .device
        .allocated_ranges()
        .unwrap();
    assert_eq!(p2, Some(vec![]));
}

#[test]
fn a_disk_without_a_table_is_one_volume() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bare.img");
    std::fs::write(&path, ext4_bytes(dir.path(), 8 * MIB)).unwrap();
    let layout = resolve(open_disk(&path)).unwrap();
    assert_eq!(layout.scheme, Scheme::None);
    assert!(layout.partitions.is_empty());
    let ids: Vec<&str> = layout.volumes.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(ids, ["disk"]);
    let disk = layout.volume("disk").unwrap();
    assert_eq!(disk.device.capacity(), 8 * MIB);
    let mut magic = [0u8; 2];
    disk.device.read_at(&mut magic, EXT4_MAGIC_AT).unwrap();
    assert_eq!(u16::from_le_bytes(magic), 0xef53);
}

#[test]
fn an_unknown_volume_id_lists_the_ones_there_are() {
    let dir = tempfile::tempdir().unwrap();
    let path = mbr_image(dir.path());
    let layout = resolve(open_disk(&path)).unwrap();
    let message = layout.volume("p3").unwrap_err().to_string();
    assert!(message.contains("no volume `p3`"), "{message}");
    assert!(message.contains("p1, p2, p5, p6, p7"), "{message}");
}
