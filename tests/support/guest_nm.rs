//! Fixture guests for the `networkmanager-restore` step
//! (`tests/guest_step_nm_*.rs`): RHEL 8, CentOS 6, Debian 12, Ubuntu 22.04
//! and SLES 15 roots in temp dirs, with the files those distributions ship
//! (os-release, systemd units with their real `[Install]` sections, ifcfg,
//! `interfaces`, netplan, dpkg status, an rpm database stand-in), in the
//! states the cloud leaves them in. Also: running the step natively or as the
//! embedded wasm plugin, and applying a plan to the tree.

use crate::fixture_tree::{FixtureTree, planned_change};
use homeward::guest_fs::{DirTree, PlannedChange};
use homeward::plugin::{LoadedPlugin, PluginSettings, Runtime, RuntimeOptions};
use homeward_sdk::guest::DirGuest;
use homeward_sdk::guest_step::exports::homeward::plugin::post_step as sdk;
use std::sync::{Arc, OnceLock};

/// A guest root being built.
pub struct Guest {
    /// The root.
    pub tree: FixtureTree,
}

impl std::ops::Deref for Guest {
    type Target = FixtureTree;
    fn deref(&self) -> &FixtureTree {
        &self.tree
    }
}

impl Guest {
    /// An empty root.
    pub fn new() -> Guest {
        Guest {
            tree: FixtureTree::default(),
        }
    }

    /// The step's context (SDK side, for native calls).
    pub fn context() -> sdk::StepContext {
        sdk::StepContext {
            vm_name: "web01".to_string(),
            recorded_nics: Vec::new(),
            mac_map: Vec::new(),
        }
    }

    /// Plans the step natively on this tree.
    pub fn plan(&self) -> Result<sdk::StepPlan, homeward_sdk::Error> {
        homeward_networkmanager_restore::plan(
            &DirGuest::new(self.tree.dir.path()),
            &Self::context(),
        )
    }

    /// Applies a native plan through the host's `DirTree`.
    pub fn apply(&self, plan: &sdk::StepPlan) {
        let tree = DirTree::new(self.tree.dir.path()).expect("tree");
        for change in &plan.changes {
            tree.apply(&planned_change(change))
                .unwrap_or_else(|e| panic!("applying {change:?}: {e}"));
        }
    }

    /// Plans with the embedded wasm plugin, applies, plans again: returns
    /// both plans.
    pub fn plan_apply_replan_wasm(
        &self,
    ) -> (
        homeward::plugin::instance::StepPlan,
        homeward::plugin::instance::StepPlan,
    ) {
        let tree = Arc::new(DirTree::new(self.tree.dir.path()).expect("tree"));
        let ctx = crate::step_context("web01");
        let first = plugin()
            .instantiate()
            .expect("instance")
            .plan_guest_step(tree.clone(), &ctx)
            .expect("first plan");
        for change in &first.changes {
            tree.apply(&PlannedChange::from(change))
                .unwrap_or_else(|e| panic!("applying {change:?}: {e}"));
        }
        let second = plugin()
            .instantiate()
            .expect("instance")
            .plan_guest_step(tree, &ctx)
            .expect("second plan");
        (first, second)
    }

    /// Plans once with the embedded wasm plugin.
    pub fn plan_wasm(
        &self,
    ) -> Result<homeward::plugin::instance::StepPlan, homeward::plugin::PluginError> {
        let tree = Arc::new(DirTree::new(self.tree.dir.path()).expect("tree"));
        plugin()
            .instantiate()?
            .plan_guest_step(tree, &crate::step_context("web01"))
    }
}

impl Default for Guest {
    fn default() -> Self {
        Guest::new()
    }
}

/// The embedded plugin, loaded once per test binary.
fn plugin() -> &'static LoadedPlugin {
    static PLUGIN: OnceLock<(Runtime, LoadedPlugin)> = OnceLock::new();
    let (_, plugin) = PLUGIN.get_or_init(|| {
        let runtime = Runtime::new(RuntimeOptions::default()).expect("runtime");
        let p = homeward::embedded::NETWORKMANAGER_RESTORE;
        let plugin = runtime
            .load(p.wasm, p.id, PluginSettings::default())
            .expect("load networkmanager-restore");
        (runtime, plugin)
    });
    plugin
}

