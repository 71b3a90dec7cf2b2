//! Measures the page-blob device (`homeward bench page-blob`) against a Blob
//! endpoint (Azurite in `scripts/bench-page-blob`).
//!
//! It makes its own blobs in the container it is given and times what the
//! data path does with a cloud disk, each figure the median of `--runs` runs:
//! - `upload`: create a fixed-VHD page blob and write the whole disk through
//!   [`PageBlob`] in 4 MiB writes (`Put Page`);
//! - `read`: read the whole disk back in 4 MiB reads (ranged `Get Blob`);
//! - `sparse-read` / `sparse-allocated`: a disk with 10% of its 64 KiB blocks
//!   written, read whole, then read allocated-only (`Get Page Ranges` plus
//!   reads of only those ranges);
//! - `compare` / `compare-baseline`: changed ranges by compare between two
//!   snapshots with 1% of the 64 KiB blocks changed, then the full read of
//!   both snapshots.
//!
//! The device-side baselines (whole read of the sparse disk, whole read of
//! both snapshots) are measured here; the tool baselines (`curl`, `cat`) are
//! measured by the script, which reads the rows this prints (one per figure,
//! a stable key first) and the local copy of the uploaded VHD
//! (`--local-vhd`). Every result is checked (read bytes, allocated ranges,
//! changed ranges), so a fast wrong answer fails instead of being reported.

use crate::disk::BlockDevice;
use crate::disk::VhdFixed;
use crate::disk::page_blob::{self, BlobError, BlobOptions, MAX_PUT_PAGE, PageBlob};
use crate::plugin::adapter::{BlobCredential, BlobEndpoint};
use anyhow::{Context, bail};
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The block size of the sparse disk and of the changed-ranges compare.
const BLOCK: u64 = 64 * 1024;
/// Share of blocks written in the sparse disk, in percent.
const SPARSE_PERCENT: u64 = 10;
/// Share of blocks changed between the two snapshots, in percent.
const CHANGED_PERCENT: u64 = 1;

/// `homeward bench page-blob` arguments.
#[derive(Debug, clap::Args)]
pub struct PageBlobArgs {
    /// The container URL (`http://127.0.0.1:10000/devstoreaccount1/bench`);
    /// created if missing. The benchmark's blobs are made in it.
    #[arg(long, env = "HOMEWARD_BENCH_BLOB_URL")]
    pub url: String,
    /// The storage account (Shared Key).
    #[arg(long, env = "HOMEWARD_BENCH_BLOB_ACCOUNT")]
    pub account: String,
    /// The account key, base64 (prefer the environment variable: arguments
    /// are visible to other users of the machine).
    #[arg(long, env = "HOMEWARD_BENCH_BLOB_KEY", hide_env_values = true)]
    pub key: String,
    /// The disk size: a whole number of MiB, e.g. `256M`, `1G`.
    #[arg(long, default_value = "256M", value_parser = parse_mib)]
    pub size: u64,
    /// Timed runs per figure (the median is printed).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=99))]
    pub runs: u32,
    /// Prefix of the blob names (`PREFIX-upload-1`, `PREFIX-sparse`, …).
    #[arg(long, default_value = "bench")]
    pub prefix: String,
    /// Also write the uploaded disk as a fixed VHD file here (the bytes of
    /// the blob `PREFIX-upload-1` but for the footer's time stamp and unique
    /// id), for the script's baselines.
    #[arg(long, value_name = "FILE")]
    pub local_vhd: Option<PathBuf>,
}

