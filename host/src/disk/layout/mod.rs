//! Disk layout: which volumes a disk holds (partitions of an MBR or GPT
//! table, LVM2 linear logical volumes, or the bare disk), each as a
//! [`BlockDevice`] the file-system handlers and the data path can read.
//!
//! Layout lives in the host, not in a plugin, because it is vendor-neutral
//! and shared: every file-system handler needs "partition 2" or "vg0/root"
//! handed to it as a plain block device, and the host's own data path and
//! commands (`homeward fs ls IMAGE --volume p2`) need the same answer. A
//! handler then only ever sees its own file system's bytes through a
//! [`DiskView`], bounds-checked, and never has to know about tables.
//!
//! [`resolve`] reads, in this order:
//!
//! 1. sector 0 (`mbr.rs`): a protective MBR (type 0xEE) means GPT; a real MBR
//!    means primary partitions 1-4 and logical partitions 5+ from the EBR
//!    chain; anything else (no `55 AA`, a file system's boot sector, an empty
//!    table) means no table;
//! 2. the GPT (`gpt.rs`) when the MBR says so, or when LBA 1 holds a GPT header
//!    although sector 0 is not an MBR; the backup header is used when the
//!    primary is damaged, and both being damaged is an error;
//! 3. each partition (or the whole disk when there is no table) for an LVM2
//!    PV label (`lvm_label.rs`); the VGs on those PVs become volumes `vg/lv`
//!    (`lvm.rs`, with `lvm_text.rs` parsing the metadata).
//!
//! Hostile input: everything read is checked, every loop over on-disk links
//! is bounded, and sizes from disk are capped before they allocate. A damaged
//! table is a [`LayoutError`] for the whole disk (nothing on it can be placed
//! safely); a problem confined to one partition or LV (a partition running
//! past the end of a truncated image, damaged LVM metadata, an unsupported
//! LV type, an LV on a PV of another disk) is listed in [`Layout::skipped`]
//! with its reason, and every other volume stays usable.

mod crc;
mod error;
mod gpt;
mod lvm;
mod lvm_label;
mod lvm_text;
mod mbr;
mod mem;
mod view;

pub use error::LayoutError;
pub use gpt::Guid;
pub use mem::MemDisk;
pub use view::{DiskView, Extent};

use super::BlockDevice;
use std::fmt;
use std::sync::Arc;

/// The partition table a disk has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// A GUID partition table.
    Gpt,
    /// An MBR (DOS) partition table.
    Mbr,
    /// No partition table: the disk is one volume (a bare file system or a
    /// whole-disk LVM PV).
    None,
}

/// A partition type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionType {
    /// An MBR type id (0x83 Linux, ...).
    Mbr(u8),
    /// A GPT type GUID.
    Gpt(Guid),
}

impl PartitionType {
    /// The well-known name of the type, if it is one.
    pub fn name(&self) -> Option<&'static str> {
        match self {
            PartitionType::Mbr(id) => mbr_type_name(*id),
            PartitionType::Gpt(guid) => guid.type_name(),
        }
    }
}

impl fmt::Display for PartitionType {
    /// `0x83 (Linux)`, `Linux filesystem (0FC63DAF-...)`, or the bare id.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self, self.name()) {
            (PartitionType::Mbr(id), Some(name)) => write!(f, "{id:#04x} ({name})"),
            (PartitionType::Mbr(id), None) => write!(f, "type {id:#04x}"),
            (PartitionType::Gpt(guid), Some(name)) => write!(f, "{name} ({guid})"),
            (PartitionType::Gpt(guid), None) => write!(f, "type {guid}"),
        }
    }
}

fn mbr_type_name(id: u8) -> Option<&'static str> {
    Some(match id {
        0x05 => "Extended",
        0x0f => "W95 Extended (LBA)",
        0x85 => "Linux extended",
        0x83 => "Linux",
        0x8e => "Linux LVM",
        0x82 => "Linux swap",
        0xfd => "Linux raid autodetect",
        0xee => "GPT protective",
        0xef => "EFI System",
        0x07 => "HPFS/NTFS/exFAT",
        0x06 => "FAT16",
        0x0b => "W95 FAT32",
        0x0c => "W95 FAT32 (LBA)",
        _ => return None,
    })
}

