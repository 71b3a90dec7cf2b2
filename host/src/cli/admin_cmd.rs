//! `homeward admin backup FILE` (online, streamed from the server) and
//! `homeward admin restore FILE --state-dir DIR` (offline, into a stopped
//! server's state directory).

use super::control_cmd::{ClientOpts, OutputOpts, ServerOpts, block_on, connect};
use crate::control::client::ClientError;
use crate::control::proto as pb;
use crate::control::state::StateDir;
use crate::store::Store;
use clap::{Args, Subcommand};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tokio_stream::StreamExt;

/// `homeward admin`.
#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(flatten)]
    output: OutputOpts,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Copy the running server's state store to FILE (a consistent SQLite
    /// database; it holds token digests and settings, so it is written 0600).
    Backup {
        /// The backup file to write (never overwritten).
        file: PathBuf,
    },
    /// Put a backup in place of the state store of --state-dir. The server
    /// must be stopped; it comes back with the backup's identity and tokens.
    Restore {
        /// The backup file.
        file: PathBuf,
    },
}

pub fn run(args: AdminArgs, server: &ServerOpts, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let client = server.with_json(args.output.json);
    match args.command {
        AdminCommand::Backup { file } => backup(&client, &file, out),
        AdminCommand::Restore { file } => restore(&client, &file, out),
    }
}

fn backup(client: &ClientOpts, file: &Path, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    if file.exists() {
        return Err(ClientError::Usage(format!(
            "{} already exists; a backup never overwrites a file: choose a new name",
            file.display()
        ))
        .into());
    }
    let partial = partial_path(file);
    block_on(async {
        let conn = connect(client).await?;
        let mut stream = conn
            .client
            .clone()
            .backup(pb::BackupRequest {})
            .await
            .map_err(|s| conn.error(&s))?
            .into_inner();
        let _ = fs::remove_file(&partial);
        let mut dest = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .map_err(|e| ClientError::Usage(format!("cannot create {}: {e}", partial.display())))?;
        let result: anyhow::Result<(u64, pb::BackupChunk)> = async {
            let mut written = 0u64;
            let mut head: Option<pb::BackupChunk> = None;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|s| conn.error(&s))?;
                dest.write_all(&chunk.data).map_err(|e| {
                    ClientError::Failed(format!("writing {}: {e}", partial.display()))
                })?;
                written += chunk.data.len() as u64;
                if head.is_none() {
                    head = Some(pb::BackupChunk {
                        data: Vec::new(),
                        ..chunk
                    });
                }
            }
            let head = head
                .ok_or_else(|| ClientError::Failed("the server sent no backup data".to_string()))?;
            if written != head.total_bytes {
                return Err(ClientError::Failed(format!(
                    "the backup is incomplete: {written} of {} bytes arrived",
                    head.total_bytes
                ))
                .into());
            }
            dest.sync_all()
                .map_err(|e| ClientError::Failed(format!("syncing {}: {e}", partial.display())))?;
            Ok((written, head))
        }
        .await;
        let (written, head) = match result {
            Ok(done) => done,
            Err(e) => {
                let _ = fs::remove_file(&partial);
                return Err(e);
            }
        };
        // Never over a file that appeared meanwhile.
        if file.exists() {
            let _ = fs::remove_file(&partial);
            return Err(ClientError::Usage(format!(
                "{} appeared while the backup was made; choose a new name",
                file.display()
            ))
            .into());
        }
        fs::rename(&partial, file).map_err(|e| {
            ClientError::Failed(format!("moving the backup to {}: {e}", file.display()))
        })?;
        if client.json {
            writeln!(
                out,
                "{}",
                serde_json::json!({
                    "path": file,
                    "bytes": written,
                    "server_id": head.server_id,
                    "schema_version": head.schema_version,
                })
            )?;
        } else {
            writeln!(
                out,
                "backup of server {} (schema {}): {written} bytes → {}",
                head.server_id,
                head.schema_version,
                file.display()
            )?;
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `FILE.partial`, where a backup is written until complete.
fn partial_path(file: &Path) -> PathBuf {
    let mut name = file
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".partial");
    file.with_file_name(name)
}

fn restore(client: &ClientOpts, file: &Path, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let Some(dir) = &client.state_dir else {
        return Err(ClientError::Usage(
            "say which state directory to restore into: --state-dir DIR (the server's)".into(),
        )
        .into());
    };
    let state = StateDir::new(dir);
    let store_path = state.store_path();
    if Store::is_in_use(&store_path)? {
        return Err(ClientError::Refused(format!(
            "a Homeward server is running on {} (it holds {}); stop it first, then restore",
            state.root().display(),
            store_path.display()
        ))
        .into());
    }
    let identity = Store::restore(&store_path, file)?;
    if client.json {
        writeln!(out, "{}", serde_json::to_string(&identity)?)?;
    } else {
        writeln!(
            out,
            "restored server {} (schema {}) from {} into {}",
            identity.server_id,
            identity.schema_version,
            file.display(),
            store_path.display()
        )?;
        writeln!(
            out,
            "start it with `homeward serve --state-dir {}`; token files that are not the \
             backup's tokens get new tokens then",
            state.root().display()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
