//! Aligned tables, times and durations for people (scripts use `--json`).

use std::io::{self, Write};

/// A table: a header row and rows, printed with columns aligned.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names.
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells print empty, extra ones are dropped).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Prints the table; the last column is not padded.
    pub fn print(&self, out: &mut dyn Write) -> io::Result<()> {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |out: &mut dyn Write, cells: &[String]| -> io::Result<()> {
            let mut text = String::new();
            for (i, width) in widths.iter().enumerate() {
                let cell = cells.get(i).map(String::as_str).unwrap_or("");
                if i + 1 == columns {
                    text.push_str(cell);
                } else {
                    text.push_str(cell);
                    let pad = width.saturating_sub(cell.chars().count()) + 2;
                    text.extend(std::iter::repeat_n(' ', pad));
                }
            }
            writeln!(out, "{}", text.trim_end())
        };
        line(out, &self.header)?;
        for row in &self.rows {
            line(out, row)?;
        }
        Ok(())
    }
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SS` UTC.
pub fn when(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(i64::try_from(days).unwrap_or(i64::MAX / 2));
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// An optional time, or `-`.
pub fn when_opt(ms: Option<u64>) -> String {
    ms.map(when).unwrap_or_else(|| "-".to_string())
}

/// An optional text, or `-`.
pub fn or_dash(text: Option<&str>) -> String {
    match text {
        Some(t) if !t.is_empty() => t.to_string(),
        _ => "-".to_string(),
    }
}

/// Seconds as `45s`, `90s (1m30s)`, `7200s (2h)`: the number the `--…-secs`
/// flags take, and what it means when it is long.
pub fn secs(secs: u64) -> String {
    if secs < 60 {
        return format!("{secs}s");
    }
    let parts: String = [
        (secs / 86_400, "d"),
        (secs % 86_400 / 3600, "h"),
        (secs % 3600 / 60, "m"),
        (secs % 60, "s"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, unit)| format!("{n}{unit}"))
    .collect();
    format!("{secs}s ({parts})")
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_calendar_dates() {
        assert_eq!(when(0), "1970-01-01 00:00:00");
        assert_eq!(when(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(when(1_798_302_453_000), "2026-12-26 16:27:33");
    }

    #[test]
    fn seconds_say_what_they_mean_when_long() {
        assert_eq!(secs(45), "45s");
        assert_eq!(secs(90), "90s (1m30s)");
        assert_eq!(secs(7200), "7200s (2h)");
        assert_eq!(secs(90_061), "90061s (1d1h1m1s)");
    }

    #[test]
    fn columns_align() {
        let mut t = Table::new(&["NAME", "KIND"]);
        t.row(vec!["onprem-lab".into(), "on-premises".into()]);
        t.row(vec!["a".into(), "cloud".into()]);
        let mut out = Vec::new();
        t.print(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "NAME        KIND\nonprem-lab  on-premises\na           cloud\n"
        );
    }
}
