//! `homeward plugin new --kind KIND NAME`: a new plugin crate that builds and
//! passes its kind's smoke cases, and the commands to go on from there.

use crate::plugin::PluginKind;
use crate::scaffold::{self, NewPlugin};
use clap::{Args, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `plugin new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// What the plugin is.
    #[arg(long, value_enum)]
    kind: KindArg,
    /// The plugin id (`[a-z0-9][a-z0-9-]{0,62}`), also the crate's directory name.
    name: String,
    /// Where to create the crate's directory (default: the current directory).
    #[arg(long, value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// The `sdk` directory of a Homeward checkout (default: the SDK next to
    /// the sources this binary was built from, when it is still there).
    #[arg(long, value_name = "PATH")]
    sdk: Option<PathBuf>,
}

/// The kinds, spelled as their WIT worlds.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum KindArg {
    HypervisorAdapter,
    CloudAdapter,
    FilesystemHandler,
    GuestStep,
}

impl From<KindArg> for PluginKind {
    fn from(kind: KindArg) -> PluginKind {
        match kind {
            KindArg::HypervisorAdapter => PluginKind::HypervisorAdapter,
            KindArg::CloudAdapter => PluginKind::CloudAdapter,
            KindArg::FilesystemHandler => PluginKind::FilesystemHandler,
            KindArg::GuestStep => PluginKind::GuestStep,
        }
    }
}

/// Creates the crate and prints what was created and the next commands.
pub fn run(args: NewArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let kind = PluginKind::from(args.kind);
    let created = scaffold::create(&NewPlugin {
        kind,
        id: args.name.clone(),
        parent: args.dir,
        sdk: args.sdk,
    })?;
    writeln!(
        out,
        "created {kind} plugin `{}` (crate {}) in {}:",
        args.name,
        created.crate_name,
        created.dir.display()
    )?;
    for file in &created.files {
        writeln!(out, "  {}", file.display())?;
    }
    writeln!(out, "SDK: {}", created.sdk.display())?;
    writeln!(out)?;
    writeln!(out, "next:")?;
    writeln!(out, "  cd {}", created.dir.display())?;
    writeln!(out, "  rustup target add wasm32-wasip2   # once")?;
    writeln!(out, "  cargo build --release --target wasm32-wasip2")?;
    writeln!(out, "  homeward plugin inspect {}", created.wasm.display())?;
    writeln!(
        out,
        "  homeward plugin test {} --junit report.xml",
        created.wasm.display()
    )?;
    Ok(ExitCode::SUCCESS)
}
