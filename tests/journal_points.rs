//! The master-target journal writing recovery points in cycles: every
//! retained point materializes to exactly the bytes the source had at that
//! point, rollback to an older point, views that refuse to go stale, and
//! the refusals of bad input.

mod journal_support;

use homeward::disk::BlockDevice;
use homeward::journal::{Journal, JournalError, JournalOptions, NewPointMeta};
use journal_support::*;
use std::time::Instant;

fn workload(capacity: u64, seed: u64) -> Workload {
    Workload {
        seed,
        capacity,
        extents: 12,
        max_len: 600 * KIB,
        align: 1,
        hot_percent: 40,
        hot: MIB,
    }
}

/// A writer changes a real source image in cycles; after each cycle the
/// test saves a copy of the source and ships the changed extents (read back
/// from the source) through the journal.
#[test]
fn every_retained_point_materializes_to_the_source_copy_saved_at_it() {
    let dir = tempfile::tempdir().unwrap();
    let capacity = 8 * MIB;
    let source = create_image(&dir.path().join("source.img"), capacity);
    let replica_path = dir.path().join("replica.img");
    let replica = create_image(&replica_path, capacity);
    let journal_dir = dir.path().join("journal");
    let (mut journal, recovered) =
        Journal::open(&journal_dir, replica.clone(), JournalOptions::default()).unwrap();
    assert!(recovered.created);
    let w = workload(capacity, 1);
    let mut copies = Vec::new();
    let t0 = 1_700_000_000_000;
    for cycle in 1..=10u64 {
        let changes = w.changes(cycle);
        for (offset, data) in &changes {
            source.write_at(data, *offset).unwrap();
        }
        // Ship what changed, as read from the source after the cycle.
        let shipped: Vec<(u64, Vec<u8>)> = changes
            .iter()
            .map(|(offset, data)| {
                let mut now = vec![0u8; data.len()];
                source.read_at(&mut now, *offset).unwrap();
                (*offset, now)
            })
            .collect();
        let committed = write_point(&mut journal, &shipped, t0 + cycle * 30_000);
        assert_eq!(committed.meta.seq, cycle);
        assert!(committed.pruned.is_empty() && committed.alarms.is_empty());
        copies.push((cycle, read_all(source.as_ref())));
    }
    assert_eq!(seqs(journal.points()), (1..=10).collect::<Vec<_>>());
    for (seq, copy) in &copies {
        assert_point(&journal, *seq, copy);
    }
    assert_eq!(
        read_all(replica.as_ref()),
        copies[9].1,
        "the replica holds the latest point"
    );

    // The same after closing and opening again.
    drop(journal);
    let replica = open_image(&replica_path);
    let (journal, recovered) =
        Journal::open(&journal_dir, replica, JournalOptions::default()).unwrap();
    assert_eq!(recovered.undone_point, None);
    assert_eq!(recovered.removed_files, 0);
    for (seq, copy) in &copies {
        assert_point(&journal, *seq, copy);
    }
}

#[test]
fn a_point_that_writes_the_same_bytes_twice_undoes_to_the_bytes_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let capacity = 4 * MIB;
    let replica = create_image(&dir.path().join("replica.img"), capacity);
    let (mut journal, _) = Journal::open(
        &dir.path().join("j"),
        replica.clone(),
        JournalOptions::default(),
    )
    .unwrap();
    let mut image = vec![0u8; capacity as usize];
    let first = vec![(100, vec![1u8; 5000]), (3 * MIB - 7, vec![2u8; 300])];
    apply(&mut image, &first);
    write_point(&mut journal, &first, 1);
    let copy1 = image.clone();
    // Overlapping writes inside one point, unaligned, across 1 MiB blocks.
    let second = vec![
        (50, vec![3u8; 200]),
        (120, vec![4u8; 10]),
        (MIB - 3, vec![5u8; 10]),
        (40, vec![6u8; 5100]),
    ];
    apply(&mut image, &second);
    write_point(&mut journal, &second, 2);
    assert_point(&journal, 1, &copy1);
    assert_point(&journal, 2, &image);
}

