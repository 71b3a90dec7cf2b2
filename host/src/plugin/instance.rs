//! A plugin instance: one store, one sandbox, calls bounded by the plugin's limits.
//!
//! Instances are cheap (the pooling allocator and `InstancePre` make
//! instantiation a few microseconds), so the host makes one per job or per
//! task. A call that is stopped (deadline, memory cap, fuel, trap) retires its
//! instance: the guest may have been left half-way through an update of its own
//! state, so the next call must come from a fresh instance.

use super::error::PluginError;
use super::limits::explain;
use super::loaded::PluginMeta;
use super::state::PluginState;
use super::volume::PluginVolume;
use super::wit::{KindInstance, KindPre};
use crate::disk::BlockDevice;
use crate::guest_fs::GuestTree;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use wasmtime::Store;

pub use super::wit::v0_1::filesystem_handler::exports::homeward::plugin::filesystem::{
    FsInfo, ProbeResult,
};
pub use super::wit::v0_1::guest_step::exports::homeward::plugin::post_step::{
    ChangeKind, FileChange, StepContext, StepPlan,
};

/// What the last call cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallStats {
    /// Fuel consumed, when the runtime meters fuel (deterministic across runs).
    pub fuel_consumed: Option<u64>,
    /// The instance's largest memory so far, in bytes.
    pub peak_memory_bytes: u64,
}

/// What every call of the instances attached to it cost, added up: a
/// conformance case, or a job, attaches one meter to all the instances it
/// makes and reads the total at the end.
#[derive(Debug, Default)]
pub struct CostMeter {
    fuel: AtomicU64,
    peak_memory_bytes: AtomicU64,
    calls: AtomicU64,
}

/// A [`CostMeter`]'s reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CostTotals {
    /// Fuel consumed by every call (instantiation included), when metered.
    pub fuel: Option<u64>,
    /// The largest memory of any attached instance.
    pub peak_memory_bytes: u64,
    /// Calls made (instantiation counts as one).
    pub calls: u64,
}

