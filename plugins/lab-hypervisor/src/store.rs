//! Reading and changing a lab site on disk: `site.json`, the VMs under the
//! datastores, their disk files. Plain `std::fs` with no wasm-only code, so
//! the plugin (through its granted directory) and the host (`homeward::lab`)
//! share one implementation. Nothing here checks privileges or the licence;
//! that is the plugin's job (`ops`).
//!
//! Every JSON file is written atomically (a temporary file, synced, then
//! renamed over the old one), so a killed process never leaves a torn file.

use crate::format::{
    self, CONTROLLER, DiskConfig, Layout, NicConfig, Power, RESERVED_UNIT, SNAPSHOTS_DIR, Site,
    UNITS_PER_CONTROLLER, VM_FILE, VmConfig,
};
use crate::vmdk;
pub use homeward_sdk::Error;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Longest VM name vSphere accepts.
const MAX_NAME_LEN: usize = 80;

/// A lab site, read from its directory.
#[derive(Debug, Clone)]
pub struct Lab {
    layout: Layout,
    /// The contents of `site.json`.
    pub site: Site,
}

/// Where [`Lab::vm`] finds a VM by id without listing every datastore.
const INDEX_DIR: &str = "index";

/// One VM and where its files are.
#[derive(Debug, Clone)]
pub struct VmEntry {
    /// Its `vm.json`.
    pub config: VmConfig,
    /// Name of the datastore holding its directory.
    pub datastore: String,
    /// Its directory.
    pub dir: PathBuf,
}

impl VmEntry {
    /// `[ds1] web01/<file>`: a file of this VM as a vSphere datastore path.
    pub fn datastore_path(&self, file: &str) -> String {
        format!("[{}] {}", self.datastore, self.relative(file))
    }

    /// `web01/<file>`: a file of this VM relative to its datastore.
    pub fn relative(&self, file: &str) -> String {
        format!("{}/{file}", self.config.name)
    }
}

/// What a new VM is made of.
#[derive(Debug, Clone)]
pub struct NewVm {
    /// Display name (also its directory name).
    pub name: String,
    /// Host id.
    pub host_id: String,
    /// Datastore id.
    pub datastore_id: String,
    /// Guest OS identifier.
    pub guest_os: String,
    /// Virtual CPUs.
    pub cpus: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Thin disks to create, in bytes.
    pub disk_sizes: Vec<u64>,
    /// Network ids, one NIC each.
    pub network_ids: Vec<String>,
    /// Initial power state.
    pub power: Power,
    /// Whether guest tools are installed.
    pub tools_installed: bool,
    /// `extraConfig`.
    pub extra_config: BTreeMap<String, String>,
}

