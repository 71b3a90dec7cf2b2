//! The job scheduler (`homeward::jobs`) on real stores in temporary
//! directories: step order and outputs, retries with backoff, failures,
//! cancel, concurrency limits, events, shutdown and resume in process,
//! and the scheduler's own cost per step.
//!
//! The workflows here are real implementations of `Workflow` whose step
//! bodies are closures given by each test.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use homeward::jobs::{
    PreparedJob, RetryPolicy, Scheduler, SchedulerError, SchedulerOptions, StepContext, StepError,
    Workflow,
};
use homeward::store::{EventKind, JobEvent, JobRecord, JobState, StepState, Store};
use serde_json::{Value, json};

type Body = dyn Fn(&StepContext) -> Result<Value, StepError> + Send + Sync;

/// A workflow whose steps and resource keys come from the params
/// (`{"steps": [...], "keys": [...]}`, refusing when `"refuse"` is set) and
/// whose every step runs `body`.
struct TestFlow {
    kind: &'static str,
    body: Box<Body>,
}

impl TestFlow {
    fn workflow(
        kind: &'static str,
        body: impl Fn(&StepContext) -> Result<Value, StepError> + Send + Sync + 'static,
    ) -> Arc<dyn Workflow> {
        Arc::new(TestFlow {
            kind,
            body: Box::new(body),
        })
    }
}

impl Workflow for TestFlow {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn prepare(&self, params: &Value) -> Result<PreparedJob, StepError> {
        if let Some(reason) = params["refuse"].as_str() {
            return Err(StepError::Failed(reason.to_string()));
        }
        let strings = |key: &str| -> Vec<String> {
            params[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(PreparedJob {
            steps: strings("steps"),
            resources: strings("keys"),
            summary: format!("{} test job", self.kind),
            parent: None,
        })
    }

    fn run_step(&self, ctx: &StepContext) -> Result<Value, StepError> {
        (self.body)(ctx)
    }
}

/// A gate steps block on until the test opens it.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    changed: Condvar,
}

impl Gate {
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.changed.notify_all();
    }

    fn wait(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.changed.wait(open).unwrap();
        }
    }
}

fn store() -> (tempfile::TempDir, Arc<Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("homeward.db")).unwrap());
    (dir, store)
}

fn options(workers: usize, limits: &[(&str, usize)]) -> SchedulerOptions {
    SchedulerOptions {
        workers,
        limits: limits.iter().map(|(p, n)| (p.to_string(), *n)).collect(),
        retry: RetryPolicy {
            max_attempts: 3,
            initial: Duration::from_millis(10),
            max: Duration::from_millis(100),
            factor: 2.0,
            jitter: 0.0,
        },
    }
}

fn started(
    store: Arc<Store>,
    flows: Vec<Arc<dyn Workflow>>,
    options: SchedulerOptions,
) -> Scheduler {
    let scheduler = Scheduler::new(store, flows, options);
    scheduler.start().unwrap();
    scheduler
}

async fn finished(scheduler: &Scheduler, id: i64) -> JobRecord {
    tokio::time::timeout(Duration::from_secs(20), scheduler.wait(id))
        .await
        .expect("job finished within 20 s")
        .unwrap()
}

