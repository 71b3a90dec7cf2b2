//! The on-disk format of a lab hypervisor site: plain serde types and the
//! directory layout, with no wasm-only code, so the host (`homeward::lab`)
//! writes and reads exactly what the plugin does.
//!
//! ```text
//! <root>/site.json                          Site: endpoint, licence, accounts, inventory, counters
//! <root>/datastores/<ds-name>/               one directory per datastore
//! <root>/datastores/<ds-name>/<vm>/vm.json   VmConfig of one VM
//! <root>/datastores/<ds-name>/<vm>/<vm>.vmdk, <vm>-flat.vmdk   its first disk (VMDK monolithicFlat)
//! <root>/datastores/<ds-name>/<vm>/<vm>_1.vmdk, <vm>_1-flat.vmdk   the next ones
//! <root>/datastores/<ds-name>/<vm>/snapshots/<snapshot-id>/   frozen copies of the disks
//! ```

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// File name of the site description at the lab's root.
pub const SITE_FILE: &str = "site.json";
/// Directory (under the root) holding one directory per datastore.
pub const DATASTORES_DIR: &str = "datastores";
/// File name of a VM's configuration inside its directory.
pub const VM_FILE: &str = "vm.json";
/// Directory (inside a VM's directory) holding one directory of disk copies per snapshot.
pub const SNAPSHOTS_DIR: &str = "snapshots";
/// The controller every lab disk hangs off.
pub const CONTROLLER: &str = "scsi0";
/// The SCSI unit a controller reserves for itself (vSphere never puts a disk there).
pub const RESERVED_UNIT: u32 = 7;
/// Units per SCSI controller.
pub const UNITS_PER_CONTROLLER: u32 = 16;
/// Logical sector size of every lab disk.
pub const SECTOR_SIZE: u32 = 512;
/// The `extraConfig` key a master target needs set to `TRUE` so guests see disk UUIDs.
pub const ENABLE_UUID_KEY: &str = "disk.EnableUUID";

/// Everything in `site.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Site {
    /// What `connect` reports.
    pub endpoint: Endpoint,
    /// The site's licence.
    pub licence: Licence,
    /// Who may log in, and with which privileges.
    pub accounts: Vec<Account>,
    /// Datacenter names.
    pub datacenters: Vec<String>,
    /// Hosts; a host's `datastores` is the one record of which host mounts which datastore.
    pub hosts: Vec<Host>,
    /// Datastores.
    pub datastores: Vec<Datastore>,
    /// Networks (port groups).
    pub networks: Vec<Network>,
    /// Counters the next ids are drawn from (ids are deterministic, never random).
    pub counters: Counters,
}

/// The endpoint's self-description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Endpoint {
    /// Product name and version (`Homeward Lab Hypervisor 0.1`).
    pub product: String,
    /// API version (`8.0.2.0`).
    pub api_version: String,
    /// Stable identity of this lab.
    pub instance_id: String,
}

/// The site's licence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Licence {
    /// Product name.
    pub product: String,
    /// Edition key (`esxEnterprisePlus`, `esxBasic`).
    pub edition: String,
    /// A free licence: its API refuses every change (vSphere's `RestrictedVersion`).
    pub free: bool,
    /// Expiry in Unix milliseconds, if it expires.
    #[serde(default)]
    pub expires_at: Option<u64>,
}

/// One account. The lab keeps passwords in clear text: it is a lab.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Account {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
    /// vSphere privilege names held on the whole inventory.
    pub privileges: Vec<String>,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password never reaches a log through Debug.
        f.debug_struct("Account")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("privileges", &self.privileges)
            .finish()
    }
}

/// A hypervisor host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Host {
    /// Identity (`host-1`).
    pub id: String,
    /// Display name (`esx-01`).
    pub name: String,
    /// Product and version (`VMware ESXi 8.0.2`).
    pub version: String,
    /// Cluster identity, if clustered.
    #[serde(default)]
    pub cluster: Option<String>,
    /// Whether it is connected (VMs cannot be created on a disconnected host).
    pub connected: bool,
    /// Ids of the datastores it mounts.
    pub datastores: Vec<String>,
    /// Ids of the networks it can attach VMs to.
    pub networks: Vec<String>,
}

/// A datastore; its files are `datastores/<name>/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Datastore {
    /// Identity (`datastore-1`).
    pub id: String,
    /// Display name, also its directory name (`ds1`).
    pub name: String,
    /// Type (`VMFS`, `NFS`).
    pub kind: String,
    /// Capacity in bytes; free bytes are this minus the size of its files.
    pub capacity_bytes: u64,
}

/// A network (standard port group).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Network {
    /// Identity (`network-1`).
    pub id: String,
    /// Display name (`VM Network`).
    pub name: String,
    /// Type (`Network`, `DistributedVirtualPortgroup`).
    pub kind: String,
}

/// Counters the next ids come from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Counters {
    /// Last VM number handed out (`vm-N`, BIOS UUID).
    pub vm: u64,
    /// Last disk number handed out (disk UUID).
    pub disk: u64,
    /// Last NIC number handed out (MAC address).
    pub nic: u64,
    /// Last snapshot number handed out (`snapshot-N`).
    pub snapshot: u64,
}

