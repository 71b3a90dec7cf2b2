//! The journal under `kill -9` and on damaged files.
//!
//! A child process (this test binary re-executed to run only
//! `journal_child_entry`) writes points in a loop, with thinning and
//! rollbacks, and prints what it does; the parent kills it with SIGKILL at
//! random moments, opens the journal (recovery), and checks that every point
//! the child reported committed is still there unless retention or a
//! rollback legitimately dropped it, and that every retained point
//! materializes to exactly the bytes regenerated from the child's seeds.
//!
//! Damaged journals (torn or garbage log, truncated, damaged or missing
//! segments) either open with the torn tail ignored or are refused with an
//! error naming the file, never a panic, and a refused open leaves the
//! replica as it was.

mod journal_support;

use homeward::disk::BlockDevice;
use homeward::journal::{Journal, JournalError, JournalOptions, NewPointMeta, Retention};
use journal_support::*;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CHILD_DIR_VAR: &str = "HOMEWARD_TEST_JOURNAL_CHILD_DIR";
const STEP_MS: u64 = 5 * MINUTE_MS;

fn child_workload() -> Workload {
    Workload {
        seed: 11,
        capacity: 4 * MIB,
        extents: 8,
        max_len: 512 * KIB,
        align: 1,
        hot_percent: 50,
        hot: 512 * KIB,
    }
}

/// Every point for 30 min, then one an hour: with a point every 5 min,
/// thinning (merges and compactions) runs every few points.
fn child_options() -> JournalOptions {
    JournalOptions {
        max_bytes: u64::MAX,
        retention: Retention {
            keep_all_for: Duration::from_secs(30 * 60),
            then_one_per: Duration::from_secs(3600),
            max_age: Duration::from_secs(1000 * 3600),
            max_points: None,
        },
    }
}

/// The child: writes points forever, printing `base SEQ BASE` before
/// writing point SEQ on top of point BASE, `committed SEQ` after its commit,
/// and `rollback TO` / `rolled back TO` around a rollback every fifth point.
#[test]
#[ignore = "entry point of the child process, run by the other tests"]
fn journal_child_entry() {
    let Ok(dir) = std::env::var(CHILD_DIR_VAR) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let replica = open_image(&dir.join("replica.img"));
    let (mut journal, _) = Journal::open(&dir.join("journal"), replica, child_options()).unwrap();
    let w = child_workload();
    let mut out = std::io::stdout().lock();
    // The test harness has printed `test journal_child_entry ... ` without
    // a newline: start the child's lines on a line of their own.
    writeln!(out).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let base = journal.latest().map_or(0, |p| p.seq);
        let mut writer = journal.begin().unwrap();
        let seq = writer.seq();
        writeln!(out, "base {seq} {base}").unwrap();
        out.flush().unwrap();
        for (offset, data) in w.changes(seq) {
            writer.write(offset, &data).unwrap();
        }
        let committed = writer
            .commit(NewPointMeta {
                taken_at: seq * STEP_MS,
                label: format!("child cycle {seq}"),
                ..NewPointMeta::default()
            })
            .unwrap();
        assert!(
            committed.retention_error.is_none(),
            "{:?}",
            committed.retention_error
        );
        writeln!(out, "committed {seq}").unwrap();
        out.flush().unwrap();
        let points = journal.points();
        if seq % 5 == 0 && points.len() >= 3 {
            let to = points[points.len() - 3].seq;
            writeln!(out, "rollback {to}").unwrap();
            out.flush().unwrap();
            journal.rollback_to(to).unwrap();
            writeln!(out, "rolled back {to}").unwrap();
            out.flush().unwrap();
        }
    }
    std::process::exit(3);
}

/// What the children printed, over all rounds.
#[derive(Default)]
struct History {
    /// Point → the point it was written on (0: the empty disk).
    base: BTreeMap<u64, u64>,
    /// Points reported committed, in order.
    committed: Vec<u64>,
    /// Rollbacks begun: (how many points were reported committed before, to).
    rollbacks: Vec<(usize, u64)>,
}

