//! Bandwidth limits hold: with `homeward sync --limit`, a process server's cap (`serve --limit`, shared by all its syncs) or a per-sync limit, bytes on the wire per second stay within 5% above the limit and no lower than 80% of it, over the whole sync and over every window of a second or more.

use homeward::disk::ImageFormat;
use homeward::sync::proto::process_server_client::ProcessServerClient;
use homeward::sync::proto::{Mode, SyncRequest, SyncSummary, sync_event};
use homeward_tests::child::{HomewardChild, master_target, process_server};
use homeward_tests::images::{KIB, MIB, assert_identical, random_image, s, sync};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[test]
#[ignore = "entry point of child processes, run by the other tests"]
fn child_entry() {
    homeward_tests::child::entry();
}

/// How far above the limit the achieved rate may be.
const OVER: f64 = 1.05;
/// How far below the limit the achieved rate may be.
const UNDER: f64 = 0.80;

/// Asserts that `rate` is within [`UNDER`]..[`OVER`] of `limit`.
#[track_caller]
fn assert_rate_near(rate: f64, limit: f64, what: &str) {
    let ratio = rate / limit;
    eprintln!("{what}: {rate:.0} B/s against a limit of {limit:.0} B/s ({ratio:.3}×)");
    assert!(
        (UNDER..=OVER).contains(&ratio),
        "{what}: {rate:.0} B/s is {ratio:.3}× the limit of {limit:.0} B/s"
    );
}

#[test]
fn sync_limit_holds_the_rate_on_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let src = random_image(dir.path(), "source", ImageFormat::Raw, 24 * MIB, 1);
    let dst = dir.path().join("target.raw");
    let report = sync(&[
        "--from",
        s(&src),
        "--to",
        s(&dst),
        "--limit",
        "8MB/s",
        "--no-compress",
    ]);
    assert!(report.wire_bytes > 24 * MIB, "{report:?}");
    assert_rate_near(report.wire_rate(), 8e6, "homeward sync --limit 8MB/s");
    assert_identical(&src, ImageFormat::Raw, &dst, ImageFormat::Raw);
}

/// A master target and a process server (plaintext, loopback) with `ps_args`,
/// syncing disks from `dir/sources` to `dir/targets`.
struct Pair {
    _mt: HomewardChild,
    _ps: HomewardChild,
    mt_url: String,
    ps_url: String,
    sources: PathBuf,
    targets: PathBuf,
    _dir: tempfile::TempDir,
}

fn pair(ps_args: &[&str]) -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let [sources, targets] = ["sources", "targets"].map(|d| dir.path().join(d));
    std::fs::create_dir(&sources).unwrap();
    std::fs::create_dir(&targets).unwrap();
    let (mt, mt_url) = master_target(&targets, &[]);
    let (ps, ps_url) = process_server(&sources, ps_args);
    Pair {
        _mt: mt,
        _ps: ps,
        mt_url,
        ps_url,
        sources,
        targets,
        _dir: dir,
    }
}

impl Pair {
    /// A random raw source disk `name` of `len` bytes.
    fn source(&self, name: &str, len: u64, seed: u64) -> PathBuf {
        random_image(&self.sources, name, ImageFormat::Raw, len, seed)
    }

    /// A full, uncompressed sync request of `source` to a new raw target.
    fn request(&self, source: &Path, block_size: u64, limit: u64) -> SyncRequest {
        let name = source.file_name().unwrap();
        SyncRequest {
            source_path: s(source).to_string(),
            master_target: self.mt_url.clone(),
            target_path: s(&self.targets.join(name)).to_string(),
            mode: Mode::Full as i32,
            block_size: block_size as u32,
            limit_bytes_per_sec: limit,
            compress: false,
            ..Default::default()
        }
    }

    fn target(&self, source: &Path) -> PathBuf {
        self.targets.join(source.file_name().unwrap())
    }
}

/// What a sync through the process server reported.
struct Followed {
    summary: SyncSummary,
    /// (arrival, bytes on the wire so far) of each progress event.
    samples: Vec<(Instant, u64)>,
    /// When the request was made and when `Done` arrived.
    started: Instant,
    ended: Instant,
}

impl Followed {
    fn wire_bytes(&self) -> u64 {
        self.summary.totals.expect("totals").bytes_sent
    }

    /// Bytes on the wire per second, as the process server measured.
    fn rate(&self) -> f64 {
        self.wire_bytes() as f64 / self.summary.seconds
    }