/// A partition-table entry, as the table says (before any check against the
/// disk's size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// The partition number (1-4 primary, 5+ logical for MBR; the entry's
    /// index + 1 for GPT), as Linux and `sfdisk` number them.
    pub number: u32,
    /// First sector.
    pub first_lba: u64,
    /// Number of sectors.
    pub sectors: u64,
    /// Its type.
    pub kind: PartitionType,
    /// The GPT partition name (empty for MBR).
    pub name: String,
    /// The GPT unique partition GUID.
    pub unique_guid: Option<Guid>,
    /// Whether it is an MBR extended partition (a container of logical
    /// partitions, not a volume).
    pub extended: bool,
}

impl Partition {
    /// The volume id operators type: `p<number>`.
    pub fn id(&self) -> String {
        format!("p{}", self.number)
    }
}

/// A volume: a byte range (or ranges) of the disk holding one file system.
pub struct Volume {
    /// What operators type to choose it: `p2`, `p5`, `vg0/root`, or `disk`
    /// for a disk without a partition table.
    pub id: String,
    /// What it is, for listings ("partition 2, 0x83 (Linux), 16 MiB").
    pub description: String,
    /// Its bytes.
    pub device: Arc<dyn BlockDevice>,
    /// Where its bytes are on the disk, in volume order (one range for a
    /// partition, one per segment for an LV).
    pub extents: Vec<Extent>,
}

impl fmt::Debug for Volume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Volume")
            .field("id", &self.id)
            .field("description", &self.description)
            .field("device", &self.device.describe())
            .field("extents", &self.extents)
            .finish()
    }
}

/// Why a partition or logical volume is not a volume.
#[derive(Debug)]
#[non_exhaustive]
pub enum SkipReason {
    /// The partition is an LVM physical volume: its logical volumes are
    /// listed instead (`vg` is `None` when it is in no VG found here).
    PhysicalVolume {
        /// The VG it belongs to.
        vg: Option<String>,
        /// The PV's UUID.
        uuid: String,
    },
    /// A layout Homeward does not read (an LV segment type other than
    /// linear, ...), with what it is and what to do.
    Unsupported(String),
    /// An LV with extents on PVs that are not on this disk.
    Unavailable {
        /// UUIDs of the PVs that are missing.
        missing_pvs: Vec<String>,
    },
    /// An internal LV (a part of another LV, such as a mirror leg).
    Hidden,
    /// A damaged structure confined to this entry.
    Damaged(LayoutError),
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::PhysicalVolume { vg: Some(vg), uuid } => write!(
                f,
                "LVM physical volume {uuid} of volume group `{vg}` (its logical volumes are \
                 listed as {vg}/...)"
            ),
            SkipReason::PhysicalVolume { vg: None, uuid } => write!(
                f,
                "LVM physical volume {uuid} in no volume group found on this disk (unused, or \
                 its VG's metadata is on another disk)"
            ),
            SkipReason::Unsupported(what) => write!(f, "unsupported: {what}"),
            SkipReason::Unavailable { missing_pvs } => write!(
                f,
                "unavailable: it has extents on LVM physical volume(s) {} which are not on this \
                 disk; give Homeward the disk that holds them",
                missing_pvs.join(", ")
            ),
            SkipReason::Hidden => {
                f.write_str("internal logical volume (a part of another LV), not a file system")
            }
            SkipReason::Damaged(e) => write!(f, "damaged: {e}"),
        }
    }
}

/// A partition or logical volume that is listed but cannot be used.
#[derive(Debug)]
pub struct Skipped {
    /// Its id (`p2`, `vg0/thin`, `vg0/*` for a whole VG).
    pub id: String,
    /// Why.
    pub reason: SkipReason,
}

/// What a disk holds.
#[derive(Debug)]
pub struct Layout {
    /// The partition table found.
    pub scheme: Scheme,
    /// The partition-table entries, by number (extended containers included).
    pub partitions: Vec<Partition>,
    /// The usable volumes: partitions by number, then LVM LVs by VG name and
    /// metadata order.
    pub volumes: Vec<Volume>,
    /// Partitions and LVs that are not volumes, with the reason.
    pub skipped: Vec<Skipped>,
    /// Warnings: a backup GPT used, an EBR chain cut, a damaged spare copy of
    /// LVM metadata.
    pub notes: Vec<String>,
    /// The disk, as it describes itself.
    pub device: String,
}

