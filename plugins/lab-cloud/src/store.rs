//! The lab directory as the plugin sees it: reading its records, writing them
//! atomically (a temporary file, then a rename), and turning resource ids into
//! the names of the files that hold them.
//!
//! Plain `std::fs`, so it runs natively as well as in the sandbox.

use crate::arm::ResourceId;
use crate::format::{
    self, CLOUD_FILE, COUNTERS_FILE, CloudFile, Counters, DISKS_DIR, DiskFile, FORMAT_VERSION,
    SnapshotFile, VMS_DIR, VmFile,
};
use homeward_sdk::Error;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// An open lab: its directory and its fixed setup.
#[derive(Debug)]
pub struct Lab {
    root: PathBuf,
    /// The same directory on the host, for disk locators and messages.
    host_root: Option<PathBuf>,
    /// `cloud.json`.
    pub cloud: CloudFile,
}

impl Lab {
    /// Opens the lab at `root` (the plugin's view of it); `host_root` is the
    /// same directory on the host, when the operator configured it.
    pub fn open(root: &Path, host_root: Option<&Path>) -> Result<Lab, Error> {
        let shown = host_root.unwrap_or(root);
        let guest = root.display();
        let grant = format!(
            "grant it to the plugin read-write ([plugins.lab-cloud.grants] dirs = [{{ host = \"{}\", \
             guest = \"{guest}\", write = true }}]) and set config `root` = \"{guest}\"",
            host_root.map_or_else(
                || "<lab directory>".to_string(),
                |h| h.display().to_string()
            ),
        );
        match std::fs::metadata(root) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::unavailable(
                    format!(
                        "the lab cloud {} is not a directory: {grant}",
                        shown.display()
                    ),
                    None,
                ));
            }
            Err(e) => {
                return Err(Error::unavailable(
                    format!(
                        "the lab cloud directory {} cannot be reached from the plugin ({e}): {grant}",
                        shown.display()
                    ),
                    None,
                ));
            }
        }
        let cloud_path = root.join(CLOUD_FILE);
        let text = match std::fs::read(&cloud_path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::unavailable(
                    format!(
                        "there is no lab cloud in {} ({CLOUD_FILE} is missing): create one \
                         (homeward::lab::cloud::LabCloud::create, or `homeward demo`) or point \
                         the grant at the right directory",
                        shown.display()
                    ),
                    None,
                ));
            }
            Err(e) => {
                return Err(Error::unavailable(
                    format!("cannot read {}: {e}", shown.join(CLOUD_FILE).display()),
                    None,
                ));
            }
        };
        let cloud: CloudFile = serde_json::from_slice(&text).map_err(|e| {
            Error::internal(format!(
                "{} is damaged ({e}); recreate the lab",
                shown.join(CLOUD_FILE).display()
            ))
        })?;
        if cloud.format != FORMAT_VERSION {
            return Err(Error::unsupported(format!(
                "{} is lab format {}, this plugin reads format {FORMAT_VERSION}; recreate the lab \
                 with this version of Homeward",
                shown.join(CLOUD_FILE).display(),
                cloud.format
            )));
        }
        Ok(Lab {
            root: root.to_path_buf(),
            host_root: host_root.map(Path::to_path_buf),
            cloud,
        })
    }

    /// The host path of `rel` inside the lab, when the host root is known.
    pub fn host_path(&self, rel: &str) -> Option<PathBuf> {
        self.host_root.as_ref().map(|h| h.join(rel))
    }

    /// Where `rel` is, for messages: on the host if known, else in the sandbox.
    fn shown(&self, rel: &str) -> String {
        self.host_path(rel)
            .unwrap_or_else(|| self.root.join(rel))
            .display()
            .to_string()
    }

    /// The plugin's path of `rel` inside the lab.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// An I/O failure on `rel`, as an error naming the file.
    pub fn io_error(&self, rel: &str, doing: &str, e: &io::Error) -> Error {
        Error::internal(format!("cannot {doing} {}: {e}", self.shown(rel)))
    }

    /// Reads and parses `rel`; `None` when it does not exist.
    fn read_json<T: DeserializeOwned>(&self, rel: &str) -> Result<Option<T>, Error> {
        let bytes = match std::fs::read(self.path(rel)) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io_error(rel, "read", &e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::internal(format!("{} is damaged ({e})", self.shown(rel))))
    }

    /// Writes `value` to `rel` atomically: a temporary file beside it, synced,
    /// then renamed over it, so a reader sees the old record or the new one.
    fn write_json<T: Serialize>(&self, rel: &str, value: &T) -> Result<(), Error> {
        let mut text = serde_json::to_vec_pretty(value)
            .map_err(|e| Error::internal(format!("cannot encode {}: {e}", self.shown(rel))))?;
        text.push(b'\n');
        let tmp = format!("{rel}.{}.tmp", unique_suffix());
        let written = std::fs::File::create(self.path(&tmp))
            .and_then(|mut f| f.write_all(&text).and_then(|()| f.sync_all()))
            .and_then(|()| std::fs::rename(self.path(&tmp), self.path(rel)));
        written.map_err(|e| {
            let _ = std::fs::remove_file(self.path(&tmp));
            self.io_error(rel, "write", &e)
        })
    }

    /// The file names in directory `rel` (none when it is missing). Under
    /// WASI a listing stats every entry, so a file removed meanwhile (another
    /// call's temporary file, a sync's checkpoint) fails it: read it again.
    fn list(&self, rel: &str) -> Result<Vec<String>, Error> {
        const ATTEMPTS: u32 = 20;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let entries = match std::fs::read_dir(self.path(rel)) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(self.io_error(rel, "list", &e)),
            };
            let names: io::Result<Vec<String>> = entries
                .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect();
            match names {
                Ok(names) => return Ok(names),
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempt < ATTEMPTS => continue,
                Err(e) => return Err(self.io_error(rel, "list", &e)),
            }
        }
    }

    /// Removes `rel`; a file already gone is not an error.
    pub fn remove(&self, rel: &str) -> Result<(), Error> {
        match std::fs::remove_file(self.path(rel)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(self.io_error(rel, "remove", &e)),
            _ => Ok(()),
        }
    }

    /// Runs `f` holding the lab's lock. Calls that allocate (create-vm's
    /// address, MAC and numbers; snapshot numbers) read and then write shared
    /// files, and several plugin instances run at once; without the lock two
    /// of them hand out the same address. WASI has no `flock`, so the lock is
    /// a file made with `create_new`; one older than [`LOCK_STALE_MS`] was
    /// left by a caller killed while holding it and is taken over.
    pub fn locked<T>(&self, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
        let path = self.path(LOCK_FILE);
        let started = now_millis();
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut file) => {
                    use std::io::Write;
                    let _ = write!(file, "{}", now_millis());
                    let result = f();
                    let _ = std::fs::remove_file(&path);
                    return result;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let held_since = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|t| t.trim().parse::<u64>().ok());
                    if held_since.is_some_and(|t| now_millis().saturating_sub(t) > LOCK_STALE_MS) {
                        let _ = std::fs::remove_file(&path);
                        continue;
                    }
                    if now_millis().saturating_sub(started) > LOCK_WAIT_MS {
                        return Err(Error::unavailable(
                            format!(
                                "the lab stayed locked for {} s ({}); retry",
                                LOCK_WAIT_MS / 1000,
                                path.display()
                            ),
                            Some(1000),
                        ));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                Err(e) => return Err(self.io_error(LOCK_FILE, "create", &e)),
            }
        }
    }

    /// The counters.
    pub fn counters(&self) -> Result<Counters, Error> {
        Ok(self.read_json(COUNTERS_FILE)?.unwrap_or_default())
    }

    /// Saves the counters.
    pub fn save_counters(&self, counters: &Counters) -> Result<(), Error> {
        self.write_json(COUNTERS_FILE, counters)
    }

    /// The VM named `name`, if it exists.
    pub fn vm(&self, name: &str) -> Result<Option<VmFile>, Error> {
        self.read_json(&vm_rel(name))
    }

    /// Saves a VM's record.
    pub fn save_vm(&self, vm: &VmFile) -> Result<(), Error> {
        self.write_json(&vm_rel(&vm.name), vm)
    }

    /// Deletes a VM's record.
    pub fn remove_vm(&self, name: &str) -> Result<(), Error> {
        self.remove(&vm_rel(name))
    }

    /// Every VM, in name order.
    pub fn vms(&self) -> Result<Vec<VmFile>, Error> {
        let mut names = Vec::new();
        for file in self.list(VMS_DIR)? {
            if let Some(stem) = file.strip_suffix(".json")
                && format::valid_name(stem)
            {
                names.push(stem.to_string());
            }
        }
        names.sort();
        let mut vms = Vec::with_capacity(names.len());
        for name in names {
            if let Some(vm) = self.vm(&name)? {
                vms.push(vm);
            }
        }
        Ok(vms)
    }

    /// The disk named `name`, if it exists.
    pub fn disk(&self, name: &str) -> Result<Option<DiskFile>, Error> {
        self.read_json(&disk_rel(&format::disk_json(name)))
    }

    /// The snapshot `snapshot` of disk `disk`, if it exists.
    pub fn snapshot(&self, disk: &str, snapshot: &str) -> Result<Option<SnapshotFile>, Error> {
        self.read_json(&disk_rel(&format::snapshot_json(disk, snapshot)))
    }

    /// Saves a snapshot's record.
    pub fn save_snapshot(&self, disk: &str, snapshot: &SnapshotFile) -> Result<(), Error> {
        self.write_json(
            &disk_rel(&format::snapshot_json(disk, &snapshot.name)),
            snapshot,
        )
    }

    /// The snapshots of disk `disk`, oldest first.
    pub fn snapshots_of(&self, disk: &str) -> Result<Vec<SnapshotFile>, Error> {
        let prefix = format!("{disk}@");
        let mut snapshots = Vec::new();
        for file in self.list(DISKS_DIR)? {
            if let Some(name) = file
                .strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(".json"))
                && format::valid_name(name)
                && let Some(snapshot) = self.snapshot(disk, name)?
            {
                snapshots.push(snapshot);
            }
        }
        snapshots.sort_by_key(|s| s.number);
        Ok(snapshots)
    }

    /// The name of the resource `id` names, after checking it is a `kind`
    /// (`noun` in messages) of this lab's subscription and resource group.
    /// A malformed id or one of another type is `invalid-input`; one of
    /// another subscription or group is `not-found`.
    pub fn name_in(&self, id: &str, kind: &str, noun: &str) -> Result<String, Error> {
        let parsed = ResourceId::parse(id)?;
        if !parsed.is_kind(kind) || parsed.child.is_some() {
            return Err(Error::invalid_input(format!(
                "`{}` is not a {noun} id (expected type {kind}, found {}{})",
                id.escape_debug(),
                parsed.kind,
                parsed
                    .child
                    .as_ref()
                    .map(|(k, _)| format!("/{k}"))
                    .unwrap_or_default()
            )));
        }
        self.check_scope(id, &parsed)?;
        if !format::valid_name(&parsed.name) {
            return Err(Error::invalid_input(format!(
                "`{}` is not a valid {noun} name (letters, digits, `-`, `_`, `.`; 1 to 80 \
                 characters)",
                parsed.name.escape_debug()
            )));
        }
        Ok(parsed.name)
    }

    /// Checks that `parsed` (from `id`) is in this lab's subscription and group.
    pub fn check_scope(&self, id: &str, parsed: &ResourceId) -> Result<(), Error> {
        if !parsed
            .subscription
            .eq_ignore_ascii_case(&self.cloud.subscription_id)
        {
            return Err(Error::not_found(format!(
                "{id}: subscription {} is not this cloud's (it has {})",
                parsed.subscription, self.cloud.subscription_id
            )));
        }
        if !parsed
            .resource_group
            .eq_ignore_ascii_case(&self.cloud.resource_group)
        {
            return Err(Error::not_found(format!(
                "{id}: resource group {} does not exist in subscription {} (it has {})",
                parsed.resource_group, self.cloud.subscription_id, self.cloud.resource_group
            )));
        }
        Ok(())
    }
}

/// Path of VM `name`'s record inside the lab.
fn vm_rel(name: &str) -> String {
    format!("{VMS_DIR}/{}", format::vm_json(name))
}

/// Path of `file` in the disks directory.
pub fn disk_rel(file: &str) -> String {
    format!("{DISKS_DIR}/{file}")
}

/// Something that differs between two writers of the same file at once, so
/// their temporary files do not collide.
fn unique_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch.
/// The lab's lock file (see [`Lab::locked`]).
const LOCK_FILE: &str = ".lock";
/// A lock older than this was left by a killed caller.
const LOCK_STALE_MS: u64 = 30_000;
/// How long a call waits for the lock.
const LOCK_WAIT_MS: u64 = 20_000;

pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// An error's message, for wrapping it in another one.
pub fn describe(e: &Error) -> String {
    match e {
        Error::NotFound(m)
        | Error::Unsupported(m)
        | Error::InvalidInput(m)
        | Error::Conflict(m)
        | Error::Internal(m) => m.clone(),
        Error::PermissionDenied(p) => p.message.clone(),
        Error::Unavailable(u) => u.message.clone(),
    }
}
