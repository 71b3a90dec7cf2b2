//! The demo's guest (`homeward::lab::guest`): the shipped ext4 image, written
//! onto a lab VM's VMDK-flat disk, changed as Azure changes it on a VHD-fixed
//! cloud copy, and fixed back by the two guest post-steps after failback.
//! Every disk is judged by `e2fsck -fn` and read back by `debugfs`, which
//! share no code with the handler plugin that wrote it.

use homeward::disk::{BlockDevice, RawFile};
use homeward::filesystem::{AssembledGuest, FsHandlers};
use homeward::guest_steps::{self, RunReport};
use homeward::lab::cloud::LabCloud;
use homeward::lab::guest::{self, DemoGuest, GuestDiskError};
use homeward::lab::hypervisor::{LabSite, LabVm};
use homeward::plugin::{LoadedPlugin, PluginSettings, Runtime, RuntimeOptions};
use homeward_tests::fs_ext4::{assert_fsck_clean, debugfs_cat};
use homeward_tests::fs_images::{run_tool, stdout_text};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The lab VM's first disk: larger than the image, as a real disk would be.
const DISK: u64 = 32 << 20;

fn runtime() -> Runtime {
    Runtime::new(RuntimeOptions {
        cache_dir: Some(homeward_tests::shared_cache_dir().to_path_buf()),
        ..RuntimeOptions::default()
    })
    .unwrap()
}

/// The two failback steps, in the order a failback runs them.
fn steps(runtime: &Runtime) -> Vec<LoadedPlugin> {
    [
        homeward::embedded::NETWORKMANAGER_RESTORE,
        homeward::embedded::STATIC_IP_RESET,
    ]
    .iter()
    .map(|p| {
        runtime
            .load(p.wasm, p.id, PluginSettings::default())
            .unwrap()
    })
    .collect()
}

/// The host's file-system handlers (ext4, XFS, ReiserFS), without
/// `disk-write`.
fn host_handlers(runtime: &Runtime) -> FsHandlers {
    FsHandlers::new(
        homeward::embedded::ALL
            .iter()
            .filter(|p| p.id.starts_with("fs-"))
            .map(|p| {
                runtime
                    .load(p.wasm, p.id, PluginSettings::default())
                    .unwrap()
            }),
    )
}

/// A lab site in `dir` with VM `web01` whose first disk holds the demo
/// guest; returns that disk's descriptor and flat extent.
fn lab_vm_with_guest(dir: &Path) -> (PathBuf, PathBuf) {
    let site = LabSite::create(&dir.join("site")).unwrap();
    let vm = site.add_vm(&LabVm::new("web01", &[DISK])).unwrap();
    let disk = homeward::disk::open(&vm.descriptors[0], true, None).unwrap();
    guest::write_guest_disk(disk.as_ref()).unwrap();
    (vm.descriptors[0].clone(), vm.flat_paths[0].clone())
}

/// Copies every byte of disk `from` onto disk `to` (any formats), as a sync
/// would.
fn copy_disk(from: &Path, to: &Path) {
    let source = homeward::disk::open(from, false, None).unwrap();
    let target = homeward::disk::open(to, true, None).unwrap();
    assert_eq!(source.capacity(), target.capacity());
    let mut buf = vec![0u8; source.capacity() as usize];
    source.read_at(&mut buf, 0).unwrap();
    target.write_at(&buf, 0).unwrap();
    target.flush().unwrap();
}

/// The file system's bytes of `disk` in a file of their own, for the tools
/// (a VHD has a footer, a VMDK a descriptor).
fn fs_file(dir: &Path, disk: &Path, name: &str) -> PathBuf {
    let device = homeward::disk::open(disk, false, None).unwrap();
    let mut bytes = vec![0u8; guest::IMAGE_BYTES as usize];
    device.read_at(&mut bytes, 0).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap()
}

/// Runs the steps on the guest of `disk`, applying when asked, and closes it.
fn run_steps(handlers: &FsHandlers, steps: &[LoadedPlugin], disk: &Path, apply: bool) -> RunReport {
    let device: Arc<dyn BlockDevice> = homeward::disk::open(disk, apply, None).unwrap().into();
    let assembled =
        AssembledGuest::assemble(handlers, &[(disk.display().to_string(), device)], apply).unwrap();
    let assembled = Arc::new(assembled);
    let context = DemoGuest::default().step_context();
    let report = guest_steps::run(steps, &assembled, &context, apply).unwrap();
    Arc::into_inner(assembled).unwrap().close().unwrap();
    report
}

