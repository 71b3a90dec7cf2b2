//! LVM2 physical-volume labels and metadata areas: finding a PV and reading
//! the newest copy of its volume group's metadata text.
//!
//! On-disk format (lvm2 `label.h`, `format-text/layout.h`; all little-endian):
//!
//! - **Label**, in one of the first four 512-byte sectors: `LABELONE` (0),
//!   the sector's own number (8), CRC of bytes 20..512 (16), offset of the PV
//!   header (20), `LVM2 001` (24).
//! - **PV header**: PV UUID (32 ASCII characters, no dashes), device size,
//!   then a list of data areas and a list of metadata areas, each a series of
//!   (offset, size) pairs ending with a zero pair.
//! - **Metadata area**: a 512-byte header (CRC of bytes 4..512 (0), magic
//!   `" LVM2 x[5A%r0N*>"` (4), version 1 (20), the area's own offset (24) and
//!   size (32), then `raw_locn` records from byte 40: offset in the area,
//!   size, CRC and flags of the metadata text). The rest of the area is a
//!   circular buffer: text that runs past its end continues right after the
//!   header.
//!
//! The checksums use LVM's CRC variant ([`lvm_crc`]). A label or area that
//! fails its checks is an error naming the field; a PV without metadata (an
//! orphan, or `--metadatacopies 0`) is not.

use super::crc::lvm_crc;
use super::error::LayoutError;
use super::{le32, le64, read_bytes};
use crate::disk::BlockDevice;

/// The metadata-area header magic.
const MDA_MAGIC: &[u8; 16] = b" LVM2 x[5A%r0N*>";

/// Size of a metadata-area header; the circular text buffer starts after it.
const MDA_HEADER_LEN: u64 = 512;

/// `raw_locn` flag: this copy of the metadata is to be ignored.
const RAW_LOCN_IGNORED: u32 = 1;

/// The largest metadata text read. LVM's default area is 1 MiB; this allows
/// very large VGs and bounds what a hostile size can allocate.
const MAX_TEXT: u64 = 16 << 20;

/// The most areas of each kind read from a PV header (LVM writes one or two).
const MAX_AREAS: usize = 8;

/// A physical volume found on the disk.
#[derive(Debug, Clone)]
pub(crate) struct PvLabel {
    /// Its UUID as in the label: 32 characters, no dashes.
    pub uuid: String,
    /// Offsets and sizes of its metadata areas, relative to the PV.
    pub metadata_areas: Vec<(u64, u64)>,
}

/// Looks for an LVM2 label in the first four sectors of `pv`. `Ok(None)`:
/// not a PV. `what` names the PV ("partition 2") in errors.
pub(crate) fn probe(pv: &dyn BlockDevice, what: &str) -> Result<Option<PvLabel>, LayoutError> {
    let len = pv.capacity().min(4 * 512);
    let len = len - len % 512;
    if len == 0 {
        return Ok(None);
    }
    let head = read_bytes(pv, 0, len as usize, &format!("start of {what}"))?;
    for (index, sector) in head.chunks_exact(512).enumerate() {
        if sector.starts_with(b"LABELONE") {
            return label(sector, index as u64, what).map(Some);
        }
    }
    Ok(None)
}

fn label(sector: &[u8], index: u64, what: &str) -> Result<PvLabel, LayoutError> {
    let structure = format!("LVM label in sector {index} of {what}");
    let stored = le32(sector, 16);
    let computed = lvm_crc(sector.get(20..).unwrap_or_default());
    if stored != computed {
        return Err(LayoutError::Checksum {
            structure,
            stored,
            computed,
        });
    }
    let own = le64(sector, 8);
    if own != index {
        return Err(LayoutError::damaged(
            structure,
            format!("says it is in sector {own}"),
        ));
    }
    if sector.get(24..32) != Some(b"LVM2 001") {
        return Err(LayoutError::damaged(
            structure,
            format!(
                "label type {:?}, expected \"LVM2 001\" (an LVM1 or other format PV)",
                String::from_utf8_lossy(sector.get(24..32).unwrap_or_default())
            ),
        ));
    }
    let header = le32(sector, 20) as usize;
    let uuid = sector
        .get(header..header.saturating_add(32))
        .filter(|_| header >= 32 && header <= sector.len() - 64)
        .ok_or_else(|| {
            LayoutError::damaged(
                &structure,
                format!("PV header offset {header} is outside the sector"),
            )
        })?;
    let uuid = String::from_utf8_lossy(uuid).into_owned();
    // Data areas, then metadata areas, each list ending with a zero pair.
    let mut at = header + 32 + 8;
    let mut lists: [Vec<(u64, u64)>; 2] = [Vec::new(), Vec::new()];
    for list in &mut lists {
        loop {
            if at + 16 > sector.len() {
                return Err(LayoutError::damaged(
                    &structure,
                    "area list runs past the end of the sector (no terminating zero entry)",
                ));
            }
            let (offset, size) = (le64(sector, at), le64(sector, at + 8));
            at += 16;
            if offset == 0 {
                break;
            }
            if list.len() == MAX_AREAS {
                return Err(LayoutError::damaged(
                    &structure,
                    format!("more than {MAX_AREAS} areas listed"),
                ));
            }
            list.push((offset, size));
        }
    }
    let [_, metadata_areas] = lists;
    Ok(PvLabel {
        uuid,
        metadata_areas,
    })
}