#[test]
fn rollback_to_an_older_point_restores_it_and_later_cycles_go_on_from_there() {
    let dir = tempfile::tempdir().unwrap();
    let capacity = 6 * MIB;
    let replica_path = dir.path().join("replica.img");
    let replica = create_image(&replica_path, capacity);
    let journal_dir = dir.path().join("journal");
    let (mut journal, _) =
        Journal::open(&journal_dir, replica.clone(), JournalOptions::default()).unwrap();
    let w = workload(capacity, 2);
    let mut image = vec![0u8; capacity as usize];
    let mut copies = std::collections::BTreeMap::new();
    for seq in 1..=6 {
        let changes = w.changes(seq);
        apply(&mut image, &changes);
        write_point(&mut journal, &changes, seq * 1000);
        copies.insert(seq, image.clone());
    }
    let views_before = journal.view(2).unwrap();
    journal.rollback_to(3).unwrap();
    assert_eq!(seqs(journal.points()), vec![1, 2, 3]);
    assert_eq!(read_all(replica.as_ref()), copies[&3]);
    let mut buf = [0u8; 16];
    let stale = views_before.read_at(&mut buf, 0).unwrap_err();
    assert!(stale.to_string().contains("make a new view"), "{stale}");
    for seq in 1..=3 {
        assert_point(&journal, seq, &copies[&seq]);
    }
    assert!(matches!(
        journal.view(5),
        Err(JournalError::NoSuchPoint { seq: 5, .. })
    ));

    // Cycles go on from point 3; sequence numbers are never reused.
    let mut image = copies[&3].clone();
    for cycle in 7..=9 {
        let changes = w.changes(cycle);
        apply(&mut image, &changes);
        let committed = write_point(&mut journal, &changes, cycle * 1000);
        assert_eq!(committed.meta.seq, cycle);
        copies.insert(cycle, image.clone());
    }
    assert_eq!(seqs(journal.points()), vec![1, 2, 3, 7, 8, 9]);
    drop(journal);
    let (journal, _) = Journal::open(
        &journal_dir,
        open_image(&replica_path),
        JournalOptions::default(),
    )
    .unwrap();
    for seq in [1, 2, 3, 7, 8, 9] {
        assert_point(&journal, seq, &copies[&seq]);
    }
    // Rolling back to the latest point changes nothing.
    let mut journal = journal;
    journal.rollback_to(9).unwrap();
    assert_eq!(seqs(journal.points()), vec![1, 2, 3, 7, 8, 9]);
}

#[test]
fn a_point_dropped_uncommitted_is_undone_and_the_journal_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let capacity = 4 * MIB;
    let replica = create_image(&dir.path().join("replica.img"), capacity);
    let (mut journal, _) = Journal::open(
        &dir.path().join("j"),
        replica.clone(),
        JournalOptions::default(),
    )
    .unwrap();
    let w = workload(capacity, 3);
    let mut image = vec![0u8; capacity as usize];
    let changes = w.changes(1);
    apply(&mut image, &changes);
    write_point(&mut journal, &changes, 1);
    let bytes = journal.bytes();
    {
        let mut writer = journal.begin().unwrap();
        for (offset, data) in w.changes(2) {
            writer.write(offset, &data).unwrap();
        }
        // Dropped without commit.
    }
    assert_eq!(read_all(replica.as_ref()), image);
    assert_eq!(journal.bytes(), bytes);
    assert_eq!(seqs(journal.points()), vec![1]);
    let changes = w.changes(3);
    apply(&mut image, &changes);
    assert_eq!(write_point(&mut journal, &changes, 3).meta.seq, 2);
    assert_point(&journal, 2, &image);
    let entries: Vec<_> = std::fs::read_dir(dir.path().join("j"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let segments = entries
        .iter()
        .filter(|n| n.to_string_lossy().ends_with(".undo"))
        .count();
    assert_eq!(segments, 1, "only point 2's undo set is kept: {entries:?}");
}

#[test]
fn bad_input_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let capacity = 2 * MIB;
    let replica_path = dir.path().join("replica.img");
    let replica = create_image(&replica_path, capacity);
    let journal_dir = dir.path().join("j");
    let (mut journal, _) =
        Journal::open(&journal_dir, replica.clone(), JournalOptions::default()).unwrap();

    // A second open of the same directory.
    let second = Journal::open(
        &journal_dir,
        open_image(&replica_path),
        JournalOptions::default(),
    );
    assert!(
        matches!(second, Err(JournalError::InUse { .. })),
        "{second:?}"
    );

    let mut writer = journal.begin().unwrap();
    let err = writer.write(capacity - 10, &[1u8; 11]).unwrap_err();
    assert!(matches!(err, JournalError::OutOfRange { .. }), "{err}");
    let err = writer
        .commit(NewPointMeta {
            label: "x".repeat(homeward::journal::MAX_LABEL + 1),
            ..NewPointMeta::default()
        })
        .unwrap_err();
    assert!(matches!(err, JournalError::InvalidMeta(_)), "{err}");
    assert!(journal.points().is_empty());
    assert_eq!(read_all(replica.as_ref()), vec![0u8; capacity as usize]);
    drop(journal);

    // A replica of another size.
    let other = create_image(&dir.path().join("other.img"), capacity * 2);
    let err = Journal::open(&journal_dir, other, JournalOptions::default()).unwrap_err();
    assert!(
        matches!(err, JournalError::CapacityMismatch { .. }),
        "{err}"
    );
    // A read-only replica.
    let read_only: std::sync::Arc<dyn BlockDevice> =
        std::sync::Arc::from(homeward::disk::open(&replica_path, false, None).unwrap());
    let err = Journal::open(&journal_dir, read_only, JournalOptions::default()).unwrap_err();
    assert!(matches!(err, JournalError::ReadOnly { .. }), "{err}");
}

