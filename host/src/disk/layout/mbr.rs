//! MBR partition tables: four primary entries in sector 0 and, inside an
//! extended partition, a chain of EBRs (extended boot records) holding one
//! logical partition each.
//!
//! Layout of sector 0 and of each EBR: boot code, four 16-byte entries at
//! byte 446 (status, CHS start, type, CHS end, first LBA as `u32` LE, sector
//! count as `u32` LE), and the signature `55 AA` at byte 510. CHS fields are
//! ignored: every tool since the 1990s writes the LBA fields.
//!
//! Logical partitions are numbered 5, 6, ... in chain order, as Linux does.
//! In an EBR, entry 0 is the logical partition (its start relative to the
//! EBR) and entry 1 links to the next EBR (its start relative to the start
//! of the extended partition). The chain is read at most [`MAX_LOGICAL`]
//! links deep and never visits an EBR twice, so a looping chain ends; a
//! broken chain keeps the logical partitions found before the break and
//! reports the break as a note.

use super::error::LayoutError;
use super::{Partition, PartitionType, read_bytes};
use crate::disk::BlockDevice;
use std::collections::HashSet;

/// The most logical partitions read from an extended partition (Linux's
/// limit for a disk is far below this in practice).
pub(crate) const MAX_LOGICAL: usize = 128;

/// Where the four entries start.
const ENTRIES_AT: usize = 446;

/// The GPT protective-MBR partition type.
pub(crate) const TYPE_GPT_PROTECTIVE: u8 = 0xee;

/// What sector 0 holds.
pub(crate) enum Sector0 {
    /// No MBR: no signature, a boot sector of a bare file system, or no
    /// partition in any entry.
    None,
    /// A protective MBR (an entry of type 0xEE): the disk is GPT-partitioned.
    Protective,
    /// A real MBR table (primary entries, non-empty ones only).
    Table(Vec<Entry>),
}

/// One non-empty entry of an MBR or EBR.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    /// Slot 0..=3.
    pub slot: usize,
    /// Partition type id.
    pub kind: u8,
    /// First LBA (relative to whatever the table is relative to).
    pub first_lba: u64,
    /// Sector count.
    pub sectors: u64,
}

/// Whether `kind` is an extended-partition container (CHS, LBA, Linux).
fn is_extended(kind: u8) -> bool {
    matches!(kind, 0x05 | 0x0f | 0x85)
}

/// The non-empty entries of an MBR/EBR sector, or `None` when the sector is
/// not a partition table (no `55 AA`, or a status byte other than 0x00 or
/// 0x80, which is what a FAT or NTFS boot sector's code looks like there).
fn entries(sector: &[u8]) -> Option<Vec<Entry>> {
    if sector.get(510..512) != Some(&[0x55, 0xaa]) {
        return None;
    }
    let mut out = Vec::new();
    for slot in 0..4 {
        let at = ENTRIES_AT + slot * 16;
        let raw = sector.get(at..at + 16)?;
        let status = raw.first().copied().unwrap_or(0);
        if status != 0x00 && status != 0x80 {
            return None;
        }
        let kind = raw.get(4).copied().unwrap_or(0);
        let first_lba = u64::from(super::le32(raw, 8));
        let sectors = u64::from(super::le32(raw, 12));
        if kind == 0 || sectors == 0 {
            continue;
        }
        out.push(Entry {
            slot,
            kind,
            first_lba,
            sectors,
        });
    }
    Some(out)
}

/// Classifies sector 0.
pub(crate) fn classify(sector0: &[u8]) -> Sector0 {
    match entries(sector0) {
        None => Sector0::None,
        Some(list) if list.is_empty() => Sector0::None,
        Some(list) if list.iter().any(|e| e.kind == TYPE_GPT_PROTECTIVE) => Sector0::Protective,
        Some(list) => Sector0::Table(list),
    }
}

