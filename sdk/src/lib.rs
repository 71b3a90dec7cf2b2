//! # homeward-sdk: write a Homeward plugin
//!
//! A Homeward plugin is a WebAssembly component built for `wasm32-wasip2` that
//! targets one world of the WIT package `homeward:plugin@0.1.2` (in `wit/v0.1/`
//! of the Homeward repository):
//!
//! | kind | world | module here | you implement |
//! |---|---|---|---|
//! | hypervisor adapter | `hypervisor-adapter` | [`hypervisor_adapter`] | `exports::homeward::plugin::hypervisor::Guest` and `exports::homeward::plugin::hypervisor_snapshots::Guest` |
//! | cloud adapter | `cloud-adapter` | [`cloud_adapter`] | `exports::homeward::plugin::cloud::Guest` and `exports::homeward::plugin::cloud_restore_points::Guest` |
//! | file-system handler | `filesystem-handler` | [`filesystem_handler`] | `exports::homeward::plugin::filesystem::Guest` |
//! | guest post-step | `guest-step` | [`guest_step`] | `exports::homeward::plugin::post_step::Guest` |
//!
//! The [`plugin!`] macro exports your type for its world, implements the
//! `ping` probes every world exports, and writes the plugin's *manifest*
//! (id, version, kind, API version, requested capabilities) into a custom section
//! of the component, where the host reads it before running any of your code.
//!
//! ```ignore
//! use homeward_sdk::guest_step::exports::homeward::plugin::post_step::{Guest, StepContext, StepPlan};
//! use homeward_sdk::guest_fs::GuestFs;
//! use homeward_sdk::Error;
//!
//! struct Motd;
//!
//! impl Guest for Motd {
//!     fn plan(root: &GuestFs, ctx: StepContext) -> Result<StepPlan, Error> { todo!() }
//! }
//!
//! homeward_sdk::plugin! {
//!     id: "motd",
//!     kind: guest_step,
//!     component: Motd,
//! }
//! ```
//!
//! Beyond the bindings, the SDK has small tools most plugins need:
//! [`Error`] constructors ([`errors`]), a bounds-checked byte reader for on-disk
//! formats ([`bytes`]), the parts every file-system handler needs ([`fs`]:
//! a device trait, path resolution confined to the guest root, CRC-32C, and
//! the [`filesystem_plugin!`] export macro), the parts every guest step needs
//! ([`guest`]: distribution and network-system detection, `KEY=value` files,
//! a plan builder that makes re-runs empty), a logger ([`log`]), the operator's configuration
//! ([`config`]) and HTTP and SOAP over `wasi:http` ([`http`], [`soap`]).
//!
//! The sandbox: a plugin gets nothing it did not ask for in its manifest *and*
//! the operator did not grant in the plugin-set file. No environment variables,
//! no sockets; files only in granted directories; HTTP only to granted
//! `host:port` pairs. See `sdk/README.md` for the guide and the versioning rules.
//!
//! ## From nothing to certified
//!
//! ```text
//! homeward plugin new --kind guest-step acme-motd     # a crate that builds and passes the smoke cases
//! cd acme-motd && cargo build --release --target wasm32-wasip2
//! homeward plugin inspect target/wasm32-wasip2/release/acme_motd.wasm
//! homeward plugin test target/wasm32-wasip2/release/acme_motd.wasm --junit report.xml
//! ```
//!
//! `--kind` is `hypervisor-adapter`, `cloud-adapter`, `filesystem-handler` or
//! `guest-step`. `plugin test` runs the conformance suite of the plugin's kind
//! and reports each case as PASS, FAIL or SKIP with its fuel and peak memory;
//! adapters are tested against a real endpoint with `--target URL` and
//! `--config` (a plugin-set file with the grants and secrets).
//!
//! ## Compatibility
//!
//! The manifest records [`API_VERSION`]. A host serving `0.1.y` loads a plugin
//! built for `0.1.x` when `x <= y`: within the 0.1 line the WIT only gains
//! functions and types, records never gain fields (they carry `properties`),
//! and a 0.2 host keeps serving 0.1 plugins through its 0.1 bindings.

pub mod bytes;
pub mod errors;
pub mod fs;
pub mod guest;
pub mod http;
pub mod manifest;
pub mod soap;

/// The version of the WIT API (`homeward:plugin`) these bindings implement.
/// The host refuses a plugin whose API version is not compatible with its own.
pub const API_VERSION: &str = "0.1.2";

