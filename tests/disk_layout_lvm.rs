//! LVM2 logical volumes made with the real LVM tools on loop devices: linear
//! LVs (one and two segments) map to exactly the PV extents `lvs` and `pvs`
//! report, and hold the bytes written there; a striped LV is listed as
//! unsupported; an LV with extents on a PV of another disk is listed as
//! unavailable with that PV's UUID. These tests need root and loop devices,
//! and fail (never skip) without them.

use homeward::disk::layout::{Extent, Layout, Scheme, SkipReason, resolve};
use homeward_tests::disk_layout::*;

const MIB: u64 = 1 << 20;

/// Disk A: GPT with p1 (Linux, ext4), p2 and p3 (Linux LVM, PVs). Disk B: a
/// whole-disk PV. One VG over A's p2 and p3 and B, with:
/// - `lin`: linear, two segments on p2 (extended after `other` was made);
/// - `other`: linear, one segment on p2;
/// - `striped`: two stripes over p2 and p3;
/// - `span`: on p3, extended onto B.
struct Setup {
    dir: tempfile::TempDir,
    disk_a: std::path::PathBuf,
    disk_b: std::path::PathBuf,
    vg: String,
    lvm: Lvm,
    // Dropped in this order: the VG first, then the loop devices.
    _group: VolumeGroup,
    a2: LoopDevice,
    a3: LoopDevice,
    b: LoopDevice,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let disk_a = image(dir.path(), "a.img", 40 * MIB);
    let ap = disk_a.to_string_lossy().into_owned();
    homeward_tests::fs_images::run_tool(
        "sgdisk",
        &[
            "-n",
            "1:2048:+4M",
            "-t",
            "1:8300",
            "-n",
            "2:0:+16M",
            "-t",
            "2:8e00",
            "-n",
            "3:0:0",
            "-t",
            "3:8e00",
            &ap,
        ],
    );
    let disk_b = image(dir.path(), "b.img", 8 * MIB);
    let part = |n| {
        let info = sgdisk_info(&disk_a, n);
        (info.first * 512, (info.last - info.first + 1) * 512)
    };
    let (a2_start, a2_len) = part(2);
    let (a3_start, a3_len) = part(3);
    let a2 = LoopDevice::attach(&disk_a, a2_start, Some(a2_len));
    let a3 = LoopDevice::attach(&disk_a, a3_start, Some(a3_len));
    let b = LoopDevice::attach(&disk_b, 0, None);
    let lvm = Lvm::new(&[&a2, &a3, &b]);
    let vg = unique_vg_name("lvm");
    let group = lvm.create_vg(&vg, "1m", &[&a2, &a3, &b]);
    lvm.lvcreate(&["-L", "3m", "-n", "lin", &vg, &a2.path]);
    lvm.lvcreate(&["-L", "2m", "-n", "other", &vg, &a2.path]);
    lvm.run("lvextend", &["-L", "6m", &format!("{vg}/lin"), &a2.path]);
    lvm.lvcreate(&[
        "-i", "2", "-I", "64k", "-L", "4m", "-n", "striped", &vg, &a2.path, &a3.path,
    ]);
    lvm.lvcreate(&["-L", "2m", "-n", "span", &vg, &a3.path]);
    lvm.run("lvextend", &["-L", "4m", &format!("{vg}/span"), &b.path]);
    Setup {
        dir,
        disk_a,
        disk_b,
        vg,
        lvm,
        _group: group,
        a2,
        a3,
        b,
    }
}

/// The disk ranges of `lv` as LVM reports them: for each segment, its PV's
/// loop device offset in the image + pe_start + first PE * extent size.
fn reported_extents(s: &Setup, lv: &str) -> Vec<Extent> {
    let extent = extent_size(&s.lvm, &s.vg);
    let mut view_start = 0;
    lv_segments(&s.lvm, &s.vg, lv)
        .into_iter()
        .map(|seg| {
            assert_eq!(seg.segtype, "linear");
            assert_eq!(seg.start_pe * extent, view_start, "segments in order");
            let (dev, first, last) = seg.pe_ranges[0].clone();
            let loop_dev = [&s.a2, &s.a3, &s.b]
                .into_iter()
                .find(|d| d.path == dev)
                .expect("a PV of the test");
            let (pe_start, _) = pv_info(&s.lvm, loop_dev);
            assert_eq!(last - first + 1, seg.size_pe);
            let e = Extent {
                start: view_start,
                disk_offset: loop_dev.offset + pe_start + first * extent,
                len: seg.size_pe * extent,
            };
            view_start += e.len;
            e
        })
        .collect()
}

