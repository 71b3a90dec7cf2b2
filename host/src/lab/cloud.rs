//! The lab cloud from the host side: creating a lab directory with a default
//! setup (subscription, `lab-vnet` with an `app` and an isolated `test`
//! subnet, a Contributor and a Reader principal), seeding VMs with real VHD
//! fixed disks, writing into those disks, and the plugin settings that point
//! the embedded `lab-cloud` plugin at it.
//!
//! The records are the plugin's own types (`homeward_lab_cloud::format`,
//! compiled natively here), so the host writes exactly what the plugin reads;
//! the plugin's crate documentation describes the layout and the semantics.

use crate::config::{DirGrant, Secret};
use crate::disk::{BlockDevice, DiskError, VhdFixed};
use crate::plugin::PluginSettings;
use homeward_lab_cloud::format::{
    Allocation, CLOUD_FILE, COUNTERS_FILE, CloudFile, Counters, DISKS_DIR, DiskFile,
    FORMAT_VERSION, LabPower, NicFile, Principal, Role, Subnet, VMS_DIR, VirtualNetwork, VmFile,
};
use homeward_lab_cloud::ipv4::Prefix;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub use homeward_lab_cloud::auth::actions;
pub use homeward_lab_cloud::format;

/// Where the plugin sees the lab inside its sandbox (its default `root`).
pub const GUEST_ROOT: &str = homeward_lab_cloud::DEFAULT_ROOT;
/// The principal with role Contributor.
pub const CONTRIBUTOR: &str = "homeward";
/// Its client secret (a lab: the secret is part of the fixture).
pub const CONTRIBUTOR_SECRET: &str = "lab-homeward-secret";
/// The principal with role Reader.
pub const READER: &str = "auditor";
/// Its client secret.
pub const READER_SECRET: &str = "lab-auditor-secret";
/// Subscription id of every new lab.
pub const SUBSCRIPTION_ID: &str = "5ab0c10d-0000-4000-8000-000000000001";
/// Tenant id of every new lab.
pub const TENANT_ID: &str = "7e0a1ab0-0000-4000-8000-000000000001";
/// The resource group everything lives in.
pub const RESOURCE_GROUP: &str = "homeward-lab";
/// The virtual network of every new lab.
pub const VNET: &str = "lab-vnet";
/// Its subnet for workloads.
pub const APP_SUBNET: &str = "app";
/// Its isolated subnet, for drills.
pub const TEST_SUBNET: &str = "test";
/// The VM size new VMs get unless told otherwise.
pub const DEFAULT_SIZE: &str = "Standard_D2s_v5";