impl Layout {
    /// The volume `id`, or an error listing the ids there are.
    pub fn volume(&self, id: &str) -> Result<&Volume, LayoutError> {
        self.volumes
            .iter()
            .find(|v| v.id == id)
            .ok_or_else(|| LayoutError::UnknownVolume {
                id: id.to_string(),
                device: self.device.clone(),
                available: self.volumes.iter().map(|v| v.id.clone()).collect(),
            })
    }
}

/// Reads the layout of `disk`.
pub fn resolve(disk: Arc<dyn BlockDevice>) -> Result<Layout, LayoutError> {
    let sector_size = match u64::from(disk.sector_size()) {
        n if (512..=65536).contains(&n) && n.is_power_of_two() => n,
        _ => 512,
    };
    let mut layout = Layout {
        scheme: Scheme::None,
        partitions: Vec::new(),
        volumes: Vec::new(),
        skipped: Vec::new(),
        notes: Vec::new(),
        device: disk.describe(),
    };
    let head_len = disk.capacity().min(2 * sector_size);
    let head = read_bytes(disk.as_ref(), 0, head_len as usize, "sector 0")?;
    let sector0 = head.get(..512).unwrap_or_default();
    let gpt_signature = head
        .get(sector_size as usize..)
        .is_some_and(gpt::has_signature);
    match mbr::classify(sector0) {
        mbr::Sector0::Protective => {
            layout.scheme = Scheme::Gpt;
            layout.partitions = gpt::partitions(disk.as_ref(), sector_size, &mut layout.notes)?;
        }
        mbr::Sector0::Table(primaries) => {
            layout.scheme = Scheme::Mbr;
            if gpt_signature {
                layout.notes.push(
                    "LBA 1 holds a GPT header but sector 0 is an MBR without a protective entry; \
                     the MBR is used (a stale GPT from an earlier partitioning?)"
                        .to_string(),
                );
            }
            layout.partitions =
                mbr::partitions(disk.as_ref(), &primaries, sector_size, &mut layout.notes)?;
        }
        mbr::Sector0::None if gpt_signature => {
            layout.scheme = Scheme::Gpt;
            layout.notes.push(
                "sector 0 has no protective MBR, but LBA 1 holds a GPT header; the GPT is used"
                    .to_string(),
            );
            layout.partitions = gpt::partitions(disk.as_ref(), sector_size, &mut layout.notes)?;
        }
        mbr::Sector0::None => {}
    }

    // The candidates for volumes: each partition, or the whole disk.
    let mut candidates: Vec<Candidate> = Vec::new();
    if layout.scheme == Scheme::None {
        let capacity = disk.capacity();
        let description = format!("whole disk (no partition table), {}", human_size(capacity));
        let view = DiskView::window(disk.clone(), 0, capacity, "(whole disk)")?;
        candidates.push(Candidate {
            id: "disk".to_string(),
            description,
            device: Arc::new(view),
            start: 0,
            len: capacity,
        });
    }
    let disk_sectors = disk.capacity() / sector_size;
    let table = if layout.scheme == Scheme::Gpt {
        "GPT"
    } else {
        "MBR"
    };
    for partition in layout.partitions.iter().filter(|p| !p.extended) {
        let end = partition.first_lba.checked_add(partition.sectors);
        if end.is_none_or(|end| end > disk_sectors) {
            layout.skipped.push(Skipped {
                id: partition.id(),
                reason: SkipReason::Damaged(LayoutError::PastEnd {
                    table,
                    number: partition.number,
                    first: partition.first_lba,
                    last: partition
                        .first_lba
                        .saturating_add(partition.sectors)
                        .saturating_sub(1),
                    sectors: disk_sectors,
                }),
            });
            continue;
        }
        // Both fit in the disk's byte size now, so they cannot overflow.
        let start = partition.first_lba.saturating_mul(sector_size);
        let len = partition.sectors.saturating_mul(sector_size);
        let label = format!("partition {}", partition.number);
        let view = DiskView::window(disk.clone(), start, len, label)?;
        candidates.push(Candidate {
            id: partition.id(),
            description: partition_description(partition, len),
            device: Arc::new(view),
            start,
            len,
        });
    }

    let mut pvs = Vec::new();
    for Candidate {
        id,
        description,
        device,
        start,
        len,
    } in candidates
    {
        let what = if id == "disk" {
            "the disk".to_string()
        } else {
            format!("partition {id}")
        };
        match lvm_label::probe(device.as_ref(), &what) {
            Ok(Some(label)) => pvs.push(lvm::FoundPv {
                volume_id: id,
                start,
                len,
                label,
                device,
            }),
            Ok(None) => layout.volumes.push(Volume {
                id,
                description,
                device,
                extents: vec![Extent {
                    start: 0,
                    disk_offset: start,
                    len,
                }],
            }),
            Err(e) => layout.skipped.push(Skipped {
                id,
                reason: SkipReason::Damaged(e),
            }),
        }
    }
    let lvm = lvm::resolve(&disk, &pvs);
    layout.volumes.extend(lvm.volumes);
    layout.skipped.extend(lvm.skipped);
    layout.notes.extend(lvm.notes);
    Ok(layout)
}

