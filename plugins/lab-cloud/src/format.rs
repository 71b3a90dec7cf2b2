//! The lab cloud's on-disk format: the records kept as JSON in the lab
//! directory, the names of its files, and the deterministic identities new
//! objects get.
//!
//! Plain serde types and pure functions, with no wasm-only code, so the host
//! (`homeward::lab::cloud`) writes labs with the same types the plugin reads.
//! The layout is described in the crate's documentation.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Version of the format; the plugin refuses a lab of another version.
pub const FORMAT_VERSION: u32 = 1;
/// The lab's fixed setup: subscription, principals, networks.
pub const CLOUD_FILE: &str = "cloud.json";
/// The counters new identities are drawn from.
pub const COUNTERS_FILE: &str = "counters.json";
/// One `<name>.json` per VM.
pub const VMS_DIR: &str = "vms";
/// Disks (`<name>.vhd` + `<name>.json`) and their snapshots
/// (`<disk>@<snapshot>.vhd` + `.json`).
pub const DISKS_DIR: &str = "disks";
/// `changed-ranges` compares snapshots in blocks of this many bytes.
pub const BLOCK_SIZE: u64 = 64 * 1024;
/// The `method` `changed-ranges` reports.
pub const CHANGE_METHOD: &str = "lab-block-compare";
/// What `connect` says the endpoint is.
pub const PRODUCT: &str = "Homeward lab cloud (Azure Resource Manager semantics)";
/// The Azure compute API version whose semantics the lab follows.
pub const API_VERSION: &str = "2024-07-01";
/// Azure's DNS and DHCP virtual address, reported as every NIC's DNS server.
pub const AZURE_DNS: &str = "168.63.129.16";

/// `cloud.json`: what exists before any VM does. Written by the host, only
/// read by the plugin (it holds the principals' secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CloudFile {
    /// [`FORMAT_VERSION`].
    pub format: u32,
    /// Subscription id (a UUID); `connect` reports it as the instance id.
    pub subscription_id: String,
    /// Entra tenant id (a UUID), for messages.
    pub tenant_id: String,
    /// The one resource group every lab resource lives in.
    pub resource_group: String,
    /// Azure region name, for the record (`westeurope`).
    pub location: String,
    /// Service principals that may sign in.
    pub principals: Vec<Principal>,
    /// Virtual networks with their subnets.
    pub virtual_networks: Vec<VirtualNetwork>,
}

impl CloudFile {
    /// The principal with `client_id`, if any.
    pub fn principal(&self, client_id: &str) -> Option<&Principal> {
        self.principals.iter().find(|p| p.client_id == client_id)
    }

    /// The virtual network named `name` (names compare case-insensitively, as in Azure).
    pub fn vnet(&self, name: &str) -> Option<&VirtualNetwork> {
        self.virtual_networks
            .iter()
            .find(|v| v.name.eq_ignore_ascii_case(name))
    }

    /// ARM id of a resource of `kind` (`Microsoft.Compute/disks`...) named `name`.
    pub fn resource_id(&self, kind: &str, name: &str) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/{kind}/{name}",
            self.subscription_id, self.resource_group
        )
    }

    /// ARM id of the VM `name`.
    pub fn vm_id(&self, name: &str) -> String {
        self.resource_id(VM_TYPE, name)
    }

    /// ARM id of the managed disk `name`.
    pub fn disk_id(&self, name: &str) -> String {
        self.resource_id(DISK_TYPE, name)
    }

    /// ARM id of the disk snapshot `name`.
    pub fn snapshot_id(&self, name: &str) -> String {
        self.resource_id(SNAPSHOT_TYPE, name)
    }

    /// ARM id of the virtual network `vnet`.
    pub fn vnet_id(&self, vnet: &str) -> String {
        self.resource_id(VNET_TYPE, vnet)
    }

    /// ARM id of subnet `subnet` of virtual network `vnet`.
    pub fn subnet_id(&self, vnet: &str, subnet: &str) -> String {
        format!("{}/subnets/{subnet}", self.vnet_id(vnet))
    }

    /// ARM id of the network interface `name`.
    pub fn nic_id(&self, name: &str) -> String {
        self.resource_id(NIC_TYPE, name)
    }
}

