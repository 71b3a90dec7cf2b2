//! The embedded `azure` cloud adapter through the real runtime.
//!
//! Compute runs against the fake ARM server (`homeward_tests::fake_arm`, a
//! fake following Microsoft.Compute 2023-03-01, Microsoft.Network
//! 2023-05-01 and the OAuth2 v2.0 token endpoint): sign-in and what the
//! plugin sends, get-vm with NICs, IPs and power, power-off with
//! deallocate and start through long-running operations, create-vm from
//! disks and delete-vm, networks missing their virtual network or their
//! subnet, 429 retried after Retry-After, retries exhausted, 404, Reader
//! refusals with the missing action, a wrong secret never logged, a stopped
//! server and the call deadline. Storage runs against Azurite
//! (`homeward_tests::azurite`): disk endpoints the host's page-blob device
//! opens, snapshots, and changed ranges (exactly the changed blocks by
//! `compare`; `service-diff` reported as the method that ran), and restore
//! points (API 0.1.1: one blob snapshot per disk of the VM, usable like any
//! snapshot, never quiesced, with a note when asked to). The cloud
//! conformance suite runs with `--target`.

use homeward::config::{HostPort, Secret};
use homeward::disk::BlockDevice;
use homeward::disk::page_blob;
use homeward::embedded::AZURE;
use homeward::plugin::adapter::{
    Access, BlobCredential, CloudVmSpec, DiskFormat, DiskLocator, PowerState,
};
use homeward::plugin::wit::v0_1::types::Addressing;
use homeward::plugin::{
    Failure, LoadedPlugin, LogRecorder, PluginError, PluginInstance, PluginSettings, Runtime,
    RuntimeOptions,
};
use homeward_tests::api_failure as failure;
use homeward_tests::azurite::{self, Azurite};
use homeward_tests::fake_arm::{
    self, CONTRIBUTOR, CONTRIBUTOR_SECRET, FakeArm, READER, READER_SECRET,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
const BLOCK: u64 = 64 * 1024;

fn load(settings: PluginSettings) -> (Runtime, LoadedPlugin) {
    static WARM: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = WARM.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = Runtime::new(RuntimeOptions {
        cache_dir: Some(homeward_tests::shared_cache_dir().to_path_buf()),
        ..RuntimeOptions::default()
    })
    .unwrap();
    let loaded = runtime.load(AZURE.wasm, AZURE.id, settings).unwrap();
    (runtime, loaded)
}

/// The fake with a virtual network `vnet1` (subnets `app` 10.20.1.0/24 and
/// `db` 10.20.2.0/24) and the plugin loaded against it.
struct Setup {
    arm: FakeArm,
    _runtime: Runtime,
    plugin: LoadedPlugin,
}

impl Setup {
    fn new() -> Setup {
        Setup::with(|_| {})
    }

    fn with(change: impl FnOnce(&mut PluginSettings)) -> Setup {
        Setup::as_principal(CONTRIBUTOR, CONTRIBUTOR_SECRET, change)
    }

    fn as_principal(client: &str, secret: &str, change: impl FnOnce(&mut PluginSettings)) -> Setup {
        let arm = FakeArm::start();
        arm.add_vnet(
            "vnet1",
            &["10.20.0.0/16"],
            &[("app", "10.20.1.0/24"), ("db", "10.20.2.0/24")],
        );
        let mut settings = arm.plugin_settings(client, secret);
        change(&mut settings);
        let (runtime, plugin) = load(settings);
        Setup {
            arm,
            _runtime: runtime,
            plugin,
        }
    }

    fn instance(&self) -> PluginInstance {
        self.plugin.instantiate().unwrap()
    }
}

fn recorder(instance: &mut PluginInstance) -> Arc<LogRecorder> {
    let recorder = Arc::new(LogRecorder::default());
    instance.record_logs(recorder.clone());
    recorder
}

fn fixed_ip(addressing: &Addressing) -> Option<(String, u8, Vec<String>, Vec<String>)> {
    match addressing {
        Addressing::Fixed(f) => f
            .addresses
            .first()
            .map(|(ip, len)| (ip.clone(), *len, f.gateways.clone(), f.dns_servers.clone())),
        Addressing::Dhcp => None,
    }
}

// --- compute against the fake ARM server ------------------------------------

#[test]
fn connect_signs_in_with_client_credentials_once_per_instance() {
    let setup = Setup::new();
    let mut instance = setup.instance();
    let info = instance.cloud_connect().unwrap();
    assert_eq!(info.instance_id, fake_arm::SUBSCRIPTION);
    assert_eq!(info.api_version, "2023-03-01");
    assert!(info.product.contains("Azure"), "{info:?}");
    instance.cloud_connect().unwrap();

    let requests = setup.arm.requests();
    let tokens: Vec<_> = requests
        .iter()
        .filter(|r| r.path.ends_with("/oauth2/v2.0/token"))
        .collect();
    assert_eq!(tokens.len(), 1, "the token is cached in the instance");
    let token = tokens[0];
    assert_eq!(token.method, "POST");
    assert_eq!(
        token.path,
        format!("/{}/oauth2/v2.0/token", fake_arm::TENANT)
    );
    assert!(
        token
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded")),
        "{token:?}"
    );
    let form: Vec<(&str, &str)> = token
        .body
        .split('&')
        .filter_map(|p| p.split_once('='))
        .collect();
    assert!(
        form.contains(&("grant_type", "client_credentials")),
        "{form:?}"
    );
    assert!(form.contains(&("client_id", CONTRIBUTOR)), "{form:?}");
    assert!(
        form.contains(&("scope", "https%3A%2F%2Fmanagement.azure.com%2F.default")),
        "{form:?}"
    );
    let groups: Vec<_> = requests
        .iter()
        .filter(|r| {
            r.path
                .to_lowercase()
                .ends_with("/resourcegroups/homeward-rg")
        })
        .collect();
    assert_eq!(groups.len(), 2);
    for r in groups {
        assert_eq!(r.status, 200);
        assert_eq!(r.param("api-version"), Some(fake_arm::RESOURCES_API));
        assert!(
            r.header("authorization")
                .is_some_and(|a| a.starts_with("Bearer fake-token-")),
            "{r:?}"
        );
    }
}

#[test]
fn get_vm_reports_disks_nics_private_ips_and_power() {
    let setup = Setup::new();
    let seeded = setup
        .arm
        .add_vm("web01", &[30, 4, 2], "vnet1", "app", "10.20.1.10");
    let mut instance = setup.instance();
    let logs = recorder(&mut instance);
    let vm = instance.cloud_get_vm(&seeded.id).unwrap();
    assert_eq!(vm.id, seeded.id);
    assert_eq!(vm.name, "web01");
    // No storage configured: no blob to list snapshots of, and get-vm still answers.
    assert!(vm.snapshots.is_empty(), "{:?}", vm.snapshots);
    let lines = logs.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("debug ") && l.contains("snapshots not listed")),
        "{lines:?}"
    );
    assert!(!vm.uuid.is_empty());
    assert_eq!(vm.power, PowerState::PoweredOn);
    assert_eq!(vm.guest_os, "Linux");
    let ids: Vec<&str> = vm.disks.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(
        ids,
        seeded
            .disk_ids
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    let capacities: Vec<u64> = vm.disks.iter().map(|d| d.capacity_bytes).collect();
    assert_eq!(capacities, [30 * GIB, 4 * GIB, 2 * GIB]);
    assert_eq!(vm.disks[0].controller.as_deref(), Some("osDisk"));
    assert_eq!(vm.disks[0].unit, None);
    assert_eq!(vm.disks[1].controller.as_deref(), Some("dataDisks"));
    assert_eq!(vm.disks[1].unit, Some(0));
    assert_eq!(vm.disks[2].unit, Some(1));
    assert!(vm.disks.iter().all(|d| d.format == DiskFormat::VhdFixed));

    assert_eq!(vm.nics.len(), 1);
    let nic = &vm.nics[0];
    assert_eq!(nic.mac, seeded.mac);
    assert!(nic.mac.starts_with("00:0d:3a:"), "{}", nic.mac);
    assert_eq!(nic.network.as_deref(), Some(seeded.subnet_id.as_str()));
    let (ip, len, gateways, dns) = fixed_ip(&nic.addressing).unwrap();
    assert_eq!((ip.as_str(), len), ("10.20.1.10", 24));
    assert_eq!(gateways, ["10.20.1.1"]);
    assert_eq!(dns, ["168.63.129.16"]);
    let prop = |k: &str| {
        vm.properties
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(prop("power-state"), Some("PowerState/running"));
    assert_eq!(prop("nic.0.id"), Some(seeded.nic_id.as_str()));
    assert_eq!(prop("nic.0.allocation"), Some("Static"));
    assert_eq!(prop("size"), Some("Standard_D2s_v5"));

    let requests = setup.arm.requests();
    let vm_get = requests
        .iter()
        .find(|r| r.method == "GET" && r.path.ends_with("/virtualMachines/web01"))
        .unwrap();
    assert_eq!(vm_get.param("api-version"), Some("2023-03-01"));
    assert_eq!(vm_get.param("$expand"), Some("instanceView"));
    let nic_get = requests
        .iter()
        .find(|r| r.method == "GET" && r.path.ends_with("/networkInterfaces/web01-nic0"))
        .unwrap();
    assert_eq!(nic_get.param("api-version"), Some("2023-05-01"));
    for r in requests.iter().filter(|r| !r.path.ends_with("/token")) {
        assert!(
            r.header("authorization")
                .is_some_and(|a| a.starts_with("Bearer ")),
            "no bearer token on {} {}",
            r.method,
            r.path
        );
        assert_eq!(r.status, 200, "{} {}", r.method, r.path);
    }
}

#[test]
fn power_off_deallocate_and_start_follow_their_operations() {
    let setup = Setup::new();
    setup.arm.set_polls(2);
    let seeded = setup
        .arm
        .add_vm("app01", &[8], "vnet1", "app", "10.20.1.11");
    let mut instance = setup.instance();

    instance.cloud_power_off(&seeded.id, false).unwrap();
    assert_eq!(setup.arm.power("app01").as_deref(), Some("stopped"));
    instance.cloud_power_off(&seeded.id, true).unwrap();
    assert_eq!(setup.arm.power("app01").as_deref(), Some("deallocated"));
    let vm = instance.cloud_get_vm(&seeded.id).unwrap();
    assert_eq!(vm.power, PowerState::PoweredOff);
    assert!(vm.properties.contains(&(
        "power-state".to_string(),
        "PowerState/deallocated".to_string()
    )));
    // Already off: no action is posted, the VM stays deallocated.
    setup.arm.clear_requests();
    instance.cloud_power_off(&seeded.id, false).unwrap();
    assert!(!setup.arm.requests().iter().any(|r| r.method == "POST"));
    assert_eq!(setup.arm.power("app01").as_deref(), Some("deallocated"));

    setup.arm.clear_requests();
    instance.cloud_start(&seeded.id).unwrap();
    assert_eq!(setup.arm.power("app01").as_deref(), Some("running"));
    assert_eq!(
        instance.cloud_get_vm(&seeded.id).unwrap().power,
        PowerState::PoweredOn
    );
    let requests = setup.arm.requests();
    let post = requests.iter().find(|r| r.method == "POST").unwrap();
    assert!(
        post.path.ends_with("/virtualMachines/app01/start"),
        "{post:?}"
    );
    assert_eq!(post.param("api-version"), Some("2023-03-01"));
    assert_eq!(post.status, 202);
    // The operation answered InProgress twice, then Succeeded: three polls.
    let polls = requests
        .iter()
        .filter(|r| r.path.contains("/providers/Microsoft.Compute/locations/"))
        .count();
    assert_eq!(polls, 3, "{requests:#?}");
}

#[test]
fn create_vm_from_disks_keeps_the_ip_and_delete_keeps_the_disks() {
    let setup = Setup::new();
    let os = setup.arm.add_disk("db01-os", 30);
    let data = setup.arm.add_disk("db01-data", 4);
    let spec = CloudVmSpec {
        name: "db01".to_string(),
        size: "Standard_D4s_v5".to_string(),
        disk_ids: vec![os.clone(), data.clone()],
        subnet_id: fake_arm::subnet_id("vnet1", "db"),
        private_ip: Some("10.20.2.77".to_string()),
    };
    let mut instance = setup.instance();
    let vm = instance.cloud_create_vm(&spec).unwrap();
    assert_eq!(vm.id, fake_arm::vm_id("db01"));
    assert_eq!(vm.power, PowerState::PoweredOn);
    let ids: Vec<&str> = vm.disks.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, [os.as_str(), data.as_str()]);
    let (ip, len, _, _) = fixed_ip(&vm.nics[0].addressing).unwrap();
    assert_eq!((ip.as_str(), len), ("10.20.2.77", 24));

    let requests = setup.arm.requests();
    let nic_put = requests
        .iter()
        .find(|r| r.method == "PUT" && r.path.ends_with("/networkInterfaces/db01-nic0"))
        .unwrap();
    assert_eq!(nic_put.param("api-version"), Some("2023-05-01"));
    let ip_config = &nic_put.json()["properties"]["ipConfigurations"][0]["properties"];
    assert_eq!(ip_config["privateIPAllocationMethod"], "Static");
    assert_eq!(ip_config["privateIPAddress"], "10.20.2.77");
    assert_eq!(ip_config["subnet"]["id"], spec.subnet_id.as_str());
    let vm_put = requests
        .iter()
        .find(|r| r.method == "PUT" && r.path.ends_with("/virtualMachines/db01"))
        .unwrap();
    assert_eq!(vm_put.param("api-version"), Some("2023-03-01"));
    let body = vm_put.json();
    let storage = &body["properties"]["storageProfile"];
    assert_eq!(storage["osDisk"]["createOption"], "Attach");
    assert_eq!(storage["osDisk"]["managedDisk"]["id"], os.as_str());
    assert_eq!(storage["osDisk"]["osType"], "Linux");
    assert_eq!(storage["dataDisks"][0]["lun"], 0);
    assert_eq!(storage["dataDisks"][0]["managedDisk"]["id"], data.as_str());
    assert_eq!(
        body["properties"]["hardwareProfile"]["vmSize"],
        "Standard_D4s_v5"
    );
    assert_eq!(
        body["properties"]["networkProfile"]["networkInterfaces"][0]["id"],
        fake_arm::nic_id("db01-nic0").as_str()
    );

    // The name is taken.
    assert!(matches!(
        failure(instance.cloud_create_vm(&spec)),
        Failure::Conflict(_)
    ));
    // An IP outside the subnet is refused before anything is made.
    let mut outside = spec.clone();
    outside.name = "db02".into();
    outside.disk_ids = vec![setup.arm.add_disk("db02-os", 30)];
    outside.private_ip = Some("10.99.0.5".into());
    match failure(instance.cloud_create_vm(&outside)) {
        Failure::InvalidInput(m) => assert!(m.contains("outside subnet"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(!setup.arm.has_nic("db02-nic0"));
    // An IP another NIC holds: ARM's PrivateIPAddressInUse is a conflict.
    let mut taken = outside.clone();
    taken.private_ip = Some("10.20.2.77".into());
    match failure(instance.cloud_create_vm(&taken)) {
        Failure::Conflict(m) => assert!(m.contains("PrivateIPAddressInUse"), "{m}"),
        other => panic!("{other:?}"),
    }
    // A disk another VM holds: ARM's 409, and the NIC made for it is removed.
    let mut attached = outside.clone();
    attached.private_ip = None;
    attached.disk_ids = vec![os.clone()];
    assert!(matches!(
        failure(instance.cloud_create_vm(&attached)),
        Failure::Conflict(_)
    ));
    assert!(!setup.arm.has_nic("db02-nic0"));

    // Delete: refused while running, then the VM and its NIC go, the disks stay.
    match failure(instance.cloud_delete_vm(&vm.id)) {
        Failure::Conflict(m) => assert!(m.contains("running"), "{m}"),
        other => panic!("{other:?}"),
    }
    instance.cloud_power_off(&vm.id, true).unwrap();
    instance.cloud_delete_vm(&vm.id).unwrap();
    assert!(matches!(
        failure(instance.cloud_get_vm(&vm.id)),
        Failure::NotFound(_)
    ));
    assert!(!setup.arm.has_nic("db01-nic0"));
    // The disks were kept: a new VM attaches them.
    let mut again = spec.clone();
    again.name = "db01b".into();
    again.private_ip = None;
    let vm = instance.cloud_create_vm(&again).unwrap();
    let (ip, _, _, _) = fixed_ip(&vm.nics[0].addressing).unwrap();
    assert_eq!(ip, "10.20.2.4", "the first free address Azure hands out");
}

#[test]
fn networks_say_whether_the_vnet_or_the_subnet_is_missing() {
    let setup = Setup::new();
    let mut instance = setup.instance();
    let vnet = instance
        .cloud_get_network(&fake_arm::vnet_id("vnet1"))
        .unwrap();
    assert_eq!(vnet.kind, "virtualNetwork");
    assert_eq!(vnet.address_prefixes, ["10.20.0.0/16"]);
    let subnet = instance
        .cloud_get_network(&fake_arm::subnet_id("vnet1", "app"))
        .unwrap();
    assert_eq!(subnet.kind, "subnet");
    assert_eq!(subnet.name, "app");
    assert_eq!(subnet.address_prefixes, ["10.20.1.0/24"]);

    match failure(instance.cloud_get_network(&fake_arm::subnet_id("vnet1", "web"))) {
        Failure::NotFound(m) => {
            assert!(
                m.contains("`vnet1` exists") && m.contains("no subnet `web`"),
                "{m}"
            );
            assert!(m.contains("app, db"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    for id in [
        fake_arm::vnet_id("vnet9"),
        fake_arm::subnet_id("vnet9", "app"),
    ] {
        match failure(instance.cloud_get_network(&id)) {
            Failure::NotFound(m) => {
                assert!(m.contains("virtual network `vnet9` does not exist"), "{m}")
            }
            other => panic!("{other:?}"),
        }
    }
    // create-vm in a missing subnet says the same.
    let spec = CloudVmSpec {
        name: "web02".into(),
        size: "Standard_B2s".into(),
        disk_ids: vec![setup.arm.add_disk("web02-os", 30)],
        subnet_id: fake_arm::subnet_id("vnet1", "web"),
        private_ip: None,
    };
    match failure(instance.cloud_create_vm(&spec)) {
        Failure::NotFound(m) => assert!(m.contains("no subnet `web`"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_vm_is_not_found_for_every_call() {
    let setup = Setup::new();
    let id = fake_arm::vm_id("ghost");
    let mut instance = setup.instance();
    let calls: Vec<(&str, Result<(), PluginError>)> = vec![
        ("get-vm", instance.cloud_get_vm(&id).map(drop)),
        ("power-off", instance.cloud_power_off(&id, true)),
        ("start", instance.cloud_start(&id)),
        ("delete-vm", instance.cloud_delete_vm(&id)),
    ];
    for (call, result) in calls {
        match failure(result) {
            Failure::NotFound(m) => assert!(m.contains("`ghost`"), "{call}: {m}"),
            other => panic!("{call}: {other:?}"),
        }
    }
    assert!(
        setup
            .arm
            .requests()
            .iter()
            .any(|r| r.status == 404 && r.path.ends_with("/virtualMachines/ghost"))
    );
    // An id that is not a VM's is invalid input, not a request.
    assert!(matches!(
        failure(instance.cloud_get_vm(&fake_arm::disk_id("ghost"))),
        Failure::InvalidInput(_)
    ));
}

#[test]
fn a_429_with_retry_after_is_retried_then_succeeds() {
    let setup = Setup::new();
    let seeded = setup
        .arm
        .add_vm("web01", &[30], "vnet1", "app", "10.20.1.10");
    let mut instance = setup.instance();
    instance.cloud_connect().unwrap();
    setup.arm.clear_requests();
    setup.arm.throttle_next(2);
    let started = Instant::now();
    let vm = instance.cloud_get_vm(&seeded.id).unwrap();
    assert_eq!(vm.name, "web01");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After: 1 was not honoured: {:?}",
        started.elapsed()
    );
    let statuses: Vec<u16> = setup
        .arm
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/virtualMachines/web01"))
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [429, 429, 200]);
}

#[test]
fn retries_exhausted_is_unavailable_with_the_asked_wait() {
    let setup = Setup::with(|s| {
        s.config.insert("max-retries".into(), "1".into());
    });
    let seeded = setup
        .arm
        .add_vm("web01", &[30], "vnet1", "app", "10.20.1.10");
    let mut instance = setup.instance();
    instance.cloud_connect().unwrap();
    setup.arm.throttle_next(2);
    match failure(instance.cloud_get_vm(&seeded.id)) {
        Failure::Unavailable {
            message,
            retry_after,
        } => {
            assert!(
                message.contains("429") && message.contains("max-retries"),
                "{message}"
            );
            assert_eq!(retry_after, Some(Duration::from_secs(1)));
        }
        other => panic!("{other:?}"),
    }
    // A 503 with Retry-After is retried the same way.
    setup.arm.fail_next(10, 503, "ServiceUnavailable", Some(1));
    match failure(instance.cloud_start(&seeded.id)) {
        Failure::Unavailable {
            message,
            retry_after,
        } => {
            assert!(message.contains("503"), "{message}");
            assert_eq!(retry_after, Some(Duration::from_secs(1)));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn reader_is_refused_with_the_missing_action() {
    let setup = Setup::as_principal(READER, READER_SECRET, |_| {});
    let seeded = setup
        .arm
        .add_vm("web01", &[30], "vnet1", "app", "10.20.1.10");
    let mut instance = setup.instance();
    instance.cloud_get_vm(&seeded.id).unwrap();
    match failure(instance.cloud_power_off(&seeded.id, true)) {
        Failure::PermissionDenied { message, missing } => {
            assert_eq!(
                missing,
                ["Microsoft.Compute/virtualMachines/deallocate/action"]
            );
            assert!(message.contains("AuthorizationFailed"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(setup.arm.power("web01").as_deref(), Some("running"));
}

#[test]
fn wrong_client_secret_is_denied_and_never_logged() {
    let wrong = format!("{CONTRIBUTOR_SECRET}-but-wrong");
    let setup = Setup::as_principal(CONTRIBUTOR, &wrong, |_| {});
    let seeded = setup
        .arm
        .add_vm("web01", &[30], "vnet1", "app", "10.20.1.10");
    let mut instance = setup.instance();
    let logs = recorder(&mut instance);
    let results = [
        instance.cloud_connect().map(drop),
        instance.cloud_get_vm(&seeded.id).map(drop),
    ];
    for result in results {
        match failure(result) {
            Failure::PermissionDenied { message, missing } => {
                assert!(missing.is_empty());
                assert!(message.contains("client-secret"), "{message}");
                assert!(message.contains("AADSTS7000215"), "{message}");
                assert!(!message.contains(&wrong), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
    let lines = logs.lines().join("\n");
    assert!(lines.contains("sign-in refused"), "{lines}");
    assert!(
        !lines.contains(CONTRIBUTOR_SECRET),
        "a secret was logged:\n{lines}"
    );

    // The right secret signs in; neither it nor the token is logged.
    let setup = Setup::new();
    let mut instance = setup.instance();
    let logs = recorder(&mut instance);
    instance.cloud_connect().unwrap();
    let lines = logs.lines().join("\n");
    assert!(lines.contains("signed in"), "{lines}");
    assert!(!lines.contains(CONTRIBUTOR_SECRET), "{lines}");
    assert!(
        !lines.contains("fake-token-"),
        "a token was logged:\n{lines}"
    );
}

#[test]
fn stopped_arm_is_unavailable_within_the_deadline() {
    let mut setup = Setup::new();
    let seeded = setup
        .arm
        .add_vm("web01", &[30], "vnet1", "app", "10.20.1.10");
    let mut first = setup.instance();
    first.cloud_connect().unwrap();
    setup.arm.stop();
    let endpoint = setup.arm.host_port();
    for mut instance in [first, setup.instance()] {
        let started = Instant::now();
        match failure(instance.cloud_get_vm(&seeded.id)) {
            Failure::Unavailable { message, .. } => {
                assert!(message.contains("unreachable"), "{message}");
                assert!(message.contains(&endpoint), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }
}

#[test]
fn an_operation_past_the_deadline_is_unavailable() {
    let setup = Setup::with(|s| {
        s.config.insert("timeout-ms".into(), "1500".into());
    });
    setup.arm.set_polls(1000);
    setup.arm.set_poll_wait(1);
    let seeded = setup
        .arm
        .add_vm("web01", &[30], "vnet1", "app", "10.20.1.10");
    let mut instance = setup.instance();
    let started = Instant::now();
    match failure(instance.cloud_power_off(&seeded.id, true)) {
        Failure::Unavailable { message, .. } => {
            assert!(message.contains("still"), "{message}");
            assert!(message.contains("timeout-ms"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn conformance_suite_against_the_fake_with_target() {
    let arm = FakeArm::start();
    let azurite = Azurite::start();
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("azure.wasm");
    std::fs::write(&wasm, AZURE.wasm).unwrap();
    let blob_endpoint = azurite.service_url();
    let set = arm.write_plugin_set(
        dir.path(),
        "azure",
        &wasm,
        &[
            ("storage-account", azurite::ACCOUNT),
            ("blob-endpoint", &blob_endpoint),
            ("secret:storage-key", azurite::KEY),
        ],
        &[format!("127.0.0.1:{}", azurite.port())],
    );
    let (_, out) = homeward_tests::homeward(&[
        "--config",
        &set.to_string_lossy(),
        "plugin",
        "test",
        &wasm.to_string_lossy(),
        "--target",
        &arm.url(),
    ]);
    let outcome = |case: &str| {
        out.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(case))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("{case} is not in the report:\n{out}"))
            .to_string()
    };
    for case in [
        "cloud/unconfigured",
        "cloud/connect",
        "cloud/wrong-credentials",
        "cloud/endpoint-unavailable",
        "cloud/missing-objects",
        "cloud/unreachable-network-endpoint",
    ] {
        assert_eq!(outcome(case), "PASS", "{case}:\n{out}");
    }
    // Seeding needs a lab; against a real endpoint these skip with the reason.
    for case in [
        "cloud/get-vm",
        "cloud/power",
        "cloud/create-and-delete-vm",
        "cloud/networks",
        "cloud/disk-endpoint",
        "cloud/changed-ranges",
        "cloud/restore-points",
        "cloud/reader-role",
    ] {
        assert_eq!(outcome(case), "SKIP", "{case}:\n{out}");
    }
}

// --- storage against Azurite -----------------------------------------------

/// Azurite, the fake ARM server, and the plugin configured for both.
struct Storage {
    azurite: Azurite,
    setup: Setup,
}

impl Storage {
    fn new(extra: &[(&str, &str)]) -> Storage {
        let azurite = Azurite::start();
        azurite.create_container("disks");
        let port = azurite.port();
        let url = azurite.service_url();
        let setup = Setup::with(|s| {
            s.grants
                .network
                .push(HostPort::from_authority("127.0.0.1", port));
            s.config
                .insert("storage-account".into(), azurite::ACCOUNT.into());
            s.config.insert("blob-endpoint".into(), url);
            s.secrets
                .insert("storage-key".into(), Secret::new(azurite::KEY));
            for (k, v) in extra {
                if let Some(secret) = k.strip_prefix("secret:") {
                    s.secrets.remove("storage-key");
                    s.secrets.insert(secret.into(), Secret::new(*v));
                } else {
                    s.config.insert(k.to_string(), v.to_string());
                }
            }
        });
        Storage { azurite, setup }
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1)
        .collect()
}

#[test]
fn disk_endpoint_is_a_page_blob_the_host_opens() {
    let storage = Storage::new(&[]);
    let disk = storage
        .azurite
        .create_disk("disks", "web01-os.vhd", 4 * MIB);
    let written = pattern(8192, 7);
    disk.write_at(&written, MIB).unwrap();
    disk.flush().unwrap();
    drop(disk);

    let mut instance = storage.setup.instance();
    let managed = fake_arm::disk_id("web01-os");
    for id in ["disks/web01-os.vhd", managed.as_str()] {
        let answer = instance.cloud_disk_endpoint(id, Access::Read).unwrap();
        assert_eq!(answer.id, id);
        assert_eq!(answer.format, DiskFormat::VhdFixed);
        assert_eq!(answer.capacity_bytes, 4 * MIB);
        let DiskLocator::Blob(endpoint) = &answer.locator else {
            panic!("{:?}", answer.locator)
        };
        assert_eq!(
            endpoint.url,
            storage.azurite.blob_url("disks", "web01-os.vhd")
        );
        assert!(matches!(
            &endpoint.credential,
            BlobCredential::SharedKey((account, _)) if account == azurite::ACCOUNT
        ));
        let device = page_blob::open(endpoint, false).unwrap();
        assert_eq!(device.capacity(), 4 * MIB);
        let mut read = vec![0; written.len()];
        device.read_at(&mut read, MIB).unwrap();
        assert_eq!(read, written);
    }

    match failure(instance.cloud_disk_endpoint("disks/nothing.vhd", Access::Read)) {
        Failure::NotFound(m) => assert!(m.contains("disks/nothing.vhd"), "{m}"),
        other => panic!("{other:?}"),
    }
    storage
        .azurite
        .create_page_blob("disks", "raw.bin", 2 * MIB);
    assert!(matches!(
        failure(instance.cloud_disk_endpoint("disks/raw.bin", Access::Read)),
        Failure::InvalidInput(_)
    ));
    assert!(matches!(
        failure(instance.cloud_disk_endpoint("Disks/x", Access::Read)),
        Failure::InvalidInput(_)
    ));

    // With a SAS instead of the key, the locator carries the SAS.
    let sas = azurite::Azurite::sas_token();
    let with_sas = Setup::with(|s| {
        s.grants.network.push(HostPort::from_authority(
            "127.0.0.1",
            storage.azurite.port(),
        ));
        s.config
            .insert("storage-account".into(), azurite::ACCOUNT.into());
        s.config
            .insert("blob-endpoint".into(), storage.azurite.service_url());
        s.secrets.insert("storage-sas".into(), Secret::new(&sas));
    });
    let answer = with_sas
        .instance()
        .cloud_disk_endpoint("disks/web01-os.vhd", Access::ReadWrite)
        .unwrap();
    let DiskLocator::Blob(endpoint) = &answer.locator else {
        panic!("{:?}", answer.locator)
    };
    assert!(matches!(&endpoint.credential, BlobCredential::SasToken(t) if *t == sas));
    let device = page_blob::open(endpoint, true).unwrap();
    assert_eq!(device.capacity(), 4 * MIB);
}

/// Writes the base state, snapshots, writes the changes, snapshots; the
/// snapshots and the blocks that really changed.
fn two_snapshots(
    storage: &Storage,
    instance: &mut PluginInstance,
    blob: &str,
) -> (String, String, Vec<(u64, u64)>) {
    let disk = storage.azurite.create_disk("disks", blob, 4 * MIB);
    let same = pattern(4096, 3);
    disk.write_at(&pattern(BLOCK as usize, 1), 0).unwrap();
    disk.write_at(&same, 2 * MIB).unwrap();
    disk.flush().unwrap();
    let id = format!("disks/{blob}");
    let base = instance.cloud_create_snapshot(&id).unwrap();
    assert!(base.created_at > 1_600_000_000_000, "{base:?}");
    assert_eq!(
        base.parent_id, None,
        "the blob's first snapshot has no parent"
    );
    // Inside block 0; across the blocks at 1 MiB; in block 48; and the same
    // bytes again at 2 MiB (written, but unchanged).
    disk.write_at(&pattern(512, 9), 4096).unwrap();
    disk.write_at(&pattern(1536, 5), MIB - 512).unwrap();
    disk.write_at(&pattern(512, 4), 3 * MIB).unwrap();
    disk.write_at(&same, 2 * MIB).unwrap();
    disk.flush().unwrap();
    let target = instance.cloud_create_snapshot(&id).unwrap();
    assert_ne!(base.id, target.id);
    assert_eq!(target.parent_id.as_deref(), Some(base.id.as_str()));
    assert!(target.created_at >= base.created_at, "{base:?} {target:?}");
    let expected = vec![
        (0, BLOCK),
        (MIB - BLOCK, MIB + BLOCK),
        (3 * MIB, 3 * MIB + BLOCK),
    ];
    (base.id, target.id, expected)
}

#[test]
fn snapshots_and_changed_ranges_by_compare_are_exactly_the_changed_blocks() {
    let storage = Storage::new(&[]);
    let mut instance = storage.setup.instance();
    let logs = recorder(&mut instance);
    let (base, target, expected) = two_snapshots(&storage, &mut instance, "app01-os.vhd");
    let id = "disks/app01-os.vhd";
    let changes = instance.cloud_changed_ranges(id, &base, &target).unwrap();
    assert_eq!(changes.method, "page-range-compare");
    let got: Vec<(u64, u64)> = changes
        .ranges
        .iter()
        .map(|r| (r.offset, r.offset + r.length))
        .collect();
    assert_eq!(got, expected);
    assert!(
        logs.lines()
            .join("\n")
            .contains("method page-range-compare")
    );

    let same = instance.cloud_changed_ranges(id, &target, &target).unwrap();
    assert!(same.ranges.is_empty());
    instance.cloud_delete_snapshot(id, &base).unwrap();
    assert!(matches!(
        failure(instance.cloud_changed_ranges(id, &base, &target)),
        Failure::NotFound(_)
    ));
    assert!(matches!(
        failure(instance.cloud_delete_snapshot(id, &base)),
        Failure::NotFound(_)
    ));
    assert!(matches!(
        failure(instance.cloud_delete_snapshot(id, "not-a-snapshot")),
        Failure::NotFound(_)
    ));
    assert!(matches!(
        failure(instance.cloud_create_snapshot("disks/nothing.vhd")),
        Failure::NotFound(_)
    ));
    instance.cloud_delete_snapshot(id, &target).unwrap();
}

#[test]
fn snapshot_parents_chain_per_disk_past_deletions_and_look_alike_blobs() {
    let storage = Storage::new(&[]);
    let mut instance = storage.setup.instance();
    drop(storage.azurite.create_disk("disks", "db01-os.vhd", MIB));
    // A blob whose name starts with the disk's: the prefix listing finds it,
    // its snapshots must not become the disk's parents.
    drop(storage.azurite.create_disk("disks", "db01-os.vhd.bak", MIB));
    let id = "disks/db01-os.vhd";
    let first = instance.cloud_create_snapshot(id).unwrap();
    let other = instance
        .cloud_create_snapshot("disks/db01-os.vhd.bak")
        .unwrap();
    assert_eq!(other.parent_id, None);
    let second = instance.cloud_create_snapshot(id).unwrap();
    assert_eq!(second.parent_id.as_deref(), Some(first.id.as_str()));
    assert_eq!(second.name, format!("db01-os@{}", second.id));
    assert!(!second.quiesced);
    let third = instance.cloud_create_snapshot(id).unwrap();
    assert_eq!(third.parent_id.as_deref(), Some(second.id.as_str()));
    // The parent is the newest snapshot still there.
    instance.cloud_delete_snapshot(id, &third.id).unwrap();
    let fourth = instance.cloud_create_snapshot(id).unwrap();
    assert_eq!(fourth.parent_id.as_deref(), Some(second.id.as_str()));
}

#[test]
fn get_vm_lists_its_disks_snapshots_oldest_first_per_disk_with_parents() {
    let storage = Storage::new(&[]);
    let seeded = storage
        .setup
        .arm
        .add_vm("web01", &[4, 2, 2], "vnet1", "app", "10.20.1.10");
    // Managed disks map to `disks/<name>.vhd`; web01-data1 has no blob at all.
    drop(storage.azurite.create_disk("disks", "web01-os.vhd", MIB));
    drop(storage.azurite.create_disk("disks", "web01-data0.vhd", MIB));
    drop(
        storage
            .azurite
            .create_disk("disks", "web01-os.vhd.bak", MIB),
    );
    let mut instance = storage.setup.instance();
    let os = &seeded.disk_ids[0];
    let data = &seeded.disk_ids[1];
    // Taken interleaved, so the answer's order is per disk, not by time.
    let os1 = instance.cloud_create_snapshot(os).unwrap();
    let data1 = instance.cloud_create_snapshot(data).unwrap();
    instance
        .cloud_create_snapshot("disks/web01-os.vhd.bak")
        .unwrap();
    let os2 = instance.cloud_create_snapshot(os).unwrap();
    assert_eq!(os2.parent_id.as_deref(), Some(os1.id.as_str()));

    let vm = instance.cloud_get_vm(&seeded.id).unwrap();
    assert_eq!(vm.disks.len(), 3);
    let got: Vec<(&str, &str, Option<&str>, u64)> = vm
        .snapshots
        .iter()
        .map(|s| {
            (
                s.id.as_str(),
                s.name.as_str(),
                s.parent_id.as_deref(),
                s.created_at,
            )
        })
        .collect();
    let os1_name = format!("web01-os@{}", os1.id);
    let os2_name = format!("web01-os@{}", os2.id);
    let data1_name = format!("web01-data0@{}", data1.id);
    assert_eq!(
        got,
        [
            (os1.id.as_str(), os1_name.as_str(), None, os1.created_at),
            (
                os2.id.as_str(),
                os2_name.as_str(),
                Some(os1.id.as_str()),
                os2.created_at
            ),
            (
                data1.id.as_str(),
                data1_name.as_str(),
                None,
                data1.created_at
            ),
        ]
    );
    assert!(
        vm.snapshots
            .iter()
            .all(|s| !s.quiesced && s.description.is_empty() && s.created_at > 1_600_000_000_000),
        "{:?}",
        vm.snapshots
    );

    // A deleted snapshot leaves the listing; the rest still chain.
    instance.cloud_delete_snapshot(os, &os1.id).unwrap();
    let vm = instance.cloud_get_vm(&seeded.id).unwrap();
    let ids: Vec<(&str, Option<&str>)> = vm
        .snapshots
        .iter()
        .map(|s| (s.id.as_str(), s.parent_id.as_deref()))
        .collect();
    assert_eq!(ids, [(os2.id.as_str(), None), (data1.id.as_str(), None)]);
}

#[test]
fn service_diff_is_the_configured_method_and_is_reported() {
    // Azurite's page-range diff is wrong (it answers the whole page list),
    // so only the method and coverage are checked here.
    let storage = Storage::new(&[("change-tracking", "service-diff")]);
    let mut instance = storage.setup.instance();
    let logs = recorder(&mut instance);
    let (base, target, _) = two_snapshots(&storage, &mut instance, "svc01-os.vhd");
    let changes = instance
        .cloud_changed_ranges("disks/svc01-os.vhd", &base, &target)
        .unwrap();
    assert_eq!(changes.method, "service-diff");
    assert!(logs.lines().join("\n").contains("method service-diff"));
    for (start, end) in [
        (4096, 4608),
        (MIB - 512, MIB + 1024),
        (3 * MIB, 3 * MIB + 512),
    ] {
        assert!(
            changes
                .ranges
                .iter()
                .any(|r| r.offset <= start && end <= r.offset + r.length),
            "{start}..{end} is not covered by {:?}",
            changes.ranges
        );
    }
}

#[test]
fn stopped_azurite_is_unavailable_within_the_deadline() {
    let mut storage = Storage::new(&[]);
    storage.azurite.create_disk("disks", "web01-os.vhd", MIB);
    let mut instance = storage.setup.instance();
    instance
        .cloud_disk_endpoint("disks/web01-os.vhd", Access::Read)
        .unwrap();
    storage.azurite.stop();
    let started = Instant::now();
    match failure(instance.cloud_disk_endpoint("disks/web01-os.vhd", Access::Read)) {
        Failure::Unavailable { message, .. } => {
            assert!(message.contains("unreachable"), "{message}");
            assert!(
                message.contains(&format!("127.0.0.1:{}", storage.azurite.port())),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn snapshot_endpoint_is_the_frozen_blob_read_only() {
    let storage = Storage::new(&[]);
    let mut instance = storage.setup.instance();
    let disk = storage
        .azurite
        .create_disk("disks", "snap01-os.vhd", 4 * MIB);
    let before = pattern(8192, 11);
    disk.write_at(&before, MIB).unwrap();
    disk.flush().unwrap();
    let snap = instance
        .cloud_create_snapshot("disks/snap01-os.vhd")
        .unwrap();
    disk.write_at(&pattern(8192, 12), MIB).unwrap();
    disk.flush().unwrap();

    let id = format!("disks/snap01-os.vhd@{}", snap.id);
    let answer = instance.cloud_disk_endpoint(&id, Access::Read).unwrap();
    assert_eq!(answer.id, id);
    assert_eq!(answer.capacity_bytes, 4 * MIB);
    let DiskLocator::Blob(endpoint) = &answer.locator else {
        panic!("{:?}", answer.locator)
    };
    assert!(endpoint.url.contains("snapshot="), "{}", endpoint.url);
    let device = page_blob::open(endpoint, false).unwrap();
    let mut read = vec![0; before.len()];
    device.read_at(&mut read, MIB).unwrap();
    assert_eq!(
        read, before,
        "the snapshot's bytes, not the disk's newer ones"
    );

    assert!(matches!(
        failure(instance.cloud_disk_endpoint(&id, Access::ReadWrite)),
        Failure::InvalidInput(_)
    ));
    let missing = "disks/snap01-os.vhd@2020-01-01T00:00:00.0000000Z";
    assert!(matches!(
        failure(instance.cloud_disk_endpoint(missing, Access::Read)),
        Failure::NotFound(_)
    ));
}

/// A VM of the fake ARM whose managed disks have their page blobs in
/// Azurite (`disks/<name>.vhd`), disk `i` holding `pattern(4096, i)` at `at`;
/// the blobs are returned open for writing, OS disk first.
fn vm_with_blobs(
    storage: &Storage,
    name: &str,
    blob_sizes: &[u64],
    ip: &str,
    at: u64,
) -> (fake_arm::SeededVm, Vec<page_blob::PageBlob>) {
    let gib: Vec<u64> = blob_sizes.iter().map(|_| 1).collect();
    let seeded = storage.setup.arm.add_vm(name, &gib, "vnet1", "app", ip);
    let blobs = blob_sizes
        .iter()
        .enumerate()
        .map(|(i, size)| {
            let blob = match i {
                0 => format!("{name}-os.vhd"),
                n => format!("{name}-data{}.vhd", n - 1),
            };
            let disk = storage.azurite.create_disk("disks", &blob, *size);
            disk.write_at(&pattern(4096, i as u8), at).unwrap();
            disk.flush().unwrap();
            disk
        })
        .collect();
    (seeded, blobs)
}

#[test]
fn restore_point_is_one_blob_snapshot_per_disk_usable_like_any_snapshot() {
    let storage = Storage::new(&[]);
    // Two sizes, so a snapshot read under the wrong disk shows.
    let (web, blobs) = vm_with_blobs(&storage, "web01", &[4 * MIB, 2 * MIB], "10.20.1.10", MIB);
    let (os, data) = (&web.disk_ids[0], &web.disk_ids[1]);
    let mut instance = storage.setup.instance();
    let logs = recorder(&mut instance);
    assert!(instance.cloud_has_restore_points().unwrap());

    // Asked data disk first: the answer follows the order asked.
    let point = instance
        .cloud_create_restore_point(&web.id, &[data.clone(), os.clone()], false)
        .unwrap()
        .expect("the azure adapter exports cloud-restore-points");
    assert!(!point.quiesced);
    assert_eq!(point.note, None);
    assert_eq!(point.snapshots.len(), 2, "{point:?}");
    assert!(point.snapshots.iter().all(|s| !s.quiesced), "{point:?}");
    let (data_snap, os_snap) = (&point.snapshots[0], &point.snapshots[1]);
    assert_eq!(data_snap.name, format!("web01-data0@{}", data_snap.id));
    assert_eq!(os_snap.name, format!("web01-os@{}", os_snap.id));
    assert!(
        logs.lines()
            .join("\n")
            .contains("2 blob snapshot(s) taken as one restore point")
    );

    // The disks move on; each snapshot, read as DISK@SNAPSHOT through the
    // managed disk's id, keeps the bytes of the point.
    for blob in &blobs {
        blob.write_at(&pattern(4096, 0xee), MIB).unwrap();
        blob.flush().unwrap();
    }
    for (i, (disk, snap, capacity)) in [(os, os_snap, 4 * MIB), (data, data_snap, 2 * MIB)]
        .into_iter()
        .enumerate()
    {
        let id = format!("{disk}@{}", snap.id);
        let answer = instance.cloud_disk_endpoint(&id, Access::Read).unwrap();
        assert_eq!(answer.id, id);
        assert_eq!(answer.capacity_bytes, capacity);
        let DiskLocator::Blob(endpoint) = &answer.locator else {
            panic!("{:?}", answer.locator)
        };
        let device = page_blob::open(endpoint, false).unwrap();
        let mut read = vec![0; 4096];
        device.read_at(&mut read, MIB).unwrap();
        assert_eq!(read, pattern(4096, i as u8), "{id} keeps the point's bytes");
    }
    // (Not checked: that os@<data's snapshot> is not found. Snapshot ids
    // are timestamps, and two blobs snapshotted back to back may share one.)

    // A later snapshot chains on the point's; changed-ranges compares them.
    let later = instance.cloud_create_snapshot(os).unwrap();
    assert_eq!(later.parent_id.as_deref(), Some(os_snap.id.as_str()));
    let changes = instance
        .cloud_changed_ranges(os, &os_snap.id, &later.id)
        .unwrap();
    let ranges: Vec<(u64, u64)> = changes
        .ranges
        .iter()
        .map(|r| (r.offset, r.length))
        .collect();
    assert_eq!(ranges, vec![(MIB, BLOCK)]);
    let listed = instance.cloud_get_vm(&web.id).unwrap().snapshots;
    assert_eq!(listed.len(), 3, "{listed:?}");

    // Deleted one by one, as any snapshot.
    instance.cloud_delete_snapshot(data, &data_snap.id).unwrap();
    instance.cloud_delete_snapshot(os, &os_snap.id).unwrap();
    assert!(matches!(
        failure(instance.cloud_disk_endpoint(&format!("{os}@{}", os_snap.id), Access::Read)),
        Failure::NotFound(_)
    ));
    let left: Vec<String> = instance
        .cloud_get_vm(&web.id)
        .unwrap()
        .snapshots
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(left, vec![later.id.clone()]);
}

#[test]
fn restore_point_asked_to_quiesce_is_crash_consistent_with_the_note() {
    let storage = Storage::new(&[]);
    let (web, _blobs) = vm_with_blobs(&storage, "web01", &[MIB, MIB], "10.20.1.10", 0);
    let mut instance = storage.setup.instance();
    let point = instance
        .cloud_create_restore_point(&web.id, &web.disk_ids, true)
        .unwrap()
        .unwrap();
    assert!(!point.quiesced, "blob snapshots cannot quiesce: {point:?}");
    assert!(point.snapshots.iter().all(|s| !s.quiesced), "{point:?}");
    assert_eq!(point.snapshots.len(), 2);
    let note = point
        .note
        .expect("a note says why the point is not quiesced");
    assert!(
        note.contains("cannot quiesce") && note.contains("crash-consistent"),
        "{note}"
    );
    for (disk, snap) in web.disk_ids.iter().zip(&point.snapshots) {
        instance.cloud_delete_snapshot(disk, &snap.id).unwrap();
    }
}

#[test]
fn restore_point_of_a_disk_not_of_the_vm_is_refused_and_takes_nothing() {
    let storage = Storage::new(&[]);
    let (web, _blobs) = vm_with_blobs(&storage, "web01", &[MIB, MIB], "10.20.1.10", 0);
    let (db, _db_blobs) = vm_with_blobs(&storage, "db01", &[MIB], "10.20.1.11", 0);
    drop(storage.azurite.create_disk("disks", "spare.vhd", MIB));
    let os = web.disk_ids[0].clone();
    let mut instance = storage.setup.instance();

    for foreign in [
        db.disk_ids[0].clone(),
        fake_arm::disk_id("ghost"),
        "disks/spare.vhd".to_string(),
    ] {
        match failure(instance.cloud_create_restore_point(
            &web.id,
            &[os.clone(), foreign.clone()],
            false,
        )) {
            Failure::InvalidInput(m) => assert!(
                m.contains(&foreign) && m.contains("not attached to virtual machine `web01`"),
                "{m}"
            ),
            other => panic!("{foreign}: {other:?}"),
        }
    }
    match failure(instance.cloud_create_restore_point(&web.id, &[], false)) {
        Failure::InvalidInput(m) => assert!(m.contains("at least one disk"), "{m}"),
        other => panic!("{other:?}"),
    }
    let ghost = fake_arm::vm_id("ghost");
    assert!(matches!(
        failure(instance.cloud_create_restore_point(&ghost, std::slice::from_ref(&os), false)),
        Failure::NotFound(_)
    ));
    for vm in [&web.id, &db.id] {
        let snapshots = instance.cloud_get_vm(vm).unwrap().snapshots;
        assert!(snapshots.is_empty(), "{snapshots:?}");
    }
}
