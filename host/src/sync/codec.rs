//! How a block's bytes travel: raw, zstd-compressed, or as a hole.
//!
//! Compression is negotiated at `Open` and then adaptive: a block that does not
//! shrink by at least an eighth is sent raw, and the next blocks skip the
//! attempt, because disk data comes in runs (a run of media files, a run of
//! zeroed free space) and a failed attempt costs a whole block of CPU.

use super::proto::Encoding;
use prost::bytes::Bytes;

/// Blocks to send raw after one failed to compress, before trying again.
const SKIP_AFTER_MISS: u32 = 16;

/// zstd level: the fastest, which still shrinks text and binaries well.
const ZSTD_LEVEL: i32 = 1;

/// Chooses each block's encoding.
#[derive(Debug)]
pub struct Encoder {
    compress: bool,
    skip: u32,
}

impl Encoder {
    /// An encoder; `compress` is what was negotiated.
    pub fn new(compress: bool) -> Self {
        Encoder { compress, skip: 0 }
    }

    /// Encodes a non-zero block: returns the encoding and the payload.
    pub fn encode(&mut self, block: Vec<u8>) -> (Encoding, Vec<u8>) {
        if !self.compress {
            return (Encoding::Raw, block);
        }
        if self.skip > 0 {
            self.skip -= 1;
            return (Encoding::Raw, block);
        }
        match zstd::bulk::compress(&block, ZSTD_LEVEL) {
            Ok(packed) if packed.len() <= block.len() - block.len() / 8 => (Encoding::Zstd, packed),
            _ => {
                self.skip = SKIP_AFTER_MISS;
                (Encoding::Raw, block)
            }
        }
    }
}

/// Restores a block's bytes; `length` bounds decompression, so a hostile
/// payload cannot make the receiver allocate more than one block.
/// A raw payload is returned as is, without a copy.
pub fn decode(encoding: Encoding, payload: Bytes, length: usize) -> Result<Bytes, String> {
    let data = match encoding {
        Encoding::Raw => payload,
        Encoding::Zero => Bytes::from(vec![0u8; length]),
        Encoding::Zstd => zstd::bulk::decompress(&payload, length)
            .map(Bytes::from)
            .map_err(|e| format!("zstd: {e}"))?,
    };
    if data.len() != length {
        return Err(format!(
            "{} bytes where {length} were announced",
            data.len()
        ));
    }
    Ok(data)
}