impl CostMeter {
    fn add(&self, stats: CallStats) {
        if let Some(fuel) = stats.fuel_consumed {
            self.fuel.fetch_add(fuel, Ordering::Relaxed);
        }
        self.peak_memory_bytes
            .fetch_max(stats.peak_memory_bytes, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// The totals so far; `fuel` is `None` unless `fuel_metered`.
    pub fn totals(&self, fuel_metered: bool) -> CostTotals {
        CostTotals {
            fuel: fuel_metered.then(|| self.fuel.load(Ordering::Relaxed)),
            peak_memory_bytes: self.peak_memory_bytes.load(Ordering::Relaxed),
            calls: self.calls.load(Ordering::Relaxed),
        }
    }
}

/// Keeps the log lines of the instances attached to it, besides sending them
/// to `tracing`: a conformance case searches what its calls logged without
/// depending on which `tracing` subscriber is installed where.
#[derive(Debug, Default)]
pub struct LogRecorder {
    lines: std::sync::Mutex<Vec<String>>,
}

impl LogRecorder {
    pub(crate) fn record(&self, level: &str, message: &str) {
        if let Ok(mut lines) = self.lines.lock() {
            lines.push(format!("{level} {message}"));
        }
    }

    /// Every line so far, as `LEVEL message`.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// A live instance of a plugin.
pub struct PluginInstance {
    store: Store<PluginState>,
    meta: Arc<PluginMeta>,
    bindings: Option<KindInstance>,
    retired: bool,
    fuel_metered: bool,
    epoch_tick: Duration,
    last_call: CallStats,
    meter: Option<Arc<CostMeter>>,
}

impl PluginInstance {
    pub(crate) fn new(
        store: Store<PluginState>,
        meta: Arc<PluginMeta>,
        fuel_metered: bool,
        epoch_tick: Duration,
    ) -> Self {
        PluginInstance {
            store,
            meta,
            bindings: None,
            retired: false,
            fuel_metered,
            epoch_tick,
            last_call: CallStats::default(),
            meter: None,
        }
    }

    /// Keeps every later log line of this instance in `recorder` too.
    pub fn record_logs(&mut self, recorder: Arc<LogRecorder>) {
        self.store.data_mut().log_recorder = Some(recorder);
    }

    /// Adds the cost of every later call to `meter`.
    pub(crate) fn attach_meter(&mut self, meter: Arc<CostMeter>) {
        self.meter = Some(meter);
    }

    /// Runs the component's start-up inside the same limits as a call.
    pub(crate) fn start(&mut self, pre: &KindPre) -> Result<(), PluginError> {
        self.arm();
        match pre.instantiate(&mut self.store) {
            Ok(bindings) => {
                self.bindings = Some(bindings);
                self.settle();
                Ok(())
            }
            Err(e) => {
                self.retired = true;
                let refused = self.store.data().memory.refused();
                Err(
                    match explain(
                        &self.meta.manifest.id,
                        "instantiate",
                        e,
                        &self.meta.limits,
                        refused,
                    ) {
                        PluginError::Trap {
                            plugin, message, ..
                        } => PluginError::Instantiate {
                            plugin,
                            reason: message,
                        },
                        other => other,
                    },
                )
            }
        }
    }

    /// The plugin's id.
    pub fn plugin_id(&self) -> &str {
        &self.meta.manifest.id
    }

    /// What the last call cost.
    pub fn last_call(&self) -> CallStats {
        self.last_call
    }

    /// Whether an earlier call was stopped, making this instance unusable.
    pub fn is_retired(&self) -> bool {
        self.retired
    }

    /// The liveness probe: returns at once.
    pub fn ping(&mut self) -> Result<(), PluginError> {
        self.call("ping", |b, store| b.ping(store))
    }

    /// Passes `payload` into the plugin, which returns its length.
    pub fn ping_payload(&mut self, payload: &[u8]) -> Result<u64, PluginError> {
        self.call("ping-payload", |b, store| b.ping_payload(store, payload))
    }

    /// Asks a guest-step plugin for its plan on the guest whose root is `tree`.
    pub fn plan_guest_step(
        &mut self,
        tree: Arc<dyn GuestTree>,
        context: &StepContext,
    ) -> Result<StepPlan, PluginError> {
        let plugin = self.meta.manifest.id.clone();
        let answer = self.call("post-step.plan", |b, store| {
            b.plan_guest_step(store, tree, context)
        })?;
        answer.map_err(|e| PluginError::Failed {
            plugin,
            call: "post-step.plan",
            failure: e.into(),
        })
    }

    /// Asks a file-system handler whether `device` holds its file system. The
    /// device is lent, read-only, as the `disk` resource for this call only.
    pub fn probe_filesystem(
        &mut self,
        device: Arc<dyn BlockDevice>,
        id: &str,
    ) -> Result<ProbeResult, PluginError> {
        let disk = self.lend(device, id, false);
        let plugin = self.meta.manifest.id.clone();
        let answer = self.call("filesystem.probe", |b, store| {
            b.probe_filesystem(store, disk)
        })?;
        answer.map_err(|e| PluginError::Failed {
            plugin,
            call: "filesystem.probe",
            failure: e.into(),
        })
    }

    /// Asks a file-system handler which bytes of `device` are in use. The
    /// ranges come back sorted and merged; the host checks that they lie inside
    /// the device before anyone relies on them.
    pub fn used_extents(
        &mut self,
        device: Arc<dyn BlockDevice>,
        id: &str,
    ) -> Result<Vec<std::ops::Range<u64>>, PluginError> {
        let capacity = device.capacity();
        let disk = self.lend(device, id, false);
        let plugin = self.meta.manifest.id.clone();
        let answer = self.call("filesystem.used-extents", |b, store| {
            b.used_extents(store, disk)
        })?;
        let ranges = answer.map_err(|e| PluginError::Failed {
            plugin: plugin.clone(),
            call: "filesystem.used-extents",
            failure: e.into(),
        })?;
        checked_ranges(
            &plugin,
            ranges.into_iter().map(|r| (r.offset, r.length)),
            capacity,
        )
    }

    /// Opens the file system on `device` in this instance, which the returned
    /// volume then owns. `writable` needs a writable device and the plugin's
    /// `disk-write` grant; without them the open fails with the grant to add.
    pub fn open_volume(
        mut self,
        device: Arc<dyn BlockDevice>,
        id: &str,
        writable: bool,
    ) -> Result<PluginVolume, PluginError> {
        let plugin = self.meta.manifest.id.clone();
        if writable && !self.meta.grants.disk_write {
            return Err(PluginError::Failed {
                plugin,
                call: "volume.open",
                failure: super::Failure::PermissionDenied {
                    message: format!(
                        "writing {id} needs the `disk-write` capability: the plugin must ask for it and the operator must grant it (grants.disk-write = true in the plugin set)"
                    ),
                    missing: vec!["disk-write".to_string()],
                },
            });
        }
        if writable && !device.writable() {
            return Err(PluginError::Failed {
                plugin,
                call: "volume.open",
                failure: super::Failure::PermissionDenied {
                    message: format!("{} is open read-only", device.describe()),
                    missing: Vec::new(),
                },
            });
        }
        let disk = self.lend(device, id, writable);
        let answer = self.call("volume.open", |b, store| {
            b.open_volume(store, disk, writable)
        })?;
        let volume = answer.map_err(|e| PluginError::Failed {
            plugin,
            call: "volume.open",
            failure: e.into(),
        })?;
        Ok(PluginVolume::new(self, volume))
    }

    /// The `disk` resource for `device`: writable only when asked, the device
    /// allows it and the plugin holds the grant.
    fn lend(
        &self,
        device: Arc<dyn BlockDevice>,
        id: &str,
        writable: bool,
    ) -> super::wit::v0_1::DiskHandle {
        super::wit::v0_1::DiskHandle {
            id: id.to_string(),
            writable: writable && device.writable() && self.meta.grants.disk_write,
            device,
        }
    }

    /// Runs one export under the plugin's limits and explains a stop.
    pub(crate) fn call<R>(
        &mut self,
        call: &'static str,
        f: impl FnOnce(&KindInstance, &mut Store<PluginState>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        let plugin = || self.meta.manifest.id.clone();
        if self.retired {
            return Err(PluginError::Retired { plugin: plugin() });
        }
        let Some(bindings) = self.bindings.as_ref() else {
            return Err(PluginError::Retired { plugin: plugin() });
        };
        Self::arm_store(
            &mut self.store,
            &self.meta,
            self.fuel_metered,
            self.epoch_tick,
        );
        let result = f(bindings, &mut self.store);
        self.settle();
        result.map_err(|e| {
            self.retired = true;
            let refused = self.store.data().memory.refused();
            explain(&self.meta.manifest.id, call, e, &self.meta.limits, refused)
        })
    }

    fn arm(&mut self) {
        Self::arm_store(
            &mut self.store,
            &self.meta,
            self.fuel_metered,
            self.epoch_tick,
        );
    }

    /// Sets the deadline (in ticks of the runtime's epoch thread, rounded up,
    /// plus one because the current tick may be about to end) and the fuel.
    fn arm_store(
        store: &mut Store<PluginState>,
        meta: &PluginMeta,
        fuel_metered: bool,
        tick: Duration,
    ) {
        let tick_ns = tick.as_nanos().max(1);
        let ticks = meta.limits.call_timeout.as_nanos().div_ceil(tick_ns) + 1;
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        store.data_mut().memory.clear_refusal();
        if fuel_metered {
            // Setting fuel only fails when the engine does not meter it.
            let _ = store.set_fuel(meta.limits.fuel.unwrap_or(u64::MAX));
        }
    }

    fn settle(&mut self) {
        let fuel_consumed = if self.fuel_metered {
            let budget = self.meta.limits.fuel.unwrap_or(u64::MAX);
            self.store
                .get_fuel()
                .ok()
                .map(|left| budget.saturating_sub(left))
        } else {
            None
        };
        self.last_call = CallStats {
            fuel_consumed,
            peak_memory_bytes: self.store.data().memory.peak_bytes() as u64,
        };
        if let Some(meter) = &self.meter {
            meter.add(self.last_call);
        }
    }
}

/// Checks a plugin's byte ranges against the device: sorted, non-empty,
/// inside `capacity`. A handler that breaks this is buggy or hostile, and the
/// data path must not trust it (skipping bytes it wrongly calls free loses data).
fn checked_ranges(
    plugin: &str,
    ranges: impl Iterator<Item = (u64, u64)>,
    capacity: u64,
) -> Result<Vec<std::ops::Range<u64>>, PluginError> {
    let bad = |reason: String| PluginError::Failed {
        plugin: plugin.to_string(),
        call: "filesystem.used-extents",
        failure: super::Failure::Internal(reason),
    };
    let mut out: Vec<std::ops::Range<u64>> = Vec::new();
    for (offset, length) in ranges {
        let end = offset
            .checked_add(length)
            .filter(|&end| length > 0 && end <= capacity)
            .ok_or_else(|| {
                bad(format!(
                    "range {offset}+{length} is empty or past the end of the {capacity}-byte volume"
                ))
            })?;
        if let Some(last) = out.last_mut() {
            if offset < last.end {
                return Err(bad(format!(
                    "range at {offset} is not sorted after the range ending at {}",
                    last.end
                )));
            }
            if offset == last.end {
                last.end = end;
                continue;
            }
        }
        out.push(offset..end);
    }
    Ok(out)
}

impl From<&FileChange> for crate::guest_fs::PlannedChange {
    /// The host-side form of one entry of a guest step's plan.
    fn from(change: &FileChange) -> Self {
        use crate::guest_fs::ChangeKind as Host;
        crate::guest_fs::PlannedChange {
            path: change.path.clone(),
            kind: match change.kind {
                ChangeKind::CreateFile => Host::CreateFile,
                ChangeKind::ReplaceFile => Host::ReplaceFile,
                ChangeKind::Remove => Host::Remove,
                ChangeKind::CreateDir => Host::CreateDir,
                ChangeKind::CreateSymlink => Host::CreateSymlink,
            },
            content: change.content.clone(),
            mode: change.mode,
        }
    }
}
