//! Image files: which format a file is, opening it as a [`BlockDevice`], and
//! creating new images.
//!
//! The format is read from the content, never from the file name: an ESXi
//! `-flat.vmdk` is a raw image, a `.vhd` may be dynamic, and a wrong guess
//! means replicating the wrong bytes. Formats Homeward does not serve (sparse
//! or compressed ones, which need an allocation map) are refused with the
//! `qemu-img convert` command that turns them into one it does.
//!
//! When the operator declares a format, the content must agree
//! ([`DiskError::FormatMismatch`]); declaring is the safe habit, because a raw
//! disk's guest may write anything into its first and last sectors.

use super::raw::file_size;
use super::{BlockDevice, RawFile, VhdFixed, VmdkFlat, vhd, vmdk};
use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// An image format Homeward reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    /// Byte `n` of the file is byte `n` of the disk (also block devices).
    Raw,
    /// A VMDK text descriptor naming flat extents (`monolithicFlat`, `vmfs`,
    /// `twoGbMaxExtentFlat`).
    VmdkFlat,
    /// Raw data followed by a 512-byte VHD footer of disk type 2.
    VhdFixed,
}

impl ImageFormat {
    /// Every format, in the order they are listed to operators.
    pub const ALL: [ImageFormat; 3] = [
        ImageFormat::Raw,
        ImageFormat::VmdkFlat,
        ImageFormat::VhdFixed,
    ];

    /// The short name operators type (`raw`, `vmdk`, `vhd`); [`FromStr`]
    /// accepts it.
    pub fn cli_name(self) -> &'static str {
        match self {
            ImageFormat::Raw => "raw",
            ImageFormat::VmdkFlat => "vmdk",
            ImageFormat::VhdFixed => "vhd",
        }
    }

    /// The `qemu-img` format name and options that produce this format, for
    /// conversion hints.
    fn qemu_output(self) -> &'static str {
        match self {
            ImageFormat::Raw => "-O raw",
            ImageFormat::VmdkFlat => "-O vmdk -o subformat=monolithicFlat",
            ImageFormat::VhdFixed => "-O vpc -o subformat=fixed,force_size=on",
        }
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ImageFormat::Raw => "raw",
            ImageFormat::VmdkFlat => "VMDK monolithicFlat",
            ImageFormat::VhdFixed => "VHD fixed",
        })
    }
}

impl FromStr for ImageFormat {
    type Err = DiskError;

    /// Accepts `raw`, `vmdk` and `vhd` in any case, and `vpc` (qemu's name for
    /// VHD); anything else is [`DiskError::UnknownFormat`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "raw" => Ok(ImageFormat::Raw),
            "vmdk" => Ok(ImageFormat::VmdkFlat),
            "vhd" | "vpc" => Ok(ImageFormat::VhdFixed),
            _ => Err(DiskError::UnknownFormat {
                name: s.to_string(),
            }),
        }
    }
}

