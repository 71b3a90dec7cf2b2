//! Jobs in the state store as the scheduler uses them: insert with steps,
//! state changes and their times, step saves, cancellation, listing, and
//! per-job event sequences (also under concurrent writers).

use std::sync::Arc;
use std::time::Duration;

use homeward::store::*;
use serde_json::json;

fn new_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("homeward.db")).unwrap();
    (dir, store)
}

fn new_job(kind: &str, steps: &[&str]) -> NewJob {
    NewJob {
        kind: kind.into(),
        params: json!({ "item": "web01", "direction": "to-on-premises" }),
        steps: steps.iter().map(|s| s.to_string()).collect(),
        resources: vec!["ps:ps-01".into(), "mt:mt-01".into()],
        parent: None,
        summary: format!("{kind} web01 → on-premises"),
    }
}

fn event(job_id: i64, kind: EventKind, message: &str) -> NewJobEvent {
    NewJobEvent {
        job_id,
        kind,
        step: Some(0),
        message: message.into(),
        done_bytes: 0,
        total_bytes: 0,
    }
}

#[test]
fn a_new_job_is_queued_with_pending_steps() {
    let (_dir, store) = new_store();
    let job = store
        .insert_job(&new_job("reprotect", &["check", "snapshot", "sync"]))
        .unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.kind, "reprotect");
    assert_eq!(job.summary, "reprotect web01 → on-premises");
    assert_eq!(job.params["item"], "web01");
    assert_eq!(job.resources, ["ps:ps-01", "mt:mt-01"]);
    assert!(!job.cancel_requested);
    assert_eq!(
        (job.started_at, job.finished_at, job.error.as_deref()),
        (None, None, None)
    );
    let names: Vec<_> = job
        .steps
        .iter()
        .map(|s| (s.index, s.name.as_str()))
        .collect();
    assert_eq!(names, [(0, "check"), (1, "snapshot"), (2, "sync")]);
    for step in &job.steps {
        assert_eq!(step.state, StepState::Pending);
        assert_eq!(step.attempts, 0);
        assert_eq!(step.output, serde_json::Value::Null);
    }
    assert_eq!(store.job(job.id).unwrap(), job);

    let child = store
        .insert_job(&NewJob {
            parent: Some(job.id),
            ..new_job("failover", &["a"])
        })
        .unwrap();
    assert_eq!(child.parent, Some(job.id));
    let err = store
        .insert_job(&NewJob {
            parent: Some(999),
            ..new_job("failover", &["a"])
        })
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::NotFound { what: "job", name } if name == "999"),
        "{err}"
    );
    let err = store
        .insert_job(&new_job("x", &["a", "b", "a"]))
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid(m) if m.contains("\"a\"")),
        "{err}"
    );
    assert!(matches!(
        store.job(999),
        Err(StoreError::NotFound { what: "job", .. })
    ));
    // The refused inserts left nothing behind.
    assert_eq!(store.jobs(&JobFilter::default()).unwrap().len(), 2);
}

#[test]
fn job_state_sets_its_times_once() {
    let (_dir, store) = new_store();
    let job = store.insert_job(&new_job("reprotect", &["a"])).unwrap();
    store
        .set_job_state(job.id, JobState::Running, None)
        .unwrap();
    let started = store.job(job.id).unwrap().started_at.unwrap();
    assert!(started >= job.created_at);
    std::thread::sleep(Duration::from_millis(5));
    // Resumed after a restart: Queued → Running again keeps the first start.
    store.set_job_state(job.id, JobState::Queued, None).unwrap();
    store
        .set_job_state(job.id, JobState::Running, None)
        .unwrap();
    let running = store.job(job.id).unwrap();
    assert_eq!(running.state, JobState::Running);
    assert_eq!(running.started_at, Some(started));
    assert_eq!(running.finished_at, None);

    store
        .set_job_state(
            job.id,
            JobState::Failed,
            Some("master target mt-01 unreachable"),
        )
        .unwrap();
    let failed = store.job(job.id).unwrap();
    assert_eq!(failed.state, JobState::Failed);
    assert_eq!(
        failed.error.as_deref(),
        Some("master target mt-01 unreachable")
    );
    assert!(failed.finished_at.unwrap() >= started + 5);

    // Finished is final.
    store
        .set_job_state(job.id, JobState::Failed, Some("again"))
        .unwrap();
    assert_eq!(store.job(job.id).unwrap(), failed);
    let err = store
        .set_job_state(job.id, JobState::Running, None)
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("failed")),
        "{err}"
    );
    assert!(matches!(
        store.set_job_state(999, JobState::Running, None),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn saved_steps_read_back_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("homeward.db");
    let store = Store::open(&path).unwrap();
    let job = store
        .insert_job(&new_job("reprotect", &["check", "sync"]))
        .unwrap();
    let done = StepRecord {
        index: 0,
        name: "check".into(),
        state: StepState::Done,
        attempts: 2,
        output: json!({ "snapshot": "snap-1", "disks": [0, 1] }),
        error: None,
        started_at: Some(1_000),
        finished_at: Some(2_000),
    };
    store.save_step(job.id, &done).unwrap();
    let running = StepRecord {
        index: 1,
        name: "sync".into(),
        state: StepState::Running,
        attempts: 1,
        output: serde_json::Value::Null,
        error: Some("throttled, retrying".into()),
        started_at: Some(2_001),
        finished_at: None,
    };
    store.save_step(job.id, &running).unwrap();
    drop(store);

    let store = Store::open(&path).unwrap();
    let read = store.job(job.id).unwrap();
    assert_eq!(read.steps, [done.clone(), running]);

    let err = store
        .save_step(
            job.id,
            &StepRecord {
                name: "other".into(),
                ..done.clone()
            },
        )
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid(m) if m.contains("\"check\"")),
        "{err}"
    );
    let err = store
        .save_step(
            job.id,
            &StepRecord {
                index: 5,
                ..done.clone()
            },
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotFound {
                what: "job step",
                ..
            }
        ),
        "{err}"
    );
    let err = store.save_step(999, &done).unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { what: "job", .. }),
        "{err}"
    );
}

