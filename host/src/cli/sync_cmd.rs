//! `homeward sync` (both roles in one process) and `homeward serve` (one role).

use super::plugin_set;
use super::units::{parse_block_size, parse_rate};
use crate::disk::BlockDevice;
use crate::disk::image::ImageFormat;
use crate::filesystem::{FsHandlers, used_map};
use crate::sync::process_server::{ProcessServerConfig, ProcessServerService};
use crate::sync::proto::master_target_server::MasterTargetServer;
use crate::sync::proto::process_server_server::ProcessServerServer;
use crate::sync::source::{RetryPolicy, SyncSpec};
use crate::sync::target::{CheckpointPolicy, MasterTargetService, TargetConfig};
use crate::sync::transport::{self, MAX_MESSAGE, Security, TlsFiles};
use crate::sync::{DEFAULT_PORT, Mode, local, progress};
use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use std::io::Write;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// `homeward sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The source disk image (raw, VMDK monolithicFlat or VHD fixed).
    #[arg(long, value_name = "SRC")]
    from: PathBuf,
    /// The target disk image; created by a full sync if missing.
    #[arg(long, value_name = "DST")]
    to: PathBuf,
    /// Compare with the existing target and send only blocks that differ.
    #[arg(long)]
    delta: bool,
    /// Block size (power of two, 4K to 16M).
    #[arg(long, default_value = "1M", value_parser = parse_block_size)]
    block_size: usize,
    /// Source format (checked against the content): raw, vmdk or vhd.
    #[arg(long)]
    from_format: Option<ImageFormat>,
    /// Target format: for a new target, what to create; otherwise checked.
    #[arg(long)]
    to_format: Option<ImageFormat>,
    /// Bandwidth limit on the wire, e.g. 100MB/s or 102Mbps.
    #[arg(long, value_parser = parse_rate)]
    limit: Option<u64>,
    /// Do not compress.
    #[arg(long)]
    no_compress: bool,
    /// Make written blocks durable (checkpoint) every N blocks (default: every 64 MiB).
    #[arg(long)]
    checkpoint_blocks: Option<usize>,
    /// Copy only what the guest's file systems use: the file-system handlers
    /// read the source's partitions and volumes, and free space is sent as
    /// zeros (skipped on a full sync). Volumes no handler recognises are copied whole.
    #[arg(long)]
    skip_free_space: bool,
}

/// Which role `homeward serve` plays.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Role {
    /// Cloud side: reads source disks and sends them.
    ProcessServer,
    /// On premises: receives disks and writes them.
    MasterTarget,
}

/// `homeward serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The role to play. Without it: every role in one process (control
    /// API, job scheduler, process server and master target; see --state-dir).
    #[arg(long)]
    pub(super) role: Option<Role>,
    /// Address to listen on (default port 9443 for the master target,
    /// 127.0.0.1:9440 for the control API without --role).
    #[arg(long)]
    pub(super) listen: Option<SocketAddr>,
    /// Master target: a directory target disks may be written in (repeatable).
    #[arg(long, requires = "role")]
    target_root: Vec<PathBuf>,
    /// Process server: a directory source disks may be read from (repeatable).
    #[arg(long, requires = "role")]
    source_root: Vec<PathBuf>,
    /// This side's TLS certificate (PEM).
    #[arg(long, requires_all = ["tls_key", "tls_ca", "role"])]
    tls_cert: Option<PathBuf>,
    /// This side's TLS key (PEM).
    #[arg(long, requires = "role")]
    tls_key: Option<PathBuf>,
    /// The CA that signs the peers' certificates (PEM).
    #[arg(long, requires = "role")]
    tls_ca: Option<PathBuf>,
    /// No TLS: allowed only when listening on, and connecting to, loopback.
    #[arg(long, conflicts_with = "tls_cert", requires = "role")]
    plaintext_loopback: bool,
    /// Master target: make written blocks durable every N blocks (default: every 64 MiB).
    #[arg(long, requires = "role")]
    checkpoint_blocks: Option<usize>,
    /// Process server: bandwidth cap for all its syncs together.
    #[arg(long, value_parser = parse_rate, requires = "role")]
    limit: Option<u64>,
    /// Process server: how many disks sync at once.
    #[arg(long, default_value_t = 4)]
    max_parallel: usize,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub fn sync(
    args: SyncArgs,
    config: Option<&Path>,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let in_use = if args.skip_free_space {
        let (ranges, notes) = source_in_use(&args, config)?;
        for note in notes {
            writeln!(out, "{note}")?;
        }
        Some(Arc::new(ranges))
    } else {
        None
    };
    let spec = SyncSpec {
        source: args.from.clone().into(),
        source_format: args.from_format,
        target: args.to.clone().into(),
        target_format: args.to_format,
        mode: if args.delta { Mode::Delta } else { Mode::Full },
        block_size: args.block_size,
        compress: !args.no_compress,
        in_use,
    };
    let checkpoint = CheckpointPolicy {
        blocks: args.checkpoint_blocks,
        ..CheckpointPolicy::default()
    };
    let outcome = runtime()?.block_on(async {
        let (progress_tx, mut progress_rx) =
            tokio::sync::watch::channel(crate::sync::proto::Progress::default());
        let display = tokio::spawn(async move {
            let mut shown: Option<progress::Display> = None;
            while progress_rx.changed().await.is_ok() {
                let snapshot = *progress_rx.borrow_and_update();
                shown
                    .get_or_insert_with(|| progress::Display::for_stderr(snapshot.bytes_total))
                    .update(&snapshot);
            }
            if let Some(d) = shown {
                d.finish();
            }
        });
        let result = local::run(spec, args.limit, checkpoint, progress_tx).await;
        let _ = display.await;
        result
    })?;
    let t = &outcome.totals;
    writeln!(
        out,
        "synced {} → {} ({}): {} bytes, {} blocks sent ({} bytes on the wire), {} skipped, {} resent after corruption, {} attempt(s), {:.3} s",
        args.from.display(),
        args.to.display(),
        if args.delta { "delta" } else { "full" },
        t.bytes_total,
        t.blocks_sent,
        t.bytes_sent,
        t.blocks_skipped,
        t.blocks_rejected,
        outcome.attempts,
        outcome.seconds
    )?;
    writeln!(out, "whole-disk digest: {}", hex::encode(outcome.root))?;
    Ok(ExitCode::SUCCESS)
}

