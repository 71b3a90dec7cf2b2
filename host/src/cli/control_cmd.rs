//! The control API's client commands: `site`, `component`, `discover`,
//! `group`, `protect`, `items`, `plan`, `reprotect`, `failover`, `commit`,
//! `test-failover` and `points` (`jobs` and `admin` have their own modules).
//!
//! Each connects to `--server` with the token of `--token-file`, makes its
//! calls and prints a table, or with `--json` the store's records as JSON.
//! Errors carry their exit code ([`ClientError::exit_code`]).

use super::jobs_cmd;
use super::table::{Table, or_dash, secs, when};
use crate::control::client::{ClientError, Connection};
use crate::control::convert::{self, Invalid};
use crate::control::proto as pb;
use crate::control::state::{DEFAULT_STATE_DIR, StateDir};
use crate::disk::layout::human_size;
use crate::store::{
    Component, ComponentRole, ComponentState, DatastoreMount, Direction, Group, Item,
    JournalSettings, Plan, PlanEntry, RecoveryPoint, Role, Site, SiteKind,
};
use crate::workflow::PointChoice;
use clap::{ArgMatches, Args, Subcommand};
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// How long `component register` waits for the server's check.
const REGISTRATION_WAIT: Duration = Duration::from_secs(60);

/// Where the client commands find their server (options of `homeward`
/// itself, so they go before or after the command).
#[derive(Debug, Clone, Args)]
pub struct ServerOpts {
    /// Client commands: the server's control API.
    #[arg(
        long,
        global = true,
        env = "HOMEWARD_SERVER",
        default_value = crate::control::DEFAULT_SERVER_URL,
        value_name = "URL"
    )]
    pub server: String,
    /// Client commands: the file holding the API token (default:
    /// STATE_DIR/tokens/operator.token).
    #[arg(long, global = true, env = "HOMEWARD_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The server's state directory (store and token files): where `serve`
    /// keeps its state, `admin restore` restores to, and client commands on
    /// the server's machine find the operator token. Default: ./homeward-state.
    #[arg(long, global = true, env = "HOMEWARD_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

impl ServerOpts {
    /// The options of one client command.
    pub fn with_json(&self, json: bool) -> ClientOpts {
        ClientOpts {
            server: self.server.clone(),
            token_file: self.token_file.clone(),
            state_dir: self.state_dir.clone(),
            json,
        }
    }
}

/// How a client command answers.
#[derive(Debug, Clone, Args)]
pub struct OutputOpts {
    /// Print JSON (the store's records) instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Everything a client command needs to reach its server and answer.
#[derive(Debug, Clone)]
pub struct ClientOpts {
    /// The server's URL.
    pub server: String,
    /// `--token-file`.
    pub token_file: Option<PathBuf>,
    /// `--state-dir`.
    pub state_dir: Option<PathBuf>,
    /// `--json`.
    pub json: bool,
}

impl ClientOpts {
    /// The token file: `--token-file`, else the operator token of the state directory.
    pub fn token_path(&self) -> PathBuf {
        match &self.token_file {
            Some(path) => path.clone(),
            None => StateDir::new(
                self.state_dir
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
            )
            .token_path(Role::Operator),
        }
    }
}

/// The client commands (flattened into `homeward`'s own).
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Sites: the on-premises hypervisor endpoints and clouds the server works with.
    Site(SiteArgs),
    /// Process servers and master targets.
    Component(ComponentArgs),
    /// What an on-premises site has: hosts, datastores, networks and VMs.
    Discover(DiscoverArgs),
    /// Protection groups (creating PG1 also creates PG1_Failback).
    Group(GroupArgs),
    /// Protect VMs of a site in a group.
    Protect(ProtectArgs),
    /// Protected items (one per VM).
    Items(ItemsArgs),
    /// Recovery plans.
    Plan(PlanArgs),
    /// Replicate an item's VM to the other side (a job).
    Reprotect(ReprotectArgs),
    /// Fail a plan's VMs over to the other side (a job).
    Failover(FailoverArgs),
    /// Commit a failover and reprotect the other way (a job).
    Commit(CommitArgs),
    /// Fail a plan over into an isolated network, and clean up (a job).
    TestFailover(TestFailoverArgs),
    /// An item's recovery points, newest first.
    Points(PointsArgs),
    /// Jobs: list, show, follow (`--watch`), cancel.
    Jobs(jobs_cmd::JobsArgs),
    /// Backup and restore of the server's state store.
    Admin(super::admin_cmd::AdminArgs),
}

/// Runs a client command. `matches` are the whole command line's (for the
/// order of a plan's entries).
pub fn run(
    cmd: ClientCommand,
    server: &ServerOpts,
    matches: &ArgMatches,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    match cmd {
        ClientCommand::Site(args) => site(args, server, out),
        ClientCommand::Component(args) => component(args, server, out),
        ClientCommand::Discover(args) => discover(args, server, out),
        ClientCommand::Group(args) => group(args, server, out),
        ClientCommand::Protect(args) => protect(args, server, out),
        ClientCommand::Items(args) => items(args, server, out),
        ClientCommand::Plan(args) => plan(args, server, matches, out),
        ClientCommand::Reprotect(args) => reprotect(args, server, out),
        ClientCommand::Failover(args) => failover(args, server, out),
        ClientCommand::Commit(args) => commit(args, server, out),
        ClientCommand::TestFailover(args) => test_failover(args, server, out),
        ClientCommand::Points(args) => points(args, server, out),
        ClientCommand::Jobs(args) => jobs_cmd::run(args, server, out),
        ClientCommand::Admin(args) => super::admin_cmd::run(args, server, out),
    }
}

// ---- shared helpers ----

/// Runs a client command's async body.
pub(super) fn block_on<T>(body: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("starting the async runtime: {e}"))?;
    runtime.block_on(body)
}

