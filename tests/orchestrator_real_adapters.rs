//! The whole failback cycle of `orchestrator_cycle.rs`, stage by stage, through
//! the real adapters: the embedded `vcenter` plugin against govmomi's vSphere
//! simulator (VPX model) on premises, and the embedded `azure` plugin in the
//! cloud, its compute against the fake ARM server (**a fake**: Azurite has no
//! compute, and nothing real can run here) and its disks as page blobs in
//! Azurite, which the host's data path reads and writes itself.
//!
//! What the simulator and the fake cannot do, and what stands in for it:
//! - The simulator makes a new VM's disk files empty (a 0-byte descriptor and
//!   a 0-byte `-flat.vmdk`). The test writes them as ESXi would, a
//!   monolithicFlat descriptor and a full-size extent (`materialize_disks`),
//!   before the guest goes on the first disk.
//! - The simulator's VMs lack `disk.EnableUUID`, which readiness (S15)
//!   requires of a master target VM: the test sets it with
//!   `ReconfigVM_Task`, as an administrator would (`enable_disk_uuid`).
//! - Azure managed disks hand out their bytes through `beginGetAccess`; the
//!   adapter maps a managed-disk id to the page blob `disks/<name>.vhd` of
//!   its storage account instead, so the test makes each replica disk twice:
//!   a managed disk in the fake ARM (for `create-vm` to attach) and the
//!   fixed-VHD page blob in Azurite (the bytes).
//!
//! A second test drives the data path alone with page blobs as source and
//! target, and its refusals.

use homeward::demo::{self, CycleLab, Stage};
use homeward::disk::{BlockDevice, ImageFormat};
use homeward::jobs::SchedulerOptions;
use homeward::lab::guest::{self, DemoGuest};
use homeward::plugin::adapter::{
    Access, DiskLocator, HypervisorVmSpec, PowerState, ReadinessRequest,
};
use homeward::plugin::{Failure, PluginError, PluginInstance, Runtime};
use homeward::store::{
    ComponentRole, DatastoreMount, Direction, GroupSettings, ItemState, JobFilter, JobRecord,
    JobState, NewComponent, NewGroup, NewSite, PlanEntry, SiteKind, Store,
};
use homeward::sync::source::{SyncOutcome, SyncSpec};
use homeward::sync::target::CheckpointPolicy;
use homeward::sync::{DiskEndpoint, Mode, SyncError, local};
use homeward::workflow::{Env, Orchestrator, fingerprint};
use homeward_tests::azurite::{self, Azurite};
use homeward_tests::fake_arm::{self, CONTRIBUTOR, CONTRIBUTOR_SECRET, FakeArm};
use homeward_tests::vsphere_sim::{Account, Model, VsphereSim};
use std::path::PathBuf;
use std::sync::Arc;

/// The simulator's datastore the VM lives on (every VPX host mounts it).
const DATASTORE: &str = "LocalDS_0";
/// The Azurite container the adapter maps managed disks to.
const CONTAINER: &str = "disks";
/// The cloud's virtual network and the subnet the failed-over VM joins.
const VNET: &str = "vnet1";
const SUBNET: &str = "app";

/// The two sites, the store and the orchestrator over the real adapters.
struct RealLab {
    sim: VsphereSim,
    arm: FakeArm,
    azurite: Azurite,
    orchestrator: Orchestrator,
    /// The on-premises VM as created: its id and its disks' host paths.
    vm_id: String,
    onprem_disks: Vec<PathBuf>,
    /// The cloud's managed disks (replicas), OS first.
    cloud_disks: Vec<String>,
    state_dir: tempfile::TempDir,
    // The demo guest's ext4 handler, for reading and changing guest files.
    handlers: homeward::filesystem::FsHandlers,
    _handlers_runtime: Runtime,
}

impl CycleLab for RealLab {
    fn orchestrator(&self) -> &Orchestrator {
        &self.orchestrator
    }

    fn cloud_subnet(&self) -> String {
        fake_arm::subnet_id(VNET, SUBNET)
    }

    fn datastore(&self) -> String {
        DATASTORE.to_string()
    }

    fn account(&self) -> String {
        self.sim.admin().0.to_string()
    }

