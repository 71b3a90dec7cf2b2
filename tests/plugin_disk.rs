//! The `disk` resource: a file-system handler reads the disk the host lends it,
//! and writes only when its manifest asks, the operator grants and the device
//! is writable.

use homeward::config::Grants;
use homeward::disk::{BlockDevice, RawFile};
use homeward::plugin::instance::ProbeResult;
use homeward::plugin::{Failure, PluginError, PluginSettings, Runtime, RuntimeOptions};
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

fn probe(
    config: &[(&str, &str)],
    disk_write: bool,
    device: Arc<dyn BlockDevice>,
) -> Result<ProbeResult, PluginError> {
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
    plugin.instantiate()?.probe_filesystem(device, "disk-0")
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

    // Asked for by the manifest, but not granted: refused, disk unchanged.
    let err = probe(
        &[("write", "yes")],
        false,
        Arc::new(RawFile::open_writable(&path).unwrap()),
    )
    .unwrap_err();
    match err {
        PluginError::Failed {
            failure: Failure::PermissionDenied { message, missing },
            ..
        } => {
            assert!(message.contains("read-only for this plugin"), "{message}");
            assert_eq!(missing, ["disk-write"]);
        }
        other => panic!("expected permission-denied, got {other:?}"),
    }
    assert_eq!(&std::fs::read(&path).unwrap()[32..40], &[0u8; 8]);

    // Granted, but the host opened the device read-only: still refused.
    assert!(
        probe(
            &[("write", "yes")],
            true,
            Arc::new(RawFile::open(&path).unwrap())
        )
        .is_err()
    );
    assert_eq!(&std::fs::read(&path).unwrap()[32..40], &[0u8; 8]);

    // Granted and writable: the bytes land.
    probe(
        &[("write", "yes")],
        true,
        Arc::new(RawFile::open_writable(&path).unwrap()),
    )
    .unwrap();
    assert_eq!(&std::fs::read(&path).unwrap()[32..40], b"TOUCHED!");
}