/// Connects as the options say.
pub(super) async fn connect(opts: &ClientOpts) -> Result<Connection, ClientError> {
    Connection::open(&opts.server, &opts.token_path()).await
}

/// A record from the server's message.
pub(super) fn record<T, P>(message: P) -> Result<T, ClientError>
where
    T: TryFrom<P, Error = Invalid>,
{
    T::try_from(message).map_err(|e| {
        ClientError::Failed(format!(
            "the server answered something this client cannot read ({e}); are both the same Homeward version?"
        ))
    })
}

/// Prints a value as pretty JSON.
pub(super) fn print_json<T: Serialize + ?Sized>(
    out: &mut dyn Write,
    value: &T,
) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Parses a store enum from its kebab-case name (for clap).
pub(super) fn parse_enum<T>(text: &str) -> Result<T, String>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    text.parse::<T>().map_err(|e| e.to_string())
}

fn parse_point(text: &str) -> Result<PointChoice, String> {
    text.parse()
}

fn parse_mount(text: &str) -> Result<DatastoreMount, String> {
    let (datastore, path) = text
        .split_once('=')
        .filter(|(d, p)| !d.is_empty() && !p.is_empty())
        .ok_or_else(|| format!("`{text}` is not DATASTORE=PATH"))?;
    Ok(DatastoreMount {
        datastore: datastore.to_string(),
        path: PathBuf::from(path),
    })
}

/// "to on-premises (from the cloud)" / "to the cloud (from on-premises)".
fn direction_words(direction: Direction) -> &'static str {
    match direction {
        Direction::ToOnPremises => "to on-premises (from the cloud)",
        Direction::ToCloud => "to the cloud (from on-premises)",
    }
}

// ---- sites ----

#[derive(Debug, Args)]
pub struct SiteArgs {
    #[command(flatten)]
    output: OutputOpts,
    #[command(subcommand)]
    command: SiteCommand,
}

#[derive(Debug, Subcommand)]
enum SiteCommand {
    /// Add a site.
    Add {
        /// Its name.
        name: String,
        /// on-premises or cloud.
        #[arg(long, value_parser = parse_enum::<SiteKind>)]
        kind: SiteKind,
        /// The plugin id (in the server's plugin set) that talks to it.
        #[arg(long)]
        plugin: String,
    },
    /// List the sites.
    List,
}

