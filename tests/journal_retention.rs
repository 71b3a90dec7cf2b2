//! Journal retention with an injected clock: ASR-like thinning, maximum
//! age and count, and the size cap with its alarm. Every point kept still
//! materializes exactly.

mod journal_support;

use homeward::journal::{Alarm, Journal, JournalOptions, PruneReason, Retention};
use journal_support::*;
use std::collections::BTreeMap;
use std::time::Duration;

/// Small extents, most in a hot first 256 KiB: thinned points' undo sets
/// mostly shadow each other, so merged sets get compacted.
fn workload(capacity: u64, seed: u64) -> Workload {
    Workload {
        seed,
        capacity,
        extents: 6,
        max_len: 64 * KIB,
        align: 4 * KIB,
        hot_percent: 70,
        hot: 256 * KIB,
    }
}

/// The points the policy must keep, derived here from the rules rather than
/// from the journal's code: everything 2 h old or younger, then the latest
/// point of each clock hour, nothing older than 24 h, the latest always.
fn expected_kept(times: &[(u64, u64)], now: u64) -> Vec<u64> {
    let last = times.len() - 1;
    times
        .iter()
        .enumerate()
        .filter(|&(i, &(_, t))| {
            let age = now - t;
            i == last
                || age <= 2 * HOUR_MS
                || (age <= 24 * HOUR_MS && times[i + 1].1 / HOUR_MS != t / HOUR_MS)
        })
        .map(|(_, &(seq, _))| seq)
        .collect()
}

#[test]
fn points_every_5_minutes_for_30_hours_are_thinned_like_asr() {
    let dir = tempfile::tempdir().unwrap();
    let capacity = MIB;
    let replica = create_image(&dir.path().join("replica.img"), capacity);
    let (mut journal, _) =
        Journal::open(&dir.path().join("j"), replica, JournalOptions::default()).unwrap();
    let w = workload(capacity, 7);
    // Start mid-hour, so the clock hours do not line up with the first point.
    let t0 = 1_700_000_000_000 + 17 * MINUTE_MS;
    let count = 30 * 12;
    let times: Vec<(u64, u64)> = (1..=count)
        .map(|seq| (seq, t0 + (seq - 1) * 5 * MINUTE_MS))
        .collect();
    let now = times.last().unwrap().1;
    let kept = expected_kept(&times, now);
    let mut image = vec![0u8; capacity as usize];
    let mut copies = BTreeMap::new();
    let mut thinned = 0;
    let mut expired = 0;
    for &(seq, taken_at) in &times {
        let changes = w.changes(seq);
        apply(&mut image, &changes);
        // Retention runs after each commit, at the point's time.
        let committed = write_point(&mut journal, &changes, taken_at);
        assert!(committed.alarms.is_empty());
        for p in &committed.pruned {
            match p.reason {
                PruneReason::Thinned => thinned += 1,
                PruneReason::Expired => expired += 1,
                other => panic!("point {} dropped for {other:?}", p.seq),
            }
        }
        if kept.contains(&seq) {
            copies.insert(seq, image.clone());
        }
    }
    let retained = seqs(journal.points());
    assert_eq!(retained, kept);
    let young = retained
        .iter()
        .filter(|&&s| now - times[s as usize - 1].1 <= 2 * HOUR_MS)
        .count();
    assert_eq!(
        young, 25,
        "every point of the last 2 h (both ends included)"
    );
    assert_eq!(
        retained.len(),
        25 + 22,
        "then one per hour for the rest of the day"
    );
    assert!(thinned > 0 && expired > 0);
    assert_eq!(thinned + expired + retained.len(), count as usize);
    // Nothing older than 24 h, and hours apart at most one hour and a step.
    let old: Vec<u64> = retained.iter().map(|&s| times[s as usize - 1].1).collect();
    assert!(old.iter().all(|&t| now - t <= 24 * HOUR_MS));
    assert!(
        old.windows(2)
            .all(|w| w[1] - w[0] <= HOUR_MS + 5 * MINUTE_MS)
    );
    for (seq, copy) in &copies {
        assert_point(&journal, *seq, copy);
    }
    // Thinning merged twelve undo sets into each hourly point's (twelve
    // segments each, 22 × 12 in all, without compaction); compaction
    // rewrites a set once most of its bytes are shadowed.
    let undo_files = std::fs::read_dir(journal.dir())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".undo")
        })
        .count();
    assert!(
        undo_files < 3 * retained.len(),
        "{undo_files} undo segments for {} points",
        retained.len()
    );
    assert_eq!(journal.apply_retention(now).unwrap().pruned, vec![]);
    // A day later, only the latest point is left.
    let later = journal.apply_retention(now + 25 * HOUR_MS).unwrap();
    assert_eq!(later.pruned.len(), kept.len() - 1);
    assert_eq!(seqs(journal.points()), vec![count]);
    assert_point(&journal, count, &image);
    let files = std::fs::read_dir(journal.dir()).unwrap().count();
    assert_eq!(
        files, 3,
        "points.log, lock and the digest cache: no undo set is left"
    );
}

