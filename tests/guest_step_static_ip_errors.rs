//! static-ip-reset when there is nothing to do or nothing it can do: no
//! static NIC recorded, an unknown guest without network configuration, a
//! broken record, and hostile guest files (garbage, path tricks in device
//! names), natively and through the plugin.

use homeward_tests::guest_net::{NetGuest, dhcp, fixed, rhel8, shell_vars, snapshot};

fn static_nic() -> homeward_tests::guest_net::Nic {
    fixed(
        "00:50:56:8a:70:01",
        "eth0",
        &[("10.70.0.5", 24)],
        &["10.70.0.1"],
        &[],
        &[],
    )
}

#[test]
fn only_dhcp_nics_recorded_is_nothing_to_do() {
    let mut g = rhel8();
    g.nics = vec![
        dhcp("00:50:56:8a:10:01", "ens192"),
        dhcp("00:50:56:8a:10:02", "ens224"),
    ];
    let before = snapshot(g.dir.path());
    let plan = g.plan_native().expect("plan");
    assert!(plan.changes.is_empty());
    assert!(plan.summary.contains("nothing to do"), "{}", plan.summary);
    assert!(
        plan.notes
            .iter()
            .any(|n| n.contains("00:50:56:8a:10:02") && n.contains("DHCP"))
    );
    let wasm = g.plan_wasm().expect("wasm plan");
    assert!(wasm.changes.is_empty());
    assert_eq!(wasm.summary, plan.summary);
    assert_eq!(snapshot(g.dir.path()), before);
}

#[test]
fn unknown_guest_without_network_configuration_is_unsupported() {
    let g = NetGuest::new(vec![static_nic()], &[]);
    g.write("/etc/hostname", "appliance\n");
    let err = format!("{:?}", g.plan_native().expect_err("unsupported"));
    assert!(err.contains("Unsupported"), "{err}");
    assert!(err.contains("no /etc/os-release"), "{err}");
    assert!(
        err.contains("10.70.0.5/24") && err.contains("by hand"),
        "{err}"
    );
    let wasm = g.plan_wasm().expect_err("unsupported (wasm)");
    assert!(format!("{wasm}").contains("no /etc/os-release"), "{wasm}");
}

#[test]
fn known_distribution_with_only_networkd_is_unsupported_and_named() {
    let g = NetGuest::new(vec![static_nic()], &[]);
    g.write(
        "/etc/os-release",
        "NAME=\"Arch Linux\"\nPRETTY_NAME=\"Arch Linux\"\nID=arch\nBUILD_ID=rolling\n",
    )
    .write(
        "/etc/systemd/network/20-wired.network",
        "[Match]\nName=eth0\n\n[Network]\nDHCP=yes\n",
    );
    let err = format!("{:?}", g.plan_native().expect_err("unsupported"));
    assert!(
        err.contains("Unsupported") && err.contains("Arch Linux"),
        "{err}"
    );
}

#[test]
fn broken_record_is_invalid_input() {
    let mut g = rhel8();
    g.nics = vec![fixed(
        "00:50:56:8a:10:01",
        "ens192",
        &[("10.20.30.400", 24)],
        &[],
        &[],
        &[],
    )];
    let err = format!("{:?}", g.plan_native().expect_err("bad address"));
    assert!(
        err.contains("InvalidInput") && err.contains("10.20.30.400"),
        "{err}"
    );
    g.nics = vec![fixed(
        "not-a-mac",
        "ens192",
        &[("10.20.30.4", 24)],
        &[],
        &[],
        &[],
    )];
    let err = format!("{:?}", g.plan_native().expect_err("bad mac"));
    assert!(err.contains("not-a-mac"), "{err}");
    g.nics = vec![fixed(
        "00:50:56:8a:10:01",
        "ens192",
        &[("10.20.30.4", 24)],
        &[],
        &[],
        &["corp.example\nDNS9=1.2.3.4"],
    )];
    let err = format!("{:?}", g.plan_native().expect_err("bad domain"));
    assert!(err.contains("search domain"), "{err}");
}

/// A CentOS guest whose network files are hostile: a device name that is a
/// path, binary garbage, broken udev rules, netplan and interfaces syntax.
fn hostile() -> NetGuest {
    let g = NetGuest::new(vec![static_nic(), dhcp("00:50:56:8a:70:02", "eth1")], &[]);
    let garbage: String = (0..4096u32)
        .map(|i| char::from_u32(i % 0x7f + 1).unwrap_or('x'))
        .collect();
    g.write("/etc/os-release", "ID=centos\nVERSION_ID=7\n")
        .write(
            "/etc/sysconfig/network-scripts/ifcfg-x",
            "DEVICE=../../../../etc/shadow\nHWADDR=00:50:56:8a:70:01\nBOOTPROTO=dhcp\n",
        )
        .write("/etc/sysconfig/network-scripts/ifcfg-junk", &garbage)
        .write(
            "/etc/udev/rules.d/70-persistent-net.rules",
            "SUBSYSTEM==\"net\", ATTR{address}==\"00:50:56:8a:70:01\", NAME=\"../evil\"\nSUBSYSTEM==\"net\", ATTR{address}==, NAME=\nSUBSYSTEM==\"net\"\n",
        )
        .write("/etc/netplan/01-bad.yaml", "network:\n  ethernets:\n    eth0:\n  - :\n : :\n")
        .write("/etc/network/interfaces", "iface\niface eth0\niface eth0 inet\nauto\n");
    g
}

#[test]
fn hostile_guest_files_do_not_panic_or_escape() {
    let g = hostile();
    let plan = g.run_native();
    for c in &plan.changes {
        assert!(!c.path.contains(".."), "{}", c.path);
    }
    // The file that claims the NIC by MAC got the static addressing; the
    // rejected device names fell back to the recorded one.
    let x = shell_vars(&g.read("/etc/sysconfig/network-scripts/ifcfg-x"));
    assert_eq!(x.get("IPADDR").as_deref(), Some("10.70.0.5"));
    assert_eq!(x.get("DEVICE").as_deref(), Some("../../../../etc/shadow"));
    assert!(
        plan.notes
            .iter()
            .any(|n| n.contains("nic 00:50:56:8a:70:01: eth0")),
        "{:?}",
        plan.notes
    );
    assert!(!g.path("/etc/shadow").exists() && !g.path("/evil").exists());

    let w = hostile();
    w.run_wasm();
    assert_eq!(snapshot(g.dir.path()), snapshot(w.dir.path()));
}