impl History {
    fn read(&mut self, line: &str) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["base", seq, base] => {
                self.base
                    .insert(seq.parse().unwrap(), base.parse().unwrap());
            }
            ["committed", seq] => self.committed.push(seq.parse().unwrap()),
            ["rollback", to] => self
                .rollbacks
                .push((self.committed.len(), to.parse().unwrap())),
            _ => {}
        }
    }

    /// The content of point `seq`, regenerated from the seeds along its
    /// chain of bases.
    fn content(&self, seq: u64) -> Vec<u8> {
        let w = child_workload();
        let mut chain = vec![seq];
        let mut at = seq;
        while at != 0 {
            at = *self
                .base
                .get(&at)
                .unwrap_or_else(|| panic!("point {at} is retained but the child never began it"));
            chain.push(at);
        }
        let mut image = vec![0u8; w.capacity as usize];
        for s in chain.into_iter().rev().filter(|&s| s != 0) {
            apply(&mut image, &w.changes(s));
        }
        image
    }
}

/// Opens the journal after a kill, checks it against the history, and
/// returns what recovery did.
fn check_after_kill(dir: &Path, history: &History, round: usize) -> homeward::journal::Recovered {
    let replica = open_image(&dir.join("replica.img"));
    let (journal, recovered) =
        Journal::open(&dir.join("journal"), replica.clone(), child_options()).unwrap_or_else(|e| {
            panic!("round {round}: the journal does not open after kill -9: {e}")
        });
    let retained = seqs(journal.points());
    assert!(
        !retained.is_empty() || history.committed.is_empty(),
        "round {round}: no point left"
    );
    for &seq in &retained {
        assert_point(&journal, seq, &history.content(seq));
    }
    if let Some(&latest) = retained.last() {
        assert_eq!(
            read_all(replica.as_ref()),
            history.content(latest),
            "round {round}: the replica holds the latest point"
        );
    }
    let newest = history
        .committed
        .iter()
        .chain(&retained)
        .copied()
        .max()
        .unwrap_or(0);
    for (i, &seq) in history.committed.iter().enumerate() {
        if retained.contains(&seq) {
            continue;
        }
        let rolled_back = history
            .rollbacks
            .iter()
            .any(|&(after, to)| after > i && to < seq);
        // Older than `keep_all_for` when a later point committed: thinned.
        let thinned = newest * STEP_MS > seq * STEP_MS + 30 * MINUTE_MS;
        assert!(
            rolled_back || thinned,
            "round {round}: point {seq} was reported committed and is gone (retained {retained:?})"
        );
    }
    recovered
}

#[test]
fn kill_9_at_random_moments_leaves_every_committed_point_intact() {
    let dir = tempfile::tempdir().unwrap();
    create_image(&dir.path().join("replica.img"), child_workload().capacity);
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng::new(2024);
    let mut history = History::default();
    let mut kills_mid_point = 0;
    let mut undone = 0;
    let mut finished_rollbacks = 0;
    // More rounds for a soak run: HOMEWARD_TEST_JOURNAL_KILL_ROUNDS=200.
    let rounds: usize = std::env::var("HOMEWARD_TEST_JOURNAL_KILL_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(10);
    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .args([
                "journal_child_entry",
                "--exact",
                "--include-ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR_VAR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let want = 2 + rng.below(6) as usize;
        let mut seen = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        while seen < want {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("round {round}: the child stopped committing"));
            if line.starts_with("committed") {
                seen += 1;
            }
            history.read(&line);
        }
        std::thread::sleep(Duration::from_micros(rng.below(25_000)));
        child.kill().unwrap(); // SIGKILL: nothing of the child's runs after this
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "round {round}: the child ended by itself"
        );
        reader.join().unwrap();
        let mut last = String::new();
        for line in rx.try_iter() {
            history.read(&line);
            last = line;
        }
        if last.starts_with("base") {
            kills_mid_point += 1;
        }
        let recovered = check_after_kill(dir.path(), &history, round);
        undone += usize::from(recovered.undone_point.is_some());
        finished_rollbacks += usize::from(recovered.finished_rollback.is_some());
    }
    println!(
        "{rounds} kills, {kills_mid_point} of them after a point began; recovery undid {undone} points and finished {finished_rollbacks} rollbacks; {} points reported committed, {} rollbacks begun",
        history.committed.len(),
        history.rollbacks.len()
    );
    assert!(history.committed.len() >= 2 * rounds);
}

/// A journal of `points` points over a `capacity`-byte replica in `dir`;
/// returns the content at every point (index 0: point 1).
fn make_journal(dir: &Path, capacity: u64, points: u64) -> Vec<Vec<u8>> {
    let replica = create_image(&dir.join("replica.img"), capacity);
    let (mut journal, _) =
        Journal::open(&dir.join("journal"), replica, JournalOptions::default()).unwrap();
    let w = Workload {
        seed: 21,
        capacity,
        extents: 5,
        max_len: capacity / 8,
        align: 512,
        hot_percent: 30,
        hot: capacity / 4,
    };
    let mut image = vec![0u8; capacity as usize];
    let mut copies = Vec::new();
    for seq in 1..=points {
        let changes = w.changes(seq);
        apply(&mut image, &changes);
        write_point(&mut journal, &changes, seq * 1000);
        copies.push(image.clone());
    }
    copies
}

