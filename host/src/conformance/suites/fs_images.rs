//! The file-system suite's images: the known tree every image holds, making
//! ext4 and XFS images with the real `mkfs` tools, the small images shipped
//! with the suite (zstd, `include_bytes!`), and the inputs that hold no file
//! system (zeros, random bytes).
//!
//! ReiserFS has no populate option in its tools (`mkreiserfs` makes an empty
//! volume and only a mount can fill it), so the suite always uses the shipped
//! ReiserFS image, even in [`ImageSource::Auto`]. `scripts/make-conformance-images`
//! regenerates the shipped images: ext4 and XFS with the tools as below, and
//! ReiserFS with `mkreiserfs` populated through the embedded ReiserFS handler,
//! then checked clean by `reiserfsck`.

use crate::conformance::ImageSource;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

/// The file-system types the suite has images of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FsType {
    /// ext4 (4 KiB blocks, 8 MiB).
    Ext4,
    /// XFS v5 (one AG, 16 MiB).
    Xfs,
    /// ReiserFS 3.6 (standard 32 MiB journal, 40 MiB).
    Reiserfs,
}

impl FsType {
    /// All of them, in suite order.
    pub const ALL: [FsType; 3] = [FsType::Ext4, FsType::Xfs, FsType::Reiserfs];

    /// The name `fs-info.fs-type` uses.
    pub fn name(self) -> &'static str {
        match self {
            FsType::Ext4 => "ext4",
            FsType::Xfs => "xfs",
            FsType::Reiserfs => "reiserfs",
        }
    }

    /// The fixed UUID every image of this type is made with.
    pub fn uuid(self) -> &'static str {
        match self {
            FsType::Ext4 => "6f1d6a52-5c2b-4b8e-9a51-0c0f2e7d4e01",
            FsType::Xfs => "6f1d6a52-5c2b-4b8e-9a51-0c0f2e7d4e02",
            FsType::Reiserfs => "6f1d6a52-5c2b-4b8e-9a51-0c0f2e7d4e03",
        }
    }

    /// The checker that must call a written image clean, its arguments before
    /// the image path, and its package.
    pub fn checker(self) -> (&'static str, &'static [&'static str], &'static str) {
        match self {
            FsType::Ext4 => ("e2fsck", &["-fn"], "e2fsprogs"),
            // force_geometry: one-AG images are fine for a test.
            FsType::Xfs => (
                "xfs_repair",
                &["-n", "-f", "-o", "force_geometry"],
                "xfsprogs",
            ),
            FsType::Reiserfs => ("reiserfsck", &["--check", "-y"], "reiserfsprogs"),
        }
    }

    fn shipped(self) -> &'static [u8] {
        match self {
            FsType::Ext4 => include_bytes!("../fixtures/ext4.img.zst"),
            FsType::Xfs => include_bytes!("../fixtures/xfs.img.zst"),
            FsType::Reiserfs => include_bytes!("../fixtures/reiserfs.img.zst"),
        }
    }

    /// The shipped fixture's file name.
    pub fn fixture_name(self) -> String {
        format!("{}.img.zst", self.name())
    }
}