fn kinds(events: &[JobEvent]) -> Vec<EventKind> {
    events.iter().map(|e| e.kind).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_run_in_order_and_later_steps_see_earlier_outputs() {
    let (_dir, store) = store();
    let order = Arc::new(Mutex::new(Vec::new()));
    let seen = order.clone();
    let flow = TestFlow::workflow("ordered", move |ctx| {
        seen.lock().unwrap().push(ctx.step_name().to_string());
        // Only steps that are done have an output.
        assert_eq!(ctx.output_of(ctx.step_name()), None);
        assert_eq!(ctx.output_of("third"), None);
        assert_eq!(ctx.attempt(), 1);
        assert_eq!(ctx.params()["tag"], "x7");
        let previous = match ctx.step_index() {
            0 => Value::Null,
            1 => ctx.output_of("first").cloned().unwrap_or(Value::Null),
            _ => ctx.output_of("second").cloned().unwrap_or(Value::Null),
        };
        // A step may run async work on the scheduler's runtime.
        let from_async = ctx.runtime().block_on(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            "async"
        });
        assert_eq!(from_async, "async");
        Ok(json!({
            "step": ctx.step_name(),
            "index": ctx.step_index(),
            "previous": previous,
            "job": ctx.job_id(),
        }))
    });
    let scheduler = started(store.clone(), vec![flow], options(4, &[]));
    let id = scheduler
        .submit(
            "ordered",
            json!({ "steps": ["first", "second", "third"], "tag": "x7" }),
        )
        .unwrap();
    let job = finished(&scheduler, id).await;

    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    assert_eq!(job.error, None);
    assert_eq!(*order.lock().unwrap(), ["first", "second", "third"]);
    let first = json!({ "step": "first", "index": 0, "previous": null, "job": id });
    let second = json!({ "step": "second", "index": 1, "previous": first, "job": id });
    let third = json!({ "step": "third", "index": 2, "previous": second, "job": id });
    let outputs: Vec<&Value> = job.steps.iter().map(|s| &s.output).collect();
    assert_eq!(outputs, [&first, &second, &third]);
    for step in &job.steps {
        assert_eq!(step.state, StepState::Done, "{step:?}");
        assert_eq!(step.attempts, 1);
        let (start, end) = (step.started_at.unwrap(), step.finished_at.unwrap());
        assert!(start <= end);
    }
    // Each step started after the one before it was saved done.
    for pair in job.steps.windows(2) {
        assert!(pair[0].finished_at.unwrap() <= pair[1].started_at.unwrap());
    }
    assert!(job.started_at.is_some() && job.finished_at.is_some());
    assert_eq!(job.summary, "ordered test job");
    // What `wait` returned is what the store holds.
    assert_eq!(store.job(id).unwrap(), job);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_errors_are_retried_with_growing_delays_then_succeed() {
    let (_dir, store) = store();
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let seen = attempts.clone();
    let flow = TestFlow::workflow("flaky", move |ctx| {
        if ctx.step_name() != "flaky" {
            return Ok(json!("fine"));
        }
        seen.lock().unwrap().push((ctx.attempt(), Instant::now()));
        if ctx.attempt() < 3 {
            return Err(StepError::Transient(format!(
                "endpoint 10.0.0.9:443 throttled (call {})",
                ctx.attempt()
            )));
        }
        Ok(json!({ "took": ctx.attempt() }))
    });
    let mut opts = options(2, &[]);
    opts.retry = RetryPolicy {
        max_attempts: 5,
        initial: Duration::from_millis(40),
        max: Duration::from_secs(1),
        factor: 2.0,
        jitter: 0.0,
    };
    let scheduler = started(store.clone(), vec![flow], opts);
    let id = scheduler
        .submit("flaky", json!({ "steps": ["before", "flaky", "after"] }))
        .unwrap();
    let job = finished(&scheduler, id).await;

    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    let flaky = &job.steps[1];
    assert_eq!(flaky.attempts, 3);
    assert_eq!(flaky.output, json!({ "took": 3 }));
    assert_eq!(flaky.error, None, "a step done keeps no error");
    assert_eq!(job.steps[0].attempts, 1);
    assert_eq!(job.steps[2].attempts, 1);

    let attempts = attempts.lock().unwrap();
    assert_eq!(attempts.iter().map(|a| a.0).collect::<Vec<_>>(), [1, 2, 3]);
    // Exponential backoff: 40 ms after the first failure, 80 ms after the second.
    let first_gap = attempts[1].1 - attempts[0].1;
    let second_gap = attempts[2].1 - attempts[1].1;
    assert!(first_gap >= Duration::from_millis(40), "{first_gap:?}");
    assert!(second_gap >= Duration::from_millis(80), "{second_gap:?}");
    // Well below the 1 s cap: the first delay was the initial one.
    assert!(first_gap < Duration::from_millis(900), "{first_gap:?}");

    let retries: Vec<JobEvent> = store
        .events(id, 0)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == EventKind::StepRetry)
        .collect();
    assert_eq!(retries.len(), 2, "{retries:?}");
    assert!(retries.iter().all(|e| e.step == Some(1)));
    assert_eq!(
        retries[0].message,
        "flaky: attempt 1 of 5 failed: endpoint 10.0.0.9:443 throttled (call 1); trying again in 40 ms"
    );
    assert_eq!(
        retries[1].message,
        "flaky: attempt 2 of 5 failed: endpoint 10.0.0.9:443 throttled (call 2); trying again in 80 ms"
    );
}

