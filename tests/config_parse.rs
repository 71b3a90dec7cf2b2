//! Parsing the plugin-set file (`homeward.toml`): the values a valid file
//! yields, every problem of a broken one with its location, and the
//! diagnostics themselves (positions, "did you mean" hints, display form).

use homeward_tests::{config_source, diagnostic_summary};
use std::path::{Path, PathBuf};
use std::time::Duration;

use homeward::config::{
    Diagnostic, DirGrant, Grants, HostPort, PluginEntry, RuntimeSettings, SecretSource, Severity,
    line_col, load, parse,
};

const DIGEST: &str = "2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824";

const VALID: &str = r#"
[runtime]
cache-dir = "cache"
memory-limit-mib = 512
call-timeout-ms = 10000

[plugins.vcenter]
path = "plugins/vcenter.wasm"
sha256 = "2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824"
version = "^0.1"
memory-limit-mib = 128
call-timeout-ms = 5000
fuel = 1000000000

[plugins.vcenter.grants]
network = ["VC.Lab.Example.:443", "localhost:8989", "[::1]:443", "127.0.0.1:8989"]
dirs = [
  { host = "guests", guest = "/guests" },
  { host = "/srv/out", guest = "/out", write = true },
]
disk-write = true

[plugins.vcenter.config]
datacenter = "DC0"
port = 443
verify = false

[plugins.vcenter.secrets]
token = { env = "VC_TOKEN" }
key = { file = "keys/vc.key" }

[plugins.alpha]
path = "/opt/alpha.wasm"
"#;

#[test]
fn valid_file_parses_to_expected_values() {
    let parsed = parse(VALID, &config_source());
    // The only remark is the duplicate network grant (localhost == 127.0.0.1).
    assert_eq!(
        diagnostic_summary(&parsed.diagnostics),
        [(16, Severity::Warning, "plugins.vcenter.grants.network[3]")]
    );
    assert!(parsed.diagnostics[0].message.contains("127.0.0.1:8989"));
    let set = parsed.set.expect("valid file");

    assert_eq!(set.source, config_source());
    assert_eq!(
        set.runtime,
        RuntimeSettings {
            cache_dir: Some(PathBuf::from("/etc/homeward/cache")),
            memory_limit_bytes: 512 * 1024 * 1024,
            call_timeout: Duration::from_millis(10_000),
        }
    );

    // File order, not alphabetical.
    let ids: Vec<&str> = set.plugins.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["vcenter", "alpha"]);

    let vc = &set.plugins[0];
    let mut digest = [0u8; 32];
    hex::decode_to_slice(DIGEST, &mut digest).unwrap();
    let expected = PluginEntry {
        id: "vcenter".into(),
        path: PathBuf::from("/etc/homeward/plugins/vcenter.wasm"),
        sha256: Some(digest),
        version: Some(semver::VersionReq::parse("^0.1").unwrap()),
        memory_limit_bytes: Some(128 * 1024 * 1024),
        call_timeout: Some(Duration::from_millis(5000)),
        fuel: Some(1_000_000_000),
        grants: Grants {
            network: vec![
                HostPort {
                    host: "vc.lab.example".into(),
                    port: 443,
                },
                HostPort {
                    host: "127.0.0.1".into(),
                    port: 8989,
                },
                HostPort {
                    host: "::1".into(),
                    port: 443,
                },
            ],
            dirs: vec![
                DirGrant {
                    host: PathBuf::from("/etc/homeward/guests"),
                    guest: "/guests".into(),
                    write: false,
                },
                DirGrant {
                    host: PathBuf::from("/srv/out"),
                    guest: "/out".into(),
                    write: true,
                },
            ],
            disk_write: true,
            tls: Vec::new(),
        },
        config: [("datacenter", "DC0"), ("port", "443"), ("verify", "false")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        secrets: [
            ("token".to_owned(), SecretSource::Env("VC_TOKEN".into())),
            (
                "key".to_owned(),
                SecretSource::File(PathBuf::from("/etc/homeward/keys/vc.key")),
            ),
        ]
        .into_iter()
        .collect(),
        line: 7,
    };
    assert_eq!(vc, &expected);
    assert_eq!(set.runtime.memory_limit_for(vc), 128 * 1024 * 1024);

    let alpha = &set.plugins[1];
    assert_eq!(alpha.path, PathBuf::from("/opt/alpha.wasm"));
    assert_eq!(alpha.grants, Grants::default());
    assert_eq!(alpha.line, 32);
    assert_eq!(set.runtime.call_timeout_for(alpha), Duration::from_secs(10));
}