    /// Asserts that no window of at least a second between two progress
    /// events carried more than [`OVER`] × `limit`, give or take one block
    /// (a block is sent whole once the pacer lets it go).
    #[track_caller]
    fn assert_no_window_over(&self, limit: f64, block: u64) {
        let mut windows = 0;
        for (i, &(t1, b1)) in self.samples.iter().enumerate() {
            for &(t2, b2) in &self.samples[i + 1..] {
                let dt = t2.duration_since(t1).as_secs_f64();
                if dt < 1.0 {
                    continue;
                }
                windows += 1;
                let allowed = OVER * limit * dt + block as f64;
                assert!(
                    (b2 - b1) as f64 <= allowed,
                    "{} bytes went in a {dt:.2} s window; the limit allows {allowed:.0}",
                    b2 - b1
                );
            }
        }
        assert!(windows > 0, "no window of a second or more to check");
    }
}

/// Asks the process server for `request` and follows it until `Done`.
async fn follow(ps_url: &str, request: SyncRequest) -> Followed {
    let mut client = ProcessServerClient::connect(ps_url.to_string())
        .await
        .expect("connect to the process server");
    let started = Instant::now();
    let mut events = client.sync(request).await.expect("sync").into_inner();
    let mut samples = Vec::new();
    loop {
        let event = events
            .message()
            .await
            .expect("sync events")
            .expect("the event stream ended without Done");
        match event.event {
            Some(sync_event::Event::Progress(p)) => samples.push((Instant::now(), p.bytes_sent)),
            Some(sync_event::Event::Done(summary)) => {
                return Followed {
                    summary,
                    samples,
                    started,
                    ended: Instant::now(),
                };
            }
            None => {}
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

#[test]
fn a_per_sync_limit_holds_over_every_window() {
    let pair = pair(&[]);
    let src = pair.source("disk", 10 * MIB, 2);
    let limit = 3_000_000;
    let block = 256 * KIB;
    let followed = runtime().block_on(follow(&pair.ps_url, pair.request(&src, block, limit)));
    assert_rate_near(followed.rate(), limit as f64, "per-sync limit 3MB/s");
    followed.assert_no_window_over(limit as f64, block);
    assert_identical(&src, ImageFormat::Raw, &pair.target(&src), ImageFormat::Raw);
}

#[test]
fn a_process_server_cap_is_shared_by_its_syncs() {
    let cap = 4_000_000.0;
    let pair = pair(&["--limit", "4MB/s"]);
    let sources = [pair.source("a", 6 * MIB, 3), pair.source("b", 6 * MIB, 4)];
    let requests = sources.each_ref().map(|src| pair.request(src, 0, 0));
    let [a, b] = runtime().block_on(async {
        let [ra, rb] = requests;
        tokio::join!(follow(&pair.ps_url, ra), follow(&pair.ps_url, rb)).into()
    });
    // Both ran at once: each started before the other ended.
    assert!(a.started < b.ended && b.started < a.ended);
    let started = a.started.min(b.started);
    let ended = a.ended.max(b.ended);
    let together = (a.wire_bytes() + b.wire_bytes()) as f64 / (ended - started).as_secs_f64();
    assert_rate_near(together, cap, "two syncs under one 4MB/s cap");
    for (followed, src) in [(&a, &sources[0]), (&b, &sources[1])] {
        assert!(
            followed.rate() <= OVER * cap,
            "one sync alone went at {:.0} B/s",
            followed.rate()
        );
        assert_identical(src, ImageFormat::Raw, &pair.target(src), ImageFormat::Raw);
    }
}

#[test]
fn an_idle_process_server_cap_does_not_burst_afterwards() {
    let cap = 4_000_000.0;
    let pair = pair(&["--limit", "4MB/s"]);
    let first = pair.source("first", 4 * MIB, 5);
    let second = pair.source("second", 8 * MIB, 6);
    let (before, after) = runtime().block_on(async {
        let before = follow(&pair.ps_url, pair.request(&first, 0, 0)).await;
        // The process server has nothing to send for a while (the scenario
        // under test, not a wait for something).
        tokio::time::sleep(Duration::from_secs(3)).await;
        let after = follow(&pair.ps_url, pair.request(&second, 0, 0)).await;
        (before, after)
    });
    assert_rate_near(before.rate(), cap, "the first sync");
    assert!(
        after.rate() <= OVER * cap,
        "after 3 s idle, the next sync went at {:.0} B/s ({:.1}× the cap of {cap:.0} B/s)",
        after.rate(),
        after.rate() / cap
    );
}
