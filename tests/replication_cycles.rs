//! Continuous replication (issue 8): replication cycles from the lab cloud
//! into the on-premises replicas' journals, checked byte for byte against
//! the cloud snapshots each point was taken from; retention and the size
//! cap; multi-VM consistency; failover to an older point; lost change
//! tracking; the RPO alert.
//!
//! Each test builds its own lab: cloud VMs (an ext4 guest root on the OS
//! disk, data on the data disk) protected to on-premises in `PG2_Failback`
//! and reprotected there (a new VM per item), so the journals start at the
//! initial sync.

use homeward::demo::{self, DemoLab};
use homeward::disk::BlockDevice;
use homeward::journal::{Journal, JournalOptions};
use homeward::lab::cloud::{LabCloud, LabVmSpec};
use homeward::lab::guest;
use homeward::lab::hypervisor::{self as lab_site, LabSite};
use homeward::plugin::adapter::{Access, DiskLocator};
use homeward::store::{
    ComponentRole, DatastoreMount, Direction, GroupSettings, JobRecord, JobState, JournalSettings,
    NewComponent, NewGroup, NewSite, PlanEntry, PointKind, RecoveryPoint, SiteKind,
};
use homeward::workflow::{
    DIGEST_RESYNC, FailoverParams, PointChoice, ReplicateParams, ReprotectParams, journal_dir,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const OS_DISK: u64 = demo::OS_DISK;
const DATA_DISK: u64 = 8 << 20;
const GROUP: &str = "PG2_Failback";
const PLAN: &str = "RP2";

struct Lab {
    _dir: tempfile::TempDir,
    root: PathBuf,
    lab: DemoLab,
    rt: tokio::runtime::Runtime,
    vms: Vec<String>,
    /// Each recorded point's bytes per disk, copied from its cloud snapshot
    /// right after its cycle (the next cycle deletes the snapshot).
    copies: HashMap<(i64, u32), Vec<u8>>,
}

/// A lab with `vms` cloud VMs protected to on-premises and reprotected there.
fn lab(vms: usize, settings: GroupSettings) -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    LabSite::create(&root.join("site")).unwrap();
    let cloud = LabCloud::create(&root.join("cloud")).unwrap();
    let mut names = Vec::new();
    for i in 0..vms {
        let name = format!("app{i}");
        let vm = cloud
            .add_vm(&LabVmSpec::new(&name, &[OS_DISK, DATA_DISK]))
            .unwrap();
        let os = homeward::disk::open(&vm.disks[0].path, true, None).unwrap();
        guest::write_guest_disk(os.as_ref()).unwrap();
        os.flush().unwrap();
        let data = homeward::disk::open(&vm.disks[1].path, true, None).unwrap();
        demo::write_pattern(data.as_ref(), 2 << 20, 10 + i as u64).unwrap();
        data.flush().unwrap();
        names.push(name);
    }
    let lab = DemoLab::open(&root).unwrap();
    let store = lab.store().clone();
    store
        .add_site(&NewSite {
            name: "onprem".into(),
            kind: SiteKind::OnPremises,
            plugin: "lab-hypervisor".into(),
        })
        .unwrap();
    store
        .add_site(&NewSite {
            name: "cloud".into(),
            kind: SiteKind::Cloud,
            plugin: "lab-cloud".into(),
        })
        .unwrap();
    let inventory = lab.orchestrator.discover("onprem").unwrap();
    let host = inventory
        .hosts
        .iter()
        .find(|h| h.name == "esx-01")
        .unwrap()
        .id
        .clone();
    let mt_vm = inventory
        .vms
        .iter()
        .find(|v| v.name == lab_site::MASTER_TARGET_NAME)
        .unwrap()
        .id
        .clone();
    let mounts = lab
        .site
        .datastore_mounts()
        .unwrap()
        .into_iter()
        .map(|(datastore, path)| DatastoreMount { datastore, path })
        .collect();
    lab.orchestrator
        .register_component(&NewComponent {
            name: "mt-01".into(),
            role: ComponentRole::MasterTarget,
            site: "onprem".into(),
            address: "local".into(),
            host_id: Some(host),
            vm_id: Some(mt_vm),
            datastore_mounts: mounts,
        })
        .unwrap();
    lab.orchestrator
        .register_component(&NewComponent {
            name: "ps-01".into(),
            role: ComponentRole::ProcessServer,
            site: "cloud".into(),
            address: "local".into(),
            host_id: None,
            vm_id: None,
            datastore_mounts: Vec::new(),
        })
        .unwrap();
    let settings = GroupSettings {
        master_target: Some("mt-01".into()),
        process_server: Some("ps-01".into()),
        account: Some(lab_site::ADMIN_USER.into()),
        datastore: Some("ds1".into()),
        ..settings
    };
    store
        .create_group(&NewGroup {
            name: "PG2".into(),
            direction: Direction::ToCloud,
            settings: settings.clone(),
        })
        .unwrap();
    store.set_group_settings(GROUP, &settings).unwrap();
    store
        .create_plan(PLAN, &[PlanEntry::Group { name: GROUP.into() }])
        .unwrap();
    demo::wait_registered(&store, &["mt-01", "ps-01"]).unwrap();
    let ids: Vec<String> = names.iter().map(|n| cloud.vm_id(n)).collect();
    for item in lab.orchestrator.protect(GROUP, "cloud", &ids).unwrap() {
        // The on-premises VM the reprotect makes goes on the site's network.
        let nics = item
            .nics
            .iter()
            .map(|n| homeward::store::RecordedNic {
                network: Some("VM Network".into()),
                ..n.clone()
            })
            .collect();
        lab.orchestrator.record_nics(&item.name, nics).unwrap();
    }

    let rt = tokio::runtime::Runtime::new().unwrap();
    {
        let _guard = rt.enter();
        lab.orchestrator.start().unwrap();
    }
    let lab = Lab {
        _dir: dir,
        root,
        lab,
        rt,
        vms: names,
        copies: HashMap::new(),
    };
    // One at a time: the lab site's files take one writer.
    for vm in lab.vms.clone() {
        let job = lab
            .lab
            .orchestrator
            .reprotect(&ReprotectParams {
                item: vm,
                direction: Direction::ToOnPremises,
                group: None,
                master_target: Some("mt-01".into()),
                process_server: Some("ps-01".into()),
                account: Some(lab_site::ADMIN_USER.into()),
                datastore: Some("ds1".into()),
                retention_hours: None,
                allow_overwrite: false,
            })
            .unwrap();
        let record = lab.wait(job);
        assert_eq!(record.state, JobState::Succeeded, "{:?}", record.error);
    }
    lab
}

