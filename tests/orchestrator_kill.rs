//! A host killed with `kill -9` in the middle of a failback reprotect picks
//! the job up on restart at the step it was in (not from the start) and
//! finishes it with the on-premises disks identical to the cloud's.
//!
//! The host is this test binary re-executed: its `host_entry` opens the lab,
//! starts the orchestrator (which resumes unfinished jobs), submits the
//! reprotect if none exists, and prints each step as it starts.

use homeward::demo::{self, DemoLab, Stage};
use homeward::store::{Direction, JobFilter, JobState};
use homeward::workflow::{ReprotectParams, fingerprint};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

const LAB_VAR: &str = "HOMEWARD_TEST_KILL_LAB";

#[test]
#[ignore = "entry point of the host child process, run by the other test"]
fn host_entry() {
    let Ok(dir) = std::env::var(LAB_VAR) else {
        return;
    };
    let lab = DemoLab::open(std::path::Path::new(&dir)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let mut events = lab.orchestrator.scheduler().subscribe();
    lab.orchestrator.start().unwrap();
    let id = lab
        .orchestrator
        .reprotect(&ReprotectParams {
            item: demo::VM.into(),
            direction: Direction::ToOnPremises,
            group: None,
            master_target: Some("mt-01".into()),
            process_server: Some("ps-01".into()),
            account: None,
            datastore: Some("ds1".into()),
            retention_hours: None,
            allow_overwrite: false,
        })
        .unwrap();
    let steps = lab.store().job(id).unwrap().steps;
    rt.block_on(async {
        let mut out = std::io::stdout();
        while let Ok(event) = events.recv().await {
            if event.job_id == id && event.kind == homeward::store::EventKind::StepStarted {
                let name = event
                    .step
                    .and_then(|i| steps.get(i as usize))
                    .map(|s| s.name.clone())
                    .unwrap_or_default();
                writeln!(out, "step-started {name}").unwrap();
                out.flush().unwrap();
            }
        }
    });
}

#[test]
fn kill_9_during_failback_resumes_and_finishes_with_identical_data() {
    let dir = tempfile::tempdir().unwrap();
    {
        let lab = DemoLab::create(dir.path()).unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let _guard = rt.enter();
        lab.orchestrator.start().unwrap();
        for stage in [Stage::Protect, Stage::FailoverToCloud, Stage::WriteInCloud] {
            let jobs = rt.block_on(lab.run_stage(stage)).unwrap();
            assert!(demo::all_succeeded(&jobs), "{stage:?}");
        }
        // Enough new data in the cloud that the kill lands mid-transfer.
        let data = homeward::disk::open(&lab.cloud_disk("web01-data0"), true, None).unwrap();
        demo::write_pattern(data.as_ref(), 48 << 20, 3).unwrap();
        data.flush().unwrap();
        rt.block_on(lab.orchestrator.shutdown());
    }

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "host_entry",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(LAB_VAR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(step) = line.strip_prefix("step-started ") {
            seen.push(step.to_string());
            if step == "sync-disk-1" {
                child.kill().unwrap(); // SIGKILL: no cleanup runs.
                break;
            }
        }
    }
    child.wait().unwrap();
    assert_eq!(
        seen.last().map(String::as_str),
        Some("sync-disk-1"),
        "{seen:?}"
    );

    // Restart: the job resumes where it was.
    let lab = DemoLab::open(dir.path()).unwrap();
    let job = lab
        .store()
        .jobs(&JobFilter {
            state: None,
            kind: Some("reprotect".into()),
            limit: None,
        })
        .unwrap()
        .into_iter()
        .find(|j| j.params["direction"] == "to-on-premises")
        .unwrap();
    assert_eq!(job.state, JobState::Running, "killed mid-job");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    lab.orchestrator.start().unwrap();
    let done = rt
        .block_on(lab.orchestrator.scheduler().wait(job.id))
        .unwrap();
    assert_eq!(done.state, JobState::Succeeded, "{:?}", done.error);
    let attempts = |name: &str| done.steps.iter().find(|s| s.name == name).unwrap().attempts;
    assert_eq!(attempts("check"), 1, "done steps are not run again");
    assert_eq!(attempts("sync-disk-0"), 1);
    assert_eq!(attempts("sync-disk-1"), 2, "the interrupted step ran again");

    let onprem = lab.onprem_disks().unwrap();
    let cloud = lab.cloud_disk("web01-data0");
    assert_eq!(
        fingerprint(&onprem[1]).unwrap(),
        fingerprint(&cloud).unwrap()
    );
    // And by qemu-img, which reads both formats itself.
    let compare = Command::new("qemu-img")
        .args(["compare", "-f", "vmdk", "-F", "vpc"])
        .arg(&onprem[1])
        .arg(&cloud)
        .output()
        .unwrap();
    assert!(
        compare.status.success(),
        "{}",
        String::from_utf8_lossy(&compare.stdout)
    );
    rt.block_on(lab.orchestrator.shutdown());
}
