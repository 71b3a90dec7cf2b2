//! The CRC32C every v5 metadata structure carries: computed over the whole
//! structure with its own CRC field taken as zero, stored little-endian and
//! inverted (Linux's `xfs_update_cksum`).

use crate::corrupt;
use homeward_sdk::Error;
use homeward_sdk::fs::crc32c_update;

/// The CRC of `buf` with the four bytes at `crc_offset` counted as zero.
fn compute(buf: &[u8], crc_offset: usize) -> Option<u32> {
    let end = crc_offset.checked_add(4)?;
    let before = buf.get(..crc_offset)?;
    let after = buf.get(end..)?;
    let crc = crc32c_update(!0, before);
    let crc = crc32c_update(crc, &[0; 4]);
    Some(!crc32c_update(crc, after))
}

/// Fails with an `invalid-input` naming `what()` when the stored CRC is wrong.
pub fn verify_crc(
    buf: &[u8],
    crc_offset: usize,
    what: impl FnOnce() -> String,
) -> Result<(), Error> {
    let stored = buf
        .get(crc_offset..crc_offset.saturating_add(4))
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes);
    match (stored, compute(buf, crc_offset)) {
        (Some(stored), Some(computed)) if stored == computed => Ok(()),
        (Some(stored), Some(computed)) => Err(corrupt(format!(
            "{}: CRC 0x{stored:08x} on disk, computed 0x{computed:08x} (damaged metadata)",
            what()
        ))),
        _ => Err(corrupt(format!("{}: too short to hold its CRC", what()))),
    }
}

/// Stores the CRC of `buf` at `crc_offset`, after a change.
pub fn update_crc(buf: &mut [u8], crc_offset: usize) -> Result<(), Error> {
    let crc = compute(buf, crc_offset)
        .ok_or_else(|| Error::internal("xfs: CRC field outside the structure being written"))?;
    let field = buf
        .get_mut(crc_offset..crc_offset.saturating_add(4))
        .ok_or_else(|| Error::internal("xfs: CRC field outside the structure being written"))?;
    field.copy_from_slice(&crc.to_le_bytes());
    Ok(())
}
