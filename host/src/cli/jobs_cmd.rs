//! `homeward jobs [ID] [--watch]`, `homeward jobs cancel ID`, and following
//! jobs as they run (also `--wait` of the job commands).
//!
//! Following prints a line per event (progress aside) and, when stderr is a
//! terminal, a progress bar per running job there; with `--json`, one JSON
//! event per line.

use super::control_cmd::{OutputOpts, ServerOpts, block_on, connect, print_json, record};
use super::table::{Table, or_dash, when, when_opt};
use crate::control::client::{ClientError, Connection};
use crate::control::proto as pb;
use crate::store::{EventKind, JobEvent, JobRecord, JobState, StepState};
use clap::{Args, Subcommand};
use std::collections::HashMap;
use std::io::Write;
use std::pin::Pin;
use std::process::ExitCode;
use std::time::Duration;
use tokio_stream::{Stream, StreamExt, StreamMap};

/// How often `jobs --watch` looks for jobs that started since.
const NEW_JOBS_EVERY: Duration = Duration::from_secs(2);

/// `homeward jobs`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct JobsArgs {
    #[command(flatten)]
    output: OutputOpts,
    /// Show this job with its steps (default: list the jobs).
    id: Option<i64>,
    /// Follow the job (or every queued and running job) until it finishes.
    #[arg(long)]
    watch: bool,
    /// List only jobs in this state: queued, running, succeeded, failed, cancelled.
    #[arg(long, value_parser = super::control_cmd::parse_enum::<JobState>)]
    state: Option<JobState>,
    /// List only jobs of this kind (reprotect, failover, commit, test-failover...).
    #[arg(long)]
    kind: Option<String>,
    /// List at most this many (newest first).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    #[command(subcommand)]
    command: Option<JobsCommand>,
}

#[derive(Debug, Subcommand)]
enum JobsCommand {
    /// Cancel a queued or running job: the running step finishes, the job ends cancelled.
    Cancel {
        /// The job.
        id: i64,
    },
}

