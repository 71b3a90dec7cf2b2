//! Bit operations on ext4's on-disk bitmaps (bit `i` of byte `i / 8`, least
//! significant first), and the run scanning both `used_extents` and the
//! block allocator need.

/// Whether bit `index` is set; bits past the buffer read as set (in use), so
/// a short bitmap never offers blocks that are not there.
pub fn test(bitmap: &[u8], index: u32) -> bool {
    bitmap
        .get(index as usize / 8)
        .is_none_or(|byte| byte & (1 << (index % 8)) != 0)
}

/// Sets or clears bit `index` (ignored past the buffer).
pub fn set(bitmap: &mut [u8], index: u32, value: bool) {
    if let Some(byte) = bitmap.get_mut(index as usize / 8) {
        if value {
            *byte |= 1 << (index % 8);
        } else {
            *byte &= !(1 << (index % 8));
        }
    }
}

/// Runs `(start, length)` of bits equal to `value` among the first `nbits`.
pub fn runs(bitmap: &[u8], nbits: u32, value: bool) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let mut start: Option<u32> = None;
    let mut index = 0u32;
    let (full, empty) = if value { (0xffu8, 0u8) } else { (0u8, 0xffu8) };
    while index < nbits {
        // Whole bytes of one value are the common case: step over them.
        if index.is_multiple_of(8) && index + 8 <= nbits {
            match bitmap.get(index as usize / 8) {
                Some(&b) if b == full => {
                    start.get_or_insert(index);
                    index += 8;
                    continue;
                }
                Some(&b) if b == empty => {
                    if let Some(s) = start.take() {
                        out.push((s, index - s));
                    }
                    index += 8;
                    continue;
                }
                _ => {}
            }
        }
        if test(bitmap, index) == value {
            start.get_or_insert(index);
        } else if let Some(s) = start.take() {
            out.push((s, index - s));
        }
        index += 1;
    }
    if let Some(s) = start {
        out.push((s, nbits - s));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_cross_byte_boundaries() {
        let bitmap = [0b1111_0000u8, 0xff, 0b0000_0001, 0];
        assert_eq!(runs(&bitmap, 32, true), vec![(4, 13)]);
        assert_eq!(runs(&bitmap, 32, false), vec![(0, 4), (17, 15)]);
        assert_eq!(runs(&bitmap, 10, true), vec![(4, 6)]);
    }
}
