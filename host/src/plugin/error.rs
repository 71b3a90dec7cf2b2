//! Errors of the plugin runtime. Each one names the plugin, what went wrong, and
//! what the operator (or the vendor) can do about it.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong loading, instantiating or calling a plugin.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The plugin file could not be read.
    #[error("cannot read plugin file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The runtime itself could not be set up (engine, linker).
    #[error("the plugin runtime could not be set up: {reason}")]
    Setup {
        /// What failed.
        reason: String,
    },

    /// The bytes are not WebAssembly at all.
    #[error(
        "{name} is not a WebAssembly file (it does not start with \\0asm): point the plugin set at the .wasm the plugin's build produced"
    )]
    NotWasm {
        /// Where the bytes came from.
        name: String,
    },

    /// The bytes start like WebAssembly but do not parse (truncated, corrupt).
    #[error(
        "{name} is not a valid WebAssembly component ({reason}): the file is truncated or corrupt; rebuild it or copy it again"
    )]
    Malformed {
        /// Where the bytes came from.
        name: String,
        /// What the parser said.
        reason: String,
    },

    /// A core module where a component was expected.
    #[error(
        "{name} is a core WebAssembly module, not a component: build the plugin with `cargo build --release --target wasm32-wasip2`"
    )]
    CoreModule {
        /// Where the bytes came from.
        name: String,
    },

    /// No manifest section.
    #[error(
        "{name} has no Homeward manifest (custom section `homeward-manifest`): export the plugin with `homeward_sdk::plugin!`"
    )]
    NoManifest {
        /// Where the bytes came from.
        name: String,
    },

    /// The manifest is there but wrong.
    #[error("the manifest of {name} is invalid: {reason}")]
    BadManifest {
        /// Where the bytes came from.
        name: String,
        /// What is wrong.
        reason: String,
    },

    /// The plugin was built against an API this host cannot serve.
    #[error(
        "plugin `{plugin}` was built for Homeward plugin API {plugin_api}, but this host provides API {host_api}: {fix}"
    )]
    IncompatibleApi {
        /// Plugin id.
        plugin: String,
        /// The API version in the plugin's manifest.
        plugin_api: semver::Version,
        /// The newest API version this host provides.
        host_api: semver::Version,
        /// What to do.
        fix: &'static str,
    },

    /// The manifest's kind and the component's exports disagree.
    #[error(
        "plugin `{plugin}` declares kind `{declared}` but does not export `{missing}`: {exports}"
    )]
    KindMismatch {
        /// Plugin id.
        plugin: String,
        /// Kind in the manifest.
        declared: String,
        /// The export the kind needs.
        missing: String,
        /// What it does export.
        exports: String,
    },

    /// The plugin's id or version does not match the plugin set's expectation.
    #[error("plugin file {name}: {reason}")]
    Unexpected {
        /// Where the bytes came from.
        name: String,
        /// What did not match.
        reason: String,
    },

    /// Compilation failed.
    #[error("plugin `{plugin}` could not be compiled: {reason}")]
    Compile {
        /// Plugin id.
        plugin: String,
        /// What the compiler said.
        reason: String,
    },

    /// The plugin imports something the host does not provide.
    #[error("plugin `{plugin}` cannot be linked: {reason}")]
    Link {
        /// Plugin id.
        plugin: String,
        /// What the linker said.
        reason: String,
    },

    /// Creating an instance failed (for example the instance pool is full).
    #[error("plugin `{plugin}` could not be instantiated: {reason}")]
    Instantiate {
        /// Plugin id.
        plugin: String,
        /// Why.
        reason: String,
    },

    /// A call ran past its wall-clock deadline and was interrupted.
    #[error(
        "plugin `{plugin}` exceeded its call deadline of {} ms in `{call}` and was stopped; if the work is legitimate, raise `call-timeout-ms` for it in the plugin set",
        limit.as_millis()
    )]
    Deadline {
        /// Plugin id.
        plugin: String,
        /// The export that was running.
        call: &'static str,
        /// The deadline.
        limit: Duration,
    },

    /// A call tried to grow memory past the plugin's cap.
    #[error(
        "plugin `{plugin}` tried to grow its memory to {} MiB in `{call}`, past its limit of {} MiB, and was stopped; if it needs more, raise `memory-limit-mib` for it in the plugin set",
        requested_bytes / (1024 * 1024),
        limit_bytes / (1024 * 1024)
    )]
    MemoryLimit {
        /// Plugin id.
        plugin: String,
        /// The export that was running.
        call: &'static str,
        /// The cap.
        limit_bytes: u64,
        /// The size it asked for.
        requested_bytes: u64,
    },

    /// A call used up its fuel (deterministic instruction budget).
    #[error("plugin `{plugin}` ran out of fuel ({fuel} units) in `{call}` and was stopped")]
    OutOfFuel {
        /// Plugin id.
        plugin: String,
        /// The export that was running.
        call: &'static str,
        /// The budget.
        fuel: u64,
    },

    /// The plugin trapped (a panic, an unreachable, a bad memory access).
    #[error("plugin `{plugin}` crashed in `{call}`: {message}")]
    Trap {
        /// Plugin id.
        plugin: String,
        /// The export that was running.
        call: &'static str,
        /// The trap and backtrace, as wasmtime reports it.
        message: String,
    },

    /// An earlier call trapped; the instance may be inconsistent and is not used again.
    #[error(
        "an earlier call of plugin `{plugin}` was stopped, so this instance is retired: create a new instance"
    )]
    Retired {
        /// Plugin id.
        plugin: String,
    },

    /// The plugin ran and returned an error of the API.
    #[error("plugin `{plugin}` failed in `{call}`: {failure}")]
    Failed {
        /// Plugin id.
        plugin: String,
        /// The export that answered.
        call: &'static str,
        /// What the plugin said.
        failure: Failure,
    },
}

impl PluginError {
    /// Whether the call may succeed if retried later (the plugin said `unavailable`).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            PluginError::Failed {
                failure: Failure::Unavailable { .. },
                ..
            }
        )
    }
}

/// An error a plugin returned through the API, independent of the API version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// Something does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The account lacks privileges.
    #[error("permission denied: {message}{}", missing_list(missing))]
    PermissionDenied {
        /// What was refused.
        message: String,
        /// Missing privileges.
        missing: Vec<String>,
    },
    /// Not supported.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Bad input.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// State conflict.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Retryable.
    #[error("unavailable: {message}")]
    Unavailable {
        /// What was unavailable.
        message: String,
        /// Requested back-off.
        retry_after: Option<Duration>,
    },
    /// A bug or an unexpected answer.
    #[error("internal error: {0}")]
    Internal(String),
}

fn missing_list(missing: &[String]) -> String {
    if missing.is_empty() {
        String::new()
    } else {
        format!(" (missing privileges: {})", missing.join(", "))
    }
}
