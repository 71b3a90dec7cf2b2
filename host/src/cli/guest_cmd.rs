//! `homeward guest plan|apply`: run the guest post-steps on a failed-back
//! VM's disks, offline.
//!
//! The disks are opened (raw, VMDK flat, VHD fixed), their partitions and LVM
//! volumes resolved, the root file system found and its fstab mounts
//! assembled; then each step plans, the plans are printed (every file before
//! and after), and `apply --yes` carries them out and plans again. The NICs
//! recorded at protection come from a small TOML file (`--nics`):
//!
//! ```toml
//! vm-name = "web01"
//! [[nic]]
//! mac = "00:50:56:aa:bb:01"
//! device = "eth0"
//! addresses = ["10.0.0.5/24"]
//! gateways = ["10.0.0.1"]
//! dns = ["10.0.0.2"]
//! search = ["example.com"]
//! [[nic]]
//! mac = "00:50:56:aa:bb:02"
//! dhcp = true
//! [mac-map]                      # when failback created a new VM
//! "00:50:56:aa:bb:01" = "00:50:56:cc:dd:01"
//! ```

use super::plugin_set;
use crate::disk::BlockDevice;
use crate::filesystem::{AssembledGuest, FsHandlers};
use crate::guest_fs::GuestTree as _;
use crate::guest_steps::{self, Outcome, RunReport};
use crate::plugin::instance::StepContext;
use crate::plugin::wit::v0_1::types::{Addressing, NicConfig, StaticAddressing};
use crate::plugin::{LoadedPlugin, PluginKind};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// The steps a failback runs, in order: NetworkManager first, so that the
/// static addresses land in the profiles it will manage.
const DEFAULT_STEPS: &[&str] = &["networkmanager-restore", "static-ip-reset"];

