//! `homeward plugin new`: a scaffold of every kind builds for wasm32-wasip2
//! offline and passes its kind's smoke cases; bad names, occupied
//! directories and wrong SDK paths are refused with messages that say what
//! to do.
//!
//! The command runs in-process through `homeward::cli::run`, the function the
//! binary's `main` calls (the binary belongs to the `homeward` package, so
//! this package's tests have no `CARGO_BIN_EXE_homeward`).

use homeward_tests::homeward_exit;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const KINDS: [&str; 4] = [
    "hypervisor-adapter",
    "cloud-adapter",
    "filesystem-handler",
    "guest-step",
];

/// The nested-build helpers of the host's build script: the scaffold is
/// built with the same environment scrubbing as the embedded plugins.
#[path = "../host/build_wasm.rs"]
#[allow(dead_code)]
mod build_wasm;
use build_wasm::SCRUBBED_ENV;

/// `cargo ARGS` in `dir`, offline, with the shared target directory.
fn cargo(dir: &Path, target_dir: &Path, args: &[&str]) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(args)
        .arg("--offline")
        .arg("--quiet")
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir);
    for var in SCRUBBED_ENV.iter().filter(|v| **v != "CARGO_TARGET_DIR") {
        command.env_remove(var);
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "cargo {args:?} in {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("warning"),
        "the scaffold in {} builds with warnings:\n{stderr}",
        dir.display()
    );
}

/// The value of attribute `name` on the first line of `xml` that has it.
fn attribute(xml: &str, name: &str) -> Option<u64> {
    let start = xml.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = start + xml[start..].find('"')?;
    xml[start..end].parse().ok()
}

fn new_plugin(kind: &str, name: &str, dir: &Path) -> (ExitCode, String) {
    // `--` so that a name starting with `-` reaches the id check.
    homeward_exit(&[
        "plugin",
        "new",
        "--kind",
        kind,
        "--dir",
        dir.to_str().unwrap(),
        "--",
        name,
    ])
}

#[test]
fn every_kind_builds_offline_and_passes_its_smoke_cases() {
    let tmp = tempfile::tempdir().unwrap();
    // One target directory for the four crates: the SDK and its dependencies
    // compile once.
    let target_dir = tmp.path().join("target");
    for kind in KINDS {
        let name = format!("acme-{kind}");
        let (code, out) = new_plugin(kind, &name, tmp.path());
        assert_eq!(code, ExitCode::SUCCESS, "{out}");
        let crate_dir = tmp.path().join(&name);
        for file in [
            "Cargo.toml",
            "Cargo.lock",
            "src/lib.rs",
            "README.md",
            ".gitignore",
        ] {
            assert!(crate_dir.join(file).is_file(), "{kind}: no {file}");
            assert!(out.contains(file), "{kind}: {file} not listed:\n{out}");
        }
        let wasm_rel = format!(
            "target/wasm32-wasip2/release/{}.wasm",
            name.replace('-', "_")
        );
        assert!(
            out.contains("cargo build --release --target wasm32-wasip2")
                && out.contains(&format!("homeward plugin inspect {wasm_rel}"))
                && out.contains(&format!(
                    "homeward plugin test {wasm_rel} --junit report.xml"
                )),
            "{kind}: the next commands are missing:\n{out}"
        );
        let readme = std::fs::read_to_string(crate_dir.join("README.md")).unwrap();
        assert!(
            readme.contains("cargo build --release --target wasm32-wasip2")
                && readme.contains(&format!(
                    "homeward plugin test {wasm_rel} --junit report.xml"
                )),
            "{kind}: README lacks the build and test commands:\n{readme}"
        );
        assert!(
            !readme.contains("{{"),
            "{kind}: unreplaced placeholder in README:\n{readme}"
        );
        let lib = std::fs::read_to_string(crate_dir.join("src/lib.rs")).unwrap();
        assert!(
            !lib.contains("{{"),
            "{kind}: unreplaced placeholder in src/lib.rs"
        );

        cargo(
            &crate_dir,
            &target_dir,
            &["build", "--release", "--target", "wasm32-wasip2"],
        );
        let wasm = target_dir
            .join("wasm32-wasip2/release")
            .join(format!("{}.wasm", name.replace('-', "_")));
        assert!(wasm.is_file(), "{kind}: no {}", wasm.display());

        let (code, out) = homeward_exit(&["plugin", "inspect", wasm.to_str().unwrap()]);
        assert_eq!(code, ExitCode::SUCCESS, "{out}");
        assert!(
            out.contains(&format!("id:          {name}"))
                && out.contains(&format!("kind:        {kind}"))
                && out.contains("compatible"),
            "{kind}: inspect does not show the scaffold's manifest:\n{out}"
        );

        let junit = tmp.path().join(format!("{name}.xml"));
        let (code, out) = homeward_exit(&[
            "plugin",
            "test",
            "--smoke",
            "--junit",
            junit.to_str().unwrap(),
            wasm.to_str().unwrap(),
        ]);
        assert_eq!(
            code,
            ExitCode::SUCCESS,
            "{kind}: smoke cases failed:\n{out}"
        );
        let xml = std::fs::read_to_string(&junit).unwrap();
        assert_eq!(attribute(&xml, "failures"), Some(0), "{kind}:\n{xml}");
        assert_eq!(attribute(&xml, "errors"), Some(0), "{kind}:\n{xml}");
        // At least the four cases every plugin gets ran.
        assert!(
            attribute(&xml, "tests").is_some_and(|n| n >= 4),
            "{kind}: too few cases:\n{xml}"
        );
        assert!(xml.contains("plugin/ping-payload"), "{kind}:\n{xml}");
    }

    // The unit tests two of the scaffolds ship pass natively. In release mode
    // they reuse the proc macros the wasm builds compiled (same profile, same
    // host), which keeps this part to seconds.
    for kind in ["filesystem-handler", "guest-step"] {
        cargo(
            &tmp.path().join(format!("acme-{kind}")),
            &target_dir,
            &["test", "--release"],
        );
    }
}