fn reopen(dir: &Path) -> Result<(Journal, homeward::journal::Recovered), JournalError> {
    Journal::open(
        &dir.join("journal"),
        open_image(&dir.join("replica.img")),
        JournalOptions::default(),
    )
}

fn log_path(dir: &Path) -> PathBuf {
    dir.join("journal").join("points.log")
}

/// The undo segments in the journal, by name.
fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("journal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "undo"))
        .collect();
    files.sort();
    files
}

/// Every file of the journal and the replica, to compare before and after.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    out.insert(
        dir.join("replica.img"),
        std::fs::read(dir.join("replica.img")).unwrap(),
    );
    for entry in std::fs::read_dir(dir.join("journal")).unwrap() {
        let path = entry.unwrap().path();
        out.insert(path.clone(), std::fs::read(&path).unwrap());
    }
    out
}

fn assert_refused(dir: &Path, names: &Path, what: &str) {
    let before = snapshot(dir);
    let err = reopen(dir).map(|_| ()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, JournalError::Damaged { .. }), "{text}");
    assert!(
        text.contains(&names.display().to_string()),
        "the error names the file: {text}"
    );
    assert!(text.contains(what), "{text}");
    assert!(
        snapshot(dir) == before,
        "a refused open changed the replica or the journal"
    );
}

#[test]
fn a_log_cut_anywhere_opens_and_keeps_every_point_whose_commit_is_whole() {
    let master = tempfile::tempdir().unwrap();
    let copies = make_journal(master.path(), MIB, 6);
    let log = std::fs::read(log_path(master.path())).unwrap();
    let commit_ends: Vec<usize> = record_ends(&log);
    assert_eq!(commit_ends.len(), 6, "one record per commit");
    let mut cuts: Vec<usize> = (24..log.len()).step_by(53).collect();
    cuts.extend(commit_ends.iter().flat_map(|&e| [e - 1, e]));
    for cut in cuts {
        let scratch = tempfile::tempdir().unwrap();
        copy_dir(master.path(), scratch.path());
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(log_path(scratch.path()))
            .unwrap();
        file.set_len(cut as u64).unwrap();
        let (journal, recovered) = reopen(scratch.path())
            .unwrap_or_else(|e| panic!("cut at {cut}: a torn tail must open: {e}"));
        let whole = commit_ends.iter().filter(|&&e| e <= cut).count() as u64;
        assert_eq!(
            seqs(journal.points()),
            (1..=whole).collect::<Vec<_>>(),
            "cut at {cut}"
        );
        let torn = cut
            - commit_ends
                .iter()
                .copied()
                .filter(|&e| e <= cut)
                .max()
                .unwrap_or(24);
        assert_eq!(recovered.torn_log_bytes, torn as u64, "cut at {cut}");
        if whole < 6 && whole > 0 {
            // The points after the cut were undone from their own segments.
            assert_eq!(
                recovered.undone_point.as_ref().map(|u| u.seq),
                Some(whole + 1)
            );
        }
        for seq in 1..=whole {
            assert_point(&journal, seq, &copies[seq as usize - 1]);
        }
        if whole > 0 {
            assert_eq!(
                read_all(journal.replica().as_ref()),
                copies[whole as usize - 1]
            );
        }
    }
}