/// Parses `256M`, `1G`, `268435456`: a positive whole number of MiB.
fn parse_mib(text: &str) -> Result<u64, String> {
    let t = text.trim().trim_end_matches("iB").trim_end_matches('B');
    let (digits, factor) = match t.char_indices().last() {
        Some((i, 'K' | 'k')) => (&t[..i], 1u64 << 10),
        Some((i, 'M' | 'm')) => (&t[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    let bytes = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(|| format!("`{text}` is not a size (e.g. 256M, 1G)"))?;
    if bytes == 0 || !bytes.is_multiple_of(1 << 20) {
        return Err(format!("`{text}` is not a positive whole number of MiB"));
    }
    Ok(bytes)
}

/// One measured figure: the median of its runs and the bytes one run moves.
#[derive(Debug, Clone)]
pub struct Figure {
    /// Stable key (the script reads it).
    pub key: &'static str,
    /// What was measured.
    pub what: &'static str,
    /// Median wall time of one run.
    pub median: Duration,
    /// Bytes one run reads or writes through the device.
    pub bytes: u64,
}

/// Runs the benchmark and prints one row per figure.
pub fn run_and_print(args: &PageBlobArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let figures = run(args)?;
    writeln!(
        out,
        "page-blob benchmark: {} MiB disk, medians of {} runs; MB = 10^6 bytes",
        args.size >> 20,
        args.runs
    )?;
    writeln!(
        out,
        "{:<18} {:>10} {:>12} {:>9}  what",
        "key", "seconds", "bytes", "MB/s"
    )?;
    for f in &figures {
        let secs = f.median.as_secs_f64();
        writeln!(
            out,
            "{:<18} {:>10.4} {:>12} {:>9.1}  {}",
            f.key,
            secs,
            f.bytes,
            f.bytes as f64 / 1e6 / secs.max(f64::MIN_POSITIVE),
            f.what
        )?;
    }
    writeln!(out, "total {:.1} s", started.elapsed().as_secs_f64())?;
    Ok(ExitCode::SUCCESS)
}

/// Runs the benchmark.
pub fn run(args: &PageBlobArgs) -> anyhow::Result<Vec<Figure>> {
    let container = args.url.trim_end_matches('/').to_string();
    let credential = BlobCredential::SharedKey((args.account.clone(), args.key.clone()));
    let options = BlobOptions::default();
    match page_blob::create_container(&container, &credential, &options) {
        Ok(()) | Err(BlobError::Conflict { .. }) => {}
        Err(e) => return Err(e).context("creating the benchmark's container"),
    }
    let endpoint = |name: &str| BlobEndpoint {
        url: format!("{container}/{}-{name}", args.prefix),
        credential: credential.clone(),
    };
    let size = args.size;
    let runs = args.runs as usize;
    let mut rng = SplitMix(0x005e_ed0f_b10b);
    let disk = random_bytes(&mut rng, size);
    if let Some(path) = &args.local_vhd {
        write_local_vhd(path, &disk)?;
    }
    let mut figures = Vec::new();

    // 1. Upload: a new blob per run, so every run writes fresh pages.
    let mut run_no = 0;
    let upload = median(runs, || {
        run_no += 1;
        let blob = page_blob::create(&endpoint(&format!("upload-{run_no}")), size, &options)
            .context("creating the upload blob")?;
        for (i, chunk) in disk.chunks(MAX_PUT_PAGE).enumerate() {
            blob.write_at(chunk, (i * MAX_PUT_PAGE) as u64)
                .context("writing the upload blob")?;
        }
        Ok(())
    })?;
    figures.push(Figure {
        key: "upload",
        what: "create VHD page blob + write disk via device (Put Page 4 MiB)",
        median: upload,
        bytes: size,
    });

    // 2. Full read of what run 1 uploaded, checked against what was sent.
    let uploaded = page_blob::open(&endpoint("upload-1"), false).context("opening upload-1")?;
    if !uploaded.has_vhd_footer() || uploaded.capacity() != size {
        bail!("the uploaded blob is not a fixed VHD of {size} bytes");
    }
    let mut buf = vec![0u8; MAX_PUT_PAGE];
    let mut digest = blake3::Hasher::new();
    read_whole(&uploaded, &mut buf, &mut |b| {
        digest.update(b);
    })?;
    if digest.finalize() != blake3::hash(&disk) {
        bail!("the uploaded blob does not read back as the bytes written");
    }
    let read = median(runs, || read_whole(&uploaded, &mut buf, &mut |_| {}))?;
    figures.push(Figure {
        key: "read",
        what: "full read via device (ranged Get Blob 4 MiB)",
        median: read,
        bytes: size,
    });

    // 3. A 10%-allocated disk: whole read against allocated-only read.
    let blocks = size / BLOCK;
    let sparse = page_blob::create(&endpoint("sparse"), size, &options)
        .context("creating the sparse blob")?;
    let written = pick_blocks(&mut rng, blocks, blocks * SPARSE_PERCENT / 100);
    for &b in &written {
        sparse
            .write_at(&random_bytes(&mut rng, BLOCK), b * BLOCK)
            .context("writing the sparse blob")?;
    }
    let expected = merged_blocks(&written);
    let sparse_read = median(runs, || read_whole(&sparse, &mut buf, &mut |_| {}))?;
    let mut allocated_bytes = 0;
    let sparse_allocated = median(runs, || {
        let ranges = sparse.page_ranges().context("Get Page Ranges")?;
        if ranges != expected {
            bail!(
                "Get Page Ranges answered {} ranges, {} were written",
                ranges.len(),
                expected.len()
            );
        }
        allocated_bytes = read_ranges(&sparse, &ranges, &mut buf)?;
        Ok(())
    })?;
    figures.push(Figure {
        key: "sparse-read",
        what: "10%-allocated disk: full read via device (4 MiB)",
        median: sparse_read,
        bytes: size,
    });
    figures.push(Figure {
        key: "sparse-allocated",
        what: "10%-allocated disk: Get Page Ranges + read those ranges",
        median: sparse_allocated,
        bytes: allocated_bytes,
    });

    // 4. Two snapshots of a fully written disk, 1% of blocks changed between.
    let live = page_blob::open(&endpoint("upload-2"), true).context("opening upload-2")?;
    let base_id = live.create_snapshot().context("snapshot before")?;
    let changed = pick_blocks(&mut rng, blocks, (blocks * CHANGED_PERCENT / 100).max(1));
    for &b in &changed {
        live.write_at(&random_bytes(&mut rng, BLOCK), b * BLOCK)
            .context("changing blocks")?;
    }
    let target_id = live.create_snapshot().context("snapshot after")?;
    let base = live
        .at_snapshot(&base_id)
        .context("opening snapshot before")?;
    let target = live
        .at_snapshot(&target_id)
        .context("opening snapshot after")?;
    let expected = merged_blocks(&changed);
    let compare = median(runs, || {
        let found = page_blob::changed_ranges_by_compare(&base, &target, BLOCK)
            .context("changed ranges by compare")?;
        if found != expected {
            bail!(
                "compare found {} changed ranges, {} were changed",
                found.len(),
                expected.len()
            );
        }
        Ok(())
    })?;
    let both = median(runs, || {
        read_whole(&base, &mut buf, &mut |_| {})?;
        read_whole(&target, &mut buf, &mut |_| {})
    })?;
    figures.push(Figure {
        key: "compare",
        what: "changed ranges by compare, 2 snapshots, 1% of 64 KiB blocks changed",
        median: compare,
        bytes: 2 * size,
    });
    figures.push(Figure {
        key: "compare-baseline",
        what: "full read of both snapshots via device (4 MiB)",
        median: both,
        bytes: 2 * size,
    });
    Ok(figures)
}

/// Median wall time of `runs` runs of `op`.
fn median(runs: usize, mut op: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Duration> {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        op()?;
        samples.push(start.elapsed());
    }
    samples.sort();
    Ok(samples[samples.len() / 2])
}

/// Reads the whole device in `buf`-sized reads, handing each to `sink`.
fn read_whole(
    device: &PageBlob,
    buf: &mut [u8],
    sink: &mut dyn FnMut(&[u8]),
) -> anyhow::Result<()> {
    let capacity = device.capacity();
    let mut at = 0;
    while at < capacity {
        let n = (capacity - at).min(buf.len() as u64) as usize;
        device
            .read_at(&mut buf[..n], at)
            .with_context(|| format!("reading {} at {at}", device.describe()))?;
        sink(&buf[..n]);
        at += n as u64;
    }
    Ok(())
}

/// Reads `ranges` in reads of at most `buf.len()`; returns the bytes read.
fn read_ranges(device: &PageBlob, ranges: &[Range<u64>], buf: &mut [u8]) -> anyhow::Result<u64> {
    let mut total = 0;
    for r in ranges {
        let mut at = r.start;
        while at < r.end {
            let n = (r.end - at).min(buf.len() as u64) as usize;
            device
                .read_at(&mut buf[..n], at)
                .with_context(|| format!("reading {} at {at}", device.describe()))?;
            total += n as u64;
            at += n as u64;
        }
    }
    Ok(total)
}

/// Writes `disk` plus its fixed-VHD footer to `path`: the bytes of an
/// uploaded blob.
fn write_local_vhd(path: &Path, disk: &[u8]) -> anyhow::Result<()> {
    let mut file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(disk)
        .and_then(|()| file.write_all(&VhdFixed::make_footer(disk.len() as u64)))
        .with_context(|| format!("writing {}", path.display()))
}

/// `count` distinct block numbers below `blocks`, sorted.
fn pick_blocks(rng: &mut SplitMix, blocks: u64, count: u64) -> Vec<u64> {
    let mut chosen = std::collections::BTreeSet::new();
    while (chosen.len() as u64) < count.min(blocks) {
        chosen.insert(rng.next() % blocks);
    }
    chosen.into_iter().collect()
}

/// Sorted block numbers as merged byte ranges.
fn merged_blocks(sorted: &[u64]) -> Vec<Range<u64>> {
    let mut out: Vec<Range<u64>> = Vec::new();
    for &b in sorted {
        let r = b * BLOCK..(b + 1) * BLOCK;
        match out.last_mut() {
            Some(last) if last.end == r.start => last.end = r.end,
            _ => out.push(r),
        }
    }
    out
}

/// `len` pseudo-random bytes (incompressible, never a zero page).
fn random_bytes(rng: &mut SplitMix, len: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len as usize);
    while (out.len() as u64) < len {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(len as usize);
    out
}

/// SplitMix64: a seeded generator, so every run writes the same bytes.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_whole_mib() {
        assert_eq!(parse_mib("256M"), Ok(256 << 20));
        assert_eq!(parse_mib("1GiB"), Ok(1 << 30));
        assert_eq!(parse_mib("1048576"), Ok(1 << 20));
        assert!(parse_mib("1K").is_err());
        assert!(parse_mib("0M").is_err());
        assert!(parse_mib("lots").is_err());
    }

    #[test]
    fn adjacent_blocks_merge() {
        assert_eq!(
            merged_blocks(&[1, 2, 5]),
            vec![BLOCK..3 * BLOCK, 5 * BLOCK..6 * BLOCK]
        );
    }
}