pub fn run(args: JobsArgs, server: &ServerOpts, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let client = server.with_json(args.output.json);
    match args.command {
        Some(JobsCommand::Cancel { id }) => block_on(async {
            let conn = connect(&client).await?;
            let job = conn
                .client
                .clone()
                .cancel_job(pb::CancelJobRequest { job_id: id })
                .await
                .map_err(|s| conn.error(&s))?
                .into_inner();
            let job: JobRecord = record(job)?;
            if client.json {
                print_json(out, &job)?;
            } else if job.state.is_finished() {
                writeln!(out, "job {id} is {}", job.state.as_str())?;
            } else {
                writeln!(
                    out,
                    "job {id}: cancel requested; it ends after its running step (`homeward jobs {id} --watch`)"
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }),
        None => block_on(async {
            let conn = connect(&client).await?;
            match (args.id, args.watch) {
                (Some(id), true) => {
                    let finals = follow(&conn, &[id], false, client.json, out).await?;
                    report_finals(&finals, client.json, out)
                }
                (None, true) => watch_all(&conn, client.json, out).await,
                (Some(id), false) => {
                    let job = get_job(&conn, id).await?;
                    if client.json {
                        print_json(out, &job)?;
                    } else {
                        print_job(&job, out)?;
                    }
                    Ok(ExitCode::SUCCESS)
                }
                (None, false) => {
                    let jobs = list_jobs(&conn, args.state, args.kind.clone(), args.limit).await?;
                    if client.json {
                        print_json(out, &jobs)?;
                    } else if jobs.is_empty() {
                        writeln!(out, "no jobs")?;
                    } else {
                        print_jobs(&jobs, out)?;
                    }
                    Ok(ExitCode::SUCCESS)
                }
            }
        }),
    }
}

/// One job with its steps.
pub(super) async fn get_job(conn: &Connection, id: i64) -> Result<JobRecord, ClientError> {
    let job = conn
        .client
        .clone()
        .get_job(pb::GetJobRequest { job_id: id })
        .await
        .map_err(|s| conn.error(&s))?
        .into_inner();
    record(job)
}

async fn list_jobs(
    conn: &Connection,
    state: Option<JobState>,
    kind: Option<String>,
    limit: u32,
) -> Result<Vec<JobRecord>, ClientError> {
    let reply = conn
        .client
        .clone()
        .list_jobs(pb::ListJobsRequest {
            state: state.map(|s| crate::control::convert::job_state_pb(&s)),
            kind,
            limit,
        })
        .await
        .map_err(|s| conn.error(&s))?
        .into_inner();
    reply.jobs.into_iter().map(record).collect()
}

fn print_jobs(jobs: &[JobRecord], out: &mut dyn Write) -> std::io::Result<()> {
    let mut table = Table::new(&["ID", "KIND", "STATE", "STEP", "CREATED", "SUMMARY"]);
    for job in jobs {
        let done = job
            .steps
            .iter()
            .filter(|s| s.state == StepState::Done || s.state == StepState::Skipped)
            .count();
        table.row(vec![
            job.id.to_string(),
            job.kind.clone(),
            job.state.as_str().to_string(),
            format!("{done}/{}", job.steps.len()),
            when(job.created_at),
            job.summary.clone(),
        ]);
    }
    table.print(out)
}

fn print_job(job: &JobRecord, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "job {}: {}", job.id, job.summary)?;
    writeln!(out, "kind:      {}", job.kind)?;
    writeln!(
        out,
        "state:     {}{}",
        job.state.as_str(),
        if job.cancel_requested && !job.state.is_finished() {
            " (cancel requested)"
        } else {
            ""
        }
    )?;
    if let Some(parent) = job.parent {
        writeln!(out, "parent:    job {parent}")?;
    }
    writeln!(out, "created:   {}", when(job.created_at))?;
    writeln!(out, "started:   {}", when_opt(job.started_at))?;
    writeln!(out, "finished:  {}", when_opt(job.finished_at))?;
    if !job.resources.is_empty() {
        writeln!(out, "resources: {}", job.resources.join(", "))?;
    }
    if let Some(error) = &job.error {
        writeln!(out, "error:     {error}")?;
    }
    writeln!(out)?;
    let mut table = Table::new(&["#", "STEP", "STATE", "ATTEMPTS", "FINISHED", "ERROR"]);
    for step in &job.steps {
        table.row(vec![
            (step.index + 1).to_string(),
            step.name.clone(),
            step.state.as_str().to_string(),
            step.attempts.to_string(),
            when_opt(step.finished_at),
            or_dash(step.error.as_deref()),
        ]);
    }
    table.print(out)
}

/// Prints each job's outcome; exit 1 when one did not succeed.
pub(super) fn report_finals(
    finals: &[JobRecord],
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let mut failed = Vec::new();
    for job in finals {
        if json {
            writeln!(out, "{}", serde_json::to_string(job)?)?;
        } else {
            match &job.error {
                Some(error) => writeln!(out, "job {} {}: {error}", job.id, job.state.as_str())?,
                None => writeln!(out, "job {} {}", job.id, job.state.as_str())?,
            }
        }
        if job.state != JobState::Succeeded {
            failed.push(format!(
                "job {} {}{}",
                job.id,
                job.state.as_str(),
                job.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ));
        }
    }
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(ClientError::Failed(failed.join("; ")).into())
    }
}

/// Follows every queued and running job, picking up jobs that start
/// meanwhile, until none is left.
async fn watch_all(conn: &Connection, json: bool, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let mut follower = Follower::new(conn, View::new(json));
    let mut seen = std::collections::HashSet::new();
    let mut finals = Vec::new();
    let mut tick = tokio::time::interval(NEW_JOBS_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let mut found = false;
                for state in [JobState::Running, JobState::Queued] {
                    for job in list_jobs(conn, Some(state), None, 1000).await? {
                        if seen.insert(job.id) {
                            follower.add(job, out).await?;
                        }
                        found = true;
                    }
                }
                if !found && follower.is_empty() {
                    break;
                }
            }
            ended = follower.next(out), if !follower.is_empty() => {
                if let Some(job) = ended? {
                    finals.push(job);
                }
            }
        }
    }
    follower.view.clear();
    if finals.is_empty() && !json {
        writeln!(out, "no job is queued or running")?;
        return Ok(ExitCode::SUCCESS);
    }
    report_finals(&finals, json, out)
}

