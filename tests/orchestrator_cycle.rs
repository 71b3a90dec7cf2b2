//! The whole failback cycle on the lab adapters, stage by stage, with the
//! state the store, the site and the cloud must be in after each one; the
//! split-brain guard; and backup, wipe and restore of the state store in the
//! middle of a cycle.

use homeward::demo::{self, DemoLab, Stage};
use homeward::lab::cloud::format::LabPower;
use homeward::lab::guest;
use homeward::plugin::adapter::PowerState;
use homeward::store::{Direction, ItemState, JobState, SiteKind, Store};
use homeward::workflow::{ReprotectParams, fingerprint};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

fn onprem_power(lab: &DemoLab) -> PowerState {
    let inventory = lab.orchestrator.discover("onprem").unwrap();
    inventory
        .vms
        .iter()
        .find(|v| v.name == demo::VM)
        .unwrap()
        .power
}

fn stage_ok(
    rt: &tokio::runtime::Runtime,
    lab: &DemoLab,
    stage: Stage,
) -> Vec<homeward::store::JobRecord> {
    let jobs = rt.block_on(lab.run_stage(stage)).unwrap();
    for job in &jobs {
        assert_eq!(
            job.state,
            JobState::Succeeded,
            "{stage:?}: job {} {}: {:?}",
            job.id,
            job.summary,
            job.error
        );
    }
    jobs
}

fn data_disks_equal(lab: &DemoLab) -> bool {
    let onprem = lab.onprem_disks().unwrap();
    fingerprint(&onprem[1]).unwrap() == fingerprint(lab.cloud_disk("web01-data0")).unwrap()
}

