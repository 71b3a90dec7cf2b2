//! New plugin crates from templates: what `homeward plugin new` writes.
//!
//! A vendor starts from a crate that builds, loads and passes the smoke cases
//! of its kind's conformance suite, so the first thing they change is their
//! own logic, not glue. Each kind has one template of `src/lib.rs`
//! (`templates/*.rs.tmpl`, compiled into the binary); the crate around it is
//! the same for every kind:
//!
//! ```text
//!  NAME/Cargo.toml   own [workspace], cdylib, small release profile, homeward-sdk by path
//!  NAME/Cargo.lock   the SDK template's lock: the versions the SDK is built with, offline-friendly
//!  NAME/src/lib.rs   the kind's Guest implementation, exported with the SDK's macro
//!  NAME/README.md    build, inspect, test
//!  NAME/.gitignore
//! ```
//!
//! Templates use `{{name}}` placeholders, replaced by [`render`]; ids are
//! checked first, so nothing put into a template can break out of the
//! Rust or TOML string it lands in.

use crate::plugin::PluginKind;
use crate::plugin::manifest::valid_id;
use std::path::{Path, PathBuf};

const CARGO_TOML: &str = include_str!("templates/Cargo.toml.tmpl");
const README: &str = include_str!("templates/README.md.tmpl");
const GITIGNORE: &str = include_str!("templates/gitignore.tmpl");
const HYPERVISOR_ADAPTER: &str = include_str!("templates/hypervisor_adapter.rs.tmpl");
const CLOUD_ADAPTER: &str = include_str!("templates/cloud_adapter.rs.tmpl");
const FILESYSTEM_HANDLER: &str = include_str!("templates/filesystem_handler.rs.tmpl");
const GUEST_STEP: &str = include_str!("templates/guest_step.rs.tmpl");
/// The SDK template's lock file: the dependency versions the SDK is built
/// and tested with, so a new crate builds with what is already downloaded.
const SDK_TEMPLATE_LOCK: &str = include_str!("../../../sdk/template/Cargo.lock");
/// The name of the SDK template's own package in that lock file.
const SDK_TEMPLATE_PACKAGE: &str = "homeward-template";

/// The SDK next to the sources this binary was built from.
pub const SOURCE_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk");

/// What to create.
#[derive(Debug, Clone)]
pub struct NewPlugin {
    /// The plugin's kind.
    pub kind: PluginKind,
    /// The plugin id, also the crate's directory name.
    pub id: String,
    /// The directory the crate's directory is created in.
    pub parent: PathBuf,
    /// The SDK to depend on; `None` means [`SOURCE_SDK`] when it exists.
    pub sdk: Option<PathBuf>,
}

/// What was created.
#[derive(Debug, Clone)]
pub struct Created {
    /// The crate's directory.
    pub dir: PathBuf,
    /// Its files, relative to `dir`, in the order written.
    pub files: Vec<PathBuf>,
    /// The Cargo package name.
    pub crate_name: String,
    /// The component the release build produces, relative to `dir`.
    pub wasm: PathBuf,
    /// The SDK the crate depends on (absolute).
    pub sdk: PathBuf,
}