impl Lab {
    fn wait(&self, job: i64) -> JobRecord {
        self.rt
            .block_on(self.lab.orchestrator.scheduler().wait(job))
            .unwrap()
    }

    /// Runs one cycle to its end, then copies the snapshots of the points
    /// it recorded.
    fn cycle(&mut self, params: ReplicateParams) -> JobRecord {
        let job = self.lab.orchestrator.replicate(&params).unwrap();
        let record = self.wait(job);
        if record.state == JobState::Succeeded {
            let out = &record
                .steps
                .iter()
                .find(|s| s.name == "record")
                .unwrap()
                .output;
            for p in out["points"].as_array().unwrap() {
                let point = self
                    .lab
                    .store()
                    .point(p["point"].as_i64().unwrap())
                    .unwrap();
                self.copy_snapshots(p["item"].as_str().unwrap(), &point);
            }
        }
        record
    }

    fn item_cycle(&mut self, vm: &str) -> JobRecord {
        let record = self.cycle(ReplicateParams {
            item: Some(vm.into()),
            group: None,
            app_consistent: false,
        });
        assert_eq!(record.state, JobState::Succeeded, "{:?}", record.error);
        record
    }

    fn copy_snapshots(&mut self, item: &str, point: &RecoveryPoint) {
        let item = self.lab.store().item(item).unwrap();
        let site = self.lab.store().site("cloud").unwrap();
        let mut cloud = self.lab.orchestrator.env().adapter(&site).unwrap();
        for d in &point.disks {
            let disk = &item.disks[d.index as usize];
            let endpoint = cloud
                .cloud_disk_endpoint(
                    &format!("{}@{}", disk.source_disk_id, d.snapshot_id),
                    Access::Read,
                )
                .unwrap();
            let DiskLocator::LocalPath(path) = endpoint.locator else {
                panic!("lab snapshots are files")
            };
            self.copies
                .insert((point.id, d.index), read_all(&PathBuf::from(path)));
        }
    }

