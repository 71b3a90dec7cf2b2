//! The whole failback cycle on the lab adapters: what `homeward demo` runs,
//! and what the end-to-end tests drive stage by stage.
//!
//! A [`DemoLab`] is a directory holding a lab site (VMDK-flat disks), a lab
//! cloud (VHD-fixed disks) and a state store, with an [`Orchestrator`] over
//! the embedded lab adapters, file-system handlers and guest steps. The
//! on-premises VM `web01` carries a real ext4 Rocky Linux root with a static
//! IP under NetworkManager ([`crate::lab::guest`]) and a data disk.
//!
//! [`Stage`]s, in order: protect to the cloud, fail over to the cloud (the
//! lab cloud then changes the guest as Azure does), write new data in the
//! cloud, reprotect to on-premises, fail back (guest post-steps run), commit
//! and reprotect to the cloud.
//!
//! [`run_stage`] runs a stage on any [`CycleLab`]: the lab here, or the real
//! adapters against a vSphere simulator and Azurite (the end-to-end test
//! `orchestrator_real_adapters`), which name their places differently and
//! reach the cloud's disks as page blobs.

use crate::config::{Grants, Secret};
use crate::embedded;
use crate::jobs::SchedulerOptions;
use crate::lab::cloud::{self as lab_cloud, LabCloud};
use crate::lab::guest::{self, DemoGuest};
use crate::lab::hypervisor::{self as lab_site, LabSite, LabVm};
use crate::plugin::{LoadedPlugin, PluginSettings, Runtime, RuntimeOptions};
use crate::store::{
    ComponentRole, ComponentState, DatastoreMount, Direction, GroupSettings, JobFilter, JobRecord,
    JobState, NewComponent, NewGroup, NewSite, PlanEntry, SiteKind, Store,
};
use crate::workflow::{
    CommitParams, Env, FailoverParams, Orchestrator, PointChoice, ReprotectParams, recorded_nic,
};
use anyhow::{Context, bail};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The demo VM.
pub const VM: &str = "web01";
/// Its group (and `PG1_Failback`, made with it).
pub const GROUP: &str = "PG1";
/// The recovery plan.
pub const PLAN: &str = "RP1";
/// Size of the OS disk (the shipped ext4 root fills its first 20 MiB).
pub const OS_DISK: u64 = 32 << 20;
/// Size of the data disk.
pub const DATA_DISK: u64 = 64 << 20;
/// What the demo writes in the cloud.
pub const CLOUD_DATA: &[u8] =
    b"order 1001: 3 x blue widget (written in the cloud after failover)\n";

/// The stages of the cycle, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Protect `web01` to the cloud (first replication).
    Protect,
    /// Planned failover to the cloud; the cloud changes the guest as Azure does.
    FailoverToCloud,
    /// New data written in the cloud.
    WriteInCloud,
    /// Reprotect to on-premises (original location, delta, split-brain guard).
    Reprotect,
    /// Planned failover to on-premises, guest post-steps.
    Failback,
    /// Commit and reprotect to the cloud (S3), the stopped cloud VM deleted.
    CommitAndReprotect,
}

impl Stage {
    /// Every stage, in order.
    pub const ALL: [Stage; 6] = [
        Stage::Protect,
        Stage::FailoverToCloud,
        Stage::WriteInCloud,
        Stage::Reprotect,
        Stage::Failback,
        Stage::CommitAndReprotect,
    ];

    /// What the stage does, for the report.
    pub fn title(self) -> &'static str {
        match self {
            Stage::Protect => "protect web01 to the cloud",
            Stage::FailoverToCloud => {
                "fail over to the cloud (the cloud changes the guest as Azure does)"
            }
            Stage::WriteInCloud => "write new data in the cloud",
            Stage::Reprotect => "reprotect to on-premises",
            Stage::Failback => "fail back to on-premises (guest post-steps)",
            Stage::CommitAndReprotect => "commit and reprotect to the cloud",
        }
    }
}

/// A lab, its store and an orchestrator over them.
pub struct DemoLab {
    /// The lab's directory.
    pub dir: PathBuf,
    /// The on-premises site.
    pub site: LabSite,
    /// The cloud.
    pub cloud: LabCloud,
    /// The control plane.
    pub orchestrator: Orchestrator,
    /// The guest's network as protection records it.
    pub guest: DemoGuest,
    // The runtime of the demo's own guest handlers (guest file reads/writes).
    handlers: crate::filesystem::FsHandlers,
    _runtime: Runtime,
}