#[test]
fn demo_cycle_reaches_every_state() {
    let dir = tempfile::tempdir().unwrap();
    let lab = DemoLab::create(dir.path()).unwrap();
    let rt = runtime();
    let _guard = rt.enter();
    lab.orchestrator.start().unwrap();
    let store = lab.store().clone();
    let original_vm = store.item(demo::VM).unwrap().source.vm_id.clone();

    // Protect: one point to the cloud; the cloud disks equal the site's.
    stage_ok(&rt, &lab, Stage::Protect);
    let item = store.item(demo::VM).unwrap();
    assert_eq!(item.state, ItemState::Protected);
    assert_eq!(item.group, demo::GROUP);
    assert_eq!(item.replica.as_ref().unwrap().site, "cloud");
    let points = store.points(item.id).unwrap();
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].direction, Direction::ToCloud);
    assert!(points[0].disks.iter().all(|d| d.digest.is_some()));
    assert!(data_disks_equal(&lab));

    // Failover to the cloud: the cloud VM runs, the site's is off, the item
    // swapped sides, and the site's disks have a recorded fingerprint.
    stage_ok(&rt, &lab, Stage::FailoverToCloud);
    let item = store.item(demo::VM).unwrap();
    assert_eq!(item.state, ItemState::FailedOver);
    assert_eq!(store.site(&item.source.site).unwrap().kind, SiteKind::Cloud);
    assert_eq!(item.replica.as_ref().unwrap().vm_id, original_vm);
    assert_eq!(
        lab.cloud.vm(demo::VM).unwrap().unwrap().power,
        LabPower::Running
    );
    assert_eq!(onprem_power(&lab), PowerState::PoweredOff);
    let generations = store.generations(item.id).unwrap();
    assert!(
        generations
            .iter()
            .filter(|g| g.fingerprint.is_some())
            .count()
            >= 2,
        "{generations:?}"
    );

    stage_ok(&rt, &lab, Stage::WriteInCloud);
    assert!(!data_disks_equal(&lab), "the cloud wrote new data");

    // Reprotect: original location (the VM still exists), split brain
    // checked on both disks, only the changes sent.
    let jobs = stage_ok(&rt, &lab, Stage::Reprotect);
    let item = store.item(demo::VM).unwrap();
    assert_eq!(item.state, ItemState::Protected);
    assert_eq!(item.group, format!("{}_Failback", demo::GROUP));
    assert_eq!(item.replica.as_ref().unwrap().vm_id, original_vm);
    let job = &jobs[0];
    let check = &job.steps.iter().find(|s| s.name == "check").unwrap().output;
    assert_eq!(check["location"], "original");
    let guard = &job
        .steps
        .iter()
        .find(|s| s.name == "split-brain")
        .unwrap()
        .output;
    assert_eq!(guard["checked"], 2);
    assert_eq!(guard["changed"].as_array().unwrap().len(), 0);
    let sent: u64 = job
        .steps
        .iter()
        .filter(|s| s.name.starts_with("sync-disk"))
        .map(|s| s.output["bytes_sent"].as_u64().unwrap())
        .sum();
    assert!(
        sent < (demo::DATA_DISK / 2),
        "a delta, not a full copy: {sent} bytes"
    );
    assert!(data_disks_equal(&lab));

    // Failback: the site's VM runs the cloud's data with its static address
    // back; the cloud VM is deallocated.
    let jobs = stage_ok(&rt, &lab, Stage::Failback);
    let item = store.item(demo::VM).unwrap();
    assert_eq!(item.state, ItemState::FailedOver);
    assert_eq!(item.source.vm_id, original_vm);
    assert_eq!(onprem_power(&lab), PowerState::PoweredOn);
    assert_eq!(
        lab.cloud.vm(demo::VM).unwrap().unwrap().power,
        LabPower::Deallocated
    );
    let child = jobs.iter().find(|j| j.kind == "failover-item").unwrap();
    let steps = &child
        .steps
        .iter()
        .find(|s| s.name == "guest-steps")
        .unwrap()
        .output;
    let changes: u64 = steps["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["changes"].as_u64().unwrap())
        .sum();
    assert!(changes > 0, "the guest steps fixed the guest: {steps}");
    assert!(
        steps["replanned"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r[1] == 0),
        "{steps}"
    );
    let os = &lab.onprem_disks().unwrap()[0];
    assert_eq!(
        lab.read_guest_file(os, guest::APP_DATA).unwrap(),
        demo::CLOUD_DATA
    );
    let ifcfg = String::from_utf8(lab.read_guest_file(os, guest::IFCFG).unwrap()).unwrap();
    assert!(ifcfg.contains("IPADDR=10.10.0.21"), "{ifcfg}");
    assert!(data_disks_equal(&lab));

    // Commit and reprotect to the cloud: protected again, the stopped cloud
    // VM deleted, its disks kept as the replica.
    stage_ok(&rt, &lab, Stage::CommitAndReprotect);
    let item = store.item(demo::VM).unwrap();
    assert_eq!(item.state, ItemState::Protected);
    assert_eq!(item.group, demo::GROUP);
    assert!(lab.cloud.vm(demo::VM).unwrap().is_none());
    assert!(lab.cloud.disk("web01-os").unwrap().is_some());
    assert!(data_disks_equal(&lab));
    rt.block_on(lab.orchestrator.shutdown());
}