    /// Every store point of `vm` that has a copy materializes (journal
    /// view) to exactly the copy.
    fn check_points(&self, vm: &str) -> usize {
        let store = self.lab.store();
        let item = store.item(vm).unwrap();
        let mut checked = 0;
        for point in store.points(item.id).unwrap() {
            for d in &point.disks {
                let Some(copy) = self.copies.get(&(point.id, d.index)) else {
                    continue;
                };
                let replica =
                    PathBuf::from(item.disks[d.index as usize].replica_path.clone().unwrap());
                let view = view_bytes(&replica, d.journal_seq.unwrap());
                assert!(
                    view == *copy,
                    "point {} disk {} of {vm} differs from its snapshot",
                    point.id,
                    d.index
                );
                checked += 1;
            }
        }
        checked
    }

    fn journal_seqs(&self, vm: &str, disk: usize) -> Vec<u64> {
        let item = self.lab.store().item(vm).unwrap();
        let replica = PathBuf::from(item.disks[disk].replica_path.clone().unwrap());
        let (journal, _) = open_journal(&replica);
        journal.points().iter().map(|p| p.seq).collect()
    }

    fn store_seqs(&self, vm: &str, disk: u32) -> Vec<u64> {
        let store = self.lab.store();
        let item = store.item(vm).unwrap();
        let mut seqs: Vec<u64> = store
            .points(item.id)
            .unwrap()
            .iter()
            .filter(|p| p.direction == Direction::ToOnPremises)
            .filter_map(|p| {
                p.disks
                    .iter()
                    .find(|d| d.index == disk)
                    .and_then(|d| d.journal_seq)
            })
            .collect();
        seqs.sort();
        seqs
    }

    /// A thread that keeps writing 64 KiB extents into the VMs' data disks.
    fn writer(&self) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let root = self.root.join("cloud");
        let disks: Vec<String> = self.vms.iter().map(|v| format!("{v}-data0")).collect();
        let thread = std::thread::spawn(move || {
            let cloud = LabCloud::open(&root).unwrap();
            let mut state = 0x2545_F491_4F6C_DD1Du64;
            let mut writes = 0u64;
            while !flag.load(Ordering::SeqCst) {
                for disk in &disks {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let offset = (state % (DATA_DISK / 65536)) * 65536;
                    let byte = (state >> 32) as u8;
                    cloud.write_disk(disk, offset, &vec![byte; 65536]).unwrap();
                    writes += 1;
                }
                std::thread::sleep(Duration::from_millis(3));
            }
            writes
        });
        Writer {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.rt.block_on(self.lab.orchestrator.shutdown());
    }
}

struct Writer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Writer {
    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap()
    }
}

fn read_all(path: &Path) -> Vec<u8> {
    let device = homeward::disk::open(path, false, None).unwrap();
    let mut buf = vec![0u8; device.capacity() as usize];
    device.read_at(&mut buf, 0).unwrap();
    buf
}

fn open_journal(replica: &Path) -> (Journal, Arc<dyn BlockDevice>) {
    let device: Arc<dyn BlockDevice> =
        Arc::from(homeward::disk::open(replica, true, None).unwrap());
    let (journal, _) = Journal::open(
        &journal_dir(replica),
        device.clone(),
        JournalOptions::default(),
    )
    .unwrap();
    (journal, device)
}

fn view_bytes(replica: &Path, seq: u64) -> Vec<u8> {
    let (journal, _) = open_journal(replica);
    let view = journal.view(seq).unwrap();
    let mut buf = vec![0u8; view.capacity() as usize];
    view.read_at(&mut buf, 0).unwrap();
    buf
}

fn step_output<'a>(job: &'a JobRecord, name: &str) -> &'a serde_json::Value {
    &job.steps.iter().find(|s| s.name == name).unwrap().output
}

