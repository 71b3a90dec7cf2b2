//! Continuous replication to the cloud (the protection that follows a
//! commit, S3): cycles from the on-premises VM's snapshots into its cloud
//! replica disks through the lab adapters, each point a blob snapshot of the
//! replica that holds exactly the site's disk at the cycle; quiesced points
//! when the guest's tools run; no VM snapshot left behind; failover to an
//! older point copies its snapshots back.

use homeward::demo::{self, CycleLab, DemoLab, Stage};
use homeward::plugin::adapter::{Access, DiskLocator};
use homeward::store::{Direction, JobRecord, JobState, PointKind, RecoveryPoint, Store};
use homeward::workflow::{FailoverParams, PointChoice, ReplicateParams};
use std::path::{Path, PathBuf};
use std::sync::Arc;

struct Lab {
    _dir: tempfile::TempDir,
    lab: DemoLab,
    rt: tokio::runtime::Runtime,
}

/// The demo lab with `web01` protected to the cloud (its first sync done).
fn protected() -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let lab = DemoLab::create(dir.path()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    {
        let _guard = rt.enter();
        lab.orchestrator.start().unwrap();
    }
    for job in rt.block_on(lab.run_stage(Stage::Protect)).unwrap() {
        assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    }
    Lab { _dir: dir, lab, rt }
}

impl Lab {
    fn store(&self) -> &Arc<Store> {
        self.lab.store()
    }

    fn cycle(&self, app_consistent: bool) -> JobRecord {
        let job = self
            .lab
            .orchestrator
            .replicate(&ReplicateParams {
                item: Some(demo::VM.into()),
                group: None,
                app_consistent,
            })
            .unwrap();
        let record = self
            .rt
            .block_on(self.lab.orchestrator.scheduler().wait(job))
            .unwrap();
        assert_eq!(record.state, JobState::Succeeded, "{:?}", record.error);
        record
    }

    fn point_of(&self, job: &JobRecord) -> RecoveryPoint {
        let out = &job
            .steps
            .iter()
            .find(|s| s.name == "record")
            .unwrap()
            .output;
        let id = out["points"][0]["point"].as_i64().unwrap();
        self.store().point(id).unwrap()
    }

    /// The on-premises data disk's bytes now.
    fn onprem_data(&self) -> Vec<u8> {
        read_all(&self.lab.onprem_disks().unwrap()[1])
    }

    fn write_onprem_data(&self, offset: u64, byte: u8) {
        let disk = homeward::disk::open(&self.lab.onprem_disks().unwrap()[1], true, None).unwrap();
        disk.write_at(&vec![byte; 1 << 20], offset).unwrap();
        disk.flush().unwrap();
    }

    /// The bytes of the cloud replica data disk at `snapshot`.
    fn replica_snapshot(&self, snapshot: &str) -> Vec<u8> {
        let item = self.store().item(demo::VM).unwrap();
        let site = self.store().site("cloud").unwrap();
        let mut cloud = self.lab.orchestrator.env().adapter(&site).unwrap();
        let id = item.disks[1].replica_disk_id.clone().unwrap();
        let disk = cloud
            .cloud_disk_endpoint(&format!("{id}@{snapshot}"), Access::Read)
            .unwrap();
        let DiskLocator::LocalPath(path) = disk.locator else {
            panic!("lab snapshots are files")
        };
        read_all(Path::new(&path))
    }

    fn onprem_snapshots(&self) -> usize {
        let item = self.store().item(demo::VM).unwrap();
        let inventory = self.lab.orchestrator.discover("onprem").unwrap();
        inventory
            .vms
            .iter()
            .find(|v| v.id == item.source.vm_id)
            .unwrap()
            .snapshots
            .len()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.rt.block_on(self.lab.orchestrator.shutdown());
    }
}

fn read_all(path: &Path) -> Vec<u8> {
    let disk = homeward::disk::open(path, false, None).unwrap();
    let mut bytes = vec![0u8; usize::try_from(disk.capacity()).unwrap()];
    disk.read_at(&mut bytes, 0).unwrap();
    bytes
}