impl Lab {
    /// Reads the lab at `root`. A missing directory or `site.json` is
    /// `unavailable`, naming the grant to add.
    pub fn open(root: &Path) -> Result<Lab, Error> {
        let layout = Layout::new(root);
        if !root.is_dir() {
            return Err(Error::unavailable(
                format!(
                    "the lab directory {} is not there: create a lab site (`homeward demo` makes one) \
                     and grant its directory to the plugin at {} read-write \
                     (`grants.dirs = [{{ host = \"...\", guest = \"{}\", write = true }}]`)",
                    root.display(),
                    root.display(),
                    root.display()
                ),
                None,
            ));
        }
        let site_path = layout.site();
        let text = match std::fs::read_to_string(&site_path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::unavailable(
                    format!(
                        "{} is missing, so {} is not a lab site: grant the directory of a lab site \
                         (the one holding site.json) at {}",
                        site_path.display(),
                        root.display(),
                        root.display()
                    ),
                    None,
                ));
            }
            Err(e) => return Err(io_error("read", &site_path, &e)),
        };
        let site = serde_json::from_str(&text).map_err(|e| {
            Error::internal(format!(
                "{} is not a valid lab site description: {e}",
                site_path.display()
            ))
        })?;
        Ok(Lab { layout, site })
    }

    /// Writes a new lab at `root` (which may exist but must hold no
    /// `site.json`): `site.json` and one directory per datastore.
    pub fn create(root: &Path, site: Site) -> Result<Lab, Error> {
        let layout = Layout::new(root);
        if layout.site().exists() {
            return Err(Error::conflict(format!(
                "{} already holds a lab site",
                root.display()
            )));
        }
        for ds in &site.datastores {
            let dir = layout.datastore(&ds.name);
            std::fs::create_dir_all(&dir).map_err(|e| io_error("create", &dir, &e))?;
        }
        let lab = Lab { layout, site };
        lab.save_site()?;
        Ok(lab)
    }

    /// Its layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Writes `site.json` atomically.
    pub fn save_site(&self) -> Result<(), Error> {
        write_json(&self.layout.site(), &self.site)
    }

    /// A host by id.
    pub fn host(&self, id: &str) -> Result<&format::Host, Error> {
        self.site.hosts.iter().find(|h| h.id == id).ok_or_else(|| {
            Error::not_found(format!(
                "host {id} does not exist in the lab (discover lists the hosts)"
            ))
        })
    }

    /// A datastore by id.
    pub fn datastore(&self, id: &str) -> Result<&format::Datastore, Error> {
        self.site
            .datastores
            .iter()
            .find(|d| d.id == id)
            .ok_or_else(|| {
                Error::not_found(format!(
                    "datastore {id} does not exist in the lab (discover lists the datastores)"
                ))
            })
    }

    /// A network by id.
    pub fn network(&self, id: &str) -> Result<&format::Network, Error> {
        self.site
            .networks
            .iter()
            .find(|n| n.id == id)
            .ok_or_else(|| {
                Error::not_found(format!(
                    "network {id} does not exist in the lab (discover lists the networks)"
                ))
            })
    }

    /// Ids of the hosts that mount datastore `ds_id`.
    pub fn datastore_hosts(&self, ds_id: &str) -> Vec<String> {
        self.site
            .hosts
            .iter()
            .filter(|h| h.datastores.iter().any(|d| d == ds_id))
            .map(|h| h.id.clone())
            .collect()
    }

    /// Whether a datastore's directory is there.
    pub fn datastore_accessible(&self, ds: &format::Datastore) -> bool {
        self.layout.datastore(&ds.name).is_dir()
    }

    /// Bytes of a datastore in use: the size of every file in its directory.
    /// Thin disks count at their provisioned size: the sandbox cannot see
    /// allocated blocks, and this way the figure is the same on every host
    /// file system.
    pub fn datastore_used(&self, ds: &format::Datastore) -> Result<u64, Error> {
        tree_size(&self.layout.datastore(&ds.name))
    }

    /// Free bytes of a datastore.
    pub fn datastore_free(&self, ds: &format::Datastore) -> Result<u64, Error> {
        Ok(ds.capacity_bytes.saturating_sub(self.datastore_used(ds)?))
    }

    /// Every VM, ordered by id number.
    pub fn vms(&self) -> Result<Vec<VmEntry>, Error> {
        let mut out = Vec::new();
        for ds in &self.site.datastores {
            let ds_dir = self.layout.datastore(&ds.name);
            let entries = match std::fs::read_dir(&ds_dir) {
                Ok(entries) => entries,
                // An inaccessible datastore shows no VMs (discover marks it).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error("list", &ds_dir, &e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| io_error("list", &ds_dir, &e))?;
                let dir = entry.path();
                let config_path = dir.join(VM_FILE);
                if !config_path.is_file() {
                    continue;
                }
                let config = read_vm(&config_path)?;
                out.push(VmEntry {
                    config,
                    datastore: ds.name.clone(),
                    dir,
                });
            }
        }
        out.sort_by_key(|v| (id_number(&v.config.id), v.config.id.clone()));
        Ok(out)
    }

    /// One VM by id; `not-found` names the id.
    pub fn vm(&self, id: &str) -> Result<VmEntry, Error> {
        if let Some(entry) = self.indexed_vm(id) {
            return Ok(entry);
        }
        self.vms()?
            .into_iter()
            .find(|v| v.config.id == id)
            .ok_or_else(|| Error::not_found(format!("VM {id} does not exist in the lab")))
    }

    /// The VM `id` through its index entry (`index/<id>`: its datastore and
    /// directory), which `create_vm` writes: a lookup reads one `vm.json`
    /// instead of all of them (a lab of 1000 VMs took 0.5 s a lookup). An
    /// entry that is missing or no longer matches falls back to the scan.
    fn indexed_vm(&self, id: &str) -> Option<VmEntry> {
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return None;
        }
        let text = std::fs::read_to_string(self.layout.root().join(INDEX_DIR).join(id)).ok()?;
        let (datastore, dir_name) = text.trim().split_once('/')?;
        if !self.site.datastores.iter().any(|d| d.name == datastore) || dir_name.contains('/') {
            return None;
        }
        let dir = self.layout.datastore(datastore).join(dir_name);
        let config = read_vm(&dir.join(VM_FILE)).ok()?;
        (config.id == id).then(|| VmEntry {
            config,
            datastore: datastore.to_string(),
            dir,
        })
    }

    /// Records where VM `entry` is, for [`Lab::vm`]. Best effort: without
    /// it a lookup scans.
    fn index_vm(&self, entry: &VmEntry) {
        let Some(dir_name) = entry.dir.file_name().and_then(|n| n.to_str()) else {
            return;
        };
        let index = self.layout.root().join(INDEX_DIR);
        let _ = std::fs::create_dir_all(&index).and_then(|()| {
            std::fs::write(
                index.join(&entry.config.id),
                format!("{}/{dir_name}", entry.datastore),
            )
        });
    }

    /// Writes a VM's `vm.json` atomically.
    pub fn save_vm(&self, vm: &VmEntry) -> Result<(), Error> {
        write_json(&vm.dir.join(VM_FILE), &vm.config)
    }

    /// Creates a VM: its directory, thin disks and `vm.json`. Checks the
    /// request against the inventory (`invalid-input`, `not-found`,
    /// `conflict`), never privileges or the licence.
    pub fn create_vm(&mut self, spec: NewVm) -> Result<VmEntry, Error> {
        check_name(&spec.name)?;
        if spec.cpus == 0 {
            return Err(Error::invalid_input(format!(
                "VM {} needs at least one virtual CPU",
                spec.name
            )));
        }
        if spec.memory_mib < 4 || !spec.memory_mib.is_multiple_of(4) {
            return Err(Error::invalid_input(format!(
                "VM {} asks for {} MiB of memory: it must be a multiple of 4 MiB, at least 4",
                spec.name, spec.memory_mib
            )));
        }
        for size in &spec.disk_sizes {
            check_disk_size(*size)?;
        }
        let host = self.host(&spec.host_id)?.clone();
        let ds = self.datastore(&spec.datastore_id)?.clone();
        for net in &spec.network_ids {
            self.network(net)?;
        }
        if !host.connected {
            return Err(Error::conflict(format!(
                "host {} ({}) is not connected: reconnect it or pick another host",
                host.name, host.id
            )));
        }
        if !host.datastores.contains(&ds.id) {
            return Err(Error::invalid_input(format!(
                "datastore {} ({}) is not mounted by host {} ({}): pick a datastore the host mounts",
                ds.name, ds.id, host.name, host.id
            )));
        }
        if let Some(net) = spec.network_ids.iter().find(|n| !host.networks.contains(n)) {
            return Err(Error::invalid_input(format!(
                "network {net} is not available on host {} ({}): pick a network the host has",
                host.name, host.id
            )));
        }
        if let Some(other) = self.vms()?.iter().find(|v| v.config.name == spec.name) {
            return Err(Error::conflict(format!(
                "the name {} is taken by VM {}: pick another name or delete that VM",
                spec.name, other.config.id
            )));
        }
        let dir = self.layout.vm_dir(&ds.name, &spec.name);
        if dir.exists() {
            return Err(Error::conflict(format!(
                "[{}] {} already exists on the datastore (left over from an earlier VM?): \
                 remove it or pick another name",
                ds.name, spec.name
            )));
        }
        let needed: u64 = spec.disk_sizes.iter().sum();
        let free = self.datastore_free(&ds)?;
        if needed > free {
            return Err(Error::conflict(format!(
                "datastore {} has {free} bytes free, but VM {} needs {needed}: free space or pick another datastore",
                ds.name, spec.name
            )));
        }

        // Take every id first and record the counters, so a crash below can
        // never hand out the same id twice.
        let (id, uuid) = self.site.counters.next_vm();
        let disk_uuids: Vec<(String, u64)> = spec
            .disk_sizes
            .iter()
            .map(|_| {
                let uuid = self.site.counters.next_disk_uuid();
                (uuid, self.site.counters.disk)
            })
            .collect();
        let nics: Vec<NicConfig> = spec
            .network_ids
            .iter()
            .map(|net| NicConfig {
                mac: self.site.counters.next_mac(),
                network: net.clone(),
            })
            .collect();
        self.save_site()?;

        std::fs::create_dir(&dir).map_err(|e| io_error("create", &dir, &e))?;
        let mut disks = Vec::new();
        for (index, (size, (disk_uuid, seed))) in spec.disk_sizes.iter().zip(disk_uuids).enumerate()
        {
            let file = format::disk_file_name(&spec.name, index);
            if let Err(e) = vmdk::create(&dir, &file, *size, &disk_uuid, seed) {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(io_error("create", &dir.join(&file), &e));
            }
            disks.push(DiskConfig {
                uuid: disk_uuid,
                label: format!("Hard disk {}", index + 1),
                controller: CONTROLLER.to_string(),
                unit: unit_for_index(index),
                file,
                capacity_bytes: *size,
                thin: true,
            });
        }
        let entry = VmEntry {
            config: VmConfig {
                id,
                uuid,
                name: spec.name,
                power: spec.power,
                guest_os: spec.guest_os,
                host: host.id,
                cpus: spec.cpus,
                memory_mib: spec.memory_mib,
                tools_installed: spec.tools_installed,
                extra_config: spec.extra_config,
                disks,
                nics,
                snapshots: Vec::new(),
                current_snapshot: None,
            },
            datastore: ds.name,
            dir,
        };
        if let Err(e) = self.save_vm(&entry) {
            let _ = std::fs::remove_dir_all(&entry.dir);
            return Err(e);
        }
        self.index_vm(&entry);
        Ok(entry)
    }

    /// Creates a thin disk of `capacity` bytes in the VM's directory and
    /// attaches it at the first free unit of `scsi0`.
    pub fn add_disk(&mut self, vm: &mut VmEntry, capacity: u64) -> Result<DiskConfig, Error> {
        check_disk_size(capacity)?;
        let unit = (0..UNITS_PER_CONTROLLER)
            .filter(|u| *u != RESERVED_UNIT)
            .find(|u| !vm.config.disks.iter().any(|d| d.unit == *u))
            .ok_or_else(|| {
                Error::conflict(format!(
                    "every unit of {CONTROLLER} of VM {} is taken: detach a disk first",
                    vm.config.id
                ))
            })?;
        let ds = self
            .site
            .datastores
            .iter()
            .find(|d| d.name == vm.datastore)
            .cloned()
            .ok_or_else(|| {
                Error::internal(format!(
                    "VM {} lives on datastore {} which site.json does not list",
                    vm.config.id, vm.datastore
                ))
            })?;
        let free = self.datastore_free(&ds)?;
        if capacity > free {
            return Err(Error::conflict(format!(
                "datastore {} has {free} bytes free, but the new disk needs {capacity}: \
                 free space or move the VM",
                ds.name
            )));
        }
        // A detached disk keeps its files, so skip names already on disk.
        let file = (0..)
            .map(|i| format::disk_file_name(&vm.config.name, i))
            .find(|f| !vm.dir.join(f).exists() && !vm.dir.join(format::flat_name(f)).exists())
            .unwrap_or_default();
        let label = (1..)
            .map(|n| format!("Hard disk {n}"))
            .find(|l| !vm.config.disks.iter().any(|d| &d.label == l))
            .unwrap_or_default();
        let uuid = self.site.counters.next_disk_uuid();
        let seed = self.site.counters.disk;
        self.save_site()?;
        vmdk::create(&vm.dir, &file, capacity, &uuid, seed)
            .map_err(|e| io_error("create", &vm.dir.join(&file), &e))?;
        let disk = DiskConfig {
            uuid,
            label,
            controller: CONTROLLER.to_string(),
            unit,
            file,
            capacity_bytes: capacity,
            thin: true,
        };
        vm.config.disks.push(disk.clone());
        vm.config.disks.sort_by_key(|d| d.unit);
        self.save_vm(vm)?;
        Ok(disk)
    }

    /// Removes a VM's directory with every file in it.
    pub fn delete_vm_files(&self, vm: &VmEntry) -> Result<(), Error> {
        let _ = std::fs::remove_file(self.layout.root().join(INDEX_DIR).join(&vm.config.id));
        std::fs::remove_dir_all(&vm.dir).map_err(|e| io_error("delete", &vm.dir, &e))
    }

    /// Freezes a VM's disks for snapshot `snapshot_id`: copies every disk
    /// (descriptor and flat extent) into `snapshots/<id>/`.
    pub fn freeze_disks(&self, vm: &VmEntry, snapshot_id: &str) -> Result<(), Error> {
        let dir = vm.dir.join(SNAPSHOTS_DIR).join(snapshot_id);
        std::fs::create_dir_all(&dir).map_err(|e| io_error("create", &dir, &e))?;
        let copied = (|| {
            for disk in &vm.config.disks {
                for file in [disk.file.clone(), format::flat_name(&disk.file)] {
                    let from = vm.dir.join(&file);
                    let to = dir.join(&file);
                    vmdk::copy_sparse(&from, &to).map_err(|e| io_error("copy", &from, &e))?;
                }
            }
            Ok(())
        })();
        if copied.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        copied
    }

    /// Drops the frozen copies of snapshot `snapshot_id` (consolidation).
    pub fn drop_frozen_disks(&self, vm: &VmEntry, snapshot_id: &str) -> Result<(), Error> {
        let dir = vm.dir.join(SNAPSHOTS_DIR).join(snapshot_id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("delete", &dir, &e)),
        }
    }
}