/// The change planned for `path`, if any (native plans).
pub fn change_at<'a>(plan: &'a sdk::StepPlan, path: &str) -> Option<&'a sdk::FileChange> {
    plan.changes.iter().find(|c| c.path == path)
}

/// RHEL 8's `NetworkManager.service`, as the package ships it.
pub const RHEL8_NM_UNIT: &str = "[Unit]
Description=Network Manager
Documentation=man:NetworkManager(8)
Wants=network.target
After=network-pre.target dbus.service
Before=network.target network.service

[Service]
Type=dbus
BusName=org.freedesktop.NetworkManager
ExecReload=/usr/bin/busctl call org.freedesktop.NetworkManager /org/freedesktop/NetworkManager org.freedesktop.NetworkManager Reload u 0
#ExecReload=/bin/kill -HUP $MAINPID
ExecStart=/usr/sbin/NetworkManager --no-daemon
Restart=on-failure
# NM doesn't want systemd to kill its children for it
KillMode=process
CapabilityBoundingSet=CAP_NET_ADMIN CAP_DAC_OVERRIDE CAP_NET_RAW CAP_NET_BIND_SERVICE CAP_SETGID CAP_SETUID CAP_SYS_MODULE CAP_AUDIT_WRITE CAP_KILL CAP_SYS_CHROOT

ProtectSystem=true
ProtectHome=read-only

# We require file descriptors for DHCP etc. When activating many interfaces,
# the default limit of 1024 is easily reached.
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
Alias=dbus-org.freedesktop.NetworkManager.service
Also=NetworkManager-dispatcher.service

# We want to enable NetworkManager-wait-online.service whenever this service
# is enabled. NetworkManager-wait-online.service has
# WantedBy=network-online.target, so enabling it only has an effect if
# network-online.target itself is enabled or pulled in by some other unit.
Also=NetworkManager-wait-online.service
";

/// `NetworkManager-dispatcher.service`.
pub const NM_DISPATCHER_UNIT: &str = "[Unit]
Description=Network Manager Script Dispatcher Service

[Service]
Type=dbus
BusName=org.freedesktop.nm_dispatcher
ExecStart=/usr/libexec/nm-dispatcher

# We want to allow scripts to spawn long-running daemons, so tell
# systemd to not clean up when nm-dispatcher exits
KillMode=process

[Install]
Alias=dbus-org.freedesktop.nm-dispatcher.service
";

/// `NetworkManager-wait-online.service`.
pub const NM_WAIT_ONLINE_UNIT: &str = "[Unit]
Description=Network Manager Wait Online
Documentation=man:nm-online(1)
Requires=NetworkManager.service
After=NetworkManager.service
Before=network-online.target

[Service]
# `nm-online -s` waits until the point when NetworkManager logs
# \"startup complete\". That is when startup actions are settled and
# devices and profiles reached a conclusive activated or deactivated
# state. It depends on which profiles are configured to autoconnect and
# also depends on profile settings like ipv4.may-fail/ipv6.may-fail,
# which affect when a profile is considered fully activated.
# Check NetworkManager logs to find out why wait-online takes a certain
# time.

Type=oneshot
ExecStart=/usr/bin/nm-online -s -q
RemainAfterExit=yes

# Set $NM_ONLINE_TIMEOUT variable for timeout in seconds.
# Edit with `systemctl edit NetworkManager-wait-online`.
#
# Note, this timeout should commonly not be reached. If your boot
# gets delayed too long, then the solution is usually not to decrease
# the timeout, but to fix your setup so that the connected state
# gets reached earlier.
Environment=NM_ONLINE_TIMEOUT=60

[Install]
WantedBy=network-online.target
";