/// Something about a lab cloud went wrong.
#[derive(Debug, thiserror::Error)]
pub enum LabCloudError {
    /// A file of the lab could not be read or written.
    #[error("lab cloud: cannot {doing} {path}: {source}")]
    Io {
        /// What was being done.
        doing: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A disk image could not be created or opened.
    #[error("lab cloud: {0}")]
    Disk(#[from] DiskError),
    /// A record of the lab does not parse, or the lab is of another format.
    #[error("lab cloud: {path} is not usable: {reason}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The request does not fit the lab (name taken, unknown subnet...).
    #[error("lab cloud {root}: {message}")]
    Refused {
        /// The lab's directory.
        root: PathBuf,
        /// What was refused, and why.
        message: String,
    },
}

/// A VM to seed into a lab.
#[derive(Debug, Clone)]
pub struct LabVmSpec {
    /// Name (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// Azure size name.
    pub size: String,
    /// Disk sizes in bytes (positive multiples of 512), the OS disk first.
    pub disk_sizes: Vec<u64>,
    /// Subnet name in `lab-vnet`.
    pub subnet: String,
    /// A static private IP; `None` allocates the lowest free one.
    pub private_ip: Option<Ipv4Addr>,
    /// Power state.
    pub power: LabPower,
}

impl LabVmSpec {
    /// A running `Standard_D2s_v5` VM in subnet `app` with a dynamic IP.
    pub fn new(name: &str, disk_sizes: &[u64]) -> LabVmSpec {
        LabVmSpec {
            name: name.to_string(),
            size: DEFAULT_SIZE.to_string(),
            disk_sizes: disk_sizes.to_vec(),
            subnet: APP_SUBNET.to_string(),
            private_ip: None,
            power: LabPower::Running,
        }
    }
}

/// A VM seeded into a lab.
#[derive(Debug, Clone)]
pub struct LabVm {
    /// ARM id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Azure's `vmId`.
    pub vm_uuid: String,
    /// Its NIC's MAC address.
    pub mac: String,
    /// Its NIC's private IP.
    pub private_ip: Ipv4Addr,
    /// Its disks, the OS disk first.
    pub disks: Vec<LabDisk>,
}

/// A managed disk of a lab.
#[derive(Debug, Clone)]
pub struct LabDisk {
    /// ARM id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Size in bytes.
    pub capacity: u64,
    /// The VHD on the host.
    pub path: PathBuf,
}

/// A lab cloud directory.
#[derive(Debug, Clone)]
pub struct LabCloud {
    root: PathBuf,
    cloud: CloudFile,
}

impl LabCloud {
    /// Creates a lab at `root` (created if missing; it must hold no lab yet)
    /// with the default setup.
    pub fn create(root: &Path) -> Result<LabCloud, LabCloudError> {
        for dir in [root.to_path_buf(), root.join(VMS_DIR), root.join(DISKS_DIR)] {
            std::fs::create_dir_all(&dir).map_err(|source| LabCloudError::Io {
                doing: "create",
                path: dir.clone(),
                source,
            })?;
        }
        if root.join(CLOUD_FILE).exists() {
            return Err(LabCloudError::Refused {
                root: root.to_path_buf(),
                message: format!("it already holds a lab ({CLOUD_FILE}); open it instead"),
            });
        }
        let principal = |client_id: &str, secret: &str, role| Principal {
            client_id: client_id.to_string(),
            secret: secret.to_string(),
            role,
        };
        let subnet = |name: &str, prefix: &str| Subnet {
            name: name.to_string(),
            address_prefix: prefix.to_string(),
        };
        let cloud = CloudFile {
            format: FORMAT_VERSION,
            subscription_id: SUBSCRIPTION_ID.to_string(),
            tenant_id: TENANT_ID.to_string(),
            resource_group: RESOURCE_GROUP.to_string(),
            location: "westeurope".to_string(),
            principals: vec![
                principal(CONTRIBUTOR, CONTRIBUTOR_SECRET, Role::Contributor),
                principal(READER, READER_SECRET, Role::Reader),
            ],
            virtual_networks: vec![VirtualNetwork {
                name: VNET.to_string(),
                address_prefixes: vec!["10.20.0.0/16".to_string()],
                subnets: vec![
                    subnet(APP_SUBNET, "10.20.1.0/24"),
                    subnet(TEST_SUBNET, "10.20.9.0/24"),
                ],
            }],
        };
        let lab = LabCloud {
            root: root.to_path_buf(),
            cloud,
        };
        lab.write_json(COUNTERS_FILE, &Counters::default())?;
        // Last, and owner-only: it holds the principals' secrets, and its
        // presence is what makes the directory a lab.
        lab.write_json(CLOUD_FILE, &lab.cloud)?;
        Ok(lab)
    }

    /// Opens the lab at `root`.
    pub fn open(root: &Path) -> Result<LabCloud, LabCloudError> {
        let cloud: CloudFile =
            read_json(&root.join(CLOUD_FILE))?.ok_or_else(|| LabCloudError::Refused {
                root: root.to_path_buf(),
                message: format!("there is no lab here ({CLOUD_FILE} is missing)"),
            })?;
        if cloud.format != FORMAT_VERSION {
            return Err(LabCloudError::Damaged {
                path: root.join(CLOUD_FILE),
                reason: format!(
                    "it is lab format {}, this Homeward reads format {FORMAT_VERSION}",
                    cloud.format
                ),
            });
        }
        Ok(LabCloud {
            root: root.to_path_buf(),
            cloud,
        })
    }

    /// The lab's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The lab's fixed setup (`cloud.json`).
    pub fn cloud(&self) -> &CloudFile {
        &self.cloud
    }

    /// ARM id of `lab-vnet`.
    pub fn vnet_id(&self) -> String {
        self.cloud.vnet_id(VNET)
    }

    /// ARM id of subnet `subnet` of `lab-vnet` (whether or not it exists).
    pub fn subnet_id(&self, subnet: &str) -> String {
        self.cloud.subnet_id(VNET, subnet)
    }

    /// Adds subnet `name` with `address_prefix` to `lab-vnet` (the `app`
    /// /24 holds 251 NICs; a lab with more VMs needs a larger subnet). The
    /// prefix must lie in the network's address space and overlap no subnet.
    pub fn add_subnet(&mut self, name: &str, address_prefix: &str) -> Result<(), LabCloudError> {
        self.check_name(name, "subnet")?;
        let new = Prefix::parse(address_prefix).map_err(|reason| self.refused(reason))?;
        let damaged = |reason: String| LabCloudError::Damaged {
            path: self.root.join(CLOUD_FILE),
            reason,
        };
        let vnet = self
            .cloud
            .vnet(VNET)
            .ok_or_else(|| damaged(format!("it has no virtual network {VNET}")))?;
        let mut inside = false;
        for space in &vnet.address_prefixes {
            inside |= Prefix::parse(space).map_err(damaged)?.covers(new);
        }
        if !inside {
            return Err(self.refused(format!(
                "{address_prefix} is outside the address space of {VNET}"
            )));
        }
        for subnet in &vnet.subnets {
            let old = Prefix::parse(&subnet.address_prefix).map_err(damaged)?;
            if subnet.name.eq_ignore_ascii_case(name) || old.covers(new) || new.covers(old) {
                return Err(self.refused(format!(
                    "subnet `{name}` ({address_prefix}) clashes with subnet `{}` ({})",
                    subnet.name, subnet.address_prefix
                )));
            }
        }
        let mut cloud = self.cloud.clone();
        if let Some(vnet) = cloud
            .virtual_networks
            .iter_mut()
            .find(|v| v.name.eq_ignore_ascii_case(VNET))
        {
            vnet.subnets.push(Subnet {
                name: name.to_string(),
                address_prefix: address_prefix.to_string(),
            });
        }
        self.write_json(CLOUD_FILE, &cloud)?;
        self.cloud = cloud;
        Ok(())
    }

    /// ARM id of the VM `name` (whether or not it exists).
    pub fn vm_id(&self, name: &str) -> String {
        self.cloud.vm_id(name)
    }

    /// ARM id of the disk `name` (whether or not it exists).
    pub fn disk_id(&self, name: &str) -> String {
        self.cloud.disk_id(name)
    }

    /// The VHD of disk `name` on the host.
    pub fn disk_path(&self, name: &str) -> PathBuf {
        self.root.join(DISKS_DIR).join(format::disk_vhd(name))
    }

    /// The secret of principal `client_id`, if the lab has it.
    pub fn secret(&self, client_id: &str) -> Option<Secret> {
        self.cloud
            .principal(client_id)
            .map(|p| Secret::new(p.secret.clone()))
    }

    /// Settings that load the `lab-cloud` plugin on this lab, signed in as
    /// `client_id` with `secret`: the lab granted read-write at
    /// [`GUEST_ROOT`], config `root`, `host-root` and `client-id`, secret
    /// `client-secret`.
    pub fn settings(&self, client_id: &str, secret: Secret) -> PluginSettings {
        let mut settings = PluginSettings {
            expected_id: Some("lab-cloud".to_string()),
            ..PluginSettings::default()
        };
        settings.grants.dirs.push(DirGrant {
            host: self.root.clone(),
            guest: GUEST_ROOT.to_string(),
            write: true,
        });
        for (key, value) in [
            ("root", GUEST_ROOT.to_string()),
            ("host-root", self.root.display().to_string()),
            ("client-id", client_id.to_string()),
        ] {
            settings.config.insert(key.to_string(), value);
        }
        settings.secrets.insert("client-secret".to_string(), secret);
        settings
    }

    /// The VM named `name`, if it exists.
    pub fn vm(&self, name: &str) -> Result<Option<VmFile>, LabCloudError> {
        self.read_json(&format!("{VMS_DIR}/{}", format::vm_json(name)))
    }

    /// The disk named `name`, if it exists.
    pub fn disk(&self, name: &str) -> Result<Option<DiskFile>, LabCloudError> {
        self.read_json(&format!("{DISKS_DIR}/{}", format::disk_json(name)))
    }

    /// Every VM, in name order.
    pub fn vms(&self) -> Result<Vec<VmFile>, LabCloudError> {
        let dir = self.root.join(VMS_DIR);
        let entries = std::fs::read_dir(&dir).map_err(|source| LabCloudError::Io {
            doing: "list",
            path: dir.clone(),
            source,
        })?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| LabCloudError::Io {
                doing: "list",
                path: dir.clone(),
                source,
            })?;
            let file = entry.file_name().to_string_lossy().into_owned();
            if let Some(stem) = file.strip_suffix(".json") {
                names.push(stem.to_string());
            }
        }
        names.sort();
        let mut vms = Vec::new();
        for name in names {
            vms.extend(self.vm(&name)?);
        }
        Ok(vms)
    }

