//! WIT API versions: which plugin API versions this host serves, why it
//! refuses the others, and that a cloud adapter built for API 0.1.0 (before
//! `cloud-restore-points`) still loads and works on a newer host.
//!
//! The 0.1.0 adapter is the test fixture `tests/fixtures/compat-cloud-0-1-0`,
//! generated from the frozen API snapshot `tests/fixtures/wit-0.1.0/` without
//! the SDK; its `connect` answers and every other call is `unsupported`.

use homeward::conformance::{Outcome, SuiteOptions};
use homeward::plugin::api::{ApiLine, host_api, select};
use homeward::plugin::{
    Failure, LoadedPlugin, PluginKind, PluginSettings, Runtime, RuntimeOptions,
};
use homeward_tests::api_failure as failure;
use semver::Version;

/// The fixture built by the root build.rs from the frozen 0.1.0 WIT.
const COMPAT_CLOUD_0_1_0: &str = env!("HOMEWARD_FIXTURE_COMPAT_CLOUD_0_1_0");

fn compat_wasm() -> Vec<u8> {
    std::fs::read(COMPAT_CLOUD_0_1_0).expect("the compat-cloud-0-1-0 fixture is built")
}

fn load(wasm: &[u8], name: &str) -> (Runtime, LoadedPlugin) {
    let runtime = Runtime::new(RuntimeOptions {
        cache_dir: Some(homeward_tests::shared_cache_dir().to_path_buf()),
        ..RuntimeOptions::default()
    })
    .unwrap();
    let plugin = runtime
        .load(wasm, name, PluginSettings::default())
        .unwrap_or_else(|e| panic!("{name} does not load: {e}"));
    (runtime, plugin)
}

#[test]
fn serves_its_own_line_only() {
    assert_eq!(host_api(), Version::new(0, 1, 2));
    // 0.1.0 plugins (before `cloud-restore-points`), 0.1.1 ones (before
    // `hypervisor-snapshots`) and 0.1.2 ones all load.
    for patch in 0..=2 {
        assert_eq!(
            select("p", &Version::new(0, 1, patch)).unwrap(),
            ApiLine::V0_1
        );
    }
    for (v, says) in [
        (Version::new(0, 2, 0), "newer than this host"),
        (Version::new(1, 0, 0), "newer than this host"),
        (Version::new(0, 1, 7), "upgrade Homeward"),
        (Version::new(0, 0, 9), "no longer serves"),
    ] {
        let err = select("p", &v).unwrap_err().to_string();
        assert!(err.contains(&v.to_string()), "{err}");
        assert!(err.contains("0.1.2"), "{err}");
        assert!(err.contains(says), "{err}");
    }
}

#[test]
fn a_cloud_adapter_built_for_0_1_0_loads_and_works_without_restore_points() {
    let (_runtime, plugin) = load(&compat_wasm(), "compat-cloud-0-1-0");
    let meta = plugin.meta();
    assert_eq!(meta.manifest.api, Version::new(0, 1, 0));
    assert_eq!(meta.manifest.kind, PluginKind::CloudAdapter);
    assert_eq!(meta.api, ApiLine::V0_1);
    // What makes it a 0.1.0 adapter: the cloud interface of 0.1.0, nothing of 0.1.1.
    assert!(
        meta.exports
            .iter()
            .any(|e| e == "homeward:plugin/cloud@0.1.0"),
        "{:?}",
        meta.exports
    );
    assert!(
        !meta
            .exports
            .iter()
            .any(|e| e.contains("cloud-restore-points") || e.contains("@0.1.1")),
        "{:?}",
        meta.exports
    );

    let mut instance = plugin.instantiate().unwrap();
    instance.ping().unwrap();
    let info = instance.cloud_connect().unwrap();
    assert_eq!(info.instance_id, "compat-cloud-0-1-0");
    assert_eq!(info.api_version, "0.1.0");
    assert!(info.product.contains("API 0.1.0"), "{info:?}");
    // The other calls reach the plugin and come back as its typed answer.
    match failure(instance.cloud_get_vm("vm-1")) {
        Failure::Unsupported(m) => assert!(m.contains("get-vm"), "{m}"),
        other => panic!("{other:?}"),
    }
    match failure(instance.cloud_create_snapshot("disk-1")) {
        Failure::Unsupported(m) => assert!(m.contains("create-snapshot"), "{m}"),
        other => panic!("{other:?}"),
    }

    assert!(!instance.cloud_has_restore_points().unwrap());
    let point = instance
        .cloud_create_restore_point("vm-1", &["disk-1".to_string()], true)
        .unwrap();
    assert!(point.is_none(), "{point:?}");
    // The instance is still good after asking for what it lacks.
    assert_eq!(
        instance.cloud_connect().unwrap().instance_id,
        "compat-cloud-0-1-0"
    );
}

#[test]
fn current_cloud_adapters_have_restore_points() {
    for embedded in [homeward::embedded::LAB_CLOUD, homeward::embedded::AZURE] {
        let (_runtime, plugin) = load(embedded.wasm, embedded.id);
        assert_eq!(plugin.meta().manifest.api, host_api());
        let mut instance = plugin.instantiate().unwrap();
        assert!(
            instance.cloud_has_restore_points().unwrap(),
            "{} lacks cloud-restore-points",
            embedded.id
        );
    }
}

#[test]
fn current_hypervisor_adapters_say_where_snapshot_disks_are() {
    use homeward::embedded::{ESXI, LAB_HYPERVISOR, VCENTER};
    for embedded in [LAB_HYPERVISOR, VCENTER, ESXI] {
        let (_runtime, plugin) = load(embedded.wasm, embedded.id);
        assert_eq!(plugin.meta().manifest.api, host_api());
        let mut instance = plugin.instantiate().unwrap();
        assert!(
            instance.hypervisor_has_snapshot_disks().unwrap(),
            "{} lacks hypervisor-snapshots",
            embedded.id
        );
    }
}

#[test]
fn the_restore_points_case_skips_a_0_1_0_adapter_saying_why() {
    let wasm = compat_wasm();
    let report = homeward_tests::conformance::run(
        &wasm,
        "compat-cloud-0-1-0",
        &SuiteOptions {
            filter: Some("cloud/restore-points".to_string()),
            ..SuiteOptions::default()
        },
    );
    let names: Vec<&str> = report.cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["cloud/restore-points"]);
    match &report.cases[0].outcome {
        Outcome::Skip { reason } => {
            assert!(reason.contains("built for API 0.1.0"), "{reason}");
            assert!(reason.contains("api = 0.1.0"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}