impl Counters {
    /// The next VM id and BIOS UUID.
    pub fn next_vm(&mut self) -> (String, String) {
        self.vm += 1;
        (
            format!("vm-{}", self.vm),
            format!("564d0000-0000-0000-0000-{:012x}", self.vm),
        )
    }

    /// The next disk UUID (VMware's `6000C29` prefix).
    pub fn next_disk_uuid(&mut self) -> String {
        self.disk += 1;
        format!("6000c290-0000-0000-0000-{:012x}", self.disk)
    }

    /// The next MAC address, in VMware's static range `00:50:56:00-3f`.
    pub fn next_mac(&mut self) -> String {
        self.nic += 1;
        let n = self.nic & 0x3f_ffff;
        format!(
            "00:50:56:{:02x}:{:02x}:{:02x}",
            (n >> 16) & 0x3f,
            (n >> 8) & 0xff,
            n & 0xff
        )
    }

    /// The next snapshot id.
    pub fn next_snapshot(&mut self) -> String {
        self.snapshot += 1;
        format!("snapshot-{}", self.snapshot)
    }
}

/// Power state as `vm.json` records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Power {
    /// Running.
    PoweredOn,
    /// Stopped.
    PoweredOff,
    /// Suspended.
    Suspended,
}

/// Everything in a VM's `vm.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct VmConfig {
    /// Identity (`vm-N`).
    pub id: String,
    /// BIOS UUID.
    pub uuid: String,
    /// Display name, also its directory name.
    pub name: String,
    /// Power state.
    pub power: Power,
    /// Guest OS identifier (`otherLinux64Guest`).
    pub guest_os: String,
    /// Id of the host it is registered on.
    pub host: String,
    /// Virtual CPUs.
    pub cpus: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Whether guest tools are installed; they run while the VM is powered on.
    pub tools_installed: bool,
    /// `extraConfig` entries (`disk.EnableUUID = TRUE`).
    #[serde(default)]
    pub extra_config: BTreeMap<String, String>,
    /// Attached disks.
    #[serde(default)]
    pub disks: Vec<DiskConfig>,
    /// NICs.
    #[serde(default)]
    pub nics: Vec<NicConfig>,
    /// Snapshots, flat with parent ids, oldest first.
    #[serde(default)]
    pub snapshots: Vec<SnapshotConfig>,
    /// The snapshot the VM runs on (the parent of the next one).
    #[serde(default)]
    pub current_snapshot: Option<String>,
}

impl VmConfig {
    /// Whether guest tools are running now.
    pub fn tools_running(&self) -> bool {
        self.tools_installed && self.power == Power::PoweredOn
    }
}

/// One attached disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DiskConfig {
    /// Disk UUID, also the disk's id in the API.
    pub uuid: String,
    /// Display name (`Hard disk 1`).
    pub label: String,
    /// Controller (`scsi0`).
    pub controller: String,
    /// Unit on the controller (never 7).
    pub unit: u32,
    /// Descriptor file name inside the VM's directory (`web01.vmdk`).
    pub file: String,
    /// Capacity in bytes (a multiple of 512).
    pub capacity_bytes: u64,
    /// Thin provisioned (the flat file is sparse).
    pub thin: bool,
}

/// One NIC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct NicConfig {
    /// MAC address, lower case.
    pub mac: String,
    /// Id of the network it is attached to.
    pub network: String,
}

/// One snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SnapshotConfig {
    /// Identity (`snapshot-N`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Description.
    pub description: String,
    /// When it was taken, Unix milliseconds.
    pub created_at: u64,
    /// Parent snapshot.
    #[serde(default)]
    pub parent: Option<String>,
    /// Whether the guest was quiesced.
    pub quiesced: bool,
}

/// Paths inside a lab directory.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The layout of the lab at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Layout { root: root.into() }
    }

    /// The lab's root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `site.json`.
    pub fn site(&self) -> PathBuf {
        self.root.join(SITE_FILE)
    }

    /// The directory of datastore `name`.
    pub fn datastore(&self, name: &str) -> PathBuf {
        self.root.join(DATASTORES_DIR).join(name)
    }

    /// The directory of VM `vm_name` on datastore `ds_name`.
    pub fn vm_dir(&self, ds_name: &str, vm_name: &str) -> PathBuf {
        self.datastore(ds_name).join(vm_name)
    }
}

/// The flat extent's file name for a descriptor file name (`web01.vmdk` → `web01-flat.vmdk`).
pub fn flat_name(descriptor: &str) -> String {
    let stem = descriptor.strip_suffix(".vmdk").unwrap_or(descriptor);
    format!("{stem}-flat.vmdk")
}

/// The descriptor file name of a VM's `index`th disk file (`web01.vmdk`, `web01_1.vmdk`...).
pub fn disk_file_name(vm_name: &str, index: usize) -> String {
    if index == 0 {
        format!("{vm_name}.vmdk")
    } else {
        format!("{vm_name}_{index}.vmdk")
    }
}