    /// Creates an unattached managed disk of `capacity` bytes (a sparse VHD).
    pub fn add_disk(&self, name: &str, capacity: u64) -> Result<LabDisk, LabCloudError> {
        self.check_name(name, "disk")?;
        if self.disk(name)?.is_some() {
            return Err(self.refused(format!("a disk named `{name}` already exists")));
        }
        let path = self.disk_path(name);
        VhdFixed::create(&path, capacity)?;
        let record = DiskFile {
            id: self.cloud.disk_id(name),
            name: name.to_string(),
            capacity_bytes: capacity,
            sector_size: 512,
            created_at: now_millis(),
        };
        self.write_json(&format!("{DISKS_DIR}/{}", format::disk_json(name)), &record)?;
        Ok(LabDisk {
            id: record.id,
            name: name.to_string(),
            capacity,
            path,
        })
    }

    /// Seeds a VM with new disks `<vm>-os`, `<vm>-data0`, `<vm>-data1`... and
    /// one NIC, numbered from the lab's counters as the plugin numbers them.
    pub fn add_vm(&self, spec: &LabVmSpec) -> Result<LabVm, LabCloudError> {
        self.check_name(&spec.name, "VM")?;
        if spec.disk_sizes.is_empty() {
            return Err(self.refused(format!("VM `{}` needs at least one disk", spec.name)));
        }
        if self.vm(&spec.name)?.is_some() {
            return Err(self.refused(format!("a VM named `{}` already exists", spec.name)));
        }
        let subnet = self.cloud.vnet(VNET).and_then(|v| v.subnet(&spec.subnet));
        let Some(subnet) = subnet else {
            return Err(self.refused(format!("{VNET} has no subnet `{}`", spec.subnet)));
        };
        let prefix =
            Prefix::parse(&subnet.address_prefix).map_err(|reason| LabCloudError::Damaged {
                path: self.root.join(CLOUD_FILE),
                reason,
            })?;
        let subnet_id = self.cloud.subnet_id(VNET, &subnet.name);
        let taken: Vec<Ipv4Addr> = self
            .vms()?
            .iter()
            .flat_map(|vm| vm.nics.iter())
            .filter(|nic| nic.subnet_id.eq_ignore_ascii_case(&subnet_id))
            .filter_map(|nic| nic.private_ip.parse().ok())
            .collect();
        let (ip, allocation) = match spec.private_ip {
            Some(ip) if !prefix.contains(ip) || prefix.is_reserved(ip) => {
                return Err(self.refused(format!(
                    "{ip} is not an address a NIC may have in subnet {} ({})",
                    subnet.name, subnet.address_prefix
                )));
            }
            Some(ip) if taken.contains(&ip) => {
                return Err(self.refused(format!("{ip} is already used in subnet {}", subnet.name)));
            }
            Some(ip) => (ip, Allocation::Static),
            None => match prefix.first_free(&taken) {
                Some(ip) => (ip, Allocation::Dynamic),
                None => return Err(self.refused(format!("subnet {} is full", subnet.name))),
            },
        };

        let mut disks = Vec::with_capacity(spec.disk_sizes.len());
        for (i, &size) in spec.disk_sizes.iter().enumerate() {
            let name = if i == 0 {
                format!("{}-os", spec.name)
            } else {
                format!("{}-data{}", spec.name, i - 1)
            };
            disks.push(self.add_disk(&name, size)?);
        }
        let mut counters: Counters = self.read_json(COUNTERS_FILE)?.unwrap_or_default();
        let vm_number = counters.take_vm();
        let nic_number = counters.take_nic();
        self.write_json(COUNTERS_FILE, &counters)?;
        let nic_name = format::nic_name(&spec.name, nic_number);
        let record = VmFile {
            id: self.cloud.vm_id(&spec.name),
            vm_id: format::vm_uuid(vm_number),
            name: spec.name.clone(),
            size: spec.size.clone(),
            power: spec.power,
            os_type: "Linux".to_string(),
            disks: disks.iter().map(|d| d.id.clone()).collect(),
            nics: vec![NicFile {
                id: self.cloud.nic_id(&nic_name),
                mac: format::nic_mac(nic_number),
                subnet_id,
                private_ip: ip.to_string(),
                allocation,
            }],
            created_at: now_millis(),
        };
        self.write_json(
            &format!("{VMS_DIR}/{}", format::vm_json(&spec.name)),
            &record,
        )?;
        Ok(LabVm {
            id: record.id,
            name: record.name,
            vm_uuid: record.vm_id,
            mac: format::nic_mac(nic_number),
            private_ip: ip,
            disks,
        })
    }