#[test]
fn cycles_under_writes_give_exact_points() {
    let mut lab = lab(1, GroupSettings::default());
    let writer = lab.writer();
    let mut methods = Vec::new();
    for _ in 0..4 {
        let job = lab.item_cycle("app0");
        methods.push(
            step_output(&job, "changes-1")["method"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(writer.stop() > 0);
    // The first cycle has no previous snapshot; the next ones use the
    // adapter's change tracking.
    assert_eq!(methods[0], DIGEST_RESYNC);
    assert!(
        methods[1..].iter().all(|m| m != DIGEST_RESYNC),
        "{methods:?}"
    );
    // 4 cycles × 2 disks, each point equal to its snapshot.
    assert_eq!(lab.check_points("app0"), 8);
    // The store and the journal hold the same points (base + 4 cycles).
    assert_eq!(lab.store_seqs("app0", 1), lab.journal_seqs("app0", 1));
    assert_eq!(lab.journal_seqs("app0", 1).len(), 5);
    // Only the newest snapshot is kept (the next cycle's base).
    let item = lab.lab.store().item("app0").unwrap();
    let newest = &lab.lab.store().points(item.id).unwrap()[0];
    assert!(
        item.state_detail.contains(&format!("point {}", newest.id)),
        "{}",
        item.state_detail
    );
}

#[test]
fn retention_prunes_and_the_store_follows() {
    let settings = GroupSettings {
        journal: JournalSettings {
            max_points: Some(3),
            ..JournalSettings::default()
        },
        ..GroupSettings::default()
    };
    let mut lab = lab(1, settings);
    let writer = lab.writer();
    for _ in 0..5 {
        lab.item_cycle("app0");
    }
    writer.stop();
    let journal = lab.journal_seqs("app0", 1);
    assert_eq!(journal.len(), 3, "{journal:?}");
    assert_eq!(lab.store_seqs("app0", 1), journal);
    assert_eq!(lab.store_seqs("app0", 0), lab.journal_seqs("app0", 0));
    assert_eq!(lab.check_points("app0"), 6);
}

#[test]
fn a_journal_at_its_size_cap_raises_the_alarm() {
    let settings = GroupSettings {
        journal: JournalSettings {
            max_bytes: Some(256 << 10),
            ..JournalSettings::default()
        },
        ..GroupSettings::default()
    };
    let mut lab = lab(1, settings);
    // Each cycle rewrites 1 MiB of the data disk: its undo set alone is
    // over the cap.
    let cloud = LabCloud::open(&lab.root.join("cloud")).unwrap();
    let mut alarms = Vec::new();
    for i in 0..3u8 {
        cloud
            .write_disk("app0-data0", 0, &vec![0xA0 + i; 1 << 20])
            .unwrap();
        let job = lab.item_cycle("app0");
        alarms.extend(
            step_output(&job, "ship-1")["alarms"]
                .as_array()
                .unwrap()
                .clone(),
        );
        if !step_output(&job, "ship-1")["alarms"]
            .as_array()
            .unwrap()
            .is_empty()
        {
            let events = lab.lab.store().events(job.id, 0).unwrap();
            assert!(
                events.iter().any(|e| e.message.contains("ALARM")),
                "{events:?}"
            );
        }
    }
    assert!(!alarms.is_empty(), "no alarm");
    let item = lab.lab.store().item("app0").unwrap();
    assert!(item.state_detail.contains("ALARM"), "{}", item.state_detail);
    assert!(
        item.state_detail.contains("dropped early"),
        "{}",
        item.state_detail
    );
    assert_eq!(lab.store_seqs("app0", 1), lab.journal_seqs("app0", 1));
    lab.check_points("app0");
}

#[test]
fn lost_change_tracking_falls_back_to_a_digest_resync() {
    let mut lab = lab(1, GroupSettings::default());
    let writer = lab.writer();
    lab.item_cycle("app0");
    lab.item_cycle("app0");
    // The operator (or the cloud) deletes the base snapshot.
    let store = lab.lab.store().clone();
    let item = store.item("app0").unwrap();
    let base = store.points(item.id).unwrap()[0].clone();
    let site = store.site("cloud").unwrap();
    let mut cloud = lab.lab.orchestrator.env().adapter(&site).unwrap();
    let data = &base.disks[1];
    cloud
        .cloud_delete_snapshot(&item.disks[1].source_disk_id, &data.snapshot_id)
        .unwrap();
    let job = lab.item_cycle("app0");
    writer.stop();
    let changes = step_output(&job, "changes-1");
    assert_eq!(changes["method"], DIGEST_RESYNC);
    assert!(
        changes["resync"]
            .as_str()
            .unwrap()
            .contains("change tracking lost"),
        "{changes}"
    );
    assert_ne!(step_output(&job, "changes-0")["method"], DIGEST_RESYNC);
    let item = store.item("app0").unwrap();
    assert!(
        item.state_detail.contains("digest resync"),
        "{}",
        item.state_detail
    );
    let newest = &store.points(item.id).unwrap()[0];
    assert_eq!(
        newest.disks[1].change_method.as_deref(),
        Some(DIGEST_RESYNC)
    );
    assert_eq!(lab.check_points("app0"), 6);
}

#[test]
fn rpo_age_and_alert() {
    let settings = GroupSettings {
        rpo_target_secs: Some(60),
        ..GroupSettings::default()
    };
    let mut lab = lab(1, settings.clone());
    lab.item_cycle("app0");
    let rpo = lab.lab.orchestrator.rpo("app0").unwrap();
    assert!(rpo.age_secs.unwrap() < 60, "{rpo:?}");
    assert!(!rpo.alert, "{rpo:?}");
    assert!(rpo.journal_seq.is_some());
    let store = lab.lab.store().clone();
    let mut tight = store.group(GROUP).unwrap().settings;
    tight.rpo_target_secs = Some(1);
    store.set_group_settings(GROUP, &tight).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let rpo = lab.lab.orchestrator.rpo("app0").unwrap();
    assert!(rpo.alert, "{rpo:?}");
    assert!(rpo.age_secs.unwrap() >= 2, "{rpo:?}");
    assert_eq!(rpo.target_secs, Some(1));
    // The API's Item carries it.
    let item = store.item("app0").unwrap();
    let pb = homeward::control::convert::item_with_rpo(&item, &rpo);
    assert!(pb.rpo_alert);
    assert_eq!(pb.rpo_target_secs, Some(1));
    assert!(pb.rpo_age_secs.unwrap() >= 2);

    // `homeward items` shows it, through the control API.
    let server = homeward_tests::control::TestServer::serve(
        lab.lab.orchestrator.clone(),
        homeward::control::state::StateDir::new(lab.root.join("state")),
    );
    let mut args = vec!["items".to_string()];
    args.extend(server.cli_args(homeward::store::Role::Operator));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, table) = homeward_tests::homeward_exit(&args);
    assert_eq!(code, std::process::ExitCode::SUCCESS, "{table}");
    let header = table.lines().next().unwrap();
    assert!(
        header.contains("RPO") && header.contains("ALERT"),
        "{table}"
    );
    let row = table.lines().find(|l| l.starts_with("app0")).unwrap();
    let alert_at = header.find("ALERT").unwrap();
    assert!(row[alert_at..].starts_with("RPO"), "{table}");
    assert!(row.contains("s/1s"), "{table}");
}

#[test]
fn the_cycle_driver_submits_cycles_one_at_a_time() {
    let settings = GroupSettings {
        cycle_interval_secs: Some(1),
        app_consistent_every: Some(2),
        ..GroupSettings::default()
    };
    let lab = lab(1, settings);
    let cycles = lab
        .lab
        .orchestrator
        .start_cycles(Duration::from_millis(100));
    let store = lab.lab.store().clone();
    let item = store.item("app0").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while store.points(item.id).unwrap().len() < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    cycles.stop();
    // A cycle records its point before its last step is saved done: wait
    // for the jobs to end before reading their outputs.
    let ids: Vec<i64> = store
        .jobs(&homeward::store::JobFilter {
            state: None,
            kind: Some("replicate".into()),
            limit: None,
        })
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    let jobs: Vec<JobRecord> = ids.iter().map(|id| lab.wait(*id)).collect();
    assert!(jobs.len() >= 2, "{} cycle jobs", jobs.len());
    // Never two cycles of the item at once.
    let mut spans: Vec<(u64, u64)> = jobs
        .iter()
        .filter_map(|j| Some((j.started_at?, j.finished_at.unwrap_or(u64::MAX))))
        .collect();
    spans.sort();
    assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0), "{spans:?}");
    assert!(store.points(item.id).unwrap().len() >= 3);
    // Every 2nd cycle asks for an app-consistent point; the lab cloud's VM
    // runs, so its restore point is quiesced, and only that cycle's point
    // is app-consistent.
    let mut by_id = jobs.clone();
    by_id.sort_by_key(|j| j.id);
    assert_eq!(by_id[0].params["app_consistent"], false);
    assert_eq!(by_id[1].params["app_consistent"], true);
    let kind_of = |job: &JobRecord| {
        let id = step_output(job, "record")["points"][0]["point"]
            .as_i64()
            .unwrap();
        store.point(id).unwrap().kind
    };
    assert_eq!(kind_of(&by_id[0]), PointKind::CrashConsistent);
    assert_eq!(kind_of(&by_id[1]), PointKind::AppConsistent);
}