fn changes(report: &RunReport) -> Vec<(String, usize)> {
    report
        .steps
        .iter()
        .map(|s| (s.step.clone(), s.changes.len()))
        .collect()
}

#[test]
fn the_shipped_image_is_a_clean_rocky_root_with_the_recorded_nic() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        guest::IMAGE_ZST.len() < 100 << 10,
        "{} bytes",
        guest::IMAGE_ZST.len()
    );
    let image = dir.path().join("web01-root.img");
    std::fs::write(&image, guest::image().unwrap()).unwrap();
    assert_eq!(std::fs::metadata(&image).unwrap().len(), guest::IMAGE_BYTES);
    assert_fsck_clean(&image);

    let header = stdout_text(&run_tool("dumpe2fs", &["-h", image.to_str().unwrap()]));
    assert!(header.contains(guest::FS_UUID), "{header}");
    assert!(header.contains(guest::FS_LABEL), "{header}");
    assert!(
        header.contains("Block size:               4096"),
        "{header}"
    );

    let nic = DemoGuest::default();
    assert_eq!(
        text(debugfs_cat(&image, "/etc/hostname")),
        format!("{}\n", nic.hostname)
    );
    let keyfile = text(debugfs_cat(&image, guest::KEYFILE));
    let (address, prefix) = nic.address;
    for line in [
        "method=manual".to_string(),
        format!("interface-name={}", nic.device),
        format!("address1={address}/{prefix},{}", nic.gateway),
        format!("dns={};", nic.dns[0]),
        format!("dns-search={};", nic.search[0]),
    ] {
        assert!(keyfile.lines().any(|l| l == line), "{line} in\n{keyfile}");
    }
    let fstab = text(debugfs_cat(&image, "/etc/fstab"));
    assert!(
        fstab.contains(&format!("UUID={} /", guest::FS_UUID)),
        "{fstab}"
    );
    let stat = stdout_text(&run_tool(
        "debugfs",
        &[
            "-R",
            &format!("stat {}", guest::KEYFILE),
            image.to_str().unwrap(),
        ],
    ));
    assert!(
        stat.contains("Mode:  0600"),
        "NetworkManager ignores readable keyfiles:\n{stat}"
    );
    assert!(text(debugfs_cat(&image, guest::APP_DATA)).starts_with("order,"));
}

#[test]
fn the_script_regenerates_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("regenerated.img");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/make-demo-guest");
    run_tool(script.to_str().unwrap(), &["--raw", out.to_str().unwrap()]);
    let regenerated = std::fs::read(&out).unwrap();
    let shipped = guest::image().unwrap();
    assert_eq!(regenerated.len(), shipped.len());
    let first_difference = regenerated.iter().zip(&shipped).position(|(a, b)| a != b);
    assert_eq!(
        first_difference, None,
        "scripts/make-demo-guest no longer makes the shipped image: run it and rebuild"
    );
}

#[test]
fn on_a_lab_vmdk_the_host_finds_the_guest_and_it_needs_no_fix() {
    let dir = tempfile::tempdir().unwrap();
    let (descriptor, flat) = lab_vm_with_guest(dir.path());
    let runtime = runtime();
    let handlers = host_handlers(&runtime);
    assert_eq!(handlers.ids().len(), 3);
    // Writing the guest kept the thin disk thin (zeros are not written).
    let allocated =
        std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&flat).unwrap()) * 512;
    assert!(
        allocated < guest::IMAGE_BYTES / 2,
        "{allocated} bytes allocated"
    );

    // A bare file system is the whole-disk volume, and ext4 claims it.
    let device: Arc<dyn BlockDevice> = homeward::disk::open(&descriptor, false, None)
        .unwrap()
        .into();
    let layout = homeward::disk::layout::resolve(device).unwrap();
    let volume = layout.volume("disk").unwrap();
    let found = handlers.detect(&volume.device, "disk").unwrap().unwrap();
    assert_eq!(found.plugin_id, "fs-ext4");
    assert_eq!(found.info.uuid, guest::FS_UUID);
    assert_eq!(found.info.label, guest::FS_LABEL);

    // On premises the guest is as protection recorded it: nothing to fix.
    let report = run_steps(&handlers, &steps(&runtime), &descriptor, false);
    assert_eq!(
        changes(&report),
        [
            ("networkmanager-restore".to_string(), 0),
            ("static-ip-reset".to_string(), 0)
        ],
        "{report:#?}"
    );
    let notes = report
        .steps
        .iter()
        .flat_map(|s| &s.notes)
        .cloned()
        .collect::<Vec<_>>();
    assert!(
        notes.iter().any(|n| n == "distribution: rocky 9.3"),
        "{notes:#?}"
    );
    let ext4 = guest::handlers(&runtime).unwrap();
    let orders = text(guest::read_guest_file(&ext4, &descriptor, guest::APP_DATA).unwrap());
    assert!(orders.contains("1003,Initech"), "{orders}");
}

