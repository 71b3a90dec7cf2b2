//! The errors of layout resolution.
//!
//! Partition tables and LVM metadata are read from disks Homeward did not
//! write, so every way they can be wrong is an ordinary error, never a panic.
//! Each message names the structure that failed (which header, which LBA,
//! which metadata area) and what was seen, so an operator can compare it with
//! `sgdisk --verify`, `sfdisk --dump` or `pvck` on the source.

use std::io;

/// Why a disk's layout (or one part of it) cannot be resolved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// Reading the disk failed.
    #[error("cannot read {what} of {device}: {source}")]
    Read {
        /// The device, as it describes itself.
        device: String,
        /// The structure being read ("GPT header at LBA 1", ...).
        what: String,
        /// What the device said.
        #[source]
        source: io::Error,
    },

    /// A structure breaks its format's rules.
    #[error("{structure}: {problem}")]
    Damaged {
        /// The structure, with where it is ("GPT header at LBA 1").
        structure: String,
        /// What is wrong and what was seen.
        problem: String,
    },

    /// A structure whose checksum does not match its bytes.
    #[error("{structure}: CRC mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Checksum {
        /// The structure, with where it is.
        structure: String,
        /// The checksum stored on disk.
        stored: u32,
        /// The checksum of the bytes as read.
        computed: u32,
    },

    /// Neither GPT header can be used, although the protective MBR says the
    /// disk is GPT-partitioned.
    #[error(
        "both GPT headers are damaged ({primary}; {backup}): the partition table cannot be \
         trusted; check the source disk with `sgdisk --verify` and copy it again, or repair the \
         copy with `gdisk` (recovery menu) before using it"
    )]
    GptDamaged {
        /// Why the primary header (LBA 1) was refused.
        primary: Box<LayoutError>,
        /// Why the backup header (last LBA) was refused.
        backup: Box<LayoutError>,
    },

    /// A partition that extends past the end of the disk.
    #[error(
        "{table} partition {number}: sectors {first}..={last} run past the end of the disk \
         ({sectors} sectors): the image is probably truncated; copy the whole disk again"
    )]
    PastEnd {
        /// "GPT" or "MBR".
        table: &'static str,
        /// The partition number.
        number: u32,
        /// First sector.
        first: u64,
        /// Last sector (inclusive).
        last: u64,
        /// Sectors the disk has.
        sectors: u64,
    },

    /// A volume id that the layout does not have.
    #[error("{device} has no volume `{id}`; its volumes are: {}", list_or_none(.available))]
    UnknownVolume {
        /// The id asked for.
        id: String,
        /// The disk, as it describes itself.
        device: String,
        /// The ids it has.
        available: Vec<String>,
    },
}

impl LayoutError {
    /// A [`LayoutError::Damaged`].
    pub(crate) fn damaged(structure: impl Into<String>, problem: impl Into<String>) -> LayoutError {
        LayoutError::Damaged {
            structure: structure.into(),
            problem: problem.into(),
        }
    }
}

fn list_or_none(ids: &[String]) -> String {
    if ids.is_empty() {
        "none".to_string()
    } else {
        ids.join(", ")
    }
}