/// Why an image cannot be detected, opened or created. Every message names
/// the file and says what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiskError {
    /// The image file does not exist.
    #[error("disk image {} does not exist: check the path", .path.display())]
    NotFound {
        /// The image.
        path: PathBuf,
    },

    /// The file exists but cannot be opened or read.
    #[error(
        "cannot read disk image {}: {source}; check that it is a regular file or block device \
         that Homeward may read (and, to write it, write)",
        .path.display()
    )]
    Unreadable {
        /// The file that failed.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },

    /// Creating or initialising a new image failed.
    #[error(
        "cannot create disk image {}: {source}; check that its directory exists, is writable \
         and has room",
        .path.display()
    )]
    CannotCreate {
        /// The file that failed.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },

    /// A new image would replace an existing file.
    #[error(
        "{} already exists: Homeward never creates an image over another file; remove it or \
         choose another path",
        .path.display()
    )]
    Exists {
        /// The existing file.
        path: PathBuf,
    },

    /// The file is an image in a format Homeward does not read or write.
    #[error("{} is a {format} image, which Homeward does not read: {fix}", .path.display())]
    UnsupportedFormat {
        /// The image.
        path: PathBuf,
        /// The format it is, as operators know it (`qcow2`, `VHD dynamic`, ...).
        format: String,
        /// How to make it usable (a conversion command).
        fix: String,
    },

    /// The declared format is not what the content is.
    #[error(
        "{} was declared {declared} but its content is {detected}: {}",
        .path.display(),
        mismatch_fix(.path, *.declared, *.detected)
    )]
    FormatMismatch {
        /// The image.
        path: PathBuf,
        /// What the operator said.
        declared: ImageFormat,
        /// What the content says.
        detected: ImageFormat,
    },

    /// The file claims a format but breaks its rules (bad descriptor,
    /// truncated file, inconsistent sizes).
    #[error("{} is damaged: {what}", .path.display())]
    Corrupt {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong and what to do about it.
        what: String,
    },

    /// A VHD footer whose checksum does not match its bytes.
    #[error(
        "{} is damaged: its VHD footer checksum is {found:#010x}, but the footer's bytes give \
         {expected:#010x}; copy the image again from its source, or, if only the footer is \
         damaged, use the data before it as a raw image (`cp` the file, `truncate -s -512` the \
         copy, open it as raw)",
        .path.display()
    )]
    VhdChecksum {
        /// The image.
        path: PathBuf,
        /// The checksum computed from the footer's bytes.
        expected: u32,
        /// The checksum stored in the footer.
        found: u32,
    },

    /// A VMDK descriptor names an extent file that does not exist.
    #[error(
        "VMDK descriptor {} names extent {}, which does not exist: a flat VMDK is the \
         descriptor and its extent files; copy them into the same directory",
        .descriptor.display(),
        .extent.display()
    )]
    MissingExtent {
        /// The descriptor.
        descriptor: PathBuf,
        /// The extent it names, resolved against the descriptor's directory.
        extent: PathBuf,
    },

    /// A VMDK descriptor names an extent outside its own directory.
    #[error(
        "VMDK descriptor {} names extent \"{extent}\", which is not a path inside the \
         descriptor's directory; Homeward only follows extents next to (or below) their \
         descriptor, so a descriptor cannot make it read other files: move the extent there \
         and write its relative name in the extent line",
        .descriptor.display()
    )]
    UnsafeExtent {
        /// The descriptor.
        descriptor: PathBuf,
        /// The extent name as written.
        extent: String,
    },

    /// The image cannot be written although writing was asked for.
    #[error("{} cannot be opened for writing: {why}", .path.display())]
    ReadOnly {
        /// The image.
        path: PathBuf,
        /// Why, and what to do.
        why: String,
    },

    /// A capacity a new image cannot have.
    #[error("cannot create {} with {capacity} bytes: {why}", .path.display())]
    InvalidCapacity {
        /// The image to create.
        path: PathBuf,
        /// The capacity asked for.
        capacity: u64,
        /// Which rule it breaks.
        why: String,
    },

    /// A format name that is not `raw`, `vmdk` or `vhd` (from [`FromStr`]).
    #[error(
        "unknown disk image format `{name}`: use `raw`, `vmdk` (flat VMDK) or `vhd` (fixed VHD)"
    )]
    UnknownFormat {
        /// The name given.
        name: String,
    },

    /// A path a new image cannot have.
    #[error("cannot create {}: {why}", .path.display())]
    InvalidPath {
        /// The image to create.
        path: PathBuf,
        /// Which rule it breaks.
        why: String,
    },
}

impl DiskError {
    /// The error for an I/O failure opening or reading `path`.
    pub(crate) fn io(path: &Path, e: io::Error) -> DiskError {
        if e.kind() == io::ErrorKind::NotFound {
            DiskError::NotFound {
                path: path.to_path_buf(),
            }
        } else {
            DiskError::Unreadable {
                path: path.to_path_buf(),
                source: e,
            }
        }
    }

    /// The error for an I/O failure creating `path`.
    pub(crate) fn create(path: &Path, e: io::Error) -> DiskError {
        if e.kind() == io::ErrorKind::AlreadyExists {
            DiskError::Exists {
                path: path.to_path_buf(),
            }
        } else {
            DiskError::CannotCreate {
                path: path.to_path_buf(),
                source: e,
            }
        }
    }

    pub(crate) fn corrupt(path: &Path, what: impl Into<String>) -> DiskError {
        DiskError::Corrupt {
            path: path.to_path_buf(),
            what: what.into(),
        }
    }

    /// A refusal of `format`, with the `qemu-img convert` command that turns
    /// the image at `path` into one Homeward serves (`qemu_format` is
    /// qemu-img's name for the source format).
    pub(crate) fn unsupported(path: &Path, format: impl Into<String>, qemu_format: &str) -> Self {
        DiskError::UnsupportedFormat {
            path: path.to_path_buf(),
            format: format.into(),
            fix: convert_fix(path, qemu_format),
        }
    }
}

