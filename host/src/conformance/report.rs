//! The result of a conformance run, and its three renderings: a table for
//! people, JSON for scripts, JUnit XML for CI systems.
//!
//! Costs are reported per case as Shopify's function-runner reports them:
//! fuel (WebAssembly instructions, deterministic for the same plugin and the
//! same input) and the largest linear memory any instance reached. Wall time
//! is reported too, but only fuel is comparable between machines.

use serde::Serialize;
use std::fmt::Write as _;

/// The plugin a report is about.
#[derive(Debug, Clone, Serialize)]
pub struct PluginSummary {
    /// Manifest id.
    pub id: String,
    /// Manifest version.
    pub version: String,
    /// Kind (WIT world).
    pub kind: String,
    /// The API version it was built against.
    pub api: String,
    /// SHA-256 of the component, lower-case hex.
    pub sha256: String,
}

/// How one case ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "lowercase")]
pub enum Outcome {
    /// The plugin behaved.
    Pass,
    /// An assertion did not hold.
    Fail {
        /// The assertion and what was seen.
        message: String,
    },
    /// The case did not apply.
    Skip {
        /// Why.
        reason: String,
    },
}

/// One case's result and cost.
#[derive(Debug, Clone, Serialize)]
pub struct CaseReport {
    /// Case name (`<suite>/<check>`).
    pub name: String,
    /// What it checks.
    pub summary: String,
    /// Whether it is a smoke case.
    pub smoke: bool,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Fuel consumed by all its calls, when metered.
    pub fuel: Option<u64>,
    /// Largest memory of any instance it used.
    pub peak_memory_bytes: u64,
    /// Plugin calls it made (instantiations included).
    pub calls: u64,
    /// Wall time in milliseconds (machine-dependent; compare fuel instead).
    pub duration_ms: u64,
    /// Facts the case recorded whatever its outcome.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Counts by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Cases run.
    pub total: usize,
    /// Passed.
    pub passed: usize,
    /// Failed.
    pub failed: usize,
    /// Skipped.
    pub skipped: usize,
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The plugin.
    pub plugin: PluginSummary,
    /// The suite that ran (the plugin's kind).
    pub suite: String,
    /// The endpoint the adapter suites ran against (`lab` when none was given).
    pub target: Option<String>,
    /// The `homeward` version that ran it.
    pub host_version: String,
    /// Counts by outcome.
    pub counts: Counts,
    /// The suite's own run time in milliseconds.
    pub duration_ms: u64,
    /// Every case, in run order.
    pub cases: Vec<CaseReport>,
}

impl Report {
    /// Counts the outcomes of `cases`.
    pub fn count(cases: &[CaseReport]) -> Counts {
        let mut counts = Counts {
            total: cases.len(),
            ..Counts::default()
        };
        for case in cases {
            match case.outcome {
                Outcome::Pass => counts.passed += 1,
                Outcome::Fail { .. } => counts.failed += 1,
                Outcome::Skip { .. } => counts.skipped += 1,
            }
        }
        counts
    }