/// RHEL 8's `ifcfg-eth0` after the cloud: DHCP, NetworkManager kept away.
pub const RHEL_IFCFG_ETH0: &str = "# Generated by cloud-init / Azure Linux agent
TYPE=Ethernet
PROXY_METHOD=none
BROWSER_ONLY=no
BOOTPROTO=dhcp
DEFROUTE=yes
IPV4_FAILURE_FATAL=no
IPV6INIT=no
NAME=eth0
UUID=5fb06bd0-0bb0-7ffb-45f1-d6edd65f3e03
DEVICE=eth0
ONBOOT=yes
NM_CONTROLLED=\"no\"
HWADDR=00:50:56:aa:bb:01
";

/// An rpm database stand-in: binary noise with other packages' headers
/// (including `NetworkManager-libnm`, whose name only starts like it) and,
/// when `with_nm`, NetworkManager's header strings as rpm stores them.
pub fn rpmdb(with_nm: bool) -> Vec<u8> {
    let mut db = Vec::new();
    db.extend_from_slice(b"SQLite format 3\0");
    db.extend(std::iter::repeat_n(0u8, 4080));
    let mut header = |strings: &[&str]| {
        db.extend_from_slice(&[0, 0, 0, 0x52, 0, 0, 0x1f, 0x40, 0x8e, 0xad, 0xe8, 0x01]);
        for s in strings {
            db.extend_from_slice(s.as_bytes());
            db.push(0);
        }
        db.extend((0u8..=255).cycle().take(700));
    };
    header(&[
        "C",
        "bash",
        "4.4.20",
        "4.el8_6",
        "The GNU Bourne Again shell",
    ]);
    header(&[
        "C",
        "NetworkManager-libnm",
        "1.40.16",
        "15.el8",
        "Libraries for adding NetworkManager support to applications",
    ]);
    header(&[
        "C",
        "openssh-server",
        "8.0p1",
        "19.el8_8",
        "An open source SSH server daemon",
    ]);
    if with_nm {
        header(&[
            "C",
            "NetworkManager",
            "1.40.16",
            "15.el8",
            "Network connection manager and user applications",
        ]);
    }
    header(&[
        "C",
        "systemd",
        "239",
        "78.el8",
        "System and Service Manager",
    ]);
    db
}

/// The systemd files every systemd guest has: the manager, sshd enabled.
fn systemd_base(g: &Guest, lib: &str) {
    g.write_mode(&format!("{lib}/systemd/systemd"), b"\x7fELF", 0o755);
    g.write_mode(
        &format!("{lib}/systemd/system/sshd.service"),
        "[Unit]\nDescription=OpenSSH server daemon\n\n[Service]\nExecStart=/usr/sbin/sshd -D\n\n[Install]\nWantedBy=multi-user.target\n",
        0o644,
    );
    g.symlink(
        "/etc/systemd/system/multi-user.target.wants/sshd.service",
        &format!("{lib}/systemd/system/sshd.service"),
    );
}

/// RHEL 8.9 with NetworkManager's package removed by the cloud: no daemon,
/// no unit, no header in the rpm database, `NM_CONTROLLED=no`.
pub fn rhel8_removed() -> Guest {
    let g = Guest::new();
    g.write_mode(
        "/etc/os-release",
        "NAME=\"Red Hat Enterprise Linux\"\nVERSION=\"8.9 (Ootpa)\"\nID=\"rhel\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"8.9\"\nPLATFORM_ID=\"platform:el8\"\nPRETTY_NAME=\"Red Hat Enterprise Linux 8.9 (Ootpa)\"\nANSI_COLOR=\"0;31\"\n",
        0o644,
    );
    g.write_mode(
        "/etc/redhat-release",
        "Red Hat Enterprise Linux release 8.9 (Ootpa)\n",
        0o644,
    );
    systemd_base(&g, "/usr/lib");
    g.write_mode("/usr/bin/dnf", "#!/usr/bin/python3\n", 0o755);
    g.write_mode("/var/lib/rpm/Packages", rpmdb(false), 0o644);
    g.write_mode(
        "/etc/sysconfig/network-scripts/ifcfg-eth0",
        RHEL_IFCFG_ETH0,
        0o644,
    );
    g.write_mode(
        "/etc/sysconfig/network-scripts/ifcfg-lo",
        "DEVICE=lo\nIPADDR=127.0.0.1\nNETMASK=255.0.0.0\nNETWORK=127.0.0.0\nBROADCAST=127.255.255.255\nONBOOT=yes\nNAME=loopback\n",
        0o644,
    );
    g.mkdir("/usr/local/lib");
    g.mkdir("/var/log");
    g
}