/// Lets callers that speak `io::Result` (the data path) use `?`; the message
/// is kept whole.
impl From<DiskError> for io::Error {
    fn from(e: DiskError) -> io::Error {
        let kind = match &e {
            DiskError::NotFound { .. } | DiskError::MissingExtent { .. } => io::ErrorKind::NotFound,
            DiskError::Unreadable { source, .. } | DiskError::CannotCreate { source, .. } => {
                source.kind()
            }
            DiskError::Exists { .. } => io::ErrorKind::AlreadyExists,
            DiskError::ReadOnly { .. } => io::ErrorKind::PermissionDenied,
            DiskError::UnsupportedFormat { .. } => io::ErrorKind::Unsupported,
            DiskError::InvalidCapacity { .. }
            | DiskError::InvalidPath { .. }
            | DiskError::UnknownFormat { .. } => io::ErrorKind::InvalidInput,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}

pub(crate) fn convert_fix(path: &Path, qemu_format: &str) -> String {
    format!(
        "convert it with `qemu-img convert -f {qemu_format} -O raw {} disk.raw` (or `-O vmdk -o \
         subformat=monolithicFlat disk.vmdk`, or `-O vpc -o subformat=fixed,force_size=on \
         disk.vhd`) and use the result",
        path.display()
    )
}

fn mismatch_fix(path: &Path, declared: ImageFormat, detected: ImageFormat) -> String {
    let hint = match (declared, detected) {
        (ImageFormat::VmdkFlat, ImageFormat::Raw) => {
            " (for a flat VMDK, give the small descriptor file, not its -flat extent)"
        }
        _ => "",
    };
    let qemu_in = match detected {
        ImageFormat::Raw => "raw",
        ImageFormat::VmdkFlat => "vmdk",
        ImageFormat::VhdFixed => "vpc",
    };
    format!(
        "check that this is the right file{hint}; if it is, declare `{}`, or convert it with \
         `qemu-img convert -f {qemu_in} {} {} <new file>`",
        detected.cli_name(),
        declared.qemu_output(),
        path.display()
    )
}

/// How many bytes of the start of a file detection looks at.
const HEAD_LEN: usize = 4096;

/// Which format the file at `path` is, from its content.
///
/// Formats Homeward does not serve are an error ([`DiskError::UnsupportedFormat`])
/// naming the format and the conversion that fixes it: VMDK sparse
/// (`KDMV`/`COWD` magic) and VMDK descriptors of a sparse `createType`, qcow2,
/// VHDX, VDI, and VHD dynamic or differencing. Anything unrecognised is raw.
pub fn detect(path: &Path) -> Result<ImageFormat, DiskError> {
    let file = File::open(path).map_err(|e| DiskError::io(path, e))?;
    let meta = file.metadata().map_err(|e| DiskError::io(path, e))?;
    if meta.is_dir() {
        return Err(DiskError::io(
            path,
            io::Error::new(io::ErrorKind::IsADirectory, "it is a directory"),
        ));
    }
    let size = file_size(&file).map_err(|e| DiskError::io(path, e))?;
    let mut head = vec![0u8; HEAD_LEN.min(usize::try_from(size).unwrap_or(HEAD_LEN))];
    file.read_exact_at(&mut head, 0)
        .map_err(|e| DiskError::io(path, e))?;

    if let Some(format) = binary_magic(&head) {
        return Err(DiskError::unsupported(path, format.0, format.1));
    }
    // A dynamic or differencing VHD starts with a copy of its footer.
    if head.starts_with(vhd::COOKIE) {
        match vhd::disk_type(&head) {
            vhd::DISK_TYPE_DYNAMIC => {
                return Err(DiskError::unsupported(path, "VHD dynamic", "vpc"));
            }
            vhd::DISK_TYPE_DIFFERENCING => {
                return Err(DiskError::unsupported(
                    path,
                    "VHD differencing (its parent must be reachable to convert it)",
                    "vpc",
                ));
            }
            // A fixed VHD's guest data may start with anything, even a footer.
            _ => {}
        }
    }
    if size >= vhd::FOOTER_LEN {
        let mut tail = [0u8; vhd::FOOTER_LEN as usize];
        file.read_exact_at(&mut tail, size - vhd::FOOTER_LEN)
            .map_err(|e| DiskError::io(path, e))?;
        if tail.starts_with(vhd::COOKIE) {
            return match vhd::disk_type(&tail) {
                vhd::DISK_TYPE_FIXED => Ok(ImageFormat::VhdFixed),
                vhd::DISK_TYPE_DYNAMIC => Err(DiskError::unsupported(path, "VHD dynamic", "vpc")),
                vhd::DISK_TYPE_DIFFERENCING => Err(DiskError::unsupported(
                    path,
                    "VHD differencing (its parent must be reachable to convert it)",
                    "vpc",
                )),
                other => Err(DiskError::corrupt(
                    path,
                    format!(
                        "it ends with a VHD footer of unknown disk type {other} (fixed is 2); \
                         copy the image again from its source"
                    ),
                )),
            };
        }
    }
    if vmdk::looks_like_descriptor(&head, size) {
        let mut text = vec![0u8; usize::try_from(size).unwrap_or(0)];
        file.read_exact_at(&mut text, 0)
            .map_err(|e| DiskError::io(path, e))?;
        return match vmdk::create_type(&text) {
            Some(t) if !vmdk::is_flat_create_type(&t) => {
                let mut fix = convert_fix(path, "vmdk");
                let lower = t.to_ascii_lowercase();
                if lower.starts_with("vmfs") || lower == "sesparse" || lower == "vsansparse" {
                    // Snapshot deltas and RDMs live on ESXi, where the native
                    // tool is at hand.
                    fix.push_str(&format!(
                        "; on ESXi, `vmkfstools -i {} -d thick <new>.vmdk` makes a flat copy",
                        path.display()
                    ));
                }
                Err(DiskError::UnsupportedFormat {
                    path: path.to_path_buf(),
                    format: format!("VMDK {t}"),
                    fix,
                })
            }
            // Missing createType or a flat one: `VmdkFlat::open` checks the rest
            // and names what is wrong.
            _ => Ok(ImageFormat::VmdkFlat),
        };
    }
    Ok(ImageFormat::Raw)
}

/// Formats recognised by a magic number at offset 0: (name for operators,
/// qemu-img's name for it).
fn binary_magic(head: &[u8]) -> Option<(&'static str, &'static str)> {
    if head.starts_with(b"KDMV") {
        Some(("VMDK sparse (monolithicSparse or streamOptimized)", "vmdk"))
    } else if head.starts_with(b"COWD") {
        Some(("VMDK sparse (ESX COWD)", "vmdk"))
    } else if head.starts_with(b"QFI\xfb") {
        // Version 1 is the old qcow; 2 and 3 are both "qcow2" to operators.
        if head.get(4..8) == Some(&[0, 0, 0, 1]) {
            Some(("qcow (version 1)", "qcow"))
        } else {
            Some(("qcow2", "qcow2"))
        }
    } else if head.starts_with(b"vhdxfile") {
        Some(("VHDX", "vhdx"))
    } else if head.get(64..68) == Some(&[0x7f, 0x10, 0xda, 0xbe]) {
        Some(("VirtualBox VDI", "vdi"))
    } else if head.starts_with(b"QED\0") {
        Some(("QED", "qed"))
    } else {
        None
    }
}

/// Opens the image at `path`, for writing too when `writable`.
///
/// The format comes from the content ([`detect`]); when `declared` is given
/// it must agree, or the result is [`DiskError::FormatMismatch`].
pub fn open(
    path: &Path,
    writable: bool,
    declared: Option<ImageFormat>,
) -> Result<Box<dyn BlockDevice>, DiskError> {
    let detected = detect(path)?;
    if let Some(declared) = declared
        && declared != detected
    {
        return Err(DiskError::FormatMismatch {
            path: path.to_path_buf(),
            declared,
            detected,
        });
    }
    Ok(match detected {
        ImageFormat::Raw => {
            Box::new(RawFile::open_with(path, writable).map_err(|e| DiskError::io(path, e))?)
        }
        ImageFormat::VmdkFlat => Box::new(VmdkFlat::open(path, writable)?),
        ImageFormat::VhdFixed => Box::new(VhdFixed::open(path, writable)?),
    })
}

/// Creates a new, sparse image of `format` and `capacity` bytes at `path`,
/// open for writing. `path` must not exist (nor, for VMDK, its extent);
/// `capacity` must be a positive multiple of 512.
pub fn create(
    path: &Path,
    format: ImageFormat,
    capacity: u64,
) -> Result<Box<dyn BlockDevice>, DiskError> {
    check_capacity(path, capacity)?;
    Ok(match format {
        ImageFormat::Raw => {
            let raw = RawFile::create(path, capacity).map_err(|e| DiskError::create(path, e))?;
            super::raw::sync_parent(path).map_err(|e| DiskError::create(path, e))?;
            Box::new(raw)
        }
        ImageFormat::VmdkFlat => Box::new(VmdkFlat::create(path, capacity)?),
        ImageFormat::VhdFixed => Box::new(VhdFixed::create(path, capacity)?),
    })
}

/// The capacity rules shared by all formats: whole sectors, at least one,
/// and small enough that every offset (plus a VHD footer) fits in `off_t`.
pub(crate) fn check_capacity(path: &Path, capacity: u64) -> Result<(), DiskError> {
    let why = if capacity == 0 {
        "a disk needs at least one 512-byte sector"
    } else if !capacity.is_multiple_of(512) {
        "the capacity must be a multiple of 512 bytes (whole sectors)"
    } else if capacity > MAX_CAPACITY {
        "that is more than any file can hold"
    } else {
        return Ok(());
    };
    Err(DiskError::InvalidCapacity {
        path: path.to_path_buf(),
        capacity,
        why: why.to_string(),
    })
}

/// The largest capacity accepted: `off_t` is signed, and VHD needs room for
/// its footer after the data.
pub(crate) const MAX_CAPACITY: u64 = (i64::MAX as u64) - 1024 * 1024;
