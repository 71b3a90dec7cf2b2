//! The `Control` RPCs over the [`Orchestrator`], its [`Store`] and its
//! scheduler.
//!
//! Store and orchestrator calls are synchronous (SQLite, plugin calls), so
//! each runs on a blocking thread; the async side only moves messages. Job
//! RPCs go through the orchestrator, which validates before it submits.

use super::auth::Caller;
use super::convert::{self, Invalid};
use super::proto as pb;
use super::settings;
use super::status;
use crate::store::{
    EventKind, JobEvent, JobFilter, NewGroup, NewSite, PlanEntry, Store, StoreError,
};
use crate::workflow::{
    CommitParams, FailoverParams, Orchestrator, ReprotectParams, TestFailoverParams,
};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// Jobs listed when the request sets no limit.
const DEFAULT_JOB_LIMIT: usize = 100;
/// Bytes per backup chunk (well under the default 4 MiB message limit).
const BACKUP_CHUNK: usize = 1 << 20;

/// The control API's implementation.
#[derive(Clone)]
pub struct ControlService {
    orchestrator: Orchestrator,
    /// Held across a settings change's read, merge and write, so two
    /// concurrent changes of one group cannot undo each other.
    settings_lock: Arc<std::sync::Mutex<()>>,
}

impl ControlService {
    /// The service over an orchestrator (its store and scheduler).
    pub fn new(orchestrator: Orchestrator) -> ControlService {
        ControlService {
            orchestrator,
            settings_lock: Arc::default(),
        }
    }

    fn store(&self) -> Arc<Store> {
        self.orchestrator.store().clone()
    }
}

/// Runs a synchronous call on a blocking thread.
async fn blocking<T, F>(f: F) -> Result<T, Status>
where
    F: FnOnce() -> Result<T, Status> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("a server task failed: {e}")))?
}

fn direction(value: i32) -> Result<crate::store::Direction, Status> {
    Ok(convert::direction_from(value)?)
}

