//! Symlink targets: inline in the inode (local format) or in "remote" blocks,
//! each extent of which starts with an `xfs_dsymlink_hdr` ("XSLM") on v5.

use crate::bmap;
use crate::checksum::verify_crc;
use crate::corrupt;
use crate::inode::{ForkFormat, Inode};
use crate::superblock::Superblock;
use homeward_sdk::Error;
use homeward_sdk::bytes::ByteReader;
use homeward_sdk::fs::Device;

/// Linux's `XFS_SYMLINK_MAXLEN`.
const MAX_LEN: u64 = 1024;
/// "XSLM".
const MAGIC: u32 = 0x5853_4c4d;
/// The v5 remote symlink block header.
const HEADER_LEN: usize = 56;
/// Offset of the header's CRC.
const CRC_OFFSET: usize = 12;
/// Offset of the header's owner (the symlink's inode number).
const OWNER_OFFSET: usize = 32;
/// Extents a target of at most 1 KiB can span.
const MAX_EXTENTS: usize = 4;

/// The target of symlink `link`, as stored.
pub fn target(dev: &dyn Device, sb: &Superblock, link: &Inode) -> Result<String, Error> {
    let ino = link.ino;
    if link.size == 0 || link.size > MAX_LEN {
        return Err(corrupt(format!(
            "symlink inode {ino}: target length {} is outside 1..={MAX_LEN} (damaged inode)",
            link.size
        )));
    }
    let len = link.size as usize;
    let bytes = match link.format {
        ForkFormat::Local => link
            .data_fork()
            .get(..len)
            .ok_or_else(|| {
                corrupt(format!(
                    "symlink inode {ino}: inline target of {len} bytes exceeds the data fork (damaged inode)"
                ))
            })?
            .to_vec(),
        ForkFormat::Extents | ForkFormat::Btree => remote(dev, sb, link, len)?,
        ForkFormat::Device => {
            return Err(corrupt(format!("symlink inode {ino}: data fork has device format")));
        }
    };
    String::from_utf8(bytes)
        .map_err(|_| Error::unsupported(format!("symlink inode {ino}: the target is not UTF-8")))
}

/// A target stored in blocks: each extent holds a header and a chunk.
fn remote(dev: &dyn Device, sb: &Superblock, link: &Inode, len: usize) -> Result<Vec<u8>, Error> {
    let ino = link.ino;
    let mut extents = bmap::extents(dev, sb, link)?;
    if extents.len() > MAX_EXTENTS {
        return Err(corrupt(format!(
            "symlink inode {ino}: {} extents for a target of {len} bytes (damaged inode)",
            extents.len()
        )));
    }
    extents.sort_by_key(|e| e.file_block);
    let mut out = Vec::with_capacity(len);
    for e in extents {
        if out.len() >= len {
            break;
        }
        let byte_len = e
            .blocks
            .checked_mul(u64::from(sb.block_size))
            .filter(|&n| n <= 4 * MAX_LEN + 4 * 65536)
            .ok_or_else(|| {
                corrupt(format!(
                    "symlink inode {ino}: extent of {} blocks is too long",
                    e.blocks
                ))
            })?;
        let offset = sb.fsb_to_byte(e.disk_block).ok_or_else(|| {
            corrupt(format!(
                "symlink inode {ino}: block outside the file system"
            ))
        })?;
        let buf = dev.read_vec(offset, byte_len as usize)?;
        let r = ByteReader::new(&buf).named("xfs symlink block");
        let magic = r.be_u32_at(0)?;
        if magic != MAGIC {
            return Err(corrupt(format!(
                "symlink inode {ino}: block magic 0x{magic:08x}, expected 0x{MAGIC:08x} (damaged symlink block)"
            )));
        }
        verify_crc(&buf, CRC_OFFSET, || {
            format!("symlink inode {ino}: target block")
        })?;
        let chunk_offset = r.be_u32_at(4)? as usize;
        let chunk_len = r.be_u32_at(8)? as usize;
        let owner = r.be_u64_at(OWNER_OFFSET)?;
        if owner != ino || chunk_offset != out.len() || chunk_len > len - out.len() {
            return Err(corrupt(format!(
                "symlink inode {ino}: block header says {chunk_len} bytes at {chunk_offset} of \
                 inode {owner}, expected bytes from {} of inode {ino} (damaged symlink block)",
                out.len()
            )));
        }
        out.extend_from_slice(r.slice_at(HEADER_LEN, chunk_len)?);
    }
    if out.len() != len {
        return Err(corrupt(format!(
            "symlink inode {ino}: blocks hold {} of the {len} target bytes (damaged symlink)",
            out.len()
        )));
    }
    Ok(out)
}
