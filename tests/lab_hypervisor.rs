//! The embedded lab hypervisor plugin, through the real runtime, on lab sites
//! the host writes (`homeward::lab::hypervisor`): discovery, VM creation with
//! real VMDK-flat disks, privileges, readiness findings, state conflicts,
//! snapshots and the frozen disks `snapshot-disk` (API 0.1.2) locates, and
//! that a password never reaches a log line or an error.

use homeward::disk::BlockDevice;
use homeward::disk::VmdkFlat;
use homeward::lab::hypervisor::format::{ENABLE_UUID_KEY, Power};
use homeward::lab::hypervisor::privileges::{self as p, HOMEWARD_REQUIRED};
use homeward::lab::hypervisor::{
    ADMIN_PASSWORD, ADMIN_USER, LabSite, LabVm, MASTER_TARGET_DISK, READONLY_PASSWORD,
    READONLY_PRIVILEGES, READONLY_USER,
};
use homeward::plugin::adapter::{
    Disk, DiskFormat, DiskLocator, Finding, HypervisorVmSpec, PowerState, ReadinessRequest,
    Severity,
};
use homeward::plugin::{
    Failure, LoadedPlugin, LogRecorder, PluginError, PluginInstance, PluginSettings, Runtime,
    RuntimeOptions,
};
use homeward_tests::api_failure as failure;
use std::path::Path;
use std::sync::Arc;
use tempfile::TempDir;

const MIB: u64 = 1 << 20;

/// A lab in a temporary directory, and the plugin loaded on it.
struct Lab {
    dir: TempDir,
    site: LabSite,
    _runtime: Runtime,
    plugin: LoadedPlugin,
}

impl Lab {
    /// A fresh default lab, the plugin logged in as the administrator.
    fn new() -> Lab {
        Lab::as_user(ADMIN_USER, ADMIN_PASSWORD)
    }

    fn as_user(user: &str, password: &str) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let site = LabSite::create(dir.path()).unwrap();
        let settings = site.settings(user, password);
        let (runtime, plugin) = load(settings);
        Lab {
            dir,
            site,
            _runtime: runtime,
            plugin,
        }
    }

    /// Another account on the same lab.
    fn login(&self, user: &str, password: &str) -> PluginInstance {
        let (_, plugin) = load(self.site.settings(user, password));
        plugin.instantiate().unwrap()
    }

    fn instance(&self) -> PluginInstance {
        self.plugin.instantiate().unwrap()
    }
}

fn load(settings: PluginSettings) -> (Runtime, LoadedPlugin) {
    // The first load compiles into the shared cache while the other tests
    // wait, so the plugin is compiled once rather than once per test.
    static WARM: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    WARM.get_or_init(|| drop(compile(PluginSettings::default())));
    compile(settings)
}

fn compile(settings: PluginSettings) -> (Runtime, LoadedPlugin) {
    let runtime = Runtime::new(RuntimeOptions {
        cache_dir: Some(homeward_tests::shared_cache_dir().to_path_buf()),
        ..RuntimeOptions::default()
    })
    .unwrap();
    let plugin = runtime
        .load(
            homeward::embedded::LAB_HYPERVISOR.wasm,
            "lab-hypervisor",
            settings,
        )
        .unwrap();
    (runtime, plugin)
}

fn spec(
    name: &str,
    host: &str,
    datastore: &str,
    disks: &[u64],
    networks: &[&str],
) -> HypervisorVmSpec {
    HypervisorVmSpec {
        name: name.to_string(),
        host_id: host.to_string(),
        datastore_id: datastore.to_string(),
        guest_id: "otherLinux64Guest".to_string(),
        cpus: 2,
        memory_mib: 1024,
        disk_sizes: disks.to_vec(),
        network_ids: networks.iter().map(|n| n.to_string()).collect(),
    }
}

fn request(operation: &str) -> ReadinessRequest {
    ReadinessRequest {
        operation: operation.to_string(),
        vm_id: None,
        master_target_vm_id: None,
        master_target_host_id: None,
        datastore_id: None,
    }
}

fn checks(findings: &[Finding]) -> Vec<&str> {
    findings.iter().map(|f| f.check.as_str()).collect()
}