/// What is at one path of the known tree.
#[derive(Debug, Clone, Copy)]
pub enum Node {
    /// A directory.
    Dir,
    /// A regular file whose content this function makes.
    File(fn() -> Vec<u8>),
    /// A symlink with this target, as stored.
    Symlink(&'static str),
}

/// One entry of the known tree.
#[derive(Debug, Clone, Copy)]
pub struct Known {
    /// Absolute guest path.
    pub path: &'static str,
    /// What it is.
    pub node: Node,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

const fn entry(path: &'static str, node: Node, mode: u32, uid: u32, gid: u32) -> Known {
    Known {
        path,
        node,
        mode,
        uid,
        gid,
    }
}

/// A 200-byte file name (the limit is 255): long names take other directory
/// record forms than short ones.
pub const LONG_NAME: &str = "/home/alice/a-rather-long-file-name-that-takes-more-than-one-directory-slot-in-every-format-0123456789-abcdefghijklmnopqrstuvwxyz-0123456789-abcdefghijklmnopqrstuvwxyz-0123456789-abcdefghijklmnopqrst.txt";

/// The tree every suite image holds, parents before children. Modes, owners
/// and set-id bits differ from the defaults so a handler that ignores them
/// is caught.
pub const KNOWN_TREE: &[Known] = &[
    entry("/etc", Node::Dir, 0o755, 0, 0),
    entry("/etc/hostname", Node::File(hostname), 0o644, 0, 0),
    entry("/etc/empty", Node::File(Vec::new), 0o600, 0, 0),
    entry(
        "/etc/localtime",
        Node::Symlink("/usr/share/zoneinfo/UTC"),
        0o777,
        0,
        0,
    ),
    entry("/home", Node::Dir, 0o755, 0, 0),
    entry("/home/alice", Node::Dir, 0o750, 1000, 100),
    entry("/home/alice/big.bin", Node::File(big), 0o640, 1000, 100),
    entry(
        "/home/alice/sparse.img",
        Node::File(sparse),
        0o600,
        1000,
        100,
    ),
    entry(LONG_NAME, Node::File(long_name_content), 0o644, 1000, 100),
    entry(
        "/home/alice/notes",
        Node::Symlink("../../etc/hostname"),
        0o777,
        1000,
        100,
    ),
    entry("/srv", Node::Dir, 0o755, 0, 0),
    entry("/srv/tool", Node::File(tool), 0o4755, 0, 0),
    entry("/srv/shared", Node::Dir, 0o2775, 0, 100),
    entry("/srv/shared/readme", Node::File(readme), 0o664, 0, 100),
];

fn hostname() -> Vec<u8> {
    b"conformance-guest\n".to_vec()
}

fn long_name_content() -> Vec<u8> {
    b"a file with a long name\n".to_vec()
}

fn tool() -> Vec<u8> {
    b"#!/bin/sh\necho set-uid tool\n".to_vec()
}

fn readme() -> Vec<u8> {
    b"shared with group 100\n".to_vec()
}

/// Three blocks and a bit of bytes that compress badly and differ per offset.
fn big() -> Vec<u8> {
    pseudo_random(3 * 4096 + 1234, 7)
}

/// Data, a 60 KiB run of zeros (a hole when the tool keeps holes), data.
fn sparse() -> Vec<u8> {
    let mut bytes = pseudo_random(4096, 11);
    bytes.resize(4096 + 61_440, 0);
    bytes.extend(pseudo_random(100, 13));
    bytes
}

/// Deterministic pseudo-random bytes (xorshift).
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// One suite image of a file system.
#[derive(Debug)]
pub struct SuiteImage {
    /// Its type.
    pub fs: FsType,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Where it came from, for messages ("made by mkfs.ext4 -d", "shipped").
    pub source: String,
    /// Whether owners (uid/gid) are those of [`KNOWN_TREE`]: ReiserFS images
    /// are populated through a handler, which writes files as root.
    pub owners_kept: bool,
}

/// The image of `fs` for `source`: made with the tools when they are there
/// (Auto, ext4 and XFS), else the shipped one. Made once per process.
pub fn image(fs: FsType, source: ImageSource) -> Result<Arc<SuiteImage>, String> {
    /// Images by type and whether only shipped ones were asked for.
    type Cache = Mutex<HashMap<(FsType, bool), Arc<SuiteImage>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let key = (fs, source == ImageSource::Shipped);
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(found) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(found);
    }
    let made = match (source, fs) {
        (ImageSource::Auto, FsType::Ext4 | FsType::Xfs) => match make_with_tools(fs) {
            Ok(image) => Ok(image),
            Err(why) => shipped(fs).map(|mut image| {
                image.source = format!("shipped ({why})");
                image
            }),
        },
        _ => shipped(fs),
    };
    let image = Arc::new(made?);
    if let Ok(mut cache) = cache.lock() {
        cache.insert(key, image.clone());
    }
    Ok(image)
}

/// The shipped image of `fs`, decompressed.
pub fn shipped(fs: FsType) -> Result<SuiteImage, String> {
    let bytes = zstd::stream::decode_all(fs.shipped())
        .map_err(|e| format!("the shipped {} image does not decompress: {e}", fs.name()))?;
    if bytes.is_empty() {
        return Err(format!(
            "no {} image is shipped with this build (run scripts/make-conformance-images)",
            fs.name()
        ));
    }
    Ok(SuiteImage {
        fs,
        bytes,
        source: "shipped".to_string(),
        owners_kept: fs != FsType::Reiserfs,
    })
}

/// Makes the image of `fs` with the real tools in a scratch directory.
fn make_with_tools(fs: FsType) -> Result<SuiteImage, String> {
    let dir = tempfile::Builder::new()
        .prefix("homeward-conformance-image-")
        .tempdir()
        .map_err(|e| format!("cannot make a scratch directory: {e}"))?;
    let path = dir.path().join("fs.img");
    let source = match fs {
        FsType::Ext4 => make_ext4(dir.path(), &path)?,
        FsType::Xfs => make_xfs(dir.path(), &path)?,
        FsType::Reiserfs => return Err("ReiserFS tools cannot populate an image".to_string()),
    };
    let bytes = std::fs::read(&path).map_err(|e| format!("cannot read the made image: {e}"))?;
    Ok(SuiteImage {
        fs,
        bytes,
        source,
        owners_kept: true,
    })
}

/// Timestamps every tool stamps into the images, for reproducible bytes.
const EPOCH: &str = "1700000000";

fn run(tool: &str, args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    let program =
        crate::conformance::find_tool(tool).ok_or_else(|| format!("`{tool}` is not installed"))?;
    let output = Command::new(&program)
        .args(args)
        .envs(env.iter().copied())
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .env("E2FSPROGS_FAKE_TIME", EPOCH)
        .output()
        .map_err(|e| format!("cannot run `{tool}`: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{tool} {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

fn io(what: &str) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// Writes the known tree under `root` with its modes (owners need root and
/// are set by each tool's own means).
fn write_source_tree(root: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(root).map_err(io("source tree"))?;
    for known in KNOWN_TREE {
        let host = root.join(known.path.trim_start_matches('/'));
        match known.node {
            Node::Dir => std::fs::create_dir(&host).map_err(io(known.path))?,
            Node::File(content) => std::fs::write(&host, content()).map_err(io(known.path))?,
            Node::Symlink(target) => {
                std::os::unix::fs::symlink(target, &host).map_err(io(known.path))?;
                continue;
            }
        }
        std::fs::set_permissions(&host, std::fs::Permissions::from_mode(known.mode))
            .map_err(io(known.path))?;
    }
    Ok(())
}

fn sparse_file(path: &Path, size: u64) -> Result<(), String> {
    std::fs::File::create(path)
        .and_then(|f| f.set_len(size))
        .map_err(io("image file"))
}

fn utf8(path: &Path) -> Result<&str, String> {
    path.to_str()
        .ok_or_else(|| format!("{} is not UTF-8", path.display()))
}

/// `mkfs.ext4 -d` from a source tree, then `debugfs -w` for the owners.
fn make_ext4(dir: &Path, image: &Path) -> Result<String, String> {
    let src = dir.join("src");
    write_source_tree(&src)?;
    sparse_file(image, 8 << 20)?;
    let uuid = FsType::Ext4.uuid();
    let extended = format!("hash_seed={uuid},root_owner=0:0,lazy_itable_init=0");
    let (src_s, img_s) = (utf8(&src)?, utf8(image)?);
    run(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-b",
            "4096",
            "-U",
            uuid,
            "-L",
            "conformance",
            "-E",
            &extended,
            "-d",
            src_s,
            img_s,
        ],
        &[],
    )?;
    let mut commands = String::new();
    for known in KNOWN_TREE {
        let _ = writeln!(commands, "sif \"{}\" uid {}", known.path, known.uid);
        let _ = writeln!(commands, "sif \"{}\" gid {}", known.path, known.gid);
    }
    let script = dir.join("debugfs.cmd");
    std::fs::write(&script, commands).map_err(io("debugfs script"))?;
    run("debugfs", &["-w", "-f", utf8(&script)?, img_s], &[])?;
    Ok("made by mkfs.ext4 -d".to_string())
}

/// What `mkfs.xfs` needs to accept an image under 300 MB.
const XFS_ENV: [(&str, &str); 3] = [("TEST_DIR", "1"), ("TEST_DEV", "1"), ("QA_CHECK_FS", "1")];

/// `mkfs.xfs -p protofile`: the protofile carries modes and owners.
fn make_xfs(dir: &Path, image: &Path) -> Result<String, String> {
    let src = dir.join("src");
    write_source_tree(&src)?;
    let proto = dir.join("proto");
    std::fs::write(&proto, protofile(&src)?).map_err(io("protofile"))?;
    sparse_file(image, 16 << 20)?;
    let uuid = format!("uuid={}", FsType::Xfs.uuid());
    run(
        "mkfs.xfs",
        &[
            "-q",
            "-f",
            "-m",
            &uuid,
            "-L",
            "conformance",
            "-p",
            utf8(&proto)?,
            utf8(image)?,
        ],
        &XFS_ENV,
    )?;
    Ok("made by mkfs.xfs -p".to_string())
}

/// The `mkfs.xfs -p` protofile of the known tree, whose files are in `src`.
fn protofile(src: &Path) -> Result<String, String> {
    let mut text = String::from("/dev/null\n0 0\nd--755 0 0\n");
    let depth = |path: &str| path.matches('/').count();
    let mut open: Vec<&str> = Vec::new();
    for known in KNOWN_TREE {
        while let Some(dir) = open.last() {
            if known.path.starts_with(&format!("{dir}/")) {
                break;
            }
            let _ = writeln!(text, "{}$", " ".repeat(depth(dir)));
            open.pop();
        }
        let name = known.path.rsplit('/').next().unwrap_or_default();
        let indent = " ".repeat(depth(known.path));
        let mode = format!(
            "{}{}{:03o}",
            if known.mode & 0o4000 != 0 { 'u' } else { '-' },
            if known.mode & 0o2000 != 0 { 'g' } else { '-' },
            known.mode & 0o777
        );
        match known.node {
            Node::Dir => {
                let _ = writeln!(text, "{indent}{name} d{mode} {} {}", known.uid, known.gid);
                open.push(known.path);
            }
            Node::File(_) => {
                let file = src.join(known.path.trim_start_matches('/'));
                let _ = writeln!(
                    text,
                    "{indent}{name} -{mode} {} {} {}",
                    known.uid,
                    known.gid,
                    utf8(&file)?
                );
            }
            Node::Symlink(target) => {
                let _ = writeln!(
                    text,
                    "{indent}{name} l{mode} {} {} {target}",
                    known.uid, known.gid
                );
            }
        }
    }
    while let Some(dir) = open.pop() {
        let _ = writeln!(text, "{}$", " ".repeat(depth(dir)));
    }
    text.push_str("$\n");
    Ok(text)
}

/// Makes the three shipped images into `out` (`<type>.img.zst`): ext4 and
/// XFS with the tools, ReiserFS with `mkreiserfs` populated through the
/// embedded ReiserFS handler; each must pass its checker first. Used by
/// `scripts/make-conformance-images`, never by the suite.
pub fn write_shipped_images(out: &Path) -> Result<(), String> {
    for fs in FsType::ALL {
        let dir = tempfile::tempdir().map_err(io("scratch directory"))?;
        let image = dir.path().join("fs.img");
        match fs {
            FsType::Ext4 => make_ext4(dir.path(), &image).map(drop)?,
            FsType::Xfs => make_xfs(dir.path(), &image).map(drop)?,
            FsType::Reiserfs => make_reiserfs(&image)?,
        }
        let (checker, args, _) = fs.checker();
        let mut args = args.to_vec();
        args.push(utf8(&image)?);
        run(checker, &args, &[])?;
        let bytes = std::fs::read(&image).map_err(io("made image"))?;
        let packed = zstd::bulk::compress(&bytes, 19).map_err(io("zstd"))?;
        std::fs::write(out.join(fs.fixture_name()), packed).map_err(io("fixture"))?;
    }
    Ok(())
}

/// `mkreiserfs`, then the known tree written through the embedded handler.
fn make_reiserfs(image: &Path) -> Result<(), String> {
    use crate::config::Grants;
    use crate::plugin::{PluginSettings, Runtime, RuntimeOptions};
    sparse_file(image, 40 << 20)?;
    let img_s = utf8(image)?;
    run(
        "mkreiserfs",
        &[
            "-f",
            "-f",
            "-q",
            "-u",
            FsType::Reiserfs.uuid(),
            "-l",
            "conformance",
            img_s,
        ],
        &[],
    )?;
    let runtime = Runtime::new(RuntimeOptions::default()).map_err(|e| e.to_string())?;
    let settings = PluginSettings {
        grants: Grants {
            disk_write: true,
            ..Grants::default()
        },
        ..PluginSettings::default()
    };
    let embedded = crate::embedded::FS_REISERFS;
    let plugin = runtime
        .load(embedded.wasm, embedded.id, settings)
        .map_err(|e| e.to_string())?;
    let device: Arc<dyn crate::disk::BlockDevice> =
        Arc::new(crate::disk::RawFile::open_writable(image).map_err(io("image"))?);
    let mut volume = plugin
        .instantiate()
        .and_then(|i| i.open_volume(device, "reiserfs", true))
        .map_err(|e| e.to_string())?;
    for known in KNOWN_TREE {
        match known.node {
            Node::Dir => volume.create_dir(known.path, known.mode),
            Node::File(content) => volume.write_file(known.path, &content(), known.mode),
            Node::Symlink(target) => volume.create_symlink(known.path, target),
        }
        .map_err(|e| format!("{}: {e}", known.path))?;
    }
    volume.close().map_err(|e| e.to_string())
}

/// Inputs that hold no file system, of `size` bytes.
pub fn zeros(size: usize) -> Vec<u8> {
    vec![0; size]
}

/// Random-looking bytes of `size`.
pub fn random(size: usize) -> Vec<u8> {
    pseudo_random(size, 0x5eed)
}