/// ARM resource type of VMs.
pub const VM_TYPE: &str = "Microsoft.Compute/virtualMachines";
/// ARM resource type of managed disks.
pub const DISK_TYPE: &str = "Microsoft.Compute/disks";
/// ARM resource type of disk snapshots.
pub const SNAPSHOT_TYPE: &str = "Microsoft.Compute/snapshots";
/// ARM resource type of virtual networks.
pub const VNET_TYPE: &str = "Microsoft.Network/virtualNetworks";
/// ARM resource type of network interfaces.
pub const NIC_TYPE: &str = "Microsoft.Network/networkInterfaces";

/// A service principal: an application that signs in with a client secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Principal {
    /// Application (client) id; also its display name in the lab.
    pub client_id: String,
    /// The client secret, in the clear: this is a lab on the operator's own
    /// disk, and the file is only ever written by the host (mode 0600).
    pub secret: String,
    /// Its role on the resource group.
    pub role: Role,
}

// By hand, so that a principal printed by mistake never shows its secret.
impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("client_id", &self.client_id)
            .field("secret", &"<redacted>")
            .field("role", &self.role)
            .finish()
    }
}

/// The Azure built-in roles the lab knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// May read and change everything in the resource group.
    Contributor,
    /// May read (`*/read`) and nothing else.
    Reader,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Contributor => "Contributor",
            Role::Reader => "Reader",
        })
    }
}

/// A virtual network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct VirtualNetwork {
    /// Name.
    pub name: String,
    /// Address space (CIDR list).
    pub address_prefixes: Vec<String>,
    /// Subnets, each inside the address space.
    pub subnets: Vec<Subnet>,
}

impl VirtualNetwork {
    /// The subnet named `name` (case-insensitive, as in Azure).
    pub fn subnet(&self, name: &str) -> Option<&Subnet> {
        self.subnets
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
    }
}

/// A subnet of a virtual network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Subnet {
    /// Name.
    pub name: String,
    /// Its one IPv4 prefix, `10.20.1.0/24`.
    pub address_prefix: String,
}

/// `counters.json`: the next number of each kind of object. Identities come
/// from these, never from a random source, so a lab built the same way gives
/// the same ids, MACs and private IPs (and conformance fuel counts repeat).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Counters {
    /// Next VM number (its `vmId` and first NIC's MAC derive from it).
    pub next_vm: u64,
    /// Next NIC number.
    pub next_nic: u64,
    /// Next snapshot number.
    pub next_snapshot: u64,
}

impl Counters {
    /// Takes the next VM number.
    pub fn take_vm(&mut self) -> u64 {
        take(&mut self.next_vm)
    }

    /// Takes the next NIC number.
    pub fn take_nic(&mut self) -> u64 {
        take(&mut self.next_nic)
    }

    /// Takes the next snapshot number.
    pub fn take_snapshot(&mut self) -> u64 {
        take(&mut self.next_snapshot)
    }
}

fn take(counter: &mut u64) -> u64 {
    *counter = counter.saturating_add(1);
    *counter
}

/// `vms/<name>.json`: one VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct VmFile {
    /// ARM id.
    pub id: String,
    /// Azure's `vmId`: a UUID that stays with the VM.
    pub vm_id: String,
    /// Name (the file's stem).
    pub name: String,
    /// Size (`Standard_D2s_v5`).
    pub size: String,
    /// Power state.
    pub power: LabPower,
    /// OS type as Azure reports it (`Linux`, `Windows`).
    pub os_type: String,
    /// Managed disk ids, the OS disk first, then data disks by LUN.
    pub disks: Vec<String>,
    /// Network interfaces, the primary first.
    pub nics: Vec<NicFile>,
    /// When it was created (Unix milliseconds).
    pub created_at: u64,
}

/// Power state as Azure distinguishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LabPower {
    /// `PowerState/running`.
    Running,
    /// `PowerState/stopped`: off, compute still allocated (and billed).
    Stopped,
    /// `PowerState/deallocated`: off, compute released.
    Deallocated,
}