#[test]
fn azure_change_then_failback_steps_bring_the_static_address_back() {
    let dir = tempfile::tempdir().unwrap();
    let (descriptor, _) = lab_vm_with_guest(dir.path());
    let runtime = runtime();
    let ext4 = guest::handlers(&runtime).unwrap();

    // Failover: the cloud's copy is a fixed VHD, and Azure changes the guest.
    let cloud = LabCloud::create(&dir.path().join("cloud")).unwrap();
    let vhd = cloud.add_disk("web01-os", DISK).unwrap().path;
    copy_disk(&descriptor, &vhd);
    let changed = guest::azure_failover_changes(&ext4, &vhd).unwrap();
    assert!(
        changed
            .iter()
            .any(|c| c.starts_with("removed /usr/sbin/NetworkManager")),
        "{changed:#?}"
    );
    assert!(
        changed
            .iter()
            .any(|c| c.starts_with(&format!("removed {}", guest::KEYFILE))),
        "{changed:#?}"
    );
    assert!(
        changed
            .iter()
            .any(|c| c.starts_with(&format!("wrote {}", guest::IFCFG))),
        "{changed:#?}"
    );
    assert_eq!(
        guest::azure_failover_changes(&ext4, &vhd).unwrap(),
        Vec::<String>::new()
    );
    let in_cloud = fs_file(dir.path(), &vhd, "cloud.img");
    assert_fsck_clean(&in_cloud);
    let ifcfg = text(debugfs_cat(&in_cloud, guest::IFCFG));
    assert!(
        ifcfg.contains("BOOTPROTO=dhcp\n") && ifcfg.contains("NM_CONTROLLED=no\n"),
        "{ifcfg}"
    );
    let listing = stdout_text(&run_tool(
        "debugfs",
        &[
            "-R",
            "ls -l /etc/NetworkManager/system-connections",
            in_cloud.to_str().unwrap(),
        ],
    ));
    assert!(!listing.contains("eth0.nmconnection"), "{listing}");
    assert!(debugfs_cat(&in_cloud, "/usr/sbin/NetworkManager").is_empty());

    // New data is written in the cloud.
    let mut orders = guest::read_guest_file(&ext4, &vhd, guest::APP_DATA).unwrap();
    orders.extend_from_slice(b"1004,Umbrella,valve,7,2023-11-15T08:30:00Z\n");
    guest::write_guest_file(&ext4, &vhd, guest::APP_DATA, &orders).unwrap();
    assert_eq!(
        guest::read_guest_file(&ext4, &vhd, guest::APP_DATA).unwrap(),
        orders
    );

    // Failback: the cloud's bytes come home, and the steps fix the guest.
    copy_disk(&vhd, &descriptor);
    let steps = steps(&runtime);
    let planned = run_steps(&ext4, &steps, &descriptor, false);
    assert!(
        changes(&planned).iter().all(|(_, n)| *n > 0),
        "{:?}",
        changes(&planned)
    );
    let applied = run_steps(&ext4, &steps, &descriptor, true);
    assert!(
        applied.manual_steps().is_empty(),
        "{:?}",
        applied.manual_steps()
    );
    assert_eq!(
        applied.replanned,
        [
            ("networkmanager-restore".to_string(), 0),
            ("static-ip-reset".to_string(), 0)
        ]
    );
    let again = run_steps(&ext4, &steps, &descriptor, false);
    assert!(changes(&again).iter().all(|(_, n)| *n == 0), "{again:#?}");

    let home = fs_file(dir.path(), &descriptor, "home.img");
    assert_fsck_clean(&home);
    let nic = DemoGuest::default();
    let ifcfg = text(debugfs_cat(&home, guest::IFCFG));
    for line in [
        "BOOTPROTO=none".to_string(),
        format!("IPADDR={}", nic.address.0),
        format!("PREFIX={}", nic.address.1),
        format!("GATEWAY={}", nic.gateway),
        format!("DNS1={}", nic.dns[0]),
        "NM_CONTROLLED=yes".to_string(),
    ] {
        assert!(ifcfg.lines().any(|l| l == line), "{line} in\n{ifcfg}");
    }
    let resolv = text(debugfs_cat(&home, guest::RESOLV_CONF));
    assert!(
        resolv.contains(&format!("nameserver {}\n", nic.dns[0])),
        "{resolv}"
    );
    assert!(!resolv.contains("168.63.129.16"), "{resolv}");
    let unit = text(debugfs_cat(
        &home,
        "/etc/systemd/system/homeward-firstboot-networkmanager.service",
    ));
    assert!(
        unit.contains("ExecStart=/usr/local/lib/homeward/firstboot-networkmanager.sh"),
        "{unit}"
    );
    assert_eq!(
        debugfs_cat(&home, guest::APP_DATA),
        orders,
        "the cloud's data came home"
    );
}

