//! The plugin manifest: parsing its text, rejecting bad manifests with a
//! reason, and refusing bytes that are not a component.

use homeward::plugin::PluginError;
use homeward::plugin::capability::FileAccess;
use homeward::plugin::{Manifest, PluginKind};

const GOOD: &str = r#"
schema = 1
id = "vcenter"
version = "1.2.3"
api = "0.1.0"
kinds = ["hypervisor-adapter"]
[capabilities]
network = ["*:443", "127.0.0.1:*", ]
files = "read-only"
disk-write = false
"#;

#[test]
fn parses_a_manifest() {
    let m = Manifest::parse(GOOD, "t").unwrap();
    assert_eq!(m.id, "vcenter");
    assert_eq!(m.kind, PluginKind::HypervisorAdapter);
    assert_eq!(m.capabilities.network.len(), 2);
    assert_eq!(m.capabilities.files, FileAccess::ReadOnly);
}

#[test]
fn rejects_bad_manifests_with_reasons() {
    for (edit, expect) in [
        (("id = \"vcenter\"", "id = \"VC!\""), "id `VC!`"),
        (("schema = 1", "schema = 9"), "schema 9"),
        (("version = \"1.2.3\"", "version = \"one\""), "not semver"),
        (
            ("[\"hypervisor-adapter\"]", "[\"toaster\"]"),
            "kind `toaster`",
        ),
        (("\"*:443\"", "\"*\""), "network `*`"),
        (
            ("files = \"read-only\"", "files = \"all\""),
            "files = `all`",
        ),
        (("disk-write", "disk-writes"), "unknown field"),
    ] {
        let text = GOOD.replace(edit.0, edit.1);
        let err = Manifest::parse(&text, "t").unwrap_err().to_string();
        assert!(err.contains(expect), "{expect}: {err}");
    }
}

#[test]
fn bytes_that_are_not_a_component_are_refused() {
    assert!(matches!(
        Manifest::from_component(b"hello", "x"),
        Err(PluginError::NotWasm { .. })
    ));
    // A core module header (version 1, layer 0).
    let core = b"\0asm\x01\0\0\0";
    assert!(matches!(
        Manifest::from_component(core, "x"),
        Err(PluginError::CoreModule { .. })
    ));
    // A component header cut short inside a section.
    let cut = b"\0asm\x0d\0\x01\0\x00\x10";
    assert!(matches!(
        Manifest::from_component(cut, "x"),
        Err(PluginError::Malformed { .. })
    ));
}