impl LabPower {
    /// Azure's status code for it (`PowerState/running`).
    pub fn azure_code(self) -> &'static str {
        match self {
            LabPower::Running => "PowerState/running",
            LabPower::Stopped => "PowerState/stopped",
            LabPower::Deallocated => "PowerState/deallocated",
        }
    }
}

/// How a NIC's private IP was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Allocation {
    /// Given when the VM was created.
    Static,
    /// The lowest free address of the subnet.
    Dynamic,
}

/// One network interface of a VM (its own resource in Azure, kept inside the
/// VM's file in the lab: it is created and deleted with the VM).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct NicFile {
    /// ARM id of the NIC.
    pub id: String,
    /// MAC address, lower case, colon separated.
    pub mac: String,
    /// ARM id of the subnet.
    pub subnet_id: String,
    /// Private IPv4 address.
    pub private_ip: String,
    /// How that address was chosen.
    pub allocation: Allocation,
}

/// `disks/<name>.json`: a managed disk (its bytes are `disks/<name>.vhd`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DiskFile {
    /// ARM id.
    pub id: String,
    /// Name (the file's stem).
    pub name: String,
    /// Size in bytes as the guest sees it (the VHD's data area).
    pub capacity_bytes: u64,
    /// Logical sector size.
    pub sector_size: u32,
    /// When it was created (Unix milliseconds).
    pub created_at: u64,
}

/// `disks/<disk>@<snapshot>.json`: a snapshot of a disk (its bytes, a frozen
/// copy of the disk's VHD, are `disks/<disk>@<snapshot>.vhd`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SnapshotFile {
    /// ARM id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Its number from `counters.json`: snapshots of a disk are ordered by it.
    pub number: u64,
    /// ARM id of the disk it was taken of.
    pub disk_id: String,
    /// When it was taken (Unix milliseconds).
    pub created_at: u64,
    /// The newest snapshot of the same disk when it was taken, if any.
    pub parent_id: Option<String>,
    /// Taken by an app-consistent restore point (files written before the
    /// field existed read as crash-consistent).
    #[serde(default)]
    pub quiesced: bool,
}

/// Azure's `vmId` for VM number `n`: a version-4-shaped UUID, deterministic.
pub fn vm_uuid(n: u64) -> String {
    format!("1ab0c10d-0000-4000-8000-{:012x}", n & 0xffff_ffff_ffff)
}

/// The MAC address of NIC number `n`, in Azure's `00:0d:3a` range.
pub fn nic_mac(n: u64) -> String {
    let b = n.to_be_bytes();
    format!("00:0d:3a:{:02x}:{:02x}:{:02x}", b[5], b[6], b[7])
}

/// The name of NIC number `n` of VM `vm`.
pub fn nic_name(vm: &str, n: u64) -> String {
    format!("{vm}-nic{n}")
}

/// The name of snapshot number `n` of disk `disk`.
pub fn snapshot_name(disk: &str, n: u64) -> String {
    format!("{disk}-snap{n}")
}

/// Whether `name` is a resource name the lab accepts: 1 to 80 characters of
/// letters, digits, `-`, `_` and `.`, starting with a letter or digit and not
/// ending with `.` (Azure's common rule). It also keeps every name a plain
/// file name inside the lab.
pub fn valid_name(name: &str) -> bool {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    ok_chars
        && (1..=80).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && !name.ends_with('.')
}

/// File name of disk `disk`'s VHD.
pub fn disk_vhd(disk: &str) -> String {
    format!("{disk}.vhd")
}

/// File name of disk `disk`'s metadata.
pub fn disk_json(disk: &str) -> String {
    format!("{disk}.json")
}

/// File name of snapshot `snapshot` of disk `disk`.
pub fn snapshot_vhd(disk: &str, snapshot: &str) -> String {
    format!("{disk}@{snapshot}.vhd")
}

/// File name of snapshot `snapshot`'s metadata.
pub fn snapshot_json(disk: &str, snapshot: &str) -> String {
    format!("{disk}@{snapshot}.json")
}

/// File name of VM `vm`'s record.
pub fn vm_json(vm: &str) -> String {
    format!("{vm}.json")
}
