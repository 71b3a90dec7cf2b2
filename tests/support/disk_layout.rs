//! Disk images with partition tables and LVM volumes for the `disk_layout_*`
//! tests, made with the real tools (`sfdisk`, `sgdisk`, `mkfs.ext4`, LVM2),
//! and what those tools report about them, to compare Homeward's reading
//! against.
//!
//! LVM needs block devices: images are attached with `losetup` (which needs
//! root), each attachment and volume group is undone by a guard's `Drop`, even
//! when a test panics, and volume groups get a name unique to the process so
//! parallel tests and earlier runs never collide. LVM commands only ever see
//! the loop devices of the test (`--devices`), and run with activation off
//! (`global/activation=0`): no device-mapper is needed, none is touched.

use crate::fs_images::{run_tool, run_tool_env, stdout_text};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs `sfdisk IMG` with `script` on its standard input.
pub fn sfdisk(image: &Path, script: &str) {
    let mut child = Command::new("sfdisk")
        .arg("--no-reread")
        .arg("--no-tell-kernel")
        .arg(image)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run sfdisk ({e}); install the Debian package fdisk"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write sfdisk script");
    let output = child.wait_with_output().expect("wait for sfdisk");
    assert!(
        output.status.success(),
        "sfdisk failed:\n{script}\n--- stderr\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// One partition line of `sfdisk --dump`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpEntry {
    /// The partition number (from the device name's suffix).
    pub number: u32,
    /// First sector.
    pub start: u64,
    /// Sectors.
    pub size: u64,
    /// `83`, `5`, or a GUID, as sfdisk prints it (upper case).
    pub kind: String,
    /// GPT unique GUID.
    pub uuid: Option<String>,
    /// GPT name.
    pub name: Option<String>,
}

/// The partitions `sfdisk --dump IMG` reports.
pub fn sfdisk_dump(image: &Path) -> Vec<DumpEntry> {
    let text = stdout_text(&run_tool("sfdisk", &["--dump", &image.to_string_lossy()]));
    let prefix = image.to_string_lossy().into_owned();
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            let (device, fields) = rest.split_once(':')?;
            let number = device.trim().parse().ok()?;
            let field = |key: &str| {
                fields.split(',').find_map(|f| {
                    let (k, v) = f.trim().split_once('=')?;
                    (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
                })
            };
            Some(DumpEntry {
                number,
                start: field("start")?.parse().ok()?,
                size: field("size")?.parse().ok()?,
                kind: field("type")?.to_ascii_uppercase(),
                uuid: field("uuid"),
                name: field("name"),
            })
        })
        .collect()
}

/// What `sgdisk -i N IMG` says about one GPT partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SgdiskPartition {
    /// Type GUID.
    pub type_guid: String,
    /// sgdisk's name for the type ("Linux filesystem").
    pub type_name: String,
    /// Unique GUID.
    pub unique_guid: String,
    /// First sector.
    pub first: u64,
    /// Last sector (inclusive).
    pub last: u64,
    /// Partition name.
    pub name: String,
}

/// `sgdisk -i number IMG`, parsed.
pub fn sgdisk_info(image: &Path, number: u32) -> SgdiskPartition {
    let out = stdout_text(&run_tool(
        "sgdisk",
        &["-i", &number.to_string(), &image.to_string_lossy()],
    ));
    let value = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("sgdisk -i {number}: no `{key}` in\n{out}"))
            .trim()
            .to_string()
    };
    let code = value("Partition GUID code:");
    let (type_guid, type_name) = code
        .split_once(' ')
        .map(|(g, n)| {
            (
                g.to_string(),
                n.trim_matches(|c| c == '(' || c == ')').to_string(),
            )
        })
        .unwrap_or((code.clone(), String::new()));
    let sector = |key: &str| -> u64 {
        value(key)
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .expect("sector number")
    };
    SgdiskPartition {
        type_guid,
        type_name,
        unique_guid: value("Partition unique GUID:"),
        first: sector("First sector:"),
        last: sector("Last sector:"),
        name: value("Partition name:").trim_matches('\'').to_string(),
    }
}