#[test]
fn app_consistent_points_come_from_quiesced_restore_points() {
    let mut lab = lab(1, GroupSettings::default());
    let cloud = LabCloud::open(&lab.root.join("cloud")).unwrap();
    let asked = |app_consistent| ReplicateParams {
        item: Some("app0".into()),
        group: None,
        app_consistent,
    };
    let point_of = |job: &JobRecord| {
        step_output(job, "record")["points"][0]["point"]
            .as_i64()
            .unwrap()
    };
    // A running VM: quiesced when asked, crash-consistent otherwise.
    cloud
        .write_disk("app0-data0", 1 << 20, &[0x61; 1 << 20])
        .unwrap();
    let app = lab.cycle(asked(true));
    assert_eq!(app.state, JobState::Succeeded, "{:?}", app.error);
    cloud
        .write_disk("app0-data0", 2 << 20, &[0x62; 1 << 20])
        .unwrap();
    let crash = lab.cycle(asked(false));
    assert_eq!(crash.state, JobState::Succeeded, "{:?}", crash.error);
    let store = lab.lab.store().clone();
    assert_eq!(
        store.point(point_of(&app)).unwrap().kind,
        PointKind::AppConsistent
    );
    assert_eq!(
        store.point(point_of(&crash)).unwrap().kind,
        PointKind::CrashConsistent
    );
    // The journal records the same.
    let item = store.item("app0").unwrap();
    let replica = PathBuf::from(item.disks[1].replica_path.clone().unwrap());
    let app_seq = step_output(&app, "ship-1")["seq"].as_u64().unwrap();
    {
        let (journal, _) = open_journal(&replica);
        assert!(
            journal
                .points()
                .iter()
                .any(|p| p.seq == app_seq && p.app_consistent)
        );
    }

    // A deallocated VM cannot be quiesced: the point is crash-consistent and
    // the job log says why.
    let site = store.site("cloud").unwrap();
    let mut adapter = lab.lab.orchestrator.env().adapter(&site).unwrap();
    adapter.cloud_power_off(&item.source.vm_id, true).unwrap();
    let stopped = lab.cycle(asked(true));
    assert_eq!(stopped.state, JobState::Succeeded, "{:?}", stopped.error);
    assert_eq!(
        store.point(point_of(&stopped)).unwrap().kind,
        PointKind::CrashConsistent
    );
    let events = store.events(stopped.id, 0).unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.message.contains("crash-consistent point")
                && e.message.contains("deallocated")),
        "{events:?}"
    );
    assert_eq!(lab.check_points("app0"), 6);

    // Failover to the latest app-consistent point brings that point's bytes
    // up, although two newer points exist.
    let job = lab
        .lab
        .orchestrator
        .failover(&FailoverParams {
            plan: PLAN.into(),
            direction: Direction::ToOnPremises,
            point: PointChoice::LatestApp,
            planned: false,
            confirm: true,
            network: None,
        })
        .unwrap();
    let record = lab.wait(job);
    assert_eq!(record.state, JobState::Succeeded, "{:?}", record.error);
    let chosen = step_output(&record, "choose-points");
    assert_eq!(chosen["app0"].as_i64(), Some(point_of(&app)));
    let onprem = onprem_paths(&lab, "app0");
    assert!(read_all(&onprem[1]) == lab.copies[&(point_of(&app), 1)]);
}

