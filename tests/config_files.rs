//! `check_files`: plugin files and granted directories verified on disk
//! (missing file, wrong digest, bad directories), with their locations.

use homeward::config::{Severity, check_files, load, parse, sha256_file};
use homeward_tests::diagnostic_summary;

/// `sha256("hello")`.
const DIGEST: &str = "2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824";

#[test]
fn check_files_catches_missing_file_wrong_digest_and_bad_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("good.wasm"), b"hello").unwrap();
    std::fs::write(d.join("bad.wasm"), b"tampered").unwrap();
    std::fs::create_dir(d.join("data")).unwrap();
    let hello = DIGEST.to_ascii_lowercase(); // sha256("hello")
    let text = format!(
        r#"[plugins.good]
path = "good.wasm"
sha256 = "{hello}"
dirs-unused = 1
"#
    );
    // Unknown key above is an error; fix it and build the real file.
    assert!(parse(&text, &d.join("homeward.toml")).has_errors());

    let text = format!(
        r#"[plugins.good]
path = "good.wasm"
sha256 = "{hello}"
grants.dirs = [{{ host = "data", guest = "/data" }}]

[plugins.bad]
path = "bad.wasm"
sha256 = "{hello}"

[plugins.missing]
path = "nope.wasm"

[plugins.dirs]
path = "good.wasm"
[[plugins.dirs.grants.dirs]]
host = "no-such-dir"
guest = "/a"
[[plugins.dirs.grants.dirs]]
host = "good.wasm"
guest = "/b"
"#
    );
    let config = d.join("homeward.toml");
    std::fs::write(&config, &text).unwrap();
    let parsed = load(&config).unwrap();
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
    let set = parsed.set.unwrap();

    assert_eq!(
        sha256_file(&d.join("good.wasm")).unwrap().to_vec(),
        hex::decode(&hello).unwrap()
    );

    let diags = check_files(&set, &text);
    assert_eq!(
        diagnostic_summary(&diags),
        [
            (8, Severity::Error, "plugins.bad.sha256"),
            (11, Severity::Error, "plugins.missing.path"),
            (16, Severity::Error, "plugins.dirs.grants.dirs[0].host"),
            (19, Severity::Error, "plugins.dirs.grants.dirs[1].host"),
        ]
    );
    let actual = hex::encode(sha256_file(&d.join("bad.wasm")).unwrap());
    assert!(diags[0].message.contains(&hello) && diags[0].message.contains(&actual));
    assert!(diags[1].message.contains("nope.wasm"));
    assert!(diags[3].message.contains("not a directory"));

    // Without matching text, locations fall back to the plugin's line.
    let diags = check_files(&set, "");
    assert_eq!(diags[0].line, 6);

    // A directory given as the plugin path is not a readable file.
    let mut set2 = set.clone();
    set2.plugins[0].path = d.join("data");
    set2.plugins[0].sha256 = None;
    let diags = check_files(&set2, &text);
    assert_eq!(diags[0].key, "plugins.good.path");
    assert_eq!(diags[0].line, 2);
}
