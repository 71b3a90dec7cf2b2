//! The guest post-steps on real guest disks, end to end through
//! `homeward guest apply`: the host resolves the partitions and LVM volumes,
//! finds the root by its fstab, mounts what the fstab lists, runs the embedded
//! step plugins and writes through the embedded file-system handlers. The
//! results are read back by independent readers (`debugfs`, `grub-fstest`)
//! and judged by the file systems' own checkers.

use homeward::disk::BlockDevice;
use homeward_tests::fs_images::*;
use homeward_tests::guest_disks::*;
use homeward_tests::{homeward, write_file};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const NICS: &str = r#"vm-name = "web01"
[[nic]]
mac = "00:50:56:aa:bb:01"
device = "eth0"
addresses = ["10.0.0.5/24"]
gateways = ["10.0.0.1"]
dns = ["10.0.0.2"]
"#;

/// The cloud's MAC for the NIC recorded as 00:50:56:aa:bb:01.
const CLOUD_MAC: &str = "00:0d:3a:11:22:33";

fn entry_file(path: &str, text: &str) -> TreeEntry {
    TreeEntry::File(PathBuf::from(path), text.as_bytes().to_vec())
}

fn dirs(paths: &[&str]) -> Vec<TreeEntry> {
    paths
        .iter()
        .map(|p| TreeEntry::Dir(PathBuf::from(p)))
        .collect()
}

/// The bytes of volume `id` of `disk`, in a file of their own, for the
/// checkers (which read whole images).
fn volume_file(dir: &Path, disk: &Path, id: &str) -> PathBuf {
    let device: Arc<dyn BlockDevice> =
        Arc::from(homeward::disk::open(disk, false, None).expect("open disk"));
    let layout = homeward::disk::layout::resolve(device).expect("layout");
    let volume = layout.volume(id).expect("volume");
    let mut bytes = vec![0u8; volume.device.capacity() as usize];
    volume.device.read_at(&mut bytes, 0).expect("read volume");
    let path = dir.join(format!("{}.vol", id.replace('/', "_")));
    std::fs::write(&path, bytes).expect("write volume");
    path
}

fn apply(disk: &Path, nics: &Path) -> (bool, String) {
    homeward(&[
        "guest",
        "apply",
        "--yes",
        "--disk",
        &disk.display().to_string(),
        "--nics",
        &nics.display().to_string(),
    ])
}

fn plan(disk: &Path, nics: &Path) -> (bool, String) {
    homeward(&[
        "guest",
        "plan",
        "--disk",
        &disk.display().to_string(),
        "--nics",
        &nics.display().to_string(),
    ])
}

#[test]
fn debian_from_debootstrap_on_ext4_comes_back_static_and_clean() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = debootstrap_root(dir.path());
    // The cloud state: DHCP on eth0, no NetworkManager (minbase has none).
    std::fs::write(
        root.join("etc/network/interfaces"),
        "source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet dhcp\n",
    )
    .expect("interfaces");
    std::fs::write(root.join("etc/fstab"), "# <file system> <mount point> <type> <options> <dump> <pass>\nLABEL=debroot / ext4 errors=remount-ro 0 1\n").expect("fstab");
    let fs = ext4_fs_from_dir(dir.path(), "debroot", 512, &root);
    let disk = mbr_disk(dir.path(), "debian.img", &[&fs]);
    let nics = write_file(dir.path(), "nics.toml", NICS);

    let (ok, text) = apply(&disk, &nics);
    assert!(ok, "{text}");
    assert!(text.contains("second run: nothing to do"), "{text}");
    let (ok, again) = plan(&disk, &nics);
    assert!(
        ok && !again.contains("[planned]"),
        "a second run changes nothing:\n{again}"
    );

    let p1 = volume_file(dir.path(), &disk, "p1");
    homeward_tests::fs_ext4::assert_fsck_clean(&p1);
    let interfaces = String::from_utf8(homeward_tests::fs_ext4::debugfs_cat(
        &p1,
        "/etc/network/interfaces",
    ))
    .expect("text");
    assert!(
        interfaces.contains("iface eth0 inet static"),
        "{interfaces}"
    );
    assert!(interfaces.contains("10.0.0.5"), "{interfaces}");
    assert!(interfaces.contains("gateway 10.0.0.1"), "{interfaces}");
    assert!(
        interfaces.contains("iface lo inet loopback"),
        "{interfaces}"
    );
    // NetworkManager is reinstalled at first boot by a unit that removes itself.
    let unit = grub_cat(
        &p1,
        "/etc/systemd/system/homeward-firstboot-networkmanager.service",
    );
    assert!(String::from_utf8_lossy(&unit).contains("[Service]"));
    let script = grub_cat(&p1, "/usr/local/lib/homeward/firstboot-networkmanager.sh");
    assert!(String::from_utf8_lossy(&script).contains("network-manager"));
}