    /// Through the page blobs the Azure adapter hands out, as the running
    /// cloud VM would change its disks.
    fn write_in_cloud(&self) -> anyhow::Result<()> {
        let os = self.cloud_device(0, Access::ReadWrite);
        let name = os.describe();
        let changes = guest::azure_failover_changes_on_device(&self.handlers, &name, os.clone())?;
        anyhow::ensure!(
            !changes.is_empty(),
            "the cloud changed nothing in the guest"
        );
        guest::write_guest_file_on_device(
            &self.handlers,
            &name,
            os,
            guest::APP_DATA,
            demo::CLOUD_DATA,
        )?;
        let data = self.cloud_device(1, Access::ReadWrite);
        demo::write_pattern(data.as_ref(), 4 << 20, 2)?;
        data.flush()?;
        Ok(())
    }
}

impl RealLab {
    fn create() -> RealLab {
        let sim = VsphereSim::start(Model::Vpx);
        let arm = FakeArm::start();
        arm.add_vnet(VNET, &["10.20.0.0/16"], &[(SUBNET, "10.20.1.0/24")]);
        let azurite = Azurite::start();
        azurite.create_container(CONTAINER);

        // Plugins: the real adapters, the file-system handlers and guest steps.
        let runtime = demo::plugin_runtime().unwrap();
        let vcenter = homeward::embedded::VCENTER;
        let azure = homeward::embedded::AZURE;
        let mut plugins = vec![
            runtime
                .load(
                    vcenter.wasm,
                    vcenter.id,
                    sim.plugin_settings(Account::Admin),
                )
                .unwrap(),
            runtime
                .load(azure.wasm, azure.id, azure_settings(&arm, &azurite))
                .unwrap(),
        ];
        plugins.extend(demo::guest_plugins(&runtime).unwrap());
        let env = Arc::new(Env::from_plugins(runtime, plugins));
        let state_dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&state_dir.path().join("homeward.db")).unwrap());
        let orchestrator =
            Orchestrator::new(store.clone(), env.clone(), SchedulerOptions::default());
        store
            .add_site(&NewSite {
                name: "onprem".into(),
                kind: SiteKind::OnPremises,
                plugin: vcenter.id.into(),
            })
            .unwrap();
        store
            .add_site(&NewSite {
                name: "cloud".into(),
                kind: SiteKind::Cloud,
                plugin: azure.id.into(),
            })
            .unwrap();

        // On premises: the master target is a simulator VM made ready for the
        // role; web01 is a new VM beside it with the demo guest and data.
        let inventory = orchestrator.discover("onprem").unwrap();
        let datastore = inventory
            .datastores
            .iter()
            .find(|d| d.name == DATASTORE)
            .unwrap()
            .clone();
        let master = inventory
            .vms
            .iter()
            .find(|vm| {
                vm.host_id.as_ref().is_some_and(|h| {
                    inventory.hosts.iter().any(|host| {
                        &host.id == h
                            && host.datastore_ids.contains(&datastore.id)
                            && !host.network_ids.is_empty()
                    })
                })
            })
            .unwrap()
            .clone();
        let host = inventory
            .hosts
            .iter()
            .find(|h| Some(&h.id) == master.host_id.as_ref())
            .unwrap()
            .clone();
        let site = store.site("onprem").unwrap();
        let mut hypervisor = env.adapter(&site).unwrap();
        let uuid_finding = |hypervisor: &mut PluginInstance| {
            let findings = hypervisor
                .hypervisor_readiness(&ReadinessRequest {
                    operation: "reprotect".into(),
                    vm_id: None,
                    master_target_vm_id: Some(master.id.clone()),
                    master_target_host_id: None,
                    datastore_id: None,
                })
                .unwrap();
            findings.into_iter().find(|f| f.check == "disk-uuid")
        };
        assert!(
            uuid_finding(&mut hypervisor).is_some(),
            "the simulator's VMs lack disk.EnableUUID"
        );
        enable_disk_uuid(&sim, &master.id);
        assert_eq!(uuid_finding(&mut hypervisor).map(|f| f.message), None);
        let vm = hypervisor
            .hypervisor_create_vm(&HypervisorVmSpec {
                name: demo::VM.into(),
                host_id: host.id.clone(),
                datastore_id: datastore.id.clone(),
                guest_id: "rhel9_64Guest".into(),
                cpus: 2,
                memory_mib: 2048,
                disk_sizes: vec![demo::OS_DISK, demo::DATA_DISK],
                network_ids: vec![host.network_ids[0].clone()],
            })
            .unwrap();
        let onprem_disks = materialize_disks(&sim, &vm);
        let os = homeward::disk::open(&onprem_disks[0], true, None).unwrap();
        guest::write_guest_disk(os.as_ref()).unwrap();
        os.flush().unwrap();
        let data = homeward::disk::open(&onprem_disks[1], true, None).unwrap();
        demo::write_pattern(data.as_ref(), 8 << 20, 1).unwrap();
        data.flush().unwrap();
        hypervisor
            .hypervisor_set_power(&vm.id, PowerState::PoweredOn)
            .unwrap();

        orchestrator
            .register_component(&NewComponent {
                name: "mt-01".into(),
                role: ComponentRole::MasterTarget,
                site: "onprem".into(),
                address: "local".into(),
                host_id: Some(host.id.clone()),
                vm_id: Some(master.id.clone()),
                datastore_mounts: vec![DatastoreMount {
                    datastore: DATASTORE.into(),
                    path: sim.datastore_dir(DATASTORE),
                }],
            })
            .unwrap();
        orchestrator
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
        store
            .create_group(&NewGroup {
                name: demo::GROUP.into(),
                direction: Direction::ToCloud,
                settings: GroupSettings {
                    master_target: Some("mt-01".into()),
                    process_server: Some("ps-01".into()),
                    account: Some(sim.admin().0.into()),
                    datastore: Some(DATASTORE.into()),
                    retention_hours: Some(24),
                    consistency: false,
                    ..GroupSettings::default()
                },
            })
            .unwrap();
        store
            .create_plan(
                demo::PLAN,
                &[PlanEntry::Group {
                    name: demo::GROUP.into(),
                }],
            )
            .unwrap();
        demo::wait_registered(&store, &["mt-01", "ps-01"]).unwrap();

        // The cloud: a managed disk per VM disk (for create-vm to attach),
        // each backed by its fixed-VHD page blob in Azurite.
        let mut cloud_disks = Vec::new();
        for (name, size) in [
            ("web01-os", demo::OS_DISK),
            ("web01-data0", demo::DATA_DISK),
        ] {
            azurite.create_disk(CONTAINER, &format!("{name}.vhd"), size);
            cloud_disks.push(arm.add_disk(name, 1));
        }

        // Protect web01, its NIC as the guest configures it, and its replicas.
        orchestrator
            .protect(demo::GROUP, "onprem", std::slice::from_ref(&vm.id))
            .unwrap();
        demo::record_guest_nics(&orchestrator, &DemoGuest::default()).unwrap();
        orchestrator
            .set_replica_disks(demo::VM, "cloud", &cloud_disks)
            .unwrap();

        let handlers_runtime = demo::plugin_runtime().unwrap();
        let handlers = guest::handlers(&handlers_runtime).unwrap();
        RealLab {
            sim,
            arm,
            azurite,
            orchestrator,
            vm_id: vm.id,
            onprem_disks,
            cloud_disks,
            state_dir,
            handlers,
            _handlers_runtime: handlers_runtime,
        }
    }

    fn store(&self) -> &Arc<Store> {
        self.orchestrator.store()
    }

    fn adapter(&self, site: &str) -> PluginInstance {
        let site = self.store().site(site).unwrap();
        self.orchestrator.env().adapter(&site).unwrap()
    }

    /// Cloud disk `index` as the Azure adapter hands it out.
    fn cloud_endpoint(&self, index: usize, access: Access) -> DiskEndpoint {
        let disk = self
            .adapter("cloud")
            .cloud_disk_endpoint(&self.cloud_disks[index], access)
            .unwrap();
        let DiskLocator::Blob(blob) = disk.locator else {
            panic!("the Azure adapter gave {:?} for a disk", disk.locator)
        };
        assert_eq!(
            blob.url,
            self.azurite
                .blob_url(CONTAINER, &format!("{}.vhd", self.cloud_names()[index]))
        );
        DiskEndpoint::Blob(blob)
    }

    fn cloud_device(&self, index: usize, access: Access) -> Arc<dyn BlockDevice> {
        let writable = access == Access::ReadWrite;
        Arc::from(
            self.cloud_endpoint(index, access)
                .open(writable, None)
                .unwrap(),
        )
    }

    fn cloud_names(&self) -> Vec<String> {
        self.cloud_disks
            .iter()
            .map(|id| id.rsplit('/').next().unwrap().to_string())
            .collect()
    }

    fn onprem_power(&self) -> PowerState {
        self.adapter("onprem")
            .hypervisor_get_vm(&self.vm_id)
            .unwrap()
            .power
    }

    /// The cloud VM's power through the adapter, and as the fake ARM holds it.
    fn cloud_power(&self) -> Option<(PowerState, String)> {
        let vm_id = fake_arm::vm_id(demo::VM);
        match self.adapter("cloud").cloud_get_vm(&vm_id) {
            Ok(vm) => Some((vm.power, self.arm.power(demo::VM).unwrap())),
            Err(PluginError::Failed {
                failure: Failure::NotFound(_),
                ..
            }) => {
                assert!(self.arm.power(demo::VM).is_none());
                None
            }
            Err(e) => panic!("get-vm of the cloud VM: {e}"),
        }
    }

    fn data_disks_equal(&self) -> bool {
        fingerprint(&self.onprem_disks[1]).unwrap()
            == fingerprint(self.cloud_endpoint(1, Access::Read)).unwrap()
    }

    fn read_onprem_guest_file(&self, path: &str) -> Vec<u8> {
        guest::read_guest_file(&self.handlers, &self.onprem_disks[0], path).unwrap()
    }
}