impl DemoLab {
    /// Makes a new lab in `dir` (empty or missing): site, cloud, store,
    /// `web01` with its guest, sites, components, groups and plan.
    pub fn create(dir: &Path) -> anyhow::Result<DemoLab> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let site = LabSite::create(&dir.join("site"))?;
        LabCloud::create(&dir.join("cloud"))?;
        let mut vm = LabVm::new(VM, &[OS_DISK, DATA_DISK]);
        vm.power = lab_site::format::Power::PoweredOn;
        vm.tools_installed = true;
        vm.extra_config.insert(
            lab_site::format::ENABLE_UUID_KEY.to_string(),
            "TRUE".to_string(),
        );
        let added = site.add_vm(&vm)?;
        let os = crate::disk::open(&added.descriptors[0], true, None)?;
        guest::write_guest_disk(os.as_ref())?;
        os.flush()?;
        let data = crate::disk::open(&added.descriptors[1], true, None)?;
        write_pattern(data.as_ref(), 8 << 20, 1)?;
        data.flush()?;

        let lab = DemoLab::open(dir)?;
        register_lab(&lab.orchestrator, &lab.site)?;

        // Protect: record the VM, the NIC as the guest has it, and the
        // cloud's managed disks made for its replica.
        let items = lab
            .orchestrator
            .protect(GROUP, "onprem", std::slice::from_ref(&added.id))?;
        items.first().context("protect recorded no item")?;
        record_guest_nics(&lab.orchestrator, &lab.guest)?;
        let mut replica_disks = Vec::new();
        for (i, size) in [OS_DISK, DATA_DISK].into_iter().enumerate() {
            let name = if i == 0 {
                format!("{VM}-os")
            } else {
                format!("{VM}-data{}", i - 1)
            };
            replica_disks.push(lab.cloud.add_disk(&name, size)?.id);
        }
        lab.orchestrator
            .set_replica_disks(VM, "cloud", &replica_disks)?;
        Ok(lab)
    }

    /// Opens the lab in `dir` (made by [`DemoLab::create`]), with a new
    /// orchestrator over its store: what a restarted host does.
    pub fn open(dir: &Path) -> anyhow::Result<DemoLab> {
        let site = LabSite::open(&dir.join("site"))?;
        let cloud = LabCloud::open(&dir.join("cloud"))?;
        let store_dir = dir.join("state");
        std::fs::create_dir_all(&store_dir)?;
        let store = Arc::new(Store::open(&store_dir.join("homeward.db"))?);
        let (runtime, plugins) = lab_plugins(&site, &cloud)?;
        let env = Arc::new(Env::from_plugins(runtime, plugins));
        let orchestrator = Orchestrator::new(store, env, SchedulerOptions::default());
        let handlers_runtime = plugin_runtime()?;
        let handlers = guest::handlers(&handlers_runtime)?;
        Ok(DemoLab {
            dir: dir.to_path_buf(),
            site,
            cloud,
            orchestrator,
            guest: DemoGuest::default(),
            handlers,
            _runtime: handlers_runtime,
        })
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        self.orchestrator.store()
    }

    /// The host path of cloud disk `name`.
    pub fn cloud_disk(&self, name: &str) -> PathBuf {
        self.cloud.disk_path(name)
    }

    /// The host paths of `web01`'s on-premises disks (descriptors, in
    /// unit order): the original VM keeps them through the cycle.
    pub fn onprem_disks(&self) -> anyhow::Result<Vec<PathBuf>> {
        let dir = self.site.datastore_path("ds1").join(VM);
        let mut disks: Vec<PathBuf> = std::fs::read_dir(&dir)
            .with_context(|| format!("listing {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|e| e == "vmdk")
                    && !p.to_string_lossy().ends_with("-flat.vmdk")
            })
            .collect();
        disks.sort();
        Ok(disks)
    }

    /// Reads a guest file from a disk image.
    pub fn read_guest_file(&self, disk: &Path, path: &str) -> anyhow::Result<Vec<u8>> {
        Ok(guest::read_guest_file(&self.handlers, disk, path)?)
    }

    /// Runs one stage to its end; returns the jobs it ran (the stage's own
    /// and their children), each finished.
    pub async fn run_stage(&self, stage: Stage) -> anyhow::Result<Vec<JobRecord>> {
        run_stage(self, stage).await
    }
}

impl CycleLab for DemoLab {
    fn orchestrator(&self) -> &Orchestrator {
        &self.orchestrator
    }