/// The bytes of the source its file systems use, by the handlers of the
/// plugin set in effect.
fn source_in_use(
    args: &SyncArgs,
    config: Option<&Path>,
) -> anyhow::Result<(Vec<Range<u64>>, Vec<String>)> {
    let source: Arc<dyn BlockDevice> = crate::disk::open(&args.from, false, args.from_format)
        .with_context(|| format!("opening {}", args.from.display()))?
        .into();
    let layout = crate::disk::layout::resolve(source.clone())
        .with_context(|| format!("reading the partitions of {}", args.from.display()))?;
    let (_runtime, entries) = plugin_set::load_all(&plugin_set::locate(config))?;
    let handlers = FsHandlers::new(entries.into_iter().filter_map(|e| e.loaded.ok()));
    used_map(&handlers, source.capacity(), &layout.volumes)
        .with_context(|| format!("finding the used space of {}", args.from.display()))
}

pub fn serve(args: ServeArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let Some(role) = args.role else {
        bail!("say which data-path role to serve: --role process-server or --role master-target");
    };
    let security = match (
        &args.tls_cert,
        &args.tls_key,
        &args.tls_ca,
        args.plaintext_loopback,
    ) {
        (Some(cert), Some(key), Some(ca), false) => Security::Tls(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            ca: ca.clone(),
        }),
        (None, None, None, true) => Security::PlaintextLoopback,
        _ => bail!(
            "give --tls-cert, --tls-key and --tls-ca, or --plaintext-loopback (loopback only)"
        ),
    };
    let addr = args
        .listen
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)));
    runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let bound = listener.local_addr()?;
        let server = transport::server(bound, &security)?;
        let router = match role {
            Role::MasterTarget => {
                if args.target_root.is_empty() {
                    bail!("a master target needs at least one --target-root");
                }
                let service = MasterTargetService::new(TargetConfig {
                    roots: args.target_root.clone(),
                    checkpoint: CheckpointPolicy {
                        blocks: args.checkpoint_blocks,
                        ..CheckpointPolicy::default()
                    },
                });
                let mut server = server;
                let journals =
                    crate::sync::point_target::PointJournalService::new(args.target_root.clone());
                server
                    .add_service(
                        MasterTargetServer::new(service)
                            .max_decoding_message_size(MAX_MESSAGE)
                            .max_encoding_message_size(MAX_MESSAGE),
                    )
                    .add_service(
                        crate::sync::proto::point_journal_server::PointJournalServer::new(journals)
                            .max_decoding_message_size(MAX_MESSAGE)
                            .max_encoding_message_size(MAX_MESSAGE),
                    )
            }
            Role::ProcessServer => {
                if args.source_root.is_empty() {
                    bail!("a process server needs at least one --source-root");
                }
                let service = ProcessServerService::new(ProcessServerConfig {
                    source_roots: args.source_root.clone(),
                    security: security.clone(),
                    limit_bytes_per_sec: args.limit,
                    max_parallel: args.max_parallel,
                    retry: RetryPolicy {
                        reconnect_for: Duration::from_secs(120),
                    },
                });
                let mut server = server;
                server.add_service(ProcessServerServer::new(service))
            }
        };
        writeln!(out, "{role:?} listening on {bound}")?;
        out.flush()?;
        router
            .serve_with_incoming_shutdown(transport::incoming(listener), async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("serving")?;
        Ok(ExitCode::SUCCESS)
    })
}