#[test]
fn split_brain_guard_keeps_a_changed_onprem_disk() {
    let dir = tempfile::tempdir().unwrap();
    let lab = DemoLab::create(dir.path()).unwrap();
    let rt = runtime();
    let _guard = rt.enter();
    lab.orchestrator.start().unwrap();
    for stage in [Stage::Protect, Stage::FailoverToCloud, Stage::WriteInCloud] {
        stage_ok(&rt, &lab, stage);
    }
    // Someone boots the old on-premises VM and writes to its data disk.
    let disk_path = lab.onprem_disks().unwrap()[1].clone();
    {
        let disk = homeward::disk::open(&disk_path, true, None).unwrap();
        disk.write_at(b"written on premises after the failover", 32 << 20)
            .unwrap();
        disk.flush().unwrap();
    }
    let before = fingerprint(&disk_path).unwrap();

    let jobs = rt.block_on(lab.run_stage(Stage::Reprotect)).unwrap();
    assert_eq!(jobs[0].state, JobState::Failed);
    let error = jobs[0].error.clone().unwrap();
    assert!(
        error.contains("split brain") && error.contains("allow"),
        "{error}"
    );
    assert_eq!(
        fingerprint(&disk_path).unwrap(),
        before,
        "the changed disk is untouched"
    );
    assert_eq!(
        lab.store().item(demo::VM).unwrap().state,
        ItemState::FailedOver
    );

    // The operator says so: the on-premises changes are discarded.
    let mut params = reprotect_to_onprem();
    params.allow_overwrite = true;
    let id = lab.orchestrator.reprotect(&params).unwrap();
    let job = rt.block_on(lab.orchestrator.scheduler().wait(id)).unwrap();
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let guard = &job
        .steps
        .iter()
        .find(|s| s.name == "split-brain")
        .unwrap()
        .output;
    assert_eq!(guard["overwritten"], true);
    assert!(data_disks_equal(&lab));
    rt.block_on(lab.orchestrator.shutdown());
}

fn reprotect_to_onprem() -> ReprotectParams {
    ReprotectParams {
        item: demo::VM.into(),
        direction: Direction::ToOnPremises,
        group: None,
        master_target: Some("mt-01".into()),
        process_server: Some("ps-01".into()),
        account: None,
        datastore: Some("ds1".into()),
        retention_hours: None,
        allow_overwrite: false,
    }
}

#[test]
fn backup_wipe_restore_then_failback_works() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup.db");
    let identity;
    {
        let lab = DemoLab::create(dir.path()).unwrap();
        let rt = runtime();
        let _guard = rt.enter();
        lab.orchestrator.start().unwrap();
        for stage in [
            Stage::Protect,
            Stage::FailoverToCloud,
            Stage::WriteInCloud,
            Stage::Reprotect,
        ] {
            stage_ok(&rt, &lab, stage);
        }
        identity = lab.store().identity().unwrap();
        let info = lab.store().backup_to(&backup).unwrap();
        assert_eq!(info.server_id, identity.server_id);
        rt.block_on(lab.orchestrator.shutdown());
    }
    // Wipe the state store, then restore it from the backup.
    let state = dir.path().join("state");
    std::fs::remove_dir_all(&state).unwrap();
    let restored = Store::restore(&state.join("homeward.db"), &backup).unwrap();
    assert_eq!(restored.server_id, identity.server_id);

    let lab = DemoLab::open(dir.path()).unwrap();
    let rt = runtime();
    let _guard = rt.enter();
    lab.orchestrator.start().unwrap();
    assert_eq!(
        lab.store().identity().unwrap().server_id,
        identity.server_id
    );
    assert_eq!(
        lab.store().item(demo::VM).unwrap().state,
        ItemState::Protected
    );
    stage_ok(&rt, &lab, Stage::Failback);
    let os = &lab.onprem_disks().unwrap()[0];
    assert_eq!(
        lab.read_guest_file(os, guest::APP_DATA).unwrap(),
        demo::CLOUD_DATA
    );
    assert!(data_disks_equal(&lab));
    rt.block_on(lab.orchestrator.shutdown());
}

