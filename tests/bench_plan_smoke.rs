//! The recovery-plan benchmark (`homeward::bench_plan`, issue 7) on a small
//! lab: every job of both phases succeeds, the counts of jobs and steps are
//! those of the workflows, and the report prints its figures and summary.
//! The full-size run (1000 VMs) is `#[ignore]`d: `scripts/bench-plan` is the
//! way to measure.

use homeward::bench_plan::{self, PlanBenchArgs};
use homeward::store::JobState;
use std::path::PathBuf;
use std::time::Duration;

/// Runs the benchmark on `vms` VMs (the lab kept in `dir` if given) and
/// checks what any size must hold.
fn run_checked(vms: u32, dir: Option<PathBuf>) {
    let args = PlanBenchArgs {
        vms,
        dir,
        ..PlanBenchArgs::default()
    };
    let mut progress = Vec::new();
    let report = bench_plan::run(&args, &mut progress).unwrap();
    let n = vms as usize;

    assert!(
        report.failures().is_empty(),
        "failed jobs: {:#?}",
        report.failures()
    );
    assert_eq!(report.phases.len(), 2);
    let reprotect = &report.phases[0];
    let failover = &report.phases[1];
    assert_eq!(reprotect.name, "reprotect");
    assert_eq!(failover.name, "failover");
    // Reprotect to the cloud: check, prepare-target, sync-disk-0, record-point.
    assert_eq!(
        (reprotect.figures.jobs, reprotect.figures.steps),
        (n, 4 * n)
    );
    // The plan job (confirm, choose-points, group:PG1) and one planned
    // failover-item job per VM (shutdown-source, final-sync, materialize,
    // power-on, record).
    assert_eq!(
        (failover.figures.jobs, failover.figures.steps),
        (n + 1, 5 * n + 3)
    );
    assert_eq!(
        failover.figures.work_steps,
        5 * n + 2,
        "the group step only waits"
    );
    for phase in &report.phases {
        assert_eq!(phase.figures.succeeded, phase.figures.jobs);
        assert!(phase.jobs.iter().all(|j| j.state == JobState::Succeeded));
        // One in-process mark per step that ran, but for any the clock missed.
        if report.events_missed == 0 {
            assert_eq!(
                phase.figures.in_step.len(),
                phase.figures.steps,
                "{}",
                phase.name
            );
        }
        let b = phase.figures.scheduler_per_step();
        assert!(
            b > Duration::ZERO && b < phase.figures.wall_per_step(phase.wall) * 8,
            "{}: {b:?}",
            phase.name
        );
        let baseline = phase.baseline.as_ref().unwrap();
        assert_eq!(baseline.jobs, phase.figures.jobs);
        assert!(baseline.per_step > Duration::ZERO);
    }
    // The failed-over VMs run in the cloud, one per item job.
    let item_jobs = failover
        .jobs
        .iter()
        .filter(|j| j.kind == "failover-item")
        .count();
    assert_eq!(item_jobs, n);

    let mut out = Vec::new();
    bench_plan::print_report(&report, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("(b) ÷ (c)"), "{text}");
    let summary = text
        .lines()
        .find(|l| l.starts_with("summary:"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        summary.contains(&format!("all {} jobs succeeded", 2 * n + 1)),
        "{summary}"
    );
    println!("{}{text}", String::from_utf8_lossy(&progress));
}

#[test]
fn twenty_vms_plan_runs_every_job_to_success() {
    run_checked(20, None);
}

/// The size; `HOMEWARD_BENCH_PLAN_VMS` overrides it, and
/// `HOMEWARD_BENCH_PLAN_DIR` keeps the lab there. Slow in a debug build:
/// `scripts/bench-plan` runs the release one.
#[test]
#[ignore]
fn full_size_plan_runs_every_job_to_success() {
    let vms = std::env::var("HOMEWARD_BENCH_PLAN_VMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(bench_plan::DEFAULT_VMS);
    run_checked(
        vms,
        std::env::var_os("HOMEWARD_BENCH_PLAN_DIR").map(PathBuf::from),
    );
}