    /// Whether every case that ran passed.
    pub fn passed(&self) -> bool {
        self.counts.failed == 0
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The report as JUnit XML: one `<testsuite>` per run, one `<testcase>`
    /// per case, with `<failure>` or `<skipped>` and the costs as properties.
    pub fn to_junit(&self) -> String {
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let suite_name = format!("homeward.conformance.{}.{}", self.suite, self.plugin.id);
        let _ = writeln!(
            xml,
            "<testsuites name=\"homeward plugin test\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" errors=\"0\" time=\"{}\">",
            self.counts.total,
            self.counts.failed,
            self.counts.skipped,
            seconds(self.duration_ms)
        );
        let _ = writeln!(
            xml,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" errors=\"0\" time=\"{}\">",
            escape(&suite_name),
            self.counts.total,
            self.counts.failed,
            self.counts.skipped,
            seconds(self.duration_ms)
        );
        xml.push_str("    <properties>\n");
        for (name, value) in [
            ("plugin.id", &self.plugin.id),
            ("plugin.version", &self.plugin.version),
            ("plugin.kind", &self.plugin.kind),
            ("plugin.api", &self.plugin.api),
            ("plugin.sha256", &self.plugin.sha256),
            ("host.version", &self.host_version),
        ] {
            let _ = writeln!(
                xml,
                "      <property name=\"{name}\" value=\"{}\"/>",
                escape(value)
            );
        }
        if let Some(target) = &self.target {
            let _ = writeln!(
                xml,
                "      <property name=\"target\" value=\"{}\"/>",
                escape(target)
            );
        }
        xml.push_str("    </properties>\n");
        for case in &self.cases {
            let _ = writeln!(
                xml,
                "    <testcase name=\"{}\" classname=\"{}\" time=\"{}\">",
                escape(&case.name),
                escape(&suite_name),
                seconds(case.duration_ms)
            );
            match &case.outcome {
                Outcome::Pass => {}
                Outcome::Fail { message } => {
                    let _ = writeln!(
                        xml,
                        "      <failure message=\"{}\" type=\"assertion\">{}</failure>",
                        escape(first_line(message)),
                        escape(message)
                    );
                }
                Outcome::Skip { reason } => {
                    let _ = writeln!(xml, "      <skipped message=\"{}\"/>", escape(reason));
                }
            }
            xml.push_str("      <properties>\n");
            if let Some(fuel) = case.fuel {
                let _ = writeln!(xml, "        <property name=\"fuel\" value=\"{fuel}\"/>");
            }
            let _ = writeln!(
                xml,
                "        <property name=\"peak-memory-bytes\" value=\"{}\"/>",
                case.peak_memory_bytes
            );
            let _ = writeln!(
                xml,
                "        <property name=\"calls\" value=\"{}\"/>",
                case.calls
            );
            xml.push_str("      </properties>\n");
            if !case.notes.is_empty() {
                let _ = writeln!(
                    xml,
                    "      <system-out>{}</system-out>",
                    escape(&case.notes.join("\n"))
                );
            }
            xml.push_str("    </testcase>\n");
        }
        xml.push_str("  </testsuite>\n</testsuites>\n");
        xml
    }

    /// The closing lines of the table: counts and the suite's run time.
    pub fn summary_line(&self) -> String {
        format!(
            "{}: {} passed, {} failed, {} skipped of {} cases; suite run time {:.2} s",
            self.plugin.id,
            self.counts.passed,
            self.counts.failed,
            self.counts.skipped,
            self.counts.total,
            self.duration_ms as f64 / 1000.0
        )
    }
}

/// One table row for a case (and its message on the next line).
pub fn table_row(case: &CaseReport) -> String {
    let (label, detail) = match &case.outcome {
        Outcome::Pass => ("PASS", None),
        Outcome::Fail { message } => ("FAIL", Some(message.as_str())),
        Outcome::Skip { reason } => ("SKIP", Some(reason.as_str())),
    };
    let fuel = case.fuel.map(thousands).unwrap_or_else(|| "-".to_string());
    let mut row = format!(
        "{label}  {:<44} {:>16} {:>9} {:>7} ms",
        case.name,
        fuel,
        mebibytes(case.peak_memory_bytes),
        case.duration_ms
    );
    if let Some(detail) = detail {
        let _ = write!(row, "\n      {detail}");
    }
    for note in &case.notes {
        let _ = write!(row, "\n      note: {note}");
    }
    row
}

/// The table's header.
pub fn table_header() -> String {
    format!(
        "      {:<44} {:>16} {:>9} {:>10}",
        "CASE", "FUEL", "PEAK MEM", "TIME"
    )
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn mebibytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

fn seconds(ms: u64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// Escapes text for an XML attribute or element (and drops the control
/// characters XML 1.0 cannot carry at all).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_drops_control_characters() {
        assert_eq!(escape("a<b & \"c\"\u{1}"), "a&lt;b &amp; &quot;c&quot;");
    }

    #[test]
    fn groups_thousands() {
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(12), "12");
    }
}
