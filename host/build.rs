//! Build steps of the host:
//! - compiles the replication protocol (`proto/replication.proto`) with protox
//!   (a pure-Rust protobuf compiler, so no `protoc` is needed) and tonic;
//! - builds the plugins the `homeward` binary embeds (its built-in defaults:
//!   the SDK's template and the product plugins of `plugins/`) for
//!   wasm32-wasip2, and tells `src/embedded.rs` where they are.

#[path = "build_wasm.rs"]
mod build_wasm;

use std::path::PathBuf;

fn main() {
    compile_protocol();
    let host = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = host.join("..");
    let template = root.join("sdk/template");
    build_wasm::rerun_if_changed(&[&template, &root.join("sdk/src"), &root.join("wit")]);
    println!(
        "cargo:rerun-if-changed={}",
        root.join("sdk/Cargo.toml").display()
    );

    let out = build_wasm::build(&template.join("Cargo.toml"));
    let wasm = out.join("homeward_template.wasm");
    println!("cargo:rustc-env=HOMEWARD_TEMPLATE_WASM={}", wasm.display());

    // The product plugins: one workspace, one build.
    let plugins = root.join("plugins");
    build_wasm::rerun_if_changed(&[&plugins]);
    let out = build_wasm::build(&plugins.join("Cargo.toml"));
    for (var, file) in [
        ("HOMEWARD_PLUGIN_FS_EXT4", "homeward_fs_ext4.wasm"),
        ("HOMEWARD_PLUGIN_FS_XFS", "homeward_fs_xfs.wasm"),
        ("HOMEWARD_PLUGIN_FS_REISERFS", "homeward_fs_reiserfs.wasm"),
        (
            "HOMEWARD_PLUGIN_STATIC_IP_RESET",
            "homeward_static_ip_reset.wasm",
        ),
        (
            "HOMEWARD_PLUGIN_NETWORKMANAGER_RESTORE",
            "homeward_networkmanager_restore.wasm",
        ),
        (
            "HOMEWARD_PLUGIN_LAB_HYPERVISOR",
            "homeward_lab_hypervisor.wasm",
        ),
        ("HOMEWARD_PLUGIN_LAB_CLOUD", "homeward_lab_cloud.wasm"),
        ("HOMEWARD_PLUGIN_VCENTER", "homeward_vcenter.wasm"),
        ("HOMEWARD_PLUGIN_ESXI", "homeward_esxi.wasm"),
        ("HOMEWARD_PLUGIN_AZURE", "homeward_azure.wasm"),
    ] {
        println!("cargo:rustc-env={var}={}", out.join(file).display());
    }
}

fn compile_protocol() {
    let proto = "proto/replication.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = match protox::compile([proto], ["proto"]) {
        Ok(descriptors) => descriptors,
        Err(e) => panic!("{proto} does not compile: {e}"),
    };
    // Block payloads as `bytes::Bytes`: decoding slices the received buffer
    // instead of copying each megabyte once more.
    let builder =
        tonic_prost_build::configure().bytes(".homeward.replication.v1.BlockMessage.payload");
    if let Err(e) = builder.compile_fds(descriptors) {
        panic!("generating gRPC code from {proto} failed: {e}");
    }
}