/// The partitions of an MBR disk: primaries 1..=4 (extended containers
/// included, as `sfdisk` lists them) then logicals 5, 6, ... Problems with
/// the EBR chain are pushed to `notes`.
pub(crate) fn partitions(
    disk: &dyn BlockDevice,
    primaries: &[Entry],
    sector_size: u64,
    notes: &mut Vec<String>,
) -> Result<Vec<Partition>, LayoutError> {
    let mut out = Vec::new();
    let mut extended: Option<Entry> = None;
    for entry in primaries {
        let number = entry.slot as u32 + 1;
        out.push(Partition {
            number,
            first_lba: entry.first_lba,
            sectors: entry.sectors,
            kind: PartitionType::Mbr(entry.kind),
            name: String::new(),
            unique_guid: None,
            extended: is_extended(entry.kind),
        });
        if is_extended(entry.kind) {
            if extended.is_some() {
                notes.push(format!(
                    "MBR partition {number} is a second extended partition; only the first is \
                     read (logical partitions inside this one are not listed)"
                ));
            } else {
                extended = Some(*entry);
            }
        }
    }
    if let Some(ext) = extended {
        logicals(disk, ext, sector_size, &mut out, notes)?;
    }
    Ok(out)
}

/// Follows the EBR chain of extended partition `ext`, appending logical
/// partitions to `out`.
fn logicals(
    disk: &dyn BlockDevice,
    ext: Entry,
    sector_size: u64,
    out: &mut Vec<Partition>,
    notes: &mut Vec<String>,
) -> Result<(), LayoutError> {
    let ext_end = ext.first_lba.saturating_add(ext.sectors);
    let mut visited = HashSet::new();
    let mut ebr_lba = ext.first_lba;
    let mut number: u32 = 5;
    for _ in 0..MAX_LOGICAL {
        if !visited.insert(ebr_lba) {
            notes.push(format!(
                "EBR chain of the extended partition loops back to LBA {ebr_lba} after {} \
                 logical partitions; the chain was cut there (`sfdisk --dump` on the source \
                 shows the intended table)",
                number - 5
            ));
            return Ok(());
        }
        let structure = format!("EBR at LBA {ebr_lba}");
        let Some(offset) = ebr_lba.checked_mul(sector_size) else {
            notes.push(format!(
                "{structure}: offset overflows; the chain was cut there"
            ));
            return Ok(());
        };
        let fits = offset
            .checked_add(512)
            .is_some_and(|end| end <= disk.capacity());
        if !fits {
            notes.push(format!(
                "{structure} lies past the end of the disk; the chain was cut there (image \
                 truncated?)"
            ));
            return Ok(());
        }
        let sector = read_bytes(disk, offset, 512, &structure)?;
        let Some(list) = entries(&sector) else {
            notes.push(format!(
                "{structure}: not a valid EBR (no 55 AA signature or a bad status byte); the \
                 chain was cut there"
            ));
            return Ok(());
        };
        let mut next = None;
        for entry in list {
            match entry.slot {
                0 if !is_extended(entry.kind) => {
                    out.push(Partition {
                        number,
                        first_lba: ebr_lba.saturating_add(entry.first_lba),
                        sectors: entry.sectors,
                        kind: PartitionType::Mbr(entry.kind),
                        name: String::new(),
                        unique_guid: None,
                        extended: false,
                    });
                    number += 1;
                }
                1 if is_extended(entry.kind) => {
                    next = Some(ext.first_lba.saturating_add(entry.first_lba));
                }
                _ => {}
            }
        }
        match next {
            None => return Ok(()),
            Some(lba) if lba <= ext.first_lba || lba >= ext_end => {
                notes.push(format!(
                    "{structure} links to LBA {lba}, outside the extended partition (LBA {}..{}); \
                     the chain was cut there",
                    ext.first_lba, ext_end
                ));
                return Ok(());
            }
            Some(lba) => ebr_lba = lba,
        }
    }
    notes.push(format!(
        "the EBR chain has more than {MAX_LOGICAL} links; only the first {MAX_LOGICAL} logical \
         partitions are listed"
    ));
    Ok(())
}