fn skipped<'a>(layout: &'a Layout, id: &str) -> &'a SkipReason {
    &layout
        .skipped
        .iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("{id} is not in {:?}", layout.skipped))
        .reason
}

fn view_extents(layout: &Layout, id: &str) -> Vec<Extent> {
    let volume = layout.volume(id).unwrap();
    let described = volume.device.describe();
    assert!(described.contains(&format!("LVM {id}")), "{described}");
    volume.extents.clone()
}

#[test]
fn linear_lvs_map_to_the_extents_lvm_reports() {
    let s = setup();
    let lin = reported_extents(&s, "lin");
    assert_eq!(lin.len(), 2, "lin was extended after `other`: two segments");

    // Put an ext4 file system into `lin` where LVM says its extents are.
    let size: u64 = lin.iter().map(|e| e.len).sum();
    let fs = ext4_bytes(s.dir.path(), size);
    let mut at = 0usize;
    for e in &lin {
        put_bytes(&s.disk_a, e.disk_offset, &fs[at..at + e.len as usize]);
        at += e.len as usize;
    }

    let layout = resolve(open_disk(&s.disk_a)).unwrap();
    assert_eq!(layout.scheme, Scheme::Gpt);
    let ids: Vec<&str> = layout.volumes.iter().map(|v| v.id.as_str()).collect();
    let vg = &s.vg;
    assert_eq!(
        ids,
        ["p1".to_string(), format!("{vg}/lin"), format!("{vg}/other")]
    );
    assert_eq!(view_extents(&layout, &format!("{vg}/lin")), lin);
    assert_eq!(
        view_extents(&layout, &format!("{vg}/other")),
        reported_extents(&s, "other")
    );

    let volume = layout.volume(&format!("{vg}/lin")).unwrap();
    assert_eq!(volume.device.capacity(), size);
    let mut magic = [0u8; 2];
    volume.device.read_at(&mut magic, EXT4_MAGIC_AT).unwrap();
    assert_eq!(u16::from_le_bytes(magic), 0xef53);
    let mut all = vec![0u8; size as usize];
    volume.device.read_at(&mut all, 0).unwrap();
    assert!(
        all == fs,
        "{vg}/lin does not read back the file system written into its extents"
    );
    assert!(
        volume.description.contains("2 segments"),
        "{}",
        volume.description
    );

    // The PV partitions are listed as PVs of the VG, not as volumes.
    for (id, dev) in [("p2", &s.a2), ("p3", &s.a3)] {
        let (_, uuid) = pv_info(&s.lvm, dev);
        match skipped(&layout, id) {
            SkipReason::PhysicalVolume {
                vg: Some(name),
                uuid: u,
            } => {
                assert_eq!(name, vg);
                assert_eq!(u, &uuid);
            }
            other => panic!("{id}: {other:?}"),
        }
    }
}

#[test]
fn striped_is_unsupported_and_a_pv_on_another_disk_makes_an_lv_unavailable() {
    let s = setup();
    let vg = &s.vg;
    let layout = resolve(open_disk(&s.disk_a)).unwrap();
    let reason = skipped(&layout, &format!("{vg}/striped"));
    assert!(matches!(reason, SkipReason::Unsupported(_)), "{reason:?}");
    assert!(
        reason.to_string().contains("striped across 2 stripes"),
        "{reason}"
    );

    let (_, b_uuid) = pv_info(&s.lvm, &s.b);
    match skipped(&layout, &format!("{vg}/span")) {
        SkipReason::Unavailable { missing_pvs } => {
            assert_eq!(missing_pvs, std::slice::from_ref(&b_uuid))
        }
        other => panic!("span: {other:?}"),
    }
    let message = skipped(&layout, &format!("{vg}/span")).to_string();
    assert!(message.contains(&b_uuid), "{message}");

    // Disk B alone: a whole-disk PV with its own copy of the metadata.
    let layout = resolve(open_disk(&s.disk_b)).unwrap();
    assert_eq!(layout.scheme, Scheme::None);
    assert!(layout.volumes.is_empty(), "{:?}", layout.volumes);
    assert!(matches!(
        skipped(&layout, "disk"),
        SkipReason::PhysicalVolume { vg: Some(name), .. } if name == vg
    ));
    let (_, a2_uuid) = pv_info(&s.lvm, &s.a2);
    match skipped(&layout, &format!("{vg}/lin")) {
        SkipReason::Unavailable { missing_pvs } => assert_eq!(missing_pvs, &[a2_uuid]),
        other => panic!("lin: {other:?}"),
    }
    let message = layout.volume(&format!("{vg}/lin")).unwrap_err().to_string();
    assert!(message.contains("its volumes are: none"), "{message}");
}
