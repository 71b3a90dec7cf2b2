//! Building blocks of a guest post-step plugin (static IP reset,
//! NetworkManager restore...).
//!
//! A step reads the failed-back guest and returns a plan; it never writes.
//! Writing the step against [`GuestRead`] instead of the `guest-fs` resource
//! keeps it testable natively on fixture trees ([`DirGuest`]); inside the
//! plugin the resource implements the same trait.
//!
//! - [`Distro::detect`]: which distribution (`/etc/os-release` and the older
//!   release files), and its family;
//! - [`network_systems`]: which network configuration systems the guest has
//!   (RHEL/SUSE ifcfg, Debian `interfaces`, netplan, NetworkManager keyfiles);
//! - [`ShellVars`]: `KEY=value` files (ifcfg, os-release) edited in place,
//!   order and comments kept;
//! - [`PlanBuilder`]: turns "this file should contain this" into the minimal
//!   plan (nothing when it already does), which is what makes steps safe to
//!   run twice;
//! - [`normalize_mac`]: one spelling of a MAC address.

use crate::Error;
use crate::guest_step::exports::homeward::plugin::post_step::{ChangeKind, FileChange, StepPlan};
use crate::types::{DirEntry, FileKind, FileStat};

/// Read access to a guest's root file system, confined to it.
pub trait GuestRead {
    /// Metadata of `path`; a final symlink is not followed.
    fn stat(&self, path: &str) -> Result<FileStat, Error>;
    /// Entries of a directory, sorted by name.
    fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>, Error>;
    /// The content of a file (symlinks followed inside the guest).
    fn read_file(&self, path: &str) -> Result<Vec<u8>, Error>;
    /// The target of a symlink, as stored.
    fn read_link(&self, path: &str) -> Result<String, Error>;
    /// Whether `path` exists (symlinks followed inside the guest).
    fn exists(&self, path: &str) -> bool;

    /// A file's content as text (lossy UTF-8), `None` when it cannot be read.
    fn read_text(&self, path: &str) -> Option<String> {
        self.read_file(path)
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// Names in a directory, empty when it does not exist.
    fn list(&self, path: &str) -> Vec<DirEntry> {
        self.read_dir(path).unwrap_or_default()
    }
}

impl GuestRead for crate::guest_fs::GuestFs {
    fn stat(&self, path: &str) -> Result<FileStat, Error> {
        crate::guest_fs::GuestFs::stat(self, path)
    }
    fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>, Error> {
        crate::guest_fs::GuestFs::read_dir(self, path)
    }
    fn read_file(&self, path: &str) -> Result<Vec<u8>, Error> {
        crate::guest_fs::GuestFs::read_file(self, path)
    }
    fn read_link(&self, path: &str) -> Result<String, Error> {
        crate::guest_fs::GuestFs::read_link(self, path)
    }
    fn exists(&self, path: &str) -> bool {
        crate::guest_fs::GuestFs::exists(self, path)
    }
}

/// A guest tree in a host directory, for native tests of a step's logic.
///
/// Test-only: it joins guest paths under the root without the host's
/// symlink confinement (the host's `DirTree` does that for real runs), so use
/// it on fixture trees you made, never on an untrusted guest.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug, Clone)]
pub struct DirGuest {
    root: std::path::PathBuf,
}

#[cfg(not(target_arch = "wasm32"))]
impl DirGuest {
    /// The guest whose root is the host directory `root`.
    pub fn new(root: impl Into<std::path::PathBuf>) -> Self {
        DirGuest { root: root.into() }
    }

