//! The first-boot action that reinstalls NetworkManager when the cloud
//! removed it.
//!
//! A package cannot be installed offline from here (no package manager runs
//! in the sandbox, and the repositories are on the network), so, like
//! virt-v2v's firstboot, the step leaves a script that runs once at the next
//! boot: it installs the package with the distribution's package manager,
//! retrying while the network comes up, enables and starts NetworkManager,
//! and then removes itself and whatever started it. On failure it stays and
//! runs again at the next boot; everything goes to
//! `/var/log/homeward-firstboot.log`.
//!
//! systemd guests start it with a oneshot unit wanted by `multi-user.target`;
//! SysV guests with a marked block in `rc.local`.

use crate::detect::Init;
use crate::plan::{Plan, ensure_dirs};
use crate::systemd::ETC;
use homeward_sdk::Error;
use homeward_sdk::guest::{Distro, Family, GuestRead};
use homeward_sdk::types::FileKind;

/// The script (0755).
pub const SCRIPT: &str = "/usr/local/lib/homeward/firstboot-networkmanager.sh";
/// Its directory.
const SCRIPT_DIR: &str = "/usr/local/lib/homeward";
/// The oneshot unit's name.
pub const UNIT_NAME: &str = "homeward-firstboot-networkmanager.service";
/// The log every run appends to.
pub const LOG: &str = "/var/log/homeward-firstboot.log";
/// The first and last lines of the `rc.local` block.
pub const BLOCK_BEGIN: &str = "# BEGIN homeward firstboot-networkmanager";
/// See [`BLOCK_BEGIN`].
pub const BLOCK_END: &str = "# END homeward firstboot-networkmanager";
/// Install attempts before giving up until the next boot, and the pause
/// between them.
const ATTEMPTS: u32 = 5;
const PAUSE_SECONDS: u32 = 30;

/// The package manager that reinstalls NetworkManager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installer {
    /// RHEL 8+, Fedora.
    Dnf,
    /// RHEL/CentOS 5 to 7.
    Yum,
    /// Debian, Ubuntu.
    Apt,
    /// SLES, openSUSE.
    Zypper,
}

impl Installer {
    /// The package manager for `distro`: its family decides, and on RHEL the
    /// binary on the disk (`dnf` since RHEL 8, `yum` before), then the
    /// version. `None` for a family the step does not know.
    pub fn for_guest(guest: &dyn GuestRead, distro: &Distro) -> Option<Installer> {
        match distro.family {
            Family::RedHat => {
                if guest.exists("/usr/bin/dnf") {
                    Some(Installer::Dnf)
                } else if guest.exists("/usr/bin/yum") {
                    Some(Installer::Yum)
                } else {
                    let major = distro
                        .version_id
                        .split('.')
                        .next()
                        .and_then(|m| m.parse::<u32>().ok())
                        .unwrap_or(0);
                    let dnf = distro.id == "fedora" || major >= 8;
                    Some(if dnf { Installer::Dnf } else { Installer::Yum })
                }
            }
            Family::Debian => Some(Installer::Apt),
            Family::Suse => Some(Installer::Zypper),
            Family::Other => None,
        }
    }

    /// Its command name.
    pub fn name(self) -> &'static str {
        match self {
            Installer::Dnf => "dnf",
            Installer::Yum => "yum",
            Installer::Apt => "apt-get",
            Installer::Zypper => "zypper",
        }
    }

    /// The package's name in this family.
    pub fn package(self) -> &'static str {
        match self {
            Installer::Apt => "network-manager",
            Installer::Dnf | Installer::Yum | Installer::Zypper => "NetworkManager",
        }
    }

    /// The body of the script's `install_networkmanager` function. rpm
    /// families reinstall when the database still has the package (files
    /// deleted under it) and install otherwise; apt's `--reinstall` does
    /// both, and `--force-confmiss` brings back deleted configuration files
    /// (a `deinstall ok config-files` package keeps its records of them).
    fn install_commands(self) -> String {
        match self {
            Installer::Dnf | Installer::Yum => {
                let m = self.name();
                format!(
                    "    if rpm -q NetworkManager >/dev/null 2>&1; then\n        \
                     {m} -y reinstall NetworkManager\n    else\n        \
                     {m} -y install NetworkManager\n    fi\n"
                )
            }
            Installer::Apt => "    export DEBIAN_FRONTEND=noninteractive\n    \
                 apt-get update &&\n        \
                 apt-get install -y --reinstall -o Dpkg::Options::=--force-confdef \
                 -o Dpkg::Options::=--force-confold -o Dpkg::Options::=--force-confmiss \
                 network-manager\n"
                .to_string(),
            Installer::Zypper => "    zypper -n install -f NetworkManager\n".to_string(),
        }
    }
}

