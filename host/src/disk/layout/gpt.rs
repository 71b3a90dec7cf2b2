//! GPT partition tables (UEFI specification, chapter 5).
//!
//! The primary header is at LBA 1 and its partition array usually at LBA 2;
//! a backup header is at the last LBA with its array just before it. Both
//! carry a CRC-32 of the header and one of the array. The primary is used
//! when both CRCs match; otherwise the backup is, with a note saying so (the
//! same choice `sgdisk` and the kernel make). When neither can be used the
//! table is an error ([`LayoutError::GptDamaged`]): guessing partitions from
//! a damaged table would hand a file-system handler the wrong bytes.
//!
//! Header fields used (little-endian): signature `EFI PART` (0), header size
//! (12), header CRC (16), this header's LBA (24), first and last usable LBA
//! (40, 48), array LBA (72), entry count (80), entry size (84), array CRC
//! (88). Entry fields: type GUID (0), unique GUID (16), first LBA (32), last
//! LBA inclusive (40), attributes (48), name as UTF-16LE (56, 72 bytes).

use super::error::LayoutError;
use super::{Partition, PartitionType, le32, le64, read_bytes};
use crate::disk::BlockDevice;
use crate::disk::layout::crc::crc32;
use std::fmt;

/// The largest partition array read (sgdisk's maximum is 128 KiB worth of
/// entries; this leaves room while keeping hostile sizes from allocating
/// gigabytes).
const MAX_ARRAY_BYTES: u64 = 4 << 20;

/// A GUID as stored in GPT: the first three fields little-endian.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// Whether every byte is zero (an unused entry's type).
    pub fn is_nil(&self) -> bool {
        self.0.iter().all(|&b| b == 0)
    }

    /// The well-known name of a partition type GUID, if it is one.
    pub fn type_name(&self) -> Option<&'static str> {
        let text = self.to_string();
        Some(match text.as_str() {
            "0FC63DAF-8483-4772-8E79-3D69D8477DE4" => "Linux filesystem",
            "E6D6D379-F507-44C2-A23C-238F2A3DF928" => "Linux LVM",
            "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" => "EFI System",
            "21686148-6449-6E6F-744E-656564454649" => "BIOS boot",
            "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F" => "Linux swap",
            "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7" => "Microsoft basic data",
            "E3C9E316-0B5C-4DB8-817D-F92DF00215AE" => "Microsoft reserved",
            "A19D880F-05FC-4D3B-A006-743F0F84911E" => "Linux RAID",
            "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709" => "Linux x86-64 root",
            "933AC7E1-2EB4-4F13-B844-0E14E2AEF915" => "Linux /home",
            "BC13C2FF-59E6-4262-A352-B275FD6F7172" => "Linux extended boot",
            _ => return None,
        })
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02X}{:02X}{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-\
             {:02X}{:02X}{:02X}{:02X}{:02X}{:02X}",
            b[3],
            b[2],
            b[1],
            b[0],
            b[5],
            b[4],
            b[7],
            b[6],
            b[8],
            b[9],
            b[10],
            b[11],
            b[12],
            b[13],
            b[14],
            b[15]
        )
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn guid_at(buf: &[u8], at: usize) -> Guid {
    let mut g = [0u8; 16];
    if let Some(src) = buf.get(at..at + 16) {
        g.copy_from_slice(src);
    }
    Guid(g)
}

/// Whether the sector at LBA 1 starts with the GPT signature.
pub(crate) fn has_signature(sector: &[u8]) -> bool {
    sector.starts_with(b"EFI PART")
}

/// The partitions of a GPT disk, from the primary table or, if it is
/// damaged, the backup (with a note).
pub(crate) fn partitions(
    disk: &dyn BlockDevice,
    sector_size: u64,
    notes: &mut Vec<String>,
) -> Result<Vec<Partition>, LayoutError> {
    let sectors = disk.capacity() / sector_size;
    let last_lba = sectors.saturating_sub(1);
    match read_table(disk, 1, sector_size) {
        Ok(table) => {
            // The backup is only checked to warn: the primary is what counts.
            if let Err(e) = read_table(disk, table.alternate_lba.min(last_lba), sector_size) {
                notes.push(format!(
                    "the backup GPT is damaged ({e}); the primary is fine and is used \
                     (`sgdisk -e` rewrites the backup)"
                ));
            }
            Ok(table.partitions)
        }
        Err(primary) => match read_table(disk, last_lba, sector_size) {
            Ok(table) => {
                notes.push(format!(
                    "the primary GPT is damaged ({primary}); the backup at LBA {last_lba} is used"
                ));
                Ok(table.partitions)
            }
            Err(backup) => Err(LayoutError::GptDamaged {
                primary: Box::new(primary),
                backup: Box::new(backup),
            }),
        },
    }
}