/// RHEL 8.9 with NetworkManager installed but masked and disabled.
pub fn rhel8_masked() -> Guest {
    let g = rhel8_removed();
    g.write_mode("/usr/sbin/NetworkManager", b"\x7fELF", 0o755);
    g.write_mode(
        "/usr/lib/systemd/system/NetworkManager.service",
        RHEL8_NM_UNIT,
        0o644,
    );
    g.write_mode(
        "/usr/lib/systemd/system/NetworkManager-dispatcher.service",
        NM_DISPATCHER_UNIT,
        0o644,
    );
    g.write_mode(
        "/usr/lib/systemd/system/NetworkManager-wait-online.service",
        NM_WAIT_ONLINE_UNIT,
        0o644,
    );
    g.write_mode("/var/lib/rpm/Packages", rpmdb(true), 0o644);
    g.symlink("/etc/systemd/system/NetworkManager.service", "/dev/null");
    g.write_mode(
        "/etc/NetworkManager/NetworkManager.conf",
        "# Configuration file for NetworkManager.\n#\n# See \"man 5 NetworkManager.conf\" for details.\n\n[main]\n#plugins=ifcfg-rh\n\n[logging]\n#level=DEBUG\n#domains=ALL\n",
        0o644,
    );
    g.mkdir("/etc/NetworkManager/system-connections");
    g
}

/// CentOS 6.10 (SysV init) with NetworkManager removed.
pub fn centos6_removed() -> Guest {
    let g = Guest::new();
    g.write_mode(
        "/etc/redhat-release",
        "CentOS release 6.10 (Final)\n",
        0o644,
    );
    g.write_mode("/sbin/init", b"\x7fELF", 0o755);
    g.write_mode("/usr/bin/yum", "#!/usr/bin/python\n", 0o755);
    g.write_mode("/var/lib/rpm/Packages", rpmdb(false), 0o644);
    g.write_mode(
        "/etc/rc.d/rc.local",
        "#!/bin/sh\n#\n# This script will be executed *after* all the other init scripts.\n# You can put your own initialization stuff in here if you don't\n# want to do the full Sys V style init stuff.\n\ntouch /var/lock/subsys/local\n",
        0o755,
    );
    g.symlink("/etc/rc.local", "rc.d/rc.local");
    for level in 0..=6 {
        g.mkdir(&format!("/etc/rc.d/rc{level}.d"));
    }
    g.symlink("/etc/rc.d/rc3.d/S10network", "../init.d/network");
    g.write_mode(
        "/etc/rc.d/init.d/network",
        "#! /bin/bash\n# chkconfig: 2345 10 90\n",
        0o755,
    );
    g.write_mode(
        "/etc/sysconfig/network-scripts/ifcfg-eth0",
        RHEL_IFCFG_ETH0,
        0o644,
    );
    g.mkdir("/usr/local/lib");
    g
}

