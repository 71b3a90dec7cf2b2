//! Whether NetworkManager is on the guest: its init system, binary, service
//! definition and package record.
//!
//! Files decide: a package database can be stale (rpm) or out of step with
//! the disk after a cloud agent deleted files, and what boots is what is on
//! the disk. A package database that says "not installed" also counts, so a
//! half-removed package is reinstalled rather than trusted.

use crate::packages::{self, Record};
use crate::systemd;
use homeward_sdk::guest::{Family, GuestRead};

/// How the guest starts services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// systemd (`/usr/lib/systemd/systemd` or `/lib/systemd/systemd`).
    Systemd,
    /// SysV init scripts (CentOS 6, SLES 11, old Debian).
    SysV,
}

/// NetworkManager's daemon.
const BINARIES: &[&str] = &["/usr/sbin/NetworkManager", "/sbin/NetworkManager"];
/// Its SysV init script: RHEL, SUSE and Debian names.
const SYSV_SCRIPTS: &[&str] = &[
    "/etc/rc.d/init.d/NetworkManager",
    "/etc/init.d/NetworkManager",
    "/etc/init.d/network-manager",
];

/// What was found.
#[derive(Debug, Clone)]
pub struct Presence {
    /// The init system.
    pub init: Init,
    /// The daemon's path, when present.
    pub binary: Option<&'static str>,
    /// `NetworkManager.service`'s path (systemd), when present.
    pub unit: Option<String>,
    /// The init script's path (SysV), when present.
    pub sysv_script: Option<&'static str>,
    /// The package database's answer.
    pub package: Record,
}

impl Presence {
    /// Whether NetworkManager can run: its daemon and its service
    /// definition are on the disk, and the package database does not say it
    /// was removed.
    pub fn installed(&self) -> bool {
        let service = match self.init {
            Init::Systemd => self.unit.is_some(),
            Init::SysV => self.sysv_script.is_some(),
        };
        self.binary.is_some() && service && !matches!(self.package, Record::Absent(_))
    }

    /// The facts, for the plan's notes.
    pub fn notes(&self) -> Vec<String> {
        let init = match self.init {
            Init::Systemd => "init: systemd",
            Init::SysV => "init: SysV (no systemd binary)",
        };
        let binary = match self.binary {
            Some(path) => format!("NetworkManager binary: {path}"),
            None => "NetworkManager binary: absent (/usr/sbin/NetworkManager)".to_string(),
        };
        let service = match (self.init, &self.unit, self.sysv_script) {
            (Init::Systemd, Some(unit), _) => format!("NetworkManager unit: {unit}"),
            (Init::Systemd, None, _) => "NetworkManager unit: absent".to_string(),
            (Init::SysV, _, Some(script)) => format!("NetworkManager init script: {script}"),
            (Init::SysV, _, None) => "NetworkManager init script: absent".to_string(),
        };
        vec![
            init.to_string(),
            binary,
            service,
            self.package.note().to_string(),
        ]
    }
}

/// Inspects `guest`.
pub fn inspect(guest: &dyn GuestRead, family: Family) -> Presence {
    let init = if guest.exists("/usr/lib/systemd/systemd") || guest.exists("/lib/systemd/systemd") {
        Init::Systemd
    } else {
        Init::SysV
    };
    Presence {
        init,
        binary: BINARIES.iter().copied().find(|p| guest.exists(p)),
        unit: systemd::unit_path(guest, systemd::NM_UNIT, family),
        sysv_script: SYSV_SCRIPTS.iter().copied().find(|p| guest.exists(p)),
        package: packages::lookup(guest),
    }
}