/// The Azure adapter as the Contributor against the fake ARM, its disks in
/// Azurite's account with the account key.
fn azure_settings(arm: &FakeArm, azurite: &Azurite) -> homeward::plugin::PluginSettings {
    let mut settings = arm.plugin_settings(CONTRIBUTOR, CONTRIBUTOR_SECRET);
    settings
        .grants
        .network
        .push(homeward::config::HostPort::from_authority(
            "127.0.0.1",
            azurite.port(),
        ));
    settings
        .config
        .insert("storage-account".into(), azurite::ACCOUNT.into());
    settings
        .config
        .insert("blob-endpoint".into(), azurite.service_url());
    settings
        .config
        .insert("disk-container".into(), CONTAINER.into());
    settings.secrets.insert(
        "storage-key".into(),
        homeward::config::Secret::new(azurite::KEY),
    );
    settings
}

/// Sets `disk.EnableUUID = TRUE` on the simulator's VM `vm` with
/// `ReconfigVM_Task`, as an administrator readies a master target VM (S15).
fn enable_disk_uuid(sim: &VsphereSim, vm: &str) {
    let content = sim.soap(
        None,
        r#"<RetrieveServiceContent xmlns="urn:vim25"><_this type="ServiceInstance">ServiceInstance</_this></RetrieveServiceContent>"#,
    );
    let session_manager = content.text("sessionManager").unwrap();
    let (user, password) = sim.admin();
    let login = sim.soap(
        None,
        &format!(
            r#"<Login xmlns="urn:vim25"><_this type="SessionManager">{session_manager}</_this><userName>{user}</userName><password>{password}</password></Login>"#
        ),
    );
    assert_eq!(login.status, 200, "{}", login.body);
    let cookie = login.cookie.unwrap();
    let answer = sim.soap(
        Some(&cookie),
        &format!(
            r#"<ReconfigVM_Task xmlns="urn:vim25" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema"><_this type="VirtualMachine">{vm}</_this><spec><extraConfig xsi:type="OptionValue"><key>disk.EnableUUID</key><value xsi:type="xsd:string">TRUE</value></extraConfig></spec></ReconfigVM_Task>"#
        ),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
}

/// Writes each of `vm`'s disks as ESXi would have made them where the
/// simulator left two empty files: a monolithicFlat descriptor and a
/// full-size, sparse extent. Returns the descriptors' paths, in disk order.
fn materialize_disks(sim: &VsphereSim, vm: &homeward::plugin::adapter::Vm) -> Vec<PathBuf> {
    vm.disks
        .iter()
        .map(|disk| {
            let DiskLocator::DatastoreFile((datastore, relative)) = &disk.locator else {
                panic!("{:?}", disk.locator)
            };
            let descriptor = sim.datastore_dir(datastore).join(relative);
            let flat = descriptor.with_file_name(
                relative
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .replace(".vmdk", "-flat.vmdk"),
            );
            let empty = std::fs::metadata(&descriptor).map(|m| m.len()).unwrap_or(0) == 0;
            if empty {
                for file in [&descriptor, &flat] {
                    let _ = std::fs::remove_file(file);
                }
                homeward::disk::create(&descriptor, ImageFormat::VmdkFlat, disk.capacity_bytes)
                    .unwrap();
            }
            descriptor
        })
        .collect()
}

fn stage_ok(rt: &tokio::runtime::Runtime, lab: &RealLab, stage: Stage) -> Vec<JobRecord> {
    let started = std::time::Instant::now();
    let jobs = rt.block_on(demo::run_stage(lab, stage)).unwrap();
    eprintln!("{stage:?}: {:.2} s", started.elapsed().as_secs_f64());
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

fn step_output<'j>(job: &'j JobRecord, step: &str) -> &'j serde_json::Value {
    &job.steps
        .iter()
        .find(|s| s.name == step)
        .unwrap_or_else(|| panic!("job {} has no step {step}", job.id))
        .output
}

