//! What `hypervisor_vcenter.rs` and `hypervisor_esxi.rs` share: the embedded
//! vSphere adapter loaded against govmomi's simulator, raw SOAP for the
//! changes only an administrator makes (adding a licence), log capture, and
//! the checks both plugins must pass on their model.

use homeward::conformance::{Outcome, SuiteOptions};
use homeward::embedded::EmbeddedPlugin;
use homeward::lab::hypervisor::privileges::HOMEWARD_REQUIRED;
use homeward::plugin::adapter::{
    Disk, DiskFormat, DiskLocator, Finding, HypervisorVmSpec, Inventory, PowerState,
    ReadinessRequest, Severity,
};
use homeward::plugin::{
    Failure, LoadedPlugin, LogRecorder, PluginInstance, PluginSettings, Runtime, RuntimeOptions,
};
pub use homeward_tests::api_failure as failure;
use homeward_tests::conformance as suite;
use homeward_tests::vsphere_sim::{Account, Model, SoapAnswer, VsphereSim};
use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const MIB: u64 = 1 << 20;

/// The privileges the simulator's ReadOnly role holds.
const READ_ONLY_ROLE: &[&str] = &["System.Anonymous", "System.View", "System.Read"];

/// The plugin loaded with `settings` (the first load compiles while the
/// other tests wait).
pub fn load(plugin: EmbeddedPlugin, settings: PluginSettings) -> (Runtime, LoadedPlugin) {
    static WARM: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = WARM.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = Runtime::new(RuntimeOptions {
        cache_dir: Some(homeward_tests::shared_cache_dir().to_path_buf()),
        ..RuntimeOptions::default()
    })
    .unwrap();
    let loaded = runtime.load(plugin.wasm, plugin.id, settings).unwrap();
    (runtime, loaded)
}

/// A simulator and the adapter pointed at it.
pub struct Setup {
    pub sim: VsphereSim,
    _runtime: Runtime,
    loaded: LoadedPlugin,
}

impl Setup {
    pub fn new(model: Model, plugin: EmbeddedPlugin) -> Setup {
        Setup::as_account(model, plugin, Account::Admin)
    }

    pub fn as_account(model: Model, plugin: EmbeddedPlugin, account: Account) -> Setup {
        let sim = VsphereSim::start(model);
        let (runtime, loaded) = load(plugin, sim.plugin_settings(account));
        Setup {
            sim,
            _runtime: runtime,
            loaded,
        }
    }

    pub fn instance(&self) -> PluginInstance {
        self.loaded.instantiate().unwrap()
    }
}

pub fn request(operation: &str) -> ReadinessRequest {
    ReadinessRequest {
        operation: operation.to_string(),
        vm_id: None,
        master_target_vm_id: None,
        master_target_host_id: None,
        datastore_id: None,
    }
}

pub fn blocking<'f>(findings: &'f [Finding], check: &str) -> Option<&'f Finding> {
    findings
        .iter()
        .find(|f| f.check == check && f.severity == Severity::Blocking)
}

// --- raw SOAP, for what only an administrator does -------------------------

/// A logged-in administrator's session cookie and the service content.
fn admin_session(sim: &VsphereSim) -> (String, SoapAnswer) {
    let content = sim.soap(
        None,
        r#"<RetrieveServiceContent xmlns="urn:vim25"><_this type="ServiceInstance">ServiceInstance</_this></RetrieveServiceContent>"#,
    );
    let session_manager = content.text("sessionManager").unwrap();
    let (user, password) = sim.admin();
    let login = sim.soap(
        None,
        &format!(
            r#"<Login xmlns="urn:vim25"><_this type="SessionManager">{session_manager}</_this><userName>{user}</userName><password>{password}</password></Login>"#
        ),
    );
    assert_eq!(login.status, 200, "{}", login.body);
    (login.cookie.unwrap(), content)
}

