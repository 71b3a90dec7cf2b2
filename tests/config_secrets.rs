//! Plugin secrets: inline, `{ env = … }` and `{ file = … }` sources, resolved
//! late and never printed.

use homeward_tests::{config_source, diagnostic_summary};

use homeward::config::{SecretError, SecretSource, Severity, parse};

#[test]
fn secrets_are_never_printed() {
    let text = "[plugins.a]\npath = \"a\"\n[plugins.a.secrets]\npw = \"s3cr3t-value\"\n";
    let p = parse(text, &config_source());
    assert_eq!(
        diagnostic_summary(&p.diagnostics),
        [(4, Severity::Warning, "plugins.a.secrets.pw")]
    );
    let set = p.set.unwrap();
    let everything = format!("{set:?} {:?} {}", p.diagnostics, p.diagnostics[0]);
    assert!(!everything.contains("s3cr3t"), "{everything}");
    assert!(everything.contains("<redacted>"));

    let src_ = &set.plugins[0].secrets["pw"];
    let secret = src_.resolve().unwrap();
    assert_eq!(secret.expose(), "s3cr3t-value");
    assert_eq!(format!("{secret}"), "<redacted>");
    assert_eq!(format!("{secret:?}"), "<redacted>");
}

#[test]
fn env_secret_resolution() {
    // PATH is always set under `cargo test`; avoids unsafe `set_var`.
    let expected = std::env::var("PATH").unwrap();
    let s = SecretSource::Env("PATH".into()).resolve().unwrap();
    assert_eq!(s.expose(), expected);

    let name = "HOMEWARD_TEST_SURELY_UNSET_7F3A";
    let err = SecretSource::Env(name.into()).resolve().unwrap_err();
    assert!(matches!(err, SecretError::EnvMissing { .. }));
    assert!(err.to_string().contains(name));
}

#[test]
fn file_secret_resolution() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key.txt"), "s3cret-file-value\n").unwrap();
    std::fs::write(dir.path().join("crlf.txt"), "v2\r\n").unwrap();
    let config = dir.path().join("homeward.toml");
    let text = "[plugins.a]\npath = \"a\"\n[plugins.a.secrets]\nk = { file = \"key.txt\" }\n\
                c = { file = \"crlf.txt\" }\nm = { file = \"missing.txt\" }\n";
    let set = parse(text, &config).set.unwrap();
    let secrets = &set.plugins[0].secrets;
    assert_eq!(secrets["k"], SecretSource::File(dir.path().join("key.txt")));
    assert_eq!(
        secrets["k"].resolve().unwrap().expose(),
        "s3cret-file-value"
    );
    assert_eq!(secrets["c"].resolve().unwrap().expose(), "v2");

    let err = secrets["m"].resolve().unwrap_err();
    let shown = err.to_string();
    assert!(shown.contains(&dir.path().join("missing.txt").display().to_string()));
    assert!(!format!("{shown} {err:?}").contains("s3cret"));
}
