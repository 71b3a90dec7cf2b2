//! Flat VMDK images: a small text descriptor naming one or more flat extent
//! files that hold the disk's bytes in order.
//!
//! This is what `qemu-img create -f vmdk -o subformat=monolithicFlat` writes
//! and what an ESXi datastore holds (`createType="vmfs"`, a `VMFS` extent);
//! `twoGbMaxExtentFlat` (several `FLAT` extents) is the same layout split in
//! pieces. A descriptor looks like:
//!
//! ```text
//! # Disk DescriptorFile
//! version=1
//! CID=fffffffe
//! parentCID=ffffffff
//! createType="monolithicFlat"
//!
//! # Extent description
//! RW 20480 FLAT "disk-flat.vmdk" 0
//!
//! # The Disk Data Base
//! ddb.adapterType = "lsilogic"
//! ```
//!
//! An extent line is `access sectors type "file" [offset]`: the extent covers
//! the next `sectors` × 512 bytes of the disk, stored in `file` from sector
//! `offset`. Only `FLAT`/`VMFS` extents are served (their bytes are in place,
//! so a read is one `pread`); sparse, zero and raw-device-mapping extents are
//! refused. Extent files are resolved against the descriptor's directory and
//! must stay inside it: a descriptor is a pointer, and one that came with a
//! guest or from another site must not make the host read other files.

use super::image::{DiskError, MAX_CAPACITY, check_capacity, convert_fix};
use super::raw::{create_sparse, data_ranges, file_size, push_merged, read_only, sync_parent};
use super::{BlockDevice, check_range};
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};

/// Descriptors are small text files; anything larger is not one. This also
/// keeps detection from mistaking a raw disk whose guest wrote a descriptor
/// into its first sector for a descriptor: real disks are far larger.
pub(crate) const MAX_DESCRIPTOR: u64 = 1024 * 1024;

/// The `createType`s whose extents are flat, the ones Homeward serves.
const FLAT_CREATE_TYPES: [&str; 3] = ["monolithicFlat", "vmfs", "twoGbMaxExtentFlat"];

/// A flat VMDK: its descriptor and its extents, concatenated.
#[derive(Debug)]
pub struct VmdkFlat {
    descriptor: PathBuf,
    create_type: String,
    /// Non-empty extents in disk order; `start` of each is the `end` of the
    /// one before, and the last ends at `capacity`.
    extents: Vec<Extent>,
    capacity: u64,
    writable: bool,
}

#[derive(Debug)]
struct Extent {
    file: File,
    path: PathBuf,
    /// Disk offset of the extent's first byte.
    start: u64,
    /// Bytes of the disk it holds.
    len: u64,
    /// File offset of the extent's first byte.
    file_offset: u64,
}

impl VmdkFlat {
    /// Opens the flat VMDK whose descriptor is at `descriptor`, for writing
    /// too when `writable`.
    pub fn open(descriptor: &Path, writable: bool) -> Result<VmdkFlat, DiskError> {
        let file = File::open(descriptor).map_err(|e| DiskError::io(descriptor, e))?;
        let size = file_size(&file).map_err(|e| DiskError::io(descriptor, e))?;
        if size > MAX_DESCRIPTOR {
            return Err(DiskError::corrupt(
                descriptor,
                format!(
                    "it is {size} bytes, too large for a VMDK descriptor (a small text file); \
                     if this is a flat extent or a raw image, open it as raw"
                ),
            ));
        }
        let mut text = vec![0u8; usize::try_from(size).unwrap_or(0)];
        file.read_exact_at(&mut text, 0)
            .map_err(|e| DiskError::io(descriptor, e))?;
        let parsed = parse(&text).map_err(|what| DiskError::corrupt(descriptor, what))?;

        let create_type = parsed.create_type.ok_or_else(|| {
            DiskError::corrupt(
                descriptor,
                "it has no createType line, so it is not a complete VMDK descriptor (truncated?); \
                 copy it again from its source",
            )
        })?;
        if !is_flat_create_type(&create_type) {
            return Err(DiskError::unsupported(
                descriptor,
                format!("VMDK {create_type}"),
                "vmdk",
            ));
        }
        if parsed.extents.is_empty() {
            return Err(DiskError::corrupt(
                descriptor,
                "its VMDK descriptor lists no extents (lines like `RW <sectors> FLAT \
                 \"<name>-flat.vmdk\" 0`); it is truncated or incomplete: copy it again from its \
                 source",
            ));
        }

        let dir = parent_dir(descriptor);
        let mut extents = Vec::with_capacity(parsed.extents.len());
        let mut capacity: u64 = 0;
        for line in parsed.extents {
            let extent = open_extent(descriptor, dir, &line, writable, capacity)?;
            capacity = extent.start + extent.len;
            if extent.len > 0 {
                extents.push(extent);
            }
        }
        Ok(VmdkFlat {
            descriptor: descriptor.to_path_buf(),
            create_type,
            extents,
            capacity,
            writable,
        })
    }

