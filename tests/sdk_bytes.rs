//! The SDK's bounds-checked `ByteReader`: both byte orders, cursor
//! movement, and out-of-bounds reads as errors instead of panics.

use homeward_sdk::bytes::ByteReader;

#[test]
fn reads_both_byte_orders_and_advances() {
    let data = [0x53, 0xef, 0x01, 0x00, 0x00, 0x00, 0x00, 0x02];
    let mut r = ByteReader::new(&data);
    assert_eq!(r.le_u16().unwrap(), 0xef53);
    assert_eq!(r.position(), 2);
    assert_eq!(r.le_u16().unwrap(), 1);
    assert_eq!(r.be_u32().unwrap(), 2);
    assert_eq!(r.remaining(), 0);
    assert_eq!(r.le_u64_at(0).unwrap(), 0x0200_0000_0001_ef53);
}

#[test]
fn out_of_bounds_is_an_error_not_a_panic() {
    let data = [1u8, 2, 3];
    let mut r = ByteReader::new(&data).named("test superblock");
    let err = r.le_u32().unwrap_err();
    assert_eq!(err.offset, 0);
    assert_eq!(err.wanted, 4);
    assert!(err.to_string().contains("test superblock"));
    assert!(r.slice_at(usize::MAX, 2).is_err());
    assert!(r.skip(usize::MAX).is_err());
    assert!(r.seek(4).is_err());
    assert_eq!(r.position(), 0, "a failed read must not move the cursor");
}
