//! The embedded lab cloud plugin, through the real runtime, on labs the host
//! writes (`homeward::lab::cloud`): VMs with their disks, NICs and private
//! IPs, power states, creating and deleting VMs, networks, Reader refusals
//! with the missing Azure actions, disk endpoints the host's disk reader and
//! `qemu-img` open, snapshot diffs, restore points (API 0.1.1: quiesced or
//! crash-consistent with a note, snapshots usable one by one, refusals that
//! take nothing), and that a secret never reaches a log line or an error.

use homeward::config::{DirGrant, Secret};
use homeward::disk::ImageFormat;
use homeward::lab::cloud::format::{LabPower, vm_uuid};
use homeward::lab::cloud::{
    CONTRIBUTOR, CONTRIBUTOR_SECRET, LabCloud, LabVm, LabVmSpec, READER, READER_SECRET,
    SUBSCRIPTION_ID, actions,
};
use homeward::plugin::adapter::{Access, CloudVmSpec, DiskFormat, DiskLocator, PowerState, Vm};
use homeward::plugin::wit::v0_1::types::Addressing;
use homeward::plugin::{
    Failure, LoadedPlugin, LogRecorder, PluginError, PluginInstance, PluginSettings, Runtime,
    RuntimeOptions,
};
use homeward_tests::api_failure as failure;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tempfile::TempDir;

const MIB: u64 = 1 << 20;
const BLOCK: u64 = 64 * 1024;

/// A lab in a temporary directory, and the plugin loaded on it.
struct Lab {
    _dir: TempDir,
    cloud: LabCloud,
    _runtime: Runtime,
    plugin: LoadedPlugin,
}

impl Lab {
    /// A fresh default lab, the plugin signed in as the Contributor.
    fn new() -> Lab {
        Lab::signed_in(CONTRIBUTOR, CONTRIBUTOR_SECRET)
    }

    fn signed_in(client_id: &str, secret: &str) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let cloud = LabCloud::create(dir.path()).unwrap();
        let (runtime, plugin) = load(cloud.settings(client_id, Secret::new(secret)));
        Lab {
            _dir: dir,
            cloud,
            _runtime: runtime,
            plugin,
        }
    }

    fn instance(&self) -> PluginInstance {
        self.plugin.instantiate().unwrap()
    }

    /// An instance on the same lab as another principal.
    fn as_principal(&self, client_id: &str, secret: &str) -> PluginInstance {
        let (_, plugin) = load(self.cloud.settings(client_id, Secret::new(secret)));
        plugin.instantiate().unwrap()
    }

    fn add_vm(&self, name: &str, disks: &[u64], ip: Option<[u8; 4]>) -> LabVm {
        let mut spec = LabVmSpec::new(name, disks);
        spec.private_ip = ip.map(Ipv4Addr::from);
        self.cloud.add_vm(&spec).unwrap()
    }
}

fn load(settings: PluginSettings) -> (Runtime, LoadedPlugin) {
    // One load at a time: the first compiles into the cache, the others read
    // it, instead of every test compiling the plugin at once.
    static LOADING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = LOADING.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = Runtime::new(RuntimeOptions {
        cache_dir: Some(homeward_tests::shared_cache_dir().to_path_buf()),
        ..RuntimeOptions::default()
    })
    .unwrap();
    let plugin = runtime
        .load(homeward::embedded::LAB_CLOUD.wasm, "lab-cloud", settings)
        .unwrap();
    (runtime, plugin)
}

fn not_found<T: std::fmt::Debug>(result: Result<T, PluginError>) -> String {
    match failure(result) {
        Failure::NotFound(m) => m,
        other => panic!("expected not-found, got {other:?}"),
    }
}

fn conflict<T: std::fmt::Debug>(result: Result<T, PluginError>) -> String {
    match failure(result) {
        Failure::Conflict(m) => m,
        other => panic!("expected conflict, got {other:?}"),
    }
}

fn invalid<T: std::fmt::Debug>(result: Result<T, PluginError>) -> String {
    match failure(result) {
        Failure::InvalidInput(m) => m,
        other => panic!("expected invalid-input, got {other:?}"),
    }
}

fn property<'a>(vm: &'a Vm, key: &str) -> &'a str {
    vm.properties
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no property {key} in {:?}", vm.properties))
}

fn spec(name: &str, disk_ids: &[&str], subnet_id: &str, ip: Option<&str>) -> CloudVmSpec {
    CloudVmSpec {
        name: name.to_string(),
        size: "Standard_D2s_v5".to_string(),
        disk_ids: disk_ids.iter().map(|d| d.to_string()).collect(),
        subnet_id: subnet_id.to_string(),
        private_ip: ip.map(str::to_string),
    }
}

