//! The lab hypervisor site from the host side: creating a lab directory with
//! a default inventory, seeding VMs with real VMDK-flat disks, changing the
//! licence, and the plugin settings that point the embedded `lab-hypervisor`
//! plugin at it.
//!
//! The format and the code that changes it are the plugin's own
//! (`homeward_lab_hypervisor::{format, store}`, compiled natively here), so
//! the host writes exactly what the plugin reads.

use crate::config::{DirGrant, Grants, Secret};
use crate::plugin::PluginSettings;
use homeward_lab_hypervisor::format::{
    Account, Counters, Datastore, ENABLE_UUID_KEY, Endpoint, Host, Layout, Licence, Network, Power,
    Site, VmConfig, flat_name,
};
use homeward_lab_hypervisor::privileges::HOMEWARD_REQUIRED;
use homeward_lab_hypervisor::store::{Lab, NewVm};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The lab's format and vSphere privilege names, for callers that seed or
/// check a lab (the demo, the conformance suite, tests).
pub use homeward_lab_hypervisor::{format, privileges};

/// Where the plugin sees the lab inside its sandbox (its default `root`).
pub const GUEST_ROOT: &str = "/lab";
/// The account with every privilege.
pub const ADMIN_USER: &str = "administrator";
/// Its password (a lab: the password is part of the fixture).
pub const ADMIN_PASSWORD: &str = "lab-admin";
/// The account with read privileges only.
pub const READONLY_USER: &str = "readonly";
/// Its password.
pub const READONLY_PASSWORD: &str = "lab-readonly";
/// The master target VM every new lab has (on `esx-01`, `ds1`).
pub const MASTER_TARGET_NAME: &str = "mt-01";
/// What the read-only account holds.
pub const READONLY_PRIVILEGES: &[&str] = &["System.Anonymous", "System.View", "System.Read"];
/// Privileges the administrator holds besides the ones Homeward needs.
const ADMIN_EXTRA_PRIVILEGES: &[&str] = &[
    "Datastore.Browse",
    "Datastore.FileManagement",
    "VirtualMachine.Config.AddExistingDisk",
    "VirtualMachine.Config.AdvancedConfig",
    "VirtualMachine.Interact.Suspend",
    "VirtualMachine.Interact.Reset",
];
/// Capacity of each default datastore.
pub const DATASTORE_CAPACITY: u64 = 64 << 30;
/// Size of the master target's system disk.
pub const MASTER_TARGET_DISK: u64 = 16 << 20;

/// Something about a lab site went wrong.
#[derive(Debug, thiserror::Error)]
#[error("lab site {root}: {message}")]
pub struct LabSiteError {
    /// The lab's directory.
    pub root: PathBuf,
    /// What went wrong.
    pub message: String,
}

/// A VM to seed into a lab.
#[derive(Debug, Clone)]
pub struct LabVm {
    /// Display name.
    pub name: String,
    /// Host name or id (`esx-01`).
    pub host: String,
    /// Datastore name or id (`ds1`).
    pub datastore: String,
    /// Thin disk sizes in bytes (multiples of 512).
    pub disk_sizes: Vec<u64>,
    /// Network names or ids, one NIC each.
    pub networks: Vec<String>,
    /// Power state.
    pub power: Power,
    /// Whether guest tools are installed (they run while powered on).
    pub tools_installed: bool,
    /// `extraConfig` entries.
    pub extra_config: BTreeMap<String, String>,
}

impl LabVm {
    /// A powered-off VM without tools on `esx-01`/`ds1` with one NIC on `VM Network`.
    pub fn new(name: &str, disk_sizes: &[u64]) -> Self {
        LabVm {
            name: name.to_string(),
            host: "esx-01".to_string(),
            datastore: "ds1".to_string(),
            disk_sizes: disk_sizes.to_vec(),
            networks: vec!["VM Network".to_string()],
            power: Power::PoweredOff,
            tools_installed: false,
            extra_config: BTreeMap::new(),
        }
    }
}

/// A VM seeded into a lab, and where its disks are on the host.
#[derive(Debug, Clone)]
pub struct AddedVm {
    /// Its id (`vm-N`).
    pub id: String,
    /// Its disks' ids (UUIDs), in unit order.
    pub disk_ids: Vec<String>,
    /// Its disks' descriptors (`.vmdk`).
    pub descriptors: Vec<PathBuf>,
    /// Its disks' flat extents (`-flat.vmdk`).
    pub flat_paths: Vec<PathBuf>,
}

/// A lab hypervisor site on disk.
#[derive(Debug, Clone)]
pub struct LabSite {
    root: PathBuf,
}

