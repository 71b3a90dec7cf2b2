//! The AG free-space header (AGF), one per allocation group in its second
//! sector: where the free-space and reference-count trees are rooted, and
//! the AG free list (AGFL, fourth sector) of blocks reserved for B+tree
//! growth.

use crate::checksum::{update_crc, verify_crc};
use crate::corrupt;
use crate::superblock::Superblock;
use homeward_sdk::Error;
use homeward_sdk::bytes::ByteReader;
use homeward_sdk::fs::Device;

/// "XAGF".
const MAGIC: u32 = 0x5841_4746;
/// Offset of `agf_crc`.
const CRC_OFFSET: usize = 216;
/// "XAFL".
const AGFL_MAGIC: u32 = 0x5841_464c;
/// The v5 AGFL header; block numbers follow it.
const AGFL_HEADER_LEN: usize = 36;
/// Offset of `agfl_crc`.
const AGFL_CRC_OFFSET: usize = 32;

/// The AGF fields the handler uses.
#[derive(Debug, Clone)]
pub struct Agf {
    /// Blocks in this AG (the last AG may be shorter).
    pub length: u32,
    /// First, last and count of the used AGFL slots (a ring).
    pub fl_first: u32,
    pub fl_last: u32,
    pub fl_count: u32,
    /// Root block of the by-block-number free-space tree.
    pub bno_root: u32,
    /// Its number of levels.
    pub bno_levels: u32,
    /// Root block of the by-size free-space tree.
    pub cnt_root: u32,
    /// Its number of levels.
    pub cnt_levels: u32,
    /// Root block of the reverse-mapping tree (rmapbt only).
    pub rmap_root: u32,
    /// Its number of levels.
    pub rmap_levels: u32,
    /// Free blocks in the free-space trees.
    pub free_blocks: u32,
    /// Root block of the reference-count tree (reflink only).
    pub refcount_root: u32,
    /// Its number of levels.
    pub refcount_levels: u32,
    /// Byte offset of the AGF sector.
    pub offset: u64,
    /// The sector as read, for rewriting.
    pub raw: Vec<u8>,
}

impl Agf {
    /// Reads and checks the AGF of AG `agno`.
    pub fn read(dev: &dyn Device, sb: &Superblock, agno: u32) -> Result<Agf, Error> {
        let ag_start = sb
            .ag_block_to_byte(agno, 0)
            .ok_or_else(|| corrupt(format!("AG {agno} is outside the file system")))?;
        let sect = usize::from(sb.sect_size);
        let offset = ag_start.saturating_add(u64::from(sb.sect_size));
        let sector = dev.read_vec(offset, sect)?;
        let r = ByteReader::new(&sector).named("xfs AGF");
        let magic = r.be_u32_at(0)?;
        if magic != MAGIC {
            return Err(corrupt(format!(
                "AG {agno}: AGF magic 0x{magic:08x}, expected 0x{MAGIC:08x} (damaged AG header)"
            )));
        }
        verify_crc(&sector, CRC_OFFSET, || format!("AG {agno}: AGF"))?;
        let seqno = r.be_u32_at(8)?;
        let length = r.be_u32_at(12)?;
        let expected_length = if agno + 1 == sb.ag_count {
            sb.dblocks
                .saturating_sub(u64::from(agno) * u64::from(sb.ag_blocks))
        } else {
            u64::from(sb.ag_blocks)
        };
        if seqno != agno || u64::from(length) != expected_length {
            return Err(corrupt(format!(
                "AG {agno}: AGF says AG {seqno} of {length} blocks, expected AG {agno} of \
                 {expected_length} blocks (damaged AG header)"
            )));
        }
        Ok(Agf {
            length,
            fl_first: r.be_u32_at(40)?,
            fl_last: r.be_u32_at(44)?,
            fl_count: r.be_u32_at(48)?,
            bno_root: r.be_u32_at(16)?,
            bno_levels: r.be_u32_at(28)?,
            cnt_root: r.be_u32_at(20)?,
            cnt_levels: r.be_u32_at(32)?,
            rmap_root: r.be_u32_at(24)?,
            rmap_levels: r.be_u32_at(36)?,
            free_blocks: r.be_u32_at(52)?,
            refcount_root: r.be_u32_at(88)?,
            refcount_levels: r.be_u32_at(92)?,
            offset,
            raw: sector,
        })
    }

    /// The sector with new free-block and longest-extent counts and its CRC.
    pub fn with_free_space(&self, free_blocks: u32, longest: u32) -> Result<Vec<u8>, Error> {
        let mut raw = self.raw.clone();
        for (at, value) in [(52, free_blocks), (56, longest)] {
            raw.get_mut(at..at + 4)
                .ok_or_else(|| Error::internal("xfs: AGF field outside the sector"))?
                .copy_from_slice(&value.to_be_bytes());
        }
        update_crc(&mut raw, CRC_OFFSET)?;
        Ok(raw)
    }
}

/// The blocks on AG `agno`'s free list: free space the allocator keeps aside
/// for B+tree splits (`xfs_db freesp` counts them as free, one block each).
pub fn free_list(
    dev: &dyn Device,
    sb: &Superblock,
    agno: u32,
    agf: &Agf,
) -> Result<Vec<u32>, Error> {
    if agf.fl_count == 0 {
        return Ok(Vec::new());
    }
    let ag_start = sb
        .ag_block_to_byte(agno, 0)
        .ok_or_else(|| corrupt(format!("AG {agno} is outside the file system")))?;
    let sect = usize::from(sb.sect_size);
    let sector = dev.read_vec(ag_start.saturating_add(3 * u64::from(sb.sect_size)), sect)?;
    let r = ByteReader::new(&sector).named("xfs AGFL");
    let magic = r.be_u32_at(0)?;
    if magic != AGFL_MAGIC {
        return Err(corrupt(format!(
            "AG {agno}: AGFL magic 0x{magic:08x}, expected 0x{AGFL_MAGIC:08x} (damaged AG header)"
        )));
    }
    verify_crc(&sector, AGFL_CRC_OFFSET, || format!("AG {agno}: AGFL"))?;
    let slots = ((sect - AGFL_HEADER_LEN) / 4) as u32;
    if agf.fl_count > slots || agf.fl_first >= slots || agf.fl_last >= slots {
        return Err(corrupt(format!(
            "AG {agno}: AGF free list first {} last {} count {} do not fit the AGFL's {slots} slots \
             (damaged AG header)",
            agf.fl_first, agf.fl_last, agf.fl_count
        )));
    }
    let mut blocks = Vec::with_capacity(agf.fl_count as usize);
    for i in 0..agf.fl_count {
        let slot = (agf.fl_first + i) % slots;
        blocks.push(r.be_u32_at(AGFL_HEADER_LEN + slot as usize * 4)?);
    }
    Ok(blocks)
}
