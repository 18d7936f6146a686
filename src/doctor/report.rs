//! The report's two renderings: text for a person, JSON for a script.

use std::fmt::Write;

use serde::Serialize;

use super::{Finding, Level, Report};

/// The text report: `LEVEL  check: found`, with `why:` and `fix:` beneath each finding that is
/// not ok, then a summary line.
pub fn text(report: &Report) -> String {
    let mut out = String::new();
    for finding in &report.findings {
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "{:<4}  {}: {}",
            finding.level.label(),
            finding.check,
            finding.found
        );
        if finding.level != Level::Ok {
            let _ = writeln!(out, "      why: {}", finding.why);
            if let Some(fix) = &finding.fix {
                let _ = writeln!(out, "      fix: {fix}");
            }
        }
    }
    let _ = writeln!(out, "{}", summary_line(report));
    out
}

fn summary_line(report: &Report) -> String {
    let verdict = match report.level() {
        Level::Ok => "the gateway has what it needs",
        Level::Warn => "the gateway runs, with the warnings above",
        Level::Fail => "the gateway would not start as configured",
    };
    format!(
        "{} ok, {} warning(s), {} failure(s): {verdict}",
        report.count(Level::Ok),
        report.count(Level::Warn),
        report.count(Level::Fail)
    )
}

#[derive(Serialize)]
struct JsonReport<'a> {
    findings: &'a [Finding],
    summary: Summary,
}

#[derive(Serialize)]
struct Summary {
    ok: usize,
    warn: usize,
    fail: usize,
    level: Level,
    exit_code: u8,
}

/// The JSON report: `{"findings": [{check, level, found, why, fix}], "summary": {ok, warn,
/// fail, level, exit_code}}`; `fix` is null for ok findings.
pub fn json(report: &Report) -> String {
    let doc = JsonReport {
        findings: &report.findings,
        summary: Summary {
            ok: report.count(Level::Ok),
            warn: report.count(Level::Warn),
            fail: report.count(Level::Fail),
            level: report.level(),
            exit_code: report.exit_code(),
        },
    };
    // Strings, integers and enums only: serialising cannot fail.
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            findings: vec![
                Finding::ok("a", "fine", "because"),
                Finding::flag("b", Level::Warn, "low \"quoted\"", "it matters", "raise it"),
            ],
        }
    }

    #[test]
    fn text_shows_why_and_fix_only_for_findings_that_are_not_ok() {
        let text = text(&report());
        assert!(
            text.starts_with("ok    a: fine\nwarn  b: low \"quoted\"\n"),
            "{text}"
        );
        assert!(text.contains("      why: it matters\n      fix: raise it\n"));
        assert!(!text.contains("because"));
        assert!(text.ends_with(
            "1 ok, 1 warning(s), 0 failure(s): the gateway runs, with the warnings above\n"
        ));
    }

    #[test]
    fn json_escapes_and_carries_the_summary() {
        let value: serde_json::Value = serde_json::from_str(&json(&report())).unwrap();
        assert_eq!(value["findings"][1]["found"], "low \"quoted\"");
        assert_eq!(value["findings"][1]["level"], "warn");
        assert!(value["findings"][0]["fix"].is_null());
        assert_eq!(value["summary"]["exit_code"], 1);
        assert_eq!(value["summary"]["warn"], 1);
    }
}