/// Adds a licence key through the LicenseManager, as the administrator.
/// The simulator keeps only the key and its labels (it decodes no key), so
/// the key is labelled with its edition and product, which the adapter
/// reads for keys the endpoint left undecoded.
pub fn add_licence(sim: &VsphereSim, key: &str, edition: &str, product: &str) {
    let (cookie, content) = admin_session(sim);
    let license_manager = content.text("licenseManager").unwrap();
    let answer = sim.soap(
        Some(&cookie),
        &format!(
            r#"<AddLicense xmlns="urn:vim25"><_this type="LicenseManager">{license_manager}</_this><licenseKey>{key}</licenseKey><labels><key>edition</key><value>{edition}</value></labels><labels><key>product</key><value>{product}</value></labels></AddLicense>"#
        ),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
}

/// Mounts a new local datastore `name`, backed by `dir`, on host `host_id`
/// only (`HostDatastoreSystem.CreateLocalDatastore`, as the administrator).
pub fn add_datastore(sim: &VsphereSim, host_id: &str, name: &str, dir: &Path) {
    let (cookie, content) = admin_session(sim);
    let collector = content.text("propertyCollector").unwrap();
    let answer = sim.soap(
        Some(&cookie),
        &format!(
            r#"<RetrievePropertiesEx xmlns="urn:vim25"><_this type="PropertyCollector">{collector}</_this><specSet><propSet><type>HostSystem</type><pathSet>configManager.datastoreSystem</pathSet></propSet><objectSet><obj type="HostSystem">{host_id}</obj></objectSet></specSet><options></options></RetrievePropertiesEx>"#
        ),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let system = answer.text("val").unwrap();
    let answer = sim.soap(
        Some(&cookie),
        &format!(
            r#"<CreateLocalDatastore xmlns="urn:vim25"><_this type="HostDatastoreSystem">{system}</_this><name>{name}</name><path>{}</path></CreateLocalDatastore>"#,
            dir.display()
        ),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
}

// --- log capture -----------------------------------------------------------

thread_local! {
    static THREAD_LOG: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static CAPTURING: Cell<bool> = const { Cell::new(false) };
}

struct ThreadLog;

impl Write for ThreadLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        THREAD_LOG.with(|log| log.borrow_mut().extend_from_slice(buf));
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A global subscriber, installed once, that keeps the host's log lines of
/// capturing threads at every level (decided per event, so a call site first
/// hit by another test's thread is not cached as uninteresting).
fn init_logging() {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(|| ThreadLog)
            .with_filter(tracing_subscriber::filter::dynamic_filter_fn(|_, _| {
                CAPTURING.with(Cell::get)
            }));
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
            .unwrap();
    });
}

/// Runs `f` on `instance`; returns its result and every log line of the
/// host (tracing, this thread) and of the plugin (its `log` calls).
pub fn capture_logs<R>(
    instance: &mut PluginInstance,
    f: impl FnOnce(&mut PluginInstance) -> R,
) -> (R, String) {
    init_logging();
    let recorder = Arc::new(LogRecorder::default());
    instance.record_logs(recorder.clone());
    THREAD_LOG.with(|log| log.borrow_mut().clear());
    CAPTURING.with(|c| c.set(true));
    let result = f(instance);
    CAPTURING.with(|c| c.set(false));
    let host = THREAD_LOG.with(|log| String::from_utf8_lossy(&log.borrow()).into_owned());
    (result, format!("{host}\n{}", recorder.lines().join("\n")))
}

// --- the checks ------------------------------------------------------------

fn names<'a>(items: impl Iterator<Item = &'a String>) -> BTreeSet<String> {
    items.cloned().collect()
}

