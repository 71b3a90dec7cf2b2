//! Whether the internal log is clean, for `FsInfo::clean`.
//!
//! `sb_inprogress` only says mkfs finished, and v5 has no "dirty" flag in the
//! superblock: the truth is in the log. We find the log head the way the kernel
//! does (`xlog_find_head`): every 512-byte log block starts with the cycle
//! number it was written in (or, for a record header, the magic followed by
//! the cycle), the blocks before the head carry the current cycle and the
//! blocks after it the previous one, so a binary search finds the first block
//! of the older cycle. The last record before the head is the last thing
//! written: the log is clean when it is an unmount record (one log operation
//! flagged `XLOG_UNMOUNT_TRANS`), exactly the test the kernel uses to skip
//! recovery (`xlog_check_unmount_rec`). Anything unexpected reads as "not
//! clean": the answer only decides whether we refuse to write.

use crate::superblock::Superblock;
use homeward_sdk::Error;
use homeward_sdk::fs::Device;

/// The size of a log "basic block".
const BB: u64 = 512;
/// `XLOG_HEADER_MAGIC_NUM`.
const RECORD_MAGIC: u32 = 0xfeed_babe;
/// `XLOG_UNMOUNT_TRANS`, in a log operation header's flags.
const UNMOUNT_TRANS: u8 = 0x20;
/// How far back from the head a record header may be: a record is at most
/// 256 KiB of data plus its header blocks.
const MAX_RECORD_BBS: u64 = 2 * 256 * 1024 / BB;
/// Log blocks read while looking for the head: a binary search needs ~40.
const MAX_PROBES: usize = 128;

/// True when the log ends with an unmount record (no recovery needed).
pub fn is_clean(dev: &dyn Device, sb: &Superblock) -> Result<bool, Error> {
    if sb.inprogress != 0 {
        return Ok(false);
    }
    let Some(start) = sb.fsb_to_byte(sb.log_start) else {
        return Ok(false);
    };
    if sb.log_start == 0 {
        // An external log device: we cannot see it, so we cannot vouch for it.
        return Ok(false);
    }
    let log_bbs = u64::from(sb.log_blocks) * u64::from(sb.block_size) / BB;
    if log_bbs < 2 {
        return Ok(false);
    }
    let log = LogReader {
        dev,
        start,
        bbs: log_bbs,
    };
    let Some(head) = log.find_head()? else {
        return Ok(false);
    };
    log.last_record_is_unmount(head)
}

struct LogReader<'a> {
    dev: &'a dyn Device,
    start: u64,
    bbs: u64,
}

impl LogReader<'_> {
    fn block(&self, bb: u64) -> Result<[u8; 512], Error> {
        let mut buf = [0u8; 512];
        let offset = (bb % self.bbs)
            .checked_mul(BB)
            .and_then(|o| o.checked_add(self.start))
            .ok_or_else(|| Error::invalid_input("xfs: log block offset overflows"))?;
        self.dev.read_at(offset, &mut buf)?;
        Ok(buf)
    }

    fn cycle(&self, bb: u64) -> Result<u32, Error> {
        let buf = self.block(bb)?;
        let word = |at: usize| u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
        Ok(if word(0) == RECORD_MAGIC {
            word(4)
        } else {
            word(0)
        })
    }

    /// The first block not yet written in the current cycle (the head).
    fn find_head(&self) -> Result<Option<u64>, Error> {
        let first = self.cycle(0)?;
        let last = self.cycle(self.bbs - 1)?;
        if first == 0 {
            // Never written (a zeroed log has nothing to recover).
            return Ok(None);
        }
        if first == last {
            // The whole log is in one cycle: the head wrapped to block 0.
            return Ok(Some(self.bbs));
        }
        // Invariant: cycle(lo) == first, cycle(hi) != first.
        let (mut lo, mut hi) = (0u64, self.bbs - 1);
        let mut probes = 0;
        while hi - lo > 1 {
            probes += 1;
            if probes > MAX_PROBES {
                return Ok(None);
            }
            let mid = lo + (hi - lo) / 2;
            if self.cycle(mid)? == first {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Ok(Some(hi))
    }

    /// Whether the record just before `head` is an unmount record.
    fn last_record_is_unmount(&self, head: u64) -> Result<bool, Error> {
        let limit = MAX_RECORD_BBS.min(self.bbs);
        for back in 1..=limit {
            let bb = (head + self.bbs - back) % self.bbs;
            let header = self.block(bb)?;
            if header[..4] != RECORD_MAGIC.to_be_bytes() {
                continue;
            }
            let be32 = |at: usize| {
                u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
            };
            let num_logops = be32(40);
            let version = be32(8);
            let size = be32(320);
            // v2 logs with records over 32 KiB use extra header blocks.
            let header_bbs = if version & 2 != 0 && size > 32768 {
                u64::from(size.div_ceil(32768))
            } else {
                1
            };
            if num_logops != 1 {
                return Ok(false);
            }
            let op = self.block(bb + header_bbs)?;
            // xlog_op_header: tid(4) len(4) clientid(1) flags(1).
            return Ok(op[9] & UNMOUNT_TRANS != 0);
        }
        Ok(false)
    }
}