fn site(args: SiteArgs, server: &ServerOpts, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let client = server.with_json(args.output.json);
    let json = client.json;
    block_on(async {
        let conn = connect(&client).await?;
        let mut client = conn.client.clone();
        match args.command {
            SiteCommand::Add { name, kind, plugin } => {
                let site = client
                    .add_site(pb::AddSiteRequest {
                        name,
                        kind: convert::site_kind_pb(&kind),
                        plugin,
                    })
                    .await
                    .map_err(|s| conn.error(&s))?
                    .into_inner();
                let site: Site = record(site)?;
                if json {
                    print_json(out, &site)?;
                } else {
                    writeln!(
                        out,
                        "added site {} ({}, plugin {})",
                        site.name,
                        site.kind.as_str(),
                        site.plugin
                    )?;
                }
            }
            SiteCommand::List => {
                let reply = client
                    .list_sites(pb::ListSitesRequest {})
                    .await
                    .map_err(|s| conn.error(&s))?
                    .into_inner();
                let sites: Vec<Site> = reply
                    .sites
                    .into_iter()
                    .map(record)
                    .collect::<Result<_, _>>()?;
                if json {
                    print_json(out, &sites)?;
                } else {
                    let mut table = Table::new(&["NAME", "KIND", "PLUGIN", "ADDED"]);
                    for s in &sites {
                        table.row(vec![
                            s.name.clone(),
                            s.kind.as_str().to_string(),
                            s.plugin.clone(),
                            when(s.created_at),
                        ]);
                    }
                    table.print(out)?;
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

// ---- components ----

#[derive(Debug, Args)]
pub struct ComponentArgs {
    #[command(flatten)]
    output: OutputOpts,
    #[command(subcommand)]
    command: ComponentCommand,
}

#[derive(Debug, Subcommand)]
enum ComponentCommand {
    /// Register a process server or master target; shows registering → registered.
    Register {
        /// Its name.
        name: String,
        /// process-server or master-target.
        #[arg(long, value_parser = parse_enum::<ComponentRole>)]
        role: ComponentRole,
        /// The site it serves.
        #[arg(long)]
        site: String,
        /// Where it answers (`local`: inside the server).
        #[arg(long, default_value = "local")]
        address: String,
        /// Master target: the hypervisor host it runs on.
        #[arg(long)]
        host_id: Option<String>,
        /// Master target: its own VM.
        #[arg(long)]
        vm_id: Option<String>,
        /// Master target: where a datastore is on its file system (DATASTORE=PATH, repeatable).
        #[arg(long = "datastore-mount", value_parser = parse_mount, value_name = "DATASTORE=PATH")]
        datastore_mounts: Vec<DatastoreMount>,
        /// Return at once, while the server still checks it.
        #[arg(long)]
        no_wait: bool,
    },
    /// List process servers and master targets.
    List {
        /// Only this role.
        #[arg(long, value_parser = parse_enum::<ComponentRole>)]
        role: Option<ComponentRole>,
    },
}

fn component(
    args: ComponentArgs,
    server: &ServerOpts,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let client = server.with_json(args.output.json);
    let json = client.json;
    block_on(async {
        let conn = connect(&client).await?;
        let mut client = conn.client.clone();
        match args.command {
            ComponentCommand::Register {
                name,
                role,
                site,
                address,
                host_id,
                vm_id,
                datastore_mounts,
                no_wait,
            } => {
                let request = pb::RegisterComponentRequest {
                    name: name.clone(),
                    role: convert::component_role_pb(&role),
                    site,
                    address,
                    host_id,
                    vm_id,
                    datastore_mounts: datastore_mounts
                        .iter()
                        .map(|m| pb::DatastoreMount {
                            datastore: m.datastore.clone(),
                            path: m.path.display().to_string(),
                        })
                        .collect(),
                };
                let registered = client
                    .register_component(request)
                    .await
                    .map_err(|s| conn.error(&s))?
                    .into_inner();
                let mut component: Component = record(registered)?;
                if !json {
                    writeln!(out, "{}: {}", component.name, component.state.as_str())?;
                }
                let started = Instant::now();
                while !no_wait
                    && component.state == ComponentState::Registering
                    && started.elapsed() < REGISTRATION_WAIT
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let reply = client
                        .list_components(pb::ListComponentsRequest { role: None })
                        .await
                        .map_err(|s| conn.error(&s))?
                        .into_inner();
                    if let Some(found) = reply.components.into_iter().find(|c| c.name == name) {
                        component = record(found)?;
                    }
                }
                if json {
                    print_json(out, &component)?;
                } else if component.state != ComponentState::Registering || !no_wait {
                    writeln!(
                        out,
                        "{}: {}{}",
                        component.name,
                        component.state.as_str(),
                        if component.detail.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", component.detail)
                        }
                    )?;
                }
                match component.state {
                    ComponentState::Failed | ComponentState::Unreachable => {
                        Err(ClientError::Failed(format!(
                            "{} did not register: {}",
                            component.name, component.detail
                        ))
                        .into())
                    }
                    _ => Ok(ExitCode::SUCCESS),
                }
            }
            ComponentCommand::List { role } => {
                let reply = client
                    .list_components(pb::ListComponentsRequest {
                        role: role.map(|r| convert::component_role_pb(&r)),
                    })
                    .await
                    .map_err(|s| conn.error(&s))?
                    .into_inner();
                let components: Vec<Component> = reply
                    .components
                    .into_iter()
                    .map(record)
                    .collect::<Result<_, _>>()?;
                if json {
                    print_json(out, &components)?;
                } else {
                    let mut table = Table::new(&[
                        "NAME",
                        "ROLE",
                        "SITE",
                        "ADDRESS",
                        "STATE",
                        "HEARTBEAT",
                        "DETAIL",
                    ]);
                    for c in &components {
                        table.row(vec![
                            c.name.clone(),
                            c.role.as_str().to_string(),
                            c.site.clone(),
                            c.address.clone(),
                            c.state.as_str().to_string(),
                            c.last_heartbeat.map(when).unwrap_or_else(|| "-".into()),
                            or_dash(Some(&c.detail)),
                        ]);
                    }
                    table.print(out)?;
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

// ---- discover ----

#[derive(Debug, Args)]
pub struct DiscoverArgs {
    #[command(flatten)]
    output: OutputOpts,
    /// The on-premises site.
    site: String,
}

fn discover(
    args: DiscoverArgs,
    server: &ServerOpts,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let client = server.with_json(args.output.json);
    block_on(async {
        let conn = connect(&client).await?;
        let inventory = conn
            .client
            .clone()
            .discover(pb::DiscoverRequest { site: args.site })
            .await
            .map_err(|s| conn.error(&s))?
            .into_inner();
        if client.json {
            print_json(out, &inventory)?;
            return Ok(ExitCode::SUCCESS);
        }
        writeln!(out, "site {}", inventory.site)?;
        if !inventory.datacenters.is_empty() {
            writeln!(out, "datacenters: {}", inventory.datacenters.join(", "))?;
        }
        writeln!(out, "\nhosts")?;
        let mut table = Table::new(&["ID", "NAME", "VERSION", "CONNECTED"]);
        for h in &inventory.hosts {
            table.row(vec![
                h.id.clone(),
                h.name.clone(),
                h.version.clone(),
                yes_no(h.connected),
            ]);
        }
        table.print(out)?;
        writeln!(out, "\ndatastores")?;
        let mut table = Table::new(&["ID", "NAME", "KIND", "CAPACITY", "FREE", "ACCESSIBLE"]);
        for d in &inventory.datastores {
            table.row(vec![
                d.id.clone(),
                d.name.clone(),
                d.kind.clone(),
                indicatif::HumanBytes(d.capacity_bytes).to_string(),
                indicatif::HumanBytes(d.free_bytes).to_string(),
                yes_no(d.accessible),
            ]);
        }
        table.print(out)?;
        writeln!(out, "\nnetworks")?;
        let mut table = Table::new(&["ID", "NAME", "KIND"]);
        for n in &inventory.networks {
            table.row(vec![n.id.clone(), n.name.clone(), n.kind.clone()]);
        }
        table.print(out)?;
        writeln!(out, "\nvms")?;
        let mut table = Table::new(&["ID", "NAME", "POWER", "HOST", "DISKS", "CAPACITY", "MACS"]);
        for vm in &inventory.vms {
            table.row(vec![
                vm.id.clone(),
                vm.name.clone(),
                vm.power.clone(),
                or_dash(vm.host_id.as_deref()),
                vm.disks.to_string(),
                indicatif::HumanBytes(vm.capacity_bytes).to_string(),
                vm.macs.join(","),
            ]);
        }
        table.print(out)?;
        Ok(ExitCode::SUCCESS)
    })
}

fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.to_string()
}

// ---- groups ----

#[derive(Debug, Args)]
pub struct GroupArgs {
    #[command(flatten)]
    output: OutputOpts,
    #[command(subcommand)]
    command: GroupCommand,
}

/// A group's settings (S1); on `group set`, only the ones given change (the
/// server merges them into the group's).
#[derive(Debug, Clone, Args)]
struct SettingsArgs {
    /// The master target (failback: writes the on-premises disks).
    #[arg(long)]
    master_target: Option<String>,
    /// The process server (reads the source disks).
    #[arg(long)]
    process_server: Option<String>,
    /// The account the adapter works as.
    #[arg(long)]
    account: Option<String>,
    /// The datastore for new VMs' disks.
    #[arg(long)]
    datastore: Option<String>,
    /// How long recovery points are kept, in hours.
    #[arg(long)]
    retention_hours: Option<u32>,
    /// Multi-VM consistency (true or false).
    #[arg(long, value_name = "BOOL")]
    consistency: Option<bool>,
    /// RPO target in seconds: an item's alert is on while its latest point
    /// is older.
    #[arg(long, value_name = "SECS")]
    rpo_target_secs: Option<u64>,
    /// Continuous replication: a cycle every this many seconds.
    #[arg(long, value_name = "SECS")]
    cycle_interval_secs: Option<u64>,
    /// Every Nth cycle app-consistent (when the source can quiesce).
    #[arg(long, value_name = "N")]
    app_consistent_every: Option<u32>,
    /// Journal: every point younger than this is kept (default 7200).
    #[arg(long, value_name = "SECS")]
    journal_keep_all_secs: Option<u64>,
    /// Journal: older points are thinned to one per this period (default 3600).
    #[arg(long, value_name = "SECS")]
    journal_one_per_secs: Option<u64>,
    /// Journal: points older than this are dropped (default: the retention
    /// hours, else 86400).
    #[arg(long, value_name = "SECS")]
    journal_max_age_secs: Option<u64>,
    /// Journal: at most this many points (default: no cap).
    #[arg(long, value_name = "N")]
    journal_max_points: Option<u64>,
    /// Journal: size cap of each disk's journal, e.g. 50G or 20GiB (default:
    /// no cap; over it the oldest points are dropped early, with an alarm).
    #[arg(long, value_name = "SIZE", value_parser = super::units::parse_size)]
    journal_max_bytes: Option<u64>,
}

impl SettingsArgs {
    /// The settings given, as a message with only those fields set.
    fn to_pb(&self) -> pb::GroupSettings {
        let journal = pb::JournalSettings {
            keep_all_secs: self.journal_keep_all_secs,
            one_per_secs: self.journal_one_per_secs,
            max_age_secs: self.journal_max_age_secs,
            max_points: self.journal_max_points,
            max_bytes: self.journal_max_bytes,
        };
        pb::GroupSettings {
            master_target: self.master_target.clone(),
            process_server: self.process_server.clone(),
            account: self.account.clone(),
            datastore: self.datastore.clone(),
            retention_hours: self.retention_hours,
            consistency: self.consistency,
            rpo_target_secs: self.rpo_target_secs,
            cycle_interval_secs: self.cycle_interval_secs,
            app_consistent_every: self.app_consistent_every,
            journal: (journal != pb::JournalSettings::default()).then_some(journal),
        }
    }
}

/// A setting's name on the command line (`journal.max_bytes` →
/// `journal-max-bytes`, as its flag without the dashes).
fn setting_flag(api_name: &str) -> String {
    api_name.replace(['.', '_'], "-")
}

/// A `--clear` value: a setting's flag name → the API's name.
fn parse_clear(text: &str) -> Result<String, String> {
    let wanted = text.trim().trim_start_matches("--");
    crate::control::settings::CLEARABLE
        .iter()
        .find(|name| setting_flag(name) == wanted || **name == wanted)
        .map(|name| name.to_string())
        .ok_or_else(|| {
            let names: Vec<String> = crate::control::settings::CLEARABLE
                .iter()
                .map(|n| setting_flag(n))
                .collect();
            format!(
                "`{text}` is not a setting; --clear takes: {}",
                names.join(", ")
            )
        })
}

#[derive(Debug, Subcommand)]
enum GroupCommand {
    /// Create a group (and its failback group `NAME_Failback`).
    Create {
        /// Its name.
        name: String,
        /// to-cloud (default; also creates NAME_Failback) or to-on-premises.
        #[arg(long, value_parser = parse_enum::<Direction>, default_value = "to-cloud")]
        direction: Direction,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// List the groups.
    List,
    /// One group's settings, each with what it means when unset.
    Show {
        /// The group.
        name: String,
    },
    /// Change a group's settings (only those given; the rest stay).
    Set {
        /// The group.
        name: String,
        #[command(flatten)]
        settings: SettingsArgs,
        /// Unset a setting, back to its default (repeatable): its flag's
        /// name, e.g. `rpo-target-secs`, `journal-max-bytes`, or `journal`
        /// for all of the journal's.
        #[arg(long, value_name = "SETTING", value_parser = parse_clear)]
        clear: Vec<String>,
    },
}

fn group(args: GroupArgs, server: &ServerOpts, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let client = server.with_json(args.output.json);
    let json = client.json;
    block_on(async {
        let conn = connect(&client).await?;
        let mut client = conn.client.clone();
        match args.command {
            GroupCommand::Create {
                name,
                direction,
                settings,
            } => {
                let reply = client
                    .create_group(pb::CreateGroupRequest {
                        name,
                        direction: convert::direction_pb(&direction),
                        settings: Some(settings.to_pb()),
                    })
                    .await
                    .map_err(|s| conn.error(&s))?
                    .into_inner();
                let made: Vec<Group> = [reply.group, reply.failback]
                    .into_iter()
                    .flatten()
                    .map(record)
                    .collect::<Result<_, _>>()?;
                if json {
                    print_json(out, &made)?;
                } else {
                    for g in &made {
                        writeln!(out, "created group {} ({})", g.name, g.direction.as_str())?;
                    }
                }
            }
            GroupCommand::List => {
                let groups = list_groups(&conn).await?;
                if json {
                    print_json(out, &groups)?;
                } else {
                    print_groups(&groups, out)?;
                }
            }
            GroupCommand::Show { name } => {
                let group = list_groups(&conn)
                    .await?
                    .into_iter()
                    .find(|g| g.name == name)
                    .ok_or_else(|| {
                        ClientError::NotFound(format!(
                            "group {name:?} does not exist; `homeward group list` lists the groups"
                        ))
                    })?;
                if json {
                    print_json(out, &group)?;
                } else {
                    print_group_settings(&group, out)?;
                }
            }
            GroupCommand::Set {
                name,
                settings,
                clear,
            } => {
                let group = client
                    .set_group_settings(pb::SetGroupSettingsRequest {
                        name,
                        settings: Some(settings.to_pb()),
                        clear,
                    })
                    .await
                    .map_err(|s| conn.error(&s))?
                    .into_inner();
                let group: Group = record(group)?;
                if json {
                    print_json(out, &group)?;
                } else {
                    print_group_settings(&group, out)?;
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

async fn list_groups(conn: &Connection) -> Result<Vec<Group>, ClientError> {
    let reply = conn
        .client
        .clone()
        .list_groups(pb::ListGroupsRequest {})
        .await
        .map_err(|s| conn.error(&s))?
        .into_inner();
    reply.groups.into_iter().map(record).collect()
}

/// The journal settings a group sets, `keep-all=600s max-bytes=8 GiB`
/// (`default` when it sets none).
fn journal_words(j: &JournalSettings) -> String {
    let mut words = Vec::new();
    let mut secs_word = |name: &str, value: Option<u64>| {
        if let Some(v) = value {
            words.push(format!("{name}={v}s"));
        }
    };
    secs_word("keep-all", j.keep_all_secs);
    secs_word("one-per", j.one_per_secs);
    secs_word("max-age", j.max_age_secs);
    if let Some(n) = j.max_points {
        words.push(format!("max-points={n}"));
    }
    if let Some(b) = j.max_bytes {
        words.push(format!("max-bytes={}", human_size(b)));
    }
    if words.is_empty() {
        "default".to_string()
    } else {
        words.join(" ")
    }
}

fn print_groups(groups: &[Group], out: &mut dyn Write) -> std::io::Result<()> {
    let mut table = Table::new(&[
        "NAME",
        "DIRECTION",
        "PAIRED",
        "MASTER-TARGET",
        "PROCESS-SERVER",
        "ACCOUNT",
        "DATASTORE",
        "RETENTION",
        "CONSISTENCY",
        "RPO-TARGET",
        "CYCLE",
        "APP-EVERY",
        "JOURNAL",
    ]);
    let secs_or_dash = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| format!("{v}s"));
    for g in groups {
        let s = &g.settings;
        table.row(vec![
            g.name.clone(),
            g.direction.as_str().to_string(),
            or_dash(g.paired.as_deref()),
            or_dash(s.master_target.as_deref()),
            or_dash(s.process_server.as_deref()),
            or_dash(s.account.as_deref()),
            or_dash(s.datastore.as_deref()),
            s.retention_hours
                .map(|h| format!("{h} h"))
                .unwrap_or_else(|| "-".into()),
            yes_no(s.consistency),
            secs_or_dash(s.rpo_target_secs),
            secs_or_dash(s.cycle_interval_secs),
            s.app_consistent_every
                .map_or_else(|| "-".to_string(), |n| n.to_string()),
            journal_words(&s.journal),
        ]);
    }
    table.print(out)
}

/// One group, a setting per line, with what an unset one means.
fn print_group_settings(g: &Group, out: &mut dyn Write) -> std::io::Result<()> {
    let s = &g.settings;
    let j = &s.journal;
    let retention = crate::control::settings::unset_journal(s);
    let or = |value: Option<String>, unset: &str| value.unwrap_or_else(|| format!("- ({unset})"));
    let duration = |value: Option<u64>, default: std::time::Duration| {
        or(
            value.map(secs),
            &format!("default {}", secs(default.as_secs())),
        )
    };
    let mut table = Table::new(&["SETTING", "VALUE"]);
    let rows: Vec<(&str, String)> = vec![
        ("name", g.name.clone()),
        ("direction", g.direction.as_str().to_string()),
        ("paired", or_dash(g.paired.as_deref())),
        ("master-target", or_dash(s.master_target.as_deref())),
        ("process-server", or_dash(s.process_server.as_deref())),
        ("account", or_dash(s.account.as_deref())),
        ("datastore", or_dash(s.datastore.as_deref())),
        (
            "retention-hours",
            or(s.retention_hours.map(|h| format!("{h} h")), "unset"),
        ),
        ("consistency", yes_no(s.consistency)),
        (
            "rpo-target-secs",
            or(s.rpo_target_secs.map(secs), "no target, no alert"),
        ),
        (
            "cycle-interval-secs",
            or(s.cycle_interval_secs.map(secs), "no continuous replication"),
        ),
        (
            "app-consistent-every",
            or(
                s.app_consistent_every.map(|n| format!("{n} cycles")),
                "never",
            ),
        ),
        (
            "journal-keep-all-secs",
            duration(j.keep_all_secs, retention.keep_all_for),
        ),
        (
            "journal-one-per-secs",
            duration(j.one_per_secs, retention.then_one_per),
        ),
        (
            "journal-max-age-secs",
            duration(j.max_age_secs, retention.max_age),
        ),
        (
            "journal-max-points",
            or(j.max_points.map(|n| n.to_string()), "no cap"),
        ),
        (
            "journal-max-bytes",
            or(
                j.max_bytes.map(|b| format!("{b} ({})", human_size(b))),
                "no cap",
            ),
        ),
    ];
    for (name, value) in rows {
        table.row(vec![name.to_string(), value]);
    }
    table.print(out)
}

// ---- items ----

#[derive(Debug, Args)]
pub struct ProtectArgs {
    #[command(flatten)]
    output: OutputOpts,
    /// The protection group.
    group: String,
    /// The site the VMs are on.
    #[arg(long)]
    site: String,
    /// The VMs' ids (`homeward discover SITE` lists them).
    #[arg(required = true, value_name = "VM")]
    vms: Vec<String>,
}

fn protect(
    args: ProtectArgs,
    server: &ServerOpts,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let client = server.with_json(args.output.json);
    block_on(async {
        let conn = connect(&client).await?;
        let reply = conn
            .client
            .clone()
            .protect(pb::ProtectRequest {
                group: args.group,
                site: args.site,
                vm_ids: args.vms,
            })
            .await
            .map_err(|s| conn.error(&s))?
            .into_inner();
        print_items_as(reply.items, client.json, out)?;
        Ok(ExitCode::SUCCESS)
    })
}

#[derive(Debug, Args)]
pub struct ItemsArgs {
    #[command(flatten)]
    output: OutputOpts,
    /// Only this group's items.
    #[arg(long)]
    group: Option<String>,
}

fn items(args: ItemsArgs, server: &ServerOpts, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let client = server.with_json(args.output.json);
    block_on(async {
        let conn = connect(&client).await?;
        let reply = conn
            .client
            .clone()
            .list_items(pb::ListItemsRequest { group: args.group })
            .await
            .map_err(|s| conn.error(&s))?
            .into_inner();
        print_items_as(reply.items, client.json, out)?;
        Ok(ExitCode::SUCCESS)
    })
}

/// An item's recovery point objective as the API gives it (`--json`:
/// the `rpo` object of each item).
#[derive(Debug, Clone, Serialize)]
struct ItemRpo {
    /// Age of the latest point in seconds; `null` before the first.
    age_secs: Option<u64>,
    /// The group's RPO target, if it sets one.
    target_secs: Option<u64>,
    /// The age is over the target (or there is no point and a target is set).
    alert: bool,
    /// When the latest point was taken at the source, Unix ms.
    latest_point_at: Option<u64>,
    /// The latest point's sequence number in its first disk's journal.
    journal_seq: Option<u64>,
}

impl ItemRpo {
    fn of(i: &pb::Item) -> ItemRpo {
        ItemRpo {
            age_secs: i.rpo_age_secs,
            target_secs: i.rpo_target_secs,
            alert: i.rpo_alert,
            latest_point_at: i.latest_point_at,
            journal_seq: i.journal_seq,
        }
    }

    /// `AGE/TARGET` (`-` for no point, no target).
    fn words(&self) -> String {
        let age = self.age_secs.map_or("-".to_string(), |a| format!("{a}s"));
        match self.target_secs {
            Some(t) => format!("{age}/{t}s"),
            None => age,
        }
    }
}

/// An item as `--json` prints it: the store's record, and its RPO.
#[derive(Serialize)]
struct ItemJson<'a> {
    #[serde(flatten)]
    item: &'a Item,
    rpo: &'a ItemRpo,
}

/// Items with their RPOs, as a table or (`json`) JSON.
fn print_items_as(
    reply_items: Vec<pb::Item>,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let rpos: Vec<ItemRpo> = reply_items.iter().map(ItemRpo::of).collect();
    let items: Vec<Item> = reply_items
        .into_iter()
        .map(record)
        .collect::<Result<_, _>>()?;
    if json {
        let both: Vec<ItemJson> = items
            .iter()
            .zip(&rpos)
            .map(|(item, rpo)| ItemJson { item, rpo })
            .collect();
        print_json(out, &both)?;
    } else {
        print_items(&items, &rpos, out)?;
    }
    Ok(())
}

fn print_items(items: &[Item], rpos: &[ItemRpo], out: &mut dyn Write) -> std::io::Result<()> {
    let mut table = Table::new(&[
        "NAME", "GROUP", "STATE", "SOURCE", "REPLICA", "DISKS", "NICS", "RPO", "ALERT", "UPDATED",
        "DETAIL",
    ]);
    for (n, i) in items.iter().enumerate() {
        let (rpo, alert) = match rpos.get(n) {
            Some(r) => (r.words(), if r.alert { "RPO" } else { "-" }.to_string()),
            None => ("-".to_string(), "-".to_string()),
        };
        let replica = i
            .replica
            .as_ref()
            .map(|r| {
                if r.vm_id.is_empty() {
                    format!("{} (no VM yet)", r.site)
                } else {
                    format!("{}/{}", r.site, r.vm_id)
                }
            })
            .unwrap_or_else(|| "-".into());
        table.row(vec![
            i.name.clone(),
            i.group.clone(),
            i.state.as_str().to_string(),
            format!("{}/{}", i.source.site, i.source.vm_id),
            replica,
            i.disks.len().to_string(),
            i.nics.len().to_string(),
            rpo,
            alert,
            when(i.updated_at),
            or_dash(Some(&i.state_detail)),
        ]);
    }
    table.print(out)
}

// ---- plans ----

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    output: OutputOpts,
    #[command(subcommand)]
    command: PlanCommand,
}

#[derive(Debug, Subcommand)]
enum PlanCommand {
    /// Create a plan; entries run in the order given (a group's failback
    /// group is added right after it).
    Create {
        /// Its name.
        name: String,
        /// Fail over this group's items (repeatable).
        #[arg(long)]
        group: Vec<String>,
        /// Stop until the operator confirms this was done (repeatable).
        #[arg(long, value_name = "TEXT")]
        manual: Vec<String>,
        /// Run this command (repeatable).
        #[arg(long, value_name = "CMD")]
        script: Vec<String>,
    },
    /// List the plans.
    List,
}

/// A plan's entries in the order they were given on the command line.
fn ordered_entries(
    group: Vec<String>,
    manual: Vec<String>,
    script: Vec<String>,
    matches: Option<&ArgMatches>,
) -> Vec<PlanEntry> {
    let index_of = |id: &str, n: usize| -> Vec<usize> {
        matches
            .and_then(|m| m.indices_of(id))
            .map(|i| i.collect())
            .unwrap_or_else(|| (0..n).collect())
    };
    let mut entries: Vec<(usize, usize, PlanEntry)> = Vec::new();
    for (rank, (values, id)) in [(group, "group"), (manual, "manual"), (script, "script")]
        .into_iter()
        .enumerate()
    {
        let indices = index_of(id, values.len());
        for (i, value) in values.into_iter().enumerate() {
            let at = indices.get(i).copied().unwrap_or(usize::MAX);
            let entry = match id {
                "group" => PlanEntry::Group { name: value },
                "manual" => PlanEntry::Manual { text: value },
                _ => PlanEntry::Script { command: value },
            };
            entries.push((at, rank, entry));
        }
    }
    entries.sort_by_key(|(at, rank, _)| (*at, *rank));
    entries.into_iter().map(|(_, _, e)| e).collect()
}

fn plan(
    args: PlanArgs,
    server: &ServerOpts,
    matches: &ArgMatches,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let client = server.with_json(args.output.json);
    let json = client.json;
    block_on(async {
        let conn = connect(&client).await?;
        let mut client = conn.client.clone();
        match args.command {
            PlanCommand::Create {
                name,
                group,
                manual,
                script,
            } => {
                let create = matches
                    .subcommand_matches("plan")
                    .and_then(|m| m.subcommand_matches("create"));
                let entries = ordered_entries(group, manual, script, create);
                if entries.is_empty() {
                    return Err(ClientError::Usage(
                        "a plan needs at least one --group, --manual or --script".into(),
                    )
                    .into());
                }
                let plan = client
                    .create_plan(pb::CreatePlanRequest {
                        name,
                        entries: entries.iter().map(Into::into).collect(),
                    })
                    .await
                    .map_err(|s| conn.error(&s))?
                    .into_inner();
                let plan: Plan = record(plan)?;
                if json {
                    print_json(out, &plan)?;
                } else {
                    writeln!(out, "created plan {}: {}", plan.name, plan_steps(&plan))?;
                }
            }
            PlanCommand::List => {
                let reply = client
                    .list_plans(pb::ListPlansRequest {})
                    .await
                    .map_err(|s| conn.error(&s))?
                    .into_inner();
                let plans: Vec<Plan> = reply
                    .plans
                    .into_iter()
                    .map(record)
                    .collect::<Result<_, _>>()?;
                if json {
                    print_json(out, &plans)?;
                } else {
                    let mut table = Table::new(&["NAME", "CREATED", "ENTRIES"]);
                    for p in &plans {
                        table.row(vec![p.name.clone(), when(p.created_at), plan_steps(p)]);
                    }
                    table.print(out)?;
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn plan_steps(plan: &Plan) -> String {
    plan.entries
        .iter()
        .map(|e| match e {
            PlanEntry::Group { name } => name.clone(),
            PlanEntry::Manual { text } => format!("manual: {text}"),
            PlanEntry::Script { command } => format!("script: {command}"),
        })
        .collect::<Vec<_>>()
        .join(" → ")
}

// ---- jobs ----

/// `--wait` of the job commands.
#[derive(Debug, Clone, Args)]
struct WaitArgs {
    /// Follow the job until it ends; exit 1 if it did not succeed.
    #[arg(long)]
    wait: bool,
}

/// Says what was submitted, then follows it when asked.
async fn submitted(
    conn: &Connection,
    job_id: i64,
    wait: bool,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    if json && !wait {
        writeln!(out, "{}", serde_json::json!({ "job_id": job_id }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if !json {
        let job = jobs_cmd::get_job(conn, job_id).await?;
        writeln!(out, "job {job_id} submitted: {}", job.summary)?;
        if !wait {
            writeln!(out, "follow it with `homeward jobs {job_id} --watch`")?;
            return Ok(ExitCode::SUCCESS);
        }
    }
    let finals = jobs_cmd::follow(conn, &[job_id], true, json, out).await?;
    jobs_cmd::report_finals(&finals, json, out)
}

#[derive(Debug, Args)]
pub struct ReprotectArgs {
    #[command(flatten)]
    output: OutputOpts,
    /// The protected item.
    item: String,
    /// Where the replica goes: to-on-premises (failback) or to-cloud.
    #[arg(long, value_parser = parse_enum::<Direction>)]
    direction: Direction,
    /// The group it joins (default: the paired group of that direction).
    #[arg(long)]
    group: Option<String>,
    /// The master target.
    #[arg(long)]
    master_target: Option<String>,
    /// The process server.
    #[arg(long)]
    process_server: Option<String>,
    /// The account the adapter works as.
    #[arg(long)]
    account: Option<String>,
    /// The datastore (alternate-location failback).
    #[arg(long)]
    datastore: Option<String>,
    /// How long recovery points are kept, in hours.
    #[arg(long)]
    retention_hours: Option<u32>,
    /// Overwrite on-premises disks that changed after the failover (the
    /// split-brain guard refuses otherwise).
    #[arg(long)]
    allow_overwrite: bool,
    #[command(flatten)]
    wait: WaitArgs,
}

fn reprotect(
    args: ReprotectArgs,
    server: &ServerOpts,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let client = server.with_json(args.output.json);
    block_on(async {
        let conn = connect(&client).await?;
        let job = conn
            .client
            .clone()
            .reprotect(pb::ReprotectRequest {
                item: args.item,
                direction: convert::direction_pb(&args.direction),
                group: args.group,
                master_target: args.master_target,
                process_server: args.process_server,
                account: args.account,
                datastore: args.datastore,
                retention_hours: args.retention_hours,
                allow_overwrite: args.allow_overwrite,
            })
            .await
            .map_err(|s| conn.error(&s))?
            .into_inner();
        submitted(&conn, job.job_id, args.wait.wait, client.json, out).await
    })
}

#[derive(Debug, Args)]
pub struct FailoverArgs {
    #[command(flatten)]
    output: OutputOpts,
    /// The recovery plan.
    plan: String,
    /// to-on-premises (failback) or to-cloud.
    #[arg(long, value_parser = parse_enum::<Direction>)]
    direction: Direction,
    /// latest, latest-app, latest-crash or a point id.
    #[arg(long, value_parser = parse_point, default_value = "latest")]
    point: PointChoice,
    /// Shut the source down and sync its last changes first (the default).
    #[arg(long, conflicts_with = "unplanned")]
    planned: bool,
    /// The source may be gone: use the point as it is.
    #[arg(long)]
    unplanned: bool,
    /// Failover to the cloud: the subnet for VMs that have no cloud VM yet.
    #[arg(long)]
    network: Option<String>,
    /// Confirm the direction (required).
    #[arg(long)]
    yes: bool,
    #[command(flatten)]
    wait: WaitArgs,
}

fn failover(
    args: FailoverArgs,
    server: &ServerOpts,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let client = server.with_json(args.output.json);
    if !args.yes {
        return Err(ClientError::Usage(format!(
            "failover of plan {} would go {}; add --yes to confirm that direction",
            args.plan,
            direction_words(args.direction)
        ))
        .into());
    }
    block_on(async {
        let conn = connect(&client).await?;
        let job = conn
            .client
            .clone()
            .failover(pb::FailoverRequest {
                plan: args.plan,
                direction: convert::direction_pb(&args.direction),
                point: Some(convert::point_choice_pb(args.point)),
                planned: !args.unplanned,
                confirm: true,
                network: args.network,
            })
            .await
            .map_err(|s| conn.error(&s))?
            .into_inner();
        submitted(&conn, job.job_id, args.wait.wait, client.json, out).await
    })
}

#[derive(Debug, Args)]
pub struct CommitArgs {
    #[command(flatten)]
    output: OutputOpts,
    /// The recovery plan.
    plan: String,
    /// The direction of the failover being committed.
    #[arg(long, value_parser = parse_enum::<Direction>)]
    direction: Direction,
    /// Delete the stopped VM the failover left behind (its disks are kept).
    #[arg(long)]
    delete_source_vm: bool,
    #[command(flatten)]
    wait: WaitArgs,
}

fn commit(args: CommitArgs, server: &ServerOpts, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let client = server.with_json(args.output.json);
    block_on(async {
        let conn = connect(&client).await?;
        let job = conn
            .client
            .clone()
            .commit(pb::CommitRequest {
                plan: args.plan,
                direction: convert::direction_pb(&args.direction),
                delete_source_vm: args.delete_source_vm,
            })
            .await
            .map_err(|s| conn.error(&s))?
            .into_inner();
        submitted(&conn, job.job_id, args.wait.wait, client.json, out).await
    })
}

#[derive(Debug, Args)]
pub struct TestFailoverArgs {
    #[command(flatten)]
    output: OutputOpts,
    /// The recovery plan.
    plan: String,
    /// The direction to drill.
    #[arg(long, value_parser = parse_enum::<Direction>)]
    direction: Direction,
    /// latest, latest-app, latest-crash or a point id.
    #[arg(long, value_parser = parse_point, default_value = "latest")]
    point: PointChoice,
    /// The isolated network the test VMs attach to.
    #[arg(long)]
    network: Option<String>,
    /// Keep the test VMs and disks at the end (default: remove them).
    #[arg(long)]
    keep: bool,
    #[command(flatten)]
    wait: WaitArgs,
}

fn test_failover(
    args: TestFailoverArgs,
    server: &ServerOpts,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let client = server.with_json(args.output.json);
    block_on(async {
        let conn = connect(&client).await?;
        let job = conn
            .client
            .clone()
            .test_failover(pb::TestFailoverRequest {
                plan: args.plan,
                direction: convert::direction_pb(&args.direction),
                point: Some(convert::point_choice_pb(args.point)),
                network: args.network,
                cleanup: !args.keep,
            })
            .await
            .map_err(|s| conn.error(&s))?
            .into_inner();
        submitted(&conn, job.job_id, args.wait.wait, client.json, out).await
    })
}

// ---- points ----

#[derive(Debug, Args)]
pub struct PointsArgs {
    #[command(flatten)]
    output: OutputOpts,
    /// The protected item.
    item: String,
}

fn points(args: PointsArgs, server: &ServerOpts, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let client = server.with_json(args.output.json);
    block_on(async {
        let conn = connect(&client).await?;
        let reply = conn
            .client
            .clone()
            .list_points(pb::ListPointsRequest { item: args.item })
            .await
            .map_err(|s| conn.error(&s))?
            .into_inner();
        let points: Vec<RecoveryPoint> = reply
            .points
            .into_iter()
            .map(record)
            .collect::<Result<_, _>>()?;
        if client.json {
            print_json(out, &points)?;
        } else {
            let mut table =
                Table::new(&["ID", "TAKEN", "KIND", "DIRECTION", "CONSISTENCY", "DISKS"]);
            for p in &points {
                table.row(vec![
                    p.id.to_string(),
                    when(p.taken_at),
                    p.kind.as_str().to_string(),
                    p.direction.as_str().to_string(),
                    or_dash(p.consistency_id.as_deref()),
                    p.disks.len().to_string(),
                ]);
            }
            table.print(out)?;
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_entries_keep_the_command_line_order() {
        let cmd = <super::super::Cli as clap::CommandFactory>::command();
        let matches = cmd
            .try_get_matches_from([
                "homeward",
                "plan",
                "create",
                "RP1",
                "--group",
                "PG1",
                "--manual",
                "check DNS",
                "--script",
                "notify.sh",
                "--group",
                "PG2",
            ])
            .unwrap();
        let create = matches
            .subcommand_matches("plan")
            .and_then(|m| m.subcommand_matches("create"));
        let entries = ordered_entries(
            vec!["PG1".into(), "PG2".into()],
            vec!["check DNS".into()],
            vec!["notify.sh".into()],
            create,
        );
        assert_eq!(
            entries,
            vec![
                PlanEntry::Group { name: "PG1".into() },
                PlanEntry::Manual {
                    text: "check DNS".into()
                },
                PlanEntry::Script {
                    command: "notify.sh".into()
                },
                PlanEntry::Group { name: "PG2".into() },
            ]
        );
    }
}
