//! A scheduler killed with `kill -9` in the middle of a step: the next one
//! resumes the job at that step, without running the steps saved done again.
//!
//! The killed scheduler runs in a child process: this test binary re-executed
//! so that it runs only `resume_child_entry` (ignored in normal runs), which
//! does the child's work when `HOMEWARD_TEST_JOBS_CHILD_DIR` is set.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use homeward::jobs::{PreparedJob, Scheduler, SchedulerOptions, StepContext, StepError, Workflow};
use homeward::store::{EventKind, JobFilter, JobState, StepState, Store};
use serde_json::{Value, json};

const CHILD_DIR_VAR: &str = "HOMEWARD_TEST_JOBS_CHILD_DIR";

/// Four steps; each appends its name to `steps.log`. Step 3 on its first
/// attempt writes `step3.started` and then sleeps far longer than any test.
struct Migration {
    dir: PathBuf,
}

impl Migration {
    fn log_path(dir: &Path) -> PathBuf {
        dir.join("steps.log")
    }

    fn marker_path(dir: &Path) -> PathBuf {
        dir.join("step3.started")
    }
}

impl Workflow for Migration {
    fn kind(&self) -> &'static str {
        "migration"
    }

    fn prepare(&self, params: &Value) -> Result<PreparedJob, StepError> {
        Ok(PreparedJob {
            steps: ["step1", "step2", "step3", "step4"]
                .map(String::from)
                .to_vec(),
            resources: vec![format!(
                "mt:{}",
                params["target"].as_str().unwrap_or("mt-01")
            )],
            summary: "migrate web01".to_string(),
            parent: None,
        })
    }

    fn run_step(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(Self::log_path(&self.dir))
            .map_err(|e| StepError::Failed(e.to_string()))?;
        writeln!(log, "{} attempt {}", ctx.step_name(), ctx.attempt())
            .map_err(|e| StepError::Failed(e.to_string()))?;
        if ctx.step_name() == "step3" && ctx.attempt() == 1 {
            std::fs::write(Self::marker_path(&self.dir), "step3 started")
                .map_err(|e| StepError::Failed(e.to_string()))?;
            std::thread::sleep(Duration::from_secs(600));
        }
        let earlier = match ctx.step_index() {
            0 => Value::Null,
            i => ctx
                .output_of(&format!("step{i}"))
                .cloned()
                .ok_or_else(|| StepError::Failed(format!("no output of step{i}")))?,
        };
        Ok(json!({ "step": ctx.step_name(), "earlier": earlier }))
    }
}

#[test]
#[ignore = "entry point of the child process, run by the other tests"]
fn resume_child_entry() {
    let Ok(dir) = std::env::var(CHILD_DIR_VAR) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = Arc::new(Store::open(&dir.join("homeward.db")).unwrap());
        let scheduler = Scheduler::new(
            store,
            vec![Arc::new(Migration { dir: dir.clone() })],
            SchedulerOptions::default(),
        );
        scheduler.start().unwrap();
        let id = scheduler
            .submit("migration", json!({ "target": "mt-01" }))
            .unwrap();
        // Killed long before this returns.
        let _ = scheduler.wait(id).await;
    });
    std::process::exit(3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_killed_mid_step_resumes_at_that_step_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "resume_child_entry",
            "--exact",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_VAR, dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let marker = Migration::marker_path(dir.path());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !marker.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the child scheduler exited ({status}) before step 3 started");
        }
        assert!(
            Instant::now() < deadline,
            "step 3 never started in the child"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL: nothing of the child's runs after this
    let status = child.wait().unwrap();
    assert!(!status.success());

    let store = Arc::new(Store::open(&dir.path().join("homeward.db")).unwrap());
    let jobs = store.jobs(&JobFilter::default()).unwrap();
    assert_eq!(jobs.len(), 1);
    let before = &jobs[0];
    assert_eq!(before.state, JobState::Running);
    let states: Vec<(StepState, u32)> =
        before.steps.iter().map(|s| (s.state, s.attempts)).collect();
    assert_eq!(
        states,
        [
            (StepState::Done, 1),
            (StepState::Done, 1),
            (StepState::Running, 1),
            (StepState::Pending, 0)
        ]
    );

    let scheduler = Scheduler::new(
        store.clone(),
        vec![Arc::new(Migration {
            dir: dir.path().to_path_buf(),
        })],
        SchedulerOptions::default(),
    );
    scheduler.start().unwrap();
    let job = tokio::time::timeout(Duration::from_secs(30), scheduler.wait(before.id))
        .await
        .unwrap()
        .unwrap();

    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    let log = std::fs::read_to_string(Migration::log_path(dir.path())).unwrap();
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        [
            "step1 attempt 1",
            "step2 attempt 1",
            "step3 attempt 1",
            "step3 attempt 2",
            "step4 attempt 1"
        ],
        "steps 1 and 2 ran once, step 3 again"
    );
    let attempts: Vec<u32> = job.steps.iter().map(|s| s.attempts).collect();
    assert_eq!(attempts, [1, 1, 2, 1]);
    // Outputs saved before the kill reach the steps after it.
    assert_eq!(
        job.steps[3].output,
        json!({ "step": "step4", "earlier": { "step": "step3", "earlier": { "step": "step2",
            "earlier": { "step": "step1", "earlier": null } } } })
    );
    assert_eq!(
        job.started_at, before.started_at,
        "the job is not started over"
    );

    let events = store.events(job.id, 0).unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
    let lines: Vec<(EventKind, &str)> = events
        .iter()
        .map(|e| (e.kind, e.message.as_str()))
        .collect();
    assert_eq!(
        lines,
        [
            (EventKind::JobStarted, "migrate web01"),
            (EventKind::StepStarted, "step1"),
            (EventKind::StepDone, "step1"),
            (EventKind::StepStarted, "step2"),
            (EventKind::StepDone, "step2"),
            (EventKind::StepStarted, "step3"),
            (
                EventKind::Log,
                "resumed after a restart at step 3 of 4 (step3)"
            ),
            (EventKind::StepStarted, "step3 (attempt 2)"),
            (EventKind::StepDone, "step3"),
            (EventKind::StepStarted, "step4"),
            (EventKind::StepDone, "step4"),
            (EventKind::JobFinished, "succeeded"),
        ]
    );
    scheduler.shutdown().await;
}
