//! The checksums ext4 keeps over its metadata: CRC-16 for group descriptors
//! under `uninit_bg`/`gdt_csum`, and the per-file-system and per-inode CRC-32C
//! seeds `metadata_csum` starts from.
//!
//! The CRC-32C itself is the SDK's ([`crc32c_update`]): ext4 stores it without
//! the final inversion, exactly what that function returns.

pub use homeward_sdk::fs::crc32c_update;

/// Linux's `crc16` (polynomial 0x8005, bit-reflected), continuing from `crc`.
pub fn crc16(mut crc: u16, data: &[u8]) -> u16 {
    for &byte in data {
        crc ^= u16::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xa001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// The seed of every per-inode checksum (extent blocks, directory blocks,
/// the inode itself): the file-system seed extended by the inode number and
/// generation, as the kernel's `ei->i_csum_seed`.
pub fn inode_seed(fs_seed: u32, ino: u32, generation: u32) -> u32 {
    let crc = crc32c_update(fs_seed, &ino.to_le_bytes());
    crc32c_update(crc, &generation.to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_matches_the_kernel_check_value() {
        // CRC-16/ARC of "123456789" (init 0) is 0xbb3d.
        assert_eq!(crc16(0, b"123456789"), 0xbb3d);
    }
}