    /// Creates a new monolithicFlat VMDK of `capacity` bytes (a positive
    /// multiple of 512): the descriptor at `descriptor` and a sparse extent
    /// `<stem>-flat.vmdk` beside it, neither of which may exist. The
    /// descriptor follows what `qemu-img create -f vmdk -o
    /// subformat=monolithicFlat,adapter_type=lsilogic` writes. Returns the
    /// image open for writing.
    pub fn create(descriptor: &Path, capacity: u64) -> Result<VmdkFlat, DiskError> {
        check_capacity(descriptor, capacity)?;
        let flat_name = flat_name(descriptor)?;
        let flat_path = parent_dir(descriptor).join(&flat_name);
        let text = descriptor_text(&flat_name, capacity, descriptor);

        // Claim the descriptor's name first, so a failure below removes only
        // files this call created.
        let desc_file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(descriptor)
            .map_err(|e| DiskError::create(descriptor, e))?;
        let cleanup = |flat: bool| {
            let _ = std::fs::remove_file(descriptor);
            if flat {
                let _ = std::fs::remove_file(&flat_path);
            }
        };
        let flat = match create_sparse(&flat_path, capacity) {
            Ok(f) => f,
            Err(e) => {
                drop(desc_file);
                cleanup(false);
                return Err(DiskError::create(&flat_path, e));
            }
        };
        drop(flat);
        let written = desc_file
            .write_all_at(text.as_bytes(), 0)
            .and_then(|()| desc_file.sync_all())
            .and_then(|()| sync_parent(descriptor));
        drop(desc_file);
        if let Err(e) = written {
            cleanup(true);
            return Err(DiskError::create(descriptor, e));
        }
        Self::open(descriptor, true)
    }

    /// The descriptor's `createType` (`monolithicFlat`, `vmfs` or
    /// `twoGbMaxExtentFlat`).
    pub fn create_type(&self) -> &str {
        &self.create_type
    }

    /// The descriptor's path.
    pub fn descriptor(&self) -> &Path {
        &self.descriptor
    }

    /// The extent files, in disk order (empty extents left out).
    pub fn extent_paths(&self) -> Vec<&Path> {
        self.extents.iter().map(|e| e.path.as_path()).collect()
    }

    /// Runs `io` on each piece of the `len` bytes at disk `offset`, one per
    /// extent it touches: (extent, range in the caller's buffer, file offset).
    fn each_piece(
        &self,
        offset: u64,
        len: usize,
        what: &str,
        mut io: impl FnMut(&Extent, Range<usize>, u64) -> io::Result<()>,
    ) -> io::Result<()> {
        check_range(self.capacity, offset, len, what)?;
        // The first extent that ends after `offset`.
        let mut index = self.extents.partition_point(|e| e.start + e.len <= offset);
        let mut done = 0usize;
        while done < len {
            let Some(e) = self.extents.get(index) else {
                // Unreachable: the extents cover [0, capacity) and the range
                // was checked. An error is still better than a panic.
                return Err(io::Error::other(format!(
                    "{what} at offset {offset} falls outside every extent of {}",
                    self.descriptor.display()
                )));
            };
            let pos = offset + done as u64;
            let within = pos - e.start;
            // Fits in usize: bounded by `len - done`.
            let n = (e.len - within).min((len - done) as u64) as usize;
            io(e, done..done + n, e.file_offset + within)?;
            done += n;
            index += 1;
        }
        Ok(())
    }
}