/// The unit of a new VM's `index`th disk: 0, 1, ... skipping the controller's unit 7.
fn unit_for_index(index: usize) -> u32 {
    let unit = index as u32;
    if unit >= RESERVED_UNIT {
        unit + 1
    } else {
        unit
    }
}

/// A VM name vSphere would take and that is a safe directory name.
fn check_name(name: &str) -> Result<(), Error> {
    let bad = name.is_empty()
        || name.len() > MAX_NAME_LEN
        || name == "."
        || name == ".."
        || name.starts_with('.')
        || name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control());
    if bad {
        return Err(Error::invalid_input(format!(
            "{name:?} is not a valid VM name: use 1 to {MAX_NAME_LEN} characters, \
             no slash, backslash or control character, not starting with a dot"
        )));
    }
    Ok(())
}

/// Disk sizes must be whole sectors.
fn check_disk_size(size: u64) -> Result<(), Error> {
    if size == 0 || !size.is_multiple_of(512) {
        return Err(Error::invalid_input(format!(
            "a disk of {size} bytes is not possible: the size must be a positive multiple of 512"
        )));
    }
    Ok(())
}

/// The number in `vm-12` (for ordering).
fn id_number(id: &str) -> u64 {
    id.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

fn read_vm(path: &Path) -> Result<VmConfig, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| io_error("read", path, &e))?;
    serde_json::from_str(&text).map_err(|e| {
        Error::internal(format!(
            "{} is not a valid lab VM configuration: {e}",
            path.display()
        ))
    })
}

