//! `homeward serve` without `--role`: every role in one process. The control
//! API, the job scheduler (with the workflows), and the process server and
//! master target in-process (components registered with address `local`).
//!
//! First start creates the state directory, its store and the token files,
//! and prints their paths (never the tokens). SIGINT or SIGTERM stop it
//! gracefully: no new calls, running job steps finish, then the process ends;
//! a job cut short resumes at its step on the next start.
//!
//! The replication-cycle driver runs too: every group that sets
//! `cycle_interval_secs` gets its cycles (issue 8) for as long as the server
//! runs, and picks up again after a restart.

use crate::control::auth::TokenFileState;
use crate::control::server::{self, ServeError};
use crate::control::state::{DEFAULT_STATE_DIR, StateDir};
use crate::jobs::SchedulerOptions;
use crate::workflow::{Cycles, Env, Orchestrator};
use anyhow::Context;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

pub fn run(
    state_dir: Option<&Path>,
    listen: Option<SocketAddr>,
    config: Option<&Path>,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let listen = match listen {
        Some(addr) => addr,
        None => crate::control::DEFAULT_LISTEN
            .parse()
            .context("the default control API address")?,
    };
    // Before anything is created or loaded.
    server::check_listen(listen)?;
    let state = StateDir::new(state_dir.unwrap_or(Path::new(DEFAULT_STATE_DIR)));
    let (store, tokens) = server::open_state(&state)?;
    let identity = store.identity()?;
    writeln!(
        out,
        "state store {} (server {})",
        state.store_path().display(),
        identity.server_id
    )?;
    for token in &tokens {
        let what = match token.made {
            TokenFileState::Kept => "",
            TokenFileState::Created => " (new)",
            TokenFileState::Replaced => " (new: the old one was not this store's)",
        };
        writeln!(
            out,
            "{} token: {}{what}",
            token.role.as_str(),
            token.path.display()
        )?;
    }
    let env = Env::load(config).context("loading the plugin set")?;
    // The store keeps the plugin set the server runs with (S8): a restored
    // store says what its sites' plugin ids meant.
    let plugin_set = match crate::cli::plugin_set::locate(config) {
        crate::cli::plugin_set::Source::File(path) => plugin_set_record(&path)?,
        crate::cli::plugin_set::Source::Embedded => "# the embedded defaults\n".to_string(),
    };
    store
        .put_plugin_set("active", &plugin_set)
        .context("recording the plugin set in the state store")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let orchestrator = Orchestrator::new(store, Arc::new(env), SchedulerOptions::default());
        orchestrator
            .start()
            .context("starting the job scheduler (resuming unfinished jobs)")?;
        let cycles = orchestrator.start_cycles(CYCLE_TICK);
        writeln!(
            out,
            "replication cycles: every group's cycle interval, checked every {} s",
            CYCLE_TICK.as_secs()
        )?;
        let mut handle = server::spawn(orchestrator.clone(), listen).await?;
        let mut signals = StopSignals::listen()?;
        writeln!(out, "control API listening on {}", handle.addr())?;
        out.flush()?;
        let failed = tokio::select! {
            () = signals.recv() => None,
            result = handle.finished() => Some(result),
        };
        match failed {
            None => {
                // Best effort: whoever read stdout may be gone by now, and
                // that must not turn a clean stop into a failure.
                let _ = writeln!(out, "stopping: running job steps finish first");
                let _ = out.flush();
                handle.stop().await?;
                stop_cycles(cycles).await;
                orchestrator.shutdown().await;
                let _ = writeln!(out, "stopped");
                Ok(ExitCode::SUCCESS)
            }
            Some(result) => {
                stop_cycles(cycles).await;
                orchestrator.shutdown().await;
                result?;
                Err(ServeError::Transport("the control API stopped".into()).into())
            }
        }
    })
}

/// How often the cycle driver looks for due cycles (intervals are whole
/// seconds).
const CYCLE_TICK: Duration = Duration::from_secs(1);

/// Stops the cycle driver (joining its thread, off the async workers); the
/// cycles it submitted finish with the scheduler.
async fn stop_cycles(cycles: Cycles) {
    if let Err(e) = tokio::task::spawn_blocking(move || cycles.stop()).await {
        tracing::warn!("stopping the replication-cycle driver: {e}");
    }
}

/// The plugin-set file as the store keeps it: its text, unless it holds an
/// inline secret, which must not reach the store (nor its backups); then only
/// a note saying so.
fn plugin_set_record(path: &Path) -> anyhow::Result<String> {
    use crate::config::SecretSource;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let parsed = crate::cli::plugin_set::parse_file(path)?;
    let inline = parsed.set.iter().flat_map(|set| &set.plugins).any(|entry| {
        entry
            .secrets
            .values()
            .any(|s| matches!(s, SecretSource::Inline(_)))
    });
    Ok(if inline {
        format!(
            "# {} is not kept here: it holds inline secrets (reference them with {{ env = … }} or {{ file = … }})\n",
            path.display()
        )
    } else {
        text
    })
}

/// SIGINT (Ctrl-C) or SIGTERM.
/// SIGINT and SIGTERM, listened for from before the server says it
/// listens: a signal that came in between would otherwise kill the process
/// with its default action, skipping the graceful stop.
struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn listen() -> anyhow::Result<StopSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignals {
            interrupt: signal(SignalKind::interrupt()).context("listening for SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
        })
    }

    /// Waits for either.
    async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
