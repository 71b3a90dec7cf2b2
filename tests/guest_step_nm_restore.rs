//! The networkmanager-restore guest step (S16) on fixture guests: what it
//! plans for each distribution and state, the files it leaves (parsed back),
//! and that a second plan is empty, natively and through the embedded wasm
//! plugin applied with the host's `DirTree`.

use homeward_sdk::guest::ShellVars;
use homeward_sdk::guest_step::exports::homeward::plugin::post_step::{ChangeKind, StepPlan};
use homeward_tests::guest_nm::*;

const SCRIPT: &str = "/usr/local/lib/homeward/firstboot-networkmanager.sh";
const UNIT: &str = "/etc/systemd/system/homeward-firstboot-networkmanager.service";
const UNIT_LINK: &str =
    "/etc/systemd/system/multi-user.target.wants/homeward-firstboot-networkmanager.service";

fn text(plan: &StepPlan, path: &str) -> String {
    let change = change_at(plan, path).unwrap_or_else(|| panic!("no change for {path}: {plan:#?}"));
    String::from_utf8(change.content.clone()).expect("utf-8")
}

fn has_note(plan: &StepPlan, needle: &str) -> bool {
    plan.notes.iter().any(|n| n.contains(needle))
}

/// Applies `plan`, then asserts a second native plan is empty.
fn apply_and_replan_empty(g: &Guest, plan: &StepPlan) -> StepPlan {
    g.apply(plan);
    let second = g.plan().expect("second plan");
    assert!(second.changes.is_empty(), "second plan: {second:#?}");
    second
}

/// Key → value of a unit file's section.
fn unit_section(text: &str, section: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('[') {
            inside = line == format!("[{section}]");
        } else if inside && let Some((k, v)) = line.split_once('=') {
            out.push((k.to_string(), v.to_string()));
        }
    }
    out
}

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn rhel8_removed_gets_a_dnf_first_boot_unit_and_nm_control_back() {
    let g = rhel8_removed();
    let plan = g.plan().expect("plan");

    assert!(
        has_note(&plan, "distribution: rhel 8.9"),
        "{:?}",
        plan.notes
    );
    assert!(has_note(&plan, "network: ifcfg (RHEL)"));
    assert!(has_note(&plan, "no NetworkManager header (byte search)"));
    assert!(has_note(&plan, "package manager: dnf"));

    let script = text(&plan, SCRIPT);
    assert_eq!(change_at(&plan, SCRIPT).unwrap().mode, 0o755);
    assert!(script.starts_with("#!/bin/sh\n"));
    assert!(
        script.contains("        dnf -y install NetworkManager\n"),
        "{script}"
    );
    assert!(script.contains("        dnf -y reinstall NetworkManager\n"));
    assert!(script.contains("LOG=/var/log/homeward-firstboot.log\n"));
    assert!(script.contains("until install_networkmanager; do"));
    assert!(script.contains(
        "systemctl enable NetworkManager.service\nsystemctl start NetworkManager.service\n"
    ));
    assert!(script.contains("systemctl disable homeward-firstboot-networkmanager.service\n"));
    assert!(script.contains(&format!("rm -f {SCRIPT}\n")));
    assert!(!script.contains("yum") && !script.contains("apt-get") && !script.contains("rc.local"));

    let unit = text(&plan, UNIT);
    assert_eq!(change_at(&plan, UNIT).unwrap().mode, 0o644);
    assert_eq!(
        unit_section(&unit, "Unit"),
        kv(&[
            (
                "Description",
                "Homeward: reinstall NetworkManager after failback (runs once)"
            ),
            ("Wants", "network-online.target"),
            ("After", "network-online.target"),
            ("ConditionPathExists", SCRIPT),
        ])
    );
    assert_eq!(
        unit_section(&unit, "Service"),
        kv(&[
            ("Type", "oneshot"),
            ("ExecStart", SCRIPT),
            ("TimeoutStartSec", "30min")
        ])
    );
    assert_eq!(
        unit_section(&unit, "Install"),
        kv(&[("WantedBy", "multi-user.target")])
    );
    let link = change_at(&plan, UNIT_LINK).expect("wants link");
    assert_eq!(link.kind, ChangeKind::CreateSymlink);
    assert_eq!(link.content, UNIT.as_bytes());
    // The directory comes before the script in it.
    let dir_at = plan
        .changes
        .iter()
        .position(|c| c.path == "/usr/local/lib/homeward");
    let script_at = plan.changes.iter().position(|c| c.path == SCRIPT);
    assert!(dir_at.is_some() && dir_at < script_at, "{plan:#?}");

    apply_and_replan_empty(&g, &plan);
    assert_eq!(g.mode(SCRIPT), 0o755);
    assert_eq!(g.read_link(UNIT_LINK), UNIT);
    let before = ShellVars::parse(RHEL_IFCFG_ETH0).entries();
    let after = ShellVars::parse(&g.read("/etc/sysconfig/network-scripts/ifcfg-eth0")).entries();
    let expected: Vec<(String, String)> = before
        .into_iter()
        .map(|(k, v)| {
            if k == "NM_CONTROLLED" {
                (k, "yes".into())
            } else {
                (k, v)
            }
        })
        .collect();
    assert_eq!(after, expected);
    assert!(
        g.read("/etc/sysconfig/network-scripts/ifcfg-eth0")
            .starts_with("# Generated by")
    );
    assert!(
        !g.read("/etc/sysconfig/network-scripts/ifcfg-lo")
            .contains("NM_CONTROLLED")
    );
}