    fn cloud_subnet(&self) -> String {
        self.cloud.subnet_id(lab_cloud::APP_SUBNET)
    }

    fn datastore(&self) -> String {
        "ds1".to_string()
    }

    fn account(&self) -> String {
        lab_site::ADMIN_USER.to_string()
    }

    fn write_in_cloud(&self) -> anyhow::Result<()> {
        let os = self.cloud_disk(&format!("{VM}-os"));
        let changes = guest::azure_failover_changes(&self.handlers, &os)?;
        for c in &changes {
            tracing::info!("cloud guest change: {c}");
        }
        guest::write_guest_file(&self.handlers, &os, guest::APP_DATA, CLOUD_DATA)?;
        let data = crate::disk::open(&self.cloud_disk(&format!("{VM}-data0")), true, None)?;
        write_pattern(data.as_ref(), 4 << 20, 2)?;
        data.flush()?;
        Ok(())
    }
}

/// What the stages need of a lab besides the names every cycle shares
/// ([`VM`], [`GROUP`], [`PLAN`], components `mt-01` and `ps-01`): its
/// orchestrator, where things go, and what the cloud does to the guest.
pub trait CycleLab {
    /// The control plane, with the sites, components, group, plan and the
    /// protected VM recorded.
    fn orchestrator(&self) -> &Orchestrator;
    /// The cloud subnet the VM's NIC goes in when it first fails over.
    fn cloud_subnet(&self) -> String;
    /// The on-premises datastore (name) a failback's new VM would go on.
    fn datastore(&self) -> String;
    /// The on-premises account the reprotect to on-premises records.
    fn account(&self) -> String;
    /// [`Stage::WriteInCloud`]: the cloud changes the guest as Azure does,
    /// the application writes [`CLOUD_DATA`] to [`guest::APP_DATA`], and new
    /// data lands on the data disk.
    fn write_in_cloud(&self) -> anyhow::Result<()>;
}

/// Runs one stage of the cycle on `lab` to its end; returns the jobs it ran
/// (the stage's own and their children), each finished.
pub async fn run_stage<L: CycleLab + Sync + ?Sized>(
    lab: &L,
    stage: Stage,
) -> anyhow::Result<Vec<JobRecord>> {
    let o = lab.orchestrator();
    let job = match stage {
        Stage::Protect => o.reprotect(&ReprotectParams {
            item: VM.into(),
            direction: Direction::ToCloud,
            group: None,
            master_target: None,
            process_server: Some("ps-01".into()),
            account: None,
            datastore: None,
            retention_hours: None,
            allow_overwrite: false,
        })?,
        Stage::FailoverToCloud => o.failover(&FailoverParams {
            plan: PLAN.into(),
            direction: Direction::ToCloud,
            point: PointChoice::Latest,
            planned: true,
            confirm: true,
            network: Some(lab.cloud_subnet()),
        })?,
        Stage::WriteInCloud => {
            // Plugin calls block (and some drive a runtime of their own):
            // never on an async thread.
            std::thread::scope(|scope| {
                scope
                    .spawn(|| lab.write_in_cloud())
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("writing in the cloud panicked")))
            })?;
            return Ok(Vec::new());
        }
        Stage::Reprotect => o.reprotect(&ReprotectParams {
            item: VM.into(),
            direction: Direction::ToOnPremises,
            group: None,
            master_target: Some("mt-01".into()),
            process_server: Some("ps-01".into()),
            account: Some(lab.account()),
            datastore: Some(lab.datastore()),
            retention_hours: Some(24),
            allow_overwrite: false,
        })?,
        Stage::Failback => o.failover(&FailoverParams {
            plan: PLAN.into(),
            direction: Direction::ToOnPremises,
            point: PointChoice::Latest,
            planned: true,
            confirm: true,
            network: None,
        })?,
        Stage::CommitAndReprotect => o.commit(&CommitParams {
            plan: PLAN.into(),
            direction: Direction::ToOnPremises,
            delete_source_vm: true,
        })?,
    };
    let record = o.scheduler().wait(job).await?;
    let mut jobs = vec![record];
    jobs.extend(children(o.store(), job)?);
    Ok(jobs)
}