/// Follows `ids` until each has finished; returns their final records.
/// `quiet_lines`: leave out the line introducing each job (`--wait` has
/// already said what it submitted).
pub(super) async fn follow(
    conn: &Connection,
    ids: &[i64],
    quiet_lines: bool,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<Vec<JobRecord>> {
    let mut view = View::new(json);
    view.quiet = quiet_lines;
    let mut follower = Follower::new(conn, view);
    for &id in ids {
        let job = get_job(conn, id).await?;
        follower.add(job, out).await?;
    }
    let mut finals = Vec::new();
    while !follower.is_empty() {
        if let Some(job) = follower.next(out).await? {
            finals.push(job);
        }
    }
    follower.view.clear();
    Ok(finals)
}

type Events = Pin<Box<dyn Stream<Item = Option<Result<pb::JobEvent, tonic::Status>>> + Send>>;

/// Watch streams of several jobs, merged; each stream's end is marked with
/// `None` so the job's final state can be fetched.
struct Follower<'c> {
    conn: &'c Connection,
    streams: StreamMap<i64, Events>,
    jobs: HashMap<i64, JobRecord>,
    view: View,
}

impl<'c> Follower<'c> {
    fn new(conn: &'c Connection, view: View) -> Self {
        Follower {
            conn,
            streams: StreamMap::new(),
            jobs: HashMap::new(),
            view,
        }
    }

    fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    async fn add(&mut self, job: JobRecord, out: &mut dyn Write) -> anyhow::Result<()> {
        let stream = self
            .conn
            .client
            .clone()
            .watch_job(pb::WatchJobRequest {
                job_id: job.id,
                after_seq: 0,
            })
            .await
            .map_err(|s| self.conn.error(&s))?
            .into_inner();
        let events: Events = Box::pin(stream.map(Some).chain(tokio_stream::once(None)));
        self.streams.insert(job.id, events);
        self.view.add(&job, out)?;
        self.jobs.insert(job.id, job);
        Ok(())
    }

    /// The next event; a job's final record when its stream ended.
    async fn next(&mut self, out: &mut dyn Write) -> anyhow::Result<Option<JobRecord>> {
        let Some((id, item)) = self.streams.next().await else {
            return Ok(None);
        };
        match item {
            Some(Ok(event)) => {
                let event: JobEvent = record(event)?;
                if let Some(job) = self.jobs.get(&id) {
                    self.view.event(job, &event, out)?;
                }
                Ok(None)
            }
            Some(Err(status)) => Err(self.conn.error(&status).into()),
            None => {
                self.streams.remove(&id);
                let job = get_job(self.conn, id).await?;
                self.view.done(&job);
                Ok(Some(job))
            }
        }
    }
}

/// How events are shown: JSON lines, or a line per event (progress left
/// out) on stdout, plus a bar per job on stderr when it is a terminal (lines
/// are then printed with the bars out of the way, so stdout reads the same
/// either way).
struct View {
    json: bool,
    /// Leave out the line that introduces each job.
    quiet: bool,
    bars: Option<Bars>,
}

struct Bars {
    multi: indicatif::MultiProgress,
    by_job: HashMap<i64, indicatif::ProgressBar>,
}

impl View {
    fn new(json: bool) -> View {
        use std::io::IsTerminal;
        let bars = (!json && std::io::stderr().is_terminal()).then(|| Bars {
            multi: indicatif::MultiProgress::new(),
            by_job: HashMap::new(),
        });
        View {
            json,
            quiet: false,
            bars,
        }
    }

    fn line(&self, out: &mut dyn Write, line: &str) -> std::io::Result<()> {
        match &self.bars {
            Some(bars) => bars.multi.suspend(|| writeln!(out, "{line}")),
            None => writeln!(out, "{line}"),
        }
    }