/// A RHEL 8 guest in its cloud state: DHCP, a cloud MAC, NetworkManager
/// removed and `NM_CONTROLLED=no`.
fn rhel_tree(boot_uuid: &str, vg: &str) -> Vec<TreeEntry> {
    let mut tree = dirs(&[
        "etc",
        "etc/sysconfig",
        "etc/sysconfig/network-scripts",
        "etc/udev",
        "etc/udev/rules.d",
        "etc/systemd",
        "etc/systemd/system",
        "boot",
        "usr",
        "usr/lib",
        "usr/lib/systemd",
        "usr/lib/systemd/system",
        "usr/local",
        "usr/local/lib",
    ]);
    tree.extend([
        entry_file("usr/lib/systemd/systemd", "\x7fELF systemd\n"),
        entry_file(
            "etc/os-release",
            "NAME=\"Red Hat Enterprise Linux\"\nVERSION=\"8.9 (Ootpa)\"\nID=\"rhel\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"8.9\"\nPRETTY_NAME=\"Red Hat Enterprise Linux 8.9 (Ootpa)\"\n",
        ),
        entry_file("etc/redhat-release", "Red Hat Enterprise Linux release 8.9 (Ootpa)\n"),
        entry_file(
            "etc/fstab",
            &format!(
                "/dev/mapper/{vg}-root /                       xfs     defaults        0 0\nUUID={boot_uuid} /boot                   ext4    defaults        1 2\n"
            ),
        ),
        entry_file(
            "etc/sysconfig/network-scripts/ifcfg-eth0",
            &format!(
                "TYPE=Ethernet\nBOOTPROTO=dhcp\nDEFROUTE=yes\nNAME=eth0\nDEVICE=eth0\nONBOOT=yes\nNM_CONTROLLED=no\nHWADDR={CLOUD_MAC}\n"
            ),
        ),
        entry_file(
            "etc/udev/rules.d/70-persistent-net.rules",
            &format!(
                "SUBSYSTEM==\"net\", ACTION==\"add\", DRIVERS==\"?*\", ATTR{{address}}==\"{CLOUD_MAC}\", ATTR{{type}}==\"1\", KERNEL==\"eth*\", NAME=\"eth0\"\n"
            ),
        ),
    ]);
    // A lived-in /etc/systemd/system: too many entries for XFS to keep the
    // directory inside its inode, so it is a block directory.
    for unit in [
        "dbus-org.freedesktop.timedate1.service",
        "dbus-org.freedesktop.nm-dispatcher.service",
        "default.target",
        "display-manager.service",
        "ctrl-alt-del.target",
        "syslog.service",
    ]
    .into_iter()
    .map(String::from)
    .chain((0..30).map(|i| format!("site-local-{i:02}.service")))
    {
        tree.push(TreeEntry::Symlink(
            PathBuf::from(format!("etc/systemd/system/{unit}")),
            format!("/usr/lib/systemd/system/{unit}"),
        ));
    }
    tree
}

#[test]
fn rhel_on_lvm_xfs_gets_what_xfs_can_take_and_exact_manual_steps_for_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let boot_uuid = "6f1c2a34-1b2c-4d5e-8f90-a1b2c3d4e5f6";
    let boot = ext4_fs(
        dir.path(),
        "boot",
        16,
        boot_uuid,
        &[entry_file("grub-marker", "boot volume\n")],
    );
    // The fstab names the VG, so the name is chosen first (unique per run:
    // LVM sees the VG on this host while the disk is made).
    let vg = homeward_tests::disk_layout::unique_vg_name("rhel");
    let root = xfs_fs(dir.path(), "root", 64, &rhel_tree(boot_uuid, &vg));
    let disk = gpt_lvm_disk(dir.path(), "rhel.img", &boot, &root, &vg);
    let nics = write_file(
        dir.path(),
        "nics.toml",
        &format!("{NICS}[mac-map]\n\"00:50:56:aa:bb:01\" = \"00:50:56:cc:dd:01\"\n"),
    );

    let (ok, text) = apply(&disk, &nics);
    assert!(text.contains(&format!("/ on disk0:{vg}/root")), "{text}");
    assert!(text.contains("/boot on disk0:p1"), "{text}");
    // XFS creates files and directories in small (inline) directories, not
    // in block directories like this /etc/systemd/system: the first-boot
    // script lands, and the unit and its link become manual steps, named
    // exactly, in order; the run says so.
    assert!(!ok, "manual steps make the run fail:\n{text}");
    assert!(
        text.contains("[applied] CreateFile /usr/local/lib/homeward/firstboot-networkmanager.sh"),
        "{text}"
    );
    assert!(text.contains("MANUAL STEPS"), "{text}");
    assert!(
        text.contains(
            "1. [networkmanager-restore] create the directory /etc/systemd/system/multi-user.target.wants (mode 0755)"
        ),
        "{text}"
    );

    let root_vol = volume_file(dir.path(), &disk, &format!("{vg}/root"));
    let (clean, report) = homeward_tests::fs_xfs::repair_check(&root_vol);
    assert!(clean, "xfs_repair -n after the steps:\n{report}");
    let ifcfg = String::from_utf8(grub_cat(
        &root_vol,
        "/etc/sysconfig/network-scripts/ifcfg-eth0",
    ))
    .expect("text");
    assert!(ifcfg.contains("IPADDR=10.0.0.5"), "{ifcfg}");
    assert!(ifcfg.contains("00:50:56:cc:dd:01"), "{ifcfg}");
    let script = grub_cat(
        &root_vol,
        "/usr/local/lib/homeward/firstboot-networkmanager.sh",
    );
    assert!(String::from_utf8_lossy(&script).contains("dnf"));
    // What XFS could not take is listed by hand, down to the lines.
    assert!(
        text.contains(
            "edit /etc/sysconfig/network-scripts/ifcfg-eth0:\n  remove these lines:\n    NM_CONTROLLED=no\n  set these lines:\n    NM_CONTROLLED=yes"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "create the symlink /etc/systemd/system/multi-user.target.wants/homeward-firstboot-networkmanager.service -> "
        ),
        "{text}"
    );
}

