//! GPT layouts made with `sgdisk` and `sfdisk`: numbers, sectors, type and
//! unique GUIDs and (UTF-16) names as the tools report them, well-known type
//! names, and an ext4 file system inside a partition.

use homeward::disk::layout::{PartitionType, Scheme, resolve};
use homeward_tests::disk_layout::*;
use homeward_tests::fs_images::run_tool;

const MIB: u64 = 1 << 20;

/// 48 MiB, sgdisk: BIOS boot, EFI System, Linux root, swap, Microsoft basic
/// data, Linux LVM (numbered with a gap: no partition 6).
fn sgdisk_image(dir: &std::path::Path) -> std::path::PathBuf {
    let path = image(dir, "gpt.img", 48 * MIB);
    let p = path.to_string_lossy().into_owned();
    run_tool(
        "sgdisk",
        &[
            "-n",
            "1:2048:+1M",
            "-t",
            "1:ef02",
            "-c",
            "1:bios",
            "-n",
            "2:0:+8M",
            "-t",
            "2:ef00",
            "-c",
            "2:EFI system",
            "-n",
            "3:0:+16M",
            "-t",
            "3:8300",
            "-c",
            "3:root",
            "-n",
            "4:0:+4M",
            "-t",
            "4:8200",
            "-c",
            "4:swap",
            "-n",
            "5:0:+4M",
            "-t",
            "5:0700",
            "-c",
            "5:données Ω",
            "-n",
            "7:0:0",
            "-t",
            "7:8e00",
            "-c",
            "7:lvm",
            &p,
        ],
    );
    path
}

#[test]
fn partitions_match_sgdisk() {
    let dir = tempfile::tempdir().unwrap();
    let path = sgdisk_image(dir.path());
    let layout = resolve(open_disk(&path)).unwrap();
    assert_eq!(layout.scheme, Scheme::Gpt);
    assert!(layout.notes.is_empty(), "{:?}", layout.notes);
    let numbers: Vec<u32> = layout.partitions.iter().map(|p| p.number).collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5, 7]);
    for partition in &layout.partitions {
        let info = sgdisk_info(&path, partition.number);
        let PartitionType::Gpt(kind) = partition.kind else {
            panic!("MBR type in a GPT");
        };
        assert_eq!(kind.to_string(), info.type_guid, "p{}", partition.number);
        assert_eq!(
            partition.unique_guid.map(|g| g.to_string()),
            Some(info.unique_guid.clone())
        );
        assert_eq!(partition.first_lba, info.first);
        assert_eq!(partition.first_lba + partition.sectors - 1, info.last);
        assert_eq!(partition.name, info.name);
        // Our well-known names are sfdisk's, which sgdisk's start with
        // ("EFI System" / "EFI system partition").
        let name = partition.kind.name().expect("a well-known type");
        assert!(
            info.type_name
                .to_lowercase()
                .starts_with(&name.to_lowercase()),
            "p{}: {name} vs sgdisk's {}",
            partition.number,
            info.type_name
        );
    }
    let ids: Vec<&str> = layout.volumes.iter().map(|v| v.id.as_str()).collect();
    // p7 is of type Linux LVM but holds no PV: it is a plain volume.
    assert_eq!(ids, ["p1", "p2", "p3", "p4", "p5", "p7"]);
    let p5 = layout.volume("p5").unwrap();
    assert!(
        p5.description.contains("\"données Ω\"") && p5.description.contains("Microsoft basic data"),
        "{}",
        p5.description
    );
}

#[test]
fn partitions_match_sfdisk_dump_of_a_gpt() {
    let dir = tempfile::tempdir().unwrap();
    let path = image(dir.path(), "sf.img", 32 * MIB);
    sfdisk(
        &path,
        "label: gpt\n\
         size=4MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=\"esp\"\n\
         size=12MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=\"boot\"\n\
         type=E6D6D379-F507-44C2-A23C-238F2A3DF928, name=\"pv\"\n",
    );
    let expected = sfdisk_dump(&path);
    let layout = resolve(open_disk(&path)).unwrap();
    let got: Vec<DumpEntry> = layout
        .partitions
        .iter()
        .map(|p| DumpEntry {
            number: p.number,
            start: p.first_lba,
            size: p.sectors,
            kind: match p.kind {
                PartitionType::Gpt(g) => g.to_string(),
                PartitionType::Mbr(_) => panic!("MBR type in a GPT"),
            },
            uuid: p.unique_guid.map(|g| g.to_string()),
            name: Some(p.name.clone()),
        })
        .collect();
    assert_eq!(got, expected);
    let names: Vec<Option<&str>> = layout.partitions.iter().map(|p| p.kind.name()).collect();
    assert_eq!(
        names,
        [
            Some("EFI System"),
            Some("Linux filesystem"),
            Some("Linux LVM")
        ]
    );
}

#[test]
fn an_ext4_file_system_in_a_gpt_partition_starts_its_volume() {
    let dir = tempfile::tempdir().unwrap();
    let path = sgdisk_image(dir.path());
    let info = sgdisk_info(&path, 3);
    let len = (info.last - info.first + 1) * 512;
    put_bytes(&path, info.first * 512, &ext4_bytes(dir.path(), len));
    let layout = resolve(open_disk(&path)).unwrap();
    let root = layout.volume("p3").unwrap();
    assert_eq!(root.device.capacity(), len);
    let mut magic = [0u8; 2];
    root.device.read_at(&mut magic, EXT4_MAGIC_AT).unwrap();
    assert_eq!(u16::from_le_bytes(magic), 0xef53);
    // Partition 2 does not see it.
    layout
        .volume("p2")
        .unwrap()
        .device
        .read_at(&mut magic, EXT4_MAGIC_AT)
        .unwrap();
    assert_eq!(magic, [0, 0]);
}