/// Serialises `value` and replaces `path` atomically.
fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::internal(format!("cannot encode {}: {e}", path.display())))?;
    write_atomic(path, text.as_bytes())
}

/// The lab's lock file (see [`locked`]).
const LOCK_FILE: &str = ".lock";
/// A lock older than this was left by a caller killed while holding it.
const LOCK_STALE_MS: u64 = 30_000;
/// How long a call waits for the lock.
const LOCK_WAIT_MS: u64 = 20_000;

/// Runs `f` holding the lab at `root`'s lock. Changes that read `site.json`
/// and write it back (the id counters: new VMs, snapshots) must not overlap,
/// or two calls hand out one id and race on the same temporary file; several
/// plugin instances run at once. WASI has no `flock`, so the lock is a file
/// made with `create_new`; one older than [`LOCK_STALE_MS`] was left by a
/// killed caller and is taken over.
pub fn locked<T>(root: &Path, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    let path = root.join(LOCK_FILE);
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    };
    let started = now();
    loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut file) => {
                use std::io::Write;
                let _ = write!(file, "{}", now());
                let result = f();
                let _ = std::fs::remove_file(&path);
                return result;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let held_since = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| t.trim().parse::<u64>().ok());
                if held_since.is_some_and(|t| now().saturating_sub(t) > LOCK_STALE_MS) {
                    let _ = std::fs::remove_file(&path);
                    continue;
                }
                if now().saturating_sub(started) > LOCK_WAIT_MS {
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
            Err(e) => return Err(io_error("create", &path, &e)),
        }
    }
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, and renames it
/// over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_error("write", &tmp, &e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_error("replace", path, &e)
    })
}

/// The size of every file under `dir` (0 when it is missing).
fn tree_size(dir: &Path) -> Result<u64, Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_error("list", dir, &e)),
    };
    let mut total = 0u64;
    for entry in entries {
        let entry = entry.map_err(|e| io_error("list", dir, &e))?;
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).map_err(|e| io_error("stat", &path, &e))?;
        if meta.is_dir() {
            total = total.saturating_add(tree_size(&path)?);
        } else {
            total = total.saturating_add(meta.len());
        }
    }
    Ok(total)
}

/// An I/O failure on the lab's files, with the path and, for a refused
/// write, the grant that allows it.
pub fn io_error(action: &str, path: &Path, e: &std::io::Error) -> Error {
    let hint = match e.kind() {
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
            ": grant the lab directory read-write (`write = true`) in the plugin set"
        }
        _ => "",
    };
    Error::internal(format!("cannot {action} {}: {e}{hint}", path.display()))
}