/// The `--nics` file format, for `--help`.
const NICS_FORMAT: &str = "The --nics file (TOML) records the VM's NICs as protection saw them:
  vm-name = \"web01\"
  [[nic]]
  mac = \"00:50:56:aa:bb:01\"
  device = \"eth0\"
  addresses = [\"10.0.0.5/24\"]
  gateways = [\"10.0.0.1\"]
  dns = [\"10.0.0.2\"]
  [[nic]]
  mac = \"00:50:56:aa:bb:02\"
  dhcp = true
  [mac-map]        # when failback created a new VM
  \"00:50:56:aa:bb:01\" = \"00:50:56:cc:dd:01\"";

/// Guest subcommands.
#[derive(Debug, Subcommand)]
pub enum GuestCommand {
    /// Show what the guest steps would change (nothing is written).
    #[command(after_help = NICS_FORMAT)]
    Plan(GuestArgs),
    /// Carry the plans out, then plan again to prove a second run changes nothing.
    #[command(after_help = NICS_FORMAT)]
    Apply {
        #[command(flatten)]
        args: GuestArgs,
        /// Confirm: without it, `apply` only plans.
        #[arg(long)]
        yes: bool,
    },
}

/// The VM's disks and what to run.
#[derive(Debug, Args)]
pub struct GuestArgs {
    /// A disk of the VM, in the VM's order (repeat for each disk).
    #[arg(long = "disk", required = true, value_name = "IMAGE")]
    disks: Vec<PathBuf>,
    /// The NICs recorded at protection (TOML; format below).
    #[arg(long, value_name = "FILE")]
    nics: Option<PathBuf>,
    /// A step to run (repeat; default: networkmanager-restore, static-ip-reset).
    #[arg(long = "step", value_name = "ID")]
    steps: Vec<String>,
}

pub fn run(
    cmd: GuestCommand,
    config: Option<&Path>,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let (args, apply) = match cmd {
        GuestCommand::Plan(args) => (args, false),
        GuestCommand::Apply { args, yes } => {
            if !yes {
                writeln!(
                    out,
                    "apply needs --yes to write the disks; showing the plan only"
                )?;
            }
            (args, yes)
        }
    };
    let context = match &args.nics {
        Some(path) => read_nics(path)?,
        None => StepContext {
            vm_name: String::new(),
            recorded_nics: Vec::new(),
            mac_map: Vec::new(),
        },
    };

    // The runtime drives call deadlines: it must outlive every call.
    let (_runtime, entries) = plugin_set::load_all_with(&plugin_set::locate(config), apply)?;
    let mut plugins = BTreeMap::new();
    for entry in entries {
        match entry.loaded {
            Ok(p) => {
                plugins.insert(entry.id, p);
            }
            Err(e) => tracing::warn!(plugin = entry.id, "not loaded: {e}"),
        }
    }
    let wanted: Vec<String> = if args.steps.is_empty() {
        DEFAULT_STEPS.iter().map(|s| s.to_string()).collect()
    } else {
        args.steps.clone()
    };
    let mut steps: Vec<LoadedPlugin> = Vec::new();
    for id in &wanted {
        match plugins.remove(id) {
            Some(p) if p.manifest().kind == PluginKind::GuestStep => steps.push(p),
            Some(_) => bail!("plugin `{id}` is not a guest step"),
            None => bail!("no guest-step plugin `{id}` is loaded (see `homeward plugin list`)"),
        }
    }
    let handlers = FsHandlers::new(plugins.into_values());

    let mut disks: Vec<(String, Arc<dyn BlockDevice>)> = Vec::new();
    for path in &args.disks {
        let device = crate::disk::open(path, apply, None)
            .with_context(|| format!("opening {}", path.display()))?;
        disks.push((path.display().to_string(), device.into()));
    }
    let guest = Arc::new(AssembledGuest::assemble(&handlers, &disks, apply)?);
    writeln!(out, "guest: {}", guest.describe())?;
    for note in guest.notes() {
        writeln!(out, "  {note}")?;
    }

    let report = guest_steps::run(&steps, &guest, &context, apply);
    // Sync and close the volumes whatever happened, then report.
    let guest = Arc::into_inner(guest).context("the guest tree is still shared")?;
    let closed = guest.close();
    let report = report?;
    closed.context("syncing the guest's volumes")?;
    print_report(out, &report)?;
    verdict(out, &report, apply)
}

fn print_report(out: &mut dyn Write, report: &RunReport) -> std::io::Result<()> {
    for step in &report.steps {
        writeln!(out, "step {}: {}", step.step, step.summary)?;
        for note in &step.notes {
            writeln!(out, "  note: {note}")?;
        }
        for record in &step.changes {
            let c = &record.change;
            let state = match &record.outcome {
                Outcome::Planned => "planned",
                Outcome::Applied => "applied",
                Outcome::Manual(_) => "MANUAL",
            };
            writeln!(
                out,
                "  [{state}] {:?} {} ({})",
                c.kind, c.path, record.reason
            )?;
            show(out, "    before", record.before.as_deref())?;
            show(out, "    after ", Some(&c.content))?;
        }
    }
    Ok(())
}

fn show(out: &mut dyn Write, label: &str, bytes: Option<&[u8]>) -> std::io::Result<()> {
    match bytes {
        None => writeln!(out, "{label}: (absent)"),
        Some(bytes) => {
            for line in String::from_utf8_lossy(bytes).lines() {
                writeln!(out, "{label}: {line}")?;
            }
            Ok(())
        }
    }
}

/// Success only when everything was applied and a second plan is empty.
fn verdict(out: &mut dyn Write, report: &RunReport, applied: bool) -> anyhow::Result<ExitCode> {
    if !applied {
        return Ok(ExitCode::SUCCESS);
    }
    let manual = report.manual_steps();
    if !manual.is_empty() {
        writeln!(
            out,
            "MANUAL STEPS: the disks could not take {} change(s); do this from a rescue shell before the first boot:",
            manual.len()
        )?;
        for (i, (step, text)) in manual.iter().enumerate() {
            writeln!(out, "{}. [{step}] {text}", i + 1)?;
        }
        return Ok(ExitCode::FAILURE);
    }
    let pending: Vec<String> = report
        .replanned
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| format!("{s} ({n})"))
        .collect();
    if pending.is_empty() {
        writeln!(out, "second run: nothing to do")?;
        Ok(ExitCode::SUCCESS)
    } else {
        bail!(
            "after applying, these steps still want changes: {} (a step that is not idempotent: report it)",
            pending.join(", ")
        )
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct NicsFile {
    #[serde(default)]
    vm_name: String,
    #[serde(default)]
    nic: Vec<NicEntry>,
    #[serde(default)]
    mac_map: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NicEntry {
    mac: String,
    device: Option<String>,
    network: Option<String>,
    #[serde(default)]
    dhcp: bool,
    #[serde(default)]
    addresses: Vec<String>,
    #[serde(default)]
    gateways: Vec<String>,
    #[serde(default)]
    dns: Vec<String>,
    #[serde(default)]
    search: Vec<String>,
}

fn read_nics(path: &Path) -> anyhow::Result<StepContext> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file: NicsFile =
        toml::from_str(&text).with_context(|| format!("{} is not a NIC record", path.display()))?;
    let mut nics = Vec::new();
    for nic in file.nic {
        let mac = mac(&nic.mac).with_context(|| format!("{}: nic {}", path.display(), nic.mac))?;
        let addressing = match (nic.dhcp, nic.addresses.is_empty()) {
            (true, true) => Addressing::Dhcp,
            (false, false) => Addressing::Fixed(StaticAddressing {
                addresses: nic
                    .addresses
                    .iter()
                    .map(|a| prefix(a))
                    .collect::<anyhow::Result<_>>()
                    .with_context(|| format!("{}: nic {mac}", path.display()))?,
                gateways: nic.gateways,
                dns_servers: nic.dns,
                dns_search: nic.search,
            }),
            _ => bail!(
                "{}: nic {mac}: give either `dhcp = true` or `addresses`",
                path.display()
            ),
        };
        nics.push(NicConfig {
            mac,
            network: nic.network,
            device_name: nic.device,
            addressing,
        });
    }
    let mac_map = file
        .mac_map
        .iter()
        .map(|(old, new)| Ok((mac(old)?, mac(new)?)))
        .collect::<anyhow::Result<_>>()
        .with_context(|| format!("{}: mac-map", path.display()))?;
    Ok(StepContext {
        vm_name: file.vm_name,
        recorded_nics: nics,
        mac_map,
    })
}

/// `00:50:56:AA:BB:CC` or `00-50-56-aa-bb-cc` → `00:50:56:aa:bb:cc`.
fn mac(text: &str) -> anyhow::Result<String> {
    let hex: String = text.chars().filter(|c| *c != ':' && *c != '-').collect();
    if hex.len() != 12 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("{text:?} is not a MAC address like 00:50:56:aa:bb:cc");
    }
    let hex = hex.to_ascii_lowercase();
    Ok((0..6)
        .map(|i| &hex[i * 2..i * 2 + 2])
        .collect::<Vec<_>>()
        .join(":"))
}

/// `10.0.0.5/24` → (`10.0.0.5`, 24), checked.
fn prefix(text: &str) -> anyhow::Result<(String, u8)> {
    let (ip, len) = text
        .split_once('/')
        .with_context(|| format!("address {text:?} needs a prefix length, like 10.0.0.5/24"))?;
    let addr: std::net::IpAddr = ip
        .parse()
        .with_context(|| format!("{ip:?} is not an IP address"))?;
    let len: u8 = len
        .parse()
        .ok()
        .filter(|&l| l <= if addr.is_ipv4() { 32 } else { 128 })
        .with_context(|| format!("prefix length in {text:?} is out of range"))?;
    Ok((addr.to_string(), len))
}
