//! Real guest disks for the guest-step tests: file systems made by the real
//! tools (or populated through the ReiserFS handler, since nothing else can),
//! placed in partitions made by `sfdisk` and in LVM logical volumes made by
//! LVM itself on loop devices.

use crate::disk_layout::{LoopDevice, Lvm, extent_size, lv_segments, put_bytes, pv_info, sfdisk};
use crate::fs_images::{TreeEntry, populate, run_tool, run_tool_env, sparse_file, write_tree};
use std::path::{Path, PathBuf};

const MIB: u64 = 1 << 20;

/// An ext4 file system of `mib` MiB holding `tree`, with a fixed UUID, as bytes.
pub fn ext4_fs(dir: &Path, name: &str, mib: u64, uuid: &str, tree: &[TreeEntry]) -> Vec<u8> {
    let src = dir.join(format!("{name}-src"));
    std::fs::create_dir_all(&src).expect("source dir");
    write_tree(&src, tree);
    let img = dir.join(format!("{name}.img"));
    sparse_file(&img, mib * MIB);
    let (src_s, img_s) = (src.display().to_string(), img.display().to_string());
    run_tool(
        "mkfs.ext4",
        &[
            "-q", "-F", "-b", "4096", "-U", uuid, "-L", name, "-d", &src_s, &img_s,
        ],
    );
    std::fs::read(&img).expect("ext4 image")
}

/// An ext4 file system of `mib` MiB made from a whole directory (a
/// `debootstrap` root), as bytes.
pub fn ext4_fs_from_dir(dir: &Path, name: &str, mib: u64, src: &Path) -> Vec<u8> {
    let img = dir.join(format!("{name}.img"));
    sparse_file(&img, mib * MIB);
    let (src_s, img_s) = (src.display().to_string(), img.display().to_string());
    run_tool(
        "mkfs.ext4",
        &["-q", "-F", "-b", "4096", "-L", name, "-d", &src_s, &img_s],
    );
    std::fs::read(&img).expect("ext4 image")
}

/// An XFS (v5) file system of `mib` MiB holding `tree` (made with a
/// protofile), as bytes.
pub fn xfs_fs(dir: &Path, name: &str, mib: u64, tree: &[TreeEntry]) -> Vec<u8> {
    let src = dir.join(format!("{name}-src"));
    std::fs::create_dir_all(&src).expect("source dir");
    write_tree(&src, tree);
    let proto = dir.join(format!("{name}.proto"));
    crate::fs_xfs::write_protofile(tree, &src, &proto);
    let img = dir.join(format!("{name}.img"));
    sparse_file(&img, mib * MIB);
    let (proto_s, img_s) = (proto.display().to_string(), img.display().to_string());
    run_tool_env(
        "mkfs.xfs",
        &["-q", "-f", "-L", name, "-p", &proto_s, &img_s],
        &crate::fs_xfs::MKFS_ENV,
    );
    std::fs::read(&img).expect("xfs image")
}

/// A ReiserFS 3.6 file system holding `tree`, populated through the
/// handler natively (nothing else can write ReiserFS here), as bytes.
pub fn reiserfs_fs(dir: &Path, name: &str, tree: &[TreeEntry]) -> Vec<u8> {
    let img = crate::fs_reiserfs::make_image(dir, &format!("{name}.img"), &[]);
    populate(
        &mut crate::fs_reiserfs::open(&img, true),
        tree,
        0o755,
        0o644,
    );
    std::fs::read(&img).expect("reiserfs image")
}

/// An MBR disk at `dir/name` whose partitions (1 MiB aligned, in order) hold
/// `filesystems`.
pub fn mbr_disk(dir: &Path, name: &str, filesystems: &[&[u8]]) -> PathBuf {
    let disk = dir.join(name);
    let total: u64 = filesystems.iter().map(|f| f.len() as u64).sum::<u64>() + 2 * MIB;
    sparse_file(&disk, total);
    let mut script = String::from("label: dos\n");
    let mut at = MIB;
    for fs in filesystems {
        script.push_str(&format!(
            "start={}, size={}, type=83\n",
            at / 512,
            fs.len() / 512
        ));
        at += fs.len() as u64;
    }
    sfdisk(&disk, &script);
    let mut at = MIB;
    for fs in filesystems {
        put_bytes(&disk, at, fs);
        at += fs.len() as u64;
    }
    disk
}

/// A GPT disk at `dir/name`: partition 1 holds `boot`, partition 2 is an LVM
/// physical volume of VG `vg` (make it unique per run with
/// [`crate::disk_layout::unique_vg_name`]: LVM sees it on this host while the disk is made) with
/// one linear LV `root` holding `root`. LVM runs on a loop device over the
/// partition; the VG is removed from this host again before returning, and
/// the disk keeps its on-disk metadata.
pub fn gpt_lvm_disk(dir: &Path, name: &str, boot: &[u8], root: &[u8], vg: &str) -> PathBuf {
    let disk = dir.join(name);
    let pv_bytes = root.len() as u64 + 8 * MIB;
    sparse_file(&disk, MIB + boot.len() as u64 + pv_bytes + 2 * MIB);
    let boot_sectors = boot.len() as u64 / 512;
    sfdisk(
        &disk,
        &format!(
            "label: gpt\nstart=2048, size={boot_sectors}, type=linux\nstart={}, size={}, type=lvm\n",
            2048 + boot_sectors,
            pv_bytes / 512
        ),
    );
    put_bytes(&disk, MIB, boot);
    let pv_offset = MIB + boot.len() as u64;
    let kept = dir.join(format!("{name}.kept"));
    {
        let pv = LoopDevice::attach(&disk, pv_offset, Some(pv_bytes));
        let lvm = Lvm::new(&[&pv]);
        let _group = lvm.create_vg(vg, "1m", &[&pv]);
        let size = format!("{}m", root.len() as u64 / MIB);
        lvm.lvcreate(&["-L", &size, "-n", "root", vg, &pv.path]);
        let extent = extent_size(&lvm, vg);
        let (pe_start, _) = pv_info(&lvm, &pv);
        let mut written = 0usize;
        for seg in lv_segments(&lvm, vg, "root") {
            let (_, first, _) = seg.pe_ranges[0].clone();
            let len = (seg.size_pe * extent) as usize;
            let end = (written + len).min(root.len());
            put_bytes(
                &disk,
                pv_offset + pe_start + first * extent,
                &root[written..end],
            );
            written = end;
        }
        assert_eq!(
            written,
            root.len(),
            "the LV holds the whole root file system"
        );
        // Keep the disk as LVM left it; removing the VG from this host below
        // wipes its metadata from the PV.
        std::fs::copy(&disk, &kept).expect("copy the disk");
    }
    std::fs::rename(&kept, &disk).expect("restore the disk");
    disk
}

/// A minimal Debian server root made by `debootstrap` (minbase, with
/// systemd as init and ifupdown), under `dir/debian-root`. Needs Debian's
/// package registry.
pub fn debootstrap_root(dir: &Path) -> PathBuf {
    let root = dir.join("debian-root");
    run_tool(
        "debootstrap",
        &[
            "--variant=minbase",
            "--include=ifupdown,systemd-sysv",
            "bookworm",
            &root.display().to_string(),
            "http://deb.debian.org/debian",
        ],
    );
    root
}