#[test]
fn the_retention_chosen_at_reprotect_becomes_the_groups() {
    let lab = lab(1, GroupSettings::default());
    let reprotect = |retention_hours| ReprotectParams {
        item: "app0".into(),
        direction: Direction::ToOnPremises,
        group: None,
        master_target: Some("mt-01".into()),
        process_server: Some("ps-01".into()),
        account: Some(lab_site::ADMIN_USER.into()),
        datastore: Some("ds1".into()),
        retention_hours,
        // A second reprotect of a replicating item: its replica is ours.
        allow_overwrite: true,
    };
    let refused = lab.wait(lab.lab.orchestrator.reprotect(&reprotect(Some(0))).unwrap());
    assert_eq!(refused.state, JobState::Failed);
    assert!(
        refused
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("at least 1 hour"),
        "{:?}",
        refused.error
    );
    let job = lab.wait(
        lab.lab
            .orchestrator
            .reprotect(&reprotect(Some(48)))
            .unwrap(),
    );
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let group = lab.lab.store().group(GROUP).unwrap();
    assert_eq!(group.settings.retention_hours, Some(48));
    assert_eq!(
        homeward::workflow::journal_options(&group.settings)
            .retention
            .max_age,
        Duration::from_secs(48 * 3600)
    );
}

#[test]
fn a_snapshot_step_that_fails_leaves_no_snapshot_behind() {
    let settings = GroupSettings {
        consistency: true,
        ..GroupSettings::default()
    };
    let mut lab = lab(2, settings);
    let group = ReplicateParams {
        item: None,
        group: Some(GROUP.into()),
        app_consistent: false,
    };
    let first = lab.cycle(group.clone());
    assert_eq!(first.state, JobState::Succeeded, "{:?}", first.error);
    let store = lab.lab.store().clone();
    let site = store.site("cloud").unwrap();
    let mut adapter = lab.lab.orchestrator.env().adapter(&site).unwrap();
    let mut snapshots = |vm: &str| {
        let id = store.item(vm).unwrap().source.vm_id;
        let mut ids: Vec<String> = adapter
            .cloud_get_vm(&id)
            .unwrap()
            .snapshots
            .into_iter()
            .map(|s| s.id)
            .collect();
        ids.sort();
        ids
    };
    let before = (snapshots("app0"), snapshots("app1"));
    assert_eq!(before.0.len(), 2, "the base snapshots of app0's two disks");
    // app1's disk vanishes from the cloud: its restore point fails after
    // app0's was taken.
    let mut item = store.item("app1").unwrap();
    item.disks[1].source_disk_id.push_str("-gone");
    store.update_item(&item).unwrap();
    let failed = lab.cycle(group);
    assert_eq!(failed.state, JobState::Failed);
    let error = failed.error.clone().unwrap_or_default();
    assert!(error.contains("app1") || error.contains("-gone"), "{error}");
    let after = (snapshots("app0"), snapshots("app1"));
    assert_eq!(
        after, before,
        "app0's snapshots of the failed cycle deleted"
    );
}

