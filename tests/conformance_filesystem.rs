//! The file-system conformance suite against the three real handlers (which
//! must pass it) and against `broken-fs` (which must fail exactly the two
//! cases its faults break); plus the regeneration of the shipped images
//! (`scripts/make-conformance-images`, an ignored test).

use homeward::conformance::{ImageSource, Outcome, SuiteOptions};
use homeward_tests::conformance::{failed, failures_text, names_where, run};
use std::collections::BTreeSet;

fn fs_cases(report: &homeward::conformance::Report) -> BTreeSet<String> {
    report
        .cases
        .iter()
        .filter(|c| c.name.starts_with("filesystem/"))
        .map(|c| c.name.clone())
        .collect()
}

/// Runs the suite on `wasm` and checks that it passes with nothing skipped
/// (the tools and checkers are installed where the tests run).
fn assert_passes(wasm: &[u8], name: &str, images: ImageSource) {
    let options = SuiteOptions {
        images,
        ..SuiteOptions::default()
    };
    let report = run(wasm, name, &options);
    assert!(
        report.passed(),
        "{name} ({images:?}) fails:\n{}",
        failures_text(&report)
    );
    assert!(
        fs_cases(&report).len() >= 16,
        "{name}: the file-system cases ran: {:?}",
        fs_cases(&report)
    );
    let skipped = names_where(&report, |o| matches!(o, Outcome::Skip { .. }));
    assert!(
        skipped.is_empty(),
        "{name} ({images:?}): nothing skips when the tools are installed: {:?}",
        report
            .cases
            .iter()
            .filter(|c| skipped.contains(&c.name))
            .map(|c| format!("{}: {:?}", c.name, c.outcome))
            .collect::<Vec<_>>()
    );
}

#[test]
fn ext4_handler_passes() {
    assert_passes(
        homeward::embedded::FS_EXT4.wasm,
        "fs-ext4",
        ImageSource::Auto,
    );
}

#[test]
fn xfs_handler_passes() {
    assert_passes(homeward::embedded::FS_XFS.wasm, "fs-xfs", ImageSource::Auto);
}

#[test]
fn reiserfs_handler_passes() {
    assert_passes(
        homeward::embedded::FS_REISERFS.wasm,
        "fs-reiserfs",
        ImageSource::Auto,
    );
}

#[test]
fn handlers_pass_on_shipped_images() {
    assert_passes(
        homeward::embedded::FS_EXT4.wasm,
        "fs-ext4",
        ImageSource::Shipped,
    );
    assert_passes(
        homeward::embedded::FS_XFS.wasm,
        "fs-xfs",
        ImageSource::Shipped,
    );
}

#[test]
fn broken_handler_fails_exactly_its_two_faults() {
    let wasm = std::fs::read(env!("HOMEWARD_FIXTURE_BROKEN_FS")).expect("broken-fs fixture");
    let report = run(&wasm, "broken-fs", &SuiteOptions::default());
    let expected: BTreeSet<String> = ["filesystem/probe-not-mine", "filesystem/used-extents-copy"]
        .map(String::from)
        .into();
    assert_eq!(
        failed(&report),
        expected,
        "broken-fs fails exactly its two faults:\n{}",
        failures_text(&report)
    );
    let passed = names_where(&report, |o| matches!(o, Outcome::Pass));
    assert_eq!(
        passed.len() + expected.len(),
        report.cases.len(),
        "every other case passes (none skips): {:?}",
        report.cases
    );
    // The failures say what went wrong, so a vendor can fix it.
    let message = |name: &str| {
        report
            .cases
            .iter()
            .find(|c| c.name == name)
            .map(|c| format!("{:?}", c.outcome))
            .unwrap_or_default()
    };
    assert!(
        message("filesystem/probe-not-mine").contains("all-zero"),
        "{}",
        message("filesystem/probe-not-mine")
    );
    assert!(
        message("filesystem/used-extents-copy").contains("ext4 image"),
        "{}",
        message("filesystem/used-extents-copy")
    );
}

#[test]
fn cli_reports_the_broken_handler_in_junit() {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("report.xml");
    let (ok, text) = homeward_tests::homeward(&[
        "plugin",
        "test",
        env!("HOMEWARD_FIXTURE_BROKEN_FS"),
        "--case",
        "filesystem/probe",
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert!(!ok, "a failing suite exits non-zero:\n{text}");
    assert!(text.contains("filesystem/probe-not-mine"), "{text}");
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    assert!(xml.contains("failures=\"1\""), "{xml}");
}

/// Regenerates the shipped images into `HOMEWARD_CONFORMANCE_FIXTURES`
/// (`scripts/make-conformance-images` runs it).
#[test]
#[ignore = "regenerates the shipped images; run by scripts/make-conformance-images"]
fn regenerate_shipped_images() {
    let out = std::env::var_os("HOMEWARD_CONFORMANCE_FIXTURES")
        .expect("HOMEWARD_CONFORMANCE_FIXTURES names the output directory");
    homeward::conformance::suites::fs_images::write_shipped_images(std::path::Path::new(&out))
        .unwrap_or_else(|e| panic!("making the shipped images: {e}"));
}
