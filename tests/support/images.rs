//! Disk images for the data-path tests, made and checked with qemu-img, and
//! the summary `homeward sync` prints about them.
//!
//! Images are written as raw files with deterministic pseudo-random content
//! (xorshift, seeded), then converted by `qemu-img` when another format is
//! wanted, so the formats under test are always made by a tool other than
//! Homeward. Comparisons go through `qemu-img compare` for the same reason.

use homeward::disk::ImageFormat;
use std::fs::{File, OpenOptions};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One KiB.
pub const KIB: u64 = 1 << 10;
/// One MiB.
pub const MIB: u64 = 1 << 20;

/// Bytes written per call when filling an image.
const CHUNK: u64 = MIB;

/// A xorshift64 generator: the same seed always gives the same bytes, and
/// the bytes do not compress.
#[derive(Debug, Clone)]
pub struct Xorshift(u64);

impl Xorshift {
    /// A generator for `seed` (any value, zero included).
    pub fn new(seed: u64) -> Self {
        // Spread small seeds apart; xorshift must never start at zero.
        Xorshift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Fills `buf` with pseudo-random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// Writes a raw image of `len` bytes of pseudo-random content from `seed`.
pub fn write_random(path: &Path, len: u64, seed: u64) {
    write_sparse(path, len, std::slice::from_ref(&(0..len)), seed);
}

/// Writes a sparse raw image of `len` bytes holding pseudo-random data (from
/// `seed`) in `regions` and holes (which read as zeros) everywhere else.
pub fn write_sparse(path: &Path, len: u64, regions: &[Range<u64>], seed: u64) {
    let file = File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    file.set_len(len).expect("size the image");
    let mut rng = Xorshift::new(seed);
    let mut buf = vec![0u8; CHUNK as usize];
    for region in regions {
        assert!(
            region.start <= region.end && region.end <= len,
            "region {region:?} is not inside a {len}-byte image"
        );
        let mut at = region.start;
        while at < region.end {
            let n = (region.end - at).min(CHUNK) as usize;
            rng.fill(&mut buf[..n]);
            file.write_all_at(&buf[..n], at).expect("write image data");
            at += n as u64;
        }
    }
}

/// Writes a raw image of `len` bytes that repeats `text`: data that
/// compresses very well.
pub fn write_repeating(path: &Path, len: u64, text: &[u8]) {
    assert!(!text.is_empty(), "nothing to repeat");
    let file = File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    let mut at = 0;
    while at < len {
        let n = (len - at).min(CHUNK) as usize;
        // Each chunk continues the text where the previous one stopped.
        let phase = (at % text.len() as u64) as usize;
        let piece: Vec<u8> = text.iter().copied().cycle().skip(phase).take(n).collect();
        file.write_all_at(&piece, at).expect("write image data");
        at += n as u64;
    }
}

/// `count` regions of `region_len` bytes spread evenly over `len` bytes, each
/// starting `shift` bytes into its share: a sparse file's data extents.
pub fn spread_regions(len: u64, count: u64, region_len: u64, shift: u64) -> Vec<Range<u64>> {
    let stride = len / count;
    assert!(
        shift + region_len <= stride,
        "regions of {region_len} bytes shifted by {shift} do not fit in {stride}-byte shares"
    );
    (0..count)
        .map(|i| {
            let start = i * stride + shift;
            start..start + region_len
        })
        .collect()
}

/// Bytes of `path` that are really stored (not holes).
pub fn allocated_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).expect("stat image").blocks() * 512
}

/// qemu-img's driver name for `format` (`-f`/`-F`).
pub fn qemu_format(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Raw => "raw",
        ImageFormat::VmdkFlat => "vmdk",
        ImageFormat::VhdFixed => "vpc",
    }
}

/// A file name extension for `format`.
pub fn extension(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Raw => "raw",
        ImageFormat::VmdkFlat => "vmdk",
        ImageFormat::VhdFixed => "vhd",
    }
}