/// Bindings of every interface the host provides (`host-imports` world), shared
/// by the per-kind modules below so that `Error`, `Vm`, `Disk`... are one type
/// whatever the kind.
pub mod host {
    wit_bindgen::generate!({
        path: "../wit/v0.1",
        world: "host-imports",
    });
}

pub use host::homeward::plugin::{disk, guest_fs, types};
pub use types::Error;

/// Bindings of the `hypervisor-adapter` world.
pub mod hypervisor_adapter {
    wit_bindgen::generate!({
        path: "../wit/v0.1",
        world: "hypervisor-adapter",
        with: {
            "homeward:plugin/types@0.1.2": crate::host::homeward::plugin::types,
            "homeward:plugin/log@0.1.2": crate::host::homeward::plugin::log,
            "homeward:plugin/config@0.1.2": crate::host::homeward::plugin::config,
        },
        pub_export_macro: true,
        export_macro_name: "export_hypervisor_adapter",
        default_bindings_module: "homeward_sdk::hypervisor_adapter",
    });
}

/// Bindings of the `cloud-adapter` world.
pub mod cloud_adapter {
    wit_bindgen::generate!({
        path: "../wit/v0.1",
        world: "cloud-adapter",
        with: {
            "homeward:plugin/types@0.1.2": crate::host::homeward::plugin::types,
            "homeward:plugin/log@0.1.2": crate::host::homeward::plugin::log,
            "homeward:plugin/config@0.1.2": crate::host::homeward::plugin::config,
        },
        pub_export_macro: true,
        export_macro_name: "export_cloud_adapter",
        default_bindings_module: "homeward_sdk::cloud_adapter",
    });
}

/// Bindings of the `filesystem-handler` world.
pub mod filesystem_handler {
    wit_bindgen::generate!({
        path: "../wit/v0.1",
        world: "filesystem-handler",
        with: {
            "homeward:plugin/types@0.1.2": crate::host::homeward::plugin::types,
            "homeward:plugin/log@0.1.2": crate::host::homeward::plugin::log,
            "homeward:plugin/config@0.1.2": crate::host::homeward::plugin::config,
            "homeward:plugin/disk@0.1.2": crate::host::homeward::plugin::disk,
        },
        pub_export_macro: true,
        export_macro_name: "export_filesystem_handler",
        default_bindings_module: "homeward_sdk::filesystem_handler",
    });
}

/// Bindings of the `guest-step` world.
pub mod guest_step {
    wit_bindgen::generate!({
        path: "../wit/v0.1",
        world: "guest-step",
        with: {
            "homeward:plugin/types@0.1.2": crate::host::homeward::plugin::types,
            "homeward:plugin/log@0.1.2": crate::host::homeward::plugin::log,
            "homeward:plugin/config@0.1.2": crate::host::homeward::plugin::config,
            "homeward:plugin/guest-fs@0.1.2": crate::host::homeward::plugin::guest_fs,
        },
        pub_export_macro: true,
        export_macro_name: "export_guest_step",
        default_bindings_module: "homeward_sdk::guest_step",
    });
}

/// Logging into the host's `tracing`, tagged with the plugin id.
pub mod log {
    pub use crate::host::homeward::plugin::log::{Level, log};

    /// Logs at `info`.
    pub fn info(message: &str) {
        log(Level::Info, message);
    }

    /// Logs at `warn`.
    pub fn warn(message: &str) {
        log(Level::Warn, message);
    }

    /// Logs at `debug`.
    pub fn debug(message: &str) {
        log(Level::Debug, message);
    }
}

/// The operator's configuration of this plugin (`[plugins.<id>.config]` and
/// `[plugins.<id>.secrets]` of the plugin-set file).
pub mod config {
    use crate::Error;
    pub use crate::host::homeward::plugin::config::{entries, get, secret};

    /// A configuration value the plugin cannot work without.
    pub fn require(key: &str) -> Result<String, Error> {
        get(key).ok_or_else(|| {
            Error::InvalidInput(format!(
                "missing configuration key `{key}`: set it in the plugin's [plugins.<id>.config] table"
            ))
        })
    }

    /// A secret the plugin cannot work without. The error names the key, never a value.
    pub fn require_secret(key: &str) -> Result<String, Error> {
        secret(key).ok_or_else(|| {
            Error::InvalidInput(format!(
                "missing secret `{key}`: set it in the plugin's [plugins.<id>.secrets] table"
            ))
        })
    }
}