impl BlockDevice for VmdkFlat {
    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn writable(&self) -> bool {
        self.writable
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.each_piece(offset, buf.len(), "read", |e, r, at| {
            e.file.read_exact_at(&mut buf[r], at)
        })
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if !self.writable {
            return Err(read_only(&self.descriptor));
        }
        self.each_piece(offset, buf.len(), "write", |e, r, at| {
            e.file.write_all_at(&buf[r], at)
        })
    }

    fn flush(&self) -> io::Result<()> {
        if self.writable {
            for e in &self.extents {
                e.file.sync_data()?;
            }
        }
        Ok(())
    }

    /// The data ranges of each extent file, in disk offsets. An extent whose
    /// file system cannot tell counts as all data; `None` only when no
    /// extent's file system can tell.
    fn allocated_ranges(&self) -> io::Result<Option<Vec<Range<u64>>>> {
        let mut ranges = Vec::new();
        let mut known = false;
        for e in &self.extents {
            match data_ranges(&e.file, e.file_offset, e.file_offset + e.len)? {
                Some(found) => {
                    known = true;
                    for r in found {
                        let start = e.start + (r.start - e.file_offset);
                        let end = e.start + (r.end - e.file_offset);
                        push_merged(&mut ranges, start..end);
                    }
                }
                None => push_merged(&mut ranges, e.start..e.start + e.len),
            }
        }
        Ok(known.then_some(ranges))
    }

    fn describe(&self) -> String {
        format!(
            "VMDK {} image {}",
            self.create_type,
            self.descriptor.display()
        )
    }
}

/// Whether a descriptor starting with `head` (of a file of `size` bytes) is
/// a VMDK descriptor: small, and either starting with the `# Disk
/// DescriptorFile` banner or text with a `createType` line (some tools omit
/// the banner).
pub(crate) fn looks_like_descriptor(head: &[u8], size: u64) -> bool {
    if size > MAX_DESCRIPTOR || head.is_empty() {
        return false;
    }
    let text = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    let banner = b"# disk descriptorfile";
    if text.len() - start >= banner.len()
        && text[start..start + banner.len()].eq_ignore_ascii_case(banner)
    {
        return true;
    }
    !head.contains(&0) && lines(head).any(|l| key_value(l).is_some_and(|(k, _)| is_create_type(k)))
}

/// The `createType` of a descriptor, if it has one.
pub(crate) fn create_type(text: &[u8]) -> Option<String> {
    lines(text).find_map(|l| {
        key_value(l)
            .filter(|(k, _)| is_create_type(k))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    })
}

/// Whether `t` names a layout of flat extents.
pub(crate) fn is_flat_create_type(t: &str) -> bool {
    FLAT_CREATE_TYPES.iter().any(|f| f.eq_ignore_ascii_case(t))
}

fn is_create_type(key: &[u8]) -> bool {
    key.eq_ignore_ascii_case(b"createType")
}

/// What a descriptor says, as far as Homeward needs.
struct Descriptor {
    create_type: Option<String>,
    extents: Vec<ExtentLine>,
}

/// One extent line.
struct ExtentLine {
    /// 1-based line number, for messages.
    line: usize,
    access: String,
    sectors: u64,
    kind: String,
    name: Option<Vec<u8>>,
    /// In sectors.
    offset: u64,
}

/// Descriptor lines (1-based number, trimmed bytes), without comments and
/// blank lines, up to a NUL (padding some tools leave).
fn numbered_lines(text: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
    text[..end]
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_ascii()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with(b"#"))
}

fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    numbered_lines(text).map(|(_, l)| l)
}

/// `key = "value"` (quotes optional) split into key and unquoted value.
/// Extent lines are not key/value lines even when a file name has an `=`.
fn key_value(line: &[u8]) -> Option<(&[u8], &[u8])> {
    if is_extent_line(line) {
        return None;
    }
    let eq = line.iter().position(|&b| b == b'=')?;
    let key = line[..eq].trim_ascii();
    let value = line[eq + 1..].trim_ascii();
    let value = value
        .strip_prefix(b"\"")
        .and_then(|v| v.strip_suffix(b"\""))
        .unwrap_or(value);
    Some((key, value))
}