#[test]
fn rhel8_removed_through_the_wasm_plugin_is_idempotent() {
    let g = rhel8_removed();
    let (first, second) = g.plan_apply_replan_wasm();
    assert!(first.changes.iter().any(|c| c.path == SCRIPT), "{first:#?}");
    assert!(second.changes.is_empty(), "{second:#?}");
    assert_eq!(
        second.summary,
        "NetworkManager is not installed and its first-boot reinstall is in place: nothing to do"
    );
    assert!(g.read(SCRIPT).contains("dnf -y install NetworkManager"));
    assert!(
        g.read("/etc/sysconfig/network-scripts/ifcfg-eth0")
            .contains("\nNM_CONTROLLED=yes\n")
    );
}

#[test]
fn rhel8_masked_is_unmasked_and_enabled_as_its_install_section_says() {
    let g = rhel8_masked();
    let plan = g.plan().expect("plan");
    assert!(
        has_note(&plan, "NetworkManager.service: masked"),
        "{:?}",
        plan.notes
    );
    assert!(has_note(&plan, "a NetworkManager header was found"));
    assert!(
        change_at(&plan, SCRIPT).is_none(),
        "installed: no reinstall"
    );
    let unmask = change_at(&plan, "/etc/systemd/system/NetworkManager.service").expect("unmask");
    assert_eq!(unmask.kind, ChangeKind::Remove);

    let links = [
        (
            "/etc/systemd/system/multi-user.target.wants/NetworkManager.service",
            "/usr/lib/systemd/system/NetworkManager.service",
        ),
        (
            "/etc/systemd/system/dbus-org.freedesktop.NetworkManager.service",
            "/usr/lib/systemd/system/NetworkManager.service",
        ),
        (
            "/etc/systemd/system/dbus-org.freedesktop.nm-dispatcher.service",
            "/usr/lib/systemd/system/NetworkManager-dispatcher.service",
        ),
        (
            "/etc/systemd/system/network-online.target.wants/NetworkManager-wait-online.service",
            "/usr/lib/systemd/system/NetworkManager-wait-online.service",
        ),
    ];
    let created: Vec<(&str, &[u8])> = plan
        .changes
        .iter()
        .filter(|c| c.kind == ChangeKind::CreateSymlink)
        .map(|c| (c.path.as_str(), c.content.as_slice()))
        .collect();
    let expected: Vec<(&str, &[u8])> = links.iter().map(|(l, t)| (*l, t.as_bytes())).collect();
    assert_eq!(created, expected);
    assert!(
        change_at(&plan, "/etc/systemd/system/network-online.target.wants")
            .is_some_and(|c| c.kind == ChangeKind::CreateDir)
    );
    // ifcfg is NM-controlled again; the commented-out plugins line is the default: left alone.
    assert!(change_at(&plan, "/etc/sysconfig/network-scripts/ifcfg-eth0").is_some());
    assert!(change_at(&plan, "/etc/NetworkManager/NetworkManager.conf").is_none());

    let (first, second) = g.plan_apply_replan_wasm();
    assert_eq!(
        first.changes.len(),
        plan.changes.len(),
        "wasm and native plans agree"
    );
    assert!(second.changes.is_empty(), "{second:#?}");
    assert_eq!(
        second.summary,
        "NetworkManager is installed and enabled: nothing to do"
    );
    assert!(!g.has("/etc/systemd/system/NetworkManager.service"));
    for (link, target) in links {
        assert_eq!(g.read_link(link), target);
    }
}