    fn host(&self, path: &str) -> std::path::PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn io_error(path: &str, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::not_found(path.to_string())
    } else {
        Error::internal(format!("{path}: {e}"))
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn kind_of(t: std::fs::FileType) -> FileKind {
    if t.is_symlink() {
        FileKind::Symlink
    } else if t.is_dir() {
        FileKind::Directory
    } else if t.is_file() {
        FileKind::Regular
    } else {
        FileKind::Other
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl GuestRead for DirGuest {
    fn stat(&self, path: &str) -> Result<FileStat, Error> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::symlink_metadata(self.host(path)).map_err(|e| io_error(path, e))?;
        Ok(FileStat {
            kind: kind_of(m.file_type()),
            size: m.len(),
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            modified_at: u64::try_from(m.mtime()).unwrap_or(0) * 1000,
        })
    }

    fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>, Error> {
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(self.host(path)).map_err(|e| io_error(path, e))? {
            let entry = entry.map_err(|e| io_error(path, e))?;
            let kind = entry
                .file_type()
                .map(kind_of)
                .map_err(|e| io_error(path, e))?;
            entries.push(DirEntry {
                name: entry.file_name().to_string_lossy().into_owned(),
                kind,
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    fn read_file(&self, path: &str) -> Result<Vec<u8>, Error> {
        std::fs::read(self.host(path)).map_err(|e| io_error(path, e))
    }

    fn read_link(&self, path: &str) -> Result<String, Error> {
        std::fs::read_link(self.host(path))
            .map(|t| t.to_string_lossy().into_owned())
            .map_err(|e| io_error(path, e))
    }

    fn exists(&self, path: &str) -> bool {
        self.host(path).exists()
    }
}

/// A distribution family: what decides where network configuration lives and
/// how packages are installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// RHEL, CentOS, Rocky, Alma, Oracle Linux, Fedora.
    RedHat,
    /// Debian, Ubuntu and derivatives.
    Debian,
    /// SLES, openSUSE.
    Suse,
    /// Anything else.
    Other,
}

/// What a guest says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Distro {
    /// `ID` (`rhel`, `centos`, `debian`, `ubuntu`, `sles`...).
    pub id: String,
    /// `ID_LIKE`, split.
    pub id_like: Vec<String>,
    /// `VERSION_ID` (`8.9`, `12`), possibly empty.
    pub version_id: String,
    /// `PRETTY_NAME`, or the release file's first line.
    pub pretty_name: String,
    /// The family.
    pub family: Family,
}

impl Distro {
    /// Reads `/etc/os-release` (or `/usr/lib/os-release`), falling back to
    /// `/etc/redhat-release`, `/etc/SuSE-release` and `/etc/debian_version`
    /// on older guests. `None` when nothing says what the guest is.
    pub fn detect(guest: &dyn GuestRead) -> Option<Distro> {
        let os_release = guest
            .read_text("/etc/os-release")
            .or_else(|| guest.read_text("/usr/lib/os-release"));
        if let Some(text) = os_release {
            let vars = ShellVars::parse(&text);
            let id = vars.get("ID").unwrap_or_default().to_ascii_lowercase();
            let id_like: Vec<String> = vars
                .get("ID_LIKE")
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_ascii_lowercase)
                .collect();
            if !id.is_empty() {
                let family = family_of(&id, &id_like);
                return Some(Distro {
                    pretty_name: vars.get("PRETTY_NAME").unwrap_or_else(|| id.clone()),
                    version_id: vars.get("VERSION_ID").unwrap_or_default(),
                    id,
                    id_like,
                    family,
                });
            }
        }
        let first_line = |path: &str| {
            guest
                .read_text(path)
                .and_then(|t| t.lines().next().map(|l| l.trim().to_string()))
        };
        if let Some(line) = first_line("/etc/redhat-release") {
            let lower = line.to_ascii_lowercase();
            let id = if lower.contains("centos") {
                "centos"
            } else if lower.contains("fedora") {
                "fedora"
            } else {
                "rhel"
            };
            return Some(Distro {
                id: id.to_string(),
                id_like: vec!["rhel".to_string()],
                version_id: version_in(&line),
                pretty_name: line,
                family: Family::RedHat,
            });
        }
        if let Some(line) = first_line("/etc/SuSE-release") {
            let text = guest.read_text("/etc/SuSE-release").unwrap_or_default();
            let vars = ShellVars::parse(&text);
            return Some(Distro {
                id: "sles".to_string(),
                id_like: vec!["suse".to_string()],
                version_id: vars.get("VERSION").unwrap_or_else(|| version_in(&line)),
                pretty_name: line,
                family: Family::Suse,
            });
        }
        if let Some(version) = first_line("/etc/debian_version") {
            return Some(Distro {
                id: "debian".to_string(),
                id_like: Vec::new(),
                pretty_name: format!("Debian {version}"),
                version_id: version,
                family: Family::Debian,
            });
        }
        None
    }
}

fn family_of(id: &str, id_like: &[String]) -> Family {
    let is =
        |names: &[&str]| names.contains(&id) || id_like.iter().any(|l| names.contains(&l.as_str()));
    if is(&["rhel", "centos", "fedora", "rocky", "almalinux", "ol"]) {
        Family::RedHat
    } else if is(&["suse", "sles", "opensuse", "opensuse-leap", "sled"]) {
        Family::Suse
    } else if is(&["debian", "ubuntu"]) {
        Family::Debian
    } else {
        Family::Other
    }
}

/// The first `N[.N...]` in a release line (`CentOS release 6.10 (Final)` → `6.10`).
fn version_in(line: &str) -> String {
    line.split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(|w| {
            w.trim_end_matches(|c: char| !c.is_ascii_digit())
                .to_string()
        })
        .unwrap_or_default()
}

/// A network configuration system a guest uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetSystem {
    /// RHEL-style `/etc/sysconfig/network-scripts/ifcfg-*`.
    RedHatIfcfg,
    /// SUSE-style `/etc/sysconfig/network/ifcfg-*`.
    SuseIfcfg,
    /// Debian `/etc/network/interfaces` (and `interfaces.d/`).
    DebianInterfaces,
    /// netplan `/etc/netplan/*.yaml`.
    Netplan,
    /// NetworkManager keyfiles `/etc/NetworkManager/system-connections/*.nmconnection`.
    NmKeyfile,
}

impl NetSystem {
    /// Where its files live.
    pub fn config_dir(self) -> &'static str {
        match self {
            NetSystem::RedHatIfcfg => "/etc/sysconfig/network-scripts",
            NetSystem::SuseIfcfg => "/etc/sysconfig/network",
            NetSystem::DebianInterfaces => "/etc/network",
            NetSystem::Netplan => "/etc/netplan",
            NetSystem::NmKeyfile => "/etc/NetworkManager/system-connections",
        }
    }

    /// A short name for notes (`network: ifcfg`).
    pub fn name(self) -> &'static str {
        match self {
            NetSystem::RedHatIfcfg => "ifcfg (RHEL)",
            NetSystem::SuseIfcfg => "ifcfg (SUSE)",
            NetSystem::DebianInterfaces => "interfaces (Debian)",
            NetSystem::Netplan => "netplan",
            NetSystem::NmKeyfile => "NetworkManager keyfiles",
        }
    }

    /// The paths of its configuration files in `guest`, sorted.
    pub fn files(self, guest: &dyn GuestRead) -> Vec<String> {
        let dir = self.config_dir();
        let wanted = |name: &str| match self {
            NetSystem::RedHatIfcfg | NetSystem::SuseIfcfg => {
                name.starts_with("ifcfg-") && name != "ifcfg-lo"
            }
            NetSystem::DebianInterfaces => name == "interfaces",
            NetSystem::Netplan => name.ends_with(".yaml") || name.ends_with(".yml"),
            NetSystem::NmKeyfile => name.ends_with(".nmconnection"),
        };
        let mut files: Vec<String> = guest
            .list(dir)
            .into_iter()
            .filter(|e| e.kind == FileKind::Regular && wanted(&e.name))
            .map(|e| format!("{dir}/{}", e.name))
            .collect();
        if self == NetSystem::DebianInterfaces {
            files.extend(
                guest
                    .list("/etc/network/interfaces.d")
                    .into_iter()
                    .filter(|e| e.kind == FileKind::Regular)
                    .map(|e| format!("/etc/network/interfaces.d/{}", e.name)),
            );
        }
        files
    }
}

/// The network configuration systems `guest` has files for, in the order
/// above. A guest may have several (NetworkManager keyfiles beside ifcfg).
pub fn network_systems(guest: &dyn GuestRead) -> Vec<NetSystem> {
    [
        NetSystem::RedHatIfcfg,
        NetSystem::SuseIfcfg,
        NetSystem::DebianInterfaces,
        NetSystem::Netplan,
        NetSystem::NmKeyfile,
    ]
    .into_iter()
    .filter(|s| !s.files(guest).is_empty())
    .collect()
}

/// A MAC address in one spelling: lower case, colon separated. `None` when
/// `text` is not six hex octets (separated by `:` or `-`, or not at all).
pub fn normalize_mac(text: &str) -> Option<String> {
    let hex: String = text
        .trim()
        .trim_matches('"')
        .chars()
        .filter(|c| *c != ':' && *c != '-')
        .collect();
    if hex.len() != 12 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let hex = hex.to_ascii_lowercase();
    Some(
        (0..6)
            .map(|i| &hex[i * 2..i * 2 + 2])
            .collect::<Vec<_>>()
            .join(":"),
    )
}

/// A shell-style `KEY=value` file (ifcfg, os-release), kept line by line so
/// that editing one key leaves comments, order and every other line as they
/// were.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShellVars {
    lines: Vec<String>,
}

impl ShellVars {
    /// Parses `text`.
    pub fn parse(text: &str) -> Self {
        ShellVars {
            lines: text.lines().map(str::to_string).collect(),
        }
    }

