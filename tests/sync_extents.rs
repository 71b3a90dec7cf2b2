//! Continuous replication through the data path: a cycle's changed extents,
//! read from a frozen snapshot (a fixed VHD like the lab cloud's), shipped
//! to the master target and written into the replica as a recovery point of
//! its journal. Every point must read back as the snapshot it came from; a
//! corrupt extent is rejected (never written) and sent again; a stream that
//! breaks before the commit leaves no point; the digest fallback finds
//! exactly the blocks that differ.

use homeward::disk::BlockDevice;
use homeward::disk::image::{self, ImageFormat};
use homeward::journal::{Journal, JournalOptions, NewPointMeta};
use homeward::sync::extents::{
    self, ExtentShipment, FaultInjection, ShipOptions, ShipOutcome, differing_ranges,
};
use homeward::sync::point_target::PointJournalService;
use homeward::sync::proto::point_journal_client::PointJournalClient;
use homeward::sync::proto::point_journal_server::PointJournalServer;
use homeward::sync::proto::{
    Encoding, ExtentBlock, JournalRef, PointCommit, PointMessage, PointOpen, point_event,
    point_message,
};
use homeward::sync::transport::{self, MAX_MESSAGE, Security};
use homeward::sync::{DiskEndpoint, PROTOCOL_VERSION, SyncError};
use homeward_tests::images::Xorshift;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::watch;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const T0: u64 = 1_700_000_000_000;

/// A lab-cloud-like disk: a fixed VHD that changes, and frozen snapshots
/// of it (copies of the file, as the lab cloud makes them).
struct CloudDisk {
    dir: PathBuf,
    disk: PathBuf,
    device: Box<dyn BlockDevice>,
    capacity: u64,
    rng: Xorshift,
    snapshots: usize,
}

impl CloudDisk {
    fn new(dir: &Path, capacity: u64, seed: u64) -> Self {
        let disk = dir.join("cloud").join("web01-os.vhd");
        std::fs::create_dir_all(disk.parent().unwrap()).unwrap();
        let device = image::create(&disk, ImageFormat::VhdFixed, capacity).unwrap();
        let mut rng = Xorshift::new(seed);
        let mut data = vec![0u8; capacity as usize];
        rng.fill(&mut data);
        device.write_at(&data, 0).unwrap();
        device.flush().unwrap();
        CloudDisk {
            dir: dir.to_path_buf(),
            disk,
            device,
            capacity,
            rng,
            snapshots: 0,
        }
    }

    fn below(&mut self, n: u64) -> u64 {
        self.rng.next_u64() % n
    }

    /// Writes `count` random extents (unaligned, 1 byte to `max_len`, one in
    /// four all zeros); returns the changed ranges, sorted and merged.
    fn change(&mut self, count: usize, max_len: u64) -> Vec<Range<u64>> {
        let mut ranges = Vec::new();
        for i in 0..count {
            let len = 1 + self.below(max_len);
            let start = self.below(self.capacity - len);
            let mut data = vec![0u8; len as usize];
            if i % 4 != 3 {
                self.rng.fill(&mut data);
            }
            self.device.write_at(&data, start).unwrap();
            ranges.push(start..start + len);
        }
        self.device.flush().unwrap();
        merge(ranges)
    }

    /// Writes random bytes over `range`.
    fn overwrite(&mut self, range: Range<u64>) -> Vec<Range<u64>> {
        let mut data = vec![0u8; (range.end - range.start) as usize];
        self.rng.fill(&mut data);
        self.device.write_at(&data, range.start).unwrap();
        self.device.flush().unwrap();
        vec![range]
    }

    /// A frozen copy of the disk, as a snapshot endpoint.
    fn snapshot(&mut self) -> PathBuf {
        self.snapshots += 1;
        let path = self
            .dir
            .join("cloud")
            .join(format!("web01-os@snap{}.vhd", self.snapshots));
        std::fs::copy(&self.disk, &path).unwrap();
        path
    }

    fn bytes(&self) -> Vec<u8> {
        read_all(self.device.as_ref())
    }
}

