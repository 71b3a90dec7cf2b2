//! In-inode extended attributes, read only for what `inline_data` needs: the
//! `system.data` attribute holding the part of an inline file or directory
//! that does not fit in `i_block`.

use crate::inode::Inode;
use homeward_sdk::Error;
use homeward_sdk::bytes::ByteReader;

const MAGIC: u32 = 0xea02_0000;
/// Name index of the `system.` prefix.
const INDEX_SYSTEM: u8 = 7;
const ENTRY_HEADER: usize = 16;

/// The value of `system.data` stored in the inode body, if any.
pub fn inline_data_tail(inode: &Inode) -> Result<Vec<u8>, Error> {
    let start = 128 + inode.extra_isize();
    let Some(area) = inode.raw.get(start..) else {
        return Ok(Vec::new());
    };
    let r = ByteReader::new(area).named("ext4 in-inode xattrs");
    if area.len() < 4 || r.le_u32_at(0)? != MAGIC {
        return Ok(Vec::new());
    }
    // Entries follow the magic; value offsets count from the first entry.
    let entries = area.get(4..).unwrap_or_default();
    let r = ByteReader::new(entries).named("ext4 in-inode xattrs");
    let mut at = 0usize;
    // Each entry takes at least 16 bytes, which bounds the loop.
    while at + 4 <= entries.len() && r.le_u32_at(at)? != 0 {
        let name_len = usize::from(r.u8_at(at)?);
        let index = r.u8_at(at + 1)?;
        let value_offset = usize::from(r.le_u16_at(at + 2)?);
        let value_inum = r.le_u32_at(at + 4)?;
        let value_size = r.le_u32_at(at + 8)? as usize;
        let name = r.slice_at(at + ENTRY_HEADER, name_len)?;
        if index == INDEX_SYSTEM && name == b"data" {
            if value_inum != 0 {
                return Err(Error::invalid_input(format!(
                    "ext4: inode {}: system.data stored in inode {value_inum} (damaged inline data)",
                    inode.ino
                )));
            }
            return Ok(r.slice_at(value_offset, value_size)?.to_vec());
        }
        at += (ENTRY_HEADER + name_len).div_ceil(4) * 4;
    }
    Ok(Vec::new())
}

const BLOCK_REFCOUNT: usize = 4;
const BLOCK_CHECKSUM: usize = 0x10;

/// Drops one reference to the shared extended-attribute block `block` (when
/// its inode goes away). Returns true when nothing references it any more and
/// the caller should free it.
pub fn release_block(vol: &crate::volume::Volume, block: u64) -> Result<bool, Error> {
    let mut bytes = vol.read_block(block)?;
    let r = ByteReader::new(&bytes).named("ext4 xattr block");
    if r.le_u32_at(0)? != MAGIC {
        return Err(Error::invalid_input(format!(
            "ext4: extended-attribute block {block}: bad magic (damaged xattr block)"
        )));
    }
    let refcount = r.le_u32_at(BLOCK_REFCOUNT)?;
    if refcount <= 1 {
        return Ok(true);
    }
    crate::superblock::put_u32(&mut bytes, BLOCK_REFCOUNT, refcount - 1);
    if vol.sb.has_metadata_csum() {
        // The block's checksum covers its number, then the block with the
        // checksum field zeroed.
        crate::superblock::put_u32(&mut bytes, BLOCK_CHECKSUM, 0);
        let crc = crate::checksum::crc32c_update(vol.sb.csum_seed, &block.to_le_bytes());
        let crc = crate::checksum::crc32c_update(crc, &bytes);
        crate::superblock::put_u32(&mut bytes, BLOCK_CHECKSUM, crc);
    }
    vol.write_block(block, &bytes)?;
    Ok(false)
}
