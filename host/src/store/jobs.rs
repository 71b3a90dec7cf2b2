//! Jobs, their steps and their events, as the scheduler persists them.
//!
//! A job row carries its state and times; each step is a row keyed by (job,
//! index) so saving one step rewrites one small row and is durable
//! (`synchronous=FULL`) when `save_step` returns. Events get a per-job
//! sequence number (1, 2, ...) so a watcher can resume after the last one it saw.

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, Row};

use super::records::{
    EventKind, JobEvent, JobFilter, JobRecord, JobState, NewJob, NewJobEvent, StepRecord, StepState,
};
use super::sql::{RowReader, db, int, opt_int, to_json};
use super::{Store, StoreError, now_ms};

const JOB_COLUMNS: &str = "id, kind, summary, params, state, resources, parent, error, \
                           cancel_requested, created_at, started_at, finished_at";

impl Store {
    /// Records a new job, Queued, with all its steps Pending, in one transaction.
    pub fn insert_job(&self, job: &NewJob) -> Result<JobRecord, StoreError> {
        if job.kind.trim().is_empty() {
            return Err(StoreError::Invalid("a job needs a kind".to_string()));
        }
        let mut seen = HashSet::new();
        for name in &job.steps {
            if name.trim().is_empty() {
                return Err(StoreError::Invalid(format!(
                    "a {} job has a step without a name",
                    job.kind
                )));
            }
            if !seen.insert(name.as_str()) {
                return Err(StoreError::Invalid(format!(
                    "a {} job names step {name:?} twice; step names must be unique",
                    job.kind
                )));
            }
        }
        let params = to_json(&job.params, "the job's parameters")?;
        let resources = to_json(&job.resources, "the job's resources")?;
        let now = int(now_ms(), "time")?;
        let id = self.write("recording a job", |tx| {
            if let Some(parent) = job.parent {
                let exists: Option<i64> = tx
                    .query_row("SELECT id FROM jobs WHERE id = ?1", [parent], |row| {
                        row.get(0)
                    })
                    .optional()
                    .map_err(db("recording a job"))?;
                if exists.is_none() {
                    return Err(StoreError::not_found("job", parent));
                }
            }
            tx.execute(
                "INSERT INTO jobs (kind, summary, params, state, resources, parent, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                (
                    &job.kind,
                    &job.summary,
                    &params,
                    JobState::Queued.as_str(),
                    &resources,
                    job.parent,
                    now,
                ),
            )
            .map_err(db("recording a job"))?;
            let id = tx.last_insert_rowid();
            let mut insert = tx
                .prepare(
                    "INSERT INTO job_steps (job_id, step_index, name, state, attempts, output) \
                     VALUES (?1, ?2, ?3, ?4, 0, 'null')",
                )
                .map_err(db("recording a job's steps"))?;
            for (index, name) in job.steps.iter().enumerate() {
                insert
                    .execute((id, index as i64, name, StepState::Pending.as_str()))
                    .map_err(db("recording a job's steps"))?;
            }
            Ok(id)
        })?;
        self.job(id)
    }

    /// One job with its steps.
    pub fn job(&self, id: i64) -> Result<JobRecord, StoreError> {
        load_job(&self.conn(), id)
    }

    /// Jobs matching the filter, newest first.
    pub fn jobs(&self, filter: &JobFilter) -> Result<Vec<JobRecord>, StoreError> {
        let conn = self.conn();
        let limit = match filter.limit {
            Some(limit) => i64::try_from(limit).unwrap_or(i64::MAX),
            None => -1, // SQLite: no limit
        };
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs \
             WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR kind = ?2) \
             ORDER BY id DESC LIMIT ?3"
        );
        let state = filter.state.map(|s| s.as_str());
        select_jobs(&conn, &sql, (state, filter.kind.as_deref(), limit))
    }

    /// Jobs that are Queued or Running, oldest first: what a restarted
    /// scheduler resumes.
    pub fn unfinished_jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        let conn = self.conn();
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE state IN (?1, ?2) ORDER BY id ASC");
        select_jobs(
            &conn,
            &sql,
            (JobState::Queued.as_str(), JobState::Running.as_str()),
        )
    }

    /// Moves a job to `state` with `error` (None clears it). Running sets
    /// `started_at` the first time; a finished state sets `finished_at`.
    /// A finished job keeps its state: setting the same finished state again
    /// does nothing, another state is a Conflict.
    pub fn set_job_state(
        &self,
        id: i64,
        state: JobState,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        self.write("changing a job's state", |tx| {
            set_job_state_in(tx, id, state, error)
        })
    }

    /// [`set_job_state`](Self::set_job_state) and [`append_event`](Self::append_event)
    /// in one transaction: one disk sync instead of two (the scheduler's
    /// cost when a job starts and ends).
    pub fn set_job_state_with_event(
        &self,
        id: i64,
        state: JobState,
        error: Option<&str>,
        event: &NewJobEvent,
    ) -> Result<JobEvent, StoreError> {
        self.write("changing a job's state", |tx| {
            set_job_state_in(tx, id, state, error)?;
            append_event_in(tx, event)
        })
    }

    /// Saves one step by (job, index): state, attempts, output, error, times.
    /// Durable when it returns. The name must be the step's recorded name.
    pub fn save_step(&self, job_id: i64, step: &StepRecord) -> Result<(), StoreError> {
        self.write("saving a job step", |tx| save_step_in(tx, job_id, step))
    }

    /// [`save_step`](Self::save_step) and [`append_event`](Self::append_event)
    /// in one transaction: one disk sync instead of two (the scheduler's
    /// cost around every step).
    pub fn save_step_with_event(
        &self,
        job_id: i64,
        step: &StepRecord,
        event: &NewJobEvent,
    ) -> Result<JobEvent, StoreError> {
        self.write("saving a job step", |tx| {
            save_step_in(tx, job_id, step)?;
            append_event_in(tx, event)
        })
    }

    /// Marks a job's cancellation as requested (the scheduler acts on it) and
    /// returns the job. A finished job is a Conflict.
    pub fn request_cancel(&self, id: i64) -> Result<JobRecord, StoreError> {
        let doing = "requesting a job's cancellation";
        self.write(doing, |tx| {
            let current = current_state(tx, id)?;
            if current.is_finished() {
                return Err(StoreError::Conflict(format!(
                    "job {id} has already {current}; there is nothing to cancel"
                )));
            }
            tx.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?1", [id])
                .map_err(db(doing))?;
            Ok(())
        })?;
        self.job(id)
    }

    /// Appends an event to a job; its `seq` is the job's next (1, 2, ...).
    pub fn append_event(&self, e: &NewJobEvent) -> Result<JobEvent, StoreError> {
        self.write("recording a job event", |tx| append_event_in(tx, e))
    }

    /// A job's events after `after_seq` (0 for all), in order.
    pub fn events(&self, job_id: i64, after_seq: u64) -> Result<Vec<JobEvent>, StoreError> {
        let conn = self.conn();
        current_state(&conn, job_id)?;
        let doing = "reading job events";
        let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
        let mut stmt = conn
            .prepare(
                "SELECT job_id, seq, at, kind, step, message, done_bytes, total_bytes \
                 FROM job_events WHERE job_id = ?1 AND seq > ?2 ORDER BY seq",
            )
            .map_err(db(doing))?;
        let mut rows = stmt.query((job_id, after)).map_err(db(doing))?;
        let mut events = Vec::new();
        while let Some(row) = rows.next().map_err(db(doing))? {
            events.push(read_event(row)?);
        }
        Ok(events)
    }
}