/// A partition (or the whole disk) that is a volume unless it holds an LVM PV.
struct Candidate {
    id: String,
    description: String,
    device: Arc<dyn BlockDevice>,
    /// Its byte range on the disk.
    start: u64,
    len: u64,
}

fn partition_description(partition: &Partition, len: u64) -> String {
    let mut text = format!("partition {}", partition.number);
    if partition.number > 4 && matches!(partition.kind, PartitionType::Mbr(_)) {
        text.push_str(" (logical)");
    }
    if !partition.name.is_empty() {
        text.push_str(&format!(" \"{}\"", partition.name));
    }
    text.push_str(&format!(", {}, {}", partition.kind, human_size(len)));
    text
}

/// `len` bytes of `disk` at `offset`, as an error naming `what` on failure.
/// Callers bound `len` (a sector, a capped array or text size).
pub(crate) fn read_bytes(
    disk: &dyn BlockDevice,
    offset: u64,
    len: usize,
    what: &str,
) -> Result<Vec<u8>, LayoutError> {
    let mut buf = vec![0u8; len];
    disk.read_at(&mut buf, offset)
        .map_err(|source| LayoutError::Read {
            device: disk.describe(),
            what: what.to_string(),
            source,
        })?;
    Ok(buf)
}

/// The little-endian `u32` at `at` of `buf`; 0 when `buf` is too short
/// (callers read fixed offsets of buffers they sized, so this is only a
/// guard against a bug turning into a panic).
pub(crate) fn le32(buf: &[u8], at: usize) -> u32 {
    buf.get(at..at.saturating_add(4))
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

/// The little-endian `u64` at `at` of `buf`; 0 when `buf` is too short.
pub(crate) fn le64(buf: &[u8], at: usize) -> u64 {
    buf.get(at..at.saturating_add(8))
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// `1536 bytes`, `16 MiB`, `1.5 GiB`.
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let name = UNITS.get(unit).copied().unwrap_or("PiB");
    if value.fract() == 0.0 {
        format!("{value:.0} {name}")
    } else {
        format!("{value:.1} {name}")
    }
}

/// The fuzz target's body (`fuzz/fuzz_targets/disk_layout.rs`): `data` as an
/// in-memory disk, resolved, and every volume read at both ends and asked
/// for its data ranges. Ignores every error; it must never panic or hang.
pub fn fuzz_one(data: &[u8]) {
    let disk: Arc<dyn BlockDevice> = Arc::new(MemDisk::new(data.to_vec(), false));
    let Ok(layout) = resolve(disk) else {
        return;
    };
    for volume in &layout.volumes {
        let device = &volume.device;
        let capacity = device.capacity();
        let mut buf = vec![0u8; capacity.min(4096) as usize];
        let _ = device.read_at(&mut buf, 0);
        let tail = capacity - buf.len() as u64;
        let _ = device.read_at(&mut buf, tail);
        let _ = device.read_at(&mut buf, capacity);
        let _ = device.allocated_ranges();
        let _ = device.describe();
    }
    for skipped in &layout.skipped {
        let _ = skipped.reason.to_string();
    }
    let _ = layout.volume("no-such-volume").map_err(|e| e.to_string());
}