#[test]
fn test_failover_drills_on_a_copy_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let lab = DemoLab::create(dir.path()).unwrap();
    let rt = runtime();
    let _guard = rt.enter();
    lab.orchestrator.start().unwrap();
    for stage in [
        Stage::Protect,
        Stage::FailoverToCloud,
        Stage::WriteInCloud,
        Stage::Reprotect,
    ] {
        stage_ok(&rt, &lab, stage);
    }
    let replica = lab.onprem_disks().unwrap();
    let before: Vec<String> = replica.iter().map(|d| fingerprint(d).unwrap()).collect();
    let vms_before = lab.orchestrator.discover("onprem").unwrap().vms.len();

    let id = lab
        .orchestrator
        .test_failover(&homeward::workflow::TestFailoverParams {
            plan: demo::PLAN.into(),
            direction: Direction::ToOnPremises,
            point: homeward::workflow::PointChoice::Latest,
            network: Some("Replication".into()),
            cleanup: true,
        })
        .unwrap();
    let job = rt.block_on(lab.orchestrator.scheduler().wait(id)).unwrap();
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let drill = &job
        .steps
        .iter()
        .find(|s| s.name == "drill:web01")
        .unwrap()
        .output;
    let drill_vm = drill["vm_id"].as_str().unwrap();
    let cleanup = &job
        .steps
        .iter()
        .find(|s| s.name == "cleanup")
        .unwrap()
        .output;
    assert_eq!(cleanup[0], drill_vm);

    // The drill VM is gone, the replica untouched, the item as it was.
    let inventory = lab.orchestrator.discover("onprem").unwrap();
    assert_eq!(inventory.vms.len(), vms_before);
    assert!(inventory.vms.iter().all(|v| v.id != drill_vm));
    let after: Vec<String> = replica.iter().map(|d| fingerprint(d).unwrap()).collect();
    assert_eq!(before, after);
    assert_eq!(
        lab.store().item(demo::VM).unwrap().state,
        ItemState::Protected
    );
    rt.block_on(lab.orchestrator.shutdown());
}

#[test]
fn failover_needs_confirmation_and_a_ready_item() {
    let dir = tempfile::tempdir().unwrap();
    let lab = DemoLab::create(dir.path()).unwrap();
    let rt = runtime();
    let _guard = rt.enter();
    lab.orchestrator.start().unwrap();
    let mut params = homeward::workflow::FailoverParams {
        plan: demo::PLAN.into(),
        direction: Direction::ToOnPremises,
        point: homeward::workflow::PointChoice::Latest,
        planned: true,
        confirm: false,
        network: None,
    };
    let refused = lab.orchestrator.failover(&params).unwrap_err().to_string();
    assert!(refused.contains("confirmation"), "{refused}");
    // Confirmed, but web01 runs on premises: nothing fails over to on-premises.
    params.confirm = true;
    let id = lab.orchestrator.failover(&params).unwrap();
    let job = rt.block_on(lab.orchestrator.scheduler().wait(id)).unwrap();
    assert_eq!(job.state, JobState::Failed);
    let error = job.error.unwrap();
    assert!(
        error.contains("no VM that fails over to on-premises"),
        "{error}"
    );
    // Failing web01 over to the cloud (unplanned) before it was ever replicated there.
    params.direction = Direction::ToCloud;
    params.planned = false;
    let id = lab.orchestrator.failover(&params).unwrap();
    let job = rt.block_on(lab.orchestrator.scheduler().wait(id)).unwrap();
    assert_eq!(job.state, JobState::Failed);
    let error = job.error.unwrap();
    assert!(
        error.contains("has no latest recovery point to the cloud"),
        "{error}"
    );
    assert_eq!(
        onprem_power(&lab),
        PowerState::PoweredOn,
        "nothing was shut down"
    );
    rt.block_on(lab.orchestrator.shutdown());
}

