//! The file-system suite: the contract of the `filesystem-handler` world on
//! images of a known tree.
//!
//! The host relies on a handler for three things: recognising its own file
//! system and nothing else (`probe`, first "mine" wins), vouching for every
//! byte in use (`used-extents`: the data path copies only those, so an
//! under-report loses data on failback), and reading and writing files so
//! guest steps can fix a guest offline. Every image holds the known tree of
//! [`fs_images::KNOWN_TREE`]; the images come from the real `mkfs` tools when
//! installed, else from the suite's shipped copies (see [`fs_images`]). Cases
//! on images the handler claims none of skip with the reason; a case's
//! failure message names the image and where it came from.
//!
//! Damage is an answer, never a crash: truncated, zeroed, random and
//! bit-flipped inputs must get a typed error or data, never a trap or a
//! stopped call.

use super::fs_images::{self, FsType, KNOWN_TREE, Known, Node, SuiteImage};
use crate::conformance::case::ensure;
use crate::conformance::{
    Case, CaseContext, CaseEnd, ErrorKind, Requirement, expect_error, expect_no_trap, expect_ok,
};
use crate::disk::layout::MemDisk;
use crate::disk::{BlockDevice, RawFile};
use crate::guest_fs::FileKind;
use crate::plugin::instance::{FsInfo, ProbeResult};
use crate::plugin::wit::v0_1::DiskHandle;
use crate::plugin::{
    Failure, LoadedPlugin, PluginError, PluginInstance, PluginSettings, PluginVolume,
};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The cases of this suite.
pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "filesystem/probe-own-image",
            summary: "claims its own image with plausible fs-info (type, power-of-two block size, free <= total, uuid, clean)",
            smoke: true,
            requires: &[],
            run: probe_own_image,
        },
        Case {
            name: "filesystem/probe-only-own-type",
            summary: "claims images of one file-system type at most, and answers `not-mine` for the others",
            smoke: true,
            requires: &[],
            run: probe_only_own_type,
        },
        Case {
            name: "filesystem/probe-not-mine",
            summary: "answers `not-mine` on all-zero and random devices",
            smoke: true,
            requires: &[],
            run: probe_not_mine,
        },
        Case {
            name: "filesystem/probe-damaged",
            summary: "truncated images and inverted superblocks of its type: `invalid-input` or `not-mine`, never a trap",
            smoke: false,
            requires: &[],
            run: probe_damaged,
        },
        Case {
            name: "filesystem/used-extents-shape",
            summary: "used extents are non-empty, sorted, merged, inside the device and cover the superblock",
            smoke: true,
            requires: &[],
            run: used_extents_shape,
        },
        Case {
            name: "filesystem/used-extents-copy",
            summary: "a copy of only the used bytes reads back the whole tree byte for byte",
            smoke: false,
            requires: &[],
            run: used_extents_copy,
        },
        Case {
            name: "filesystem/used-extents-not-mine",
            summary: "used-extents on a device without its file system is a typed error, never a list",
            smoke: false,
            requires: &[],
            run: used_extents_not_mine,
        },
        Case {
            name: "filesystem/read-dir",
            summary: "read-dir lists each directory sorted by name, without `.` and `..`, with the right kinds",
            smoke: true,
            requires: &[],
            run: read_dir,
        },
        Case {
            name: "filesystem/stat",
            summary: "stat gives kind, size, permission and set-id bits, and owners of every entry",
            smoke: false,
            requires: &[],
            run: stat,
        },
        Case {
            name: "filesystem/read-file",
            summary: "read-file returns every file byte for byte (empty, multi-block, sparse) and read-link every target",
            smoke: true,
            requires: &[],
            run: read_file,
        },
        Case {
            name: "filesystem/read-offsets",
            summary: "reads at offsets inside, across block ends, at and past the end (short or empty), and at u64::MAX",
            smoke: false,
            requires: &[],
            run: read_offsets,
        },
        Case {
            name: "filesystem/read-errors",
            summary: "missing paths are `not-found`; read-file on a directory, read-dir on a file, read-link on a file are typed errors",
            smoke: false,
            requires: &[],
            run: read_errors,
        },
        Case {
            name: "filesystem/write-read-back",
            summary: "new and replaced files, a directory, a symlink and removals survive sync, close and a read-only reopen",
            smoke: false,
            requires: &[Requirement::DiskWrite],
            run: write_read_back,
        },
        Case {
            name: "filesystem/write-fsck-clean",
            summary: "after the writes, the file system's own checker (e2fsck -fn, xfs_repair -n, reiserfsck --check) calls it clean",
            smoke: false,
            requires: &[Requirement::DiskWrite],
            run: write_fsck_clean,
        },
        Case {
            name: "filesystem/read-only",
            summary: "opening writable on a read-only disk and writing through a read-only volume are `permission-denied` and change nothing",
            smoke: false,
            requires: &[],
            run: read_only,
        },
        Case {
            name: "filesystem/damaged-metadata",
            summary: "images with flipped bytes in metadata blocks: every call answers data or a typed error, never a trap",
            smoke: false,
            requires: &[],
            run: damaged_metadata,
        },
    ]
}

// ---------------------------------------------------------------------------
// Images and devices
// ---------------------------------------------------------------------------

/// An image of the suite's that the handler claims, with what it said.
struct Claimed {
    image: Arc<SuiteImage>,
    info: FsInfo,
}

impl Claimed {
    /// `ext4 image (made by mkfs.ext4 -d)`, for messages.
    fn label(&self) -> String {
        label(&self.image)
    }
}

fn label(image: &SuiteImage) -> String {
    format!("{} image ({})", image.fs.name(), image.source)
}

