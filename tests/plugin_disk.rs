//! The `disk` resource: a file-system handler reads the disk the host lends it,
//! and writes only when its manifest asks, the operator grants and the device
//! is writable.

use homeward::config::Grants;
use homeward::disk::{BlockDevice, RawFile};
use homeward::plugin::instance::ProbeResult;
use homeward::plugin::{
    Failure, LoadedPlugin, PluginError, PluginSettings, Runtime, RuntimeOptions,
};
use homeward_tests::disk_probe_path;
use std::path::Path;
use std::sync::Arc;

fn image(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("disk.img");
    let mut bytes = vec![0u8; 64 * 1024];
    bytes[..4].copy_from_slice(b"HWFS");
    bytes[4..11].copy_from_slice(b"rootfs1");
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The fixture with `config` and, when `disk_write`, the `disk-write` grant.
/// The runtime comes along: it drives call deadlines.
fn load(config: &[(&str, &str)], disk_write: bool) -> (Runtime, LoadedPlugin) {
    let runtime = Runtime::new(RuntimeOptions::default()).unwrap();
    let settings = PluginSettings {
        grants: Grants {
            disk_write,
            ..Grants::default()
        },
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..PluginSettings::default()
    };
    let plugin = runtime.load_file(&disk_probe_path(), settings).unwrap();
    (runtime, plugin)
}

fn probe(
    config: &[(&str, &str)],
    disk_write: bool,
    device: Arc<dyn BlockDevice>,
) -> Result<ProbeResult, PluginError> {
    let (_runtime, plugin) = load(config, disk_write);
    plugin.instantiate()?.probe_filesystem(device, "disk-0")
}

/// Opens a volume with the fixture, which writes first when configured to.
fn open_volume(
    config: &[(&str, &str)],
    disk_write: bool,
    device: Arc<dyn BlockDevice>,
    writable: bool,
) -> Result<(), PluginError> {
    let (_runtime, plugin) = load(config, disk_write);
    plugin
        .instantiate()?
        .open_volume(device, "disk-0", writable)
        .map(drop)
}

#[test]
fn a_handler_reads_the_disk_it_is_lent() {
    let dir = tempfile::tempdir().unwrap();
    let path = image(dir.path());
    match probe(&[], false, Arc::new(RawFile::open(&path).unwrap())).unwrap() {
        ProbeResult::Mine(info) => {
            assert_eq!(info.label, "rootfs1");
            assert_eq!(info.total_blocks, 128);
        }
        ProbeResult::NotMine => panic!("the header was not seen"),
    }
    std::fs::write(&path, vec![0u8; 4096]).unwrap();
    assert!(matches!(
        probe(&[], false, Arc::new(RawFile::open(&path).unwrap())).unwrap(),
        ProbeResult::NotMine
    ));
}

#[test]
fn reading_past_the_end_is_an_error_for_the_plugin_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = image(dir.path());
    let err = probe(
        &[("read-at", "65400")],
        false,
        Arc::new(RawFile::open(&path).unwrap()),
    )
    .unwrap_err();
    match err {
        PluginError::Failed {
            failure: Failure::InvalidInput(message),
            ..
        } => assert!(message.contains("runs past the end"), "{message}"),
        other => panic!("expected invalid-input, got {other:?}"),
    }
}

#[test]
fn writes_need_the_grant_and_a_writable_device() {
    let dir = tempfile::tempdir().unwrap();
    let path = image(dir.path());
    let untouched = || assert_eq!(&std::fs::read(&path).unwrap()[32..40], &[0u8; 8]);
    let writable = || -> Arc<dyn BlockDevice> { Arc::new(RawFile::open_writable(&path).unwrap()) };

    // The plugin writes while the host lent the disk read-only (an open for
    // reading): the `disk` resource itself refuses, naming the grant.
    match open_volume(&[("write", "yes")], true, writable(), false).unwrap_err() {
        PluginError::Failed {
            failure: Failure::PermissionDenied { message, missing },
            ..
        } => {
            assert!(message.contains("read-only for this plugin"), "{message}");
            assert_eq!(missing, ["disk-write"]);
        }
        other => panic!("expected permission-denied, got {other:?}"),
    }
    untouched();

    // A writable open without the grant is refused before the plugin runs.
    let err = open_volume(&[("write", "yes")], false, writable(), true).unwrap_err();
    assert!(err.to_string().contains("disk-write"), "{err}");
    untouched();

    // Granted, but the host opened the device read-only: still refused.
    let read_only: Arc<dyn BlockDevice> = Arc::new(RawFile::open(&path).unwrap());
    assert!(open_volume(&[("write", "yes")], true, read_only, true).is_err());
    untouched();

    // A probe only ever reads, whatever the grants.
    probe(&[], true, writable()).unwrap();
    untouched();

    // Granted and writable: the bytes land (then the fixture says it opens
    // no volumes).
    let err = open_volume(&[("write", "yes")], true, writable(), true).unwrap_err();
    assert!(err.to_string().contains("opens no volumes"), "{err}");
    assert_eq!(&std::fs::read(&path).unwrap()[32..40], b"TOUCHED!");
}