/// The metadata text of the area at `offset` (`size` bytes) of `pv`, or
/// `None` when the area holds none (an orphan PV, or a copy marked ignored).
pub(crate) fn metadata_text(
    pv: &dyn BlockDevice,
    offset: u64,
    size: u64,
    what: &str,
) -> Result<Option<Vec<u8>>, LayoutError> {
    let structure = format!("LVM metadata area at byte {offset} of {what}");
    let area_end = offset.checked_add(size);
    if size < MDA_HEADER_LEN * 2 || area_end.is_none_or(|end| end > pv.capacity()) {
        return Err(LayoutError::damaged(
            structure,
            format!(
                "{size} bytes do not fit in the {}-byte PV (or are too small)",
                pv.capacity()
            ),
        ));
    }
    let header = read_bytes(pv, offset, MDA_HEADER_LEN as usize, &structure)?;
    let stored = le32(&header, 0);
    let computed = lvm_crc(header.get(4..).unwrap_or_default());
    if stored != computed {
        return Err(LayoutError::Checksum {
            structure,
            stored,
            computed,
        });
    }
    if header.get(4..20) != Some(MDA_MAGIC.as_slice()) {
        return Err(LayoutError::damaged(structure, "wrong magic"));
    }
    let version = le32(&header, 20);
    if version != 1 {
        return Err(LayoutError::damaged(
            structure,
            format!("version {version}, expected 1"),
        ));
    }
    let (own_start, own_size) = (le64(&header, 24), le64(&header, 32));
    if own_start != offset || own_size != size {
        return Err(LayoutError::damaged(
            structure,
            format!(
                "header says the area is {own_size} bytes at byte {own_start}, the PV label says \
                 {size} bytes at {offset}"
            ),
        ));
    }
    // The first raw_locn is the committed metadata; a second one, if any, is
    // a precommitted copy that LVM itself ignores when reading.
    let (text_offset, text_size) = (le64(&header, 40), le64(&header, 48));
    let checksum = le32(&header, 56);
    let flags = le32(&header, 60);
    if text_offset == 0 || text_size == 0 || flags & RAW_LOCN_IGNORED != 0 {
        return Ok(None);
    }
    let buffer = size - MDA_HEADER_LEN;
    if text_offset < MDA_HEADER_LEN || text_offset >= size || text_size > buffer.min(MAX_TEXT) {
        return Err(LayoutError::damaged(
            structure,
            format!(
                "metadata text of {text_size} bytes at offset {text_offset} does not fit in the \
                 {buffer}-byte buffer"
            ),
        ));
    }
    // Circular buffer: the text runs to the area's end, then wraps to just
    // after the header.
    let first_len = text_size.min(size - text_offset);
    let wrapped_len = text_size - first_len;
    let mut text = read_bytes(pv, offset + text_offset, first_len as usize, &structure)?;
    if wrapped_len > 0 {
        let rest = read_bytes(
            pv,
            offset + MDA_HEADER_LEN,
            wrapped_len as usize,
            &structure,
        )?;
        text.extend_from_slice(&rest);
    }
    let computed = lvm_crc(&text);
    if computed != checksum {
        return Err(LayoutError::Checksum {
            structure: format!("LVM metadata text in the area at byte {offset} of {what}"),
            stored: checksum,
            computed,
        });
    }
    Ok(Some(text))
}
