//! Builds the plugins the `homeward` binary embeds (its built-in defaults) for
//! wasm32-wasip2, and tells `src/embedded.rs` where they are.

#[path = "build_wasm.rs"]
mod build_wasm;

use std::path::PathBuf;

fn main() {
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
}
