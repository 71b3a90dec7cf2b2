//! Raw disk images: reads and writes at offsets, and refusals past the end
//! or on a read-only image.

use std::io;

use homeward::disk::{BlockDevice, RawFile};

#[test]
fn reads_writes_and_refuses_past_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.img");
    std::fs::write(&path, vec![7u8; 4096]).unwrap();
    let disk = RawFile::open_writable(&path).unwrap();
    disk.write_at(b"abc", 100).unwrap();
    let mut buf = [0u8; 5];
    disk.read_at(&mut buf, 99).unwrap();
    assert_eq!(&buf, b"\x07abc\x07");
    assert!(disk.read_at(&mut buf, 4094).is_err());
    assert!(disk.write_at(b"x", u64::MAX).is_err());
    let ro = RawFile::open(&path).unwrap();
    assert_eq!(
        ro.write_at(b"x", 0).unwrap_err().kind(),
        io::ErrorKind::PermissionDenied
    );
}