fn merge(mut ranges: Vec<Range<u64>>) -> Vec<Range<u64>> {
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<u64>> = Vec::new();
    for r in ranges {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    merged
}

fn read_all(device: &dyn BlockDevice) -> Vec<u8> {
    let mut data = vec![0u8; device.capacity() as usize];
    device.read_at(&mut data, 0).unwrap();
    data
}

/// The master target's side: the replica (a raw copy made by the first
/// sync) and its journal directory.
struct MasterTarget {
    replica: PathBuf,
    journal_dir: PathBuf,
}

impl MasterTarget {
    fn new(dir: &Path, first_sync: &[u8]) -> Self {
        let root = dir.join("mt");
        std::fs::create_dir_all(&root).unwrap();
        let replica = root.join("web01-os-replica.img");
        let device = image::create(&replica, ImageFormat::Raw, first_sync.len() as u64).unwrap();
        device.write_at(first_sync, 0).unwrap();
        device.flush().unwrap();
        MasterTarget {
            replica,
            journal_dir: root.join("web01-os.journal"),
        }
    }

    fn shipment(&self, snapshot: &Path, ranges: Vec<Range<u64>>, cycle: u64) -> ExtentShipment {
        ExtentShipment {
            source: DiskEndpoint::Path(snapshot.to_path_buf()),
            ranges,
            replica: self.replica.clone(),
            journal_dir: self.journal_dir.clone(),
            point: NewPointMeta {
                taken_at: T0 + cycle * 30_000,
                app_consistent: cycle.is_multiple_of(3),
                consistency_id: Some(format!("cycle-{cycle}")),
                label: format!("cycle {cycle}"),
            },
            block_size: 256 * KIB as usize,
        }
    }

    fn open(&self) -> Journal {
        let replica: Arc<dyn BlockDevice> =
            Arc::from(image::open(&self.replica, true, None).unwrap());
        Journal::open(&self.journal_dir, replica, JournalOptions::default())
            .unwrap()
            .0
    }

    /// Every saved copy must be what its point reads back as.
    fn assert_points(&self, copies: &[(u64, Vec<u8>)]) {
        let journal = self.open();
        let seqs: Vec<u64> = journal.points().iter().map(|p| p.seq).collect();
        assert_eq!(seqs, copies.iter().map(|(s, _)| *s).collect::<Vec<_>>());
        for (seq, copy) in copies {
            let view = journal.view(*seq).unwrap();
            assert!(
                read_all(&view) == *copy,
                "point {seq} differs from the snapshot it was shipped from"
            );
        }
        let replica = image::open(&self.replica, false, None).unwrap();
        assert!(
            read_all(replica.as_ref()) == copies.last().unwrap().1,
            "the replica holds the latest point"
        );
    }
}

async fn ship(s: ExtentShipment, options: ShipOptions) -> Result<ShipOutcome, SyncError> {
    let (progress, _) = watch::channel(Default::default());
    extents::ship_local_with(s, JournalOptions::default(), options, progress).await
}

#[tokio::test(flavor = "multi_thread")]
async fn every_cycle_point_reads_back_as_the_snapshot_it_was_shipped_from() {
    let dir = tempfile::tempdir().unwrap();
    let mut disk = CloudDisk::new(dir.path(), 16 * MIB, 1);
    let mt = MasterTarget::new(dir.path(), &disk.bytes());
    let mut copies = Vec::new();
    // The first point records what the first sync left: nothing to ship.
    let snapshot = disk.snapshot();
    let (progress, _) = watch::channel(Default::default());
    let first = extents::ship_local(
        mt.shipment(&snapshot, Vec::new(), 0),
        JournalOptions::default(),
        progress,
    )
    .await
    .unwrap();
    assert_eq!(
        (first.point.seq, first.bytes_changed, first.blocks_sent),
        (1, 0, 0)
    );
    copies.push((first.point.seq, disk.bytes()));
    // Changes made after a snapshot belong to the next cycle.
    let mut carried: Vec<Range<u64>> = Vec::new();
    for cycle in 1..=5u64 {
        let mut ranges = disk.change(12, 700 * KIB);
        ranges.append(&mut carried);
        let ranges = merge(ranges);
        let snapshot = disk.snapshot();
        let at_snapshot = disk.bytes();
        // The disk goes on changing while the cycle ships: the point must not see it.
        carried = disk.change(3, 64 * KIB);
        let changed: u64 = ranges.iter().map(|r| r.end - r.start).sum();
        let outcome = ship(
            mt.shipment(&snapshot, ranges, cycle),
            ShipOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(outcome.point.seq, cycle + 1);
        assert_eq!(outcome.bytes_changed, changed);
        assert_eq!(outcome.blocks_rejected, 0);
        assert_eq!(outcome.point.taken_at, T0 + cycle * 30_000);
        assert_eq!(outcome.point.app_consistent, cycle.is_multiple_of(3));
        assert_eq!(
            outcome.point.consistency_id.as_deref(),
            Some(format!("cycle-{cycle}").as_str())
        );
        assert!(outcome.pruned.is_empty() && outcome.alarms.is_empty());
        // Zero extents travel as holes, so less goes on the wire than changed.
        assert!(
            outcome.bytes_sent < changed,
            "{} sent for {changed} changed",
            outcome.bytes_sent
        );
        copies.push((outcome.point.seq, at_snapshot));
    }
    mt.assert_points(&copies);
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupted_extents_are_rejected_and_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut disk = CloudDisk::new(dir.path(), 8 * MIB, 2);
    let mt = MasterTarget::new(dir.path(), &disk.bytes());
    let snapshot = disk.snapshot();
    let first = ship(
        mt.shipment(&snapshot, Vec::new(), 0),
        ShipOptions::default(),
    )
    .await
    .unwrap();
    let mut copies = vec![(first.point.seq, disk.bytes())];
    let ranges = disk.change(10, 400 * KIB);
    let snapshot = disk.snapshot();
    let options = ShipOptions {
        faults: FaultInjection {
            corrupt_first_sends: 4,
            ..FaultInjection::default()
        },
        ..ShipOptions::default()
    };
    let extents_count: u64 = ranges
        .iter()
        .map(|r| (r.end - r.start).div_ceil(256 * KIB))
        .sum();
    let outcome = ship(mt.shipment(&snapshot, ranges, 1), options)
        .await
        .unwrap();
    assert_eq!(outcome.blocks_rejected, 4);
    assert_eq!(outcome.blocks_sent, extents_count + 4);
    copies.push((outcome.point.seq, disk.bytes()));
    mt.assert_points(&copies);
}

/// More than the journal's 32 MiB write batch, so the replica itself is
/// written before the stream breaks and must be undone.
const BIG_CHANGE: Range<u64> = 4 * MIB..44 * MIB;

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_broken_before_the_commit_leaves_the_replica_at_the_previous_point() {
    let dir = tempfile::tempdir().unwrap();
    let mut disk = CloudDisk::new(dir.path(), 48 * MIB, 3);
    let mt = MasterTarget::new(dir.path(), &disk.bytes());
    let snapshot = disk.snapshot();
    let first = ship(
        mt.shipment(&snapshot, Vec::new(), 0),
        ShipOptions::default(),
    )
    .await
    .unwrap();
    let mut copies = vec![(first.point.seq, disk.bytes())];
    let ranges = disk.overwrite(BIG_CHANGE);
    let snapshot = disk.snapshot();
    let mut shipment = mt.shipment(&snapshot, ranges, 1);
    shipment.block_size = MIB as usize;
    let broken = ShipOptions {
        faults: FaultInjection {
            break_after_accepted: Some(36),
            ..FaultInjection::default()
        },
        ..ShipOptions::default()
    };
    let err = ship(shipment.clone(), broken).await.unwrap_err();
    assert!(err.to_string().contains("fault injection"), "{err}");
    // The replica is back at the first point, and the journal has no other.
    mt.assert_points(&copies);
    // The cycle runs again from the same snapshot.
    let again = ship(shipment, ShipOptions::default()).await.unwrap();
    assert!(again.point.seq > first.point.seq);
    copies.push((again.point.seq, disk.bytes()));
    mt.assert_points(&copies);
}

#[test]
#[ignore = "entry point of child processes, run by the other tests"]
fn child_entry() {
    homeward_tests::child::entry();
}

/// The master target is killed (`kill -9`) in the middle of a point, after
/// it wrote part of it into the replica: the next open of the journal
/// undoes the uncommitted point, and the cycle then ships again.
#[tokio::test(flavor = "multi_thread")]
async fn a_master_target_killed_mid_point_is_rolled_back_on_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut disk = CloudDisk::new(dir.path(), 48 * MIB, 7);
    let mt = MasterTarget::new(dir.path(), &disk.bytes());
    let (mut child, url) = homeward_tests::child::master_target(&dir.path().join("mt"), &[]);
    let remote = |s: ExtentShipment, options: ShipOptions| {
        let url = url.clone();
        async move {
            let (progress, _) = watch::channel(Default::default());
            extents::ship(
                &url,
                &Security::PlaintextLoopback,
                &s,
                &JournalOptions::default(),
                &[],
                &options,
                progress,
            )
            .await
        }
    };
    let snapshot = disk.snapshot();
    let first = remote(
        mt.shipment(&snapshot, Vec::new(), 0),
        ShipOptions::default(),
    )
    .await
    .unwrap();
    let copies = vec![(first.point.seq, disk.bytes())];
    let listed = extents::list_points(
        &url,
        &Security::PlaintextLoopback,
        &mt.replica,
        &mt.journal_dir,
    )
    .await
    .unwrap();
    assert_eq!(listed, vec![first.point.clone()]);

    let ranges = disk.overwrite(BIG_CHANGE);
    let snapshot = disk.snapshot();
    let mut shipment = mt.shipment(&snapshot, ranges, 1);
    shipment.block_size = MIB as usize;
    let stalled = Arc::new(tokio::sync::Notify::new());
    let options = ShipOptions {
        faults: FaultInjection {
            stall_after_accepted: Some((36, stalled.clone())),
            ..FaultInjection::default()
        },
        ..ShipOptions::default()
    };
    let shipping = tokio::spawn(remote(shipment.clone(), options));
    stalled.notified().await;
    child.kill9();
    assert!(
        shipping.await.unwrap().is_err(),
        "a killed master target fails the cycle"
    );
    // The kill left part of the point in the replica.
    let replica = image::open(&mt.replica, false, None).unwrap();
    assert!(
        read_all(replica.as_ref()) != copies[0].1,
        "the replica was written before the kill"
    );
    drop(replica);

    let replica: Arc<dyn BlockDevice> = Arc::from(image::open(&mt.replica, true, None).unwrap());
    let (journal, recovered) =
        Journal::open(&mt.journal_dir, replica, JournalOptions::default()).unwrap();
    let undone = recovered
        .undone_point
        .expect("the uncommitted point is undone on open");
    assert_eq!(undone.seq, first.point.seq + 1);
    assert!(undone.bytes >= 32 * MIB, "{undone:?}");
    drop(journal);
    mt.assert_points(&copies);

    // A new master target takes the cycle again.
    let (_child, url) = homeward_tests::child::master_target(&dir.path().join("mt"), &[]);
    let (progress, _) = watch::channel(Default::default());
    let again = extents::ship(
        &url,
        &Security::PlaintextLoopback,
        &shipment,
        &JournalOptions::default(),
        &[],
        &ShipOptions::default(),
        progress,
    )
    .await
    .unwrap();
    let mut copies = copies;
    copies.push((again.point.seq, disk.bytes()));
    mt.assert_points(&copies);
}

/// A `PointJournal` service on loopback, spoken to with the raw client.
async fn point_journal(root: &Path) -> PointJournalClient<tonic::transport::Channel> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = transport::server(addr, &Security::PlaintextLoopback)
        .unwrap()
        .add_service(
            PointJournalServer::new(PointJournalService::new(vec![root.to_path_buf()]))
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
        )
        .serve_with_incoming(transport::incoming(listener));
    tokio::spawn(server);
    let channel = transport::connect(&format!("http://{addr}"), &Security::PlaintextLoopback)
        .await
        .unwrap();
    PointJournalClient::new(channel)
}