fn not_empty<'a>(value: &'a str, what: &str) -> Result<&'a str, Status> {
    if value.trim().is_empty() {
        Err(Status::invalid_argument(format!("{what} is missing")))
    } else {
        Ok(value)
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::JobEvent, Status>> + Send>>;
type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::BackupChunk, Status>> + Send>>;

#[tonic::async_trait]
impl pb::control_server::Control for ControlService {
    async fn get_server(
        &self,
        request: Request<pb::GetServerRequest>,
    ) -> Result<Response<pb::ServerInfo>, Status> {
        let caller = request.extensions().get::<Caller>().cloned();
        let store = self.store();
        let identity = blocking(move || Ok(store.identity()?)).await?;
        let mut info = convert::server_info(&identity);
        if let Some(caller) = caller {
            info.caller = caller.name;
            info.caller_role = convert::role_pb(&caller.role);
        }
        Ok(Response::new(info))
    }

    async fn list_sites(
        &self,
        _request: Request<pb::ListSitesRequest>,
    ) -> Result<Response<pb::ListSitesReply>, Status> {
        let store = self.store();
        let sites = blocking(move || Ok(store.sites()?)).await?;
        Ok(Response::new(pb::ListSitesReply {
            sites: sites.iter().map(Into::into).collect(),
        }))
    }

    async fn add_site(
        &self,
        request: Request<pb::AddSiteRequest>,
    ) -> Result<Response<pb::Site>, Status> {
        let site = NewSite::try_from(request.into_inner())?;
        not_empty(&site.name, "the site's name")?;
        not_empty(&site.plugin, "the site's plugin id")?;
        let store = self.store();
        let site = blocking(move || Ok(store.add_site(&site)?)).await?;
        Ok(Response::new((&site).into()))
    }

    async fn list_components(
        &self,
        request: Request<pb::ListComponentsRequest>,
    ) -> Result<Response<pb::ListComponentsReply>, Status> {
        let role = request
            .into_inner()
            .role
            .map(convert::component_role_from)
            .transpose()?;
        let store = self.store();
        let components = blocking(move || Ok(store.components(role)?)).await?;
        Ok(Response::new(pb::ListComponentsReply {
            components: components.iter().map(Into::into).collect(),
        }))
    }

    async fn register_component(
        &self,
        request: Request<pb::RegisterComponentRequest>,
    ) -> Result<Response<pb::Component>, Status> {
        let component = crate::store::NewComponent::try_from(request.into_inner())?;
        not_empty(&component.name, "the component's name")?;
        not_empty(&component.address, "the component's address")?;
        let orchestrator = self.orchestrator.clone();
        let component = blocking(move || Ok(orchestrator.register_component(&component)?)).await?;
        Ok(Response::new((&component).into()))
    }

    async fn discover(
        &self,
        request: Request<pb::DiscoverRequest>,
    ) -> Result<Response<pb::Inventory>, Status> {
        let site = request.into_inner().site;
        not_empty(&site, "the site")?;
        let orchestrator = self.orchestrator.clone();
        let inventory = blocking(move || {
            let inventory = orchestrator.discover(&site)?;
            Ok(convert::inventory_pb(&site, &inventory))
        })
        .await?;
        Ok(Response::new(inventory))
    }

    async fn create_group(
        &self,
        request: Request<pb::CreateGroupRequest>,
    ) -> Result<Response<pb::CreateGroupReply>, Status> {
        let r = request.into_inner();
        not_empty(&r.name, "the group's name")?;
        let group = NewGroup {
            name: r.name,
            direction: direction(r.direction)?,
            settings: r.settings.unwrap_or_default().into(),
        };
        settings::validate(&group.settings)?;
        let store = self.store();
        let (group, failback) = blocking(move || Ok(store.create_group(&group)?)).await?;
        Ok(Response::new(pb::CreateGroupReply {
            group: Some((&group).into()),
            failback: Some((&failback).into()),
        }))
    }

    async fn list_groups(
        &self,
        _request: Request<pb::ListGroupsRequest>,
    ) -> Result<Response<pb::ListGroupsReply>, Status> {
        let store = self.store();
        let groups = blocking(move || Ok(store.groups()?)).await?;
        Ok(Response::new(pb::ListGroupsReply {
            groups: groups.iter().map(Into::into).collect(),
        }))
    }

    async fn set_group_settings(
        &self,
        request: Request<pb::SetGroupSettingsRequest>,
    ) -> Result<Response<pb::Group>, Status> {
        let r = request.into_inner();
        not_empty(&r.name, "the group's name")?;
        let store = self.store();
        let lock = self.settings_lock.clone();
        let group = blocking(move || {
            // The mutex guards no data, so a poisoned one is as good to hold.
            let _held = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let current = store.group(&r.name)?;
            let merged = settings::merge(&current.settings, r.settings, &r.clear)?;
            settings::validate(&merged)?;
            store.set_group_settings(&r.name, &merged)?;
            Ok(store.group(&r.name)?)
        })
        .await?;
        Ok(Response::new((&group).into()))
    }

    async fn protect(
        &self,
        request: Request<pb::ProtectRequest>,
    ) -> Result<Response<pb::ProtectReply>, Status> {
        let r = request.into_inner();
        not_empty(&r.group, "the group")?;
        not_empty(&r.site, "the site")?;
        if r.vm_ids.is_empty() {
            return Err(Status::invalid_argument(
                "no VM to protect: name at least one VM id (`homeward discover SITE` lists them)",
            ));
        }
        let orchestrator = self.orchestrator.clone();
        let items =
            blocking(move || Ok(orchestrator.protect(&r.group, &r.site, &r.vm_ids)?)).await?;
        Ok(Response::new(pb::ProtectReply {
            items: items.iter().map(Into::into).collect(),
        }))
    }

    async fn list_items(
        &self,
        request: Request<pb::ListItemsRequest>,
    ) -> Result<Response<pb::ListItemsReply>, Status> {
        let group = request.into_inner().group;
        let store = self.store();
        let items = blocking(move || {
            if let Some(group) = &group {
                // An unknown group is not found, not an empty list.
                store.group(group)?;
            }
            let now = crate::store::now_ms();
            let mut out = Vec::new();
            for item in store.items(group.as_deref())? {
                let rpo = crate::workflow::rpo::rpo(&store, &item, now)?;
                out.push(convert::item_with_rpo(&item, &rpo));
            }
            Ok(out)
        })
        .await?;
        Ok(Response::new(pb::ListItemsReply { items }))
    }

    async fn create_plan(
        &self,
        request: Request<pb::CreatePlanRequest>,
    ) -> Result<Response<pb::Plan>, Status> {
        let r = request.into_inner();
        not_empty(&r.name, "the plan's name")?;
        let entries = r
            .entries
            .into_iter()
            .map(PlanEntry::try_from)
            .collect::<Result<Vec<_>, Invalid>>()?;
        let store = self.store();
        let plan = blocking(move || Ok(store.create_plan(&r.name, &entries)?)).await?;
        Ok(Response::new((&plan).into()))
    }

    async fn list_plans(
        &self,
        _request: Request<pb::ListPlansRequest>,
    ) -> Result<Response<pb::ListPlansReply>, Status> {
        let store = self.store();
        let plans = blocking(move || Ok(store.plans()?)).await?;
        Ok(Response::new(pb::ListPlansReply {
            plans: plans.iter().map(Into::into).collect(),
        }))
    }

    async fn reprotect(
        &self,
        request: Request<pb::ReprotectRequest>,
    ) -> Result<Response<pb::JobRef>, Status> {
        let r = request.into_inner();
        not_empty(&r.item, "the item")?;
        let params = ReprotectParams {
            item: r.item,
            direction: direction(r.direction)?,
            group: r.group,
            master_target: r.master_target,
            process_server: r.process_server,
            account: r.account,
            datastore: r.datastore,
            retention_hours: r.retention_hours,
            allow_overwrite: r.allow_overwrite,
        };
        let orchestrator = self.orchestrator.clone();
        let job_id = blocking(move || Ok(orchestrator.reprotect(&params)?)).await?;
        Ok(Response::new(pb::JobRef { job_id }))
    }

    async fn failover(
        &self,
        request: Request<pb::FailoverRequest>,
    ) -> Result<Response<pb::JobRef>, Status> {
        let r = request.into_inner();
        not_empty(&r.plan, "the plan")?;
        let params = FailoverParams {
            plan: r.plan,
            direction: direction(r.direction)?,
            point: convert::point_choice_from(r.point),
            planned: r.planned,
            confirm: r.confirm,
            network: r.network,
        };
        let orchestrator = self.orchestrator.clone();
        let job_id = blocking(move || Ok(orchestrator.failover(&params)?)).await?;
        Ok(Response::new(pb::JobRef { job_id }))
    }

    async fn commit(
        &self,
        request: Request<pb::CommitRequest>,
    ) -> Result<Response<pb::JobRef>, Status> {
        let r = request.into_inner();
        not_empty(&r.plan, "the plan")?;
        let params = CommitParams {
            plan: r.plan,
            direction: direction(r.direction)?,
            delete_source_vm: r.delete_source_vm,
        };
        let orchestrator = self.orchestrator.clone();
        let job_id = blocking(move || Ok(orchestrator.commit(&params)?)).await?;
        Ok(Response::new(pb::JobRef { job_id }))
    }

    async fn test_failover(
        &self,
        request: Request<pb::TestFailoverRequest>,
    ) -> Result<Response<pb::JobRef>, Status> {
        let r = request.into_inner();
        not_empty(&r.plan, "the plan")?;
        let params = TestFailoverParams {
            plan: r.plan,
            direction: direction(r.direction)?,
            point: convert::point_choice_from(r.point),
            network: r.network,
            cleanup: r.cleanup,
        };
        let orchestrator = self.orchestrator.clone();
        let job_id = blocking(move || Ok(orchestrator.test_failover(&params)?)).await?;
        Ok(Response::new(pb::JobRef { job_id }))
    }

    async fn list_points(
        &self,
        request: Request<pb::ListPointsRequest>,
    ) -> Result<Response<pb::ListPointsReply>, Status> {
        let item = request.into_inner().item;
        not_empty(&item, "the item")?;
        let store = self.store();
        let points = blocking(move || {
            let item = store.item(&item)?;
            Ok(store.points(item.id)?)
        })
        .await?;
        Ok(Response::new(pb::ListPointsReply {
            points: points.iter().map(Into::into).collect(),
        }))
    }

    async fn list_jobs(
        &self,
        request: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsReply>, Status> {
        let r = request.into_inner();
        let filter = JobFilter {
            state: r.state.map(convert::job_state_from).transpose()?,
            kind: r.kind.filter(|k| !k.is_empty()),
            limit: Some(match r.limit {
                0 => DEFAULT_JOB_LIMIT,
                n => usize::try_from(n).unwrap_or(DEFAULT_JOB_LIMIT),
            }),
        };
        let store = self.store();
        let jobs = blocking(move || Ok(store.jobs(&filter)?)).await?;
        Ok(Response::new(pb::ListJobsReply {
            jobs: jobs.iter().map(Into::into).collect(),
        }))
    }

    async fn get_job(
        &self,
        request: Request<pb::GetJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let id = request.into_inner().job_id;
        let store = self.store();
        let job = blocking(move || job(&store, id)).await?;
        Ok(Response::new((&job).into()))
    }

    async fn cancel_job(
        &self,
        request: Request<pb::CancelJobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let id = request.into_inner().job_id;
        let scheduler = self.orchestrator.scheduler().clone();
        let store = self.store();
        let job = blocking(move || {
            scheduler.cancel(id)?;
            job(&store, id)
        })
        .await?;
        Ok(Response::new((&job).into()))
    }

    type WatchJobStream = EventStream;

    async fn watch_job(
        &self,
        request: Request<pb::WatchJobRequest>,
    ) -> Result<Response<Self::WatchJobStream>, Status> {
        let r = request.into_inner();
        // Subscribe before the replay, so nothing falls between the two.
        let live = self.orchestrator.scheduler().subscribe();
        let store = self.store();
        let check = store.clone();
        blocking(move || job(&check, r.job_id)).await?;
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(follow_job(store, live, r.job_id, r.after_seq, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type BackupStream = ChunkStream;

    async fn backup(
        &self,
        _request: Request<pb::BackupRequest>,
    ) -> Result<Response<Self::BackupStream>, Status> {
        let store = self.store();
        let (tx, rx) = mpsc::channel(4);
        let (dir, path, info) = blocking(move || {
            // Next to the store: same file system, and as private as the store.
            let parent = store
                .path()
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf();
            let dir = tempfile::Builder::new()
                .prefix(".backup-")
                .tempdir_in(&parent)
                .map_err(|e| {
                    Status::internal(format!(
                        "cannot make a temporary directory for the backup in {}: {e}",
                        parent.display()
                    ))
                })?;
            let path = dir.path().join("homeward.db");
            let info = store.backup_to(&path)?;
            Ok((dir, path, info))
        })
        .await?;
        tokio::task::spawn_blocking(move || {
            send_backup(&path, &info, &tx);
            // The temporary copy goes when the stream ends.
            drop(dir);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

fn job(store: &Store, id: i64) -> Result<crate::store::JobRecord, Status> {
    store.job(id).map_err(|e| match e {
        StoreError::NotFound { .. } => Status::not_found(format!(
            "job {id} does not exist; `homeward jobs` lists the jobs"
        )),
        other => status::store(&other),
    })
}

/// Streams the backup file in chunks; the first carries the totals.
fn send_backup(
    path: &Path,
    info: &crate::store::BackupInfo,
    tx: &mpsc::Sender<Result<pb::BackupChunk, Status>>,
) {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) => {
            let _ = tx.blocking_send(Err(Status::internal(format!(
                "cannot read the backup copy {}: {e}",
                path.display()
            ))));
            return;
        }
    };
    let mut first = true;
    let mut sent = 0u64;
    loop {
        let mut buffer = vec![0u8; BACKUP_CHUNK];
        let n = match read_full(&mut file, &mut buffer) {
            Ok(n) => n,
            Err(e) => {
                let _ = tx.blocking_send(Err(Status::internal(format!(
                    "reading the backup copy {}: {e}",
                    path.display()
                ))));
                return;
            }
        };
        if n == 0 && !first {
            break;
        }
        buffer.truncate(n);
        sent += n as u64;
        let chunk = pb::BackupChunk {
            total_bytes: if first { info.bytes } else { 0 },
            server_id: if first {
                info.server_id.clone()
            } else {
                String::new()
            },
            schema_version: if first { info.schema_version } else { 0 },
            data: buffer,
        };
        first = false;
        if tx.blocking_send(Ok(chunk)).is_err() {
            return; // the client went away
        }
        if n == 0 {
            break;
        }
    }
    if sent != info.bytes {
        let _ = tx.blocking_send(Err(Status::internal(format!(
            "the backup copy changed size while it was sent ({sent} of {} bytes)",
            info.bytes
        ))));
    }
}

/// Reads until `buffer` is full or the file ends.
fn read_full(file: &mut std::fs::File, buffer: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read as _;
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Sends a job's persisted events after `after`, then live ones, until its
/// JobFinished event (or the job is found finished), the client leaves, or
/// the scheduler goes away. A watcher that lags behind the broadcast, or
/// sees a gap in the numbers, replays from the store.
async fn follow_job(
    store: Arc<Store>,
    mut live: broadcast::Receiver<JobEvent>,
    job_id: i64,
    after: u64,
    tx: mpsc::Sender<Result<pb::JobEvent, Status>>,
) {
    let mut last = after;
    loop {
        // Replay what the store has beyond `last`.
        let replay_store = store.clone();
        let replayed = blocking(move || {
            let finished = job(&replay_store, job_id)?.state.is_finished();
            let events = replay_store.events(job_id, last)?;
            Ok((finished, events))
        })
        .await;
        let (finished, events) = match replayed {
            Ok(found) => found,
            Err(status) => {
                let _ = tx.send(Err(status)).await;
                return;
            }
        };
        for event in events {
            last = last.max(event.seq);
            let end = event.kind == EventKind::JobFinished;
            if tx.send(Ok((&event).into())).await.is_err() || end {
                return;
            }
        }
        // Found finished before the replay: every event it will have is in.
        if finished {
            return;
        }
        // Then follow the broadcast until a gap sends us back to the store.
        loop {
            let received = tokio::select! {
                received = live.recv() => received,
                () = tx.closed() => return,
            };
            match received {
                Ok(event) if event.job_id != job_id => {}
                Ok(event) if event.kind == EventKind::Progress => {
                    if tx.send(Ok((&event).into())).await.is_err() {
                        return;
                    }
                }
                Ok(event) if event.seq <= last => {}
                Ok(event) if event.seq == last + 1 => {
                    last = event.seq;
                    let end = event.kind == EventKind::JobFinished;
                    if tx.send(Ok((&event).into())).await.is_err() || end {
                        return;
                    }
                }
                // Missed some: the store has them.
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => break,
                Err(broadcast::error::RecvError::Closed) => {
                    // The scheduler is gone; send what the store has, then end.
                    let rest_store = store.clone();
                    if let Ok(events) = blocking(move || Ok(rest_store.events(job_id, last)?)).await
                    {
                        for event in events {
                            if tx.send(Ok((&event).into())).await.is_err() {
                                return;
                            }
                        }
                    }
                    return;
                }
            }
        }
    }
}