/// Where each record of a points log ends.
fn record_ends(log: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut at = 24;
    while at + 8 <= log.len() {
        let len = u32::from_le_bytes(log[at + 4..at + 8].try_into().unwrap()) as usize;
        at += 8 + len + 8;
        ends.push(at);
    }
    ends
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn damaged_log_records_and_headers_are_refused_without_changing_anything() {
    let dir = tempfile::tempdir().unwrap();
    make_journal(dir.path(), MIB, 4);
    let path = log_path(dir.path());
    let good = std::fs::read(&path).unwrap();

    // A byte of the first record flipped: whole records follow it.
    let mut bad = good.clone();
    bad[40] ^= 0x20;
    std::fs::write(&path, &bad).unwrap();
    assert_refused(dir.path(), &path, "a whole record follows");

    // Garbage header.
    let mut bad = good.clone();
    bad[..8].copy_from_slice(b"GARBAGE!");
    std::fs::write(&path, &bad).unwrap();
    assert_refused(dir.path(), &path, "no valid header");

    // A missing log beside undo segments.
    std::fs::remove_file(&path).unwrap();
    assert_refused(dir.path(), &path, "missing");

    std::fs::write(&path, &good).unwrap();
    reopen(dir.path()).unwrap();
}

#[test]
fn damaged_segments_are_refused_or_fail_the_reads_that_need_them() {
    let dir = tempfile::tempdir().unwrap();
    let copies = make_journal(dir.path(), MIB, 4);
    let segments = segment_files(dir.path());
    assert_eq!(
        segments.len(),
        3,
        "points 2 to 4 have undo sets: {segments:?}"
    );
    let target = segments[1].clone(); // point 3's undo set
    let good = std::fs::read(&target).unwrap();

    // Truncated: the index at its end is gone.
    std::fs::write(&target, &good[..good.len() - 10]).unwrap();
    assert_refused(dir.path(), &target, "no valid index");
    // Missing.
    std::fs::remove_file(&target).unwrap();
    assert_refused(dir.path(), &target, "missing");

    // A byte of a before-image flipped: the journal opens (records are
    // verified when read); what needs the record fails, nothing else does.
    let mut bad = good.clone();
    bad[40 + 16 + 10] ^= 1;
    std::fs::write(&target, &bad).unwrap();
    let (mut journal, _) = reopen(dir.path()).unwrap();
    assert_point(&journal, 4, &copies[3]);
    assert_point(&journal, 3, &copies[2]);
    let view = journal.view(2).unwrap();
    let mut buf = vec![0u8; MIB as usize];
    let err = view.read_at(&mut buf, 0).unwrap_err().to_string();
    assert!(
        err.contains("fails its checksum") && err.contains(&target.display().to_string()),
        "{err}"
    );
    let replica_before = read_all(journal.replica().as_ref());
    let err = journal.rollback_to(1).unwrap_err();
    assert!(matches!(err, JournalError::Damaged { .. }), "{err}");
    assert_eq!(
        read_all(journal.replica().as_ref()),
        replica_before,
        "the refused rollback wrote nothing"
    );
    assert_eq!(seqs(journal.points()), vec![1, 2, 3, 4]);
    drop(journal);

    // A stray file named like a segment, holding garbage: deleted as an orphan.
    std::fs::write(&target, &good).unwrap();
    let stray = dir.path().join("journal").join("seg-0000000000000999.undo");
    let mut garbage = vec![0u8; 5000];
    Rng::new(5).fill(&mut garbage);
    std::fs::write(&stray, &garbage).unwrap();
    // And a garbage digest cache: ignored and rebuilt.
    std::fs::write(dir.path().join("journal").join("leaves"), &garbage).unwrap();
    let (mut journal, recovered) = reopen(dir.path()).unwrap();
    assert_eq!(recovered.removed_files, 1);
    assert!(!stray.exists());
    for seq in 1..=4 {
        assert_point(&journal, seq, &copies[seq as usize - 1]);
    }
    let mut image = copies[3].clone();
    let changes = vec![(1000, vec![7u8; 3000])];
    apply(&mut image, &changes);
    write_point(&mut journal, &changes, 5000);
    assert_point(&journal, 5, &image);
}

/// A crash while point 3 was being written, built by hand from a committed
/// point 3: its commit record and segment index gone, its last undo record
/// torn, and (as the ordering guarantees) that record's replica write
/// never done.
#[test]
fn an_uncommitted_point_torn_mid_record_is_undone_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let copies = make_journal(dir.path(), MIB, 3);
    let log = log_path(dir.path());
    let ends = record_ends(&std::fs::read(&log).unwrap());
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(ends[1] as u64)
        .unwrap();
    let newest = segment_files(dir.path()).last().unwrap().clone();
    let seg = std::fs::read(&newest).unwrap();
    let u64_at = |at: usize| u64::from_le_bytes(seg[at..at + 8].try_into().unwrap());
    let index_pos = u64_at(seg.len() - 24) as usize;
    let count = u64_at(index_pos + 8) as usize;
    assert!(count >= 2);
    let last = index_pos + 16 + (count - 1) * 20;
    let (offset, len, pos) = (
        u64_at(last),
        u32::from_le_bytes(seg[last + 8..last + 12].try_into().unwrap()) as usize,
        u64_at(last + 12) as usize,
    );
    let before_image = &seg[pos + 16..pos + 16 + len];
    let replica = open_image(&dir.path().join("replica.img"));
    replica.write_at(before_image, offset).unwrap();
    drop(replica);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&newest)
        .unwrap()
        .set_len((pos + 10) as u64)
        .unwrap();

    let (journal, recovered) = reopen(dir.path()).unwrap();
    let undone = recovered
        .undone_point
        .expect("the uncommitted point is undone");
    assert_eq!(undone.seq, 3);
    assert_eq!(undone.records, count - 1);
    assert_eq!(undone.torn_bytes, 10);
    assert_eq!(seqs(journal.points()), vec![1, 2]);
    assert_eq!(read_all(journal.replica().as_ref()), copies[1]);
    assert_point(&journal, 1, &copies[0]);
    assert!(!newest.exists(), "the undone segment is deleted");
}

