//! `homeward bench replication` (issue 8): replication cycles through the
//! real data path and journal, timed.
//!
//! Setup: a source disk (a fixed VHD, like a lab-cloud disk) of
//! `--disk-size` filled with pseudo-random bytes, and its replica (a raw
//! file with the same bytes: what the first sync leaves) whose journal
//! records the first point.
//!
//! Per cycle: a writer changes `--change` bytes of the source in random
//! extents of 64 KiB to 1 MiB (not timed), then the point is taken (the
//! clock starts) and the changed ranges are shipped with
//! [`extents::ship_local`] (process server and master target in this
//! process, over loopback gRPC: read, BLAKE3, zstd offer, verify, undo
//! before-images synced, replica written and flushed, commit with the
//! replica's whole-disk digest, retention). The source is not written while
//! a cycle ships, so it stands for its own snapshot (no copy is made; a
//! lab-cloud snapshot is a file copy, an Azure one is copy-on-write). The
//! achieved RPO is the time from taking the point to its commit.
//!
//! Then the sustained change rate: one cycle each at `--sustain` sizes
//! (50, 200, 500 MiB). With a fixed cost per cycle `O` and a shipping rate
//! `S` (a line through the two largest sizes), a point every `T` seconds
//! keeps up with `R = S·(1 − O/T)` of change; printed for T = 30 s.
//!
//! Baselines in the same run: a `cp`-like copy of the same extents (read
//! from the source, written at the same offsets of a scratch file,
//! `fdatasync`), and ASR's classic process-server sizing of 2 TB/day
//! (≈ 23.1 MB/s). MB is 10^6 bytes; disk sizes are binary (MiB, GiB).

use crate::disk::BlockDevice;
use crate::disk::image::{self, ImageFormat};
use crate::journal::{JournalOptions, NewPointMeta};
use crate::sync::extents::{self, ExtentShipment, ShipOutcome};
use crate::sync::{DEFAULT_BLOCK_SIZE, DiskEndpoint};
use anyhow::{Context, bail};
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const MIB: u64 = 1 << 20;
/// ASR's classic process server: 2 TB of change a day.
const ASR_BYTES_PER_SEC: f64 = 2e12 / 86_400.0;
/// The target: a point every 30 s at 100 MB/s of change.
const TARGET_INTERVAL_SECS: f64 = 30.0;
const TARGET_RATE: f64 = 100e6;

/// Options of `homeward bench replication`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplicationBenchArgs {
    /// Size of the source disk and its replica (`2G`, `512M`).
    #[arg(long, default_value = "2G", value_parser = crate::bench_plan::parse_disk_size)]
    pub disk_size: u64,
    /// Bytes changed per cycle.
    #[arg(long, default_value = "50M", value_parser = crate::bench_plan::parse_disk_size)]
    pub change: u64,
    /// Cycles at `--change`.
    #[arg(long, default_value_t = 5)]
    pub cycles: u32,
    /// Change per cycle of the sustained-rate runs, comma-separated.
    #[arg(long, default_value = "50M,200M,500M", value_delimiter = ',', value_parser = crate::bench_plan::parse_disk_size)]
    pub sustain: Vec<u64>,
    /// Work in DIR (kept); by default a temporary directory, removed.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// One shipped cycle.
#[derive(Debug, Clone)]
pub struct CycleResult {
    /// Bytes changed.
    pub changed: u64,
    /// Extents the writer made (before merging).
    pub extents: usize,
    /// The shipment.
    pub outcome: ShipOutcome,
    /// Seconds from taking the point to its commit.
    pub rpo_secs: f64,
    /// Seconds the `cp`-like copy of the same extents took.
    pub copy_secs: f64,
}

