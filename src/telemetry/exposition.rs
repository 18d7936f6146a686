//! The Prometheus text exposition format, version 0.0.4: escaping and line shapes.
//!
//! Only what the registry needs: `# HELP` and `# TYPE` lines, samples with integer values, and
//! label values escaped as the format requires (backslash, double quote and line feed in label
//! values; backslash and line feed in help text). Names are validated at registration, so they
//! are written as they are.

use std::fmt::Write;

/// The `Content-Type` of a response carrying this format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Appends `value` escaped for use between the quotes of a label value.
pub(crate) fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Appends `help` escaped for a `# HELP` line (a quote needs no escape there).
fn escape_help(out: &mut String, help: &str) {
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Appends the `# HELP` and `# TYPE` lines of a family whose samples are named `name`.
pub(crate) fn write_header(out: &mut String, name: &str, help: &str, type_name: &str) {
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    escape_help(out, help);
    out.push_str("\n# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(type_name);
    out.push('\n');
}

/// Appends one sample line: `name{labels,extra} value`. `labels` is pre-rendered
/// (`k="v",k2="v2"`, already escaped); `extra` is one more pre-rendered pair, or empty.
pub(crate) fn write_sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &str,
    extra: &str,
    value: impl std::fmt::Display,
) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() || !extra.is_empty() {
        out.push('{');
        out.push_str(labels);
        if !labels.is_empty() && !extra.is_empty() {
            out.push(',');
        }
        out.push_str(extra);
        out.push('}');
    }
    // Writing to a String cannot fail.
    let _ = writeln!(out, " {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_escape_backslash_quote_and_newline() {
        let mut s = String::new();
        escape_label_value(&mut s, "a\\b\"c\nd\te");
        assert_eq!(s, "a\\\\b\\\"c\\nd\te");
    }

    #[test]
    fn help_escapes_backslash_and_newline_but_not_quotes() {
        let mut s = String::new();
        write_header(&mut s, "m", "say \"hi\"\\\nbye", "counter");
        assert_eq!(s, "# HELP m say \"hi\"\\\\\\nbye\n# TYPE m counter\n");
    }

    #[test]
    fn samples_without_labels_have_no_braces() {
        let mut s = String::new();
        write_sample(&mut s, "m", "", "", "", 3);
        write_sample(&mut s, "m", "_bucket", "", "le=\"1\"", 4);
        write_sample(&mut s, "m", "_sum", "a=\"b\"", "", 5);
        write_sample(&mut s, "m", "_bucket", "a=\"b\"", "le=\"+Inf\"", 6);
        assert_eq!(
            s,
            "m 3\nm_bucket{le=\"1\"} 4\nm_sum{a=\"b\"} 5\nm_bucket{a=\"b\",le=\"+Inf\"} 6\n"
        );
    }
}