/// Write throughput of 50 MiB of 1 MiB extents per point on a 2 GiB
/// replica, and view read speed. Prints figures; asserts only correctness.
#[test]
#[ignore = "benchmark: cargo test --release --test journal_points -- --ignored --nocapture"]
fn throughput_of_50_mib_points_on_a_2_gib_replica() {
    let dir = tempfile::tempdir().unwrap();
    let capacity = 2048 * MIB;
    let replica = create_image(&dir.path().join("replica.img"), capacity);
    let (mut journal, _) = Journal::open(
        &dir.path().join("j"),
        replica.clone(),
        JournalOptions::default(),
    )
    .unwrap();
    let mut rng = Rng::new(50);
    let mut data = vec![0u8; MIB as usize];
    rng.fill(&mut data);
    let started = Instant::now();
    let mut first_commit = None;
    let points = 4u64;
    for seq in 1..=points {
        let t = Instant::now();
        let mut writer = journal.begin().unwrap();
        for i in 0..50u64 {
            let block = rng.below(capacity / MIB);
            data[..8].copy_from_slice(&(seq * 1000 + i).to_le_bytes());
            writer.write(block * MIB, &data).unwrap();
        }
        writer
            .commit(NewPointMeta {
                taken_at: seq,
                ..NewPointMeta::default()
            })
            .unwrap();
        if seq == 1 {
            first_commit = Some(t.elapsed());
        }
    }
    let total = started.elapsed();
    let later = total - first_commit.unwrap_or_default();
    let mb = 50.0 * 1.048_576 * (points - 1) as f64;
    println!(
        "journal write: first point (full digest pass of 2 GiB) {:.2} s; next {} points of 50 MiB: {:.2} s, {:.0} MB/s ({:.2} s per point)",
        first_commit.unwrap_or_default().as_secs_f64(),
        points - 1,
        later.as_secs_f64(),
        mb / later.as_secs_f64(),
        later.as_secs_f64() / (points - 1) as f64
    );
    // View read: the oldest point, whose changed bytes come from undo
    // records, against reading the replica itself the same way.
    let read_secs = |device: &dyn BlockDevice| {
        let t = Instant::now();
        let mut buf = vec![0u8; 4 * MIB as usize];
        let mut read = 0u64;
        while read < capacity {
            device.read_at(&mut buf, read).unwrap();
            read += buf.len() as u64;
        }
        t.elapsed().as_secs_f64()
    };
    let view = journal.view(1).unwrap();
    // The first pass over a sparse replica fills the page cache (holes
    // included); time both on a warm cache.
    read_secs(replica.as_ref());
    let replica_secs = read_secs(replica.as_ref());
    let view_secs = read_secs(&view);
    println!(
        "journal view: point 1 of 2 GiB ({} MiB from undo records) read in {view_secs:.2} s, {:.0} MB/s; the replica itself: {replica_secs:.2} s, {:.0} MB/s",
        view.journal_bytes() / MIB,
        capacity as f64 / 1e6 / view_secs,
        capacity as f64 / 1e6 / replica_secs
    );
    assert_eq!(journal.points().len(), points as usize);
}