#[test]
fn invalid_names_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let too_long = "a".repeat(64);
    for name in [
        "Vcenter",
        "fs_btrfs",
        "-lead",
        "",
        "my.plugin",
        "ümlaut",
        &too_long,
    ] {
        let (code, out) = new_plugin("guest-step", name, tmp.path());
        assert_eq!(code, ExitCode::FAILURE, "`{name}` was accepted:\n{out}");
        assert!(
            out.contains(&format!("`{name}` is not a valid plugin id"))
                && out.contains("a-z, 0-9 and `-`"),
            "`{name}`: the refusal does not say what a valid id is:\n{out}"
        );
    }
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "a refused name left files behind"
    );
    // The longest valid id is accepted.
    let longest = "a".repeat(63);
    let (code, out) = new_plugin("guest-step", &longest, tmp.path());
    assert_eq!(code, ExitCode::SUCCESS, "{out}");
}

#[test]
fn an_unknown_kind_is_refused_with_the_kinds() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, out) = new_plugin("storage-array", "acme", tmp.path());
    assert_eq!(code, ExitCode::FAILURE, "{out}");
    for kind in KINDS {
        assert!(
            out.contains(kind),
            "the refusal does not list `{kind}`:\n{out}"
        );
    }
}

#[test]
fn an_existing_directory_is_refused_and_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("acme");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    let (code, out) = new_plugin("cloud-adapter", "acme", tmp.path());
    assert_eq!(code, ExitCode::FAILURE, "{out}");
    assert!(
        out.contains("already exists and is not empty") && out.contains("acme"),
        "the refusal does not say why:\n{out}"
    );
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["notes.txt"], "the existing directory was changed");
    assert_eq!(
        std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
        "mine"
    );

    // A file of that name is refused too.
    std::fs::write(tmp.path().join("plain"), "x").unwrap();
    let (code, out) = new_plugin("cloud-adapter", "plain", tmp.path());
    assert_eq!(code, ExitCode::FAILURE, "{out}");
    assert!(out.contains("already exists"), "{out}");

    // An empty directory is used.
    std::fs::create_dir(tmp.path().join("empty")).unwrap();
    let (code, out) = new_plugin("cloud-adapter", "empty", tmp.path());
    assert_eq!(code, ExitCode::SUCCESS, "{out}");
    assert!(tmp.path().join("empty/src/lib.rs").is_file());
}

#[test]
fn the_sdk_path_is_checked_and_written_absolute() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap();

    let (code, out) = homeward_exit(&[
        "plugin",
        "new",
        "--kind",
        "guest-step",
        "a",
        "--dir",
        dir,
        "--sdk",
        dir,
    ]);
    assert_eq!(code, ExitCode::FAILURE, "{out}");
    assert!(out.contains("--sdk") && out.contains("Cargo.toml"), "{out}");

    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("Cargo.toml"), "[package]\nname = \"other\"\n").unwrap();
    let (code, out) = homeward_exit(&[
        "plugin",
        "new",
        "--kind",
        "guest-step",
        "b",
        "--dir",
        dir,
        "--sdk",
        other.to_str().unwrap(),
    ]);
    assert_eq!(code, ExitCode::FAILURE, "{out}");
    assert!(out.contains("is not the homeward-sdk package"), "{out}");
    assert!(!tmp.path().join("a").exists() && !tmp.path().join("b").exists());

    // A relative --sdk is written as an absolute path, so the crate builds
    // from its own directory.
    let sdk = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sdk");
    let relative = pathdiff(&sdk, &std::env::current_dir().unwrap());
    let (code, out) = homeward_exit(&[
        "plugin",
        "new",
        "--kind",
        "guest-step",
        "7zip-notice",
        "--dir",
        dir,
        "--sdk",
        relative.to_str().unwrap(),
    ]);
    assert_eq!(code, ExitCode::SUCCESS, "{out}");
    let manifest = std::fs::read_to_string(tmp.path().join("7zip-notice/Cargo.toml")).unwrap();
    let canonical = sdk.canonicalize().unwrap();
    assert!(
        manifest.contains(&format!("path = \"{}\"", canonical.display())),
        "{manifest}"
    );
    // Cargo refuses package names that start with a digit.
    assert!(
        manifest.contains("name = \"plugin-7zip-notice\""),
        "{manifest}"
    );
    let lock = std::fs::read_to_string(tmp.path().join("7zip-notice/Cargo.lock")).unwrap();
    assert!(lock.contains("name = \"plugin-7zip-notice\"") && !lock.contains("homeward-template"));
}

/// `path` relative to `base` (both absolute).
fn pathdiff(path: &Path, base: &Path) -> PathBuf {
    let path: Vec<_> = path.components().collect();
    let base: Vec<_> = base.components().collect();
    let common = path.iter().zip(&base).take_while(|(a, b)| a == b).count();
    let mut relative = PathBuf::new();
    for _ in common..base.len() {
        relative.push("..");
    }
    for part in &path[common..] {
        relative.push(part);
    }
    relative
}