#[test]
fn a_plugins_list_without_ifcfg_rh_gets_it_and_nothing_else_changes() {
    let g = rhel8_masked();
    let conf = "[main]\n# set by the cloud image\nplugins=keyfile\ndhcp=dhclient\n\n[logging]\nlevel=INFO\n";
    g.write_mode("/etc/NetworkManager/NetworkManager.conf", conf, 0o644);
    let plan = g.plan().expect("plan");
    assert_eq!(
        text(&plan, "/etc/NetworkManager/NetworkManager.conf"),
        conf.replace("plugins=keyfile", "plugins=keyfile,ifcfg-rh")
    );
    assert!(has_note(&plan, "[main] plugins=keyfile → keyfile,ifcfg-rh"));
    apply_and_replan_empty(&g, &plan);
}

#[test]
fn centos6_removed_gets_a_yum_script_run_once_from_rc_local() {
    let g = centos6_removed();
    let rc_local_before = g.read("/etc/rc.d/rc.local");
    let plan = g.plan().expect("plan");
    assert!(
        has_note(&plan, "distribution: centos 6.10"),
        "{:?}",
        plan.notes
    );
    assert!(has_note(&plan, "init: SysV"));
    let script = text(&plan, SCRIPT);
    assert!(
        script.contains("        yum -y install NetworkManager\n"),
        "{script}"
    );
    assert!(script.contains("chkconfig NetworkManager on\nservice NetworkManager start\n"));
    assert!(script.contains(
        "sed -i '/^# BEGIN homeward firstboot-networkmanager$/,/^# END homeward firstboot-networkmanager$/d' /etc/rc.d/rc.local\n"
    ));
    assert!(!script.contains("systemctl") && !script.contains("dnf"));
    assert!(change_at(&plan, UNIT).is_none(), "no systemd unit on SysV");

    let rc_local = text(&plan, "/etc/rc.d/rc.local");
    assert_eq!(change_at(&plan, "/etc/rc.d/rc.local").unwrap().mode, 0o755);
    assert!(
        rc_local.starts_with(&rc_local_before),
        "existing lines kept first"
    );
    assert_eq!(
        &rc_local[rc_local_before.len()..],
        format!(
            "# BEGIN homeward firstboot-networkmanager\n# Reinstalls NetworkManager once after failback; the script removes this block.\nif [ -x {SCRIPT} ]; then\n    {SCRIPT}\nfi\n# END homeward firstboot-networkmanager\n"
        )
    );

    apply_and_replan_empty(&g, &plan);
    // The /etc/rc.local link still points at the RHEL file, which has the block once.
    assert_eq!(g.read_link("/etc/rc.local"), "rc.d/rc.local");
    let after = g.read("/etc/rc.d/rc.local");
    assert_eq!(
        after
            .matches("# BEGIN homeward firstboot-networkmanager")
            .count(),
        1
    );
    assert!(
        g.read("/etc/sysconfig/network-scripts/ifcfg-eth0")
            .contains("\nNM_CONTROLLED=yes\n")
    );

    let (_, second) = centos6_removed().plan_apply_replan_wasm();
    assert!(second.changes.is_empty(), "{second:#?}");
}

#[test]
fn a_non_executable_rc_local_with_the_block_only_gets_its_mode_fixed() {
    let g = centos6_removed();
    let plan = g.plan().expect("plan");
    g.apply(&plan);
    let content = g.read("/etc/rc.d/rc.local");
    g.write_mode("/etc/rc.d/rc.local", &content, 0o644);
    let plan = g.plan().expect("plan");
    assert_eq!(plan.changes.len(), 1, "{plan:#?}");
    assert_eq!(text(&plan, "/etc/rc.d/rc.local"), content);
    assert_eq!(plan.changes[0].mode, 0o755);
    apply_and_replan_empty(&g, &plan);
    assert_eq!(g.mode("/etc/rc.d/rc.local"), 0o755);
}

#[test]
fn centos6_disabled_is_enabled_like_chkconfig_on() {
    let g = centos6_disabled();
    let plan = g.plan().expect("plan");
    assert!(
        has_note(
            &plan,
            "/etc/rc.d/init.d/NetworkManager: disabled in runlevel 3"
        ),
        "{:?}",
        plan.notes
    );
    assert!(change_at(&plan, SCRIPT).is_none());
    let removed: Vec<&str> = plan
        .changes
        .iter()
        .filter(|c| c.kind == ChangeKind::Remove)
        .map(|c| c.path.as_str())
        .collect();
    assert_eq!(removed, ["/etc/rc.d/rc3.d/K84NetworkManager"]);
    apply_and_replan_empty(&g, &plan);
    for level in 2..=5 {
        assert_eq!(
            g.read_link(&format!("/etc/rc.d/rc{level}.d/S23NetworkManager")),
            "../init.d/NetworkManager"
        );
    }
    assert_eq!(
        g.read_link("/etc/rc.d/rc0.d/K84NetworkManager"),
        "../init.d/NetworkManager"
    );
}

