//! Progress of a sync: counters the data path bumps, snapshots with rate and
//! ETA for the job scheduler's events, and a bar for a terminal.

use super::proto::Progress;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Live counters of one sync (shared by its threads).
#[derive(Debug)]
pub struct Counters {
    total: u64,
    started: Instant,
    /// Source bytes examined (read, or known to be holes).
    pub scanned: AtomicU64,
    /// Bytes put on the wire (payloads and per-block overhead).
    pub sent: AtomicU64,
    /// Blocks sent (including resends).
    pub blocks_sent: AtomicU64,
    /// Blocks not sent: unchanged, already durable, or holes on a fresh target.
    pub blocks_skipped: AtomicU64,
    /// Blocks the master target rejected as corrupt (and that were resent).
    pub blocks_rejected: AtomicU64,
}

impl Counters {
    /// Counters for a disk of `total` bytes.
    pub fn new(total: u64) -> Self {
        Counters {
            total,
            started: Instant::now(),
            scanned: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            blocks_sent: AtomicU64::new(0),
            blocks_skipped: AtomicU64::new(0),
            blocks_rejected: AtomicU64::new(0),
        }
    }

    /// Adds to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// A snapshot with rate (scanned bytes per second) and ETA.
    pub fn snapshot(&self) -> Progress {
        let scanned = self.scanned.load(Ordering::Relaxed);
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-9);
        let rate = scanned as f64 / elapsed;
        let eta = if rate > 0.0 {
            self.total.saturating_sub(scanned) as f64 / rate
        } else {
            0.0
        };
        Progress {
            bytes_total: self.total,
            bytes_scanned: scanned,
            bytes_sent: self.sent.load(Ordering::Relaxed),
            blocks_sent: self.blocks_sent.load(Ordering::Relaxed),
            blocks_skipped: self.blocks_skipped.load(Ordering::Relaxed),
            blocks_rejected: self.blocks_rejected.load(Ordering::Relaxed),
            rate_bytes_per_sec: rate,
            eta_seconds: eta,
        }
    }

    /// Seconds since the sync started.
    pub fn elapsed_secs(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

/// Renders progress in a terminal (a bar) or, elsewhere, as log lines.
pub struct Display {
    bar: Option<indicatif::ProgressBar>,
}

impl Display {
    /// A bar when stderr is a terminal, nothing otherwise.
    pub fn for_stderr(total: u64) -> Self {
        use std::io::IsTerminal;
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total);
            let style = indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} scanned, {msg} ({binary_bytes_per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        Display { bar }
    }

    /// Shows a snapshot.
    pub fn update(&self, p: &Progress) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(p.bytes_scanned);
                bar.set_message(format!(
                    "{} sent, {} blocks sent, {} skipped",
                    indicatif::HumanBytes(p.bytes_sent),
                    p.blocks_sent,
                    p.blocks_skipped
                ));
            }
            None => tracing::info!(
                scanned = p.bytes_scanned,
                total = p.bytes_total,
                sent = p.bytes_sent,
                rate = p.rate_bytes_per_sec,
                eta_s = p.eta_seconds,
                "sync progress"
            ),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