/// A fake replica that passes writes through to a real one until its
/// budget runs out, then fails every write: a disk that stops taking writes
/// in the middle of an operation, as a crash would stop the process.
struct FailingReplica {
    inner: std::sync::Arc<dyn BlockDevice>,
    writes_left: std::sync::atomic::AtomicI64,
}

impl FailingReplica {
    fn over(path: &Path, writes: i64) -> std::sync::Arc<dyn BlockDevice> {
        std::sync::Arc::new(FailingReplica {
            inner: open_image(path),
            writes_left: std::sync::atomic::AtomicI64::new(writes),
        })
    }
}

impl BlockDevice for FailingReplica {
    fn capacity(&self) -> u64 {
        self.inner.capacity()
    }
    fn writable(&self) -> bool {
        true
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        if self
            .writes_left
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst)
            <= 0
        {
            return Err(std::io::Error::other("injected write failure"));
        }
        self.inner.write_at(buf, offset)
    }
    fn flush(&self) -> std::io::Result<()> {
        self.inner.flush()
    }
    fn describe(&self) -> String {
        format!("failing fake over {}", self.inner.describe())
    }
}

#[test]
fn a_rollback_stopped_part_way_is_finished_by_the_next_open() {
    for budget in [0, 1, 4, 9] {
        let dir = tempfile::tempdir().unwrap();
        let copies = make_journal(dir.path(), MIB, 5);
        let replica = FailingReplica::over(&dir.path().join("replica.img"), budget);
        let (mut journal, _) = Journal::open(
            &dir.path().join("journal"),
            replica,
            JournalOptions::default(),
        )
        .unwrap();
        let err = journal.rollback_to(2).unwrap_err();
        assert!(
            err.to_string().contains("injected write failure"),
            "budget {budget}: {err}"
        );
        // Until recovery, the journal refuses to go on.
        let refused = journal.begin().map(|_| ()).unwrap_err();
        assert!(
            matches!(refused, JournalError::NeedsRecovery { .. }),
            "{refused}"
        );
        drop(journal);
        let (journal, recovered) = reopen(dir.path()).unwrap();
        assert_eq!(recovered.finished_rollback, Some(2), "budget {budget}");
        assert_eq!(seqs(journal.points()), vec![1, 2]);
        assert_eq!(read_all(journal.replica().as_ref()), copies[1]);
        assert_point(&journal, 1, &copies[0]);
        assert_eq!(
            segment_files(dir.path()).len(),
            1,
            "the undo sets of points 3 to 5 are deleted"
        );
    }
}

#[test]
fn a_point_whose_replica_writes_fail_is_undone_by_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let copies = make_journal(dir.path(), MIB, 3);
    let replica = FailingReplica::over(&dir.path().join("replica.img"), 2);
    let (mut journal, _) = Journal::open(
        &dir.path().join("journal"),
        replica,
        JournalOptions::default(),
    )
    .unwrap();
    let mut writer = journal.begin().unwrap();
    for i in 0..5u64 {
        writer.write(i * 100 * KIB, &[0xCD; 50_000]).unwrap();
    }
    // The writes wait in a batch; they reach the replica, and fail, at commit.
    let err = writer.commit(NewPointMeta::default()).unwrap_err();
    assert!(err.to_string().contains("injected write failure"), "{err}");
    // Undoing on drop failed too (the fake still fails): left for open.
    let refused = journal.view(1).map(|_| ()).unwrap_err();
    assert!(
        matches!(refused, JournalError::NeedsRecovery { .. }),
        "{refused}"
    );
    drop(journal);
    let (journal, recovered) = reopen(dir.path()).unwrap();
    assert_eq!(recovered.undone_point.map(|u| u.seq), Some(4));
    assert_eq!(seqs(journal.points()), vec![1, 2, 3]);
    assert_eq!(read_all(journal.replica().as_ref()), copies[2]);
}
