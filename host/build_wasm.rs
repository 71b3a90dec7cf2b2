//! Builds WebAssembly plugin crates for `wasm32-wasip2` from a build script.
//!
//! Shared by `host/build.rs` (the plugins embedded in the `homeward` binary) and
//! the root `build.rs` (the fixture plugins of the tests), so that a plain
//! `cargo build` or `cargo test` builds every plugin before anything needs it,
//! in the spirit of wasmtime's `test-programs/artifacts`.
//!
//! The nested cargo gets its own target directory (`<target>/wasm`), so it never
//! waits on the lock the outer cargo holds.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Variables of the outer build that must not leak into the wasm build.
pub const SCRUBBED_ENV: &[&str] = &[
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_PROFILE_RELEASE_DEBUG",
    "CARGO_LLVM_COV",
    "LLVM_PROFILE_FILE",
];

/// The directory nested wasm builds share: `<outer target dir>/wasm`.
pub fn wasm_target_dir() -> PathBuf {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    // Cargo marks the root of a target directory with CACHEDIR.TAG.
    let target = out_dir
        .ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").exists())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| out_dir.clone());
    target.join("wasm")
}

/// Builds every package of the workspace or crate at `manifest` in release mode
/// for wasm32-wasip2 and returns the directory holding the `.wasm` files.
#[allow(dead_code)] // the root build script uses only `build_into`
pub fn build(manifest: &Path) -> PathBuf {
    build_into(manifest, &wasm_target_dir())
}

/// [`build`] into another target directory: for a workspace that depends on
/// a plugin crate with other features (a cdylib's rlib has no hash in its
/// file name, so two feature sets in one target directory overwrite each
/// other).
pub fn build_into(manifest: &Path, target_dir: &Path) -> PathBuf {
    let target_dir = target_dir.to_path_buf();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .arg("build")
        .arg("--release")
        .arg("--quiet")
        .arg("--target=wasm32-wasip2")
        .arg("--manifest-path")
        .arg(manifest)
        .arg("--target-dir")
        .arg(&target_dir);
    if manifest_is_workspace(manifest) {
        command.arg("--workspace");
    }
    for var in SCRUBBED_ENV {
        command.env_remove(var);
    }
    let status = command.status();
    match status {
        Ok(status) if status.success() => {}
        Ok(status) => panic!(
            "building the wasm plugins in {} failed ({status}). If the error above says the \
             wasm32-wasip2 target is missing, run `rustup target add wasm32-wasip2`.",
            manifest.display()
        ),
        Err(e) => panic!("cannot run cargo to build {}: {e}", manifest.display()),
    }
    target_dir.join("wasm32-wasip2").join("release")
}

fn manifest_is_workspace(manifest: &Path) -> bool {
    std::fs::read_to_string(manifest).is_ok_and(|text| text.contains("members"))
}

/// Tells cargo to rerun the build script when a plugin's sources change.
pub fn rerun_if_changed(dirs: &[&Path]) {
    for dir in dirs {
        watch(dir);
    }
}

fn watch(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" {
            continue;
        }
        if path.is_dir() {
            watch(&path);
        } else {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}
