//! The guest-step conformance suite certifies every guest step Homeward ships,
//! fails a deliberately broken one on exactly its three faults, and reports
//! through the CLI in JUnit and JSON that parse back with the right counts.

use homeward::conformance::{Outcome, SuiteOptions};
use homeward::embedded;
use homeward_tests::conformance::{failed, failures_text, parse_junit, run};
use homeward_tests::{broken_step_path, homeward_exit};
use std::collections::BTreeSet;
use std::process::ExitCode;

/// The faults `tests/fixtures/broken-step` was built with.
const BROKEN_STEP_FAULTS: [&str; 3] = [
    "guest-step/damaged-guest",
    "guest-step/modes-and-reasons",
    "guest-step/rerun-is-empty",
];

#[test]
fn every_shipped_guest_step_passes_its_suite() {
    for plugin in [
        embedded::TEMPLATE,
        embedded::STATIC_IP_RESET,
        embedded::NETWORKMANAGER_RESTORE,
    ] {
        let report = run(plugin.wasm, plugin.id, &SuiteOptions::default());
        assert_eq!(report.suite, "guest-step");
        assert!(
            report.passed(),
            "{} failed:\n{}",
            plugin.id,
            failures_text(&report)
        );
        assert_eq!(report.counts.skipped, 0, "{report:#?}");
        assert!(
            report
                .cases
                .iter()
                .any(|c| c.name == "guest-step/rerun-is-empty"),
            "the kind's own cases ran"
        );
        for case in &report.cases {
            assert!(
                case.fuel.is_some_and(|fuel| fuel > 0),
                "{}: {} has no fuel figure",
                plugin.id,
                case.name
            );
            assert!(case.peak_memory_bytes >= 64 * 1024, "{case:?}");
        }
    }
}

#[test]
fn the_broken_step_fails_exactly_its_faults() {
    let wasm = std::fs::read(broken_step_path()).unwrap();
    let report = run(&wasm, "broken-step", &SuiteOptions::default());
    let expected: BTreeSet<String> = BROKEN_STEP_FAULTS.iter().map(|s| s.to_string()).collect();
    assert_eq!(failed(&report), expected, "{report:#?}");
    assert_eq!(report.counts.skipped, 0);
    assert_eq!(report.counts.passed, report.counts.total - 3);

    let message = |name: &str| match &report
        .cases
        .iter()
        .find(|c| c.name == name)
        .unwrap()
        .outcome
    {
        Outcome::Fail { message } => message.clone(),
        other => panic!("{name}: {other:?}"),
    };
    assert!(
        message("guest-step/modes-and-reasons").contains("world-writable"),
        "{}",
        message("guest-step/modes-and-reasons")
    );
    assert!(
        message("guest-step/rerun-is-empty").contains("/etc/homeward-broken"),
        "{}",
        message("guest-step/rerun-is-empty")
    );
    assert!(
        message("guest-step/damaged-guest").contains("stopped"),
        "a panic is reported as a stopped call: {}",
        message("guest-step/damaged-guest")
    );
}

#[test]
fn fuel_figures_are_deterministic() {
    let plugin = embedded::STATIC_IP_RESET;
    let fuel = |report: &homeward::conformance::Report| -> Vec<(String, Option<u64>, u64)> {
        report
            .cases
            .iter()
            .map(|c| (c.name.clone(), c.fuel, c.peak_memory_bytes))
            .collect()
    };
    let first = run(plugin.wasm, plugin.id, &SuiteOptions::default());
    let second = run(plugin.wasm, plugin.id, &SuiteOptions::default());
    assert_eq!(fuel(&first), fuel(&second));
}

#[test]
fn filters_pick_smoke_cases_and_named_cases() {
    let plugin = embedded::TEMPLATE;
    let smoke = run(
        plugin.wasm,
        plugin.id,
        &SuiteOptions {
            smoke_only: true,
            ..SuiteOptions::default()
        },
    );
    assert!(smoke.cases.iter().all(|c| c.smoke));
    assert!(smoke.cases.iter().any(|c| c.name == "plugin/ping"));
    assert!(
        smoke
            .cases
            .iter()
            .any(|c| c.name.starts_with("guest-step/"))
    );

    let one = run(
        plugin.wasm,
        plugin.id,
        &SuiteOptions {
            filter: Some("rerun".to_string()),
            ..SuiteOptions::default()
        },
    );
    let names: Vec<_> = one.cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["guest-step/rerun-is-empty"]);
}

#[test]
fn the_cli_reports_in_junit_and_json_that_parse_back() {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("report.xml");
    let json = dir.path().join("report.json");
    let broken = broken_step_path();
    let (code, stdout) = homeward_exit(&[
        "plugin",
        "test",
        broken.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(code, ExitCode::FAILURE, "a failed case exits 1:\n{stdout}");
    assert!(
        stdout.contains("FAIL  guest-step/rerun-is-empty"),
        "{stdout}"
    );
    assert!(stdout.contains("suite run time"), "{stdout}");

    let summary = parse_junit(&std::fs::read_to_string(&junit).unwrap());
    assert_eq!(summary.failures, 3);
    assert_eq!(summary.skipped, 0);
    assert_eq!(summary.tests, summary.cases.len());
    let expected: BTreeSet<String> = BROKEN_STEP_FAULTS.iter().map(|s| s.to_string()).collect();
    assert_eq!(summary.failed, expected);
    assert_eq!(
        summary.with_fuel.len(),
        summary.tests,
        "every case carries its fuel"
    );

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["plugin"]["id"], "broken-step");
    assert_eq!(report["counts"]["failed"], 3);
    assert_eq!(report["counts"]["total"], summary.tests);
    let cases = report["cases"].as_array().unwrap();
    assert_eq!(cases.len(), summary.tests);
    assert!(
        cases
            .iter()
            .filter(|c| c["result"] == "fail")
            .all(|c| c["message"].as_str().is_some_and(|m| !m.is_empty()))
    );
}

#[test]
fn the_cli_exits_0_for_a_passing_plugin_and_2_for_a_file_that_is_no_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("template.wasm");
    std::fs::write(&good, embedded::TEMPLATE.wasm).unwrap();
    let (code, text) = homeward_exit(&["plugin", "test", "--smoke", good.to_str().unwrap()]);
    assert_eq!(code, ExitCode::SUCCESS, "{text}");

    let bad = dir.path().join("notes.wasm");
    std::fs::write(&bad, b"not a component").unwrap();
    let (code, text) = homeward_exit(&["plugin", "test", bad.to_str().unwrap()]);
    assert_eq!(code, ExitCode::from(2), "{text}");
    assert!(
        text.contains("notes.wasm"),
        "the error names the file: {text}"
    );
}