/// A checked header with its partitions.
struct Table {
    alternate_lba: u64,
    partitions: Vec<Partition>,
}

/// Reads and checks the header at `lba` and its partition array.
fn read_table(disk: &dyn BlockDevice, lba: u64, sector_size: u64) -> Result<Table, LayoutError> {
    let structure = format!("GPT header at LBA {lba}");
    let sectors = disk.capacity() / sector_size;
    let offset = lba
        .checked_mul(sector_size)
        .filter(|_| lba > 0 && lba < sectors)
        .ok_or_else(|| LayoutError::damaged(&structure, "outside the disk"))?;
    let header = read_bytes(disk, offset, sector_size as usize, &structure)?;
    if !has_signature(&header) {
        return Err(LayoutError::damaged(
            &structure,
            format!(
                "no `EFI PART` signature (found {:02x?})",
                header.get(..8).unwrap_or_default()
            ),
        ));
    }
    let header_size = le32(&header, 12) as usize;
    if header_size < 92 || header_size > header.len() {
        return Err(LayoutError::damaged(
            &structure,
            format!("header size {header_size}, expected 92..={sector_size}"),
        ));
    }
    let stored = le32(&header, 16);
    let mut zeroed = header.get(..header_size).unwrap_or_default().to_vec();
    if let Some(field) = zeroed.get_mut(16..20) {
        field.fill(0);
    }
    let computed = crc32(&zeroed);
    if stored != computed {
        return Err(LayoutError::Checksum {
            structure,
            stored,
            computed,
        });
    }
    let my_lba = le64(&header, 24);
    if my_lba != lba {
        return Err(LayoutError::damaged(
            &structure,
            format!("says it is at LBA {my_lba}"),
        ));
    }
    let alternate_lba = le64(&header, 32);
    let array_lba = le64(&header, 72);
    let count = u64::from(le32(&header, 80));
    let entry_size = u64::from(le32(&header, 84));
    if entry_size < 128 || !entry_size.is_multiple_of(8) {
        return Err(LayoutError::damaged(
            &structure,
            format!("partition entry size {entry_size}, expected a multiple of 8 of at least 128"),
        ));
    }
    let array_bytes = count
        .checked_mul(entry_size)
        .filter(|&n| n <= MAX_ARRAY_BYTES)
        .ok_or_else(|| {
            LayoutError::damaged(
                &structure,
                format!(
                    "{count} partition entries of {entry_size} bytes: more than the \
                     {MAX_ARRAY_BYTES}-byte limit"
                ),
            )
        })?;
    let array_structure = format!("GPT partition array at LBA {array_lba}");
    let array_offset = array_lba
        .checked_mul(sector_size)
        .filter(|&o| {
            array_lba > 0
                && o.checked_add(array_bytes)
                    .is_some_and(|end| end <= disk.capacity())
        })
        .ok_or_else(|| {
            LayoutError::damaged(
                &array_structure,
                format!("{array_bytes} bytes there run past the end of the disk"),
            )
        })?;
    let array = read_bytes(disk, array_offset, array_bytes as usize, &array_structure)?;
    let stored = le32(&header, 88);
    let computed = crc32(&array);
    if stored != computed {
        return Err(LayoutError::Checksum {
            structure: array_structure,
            stored,
            computed,
        });
    }
    let mut partitions = Vec::new();
    for (index, entry) in array.chunks_exact(entry_size as usize).enumerate() {
        let kind = guid_at(entry, 0);
        if kind.is_nil() {
            continue;
        }
        let first_lba = le64(entry, 32);
        let last_lba = le64(entry, 40);
        let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        if last_lba < first_lba {
            return Err(LayoutError::damaged(
                format!("GPT partition {number}"),
                format!("last LBA {last_lba} is before first LBA {first_lba}"),
            ));
        }
        partitions.push(Partition {
            number,
            first_lba,
            // last >= first, so this cannot overflow below; + 1 can at u64::MAX.
            sectors: (last_lba - first_lba).saturating_add(1),
            kind: PartitionType::Gpt(kind),
            name: utf16_name(entry.get(56..128).unwrap_or_default()),
            unique_guid: Some(guid_at(entry, 16)),
            extended: false,
        });
    }
    Ok(Table {
        alternate_lba,
        partitions,
    })
}

/// A GPT partition name: UTF-16LE up to the first NUL.
fn utf16_name(raw: &[u8]) -> String {
    let units = raw
        .chunks_exact(2)
        .map(|c| match c {
            [lo, hi] => u16::from_le_bytes([*lo, *hi]),
            _ => 0,
        })
        .take_while(|&u| u != 0);
    char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}
