//! What the guest's package database says about NetworkManager.
//!
//! dpkg's `status` file is text and is read exactly. The rpm databases
//! (Berkeley DB `Packages`, `Packages.db` (ndb), `rpmdb.sqlite`) are binary
//! and there is no rpm library in the sandbox, so the step searches the file
//! for the header string `\0NetworkManager\0` (the package name as rpm stores
//! it). Its absence is reliable: an installed package always has that string.
//! Its presence is weak (freed database pages keep old headers, and another
//! package's file list can hold a basename `NetworkManager`), so a "found"
//! never outweighs missing files; the notes say which evidence was used.

use homeward_sdk::guest::GuestRead;

/// The Debian package name.
const DEB_NAME: &str = "network-manager";
/// The rpm package name (RHEL, Fedora, SUSE).
const RPM_NAME: &[u8] = b"NetworkManager";
/// rpm databases, newest layouts first; `/var/lib/rpm` is a symlink to
/// `/usr/lib/sysimage/rpm` on SUSE and recent Fedora.
const RPM_DATABASES: &[&str] = &[
    "/var/lib/rpm/rpmdb.sqlite",
    "/usr/lib/sysimage/rpm/rpmdb.sqlite",
    "/var/lib/rpm/Packages.db",
    "/usr/lib/sysimage/rpm/Packages.db",
    "/var/lib/rpm/Packages",
    "/usr/lib/sysimage/rpm/Packages",
];
/// Larger databases are not read (the host refuses files over 64 MiB anyway).
const MAX_DATABASE: u64 = 64 * 1024 * 1024;

/// The package database's answer, with the note that explains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// Installed (dpkg), or a header with its name exists (rpm).
    Installed(String),
    /// Not installed, or only its configuration files are left.
    Absent(String),
    /// No database, or one that cannot be read.
    Unknown(String),
}

impl Record {
    /// The note for the plan.
    pub fn note(&self) -> &str {
        match self {
            Record::Installed(n) | Record::Absent(n) | Record::Unknown(n) => n,
        }
    }
}

/// Looks NetworkManager up in whichever package database the guest has.
pub fn lookup(guest: &dyn GuestRead) -> Record {
    if let Some(status) = guest.read_text("/var/lib/dpkg/status") {
        return dpkg(&status);
    }
    match RPM_DATABASES.iter().find(|p| guest.exists(p)) {
        Some(path) => rpm(guest, path),
        None => Record::Unknown("package database: none found (no dpkg status, no rpmdb)".into()),
    }
}

/// The `Status:` of the `network-manager` stanza in dpkg's status file.
fn dpkg(status: &str) -> Record {
    let mut package = None::<&str>;
    let mut state = None::<&str>;
    // A stanza ends at a blank line; the last one may not.
    for line in status.lines().chain(std::iter::once("")) {
        if line.trim().is_empty() {
            if package == Some(DEB_NAME) {
                let state = state.unwrap_or("(no Status line)");
                let note = format!("package database: dpkg: {DEB_NAME} {state}");
                let words: Vec<&str> = state.split_whitespace().collect();
                // `install ok installed` / `hold ok installed`: the third
                // word is the state of the files on disk.
                return if words.get(2) == Some(&"installed") {
                    Record::Installed(note)
                } else {
                    Record::Absent(note)
                };
            }
            package = None;
            state = None;
        } else if let Some(v) = line.strip_prefix("Package:") {
            package = Some(v.trim());
        } else if let Some(v) = line.strip_prefix("Status:") {
            state = Some(v.trim());
        }
    }
    Record::Absent(format!(
        "package database: dpkg: {DEB_NAME} is not in /var/lib/dpkg/status"
    ))
}

/// A byte search of an rpm database for the package's header name.
fn rpm(guest: &dyn GuestRead, path: &str) -> Record {
    let too_large = guest.stat(path).is_ok_and(|s| s.size > MAX_DATABASE);
    let bytes = if too_large {
        None
    } else {
        guest.read_file(path).ok()
    };
    let Some(bytes) = bytes else {
        return Record::Unknown(format!(
            "package database: rpm ({path}) could not be read (larger than 64 MiB or unreadable); NetworkManager's files decide"
        ));
    };
    if has_rpm_name(&bytes) {
        Record::Installed(format!(
            "package database: rpm ({path}): a NetworkManager header was found (byte search, not an rpm query: a stale record can match, so the files decide)"
        ))
    } else {
        Record::Absent(format!(
            "package database: rpm ({path}): no NetworkManager header (byte search)"
        ))
    }
}

/// Whether `bytes` hold the NUL-delimited string `NetworkManager`. Scans for
/// the rare first letter rather than for NUL, which is everywhere in a
/// database; one pass, no allocation.
fn has_rpm_name(bytes: &[u8]) -> bool {
    let Some((&first, rest)) = RPM_NAME.split_first() else {
        return false;
    };
    let mut at = 1;
    while let Some(found) = bytes
        .get(at..)
        .and_then(|tail| tail.iter().position(|&b| b == first))
    {
        let start = at + found;
        let before = start.checked_sub(1).and_then(|i| bytes.get(i));
        let after = bytes.get(start + 1..);
        if before == Some(&0)
            && after.is_some_and(|a| a.starts_with(rest) && a.get(rest.len()) == Some(&0))
        {
            return true;
        }
        at = start + 1;
    }
    false
}