#[test]
fn debian12_config_files_gets_apt_ifupdown_managed_and_its_profile_back() {
    let g = debian12_config_files();
    let plan = g.plan().expect("plan");
    assert!(
        has_note(&plan, "dpkg: network-manager deinstall ok config-files"),
        "{:?}",
        plan.notes
    );
    let script = text(&plan, SCRIPT);
    assert!(
        script.contains("    export DEBIAN_FRONTEND=noninteractive\n"),
        "{script}"
    );
    assert!(script.contains("apt-get update &&"));
    assert!(script.contains("apt-get install -y --reinstall"));
    assert!(script.contains("--force-confmiss network-manager\n"));
    assert!(!script.contains("dnf") && !script.contains("zypper"));
    assert!(change_at(&plan, UNIT).is_some());

    assert_eq!(
        text(&plan, "/etc/NetworkManager/NetworkManager.conf"),
        "[main]\nplugins=ifupdown,keyfile\n\n[ifupdown]\nmanaged=true\n"
    );
    assert!(has_note(
        &plan,
        "[ifupdown] managed=false → true (interfaces: ens192)"
    ));

    let profile = "/etc/NetworkManager/system-connections/Wired connection 1.nmconnection";
    let restored = change_at(&plan, profile).expect("profile restored");
    assert_eq!(restored.kind, ChangeKind::CreateFile);
    assert_eq!(restored.mode, 0o600);

    let (_, second) = g.plan_apply_replan_wasm();
    assert!(second.changes.is_empty(), "{second:#?}");
    assert_eq!(g.mode(profile), 0o600);
    assert_eq!(g.read(profile), g.read(&format!("{profile}.bak")));
    assert!(
        g.read(profile)
            .contains("\naddress1=192.168.10.21/24,192.168.10.1\n")
    );
    assert_eq!(g.read_link(UNIT_LINK), UNIT);
}

#[test]
fn debian_rc_local_block_goes_before_exit_0() {
    let g = debian12_config_files();
    std::fs::remove_file(g.path("/lib/systemd/systemd")).unwrap();
    let rc = "#!/bin/sh -e\n#\n# rc.local\n\necho started > /dev/kmsg\n\nexit 0\n";
    g.write_mode("/etc/rc.local", rc, 0o755);
    let plan = g.plan().expect("plan");
    let after = text(&plan, "/etc/rc.local");
    let block_at = after
        .find("# BEGIN homeward firstboot-networkmanager")
        .expect("block");
    let end_at = after
        .find("# END homeward firstboot-networkmanager")
        .expect("end");
    let exit_at = after.rfind("exit 0").unwrap();
    assert!(block_at < end_at && end_at < exit_at, "{after}");
    assert!(after.starts_with("#!/bin/sh -e\n#\n# rc.local\n\necho started > /dev/kmsg\n\n"));
    assert!(text(&plan, SCRIPT).contains("update-rc.d network-manager defaults\n"));
    apply_and_replan_empty(&g, &plan);
}

#[test]
fn ubuntu_with_networkmanager_enabled_has_nothing_to_do() {
    let g = ubuntu_enabled();
    let plan = g.plan().expect("plan");
    assert!(plan.changes.is_empty(), "{plan:#?}");
    assert_eq!(
        plan.summary,
        "NetworkManager is installed and enabled: nothing to do"
    );
    assert!(has_note(&plan, "NetworkManager.service: enabled"));
    assert!(has_note(
        &plan,
        "dpkg: network-manager install ok installed"
    ));
    assert!(has_note(&plan, "network: netplan"));
    // No ifupdown interfaces: Debian's managed=false is right and stays.
    let wasm = g.plan_wasm().expect("wasm plan");
    assert!(wasm.changes.is_empty(), "{wasm:#?}");
    assert_eq!(wasm.summary, plan.summary);
}

