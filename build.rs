//! Builds the fixture plugins the integration tests load (`tests/fixtures/`)
//! for wasm32-wasip2, before any test needs them.

#[path = "host/build_wasm.rs"]
mod build_wasm;

use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let fixtures = root.join("tests/fixtures");
    build_wasm::rerun_if_changed(&[&fixtures, &root.join("sdk/src"), &root.join("wit")]);
    // Its own target directory: broken-fs builds the fs-ext4 parser without
    // its exports, which must not overwrite the plugins' build of it.
    let out = build_wasm::build_into(
        &fixtures.join("Cargo.toml"),
        &build_wasm::wasm_target_dir().join("fixtures"),
    );
    for (var, file) in [
        ("HOMEWARD_FIXTURE_SANDBOX_PROBE", "sandbox_probe.wasm"),
        ("HOMEWARD_FIXTURE_DISK_PROBE", "disk_probe.wasm"),
        ("HOMEWARD_FIXTURE_BROKEN_STEP", "broken_step.wasm"),
        ("HOMEWARD_FIXTURE_BROKEN_FS", "broken_fs.wasm"),
        (
            "HOMEWARD_FIXTURE_COMPAT_CLOUD_0_1_0",
            "compat_cloud_0_1_0.wasm",
        ),
    ] {
        println!("cargo:rustc-env={var}={}", out.join(file).display());
    }
}
