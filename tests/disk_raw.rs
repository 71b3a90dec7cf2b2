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

#[test]
fn create_makes_a_sparse_file_and_never_overwrites() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.img");
    let disk = RawFile::create(&path, 1 << 30).unwrap();
    assert_eq!(disk.capacity(), 1 << 30);
    assert!(disk.writable());
    disk.write_at(b"end", (1 << 30) - 3).unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.len(), 1 << 30);
    assert!(meta.blocks() * 512 < 1 << 20, "sparse, not 1 GiB of zeros");
    drop(disk);
    assert_eq!(
        RawFile::create(&path, 4096).unwrap_err().kind(),
        io::ErrorKind::AlreadyExists
    );
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 1 << 30);
}

#[test]
fn allocated_ranges_follow_the_file_system() {
    let dir = tempfile::tempdir().unwrap();
    // A file with no holes is one range, whatever the file system.
    let full = dir.path().join("full.img");
    std::fs::write(&full, vec![1u8; 8192]).unwrap();
    let ranges = RawFile::open(&full).unwrap().allocated_ranges().unwrap();
    assert!(
        ranges.is_none()
            || ranges
                == Some(vec![std::ops::Range {
                    start: 0,
                    end: 8192
                }]),
        "{ranges:?}"
    );
    // An empty file has no data.
    let empty = dir.path().join("empty.img");
    std::fs::write(&empty, b"").unwrap();
    let ranges = RawFile::open(&empty).unwrap().allocated_ranges().unwrap();
    assert!(ranges.is_none() || ranges == Some(vec![]), "{ranges:?}");

    // All holes (SEEK_DATA says ENXIO at offset 0), then data at the end only.
    let sparse = dir.path().join("sparse.img");
    let disk = RawFile::create(&sparse, 8 << 20).unwrap();
    let Some(ranges) = disk.allocated_ranges().unwrap() else {
        eprintln!("file system cannot report holes: nothing more to check");
        return;
    };
    if !ranges.is_empty() {
        eprintln!("file system reports no holes: nothing more to check");
        return;
    }
    disk.write_at(&[7u8; 4096], (8 << 20) - 4096).unwrap();
    let ranges = disk.allocated_ranges().unwrap().unwrap();
    assert_eq!(ranges.len(), 1, "{ranges:?}");
    assert_eq!(ranges[0].end, 8 << 20);
    assert!(ranges[0].start <= (8 << 20) - 4096 && ranges[0].start >= (8 << 20) - (1 << 20));
    // Ranges and zeros agree: everything outside reads as zero.
    let mut buf = vec![1u8; 1 << 20];
    disk.read_at(&mut buf, 0).unwrap();
    assert!(buf.iter().all(|&b| b == 0));
}
