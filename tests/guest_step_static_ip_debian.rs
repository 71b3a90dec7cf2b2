//! static-ip-reset on Debian-family guests: Debian 12 (ifupdown
//! `interfaces` + cloud-init's `interfaces.d`) and Ubuntu 22.04 (netplan, with
//! cloud-init's `50-cloud-init.yaml` keeping `dhcp4: true`). The results are
//! read back (stanzas, YAML) and compared with the record; a second plan must
//! be empty, natively and through the plugin.

use homeward_tests::guest_net::{Yaml, debian12, snapshot, ubuntu2204, yaml};

/// The option lines of `iface <dev> <family> ...` in `text`, and its method.
fn stanza(text: &str, dev: &str, family: &str) -> Option<(String, Vec<String>)> {
    let mut lines = text.lines();
    let method = loop {
        let line = lines.next()?;
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.len() == 4 && w[0] == "iface" && w[1] == dev && w[2] == family {
            break w[3].to_string();
        }
    };
    let options = lines
        .take_while(|l| {
            let first = l.split_whitespace().next().unwrap_or("");
            !["iface", "auto", "source", "mapping"].contains(&first) && !first.starts_with("allow-")
        })
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    Some((method, options))
}

#[test]
fn debian12_interfaces_stanzas_become_static() {
    let g = debian12();
    let plan = g.run_native();
    assert!(
        plan.notes.iter().any(|n| n == "distribution: debian 12"),
        "{:?}",
        plan.notes
    );
    let text = g.read("/etc/network/interfaces");

    let (method, options) = stanza(&text, "ens192", "inet").expect("inet stanza");
    assert_eq!(method, "static");
    assert_eq!(
        options,
        [
            "address 10.50.0.12/24",
            "gateway 10.50.0.1",
            "dns-nameservers 10.50.0.2",
            "dns-search deb.example.org example.org",
            "# jumbo frames are off on this segment",
            "mtu 1500",
            "up ip route add 10.250.0.0/16 via 10.50.0.254",
        ]
    );
    // Options keep the stanza's tab indentation.
    assert!(text.contains("\n\taddress 10.50.0.12/24\n"));
    let (method6, options6) = stanza(&text, "ens192", "inet6").expect("inet6 stanza");
    assert_eq!(method6, "static");
    assert_eq!(
        options6,
        ["address 2001:db8:50::12/64", "gateway 2001:db8:50::1"]
    );

    // allow-hotplug already starts ens192: no second start line.
    assert_eq!(text.matches("ens192\n").count(), 1, "{text}");
    assert!(!text.contains("auto ens192"));
    // The loopback and the header stay.
    assert!(text.starts_with("# This file describes the network interfaces"));
    assert!(text.contains("auto lo\niface lo inet loopback\n"));

    // ens224 had no stanza: appended, brought up at boot.
    assert!(text.contains("\nauto ens224\niface ens224 inet static\n"));
    let (_, options) = stanza(&text, "ens224", "inet").expect("ens224");
    assert_eq!(options, ["address 10.51.0.12/16"]);

    // cloud-init's file for the Azure eth0 is not ours to change.
    assert!(
        g.read("/etc/network/interfaces.d/50-cloud-init")
            .contains("iface eth0 inet dhcp\n")
    );
    assert!(!plan.changes.iter().any(|c| c.path.contains("interfaces.d")));
    assert!(
        g.read("/etc/cloud/cloud.cfg.d/99-disable-network-config.cfg")
            .contains("network: {config: disabled}")
    );
    assert_eq!(
        g.read("/etc/resolv.conf"),
        "nameserver 10.50.0.2\nsearch deb.example.org example.org\n"
    );

    let w = debian12();
    w.run_wasm();
    assert_eq!(snapshot(g.dir.path()), snapshot(w.dir.path()));
}

