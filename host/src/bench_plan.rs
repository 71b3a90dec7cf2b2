//! `homeward bench plan` (issue 7): plans and runs a recovery plan of many
//! VMs on the lab adapters and prints what the job scheduler costs per step.
//!
//! The lab is [`crate::demo`]'s, scaled: a lab site with N VMs (one small
//! VMDK-flat disk each, [`PATTERN_BYTES`] of data written), a lab cloud with
//! one managed disk per VM, a store and an [`Orchestrator`] over the
//! embedded lab adapters, every VM protected in group `PG1` of plan `RP1`.
//! Then two phases are timed:
//! 1. `reprotect`: N reprotects to the cloud, submitted at once;
//! 2. `failover`: the plan's planned failover to the cloud, one plan job and
//!    one `failover-item` job per VM (the plan job holds one of the 8
//!    workers while it waits for them).
//!
//! Both phases' jobs hold the key of process server `ps-01`, which lets 4
//! of them run at a time; the report's "jobs running at once" shows it.
//!
//! Per phase, what the scheduler costs per step:
//! - (a) wall time ÷ steps: throughput, bodies included;
//! - (b) scheduler time per step: what a running job spends outside its
//!   step bodies, ÷ steps. The store stamps a step's `started_at` before it
//!   saves the step Running and its `finished_at` before it saves it Done,
//!   both in ms. So the time between a job's steps (and before its first,
//!   after its last) holds "save Done + step-done event", read from the
//!   stamps (ms, averaged over thousands); the other half, "save Running +
//!   step-started event", lies inside the recorded step and is measured in
//!   this process with `Instant` on the broadcast events (from the event
//!   before a step's step-started to that event);
//! - (c) the baseline: [`bench_overhead`] with as many jobs and steps per
//!   job, empty steps, in this process (the median of [`BASELINE_RUNS`]
//!   runs: on a shared machine one run can be several times another). Its
//!   figure is wall ÷ steps at 8 workers; the store is one connection behind
//!   a mutex, so that is the serial cost of one step's bookkeeping, which is
//!   what (b) measures when writers seldom queue behind each other. The
//!   ratio is (b) ÷ (c).
//!
//! The run also checks what the lab cloud made: the failed-over VMs' private
//! IPs and MACs should all differ (a count of duplicates is printed).
//!
//! The time a job waits for a worker or a key (started − created) is printed
//! apart: it is the concurrency limits at work, not the scheduler's cost.

use crate::demo::lab_plugins;
use crate::jobs::{OverheadReport, SchedulerOptions, bench_overhead};
use crate::lab::cloud::{self as lab_cloud, LabCloud};
use crate::lab::hypervisor::{self as lab_site, LabSite, LabVm};
use crate::store::{Direction, EventKind, JobFilter, JobRecord, JobState, Store};
use crate::workflow::{Env, FailoverParams, Orchestrator, PointChoice, ReprotectParams};
use anyhow::{Context, bail};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;

/// VMs in the plan unless told otherwise.
pub const DEFAULT_VMS: u32 = 1000;
/// The most VMs a run takes (the bench subnet's NICs, with room to spare).
pub const MAX_VMS: u32 = 16_000;
/// Bytes of data written at the start of each VM's disk.
pub const PATTERN_BYTES: usize = 8 << 10;
/// The group every VM is protected in.
pub const GROUP: &str = "PG1";
/// The recovery plan.
pub const PLAN: &str = "RP1";
/// The process server reprotects name (its key limits them to 4 at once).
const PROCESS_SERVER: &str = "ps-01";
/// NICs the lab cloud's `app` subnet (a /24) can hold.
const APP_SUBNET_NICS: usize = 251;
/// The subnet added for more VMs than `app` holds (16379 NICs).
const BENCH_SUBNET: &str = "bench";
const BENCH_SUBNET_PREFIX: &str = "10.20.64.0/18";
/// The job kind of one VM's failover (`workflow::failover::ITEM_KIND`).
const ITEM_KIND: &str = "failover-item";
/// VMs whose `add_vm` times are averaged at each end of the seeding.
const SEED_SAMPLE: usize = 100;
/// Baseline runs per phase (the median is kept).
pub const BASELINE_RUNS: usize = 3;

/// `homeward bench plan` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct PlanBenchArgs {
    /// VMs in the recovery plan.
    #[arg(long, default_value_t = DEFAULT_VMS, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_VMS)))]
    pub vms: u32,
    /// Size of each VM's disk: bytes or binary units (`1M` = 1 MiB, `64K`,
    /// `1MiB`); a multiple of 512, at least 8 KiB.
    #[arg(long, default_value = "1M", value_parser = parse_disk_size)]
    pub disk_size: u64,
    /// Build the lab in DIR (empty or missing) and keep it; by default a
    /// temporary directory, removed at the end.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

impl Default for PlanBenchArgs {
    fn default() -> Self {
        PlanBenchArgs {
            vms: DEFAULT_VMS,
            disk_size: 1 << 20,
            dir: None,
        }
    }
}