#[test]
fn taken_snapshots_are_logged_for_a_rerun() {
    let mut lab = lab(1, GroupSettings::default());
    let job = lab.item_cycle("app0");
    let store = lab.lab.store().clone();
    let events = store.events(job.id, 0).unwrap();
    let snapshot = step_output(&job, "snapshot")["disks"][1]["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    // The line a rerun of an interrupted `snapshot` step reads back.
    assert!(
        events
            .iter()
            .any(|e| e.step == Some(0)
                && e.message.contains(&format!("snapshot {snapshot} of disk"))),
        "{events:?}"
    );
}

#[test]
fn group_cycles_share_a_consistency_id_and_failover_picks_a_common_one() {
    let settings = GroupSettings {
        consistency: true,
        ..GroupSettings::default()
    };
    let mut lab = lab(3, settings);
    let writer = lab.writer();
    let group = ReplicateParams {
        item: None,
        group: Some(GROUP.into()),
        app_consistent: false,
    };
    for _ in 0..2 {
        let job = lab.cycle(group.clone());
        assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
        let out = step_output(&job, "record");
        assert_eq!(out["points"].as_array().unwrap().len(), 3);
    }
    // One VM takes an extra, newer point of its own.
    lab.item_cycle("app1");
    writer.stop();
    let store = lab.lab.store().clone();
    let tags = |vm: &str| -> Vec<String> {
        let item = store.item(vm).unwrap();
        store
            .points(item.id)
            .unwrap()
            .iter()
            .filter_map(|p| p.consistency_id.clone())
            .collect()
    };
    let common = tags("app0")[0].clone();
    for vm in ["app1", "app2"] {
        assert!(tags(vm).contains(&common), "{vm}: {:?}", tags(vm));
    }
    assert_ne!(tags("app1")[0], common, "app1 has a newer point of its own");
    for vm in ["app0", "app1", "app2"] {
        lab.check_points(vm);
    }

    // Failing the group over brings up the common point everywhere: app1's
    // replica is taken back through its journal.
    let job = lab
        .lab
        .orchestrator
        .failover(&FailoverParams {
            plan: PLAN.into(),
            direction: Direction::ToOnPremises,
            point: PointChoice::Latest,
            planned: false,
            confirm: true,
            network: None,
        })
        .unwrap();
    let record = lab.wait(job);
    let chosen = step_output(&record, "choose-points").clone();
    for vm in ["app0", "app1", "app2"] {
        let item = store.item(vm).unwrap();
        let id = chosen[vm].as_i64().unwrap();
        let point = store.point(id).unwrap();
        assert_eq!(
            point.consistency_id.as_deref(),
            Some(common.as_str()),
            "{vm}"
        );
        assert_eq!(point.item_id, item.id);
        // The on-premises data disk holds exactly that point (the OS disk
        // too, verified by digest before the guest steps changed it).
        let onprem = onprem_paths(&lab, vm);
        assert!(
            read_all(&onprem[1]) == lab.copies[&(id, 1)],
            "{vm} data disk"
        );
    }
    let children = store
        .jobs(&homeward::store::JobFilter {
            state: None,
            kind: Some("failover-item".into()),
            limit: None,
        })
        .unwrap();
    for child in children.iter().filter(|j| j.parent == Some(job)) {
        assert_eq!(
            step_output(child, "materialize")["verified"],
            2,
            "{}",
            child.summary
        );
    }
    assert_eq!(record.state, JobState::Succeeded, "{:?}", record.error);
}

#[test]
fn failover_to_an_older_point_runs_the_guest_steps() {
    let mut lab = lab(1, GroupSettings::default());
    let cloud = LabCloud::open(&lab.root.join("cloud")).unwrap();
    let mut ids = Vec::new();
    for i in 0..3u8 {
        cloud
            .write_disk("app0-data0", u64::from(i) << 20, &vec![0x50 + i; 1 << 20])
            .unwrap();
        let job = lab.item_cycle("app0");
        ids.push(
            step_output(&job, "record")["points"][0]["point"]
                .as_i64()
                .unwrap(),
        );
    }
    let older = ids[0];
    let job = lab
        .lab
        .orchestrator
        .failover(&FailoverParams {
            plan: PLAN.into(),
            direction: Direction::ToOnPremises,
            point: PointChoice::Id(older),
            planned: false,
            confirm: true,
            network: None,
        })
        .unwrap();
    let record = lab.wait(job);
    let store = lab.lab.store().clone();
    let jobs = store
        .jobs(&homeward::store::JobFilter {
            state: None,
            kind: Some("failover-item".into()),
            limit: None,
        })
        .unwrap();
    let child = jobs.iter().find(|j| j.parent == Some(job)).unwrap();
    assert_eq!(child.state, JobState::Succeeded, "{:?}", child.error);
    assert_eq!(record.state, JobState::Succeeded, "{:?}", record.error);
    let materialize = step_output(child, "materialize");
    assert_eq!(materialize["point"], older);
    let steps = step_output(child, "guest-steps");
    assert!(
        steps["steps"].as_array().is_some_and(|s| !s.is_empty()),
        "{steps}"
    );
    // Both disks were verified against the point's digests before the
    // guest steps; the data disk (which they leave alone) is the point's.
    assert_eq!(materialize["verified"], 2);
    let onprem = onprem_paths(&lab, "app0");
    assert!(read_all(&onprem[1]) == lab.copies[&(older, 1)]);
    assert!(
        read_all(&onprem[1]) != lab.copies[&(ids[2], 1)],
        "not the newest point"
    );
    // The newer points are gone from the store with the journal's.
    let item = store.item("app0").unwrap();
    assert!(
        store
            .points(item.id)
            .unwrap()
            .iter()
            .all(|p| !ids[1..].contains(&p.id))
    );
}

/// The on-premises disks of `vm` (the VM the reprotect made), in unit order.
fn onprem_paths(lab: &Lab, vm: &str) -> Vec<PathBuf> {
    let dir = lab.lab.site.datastore_path("ds1").join(vm);
    let mut disks: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "vmdk")
                && !p.to_string_lossy().ends_with("-flat.vmdk")
        })
        .collect();
    disks.sort();
    disks
}