fn is_extent_line(line: &[u8]) -> bool {
    let first = line
        .split(|b| b.is_ascii_whitespace())
        .next()
        .unwrap_or_default();
    ["RW", "RDONLY", "NOACCESS"]
        .iter()
        .any(|a| first.eq_ignore_ascii_case(a.as_bytes()))
        && line.len() > first.len()
}

fn parse(text: &[u8]) -> Result<Descriptor, String> {
    let mut d = Descriptor {
        create_type: create_type(text),
        extents: Vec::new(),
    };
    for (n, line) in numbered_lines(text) {
        if is_extent_line(line) {
            d.extents.push(parse_extent(line, n)?);
        }
    }
    Ok(d)
}

/// Takes the next whitespace-separated token off the front of `rest`.
fn next_token<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let s = rest.trim_ascii_start();
    if s.is_empty() {
        *rest = s;
        return None;
    }
    let end = s
        .iter()
        .position(|b| b.is_ascii_whitespace())
        .unwrap_or(s.len());
    *rest = &s[end..];
    Some(&s[..end])
}

fn number(token: &[u8]) -> Option<u64> {
    if token.is_empty() || !token.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(token).ok()?.parse().ok()
}

fn parse_extent(line: &[u8], n: usize) -> Result<ExtentLine, String> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut rest = line;
    let access = next_token(&mut rest).map(text).unwrap_or_default();
    let sectors_token = next_token(&mut rest)
        .ok_or_else(|| format!("line {n} of its VMDK descriptor is an extent line with no size"))?;
    let sectors = number(sectors_token).ok_or_else(|| {
        format!(
            "line {n} of its VMDK descriptor gives extent size `{}`, which is not a number of \
             sectors that fits in 64 bits",
            text(sectors_token)
        )
    })?;
    let kind = next_token(&mut rest)
        .map(|t| text(t).to_ascii_uppercase())
        .ok_or_else(|| format!("line {n} of its VMDK descriptor is an extent line with no type"))?;
    let after = rest.trim_ascii_start();
    let name = if let Some(quoted) = after.strip_prefix(b"\"") {
        let close = quoted.iter().position(|&b| b == b'"').ok_or_else(|| {
            format!("line {n} of its VMDK descriptor has an extent file name with no closing quote")
        })?;
        rest = &quoted[close + 1..];
        Some(quoted[..close].to_vec())
    } else {
        next_token(&mut rest).map(<[u8]>::to_vec)
    };
    let offset = match next_token(&mut rest) {
        None => 0,
        Some(t) => number(t).ok_or_else(|| {
            format!(
                "line {n} of its VMDK descriptor gives extent offset `{}`, which is not a \
                 number of sectors that fits in 64 bits",
                text(t)
            )
        })?,
    };
    Ok(ExtentLine {
        line: n,
        access,
        sectors,
        kind,
        name,
        offset,
    })
}