#[test]
fn max_points_keeps_the_latest_ones() {
    let dir = tempfile::tempdir().unwrap();
    let capacity = MIB;
    let replica = create_image(&dir.path().join("replica.img"), capacity);
    let options = JournalOptions {
        retention: Retention {
            max_points: Some(5),
            ..Retention::default()
        },
        ..JournalOptions::default()
    };
    let (mut journal, _) = Journal::open(&dir.path().join("j"), replica, options).unwrap();
    let w = workload(capacity, 8);
    let mut image = vec![0u8; capacity as usize];
    let mut copies = BTreeMap::new();
    for seq in 1..=12 {
        let changes = w.changes(seq);
        apply(&mut image, &changes);
        let committed = write_point(&mut journal, &changes, seq * 1000);
        copies.insert(seq, image.clone());
        if seq > 5 {
            assert_eq!(committed.pruned.len(), 1);
            assert_eq!(committed.pruned[0].seq, seq - 5);
            assert_eq!(committed.pruned[0].reason, PruneReason::OverMaxPoints);
        }
    }
    assert_eq!(seqs(journal.points()), vec![8, 9, 10, 11, 12]);
    for seq in 8..=12 {
        assert_point(&journal, seq, &copies[&seq]);
    }
}

#[test]
fn a_journal_at_its_size_cap_drops_the_oldest_points_with_an_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let capacity = 8 * MIB;
    let replica = create_image(&dir.path().join("replica.img"), capacity);
    let cap = 3 * MIB;
    let options = JournalOptions {
        max_bytes: cap,
        retention: Retention {
            keep_all_for: Duration::from_secs(1000 * 3600),
            max_age: Duration::from_secs(1000 * 3600),
            ..Retention::default()
        },
    };
    let (mut journal, _) = Journal::open(&dir.path().join("j"), replica, options).unwrap();
    // About 1 MiB of new data per point, spread over the disk.
    let w = Workload {
        seed: 9,
        capacity,
        extents: 4,
        max_len: 512 * KIB,
        align: 4 * KIB,
        hot_percent: 0,
        hot: 0,
    };
    let mut image = vec![0u8; capacity as usize];
    let mut copies = BTreeMap::new();
    let mut alarms = Vec::new();
    for seq in 1..=12 {
        let changes = w.changes(seq);
        apply(&mut image, &changes);
        let committed = write_point(&mut journal, &changes, seq * 1000);
        copies.insert(seq, image.clone());
        assert!(journal.bytes() <= cap || journal.points().len() == 1);
        assert_eq!(
            journal.points().last().unwrap().seq,
            seq,
            "the latest point survives"
        );
        for p in &committed.pruned {
            assert_eq!(p.reason, PruneReason::SizeCap);
        }
        assert_eq!(committed.pruned.len(), committed.alarms.len());
        alarms.extend(committed.alarms);
    }
    assert!(
        !alarms.is_empty(),
        "12 MiB of changes cannot fit a 3 MiB journal"
    );
    for alarm in &alarms {
        let Alarm::DroppedEarly {
            seq,
            taken_at,
            reason,
        } = alarm;
        assert_eq!(*taken_at, seq * 1000);
        assert!(
            reason.contains("max_bytes") && reason.contains(&cap.to_string()),
            "{reason}"
        );
        assert!(reason.contains("raise max_bytes"), "{reason}");
        assert!(
            alarm
                .to_string()
                .contains(&format!("recovery point {seq} dropped early"))
        );
    }
    let dropped: Vec<u64> = alarms
        .iter()
        .map(|Alarm::DroppedEarly { seq, .. }| *seq)
        .collect();
    let retained = seqs(journal.points());
    assert_eq!(dropped.len() + retained.len(), 12);
    assert!(
        dropped.iter().all(|d| retained.iter().all(|r| d < r)),
        "the oldest go first"
    );
    for seq in &retained {
        assert_point(&journal, *seq, &copies[seq]);
    }

    // One point larger than the cap: every other point goes, the latest stays.
    let big = vec![(0, vec![9u8; 4 * MIB as usize])];
    apply(&mut image, &big);
    let committed = write_point(&mut journal, &big, 13_000);
    assert_eq!(seqs(journal.points()), vec![13]);
    assert_eq!(committed.alarms.len(), retained.len());
    assert_point(&journal, 13, &image);
}