#[test]
fn a_gap_in_the_chain_falls_back_to_a_digest_resync() {
    let mut lab = lab(1, GroupSettings::default());
    lab.item_cycle("app0");
    lab.item_cycle("app0");
    // A cycle that committed into the journal but never recorded its point
    // (a restart without a clean checkpoint): the replica holds bytes no
    // recorded point knows.
    let item = lab.lab.store().item("app0").unwrap();
    let replica = PathBuf::from(item.disks[1].replica_path.clone().unwrap());
    {
        let (mut journal, _) = open_journal(&replica);
        let mut writer = journal.begin().unwrap();
        writer.write(3 << 20, &[0xEE; 65536]).unwrap();
        writer
            .commit(homeward::journal::NewPointMeta {
                label: "unrecorded".into(),
                ..Default::default()
            })
            .unwrap();
    }
    let job = lab.item_cycle("app0");
    let changes = step_output(&job, "changes-1");
    assert_eq!(changes["method"], DIGEST_RESYNC);
    assert!(
        changes["resync"]
            .as_str()
            .unwrap()
            .contains("gap in the chain"),
        "{changes}"
    );
    // The disk without a gap keeps its change tracking.
    assert_ne!(step_output(&job, "changes-0")["method"], DIGEST_RESYNC);
    assert_eq!(lab.check_points("app0"), 6);
}
