//! `kill -9` of either role mid-sync, then a restart: the sync completes, the
//! target is identical, and blocks the master target had made durable are not
//! sent again (the resumed run sends under 55% of the disk after a kill at
//! about 50%).

use homeward::sync::Mode;
use homeward::sync::proto::process_server_client::ProcessServerClient;
use homeward::sync::proto::{SyncRequest, sync_event};
use homeward::sync::source::{self, RetryPolicy, SyncSpec};
use homeward::sync::throttle::Pacer;
use homeward::sync::transport::Security;
use homeward_tests::child::{master_target, master_target_on, process_server};
use homeward_tests::images::write_random;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[test]
#[ignore = "entry point of child processes, run by the other tests"]
fn child_entry() {
    homeward_tests::child::entry();
}

const SIZE: u64 = 192 << 20;
/// Slow enough to kill at about half way, fast enough to keep the test short.
const RATE: u64 = 64_000_000;

fn same_bytes(a: &Path, b: &Path) -> bool {
    std::fs::read(a).unwrap() == std::fs::read(b).unwrap()
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    source: PathBuf,
    target: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let source = root.join("source.img");
    write_random(&source, SIZE, 42);
    Fixture {
        target: root.join("target.img"),
        source,
        root,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_target_killed_at_half_way_resumes_where_it_stopped() {
    let f = fixture();
    let root = f.root.clone();
    let (mut mt, url) =
        tokio::task::spawn_blocking(move || master_target(&root, &["--checkpoint-blocks", "4"]))
            .await
            .unwrap();
    let spec = SyncSpec {
        source: f.source.clone().into(),
        source_format: None,
        target: f.target.clone().into(),
        target_format: None,
        mode: Mode::Full,
        block_size: 1 << 20,
        compress: false,
        in_use: None,
    };
    let (progress, mut watch) = tokio::sync::watch::channel(Default::default());
    let run = {
        let url = url.clone();
        tokio::spawn(async move {
            let pacer = Arc::new(Pacer::new(RATE));
            let retry = RetryPolicy {
                reconnect_for: Duration::from_secs(60),
            };
            source::run(
                &url,
                &Security::PlaintextLoopback,
                &spec,
                &[pacer],
                retry,
                progress,
            )
            .await
        })
    };
    while watch.borrow().bytes_sent < SIZE / 2 {
        watch.changed().await.unwrap();
    }
    mt.kill9();
    // Nothing moves while the master target is down: this is what attempt 1 sent.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let sent_before_restart = watch.borrow().bytes_sent;
    assert!(
        sent_before_restart < SIZE,
        "the kill came too late to test anything"
    );

    let root = f.root.clone();
    let listen = format!("127.0.0.1:{}", port_of(&url));
    let _mt = tokio::task::spawn_blocking(move || {
        master_target_on(&root, &listen, &["--checkpoint-blocks", "4"])
    })
    .await
    .unwrap();
    let outcome = run
        .await
        .unwrap()
        .expect("the sync completes after the restart");

    assert!(outcome.attempts >= 2, "the process server reconnected");
    let resumed = outcome.totals.bytes_sent - sent_before_restart;
    eprintln!(
        "master target killed after {:.1}% sent; the resumed run sent {:.1}% of the disk",
        100.0 * sent_before_restart as f64 / SIZE as f64,
        100.0 * resumed as f64 / SIZE as f64
    );
    assert!(
        (resumed as f64) < 0.55 * SIZE as f64,
        "after the restart {resumed} bytes were sent, {:.1}% of the disk",
        100.0 * resumed as f64 / SIZE as f64
    );
    assert!(
        same_bytes(&f.source, &f.target),
        "the target differs from the source"
    );
    assert!(
        !homeward::sync::checkpoint::path_for(&f.target).exists(),
        "a completed sync leaves no checkpoint behind"
    );
}

/// Runs a process server child and asks it to sync; returns bytes sent.
async fn process_server_sync(
    ps_url: &str,
    request: SyncRequest,
    mut on_progress: impl FnMut(u64) -> bool,
) -> Result<u64, tonic::Status> {
    let mut client = ProcessServerClient::connect(ps_url.to_string())
        .await
        .unwrap();
    let mut events = client.sync(request).await?.into_inner();
    loop {
        match events.message().await? {
            Some(event) => match event.event {
                Some(sync_event::Event::Progress(p)) if !on_progress(p.bytes_sent) => {
                    return Ok(p.bytes_sent);
                }
                Some(sync_event::Event::Progress(_)) => {}
                Some(sync_event::Event::Done(done)) => {
                    return Ok(done.totals.map(|t| t.bytes_sent).unwrap_or_default());
                }
                None => {}
            },
            None => return Err(tonic::Status::aborted("stream ended without a summary")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_server_killed_at_half_way_resumes_after_restart() {
    let f = fixture();
    let root = f.root.clone();
    let (_mt, mt_url) =
        tokio::task::spawn_blocking(move || master_target(&root, &["--checkpoint-blocks", "4"]))
            .await
            .unwrap();
    let request = SyncRequest {
        source_path: f.source.display().to_string(),
        master_target: mt_url,
        target_path: f.target.display().to_string(),
        mode: Mode::Full as i32,
        block_size: 1 << 20,
        limit_bytes_per_sec: RATE,
        ..SyncRequest::default()
    };

    let root = f.root.clone();
    let (mut ps, ps_url) = tokio::task::spawn_blocking(move || process_server(&root, &[]))
        .await
        .unwrap();
    let sent_first = process_server_sync(&ps_url, request.clone(), |sent| sent < SIZE / 2)
        .await
        .unwrap();
    ps.kill9();
    assert!(
        (SIZE / 2..SIZE).contains(&sent_first),
        "killed at {sent_first} of {SIZE}"
    );

    let root = f.root.clone();
    let (_ps, ps_url) = tokio::task::spawn_blocking(move || process_server(&root, &[]))
        .await
        .unwrap();
    let sent_second = process_server_sync(&ps_url, request, |_| true)
        .await
        .unwrap();
    eprintln!(
        "process server killed after {:.1}% sent; the restarted one sent {:.1}% of the disk",
        100.0 * sent_first as f64 / SIZE as f64,
        100.0 * sent_second as f64 / SIZE as f64
    );
    assert!(
        (sent_second as f64) < 0.55 * SIZE as f64,
        "the restarted process server sent {sent_second} bytes, {:.1}% of the disk",
        100.0 * sent_second as f64 / SIZE as f64
    );
    assert!(
        same_bytes(&f.source, &f.target),
        "the target differs from the source"
    );
}