#[test]
fn backoff_grows_by_the_factor_up_to_the_cap_and_jitter_only_shortens() {
    let policy = RetryPolicy {
        max_attempts: 10,
        initial: Duration::from_millis(200),
        max: Duration::from_secs(1),
        factor: 2.0,
        jitter: 0.0,
    };
    let delays: Vec<u128> = (1..=5).map(|a| policy.delay(a).as_millis()).collect();
    assert_eq!(delays, [200, 400, 800, 1000, 1000]);
    assert!(policy.retries_after(9));
    assert!(!policy.retries_after(10));

    let jittered = RetryPolicy {
        jitter: 0.5,
        ..policy.clone()
    };
    let samples: Vec<Duration> = (0..200).map(|_| jittered.delay(2)).collect();
    assert!(
        samples
            .iter()
            .all(|d| *d <= Duration::from_millis(400) && *d >= Duration::from_millis(200)),
        "{samples:?}"
    );
    let distinct: std::collections::HashSet<_> = samples.iter().collect();
    assert!(
        distinct.len() > 10,
        "jitter makes delays differ: {distinct:?}"
    );

    let defaults = RetryPolicy::default();
    assert_eq!(defaults.max_attempts, 5);
    assert_eq!(defaults.initial, Duration::from_millis(200));
    assert_eq!(defaults.max, Duration::from_secs(30));
    // A huge attempt number neither overflows nor passes the cap.
    assert_eq!(defaults.base_delay(u32::MAX), Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_retries_fail_the_job_naming_the_step_and_the_last_error() {
    let (_dir, store) = store();
    let ran = Arc::new(Mutex::new(Vec::new()));
    let seen = ran.clone();
    let flow = TestFlow::workflow("down", move |ctx| {
        seen.lock().unwrap().push(ctx.step_name().to_string());
        match ctx.step_name() {
            "connect" => Err(StepError::Transient(format!(
                "vcenter.lab:443 unreachable (attempt {})",
                ctx.attempt()
            ))),
            _ => Ok(Value::Null),
        }
    });
    let scheduler = started(store.clone(), vec![flow], options(2, &[]));
    let id = scheduler
        .submit("down", json!({ "steps": ["prepare", "connect", "copy"] }))
        .unwrap();
    let job = finished(&scheduler, id).await;

    assert_eq!(job.state, JobState::Failed);
    assert_eq!(
        job.error.as_deref(),
        Some("step `connect` failed after 3 attempts: vcenter.lab:443 unreachable (attempt 3)")
    );
    assert_eq!(
        *ran.lock().unwrap(),
        ["prepare", "connect", "connect", "connect"]
    );
    let connect = &job.steps[1];
    assert_eq!(connect.state, StepState::Failed);
    assert_eq!(connect.attempts, 3);
    assert_eq!(
        connect.error.as_deref(),
        Some("vcenter.lab:443 unreachable (attempt 3)")
    );
    let copy = &job.steps[2];
    assert_eq!((copy.state, copy.attempts), (StepState::Pending, 0));

    let events = store.events(id, 0).unwrap();
    assert_eq!(
        kinds(&events),
        [
            EventKind::JobStarted,
            EventKind::StepStarted,
            EventKind::StepDone,
            EventKind::StepStarted,
            EventKind::StepRetry,
            EventKind::StepStarted,
            EventKind::StepRetry,
            EventKind::StepStarted,
            EventKind::StepFailed,
            EventKind::JobFinished,
        ]
    );
    assert_eq!(events[5].message, "connect (attempt 2)");
    assert_eq!(
        events[9].message,
        "failed: step `connect` failed after 3 attempts: vcenter.lab:443 unreachable (attempt 3)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_step_fails_the_job_and_later_steps_never_run() {
    let (_dir, store) = store();
    let ran = Arc::new(Mutex::new(Vec::new()));
    let seen = ran.clone();
    let flow = TestFlow::workflow("full", move |ctx| {
        seen.lock().unwrap().push(ctx.step_name().to_string());
        match ctx.step_name() {
            "allocate" => Err(StepError::Failed(
                "datastore ds9 is full (2 GiB free, 40 GiB needed); free space or choose another datastore".into(),
            )),
            "explode" => panic!("a bug in the step"),
            _ => Ok(json!(true)),
        }
    });
    let scheduler = started(store.clone(), vec![flow], options(2, &[]));
    let id = scheduler
        .submit(
            "full",
            json!({ "steps": ["check", "allocate", "copy", "power-on"] }),
        )
        .unwrap();
    let job = finished(&scheduler, id).await;

    assert_eq!(job.state, JobState::Failed);
    assert_eq!(
        job.error.as_deref(),
        Some(
            "step `allocate` failed: datastore ds9 is full (2 GiB free, 40 GiB needed); free space or choose another datastore"
        )
    );
    assert_eq!(
        *ran.lock().unwrap(),
        ["check", "allocate"],
        "a failure is not retried"
    );
    let states: Vec<(StepState, u32)> = job.steps.iter().map(|s| (s.state, s.attempts)).collect();
    assert_eq!(
        states,
        [
            (StepState::Done, 1),
            (StepState::Failed, 1),
            (StepState::Pending, 0),
            (StepState::Pending, 0)
        ]
    );

    // A panicking step fails its job (and only its job).
    let id = scheduler
        .submit("full", json!({ "steps": ["check", "explode", "copy"] }))
        .unwrap();
    let job = finished(&scheduler, id).await;
    assert_eq!(job.state, JobState::Failed);
    let error = job.error.unwrap();
    assert!(
        error.starts_with("step `explode` failed: it panicked (a bug in the step)"),
        "{error}"
    );
    let id = scheduler
        .submit("full", json!({ "steps": ["check"] }))
        .unwrap();
    assert_eq!(finished(&scheduler, id).await.state, JobState::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kinds_and_refused_jobs_are_not_stored() {
    let (_dir, store) = store();
    let flows = vec![
        TestFlow::workflow("reprotect", |_| Ok(Value::Null)),
        TestFlow::workflow("failover", |_| Ok(Value::Null)),
    ];
    let scheduler = started(store.clone(), flows, options(2, &[]));
    assert_eq!(scheduler.kinds(), ["failover", "reprotect"]);

    let error = scheduler.submit("fail-over", json!({})).unwrap_err();
    assert!(matches!(error, SchedulerError::UnknownKind(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        "unknown job kind `fail-over` (known kinds: failover, reprotect)"
    );

    let error = scheduler
        .submit(
            "failover",
            json!({ "refuse": "plan RP9 does not exist; `homeward plan list` shows the plans" }),
        )
        .unwrap_err();
    assert!(matches!(error, SchedulerError::Refused(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        "job refused: plan RP9 does not exist; `homeward plan list` shows the plans"
    );

    let error = scheduler
        .submit("failover", json!({ "steps": ["a", "b", "a"] }))
        .unwrap_err();
    assert!(matches!(error, SchedulerError::Refused(_)), "{error:?}");
    assert!(error.to_string().contains("two steps `a`"), "{error}");

    assert!(store.jobs(&Default::default()).unwrap().is_empty());

    let error = scheduler.wait(4242).await.unwrap_err();
    assert!(matches!(error, SchedulerError::NotFound(4242)), "{error:?}");
    let error = scheduler.cancel(4242).unwrap_err();
    assert!(matches!(error, SchedulerError::NotFound(4242)), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_job_is_cancelled_at_once_and_never_runs() {
    let (_dir, store) = store();
    let gate = Arc::new(Gate::default());
    let ran = Arc::new(Mutex::new(Vec::new()));
    let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
    let (g, seen) = (gate.clone(), ran.clone());
    let flow = TestFlow::workflow("blocking", move |ctx| {
        seen.lock()
            .unwrap()
            .push((ctx.job_id(), ctx.step_name().to_string()));
        let _ = started_tx.send(ctx.job_id());
        g.wait();
        Ok(Value::Null)
    });
    // One worker: the second job waits Queued behind the first.
    let scheduler = started(store.clone(), vec![flow], options(1, &[]));
    let first = scheduler
        .submit("blocking", json!({ "steps": ["one"] }))
        .unwrap();
    let second = scheduler
        .submit("blocking", json!({ "steps": ["one", "two"] }))
        .unwrap();
    assert_eq!(started_rx.recv().await, Some(first));
    assert_eq!(store.job(second).unwrap().state, JobState::Queued);

    scheduler.cancel(second).unwrap();
    // Cancelled while the first job still blocks the only worker.
    let job = finished(&scheduler, second).await;
    assert_eq!(job.state, JobState::Cancelled);
    assert!(job.cancel_requested);
    assert!(
        job.steps
            .iter()
            .all(|s| s.state == StepState::Pending && s.attempts == 0)
    );
    assert_eq!(store.job(first).unwrap().state, JobState::Running);
    let events = store.events(second, 0).unwrap();
    assert_eq!(kinds(&events), [EventKind::JobFinished]);
    assert_eq!(events[0].message, "cancelled before it started");

    gate.open();
    assert_eq!(finished(&scheduler, first).await.state, JobState::Succeeded);
    assert_eq!(*ran.lock().unwrap(), [(first, "one".to_string())]);

    // Finished jobs cannot be cancelled.
    let error = scheduler.cancel(first).unwrap_err();
    assert!(
        matches!(error, SchedulerError::Finished(id) if id == first),
        "{error:?}"
    );
    let error = scheduler.cancel(second).unwrap_err();
    assert!(
        matches!(error, SchedulerError::Finished(id) if id == second),
        "{error:?}"
    );
    assert_eq!(store.job(first).unwrap().state, JobState::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_ends_cancelled_after_the_step_that_sees_the_cancel() {
    let (_dir, store) = store();
    let ran = Arc::new(Mutex::new(Vec::new()));
    let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
    let seen = ran.clone();
    let flow = TestFlow::workflow("long", move |ctx| {
        seen.lock().unwrap().push(ctx.step_name().to_string());
        if ctx.step_name() != "copy" {
            return Ok(json!("quick"));
        }
        let _ = started_tx.send(ctx.job_id());
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut rounds = 0u32;
        while Instant::now() < deadline {
            if ctx.cancelled() {
                // This step saves what it did before it stops.
                if ctx.params()["abort"] == true {
                    ctx.check_cancelled()?;
                }
                return Ok(json!({ "copied_rounds": rounds, "stopped": "cancelled" }));
            }
            rounds += 1;
            std::thread::sleep(Duration::from_millis(2));
        }
        Err(StepError::Failed("the cancel never arrived".into()))
    });
    let scheduler = started(store.clone(), vec![flow], options(2, &[]));

    // The step finishes its unit of work and returns: it is saved done, and
    // the job ends Cancelled before the next step.
    let id = scheduler
        .submit("long", json!({ "steps": ["snapshot", "copy", "power-on"] }))
        .unwrap();
    assert_eq!(started_rx.recv().await, Some(id));
    scheduler.cancel(id).unwrap();
    let job = finished(&scheduler, id).await;
    assert_eq!(job.state, JobState::Cancelled, "{job:?}");
    assert_eq!(job.error, None);
    let copy = &job.steps[1];
    assert_eq!(copy.state, StepState::Done);
    assert_eq!(copy.output["stopped"], "cancelled");
    assert_eq!(
        (job.steps[2].state, job.steps[2].attempts),
        (StepState::Pending, 0)
    );
    assert_eq!(*ran.lock().unwrap(), ["snapshot", "copy"]);
    let events = store.events(id, 0).unwrap();
    assert_eq!(events.last().unwrap().kind, EventKind::JobFinished);
    assert_eq!(events.last().unwrap().message, "cancelled");

    // The step returns `Cancelled`: the job ends at once, the step not done.
    ran.lock().unwrap().clear();
    let id = scheduler
        .submit(
            "long",
            json!({ "steps": ["snapshot", "copy", "power-on"], "abort": true }),
        )
        .unwrap();
    assert_eq!(started_rx.recv().await, Some(id));
    scheduler.cancel(id).unwrap();
    let job = finished(&scheduler, id).await;
    assert_eq!(job.state, JobState::Cancelled);
    let copy = &job.steps[1];
    assert_eq!(
        (copy.state, copy.error.as_deref()),
        (StepState::Failed, Some("cancelled"))
    );
    assert_eq!(*ran.lock().unwrap(), ["snapshot", "copy"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_ends_a_backoff_wait_at_once() {
    let (_dir, store) = store();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let flow = TestFlow::workflow("retrying", move |ctx| {
        let _ = tx.send(ctx.attempt());
        Err(StepError::Transient("host esx01 busy".into()))
    });
    let mut opts = options(1, &[]);
    opts.retry.initial = Duration::from_secs(60);
    opts.retry.max = Duration::from_secs(60);
    let scheduler = started(store.clone(), vec![flow], opts);
    let id = scheduler
        .submit("retrying", json!({ "steps": ["wait-host"] }))
        .unwrap();
    assert_eq!(rx.recv().await, Some(1));
    let cancelled_at = Instant::now();
    scheduler.cancel(id).unwrap();
    let job = finished(&scheduler, id).await;
    assert!(cancelled_at.elapsed() < Duration::from_secs(10));
    assert_eq!(job.state, JobState::Cancelled);
    assert_eq!(job.steps[0].attempts, 1, "no attempt after the cancel");
    assert_eq!(job.steps[0].error.as_deref(), Some("host esx01 busy"));
}

/// When a job's first step started and its last step ended.
type Span = (Option<Instant>, Option<Instant>);

/// Records, per job, the instants its first step started and its last step
/// ended, and how many jobs were inside at once.
#[derive(Default)]
struct Occupancy {
    spans: Mutex<std::collections::HashMap<i64, Span>>,
    inside: AtomicUsize,
    most: AtomicUsize,
}

impl Occupancy {
    fn flow(self: &Arc<Self>, kind: &'static str) -> Arc<dyn Workflow> {
        let this = self.clone();
        TestFlow::workflow(kind, move |ctx| {
            let last = ctx.step_name() == "last";
            if ctx.step_name() == "first" {
                let now = this.inside.fetch_add(1, Ordering::SeqCst) + 1;
                this.most.fetch_max(now, Ordering::SeqCst);
                this.spans
                    .lock()
                    .unwrap()
                    .entry(ctx.job_id())
                    .or_default()
                    .0 = Some(Instant::now());
            }
            std::thread::sleep(Duration::from_millis(40));
            if last {
                this.spans
                    .lock()
                    .unwrap()
                    .entry(ctx.job_id())
                    .or_default()
                    .1 = Some(Instant::now());
                this.inside.fetch_sub(1, Ordering::SeqCst);
            }
            Ok(Value::Null)
        })
    }

    fn span(&self, id: i64) -> (Instant, Instant) {
        let (start, end) = self.spans.lock().unwrap()[&id];
        (start.unwrap(), end.unwrap())
    }
}

fn overlap(a: (Instant, Instant), b: (Instant, Instant)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_on_one_limited_key_never_overlap_and_other_keys_do() {
    let (_dir, store) = store();
    let occupancy = Arc::new(Occupancy::default());
    let scheduler = started(
        store.clone(),
        vec![occupancy.flow("copy")],
        options(8, &[("mt", 1), ("ps", 4)]),
    );
    let steps = json!(["first", "middle", "last"]);
    let on_a1 = scheduler
        .submit("copy", json!({ "steps": steps, "keys": ["mt:a", "ps:p1"] }))
        .unwrap();
    let on_a2 = scheduler
        .submit("copy", json!({ "steps": steps, "keys": ["ps:p1", "mt:a"] }))
        .unwrap();
    let on_b = scheduler
        .submit("copy", json!({ "steps": steps, "keys": ["mt:b", "ps:p1"] }))
        .unwrap();
    for id in [on_a1, on_a2, on_b] {
        assert_eq!(finished(&scheduler, id).await.state, JobState::Succeeded);
    }
    let (a1, a2, b) = (
        occupancy.span(on_a1),
        occupancy.span(on_a2),
        occupancy.span(on_b),
    );
    assert!(
        !overlap(a1, a2),
        "two jobs on mt:a with limit 1 overlapped: {a1:?} {a2:?}"
    );
    assert!(a1.1 <= a2.0, "jobs on one key start in submit order");
    assert!(overlap(a1, b), "mt:b does not wait for mt:a: {a1:?} {b:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_limit_of_two_lets_exactly_two_jobs_in_and_workers_cap_the_rest() {
    let (_dir, store) = store();
    let occupancy = Arc::new(Occupancy::default());
    let scheduler = started(
        store.clone(),
        vec![occupancy.flow("copy")],
        options(8, &[("host", 2)]),
    );
    let steps = json!(["first", "last"]);
    let ids: Vec<i64> = (0..5)
        .map(|_| {
            scheduler
                .submit("copy", json!({ "steps": steps, "keys": ["host:esx01"] }))
                .unwrap()
        })
        .collect();
    for id in &ids {
        assert_eq!(finished(&scheduler, *id).await.state, JobState::Succeeded);
    }
    assert_eq!(occupancy.most.load(Ordering::SeqCst), 2);

    // Without keys, the workers are the limit.
    let occupancy = Arc::new(Occupancy::default());
    let scheduler = started(store.clone(), vec![occupancy.flow("copy")], options(3, &[]));
    let ids: Vec<i64> = (0..7)
        .map(|_| scheduler.submit("copy", json!({ "steps": steps })).unwrap())
        .collect();
    for id in &ids {
        assert_eq!(finished(&scheduler, *id).await.state, JobState::Succeeded);
    }
    assert_eq!(occupancy.most.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_holding_several_keys_in_any_order_never_deadlock() {
    let (_dir, store) = store();
    let occupancy = Arc::new(Occupancy::default());
    let scheduler = started(
        store.clone(),
        vec![occupancy.flow("copy")],
        options(8, &[("mt", 1), ("ps", 1), ("host", 2)]),
    );
    let key_sets = [
        json!(["mt:a", "ps:x"]),
        json!(["ps:x", "mt:a"]),
        json!(["ps:y", "mt:a", "host:1"]),
        json!(["mt:b", "ps:x", "host:1"]),
        json!(["host:1", "mt:b"]),
        json!(["mt:a", "mt:a", "ps:y"]),
    ];
    let mut ids = Vec::new();
    for _ in 0..3 {
        for keys in &key_sets {
            ids.push(
                scheduler
                    .submit("copy", json!({ "steps": ["first", "last"], "keys": keys }))
                    .unwrap(),
            );
        }
    }
    for id in &ids {
        assert_eq!(finished(&scheduler, *id).await.state, JobState::Succeeded);
    }
    // Jobs sharing `mt:a` (limit 1) never ran at the same time.
    let on_a: Vec<(Instant, Instant)> = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| [0, 1, 2, 5].contains(&(i % key_sets.len())))
        .map(|(_, id)| occupancy.span(*id))
        .collect();
    for (i, a) in on_a.iter().enumerate() {
        for b in &on_a[i + 1..] {
            assert!(!overlap(*a, *b), "{a:?} {b:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_persisted_in_order_broadcast_live_and_replayable() {
    let (_dir, store) = store();
    let flow = TestFlow::workflow("eventful", |ctx| {
        if ctx.step_index() == 0 {
            ctx.log("snapshot snap-1 taken");
            ctx.progress(0, 100, "copying");
            ctx.progress(50, 100, "copying"); // within 100 ms: dropped
            ctx.progress(100, 100, "copied"); // the final one always goes
        }
        Ok(json!(ctx.step_index()))
    });
    let scheduler = started(store.clone(), vec![flow], options(2, &[]));
    let mut live = scheduler.subscribe();
    let id = scheduler
        .submit("eventful", json!({ "steps": ["copy", "verify"] }))
        .unwrap();
    let mut broadcast = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let event = live.recv().await.unwrap();
            let end = event.job_id == id && event.kind == EventKind::JobFinished;
            broadcast.push(event);
            if end {
                break;
            }
        }
    })
    .await
    .unwrap();

    let persisted = store.events(id, 0).unwrap();
    assert_eq!(
        kinds(&persisted),
        [
            EventKind::JobStarted,
            EventKind::StepStarted,
            EventKind::Log,
            EventKind::StepDone,
            EventKind::StepStarted,
            EventKind::StepDone,
            EventKind::JobFinished,
        ]
    );
    assert_eq!(
        persisted.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6, 7]
    );
    assert_eq!(persisted[0].message, "eventful test job");
    assert_eq!(
        (persisted[1].step, persisted[1].message.as_str()),
        (Some(0), "copy")
    );
    assert_eq!(
        (persisted[2].step, persisted[2].message.as_str()),
        (Some(0), "snapshot snap-1 taken")
    );
    assert_eq!(
        (persisted[4].step, persisted[4].message.as_str()),
        (Some(1), "verify")
    );
    assert_eq!(persisted[6].message, "succeeded");
    assert!(persisted.windows(2).all(|w| w[0].at <= w[1].at));

    // Live: the persisted events, the same and in the same order, plus
    // progress (not persisted) carrying the seq of the event before it.
    let (progress, others): (Vec<JobEvent>, Vec<JobEvent>) = broadcast
        .into_iter()
        .partition(|e| e.kind == EventKind::Progress);
    assert_eq!(others, persisted);
    let progress: Vec<(u64, u64, u64, &str)> = progress
        .iter()
        .map(|e| (e.seq, e.done_bytes, e.total_bytes, e.message.as_str()))
        .collect();
    assert_eq!(progress, [(3, 0, 100, "copying"), (3, 100, 100, "copied")]);

    // Replay after a seq: what a watcher that saw 1..=3 still needs.
    let rest = store.events(id, 3).unwrap();
    assert_eq!(rest, persisted[3..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_running_steps_finish_and_a_new_scheduler_resumes_the_jobs() {
    let (_dir, store) = store();
    let gate = Arc::new(Gate::default());
    let ran = Arc::new(Mutex::new(Vec::new()));
    let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
    let flow = {
        let (gate, ran) = (gate.clone(), ran.clone());
        move || {
            let (gate, ran, started_tx) = (gate.clone(), ran.clone(), started_tx.clone());
            TestFlow::workflow("migrate", move |ctx| {
                ran.lock().unwrap().push((
                    ctx.job_id(),
                    ctx.step_name().to_string(),
                    ctx.attempt(),
                ));
                if ctx.step_name() == "hold" {
                    let _ = started_tx.send(ctx.job_id());
                    gate.wait();
                }
                Ok(json!(ctx.step_name()))
            })
        }
    };
    let first = Scheduler::new(store.clone(), vec![flow()], options(1, &[]));
    // Submitted before start: stored Queued, started by `start`.
    let running = first
        .submit("migrate", json!({ "steps": ["hold", "after"] }))
        .unwrap();
    assert_eq!(store.job(running).unwrap().state, JobState::Queued);
    first.start().unwrap();
    let queued = first
        .submit("migrate", json!({ "steps": ["hold", "after"] }))
        .unwrap();
    assert_eq!(started_rx.recv().await, Some(running));

    let shutdown = tokio::spawn({
        let first = first.clone();
        async move { first.shutdown().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !shutdown.is_finished(),
        "shutdown waits for the running step"
    );
    gate.open();
    tokio::time::timeout(Duration::from_secs(20), shutdown)
        .await
        .unwrap()
        .unwrap();

    // The running step finished and was saved; nothing else started.
    let job = store.job(running).unwrap();
    assert_eq!(job.state, JobState::Running);
    let states: Vec<StepState> = job.steps.iter().map(|s| s.state).collect();
    assert_eq!(states, [StepState::Done, StepState::Pending]);
    assert_eq!(store.job(queued).unwrap().state, JobState::Queued);
    assert_eq!(*ran.lock().unwrap(), [(running, "hold".to_string(), 1)]);
    // After shutdown a submit is stored and waits for the next start.
    let later = first
        .submit("migrate", json!({ "steps": ["after"] }))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(store.job(later).unwrap().state, JobState::Queued);

    // A new scheduler resumes: the running job at its second step, then the others.
    let second = started(store.clone(), vec![flow()], options(1, &[]));
    for id in [running, queued, later] {
        assert_eq!(finished(&second, id).await.state, JobState::Succeeded);
    }
    assert_eq!(
        *ran.lock().unwrap(),
        [
            (running, "hold".to_string(), 1),
            (running, "after".to_string(), 1),
            (queued, "hold".to_string(), 1),
            (queued, "after".to_string(), 1),
            (later, "after".to_string(), 1),
        ]
    );
    let resumed = store.events(running, 0).unwrap();
    assert!(
        resumed.iter().any(|e| e.kind == EventKind::Log
            && e.message == "resumed after a restart at step 2 of 2 (after)"),
        "{resumed:?}"
    );
    assert_eq!(
        resumed
            .iter()
            .filter(|e| e.kind == EventKind::JobStarted)
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_requested_while_no_scheduler_runs_ends_the_job_when_it_resumes() {
    let (_dir, store) = store();
    let ran = Arc::new(AtomicUsize::new(0));
    let count = ran.clone();
    let flows = move || -> Vec<Arc<dyn Workflow>> {
        let count = count.clone();
        vec![TestFlow::workflow("noop", move |_| {
            count.fetch_add(1, Ordering::SeqCst);
            Ok(Value::Null)
        })]
    };
    let idle = Scheduler::new(store.clone(), flows(), options(2, &[]));
    let queued = idle.submit("noop", json!({ "steps": ["a"] })).unwrap();
    idle.cancel(queued).unwrap();
    assert_eq!(store.job(queued).unwrap().state, JobState::Cancelled);

    // A job left Running by a crash, its cancel requested before the restart.
    let interrupted = idle.submit("noop", json!({ "steps": ["a", "b"] })).unwrap();
    store
        .set_job_state(interrupted, JobState::Running, None)
        .unwrap();
    idle.cancel(interrupted).unwrap();
    assert_eq!(store.job(interrupted).unwrap().state, JobState::Running);

    let scheduler = started(store.clone(), flows(), options(2, &[]));
    assert_eq!(
        finished(&scheduler, interrupted).await.state,
        JobState::Cancelled
    );
    assert_eq!(
        finished(&scheduler, queued).await.state,
        JobState::Cancelled
    );
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_saved_failed_before_a_crash_fails_the_job_when_it_resumes() {
    let (_dir, store) = store();
    let ran = Arc::new(AtomicUsize::new(0));
    let count = ran.clone();
    let flow = TestFlow::workflow("crashy", move |_| {
        count.fetch_add(1, Ordering::SeqCst);
        Ok(Value::Null)
    });
    let idle = Scheduler::new(store.clone(), vec![flow.clone()], options(1, &[]));
    let id = idle
        .submit("crashy", json!({ "steps": ["a", "b", "c"] }))
        .unwrap();
    // What a kill between "step b saved failed" and "job saved failed" leaves.
    store.set_job_state(id, JobState::Running, None).unwrap();
    let mut steps = store.job(id).unwrap().steps;
    steps[0].state = StepState::Done;
    steps[0].attempts = 1;
    steps[1].state = StepState::Failed;
    steps[1].attempts = 1;
    steps[1].error = Some("disk 2 of web01 is missing".to_string());
    for step in &steps[..2] {
        store.save_step(id, step).unwrap();
    }

    let scheduler = started(store.clone(), vec![flow], options(1, &[]));
    let job = finished(&scheduler, id).await;
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(
        job.error.as_deref(),
        Some("step `b` failed: disk 2 of web01 is missing")
    );
    assert_eq!(ran.load(Ordering::SeqCst), 0, "no step ran again");
    assert_eq!(job.steps[1].attempts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_of_a_kind_this_server_does_not_run_fails_when_resumed() {
    let (_dir, store) = store();
    let old = Scheduler::new(
        store.clone(),
        vec![TestFlow::workflow("retired", |_| Ok(Value::Null))],
        options(1, &[]),
    );
    let id = old.submit("retired", json!({ "steps": ["a"] })).unwrap();
    let scheduler = started(
        store.clone(),
        vec![TestFlow::workflow("current", |_| Ok(Value::Null))],
        options(1, &[]),
    );
    let job = finished(&scheduler, id).await;
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(
        job.error.as_deref(),
        Some(
            "no workflow runs jobs of kind `retired` in this server (known kinds: current); run it with a Homeward that has that workflow"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_scheduler_costs_little_per_step() {
    // Sequential: one worker, so the time per step is the latency the
    // scheduler adds to every step: two durable transactions (saved Running
    // with its step-started event, saved Done with its step-done event).
    let (_dir, store) = store();
    let flow = TestFlow::workflow("empty", |_| Ok(Value::Null));
    let scheduler = started(store.clone(), vec![flow], options(1, &[]));
    let steps: Vec<String> = (0..10).map(|i| format!("s{i}")).collect();
    let started = Instant::now();
    let ids: Vec<i64> = (0..20)
        .map(|_| {
            scheduler
                .submit("empty", json!({ "steps": steps }))
                .unwrap()
        })
        .collect();
    for id in &ids {
        assert_eq!(finished(&scheduler, *id).await.state, JobState::Succeeded);
    }
    let sequential = started.elapsed() / 200;
    eprintln!(
        "scheduler overhead, 1 worker: {} µs per empty step",
        sequential.as_micros()
    );

    let report = tokio::task::spawn_blocking(|| homeward::jobs::bench_overhead(50, 10))
        .await
        .unwrap()
        .unwrap();
    eprintln!(
        "scheduler overhead, {} workers: {} µs per empty step ({} jobs x {} steps in {:?})",
        report.workers,
        report.per_step.as_micros(),
        report.jobs,
        report.steps,
        report.elapsed
    );
    assert_eq!((report.jobs, report.steps), (50, 10));
    // Two durable transactions per step; far below this on any disk.
    assert!(sequential < Duration::from_millis(100), "{sequential:?}");
    assert!(report.per_step < Duration::from_millis(100), "{report:?}");
}