/// The body of [`Store::set_job_state`], inside the caller's transaction.
fn set_job_state_in(
    tx: &Connection,
    id: i64,
    state: JobState,
    error: Option<&str>,
) -> Result<(), StoreError> {
    let now = int(now_ms(), "time")?;
    let doing = "changing a job's state";
    let current = current_state(tx, id)?;
    if current.is_finished() {
        if current == state {
            return Ok(());
        }
        return Err(StoreError::Conflict(format!(
            "job {id} has already {current}; it cannot become {state}"
        )));
    }
    tx.execute(
        "UPDATE jobs SET state = ?2, error = ?3, \
         started_at = CASE WHEN ?2 = 'running' THEN coalesce(started_at, ?4) ELSE started_at END, \
         finished_at = CASE WHEN ?5 THEN ?4 ELSE finished_at END \
         WHERE id = ?1",
        (id, state.as_str(), error, now, state.is_finished()),
    )
    .map_err(db(doing))?;
    Ok(())
}

/// The body of [`Store::save_step`], inside the caller's transaction.
fn save_step_in(tx: &Connection, job_id: i64, step: &StepRecord) -> Result<(), StoreError> {
    let output = to_json(&step.output, "the step's output")?;
    let started_at = opt_int(step.started_at, "time")?;
    let finished_at = opt_int(step.finished_at, "time")?;
    let doing = "saving a job step";
    let name: Option<String> = tx
        .query_row(
            "SELECT name FROM job_steps WHERE job_id = ?1 AND step_index = ?2",
            (job_id, i64::from(step.index)),
            |row| row.get(0),
        )
        .optional()
        .map_err(db(doing))?;
    let Some(name) = name else {
        current_state(tx, job_id)?; // NotFound "job" when the job is missing
        return Err(StoreError::not_found(
            "job step",
            format!("job {job_id}, step {}", step.index),
        ));
    };
    if name != step.name {
        return Err(StoreError::Invalid(format!(
            "step {} of job {job_id} is {name:?}, not {:?}",
            step.index, step.name
        )));
    }
    tx.execute(
        "UPDATE job_steps SET state = ?3, attempts = ?4, output = ?5, error = ?6, \
         started_at = ?7, finished_at = ?8 WHERE job_id = ?1 AND step_index = ?2",
        (
            job_id,
            i64::from(step.index),
            step.state.as_str(),
            i64::from(step.attempts),
            &output,
            step.error.as_deref(),
            started_at,
            finished_at,
        ),
    )
    .map_err(db(doing))?;
    Ok(())
}