#[test]
fn suse_on_reiserfs_comes_back_static_and_clean() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut tree = dirs(&[
        "etc",
        "etc/sysconfig",
        "etc/sysconfig/network",
        "usr",
        "usr/sbin",
        "usr/lib",
        "usr/lib/systemd",
        "usr/lib/systemd/system",
        "etc/systemd",
        "etc/systemd/system",
        "etc/systemd/system/multi-user.target.wants",
    ]);
    tree.extend([
        entry_file(
            "etc/os-release",
            "NAME=\"SLES\"\nVERSION=\"15-SP5\"\nVERSION_ID=\"15.5\"\nPRETTY_NAME=\"SUSE Linux Enterprise Server 15 SP5\"\nID=\"sles\"\nID_LIKE=\"suse\"\n",
        ),
        entry_file("etc/fstab", "LABEL=suseroot / reiserfs defaults 0 1\n"),
        entry_file(
            "etc/sysconfig/network/ifcfg-eth0",
            "BOOTPROTO='dhcp'\nSTARTMODE='auto'\nNAME='eth0'\n",
        ),
        entry_file("etc/sysconfig/network/config", "NETCONFIG_DNS_STATIC_SERVERS=\"\"\nNETCONFIG_DNS_STATIC_SEARCHLIST=\"\"\n"),
        entry_file("usr/sbin/NetworkManager", "\x7fELF fake binary\n"),
        entry_file("usr/lib/systemd/systemd", "\x7fELF systemd\n"),
        entry_file(
            "usr/lib/systemd/system/NetworkManager.service",
            "[Unit]\nDescription=Network Manager\n[Service]\nExecStart=/usr/sbin/NetworkManager --no-daemon\n[Install]\nWantedBy=multi-user.target\n",
        ),
    ]);
    tree.push(TreeEntry::Symlink(
        PathBuf::from("etc/systemd/system/multi-user.target.wants/NetworkManager.service"),
        "/usr/lib/systemd/system/NetworkManager.service".into(),
    ));
    let fs = reiserfs_fs(dir.path(), "suseroot", &tree);
    let disk = mbr_disk(dir.path(), "suse.img", &[&fs]);
    let nics = write_file(dir.path(), "nics.toml", NICS);

    let (ok, text) = apply(&disk, &nics);
    assert!(ok, "{text}");
    assert!(text.contains("second run: nothing to do"), "{text}");

    let p1 = volume_file(dir.path(), &disk, "p1");
    homeward_tests::fs_reiserfs::assert_fsck_clean(&p1);
    let ifcfg =
        String::from_utf8(grub_cat(&p1, "/etc/sysconfig/network/ifcfg-eth0")).expect("text");
    assert!(
        ifcfg.contains("BOOTPROTO='static'") || ifcfg.contains("BOOTPROTO=static"),
        "{ifcfg}"
    );
    assert!(ifcfg.contains("10.0.0.5/24"), "{ifcfg}");
}

#[test]
fn a_disk_without_a_root_file_system_is_named_as_such() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = ext4_fs(
        dir.path(),
        "data",
        16,
        "0a1b2c3d-0000-4000-8000-000000000001",
        &[entry_file("notes.txt", "no etc here\n")],
    );
    let disk = mbr_disk(dir.path(), "data.img", &[&data]);
    let nics = write_file(dir.path(), "nics.toml", NICS);
    let (ok, text) = plan(&disk, &nics);
    assert!(!ok);
    assert!(text.contains("no root file system found"), "{text}");
    assert!(text.contains("disk0:p1 ext4"), "{text}");
}