impl LabSite {
    /// Creates a lab in `dir` (created if needed; must hold no `site.json`)
    /// with the default inventory: datacenter `lab-dc`; hosts `esx-01`
    /// (mounts `ds1`, `ds2`) and `esx-02` (`ds2`, `ds3`), both on networks
    /// `VM Network` and `Replication`; accounts [`ADMIN_USER`] (every
    /// privilege) and [`READONLY_USER`] ([`READONLY_PRIVILEGES`]); an
    /// Enterprise Plus licence; and the master target VM [`MASTER_TARGET_NAME`]
    /// (`vm-1`, on `esx-01`/`ds1`, powered on with tools, `disk.EnableUUID =
    /// TRUE`).
    pub fn create(dir: &Path) -> Result<LabSite, LabSiteError> {
        let site_error = |message: String| LabSiteError {
            root: dir.to_path_buf(),
            message,
        };
        std::fs::create_dir_all(dir)
            .map_err(|e| site_error(format!("cannot create the directory: {e}")))?;
        let root = dir
            .canonicalize()
            .map_err(|e| site_error(format!("cannot resolve the directory: {e}")))?;
        let lab = LabSite { root };
        Lab::create(&lab.root, default_site(&lab.root)).map_err(|e| lab.error(&e))?;
        let mut master = LabVm::new(MASTER_TARGET_NAME, &[MASTER_TARGET_DISK]);
        master.power = Power::PoweredOn;
        master.tools_installed = true;
        master
            .extra_config
            .insert(ENABLE_UUID_KEY.to_string(), "TRUE".to_string());
        lab.add_vm(&master)?;
        Ok(lab)
    }

    /// A lab that exists in `dir`.
    pub fn open(dir: &Path) -> Result<LabSite, LabSiteError> {
        let lab = LabSite {
            root: dir.to_path_buf(),
        };
        Lab::open(dir).map_err(|e| lab.error(&e))?;
        Ok(lab)
    }

    /// The lab's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The contents of `site.json`.
    pub fn site(&self) -> Result<Site, LabSiteError> {
        Ok(self.lab()?.site)
    }

