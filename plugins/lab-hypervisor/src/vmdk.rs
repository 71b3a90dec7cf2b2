//! Lab disks as VMware monolithicFlat files: a text descriptor plus a sparse
//! `-flat.vmdk` extent, the format `homeward::disk::vmdk` and `qemu-img` read.
//! Plain `std::fs`, so it runs in the sandbox (WASI) and natively alike.

use crate::format::flat_name;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Bytes copied per read when freezing a disk for a snapshot.
const COPY_CHUNK: usize = 1 << 20;

/// The descriptor text of a disk of `capacity` bytes whose extent is
/// `flat_file`, as `qemu-img create -f vmdk -o subformat=monolithicFlat`
/// writes it, plus the disk UUID the way vSphere records it (`ddb.uuid`).
/// `cid_seed` makes the content ID deterministic.
pub fn descriptor_text(flat_file: &str, capacity: u64, uuid: &str, cid_seed: u64) -> String {
    let sectors = capacity / 512;
    let mut cid = (cid_seed as u32).wrapping_mul(0x9e37_79b1) ^ 0x4c41_4231;
    // ffffffff means "no parent" in parentCID; never use it as a CID.
    if cid == u32::MAX {
        cid -= 1;
    }
    let cylinders = sectors / (255 * 63);
    format!(
        "# Disk DescriptorFile\n\
         version=1\n\
         CID={cid:08x}\n\
         parentCID=ffffffff\n\
         createType=\"monolithicFlat\"\n\
         \n\
         # Extent description\n\
         RW {sectors} FLAT \"{flat_file}\" 0\n\
         \n\
         # The Disk Data Base\n\
         #DDB\n\
         \n\
         ddb.virtualHWVersion = \"4\"\n\
         ddb.geometry.cylinders = \"{cylinders}\"\n\
         ddb.geometry.heads = \"255\"\n\
         ddb.geometry.sectors = \"63\"\n\
         ddb.adapterType = \"lsilogic\"\n\
         ddb.thinProvisioned = \"1\"\n\
         ddb.uuid = \"{}\"\n",
        vmware_uuid(uuid)
    )
}

/// `6000c290-0000-0000-0000-000000000001` as a descriptor writes it:
/// `60 00 c2 90 00 00 00 00-00 00 00 00 00 00 00 01`.
fn vmware_uuid(uuid: &str) -> String {
    let hex: Vec<char> = uuid.chars().filter(char::is_ascii_hexdigit).collect();
    let bytes: Vec<String> = hex.chunks(2).map(|c| c.iter().collect()).collect();
    if bytes.len() != 16 {
        return uuid.to_string();
    }
    format!("{}-{}", bytes[..8].join(" "), bytes[8..].join(" "))
}

/// Creates `<dir>/<descriptor>` and its sparse flat extent of `capacity`
/// bytes. Neither may exist; on failure nothing this call created is left.
pub fn create(
    dir: &Path,
    descriptor: &str,
    capacity: u64,
    uuid: &str,
    cid_seed: u64,
) -> std::io::Result<()> {
    let flat = flat_name(descriptor);
    let desc_path = dir.join(descriptor);
    let flat_path = dir.join(&flat);
    let mut desc_file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&desc_path)?;
    let made = (|| {
        let flat_file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&flat_path)?;
        flat_file.set_len(capacity)?;
        flat_file.sync_all()?;
        desc_file.write_all(descriptor_text(&flat, capacity, uuid, cid_seed).as_bytes())?;
        desc_file.sync_all()
    })();
    if made.is_err() {
        let _ = std::fs::remove_file(&desc_path);
        let _ = std::fs::remove_file(&flat_path);
    }
    made
}

/// Copies `from` to `to` (which must not exist), skipping all-zero chunks so
/// a thin disk's copy stays sparse.
pub fn copy_sparse(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut src = File::open(from)?;
    let len = src.metadata()?.len();
    let mut dst = OpenOptions::new().write(true).create_new(true).open(to)?;
    let mut buf = vec![0u8; COPY_CHUNK];
    let mut offset = 0u64;
    loop {
        let n = read_full(&mut src, &mut buf)?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        if chunk.iter().any(|&b| b != 0) {
            dst.seek(SeekFrom::Start(offset))?;
            dst.write_all(chunk)?;
        }
        offset += n as u64;
    }
    dst.set_len(len)?;
    dst.sync_all()
}

/// Reads until `buf` is full or the file ends.
fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