/// An Ubuntu 22.04 guest in its cloud state: netplan from cloud-init with
/// DHCP on the cloud MAC; NetworkManager installed and enabled.
fn ubuntu_tree(boot_uuid: &str, vg: &str) -> Vec<TreeEntry> {
    let mut tree = dirs(&[
        "etc",
        "etc/netplan",
        "etc/systemd",
        "etc/systemd/system",
        "etc/systemd/system/multi-user.target.wants",
        "boot",
        "lib",
        "lib/systemd",
        "lib/systemd/system",
        "usr",
        "usr/sbin",
        "var",
        "var/lib",
        "var/lib/dpkg",
    ]);
    tree.extend([
        entry_file(
            "etc/os-release",
            "PRETTY_NAME=\"Ubuntu 22.04.4 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\nID=ubuntu\nID_LIKE=debian\n",
        ),
        entry_file(
            "etc/fstab",
            &format!(
                "/dev/mapper/{vg}-root / ext4 defaults 0 1\nUUID={boot_uuid} /boot ext4 defaults 0 2\n"
            ),
        ),
        entry_file(
            "etc/netplan/50-cloud-init.yaml",
            &format!(
                "network:\n    ethernets:\n        eth0:\n            dhcp4: true\n            match:\n                macaddress: {CLOUD_MAC}\n            set-name: eth0\n    version: 2\n"
            ),
        ),
        entry_file("lib/systemd/systemd", "\x7fELF systemd\n"),
        entry_file("usr/sbin/NetworkManager", "\x7fELF NetworkManager\n"),
        entry_file(
            "lib/systemd/system/NetworkManager.service",
            "[Unit]\nDescription=Network Manager\n[Service]\nExecStart=/usr/sbin/NetworkManager --no-daemon\n[Install]\nWantedBy=multi-user.target\n",
        ),
        entry_file(
            "var/lib/dpkg/status",
            "Package: network-manager\nStatus: install ok installed\nVersion: 1.36.6-0ubuntu2\n\n",
        ),
    ]);
    tree.push(TreeEntry::Symlink(
        PathBuf::from("etc/systemd/system/multi-user.target.wants/NetworkManager.service"),
        "/lib/systemd/system/NetworkManager.service".into(),
    ));
    tree
}

#[test]
fn ubuntu_netplan_on_lvm_ext4_comes_back_static_and_clean() {
    let dir = tempfile::tempdir().expect("tempdir");
    let boot_uuid = "7a2b3c4d-2222-4333-8444-555566667777";
    let boot = ext4_fs(
        dir.path(),
        "boot",
        16,
        boot_uuid,
        &[entry_file("vmlinuz", "kernel\n")],
    );
    let vg = homeward_tests::disk_layout::unique_vg_name("ubuntu");
    let root = ext4_fs(
        dir.path(),
        "root",
        32,
        "7a2b3c4d-3333-4333-8444-555566667777",
        &ubuntu_tree(boot_uuid, &vg),
    );
    let disk = gpt_lvm_disk(dir.path(), "ubuntu.img", &boot, &root, &vg);
    let nics = write_file(
        dir.path(),
        "nics.toml",
        &format!("{NICS}[mac-map]\n\"00:50:56:aa:bb:01\" = \"00:50:56:cc:dd:01\"\n"),
    );

    let (ok, text) = apply(&disk, &nics);
    assert!(ok, "{text}");
    assert!(text.contains("/boot on disk0:p1"), "{text}");
    assert!(
        text.contains(
            "step networkmanager-restore: NetworkManager is installed and enabled: nothing to do"
        ),
        "{text}"
    );
    assert!(text.contains("second run: nothing to do"), "{text}");

    let root_vol = volume_file(dir.path(), &disk, &format!("{vg}/root"));
    homeward_tests::fs_ext4::assert_fsck_clean(&root_vol);
    let owned = String::from_utf8(homeward_tests::fs_ext4::debugfs_cat(
        &root_vol,
        "/etc/netplan/99-homeward-static.yaml",
    ))
    .expect("text");
    assert!(owned.contains("00:50:56:cc:dd:01"), "{owned}");
    assert!(owned.contains("10.0.0.5/24"), "{owned}");
    assert!(owned.contains("dhcp4: false"), "{owned}");
    let cloud = grub_cat(&root_vol, "/etc/netplan/50-cloud-init.yaml");
    assert!(
        !String::from_utf8_lossy(&cloud).contains("dhcp4: true"),
        "the cloud's DHCP definition of eth0 is gone:\n{}",
        String::from_utf8_lossy(&cloud)
    );
}