    fn key_of(line: &str) -> Option<&str> {
        let line = line.trim_start();
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (key, _) = line.split_once('=')?;
        (!key.is_empty()
            && !key.starts_with('#')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then_some(key)
    }

    /// The value of `key` (the last assignment wins, as in a shell), unquoted.
    pub fn get(&self, key: &str) -> Option<String> {
        self.lines
            .iter()
            .rev()
            .find(|l| Self::key_of(l) == Some(key))
            .and_then(|l| l.split_once('='))
            .map(|(_, v)| unquote(v.trim()))
    }

    /// Every key with its value, in file order.
    pub fn entries(&self) -> Vec<(String, String)> {
        self.lines
            .iter()
            .filter_map(|l| {
                let key = Self::key_of(l)?;
                let (_, v) = l.split_once('=')?;
                Some((key.to_string(), unquote(v.trim())))
            })
            .collect()
    }

    /// Sets `key` to `value`: rewrites its last assignment in place (and drops
    /// earlier ones), or appends it. Values that need it are double-quoted.
    pub fn set(&mut self, key: &str, value: &str) {
        let rendered = format!("{key}={}", quote(value));
        let positions: Vec<usize> = (0..self.lines.len())
            .filter(|&i| Self::key_of(&self.lines[i]) == Some(key))
            .collect();
        match positions.split_last() {
            Some((&last, earlier)) => {
                self.lines[last] = rendered;
                for &i in earlier.iter().rev() {
                    self.lines.remove(i);
                }
            }
            None => self.lines.push(rendered),
        }
    }

    /// Removes every assignment of `key`.
    pub fn remove(&mut self, key: &str) {
        self.lines.retain(|l| Self::key_of(l) != Some(key));
    }

    /// The file's text, each line ending in a newline.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}

fn unquote(v: &str) -> String {
    let bytes = v.as_bytes();
    if bytes.len() >= 2
        && (bytes[0] == b'"' || bytes[0] == b'\'')
        && bytes[bytes.len() - 1] == bytes[0]
    {
        v[1..v.len() - 1].to_string()
    } else {
        v.to_string()
    }
}

fn quote(v: &str) -> String {
    if !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-:/@+,".contains(c))
    {
        v.to_string()
    } else {
        format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// Accumulates a step's plan from "this path should hold this", so a guest
/// that is already right yields an empty plan.
#[derive(Debug, Default)]
pub struct PlanBuilder {
    changes: Vec<FileChange>,
    notes: Vec<String>,
}

impl PlanBuilder {
    /// An empty plan.
    pub fn new() -> Self {
        PlanBuilder::default()
    }

    /// Records a fact found on the way (`distribution: rhel 8.9`).
    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Makes `path` a regular file holding `content`: nothing when it already
    /// does, `replace-file` when it differs, `create-file` when it is absent.
    pub fn write(
        &mut self,
        guest: &dyn GuestRead,
        path: &str,
        content: impl Into<Vec<u8>>,
        mode: u32,
        reason: impl Into<String>,
    ) {
        let content = content.into();
        let kind = match guest.stat(path) {
            Ok(stat) if stat.kind == FileKind::Regular => {
                if guest.read_file(path).ok().as_deref() == Some(content.as_slice()) {
                    return;
                }
                ChangeKind::ReplaceFile
            }
            Ok(_) => ChangeKind::ReplaceFile,
            Err(_) => ChangeKind::CreateFile,
        };
        self.push(path, kind, content, mode, reason);
    }

    /// Removes `path` when it exists.
    pub fn remove(&mut self, guest: &dyn GuestRead, path: &str, reason: impl Into<String>) {
        if guest.stat(path).is_ok() {
            self.push(path, ChangeKind::Remove, Vec::new(), 0, reason);
        }
    }

    /// Creates directory `path` when it is absent.
    pub fn create_dir(
        &mut self,
        guest: &dyn GuestRead,
        path: &str,
        mode: u32,
        reason: impl Into<String>,
    ) {
        if guest.stat(path).is_err() {
            self.push(path, ChangeKind::CreateDir, Vec::new(), mode, reason);
        }
    }

    /// Makes `path` a symlink to `target` when it is not one already.
    pub fn symlink(
        &mut self,
        guest: &dyn GuestRead,
        path: &str,
        target: &str,
        reason: impl Into<String>,
    ) {
        match guest.stat(path) {
            Ok(stat) if stat.kind == FileKind::Symlink => {
                if guest.read_link(path).ok().as_deref() == Some(target) {
                    return;
                }
                self.push(
                    path,
                    ChangeKind::Remove,
                    Vec::new(),
                    0,
                    "replace the old link",
                );
            }
            Ok(_) => self.push(
                path,
                ChangeKind::Remove,
                Vec::new(),
                0,
                "make room for the link",
            ),
            Err(_) => {}
        }
        self.push(
            path,
            ChangeKind::CreateSymlink,
            target.as_bytes().to_vec(),
            0o777,
            reason,
        );
    }

    /// Whether any change was planned.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    fn push(
        &mut self,
        path: &str,
        kind: ChangeKind,
        content: Vec<u8>,
        mode: u32,
        reason: impl Into<String>,
    ) {
        self.changes.push(FileChange {
            path: path.to_string(),
            kind,
            content,
            mode,
            reason: reason.into(),
        });
    }

    /// The plan: `busy` as its summary when there are changes, `idle` when
    /// there are none.
    pub fn finish(self, busy: impl Into<String>, idle: impl Into<String>) -> StepPlan {
        StepPlan {
            summary: if self.changes.is_empty() {
                idle.into()
            } else {
                busy.into()
            },
            changes: self.changes,
            notes: self.notes,
        }
    }
}

/// Exports a step's `plan` function as a `guest-step` plugin and writes its
/// manifest. The export exists only in the wasm build: the same crate
/// compiles natively (as an rlib) for tests on fixture trees, and native
/// linkers reject the component's export names.
///
/// ```ignore
/// pub fn plan(guest: &dyn GuestRead, context: &StepContext) -> Result<StepPlan, Error> { ... }
///
/// homeward_sdk::guest_step_plugin! { id: "static-ip-reset", plan: plan }
/// ```
#[macro_export]
macro_rules! guest_step_plugin {
    (id: $id:literal, plan: $plan:path $(, $key:ident : $value:tt)* $(,)?) => {
        #[cfg(target_arch = "wasm32")]
        mod __homeward_guest_step {
            use $crate::guest_step::exports::homeward::plugin::post_step::{
                Guest, StepContext, StepPlan,
            };

            /// The exported component: forwards to the step's `plan`.
            pub struct Step;

            impl Guest for Step {
                fn plan(
                    root: &$crate::guest_fs::GuestFs,
                    context: StepContext,
                ) -> Result<StepPlan, $crate::Error> {
                    $plan(root, &context)
                }
            }

            $crate::plugin! {
                id: $id,
                kind: guest_step,
                component: Step
                $(, $key : $value)*
            }
        }
    };
}