/// Where a SysV guest's `rc.local` is: `/etc/rc.d/rc.local` on RHEL (the
/// `/etc/rc.local` there is a link to it), else `/etc/rc.local`, following
/// one symlink so the link itself is never replaced by a file.
fn rc_local(guest: &dyn GuestRead, family: Family) -> String {
    if family == Family::RedHat {
        return "/etc/rc.d/rc.local".to_string();
    }
    let path = "/etc/rc.local";
    let is_link = guest.stat(path).is_ok_and(|s| s.kind == FileKind::Symlink);
    match guest.read_link(path) {
        Ok(target) if is_link && target.starts_with('/') => target,
        Ok(target) if is_link && !target.is_empty() && !target.contains("..") => {
            format!("/etc/{target}")
        }
        _ => path.to_string(),
    }
}

/// The script for this package manager and init system.
fn script(installer: Installer, init: Init, family: Family, rc_local: &str) -> String {
    let package = installer.package();
    let (enable, cleanup) = match init {
        Init::Systemd => (
            "systemctl enable NetworkManager.service\n\
             systemctl start NetworkManager.service\n"
                .to_string(),
            format!(
                "systemctl disable {UNIT_NAME}\n\
                 rm -f {ETC}/{UNIT_NAME} {ETC}/multi-user.target.wants/{UNIT_NAME}\n\
                 systemctl daemon-reload\n"
            ),
        ),
        Init::SysV => {
            let service = if family == Family::Debian {
                "update-rc.d network-manager defaults\nservice network-manager start\n"
            } else {
                "chkconfig NetworkManager on\nservice NetworkManager start\n"
            };
            (
                service.to_string(),
                format!("sed -i '/^{BLOCK_BEGIN}$/,/^{BLOCK_END}$/d' {rc_local}\n"),
            )
        }
    };
    format!(
        "#!/bin/sh\n\
         # Written by Homeward's networkmanager-restore step after failback.\n\
         # The cloud removed the {package} package; this reinstalls it from the\n\
         # distribution's repositories, enables and starts it, then removes itself.\n\
         # When the network or the repositories are not reachable it retries, and\n\
         # failing that stays in place and runs again at the next boot.\n\
         LOG={LOG}\n\
         exec >>\"$LOG\" 2>&1\n\
         log() {{ echo \"$(date '+%Y-%m-%d %H:%M:%S') homeward firstboot: $*\"; }}\n\
         \n\
         install_networkmanager() {{\n\
         {install}\
         }}\n\
         \n\
         log \"reinstalling {package} with {manager}\"\n\
         attempt=1\n\
         until install_networkmanager; do\n\
         \x20   if [ \"$attempt\" -ge {ATTEMPTS} ]; then\n\
         \x20       log \"{package} could not be installed after $attempt attempts; trying again at the next boot\"\n\
         \x20       exit 1\n\
         \x20   fi\n\
         \x20   log \"attempt $attempt failed (network or repository not ready?); retrying in {PAUSE_SECONDS} s\"\n\
         \x20   attempt=$((attempt + 1))\n\
         \x20   sleep {PAUSE_SECONDS}\n\
         done\n\
         \n\
         log \"enabling and starting NetworkManager\"\n\
         {enable}\
         {cleanup}\
         rm -f {SCRIPT}\n\
         log \"NetworkManager is back; this first-boot action removed itself\"\n\
         exit 0\n",
        install = installer.install_commands(),
        manager = installer.name(),
    )
}

/// The oneshot unit that runs the script once the network is up.
fn unit() -> String {
    format!(
        "# Written by Homeward's networkmanager-restore step after failback.\n\
         [Unit]\n\
         Description=Homeward: reinstall NetworkManager after failback (runs once)\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         ConditionPathExists={SCRIPT}\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart={SCRIPT}\n\
         TimeoutStartSec=30min\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n"
    )
}

/// The `rc.local` block that runs the script; the script deletes it.
fn block() -> String {
    format!(
        "{BLOCK_BEGIN}\n\
         # Reinstalls NetworkManager once after failback; the script removes this block.\n\
         if [ -x {SCRIPT} ]; then\n\
         \x20   {SCRIPT}\n\
         fi\n\
         {BLOCK_END}\n"
    )
}

