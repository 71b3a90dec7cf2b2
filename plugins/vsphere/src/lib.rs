//! The vSphere side of Homeward: a vim25 (SOAP) client over `wasi:http` and
//! the `hypervisor-adapter` logic the `vcenter` and `esxi` plugins share.
//!
//! # Configuration (both plugins)
//!
//! | key | kind | meaning |
//! |---|---|---|
//! | `url` | config | the SDK endpoint, `https://vc.example/sdk` (a bare `https://host` means `/sdk`) |
//! | `user` | config | the account |
//! | `password` | secret | its password |
//! | `timeout-ms` | config | connect and first-byte timeout per request (default 20000) |
//! | `task-timeout-ms` | config | how long to wait for a vSphere task (default 300000) |
//!
//! The operator grants the endpoint's `host:port` in the plugin set; TLS is
//! verified by the host's HTTP stack.
//!
//! # Layers
//!
//! - [`xml`]: answers parsed with `roxmltree` into owned elements; escaping.
//! - [`fault`]: SOAP and task faults → typed errors (`InvalidLogin` →
//!   permission-denied, `NoPermission` → permission-denied with its
//!   `privilegeId`, `ManagedObjectNotFound` → not-found, power/state and
//!   duplicate-name faults → conflict, host communication → unavailable,
//!   anything else → internal naming the fault).
//! - [`client`]: settings, the SOAP call (HTTP 5xx without a fault and
//!   refused connections → unavailable), the session (login once per
//!   instance, cookie reused, re-login once on `NotAuthenticated`, logout).
//! - [`props`]: `RetrievePropertiesEx` over container views, with paging.
//! - [`task`]: waiting for tasks with a deadline.
//! - [`convert`]: VMs (disks, NICs, snapshots), hosts, datastores.
//! - [`inventory`], [`ops`], [`frozen`], [`licence`], [`readiness`],
//!   [`authz`] + [`privileges`]: what the exports do; [`adapter`] wires them.
//!
//! # Behaviour worth knowing
//!
//! - Every change first checks the privileges it needs on the root folder
//!   and refuses with all the missing ones (vSphere itself would name only
//!   the first).
//! - Disks: id = `backing.uuid`, or `<vm-id>:disk-<device key>` when the
//!   endpoint reports no UUID; locator `datastore-file((ds, path))` from
//!   `backing.fileName`; format `vmdk-flat`; controller `scsi0`-style name
//!   and unit; properties `datastore-path`, `device-key`, `thin`, `backing`,
//!   `flat-file`.
//! - New VMs: a ParaVirtual SCSI controller with thin disks at units 0, 1...
//!   (never 7) on the chosen datastore, one VMXNET3 NIC per network
//!   (standard or distributed port group), in the host's resource pool and
//!   its datacenter's VM folder. `detach-disk` keeps the file.
//! - `snapshot-disk` (API 0.1.2) answers the file the snapshot froze, read
//!   from the `VirtualMachineSnapshot`'s own `config.hardware.device` (what
//!   VADP backups read): the disk record of that file with property `access`
//!   = `read`. A frozen backing with a `parent` (the snapshot sits on an
//!   older snapshot's delta, or a linked clone's) or a non-flat backing is
//!   `unsupported`, naming the older snapshots to consolidate; an unknown VM,
//!   snapshot or disk, or a disk attached after the snapshot, is `not-found`.

pub use homeward_sdk as sdk;

pub mod adapter;
pub mod authz;
pub mod client;
pub mod convert;
pub mod fault;
pub mod findings;
pub mod frozen;
pub mod inventory;
pub mod licence;
pub mod ops;
pub mod privileges;
pub mod props;
pub mod readiness;
pub mod spec;
pub mod task;
pub mod time;
pub mod xml;