/// Runs the benchmark and prints it.
pub fn run_and_print(args: &ReplicationBenchArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    if args.change == 0 || args.change * 2 > args.disk_size {
        bail!("--change must be more than 0 and at most half of --disk-size");
    }
    if let Some(big) = args.sustain.iter().find(|s| **s * 2 > args.disk_size) {
        bail!(
            "--sustain size {} MiB is more than half of --disk-size",
            big / MIB
        );
    }
    let temp;
    let dir = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            dir.clone()
        }
        None => {
            temp = tempfile::tempdir().context("creating a temporary directory")?;
            temp.path().to_path_buf()
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let started = Instant::now();
    writeln!(
        out,
        "replication cycles: {} MiB disk, {} MiB changed per cycle in 64 KiB-1 MiB extents, {} MiB blocks, {} build",
        args.disk_size / MIB,
        args.change / MIB,
        DEFAULT_BLOCK_SIZE as u64 / MIB,
        if cfg!(debug_assertions) {
            "DEBUG"
        } else {
            "release"
        }
    )?;
    let mut lab = Lab::new(&dir, args.disk_size)?;
    writeln!(
        out,
        "setup: disk and replica written in {:.1} s",
        started.elapsed().as_secs_f64()
    )?;
    let first = runtime.block_on(lab.ship(Vec::new(), "first sync"))?;
    writeln!(
        out,
        "first point: seq {} (the first sync's), {:.2} s",
        first.point.seq, first.seconds
    )?;

    writeln!(out)?;
    writeln!(
        out,
        "{:>5} {:>9} {:>8} {:>9} {:>10} {:>9} {:>10} {:>9} {:>8}",
        "cycle", "changed", "extents", "ship s", "sent MB", "RPO s", "MB/s", "cp s", "ship/cp"
    )?;
    let mut cycles = Vec::new();
    for cycle in 1..=args.cycles {
        let result = lab.cycle(&runtime, args.change, &format!("cycle {cycle}"))?;
        print_cycle(out, &cycle.to_string(), &result)?;
        cycles.push(result);
    }
    let mut sustained = Vec::new();
    for (i, size) in args.sustain.iter().enumerate() {
        let result = lab.cycle(&runtime, *size, &format!("sustain {}", i + 1))?;
        print_cycle(out, &format!("S{}", i + 1), &result)?;
        sustained.push(result);
    }
    writeln!(out)?;
    summarize(out, &cycles, &sustained, lab.journal_bytes)?;
    writeln!(out, "total {:.1} s", started.elapsed().as_secs_f64())?;
    Ok(ExitCode::SUCCESS)
}

fn mb_per_sec(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs.max(1e-9)
}