#[test]
fn runtime_defaults() {
    let parsed = parse(
        "[plugins.a]\npath = \"a.wasm\"\n",
        Path::new("homeward.toml"),
    );
    let set = parsed.set.unwrap();
    assert!(parsed.diagnostics.is_empty());
    assert_eq!(set.runtime, RuntimeSettings::default());
    assert_eq!(set.runtime.memory_limit_bytes, 256 * 1024 * 1024);
    assert_eq!(set.runtime.call_timeout, Duration::from_secs(30));
    // A bare file name has an empty parent: paths stay relative to the cwd.
    assert_eq!(set.plugins[0].path, PathBuf::from("a.wasm"));
}

const BROKEN: &str = r#"[runtime]
memory-limit-mib = 5000
call-timeot-ms = 100

[plugins.Bad_Id]
path = "x.wasm"
sha256 = "abc123"
version = "not a version"
fuel = 0
memory-limit-mib = "big"

[plugins.web]
path = ""
colour = "blue"

[plugins.web.grants]
network = [
  "example.com",
  "https://example.com:443",
  "ok.example:443",
  "*.example.com:443",
  "OK.example.:443",
]
dirs = [ { guest = "relative" } ]
disk-write = "yes"

[plugins.web.secrets]
password = "hunter2-very-secret"
token = { env = "A", file = "b" }
other = 42

[plugins.web.config]
list = [1, 2]

[plugin.extra]
path = "e.wasm"
"#;