/// The suite's images, one per type; an image the suite cannot provide
/// skips the case (a problem of this installation, not of the plugin).
fn images(ctx: &CaseContext<'_>) -> Result<Vec<Arc<SuiteImage>>, CaseEnd> {
    FsType::ALL
        .iter()
        .map(|&fs| fs_images::image(fs, ctx.options().images).map_err(CaseEnd::Skip))
        .collect()
}

fn mem(bytes: Vec<u8>, writable: bool) -> Arc<dyn BlockDevice> {
    Arc::new(MemDisk::new(bytes, writable))
}

/// Probes `bytes` in a fresh instance.
fn probe(
    ctx: &mut CaseContext<'_>,
    bytes: Vec<u8>,
) -> Result<Result<ProbeResult, PluginError>, CaseEnd> {
    let mut instance = ctx.instance()?;
    Ok(instance.probe_filesystem(mem(bytes, false), "conformance"))
}

/// Every suite image the handler claims. None claimed skips the case: the
/// suite has no image of the handler's file system.
fn claimed(ctx: &mut CaseContext<'_>) -> Result<Vec<Claimed>, CaseEnd> {
    let mut out = Vec::new();
    let all = images(ctx)?;
    for image in &all {
        if let Ok(ProbeResult::Mine(info)) = probe(ctx, image.bytes.clone())? {
            out.push(Claimed {
                image: image.clone(),
                info,
            });
        }
    }
    if out.is_empty() {
        return Err(CaseEnd::Skip(format!(
            "the handler claims none of the suite's images ({}): the suite has no image of its file system",
            all.iter().map(|i| label(i)).collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(out)
}

/// Opens `device` in a fresh instance of `plugin` (the plugin under test when `None`).
fn open(
    ctx: &mut CaseContext<'_>,
    plugin: Option<&LoadedPlugin>,
    device: Arc<dyn BlockDevice>,
    writable: bool,
    what: &str,
) -> Result<PluginVolume, CaseEnd> {
    let instance = match plugin {
        Some(plugin) => ctx.instance_of(plugin)?,
        None => ctx.instance()?,
    };
    expect_ok(
        &format!("open {what}{}", if writable { " writable" } else { "" }),
        instance.open_volume(device, "conformance", writable),
    )
}

/// The raw `used-extents` answer, without the host's checks and merging, so
/// the case can check the shape the handler itself returns.
fn raw_used_extents(
    instance: &mut PluginInstance,
    device: Arc<dyn BlockDevice>,
) -> Result<Result<Vec<(u64, u64)>, Failure>, PluginError> {
    let disk = DiskHandle {
        id: "conformance".to_string(),
        device,
        writable: false,
    };
    let answer = instance.call("filesystem.used-extents", |b, store| {
        b.used_extents(store, disk)
    })?;
    Ok(answer
        .map(|ranges| ranges.into_iter().map(|r| (r.offset, r.length)).collect())
        .map_err(Failure::from))
}

/// Where the superblock of each type lies, and where its magic is inside it.
fn superblock(fs: FsType) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
    match fs {
        FsType::Ext4 => (1024..2048, 1080..1082),
        FsType::Xfs => (0..512, 0..4),
        FsType::Reiserfs => (65536..65536 + 204, 65536 + 52..65536 + 62),
    }
}

// ---------------------------------------------------------------------------
// probe
// ---------------------------------------------------------------------------

fn probe_own_image(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    for claim in claimed(ctx)? {
        let (info, what) = (&claim.info, claim.label());
        ctx.note(format!("claims the {what}"));
        ensure!(
            info.fs_type == claim.image.fs.name(),
            "{what}: fs-info.fs-type is `{}`, expected `{}`",
            info.fs_type,
            claim.image.fs.name()
        );
        ensure!(
            info.block_size.is_power_of_two() && (512..=65536).contains(&info.block_size),
            "{what}: block size {} is not a power of two between 512 and 65536",
            info.block_size
        );
        ensure!(
            info.total_blocks > 0 && info.free_blocks <= info.total_blocks,
            "{what}: free blocks {} of total {}: free must not exceed a non-zero total",
            info.free_blocks,
            info.total_blocks
        );
        let capacity = claim.image.bytes.len() as u64;
        ensure!(
            info.total_blocks.saturating_mul(u64::from(info.block_size)) <= capacity,
            "{what}: {} blocks of {} bytes do not fit in the {capacity}-byte device",
            info.total_blocks,
            info.block_size
        );
        ensure!(
            is_uuid(&info.uuid),
            "{what}: uuid `{}` is not lower-case hex with dashes (8-4-4-4-12)",
            info.uuid
        );
        ensure!(
            info.uuid == claim.image.fs.uuid(),
            "{what}: uuid is `{}`, but the image was made with `{}`",
            info.uuid,
            claim.image.fs.uuid()
        );
        ensure!(
            info.label == "conformance",
            "{what}: label is `{}`, but the image was made with `conformance`",
            info.label
        );
        ensure!(
            info.clean,
            "{what}: a freshly made image is reported not clean"
        );
        // The volume tells the same facts as the probe.
        let mut volume = open(
            ctx,
            None,
            mem(claim.image.bytes.clone(), false),
            false,
            &what,
        )?;
        let again = expect_ok(&format!("volume.info on {what}"), volume.info())?;
        ensure!(
            format!("{again:?}") == format!("{info:?}"),
            "{what}: volume.info differs from probe:\nprobe:  {info:?}\nvolume: {again:?}"
        );
    }
    Ok(())
}

fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| {
            g.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

fn probe_only_own_type(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    let claims = claimed(ctx)?;
    let types: Vec<&str> = claims.iter().map(|c| c.image.fs.name()).collect();
    ensure!(
        types.len() == 1,
        "the handler claims images of {} file-system types ({}): a handler claims its own type only, or detection picks the wrong handler",
        types.len(),
        types.join(", ")
    );
    for image in images(ctx)? {
        if image.fs.name() == types[0] {
            continue;
        }
        let what = label(&image);
        let answer = probe(ctx, image.bytes.clone())?;
        match expect_ok(&format!("probe of the {what}"), answer)? {
            ProbeResult::NotMine => {}
            ProbeResult::Mine(info) => {
                return Err(CaseEnd::Fail(format!(
                    "probe of the {what} answered `mine` ({info:?}); expected `not-mine`"
                )));
            }
        }
    }
    Ok(())
}

fn probe_not_mine(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    for (what, bytes) in [
        ("an all-zero 8 MiB device", fs_images::zeros(8 << 20)),
        ("a random 8 MiB device", fs_images::random(8 << 20)),
        ("an all-zero 4 KiB device", fs_images::zeros(4096)),
    ] {
        match expect_ok(&format!("probe of {what}"), probe(ctx, bytes)?)? {
            ProbeResult::NotMine => {}
            ProbeResult::Mine(info) => {
                return Err(CaseEnd::Fail(format!(
                    "probe of {what} answered `mine` ({info:?}); expected `not-mine`"
                )));
            }
        }
    }
    Ok(())
}

/// How a copy of an image is damaged.
#[derive(Debug, Clone, Copy)]
enum Damage {
    /// Cut after this many bytes.
    Truncated(usize),
    /// Every superblock byte but the magic inverted.
    SuperblockInverted,
}

impl Damage {
    fn describe(self) -> String {
        match self {
            Damage::Truncated(keep) => format!("truncated to {keep} bytes"),
            Damage::SuperblockInverted => "with the superblock inverted but its magic".to_string(),
        }
    }
}

/// Damaged copies of `image`: truncated at several points, and with every
/// superblock byte but the magic inverted.
fn damaged_copies(image: &SuiteImage) -> Vec<(Damage, Vec<u8>)> {
    let bytes = &image.bytes;
    let (sb, magic) = superblock(image.fs);
    let mut out = Vec::new();
    for keep in [sb.end, 128 << 10, bytes.len() / 2, bytes.len() - 4096] {
        if keep < bytes.len() {
            out.push((Damage::Truncated(keep), bytes[..keep].to_vec()));
        }
    }
    let mut inverted = bytes.clone();
    for at in sb {
        if !magic.contains(&at)
            && let Some(b) = inverted.get_mut(at)
        {
            *b ^= 0xff;
        }
    }
    out.push((Damage::SuperblockInverted, inverted));
    out
}

fn probe_damaged(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    for claim in claimed(ctx)? {
        for (damage, bytes) in damaged_copies(&claim.image) {
            let what = format!("the {} {}", claim.label(), damage.describe());
            let answer = probe(ctx, bytes.clone())?;
            match (damage, answer) {
                (_, Ok(ProbeResult::NotMine)) => {}
                // A truncated image keeps its superblock: the handler must
                // compare the size it claims with the volume's and refuse.
                (_, answer) => {
                    expect_error(
                        &format!("probe of {what}"),
                        answer,
                        &[ErrorKind::InvalidInput],
                    )?;
                }
            }
            // Through the host's checks (ranges inside the device, sorted),
            // which turn a range past the end into a typed error the data
            // path refuses: what matters here is that nothing traps.
            let mut instance = ctx.instance()?;
            expect_no_trap(
                &format!("used-extents of {what}"),
                instance.used_extents(mem(bytes, false), "conformance"),
            )?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// used-extents
// ---------------------------------------------------------------------------

fn used_extents_shape(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    for claim in claimed(ctx)? {
        let what = claim.label();
        let capacity = claim.image.bytes.len() as u64;
        let mut instance = ctx.instance()?;
        let answer = raw_used_extents(&mut instance, mem(claim.image.bytes.clone(), false));
        let ranges = match expect_ok(&format!("used-extents of the {what}"), answer)? {
            Ok(ranges) => ranges,
            Err(failure) => {
                return Err(CaseEnd::Fail(format!(
                    "used-extents of the {what}: expected ranges, got `{}`: {failure}",
                    ErrorKind::of(&failure).wit_name()
                )));
            }
        };
        ensure!(!ranges.is_empty(), "used-extents of the {what} is empty");
        let mut previous_end: Option<u64> = None;
        for &(offset, length) in &ranges {
            ensure!(
                length > 0,
                "used-extents of the {what}: empty range at {offset}"
            );
            let end = offset.checked_add(length).filter(|&end| end <= capacity);
            let Some(end) = end else {
                return Err(CaseEnd::Fail(format!(
                    "used-extents of the {what}: range {offset}+{length} lies past the end of the {capacity}-byte device"
                )));
            };
            if let Some(previous) = previous_end {
                ensure!(
                    offset > previous,
                    "used-extents of the {what}: range at {offset} is not sorted and merged after the range ending at {previous} (touching ranges must be merged)"
                );
            }
            previous_end = Some(end);
        }
        let (sb, _) = superblock(claim.image.fs);
        let (start, end) = (sb.start as u64, sb.end as u64);
        ensure!(
            ranges.iter().any(|&(o, l)| o <= start && end <= o + l),
            "used-extents of the {what} does not cover the superblock (bytes {start}..{end})"
        );
    }
    Ok(())
}

fn used_extents_copy(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    for claim in claimed(ctx)? {
        let what = claim.label();
        let bytes = &claim.image.bytes;
        let mut instance = ctx.instance()?;
        let used = expect_ok(
            &format!("used-extents of the {what}"),
            instance.used_extents(mem(bytes.clone(), false), "conformance"),
        )?;
        // A fresh image's free space is zeros: data outside the ranges is
        // data the handler forgot.
        let mut at = 0usize;
        for range in used
            .iter()
            .chain(std::iter::once(&(bytes.len() as u64..bytes.len() as u64)))
        {
            let start = usize::try_from(range.start)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            if let Some(offset) = bytes[at.min(start)..start].iter().position(|&b| b != 0) {
                let offset = at + offset;
                return Err(CaseEnd::Fail(format!(
                    "used-extents of the {what} leaves out byte {offset}, which holds data in a fresh image: the data path would not copy it"
                )));
            }
            at = usize::try_from(range.end)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
        }
        let mut copy = vec![0u8; bytes.len()];
        for range in &used {
            let (start, end) = (range.start as usize, range.end as usize);
            copy[start..end].copy_from_slice(&bytes[start..end]);
        }
        let context = format!("a copy of only the used bytes of the {what}");
        let mut volume = open(ctx, None, mem(copy, false), false, &context)?;
        check_tree(&mut volume, &claim.image, &context, &[])?;
    }
    Ok(())
}

fn used_extents_not_mine(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    for (what, bytes) in [
        ("an all-zero 8 MiB device", fs_images::zeros(8 << 20)),
        ("a random 8 MiB device", fs_images::random(8 << 20)),
    ] {
        let mut instance = ctx.instance()?;
        let answer = instance.used_extents(mem(bytes, false), "conformance");
        expect_error(
            &format!("used-extents of {what} (no file system: it must not vouch for free space)"),
            answer,
            &[
                ErrorKind::InvalidInput,
                ErrorKind::Unsupported,
                ErrorKind::NotFound,
            ],
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// read
// ---------------------------------------------------------------------------

/// Entries the tools add to a fresh file system's root.
const BOOKKEEPING: &[&str] = &["lost+found", ".reiserfs_priv"];

/// The expected children of every directory of the known tree (and `/`).
fn expected_dirs(skip: &[&str]) -> BTreeMap<String, Vec<(String, FileKind)>> {
    let mut dirs: BTreeMap<String, Vec<(String, FileKind)>> = BTreeMap::new();
    dirs.insert("/".to_string(), Vec::new());
    for known in KNOWN_TREE.iter().filter(|k| !skip.contains(&k.path)) {
        let (parent, name) = known.path.rsplit_once('/').unwrap_or(("", known.path));
        let parent = if parent.is_empty() { "/" } else { parent };
        dirs.entry(parent.to_string())
            .or_default()
            .push((name.to_string(), kind_of(known)));
        if matches!(known.node, Node::Dir) {
            dirs.entry(known.path.to_string()).or_default();
        }
    }
    for children in dirs.values_mut() {
        children.sort_by(|a, b| a.0.cmp(&b.0));
    }
    dirs
}

fn kind_of(known: &Known) -> FileKind {
    match known.node {
        Node::Dir => FileKind::Directory,
        Node::File(_) => FileKind::Regular,
        Node::Symlink(_) => FileKind::Symlink,
    }
}

fn check_read_dir(volume: &mut PluginVolume, what: &str, skip: &[&str]) -> Result<(), CaseEnd> {
    for (dir, expected) in expected_dirs(skip) {
        let entries = expect_ok(
            &format!("read-dir {dir} on the {what}"),
            volume.read_dir(&dir),
        )?;
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        ensure!(
            !names.contains(&".") && !names.contains(&".."),
            "read-dir {dir} on the {what} lists `.` or `..`: {names:?}"
        );
        ensure!(
            names.windows(2).all(|w| w[0] < w[1]),
            "read-dir {dir} on the {what} is not sorted by name (or lists a name twice): {names:?}"
        );
        let got: Vec<(String, FileKind)> = entries
            .iter()
            .filter(|e| !(dir == "/" && BOOKKEEPING.contains(&e.name.as_str())))
            .map(|e| (e.name.clone(), e.kind))
            .collect();
        ensure!(
            got == expected,
            "read-dir {dir} on the {what}:\nexpected {expected:?}\ngot      {got:?}"
        );
    }
    Ok(())
}

fn check_stat(
    volume: &mut PluginVolume,
    image: &SuiteImage,
    what: &str,
    skip: &[&str],
) -> Result<(), CaseEnd> {
    let root = expect_ok(&format!("stat / on the {what}"), volume.stat("/"))?;
    ensure!(
        root.kind == FileKind::Directory,
        "stat / on the {what}: kind {:?}, expected a directory",
        root.kind
    );
    for known in KNOWN_TREE.iter().filter(|k| !skip.contains(&k.path)) {
        let path = known.path;
        let stat = expect_ok(&format!("stat {path} on the {what}"), volume.stat(path))?;
        ensure!(
            stat.kind == kind_of(known),
            "stat {path} on the {what}: kind {:?}, expected {:?}",
            stat.kind,
            kind_of(known)
        );
        match known.node {
            Node::File(content) => ensure!(
                stat.size == content().len() as u64,
                "stat {path} on the {what}: size {}, expected {}",
                stat.size,
                content().len()
            ),
            Node::Symlink(target) => ensure!(
                stat.size == target.len() as u64,
                "stat {path} on the {what}: a symlink's size is its target's length, {}, not {}",
                target.len(),
                stat.size
            ),
            Node::Dir => {}
        }
        if !matches!(known.node, Node::Symlink(_)) {
            ensure!(
                stat.mode == known.mode,
                "stat {path} on the {what}: mode {:04o}, expected {:04o} (permission and set-id bits)",
                stat.mode,
                known.mode
            );
        }
        if image.owners_kept {
            ensure!(
                (stat.uid, stat.gid) == (known.uid, known.gid),
                "stat {path} on the {what}: owner {}:{}, expected {}:{}",
                stat.uid,
                stat.gid,
                known.uid,
                known.gid
            );
        }
    }
    Ok(())
}

fn check_contents(volume: &mut PluginVolume, what: &str, skip: &[&str]) -> Result<(), CaseEnd> {
    for known in KNOWN_TREE.iter().filter(|k| !skip.contains(&k.path)) {
        let path = known.path;
        match known.node {
            Node::File(content) => {
                let got = expect_ok(
                    &format!("read-file {path} on the {what}"),
                    volume.read_whole(path, 16 << 20),
                )?;
                ensure!(
                    got == content(),
                    "read-file {path} on the {what}: {} bytes differ from the {} written{}",
                    got.len(),
                    content().len(),
                    first_difference(&got, &content())
                );
            }
            Node::Symlink(target) => check_link(volume, path, target, what)?,
            Node::Dir => {}
        }
    }
    Ok(())
}

fn first_difference(got: &[u8], want: &[u8]) -> String {
    match got.iter().zip(want).position(|(a, b)| a != b) {
        Some(at) => format!(" (first difference at byte {at})"),
        None => String::new(),
    }
}

/// The whole known tree (less `skip`) as the volume shows it.
fn check_tree(
    volume: &mut PluginVolume,
    image: &SuiteImage,
    what: &str,
    skip: &[&str],
) -> Result<(), CaseEnd> {
    check_read_dir(volume, what, skip)?;
    check_stat(volume, image, what, skip)?;
    check_contents(volume, what, skip)
}

/// Runs `check` on a read-only volume of every claimed image.
fn on_claimed(
    ctx: &mut CaseContext<'_>,
    check: fn(&mut PluginVolume, &SuiteImage, &str) -> Result<(), CaseEnd>,
) -> Result<(), CaseEnd> {
    for claim in claimed(ctx)? {
        let what = claim.label();
        let mut volume = open(
            ctx,
            None,
            mem(claim.image.bytes.clone(), false),
            false,
            &what,
        )?;
        check(&mut volume, &claim.image, &what)?;
    }
    Ok(())
}

fn read_dir(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    on_claimed(ctx, |v, _, what| check_read_dir(v, what, &[]))
}

fn stat(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    on_claimed(ctx, |v, image, what| check_stat(v, image, what, &[]))
}

fn read_file(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    on_claimed(ctx, |v, _, what| check_contents(v, what, &[]))
}

fn read_offsets(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    on_claimed(ctx, |volume, _, what| {
        for known in KNOWN_TREE {
            let Node::File(content) = known.node else {
                continue;
            };
            let (path, content) = (known.path, content());
            let size = content.len() as u64;
            let mut probes: Vec<(u64, u32)> = vec![(0, 0), (0, 1), (1, 100), (size / 2, 5000)];
            for edge in [4095u64, 4096, 4097, 8191, 8192, 65_535, 65_536] {
                if edge < size {
                    probes.push((edge, 3000));
                }
            }
            probes.push((size.saturating_sub(10), 100));
            probes.push((size, 100));
            for (offset, length) in probes {
                let got = expect_ok(
                    &format!("read-file {path} at {offset} for {length} on the {what}"),
                    volume.read_file(path, offset, length),
                )?;
                let start = offset.min(size) as usize;
                let end = offset.saturating_add(u64::from(length)).min(size) as usize;
                ensure!(
                    got == content[start..end],
                    "read-file {path} at {offset} for {length} on the {what}: got {} bytes, expected the {} bytes at that offset{}",
                    got.len(),
                    end - start,
                    first_difference(&got, &content[start..end])
                );
            }
            for offset in [size + 1, size + 1_000_000, u64::MAX - 10, u64::MAX] {
                let answer = volume.read_file(path, offset, 4096);
                match answer {
                    Ok(bytes) => ensure!(
                        bytes.is_empty(),
                        "read-file {path} at {offset}, past its {size}-byte end, on the {what}: got {} bytes, expected none",
                        bytes.len()
                    ),
                    other => {
                        expect_error(
                            &format!("read-file {path} at {offset}, past its end, on the {what}"),
                            other,
                            &[ErrorKind::InvalidInput],
                        )?;
                    }
                }
            }
        }
        Ok(())
    })
}

fn read_errors(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    on_claimed(ctx, |volume, _, what| {
        let not_found = &[ErrorKind::NotFound];
        for path in ["/no-such-file", "/etc/no-such-file", "/no-such-dir/child"] {
            expect_error(
                &format!("stat {path} on the {what}"),
                volume.stat(path),
                not_found,
            )?;
            expect_error(
                &format!("read-dir {path} on the {what}"),
                volume.read_dir(path),
                not_found,
            )?;
            expect_error(
                &format!("read-file {path} on the {what}"),
                volume.read_file(path, 0, 16),
                not_found,
            )?;
            expect_error(
                &format!("read-link {path} on the {what}"),
                volume.read_link(path),
                not_found,
            )?;
        }
        let misuse = &[
            ErrorKind::InvalidInput,
            ErrorKind::NotFound,
            ErrorKind::Unsupported,
        ];
        expect_error(
            &format!("stat /etc/hostname/child (a file used as a directory) on the {what}"),
            volume.stat("/etc/hostname/child"),
            misuse,
        )?;
        expect_error(
            &format!("read-file /etc (a directory) on the {what}"),
            volume.read_file("/etc", 0, 16),
            misuse,
        )?;
        expect_error(
            &format!("read-dir /etc/hostname (a file) on the {what}"),
            volume.read_dir("/etc/hostname"),
            misuse,
        )?;
        expect_error(
            &format!("read-link /etc/hostname (not a symlink) on the {what}"),
            volume.read_link("/etc/hostname"),
            misuse,
        )?;
        expect_error(
            &format!("read-link /etc (a directory) on the {what}"),
            volume.read_link("/etc"),
            misuse,
        )?;
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// write
// ---------------------------------------------------------------------------

/// The plugin loaded with `disk-write` granted (the operator's other settings kept).
fn writer(ctx: &mut CaseContext<'_>) -> Result<LoadedPlugin, CaseEnd> {
    let mut settings: PluginSettings = ctx.options().settings.clone();
    settings.grants.disk_write = true;
    ctx.load_with(settings)
}

/// One change the write cases make, and how to check it afterwards.
enum Change {
    WriteFile(&'static str, fn() -> Vec<u8>, u32),
    CreateDir(&'static str, u32),
    Symlink(&'static str, &'static str),
    Remove(&'static str),
}

fn new_file() -> Vec<u8> {
    fs_images::pseudo_random(9000, 99)
}

fn replaced_hostname() -> Vec<u8> {
    b"replaced-by-the-conformance-suite\n".to_vec()
}

fn in_new_dir() -> Vec<u8> {
    b"inside a new directory\n".to_vec()
}

/// The changes, in order (a directory before what goes into it).
const CHANGES: &[Change] = &[
    Change::WriteFile("/etc/conformance-new", new_file, 0o640),
    Change::WriteFile("/etc/hostname", replaced_hostname, 0o644),
    Change::CreateDir("/srv/new-dir", 0o750),
    Change::WriteFile("/srv/new-dir/file", in_new_dir, 0o600),
    Change::Symlink("/srv/new-link", "/etc/hostname"),
    Change::Remove("/etc/empty"),
    Change::Remove("/home/alice/notes"),
];

impl Change {
    fn describe(&self) -> String {
        match self {
            Change::WriteFile(p, _, mode) => format!("write-file {p} (mode {mode:04o})"),
            Change::CreateDir(p, mode) => format!("create-dir {p} (mode {mode:04o})"),
            Change::Symlink(p, t) => format!("create-symlink {p} -> {t}"),
            Change::Remove(p) => format!("remove {p}"),
        }
    }

    fn path(&self) -> &'static str {
        match self {
            Change::WriteFile(p, ..)
            | Change::CreateDir(p, _)
            | Change::Symlink(p, _)
            | Change::Remove(p) => p,
        }
    }

    fn apply(&self, volume: &mut PluginVolume) -> Result<(), PluginError> {
        match self {
            Change::WriteFile(path, content, mode) => volume.write_file(path, &content(), *mode),
            Change::CreateDir(path, mode) => volume.create_dir(path, *mode),
            Change::Symlink(path, target) => volume.create_symlink(path, target),
            Change::Remove(path) => volume.remove(path),
        }
    }

    fn check(&self, volume: &mut PluginVolume, what: &str) -> Result<(), CaseEnd> {
        let path = self.path();
        match self {
            Change::WriteFile(_, content, mode) => {
                let got = expect_ok(
                    &format!("read-file {path} after {} on the {what}", self.describe()),
                    volume.read_whole(path, 1 << 20),
                )?;
                ensure!(
                    got == content(),
                    "{path} on the {what} after {}: {} bytes read differ from the {} written{}",
                    self.describe(),
                    got.len(),
                    content().len(),
                    first_difference(&got, &content())
                );
                check_kind_and_mode(
                    volume,
                    path,
                    FileKind::Regular,
                    *mode,
                    what,
                    &self.describe(),
                )?;
            }
            Change::CreateDir(_, mode) => {
                check_kind_and_mode(
                    volume,
                    path,
                    FileKind::Directory,
                    *mode,
                    what,
                    &self.describe(),
                )?;
            }
            Change::Symlink(_, target) => {
                let got = expect_ok(
                    &format!("read-link {path} on the {what}"),
                    volume.read_link(path),
                )?;
                ensure!(
                    got == *target,
                    "read-link {path} on the {what} after {}: `{got}`",
                    self.describe()
                );
            }
            Change::Remove(_) => {
                expect_error(
                    &format!("stat {path} on the {what} after {}", self.describe()),
                    volume.stat(path),
                    &[ErrorKind::NotFound],
                )?;
            }
        }
        Ok(())
    }
}

/// The outcome of the writes on one image: the written image file and the
/// changes the handler refused with `unsupported`.
struct Written {
    claim: Claimed,
    path: std::path::PathBuf,
    refused: Vec<String>,
}

/// Makes every change on a writable file copy of each claimed image, syncs
/// and closes. A write the handler does not support may answer
/// `unsupported` (it must refuse before writing); anything else fails.
fn write_changes(ctx: &mut CaseContext<'_>) -> Result<Vec<Written>, CaseEnd> {
    let plugin = writer(ctx)?;
    let mut out = Vec::new();
    for claim in claimed(ctx)? {
        let what = claim.label();
        let path = ctx
            .work_dir()?
            .join(format!("{}-written.img", claim.image.fs.name()));
        std::fs::write(&path, &claim.image.bytes).map_err(|e| {
            CaseEnd::Fail(format!("cannot write a scratch copy of the {what}: {e}"))
        })?;
        let device: Arc<dyn BlockDevice> =
            Arc::new(RawFile::open_writable(&path).map_err(|e| {
                CaseEnd::Fail(format!("cannot open the scratch copy of the {what}: {e}"))
            })?);
        let mut volume = open(ctx, Some(&plugin), device, true, &what)?;
        let mut refused = Vec::new();
        for change in CHANGES {
            match change.apply(&mut volume) {
                Ok(()) => {}
                Err(PluginError::Failed {
                    failure: Failure::Unsupported(why),
                    ..
                }) => {
                    refused.push(format!("{}: {why}", change.describe()));
                }
                Err(other) => {
                    return Err(CaseEnd::Fail(format!(
                        "{} on the {what}: expected success or `unsupported`, got: {other}",
                        change.describe()
                    )));
                }
            }
        }
        expect_ok(&format!("sync on the {what}"), volume.sync())?;
        expect_ok(&format!("close of the {what}"), volume.close())?;
        if !refused.is_empty() {
            ctx.note(format!(
                "{what}: writes refused with `unsupported`: {}",
                refused.join("; ")
            ));
        }
        out.push(Written {
            claim,
            path,
            refused,
        });
    }
    Ok(out)
}

fn write_read_back(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    let written = write_changes(ctx)?;
    let mut refusals = 0;
    for w in &written {
        let what = format!("{} after the writes, reopened read-only", w.claim.label());
        let device: Arc<dyn BlockDevice> = Arc::new(
            RawFile::open(&w.path)
                .map_err(|e| CaseEnd::Fail(format!("cannot reopen the {what}: {e}")))?,
        );
        let mut volume = open(ctx, None, device, false, &what)?;
        let refused = |change: &Change| w.refused.iter().any(|r| r.starts_with(&change.describe()));
        // A refused directory refuses what goes into it.
        let mut skipped_dirs: Vec<&str> = Vec::new();
        let mut touched: Vec<&str> = Vec::new();
        for change in CHANGES {
            touched.push(change.path());
            if refused(change) {
                if let Change::CreateDir(p, _) = change {
                    skipped_dirs.push(p);
                }
                continue;
            }
            if skipped_dirs
                .iter()
                .any(|d| change.path().starts_with(&format!("{d}/")))
            {
                continue;
            }
            change.check(&mut volume, &what)?;
        }
        refusals += w.refused.len();
        // What the writes did not touch is still there, unchanged.
        for known in KNOWN_TREE.iter().filter(|k| !touched.contains(&k.path)) {
            check_contents_of(&mut volume, known, &what)?;
        }
    }
    if refusals == CHANGES.len() * written.len() {
        return Err(CaseEnd::Skip(
            "the handler refused every write with `unsupported`: it writes nothing, so there is nothing to read back".to_string(),
        ));
    }
    Ok(())
}

fn check_contents_of(volume: &mut PluginVolume, known: &Known, what: &str) -> Result<(), CaseEnd> {
    let path = known.path;
    match known.node {
        Node::File(content) => {
            let got = expect_ok(
                &format!("read-file {path} on the {what}"),
                volume.read_whole(path, 16 << 20),
            )?;
            ensure!(
                got == content(),
                "{path} on the {what} changed although no write touched it{}",
                first_difference(&got, &content())
            );
        }
        Node::Symlink(target) => check_link(volume, path, target, what)?,
        Node::Dir => {
            let stat = expect_ok(&format!("stat {path} on the {what}"), volume.stat(path))?;
            ensure!(
                stat.kind == FileKind::Directory,
                "{path} on the {what} is no longer a directory"
            );
        }
    }
    Ok(())
}

fn write_fsck_clean(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    let claims = claimed(ctx)?;
    let mut missing = Vec::new();
    for claim in &claims {
        let (checker, _, package) = claim.image.fs.checker();
        if crate::conformance::find_tool(checker).is_none() {
            missing.push(format!("`{checker}` (apt-get install {package})"));
        }
    }
    if !missing.is_empty() {
        return Err(CaseEnd::Skip(format!(
            "the checker is not installed: {}; the case needs it to judge the written image",
            missing.join(", ")
        )));
    }
    for w in write_changes(ctx)? {
        let (checker, args, _) = w.claim.image.fs.checker();
        let program = crate::conformance::find_tool(checker)
            .ok_or_else(|| CaseEnd::Skip(format!("`{checker}` is not installed")))?;
        let output = std::process::Command::new(&program)
            .args(args)
            .arg(&w.path)
            .output()
            .map_err(|e| CaseEnd::Fail(format!("cannot run `{checker}`: {e}")))?;
        ensure!(
            output.status.code() == Some(0),
            "`{checker} {}` on the {} after the writes{} exits {}:\n{}{}",
            args.join(" "),
            w.claim.label(),
            if w.refused.is_empty() {
                String::new()
            } else {
                format!(" ({} refused)", w.refused.len())
            },
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// read-only
// ---------------------------------------------------------------------------

fn read_only(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    let plugin = writer(ctx)?;
    for claim in claimed(ctx)? {
        let what = claim.label();
        let denied = &[ErrorKind::PermissionDenied];

        // The host refuses this before the plugin sees it; lend the disk
        // directly, so the plugin's own check is what answers.
        let mut instance = ctx.instance_of(&plugin)?;
        let plugin_id = ctx.manifest().id.clone();
        let disk = DiskHandle {
            id: "conformance".to_string(),
            device: mem(claim.image.bytes.clone(), false),
            writable: false,
        };
        let answer = instance
            .call("volume.open", |b, store| b.open_volume(store, disk, true))
            .and_then(|answer| {
                answer.map_err(|e| PluginError::Failed {
                    plugin: plugin_id.clone(),
                    call: "volume.open",
                    failure: e.into(),
                })
            });
        expect_error(
            &format!("open writable of the {what} lent as a read-only disk"),
            answer.map(|_| "a volume"),
            denied,
        )?;

        // A volume opened read-only refuses writes itself, keeps no trace of
        // them, and leaves the device as it was.
        let path = ctx
            .work_dir()?
            .join(format!("{}-read-only.img", claim.image.fs.name()));
        std::fs::write(&path, &claim.image.bytes)
            .map_err(|e| CaseEnd::Fail(format!("cannot write a scratch copy: {e}")))?;
        let device: Arc<dyn BlockDevice> = Arc::new(
            RawFile::open_writable(&path)
                .map_err(|e| CaseEnd::Fail(format!("cannot open the scratch copy: {e}")))?,
        );
        let mut volume = open(ctx, Some(&plugin), device, false, &what)?;
        for change in CHANGES {
            expect_error(
                &format!(
                    "{} through a read-only volume of the {what}",
                    change.describe()
                ),
                change.apply(&mut volume),
                denied,
            )?;
        }
        expect_no_trap(
            &format!("sync of a read-only volume of the {what}"),
            volume.sync(),
        )?;
        for change in CHANGES {
            let known = KNOWN_TREE.iter().find(|k| k.path == change.path());
            match known {
                Some(known) => {
                    check_contents_of(&mut volume, known, &format!("{what} after refused writes"))?
                }
                None => {
                    expect_error(
                        &format!(
                            "stat {} after a refused {} on the {what}",
                            change.path(),
                            change.describe()
                        ),
                        volume.stat(change.path()),
                        &[ErrorKind::NotFound],
                    )?;
                }
            }
        }
        expect_no_trap(&format!("close of the {what}"), volume.close())?;
        let after = std::fs::read(&path)
            .map_err(|e| CaseEnd::Fail(format!("cannot read the scratch copy back: {e}")))?;
        ensure!(
            after == claim.image.bytes,
            "the {what} changed on the device through a read-only volume{}",
            first_difference(&after, &claim.image.bytes)
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// damage
// ---------------------------------------------------------------------------

/// How many blocks of each image the damage case corrupts, one at a time.
const MUTANTS: usize = 20;

/// Blocks to damage: the first non-zero 4 KiB blocks after the superblock
/// (group descriptors, bitmaps, inode tables, AG headers, tree roots) and
/// others spread over the rest of the image (directory and tree blocks).
fn mutant_blocks(bytes: &[u8]) -> Vec<usize> {
    const BLOCK: usize = 4096;
    let nonzero: Vec<usize> = bytes
        .chunks(BLOCK)
        .enumerate()
        .filter(|(_, block)| block.iter().any(|&b| b != 0))
        .map(|(i, _)| i)
        .collect();
    let mut picked: Vec<usize> = nonzero.iter().copied().take(MUTANTS / 2).collect();
    let rest = &nonzero[picked.len().min(nonzero.len())..];
    let step = (rest.len() / (MUTANTS / 2)).max(1);
    picked.extend(rest.iter().step_by(step).take(MUTANTS / 2));
    picked
}

fn damaged_metadata(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    for claim in claimed(ctx)? {
        for block in mutant_blocks(&claim.image.bytes) {
            let mut bytes = claim.image.bytes.clone();
            let start = block * 4096;
            let end = (start + 4096).min(bytes.len());
            for (i, b) in bytes[start..end].iter_mut().enumerate() {
                // Every 7th byte inverted: counts, pointers, lengths and
                // checksums all go wrong at once.
                if i % 7 == 3 {
                    *b ^= 0xff;
                }
            }
            let what = format!(
                "the {} with block {block} (bytes {start}..{end}) damaged",
                claim.label()
            );
            let capacity = bytes.len() as u64;
            let mut instance = ctx.instance()?;
            expect_no_trap(
                &format!("probe of {what}"),
                instance.probe_filesystem(mem(bytes.clone(), false), "conformance"),
            )?;
            let used = expect_no_trap(
                &format!("used-extents of {what}"),
                raw_used_extents(&mut instance, mem(bytes.clone(), false)),
            )?;
            if let Some(Ok(ranges)) = used {
                ensure!(
                    ranges
                        .iter()
                        .all(|&(o, l)| o.checked_add(l).is_some_and(|e| e <= capacity)),
                    "used-extents of {what} points past the end of the device"
                );
            }
            let instance = ctx.instance()?;
            let opened = expect_no_trap(
                &format!("open of {what}"),
                instance.open_volume(mem(bytes, false), "conformance", false),
            )?;
            if let Some(mut volume) = opened {
                walk(&mut volume, &what)?;
            }
        }
    }
    Ok(())
}

/// Reads a (possibly damaged) tree, bounded: each call must answer.
fn walk(volume: &mut PluginVolume, what: &str) -> Result<(), CaseEnd> {
    let mut queue = vec![("/".to_string(), 0usize)];
    let mut calls = 0usize;
    while let Some((dir, depth)) = queue.pop() {
        calls += 1;
        let Some(entries) =
            expect_no_trap(&format!("read-dir {dir} on {what}"), volume.read_dir(&dir))?
        else {
            continue;
        };
        for entry in entries.into_iter().take(64) {
            if calls > 300 {
                return Ok(());
            }
            calls += 1;
            let path = if dir == "/" {
                format!("/{}", entry.name)
            } else {
                format!("{dir}/{}", entry.name)
            };
            expect_no_trap(&format!("stat {path:?} on {what}"), volume.stat(&path))?;
            match entry.kind {
                FileKind::Directory if depth < 6 => queue.push((path, depth + 1)),
                FileKind::Regular => {
                    expect_no_trap(
                        &format!("read-file {path:?} on {what}"),
                        volume.read_file(&path, 0, 1 << 16),
                    )?;
                }
                FileKind::Symlink => {
                    expect_no_trap(
                        &format!("read-link {path:?} on {what}"),
                        volume.read_link(&path),
                    )?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// `path` on the volume is a symlink to `target`.
fn check_link(
    volume: &mut PluginVolume,
    path: &str,
    target: &str,
    what: &str,
) -> Result<(), CaseEnd> {
    let got = expect_ok(
        &format!("read-link {path} on the {what}"),
        volume.read_link(path),
    )?;
    ensure!(
        got == target,
        "read-link {path} on the {what}: `{got}`, expected `{target}`"
    );
    Ok(())
}

/// `path` on the volume is a `kind` with permission bits `mode` (after
/// `change`, for the message).
fn check_kind_and_mode(
    volume: &mut PluginVolume,
    path: &str,
    kind: FileKind,
    mode: u32,
    what: &str,
    change: &str,
) -> Result<(), CaseEnd> {
    let stat = expect_ok(&format!("stat {path} on the {what}"), volume.stat(path))?;
    ensure!(
        stat.kind == kind && stat.mode == mode,
        "stat {path} on the {what} after {change}: {:?} mode {:04o}, expected {kind:?} mode {mode:04o}",
        stat.kind,
        stat.mode
    );
    Ok(())
}