#[test]
fn get_vm_shows_disks_nics_and_private_ips() {
    let lab = Lab::new();
    let web = lab.add_vm("web01", &[8 * MIB, 4 * MIB], Some([10, 20, 1, 10]));
    let db = lab.add_vm("db01", &[2 * MIB], None);
    let mut cloud = lab.instance();

    let info = cloud.cloud_connect().unwrap();
    assert_eq!(info.instance_id, SUBSCRIPTION_ID);
    assert!(info.product.contains("lab cloud"), "{info:?}");

    let vm = cloud.cloud_get_vm(&web.id).unwrap();
    assert_eq!(vm.id, web.id);
    assert_eq!(
        vm.id,
        format!(
            "/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/homeward-lab/providers/\
             Microsoft.Compute/virtualMachines/web01"
        )
    );
    assert_eq!(vm.name, "web01");
    assert_eq!(vm.uuid, vm_uuid(1));
    assert_eq!(vm.power, PowerState::PoweredOn);
    assert_eq!(property(&vm, "power-state"), "PowerState/running");
    assert_eq!(property(&vm, "size"), "Standard_D2s_v5");

    assert_eq!(vm.disks.len(), 2);
    let (os, data) = (&vm.disks[0], &vm.disks[1]);
    assert_eq!(os.id, web.disks[0].id);
    assert_eq!(os.capacity_bytes, 8 * MIB);
    assert_eq!(os.controller.as_deref(), Some("osDisk"));
    assert_eq!(os.format, DiskFormat::VhdFixed);
    match &os.locator {
        DiskLocator::LocalPath(path) => assert_eq!(Path::new(path), web.disks[0].path),
        other => panic!("{other:?}"),
    }
    assert_eq!(data.id, web.disks[1].id);
    assert_eq!(data.capacity_bytes, 4 * MIB);
    assert_eq!(
        (data.controller.as_deref(), data.unit),
        (Some("dataDisks"), Some(0))
    );

    assert_eq!(vm.nics.len(), 1);
    let nic = &vm.nics[0];
    assert_eq!(nic.mac, "00:0d:3a:00:00:01");
    assert_eq!(
        nic.network.as_deref(),
        Some(lab.cloud.subnet_id("app").as_str())
    );
    match &nic.addressing {
        Addressing::Fixed(s) => {
            assert_eq!(s.addresses, vec![("10.20.1.10".to_string(), 24)]);
            assert_eq!(s.gateways, vec!["10.20.1.1".to_string()]);
            assert_eq!(s.dns_servers, vec!["168.63.129.16".to_string()]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(property(&vm, "nic.0.allocation"), "Static");

    // The second VM gets the next numbers and the lowest free address
    // (Azure reserves .0 to .3).
    let vm = cloud.cloud_get_vm(&db.id).unwrap();
    assert_eq!(vm.uuid, vm_uuid(2));
    assert_eq!(vm.nics[0].mac, "00:0d:3a:00:00:02");
    match &vm.nics[0].addressing {
        Addressing::Fixed(s) => assert_eq!(s.addresses[0].0, "10.20.1.4"),
        other => panic!("{other:?}"),
    }
    assert_eq!(property(&vm, "nic.0.allocation"), "Dynamic");

    let missing = lab.cloud.vm_id("ghost");
    let message = not_found(cloud.cloud_get_vm(&missing));
    assert!(message.contains(&missing), "{message}");
    let message = invalid(cloud.cloud_get_vm("web01"));
    assert!(message.contains("not an Azure resource id"), "{message}");
    let message = invalid(cloud.cloud_get_vm(&web.disks[0].id));
    assert!(message.contains("Microsoft.Compute/disks"), "{message}");
    let other_group = web.id.replace("homeward-lab", "elsewhere");
    let message = not_found(cloud.cloud_get_vm(&other_group));
    assert!(message.contains("resource group elsewhere"), "{message}");
}

#[test]
fn power_off_with_deallocate_then_start() {
    let lab = Lab::new();
    let web = lab.add_vm("web01", &[MIB], None);
    let mut cloud = lab.instance();
    let state = |cloud: &mut PluginInstance| {
        let vm = cloud.cloud_get_vm(&web.id).unwrap();
        (vm.power, property(&vm, "power-state").to_string())
    };

    cloud.cloud_power_off(&web.id, false).unwrap();
    assert_eq!(
        state(&mut cloud),
        (PowerState::PoweredOff, "PowerState/stopped".into())
    );
    // Already off: Azure answers success and changes nothing.
    cloud.cloud_power_off(&web.id, false).unwrap();
    assert_eq!(
        lab.cloud.vm("web01").unwrap().unwrap().power,
        LabPower::Stopped
    );

    cloud.cloud_power_off(&web.id, true).unwrap();
    assert_eq!(
        state(&mut cloud),
        (PowerState::PoweredOff, "PowerState/deallocated".into())
    );
    // Powering off without deallocating does not allocate again.
    cloud.cloud_power_off(&web.id, false).unwrap();
    assert_eq!(
        lab.cloud.vm("web01").unwrap().unwrap().power,
        LabPower::Deallocated
    );

    cloud.cloud_start(&web.id).unwrap();
    assert_eq!(
        state(&mut cloud),
        (PowerState::PoweredOn, "PowerState/running".into())
    );
    cloud.cloud_start(&web.id).unwrap();
    assert_eq!(
        lab.cloud.vm("web01").unwrap().unwrap().power,
        LabPower::Running
    );

    let ghost = lab.cloud.vm_id("ghost");
    assert!(not_found(cloud.cloud_start(&ghost)).contains(&ghost));
    assert!(not_found(cloud.cloud_power_off(&ghost, true)).contains(&ghost));
}

#[test]
fn create_vm_from_disks_and_delete_vm_keeps_them() {
    let lab = Lab::new();
    let web = lab.add_vm("web01", &[4 * MIB, MIB], Some([10, 20, 1, 10]));
    let spare = lab.cloud.add_disk("spare", MIB).unwrap();
    let disk_ids: Vec<&str> = web.disks.iter().map(|d| d.id.as_str()).collect();
    let test_subnet = lab.cloud.subnet_id("test");
    let mut cloud = lab.instance();

    let message = conflict(cloud.cloud_delete_vm(&web.id));
    assert!(
        message.contains("web01") && message.contains("running"),
        "{message}"
    );
    cloud.cloud_power_off(&web.id, true).unwrap();
    cloud.cloud_delete_vm(&web.id).unwrap();
    assert!(not_found(cloud.cloud_get_vm(&web.id)).contains("web01"));
    for disk in &web.disks {
        assert!(
            lab.cloud.disk(&disk.name).unwrap().is_some(),
            "{} kept",
            disk.name
        );
        assert!(disk.path.exists());
    }

    // Reprotect: a new VM from the old disks, in the isolated subnet.
    let vm = cloud
        .cloud_create_vm(&spec(
            "web01-dr",
            &disk_ids,
            &test_subnet,
            Some("10.20.9.20"),
        ))
        .unwrap();
    assert_eq!(vm.id, lab.cloud.vm_id("web01-dr"));
    assert_eq!(vm.power, PowerState::PoweredOn);
    let ids: Vec<&str> = vm.disks.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, disk_ids);
    assert_eq!(vm.nics[0].network.as_deref(), Some(test_subnet.as_str()));
    match &vm.nics[0].addressing {
        Addressing::Fixed(s) => assert_eq!(s.addresses, vec![("10.20.9.20".to_string(), 24)]),
        other => panic!("{other:?}"),
    }
    // Numbers continue from the lab's counters: VM 2, NIC 2.
    assert_eq!(vm.uuid, vm_uuid(2));
    assert_eq!(vm.nics[0].mac, "00:0d:3a:00:00:02");
    assert_eq!(
        format!("{:?}", cloud.cloud_get_vm(&vm.id).unwrap()),
        format!("{vm:?}")
    );

    let message = conflict(cloud.cloud_create_vm(&spec(
        "web01-dr",
        &[spare.id.as_str()],
        &test_subnet,
        None,
    )));
    assert!(message.contains("already exists"), "{message}");
    let message =
        conflict(cloud.cloud_create_vm(&spec("thief", &[disk_ids[1]], &test_subnet, None)));
    assert!(
        message.contains("attached to virtual machine `web01-dr`"),
        "{message}"
    );
    let ghost_disk = lab.cloud.disk_id("ghost-disk");
    let message = not_found(cloud.cloud_create_vm(&spec(
        "new",
        &[spare.id.as_str(), ghost_disk.as_str()],
        &test_subnet,
        None,
    )));
    assert!(message.contains("ghost-disk"), "{message}");
    let message = invalid(cloud.cloud_create_vm(&spec(
        "new",
        &[spare.id.as_str()],
        &test_subnet,
        Some("10.20.1.50"),
    )));
    assert!(
        message.contains("outside subnet lab-vnet/test"),
        "{message}"
    );
    let message = invalid(cloud.cloud_create_vm(&spec(
        "new",
        &[spare.id.as_str()],
        &test_subnet,
        Some("10.20.9.1"),
    )));
    assert!(message.contains("reserved"), "{message}");
    let message = conflict(cloud.cloud_create_vm(&spec(
        "new",
        &[spare.id.as_str()],
        &test_subnet,
        Some("10.20.9.20"),
    )));
    assert!(message.contains("web01-dr"), "{message}");
    let mut bad_size = spec("new", &[spare.id.as_str()], &test_subnet, None);
    bad_size.size = "huge".into();
    assert!(invalid(cloud.cloud_create_vm(&bad_size)).contains("huge"));
    let message = invalid(cloud.cloud_create_vm(&spec("new", &[], &test_subnet, None)));
    assert!(message.contains("at least one disk"), "{message}");
    // None of the refusals created anything.
    assert!(lab.cloud.vm("new").unwrap().is_none());
    assert!(lab.cloud.vm("thief").unwrap().is_none());
}

#[test]
fn networks_and_missing_vnet_or_subnet_are_named() {
    let lab = Lab::new();
    let spare = lab.cloud.add_disk("spare", MIB).unwrap();
    let mut cloud = lab.instance();

    let vnet = cloud.cloud_get_network(&lab.cloud.vnet_id()).unwrap();
    assert_eq!(
        (vnet.name.as_str(), vnet.kind.as_str()),
        ("lab-vnet", "virtualNetwork")
    );
    assert_eq!(vnet.address_prefixes, vec!["10.20.0.0/16".to_string()]);
    let app = cloud
        .cloud_get_network(&lab.cloud.subnet_id("app"))
        .unwrap();
    assert_eq!((app.name.as_str(), app.kind.as_str()), ("app", "subnet"));
    assert_eq!(app.address_prefixes, vec!["10.20.1.0/24".to_string()]);
    let test = cloud
        .cloud_get_network(&lab.cloud.subnet_id("test"))
        .unwrap();
    assert_eq!(test.address_prefixes, vec!["10.20.9.0/24".to_string()]);

    let no_subnet = lab.cloud.subnet_id("dmz");
    let message = not_found(cloud.cloud_get_network(&no_subnet));
    assert!(
        message.contains("virtual network `lab-vnet` exists")
            && message.contains("no subnet `dmz`")
            && message.contains("app, test"),
        "{message}"
    );
    let no_vnet = no_subnet.replace("lab-vnet", "other-vnet");
    let message = not_found(cloud.cloud_get_network(&no_vnet));
    assert!(
        message.contains("virtual network `other-vnet` does not exist"),
        "{message}"
    );

    // create-vm says the same about its subnet, and creates nothing.
    let message = not_found(cloud.cloud_create_vm(&spec("x", &[&spare.id], &no_subnet, None)));
    assert!(message.contains("no subnet `dmz`"), "{message}");
    let message = not_found(cloud.cloud_create_vm(&spec("x", &[&spare.id], &no_vnet, None)));
    assert!(message.contains("`other-vnet` does not exist"), "{message}");
    let message =
        invalid(cloud.cloud_create_vm(&spec("x", &[&spare.id], &lab.cloud.vnet_id(), None)));
    assert!(message.contains("not a subnet"), "{message}");
    assert!(lab.cloud.vm("x").unwrap().is_none());
}

#[test]
fn reader_may_read_but_every_change_lists_the_missing_actions() {
    let lab = Lab::new();
    let web = lab.add_vm("web01", &[MIB], None);
    let disk = web.disks[0].id.clone();
    let mut contributor = lab.instance();
    let snap = contributor.cloud_create_snapshot(&disk).unwrap();
    let mut reader = lab.as_principal(READER, READER_SECRET);

    reader.cloud_connect().unwrap();
    assert_eq!(reader.cloud_get_vm(&web.id).unwrap().name, "web01");
    reader
        .cloud_get_network(&lab.cloud.subnet_id("app"))
        .unwrap();

    let denied = |result: Result<(), PluginError>| match failure(result) {
        Failure::PermissionDenied { message, missing } => {
            assert!(
                message.contains("auditor") && message.contains("Reader"),
                "{message}"
            );
            missing
        }
        other => panic!("expected permission-denied, got {other:?}"),
    };
    assert_eq!(
        denied(reader.cloud_power_off(&web.id, true)),
        vec![actions::VM_DEALLOCATE]
    );
    assert_eq!(
        denied(reader.cloud_power_off(&web.id, false)),
        vec![actions::VM_POWER_OFF]
    );
    assert_eq!(denied(reader.cloud_start(&web.id)), vec![actions::VM_START]);
    assert_eq!(
        denied(reader.cloud_delete_vm(&web.id)),
        vec![actions::VM_DELETE, actions::NIC_DELETE]
    );
    assert_eq!(
        denied(
            reader
                .cloud_create_vm(&spec("x", &[&disk], &lab.cloud.subnet_id("app"), None))
                .map(drop)
        ),
        vec![
            "Microsoft.Compute/virtualMachines/write",
            "Microsoft.Network/networkInterfaces/write",
            "Microsoft.Network/virtualNetworks/subnets/join/action",
            "Microsoft.Compute/disks/write",
        ]
    );
    for access in [Access::Read, Access::ReadWrite] {
        assert_eq!(
            denied(reader.cloud_disk_endpoint(&disk, access).map(drop)),
            vec!["Microsoft.Compute/disks/beginGetAccess/action"]
        );
    }
    assert_eq!(
        denied(reader.cloud_create_snapshot(&disk).map(drop)),
        vec!["Microsoft.Compute/snapshots/write"]
    );
    assert_eq!(
        denied(reader.cloud_delete_snapshot(&disk, &snap.id)),
        vec![actions::SNAPSHOT_DELETE]
    );
    assert_eq!(
        denied(
            reader
                .cloud_changed_ranges(&disk, &snap.id, &snap.id)
                .map(drop)
        ),
        vec![actions::SNAPSHOT_GET_ACCESS]
    );
    // As in Azure, authorization comes before existence.
    assert_eq!(
        denied(reader.cloud_delete_vm(&lab.cloud.vm_id("ghost"))),
        vec![actions::VM_DELETE, actions::NIC_DELETE]
    );
    // Nothing changed.
    assert_eq!(
        lab.cloud.vm("web01").unwrap().unwrap().power,
        LabPower::Running
    );
    assert!(lab.cloud.vm("x").unwrap().is_none());
    assert_eq!(
        contributor.cloud_get_vm(&web.id).unwrap().snapshots.len(),
        1
    );
}

#[test]
fn disk_endpoint_is_a_vhd_the_host_and_qemu_img_open() {
    let lab = Lab::new();
    let capacity = 6 * MIB + 3 * 512;
    let web = lab.add_vm("web01", &[capacity], None);
    let disk = &web.disks[0];
    lab.cloud
        .write_disk(&disk.name, MIB, b"homeward lab disk")
        .unwrap();
    let mut cloud = lab.instance();

    // Reads are allowed while the VM runs.
    let endpoint = cloud.cloud_disk_endpoint(&disk.id, Access::Read).unwrap();
    assert_eq!(endpoint.format, DiskFormat::VhdFixed);
    assert_eq!(endpoint.capacity_bytes, capacity);
    assert!(
        endpoint
            .properties
            .contains(&("access".into(), "read".into()))
    );
    assert!(
        endpoint
            .properties
            .contains(&("attached-to".into(), web.id.clone()))
    );
    let DiskLocator::LocalPath(path) = &endpoint.locator else {
        panic!("{:?}", endpoint.locator)
    };
    assert_eq!(Path::new(path), disk.path);
    let image = homeward::disk::open(Path::new(path), false, Some(ImageFormat::VhdFixed)).unwrap();
    assert_eq!(image.capacity(), capacity);
    let mut buf = vec![0u8; 17];
    image.read_at(&mut buf, MIB).unwrap();
    assert_eq!(buf, b"homeward lab disk");

    let out = std::process::Command::new("qemu-img")
        .args(["info", "-f", "vpc", "--output=json", path])
        .output()
        .expect("qemu-img runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info = String::from_utf8(out.stdout).unwrap();
    assert!(
        info.contains(&format!("\"virtual-size\": {capacity}")),
        "qemu-img sees the exact capacity: {info}"
    );

    // Read-write only once the VM has released the disk.
    let message = conflict(cloud.cloud_disk_endpoint(&disk.id, Access::ReadWrite));
    assert!(message.contains("running"), "{message}");
    cloud.cloud_power_off(&web.id, false).unwrap();
    let message = conflict(cloud.cloud_disk_endpoint(&disk.id, Access::ReadWrite));
    assert!(message.contains("deallocate"), "{message}");
    cloud.cloud_power_off(&web.id, true).unwrap();
    let endpoint = cloud
        .cloud_disk_endpoint(&disk.id, Access::ReadWrite)
        .unwrap();
    assert!(
        endpoint
            .properties
            .contains(&("access".into(), "read-write".into()))
    );
    // An unattached disk is writable at once.
    let spare = lab.cloud.add_disk("spare", MIB).unwrap();
    cloud
        .cloud_disk_endpoint(&spare.id, Access::ReadWrite)
        .unwrap();

    let ghost = lab.cloud.disk_id("ghost");
    assert!(not_found(cloud.cloud_disk_endpoint(&ghost, Access::Read)).contains("ghost"));
}

#[test]
fn changed_ranges_are_exactly_the_written_blocks() {
    let lab = Lab::new();
    // Not a multiple of 64 KiB: the last block is cut at the disk's end.
    let capacity = 8 * MIB + 3 * 512;
    let web = lab.add_vm("web01", &[capacity], None);
    let other = lab.add_vm("db01", &[MIB], None);
    let disk = &web.disks[0];
    lab.cloud.write_disk(&disk.name, 0, &[0xaa; 4096]).unwrap();
    lab.cloud
        .write_disk(&disk.name, 2 * MIB, &[0x55; 70_000])
        .unwrap();
    let mut cloud = lab.instance();

    let base = cloud.cloud_create_snapshot(&disk.id).unwrap();
    assert_eq!(base.parent_id, None);
    assert!(!base.quiesced);
    lab.cloud.write_disk(&disk.name, 100, &[1]).unwrap(); // block 0
    lab.cloud
        .write_disk(&disk.name, 3 * BLOCK + 100, &[2; 10])
        .unwrap(); // block 3
    lab.cloud
        .write_disk(&disk.name, 5 * BLOCK - 1, &[3; 2])
        .unwrap(); // blocks 4 and 5
    lab.cloud
        .write_disk(&disk.name, 80 * BLOCK, &[4; BLOCK as usize])
        .unwrap(); // block 80
    lab.cloud
        .write_disk(&disk.name, 2 * MIB, &[0x55; 100])
        .unwrap(); // same bytes: no change
    lab.cloud
        .write_disk(&disk.name, capacity - 1, &[5])
        .unwrap(); // the cut last block
    let target = cloud.cloud_create_snapshot(&disk.id).unwrap();
    assert_eq!(target.parent_id.as_deref(), Some(base.id.as_str()));
    // A snapshot is a sparse copy: a whole VHD, but only its data allocated.
    let copy = lab.cloud.root().join("disks/web01-os@web01-os-snap2.vhd");
    let meta = std::fs::metadata(&copy).unwrap();
    assert_eq!(meta.len(), capacity + 512);
    assert!(
        meta.blocks() * 512 < MIB,
        "{} bytes allocated",
        meta.blocks() * 512
    );
    let copied = homeward::disk::open(&copy, false, Some(ImageFormat::VhdFixed)).unwrap();
    let mut byte = [0u8];
    copied.read_at(&mut byte, capacity - 1).unwrap();
    assert_eq!(byte, [5]);
    // Snapshots are frozen: later writes change neither.
    lab.cloud
        .write_disk(&disk.name, 40 * BLOCK, &[6; 10])
        .unwrap();

    let changes = cloud
        .cloud_changed_ranges(&disk.id, &base.id, &target.id)
        .unwrap();
    assert_eq!(changes.method, "lab-block-compare");
    let ranges: Vec<(u64, u64)> = changes
        .ranges
        .iter()
        .map(|r| (r.offset, r.length))
        .collect();
    assert_eq!(
        ranges,
        vec![
            (0, BLOCK),
            (3 * BLOCK, 3 * BLOCK),
            (80 * BLOCK, BLOCK),
            (8 * MIB, 3 * 512),
        ]
    );
    let same = cloud
        .cloud_changed_ranges(&disk.id, &target.id, &target.id)
        .unwrap();
    assert!(same.ranges.is_empty(), "{same:?}");

    // The VM lists its disks' snapshots.
    let vm = cloud.cloud_get_vm(&web.id).unwrap();
    let names: Vec<&str> = vm.snapshots.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(names, vec![base.id.as_str(), target.id.as_str()]);

    // Snapshots of another disk, or gone, are not found.
    let foreign = cloud.cloud_create_snapshot(&other.disks[0].id).unwrap();
    let message = not_found(cloud.cloud_changed_ranges(&disk.id, &foreign.id, &target.id));
    assert!(
        message.contains("base snapshot") && message.contains("web01-os"),
        "{message}"
    );
    assert!(not_found(cloud.cloud_delete_snapshot(&disk.id, &foreign.id)).contains(&foreign.id));
    cloud.cloud_delete_snapshot(&disk.id, &base.id).unwrap();
    assert!(not_found(cloud.cloud_delete_snapshot(&disk.id, &base.id)).contains(&base.id));
    let message = not_found(cloud.cloud_changed_ranges(&disk.id, &base.id, &target.id));
    assert!(message.contains(&base.id), "{message}");
    assert_eq!(cloud.cloud_get_vm(&web.id).unwrap().snapshots.len(), 1);
}

#[test]
fn wrong_secret_is_refused_and_never_logged_or_shown() {
    const SECRET: &str = "s3cret-that-must-never-be-logged";
    let lab = Lab::signed_in(CONTRIBUTOR, SECRET);
    // Every instance's log lines, kept by the host as it emits them.
    let logs = Arc::new(LogRecorder::default());
    let recorded = |mut instance: PluginInstance| {
        instance.record_logs(logs.clone());
        instance
    };
    let error = recorded(lab.instance()).cloud_connect().unwrap_err();
    let ghost_error = recorded(lab.as_principal("ghost", SECRET))
        .cloud_connect()
        .unwrap_err();
    // The right secret on the same lab: its log line proves the recording works.
    recorded(lab.as_principal(CONTRIBUTOR, CONTRIBUTOR_SECRET))
        .cloud_connect()
        .unwrap();
    let text = logs.lines().join("\n");
    assert!(
        text.contains("signed in as `homeward`") && text.contains("sign-in refused"),
        "the capture sees the plugin's log lines: {text}"
    );
    assert!(
        !text.contains(SECRET),
        "a log line holds the secret: {text}"
    );
    for e in [&error, &ghost_error] {
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains(SECRET), "{shown}");
    }
    match error {
        PluginError::Failed {
            failure: Failure::PermissionDenied { message, missing },
            ..
        } => {
            assert!(
                message.contains("invalid client secret for application `homeward`"),
                "{message}"
            );
            assert!(missing.is_empty());
        }
        other => panic!("{other:?}"),
    }
    match ghost_error {
        PluginError::Failed {
            failure: Failure::PermissionDenied { message, .. },
            ..
        } => assert!(
            message.contains("application `ghost` was not found"),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_lab_is_unavailable_naming_the_path_and_the_grant() {
    let lab = Lab::new();
    // Granted, but no lab in it.
    let empty = tempfile::tempdir().unwrap();
    let mut settings = lab
        .cloud
        .settings(CONTRIBUTOR, Secret::new(CONTRIBUTOR_SECRET));
    settings.grants.dirs = vec![DirGrant {
        host: empty.path().to_path_buf(),
        guest: "/lab".to_string(),
        write: true,
    }];
    settings
        .config
        .insert("host-root".into(), empty.path().display().to_string());
    let (_runtime, plugin) = load(settings.clone());
    let message = match failure(plugin.instantiate().unwrap().cloud_connect()) {
        Failure::Unavailable { message, .. } => message,
        other => panic!("{other:?}"),
    };
    assert!(
        message.contains(&empty.path().display().to_string()) && message.contains("cloud.json"),
        "{message}"
    );

    // Not granted at all: the message says which grant to add.
    settings.grants.dirs.clear();
    let (_runtime, plugin) = load(settings);
    let message = match failure(plugin.instantiate().unwrap().cloud_connect()) {
        Failure::Unavailable { message, .. } => message,
        other => panic!("{other:?}"),
    };
    assert!(
        message.contains(&empty.path().display().to_string())
            && message.contains("[plugins.lab-cloud.grants]")
            && message.contains("guest = \"/lab\""),
        "{message}"
    );
}

#[test]
fn snapshot_endpoint_reads_the_frozen_content_only() {
    let lab = Lab::new();
    let web = lab.add_vm("web01", &[2 * MIB], None);
    let disk = &web.disks[0];
    lab.cloud
        .write_disk(&disk.name, 4096, b"before the snapshot")
        .unwrap();
    let mut cloud = lab.instance();
    let snap = cloud.cloud_create_snapshot(&disk.id).unwrap();
    lab.cloud
        .write_disk(&disk.name, 4096, b"after  the snapshot")
        .unwrap();

    let id = format!("{}@{}", disk.id, snap.id);
    let endpoint = cloud.cloud_disk_endpoint(&id, Access::Read).unwrap();
    assert_eq!(endpoint.id, id);
    assert_eq!(endpoint.capacity_bytes, 2 * MIB);
    let DiskLocator::LocalPath(path) = &endpoint.locator else {
        panic!("{:?}", endpoint.locator)
    };
    let device = homeward::disk::image::open(std::path::Path::new(path), false, None).unwrap();
    let mut buf = vec![0u8; 19];
    device.read_at(&mut buf, 4096).unwrap();
    assert_eq!(&buf, b"before the snapshot");
    // The disk itself has moved on.
    assert_eq!(
        lab.cloud.read_disk(&disk.name, 4096, 19).unwrap(),
        b"after  the snapshot"
    );

    let refused = invalid(cloud.cloud_disk_endpoint(&id, Access::ReadWrite));
    assert!(refused.contains("read-only"), "{refused}");
    let missing = not_found(cloud.cloud_disk_endpoint(
        &format!("{}@{}", disk.id, lab.cloud.cloud().snapshot_id("nope")),
        Access::Read,
    ));
    assert!(missing.contains("snapshot"), "{missing}");
}

#[test]
fn concurrent_create_vm_never_hands_out_an_address_twice() {
    let lab = Lab::new();
    let subnet = lab.cloud.subnet_id(homeward::lab::cloud::APP_SUBNET);
    let mut disks = Vec::new();
    for i in 0..24 {
        disks.push(lab.cloud.add_disk(&format!("c{i}-os"), MIB).unwrap().id);
    }
    let created: Vec<Vm> = std::thread::scope(|scope| {
        let handles: Vec<_> = disks
            .chunks(3)
            .enumerate()
            .map(|(t, chunk)| {
                let mut cloud = lab.instance();
                let subnet = subnet.clone();
                scope.spawn(move || {
                    chunk
                        .iter()
                        .enumerate()
                        .map(|(i, disk)| {
                            let name = format!("c{t}-{i}");
                            cloud
                                .cloud_create_vm(&spec(&name, &[disk.as_str()], &subnet, None))
                                .unwrap()
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
    assert_eq!(created.len(), 24);
    let mut ips: Vec<String> = created
        .iter()
        .map(|vm| match &vm.nics[0].addressing {
            Addressing::Fixed(s) => s.addresses[0].0.clone(),
            Addressing::Dhcp => panic!("{vm:?}"),
        })
        .collect();
    let mut macs: Vec<String> = created.iter().map(|vm| vm.nics[0].mac.clone()).collect();
    let mut uuids: Vec<String> = created.iter().map(|vm| vm.uuid.clone()).collect();
    for list in [&mut ips, &mut macs, &mut uuids] {
        list.sort();
        let before = list.len();
        list.dedup();
        assert_eq!(list.len(), before, "duplicates in {list:?}");
    }
}

/// Snapshot files (`DISK@SNAPSHOT.vhd` and `.json`) left in the lab.
fn snapshot_files(lab: &Lab) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(lab.cloud.root().join("disks"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains('@'))
        .collect();
    names.sort();
    names
}

#[test]
fn restore_point_of_a_running_vm_is_quiesced_and_its_snapshots_are_usable() {
    let lab = Lab::new();
    // Two capacities, so a snapshot read under the wrong disk shows.
    let web = lab.add_vm("web01", &[4 * MIB, 2 * MIB], None);
    let (os, data) = (&web.disks[0], &web.disks[1]);
    lab.cloud
        .write_disk(&os.name, MIB, b"os at the point")
        .unwrap();
    lab.cloud
        .write_disk(&data.name, 3 * BLOCK, b"data at the point")
        .unwrap();
    let mut cloud = lab.instance();
    assert!(cloud.cloud_has_restore_points().unwrap());

    // Asked data disk first: the answer follows the order asked.
    let asked = vec![data.id.clone(), os.id.clone()];
    let point = cloud
        .cloud_create_restore_point(&web.id, &asked, true)
        .unwrap()
        .expect("lab-cloud exports cloud-restore-points");
    assert!(point.quiesced, "{point:?}");
    assert_eq!(point.note, None);
    assert_eq!(point.snapshots.len(), 2, "{point:?}");
    assert!(point.snapshots.iter().all(|s| s.quiesced), "{point:?}");
    let (data_snap, os_snap) = (&point.snapshots[0], &point.snapshots[1]);
    assert_ne!(data_snap.id, os_snap.id);
    assert_eq!(
        cloud
            .cloud_disk_endpoint(&format!("{}@{}", data.id, data_snap.id), Access::Read)
            .unwrap()
            .capacity_bytes,
        2 * MIB
    );
    // Each snapshot is its own disk's: not found under the other disk.
    not_found(cloud.cloud_disk_endpoint(&format!("{}@{}", os.id, data_snap.id), Access::Read));
    not_found(cloud.cloud_disk_endpoint(&format!("{}@{}", data.id, os_snap.id), Access::Read));

    // The disks move on after the point; the snapshots keep the point's bytes.
    lab.cloud
        .write_disk(&os.name, MIB, b"os after  point")
        .unwrap();
    lab.cloud
        .write_disk(&data.name, 3 * BLOCK, b"data after  point")
        .unwrap();
    for (disk, snap, offset, bytes) in [
        (os, os_snap, MIB, &b"os at the point"[..]),
        (data, data_snap, 3 * BLOCK, &b"data at the point"[..]),
    ] {
        let endpoint = cloud
            .cloud_disk_endpoint(&format!("{}@{}", disk.id, snap.id), Access::Read)
            .unwrap();
        assert_eq!(endpoint.capacity_bytes, disk.capacity);
        let DiskLocator::LocalPath(path) = &endpoint.locator else {
            panic!("{:?}", endpoint.locator)
        };
        let device =
            homeward::disk::open(Path::new(path), false, Some(ImageFormat::VhdFixed)).unwrap();
        let mut read = vec![0u8; bytes.len()];
        device.read_at(&mut read, offset).unwrap();
        assert_eq!(read, bytes, "{} at the point", disk.name);
    }

    // A later plain snapshot chains on the point's, and changed-ranges
    // compares them: exactly the block written since.
    let later = cloud.cloud_create_snapshot(&os.id).unwrap();
    assert_eq!(later.parent_id.as_deref(), Some(os_snap.id.as_str()));
    assert!(!later.quiesced);
    let changes = cloud
        .cloud_changed_ranges(&os.id, &os_snap.id, &later.id)
        .unwrap();
    let ranges: Vec<(u64, u64)> = changes
        .ranges
        .iter()
        .map(|r| (r.offset, r.length))
        .collect();
    assert_eq!(ranges, vec![(MIB, BLOCK)]);

    // get-vm reports `quiesced` per snapshot.
    let vm = cloud.cloud_get_vm(&web.id).unwrap();
    let listed: Vec<(&str, bool)> = vm
        .snapshots
        .iter()
        .map(|s| (s.id.as_str(), s.quiesced))
        .collect();
    assert_eq!(listed.len(), 3, "{listed:?}");
    for (id, quiesced) in [
        (os_snap.id.as_str(), true),
        (later.id.as_str(), false),
        (data_snap.id.as_str(), true),
    ] {
        assert!(
            listed.contains(&(id, quiesced)),
            "{id} {quiesced}: {listed:?}"
        );
    }

    // Deleted one by one, as any snapshot.
    cloud
        .cloud_delete_snapshot(&data.id, &data_snap.id)
        .unwrap();
    cloud.cloud_delete_snapshot(&os.id, &os_snap.id).unwrap();
    not_found(cloud.cloud_disk_endpoint(&format!("{}@{}", os.id, os_snap.id), Access::Read));
    not_found(cloud.cloud_delete_snapshot(&data.id, &data_snap.id));
    let left: Vec<String> = cloud
        .cloud_get_vm(&web.id)
        .unwrap()
        .snapshots
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(left, vec![later.id.clone()]);
}

#[test]
fn restore_point_without_quiesce_or_of_a_stopped_vm_is_crash_consistent() {
    let lab = Lab::new();
    let web = lab.add_vm("web01", &[MIB, MIB], None);
    let disks: Vec<String> = web.disks.iter().map(|d| d.id.clone()).collect();
    let mut cloud = lab.instance();

    // Not asked: crash-consistent, and nothing to explain.
    let point = cloud
        .cloud_create_restore_point(&web.id, &disks, false)
        .unwrap()
        .unwrap();
    assert!(!point.quiesced);
    assert_eq!(point.note, None);
    assert_eq!(point.snapshots.len(), 2);
    assert!(point.snapshots.iter().all(|s| !s.quiesced), "{point:?}");

    // Asked, but no agent runs in a stopped or deallocated VM: a
    // crash-consistent point anyway, and the note says why.
    for (deallocate, state) in [(false, "stopped"), (true, "deallocated")] {
        cloud.cloud_power_off(&web.id, deallocate).unwrap();
        let point = cloud
            .cloud_create_restore_point(&web.id, &disks, true)
            .unwrap()
            .unwrap();
        assert!(!point.quiesced, "{point:?}");
        assert!(point.snapshots.iter().all(|s| !s.quiesced), "{point:?}");
        assert_eq!(point.snapshots.len(), 2);
        let note = point
            .note
            .expect("a note says why the point is not quiesced");
        assert!(
            note.contains("web01") && note.contains(state) && note.contains("crash-consistent"),
            "{note}"
        );
    }
    let vm = cloud.cloud_get_vm(&web.id).unwrap();
    assert_eq!(vm.snapshots.len(), 6);
    assert!(
        vm.snapshots.iter().all(|s| !s.quiesced),
        "{:?}",
        vm.snapshots
    );

    // Running again: app-consistent again.
    cloud.cloud_start(&web.id).unwrap();
    let point = cloud
        .cloud_create_restore_point(&web.id, &disks[..1], true)
        .unwrap()
        .unwrap();
    assert!(point.quiesced && point.note.is_none(), "{point:?}");
}

#[test]
fn restore_point_refusals_take_nothing() {
    let lab = Lab::new();
    let web = lab.add_vm("web01", &[MIB, MIB], None);
    let db = lab.add_vm("db01", &[MIB], None);
    let spare = lab.cloud.add_disk("spare", MIB).unwrap();
    let os = web.disks[0].id.clone();
    let mut cloud = lab.instance();

    // Another VM's disk, a disk of no VM, a disk that does not exist.
    for (foreign, name) in [
        (db.disks[0].id.clone(), "db01-os"),
        (spare.id.clone(), "spare"),
        (lab.cloud.disk_id("ghost"), "ghost"),
    ] {
        let message =
            invalid(cloud.cloud_create_restore_point(&web.id, &[os.clone(), foreign], true));
        assert!(
            message.contains(name) && message.contains("not attached to virtual machine `web01`"),
            "{message}"
        );
    }
    let message = invalid(cloud.cloud_create_restore_point(&web.id, &[], false));
    assert!(
        message.contains("at least one disk") && message.contains("web01"),
        "{message}"
    );
    let ghost = lab.cloud.vm_id("ghost");
    let message =
        not_found(cloud.cloud_create_restore_point(&ghost, std::slice::from_ref(&os), false));
    assert!(message.contains("ghost"), "{message}");

    // A Reader may not snapshot: refused with the missing action.
    let mut reader = lab.as_principal(READER, READER_SECRET);
    match failure(reader.cloud_create_restore_point(&web.id, std::slice::from_ref(&os), false)) {
        Failure::PermissionDenied { missing, .. } => {
            assert_eq!(missing, vec!["Microsoft.Compute/snapshots/write"])
        }
        other => panic!("{other:?}"),
    }

    // All or nothing: the second disk cannot be copied, so the first
    // disk's snapshot, already taken, is deleted again.
    std::fs::remove_file(&web.disks[1].path).unwrap();
    let refused =
        cloud.cloud_create_restore_point(&web.id, &[os.clone(), web.disks[1].id.clone()], false);
    assert!(
        matches!(refused, Err(PluginError::Failed { .. })),
        "{refused:?}"
    );

    assert_eq!(snapshot_files(&lab), Vec::<String>::new());
    for vm in [&web.id, &db.id] {
        assert!(cloud.cloud_get_vm(vm).unwrap().snapshots.is_empty());
    }
    // The refused point did take snapshot 1 (and drew number 2 for the
    // disk it could not copy) before it undid it: the next one is number 3,
    // and has no parent, since snapshot 1 is gone.
    let next = cloud.cloud_create_snapshot(&os).unwrap();
    assert!(next.id.ends_with("web01-os-snap3"), "{next:?}");
    assert_eq!(next.parent_id, None);
}
