//! Build steps of the host:
//! - compiles the replication protocol (`proto/replication.proto`) and the
//!   control API (`proto/control.proto`) with protox (a pure-Rust protobuf
//!   compiler, so no `protoc` is needed) and tonic, and writes the control
//!   API's file descriptor set for server reflection;
//! - builds the plugins the `homeward` binary embeds (its built-in defaults:
//!   the SDK's template and the product plugins of `plugins/`) for
//!   wasm32-wasip2, and tells `src/embedded.rs` where they are.

#[path = "build_wasm.rs"]
mod build_wasm;

use std::path::PathBuf;

fn main() {
    compile_protocol();
    compile_control_api();
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
    // Blob credentials get a hand-written, redacting `Debug` (sync/proto.rs).
    let builder = tonic_prost_build::configure()
        .bytes(".homeward.replication.v1.BlockMessage.payload")
        .skip_debug([
            ".homeward.replication.v1.BlobTarget",
            ".homeward.replication.v1.SharedKey",
        ]);
    if let Err(e) = builder.compile_fds(descriptors) {
        panic!("generating gRPC code from {proto} failed: {e}");
    }
}

/// The control API (`homeward.control.v1`): its gRPC code, and its encoded
/// file descriptor set (`$OUT_DIR/control_descriptor.bin`, with comments) that
/// the reflection service serves.
fn compile_control_api() {
    let proto = "proto/control.proto";
    println!("cargo:rerun-if-changed={proto}");
    let mut compiler = match protox::Compiler::new(["proto"]) {
        Ok(compiler) => compiler,
        Err(e) => panic!("{proto}: {e}"),
    };
    compiler.include_source_info(true).include_imports(true);
    if let Err(e) = compiler.open_file(proto) {
        panic!("{proto} does not compile: {e}");
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let descriptor = out.join("control_descriptor.bin");
    if let Err(e) = std::fs::write(&descriptor, compiler.encode_file_descriptor_set()) {
        panic!("writing {}: {e}", descriptor.display());
    }
    // `homeward discover --json` prints the inventory summary as it came.
    let mut builder = tonic_prost_build::configure();
    for message in [
        "Inventory",
        "InventoryHost",
        "InventoryDatastore",
        "InventoryNetwork",
        "InventoryVm",
    ] {
        builder = builder.type_attribute(
            format!(".homeward.control.v1.{message}"),
            "#[derive(serde::Serialize)]",
        );
    }
    if let Err(e) = builder.compile_fds(compiler.file_descriptor_set()) {
        panic!("generating gRPC code from {proto} failed: {e}");
    }
}