/// CentOS 6.10 with NetworkManager installed, its init script not linked.
pub fn centos6_disabled() -> Guest {
    let g = centos6_removed();
    g.write_mode("/usr/sbin/NetworkManager", b"\x7fELF", 0o755);
    g.write_mode(
        "/etc/rc.d/init.d/NetworkManager",
        "#! /bin/bash\n#\n# NetworkManager:   NetworkManager daemon\n#\n# chkconfig: - 23 84\n# description:  This is a daemon for automatically switching network \\\n#               connections to the best available connection.\n#\n# processname: NetworkManager\n# pidfile: /var/run/NetworkManager/NetworkManager.pid\n#\n",
        0o755,
    );
    g.symlink(
        "/etc/rc.d/rc3.d/K84NetworkManager",
        "../init.d/NetworkManager",
    );
    g.symlink(
        "/etc/rc.d/rc0.d/K84NetworkManager",
        "../init.d/NetworkManager",
    );
    g.write_mode("/var/lib/rpm/Packages", rpmdb(true), 0o644);
    g
}

/// A dpkg status file with `network-manager` in `state`.
pub fn dpkg_status(state: &str) -> String {
    format!(
        "Package: ifupdown\nStatus: install ok installed\nPriority: important\nSection: admin\nInstalled-Size: 241\nMaintainer: Debian Install System Team <debian-boot@lists.debian.org>\nArchitecture: amd64\nMulti-Arch: foreign\nVersion: 0.8.41\nDepends: libc6 (>= 2.34), adduser, lsb-base\nDescription: high level tools to configure network interfaces\n\n\
Package: network-manager\nStatus: {state}\nPriority: optional\nSection: net\nInstalled-Size: 15178\nMaintainer: Utopia Maintenance Team <pkg-utopia-maintainers@lists.alioth.debian.org>\nArchitecture: amd64\nVersion: 1.42.4-1\nConffiles:\n /etc/NetworkManager/NetworkManager.conf 2d0b2a2ee4f8a1f2e5c8d0e4e1c6a0b3\n /etc/dbus-1/system.d/org.freedesktop.NetworkManager.conf 6c8d3e3f0a5d0b8c1d2e3f4a5b6c7d8e\nDescription: network management framework (daemon and userspace tools)\n\n\
Package: openssh-server\nStatus: install ok installed\nPriority: optional\nSection: net\nVersion: 1:9.2p1-2+deb12u2\nDescription: secure shell (SSH) server, for secure access from remote machines\n"
    )
}

/// Debian's `NetworkManager.conf`.
pub const DEBIAN_NM_CONF: &str = "[main]\nplugins=ifupdown,keyfile\n\n[ifupdown]\nmanaged=false\n";

/// Debian 12 with `network-manager` removed (`deinstall ok config-files`),
/// its configuration left, a profile set aside by the cloud agent.
pub fn debian12_config_files() -> Guest {
    let g = Guest::new();
    g.write_mode(
        "/etc/os-release",
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\nHOME_URL=\"https://www.debian.org/\"\n",
        0o644,
    );
    g.write_mode("/etc/debian_version", "12.5\n", 0o644);
    systemd_base(&g, "/lib");
    g.write_mode(
        "/var/lib/dpkg/status",
        dpkg_status("deinstall ok config-files"),
        0o644,
    );
    g.write_mode(
        "/etc/NetworkManager/NetworkManager.conf",
        DEBIAN_NM_CONF,
        0o644,
    );
    g.write_mode(
        "/etc/network/interfaces",
        "# This file describes the network interfaces available on your system\n# and how to activate them. For more information, see interfaces(5).\n\nsource /etc/network/interfaces.d/*\n\n# The loopback network interface\nauto lo\niface lo inet loopback\n\n# The primary network interface\nallow-hotplug ens192\niface ens192 inet dhcp\n",
        0o644,
    );
    g.write_mode(
        "/etc/NetworkManager/system-connections/Wired connection 1.nmconnection.bak",
        "[connection]\nid=Wired connection 1\nuuid=8f4c2ab0-1d5e-3c8b-9a8f-0b7c2d4e6f10\ntype=ethernet\ninterface-name=ens192\n\n[ethernet]\nmac-address=00:50:56:AA:BB:02\n\n[ipv4]\naddress1=192.168.10.21/24,192.168.10.1\ndns=192.168.10.5;\nmethod=manual\n\n[ipv6]\nmethod=ignore\n",
        0o600,
    );
    g.mkdir("/usr/local/lib");
    g
}