#[test]
fn files_gone_under_an_installed_dpkg_record_are_reinstalled() {
    let g = ubuntu_enabled();
    std::fs::remove_file(g.path("/usr/sbin/NetworkManager")).unwrap();
    let plan = g.plan().expect("plan");
    assert!(text(&plan, SCRIPT).contains("--reinstall"));
}

#[test]
fn sles15_removed_gets_zypper_and_leaves_wicked_alone() {
    let g = sles15_removed();
    let plan = g.plan().expect("plan");
    assert!(
        has_note(&plan, "distribution: sles 15.5"),
        "{:?}",
        plan.notes
    );
    assert!(has_note(&plan, "network: ifcfg (SUSE)"));
    assert!(has_note(
        &plan,
        "/var/lib/rpm/Packages.db): no NetworkManager header"
    ));
    assert!(has_note(&plan, "network.service → wicked.service"));
    let script = text(&plan, SCRIPT);
    assert!(
        script.contains("    zypper -n install -f NetworkManager\n"),
        "{script}"
    );
    assert!(!script.contains("dnf") && !script.contains("apt-get"));
    assert!(change_at(&plan, "/etc/systemd/system/network.service").is_none());
    assert!(change_at(&plan, "/etc/sysconfig/network/ifcfg-eth0").is_none());

    let (_, second) = g.plan_apply_replan_wasm();
    assert!(second.changes.is_empty(), "{second:#?}");
    assert_eq!(
        g.read_link("/etc/systemd/system/network.service"),
        "/usr/lib/systemd/system/wicked.service"
    );
}

#[test]
fn unknown_distribution_without_networkmanager_is_unsupported() {
    let g = Guest::new();
    g.write_mode(
        "/etc/os-release",
        "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME=\"Alpine Linux v3.19\"\n",
        0o644,
    );
    g.write_mode("/lib/systemd/systemd", b"\x7fELF", 0o755);
    let err = g.plan().expect_err("unsupported");
    let message = format!("{err:?}");
    assert!(
        matches!(err, homeward_sdk::Error::Unsupported(_)),
        "{message}"
    );
    assert!(
        message.contains("cannot tell which package manager reinstalls NetworkManager"),
        "{message}"
    );
    assert!(
        message.contains("Alpine Linux v3.19 (ID=alpine)"),
        "{message}"
    );
    assert!(message.contains("install it by hand"));

    let wasm = g.plan_wasm().expect_err("unsupported through the plugin");
    assert!(
        wasm.to_string()
            .contains("cannot tell which package manager"),
        "{wasm}"
    );

    let bare = Guest::new();
    let err = bare.plan().expect_err("no release file");
    assert!(format!("{err:?}").contains("no /etc/os-release or release file"));
}

#[test]
fn hostile_files_are_answers_not_panics() {
    let g = rhel8_masked();
    // A unit whose [Install] names paths, and a loop through Also=.
    g.write_mode(
        "/usr/lib/systemd/system/NetworkManager.service",
        "[Install]\nWantedBy=../../../etc/passwd multi-user.target\nAlias=/etc/shadow\nAlso=NetworkManager.service\n\u{0}\u{ff}\n",
        0o644,
    );
    g.write_mode(
        "/etc/sysconfig/network-scripts/ifcfg-eth1",
        b"NM_CONTROLLED=no\n\xff\xfe\x00DEVICE=eth1",
        0o644,
    );
    g.write_mode(
        "/etc/NetworkManager/NetworkManager.conf",
        b"[main\nplugins\n=\n[]\n\xff",
        0o644,
    );
    // The name at the very end of the database, then cut short before its NUL.
    g.write_mode("/var/lib/rpm/Packages", b"\xff\0NetworkManager\0", 0o644);
    let plan = g.plan().expect("plan");
    let links: Vec<&str> = plan
        .changes
        .iter()
        .filter(|c| c.kind == ChangeKind::CreateSymlink)
        .map(|c| c.path.as_str())
        .collect();
    assert_eq!(
        links,
        ["/etc/systemd/system/multi-user.target.wants/NetworkManager.service"]
    );
    assert!(
        text(&plan, "/etc/sysconfig/network-scripts/ifcfg-eth1").starts_with("NM_CONTROLLED=yes\n")
    );
    apply_and_replan_empty(&g, &plan);

    g.write_mode("/var/lib/rpm/Packages", b"\xff\0NetworkManager", 0o644);
    let plan = g.plan().expect("plan");
    assert!(
        has_note(&plan, "no NetworkManager header"),
        "{:?}",
        plan.notes
    );
    assert!(
        change_at(&plan, SCRIPT).is_some(),
        "the database says removed: reinstall"
    );
}
