//! The `homeward` command line. Each subcommand lives in its own module; this
//! one parses arguments, sets up logging and turns errors into exit codes.

mod admin_cmd;
mod config_cmd;
mod control_cmd;
mod demo;
mod fs_cmd;
mod guest_cmd;
mod jobs_cmd;
mod plugin_cmd;
mod plugin_new;
pub(crate) mod plugin_set;
mod serve_all;
mod sync_cmd;
mod table;
mod units;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Homeward: bring failed-over VMs home from the cloud.
#[derive(Debug, Parser)]
#[command(name = "homeward", version, about)]
struct Cli {
    /// The plugin-set file. Default: ./homeward.toml if it exists, else the
    /// embedded defaults.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Log filter (tracing's EnvFilter syntax), e.g. `info` or `homeward=debug`.
    #[arg(long, global = true, default_value = "warn", env = "HOMEWARD_LOG")]
    log: String,

    #[command(flatten)]
    server: control_cmd::ServerOpts,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the plugin host on its embedded defaults and show what it does.
    Demo,
    /// Inspect and list plugins.
    #[command(subcommand)]
    Plugin(plugin_cmd::PluginCommand),
    /// Check the plugin-set file.
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// Measure the host.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Look into a guest disk offline: volumes, file systems, files (and fix them).
    #[command(subcommand)]
    Fs(fs_cmd::FsCommand),
    /// Run the guest post-steps (NetworkManager restore, static IP reset) on a
    /// failed-back VM's disks, offline.
    #[command(subcommand)]
    Guest(guest_cmd::GuestCommand),
    /// Sync a disk image to another through the real data path (both roles in
    /// this process, gRPC over loopback).
    Sync(sync_cmd::SyncArgs),
    /// Run the server: every role in one process (control API, job
    /// scheduler, process server and master target), or with --role one role
    /// of the data path.
    Serve(sync_cmd::ServeArgs),
    #[command(flatten)]
    Client(control_cmd::ClientCommand),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Compile, cache, instantiate and call the template plugin.
    Plugins {
        /// Scale the number of iterations (1 = the default run).
        #[arg(long, default_value_t = 1)]
        scale: u32,
    },
    /// Write, read, allocated-only read and snapshot compare of Azure page
    /// blobs through the page-blob device (`scripts/bench-page-blob`).
    PageBlob(crate::bench_page_blob::PageBlobArgs),
    /// Plan and run a recovery plan of many VMs on the lab adapters and
    /// print the scheduler's overhead per step (`scripts/bench-plan`).
    Plan(crate::bench_plan::PlanBenchArgs),
    /// Ship replication cycles through the data path into the journal and
    /// print cycle time, RPO and the sustained change rate
    /// (`scripts/bench-replication`).
    Replication(crate::bench_replication::ReplicationBenchArgs),
}

/// Runs the `homeward` command with the process's arguments, printing to stdout.
pub fn main() -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match run(std::env::args_os(), &mut stdout) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit_code(&e)
        }
    }
}

/// The exit code for an error that reached `main`: the client commands'
/// errors carry theirs (2 usage, 3 server unreachable or token refused, 4 not
/// found, 5 refused); everything else is 1.
pub fn exit_code(error: &anyhow::Error) -> ExitCode {
    error
        .chain()
        .find_map(|cause| cause.downcast_ref::<crate::control::client::ClientError>())
        .map(|e| ExitCode::from(e.exit_code()))
        .unwrap_or(ExitCode::FAILURE)
}

/// Runs the command line `args` (program name first), writing its report to
/// `out`. Errors are returned, not printed, so callers (and tests) see them.
pub fn run<I, T>(args: I, out: &mut dyn Write) -> anyhow::Result<ExitCode>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    // The matches are kept: a plan's entries are ordered by their positions.
    let parsed = Cli::command()
        .try_get_matches_from(args)
        .and_then(|matches| Cli::from_arg_matches(&matches).map(|cli| (cli, matches)));
    let (cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(e) if !e.use_stderr() => {
            // --help and --version are answers, not errors.
            write!(out, "{e}")?;
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => return Err(anyhow::anyhow!("{e}")),
    };
    init_logging(&cli.log);
    match cli.command {
        Command::Demo => demo::run(out),
        Command::Plugin(cmd) => plugin_cmd::run(cmd, cli.config.as_deref(), out),
        Command::Config(cmd) => config_cmd::run(cmd, cli.config.as_deref(), out),
        Command::Bench(BenchCommand::Plugins { scale }) => crate::bench::run_and_print(scale, out),
        Command::Bench(BenchCommand::Plan(args)) => crate::bench_plan::run_and_print(&args, out),
        Command::Bench(BenchCommand::Replication(args)) => {
            crate::bench_replication::run_and_print(&args, out)
        }
        Command::Bench(BenchCommand::PageBlob(args)) => {
            crate::bench_page_blob::run_and_print(&args, out)
        }
        Command::Fs(cmd) => fs_cmd::run(cmd, cli.config.as_deref(), out),
        Command::Guest(cmd) => guest_cmd::run(cmd, cli.config.as_deref(), out),
        Command::Sync(args) => sync_cmd::sync(args, cli.config.as_deref(), out),
        // Without --role: every role in one process; `--listen` is the
        // control API's, `--state-dir` is `homeward`'s own option.
        Command::Serve(args) => match args.role {
            Some(_) => sync_cmd::serve(args, out),
            None => serve_all::run(
                cli.server.state_dir.as_deref(),
                args.listen,
                cli.config.as_deref(),
                out,
            ),
        },
        Command::Client(cmd) => control_cmd::run(cmd, &cli.server, &matches, out),
    }
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// clap's own consistency checks (duplicate names, bad references).
    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_options_of_one_role_need_the_role() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).map(|_| ());
        assert!(parse(&["homeward", "serve", "--state-dir", "x"]).is_ok());
        assert!(parse(&["homeward", "serve", "--target-root", "/t"]).is_err());
        assert!(
            parse(&[
                "homeward",
                "serve",
                "--role",
                "master-target",
                "--target-root",
                "/t",
                "--plaintext-loopback"
            ])
            .is_ok()
        );
    }

    #[test]
    fn jobs_takes_an_id_or_a_subcommand() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).map(|_| ());
        assert!(parse(&["homeward", "jobs"]).is_ok());
        assert!(parse(&["homeward", "jobs", "7", "--watch"]).is_ok());
        assert!(parse(&["homeward", "jobs", "cancel", "7", "--json"]).is_ok());
        // The server options go before or after the command.
        let global = [
            "homeward",
            "--server",
            "http://h:1",
            "jobs",
            "--token-file",
            "t",
        ];
        assert!(parse(&global).is_ok());
        assert!(parse(&["homeward", "jobs", "seven"]).is_err());
    }
}