fn print_cycle(out: &mut dyn Write, name: &str, r: &CycleResult) -> anyhow::Result<()> {
    writeln!(
        out,
        "{:>5} {:>5} MiB {:>8} {:>9.2} {:>10.1} {:>9.2} {:>10.1} {:>9.2} {:>8.2}",
        name,
        r.changed / MIB,
        r.extents,
        r.outcome.seconds,
        r.outcome.bytes_sent as f64 / 1e6,
        r.rpo_secs,
        mb_per_sec(r.changed, r.outcome.seconds),
        r.copy_secs,
        r.outcome.seconds / r.copy_secs.max(1e-9)
    )?;
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn summarize(
    out: &mut dyn Write,
    cycles: &[CycleResult],
    sustained: &[CycleResult],
    journal_bytes: u64,
) -> anyhow::Result<()> {
    if !cycles.is_empty() {
        let ship = median(cycles.iter().map(|c| c.outcome.seconds).collect());
        let rpo = median(cycles.iter().map(|c| c.rpo_secs).collect());
        let copy = median(cycles.iter().map(|c| c.copy_secs).collect());
        writeln!(
            out,
            "cycles of {} MiB (median of {}): cycle {ship:.2} s, achieved RPO {rpo:.2} s, cp-like copy {copy:.2} s (ship/cp {:.2})",
            cycles[0].changed / MIB,
            cycles.len(),
            ship / copy.max(1e-9)
        )?;
    }
    // Ship time = O + bytes / S, through the two largest sustained sizes.
    let mut points: Vec<(f64, f64)> = sustained
        .iter()
        .map(|c| (c.changed as f64, c.outcome.seconds))
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    if let [.., (b1, t1), (b2, t2)] = points.as_slice()
        && b2 > b1
        && t2 > t1
    {
        let rate = (b2 - b1) / (t2 - t1);
        let overhead = (t1 - b1 / rate).max(0.0);
        let keep_up = rate * (1.0 - overhead / TARGET_INTERVAL_SECS).max(0.0);
        writeln!(
            out,
            "shipping rate S = {:.1} MB/s of change, fixed cost per cycle O = {overhead:.2} s",
            rate / 1e6
        )?;
        writeln!(
            out,
            "sustained change rate with a point every {TARGET_INTERVAL_SECS:.0} s: {:.1} MB/s \
             ({:.1}x ASR's 2 TB/day = {:.1} MB/s; target {:.0} MB/s: {})",
            keep_up / 1e6,
            keep_up / ASR_BYTES_PER_SEC,
            ASR_BYTES_PER_SEC / 1e6,
            TARGET_RATE / 1e6,
            if keep_up >= TARGET_RATE {
                "met"
            } else {
                "NOT met"
            }
        )?;
        let copy_rate = sustained
            .iter()
            .map(|c| mb_per_sec(c.changed, c.copy_secs))
            .fold(0.0, f64::max);
        writeln!(
            out,
            "cp-like copy of the same extents: up to {copy_rate:.1} MB/s (shipping reaches {:.0}% of it)",
            100.0 * rate / 1e6 / copy_rate.max(1e-9)
        )?;
    }
    for c in sustained {
        writeln!(
            out,
            "  {} MiB per cycle: {:.1} MB/s (changed / cycle time), {:.2}x ASR",
            c.changed / MIB,
            mb_per_sec(c.changed, c.outcome.seconds),
            c.changed as f64 / c.outcome.seconds.max(1e-9) / ASR_BYTES_PER_SEC
        )?;
    }
    writeln!(
        out,
        "journal after the run: {:.1} MB",
        journal_bytes as f64 / 1e6
    )?;
    Ok(())
}

/// The source, the replica and its journal.
struct Lab {
    dir: PathBuf,
    source_path: PathBuf,
    source: Box<dyn BlockDevice>,
    replica: PathBuf,
    journal_dir: PathBuf,
    scratch: PathBuf,
    rng: u64,
    journal_bytes: u64,
}

impl Lab {
    fn new(dir: &Path, capacity: u64) -> anyhow::Result<Lab> {
        let source_path = dir.join("cloud-disk.vhd");
        let replica = dir.join("replica.img");
        let scratch = dir.join("cp-scratch.img");
        for path in [&source_path, &replica, &scratch] {
            if path.exists() {
                bail!("{} exists: give an empty --dir", path.display());
            }
        }
        let source = image::create(&source_path, ImageFormat::VhdFixed, capacity)
            .with_context(|| format!("creating {}", source_path.display()))?;
        let target = image::create(&replica, ImageFormat::Raw, capacity)
            .with_context(|| format!("creating {}", replica.display()))?;
        let copy = image::create(&scratch, ImageFormat::Raw, capacity)
            .with_context(|| format!("creating {}", scratch.display()))?;
        let mut lab = Lab {
            dir: dir.to_path_buf(),
            source_path,
            source,
            replica: replica.clone(),
            journal_dir: dir.join("replica.journal"),
            scratch,
            rng: 0x9e37_79b9_7f4a_7c15,
            journal_bytes: 0,
        };
        let mut chunk = vec![0u8; 16 * MIB as usize];
        let mut at = 0;
        while at < capacity {
            let n = (capacity - at).min(chunk.len() as u64) as usize;
            lab.fill(&mut chunk[..n]);
            for device in [lab.source.as_ref(), target.as_ref(), copy.as_ref()] {
                device
                    .write_at(&chunk[..n], at)
                    .context("writing the initial disks")?;
            }
            at += n as u64;
        }
        for device in [lab.source.as_ref(), target.as_ref(), copy.as_ref()] {
            device.flush().context("flushing the initial disks")?;
        }
        Ok(lab)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }

    /// Writes `change` bytes in random extents of 64 KiB to 1 MiB; returns
    /// the extents and the merged ranges.
    fn change(&mut self, change: u64) -> anyhow::Result<(usize, Vec<Range<u64>>)> {
        let capacity = self.source.capacity();
        let mut left = change;
        let mut ranges = Vec::new();
        let mut data = vec![0u8; MIB as usize];
        while left > 0 {
            let len = (64 * 1024 + self.next() % (MIB - 64 * 1024 + 1)).min(left);
            // 4 KiB aligned, as guest writes are.
            let start = (self.next() % (capacity - len)) & !4095;
            self.fill(&mut data[..len as usize]);
            self.source
                .write_at(&data[..len as usize], start)
                .context("changing the source")?;
            ranges.push(start..start + len);
            left -= len;
        }
        self.source.flush().context("flushing the source")?;
        let extents = ranges.len();
        ranges.sort_by_key(|r| r.start);
        let mut merged: Vec<Range<u64>> = Vec::new();
        for r in ranges {
            match merged.last_mut() {
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => merged.push(r),
            }
        }
        Ok((extents, merged))
    }

    async fn ship(&mut self, ranges: Vec<Range<u64>>, label: &str) -> anyhow::Result<ShipOutcome> {
        let taken_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let shipment = ExtentShipment {
            source: DiskEndpoint::Path(self.source_path.clone()),
            ranges,
            replica: self.replica.clone(),
            journal_dir: self.journal_dir.clone(),
            point: NewPointMeta {
                taken_at,
                app_consistent: false,
                consistency_id: None,
                label: label.to_string(),
            },
            block_size: DEFAULT_BLOCK_SIZE,
        };
        let (progress, _) = tokio::sync::watch::channel(Default::default());
        let outcome = extents::ship_local(shipment, JournalOptions::default(), progress)
            .await
            .with_context(|| format!("shipping {label} from {}", self.dir.display()))?;
        self.journal_bytes = outcome.journal_bytes;
        Ok(outcome)
    }

    fn cycle(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        change: u64,
        label: &str,
    ) -> anyhow::Result<CycleResult> {
        let (extents, ranges) = self.change(change)?;
        let changed: u64 = ranges.iter().map(|r| r.end - r.start).sum();
        let copy_secs = self.copy(&ranges)?;
        let taken = Instant::now();
        let outcome = runtime.block_on(self.ship(ranges, label))?;
        let rpo_secs = taken.elapsed().as_secs_f64();
        Ok(CycleResult {
            changed,
            extents,
            outcome,
            rpo_secs,
            copy_secs,
        })
    }

    /// The baseline: the same extents read from the source and written at
    /// the same offsets of a scratch disk, then `fdatasync`.
    fn copy(&self, ranges: &[Range<u64>]) -> anyhow::Result<f64> {
        let scratch = image::open(&self.scratch, true, None).context("opening the scratch disk")?;
        let started = Instant::now();
        let mut buf = vec![0u8; MIB as usize];
        for r in ranges {
            let mut at = r.start;
            while at < r.end {
                let n = (r.end - at).min(MIB) as usize;
                self.source
                    .read_at(&mut buf[..n], at)
                    .context("reading the source")?;
                scratch
                    .write_at(&buf[..n], at)
                    .context("writing the scratch disk")?;
                at += n as u64;
            }
        }
        scratch.flush().context("flushing the scratch disk")?;
        Ok(started.elapsed().as_secs_f64())
    }
}