/// Parses a disk size: `1048576`, `64K`, `1M`, `1G`, `1MiB` (binary units:
/// disks are sized in powers of two).
pub fn parse_disk_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let factor: u64 = match unit {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`: use K, M, G (binary) or bytes"
            ));
        }
    };
    let bytes = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(|| format!("`{text}` is not a size (e.g. 1M, 64K, 1048576)"))?;
    if bytes < PATTERN_BYTES as u64 || !bytes.is_multiple_of(512) {
        return Err(format!(
            "`{text}` is not a disk size this benchmark takes: a multiple of 512 bytes, at least {} KiB",
            PATTERN_BYTES >> 10
        ));
    }
    Ok(bytes)
}

/// What setting the lab up took.
#[derive(Debug, Clone)]
pub struct SetupTimes {
    /// Seeding the site's VMs (`LabSite::add_vm` and the data written).
    pub seed: Duration,
    /// Mean `add_vm` time of the first and of the last [`SEED_SAMPLE`] VMs
    /// (it lists every VM already there, so it grows with the lab).
    pub add_vm_first: Duration,
    pub add_vm_last: Duration,
    /// The store, the plugins, sites, components, group and plan.
    pub control_plane: Duration,
    /// `Orchestrator::protect` of every VM in one call.
    pub protect: Duration,
    /// The cloud disks made and named as replicas.
    pub replica_disks: Duration,
}

/// One timed phase.
#[derive(Debug, Clone)]
pub struct Phase {
    /// `reprotect` or `failover`.
    pub name: &'static str,
    /// From the first submit until the last job finished.
    pub wall: Duration,
    /// Every job of the phase (a failover's plan job first, then its items).
    pub jobs: Vec<JobRecord>,
    /// What the figures below were computed from.
    pub figures: Figures,
    /// The median empty-step run with as many jobs and steps per job, and
    /// the fastest and slowest per-step figures of all runs.
    pub baseline: Option<OverheadReport>,
    pub baseline_spread: Option<(Duration, Duration)>,
}

/// A phase's figures (see the module docs for what each one holds).
#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// Jobs, and how many succeeded.
    pub jobs: usize,
    pub succeeded: usize,
    /// Steps recorded (run or not).
    pub steps: usize,
    /// Steps that do work (not a plan job's `group:` steps, which wait for
    /// the item jobs), and the sum of their recorded times.
    pub work_steps: usize,
    pub work_step_ms: u64,
    /// Σ over jobs of finished − started (how long they held a worker).
    pub run_ms: u64,
    /// Σ over jobs of started − created (waiting for a worker or a key).
    pub queued_ms: u64,
    /// Between consecutive steps of a job: next started − previous finished.
    pub gap_ms: u64,
    pub gaps: usize,
    /// Before a job's first step and after its last (job state and events).
    pub ends_ms: u64,
    /// Save Running + step-started event, per step, measured in process.
    pub in_step: Vec<Duration>,
    /// Per step name, in the order steps first ran: count, Σ ms, max ms
    /// (recorded times).
    pub by_step: Vec<(String, StepTotals)>,
}

/// Recorded times of the steps of one name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepTotals {
    pub count: usize,
    pub total_ms: u64,
    pub max_ms: u64,
}

impl Figures {
    /// (a) wall per step.
    pub fn wall_per_step(&self, wall: Duration) -> Duration {
        per(wall, self.steps)
    }

    /// Mean in-step bookkeeping (save Running + step-started event).
    pub fn in_step_mean(&self) -> Duration {
        let total: Duration = self.in_step.iter().sum();
        per(total, self.in_step.len())
    }

    /// (b) scheduler time per step: the time between and around steps (ms
    /// stamps) plus the in-step bookkeeping (measured in process).
    pub fn scheduler_per_step(&self) -> Duration {
        per(
            Duration::from_millis(self.gap_ms + self.ends_ms),
            self.steps,
        ) + self.in_step_mean()
    }

    /// The scheduler's share of a working step: (b) ÷ ((b) + mean body).
    pub fn scheduler_share(&self) -> f64 {
        let b = self.scheduler_per_step().as_secs_f64();
        b / (b + self.body_per_step().as_secs_f64()).max(f64::MIN_POSITIVE)
    }

    /// Mean body of a working step: its recorded time less its bookkeeping.
    pub fn body_per_step(&self) -> Duration {
        per(Duration::from_millis(self.work_step_ms), self.work_steps)
            .saturating_sub(self.in_step_mean())
    }
}

fn per(total: Duration, n: usize) -> Duration {
    total.div_f64(n.max(1) as f64)
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct PlanBenchReport {
    /// VMs in the plan.
    pub vms: usize,
    /// Each VM's disk size.
    pub disk_size: u64,
    /// Jobs running at once (scheduler default).
    pub workers: usize,
    /// Setting the lab up.
    pub setup: SetupTimes,
    /// `reprotect`, then `failover`.
    pub phases: Vec<Phase>,
    /// Broadcast events the in-process clock missed (it fell behind).
    pub events_missed: u64,
    /// Where the lab was kept (`--dir`).
    pub kept: Option<PathBuf>,
    /// Cloud VMs, and how many private IPs and MACs more than one of them has.
    pub cloud_vms: usize,
    pub duplicate_ips: usize,
    pub duplicate_macs: usize,
}

impl PlanBenchReport {
    /// Jobs that did not succeed, with their errors.
    pub fn failures(&self) -> Vec<String> {
        self.phases
            .iter()
            .flat_map(|p| p.jobs.iter().map(move |j| (p.name, j)))
            .filter(|(_, j)| j.state != JobState::Succeeded)
            .map(|(phase, j)| {
                format!(
                    "{phase}: job {} ({}) {}: {}",
                    j.id,
                    j.summary,
                    j.state.as_str(),
                    j.error.as_deref().unwrap_or("no error recorded")
                )
            })
            .collect()
    }
}

/// Runs the benchmark and prints its figures; fails (exit 1) when a job did
/// not succeed.
pub fn run_and_print(args: &PlanBenchArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let report = run(args, out)?;
    print_report(&report, out)?;
    writeln!(out, "total {:.1} s", started.elapsed().as_secs_f64())?;
    Ok(if report.failures().is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs the benchmark, saying what it does on `progress`.
pub fn run(args: &PlanBenchArgs, progress: &mut dyn Write) -> anyhow::Result<PlanBenchReport> {
    let vms = usize::try_from(args.vms).context("--vms is too large")?;
    if vms == 0 {
        bail!("--vms must be at least 1");
    }
    let needed =
        (args.disk_size as u128) * (vms as u128) + u128::from(lab_site::MASTER_TARGET_DISK);
    if needed > u128::from(lab_site::DATASTORE_CAPACITY) {
        bail!(
            "{vms} disks of {} bytes do not fit the lab datastore ds1 ({} GiB): use fewer VMs or smaller disks",
            args.disk_size,
            lab_site::DATASTORE_CAPACITY >> 30
        );
    }
    let (dir, _scratch) = match &args.dir {
        Some(dir) => {
            check_empty(dir)?;
            (dir.clone(), None)
        }
        None => {
            let scratch = tempfile::tempdir().context("creating a scratch directory")?;
            (scratch.path().to_path_buf(), Some(scratch))
        }
    };
    writeln!(
        progress,
        "building a lab of {vms} VMs ({} each) in {}",
        human_bytes(args.disk_size),
        dir.display()
    )?;
    let (lab, setup) = BenchLab::create(&dir, vms, args.disk_size, progress)?;
    let workers = SchedulerOptions::default().workers;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let clock = EventClock::start(&runtime, &lab.orchestrator);
    let phases = runtime.block_on(async {
        lab.orchestrator.start()?;
        let phases = lab.run_phases(progress).await;
        // Also after a failed phase: its jobs stop at their step's end.
        lab.orchestrator.shutdown().await;
        phases
    });
    let (marks, events_missed) = clock.stop(&runtime);
    drop(runtime);
    let mut phases = phases?;
    for phase in &mut phases {
        phase.figures = figures(&phase.jobs, &marks);
    }
    let cloud_vms = lab.cloud.vms()?;
    let duplicate_ips = duplicates(
        cloud_vms
            .iter()
            .flat_map(|vm| vm.nics.iter().map(|n| n.private_ip.clone())),
    );
    let duplicate_macs = duplicates(
        cloud_vms
            .iter()
            .flat_map(|vm| vm.nics.iter().map(|n| n.mac.to_ascii_lowercase())),
    );
    drop(lab);

    // The baselines run on their own runtime and store, after ours is gone.
    for phase in &mut phases {
        let jobs = phase.figures.jobs.max(1);
        let steps = phase.figures.steps.div_ceil(jobs).max(1);
        writeln!(
            progress,
            "baseline for {}: {jobs} jobs of {steps} empty steps, {BASELINE_RUNS} runs",
            phase.name
        )?;
        let mut runs = Vec::with_capacity(BASELINE_RUNS);
        for _ in 0..BASELINE_RUNS {
            runs.push(bench_overhead(jobs, steps)?);
        }
        runs.sort_by_key(|r| r.per_step);
        phase.baseline_spread = runs
            .first()
            .zip(runs.last())
            .map(|(a, b)| (a.per_step, b.per_step));
        phase.baseline = runs.get(runs.len() / 2).cloned();
    }
    Ok(PlanBenchReport {
        vms,
        disk_size: args.disk_size,
        workers,
        setup,
        phases,
        events_missed,
        kept: args.dir.clone(),
        cloud_vms: cloud_vms.len(),
        duplicate_ips,
        duplicate_macs,
    })
}

/// How many values occur more than once.
fn duplicates(values: impl Iterator<Item = String>) -> usize {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for v in values {
        *seen.entry(v).or_insert(0) += 1;
    }
    seen.values().filter(|n| **n > 1).count()
}

/// A directory that is missing or empty.
fn check_empty(dir: &Path) -> anyhow::Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} is not empty: name a new or empty directory for the lab",
                    dir.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("reading {}", dir.display())),
    }
}

/// The lab, its VMs and the orchestrator over them.
struct BenchLab {
    orchestrator: Orchestrator,
    cloud: LabCloud,
    /// The VMs' names (also their items' names), in seeding order.
    names: Vec<String>,
    /// The cloud subnet the failed-over VMs' NICs go in.
    network: String,
}

impl BenchLab {
    fn create(
        dir: &Path,
        vms: usize,
        disk_size: u64,
        progress: &mut dyn Write,
    ) -> anyhow::Result<(BenchLab, SetupTimes)> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let site = LabSite::create(&dir.join("site"))?;
        let mut cloud = LabCloud::create(&dir.join("cloud"))?;
        let network = if vms <= APP_SUBNET_NICS {
            cloud.subnet_id(lab_cloud::APP_SUBNET)
        } else {
            // `app` is a /24: 251 NICs.
            cloud.add_subnet(BENCH_SUBNET, BENCH_SUBNET_PREFIX)?;
            cloud.subnet_id(BENCH_SUBNET)
        };

        let started = Instant::now();
        let mut names = Vec::with_capacity(vms);
        let mut add_vm_times = Vec::with_capacity(vms);
        let mut vm_ids = Vec::with_capacity(vms);
        for i in 0..vms {
            let name = format!("vm{:05}", i + 1);
            let mut vm = LabVm::new(&name, &[disk_size]);
            vm.power = lab_site::format::Power::PoweredOn;
            vm.tools_installed = true;
            let t = Instant::now();
            let added = site.add_vm(&vm)?;
            add_vm_times.push(t.elapsed());
            let disk = added
                .descriptors
                .first()
                .context("a seeded VM has no disk")?;
            write_seed_data(disk, &name)?;
            vm_ids.push(added.id);
            names.push(name);
            if (i + 1) % 250 == 0 && i + 1 < vms {
                writeln!(
                    progress,
                    "  seeded {} VMs ({:.1} s)",
                    i + 1,
                    started.elapsed().as_secs_f64()
                )?;
            }
        }
        let seed = started.elapsed();
        let sample = SEED_SAMPLE.min(vms);
        let add_vm_first = per(add_vm_times[..sample].iter().sum(), sample);
        let add_vm_last = per(add_vm_times[vms - sample..].iter().sum(), sample);
        writeln!(
            progress,
            "  seeded {vms} VMs in {:.1} s",
            seed.as_secs_f64()
        )?;

        let started = Instant::now();
        let orchestrator = control_plane(dir, &site, &cloud)?;
        let control_plane = started.elapsed();

        let started = Instant::now();
        orchestrator.protect(GROUP, "onprem", &vm_ids)?;
        let protect = started.elapsed();
        writeln!(
            progress,
            "  protected {vms} VMs in {:.1} s",
            protect.as_secs_f64()
        )?;

        let started = Instant::now();
        for name in &names {
            let disk = cloud.add_disk(&format!("{name}-os"), disk_size)?;
            orchestrator.set_replica_disks(name, "cloud", &[disk.id])?;
        }
        let replica_disks = started.elapsed();
        writeln!(
            progress,
            "  made {vms} cloud disks in {:.1} s",
            replica_disks.as_secs_f64()
        )?;

        let lab = BenchLab {
            orchestrator,
            cloud,
            names,
            network,
        };
        let times = SetupTimes {
            seed,
            add_vm_first,
            add_vm_last,
            control_plane,
            protect,
            replica_disks,
        };
        Ok((lab, times))
    }

    /// Both phases, in order.
    async fn run_phases(&self, progress: &mut dyn Write) -> anyhow::Result<Vec<Phase>> {
        writeln!(
            progress,
            "phase 1: {} reprotects to the cloud, submitted at once",
            self.names.len()
        )?;
        let reprotect = self.reprotect_all().await?;
        writeln!(progress, "phase 2: planned failover of {PLAN} to the cloud")?;
        let failover = self.fail_over_plan().await?;
        Ok(vec![reprotect, failover])
    }

    /// Phase 1: every VM reprotected to the cloud, all submitted at once.
    async fn reprotect_all(&self) -> anyhow::Result<Phase> {
        let o = &self.orchestrator;
        let started = Instant::now();
        let mut ids = Vec::with_capacity(self.names.len());
        for name in &self.names {
            ids.push(o.reprotect(&ReprotectParams {
                item: name.clone(),
                direction: Direction::ToCloud,
                group: None,
                master_target: None,
                process_server: Some(PROCESS_SERVER.into()),
                account: None,
                datastore: None,
                retention_hours: None,
                allow_overwrite: false,
            })?);
        }
        let mut jobs = Vec::with_capacity(ids.len());
        for id in ids {
            jobs.push(o.scheduler().wait(id).await?);
        }
        Ok(Phase {
            name: "reprotect",
            wall: started.elapsed(),
            jobs,
            figures: Figures::default(),
            baseline: None,
            baseline_spread: None,
        })
    }

    /// Phase 2: the plan's planned failover to the cloud.
    async fn fail_over_plan(&self) -> anyhow::Result<Phase> {
        let o = &self.orchestrator;
        let started = Instant::now();
        let plan_job = o.failover(&FailoverParams {
            plan: PLAN.into(),
            direction: Direction::ToCloud,
            point: PointChoice::Latest,
            planned: true,
            confirm: true,
            network: Some(self.network.clone()),
        })?;
        let plan = o.scheduler().wait(plan_job).await?;
        let wall = started.elapsed();
        let mut jobs = vec![plan];
        let items = o.store().jobs(&JobFilter {
            state: None,
            kind: Some(ITEM_KIND.to_string()),
            limit: None,
        })?;
        let mut items: Vec<JobRecord> = items
            .into_iter()
            .filter(|j| j.parent == Some(plan_job))
            .collect();
        items.sort_by_key(|j| j.id);
        jobs.extend(items);
        Ok(Phase {
            name: "failover",
            wall,
            jobs,
            figures: Figures::default(),
            baseline: None,
            baseline_spread: None,
        })
    }
}

/// Writes [`PATTERN_BYTES`] of data keyed by the VM's name at the start of
/// its disk (incompressible, different for every VM).
fn write_seed_data(descriptor: &Path, name: &str) -> anyhow::Result<()> {
    let mut data = vec![0u8; PATTERN_BYTES];
    blake3::Hasher::new()
        .update(name.as_bytes())
        .finalize_xof()
        .fill(&mut data);
    let device = crate::disk::open(descriptor, true, None)?;
    device
        .write_at(&data, 0)
        .and_then(|()| device.flush())
        .with_context(|| format!("writing {}", descriptor.display()))
}

/// The store, the orchestrator over the embedded lab adapters, and the
/// control plane's records: sites, components (registered), group, plan
/// (as [`crate::demo::DemoLab::create`] makes them).
fn control_plane(dir: &Path, site: &LabSite, cloud: &LabCloud) -> anyhow::Result<Orchestrator> {
    let store_dir = dir.join("state");
    std::fs::create_dir_all(&store_dir)
        .with_context(|| format!("creating {}", store_dir.display()))?;
    let store = Arc::new(Store::open(&store_dir.join("homeward.db"))?);
    let (runtime, plugins) = lab_plugins(site, cloud)?;
    let env = Arc::new(Env::from_plugins(runtime, plugins));
    let orchestrator = Orchestrator::new(store.clone(), env, SchedulerOptions::default());

    // The lab's sites, components, group and plan, as the demo records them.
    crate::demo::register_lab(&orchestrator, site)?;
    Ok(orchestrator)
}

/// When this process saw a job's events (the kinds that bound its steps).
#[derive(Debug, Clone, Copy)]
struct Mark {
    job: i64,
    kind: EventKind,
    step: Option<u32>,
    at: Instant,
}

/// Stamps the scheduler's broadcast events with `Instant` as they arrive.
struct EventClock {
    marks: Arc<Mutex<Vec<Mark>>>,
    missed: Arc<Mutex<u64>>,
    task: tokio::task::JoinHandle<()>,
}

impl EventClock {
    fn start(runtime: &tokio::runtime::Runtime, orchestrator: &Orchestrator) -> EventClock {
        let mut events = orchestrator.scheduler().subscribe();
        let marks = Arc::new(Mutex::new(Vec::new()));
        let missed = Arc::new(Mutex::new(0));
        let (task_marks, task_missed) = (marks.clone(), missed.clone());
        let task = runtime.spawn(async move {
            loop {
                match events.recv().await {
                    Ok(event) => {
                        let at = Instant::now();
                        if matches!(
                            event.kind,
                            EventKind::JobStarted | EventKind::StepStarted | EventKind::StepDone
                        ) {
                            let mark = Mark {
                                job: event.job_id,
                                kind: event.kind,
                                step: event.step,
                                at,
                            };
                            task_marks
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push(mark);
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        *task_missed.lock().unwrap_or_else(|e| e.into_inner()) += n
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        });
        EventClock {
            marks,
            missed,
            task,
        }
    }

    /// Stops stamping; returns the marks (in arrival order) and how many
    /// events were missed.
    fn stop(self, runtime: &tokio::runtime::Runtime) -> (Vec<Mark>, u64) {
        self.task.abort();
        let _ = runtime.block_on(self.task);
        let marks = std::mem::take(&mut *self.marks.lock().unwrap_or_else(|e| e.into_inner()));
        let missed = *self.missed.lock().unwrap_or_else(|e| e.into_inner());
        (marks, missed)
    }
}

/// A phase's figures from its jobs' records and the event marks.
fn figures(jobs: &[JobRecord], marks: &[Mark]) -> Figures {
    let mut f = Figures {
        jobs: jobs.len(),
        succeeded: jobs
            .iter()
            .filter(|j| j.state == JobState::Succeeded)
            .count(),
        ..Figures::default()
    };
    for job in jobs {
        f.steps += job.steps.len();
        if let Some(started) = job.started_at {
            f.queued_ms += started.saturating_sub(job.created_at);
        }
        // Steps that ran to an end, with their stamps.
        let ran: Vec<(&str, u64, u64)> = job
            .steps
            .iter()
            .filter_map(|s| Some((s.name.as_str(), s.started_at?, s.finished_at?)))
            .collect();
        for &(name, started, finished) in &ran {
            let ms = finished.saturating_sub(started);
            let position = match f.by_step.iter().position(|(n, _)| n == name) {
                Some(position) => position,
                None => {
                    f.by_step.push((name.to_string(), StepTotals::default()));
                    f.by_step.len() - 1
                }
            };
            let totals = &mut f.by_step[position].1;
            totals.count += 1;
            totals.total_ms += ms;
            totals.max_ms = totals.max_ms.max(ms);
            if !name.starts_with("group:") {
                f.work_steps += 1;
                f.work_step_ms += ms;
            }
        }
        for pair in ran.windows(2) {
            f.gap_ms += pair[1].1.saturating_sub(pair[0].2);
            f.gaps += 1;
        }
        if let (Some(started), Some(finished), Some(first), Some(last)) =
            (job.started_at, job.finished_at, ran.first(), ran.last())
        {
            f.run_ms += finished.saturating_sub(started);
            f.ends_ms += first.1.saturating_sub(started) + finished.saturating_sub(last.2);
        }
    }
    f.in_step = in_step_times(jobs, marks);
    f
}

/// Per step: from the event before its step-started (job-started, or the
/// previous step's step-done) to it, as this process saw them.
fn in_step_times(jobs: &[JobRecord], marks: &[Mark]) -> Vec<Duration> {
    let wanted: HashMap<i64, ()> = jobs.iter().map(|j| (j.id, ())).collect();
    let mut last: HashMap<i64, Mark> = HashMap::new();
    let mut out = Vec::new();
    for mark in marks.iter().filter(|m| wanted.contains_key(&m.job)) {
        if mark.kind == EventKind::StepStarted
            && let (Some(prev), Some(step)) = (last.get(&mark.job), mark.step)
        {
            let follows = match prev.kind {
                EventKind::JobStarted => step == 0,
                EventKind::StepDone => prev.step.map(|p| p + 1) == Some(step),
                _ => false,
            };
            if follows {
                out.push(mark.at.duration_since(prev.at));
            }
        }
        last.insert(mark.job, *mark);
    }
    out
}

/// Prints the setup, one column per phase, the step breakdown and a summary.
pub fn print_report(r: &PlanBenchReport, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "\nplan benchmark: {} VMs, one {} disk each ({} KiB written), lab adapters, {} workers; \
         jobs hold {PROCESS_SERVER}, which runs 4 at once",
        r.vms,
        human_bytes(r.disk_size),
        PATTERN_BYTES >> 10,
        r.workers
    )?;
    let s = &r.setup;
    writeln!(out, "setup")?;
    writeln!(
        out,
        "  seed site VMs        {:>8.2} s   add_vm: {:.2} ms each for the first {n}, {:.2} ms for the last {n}",
        s.seed.as_secs_f64(),
        ms(s.add_vm_first),
        ms(s.add_vm_last),
        n = SEED_SAMPLE.min(r.vms)
    )?;
    writeln!(
        out,
        "  store, plugins, plan {:>8.2} s",
        s.control_plane.as_secs_f64()
    )?;
    writeln!(
        out,
        "  protect (one call)   {:>8.2} s",
        s.protect.as_secs_f64()
    )?;
    writeln!(
        out,
        "  cloud replica disks  {:>8.2} s",
        s.replica_disks.as_secs_f64()
    )?;

    let cols: Vec<&Phase> = r.phases.iter().collect();
    let row = |out: &mut dyn Write,
               label: &str,
               cell: &dyn Fn(&Phase) -> String|
     -> std::io::Result<()> {
        write!(out, "{label:<44}")?;
        for p in &cols {
            write!(out, " {:>22}", cell(p))?;
        }
        writeln!(out)
    };
    writeln!(out)?;
    row(out, "phase", &|p| p.name.to_string())?;
    row(out, "jobs (succeeded)", &|p| {
        format!("{} ({})", p.figures.jobs, p.figures.succeeded)
    })?;
    row(out, "steps", &|p| p.figures.steps.to_string())?;
    row(out, "wall time", &|p| {
        format!("{:.2} s", p.wall.as_secs_f64())
    })?;
    row(out, "jobs running at once (mean)", &|p| {
        format!(
            "{:.2}",
            p.figures.run_ms as f64 / 1000.0 / p.wall.as_secs_f64().max(1e-9)
        )
    })?;
    row(out, "Σ step time, working steps", &|p| {
        format!(
            "{:.2} s ({})",
            p.figures.work_step_ms as f64 / 1000.0,
            p.figures.work_steps
        )
    })?;
    row(out, "  mean step body (less in-step bookkeeping)", &|p| {
        format!("{:.3} ms", ms(p.figures.body_per_step()))
    })?;
    row(out, "queued per job: started − created (mean)", &|p| {
        format!(
            "{:.1} ms",
            p.figures.queued_ms as f64 / p.figures.jobs.max(1) as f64
        )
    })?;
    row(out, "gap between steps: ms stamps (mean, n)", &|p| {
        format!(
            "{:.3} ms ({})",
            p.figures.gap_ms as f64 / p.figures.gaps.max(1) as f64,
            p.figures.gaps
        )
    })?;
    row(out, "job lead + tail: ms stamps (mean per job)", &|p| {
        format!(
            "{:.3} ms",
            p.figures.ends_ms as f64 / p.figures.jobs.max(1) as f64
        )
    })?;
    row(out, "in-step bookkeeping: Instant (mean, n)", &|p| {
        format!(
            "{:.3} ms ({})",
            ms(p.figures.in_step_mean()),
            p.figures.in_step.len()
        )
    })?;
    row(out, "(a) wall time per step", &|p| {
        format!("{:.3} ms", ms(p.figures.wall_per_step(p.wall)))
    })?;
    row(out, "(b) scheduler time per step", &|p| {
        format!("{:.3} ms", ms(p.figures.scheduler_per_step()))
    })?;
    row(
        out,
        "    share of a working step: (b) ÷ ((b) + body)",
        &|p| format!("{:.1} %", 100.0 * p.figures.scheduler_share()),
    )?;
    row(
        out,
        "(c) baseline per step (empty steps)",
        &|p| match &p.baseline {
            Some(b) => format!("{:.3} ms", ms(b.per_step)),
            None => "-".to_string(),
        },
    )?;
    row(
        out,
        "    median run (jobs × steps)",
        &|p| match &p.baseline {
            Some(b) => format!("{}×{} in {:.2} s", b.jobs, b.steps, b.elapsed.as_secs_f64()),
            None => "-".to_string(),
        },
    )?;
    row(
        out,
        &format!("    fastest – slowest of {BASELINE_RUNS} runs"),
        &|p| match p.baseline_spread {
            Some((a, b)) => format!("{:.3} – {:.3} ms", ms(a), ms(b)),
            None => "-".to_string(),
        },
    )?;
    row(out, "(b) ÷ (c)", &|p| {
        ratio(p).map_or_else(|| "-".to_string(), |x| format!("{x:.2}"))
    })?;
    row(out, "(a) ÷ (c)", &|p| match &p.baseline {
        Some(b) => format!(
            "{:.1}",
            ms(p.figures.wall_per_step(p.wall)) / ms(b.per_step).max(1e-9)
        ),
        None => "-".to_string(),
    })?;
    if r.events_missed > 0 {
        writeln!(
            out,
            "(the in-process clock missed {} events; steps without both marks are left out)",
            r.events_missed
        )?;
    }

    for p in &r.phases {
        writeln!(
            out,
            "\n{} steps (recorded times){:>14} {:>10} {:>10}",
            p.name, "count", "mean ms", "max ms"
        )?;
        for (name, t) in &p.figures.by_step {
            let note = if name.starts_with("group:") {
                "  (waits for the item jobs)"
            } else {
                ""
            };
            writeln!(
                out,
                "  {name:<34} {:>10} {:>10.2} {:>10}{note}",
                t.count,
                t.total_ms as f64 / t.count.max(1) as f64,
                t.max_ms
            )?;
        }
    }

    writeln!(
        out,
        "\nlab cloud check: {} VMs, {} private IPs and {} MACs held by more than one{}",
        r.cloud_vms,
        r.duplicate_ips,
        r.duplicate_macs,
        if r.duplicate_ips + r.duplicate_macs > 0 {
            " (WRONG: lab-cloud create-vm reads and writes its counters and NICs without a lock, so concurrent calls race)"
        } else {
            ""
        }
    )?;
    let failures = r.failures();
    for f in failures.iter().take(10) {
        writeln!(out, "FAILED {f}")?;
    }
    if failures.len() > 10 {
        writeln!(out, "... and {} more failed jobs", failures.len() - 10)?;
    }
    let jobs: usize = r.phases.iter().map(|p| p.figures.jobs).sum();
    let list =
        |f: &dyn Fn(&Phase) -> String| r.phases.iter().map(f).collect::<Vec<_>>().join(" / ");
    writeln!(
        out,
        "\nsummary: {} VMs; {} wall {}; scheduler per step (b) {} ms ({} of a step) vs baseline (c) {} ms, \
         ratio {}; {}",
        r.vms,
        list(&|p| p.name.to_string()),
        list(&|p| format!("{:.1} s", p.wall.as_secs_f64())),
        list(&|p| format!("{:.3}", ms(p.figures.scheduler_per_step()))),
        list(&|p| format!("{:.1} %", 100.0 * p.figures.scheduler_share())),
        list(&|p| p
            .baseline
            .as_ref()
            .map_or_else(|| "-".to_string(), |b| format!("{:.3}", ms(b.per_step)))),
        list(&|p| ratio(p).map_or_else(|| "-".to_string(), |x| format!("{x:.2}"))),
        if failures.is_empty() {
            format!("all {jobs} jobs succeeded")
        } else {
            format!("{} of {jobs} jobs did not succeed", failures.len())
        }
    )?;
    if let Some(dir) = &r.kept {
        writeln!(
            out,
            "lab kept in {} (store: state/homeward.db)",
            dir.display()
        )?;
    }
    Ok(())
}

/// (b) ÷ (c) of a phase.
fn ratio(p: &Phase) -> Option<f64> {
    let base = ms(p.baseline.as_ref()?.per_step);
    (base > 0.0).then(|| ms(p.figures.scheduler_per_step()) / base)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn human_bytes(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_sizes_parse_in_binary_units() {
        assert_eq!(parse_disk_size("1M"), Ok(1 << 20));
        assert_eq!(parse_disk_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_disk_size("64K"), Ok(64 << 10));
        assert_eq!(parse_disk_size("8192"), Ok(8192));
        assert!(
            parse_disk_size("4K").is_err(),
            "smaller than the data written"
        );
        assert!(parse_disk_size("10000").is_err(), "not a multiple of 512");
        assert!(parse_disk_size("1T").is_err());
        assert!(parse_disk_size("M").is_err());
        assert!(parse_disk_size("99999999999999999999G").is_err());
    }

    fn job(id: i64, created: u64, started: u64, finished: u64, steps: &[(u64, u64)]) -> JobRecord {
        JobRecord {
            id,
            kind: "test".into(),
            summary: String::new(),
            params: serde_json::Value::Null,
            state: JobState::Succeeded,
            steps: steps
                .iter()
                .enumerate()
                .map(|(i, (a, b))| crate::store::StepRecord {
                    index: u32::try_from(i).unwrap(),
                    name: format!("s{i}"),
                    state: crate::store::StepState::Done,
                    attempts: 1,
                    output: serde_json::Value::Null,
                    error: None,
                    started_at: Some(*a),
                    finished_at: Some(*b),
                })
                .collect(),
            resources: Vec::new(),
            parent: None,
            error: None,
            cancel_requested: false,
            created_at: created,
            started_at: Some(started),
            finished_at: Some(finished),
        }
    }

    #[test]
    fn figures_split_queue_gaps_and_ends() {
        // Queued 5 ms; lead 1; steps 10 and 20 with a 3 ms gap; tail 2.
        let j = job(1, 100, 105, 141, &[(106, 116), (119, 139)]);
        let f = figures(&[j], &[]);
        assert_eq!((f.jobs, f.succeeded, f.steps), (1, 1, 2));
        assert_eq!(f.queued_ms, 5);
        assert_eq!((f.gap_ms, f.gaps), (3, 1));
        assert_eq!(f.ends_ms, 3);
        assert_eq!(f.run_ms, 36);
        assert_eq!((f.work_steps, f.work_step_ms), (2, 30));
        // (3 + 3) ms over 2 steps, nothing measured in process.
        assert_eq!(f.scheduler_per_step(), Duration::from_millis(3));
    }

    #[test]
    fn in_step_times_pair_each_step_started_with_the_event_before() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mark = |job, kind, step, ms| Mark {
            job,
            kind,
            step,
            at: at(ms),
        };
        let marks = [
            mark(1, EventKind::JobStarted, None, 0),
            mark(2, EventKind::JobStarted, None, 1),
            mark(1, EventKind::StepStarted, Some(0), 2),
            mark(1, EventKind::StepDone, Some(0), 10),
            mark(1, EventKind::StepStarted, Some(1), 13),
            // Job 2's step 0 has no step-started (missed): its step 1 pairs with nothing.
            mark(2, EventKind::StepDone, Some(0), 20),
            mark(2, EventKind::StepStarted, Some(2), 30),
            // Job 3 is not in this phase.
            mark(3, EventKind::JobStarted, None, 40),
            mark(3, EventKind::StepStarted, Some(0), 50),
        ];
        let jobs = [job(1, 0, 0, 0, &[]), job(2, 0, 0, 0, &[])];
        let times = in_step_times(&jobs, &marks);
        assert_eq!(
            times,
            vec![Duration::from_millis(2), Duration::from_millis(3)]
        );
    }
}