/// Every byte the state store holds (database and its write-ahead log).
fn store_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("homeward.db")
        {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    bytes
}

#[test]
fn failback_cycle_through_the_vcenter_and_azure_adapters() {
    let started = std::time::Instant::now();
    let lab = RealLab::create();
    eprintln!("set-up: {:.2} s", started.elapsed().as_secs_f64());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    lab.orchestrator.start().unwrap();
    let store = lab.store().clone();
    assert_eq!(lab.onprem_power(), PowerState::PoweredOn);

    // Protect: the on-premises datastore files go into the cloud's page
    // blobs; one point to the cloud, its digests recorded.
    stage_ok(&rt, &lab, Stage::Protect);
    let item = store.item(demo::VM).unwrap();
    assert_eq!(item.state, ItemState::Protected);
    assert_eq!(item.group, demo::GROUP);
    assert_eq!(item.replica.as_ref().unwrap().site, "cloud");
    for (disk, name) in item.disks.iter().zip(lab.cloud_names()) {
        // The store records the blob by its URL, never its credential.
        assert_eq!(
            disk.replica_path.as_deref(),
            Some(
                lab.azurite
                    .blob_url(CONTAINER, &format!("{name}.vhd"))
                    .as_str()
            )
        );
    }
    let points = store.points(item.id).unwrap();
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].direction, Direction::ToCloud);
    let os_digest = fingerprint(lab.cloud_endpoint(0, Access::Read)).unwrap();
    assert_eq!(
        points[0].disks[0].digest.as_deref(),
        Some(os_digest.as_str())
    );
    assert_eq!(os_digest, fingerprint(&lab.onprem_disks[0]).unwrap());
    assert!(lab.data_disks_equal());

    // Failover to the cloud: the simulator's VM is off, the fake ARM runs a
    // VM attaching the replica disks, the item swapped sides, and the
    // on-premises disks have a recorded fingerprint.
    stage_ok(&rt, &lab, Stage::FailoverToCloud);
    let item = store.item(demo::VM).unwrap();
    assert_eq!(item.state, ItemState::FailedOver);
    assert_eq!(store.site(&item.source.site).unwrap().kind, SiteKind::Cloud);
    assert_eq!(item.source.vm_id, fake_arm::vm_id(demo::VM));
    assert_eq!(item.replica.as_ref().unwrap().vm_id, lab.vm_id);
    assert_eq!(lab.onprem_power(), PowerState::PoweredOff);
    assert_eq!(
        lab.cloud_power(),
        Some((PowerState::PoweredOn, "running".to_string()))
    );
    let attached = lab
        .adapter("cloud")
        .cloud_get_vm(&item.source.vm_id)
        .unwrap();
    assert_eq!(
        attached
            .disks
            .iter()
            .map(|d| d.id.to_lowercase())
            .collect::<Vec<_>>(),
        lab.cloud_disks
            .iter()
            .map(|d| d.to_lowercase())
            .collect::<Vec<_>>()
    );
    let generations = store.generations(item.id).unwrap();
    assert!(
        generations
            .iter()
            .filter(|g| g.fingerprint.is_some())
            .count()
            >= 2,
        "{generations:?}"
    );

    // The cloud changes the guest as Azure does and writes new data, through
    // the page blobs.
    stage_ok(&rt, &lab, Stage::WriteInCloud);
    assert!(!lab.data_disks_equal(), "the cloud wrote new data");

    // Reprotect to on-premises: the original VM (it still exists), the
    // split-brain guard on both disks, only the changes sent from the blobs.
    let jobs = stage_ok(&rt, &lab, Stage::Reprotect);
    let item = store.item(demo::VM).unwrap();
    assert_eq!(item.state, ItemState::Protected);
    assert_eq!(item.group, format!("{}_Failback", demo::GROUP));
    assert_eq!(item.replica.as_ref().unwrap().vm_id, lab.vm_id);
    assert_eq!(step_output(&jobs[0], "check")["location"], "original");
    let guard = step_output(&jobs[0], "split-brain");
    assert_eq!(guard["checked"], 2);
    assert_eq!(guard["changed"].as_array().unwrap().len(), 0, "{guard}");
    let sent: u64 = jobs[0]
        .steps
        .iter()
        .filter(|s| s.name.starts_with("sync-disk"))
        .map(|s| s.output["bytes_sent"].as_u64().unwrap())
        .sum();
    assert!(
        sent < demo::DATA_DISK / 2,
        "a delta, not a full copy: {sent} bytes"
    );
    assert!(lab.data_disks_equal());

    // Failback: the cloud VM deallocated, the final sync out of its blobs,
    // the guest steps on the datastore files, the simulator's VM running the
    // cloud's data with its static address back.
    let jobs = stage_ok(&rt, &lab, Stage::Failback);
    let item = store.item(demo::VM).unwrap();
    assert_eq!(item.state, ItemState::FailedOver);
    assert_eq!(item.source.vm_id, lab.vm_id);
    assert_eq!(
        store.site(&item.source.site).unwrap().kind,
        SiteKind::OnPremises
    );
    assert_eq!(lab.onprem_power(), PowerState::PoweredOn);
    assert_eq!(
        lab.cloud_power(),
        Some((PowerState::PoweredOff, "deallocated".to_string()))
    );
    let child = jobs.iter().find(|j| j.kind == "failover-item").unwrap();
    let steps = step_output(child, "guest-steps");
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
    assert_eq!(step_output(child, "materialize")["verified"], 2);
    assert_eq!(
        lab.read_onprem_guest_file(guest::APP_DATA),
        demo::CLOUD_DATA
    );
    let ifcfg = String::from_utf8(lab.read_onprem_guest_file(guest::IFCFG)).unwrap();
    assert!(ifcfg.contains("IPADDR=10.10.0.21"), "{ifcfg}");
    assert!(lab.data_disks_equal());

    // Commit and reprotect to the cloud: protected again into the same
    // blobs, the stopped cloud VM deleted, its disks kept as the replica.
    stage_ok(&rt, &lab, Stage::CommitAndReprotect);
    let item = store.item(demo::VM).unwrap();
    assert_eq!(item.state, ItemState::Protected);
    assert_eq!(item.group, demo::GROUP);
    assert_eq!(lab.cloud_power(), None, "the stopped cloud VM is deleted");
    assert_eq!(lab.cloud_device(0, Access::Read).capacity(), demo::OS_DISK);
    assert!(lab.data_disks_equal());
    assert_eq!(
        fingerprint(&lab.onprem_disks[0]).unwrap(),
        fingerprint(lab.cloud_endpoint(0, Access::Read)).unwrap()
    );

    // No credential of either site reached the store: not in a job's
    // params, outputs, errors or events, not in the item, not in the file.
    let jobs = store
        .jobs(&JobFilter {
            state: None,
            kind: None,
            limit: None,
        })
        .unwrap();
    let recorded = format!("{:?} {:?}", jobs, store.item(demo::VM).unwrap());
    rt.block_on(lab.orchestrator.shutdown());
    let bytes = store_bytes(lab.state_dir.path());
    for secret in [azurite::KEY, CONTRIBUTOR_SECRET, lab.sim.admin().1] {
        assert!(
            !recorded.contains(secret),
            "a credential is in the store's records"
        );
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "a credential is in the store's file"
        );
    }
}