/// Jobs a job started (a plan's per-VM jobs, a commit's reprotects),
/// oldest first, with theirs.
fn children(store: &Store, parent: i64) -> anyhow::Result<Vec<JobRecord>> {
    let all = store.jobs(&JobFilter {
        state: None,
        kind: None,
        limit: None,
    })?;
    let mut out = Vec::new();
    for job in all.iter().rev() {
        let by_commit = job.params.get("account").and_then(|v| v.as_str())
            == Some(format!("commit-job-{parent}").as_str());
        if job.parent == Some(parent) || by_commit {
            out.push(job.clone());
            out.extend(children(store, job.id)?);
        }
    }
    Ok(out)
}

/// Records a lab in the orchestrator's store, as an operator would: sites
/// `onprem` (lab-hypervisor) and `cloud` (lab-cloud), master target `mt-01`
/// (the lab's own VM on `esx-01`, with the lab's datastore mounts) and
/// process server `ps-01`, group [`GROUP`] (and its failback pair) and plan
/// [`PLAN`]; returns once both components are registered.
pub fn register_lab(orchestrator: &Orchestrator, site: &LabSite) -> anyhow::Result<()> {
    let store = orchestrator.store();
    store.add_site(&NewSite {
        name: "onprem".into(),
        kind: SiteKind::OnPremises,
        plugin: "lab-hypervisor".into(),
    })?;
    store.add_site(&NewSite {
        name: "cloud".into(),
        kind: SiteKind::Cloud,
        plugin: "lab-cloud".into(),
    })?;
    let inventory = orchestrator.discover("onprem")?;
    let host = inventory
        .hosts
        .iter()
        .find(|h| h.name == "esx-01")
        .map(|h| h.id.clone())
        .context("the lab has no host esx-01")?;
    let mt_vm = inventory
        .vms
        .iter()
        .find(|v| v.name == lab_site::MASTER_TARGET_NAME)
        .map(|v| v.id.clone())
        .context("the lab has no master target VM")?;
    let mounts = site
        .datastore_mounts()?
        .into_iter()
        .map(|(datastore, path)| DatastoreMount { datastore, path })
        .collect();
    orchestrator.register_component(&NewComponent {
        name: "mt-01".into(),
        role: ComponentRole::MasterTarget,
        site: "onprem".into(),
        address: "local".into(),
        host_id: Some(host),
        vm_id: Some(mt_vm),
        datastore_mounts: mounts,
    })?;
    orchestrator.register_component(&NewComponent {
        name: "ps-01".into(),
        role: ComponentRole::ProcessServer,
        site: "cloud".into(),
        address: "local".into(),
        host_id: None,
        vm_id: None,
        datastore_mounts: Vec::new(),
    })?;
    store.create_group(&NewGroup {
        name: GROUP.into(),
        direction: Direction::ToCloud,
        settings: GroupSettings {
            master_target: Some("mt-01".into()),
            process_server: Some("ps-01".into()),
            account: Some(lab_site::ADMIN_USER.into()),
            datastore: Some("ds1".into()),
            retention_hours: Some(24),
            consistency: false,
            ..GroupSettings::default()
        },
    })?;
    store.create_plan(PLAN, &[PlanEntry::Group { name: GROUP.into() }])?;
    wait_registered(store, &["mt-01", "ps-01"])
}