    /// Writes `bytes` into disk `disk` at `offset` (and flushes).
    pub fn write_disk(&self, disk: &str, offset: u64, bytes: &[u8]) -> Result<(), LabCloudError> {
        let path = self.disk_path(disk);
        let image = VhdFixed::open(&path, true)?;
        image
            .write_at(bytes, offset)
            .and_then(|()| image.flush())
            .map_err(|source| LabCloudError::Io {
                doing: "write",
                path,
                source,
            })
    }

    /// Reads `len` bytes of disk `disk` at `offset`.
    pub fn read_disk(&self, disk: &str, offset: u64, len: usize) -> Result<Vec<u8>, LabCloudError> {
        let path = self.disk_path(disk);
        let image = VhdFixed::open(&path, false)?;
        let mut buf = vec![0u8; len];
        image
            .read_at(&mut buf, offset)
            .map_err(|source| LabCloudError::Io {
                doing: "read",
                path,
                source,
            })?;
        Ok(buf)
    }

    fn check_name(&self, name: &str, what: &str) -> Result<(), LabCloudError> {
        if format::valid_name(name) {
            Ok(())
        } else {
            Err(self.refused(format!(
                "`{}` is not a valid {what} name (letters, digits, `-`, `_`, `.`)",
                name.escape_debug()
            )))
        }
    }

    fn refused(&self, message: String) -> LabCloudError {
        LabCloudError::Refused {
            root: self.root.clone(),
            message,
        }
    }

    fn read_json<T: DeserializeOwned>(&self, rel: &str) -> Result<Option<T>, LabCloudError> {
        read_json(&self.root.join(rel))
    }

    /// Writes `value` to `rel` atomically, owner-only (a temporary file,
    /// synced, then renamed).
    fn write_json<T: Serialize>(&self, rel: &str, value: &T) -> Result<(), LabCloudError> {
        let path = self.root.join(rel);
        let tmp = self.root.join(format!("{rel}.tmp"));
        let io_error = |source| LabCloudError::Io {
            doing: "write",
            path: path.clone(),
            source,
        };
        let mut text = serde_json::to_vec_pretty(value).map_err(|e| LabCloudError::Damaged {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        text.push(b'\n');
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all(&text).and_then(|()| f.sync_all()))
            .and_then(|()| std::fs::rename(&tmp, &path));
        written.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io_error(e)
        })
    }
}

/// Reads and parses `path`; `None` when it does not exist.
fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, LabCloudError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(LabCloudError::Io {
                doing: "read",
                path: path.to_path_buf(),
                source,
            });
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| LabCloudError::Damaged {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