/// `text` with the block before its final `exit 0` (Debian's `rc.local`
/// ends with one, and nothing after it runs), or at its end.
fn with_block(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let exit_at = lines
        .iter()
        .rposition(|l| !l.trim().is_empty())
        .filter(|&i| lines.get(i).is_some_and(|l| l.trim() == "exit 0"));
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        if Some(i) == exit_at {
            out.push_str(&block());
        }
        out.push_str(line);
        out.push('\n');
    }
    if exit_at.is_none() {
        out.push_str(&block());
    }
    out
}

/// Plans the first-boot reinstall. `unsupported` for a distribution whose
/// package manager is unknown, and for SUSE without systemd (SLES 11 hands
/// NetworkManager to `/etc/sysconfig/network/config`, not to init links).
pub fn plan(
    guest: &dyn GuestRead,
    plan: &mut Plan,
    distro: Option<&Distro>,
    init: Init,
) -> Result<(), Error> {
    let Some((distro, installer)) = distro.and_then(|d| Some((d, Installer::for_guest(guest, d)?)))
    else {
        let found = distro.map_or_else(
            || "no /etc/os-release or release file".to_string(),
            |d| format!("{} (ID={})", d.pretty_name, d.id),
        );
        return Err(Error::unsupported(format!(
            "NetworkManager is not installed and the distribution is unknown ({found}): cannot tell which package manager reinstalls NetworkManager; install it by hand on the guest's first boot (e.g. `dnf install NetworkManager`, `apt-get install network-manager` or `zypper install NetworkManager`), then `systemctl enable --now NetworkManager`"
        )));
    };
    if init == Init::SysV && distro.family == Family::Suse {
        return Err(Error::unsupported(format!(
            "NetworkManager is not installed on {} and the guest boots with SysV init: this step reinstalls it only on systemd SUSE guests; after boot run `zypper install NetworkManager`, set NETWORKMANAGER=\"yes\" in /etc/sysconfig/network/config and restart the network",
            distro.pretty_name
        )));
    }
    plan.note(format!(
        "package manager: {} (package {})",
        installer.name(),
        installer.package()
    ));
    plan.note(format!(
        "the reinstall needs the network and a reachable {} repository at first boot; see {LOG}",
        installer.name()
    ));

    let rc_local = rc_local(guest, distro.family);
    let script = script(installer, init, distro.family, &rc_local);
    plan.concern(
        format!(
            "reinstall NetworkManager at first boot ({} install {})",
            installer.name(),
            installer.package()
        ),
        |b| {
            ensure_dirs(guest, b, SCRIPT_DIR);
            b.write(
                guest,
                SCRIPT,
                script.as_bytes(),
                0o755,
                "first-boot action: reinstall, enable and start NetworkManager, then remove itself",
            );
        },
    );
    plan.fix_mode(
        guest,
        SCRIPT,
        script.as_bytes(),
        0o755,
        "the first-boot script must be executable",
    );

    match init {
        Init::Systemd => {
            let unit = unit();
            let path = format!("{ETC}/{UNIT_NAME}");
            plan.concern(format!("run it from {UNIT_NAME}"), |b| {
                ensure_dirs(guest, b, &format!("{ETC}/multi-user.target.wants"));
                b.write(
                    guest,
                    &path,
                    unit.as_bytes(),
                    0o644,
                    "oneshot unit that runs the first-boot script once the network is online",
                );
                b.symlink(
                    guest,
                    &format!("{ETC}/multi-user.target.wants/{UNIT_NAME}"),
                    &path,
                    format!("enable {UNIT_NAME} (multi-user.target wants it)"),
                );
            });
            plan.fix_mode(guest, &path, unit.as_bytes(), 0o644, "unit files are 0644");
        }
        Init::SysV => {
            let current = guest.read_text(&rc_local);
            let has_block = current
                .as_deref()
                .is_some_and(|t| t.lines().any(|l| l == BLOCK_BEGIN));
            let content = match (&current, has_block) {
                (Some(text), true) => text.clone(),
                (Some(text), false) => with_block(text),
                (None, _) => format!("#!/bin/sh\n{}", block()),
            };
            plan.concern(format!("run it from {rc_local}"), |b| {
                if current.is_none() {
                    ensure_dirs(
                        guest,
                        b,
                        rc_local.rsplit_once('/').map_or("/etc", |(d, _)| d),
                    );
                }
                b.write(
                    guest,
                    &rc_local,
                    content.as_bytes(),
                    0o755,
                    "run the first-boot script once at the end of boot (SysV)",
                );
            });
            plan.fix_mode(
                guest,
                &rc_local,
                content.as_bytes(),
                0o755,
                "rc.local runs only when it is executable",
            );
        }
    }
    Ok(())
}