/// Checks and opens the extent of `line`, which starts at disk offset `start`.
fn open_extent(
    descriptor: &Path,
    dir: &Path,
    line: &ExtentLine,
    writable: bool,
    start: u64,
) -> Result<Extent, DiskError> {
    let n = line.line;
    if line.kind != "FLAT" && line.kind != "VMFS" {
        return Err(extent_refused(descriptor, &line.kind, n));
    }
    match line.access.to_ascii_uppercase().as_str() {
        "RW" => {}
        "RDONLY" if !writable => {}
        "RDONLY" => {
            return Err(DiskError::ReadOnly {
                path: descriptor.to_path_buf(),
                why: format!(
                    "line {n} of the descriptor marks its extent RDONLY; open it read-only, or \
                     change RDONLY to RW if the disk may be written"
                ),
            });
        }
        other => {
            return Err(extent_refused(descriptor, other, n));
        }
    }
    let name = line.name.as_deref().unwrap_or_default();
    if name.is_empty() {
        return Err(DiskError::corrupt(
            descriptor,
            format!("line {n} of its VMDK descriptor is an extent line with no file name"),
        ));
    }
    let relative = Path::new(OsStr::from_bytes(name));
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(DiskError::UnsafeExtent {
            descriptor: descriptor.to_path_buf(),
            extent: String::from_utf8_lossy(name).into_owned(),
        });
    }
    let path = dir.join(relative);

    let out_of_range = || {
        DiskError::corrupt(
            descriptor,
            format!(
                "line {n} of its VMDK descriptor declares {} sectors at sector {}, more than any \
                 disk can hold; copy the descriptor again from its source",
                line.sectors, line.offset
            ),
        )
    };
    let len = line.sectors.checked_mul(512).ok_or_else(out_of_range)?;
    let file_offset = line.offset.checked_mul(512).ok_or_else(out_of_range)?;
    let file_end = file_offset.checked_add(len).ok_or_else(out_of_range)?;
    match start.checked_add(len) {
        Some(end) if end <= MAX_CAPACITY && file_end <= MAX_CAPACITY => {}
        _ => return Err(out_of_range()),
    }

    let file = OpenOptions::new()
        .read(true)
        .write(writable)
        .open(&path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => DiskError::MissingExtent {
                descriptor: descriptor.to_path_buf(),
                extent: path.clone(),
            },
            _ => DiskError::io(&path, e),
        })?;
    let size = file_size(&file).map_err(|e| DiskError::io(&path, e))?;
    if size < file_end {
        return Err(DiskError::corrupt(
            &path,
            format!(
                "it is {size} bytes, but line {n} of VMDK descriptor {} says it holds {len} \
                 bytes from byte {file_offset}; the extent is truncated or belongs to another \
                 disk: copy it again from its source",
                descriptor.display()
            ),
        ));
    }
    Ok(Extent {
        file,
        path,
        start,
        len,
        file_offset,
    })
}

/// The refusal of an extent of type or access `what` on line `n`.
fn extent_refused(descriptor: &Path, what: &str, n: usize) -> DiskError {
    DiskError::UnsupportedFormat {
        path: descriptor.to_path_buf(),
        format: format!("VMDK ({what} extent, line {n})"),
        fix: format!(
            "only RW or RDONLY extents of type FLAT or VMFS are served; {}",
            convert_fix(descriptor, "vmdk")
        ),
    }
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `<stem>-flat.vmdk` for descriptor `<stem>.vmdk` (or `<name>-flat.vmdk`
/// when the name has no `.vmdk`), as qemu and VMware name it. The name goes
/// between quotes in the descriptor, so it must be UTF-8 without quotes or
/// control characters.
fn flat_name(descriptor: &Path) -> Result<String, DiskError> {
    let invalid = |why: &str| DiskError::InvalidPath {
        path: descriptor.to_path_buf(),
        why: why.to_string(),
    };
    let name = descriptor
        .file_name()
        .ok_or_else(|| invalid("a VMDK descriptor path must end in a file name"))?
        .to_str()
        .ok_or_else(|| invalid("a VMDK descriptor's file name must be UTF-8"))?;
    if name.chars().any(|c| c == '"' || c.is_control()) {
        return Err(invalid(
            "a VMDK descriptor's file name must not contain quotes or control characters",
        ));
    }
    let stem = match name.len().checked_sub(5) {
        Some(i) if name.is_char_boundary(i) && name[i..].eq_ignore_ascii_case(".vmdk") => {
            &name[..i]
        }
        _ => name,
    };
    Ok(format!("{stem}-flat.vmdk"))
}

/// The descriptor of a new monolithicFlat disk, as qemu-img writes it for
/// `adapter_type=lsilogic` (255 heads, 63 sectors per track, cylinders
/// rounded down).
fn descriptor_text(flat_name: &str, capacity: u64, descriptor: &Path) -> String {
    let sectors = capacity / 512;
    let id = super::fresh_id(descriptor.as_os_str().as_bytes());
    let mut cid = u32::from_le_bytes([id[0], id[1], id[2], id[3]]);
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
         RW {sectors} FLAT \"{flat_name}\" 0\n\
         \n\
         # The Disk Data Base\n\
         #DDB\n\
         \n\
         ddb.virtualHWVersion = \"4\"\n\
         ddb.geometry.cylinders = \"{cylinders}\"\n\
         ddb.geometry.heads = \"255\"\n\
         ddb.geometry.sectors = \"63\"\n\
         ddb.adapterType = \"lsilogic\"\n"
    )
}