/// Exports a type as a Homeward plugin of one kind and writes its manifest.
///
/// ```ignore
/// homeward_sdk::plugin! {
///     id: "vcenter",                       // [a-z0-9][a-z0-9-]*, unique in a plugin set
///     kind: hypervisor_adapter,            // hypervisor_adapter | cloud_adapter | filesystem_handler | guest_step
///     component: VCenter,                  // your type implementing the kind's Guest trait
///     network: ["*:443"],                  // optional: host:port patterns you may call ("*" wildcards)
///     files: "read-only",                  // optional: "none" (default) | "read-only" | "read-write"
///     disk_write: false,                   // optional: whether you write through the `disk` resource
/// }
/// ```
///
/// The plugin version in the manifest is the crate's `CARGO_PKG_VERSION`. The host
/// grants a capability only when the manifest asks for it *and* the operator
/// grants it; asking is not getting.
#[macro_export]
macro_rules! plugin {
    (
        id: $id:literal,
        kind: hypervisor_adapter,
        component: $ty:ident
        $(, $key:ident : $value:tt)* $(,)?
    ) => {
        $crate::__plugin_manifest!($id, "hypervisor-adapter" $(, $key : $value)*);
        $crate::__plugin_probes!($ty, hypervisor_adapter);
        $crate::hypervisor_adapter::export_hypervisor_adapter!($ty with_types_in $crate::hypervisor_adapter);
    };
    (
        id: $id:literal,
        kind: cloud_adapter,
        component: $ty:ident
        $(, $key:ident : $value:tt)* $(,)?
    ) => {
        $crate::__plugin_manifest!($id, "cloud-adapter" $(, $key : $value)*);
        $crate::__plugin_probes!($ty, cloud_adapter);
        $crate::cloud_adapter::export_cloud_adapter!($ty with_types_in $crate::cloud_adapter);
    };
    (
        id: $id:literal,
        kind: filesystem_handler,
        component: $ty:ident
        $(, $key:ident : $value:tt)* $(,)?
    ) => {
        $crate::__plugin_manifest!($id, "filesystem-handler" $(, $key : $value)*);
        $crate::__plugin_probes!($ty, filesystem_handler);
        $crate::filesystem_handler::export_filesystem_handler!($ty with_types_in $crate::filesystem_handler);
    };
    (
        id: $id:literal,
        kind: guest_step,
        component: $ty:ident
        $(, $key:ident : $value:tt)* $(,)?
    ) => {
        $crate::__plugin_manifest!($id, "guest-step" $(, $key : $value)*);
        $crate::__plugin_probes!($ty, guest_step);
        $crate::guest_step::export_guest_step!($ty with_types_in $crate::guest_step);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __plugin_probes {
    ($ty:ty, $kind:ident) => {
        impl $crate::$kind::Guest for $ty {
            fn ping() {}

            fn ping_payload(payload: ::std::vec::Vec<u8>) -> u64 {
                payload.len() as u64
            }
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __plugin_manifest {
    ($id:literal, $kind:literal $(, $key:ident : $value:tt)*) => {
        const _: () = {
            const TEXT: &str = concat!(
                "# Homeward plugin manifest (TOML), written by homeward-sdk's plugin! macro.\n",
                "schema = 1\n",
                "id = \"", $id, "\"\n",
                "version = \"", env!("CARGO_PKG_VERSION"), "\"\n",
                "api = \"", "0.1.2", "\"\n",
                "kinds = [\"", $kind, "\"]\n",
                "[capabilities]\n",
                $( $crate::__plugin_capability!($key : $value), )*
            );
            #[cfg(target_arch = "wasm32")]
            #[used]
            #[unsafe(link_section = "homeward-manifest")]
            static MANIFEST: [u8; TEXT.len()] = $crate::manifest::to_bytes(TEXT);
        };
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __plugin_capability {
    (network : [$($pattern:literal),* $(,)?]) => {
        concat!("network = [", $( "\"", $pattern, "\", ", )* "]\n")
    };
    (files : $mode:literal) => {
        concat!("files = \"", $mode, "\"\n")
    };
    (disk_write : $on:literal) => {
        concat!("disk-write = ", stringify!($on), "\n")
    };
}