#[test]
fn ubuntu2204_netplan_owned_file_and_no_dhcp_left_for_the_nic() {
    let g = ubuntu2204();
    let plan = g.run_native();
    assert!(plan.notes.iter().any(|n| n.contains("network: netplan")));

    let owned = yaml(&g.read("/etc/netplan/99-homeward-static.yaml"));
    assert_eq!(g.mode("/etc/netplan/99-homeward-static.yaml"), 0o600);
    let eth0 = owned
        .at(&["network", "ethernets", "eth0"])
        .expect("eth0 in the owned file");
    assert_eq!(
        owned.at(&["network", "version"]).and_then(Yaml::str),
        Some("2")
    );
    assert_eq!(
        eth0.at(&["match", "macaddress"]).and_then(Yaml::str),
        Some("00:50:56:9b:40:01")
    );
    assert_eq!(eth0.get("set-name").and_then(Yaml::str), Some("eth0"));
    assert_eq!(eth0.get("dhcp4").and_then(Yaml::str), Some("false"));
    assert_eq!(
        eth0.get("addresses").map(Yaml::strs),
        Some(vec!["10.40.0.11/24".to_string()])
    );
    let Some(Yaml::Seq(routes)) = eth0.get("routes") else {
        panic!("routes: {eth0:?}")
    };
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].get("to").and_then(Yaml::str), Some("default"));
    assert_eq!(routes[0].get("via").and_then(Yaml::str), Some("10.40.0.1"));
    assert_eq!(
        eth0.at(&["nameservers", "addresses"]).map(Yaml::strs),
        Some(vec!["10.40.0.2".to_string(), "10.40.0.3".to_string()])
    );
    assert_eq!(
        eth0.at(&["nameservers", "search"]).map(Yaml::strs),
        Some(vec!["ubuntu.example.net".to_string()])
    );
    // The installer's scalar options moved along.
    assert_eq!(eth0.get("mtu").and_then(Yaml::str), Some("1500"));
    assert_eq!(eth0.get("optional").and_then(Yaml::str), Some("true"));
    // The DHCP NIC is not in the owned file.
    assert_eq!(
        owned.at(&["network", "ethernets"]).map(Yaml::keys),
        Some(vec!["eth0".to_string()])
    );

    // No earlier file defines eth0 any more (netplan would merge it, dhcp4
    // and the hv_netvsc driver match included).
    let installer = yaml(&g.read("/etc/netplan/00-installer-config.yaml"));
    assert_eq!(
        installer.at(&["network", "ethernets"]).map(Yaml::keys),
        Some(vec!["eth1".to_string()])
    );
    let eth1 = installer.at(&["network", "ethernets", "eth1"]).unwrap();
    assert_eq!(eth1.get("dhcp4").and_then(Yaml::str), Some("true"));
    assert_eq!(
        eth1.at(&["match", "macaddress"]).and_then(Yaml::str),
        Some("00:50:56:9b:40:02")
    );
    assert!(
        g.read("/etc/netplan/00-installer-config.yaml")
            .starts_with("# This is the network config written by 'subiquity'")
    );
    let cloud = yaml(&g.read("/etc/netplan/50-cloud-init.yaml"));
    assert_eq!(cloud.at(&["network", "ethernets"]), None);
    assert_eq!(
        cloud.at(&["network", "version"]).and_then(Yaml::str),
        Some("2")
    );
    assert_eq!(g.mode("/etc/netplan/50-cloud-init.yaml"), 0o600);

    assert!(
        g.read("/etc/cloud/cloud.cfg.d/99-disable-network-config.cfg")
            .contains("network: {config: disabled}")
    );
    // systemd-resolved owns resolv.conf.
    assert!(
        std::fs::symlink_metadata(g.path("/etc/resolv.conf"))
            .unwrap()
            .file_type()
            .is_symlink()
    );

    let w = ubuntu2204();
    w.run_wasm();
    assert_eq!(snapshot(g.dir.path()), snapshot(w.dir.path()));
}

#[test]
fn netplan_flow_style_is_refused_with_what_to_do() {
    let g = ubuntu2204();
    g.write(
        "/etc/netplan/50-cloud-init.yaml",
        "network: {version: 2, ethernets: {eth0: {dhcp4: true, set-name: eth0}}}\n",
    );
    let err = g.plan_native().expect_err("flow style");
    let text = format!("{err:?}");
    assert!(text.contains("Unsupported"), "{text}");
    assert!(
        text.contains("50-cloud-init.yaml") && text.contains("flow style"),
        "{text}"
    );
    let wasm = g.plan_wasm().expect_err("flow style (wasm)");
    assert!(format!("{wasm}").contains("flow style"), "{wasm}");
}