#[test]
fn cancel_is_requested_until_the_job_is_finished() {
    let (_dir, store) = new_store();
    let job = store.insert_job(&new_job("failover", &["a"])).unwrap();
    store
        .set_job_state(job.id, JobState::Running, None)
        .unwrap();
    let cancelling = store.request_cancel(job.id).unwrap();
    assert!(cancelling.cancel_requested);
    assert_eq!(cancelling.state, JobState::Running);
    store
        .set_job_state(job.id, JobState::Cancelled, None)
        .unwrap();
    let err = store.request_cancel(job.id).unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("cancelled")),
        "{err}"
    );
    assert!(matches!(
        store.request_cancel(999),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn jobs_are_listed_newest_first_and_unfinished_oldest_first() {
    let (_dir, store) = new_store();
    let a = store.insert_job(&new_job("reprotect", &["s"])).unwrap().id;
    let b = store.insert_job(&new_job("failover", &["s"])).unwrap().id;
    let c = store.insert_job(&new_job("reprotect", &["s"])).unwrap().id;
    let d = store.insert_job(&new_job("commit", &["s"])).unwrap().id;
    store.set_job_state(b, JobState::Running, None).unwrap();
    store.set_job_state(c, JobState::Running, None).unwrap();
    store.set_job_state(c, JobState::Succeeded, None).unwrap();
    store.set_job_state(d, JobState::Running, None).unwrap();

    let ids = |jobs: Vec<JobRecord>| jobs.into_iter().map(|j| j.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.jobs(&JobFilter::default()).unwrap()),
        [d, c, b, a]
    );
    assert_eq!(
        ids(store
            .jobs(&JobFilter {
                kind: Some("reprotect".into()),
                ..Default::default()
            })
            .unwrap()),
        [c, a]
    );
    assert_eq!(
        ids(store
            .jobs(&JobFilter {
                state: Some(JobState::Running),
                ..Default::default()
            })
            .unwrap()),
        [d, b]
    );
    assert_eq!(
        ids(store
            .jobs(&JobFilter {
                limit: Some(2),
                ..Default::default()
            })
            .unwrap()),
        [d, c]
    );
    assert_eq!(
        ids(store
            .jobs(&JobFilter {
                state: Some(JobState::Succeeded),
                kind: Some("failover".into()),
                limit: None
            })
            .unwrap()),
        Vec::<i64>::new()
    );
    let unfinished = store.unfinished_jobs().unwrap();
    assert_eq!(ids(unfinished.clone()), [a, b, d]);
    assert_eq!(
        unfinished[0].steps.len(),
        1,
        "listed jobs carry their steps"
    );
}

#[test]
fn events_are_numbered_per_job() {
    let (_dir, store) = new_store();
    let a = store.insert_job(&new_job("reprotect", &["s"])).unwrap().id;
    let b = store.insert_job(&new_job("reprotect", &["s"])).unwrap().id;
    let e1 = store
        .append_event(&event(a, EventKind::JobStarted, "started"))
        .unwrap();
    let f1 = store
        .append_event(&event(b, EventKind::JobStarted, "started"))
        .unwrap();
    let e2 = store
        .append_event(&NewJobEvent {
            job_id: a,
            kind: EventKind::Progress,
            step: Some(0),
            message: "copying".into(),
            done_bytes: 1 << 30,
            total_bytes: 8 << 30,
        })
        .unwrap();
    let e3 = store
        .append_event(&NewJobEvent {
            step: None,
            ..event(a, EventKind::JobFinished, "done")
        })
        .unwrap();
    assert_eq!((e1.seq, e2.seq, e3.seq, f1.seq), (1, 2, 3, 1));
    assert!(e1.at > 0);

    let all = store.events(a, 0).unwrap();
    assert_eq!(all, [e1, e2.clone(), e3.clone()]);
    assert_eq!(all[1].done_bytes, 1 << 30);
    assert_eq!(all[2].step, None);
    assert_eq!(store.events(a, 1).unwrap(), [e2, e3]);
    assert!(store.events(a, 3).unwrap().is_empty());
    assert!(matches!(
        store.events(999, 0),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.append_event(&event(999, EventKind::Log, "x")),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn concurrent_writers_get_distinct_event_numbers() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Store>();

    let (_dir, store) = new_store();
    let store = Arc::new(store);
    let job = store.insert_job(&new_job("reprotect", &["s"])).unwrap().id;
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..25 {
                    store
                        .append_event(&event(job, EventKind::Log, &format!("writer {w} line {i}")))
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let seqs: Vec<u64> = store
        .events(job, 0)
        .unwrap()
        .into_iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, (1..=100).collect::<Vec<u64>>());
}
