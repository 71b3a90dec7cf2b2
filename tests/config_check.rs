//! `homeward config check`, `plugin list` and `plugin inspect`, run in-process
//! on real files.

use homeward_tests::{homeward, sandbox_probe_path, template_wasm, write_file};

/// Every line of `output` that starts with `file:line:`.
fn lines_reported(output: &str, file: &str) -> Vec<usize> {
    output
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{file}:")))
        .filter_map(|rest| rest.split(':').next()?.parse().ok())
        .collect()
}

#[test]
fn config_check_lists_every_problem_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("template.wasm"), template_wasm()).unwrap();
    let config = write_file(
        dir.path(),
        "homeward.toml",
        r#"[runtime]
memory-limit-mb = 256
call-timeout-ms = 0

[plugins.template]
path = "template.wasm"
sha256 = "abc123"
version = "not a version"

[plugins.template.grants]
network = ["vc.lab", "https://x:443"]
dirs = [{ host = "/srv", guest = "relative" }]

[plugins.Bad_Id]
path = "missing.wasm"
"#,
    );
    let (ok, out) = homeward(&["--config", config.to_str().unwrap(), "config", "check"]);
    assert!(!ok, "a broken file must fail the check:\n{out}");
    assert_eq!(
        lines_reported(&out, "homeward.toml"),
        [2, 3, 7, 8, 11, 11, 12, 14],
        "{out}"
    );
    for expected in [
        "homeward.toml:2:1: error: runtime.memory-limit-mb: unknown key",
        "did you mean `memory-limit-mib`?",
        "runtime.call-timeout-ms: must be between",
        "plugins.template.sha256: expected 64 hex digits, found 6",
        "plugins.template.version: invalid version requirement `not a version`",
        "plugins.template.grants.network[0]: missing port",
        "plugins.template.grants.network[1]: scheme not allowed",
        "plugins.template.grants.dirs[0].guest: guest path must be absolute",
        "homeward.toml:14:10: error: plugins.Bad_Id: invalid plugin id",
        "homeward.toml: 8 error(s), 0 warning(s)",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
}

#[test]
fn config_check_verifies_files_digests_versions_and_secrets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("template.wasm"), template_wasm()).unwrap();
    let config = write_file(
        dir.path(),
        "plugins.toml",
        r#"[plugins.template]
path = "template.wasm"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"

[plugins.other]
path = "missing.wasm"
"#,
    );
    let (ok, out) = homeward(&["--config", config.to_str().unwrap(), "config", "check"]);
    assert!(!ok);
    assert!(
        out.contains("plugins.toml:3:10: error: plugins.template.sha256: digest mismatch"),
        "{out}"
    );
    assert!(
        out.contains("plugins.toml:6:8: error: plugins.other.path: cannot read plugin file"),
        "{out}"
    );

    // Files are fine: now the plugin itself is checked (version) and so are secrets.
    let config = write_file(
        dir.path(),
        "plugins.toml",
        r#"[plugins.template]
path = "template.wasm"
version = "^2"

[plugins.template.secrets]
token = { env = "HOMEWARD_TEST_SURELY_UNSET_VARIABLE" }
"#,
    );
    let (ok, out) = homeward(&["--config", config.to_str().unwrap(), "config", "check"]);
    assert!(!ok);
    assert!(out.contains("plugins.template.secrets.token: environment variable `HOMEWARD_TEST_SURELY_UNSET_VARIABLE` is not set"), "{out}");
    assert!(
        out.contains("version 0.1.0, which does not satisfy the plugin set's requirement `^2`"),
        "{out}"
    );
}

#[test]
fn a_good_plugin_set_checks_clean_and_lists_its_grants() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("template.wasm"), template_wasm()).unwrap();
    std::fs::copy(sandbox_probe_path(), dir.path().join("probe.wasm")).unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let secret_file = write_file(dir.path(), "token", "s3cr3t-value\n");
    let config = write_file(
        dir.path(),
        "homeward.toml",
        &format!(
            r#"[plugins.template]
path = "template.wasm"
version = "^0.1"

[plugins.sandbox-probe]
path = "probe.wasm"
memory-limit-mib = 32

[plugins.sandbox-probe.grants]
network = ["vc.lab:443"]
dirs = [{{ host = "data", guest = "/data" }}]

[plugins.sandbox-probe.secrets]
token = {{ file = "{}" }}
"#,
            secret_file.display()
        ),
    );
    let cfg = config.to_str().unwrap();
    let (ok, out) = homeward(&["--config", cfg, "config", "check"]);
    assert!(ok, "{out}");
    assert!(out.contains("0 error(s), 0 warning(s)"), "{out}");

    let (ok, out) = homeward(&["--config", cfg, "plugin", "list"]);
    assert!(ok, "{out}");
    let probe_line = out
        .lines()
        .find(|l| l.starts_with("sandbox-probe"))
        .unwrap_or_default();
    assert!(
        probe_line.contains("guest-step") && probe_line.contains(" ok "),
        "{out}"
    );
    assert!(
        probe_line.contains("net vc.lab:443") && probe_line.contains("dir /data="),
        "{out}"
    );
    assert!(
        !out.contains("s3cr3t"),
        "a secret leaked into the listing:\n{out}"
    );
}

#[test]
fn inspect_shows_manifest_exports_and_the_api_verdict() {
    let (ok, out) = homeward(&["plugin", "inspect", sandbox_probe_path().to_str().unwrap()]);
    assert!(ok, "{out}");
    for expected in [
        "id:          sandbox-probe",
        "kind:        guest-step",
        "this host serves 0.1.2: compatible",
        "network:   *:*",
        "files:     read-only",
        "homeward:plugin/post-step@0.1.2",
        "homeward:plugin/guest-fs@0.1.2",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
    let (ok, out) = homeward(&["plugin", "inspect", "/nonexistent/plugin.wasm"]);
    assert!(!ok);
    assert!(
        out.contains("cannot read /nonexistent/plugin.wasm"),
        "{out}"
    );
}

#[test]
fn the_demo_runs_on_embedded_defaults() {
    // No plugin-set file: the whole failback cycle runs on the embedded
    // lab adapters, handlers and guest steps.
    let (ok, out) = homeward(&["demo"]);
    assert!(ok, "{out}");
    for expected in [
        "[6/6] commit and reprotect to the cloud",
        "guest-steps",
        "holds the data written in the cloud: yes",
        "eth0 static again (10.10.0.21) and under NetworkManager",
        "data disk equal on both sides",
        "demo passed",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
}
