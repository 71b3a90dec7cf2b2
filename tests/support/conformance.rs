//! Running the conformance suite from tests, and reading its reports back
//! the way a CI system would.

use homeward::conformance::{self, Outcome, Report, SuiteOptions};
use std::collections::BTreeSet;

/// Runs the suite for `wasm` with `options`; panics if the plugin cannot be tested at all.
pub fn run(wasm: &[u8], name: &str, options: &SuiteOptions) -> Report {
    match conformance::run(wasm, name, options, &mut |_| {}) {
        Ok(report) => report,
        Err(e) => panic!("{name} could not be tested: {e}"),
    }
}

/// Names of the cases that ended with `outcome`'s variant.
pub fn names_where(report: &Report, keep: fn(&Outcome) -> bool) -> BTreeSet<String> {
    report
        .cases
        .iter()
        .filter(|c| keep(&c.outcome))
        .map(|c| c.name.clone())
        .collect()
}

/// Names of the failed cases.
pub fn failed(report: &Report) -> BTreeSet<String> {
    names_where(report, |o| matches!(o, Outcome::Fail { .. }))
}

/// A report's failures, one per line, for assertion messages.
pub fn failures_text(report: &Report) -> String {
    report
        .cases
        .iter()
        .filter_map(|c| match &c.outcome {
            Outcome::Fail { message } => Some(format!("{}: {message}", c.name)),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What a JUnit file says, read with a real XML parser.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct JunitSummary {
    /// `tests` attribute of the `<testsuite>`.
    pub tests: usize,
    /// `failures` attribute.
    pub failures: usize,
    /// `skipped` attribute.
    pub skipped: usize,
    /// `<testcase>` names.
    pub cases: Vec<String>,
    /// Names of the `<testcase>`s holding a `<failure>`.
    pub failed: BTreeSet<String>,
    /// Names of the `<testcase>`s holding a `<skipped>`.
    pub skipped_cases: BTreeSet<String>,
    /// Names of the `<testcase>`s with a `fuel` property.
    pub with_fuel: BTreeSet<String>,
}

/// Parses a JUnit XML report.
pub fn parse_junit(xml: &str) -> JunitSummary {
    let doc = roxmltree::Document::parse(xml).expect("JUnit report is well-formed XML");
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .expect("a <testsuite>");
    let attr = |name: &str| -> usize {
        suite
            .attribute(name)
            .unwrap_or_else(|| panic!("<testsuite> has `{name}`"))
            .parse()
            .expect("a count")
    };
    let mut summary = JunitSummary {
        tests: attr("tests"),
        failures: attr("failures"),
        skipped: attr("skipped"),
        ..JunitSummary::default()
    };
    for case in suite.children().filter(|n| n.has_tag_name("testcase")) {
        let name = case.attribute("name").expect("testcase name").to_string();
        if case.children().any(|n| n.has_tag_name("failure")) {
            summary.failed.insert(name.clone());
        }
        if case.children().any(|n| n.has_tag_name("skipped")) {
            summary.skipped_cases.insert(name.clone());
        }
        if case
            .descendants()
            .any(|n| n.has_tag_name("property") && n.attribute("name") == Some("fuel"))
        {
            summary.with_fuel.insert(name.clone());
        }
        summary.cases.push(name);
    }
    summary
}
