//! Fixture guest trees for the guest-step suite: small Linux roots as a
//! failed-over VM leaves them (DHCP in the cloud, the on-premises static
//! addressing lost), one per network-configuration family, plus an empty root
//! and a damaged one. They are data, written into a case's scratch directory.

use std::io;
use std::path::Path;

/// One entry of a fixture tree.
pub enum Entry {
    /// A regular file with this content.
    File(&'static [u8]),
    /// A directory (parents are made as needed anyway).
    Dir,
    /// A symlink to this target, as stored.
    Symlink(&'static str),
}

/// A fixture guest.
pub struct FixtureGuest {
    /// Short name used in case messages.
    pub name: &'static str,
    /// Its entries, parents before children.
    pub entries: &'static [(&'static str, Entry)],
}

impl FixtureGuest {
    /// Writes the tree under `root`, which must exist and be empty.
    pub fn write(&self, root: &Path) -> io::Result<()> {
        for (path, entry) in self.entries {
            let host = root.join(path.trim_start_matches('/'));
            if let Some(parent) = host.parent() {
                std::fs::create_dir_all(parent)?;
            }
            match entry {
                Entry::File(content) => std::fs::write(&host, content)?,
                Entry::Dir => std::fs::create_dir_all(&host)?,
                Entry::Symlink(target) => std::os::unix::fs::symlink(target, &host)?,
            }
        }
        Ok(())
    }
}

const LOCALTIME: (&str, Entry) = ("/etc/localtime", Entry::Symlink("/usr/share/zoneinfo/UTC"));

/// Guests a step should handle: each may be planned, or refused with a typed
/// error (a step may not support every family), but never trap.
pub const WELL_FORMED: &[FixtureGuest] = &[
    FixtureGuest {
        name: "rhel9-ifcfg",
        entries: &[
            ("/etc/os-release", Entry::File(b"NAME=\"Red Hat Enterprise Linux\"\nID=\"rhel\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"9.3\"\n")),
            ("/etc/hostname", Entry::File(b"app01\n")),
            ("/etc/motd", Entry::File(b"Authorized use only.\n")),
            ("/etc/sysconfig/network-scripts/ifcfg-eth0", Entry::File(b"DEVICE=eth0\nBOOTPROTO=dhcp\nONBOOT=yes\nHWADDR=00:0d:3a:11:22:33\nNM_CONTROLLED=yes\n")),
            ("/usr/sbin/NetworkManager", Entry::File(b"\x7fELF")),
            ("/usr/lib/systemd/system/NetworkManager.service", Entry::File(b"[Unit]\nDescription=Network Manager\n[Service]\nExecStart=/usr/sbin/NetworkManager --no-daemon\n[Install]\nWantedBy=multi-user.target\n")),
            ("/etc/systemd/system/multi-user.target.wants", Entry::Dir),
            LOCALTIME,
        ],
    },
    FixtureGuest {
        name: "debian12-interfaces",
        entries: &[
            ("/etc/os-release", Entry::File(b"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n")),
            ("/etc/hostname", Entry::File(b"db01\n")),
            ("/etc/network/interfaces", Entry::File(b"source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet dhcp\n")),
            ("/etc/network/interfaces.d", Entry::Dir),
            ("/etc/resolv.conf", Entry::File(b"nameserver 168.63.129.16\n")),
            LOCALTIME,
        ],
    },
    FixtureGuest {
        name: "ubuntu22-netplan",
        entries: &[
            ("/etc/os-release", Entry::File(b"NAME=\"Ubuntu\"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"22.04\"\n")),
            ("/etc/hostname", Entry::File(b"web01\n")),
            ("/etc/netplan/50-cloud-init.yaml", Entry::File(b"network:\n  version: 2\n  ethernets:\n    eth0:\n      dhcp4: true\n      match:\n        macaddress: 00:0d:3a:11:22:33\n      set-name: eth0\n")),
            LOCALTIME,
        ],
    },
    FixtureGuest {
        name: "sles15-ifcfg",
        entries: &[
            ("/etc/os-release", Entry::File(b"NAME=\"SLES\"\nID=\"sles\"\nID_LIKE=\"suse\"\nVERSION_ID=\"15.5\"\n")),
            ("/etc/hostname", Entry::File(b"erp01\n")),
            ("/etc/sysconfig/network/ifcfg-eth0", Entry::File(b"BOOTPROTO='dhcp'\nSTARTMODE='auto'\n")),
            LOCALTIME,
        ],
    },
    FixtureGuest {
        name: "rhel9-nm-keyfile",
        entries: &[
            ("/etc/os-release", Entry::File(b"NAME=\"Rocky Linux\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.3\"\n")),
            ("/etc/hostname", Entry::File(b"mq01\n")),
            ("/etc/NetworkManager/system-connections/eth0.nmconnection", Entry::File(b"[connection]\nid=eth0\ntype=ethernet\ninterface-name=eth0\n\n[ipv4]\nmethod=auto\n")),
            ("/usr/sbin/NetworkManager", Entry::File(b"\x7fELF")),
            LOCALTIME,
        ],
    },
];

/// A root with nothing in it (a disk whose root file system was not found).
pub const EMPTY: FixtureGuest = FixtureGuest {
    name: "empty",
    entries: &[],
};

/// A damaged root: binary and oversized configuration files, a file where a
/// directory is expected, a symlink loop and a link that leaves the root.
pub const DAMAGED: FixtureGuest = FixtureGuest {
    name: "damaged",
    entries: &[
        (
            "/etc/os-release",
            Entry::File(b"\xff\xfe\x00ID=\x00\x80\x81\nVERSION_ID=\"\n\xc3\x28"),
        ),
        ("/etc/hostname", Entry::File(&[b'x'; 70_000])),
        (
            "/etc/sysconfig/network-scripts",
            Entry::File(b"not a directory\n"),
        ),
        (
            "/etc/sysconfig/network/ifcfg-eth0",
            Entry::File(b"BOOTPROTO='dhcp\nIPADDR=999.1.1.1/77\n\x00\x00"),
        ),
        (
            "/etc/network/interfaces",
            Entry::File(b"iface\niface eth0 inet\n  address\n\xff\xff\n"),
        ),
        (
            "/etc/netplan/50-cloud-init.yaml",
            Entry::File(b"network: [\n  {{{\n\t- : :\n"),
        ),
        ("/etc/NetworkManager", Entry::Symlink("/etc/NetworkManager")),
        (
            "/etc/resolv.conf",
            Entry::Symlink("../../../../../../etc/shadow"),
        ),
        ("/etc/motd", Entry::Symlink("/etc/motd")),
    ],
};