/// Discovery finds exactly the simulator's datacenters, hosts, datastores
/// and VMs, with their disks on the datastore, and get-vm agrees.
pub fn discovery_matches_the_inventory(model: Model, plugin: EmbeddedPlugin, product: &str) {
    let setup = Setup::new(model, plugin);
    let mut instance = setup.instance();
    let info = instance.hypervisor_connect().unwrap();
    assert!(info.product.contains(product), "{info:?}");
    let expected_instance = setup.sim.ready_info()["instanceUuid"]
        .as_str()
        .unwrap_or_default();
    if !expected_instance.is_empty() {
        assert_eq!(info.instance_id, expected_instance);
    } else {
        assert!(!info.instance_id.is_empty());
    }

    let inventory = instance.hypervisor_discover().unwrap();
    let ready = setup.sim.ready_info();
    let expected = |key: &str| -> BTreeSet<String> {
        ready[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(inventory.datacenters.iter()), expected("datacenters"));
    assert_eq!(
        names(inventory.hosts.iter().map(|h| &h.name)),
        expected("hosts")
    );
    assert_eq!(
        names(inventory.vms.iter().map(|v| &v.name)),
        expected("vms")
    );
    assert_eq!(inventory.vms.len(), setup.sim.vms().len());
    assert_eq!(
        names(inventory.datastores.iter().map(|d| &d.name)),
        setup.sim.datastores().into_iter().collect()
    );
    assert!(!inventory.networks.is_empty());
    check_references(&inventory);

    for vm in &inventory.vms {
        assert!(!vm.disks.is_empty(), "{} has no disk", vm.name);
        assert!(!vm.nics.is_empty(), "{} has no NIC", vm.name);
        for disk in &vm.disks {
            let DiskLocator::DatastoreFile((ds, path)) = &disk.locator else {
                panic!("{disk:?}")
            };
            assert!(setup.sim.datastores().contains(ds), "{disk:?}");
            assert!(path.starts_with(&format!("{}/", vm.name)), "{disk:?}");
            assert!(disk.controller.is_some() && disk.unit.is_some(), "{disk:?}");
            assert!(disk.capacity_bytes > 0);
        }
        let fresh = instance.hypervisor_get_vm(&vm.id).unwrap();
        assert_eq!(
            (fresh.name.as_str(), fresh.uuid.as_str()),
            (vm.name.as_str(), vm.uuid.as_str())
        );
        assert_eq!(fresh.disks.len(), vm.disks.len());
    }
    let missing = failure(instance.hypervisor_get_vm("vm-does-not-exist"));
    assert!(matches!(missing, Failure::NotFound(_)), "{missing:?}");
    instance.hypervisor_disconnect().unwrap();
    instance.hypervisor_disconnect().unwrap();
}

fn check_references(inventory: &Inventory) {
    let datastores: BTreeSet<&str> = inventory.datastores.iter().map(|d| d.id.as_str()).collect();
    let networks: BTreeSet<&str> = inventory.networks.iter().map(|n| n.id.as_str()).collect();
    let hosts: BTreeSet<&str> = inventory.hosts.iter().map(|h| h.id.as_str()).collect();
    for host in &inventory.hosts {
        assert!(host.connected, "{host:?}");
        assert!(
            host.datastore_ids
                .iter()
                .all(|d| datastores.contains(d.as_str())),
            "{host:?}"
        );
        assert!(
            host.network_ids
                .iter()
                .all(|n| networks.contains(n.as_str())),
            "{host:?} vs {networks:?}"
        );
    }
    for ds in &inventory.datastores {
        assert!(
            ds.capacity_bytes > 0 && ds.free_bytes <= ds.capacity_bytes,
            "{ds:?}"
        );
        assert!(!ds.url.is_empty(), "{ds:?}");
        assert!(
            ds.host_ids.iter().all(|h| hosts.contains(h.as_str())),
            "{ds:?}"
        );
    }
    for vm in &inventory.vms {
        assert!(
            vm.host_id.as_deref().is_some_and(|h| hosts.contains(h)),
            "{vm:?}"
        );
    }
}

/// A host other than the first VM's, when there is one (the alternate
/// location), with its datastore and first network.
fn placement(inventory: &Inventory, name: &str) -> HypervisorVmSpec {
    let first_vm_host = inventory.vms.first().and_then(|v| v.host_id.clone());
    let host = inventory
        .hosts
        .iter()
        .filter(|h| !h.datastore_ids.is_empty() && !h.network_ids.is_empty())
        .max_by_key(|h| Some(&h.id) != first_vm_host.as_ref())
        .unwrap();
    HypervisorVmSpec {
        name: name.to_string(),
        host_id: host.id.clone(),
        datastore_id: host.datastore_ids.last().unwrap().clone(),
        guest_id: "otherLinux64Guest".to_string(),
        cpus: 2,
        memory_mib: 512,
        disk_sizes: vec![8 * MIB, 4 * MIB],
        network_ids: vec![host.network_ids[0].clone()],
    }
}

/// A VM created at an alternate location has its disks on the chosen
/// datastore, in files the datastore's backing directory holds; disks,
/// snapshots (blocking reprotect) and power work on it; delete removes it.
pub fn alternate_location_lifecycle(model: Model, plugin: EmbeddedPlugin) {
    let setup = Setup::new(model, plugin);
    let mut instance = setup.instance();
    let inventory = instance.hypervisor_discover().unwrap();
    let mut spec = placement(&inventory, "homeward-failback-01");
    // The alternate location: a second datastore, mounted by the chosen host only.
    let alternate = tempfile::tempdir().unwrap();
    let dir = alternate.path().to_path_buf();
    add_datastore(&setup.sim, &spec.host_id, "Alternate_DS", &dir);
    let inventory = instance.hypervisor_discover().unwrap();
    let datastore = inventory
        .datastores
        .iter()
        .find(|d| d.name == "Alternate_DS")
        .unwrap()
        .clone();
    assert_eq!(datastore.host_ids, vec![spec.host_id.clone()]);
    let host = inventory
        .hosts
        .iter()
        .find(|h| h.id == spec.host_id)
        .unwrap();
    assert!(host.datastore_ids.contains(&datastore.id), "{host:?}");
    spec.datastore_id = datastore.id.clone();

    let vm = instance.hypervisor_create_vm(&spec).unwrap();
    assert_eq!(vm.name, spec.name);
    assert_eq!(vm.host_id.as_deref(), Some(spec.host_id.as_str()));
    assert_eq!(vm.power, PowerState::PoweredOff);
    assert_eq!(vm.nics.len(), 1);
    assert_eq!(
        vm.nics[0].network.as_deref(),
        Some(spec.network_ids[0].as_str())
    );
    assert_eq!(
        vm.disks
            .iter()
            .map(|d| d.capacity_bytes)
            .collect::<Vec<_>>(),
        spec.disk_sizes
    );
    for (i, disk) in vm.disks.iter().enumerate() {
        assert_eq!(disk.controller.as_deref(), Some("scsi0"));
        assert_eq!(disk.unit, Some(i as u32));
        let DiskLocator::DatastoreFile((ds, path)) = &disk.locator else {
            panic!("{disk:?}")
        };
        assert_eq!(ds, &datastore.name);
        assert!(path.starts_with(&format!("{}/", spec.name)), "{path}");
        assert!(
            dir.join(path).is_file(),
            "{} does not exist",
            dir.join(path).display()
        );
        let flat = path.replace(".vmdk", "-flat.vmdk");
        assert!(
            dir.join(&flat).is_file(),
            "{} does not exist",
            dir.join(&flat).display()
        );
    }
    let fresh = instance.hypervisor_get_vm(&vm.id).unwrap();
    assert_eq!(fresh.disks.len(), 2);

    let taken = failure(instance.hypervisor_create_vm(&spec));
    assert!(matches!(taken, Failure::Conflict(_)), "{taken:?}");
    let mut elsewhere = spec.clone();
    elsewhere.name = "homeward-failback-02".to_string();
    elsewhere.datastore_id = "datastore-does-not-exist".to_string();
    let missing = failure(instance.hypervisor_create_vm(&elsewhere));
    assert!(matches!(missing, Failure::NotFound(_)), "{missing:?}");
    elsewhere.datastore_id = spec.datastore_id.clone();
    elsewhere.disk_sizes = vec![1000];
    let odd = failure(instance.hypervisor_create_vm(&elsewhere));
    assert!(matches!(odd, Failure::InvalidInput(_)), "{odd:?}");

    // Disks: add one, then detach it; its file stays.
    let added = instance.hypervisor_add_disk(&vm.id, 2 * MIB).unwrap();
    assert_eq!(added.capacity_bytes, 2 * MIB);
    assert_eq!(added.unit, Some(2));
    let DiskLocator::DatastoreFile((_, added_path)) = added.locator.clone() else {
        panic!()
    };
    assert!(dir.join(&added_path).is_file());
    assert_eq!(instance.hypervisor_get_vm(&vm.id).unwrap().disks.len(), 3);
    instance.hypervisor_detach_disk(&vm.id, &added.id).unwrap();
    let after = instance.hypervisor_get_vm(&vm.id).unwrap();
    assert_eq!(after.disks.len(), 2);
    assert!(after.disks.iter().all(|d| d.id != added.id));
    assert!(dir.join(&added_path).is_file(), "detach must keep the file");
    let gone = failure(instance.hypervisor_detach_disk(&vm.id, &added.id));
    assert!(matches!(gone, Failure::NotFound(_)), "{gone:?}");

    // Snapshots block reprotect until deleted.
    let mut reprotect = request("reprotect");
    reprotect.vm_id = Some(vm.id.clone());
    let findings = instance.hypervisor_readiness(&reprotect).unwrap();
    assert!(blocking(&findings, "snapshots").is_none(), "{findings:?}");
    let first = instance
        .hypervisor_create_snapshot(&vm.id, "before-failback", true)
        .unwrap();
    assert!(first.quiesced && first.parent_id.is_none(), "{first:?}");
    let second = instance
        .hypervisor_create_snapshot(&vm.id, "second", false)
        .unwrap();
    assert_eq!(second.parent_id.as_deref(), Some(first.id.as_str()));
    assert!(!second.quiesced);
    let findings = instance.hypervisor_readiness(&reprotect).unwrap();
    let finding = blocking(&findings, "snapshots").unwrap();
    assert_eq!(finding.details, vec!["before-failback", "second"]);
    assert!(finding.remedy.contains("delete"), "{finding:?}");
    let bad = failure(instance.hypervisor_delete_snapshot(&vm.id, "snapshot-does-not-exist"));
    assert!(matches!(bad, Failure::NotFound(_)), "{bad:?}");
    instance
        .hypervisor_delete_snapshot(&vm.id, &second.id)
        .unwrap();
    instance
        .hypervisor_delete_snapshot(&vm.id, &first.id)
        .unwrap();
    assert!(
        instance
            .hypervisor_get_vm(&vm.id)
            .unwrap()
            .snapshots
            .is_empty()
    );
    let findings = instance.hypervisor_readiness(&reprotect).unwrap();
    assert!(blocking(&findings, "snapshots").is_none(), "{findings:?}");

    // Power: on, refused delete, guest shutdown, on again, off.
    instance
        .hypervisor_set_power(&vm.id, PowerState::PoweredOn)
        .unwrap();
    assert_eq!(
        instance.hypervisor_get_vm(&vm.id).unwrap().power,
        PowerState::PoweredOn
    );
    let again = failure(instance.hypervisor_set_power(&vm.id, PowerState::PoweredOn));
    assert!(matches!(again, Failure::Conflict(_)), "{again:?}");
    let running = failure(instance.hypervisor_delete_vm(&vm.id));
    assert!(matches!(running, Failure::Conflict(_)), "{running:?}");
    instance.hypervisor_shutdown_guest(&vm.id).unwrap();
    assert_eq!(
        instance.hypervisor_get_vm(&vm.id).unwrap().power,
        PowerState::PoweredOff
    );
    let off = failure(instance.hypervisor_shutdown_guest(&vm.id));
    assert!(matches!(off, Failure::Conflict(_)), "{off:?}");
    instance
        .hypervisor_set_power(&vm.id, PowerState::PoweredOn)
        .unwrap();
    instance
        .hypervisor_set_power(&vm.id, PowerState::PoweredOff)
        .unwrap();
    let suspended = failure(instance.hypervisor_set_power(&vm.id, PowerState::Suspended));
    assert!(
        matches!(suspended, Failure::InvalidInput(_)),
        "{suspended:?}"
    );

    instance.hypervisor_delete_vm(&vm.id).unwrap();
    let deleted = failure(instance.hypervisor_get_vm(&vm.id));
    assert!(matches!(deleted, Failure::NotFound(_)), "{deleted:?}");
    let twice = failure(instance.hypervisor_delete_vm(&vm.id));
    assert!(matches!(twice, Failure::NotFound(_)), "{twice:?}");
}

/// The read-only account reads, is reported with exactly the privileges it
/// lacks, and is refused changes with the ones each change needs.
pub fn read_only_account(model: Model, plugin: EmbeddedPlugin) {
    let setup = Setup::as_account(model, plugin, Account::ReadOnly);
    let mut instance = setup.instance();
    let inventory = instance.hypervisor_discover().unwrap();
    let findings = instance
        .hypervisor_readiness(&request("reprotect"))
        .unwrap();
    let finding = blocking(&findings, "privileges").unwrap();
    let expected: Vec<String> = HOMEWARD_REQUIRED
        .iter()
        .filter(|p| !READ_ONLY_ROLE.contains(p))
        .map(|p| p.to_string())
        .collect();
    assert_eq!(finding.details, expected);
    assert!(
        finding.message.contains(setup.sim.readonly().0),
        "{finding:?}"
    );

    let spec = placement(&inventory, "homeward-readonly");
    match failure(instance.hypervisor_create_vm(&spec)) {
        Failure::PermissionDenied { missing, .. } => assert_eq!(
            missing,
            [
                "VirtualMachine.Inventory.Create",
                "Resource.AssignVMToPool",
                "VirtualMachine.Config.AddNewDisk",
                "Datastore.AllocateSpace",
                "Network.Assign"
            ]
        ),
        other => panic!("{other:?}"),
    }
    let vm = &inventory.vms[0];
    match failure(instance.hypervisor_set_power(&vm.id, PowerState::PoweredOff)) {
        Failure::PermissionDenied { missing, .. } => {
            assert_eq!(missing, ["VirtualMachine.Interact.PowerOff"])
        }
        other => panic!("{other:?}"),
    }
    // Nothing changed.
    assert_eq!(instance.hypervisor_get_vm(&vm.id).unwrap().power, vm.power);

    // The admin account has everything: no finding.
    let admin = Setup::new(model, plugin);
    let findings = admin
        .instance()
        .hypervisor_readiness(&request("failback"))
        .unwrap();
    assert!(blocking(&findings, "privileges").is_none(), "{findings:?}");
}

/// A free licence added through LicenseManager is reported as free and
/// refuses failback; reprotect is not refused for it.
pub fn free_licence(model: Model, plugin: EmbeddedPlugin) {
    let setup = Setup::new(model, plugin);
    let mut instance = setup.instance();
    let licence = instance.hypervisor_get_licence().unwrap();
    assert!(!licence.free, "{licence:?}");
    assert!(!licence.edition.is_empty(), "{licence:?}");
    let findings = instance.hypervisor_readiness(&request("failback")).unwrap();
    assert!(blocking(&findings, "licence").is_none(), "{findings:?}");

    // A paid key does not make the endpoint free.
    add_licence(
        &setup.sim,
        "AAAAA-AAAAA-AAAAA-AAAAA-AAAAA",
        "esxEnterprisePlus",
        "vSphere 8 Enterprise Plus",
    );
    let licence = instance.hypervisor_get_licence().unwrap();
    assert!(!licence.free, "{licence:?}");
    assert_eq!(licence.edition, "esxEnterprisePlus");

    add_licence(
        &setup.sim,
        "FFFFF-FFFFF-FFFFF-FFFFF-FFFFF",
        "esxBasic",
        "vSphere 8 Hypervisor",
    );
    let licence = instance.hypervisor_get_licence().unwrap();
    assert!(licence.free, "{licence:?}");
    assert_eq!(licence.edition, "esxBasic");
    let findings = instance.hypervisor_readiness(&request("failback")).unwrap();
    let finding = blocking(&findings, "licence").unwrap();
    assert_eq!(finding.details, vec!["esxBasic"]);
    let findings = instance
        .hypervisor_readiness(&request("reprotect"))
        .unwrap();
    assert!(blocking(&findings, "licence").is_none(), "{findings:?}");
}

/// Master target checks: disk.EnableUUID unset, and a datastore its host
/// does not mount; unknown operations and objects are refused.
pub fn master_target_checks(model: Model, plugin: EmbeddedPlugin) {
    let setup = Setup::new(model, plugin);
    let mut instance = setup.instance();
    let inventory = instance.hypervisor_discover().unwrap();
    let master = &inventory.vms[0];
    let mut failback = request("failback");
    failback.master_target_vm_id = Some(master.id.clone());
    failback.datastore_id = Some(inventory.datastores[0].id.clone());
    let findings = instance.hypervisor_readiness(&failback).unwrap();
    let finding = blocking(&findings, "disk-uuid").unwrap();
    assert_eq!(finding.details, vec!["disk.EnableUUID=<unset>"]);
    assert!(finding.message.contains(&master.name), "{finding:?}");
    // The master target's host mounts the datastore: no reach finding.
    assert!(
        blocking(&findings, "datastore-reach").is_none(),
        "{findings:?}"
    );

    // A datastore only another host mounts is out of the master target's reach.
    let master_host = master.host_id.clone().unwrap();
    if let Some(other) = inventory.hosts.iter().find(|h| h.id != master_host) {
        let dir = tempfile::tempdir().unwrap();
        add_datastore(&setup.sim, &other.id, "Unreachable_DS", dir.path());
        let unreachable = instance
            .hypervisor_discover()
            .unwrap()
            .datastores
            .into_iter()
            .find(|d| d.name == "Unreachable_DS")
            .unwrap();
        failback.datastore_id = Some(unreachable.id.clone());
        let findings = instance.hypervisor_readiness(&failback).unwrap();
        let finding = blocking(&findings, "datastore-reach").unwrap();
        assert_eq!(
            finding.details,
            vec![unreachable.id.clone(), master_host.clone()]
        );
        assert!(finding.remedy.contains("Unreachable_DS"), "{finding:?}");
        // Named explicitly, the other host does reach it.
        failback.master_target_host_id = Some(other.id.clone());
        let findings = instance.hypervisor_readiness(&failback).unwrap();
        assert!(
            blocking(&findings, "datastore-reach").is_none(),
            "{findings:?}"
        );
        failback.master_target_host_id = None;
    }

    let bad = failure(instance.hypervisor_readiness(&request("teleport")));
    assert!(matches!(bad, Failure::InvalidInput(_)), "{bad:?}");
    failback.datastore_id = Some("datastore-does-not-exist".to_string());
    let missing = failure(instance.hypervisor_readiness(&failback));
    assert!(matches!(missing, Failure::NotFound(_)), "{missing:?}");
}

/// A stopped simulator gives `unavailable` within the deadline, for a live
/// session and for a fresh one.
pub fn stopped_endpoint_is_unavailable(model: Model, plugin: EmbeddedPlugin) {
    let mut setup = Setup::new(model, plugin);
    let mut instance = setup.instance();
    instance.hypervisor_connect().unwrap();
    setup.sim.stop();
    for mut instance in [instance, setup.instance()] {
        let started = Instant::now();
        let error = failure(instance.hypervisor_discover());
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
        match error {
            Failure::Unavailable { message, .. } => {
                assert!(message.contains("unreachable"), "{message}");
                assert!(message.contains(&setup.sim.host_port()), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
}

/// Wrong credentials give permission-denied; no password appears in the
/// error or in any log line (the capture sees the right login's lines).
pub fn wrong_credentials(model: Model, plugin: EmbeddedPlugin) {
    let sim = VsphereSim::start(model);
    let (_, right) = sim.admin();
    let right = right.to_string();
    let wrong_password = format!("{right}-but-wrong");
    let mut settings = sim.plugin_settings(Account::Admin);
    settings.secrets.insert(
        "password".to_string(),
        homeward::config::Secret::new(&wrong_password),
    );
    let (_runtime, loaded) = load(plugin, settings);
    let mut instance = loaded.instantiate().unwrap();
    let ((connect, discover), logs) = capture_logs(&mut instance, |i| {
        (i.hypervisor_connect(), i.hypervisor_discover())
    });
    for result in [connect.map(|_| ()), discover.map(|_| ())] {
        match failure(result) {
            Failure::PermissionDenied { message, missing } => {
                assert!(missing.is_empty());
                assert!(message.contains("password"), "{message}");
                assert!(
                    !message.contains(&wrong_password) && !message.contains(&right),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(
        !logs.contains(&wrong_password),
        "the wrong password was logged:\n{logs}"
    );
    assert!(!logs.contains(&right), "the password was logged:\n{logs}");

    // The right password logs in, and the capture does see the plugin's lines.
    let (_runtime, loaded) = load(plugin, sim.plugin_settings(Account::Admin));
    let mut instance = loaded.instantiate().unwrap();
    let (result, logs) = capture_logs(&mut instance, |i| i.hypervisor_connect());
    result.unwrap();
    assert!(
        logs.contains("logged in"),
        "no login line captured:\n{logs}"
    );
    assert!(!logs.contains(&right), "the password was logged:\n{logs}");
}

/// The hypervisor conformance suite against the simulator: no failure.
pub fn conformance(model: Model, plugin: EmbeddedPlugin) {
    let sim = VsphereSim::start(model);
    let options = SuiteOptions {
        target: Some(sim.url().to_string()),
        settings: sim.plugin_settings(Account::Admin),
        ..SuiteOptions::default()
    };
    let report = suite::run(plugin.wasm, plugin.id, &options);
    assert!(
        suite::failed(&report).is_empty(),
        "{}\n{}",
        suite::failures_text(&report),
        sim.stderr()
    );
    let passed = suite::names_where(&report, |o| matches!(o, Outcome::Pass));
    for case in [
        "hypervisor/session",
        "hypervisor/wrong-credentials",
        "hypervisor/endpoint-unavailable",
        "hypervisor/inventory-is-consistent",
        "hypervisor/alternate-location",
        "hypervisor/disks",
        "hypervisor/power",
        "hypervisor/snapshots-block-reprotect",
        "hypervisor/snapshot-disk",
    ] {
        assert!(passed.contains(case), "{case} did not pass: {passed:?}");
    }
}

/// The (datastore, path) of a disk's `datastore-file` locator.
fn datastore_file(disk: &Disk) -> (&str, &str) {
    match &disk.locator {
        DiskLocator::DatastoreFile((ds, path)) => (ds.as_str(), path.as_str()),
        other => panic!("not a datastore file: {other:?}"),
    }
}

/// A property of a disk record.
fn property<'d>(disk: &'d Disk, key: &str) -> Option<&'d str> {
    disk.properties
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The device XML of `key` among the VM's `config.hardware.device`, read
/// as the administrator: (controllerKey, unitNumber, capacityInKB, fileName).
fn disk_device(sim: &VsphereSim, vm_id: &str, key: &str) -> (String, String, String, String) {
    let (cookie, content) = admin_session(sim);
    let collector = content.text("propertyCollector").unwrap();
    let answer = sim.soap(
        Some(&cookie),
        &format!(
            r#"<RetrievePropertiesEx xmlns="urn:vim25"><_this type="PropertyCollector">{collector}</_this><specSet><propSet><type>VirtualMachine</type><pathSet>config.hardware.device</pathSet></propSet><objectSet><obj type="VirtualMachine">{vm_id}</obj></objectSet></specSet><options></options></RetrievePropertiesEx>"#
        ),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let doc = roxmltree::Document::parse(&answer.body).unwrap();
    let device = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "VirtualDevice")
        .find(|n| {
            n.children()
                .any(|c| c.tag_name().name() == "key" && c.text() == Some(key))
        })
        .unwrap_or_else(|| panic!("no device {key} in {}", answer.body));
    let text = |path: &[&str]| -> String {
        let mut node = device;
        for name in path {
            node = node
                .children()
                .find(|c| c.tag_name().name() == *name)
                .unwrap_or_else(|| panic!("device {key} has no {path:?}"));
        }
        node.text().unwrap_or_default().to_string()
    };
    (
        text(&["controllerKey"]),
        text(&["unitNumber"]),
        text(&["capacityInKB"]),
        text(&["backing", "fileName"]),
    )
}

/// What vSphere does to a disk when it takes a snapshot and the simulator
/// does not: the VM's disk `key` now writes to the delta `delta` whose
/// parent is the file it wrote before.
fn move_disk_onto_a_delta(sim: &VsphereSim, vm_id: &str, key: &str, delta: &str) {
    let (controller, unit, kb, file) = disk_device(sim, vm_id, key);
    let (datastore, _) = file.trim_start_matches('[').split_once(']').unwrap();
    // The simulator edits a disk only onto files that exist: the descriptor
    // and its extent, here empty placeholders.
    let dir = sim.datastore_dir(datastore);
    std::fs::write(dir.join(delta), b"").unwrap();
    std::fs::write(dir.join(delta.replace(".vmdk", "-flat.vmdk")), b"").unwrap();
    let (cookie, _) = admin_session(sim);
    let answer = sim.soap(
        Some(&cookie),
        &format!(
            concat!(
                r#"<ReconfigVM_Task xmlns="urn:vim25" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><_this type="VirtualMachine">{vm}</_this><spec><deviceChange><operation>edit</operation>"#,
                r#"<device xsi:type="VirtualDisk"><key>{key}</key><deviceInfo><label>Hard disk</label><summary>delta</summary></deviceInfo><backing xsi:type="VirtualDiskFlatVer2BackingInfo"><fileName>[{ds}] {delta}</fileName><diskMode>persistent</diskMode>"#,
                r#"<parent xsi:type="VirtualDiskFlatVer2BackingInfo"><fileName>{file}</fileName><diskMode>persistent</diskMode></parent></backing>"#,
                r#"<controllerKey>{controller}</controllerKey><unitNumber>{unit}</unitNumber><capacityInKB>{kb}</capacityInKB></device></deviceChange></spec></ReconfigVM_Task>"#
            ),
            vm = vm_id,
            key = key,
            ds = datastore,
            delta = delta,
            file = file,
            controller = controller,
            unit = unit,
            kb = kb
        ),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    // The simulator runs the task before it answers; its file name shows it.
    assert!(
        disk_device(sim, vm_id, key).3.ends_with(delta),
        "the disk did not move onto {delta}"
    );
}

/// `snapshot-disk` (API 0.1.2) answers the file each disk was writing when
/// the snapshot was taken (the VM's disk record from before it, read only);
/// an unknown VM, snapshot or disk, and a disk attached after the snapshot,
/// are not-found; a snapshot that froze a delta is unsupported, naming the
/// older snapshot to consolidate.
///
/// The simulator makes no delta disks on CreateSnapshot_Task (the VM keeps
/// writing its base file, and the snapshot's `config` is a copy of the
/// VM's), so what the first snapshot freezes is checked against the disk
/// record taken before it, which is what vSphere would answer too. For the
/// delta case the test moves a disk onto a delta itself (ReconfigVM, what
/// vSphere does at a snapshot) before taking the second snapshot. The
/// simulator's snapshot shares the VM's device list, so that edit also
/// reaches the first snapshot's copy: the first is not asked again after it.
pub fn snapshot_disks(model: Model, plugin: EmbeddedPlugin) {
    let setup = Setup::new(model, plugin);
    let mut hv = setup.instance();
    assert!(hv.hypervisor_has_snapshot_disks().unwrap());
    let inventory = hv.hypervisor_discover().unwrap();
    let spec = placement(&inventory, "homeward-frozen-01");
    let vm = hv.hypervisor_create_vm(&spec).unwrap();
    let before = hv.hypervisor_get_vm(&vm.id).unwrap();
    assert_eq!(before.disks.len(), 2);

    let first = hv
        .hypervisor_create_snapshot(&vm.id, "cycle-1", false)
        .unwrap();
    for disk in &before.disks {
        let frozen = hv
            .hypervisor_snapshot_disk(&vm.id, &first.id, &disk.id)
            .unwrap()
            .expect("the adapter exports hypervisor-snapshots");
        assert_eq!(frozen.id, disk.id);
        assert_eq!(datastore_file(&frozen), datastore_file(disk));
        assert_eq!(frozen.capacity_bytes, disk.capacity_bytes);
        assert_eq!(frozen.format, DiskFormat::VmdkFlat);
        assert_eq!(
            (frozen.controller.as_deref(), frozen.unit),
            (disk.controller.as_deref(), disk.unit)
        );
        assert_eq!(property(&frozen, "access"), Some("read"), "{frozen:?}");
        assert_eq!(
            property(&frozen, "datastore-path"),
            property(disk, "datastore-path")
        );
        let (ds, path) = datastore_file(&frozen);
        let dir = setup.sim.datastore_dir(ds);
        assert!(dir.join(path).is_file(), "{path} is not on {ds}");
        let flat = property(&frozen, "flat-file").unwrap();
        assert!(dir.join(flat).is_file(), "{flat} is not on {ds}");
    }

    let disk = &before.disks[0];
    match failure(hv.hypervisor_snapshot_disk("vm-does-not-exist", &first.id, &disk.id)) {
        Failure::NotFound(m) => assert!(m.contains("VM vm-does-not-exist"), "{m}"),
        other => panic!("{other:?}"),
    }
    match failure(hv.hypervisor_snapshot_disk(&vm.id, "snapshot-does-not-exist", &disk.id)) {
        Failure::NotFound(m) => assert!(m.contains("no snapshot snapshot-does-not-exist"), "{m}"),
        other => panic!("{other:?}"),
    }
    match failure(hv.hypervisor_snapshot_disk(&vm.id, &first.id, "disk-does-not-exist")) {
        Failure::NotFound(m) => assert!(m.contains("no disk disk-does-not-exist"), "{m}"),
        other => panic!("{other:?}"),
    }
    let later = hv.hypervisor_add_disk(&vm.id, 2 * MIB).unwrap();
    match failure(hv.hypervisor_snapshot_disk(&vm.id, &first.id, &later.id)) {
        Failure::NotFound(m) => assert!(m.contains("attached after the snapshot"), "{m}"),
        other => panic!("{other:?}"),
    }

    // The first snapshot left the VM writing a delta; the second freezes it.
    let key = property(disk, "device-key").unwrap().to_string();
    let delta = format!("{}/{}-000001.vmdk", vm.name, vm.name);
    move_disk_onto_a_delta(&setup.sim, &vm.id, &key, &delta);
    let second = hv
        .hypervisor_create_snapshot(&vm.id, "cycle-2", false)
        .unwrap();
    match failure(hv.hypervisor_snapshot_disk(&vm.id, &second.id, &disk.id)) {
        Failure::Unsupported(m) => {
            assert!(m.contains(&format!("\"cycle-2\" ({})", second.id)), "{m}");
            assert!(m.contains(&format!("\"cycle-1\" ({})", first.id)), "{m}");
            assert!(m.contains(&delta), "{m}");
            assert!(m.contains("consolidate"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    // The other disk is still whole in the second snapshot.
    let whole = hv
        .hypervisor_snapshot_disk(&vm.id, &second.id, &before.disks[1].id)
        .unwrap()
        .unwrap();
    assert_eq!(datastore_file(&whole), datastore_file(&before.disks[1]));

    hv.hypervisor_delete_snapshot(&vm.id, &second.id).unwrap();
    hv.hypervisor_delete_snapshot(&vm.id, &first.id).unwrap();
    for gone in [&first, &second] {
        match failure(hv.hypervisor_snapshot_disk(&vm.id, &gone.id, &disk.id)) {
            Failure::NotFound(m) => assert!(m.contains(&gone.id), "{m}"),
            other => panic!("{other:?}"),
        }
    }
    hv.hypervisor_delete_vm(&vm.id).unwrap();
}

/// Pointed at the other kind of endpoint, a plugin refuses with
/// `invalid-input` naming the plugin to use.
pub fn other_flavour_is_refused(model: Model, plugin: EmbeddedPlugin, use_instead: &str) {
    let setup = Setup::new(model, plugin);
    match failure(setup.instance().hypervisor_connect()) {
        Failure::InvalidInput(message) => assert!(message.contains(use_instead), "{message}"),
        other => panic!("{other:?}"),
    }
}