/// Why a crate could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name is not a plugin id.
    #[error(
        "`{0}` is not a valid plugin id: use 1 to 63 characters from a-z, 0-9 and `-`, \
         starting with a letter or digit (e.g. `vcenter` or `fs-btrfs`)"
    )]
    InvalidId(String),
    /// The target directory already holds something.
    #[error(
        "{0} already exists and is not empty: choose another name or --dir, or remove it first"
    )]
    Exists(PathBuf),
    /// No SDK was given and none is next to the sources.
    #[error(
        "no Homeward SDK found at {0} (where this binary was built from): pass --sdk PATH \
         with the `sdk` directory of a Homeward checkout"
    )]
    NoSdk(PathBuf),
    /// The given SDK is not one.
    #[error("--sdk {path}: {reason}")]
    BadSdk {
        /// The path given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// The Cargo package name for plugin `id`: the id itself, unless Cargo or
/// Rust would refuse it (a leading digit, a keyword, a name of the standard
/// library or of a target directory), then `plugin-<id>`.
pub fn crate_name(id: &str) -> String {
    #[rustfmt::skip]
    const RESERVED: &[&str] = &[
        "alloc", "async", "await", "build", "core", "crate", "deps", "dyn", "examples", "extern",
        "fn", "for", "if", "impl", "in", "incremental", "let", "loop", "match", "mod", "move",
        "mut", "proc-macro", "pub", "ref", "return", "self", "static", "std", "struct", "super",
        "test", "trait", "type", "unsafe", "use", "where", "while", "abstract", "become", "box",
        "do", "final", "gen", "macro", "override", "priv", "try", "typeof", "unsized", "virtual",
        "yield", "as", "break", "const", "continue", "else", "enum", "false", "true",
    ];
    let leading_digit = id.starts_with(|c: char| c.is_ascii_digit());
    if leading_digit || RESERVED.contains(&id) {
        format!("plugin-{id}")
    } else {
        id.to_string()
    }
}

/// Creates the crate and returns what was written.
pub fn create(request: &NewPlugin) -> Result<Created, ScaffoldError> {
    if !valid_id(&request.id) {
        return Err(ScaffoldError::InvalidId(request.id.clone()));
    }
    let sdk = locate_sdk(request.sdk.as_deref())?;
    let dir = request.parent.join(&request.id);
    refuse_non_empty(&dir)?;

    let crate_name = crate_name(&request.id);
    let wasm_file = format!("{}.wasm", crate_name.replace('-', "_"));
    let kind = request.kind.world();
    let sdk_path = toml::Value::String(sdk.display().to_string()).to_string();
    // Replaced in this order: the README's kind notes first, since they
    // hold placeholders of their own.
    let vars: &[(&str, &str)] = &[
        ("kind_notes", kind_notes(request.kind)),
        ("config_keys", config_keys(request.kind)),
        ("what", what_goes_in(request.kind)),
        ("id", &request.id),
        ("crate", &crate_name),
        ("kind", kind),
        ("wasm_file", &wasm_file),
        ("sdk_path", &sdk_path),
    ];
    let lib = match request.kind {
        PluginKind::HypervisorAdapter => HYPERVISOR_ADAPTER,
        PluginKind::CloudAdapter => CLOUD_ADAPTER,
        PluginKind::FilesystemHandler => FILESYSTEM_HANDLER,
        PluginKind::GuestStep => GUEST_STEP,
    };
    let files: [(&str, String); 5] = [
        ("Cargo.toml", render(CARGO_TOML, vars)),
        ("Cargo.lock", lock_file(&crate_name)),
        ("src/lib.rs", render(lib, vars)),
        ("README.md", render(README, vars)),
        (".gitignore", GITIGNORE.to_string()),
    ];

    let mut written = Vec::new();
    for (name, text) in &files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| ScaffoldError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(&path, text).map_err(|source| ScaffoldError::Io {
            path: path.clone(),
            source,
        })?;
        written.push(PathBuf::from(name));
    }
    Ok(Created {
        dir,
        files: written,
        crate_name,
        wasm: Path::new("target/wasm32-wasip2/release").join(wasm_file),
        sdk,
    })
}

/// Replaces each `{{name}}` of `vars` in `template`, in the order of `vars`.
pub fn render(template: &str, vars: &[(&str, &str)]) -> String {
    vars.iter()
        .fold(template.to_string(), |text, (name, value)| {
            text.replace(&format!("{{{{{name}}}}}"), value)
        })
}

/// The SDK to depend on, absolute, checked to be the `homeward-sdk` crate.
fn locate_sdk(given: Option<&Path>) -> Result<PathBuf, ScaffoldError> {
    let Some(path) = given else {
        let source = Path::new(SOURCE_SDK);
        return match check_sdk(source) {
            Ok(sdk) => Ok(sdk),
            Err(_) => Err(ScaffoldError::NoSdk(source.to_path_buf())),
        };
    };
    check_sdk(path).map_err(|reason| ScaffoldError::BadSdk {
        path: path.to_path_buf(),
        reason,
    })
}