    fn add(&mut self, job: &JobRecord, out: &mut dyn Write) -> std::io::Result<()> {
        if !self.json && !self.quiet {
            self.line(
                out,
                &format!("job {} {}: {}", job.id, job.state.as_str(), job.summary),
            )?;
        }
        if let Some(bars) = &mut self.bars {
            let bar = bars.multi.add(indicatif::ProgressBar::new(0));
            let style = indicatif::ProgressStyle::with_template(
                "{prefix} {bar:30} {bytes}/{total_bytes} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_prefix(format!("job {}", job.id));
            bar.set_message(format!("{} ({})", job.summary, job.state.as_str()));
            bars.by_job.insert(job.id, bar);
        }
        Ok(())
    }

    fn event(&mut self, job: &JobRecord, e: &JobEvent, out: &mut dyn Write) -> anyhow::Result<()> {
        if self.json {
            writeln!(out, "{}", serde_json::to_string(e)?)?;
            return Ok(());
        }
        if let Some(bar) = self.bars.as_ref().and_then(|b| b.by_job.get(&job.id)) {
            match e.kind {
                EventKind::Progress => {
                    bar.set_length(e.total_bytes);
                    bar.set_position(e.done_bytes);
                    bar.set_message(step_label(job, e.step, &e.message));
                }
                EventKind::StepStarted => {
                    bar.set_length(0);
                    bar.set_position(0);
                    bar.set_message(step_label(job, e.step, &e.message));
                }
                _ => {}
            }
        }
        if let Some(line) = event_line(job, e) {
            self.line(out, &line)?;
        }
        Ok(())
    }

    fn done(&mut self, job: &JobRecord) {
        if let Some(bar) = self.bars.as_mut().and_then(|b| b.by_job.remove(&job.id)) {
            bar.finish_and_clear();
        }
    }

    fn clear(&mut self) {
        if let Some(bars) = &mut self.bars {
            for bar in bars.by_job.values() {
                bar.finish_and_clear();
            }
            bars.by_job.clear();
            let _ = bars.multi.clear();
        }
    }
}

/// "step 2/5 copy-disk" (with the event's message when it has one).
fn step_label(job: &JobRecord, step: Option<u32>, message: &str) -> String {
    let mut label = match step {
        Some(index) => {
            let name = job
                .steps
                .iter()
                .find(|s| s.index == index)
                .map(|s| s.name.as_str())
                .unwrap_or("?");
            format!("step {}/{} {name}", index + 1, job.steps.len())
        }
        None => String::new(),
    };
    if !message.is_empty() {
        if !label.is_empty() {
            label.push_str(": ");
        }
        label.push_str(message);
    }
    label
}

/// A line for an event; none for progress, nor for the job's end (the
/// caller reports each job's outcome from its final record).
fn event_line(job: &JobRecord, e: &JobEvent) -> Option<String> {
    let what = match e.kind {
        EventKind::Progress | EventKind::JobFinished => return None,
        EventKind::JobStarted => "started".to_string(),
        EventKind::StepStarted => "started".to_string(),
        EventKind::StepDone => "done".to_string(),
        EventKind::StepRetry => "retrying".to_string(),
        EventKind::StepFailed => "failed".to_string(),
        EventKind::Log => String::new(),
    };
    let label = step_label(job, e.step, "");
    // Messages that only repeat the step's name or the job's summary add nothing.
    let step_name = e
        .step
        .and_then(|i| job.steps.iter().find(|s| s.index == i))
        .map(|s| s.name.as_str());
    let message = if Some(e.message.as_str()) == step_name || e.message == job.summary {
        ""
    } else {
        e.message.as_str()
    };
    let mut line = format!("job {}", job.id);
    if !label.is_empty() {
        line.push(' ');
        line.push_str(&label);
    }
    line.push(':');
    if !what.is_empty() {
        line.push(' ');
        line.push_str(&what);
    }
    if !message.is_empty() {
        line.push_str(if what.is_empty() { " " } else { ": " });
        line.push_str(message);
    }
    Some(line)
}
