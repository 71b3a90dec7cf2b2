//! CRC-32 (reflected polynomial 0xEDB88320), the checksum of GPT headers and
//! partition arrays and, with another start value and no final inversion, of
//! LVM2 labels and metadata.
//!
//! Written here rather than taken from a crate: it is a 256-entry table and a
//! loop, and the LVM variant (seed `0xf597a6cf`, no inversion) is not what CRC
//! crates offer ready-made.

/// The table for one byte at a time, built at compile time.
const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// Continues a raw CRC (no inversion) over `data`.
pub(crate) fn update(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc = TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

/// The standard CRC-32 of `data` (zlib, GPT).
pub(crate) fn crc32(data: &[u8]) -> u32 {
    !update(0xFFFF_FFFF, data)
}

/// The start value of LVM2's `calc_crc` (`INITIAL_CRC` in lvm2's `crc.h`).
pub(crate) const LVM_INITIAL: u32 = 0xf597_a6cf;

/// LVM2's checksum of `data`: the same CRC, seeded with [`LVM_INITIAL`] and
/// not inverted.
pub(crate) fn lvm_crc(data: &[u8]) -> u32 {
    update(LVM_INITIAL, data)
}