/// Runs `qemu-img args`; returns whether it succeeded, and its stdout and stderr.
pub fn qemu_img(args: &[&str]) -> (bool, String) {
    let out = Command::new("qemu-img")
        .args(args)
        .output()
        .expect("run qemu-img (is it installed?)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Runs `qemu-img args` and panics with its output unless it succeeds.
pub fn qemu_img_ok(args: &[&str]) -> String {
    let (ok, text) = qemu_img(args);
    assert!(ok, "qemu-img {} failed:\n{text}", args.join(" "));
    text
}

/// A path as `&str` (temp paths are UTF-8).
pub fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// Converts the raw image `raw` to `format` at `dst` with qemu-img: VMDK as
/// monolithicFlat (descriptor plus `-flat` extent), VHD as fixed with exactly
/// the raw image's size.
pub fn convert(raw: &Path, dst: &Path, format: ImageFormat) {
    let mut args = vec!["convert", "-f", "raw", "-O", qemu_format(format)];
    match format {
        ImageFormat::Raw => {}
        ImageFormat::VmdkFlat => args.extend(["-o", "subformat=monolithicFlat"]),
        ImageFormat::VhdFixed => args.extend(["-o", "subformat=fixed,force_size=on"]),
    }
    args.extend([s(raw), s(dst)]);
    qemu_img_ok(&args);
}

/// Makes `dir/name.EXT` in `format` with `len` bytes of pseudo-random content
/// from `seed`; returns its path.
pub fn random_image(dir: &Path, name: &str, format: ImageFormat, len: u64, seed: u64) -> PathBuf {
    let path = dir.join(format!("{name}.{}", extension(format)));
    if format == ImageFormat::Raw {
        write_random(&path, len, seed);
    } else {
        let raw = dir.join(format!("{name}.tmp.raw"));
        write_random(&raw, len, seed);
        convert(&raw, &path, format);
        std::fs::remove_file(&raw).expect("remove the raw original");
    }
    path
}

/// The guest size of an image, as qemu-img sees it.
pub fn virtual_size(path: &Path, format: ImageFormat) -> u64 {
    let info = qemu_img_ok(&["info", "-f", qemu_format(format), s(path)]);
    // The first `virtual size: 16 MiB (16777216 bytes)` is the image's own;
    // later ones are its children's (a VMDK's extents).
    info.lines()
        .find_map(|l| l.strip_prefix("virtual size: "))
        .and_then(|l| l.split_once('(')?.1.split_once(" bytes)")?.0.parse().ok())
        .unwrap_or_else(|| panic!("no virtual size in qemu-img info:\n{info}"))
}

/// Panics with qemu-img's output unless the guest contents of `a` and `b` are
/// identical: the same size, and the same bytes for `qemu-img compare` (not
/// `-s`, which also wants holes in the same places; a hole and written zeros
/// are the same disk).
pub fn assert_identical(a: &Path, fmt_a: ImageFormat, b: &Path, fmt_b: ImageFormat) {
    let (size_a, size_b) = (virtual_size(a, fmt_a), virtual_size(b, fmt_b));
    assert_eq!(
        size_a,
        size_b,
        "{} ({fmt_a}) and {} ({fmt_b}) differ in size",
        a.display(),
        b.display()
    );
    let (ok, text) = qemu_img(&[
        "compare",
        "-f",
        qemu_format(fmt_a),
        "-F",
        qemu_format(fmt_b),
        s(a),
        s(b),
    ]);
    assert!(
        ok,
        "{} ({fmt_a}) and {} ({fmt_b}) differ:\n{text}",
        a.display(),
        b.display()
    );
}

/// Panics with qemu-img's output unless the first `len` bytes of the guest
/// contents of `a` and `b` are identical, whatever their sizes (qemu's raw
/// driver with `size=len` on top of each image's own format driver).
pub fn assert_prefix_identical(
    a: &Path,
    fmt_a: ImageFormat,
    b: &Path,
    fmt_b: ImageFormat,
    len: u64,
) {
    let window = |path: &Path, format: ImageFormat| {
        format!(
            "driver=raw,size={len},file.driver={},file.file.filename={}",
            qemu_format(format),
            s(path)
        )
    };
    let (ok, text) = qemu_img(&[
        "compare",
        "--image-opts",
        &window(a, fmt_a),
        &window(b, fmt_b),
    ]);
    assert!(
        ok,
        "the first {len} bytes of {} ({fmt_a}) and {} ({fmt_b}) differ:\n{text}",
        a.display(),
        b.display()
    );
}

/// Where the guest's bytes of an image are stored: the file and the offset of
/// guest byte 0 in it. Raw and fixed VHD hold them at the start of the file;
/// a monolithicFlat VMDK in the one extent its descriptor names.
pub fn data_file(path: &Path, format: ImageFormat) -> (PathBuf, u64) {
    match format {
        ImageFormat::Raw | ImageFormat::VhdFixed => (path.to_path_buf(), 0),
        ImageFormat::VmdkFlat => {
            let text = std::fs::read_to_string(path).expect("read the VMDK descriptor");
            // e.g. `RW 32768 FLAT "disk-flat.vmdk" 0`
            let extents: Vec<(PathBuf, u64)> = text
                .lines()
                .filter(|l| l.contains(" FLAT "))
                .map(|line| {
                    let mut quoted = line.split('"');
                    let name = quoted.nth(1).expect("extent name in quotes");
                    let offset: u64 = quoted.next().unwrap_or("").trim().parse().unwrap_or(0);
                    (path.with_file_name(name), offset * 512)
                })
                .collect();
            assert_eq!(
                extents.len(),
                1,
                "expected one flat extent in {}:\n{text}",
                path.display()
            );
            extents.into_iter().next().expect("one extent")
        }
    }
}

/// Overwrites whole blocks `indices` (of `block_size` bytes) of the image at
/// `path` with fresh pseudo-random bytes from `seed`, in place, in the file
/// that stores them. Returns the bytes written, block by block.
pub fn change_blocks(
    path: &Path,
    format: ImageFormat,
    block_size: u64,
    indices: &[u64],
    seed: u64,
) -> Vec<Vec<u8>> {
    let (file, base) = data_file(path, format);
    let data = OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap_or_else(|e| panic!("open {} for writing: {e}", file.display()));
    let mut rng = Xorshift::new(seed);
    indices
        .iter()
        .map(|&index| {
            let mut block = vec![0u8; block_size as usize];
            rng.fill(&mut block);
            data.write_all_at(&block, base + index * block_size)
                .expect("change a block");
            block
        })
        .collect()
}

/// Reads `range` of the file at `path`.
pub fn read_range(path: &Path, range: Range<u64>) -> Vec<u8> {
    let file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut buf = vec![0u8; (range.end - range.start) as usize];
    file.read_exact_at(&mut buf, range.start)
        .expect("read image bytes");
    buf
}

/// What `homeward sync` reported: its summary line, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncReport {
    /// `full` or `delta`.
    pub mode: String,
    /// The source's size in bytes.
    pub bytes: u64,
    /// Blocks sent (resends included).
    pub blocks_sent: u64,
    /// Bytes put on the wire.
    pub wire_bytes: u64,
    /// Blocks not sent.
    pub skipped: u64,
    /// Blocks resent after the master target rejected them.
    pub resent: u64,
    /// Attempts (sessions) it took.
    pub attempts: u64,
    /// Seconds the sync took.
    pub seconds: f64,
    /// The whole-disk digest (hex).
    pub digest: String,
}

impl SyncReport {
    /// Parses the output of `homeward sync`; panics, showing it, if the summary
    /// is not there.
    pub fn parse(output: &str) -> SyncReport {
        let fail = |why: &str| -> ! { panic!("{why} in the output of homeward sync:\n{output}") };
        let line = output
            .lines()
            .find(|l| l.starts_with("synced "))
            .unwrap_or_else(|| fail("no summary line"));
        let (mode, rest) = [" (full): ", " (delta): "]
            .iter()
            .find_map(|m| {
                line.split_once(m)
                    .map(|(_, rest)| (m.trim_matches(|c| " ():".contains(c)), rest))
            })
            .unwrap_or_else(|| fail("no mode"));
        // "N bytes, X blocks sent (Y bytes on the wire), Z skipped, R resent
        // after corruption, K attempt(s), S s"
        let number = |text: &str| -> f64 {
            text.split_whitespace()
                .next()
                .and_then(|n| n.trim_start_matches('(').parse().ok())
                .unwrap_or_else(|| fail(&format!("no number in `{text}`")))
        };
        let parts: Vec<&str> = rest.split(", ").collect();
        if parts.len() != 6 {
            fail("an unexpected summary");
        }
        let (sent, wire) = parts[1]
            .split_once(" blocks sent ")
            .unwrap_or_else(|| fail("no blocks sent"));
        let digest = output
            .lines()
            .find_map(|l| l.strip_prefix("whole-disk digest: "))
            .unwrap_or_else(|| fail("no whole-disk digest"))
            .trim()
            .to_string();
        SyncReport {
            mode: mode.to_string(),
            bytes: number(parts[0]) as u64,
            blocks_sent: number(sent) as u64,
            wire_bytes: number(wire) as u64,
            skipped: number(parts[2]) as u64,
            resent: number(parts[3]) as u64,
            attempts: number(parts[4]) as u64,
            seconds: number(parts[5]),
            digest,
        }
    }

    /// Bytes on the wire per second.
    pub fn wire_rate(&self) -> f64 {
        self.wire_bytes as f64 / self.seconds
    }
}

/// Runs `homeward sync ARGS` in-process; panics with its output unless it
/// succeeds; returns the parsed summary.
pub fn sync(args: &[&str]) -> SyncReport {
    let mut argv = vec!["sync"];
    argv.extend_from_slice(args);
    let (ok, output) = crate::homeward(&argv);
    assert!(ok, "homeward {} failed:\n{output}", argv.join(" "));
    SyncReport::parse(&output)
}

/// Runs `homeward sync ARGS` in-process and expects it to fail; returns the
/// output (which ends with the error).
pub fn sync_fails(args: &[&str]) -> String {
    let mut argv = vec!["sync"];
    argv.extend_from_slice(args);
    let (ok, output) = crate::homeward(&argv);
    assert!(!ok, "homeward {} succeeded:\n{output}", argv.join(" "));
    output
}

/// The names of the files in `dir`, sorted.
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list directory")
        .map(|e| {
            e.expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}