/// The bytes of a fresh ext4 file system of `size` bytes (made on a plain
/// file in `dir`, to be copied into a partition or LV).
pub fn ext4_bytes(dir: &Path, size: u64) -> Vec<u8> {
    let path = dir.join(format!(
        "ext4-{}.img",
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    crate::fs_images::sparse_file(&path, size);
    run_tool(
        "mkfs.ext4",
        &["-q", "-F", "-b", "1024", &path.to_string_lossy()],
    );
    let bytes = std::fs::read(&path).expect("read ext4 image");
    std::fs::remove_file(&path).expect("remove ext4 image");
    bytes
}

/// The ext4 superblock magic, little-endian, at byte 1024 + 0x38 of a volume.
pub const EXT4_MAGIC_AT: u64 = 1024 + 0x38;

/// Writes `bytes` at `offset` of the file at `path`.
pub fn put_bytes(path: &Path, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open image for writing");
    file.write_all_at(bytes, offset).expect("write into image");
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name for a volume group unique to this process and call, starting with
/// `tag` (LVM names allow letters, digits and `_`).
pub fn unique_vg_name(tag: &str) -> String {
    format!(
        "hw_{tag}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A loop device over a byte range of an image; detached on drop.
pub struct LoopDevice {
    /// `/dev/loopN`.
    pub path: String,
    /// The image it shows.
    pub image: PathBuf,
    /// Where in the image it starts.
    pub offset: u64,
}

impl LoopDevice {
    /// Attaches `size` bytes of `image` at `offset` (the whole image from
    /// `offset` when `size` is `None`). Fails the test with what is needed
    /// when loop devices are not available.
    pub fn attach(image: &Path, offset: u64, size: Option<u64>) -> LoopDevice {
        let mut args = vec![
            "--find".to_string(),
            "--show".to_string(),
            "--offset".to_string(),
            offset.to_string(),
        ];
        if let Some(size) = size {
            args.push("--sizelimit".to_string());
            args.push(size.to_string());
        }
        args.push(image.to_string_lossy().into_owned());
        let output = Command::new("losetup").args(&args).output();
        match output {
            Ok(out) if out.status.success() => LoopDevice {
                path: String::from_utf8_lossy(&out.stdout).trim().to_string(),
                image: image.to_path_buf(),
                offset,
            },
            Ok(out) => panic!(
                "the LVM tests need root and loop devices (real LVM2 only works on block \
                 devices): `losetup {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => panic!(
                "the LVM tests need root, loop devices and `losetup` (package mount): cannot \
                 run losetup: {e}"
            ),
        }
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.path]).output();
    }
}

/// LVM2 commands restricted to some devices, with activation off.
#[derive(Clone)]
pub struct Lvm {
    devices: String,
}

impl Lvm {
    /// LVM seeing only `devices`.
    pub fn new(devices: &[&LoopDevice]) -> Lvm {
        Lvm {
            devices: devices
                .iter()
                .map(|d| d.path.as_str())
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    /// Runs `lvm COMMAND ARGS...`; returns standard output.
    pub fn run(&self, command: &str, args: &[&str]) -> String {
        let mut full = vec![
            command,
            "--devices",
            &self.devices,
            "--config",
            "global { activation = 0 }",
        ];
        full.extend_from_slice(args);
        let output = run_tool_env("lvm", &full, &[("LVM_SUPPRESS_FD_WARNINGS", "1")]);
        stdout_text(&output)
    }

    /// Runs a report command (`lvs`, `pvs`, `vgs`) without headings, fields
    /// separated by `;`; returns the rows.
    pub fn report(&self, command: &str, args: &[&str]) -> Vec<Vec<String>> {
        let mut full = vec![
            "--noheadings",
            "--separator",
            ";",
            "--units",
            "b",
            "--nosuffix",
        ];
        full.extend_from_slice(args);
        self.run(command, &full)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.trim().split(';').map(|f| f.trim().to_string()).collect())
            .collect()
    }

    /// Creates volume group `name` on `pvs` (after `pvcreate` on each), with
    /// `extent` extents (`1m`); removed again when the guard drops.
    pub fn create_vg(&self, name: &str, extent: &str, pvs: &[&LoopDevice]) -> VolumeGroup {
        let paths: Vec<&str> = pvs.iter().map(|d| d.path.as_str()).collect();
        self.run("pvcreate", &paths);
        let guard = VolumeGroup {
            name: name.to_string(),
            lvm: self.clone(),
        };
        let mut args = vec!["-s", extent, name];
        args.extend_from_slice(&paths);
        self.run("vgcreate", &args);
        guard
    }

    /// `lvcreate` without activation or zeroing (there is no device-mapper).
    pub fn lvcreate(&self, args: &[&str]) {
        let mut full = vec!["-an", "-Zn", "-y"];
        full.extend_from_slice(args);
        self.run("lvcreate", &full);
    }
}

/// A volume group, removed (with its LVs and PV labels' VG membership) on drop.
pub struct VolumeGroup {
    /// Its name.
    pub name: String,
    lvm: Lvm,
}

impl Drop for VolumeGroup {
    fn drop(&mut self) {
        let _ = Command::new("lvm")
            .args([
                "vgremove",
                "-f",
                "--devices",
                &self.lvm.devices,
                "--config",
                "global { activation = 0 }",
                &self.name,
            ])
            .env("LVM_SUPPRESS_FD_WARNINGS", "1")
            .output();
    }
}

/// One segment of an LV as `lvs` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LvSegment {
    /// First logical extent of the segment.
    pub start_pe: u64,
    /// Extents in the segment.
    pub size_pe: u64,
    /// `(device, first PE, last PE)` per stripe.
    pub pe_ranges: Vec<(String, u64, u64)>,
    /// `linear`, `striped`, ...
    pub segtype: String,
}

/// The segments of `vg/lv`, in logical order.
pub fn lv_segments(lvm: &Lvm, vg: &str, lv: &str) -> Vec<LvSegment> {
    let rows = lvm.report(
        "lvs",
        &[
            "-o",
            "seg_start_pe,seg_size_pe,seg_pe_ranges,segtype",
            &format!("{vg}/{lv}"),
        ],
    );
    let mut segments: Vec<LvSegment> = rows
        .iter()
        .map(|row| LvSegment {
            start_pe: row[0].parse().expect("seg_start_pe"),
            size_pe: row[1].parse().expect("seg_size_pe"),
            pe_ranges: row[2]
                .split_whitespace()
                .map(|r| {
                    let (dev, range) = r.rsplit_once(':').expect("dev:first-last");
                    let (a, b) = range.split_once('-').expect("first-last");
                    (dev.to_string(), a.parse().unwrap(), b.parse().unwrap())
                })
                .collect(),
            segtype: row[3].clone(),
        })
        .collect();
    segments.sort_by_key(|s| s.start_pe);
    segments
}

/// The PV's `pe_start` in bytes and its UUID, as `pvs` reports them.
pub fn pv_info(lvm: &Lvm, device: &LoopDevice) -> (u64, String) {
    let rows = lvm.report("pvs", &["-o", "pe_start,pv_uuid", &device.path]);
    (rows[0][0].parse().expect("pe_start"), rows[0][1].clone())
}

/// The VG's extent size in bytes.
pub fn extent_size(lvm: &Lvm, vg: &str) -> u64 {
    lvm.report("vgs", &["-o", "vg_extent_size", vg])[0][0]
        .parse()
        .expect("vg_extent_size")
}

/// A sparse image file of `size` bytes at `dir/name`.
pub fn image(dir: &Path, name: &str, size: u64) -> PathBuf {
    let path = dir.join(name);
    crate::fs_images::sparse_file(&path, size);
    path
}

/// Opens `path` as a shared block device, as the host does.
pub fn open_disk(path: &Path) -> std::sync::Arc<dyn homeward::disk::BlockDevice> {
    std::sync::Arc::from(homeward::disk::open(path, false, None).expect("open image"))
}

/// A small GPT disk (8 MiB) with an LVM PV in p2 and, in its VG, a linear
/// LV `one` and a two-segment LV `two`; made with the real tools, kept after
/// the VG is removed from the host (the image is copied before).
pub struct LvmSample {
    /// The image.
    pub path: PathBuf,
    /// The VG's name.
    pub vg: String,
    /// Byte offset of p2 (the PV) in the image.
    pub pv_offset: u64,
}

/// Makes an [`LvmSample`] in `dir`.
pub fn lvm_sample(dir: &Path) -> LvmSample {
    let work = image(dir, "work.img", 8 * MIB);
    let w = work.to_string_lossy().into_owned();
    run_tool(
        "sgdisk",
        &[
            "-n",
            "1:2048:+1M",
            "-t",
            "1:8300",
            "-n",
            "2:0:0",
            "-t",
            "2:8e00",
            &w,
        ],
    );
    let info = sgdisk_info(&work, 2);
    let pv_offset = info.first * 512;
    let vg = unique_vg_name("sample");
    let path = dir.join("lvm-sample.img");
    {
        let pv = LoopDevice::attach(&work, pv_offset, Some((info.last - info.first + 1) * 512));
        let lvm = Lvm::new(&[&pv]);
        let _group = lvm.create_vg(&vg, "1m", &[&pv]);
        lvm.lvcreate(&["-L", "1m", "-n", "one", &vg]);
        lvm.lvcreate(&["-L", "1m", "-n", "two", &vg]);
        lvm.lvcreate(&["-L", "1m", "-n", "three", &vg]);
        lvm.run("lvextend", &["-L", "2m", &format!("{vg}/two")]);
        std::fs::copy(&work, &path).expect("keep the image before the VG is removed");
    }
    LvmSample {
        path,
        vg,
        pv_offset,
    }
}

const MIB: u64 = 1 << 20;

/// CRC-32 as GPT uses it, bit by bit (independent of Homeward's table).
pub fn gpt_crc32(data: &[u8]) -> u32 {
    !raw_crc(0xffff_ffff, data)
}

/// LVM2's checksum (`calc_crc` seeded with 0xf597a6cf, not inverted).
pub fn lvm_crc(data: &[u8]) -> u32 {
    raw_crc(0xf597_a6cf, data)
}

fn raw_crc(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    crc
}

fn le32(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(buf[at..at + 4].try_into().unwrap())
}

fn le64(buf: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(buf[at..at + 8].try_into().unwrap())
}

/// Recomputes the primary GPT's array and header CRCs after a test changed
/// them on purpose, for tables as sgdisk writes them (header at LBA 1, 92
/// bytes; 128 entries of 128 bytes at LBA 2), whatever the header now says.
pub fn fix_gpt_crcs(disk: &mut [u8]) {
    let crc = gpt_crc32(&disk[1024..1024 + 128 * 128]);
    disk[512 + 88..512 + 92].copy_from_slice(&crc.to_le_bytes());
    disk[512 + 16..512 + 20].fill(0);
    let crc = gpt_crc32(&disk[512..512 + 92]);
    disk[512 + 16..512 + 20].copy_from_slice(&crc.to_le_bytes());
}

/// Where the metadata text of the first metadata area of the PV at
/// `pv_offset` is: (mda header offset in the disk, text offset, text size).
/// Assumes the label in sector 1 and no wrap-around (what pvcreate writes).
pub fn lvm_text_location(disk: &[u8], pv_offset: u64) -> (usize, usize, usize) {
    let label = pv_offset as usize + 512;
    assert_eq!(&disk[label..label + 8], b"LABELONE");
    let header = label + le32(disk, label + 20) as usize;
    // Skip the UUID and size, then the data areas, to the metadata areas.
    let mut at = header + 40;
    while le64(disk, at) != 0 {
        at += 16;
    }
    at += 16;
    let mda = pv_offset as usize + le64(disk, at) as usize;
    let text = mda + le64(disk, mda + 40) as usize;
    (mda, text, le64(disk, mda + 48) as usize)
}

/// Sets the metadata text size of the PV's first area to `size` and
/// recomputes the text checksum and the area header's CRC, so that only
/// the text itself is wrong.
pub fn set_lvm_text_size(disk: &mut [u8], pv_offset: u64, size: usize) {
    let (mda, text, _) = lvm_text_location(disk, pv_offset);
    disk[mda + 48..mda + 56].copy_from_slice(&(size as u64).to_le_bytes());
    fix_lvm_crcs(disk, (mda, text, size));
}

/// Recomputes the checksum of the metadata text at `location` (as
/// [`lvm_text_location`] gave it before any change) and of its area header.
pub fn fix_lvm_crcs(disk: &mut [u8], (mda, text, size): (usize, usize, usize)) {
    let crc = lvm_crc(&disk[text..text + size]);
    disk[mda + 56..mda + 60].copy_from_slice(&crc.to_le_bytes());
    let crc = lvm_crc(&disk[mda + 4..mda + 512]);
    disk[mda..mda + 4].copy_from_slice(&crc.to_le_bytes());
}