#[test]
fn broken_file_reports_every_problem_with_its_location() {
    let parsed = parse(BROKEN, &config_source());
    assert!(parsed.set.is_none());
    assert!(parsed.has_errors());
    use Severity::{Error as E, Warning as W};
    assert_eq!(
        diagnostic_summary(&parsed.diagnostics),
        [
            (2, E, "runtime.memory-limit-mib"),
            (3, E, "runtime.call-timeot-ms"),
            (5, E, "plugins.Bad_Id"),
            (7, E, "plugins.Bad_Id.sha256"),
            (8, E, "plugins.Bad_Id.version"),
            (9, E, "plugins.Bad_Id.fuel"),
            (10, E, "plugins.Bad_Id.memory-limit-mib"),
            (13, E, "plugins.web.path"),
            (14, E, "plugins.web.colour"),
            (18, E, "plugins.web.grants.network[0]"),
            (19, E, "plugins.web.grants.network[1]"),
            (21, E, "plugins.web.grants.network[3]"),
            (22, W, "plugins.web.grants.network[4]"),
            (24, E, "plugins.web.grants.dirs[0].host"),
            (24, E, "plugins.web.grants.dirs[0].guest"),
            (25, E, "plugins.web.grants.disk-write"),
            (28, W, "plugins.web.secrets.password"),
            (29, E, "plugins.web.secrets.token"),
            (30, E, "plugins.web.secrets.other"),
            (33, E, "plugins.web.config.list"),
            (35, E, "plugin"),
        ]
    );

    let msg = |key: &str| {
        parsed
            .diagnostics
            .iter()
            .find(|d| d.key == key)
            .map(|d| d.message.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        msg("runtime.memory-limit-mib"),
        "must be between 1 and 4096, found 5000"
    );
    assert!(msg("runtime.call-timeot-ms").contains("did you mean `call-timeout-ms`?"));
    assert!(msg("plugin").contains("did you mean `plugins`?"));
    assert_eq!(
        msg("plugins.Bad_Id.sha256"),
        "expected 64 hex digits, found 6"
    );
    assert!(msg("plugins.Bad_Id.version").contains("invalid version requirement"));
    assert_eq!(
        msg("plugins.Bad_Id.fuel"),
        "must be greater than 0, found 0"
    );
    assert_eq!(
        msg("plugins.Bad_Id.memory-limit-mib"),
        "expected an integer, found string"
    );
    assert!(msg("plugins.web.grants.network[0]").starts_with("missing port"));
    assert!(msg("plugins.web.grants.network[1]").starts_with("scheme not allowed"));
    assert!(msg("plugins.web.grants.network[3]").starts_with("wildcards are not allowed"));
    assert!(msg("plugins.web.grants.network[4]").contains("same as [2]"));
    assert!(msg("plugins.web.grants.dirs[0].guest").starts_with("guest path must be absolute"));
    assert!(msg("plugins.web.secrets.password").contains("env"));

    // Display form and columns.
    let sha = parsed
        .diagnostics
        .iter()
        .find(|d| d.key == "plugins.Bad_Id.sha256")
        .unwrap();
    assert_eq!(
        sha.to_string(),
        "homeward.toml:7:10: error: plugins.Bad_Id.sha256: expected 64 hex digits, found 6"
    );

    // The inline secret's value never shows up.
    for d in &parsed.diagnostics {
        assert!(!d.to_string().contains("hunter2"), "{d}");
    }
}

#[test]
fn structural_errors() {
    let p = parse("", &config_source());
    assert_eq!(
        diagnostic_summary(&p.diagnostics),
        [(1, Severity::Error, "plugins")]
    );

    let p = parse("[plugins]\n", &config_source());
    assert_eq!(
        diagnostic_summary(&p.diagnostics),
        [(1, Severity::Error, "plugins")]
    );
    assert!(p.set.is_none());

    let p = parse("[plugins.a]\nversion = \"1\"\n", &config_source());
    assert_eq!(
        diagnostic_summary(&p.diagnostics),
        [(1, Severity::Error, "plugins.a.path")]
    );

    let p = parse("plugins = 3\n", &config_source());
    assert_eq!(p.diagnostics[0].message, "expected a table, found integer");

    let p = parse(
        "[plugins]\n\"my.plugin\" = { path = \"a\" }\n",
        &config_source(),
    );
    assert_eq!(
        diagnostic_summary(&p.diagnostics),
        [(2, Severity::Error, "plugins.\"my.plugin\"")]
    );

    let p = parse(
        "[plugins.a]\npath = \"a\"\nsha256 = \"zz\"\n[plugins.a.secrets]\nx = {}\ny = { envv = \"X\" }\n",
        &config_source(),
    );
    assert_eq!(
        diagnostic_summary(&p.diagnostics),
        [
            (3, Severity::Error, "plugins.a.sha256"),
            (5, Severity::Error, "plugins.a.secrets.x"),
            (6, Severity::Error, "plugins.a.secrets.y.envv"),
        ]
    );
    assert!(p.diagnostics[0].message.contains("non-hex character `z`"));
    assert!(p.diagnostics[2].message.contains("did you mean `env`?"));
}

#[test]
fn toml_syntax_error_gives_its_line_and_nothing_else() {
    let text = "[plugins.a]\npath = \"a.wasm\"\noops = = 1\n";
    let p = parse(text, &config_source());
    assert!(p.set.is_none());
    assert_eq!(p.diagnostics.len(), 1);
    assert_eq!(p.diagnostics[0].line, 3);
    assert_eq!(p.diagnostics[0].key, "");
    assert!(p.diagnostics[0].to_string().starts_with("homeward.toml:3:"));

    // Duplicate keys are syntax errors too.
    let p = parse(
        "[plugins.a]\npath = \"a\"\npath = \"b\"\n",
        &config_source(),
    );
    assert_eq!((p.diagnostics.len(), p.diagnostics[0].line), (1, 3));

    // A syntax error on a secret's line must not quote the secret.
    let p = parse(
        "[plugins.a.secrets]\npw = \"s3cr3t-value\n",
        &config_source(),
    );
    assert_eq!((p.diagnostics.len(), p.diagnostics[0].line), (1, 2));
    assert!(!format!("{:?} {}", p.diagnostics, p.diagnostics[0]).contains("s3cr3t"));
}

#[test]
fn load_reports_io_errors() {
    assert!(load(Path::new("/definitely/not/here/homeward.toml")).is_err());
}

#[test]
fn never_panics_on_mangled_input() {
    let inputs = [VALID, BROKEN];
    for text in inputs {
        for (i, _) in text.char_indices() {
            let _ = parse(&text[..i], &config_source());
            let mut mangled = text.to_owned();
            mangled.replace_range(
                i..i + text[i..].chars().next().map_or(0, char::len_utf8),
                "\"",
            );
            let _ = parse(&mangled, &config_source());
        }
    }
    for weird in [
        "\u{0}",
        "[plugins.\"\"]\npath=\"\u{0}\"",
        "[plugins.a]\npath=\"a\"\nmemory-limit-mib=0x7fffffffffffffff\nfuel=-9223372036854775808",
        "[plugins.a]\npath=\"a\"\nconfig.x=1979-05-27\nsecrets.y=[1]\ngrants.network=[1,[]]",
        "[plugins.a]\npath=\"a\"\ngrants.dirs=[1, {host=\"\", guest=\"/../x\"}]",
        "[[plugins]]\npath=\"a\"",
        "[plugins.a]\npath=\"a\"\nsha256=\"ééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééé\"",
    ] {
        let p = parse(weird, &config_source());
        assert!(p.set.is_none(), "{weird:?}");
    }
}

#[test]
fn line_col_is_one_based_and_never_panics() {
    let text = "ab\ncdé\nx";
    assert_eq!(line_col(text, 0), (1, 1));
    assert_eq!(line_col(text, 3), (2, 1));
    assert_eq!(line_col(text, 7), (2, 4)); // after 'é' (2 bytes)
    assert_eq!(line_col(text, 6), (2, 3)); // inside 'é' -> its start
    assert_eq!(line_col(text, 1000), (3, 2));
    assert_eq!(line_col("", 5), (1, 1));
}

#[test]
fn unknown_keys_suggest_the_closest_known_key() {
    // The suggestion is the known key within two edits, or the same key once
    // `_` is read as `-`; with no such key the message lists the known keys.
    let text = "[plugins.a]\npath = \"a\"\ncall-timeot-ms = 1\nmemory_limit_mib = 1\npth = \"b\"\ncolour = \"blue\"\n";
    let p = parse(text, &config_source());
    assert_eq!(
        diagnostic_summary(&p.diagnostics),
        [
            (3, Severity::Error, "plugins.a.call-timeot-ms"),
            (4, Severity::Error, "plugins.a.memory_limit_mib"),
            (5, Severity::Error, "plugins.a.pth"),
            (6, Severity::Error, "plugins.a.colour"),
        ]
    );
    let messages: Vec<&str> = p.diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert!(
        messages[0].ends_with("did you mean `call-timeout-ms`?"),
        "{}",
        messages[0]
    );
    assert!(
        messages[1].ends_with("did you mean `memory-limit-mib`?"),
        "{}",
        messages[1]
    );
    assert!(
        messages[2].ends_with("did you mean `path`?"),
        "{}",
        messages[2]
    );
    assert!(!messages[3].contains("did you mean"), "{}", messages[3]);
    assert!(
        messages[3].contains("expected one of: path, sha256,"),
        "{}",
        messages[3]
    );
}

#[test]
fn display_format() {
    let d = Diagnostic {
        severity: Severity::Error,
        file: "homeward.toml".into(),
        line: 12,
        column: 5,
        key: "plugins.vcenter.sha256".into(),
        message: "expected 64 hex digits, found 12".into(),
    };
    assert_eq!(
        d.to_string(),
        "homeward.toml:12:5: error: plugins.vcenter.sha256: expected 64 hex digits, found 12"
    );
}
