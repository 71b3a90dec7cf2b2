//! The hypervisor and cloud conformance suites certify the lab adapters
//! against labs they make themselves, and skip, with the reason, what a lab
//! cannot arrange.

use homeward::conformance::{Outcome, SuiteOptions};
use homeward::embedded;
use homeward_tests::conformance::{failures_text, names_where, parse_junit, run};
use homeward_tests::homeward_exit;
use std::process::ExitCode;

#[test]
fn the_lab_hypervisor_passes_the_hypervisor_suite() {
    let plugin = embedded::LAB_HYPERVISOR;
    let report = run(plugin.wasm, plugin.id, &SuiteOptions::default());
    assert_eq!(report.suite, "hypervisor-adapter");
    assert_eq!(report.target.as_deref(), Some("lab"));
    assert!(report.passed(), "{}", failures_text(&report));
    let skipped = names_where(&report, |o| matches!(o, Outcome::Skip { .. }));
    assert_eq!(
        skipped.into_iter().collect::<Vec<_>>(),
        ["hypervisor/unreachable-network-endpoint"],
        "a lab adapter declares no network; everything else runs"
    );
    for name in [
        "hypervisor/read-only-account",
        "hypervisor/snapshots-block-reprotect",
        "hypervisor/free-licence",
        "hypervisor/wrong-credentials",
        "hypervisor/alternate-location",
        "hypervisor/snapshot-disk",
    ] {
        assert!(
            report
                .cases
                .iter()
                .any(|c| c.name == name && c.outcome == Outcome::Pass),
            "{name} ran and passed"
        );
    }
}

#[test]
fn the_lab_cloud_passes_the_cloud_suite() {
    let plugin = embedded::LAB_CLOUD;
    let report = run(plugin.wasm, plugin.id, &SuiteOptions::default());
    assert_eq!(report.suite, "cloud-adapter");
    assert!(report.passed(), "{}", failures_text(&report));
    let skipped = names_where(&report, |o| matches!(o, Outcome::Skip { .. }));
    assert_eq!(
        skipped.into_iter().collect::<Vec<_>>(),
        ["cloud/unreachable-network-endpoint"]
    );
    for name in ["cloud/changed-ranges", "cloud/restore-points"] {
        assert!(
            report
                .cases
                .iter()
                .any(|c| c.name == name && c.outcome == Outcome::Pass),
            "{name} ran and passed"
        );
    }
}

#[test]
fn a_skip_carries_its_reason_into_junit() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("lab-cloud.wasm");
    std::fs::write(&wasm, embedded::LAB_CLOUD.wasm).unwrap();
    let junit = dir.path().join("report.xml");
    let (code, text) = homeward_exit(&[
        "plugin",
        "test",
        wasm.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(code, ExitCode::SUCCESS, "{text}");
    assert!(text.contains("against a lab made for this run"), "{text}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    let summary = parse_junit(&xml);
    assert_eq!(summary.failures, 0);
    assert_eq!(summary.skipped, 1);
    assert_eq!(summary.tests, summary.cases.len());
    assert!(
        summary
            .skipped_cases
            .contains("cloud/unreachable-network-endpoint")
    );
    assert!(
        xml.contains("declares no network access"),
        "the skip reason is in the report"
    );
}