#[test]
fn failback_goes_to_an_alternate_location_when_the_vm_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let lab = DemoLab::create(dir.path()).unwrap();
    let rt = runtime();
    let _guard = rt.enter();
    lab.orchestrator.start().unwrap();
    for stage in [Stage::Protect, Stage::FailoverToCloud, Stage::WriteInCloud] {
        stage_ok(&rt, &lab, stage);
    }
    // The on-premises VM is lost with the disaster (S4).
    let original = lab.store().item(demo::VM).unwrap().replica.unwrap().vm_id;
    let site = lab.store().site("onprem").unwrap();
    let mut hypervisor = lab.orchestrator.env().adapter(&site).unwrap();
    hypervisor.hypervisor_delete_vm(&original).unwrap();

    let jobs = stage_ok(&rt, &lab, Stage::Reprotect);
    let check = &jobs[0]
        .steps
        .iter()
        .find(|s| s.name == "check")
        .unwrap()
        .output;
    assert_eq!(check["location"], "alternate");
    let target = &jobs[0]
        .steps
        .iter()
        .find(|s| s.name == "prepare-target")
        .unwrap()
        .output;
    assert_eq!(target["created"], true);
    let new_vm = target["vm_id"].as_str().unwrap().to_string();
    assert_ne!(new_vm, original);
    let item = lab.store().item(demo::VM).unwrap();
    assert_eq!(item.replica.as_ref().unwrap().vm_id, new_vm);

    // Failback brings the new VM up with the cloud's data; the guest steps
    // got the old MAC mapped to the new VM's.
    let jobs = stage_ok(&rt, &lab, Stage::Failback);
    let inventory = lab.orchestrator.discover("onprem").unwrap();
    let vm = inventory.vms.iter().find(|v| v.id == new_vm).unwrap();
    assert_eq!(vm.power, PowerState::PoweredOn);
    let child = jobs.iter().find(|j| j.kind == "failover-item").unwrap();
    assert!(
        child
            .steps
            .iter()
            .any(|s| s.name == "guest-steps" && s.state == homeward::store::StepState::Done)
    );
    let mounts = homeward::store::DatastoreMount {
        datastore: "ds1".into(),
        path: lab.site.datastore_path("ds1"),
    };
    let os = homeward::workflow::host_path(&vm.disks[0], &[mounts]).unwrap();
    assert_eq!(
        lab.read_guest_file(&os, guest::APP_DATA).unwrap(),
        demo::CLOUD_DATA
    );
    rt.block_on(lab.orchestrator.shutdown());
}

#[test]
fn plan_runs_manual_steps_and_scripts_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let lab = DemoLab::create(dir.path()).unwrap();
    let rt = runtime();
    let _guard = rt.enter();
    lab.orchestrator.start().unwrap();
    stage_ok(&rt, &lab, Stage::Protect);
    let marker = dir.path().join("script-ran");
    let plan = lab
        .store()
        .create_plan(
            "RP2",
            &[
                homeward::store::PlanEntry::Manual {
                    text: "tell the network team".into(),
                },
                homeward::store::PlanEntry::Group {
                    name: demo::GROUP.into(),
                },
                homeward::store::PlanEntry::Script {
                    command: format!(
                        "echo \"$HOMEWARD_PLAN $HOMEWARD_DIRECTION\" > '{}'",
                        marker.display()
                    ),
                },
                homeward::store::PlanEntry::Script {
                    command: "echo boom >&2; exit 3".into(),
                },
            ],
        )
        .unwrap();
    assert_eq!(
        plan.entries.len(),
        5,
        "PG1_Failback added after PG1: {:?}",
        plan.entries
    );
    let id = lab
        .orchestrator
        .failover(&homeward::workflow::FailoverParams {
            plan: "RP2".into(),
            direction: Direction::ToCloud,
            point: homeward::workflow::PointChoice::Latest,
            planned: true,
            confirm: true,
            network: Some(lab.cloud.subnet_id(homeward::lab::cloud::APP_SUBNET)),
        })
        .unwrap();
    let job = rt.block_on(lab.orchestrator.scheduler().wait(id)).unwrap();
    let names: Vec<&str> = job.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "confirm",
            "choose-points",
            "manual:0",
            "group:PG1",
            "script:3",
            "script:4"
        ]
    );
    // The script ran after the group, with the plan's name and direction.
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap().trim(),
        "RP2 to-cloud"
    );
    // The failing script fails the job and says why.
    assert_eq!(job.state, JobState::Failed);
    let error = job.error.unwrap();
    assert!(error.contains("exit") && error.contains("boom"), "{error}");
    assert_eq!(
        lab.store().item(demo::VM).unwrap().state,
        ItemState::FailedOver
    );
    rt.block_on(lab.orchestrator.shutdown());
}