/// `path` made absolute, when it holds the `homeward-sdk` package.
fn check_sdk(path: &Path) -> Result<PathBuf, String> {
    let absolute = path
        .canonicalize()
        .map_err(|e| format!("cannot open it: {e}"))?;
    let manifest = absolute.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .map_err(|e| format!("cannot read {}: {e}", manifest.display()))?;
    let parsed: toml::Table = text
        .parse()
        .map_err(|e| format!("{} is not valid TOML: {e}", manifest.display()))?;
    let name = parsed
        .get("package")
        .and_then(|package| package.get("name"))
        .and_then(|name| name.as_str());
    if name != Some("homeward-sdk") {
        return Err(format!(
            "{} is not the homeward-sdk package: give the `sdk` directory of a Homeward checkout",
            manifest.display()
        ));
    }
    Ok(absolute)
}

fn refuse_non_empty(dir: &Path) -> Result<(), ScaffoldError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => match entries.next() {
            None => Ok(()),
            Some(_) => Err(ScaffoldError::Exists(dir.to_path_buf())),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        // A file of that name, or a directory we cannot read: not ours to use.
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            Err(ScaffoldError::Exists(dir.to_path_buf()))
        }
        Err(source) => Err(ScaffoldError::Io {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// The SDK template's lock with the root package renamed to `crate_name`.
fn lock_file(crate_name: &str) -> String {
    SDK_TEMPLATE_LOCK.replace(
        &format!("name = \"{SDK_TEMPLATE_PACKAGE}\""),
        &format!("name = \"{crate_name}\""),
    )
}

/// What the vendor writes, for the crate's README.
fn what_goes_in(kind: PluginKind) -> &'static str {
    match kind {
        PluginKind::HypervisorAdapter => "calls to the hypervisor's API",
        PluginKind::CloudAdapter => "calls to the cloud's API",
        PluginKind::FilesystemHandler => "file-system parser",
        PluginKind::GuestStep => "step's logic",
    }
}

/// The kind-specific part of the crate's README.
fn kind_notes(kind: PluginKind) -> &'static str {
    match kind {
        PluginKind::HypervisorAdapter | PluginKind::CloudAdapter => ADAPTER_NOTES,
        PluginKind::FilesystemHandler => FILESYSTEM_NOTES,
        PluginKind::GuestStep => GUEST_STEP_NOTES,
    }
}

const ADAPTER_NOTES: &str = r#"
Without `--target`, the adapter suite runs against a lab made for the run.
To certify against a real endpoint, give it with `--target` and put the
grants, configuration and secrets in a plugin-set file given with `--config`
(secrets come from the environment or a file, never from the command line):

```toml
# conformance.toml
[plugins.{{id}}]
path = "target/wasm32-wasip2/release/{{wasm_file}}"

[plugins.{{id}}.grants]
network = ["endpoint.example.com:443"]

[plugins.{{id}}.config]
url = "https://endpoint.example.com/"
{{config_keys}}
```

```sh
homeward --config conformance.toml plugin test \
    target/wasm32-wasip2/release/{{wasm_file}} --target https://endpoint.example.com/ --junit report.xml
```
"#;

/// The credentials part of the adapter notes' plugin-set example.
fn config_keys(kind: PluginKind) -> &'static str {
    match kind {
        PluginKind::HypervisorAdapter => {
            "user = \"homeward@example.com\"\n\n[plugins.{{id}}.secrets]\npassword = { env = \"ENDPOINT_PASSWORD\" }"
        }
        PluginKind::CloudAdapter => {
            "client-id = \"00000000-0000-0000-0000-000000000000\"\n\n[plugins.{{id}}.secrets]\nclient-secret = { env = \"CLIENT_SECRET\" }"
        }
        PluginKind::FilesystemHandler | PluginKind::GuestStep => "",
    }
}

const FILESYSTEM_NOTES: &str = r#"
The file-system suite runs on images made by the real `mkfs` tools when they
are installed, and on small images shipped with the suite otherwise
(`--images shipped` forces those). Cases that write skip until the manifest
asks for `disk_write: true`.

`cargo test` runs the parser natively (`homeward_sdk::fs::MemDevice`,
`FileDevice`), at native speed and without the sandbox.
"#;

const GUEST_STEP_NOTES: &str = r#"
The guest-step suite plans fixture guests (RHEL, Debian, Ubuntu, SLES, an
empty root, a damaged one), applies each plan and plans again: the second
plan must be empty.

`cargo test` runs the step natively on directories (`homeward_sdk::guest::DirGuest`).
"#;
