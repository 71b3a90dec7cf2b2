//! Loading refuses what it cannot safely run, with a message that says why:
//! another API version, truncated or corrupt bytes, a file that is not the one
//! the plugin set expects. Nothing here may panic.

use homeward::plugin::{PluginError, PluginSettings, Runtime, RuntimeOptions};
use homeward_tests::{patch_manifest, template_wasm};
use sha2::{Digest, Sha256};

fn load(bytes: &[u8], settings: PluginSettings) -> Result<(), PluginError> {
    let runtime = Runtime::new(RuntimeOptions::default()).unwrap();
    runtime.load(bytes, "fixture.wasm", settings).map(drop)
}

#[test]
fn a_plugin_for_another_api_version_is_refused_naming_both_versions() {
    for api in ["0.2.0", "1.0.0"] {
        let wasm = patch_manifest(
            template_wasm(),
            "api = \"0.1.2\"",
            &format!("api = \"{api}\""),
        );
        let err = load(&wasm, PluginSettings::default()).unwrap_err();
        assert!(
            matches!(err, PluginError::IncompatibleApi { .. }),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains(&format!("API {api}")), "{message}");
        assert!(message.contains("provides API 0.1.2"), "{message}");
        assert!(message.contains("upgrade Homeward"), "{message}");
    }
}

#[test]
fn a_newer_patch_of_the_same_line_asks_for_a_host_upgrade() {
    let wasm = patch_manifest(template_wasm(), "api = \"0.1.2\"", "api = \"0.1.9\"");
    let message = load(&wasm, PluginSettings::default())
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("0.1.9") && message.contains("0.1.2"),
        "{message}"
    );
}

#[test]
fn truncated_components_get_a_clear_error_and_no_panic() {
    let wasm = template_wasm();
    // Cut at many points, including inside the header and the manifest section.
    let mut cuts: Vec<usize> = (0..16).collect();
    cuts.extend((1..64).map(|i| wasm.len() * i / 64));
    cuts.push(wasm.len() - 1);
    for cut in cuts {
        let err = load(&wasm[..cut], PluginSettings::default()).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("fixture.wasm"), "cut at {cut}: {message}");
        assert!(
            matches!(
                err,
                PluginError::NotWasm { .. }
                    | PluginError::Malformed { .. }
                    | PluginError::NoManifest { .. }
            ),
            "cut at {cut}: {err:?}"
        );
    }
}

#[test]
fn corrupt_components_get_a_clear_error_and_no_panic() {
    let wasm = template_wasm();
    // Overwrite a run of bytes at many places; some land in code, some in types.
    for i in 1..16 {
        let at = wasm.len() * i / 16;
        let mut bad = wasm.to_vec();
        for b in bad.iter_mut().skip(at).take(8) {
            *b = !*b;
        }
        // Either refused with a message naming the file, or (if the flip hit
        // bytes nothing reads) loaded: never a panic.
        if let Err(err) = load(&bad, PluginSettings::default()) {
            assert!(!err.to_string().is_empty());
        }
    }
    let err = load(b"MZ\x90\x00 not wasm at all", PluginSettings::default()).unwrap_err();
    assert!(matches!(err, PluginError::NotWasm { .. }), "{err:?}");
    assert!(err.to_string().contains("not a WebAssembly file"));
}

#[test]
fn a_core_module_is_refused_with_how_to_build_a_component() {
    // The smallest valid core module: magic and version 1.
    let err = load(b"\0asm\x01\0\0\0", PluginSettings::default()).unwrap_err();
    assert!(matches!(err, PluginError::CoreModule { .. }), "{err:?}");
    assert!(err.to_string().contains("wasm32-wasip2"));
}

#[test]
fn a_file_that_is_not_what_the_plugin_set_expects_is_refused() {
    let wasm = template_wasm();
    let digest: [u8; 32] = Sha256::digest(wasm).into();
    let mut wrong = digest;
    wrong[0] ^= 1;

    load(
        wasm,
        PluginSettings {
            sha256: Some(digest),
            ..PluginSettings::default()
        },
    )
    .unwrap();
    let message = load(
        wasm,
        PluginSettings {
            sha256: Some(wrong),
            ..PluginSettings::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        message.contains(&hex::encode(digest)) && message.contains("update `sha256`"),
        "{message}"
    );

    let message = load(
        wasm,
        PluginSettings {
            expected_id: Some("vcenter".to_string()),
            ..PluginSettings::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        message.contains("`template`") && message.contains("`vcenter`"),
        "{message}"
    );

    let message = load(
        wasm,
        PluginSettings {
            version: Some("^2".parse().unwrap()),
            ..PluginSettings::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        message.contains("version 0.1.0") && message.contains("^2"),
        "{message}"
    );
}

#[test]
fn a_manifest_kind_that_the_exports_do_not_back_is_refused() {
    // Rewrite the manifest's head compactly so a longer kind fits in place.
    let from = "schema = 1\nid = \"template\"\nversion = \"0.1.0\"\napi = \"0.1.2\"\nkinds = [\"guest-step\"]";
    let mut to =
        "schema=1\nid=\"template\"\nversion=\"0.1.0\"\napi=\"0.1.2\"\nkinds=[\"cloud-adapter\"]"
            .to_string();
    while to.len() < from.len() {
        to.push(' ');
    }
    let wasm = patch_manifest(template_wasm(), from, &to);
    let err = load(&wasm, PluginSettings::default()).unwrap_err();
    assert!(matches!(err, PluginError::KindMismatch { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("declares kind `cloud-adapter`"),
        "{message}"
    );
    assert!(message.contains("homeward:plugin/cloud"), "{message}");
    assert!(message.contains("post-step"), "{message}");
}