/// Ubuntu 22.04 with NetworkManager installed and enabled: nothing to do.
pub fn ubuntu_enabled() -> Guest {
    let g = Guest::new();
    g.write_mode(
        "/etc/os-release",
        "PRETTY_NAME=\"Ubuntu 22.04.4 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\nVERSION=\"22.04.4 LTS (Jammy Jellyfish)\"\nID=ubuntu\nID_LIKE=debian\n",
        0o644,
    );
    systemd_base(&g, "/lib");
    g.write_mode("/usr/sbin/NetworkManager", b"\x7fELF", 0o755);
    g.write_mode(
        "/lib/systemd/system/NetworkManager.service",
        RHEL8_NM_UNIT,
        0o644,
    );
    g.write_mode(
        "/lib/systemd/system/NetworkManager-dispatcher.service",
        NM_DISPATCHER_UNIT,
        0o644,
    );
    g.write_mode(
        "/lib/systemd/system/NetworkManager-wait-online.service",
        NM_WAIT_ONLINE_UNIT,
        0o644,
    );
    g.symlink(
        "/etc/systemd/system/multi-user.target.wants/NetworkManager.service",
        "/lib/systemd/system/NetworkManager.service",
    );
    g.symlink(
        "/etc/systemd/system/dbus-org.freedesktop.NetworkManager.service",
        "/lib/systemd/system/NetworkManager.service",
    );
    g.symlink(
        "/etc/systemd/system/dbus-org.freedesktop.nm-dispatcher.service",
        "/lib/systemd/system/NetworkManager-dispatcher.service",
    );
    g.symlink(
        "/etc/systemd/system/network-online.target.wants/NetworkManager-wait-online.service",
        "/lib/systemd/system/NetworkManager-wait-online.service",
    );
    g.write_mode(
        "/var/lib/dpkg/status",
        dpkg_status("install ok installed"),
        0o644,
    );
    g.write_mode(
        "/etc/NetworkManager/NetworkManager.conf",
        "[main]\nplugins=ifupdown,keyfile\n\n[ifupdown]\nmanaged=false\n\n[device]\nwifi.scan-rand-mac-address=no\n",
        0o644,
    );
    g.write_mode(
        "/etc/netplan/01-network-manager-all.yaml",
        "# Let NetworkManager manage all devices on this system\nnetwork:\n  version: 2\n  renderer: NetworkManager\n",
        0o600,
    );
    g
}

/// SLES 15 SP5 with NetworkManager removed; wicked owns `network.service`.
pub fn sles15_removed() -> Guest {
    let g = Guest::new();
    g.write_mode(
        "/etc/os-release",
        "NAME=\"SLES\"\nVERSION=\"15-SP5\"\nVERSION_ID=\"15.5\"\nPRETTY_NAME=\"SUSE Linux Enterprise Server 15 SP5\"\nID=\"sles\"\nID_LIKE=\"suse\"\nANSI_COLOR=\"0;32\"\nCPE_NAME=\"cpe:/o:suse:sles:15:sp5\"\n",
        0o644,
    );
    systemd_base(&g, "/usr/lib");
    g.write_mode("/usr/lib/sysimage/rpm/Packages.db", rpmdb(false), 0o644);
    g.symlink("/var/lib/rpm", "../../usr/lib/sysimage/rpm");
    g.write_mode("/usr/lib/systemd/system/wicked.service", "[Unit]\nDescription=wicked managed network interfaces\n\n[Install]\nWantedBy=multi-user.target\nAlias=network.service\n", 0o644);
    g.symlink(
        "/etc/systemd/system/network.service",
        "/usr/lib/systemd/system/wicked.service",
    );
    g.write_mode(
        "/etc/sysconfig/network/ifcfg-eth0",
        "BOOTPROTO='dhcp'\nSTARTMODE='auto'\nDHCLIENT_SET_HOSTNAME='yes'\n",
        0o644,
    );
    g.mkdir("/usr/local/lib");
    g
}