    /// Seeds a VM with real thin disks (as `create-vm` would, but in any power
    /// state and with tools and `extraConfig` as asked).
    pub fn add_vm(&self, vm: &LabVm) -> Result<AddedVm, LabSiteError> {
        let mut lab = self.lab()?;
        let host_id = resolve(&lab.site.hosts, &vm.host, |h| (&h.id, &h.name))
            .ok_or_else(|| self.message(format!("there is no host {}", vm.host)))?;
        let datastore_id = resolve(&lab.site.datastores, &vm.datastore, |d| (&d.id, &d.name))
            .ok_or_else(|| self.message(format!("there is no datastore {}", vm.datastore)))?;
        let network_ids = vm
            .networks
            .iter()
            .map(|n| {
                resolve(&lab.site.networks, n, |x| (&x.id, &x.name))
                    .ok_or_else(|| self.message(format!("there is no network {n}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let entry = lab
            .create_vm(NewVm {
                name: vm.name.clone(),
                host_id,
                datastore_id,
                guest_os: "otherLinux64Guest".to_string(),
                cpus: 2,
                memory_mib: 2048,
                disk_sizes: vm.disk_sizes.clone(),
                network_ids,
                power: vm.power,
                tools_installed: vm.tools_installed,
                extra_config: vm.extra_config.clone(),
            })
            .map_err(|e| self.error(&e))?;
        Ok(AddedVm {
            id: entry.config.id.clone(),
            disk_ids: entry.config.disks.iter().map(|d| d.uuid.clone()).collect(),
            descriptors: entry
                .config
                .disks
                .iter()
                .map(|d| entry.dir.join(&d.file))
                .collect(),
            flat_paths: entry
                .config
                .disks
                .iter()
                .map(|d| entry.dir.join(flat_name(&d.file)))
                .collect(),
        })
    }

    /// Changes one VM's `vm.json` (power, tools, `extraConfig`...).
    pub fn update_vm(
        &self,
        vm_id: &str,
        change: impl FnOnce(&mut VmConfig),
    ) -> Result<(), LabSiteError> {
        let lab = self.lab()?;
        let mut entry = lab.vm(vm_id).map_err(|e| self.error(&e))?;
        change(&mut entry.config);
        lab.save_vm(&entry).map_err(|e| self.error(&e))
    }

    /// Changes `site.json` (accounts, hosts, licence...).
    pub fn update_site(&self, change: impl FnOnce(&mut Site)) -> Result<(), LabSiteError> {
        let mut lab = self.lab()?;
        change(&mut lab.site);
        lab.save_site().map_err(|e| self.error(&e))
    }

    /// Replaces the licence with the free vSphere Hypervisor one (whose API
    /// is read-only: failback is refused by readiness, changes by every call).
    pub fn set_free_licence(&self) -> Result<(), LabSiteError> {
        self.update_site(|site| {
            site.licence = Licence {
                product: "VMware vSphere Hypervisor 8 (free)".to_string(),
                edition: "esxBasic".to_string(),
                free: true,
                expires_at: None,
            }
        })
    }

    /// Settings that load the lab-hypervisor plugin on this lab as `user`:
    /// the directory granted read-write at [`GUEST_ROOT`], config `user`,
    /// secret `password`.
    pub fn settings(&self, user: &str, password: &str) -> PluginSettings {
        PluginSettings {
            grants: Grants {
                dirs: vec![DirGrant {
                    host: self.root.clone(),
                    guest: GUEST_ROOT.to_string(),
                    write: true,
                }],
                ..Grants::default()
            },
            config: BTreeMap::from([("user".to_string(), user.to_string())]),
            secrets: BTreeMap::from([("password".to_string(), Secret::new(password))]),
            ..PluginSettings::default()
        }
    }

    /// The host directory of datastore `name`: what a `datastore-file`
    /// locator `(name, path)` resolves against.
    pub fn datastore_path(&self, name: &str) -> PathBuf {
        Layout::new(&self.root).datastore(name)
    }

    /// Every datastore's name and host directory (the data path's datastore mounts).
    pub fn datastore_mounts(&self) -> Result<Vec<(String, PathBuf)>, LabSiteError> {
        Ok(self
            .site()?
            .datastores
            .iter()
            .map(|d| (d.name.clone(), self.datastore_path(&d.name)))
            .collect())
    }

    fn lab(&self) -> Result<Lab, LabSiteError> {
        Lab::open(&self.root).map_err(|e| self.error(&e))
    }

    fn message(&self, message: String) -> LabSiteError {
        LabSiteError {
            root: self.root.clone(),
            message,
        }
    }

    fn error(&self, e: &homeward_lab_hypervisor::store::Error) -> LabSiteError {
        self.message(describe(e))
    }
}

/// The id of the item whose id or name is `wanted`.
fn resolve<T>(items: &[T], wanted: &str, key: impl Fn(&T) -> (&String, &String)) -> Option<String> {
    items
        .iter()
        .map(&key)
        .find(|(id, name)| *id == wanted || *name == wanted)
        .map(|(id, _)| id.clone())
}

/// An API error in words (the store speaks the plugin API's error type).
fn describe(e: &homeward_lab_hypervisor::store::Error) -> String {
    use homeward_lab_hypervisor::store::Error as E;
    match e {
        E::NotFound(m) => format!("not found: {m}"),
        E::PermissionDenied(p) => format!("permission denied: {}", p.message),
        E::Unsupported(m) => format!("unsupported: {m}"),
        E::InvalidInput(m) => format!("invalid input: {m}"),
        E::Conflict(m) => format!("conflict: {m}"),
        E::Unavailable(u) => format!("unavailable: {}", u.message),
        E::Internal(m) => m.clone(),
    }
}

/// The default inventory of a new lab at `root`.
fn default_site(root: &Path) -> Site {
    let hash = blake3::hash(root.as_os_str().as_encoded_bytes());
    let h = hex::encode(&hash.as_bytes()[..16]);
    let instance_id = format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    );
    let mut admin: Vec<String> = HOMEWARD_REQUIRED.iter().map(|p| p.to_string()).collect();
    admin.extend(ADMIN_EXTRA_PRIVILEGES.iter().map(|p| p.to_string()));
    let host = |n: u32, datastores: [&str; 2]| Host {
        id: format!("host-{n}"),
        name: format!("esx-0{n}"),
        version: "VMware ESXi 8.0.2".to_string(),
        cluster: Some("domain-c1".to_string()),
        connected: true,
        datastores: datastores.iter().map(|d| d.to_string()).collect(),
        networks: vec!["network-1".to_string(), "network-2".to_string()],
    };
    let datastore = |n: u32, kind: &str| Datastore {
        id: format!("datastore-{n}"),
        name: format!("ds{n}"),
        kind: kind.to_string(),
        capacity_bytes: DATASTORE_CAPACITY,
    };
    let network = |n: u32, name: &str| Network {
        id: format!("network-{n}"),
        name: name.to_string(),
        kind: "Network".to_string(),
    };
    Site {
        endpoint: Endpoint {
            product: "Homeward Lab Hypervisor 0.1".to_string(),
            api_version: "8.0.2.0".to_string(),
            instance_id,
        },
        licence: Licence {
            product: "VMware vSphere 8 Enterprise Plus".to_string(),
            edition: "esxEnterprisePlus".to_string(),
            free: false,
            expires_at: None,
        },
        accounts: vec![
            Account {
                user: ADMIN_USER.to_string(),
                password: ADMIN_PASSWORD.to_string(),
                privileges: admin,
            },
            Account {
                user: READONLY_USER.to_string(),
                password: READONLY_PASSWORD.to_string(),
                privileges: READONLY_PRIVILEGES.iter().map(|p| p.to_string()).collect(),
            },
        ],
        datacenters: vec!["lab-dc".to_string()],
        hosts: vec![
            host(1, ["datastore-1", "datastore-2"]),
            host(2, ["datastore-2", "datastore-3"]),
        ],
        datastores: vec![
            datastore(1, "VMFS"),
            datastore(2, "VMFS"),
            datastore(3, "NFS"),
        ],
        networks: vec![network(1, "VM Network"), network(2, "Replication")],
        counters: Counters::default(),
    }
}