#[test]
fn cycles_to_the_cloud_record_exact_points_and_leave_no_vm_snapshot() {
    let lab = protected();
    let store = lab.store().clone();
    let item = store.item(demo::VM).unwrap();
    let first_sync = store.points(item.id).unwrap();
    assert_eq!(first_sync.len(), 1, "the reprotect's point");

    lab.write_onprem_data(1 << 20, 0xA1);
    let one = lab.cycle(false);
    let names: Vec<&str> = one.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["snapshot", "sync-0", "sync-1", "record"]);
    let copy_one = lab.onprem_data();

    lab.write_onprem_data(3 << 20, 0xB2);
    let two = lab.cycle(true);
    let copy_two = lab.onprem_data();

    let (p1, p2) = (lab.point_of(&one), lab.point_of(&two));
    for p in [&p1, &p2] {
        assert_eq!(p.direction, Direction::ToCloud);
        assert!(
            p.disks.iter().all(|d| !d.snapshot_id.is_empty()
                && d.change_method.as_deref() == Some("digest-compare"))
        );
    }
    // The lab's web01 runs with its tools: the asked-for quiesce happened.
    assert_eq!(p1.kind, PointKind::CrashConsistent);
    assert_eq!(p2.kind, PointKind::AppConsistent);
    // Each point's blob snapshot holds the site's disk at its cycle.
    assert!(lab.replica_snapshot(&p1.disks[1].snapshot_id) == copy_one);
    assert!(lab.replica_snapshot(&p2.disks[1].snapshot_id) == copy_two);
    assert!(copy_one != copy_two);
    // Only what changed moved the second time (1 MiB of a 8 MiB disk, in
    // 1 MiB blocks).
    let sync1 = &two
        .steps
        .iter()
        .find(|s| s.name == "sync-1")
        .unwrap()
        .output;
    assert_eq!(sync1["blocks_sent"], 1, "{sync1}");
    // No VM snapshot stays (S13), and the reprotect's point, overwritten,
    // is gone.
    assert_eq!(lab.onprem_snapshots(), 0);
    let ids: Vec<i64> = store
        .points(item.id)
        .unwrap()
        .iter()
        .map(|p| p.id)
        .collect();
    assert!(!ids.contains(&first_sync[0].id), "{ids:?}");
    assert!(ids.contains(&p1.id) && ids.contains(&p2.id), "{ids:?}");

    // Tools stopped: the asked-for quiesce cannot happen; the point is
    // crash-consistent and the log says why.
    lab.lab
        .site
        .update_vm(&item.source.vm_id, |vm| vm.tools_installed = false)
        .unwrap();
    let three = lab.cycle(true);
    assert_eq!(lab.point_of(&three).kind, PointKind::CrashConsistent);
    let events = store.events(three.id, 0).unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.message.contains("crash-consistent point") && e.message.contains("tools")),
        "{events:?}"
    );
    assert_eq!(lab.onprem_snapshots(), 0);

    // Failing over to the cloud at the first point copies its snapshots
    // back over the replica, which then holds exactly that point.
    let job = lab
        .lab
        .orchestrator
        .failover(&FailoverParams {
            plan: demo::PLAN.into(),
            direction: Direction::ToCloud,
            point: PointChoice::Id(p1.id),
            planned: false,
            confirm: true,
            network: Some(lab.lab.cloud_subnet()),
        })
        .unwrap();
    let record = lab
        .rt
        .block_on(lab.lab.orchestrator.scheduler().wait(job))
        .unwrap();
    assert_eq!(record.state, JobState::Succeeded, "{:?}", record.error);
    let replica: PathBuf = lab.lab.cloud_disk("web01-data0");
    assert!(read_all(&replica) == copy_one, "the replica holds point 1");
}

#[test]
fn retention_drops_old_cloud_points_with_their_snapshots() {
    let lab = protected();
    let store = lab.store().clone();
    let item = store.item(demo::VM).unwrap();
    let mut settings = store.group(&item.group).unwrap().settings;
    settings.journal.max_points = Some(2);
    store.set_group_settings(&item.group, &settings).unwrap();
    let mut points = Vec::new();
    for i in 0..4u8 {
        lab.write_onprem_data(u64::from(i) << 20, 0x10 + i);
        points.push(lab.point_of(&lab.cycle(false)));
    }
    let kept: Vec<i64> = store
        .points(item.id)
        .unwrap()
        .iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(kept.contains(&points[2].id) && kept.contains(&points[3].id));
    // A dropped point's blob snapshots are gone from the cloud.
    let site = store.site("cloud").unwrap();
    let mut cloud = lab.lab.orchestrator.env().adapter(&site).unwrap();
    let id = item.disks[1].replica_disk_id.clone().unwrap();
    let dropped = &points[0].disks[1].snapshot_id;
    assert!(
        cloud
            .cloud_disk_endpoint(&format!("{id}@{dropped}"), Access::Read)
            .is_err()
    );
    let retained = &points[3].disks[1].snapshot_id;
    assert!(
        cloud
            .cloud_disk_endpoint(&format!("{id}@{retained}"), Access::Read)
            .is_ok()
    );
}