/// Syncs `source` to `target` with both roles in this process.
fn sync(
    rt: &tokio::runtime::Runtime,
    source: DiskEndpoint,
    target: DiskEndpoint,
    mode: Mode,
) -> Result<SyncOutcome, SyncError> {
    let spec = SyncSpec {
        source,
        source_format: None,
        target,
        target_format: None,
        mode,
        block_size: 1 << 20,
        compress: true,
        in_use: None,
    };
    let (progress, _watch) = tokio::sync::watch::channel(Default::default());
    rt.block_on(local::run(
        spec,
        None,
        CheckpointPolicy::default(),
        progress,
    ))
}

/// The data path on its own: a page blob as the source and as the target
/// (which must exist and be large enough, checked before anything is
/// written), deltas that send only what changed, and errors that name the
/// blob without its credential.
#[test]
fn the_data_path_reads_and_writes_page_blobs() {
    const MIB: u64 = 1 << 20;
    let azurite = Azurite::start();
    azurite.create_container(CONTAINER);
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let blob =
        |name: &str| DiskEndpoint::Blob(azurite.endpoint(CONTAINER, name, Azurite::shared_key()));

    // A file into an existing blob: a whole copy (zero blocks skipped),
    // then a delta sends only the changed block.
    let file = dir.path().join("disk.raw");
    homeward_tests::images::write_sparse(&file, 8 * MIB, &[0..MIB, 5 * MIB..6 * MIB], 7);
    drop(azurite.create_disk(CONTAINER, "replica.vhd", 8 * MIB));
    let first = sync(&rt, file.clone().into(), blob("replica.vhd"), Mode::Delta).unwrap();
    assert_eq!(first.totals.blocks_sent, 2, "{:?}", first.totals);
    assert_eq!(fingerprint(&file).unwrap(), hex(&first.root));
    assert_eq!(fingerprint(blob("replica.vhd")).unwrap(), hex(&first.root));
    {
        let disk = homeward::disk::open(&file, true, None).unwrap();
        disk.write_at(b"changed on the source", 3 * MIB + 17)
            .unwrap();
        disk.flush().unwrap();
    }
    let delta = sync(&rt, file.clone().into(), blob("replica.vhd"), Mode::Delta).unwrap();
    assert_eq!(delta.totals.blocks_sent, 1, "{:?}", delta.totals);
    assert_eq!(
        fingerprint(blob("replica.vhd")).unwrap(),
        fingerprint(&file).unwrap()
    );

    // The blob as the source of a new file.
    let back = dir.path().join("back.raw");
    let full = sync(&rt, blob("replica.vhd"), back.clone().into(), Mode::Full).unwrap();
    assert_eq!(hex(&full.root), fingerprint(&file).unwrap());
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&file).unwrap());

    // A blob target is never created, nor smaller than the source; the
    // errors name it without its key, and nothing was written.
    let missing = sync(&rt, file.clone().into(), blob("missing.vhd"), Mode::Full)
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("missing.vhd") && missing.contains("never created"),
        "{missing}"
    );
    drop(azurite.create_disk(CONTAINER, "small.vhd", 4 * MIB));
    let small = sync(&rt, file.clone().into(), blob("small.vhd"), Mode::Full)
        .unwrap_err()
        .to_string();
    assert!(small.contains("smaller than the source"), "{small}");
    assert_eq!(
        fingerprint(blob("small.vhd")).unwrap(),
        fingerprint(zero_disk(dir.path(), 4 * MIB)).unwrap()
    );
    for message in [&missing, &small] {
        assert!(!message.contains(azurite::KEY), "{message}");
    }
    // No checkpoint log was left anywhere for the blob targets.
    let logs: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".hwckpt"))
        .collect();
    assert!(logs.is_empty(), "{logs:?}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A raw file of `len` zeros (what an untouched disk reads as).
fn zero_disk(dir: &std::path::Path, len: u64) -> PathBuf {
    let path = dir.join(format!("zeros-{len}.raw"));
    std::fs::File::create(&path).unwrap().set_len(len).unwrap();
    path
}