/// Waits until the components `names` are registered (registration is
/// asynchronous, S19); fails if one failed or none settles within 60 s.
pub fn wait_registered(store: &Store, names: &[&str]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    for name in names {
        loop {
            let c = store.component(name)?;
            match c.state {
                ComponentState::Registered => break,
                ComponentState::Failed => bail!("{name} failed to register: {}", c.detail),
                _ if Instant::now() > deadline => bail!("{name} is still registering after 60 s"),
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
    Ok(())
}

/// Replaces the NICs protection recorded for [`VM`] with the guest's own
/// configuration (what the guest steps restore), keeping each NIC's MAC and
/// network as the hypervisor reported them.
pub fn record_guest_nics(orchestrator: &Orchestrator, guest: &DemoGuest) -> anyhow::Result<()> {
    let item = orchestrator.store().item(VM)?;
    let mut nics = Vec::new();
    for (nic, configured) in item.nics.iter().zip(guest.recorded_nics()) {
        let mut recorded = recorded_nic(&configured);
        recorded.mac = nic.mac.clone();
        recorded.network = nic.network.clone();
        nics.push(recorded);
    }
    orchestrator.record_nics(VM, nics)?;
    Ok(())
}

/// The embedded lab adapters for `site` and `cloud`, the file-system
/// handlers (allowed to write: failback fixes the guest) and the guest steps.
pub fn lab_plugins(
    site: &LabSite,
    cloud: &LabCloud,
) -> anyhow::Result<(Runtime, Vec<LoadedPlugin>)> {
    let runtime = plugin_runtime()?;
    let secret = cloud
        .secret(lab_cloud::CONTRIBUTOR)
        .unwrap_or_else(|| Secret::new(lab_cloud::CONTRIBUTOR_SECRET));
    let mut plugins = vec![
        runtime.load(
            embedded::LAB_HYPERVISOR.wasm,
            "embedded:lab-hypervisor",
            site.settings(lab_site::ADMIN_USER, lab_site::ADMIN_PASSWORD),
        )?,
        runtime.load(
            embedded::LAB_CLOUD.wasm,
            "embedded:lab-cloud",
            cloud.settings(lab_cloud::CONTRIBUTOR, secret),
        )?,
    ];
    plugins.extend(guest_plugins(&runtime)?);
    Ok((runtime, plugins))
}

/// A plugin runtime with the operator's compile cache (`~/.cache/homeward`),
/// so the embedded plugins compile once per version, not once per lab.
pub fn plugin_runtime() -> anyhow::Result<Runtime> {
    Ok(Runtime::new(RuntimeOptions {
        cache_dir: crate::cli::plugin_set::default_cache_dir(),
        ..RuntimeOptions::default()
    })?)
}

/// The embedded file-system handlers (allowed to write: failback fixes the
/// guest) and guest steps, loaded in `runtime`: what every cycle uses
/// besides its adapters.
pub fn guest_plugins(runtime: &Runtime) -> anyhow::Result<Vec<LoadedPlugin>> {
    let mut plugins = Vec::new();
    for p in [
        embedded::FS_EXT4,
        embedded::FS_XFS,
        embedded::FS_REISERFS,
        embedded::NETWORKMANAGER_RESTORE,
        embedded::STATIC_IP_RESET,
    ] {
        let settings = PluginSettings {
            grants: Grants {
                disk_write: true,
                ..Grants::default()
            },
            ..PluginSettings::default()
        };
        plugins.push(runtime.load(p.wasm, &format!("embedded:{}", p.id), settings)?);
    }
    Ok(plugins)
}

/// Writes `len` bytes of a pattern keyed by `seed` at the start of `device`
/// (data the checks can tell apart from zeros and from other seeds).
pub fn write_pattern(
    device: &dyn crate::disk::BlockDevice,
    len: usize,
    seed: u64,
) -> std::io::Result<()> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut chunk = vec![0u8; 1 << 20];
    let mut offset = 0u64;
    while (offset as usize) < len {
        for b in chunk.iter_mut() {
            // xorshift: cheap, deterministic, not compressible.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = state as u8;
        }
        let n = chunk.len().min(len - offset as usize);
        device.write_at(&chunk[..n], offset)?;
        offset += n as u64;
    }
    Ok(())
}

/// Prints a stage's jobs: each step with its time and the bytes it moved.
pub fn print_jobs(out: &mut dyn Write, jobs: &[JobRecord]) -> std::io::Result<u64> {
    let mut total = 0;
    for job in jobs {
        writeln!(
            out,
            "  job {} {} — {}",
            job.id,
            job.summary,
            job.state.as_str()
        )?;
        for step in &job.steps {
            let ms = match (step.started_at, step.finished_at) {
                (Some(a), Some(b)) => b.saturating_sub(a),
                _ => 0,
            };
            let bytes = step
                .output
                .get("bytes_sent")
                .and_then(|v| v.as_u64())
                .filter(|_| step.name.starts_with("sync-disk"));
            let moved: u64 = step
                .output
                .get("moved")
                .and_then(|m| m.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|m| m.get("bytes_sent").and_then(|v| v.as_u64()))
                        .sum()
                })
                .unwrap_or(0);
            let bytes = bytes.unwrap_or(0) + moved;
            total += bytes;
            let moved_text = if bytes > 0 {
                format!(", {} moved", human_bytes(bytes))
            } else {
                String::new()
            };
            writeln!(out, "    {:<22} {:>8} ms{moved_text}", step.name, ms)?;
        }
        if let Some(e) = &job.error {
            writeln!(out, "    error: {e}")?;
        }
    }
    Ok(total)
}

fn human_bytes(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20))
    } else if n >= 1 << 10 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} B")
    }
}

/// True when every job of a stage succeeded.
pub fn all_succeeded(jobs: &[JobRecord]) -> bool {
    jobs.iter().all(|j| j.state == JobState::Succeeded)
}