/// The (datastore, path) of a disk's `datastore-file` locator.
fn datastore_file(disk: &Disk) -> (&str, &str) {
    match &disk.locator {
        DiskLocator::DatastoreFile((ds, path)) => (ds.as_str(), path.as_str()),
        other => panic!("not a datastore file: {other:?}"),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn discovery_matches_the_seeded_site() {
    let lab = Lab::new();
    let web = lab
        .site
        .add_vm(&LabVm::new("web01", &[8 * MIB, 4 * MIB]))
        .unwrap();
    assert_eq!(web.id, "vm-2", "ids come from counters: mt-01 is vm-1");
    let mut hv = lab.instance();

    let endpoint = hv.hypervisor_connect().unwrap();
    assert_eq!(endpoint.product, "Homeward Lab Hypervisor 0.1");
    assert_eq!(
        endpoint.instance_id,
        lab.site.site().unwrap().endpoint.instance_id
    );

    let inv = hv.hypervisor_discover().unwrap();
    assert_eq!(inv.datacenters, ["lab-dc"]);
    let hosts: Vec<_> = inv
        .hosts
        .iter()
        .map(|h| (h.name.as_str(), h.datastore_ids.clone()))
        .collect();
    assert_eq!(
        hosts,
        [
            ("esx-01", strings(&["datastore-1", "datastore-2"])),
            ("esx-02", strings(&["datastore-2", "datastore-3"])),
        ]
    );
    let ds: Vec<_> = inv
        .datastores
        .iter()
        .map(|d| (d.name.as_str(), d.host_ids.clone(), d.accessible))
        .collect();
    assert_eq!(
        ds,
        [
            ("ds1", strings(&["host-1"]), true),
            ("ds2", strings(&["host-1", "host-2"]), true),
            ("ds3", strings(&["host-2"]), true),
        ]
    );
    let ds1 = &inv.datastores[0];
    let used = ds1.capacity_bytes - ds1.free_bytes;
    let disks = MASTER_TARGET_DISK + 12 * MIB;
    assert!(
        used >= disks && used < disks + 64 * 1024,
        "ds1 holds two VMs' disks and small files: {used}"
    );
    assert_eq!(
        inv.datastores[2].free_bytes,
        inv.datastores[2].capacity_bytes
    );
    assert_eq!(inv.networks.len(), 2);
    let vms: Vec<_> = inv
        .vms
        .iter()
        .map(|v| (v.id.as_str(), v.name.as_str()))
        .collect();
    assert_eq!(vms, [("vm-1", "mt-01"), ("vm-2", "web01")]);

    let mt = &inv.vms[0];
    assert_eq!(mt.power, PowerState::PoweredOn);
    assert!(
        mt.properties
            .contains(&("extra-config.disk.EnableUUID".into(), "TRUE".into()))
    );
    let d = &mt.disks[0];
    assert_eq!(d.format, DiskFormat::VmdkFlat);
    assert_eq!(datastore_file(d), ("ds1", "mt-01/mt-01.vmdk"));
    assert_eq!((d.capacity_bytes, d.sector_size), (MASTER_TARGET_DISK, 512));
    assert_eq!((d.controller.as_deref(), d.unit), (Some("scsi0"), Some(0)));
    assert!(d.properties.contains(&("thin".into(), "true".into())));

    let got = hv.hypervisor_get_vm("vm-2").unwrap();
    assert_eq!(got.disks.len(), 2);
    assert_eq!(
        got.disks.iter().map(|d| d.id.clone()).collect::<Vec<_>>(),
        web.disk_ids
    );
    assert_eq!(got.nics[0].network.as_deref(), Some("network-1"));

    let licence = hv.hypervisor_get_licence().unwrap();
    assert_eq!(
        (licence.edition.as_str(), licence.free),
        ("esxEnterprisePlus", false)
    );

    match failure(hv.hypervisor_get_vm("vm-99")) {
        Failure::NotFound(m) => assert!(m.contains("vm-99"), "{m}"),
        other => panic!("{other:?}"),
    }

    // The session survives, and a call after disconnect logs in again.
    hv.hypervisor_disconnect().unwrap();
    hv.hypervisor_disconnect().unwrap();
    assert_eq!(hv.hypervisor_discover().unwrap().vms.len(), 2);
}

#[test]
fn create_vm_at_an_alternate_location_makes_real_disks() {
    let lab = Lab::new();
    let mut hv = lab.instance();
    let vm = hv
        .hypervisor_create_vm(&spec(
            "app01",
            "host-2",
            "datastore-3",
            &[8 * MIB, 3 * MIB],
            &["network-2"],
        ))
        .unwrap();
    assert_eq!((vm.id.as_str(), vm.power), ("vm-2", PowerState::PoweredOff));
    assert_eq!(vm.host_id.as_deref(), Some("host-2"));
    assert_eq!(vm.nics.len(), 1);
    assert!(
        vm.nics[0].mac.starts_with("00:50:56:"),
        "{}",
        vm.nics[0].mac
    );

    let ds3 = lab.site.datastore_path("ds3");
    for (disk, (file, size)) in vm
        .disks
        .iter()
        .zip([("app01.vmdk", 8 * MIB), ("app01_1.vmdk", 3 * MIB)])
    {
        assert_eq!(
            datastore_file(disk),
            ("ds3", format!("app01/{file}").as_str())
        );
        assert_eq!(disk.capacity_bytes, size);
        let descriptor = ds3.join("app01").join(file);
        let flat = ds3.join("app01").join(file.replace(".vmdk", "-flat.vmdk"));
        assert_eq!(std::fs::metadata(&flat).unwrap().len(), size);
        // The host's own VMDK reader and qemu-img both read it.
        assert_eq!(VmdkFlat::open(&descriptor, false).unwrap().capacity(), size);
        let out = std::process::Command::new("qemu-img")
            .args(["info", "--output=json"])
            .arg(&descriptor)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let info = String::from_utf8(out.stdout).unwrap();
        assert!(info.contains("\"format\": \"vmdk\""), "{info}");
        assert!(
            info.contains(&format!("\"virtual-size\": {size}")),
            "{info}"
        );
    }
    let units: Vec<_> = vm.disks.iter().map(|d| d.unit).collect();
    assert_eq!(units, [Some(0), Some(1)]);

    // Add a disk, detach one: its file stays, the next name skips it.
    let added = hv.hypervisor_add_disk("vm-2", 2 * MIB).unwrap();
    assert_eq!((added.label.as_str(), added.unit), ("Hard disk 3", Some(2)));
    hv.hypervisor_detach_disk("vm-2", &vm.disks[1].id).unwrap();
    assert!(
        ds3.join("app01/app01_1-flat.vmdk").exists(),
        "detach keeps the file"
    );
    let again = hv.hypervisor_get_vm("vm-2").unwrap();
    assert_eq!(again.disks.len(), 2);
    assert!(again.disks.iter().all(|d| d.id != vm.disks[1].id));
    let next = hv.hypervisor_add_disk("vm-2", MIB).unwrap();
    assert_eq!(next.unit, Some(1), "the freed unit is reused");
    assert_eq!(datastore_file(&next), ("ds3", "app01/app01_3.vmdk"));
    match failure(hv.hypervisor_detach_disk("vm-2", "6000c290-dead")) {
        Failure::NotFound(m) => assert!(m.contains("6000c290-dead"), "{m}"),
        other => panic!("{other:?}"),
    }

    // Refusals, each of the right kind.
    match failure(hv.hypervisor_create_vm(&spec("app01", "host-1", "datastore-1", &[MIB], &[]))) {
        Failure::Conflict(m) => assert!(m.contains("app01") && m.contains("vm-2"), "{m}"),
        other => panic!("{other:?}"),
    }
    match failure(hv.hypervisor_create_vm(&spec("app02", "host-2", "datastore-1", &[MIB], &[]))) {
        Failure::InvalidInput(m) => assert!(m.contains("ds1") && m.contains("esx-02"), "{m}"),
        other => panic!("{other:?}"),
    }
    for (bad, named) in [
        (
            spec("app02", "host-9", "datastore-1", &[MIB], &[]),
            "host-9",
        ),
        (
            spec("app02", "host-1", "datastore-9", &[MIB], &[]),
            "datastore-9",
        ),
        (
            spec("app02", "host-1", "datastore-1", &[MIB], &["network-9"]),
            "network-9",
        ),
    ] {
        match failure(hv.hypervisor_create_vm(&bad)) {
            Failure::NotFound(m) => assert!(m.contains(named), "{m}"),
            other => panic!("{other:?}"),
        }
    }
    match failure(hv.hypervisor_create_vm(&spec(
        "huge",
        "host-1",
        "datastore-1",
        &[128 << 30],
        &[],
    ))) {
        Failure::Conflict(m) => assert!(m.contains("free"), "{m}"),
        other => panic!("{other:?}"),
    }
    match failure(hv.hypervisor_create_vm(&spec("../escape", "host-1", "datastore-1", &[MIB], &[])))
    {
        Failure::InvalidInput(_) => {}
        other => panic!("{other:?}"),
    }
    assert!(!lab.dir.path().join("datastores/escape").exists());

    // Delete: the directory goes.
    hv.hypervisor_delete_vm("vm-2").unwrap();
    assert!(!ds3.join("app01").exists());
    match failure(hv.hypervisor_delete_vm("vm-2")) {
        Failure::NotFound(m) => assert!(m.contains("vm-2"), "{m}"),
        other => panic!("{other:?}"),
    }
    let ids: Vec<_> = hv
        .hypervisor_discover()
        .unwrap()
        .vms
        .into_iter()
        .map(|v| v.id)
        .collect();
    assert_eq!(ids, ["vm-1"]);
}

#[test]
fn readonly_account_lacks_exactly_the_missing_privileges() {
    let lab = Lab::as_user(READONLY_USER, READONLY_PASSWORD);
    let mut hv = lab.instance();
    assert_eq!(
        hv.hypervisor_discover().unwrap().vms.len(),
        1,
        "reads are allowed"
    );

    match failure(hv.hypervisor_create_vm(&spec(
        "x",
        "host-1",
        "datastore-1",
        &[MIB],
        &["network-1"],
    ))) {
        Failure::PermissionDenied { message, missing } => {
            assert!(message.contains(READONLY_USER), "{message}");
            assert_eq!(
                missing,
                strings(&[
                    p::VM_CREATE,
                    p::ASSIGN_TO_POOL,
                    p::ADD_NEW_DISK,
                    p::ALLOCATE_SPACE,
                    p::NETWORK_ASSIGN
                ])
            );
        }
        other => panic!("{other:?}"),
    }
    match failure(hv.hypervisor_set_power("vm-1", PowerState::PoweredOff)) {
        Failure::PermissionDenied { missing, .. } => assert_eq!(missing, [p::POWER_OFF]),
        other => panic!("{other:?}"),
    }
    match failure(hv.hypervisor_delete_snapshot("vm-1", "snapshot-1")) {
        Failure::PermissionDenied { missing, .. } => assert_eq!(missing, [p::REMOVE_SNAPSHOT]),
        other => panic!("{other:?}"),
    }

    let findings = hv.hypervisor_readiness(&request("failback")).unwrap();
    assert_eq!(checks(&findings), ["privileges"]);
    assert_eq!(findings[0].severity, Severity::Blocking);
    let expected: Vec<String> = HOMEWARD_REQUIRED
        .iter()
        .filter(|p| !READONLY_PRIVILEGES.contains(p))
        .map(|p| p.to_string())
        .collect();
    assert_eq!(findings[0].details, expected);

    // The administrator has them all.
    let mut admin = lab.login(ADMIN_USER, ADMIN_PASSWORD);
    assert!(
        admin
            .hypervisor_readiness(&request("failback"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn readiness_finds_snapshots_licence_disk_uuid_and_datastore_reach() {
    let lab = Lab::new();
    let web = lab.site.add_vm(&LabVm::new("web01", &[MIB])).unwrap();
    let mut plain_mt = LabVm::new("mt-02", &[MIB]);
    plain_mt.host = "esx-02".to_string();
    plain_mt.datastore = "ds2".to_string();
    let mt2 = lab.site.add_vm(&plain_mt).unwrap();
    let mut hv = lab.instance();

    let failback = ReadinessRequest {
        vm_id: Some(web.id.clone()),
        master_target_vm_id: Some("vm-1".to_string()),
        datastore_id: Some("datastore-2".to_string()),
        ..request("failback")
    };
    assert_eq!(
        checks(&hv.hypervisor_readiness(&failback).unwrap()),
        [""; 0]
    );

    // Snapshots block reprotect (not failback), naming each snapshot.
    hv.hypervisor_create_snapshot(&web.id, "before-upgrade", false)
        .unwrap();
    hv.hypervisor_create_snapshot(&web.id, "after-upgrade", false)
        .unwrap();
    let reprotect = ReadinessRequest {
        operation: "reprotect".to_string(),
        ..failback.clone()
    };
    let findings = hv.hypervisor_readiness(&reprotect).unwrap();
    assert_eq!(checks(&findings), ["snapshots"]);
    assert_eq!(findings[0].details, ["before-upgrade", "after-upgrade"]);
    assert!(
        findings[0].remedy.contains("delete"),
        "{}",
        findings[0].remedy
    );
    assert_eq!(
        checks(&hv.hypervisor_readiness(&failback).unwrap()),
        [""; 0]
    );

    // The master target's disk.EnableUUID, and what its host mounts.
    let findings = hv
        .hypervisor_readiness(&ReadinessRequest {
            master_target_vm_id: Some(mt2.id.clone()),
            datastore_id: Some("datastore-1".to_string()),
            ..failback.clone()
        })
        .unwrap();
    assert_eq!(checks(&findings), ["disk-uuid", "datastore-reach"]);
    assert!(findings.iter().all(|f| f.severity == Severity::Blocking));
    assert!(
        findings[0].remedy.contains("power off"),
        "{}",
        findings[0].remedy
    );
    assert_eq!(findings[1].details, ["datastore-1", "host-2"]);
    lab.site
        .update_vm(&mt2.id, |vm| {
            vm.extra_config
                .insert(ENABLE_UUID_KEY.to_string(), "true".to_string());
        })
        .unwrap();
    let findings = hv
        .hypervisor_readiness(&ReadinessRequest {
            master_target_host_id: Some("host-1".to_string()),
            master_target_vm_id: Some(mt2.id.clone()),
            datastore_id: Some("datastore-3".to_string()),
            ..failback.clone()
        })
        .unwrap();
    assert_eq!(
        checks(&findings),
        ["datastore-reach"],
        "the named host wins"
    );
    assert_eq!(findings[0].details, ["datastore-3", "host-1"]);

    // A free licence blocks failback, and makes every change unsupported.
    lab.site.set_free_licence().unwrap();
    let findings = hv.hypervisor_readiness(&failback).unwrap();
    assert_eq!(checks(&findings), ["licence"]);
    assert_eq!(findings[0].severity, Severity::Blocking);
    assert!(hv.hypervisor_get_licence().unwrap().free);
    match failure(hv.hypervisor_create_vm(&spec("x", "host-1", "datastore-1", &[MIB], &[]))) {
        Failure::Unsupported(m) => assert!(m.contains("free licence"), "{m}"),
        other => panic!("{other:?}"),
    }

    // Objects the request names must exist; operations must be known.
    for bad in [
        ReadinessRequest {
            vm_id: Some("vm-77".into()),
            ..request("failback")
        },
        ReadinessRequest {
            master_target_vm_id: Some("vm-77".into()),
            ..request("failback")
        },
        ReadinessRequest {
            master_target_host_id: Some("host-77".into()),
            ..request("failback")
        },
        ReadinessRequest {
            datastore_id: Some("datastore-77".into()),
            ..request("failback")
        },
    ] {
        match failure(hv.hypervisor_readiness(&bad)) {
            Failure::NotFound(m) => assert!(m.contains("77"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(
        failure(hv.hypervisor_readiness(&request("migrate"))),
        Failure::InvalidInput(_)
    ));
}

#[test]
fn power_and_snapshot_state_conflicts() {
    let lab = Lab::new();
    let mut no_tools = LabVm::new("db01", &[2 * MIB]);
    no_tools.power = Power::PoweredOn;
    let db = lab.site.add_vm(&no_tools).unwrap();
    let mut hv = lab.instance();

    match failure(hv.hypervisor_set_power("vm-1", PowerState::PoweredOn)) {
        Failure::Conflict(m) => assert!(m.contains("already powered on"), "{m}"),
        other => panic!("{other:?}"),
    }
    match failure(hv.hypervisor_set_power("vm-42", PowerState::PoweredOn)) {
        Failure::NotFound(m) => assert!(m.contains("vm-42"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        failure(hv.hypervisor_set_power("vm-1", PowerState::Suspended)),
        Failure::InvalidInput(_)
    ));
    match failure(hv.hypervisor_shutdown_guest(&db.id)) {
        Failure::Conflict(m) => assert!(m.contains("power it off"), "{m}"),
        other => panic!("{other:?}"),
    }
    match failure(hv.hypervisor_delete_vm(&db.id)) {
        Failure::Conflict(m) => assert!(m.contains("power it off"), "{m}"),
        other => panic!("{other:?}"),
    }
    match failure(hv.hypervisor_create_snapshot(&db.id, "q", true)) {
        Failure::Conflict(m) => assert!(m.contains("quiesce"), "{m}"),
        other => panic!("{other:?}"),
    }

    // The master target has tools: a clean shutdown powers it off.
    hv.hypervisor_shutdown_guest("vm-1").unwrap();
    assert_eq!(
        hv.hypervisor_get_vm("vm-1").unwrap().power,
        PowerState::PoweredOff
    );
    match failure(hv.hypervisor_set_power("vm-1", PowerState::PoweredOff)) {
        Failure::Conflict(m) => assert!(m.contains("already powered off"), "{m}"),
        other => panic!("{other:?}"),
    }
    hv.hypervisor_set_power("vm-1", PowerState::PoweredOn)
        .unwrap();
    let quiesced = hv.hypervisor_create_snapshot("vm-1", "q", true).unwrap();
    assert!(quiesced.quiesced);

    // A snapshot is a real frozen point: later writes do not reach its copy.
    let flat = &db.flat_paths[0];
    write_at(flat, 4096, b"before");
    let first = hv.hypervisor_create_snapshot(&db.id, "one", false).unwrap();
    let second = hv.hypervisor_create_snapshot(&db.id, "two", false).unwrap();
    assert_eq!(
        (first.id.as_str(), second.id.as_str()),
        ("snapshot-2", "snapshot-3")
    );
    assert_eq!(second.parent_id.as_deref(), Some("snapshot-2"));
    write_at(flat, 4096, b"after!");
    let frozen = flat
        .parent()
        .unwrap()
        .join("snapshots/snapshot-2/db01-flat.vmdk");
    let bytes = std::fs::read(&frozen).unwrap();
    assert_eq!(bytes.len() as u64, 2 * MIB);
    assert_eq!(&bytes[4096..4102], b"before");

    // Deleting consolidates: the copies go, the child moves up.
    hv.hypervisor_delete_snapshot(&db.id, "snapshot-2").unwrap();
    assert!(!frozen.exists());
    let vm = hv.hypervisor_get_vm(&db.id).unwrap();
    assert_eq!(vm.snapshots.len(), 1);
    assert_eq!(vm.snapshots[0].parent_id, None);
    match failure(hv.hypervisor_delete_snapshot(&db.id, "snapshot-2")) {
        Failure::NotFound(m) => assert!(m.contains("snapshot-2"), "{m}"),
        other => panic!("{other:?}"),
    }
}

/// The block device a `datastore-file` locator names in `lab`.
fn open_located(lab: &Lab, disk: &Disk, writable: bool) -> Box<dyn BlockDevice> {
    let (ds, path) = datastore_file(disk);
    homeward::disk::open(&lab.site.datastore_path(ds).join(path), writable, None).unwrap()
}

fn read_located(lab: &Lab, disk: &Disk, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    open_located(lab, disk, false)
        .read_at(&mut buf, offset)
        .unwrap();
    buf
}

#[test]
fn snapshot_disk_locates_the_bytes_of_snapshot_time() {
    let lab = Lab::new();
    let app = lab
        .site
        .add_vm(&LabVm::new("app01", &[2 * MIB, MIB]))
        .unwrap();
    let mut hv = lab.instance();
    assert!(hv.hypervisor_has_snapshot_disks().unwrap());
    let live = hv.hypervisor_get_vm(&app.id).unwrap().disks;

    // What each disk holds when the snapshot is taken, then what it holds after.
    for (disk, mark) in live
        .iter()
        .zip([b"disk 0 at snapshot", b"disk 1 at snapshot"])
    {
        let device = open_located(&lab, disk, true);
        device.write_at(mark, 64 * 1024).unwrap();
        device.flush().unwrap();
    }
    let snapshot = hv
        .hypervisor_create_snapshot(&app.id, "cycle", false)
        .unwrap();
    for disk in &live {
        let device = open_located(&lab, disk, true);
        device.write_at(b"written afterwards", 64 * 1024).unwrap();
        device.flush().unwrap();
    }

    for (disk, mark) in live
        .iter()
        .zip([b"disk 0 at snapshot", b"disk 1 at snapshot"])
    {
        let frozen = hv
            .hypervisor_snapshot_disk(&app.id, &snapshot.id, &disk.id)
            .unwrap()
            .expect("the lab exports hypervisor-snapshots");
        assert_eq!(frozen.id, disk.id);
        assert_eq!(frozen.capacity_bytes, disk.capacity_bytes);
        assert_eq!(frozen.format, DiskFormat::VmdkFlat);
        assert!(
            frozen
                .properties
                .contains(&("access".to_string(), "read".to_string())),
            "{frozen:?}"
        );
        assert_ne!(datastore_file(&frozen), datastore_file(disk));
        assert_eq!(
            open_located(&lab, &frozen, false).capacity(),
            disk.capacity_bytes
        );
        assert_eq!(read_located(&lab, &frozen, 64 * 1024, mark.len()), mark);
        assert_eq!(
            read_located(&lab, disk, 64 * 1024, 18),
            b"written afterwards"
        );
    }

    let disk = &live[0].id;
    match failure(hv.hypervisor_snapshot_disk("vm-42", &snapshot.id, disk)) {
        Failure::NotFound(m) => assert!(m.contains("vm-42"), "{m}"),
        other => panic!("{other:?}"),
    }
    match failure(hv.hypervisor_snapshot_disk(&app.id, "snapshot-42", disk)) {
        Failure::NotFound(m) => assert!(m.contains("snapshot-42"), "{m}"),
        other => panic!("{other:?}"),
    }
    match failure(hv.hypervisor_snapshot_disk(&app.id, &snapshot.id, "no-such-disk")) {
        Failure::NotFound(m) => assert!(m.contains("no-such-disk"), "{m}"),
        other => panic!("{other:?}"),
    }
    let later = hv.hypervisor_add_disk(&app.id, MIB).unwrap();
    match failure(hv.hypervisor_snapshot_disk(&app.id, &snapshot.id, &later.id)) {
        Failure::NotFound(m) => assert!(m.contains("added after"), "{m}"),
        other => panic!("{other:?}"),
    }

    let frozen = hv
        .hypervisor_snapshot_disk(&app.id, &snapshot.id, disk)
        .unwrap()
        .unwrap();
    let (ds, path) = datastore_file(&frozen);
    let frozen_file = lab.site.datastore_path(ds).join(path);
    hv.hypervisor_delete_snapshot(&app.id, &snapshot.id)
        .unwrap();
    match failure(hv.hypervisor_snapshot_disk(&app.id, &snapshot.id, disk)) {
        Failure::NotFound(m) => assert!(m.contains(&snapshot.id), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(
        !frozen_file.exists(),
        "{} outlived its snapshot",
        frozen_file.display()
    );
}

fn write_at(path: &Path, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

#[test]
fn wrong_password_is_refused_and_never_logged() {
    const PASSWORD: &str = "Tr0ub4dor-never-in-a-log";
    let lab = Lab::as_user(ADMIN_USER, PASSWORD);
    // Every instance's log lines, kept by the host as it emits them.
    let logs = Arc::new(LogRecorder::default());
    let mut hv = lab.instance();
    hv.record_logs(logs.clone());
    let error = hv.hypervisor_connect().unwrap_err();
    // The right password on the same lab: its log line proves the recording works.
    let mut good = lab.login(ADMIN_USER, ADMIN_PASSWORD);
    good.record_logs(logs.clone());
    good.hypervisor_connect().unwrap();
    let text = logs.lines().join("\n");
    assert!(
        text.contains("logged in to the lab"),
        "the capture sees plugin log lines: {text}"
    );
    assert!(
        !text.contains(PASSWORD),
        "a log line holds the password: {text}"
    );
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains(PASSWORD), "{shown}");
    match error {
        PluginError::Failed {
            failure: Failure::PermissionDenied { message, missing },
            ..
        } => {
            assert_eq!(message, "wrong user or password for lab user administrator");
            assert!(missing.is_empty());
        }
        other => panic!("{other:?}"),
    }
    // An unknown user gets the same answer (no probing for account names).
    let mut ghost = lab.login("ghost", PASSWORD);
    match failure(ghost.hypervisor_discover()) {
        Failure::PermissionDenied { message, .. } => {
            assert_eq!(message, "wrong user or password for lab user ghost")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_lab_is_unavailable_naming_the_path() {
    // Granted, but no site.json in it.
    let empty = tempfile::tempdir().unwrap();
    let mut settings = PluginSettings::default();
    settings.grants.dirs = vec![homeward::config::DirGrant {
        host: empty.path().to_path_buf(),
        guest: "/lab".to_string(),
        write: true,
    }];
    settings.config.insert("user".into(), ADMIN_USER.into());
    settings.secrets.insert(
        "password".into(),
        homeward::config::Secret::new(ADMIN_PASSWORD),
    );
    let (_runtime, plugin) = load(settings.clone());
    let error = plugin
        .instantiate()
        .unwrap()
        .hypervisor_connect()
        .unwrap_err();
    assert!(error.is_retryable());
    match failure::<()>(Err(error)) {
        Failure::Unavailable { message, .. } => {
            assert!(message.contains("/lab/site.json"), "{message}")
        }
        other => panic!("{other:?}"),
    }

    // A root nothing is granted at.
    settings.config.insert("root".into(), "/elsewhere".into());
    let (_runtime, plugin) = load(settings);
    match failure(plugin.instantiate().unwrap().hypervisor_discover()) {
        Failure::Unavailable { message, .. } => {
            assert!(
                message.contains("/elsewhere") && message.contains("write = true"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn concurrent_create_vm_and_snapshots_never_share_an_id() {
    let lab = Lab::new();
    let created: Vec<homeward::plugin::adapter::Vm> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let mut hv = lab.instance();
                scope.spawn(move || {
                    (0..3)
                        .map(|i| {
                            let vm = hv
                                .hypervisor_create_vm(&spec(
                                    &format!("c{t}-{i}"),
                                    "host-1",
                                    "datastore-1",
                                    &[MIB, MIB],
                                    &[],
                                ))
                                .unwrap();
                            hv.hypervisor_add_disk(&vm.id, MIB).unwrap();
                            hv.hypervisor_create_snapshot(&vm.id, "s", false).unwrap();
                            hv.hypervisor_get_vm(&vm.id).unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(created.len(), 12);
    let mut ids: Vec<String> = created.iter().map(|v| v.id.clone()).collect();
    let mut disks: Vec<String> = created
        .iter()
        .flat_map(|v| v.disks.iter().map(|d| d.id.clone()))
        .collect();
    let mut snapshots: Vec<String> = created
        .iter()
        .flat_map(|v| v.snapshots.iter().map(|s| s.id.clone()))
        .collect();
    assert_eq!(disks.len(), 36);
    assert_eq!(snapshots.len(), 12);
    for list in [&mut ids, &mut disks, &mut snapshots] {
        let before = list.len();
        list.sort();
        list.dedup();
        assert_eq!(list.len(), before, "duplicates in {list:?}");
    }
}