#[test]
fn bad_images_and_disks_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime();
    let ext4 = guest::handlers(&runtime).unwrap();

    let small = RawFile::create(&dir.path().join("small.img"), 1 << 20).unwrap();
    let error = guest::write_guest_disk(&small).unwrap_err();
    assert!(matches!(error, GuestDiskError::TooSmall { .. }), "{error}");
    assert!(error.to_string().contains("small.img"), "{error}");

    let disk = dir.path().join("disk.img");
    let device = RawFile::create(&disk, DISK).unwrap();
    let truncated = &guest::IMAGE_ZST[..guest::IMAGE_ZST.len() / 3];
    for bad in [b"not an image".as_slice(), truncated] {
        let error = guest::write_image(&device, bad).unwrap_err();
        assert!(
            error.to_string().contains("scripts/make-demo-guest"),
            "{error}"
        );
    }

    // A disk of garbage holds no guest.
    let garbage: Vec<u8> = (0..DISK)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    device.write_at(&garbage, 0).unwrap();
    let error = guest::read_guest_file(&ext4, &disk, "/etc/hostname").unwrap_err();
    assert!(
        error.to_string().contains(&disk.display().to_string()),
        "{error}"
    );

    // The superblock intact, the metadata behind it garbage: refused, not
    // written.
    guest::write_guest_disk(&device).unwrap();
    device.write_at(&garbage[..1 << 20], 4096).unwrap();
    for error in [
        guest::read_guest_file(&ext4, &disk, guest::APP_DATA).unwrap_err(),
        guest::azure_failover_changes(&ext4, &disk).unwrap_err(),
    ] {
        assert!(
            error.to_string().contains(&disk.display().to_string()),
            "{error}"
        );
    }

    // Written over garbage, the image is exact (zero stretches included).
    guest::write_guest_disk(&device).unwrap();
    let mut written = vec![0u8; guest::IMAGE_BYTES as usize];
    device.read_at(&mut written, 0).unwrap();
    assert!(
        written == guest::image().unwrap(),
        "the image is on the disk byte for byte"
    );
    assert_fsck_clean(&disk);

    // A missing file names itself; a handler without disk-write refuses.
    let error = guest::read_guest_file(&ext4, &disk, "/etc/no-such-file").unwrap_err();
    assert!(error.to_string().contains("/etc/no-such-file"), "{error}");
    let read_only = host_handlers(&runtime);
    let error = guest::write_guest_file(&read_only, &disk, guest::APP_DATA, b"x").unwrap_err();
    assert!(matches!(error, GuestDiskError::Refused { .. }), "{error}");
    assert!(error.to_string().contains("disk-write"), "{error}");
    assert!(
        text(guest::read_guest_file(&ext4, &disk, guest::APP_DATA).unwrap()).starts_with("order,"),
        "a refused write changes nothing"
    );
}