fn message(m: point_message::Message) -> PointMessage {
    PointMessage { message: Some(m) }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_extent_is_never_written_and_points_list_and_roll_back_remotely() {
    let dir = tempfile::tempdir().unwrap();
    let disk = CloudDisk::new(dir.path(), 4 * MIB, 4);
    let before = disk.bytes();
    let mt = MasterTarget::new(dir.path(), &before);
    let mut client = point_journal(&dir.path().join("mt")).await;
    let journal = JournalRef {
        replica_path: mt.replica.display().to_string(),
        journal_dir: mt.journal_dir.display().to_string(),
    };
    let open = PointOpen {
        protocol_version: PROTOCOL_VERSION,
        journal: Some(journal.clone()),
        capacity: 4 * MIB,
        compression: Vec::new(),
        retention: None,
    };
    // Point 1: one good extent. Point 2: one corrupt extent, then a commit
    // of zero extents: the corrupt bytes must not be in it.
    let good = vec![0xabu8; 4096];
    let sent = vec![0xcdu8; 4096];
    for (seq, (data, digest_of)) in [(&good, &good), (&sent, &good)].into_iter().enumerate() {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.send(message(point_message::Message::Open(open.clone())))
            .await
            .unwrap();
        let mut events = client
            .apply_point(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        tx.send(message(point_message::Message::Block(ExtentBlock {
            offset: MIB + 100,
            length: 4096,
            encoding: Encoding::Raw as i32,
            strong_digest: homeward::sync::digest::strong(digest_of).to_vec(),
            payload: data.clone(),
        })))
        .await
        .unwrap();
        let mut written = 0;
        loop {
            match events.message().await.unwrap().unwrap().event.unwrap() {
                point_event::Event::Opened(o) => assert_eq!(o.seq, seq as u64 + 1),
                point_event::Event::Accepted(_) => {
                    written = 1;
                    break;
                }
                point_event::Event::Rejected(r) => {
                    assert_eq!(r.offset, MIB + 100);
                    assert!(r.reason.contains("BLAKE3"), "{}", r.reason);
                    break;
                }
                point_event::Event::Committed(_) => panic!("committed before the commit"),
            }
        }
        assert_eq!(
            written,
            1 - seq as u64,
            "the good extent is written, the corrupt one is not"
        );
        tx.send(message(point_message::Message::Commit(PointCommit {
            taken_at: T0 + seq as u64,
            blocks: written,
            ..PointCommit::default()
        })))
        .await
        .unwrap();
        match events.message().await.unwrap().unwrap().event.unwrap() {
            point_event::Event::Committed(c) => assert_eq!(c.point.unwrap().seq, seq as u64 + 1),
            other => panic!("expected the commit, got {other:?}"),
        }
    }
    let replica = image::open(&mt.replica, false, None).unwrap();
    let mut at = vec![0u8; 4096];
    replica.read_at(&mut at, MIB + 100).unwrap();
    assert!(
        at == good,
        "the replica holds the verified bytes, not the corrupt ones"
    );

    let listed = client
        .list_points(journal.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed.points.iter().map(|p| p.seq).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(
        listed.points[0].digest, listed.points[1].digest,
        "point 2 changed nothing"
    );
    // Roll back to point 1 and back again is a no-op on content; a missing
    // point is refused.
    let refused = client
        .rollback(homeward::sync::proto::RollbackRequest {
            journal: Some(journal.clone()),
            seq: 9,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::NotFound, "{refused}");
    let rolled = client
        .rollback(homeward::sync::proto::RollbackRequest {
            journal: Some(journal.clone()),
            seq: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        rolled.points.iter().map(|p| p.seq).collect::<Vec<_>>(),
        vec![1]
    );
    // A replica outside the roots is refused before anything is opened.
    let outside = client
        .list_points(JournalRef {
            replica_path: dir.path().join("cloud/web01-os.vhd").display().to_string(),
            journal_dir: mt.journal_dir.display().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(outside.code(), tonic::Code::PermissionDenied, "{outside}");
}

#[tokio::test(flavor = "multi_thread")]
async fn differing_ranges_finds_exactly_the_changed_blocks() {
    let dir = tempfile::tempdir().unwrap();
    // Not a whole number of blocks: the last block is short.
    let capacity = 8 * MIB + 3 * 512;
    let mut disk = CloudDisk::new(dir.path(), capacity, 5);
    let mt = MasterTarget::new(dir.path(), &disk.bytes());
    let bs = 512 * KIB;
    let snapshot = disk.snapshot();
    let same = differing_ranges(&DiskEndpoint::Path(snapshot), &mt.replica, bs as usize)
        .await
        .unwrap();
    assert!(same.is_empty(), "{same:?}");
    // One byte in block 0, a write across blocks 5 and 6, one in the last block.
    for (offset, len) in [(10, 1), (5 * bs + bs - 3, 6), (capacity - 1, 1)] {
        let mut byte = vec![0u8; len as usize];
        disk.device.read_at(&mut byte, offset).unwrap();
        for b in &mut byte {
            *b ^= 0xff;
        }
        disk.device.write_at(&byte, offset).unwrap();
    }
    disk.device.flush().unwrap();
    let snapshot = disk.snapshot();
    let found = differing_ranges(
        &DiskEndpoint::Path(snapshot.clone()),
        &mt.replica,
        bs as usize,
    )
    .await
    .unwrap();
    let last = capacity / bs * bs;
    assert_eq!(found, vec![0..bs, 5 * bs..7 * bs, last..capacity]);
    // Shipping what it found makes the replica equal to the snapshot.
    let outcome = ship(mt.shipment(&snapshot, found, 1), ShipOptions::default())
        .await
        .unwrap();
    assert_eq!(outcome.bytes_changed, bs + 2 * bs + (capacity - last));
    let after = differing_ranges(&DiskEndpoint::Path(snapshot), &mt.replica, bs as usize)
        .await
        .unwrap();
    assert!(after.is_empty(), "{after:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ranges_out_of_order_or_past_the_end_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut disk = CloudDisk::new(dir.path(), 2 * MIB, 6);
    let mt = MasterTarget::new(dir.path(), &disk.bytes());
    let snapshot = disk.snapshot();
    for ranges in [
        vec![100..200, 50..60],
        vec![0..10, 2 * MIB - 10..2 * MIB + 1],
    ] {
        let err = ship(mt.shipment(&snapshot, ranges, 1), ShipOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(err, SyncError::Config(_)), "{err}");
    }
    assert!(
        !mt.journal_dir.join("points.log").exists(),
        "no journal was written"
    );
}