/// The body of [`Store::append_event`], inside the caller's transaction.
fn append_event_in(tx: &Connection, e: &NewJobEvent) -> Result<JobEvent, StoreError> {
    let at = now_ms();
    let at_int = int(at, "time")?;
    let done = int(e.done_bytes, "done bytes")?;
    let total = int(e.total_bytes, "total bytes")?;
    let doing = "recording a job event";
    current_state(tx, e.job_id)?;
    let last: i64 = tx
        .query_row(
            "SELECT coalesce(max(seq), 0) FROM job_events WHERE job_id = ?1",
            [e.job_id],
            |row| row.get(0),
        )
        .map_err(db(doing))?;
    let seq = last + 1;
    tx.execute(
        "INSERT INTO job_events (job_id, seq, at, kind, step, message, done_bytes, total_bytes) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        (
            e.job_id,
            seq,
            at_int,
            e.kind.as_str(),
            e.step.map(i64::from),
            &e.message,
            done,
            total,
        ),
    )
    .map_err(db(doing))?;
    Ok(JobEvent {
        job_id: e.job_id,
        seq: u64::try_from(seq).unwrap_or(0),
        at,
        kind: e.kind,
        step: e.step,
        message: e.message.clone(),
        done_bytes: e.done_bytes,
        total_bytes: e.total_bytes,
    })
}

/// A job's state; NotFound when there is no such job.
fn current_state(conn: &Connection, id: i64) -> Result<JobState, StoreError> {
    let text: Option<String> = conn
        .query_row("SELECT state FROM jobs WHERE id = ?1", [id], |row| {
            row.get(0)
        })
        .optional()
        .map_err(db("reading a job's state"))?;
    let text = text.ok_or_else(|| StoreError::not_found("job", id))?;
    text.parse().map_err(|error| {
        StoreError::Invalid(format!("table jobs, row {id}, column state: {error}"))
    })
}

fn load_job(conn: &Connection, id: i64) -> Result<JobRecord, StoreError> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1");
    select_jobs(conn, &sql, [id])?
        .pop()
        .ok_or_else(|| StoreError::not_found("job", id))
}

fn select_jobs(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<JobRecord>, StoreError> {
    let doing = "reading jobs";
    let mut stmt = conn.prepare(sql).map_err(db(doing))?;
    let mut rows = stmt.query(params).map_err(db(doing))?;
    let mut jobs = Vec::new();
    while let Some(row) = rows.next().map_err(db(doing))? {
        jobs.push(read_job(row)?);
    }
    drop(rows);
    for job in &mut jobs {
        job.steps = load_steps(conn, job.id)?;
    }
    Ok(jobs)
}

fn read_job(row: &Row<'_>) -> Result<JobRecord, StoreError> {
    let r = RowReader::by_id(row, "jobs")?;
    Ok(JobRecord {
        id: r.get("id")?,
        kind: r.get("kind")?,
        summary: r.get("summary")?,
        params: r.json("params")?,
        state: r.parse("state")?,
        steps: Vec::new(),
        resources: r.json("resources")?,
        parent: r.get("parent")?,
        error: r.get("error")?,
        cancel_requested: r.bool("cancel_requested")?,
        created_at: r.u64("created_at")?,
        started_at: r.opt_u64("started_at")?,
        finished_at: r.opt_u64("finished_at")?,
    })
}

fn load_steps(conn: &Connection, job_id: i64) -> Result<Vec<StepRecord>, StoreError> {
    let doing = "reading job steps";
    let mut stmt = conn
        .prepare_cached(
            "SELECT step_index, name, state, attempts, output, error, started_at, finished_at \
             FROM job_steps WHERE job_id = ?1 ORDER BY step_index",
        )
        .map_err(db(doing))?;
    let mut rows = stmt.query([job_id]).map_err(db(doing))?;
    let mut steps = Vec::new();
    while let Some(row) = rows.next().map_err(db(doing))? {
        let index: i64 = row.get("step_index").map_err(db(doing))?;
        let r = RowReader::labelled(
            row,
            "job_steps",
            format!("row (job {job_id}, step {index})"),
        );
        steps.push(StepRecord {
            index: r.u32("step_index")?,
            name: r.get("name")?,
            state: r.parse("state")?,
            attempts: r.u32("attempts")?,
            output: r.json("output")?,
            error: r.get("error")?,
            started_at: r.opt_u64("started_at")?,
            finished_at: r.opt_u64("finished_at")?,
        });
    }
    Ok(steps)
}

fn read_event(row: &Row<'_>) -> Result<JobEvent, StoreError> {
    let job_id: i64 = row.get("job_id").map_err(db("reading job events"))?;
    let seq: i64 = row.get("seq").map_err(db("reading job events"))?;
    let r = RowReader::labelled(row, "job_events", format!("row (job {job_id}, seq {seq})"));
    let kind: EventKind = r.parse("kind")?;
    Ok(JobEvent {
        job_id,
        seq: r.u64("seq")?,
        at: r.u64("at")?,
        kind,
        step: r.opt_u32("step")?,
        message: r.get("message")?,
        done_bytes: r.u64("done_bytes")?,
        total_bytes: r.u64("total_bytes")?,
    })
}
