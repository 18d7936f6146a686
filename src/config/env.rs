//! `${env:VAR}` and `${file:PATH}` substitution, done on the text before YAML parsing, as the
//! Collector's syntax reads.
//!
//! The forms, as in the Collector (its distributions, built with `DefaultScheme: env`):
//!
//! - `${env:VAR}` becomes the variable's value; unset is an error naming the variable and line
//!   (the Collector substitutes an empty string and logs a warning, which hides typos).
//! - `${VAR}` (no provider) is `${env:VAR}`, the Collector's default scheme.
//! - `${env:VAR:-default}` becomes `default` when the variable is unset or empty.
//! - `${file:PATH}` becomes the file's content, one trailing line break dropped (a token or a
//!   password kept in a file, as the Collector's file provider reads one): at most
//!   [`FILE_VALUE_BYTES_MAX`], one line, UTF-8; a relative path is from the working directory.
//! - `$$` is a literal `$`, so `$${env:VAR}` is the text `${env:VAR}`.
//! - Other providers (`${http:...}`, `${yaml:...}`) are errors. A `$` before anything else stays
//!   as written.
//!
//! Substituting text before parsing could change the YAML's structure, so a value is placed
//! according to where the reference sits: inside a double-quoted scalar it is escaped, inside a
//! single-quoted scalar its quotes are doubled, and in a plain scalar it goes in as is when it
//! reads as the same plain scalar, in double quotes when the reference is the whole scalar, and
//! is refused otherwise. Values with line breaks are refused: they would change line numbers and
//! could add keys. Comments (a `#` at a line's start or after a space, outside quotes) are not
//! substituted, so a commented-out `${env:OLD}` cannot fail a load.
//!
//! Quoting is tracked within a line only; a quoted scalar continued over several lines is read as
//! plain on its continuation lines.
//!
//! Columns: substitution changes the length of lines, so [`ColumnMap`] maps a column of the
//! substituted text back to the column written in the file, for error messages.

use std::collections::BTreeMap;

/// A `${env:...}` reference longer than this is refused (a missing `}` swallowing the line is the
/// usual cause).
const REFERENCE_LEN_MAX: usize = 1024;

/// The text after substitution, and how its columns map back to the file's.
#[derive(Debug)]
pub(crate) struct Substituted {
    pub(crate) text: String,
    pub(crate) columns: ColumnMap,
}

/// Replaced spans per line, to translate columns of the substituted text back.
#[derive(Debug, Default)]
pub(crate) struct ColumnMap {
    /// 0-based line → edits on it, in order.
    lines: BTreeMap<usize, Vec<Edit>>,
}

/// One replaced span, in 0-based character columns.
#[derive(Debug, Clone, Copy)]
struct Edit {
    orig_start: usize,
    orig_end: usize,
    new_start: usize,
    new_end: usize,
}

impl ColumnMap {
    /// The column in the file for 1-based `column` on 1-based `line` of the substituted text.
    /// A column inside a substituted value maps to the start of its `${...}`.
    pub(crate) fn original_column(&self, line: usize, column: usize) -> usize {
        let Some(edits) = line.checked_sub(1).and_then(|l| self.lines.get(&l)) else {
            return column;
        };
        let col = column.saturating_sub(1);
        let mut delta: isize = 0;
        for edit in edits {
            if col < edit.new_start {
                break;
            }
            if col < edit.new_end {
                return edit.orig_start + 1;
            }
            delta = edit.orig_end as isize - edit.new_end as isize;
        }
        (col as isize + delta).max(0) as usize + 1
    }
}

/// Why substitution failed, at a 1-based line and column of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnvError {
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) message: String,
}

/// What looking up a variable found.
pub(crate) enum Lookup {
    Set(String),
    Unset,
    NotUnicode,
}

/// The largest file `${file:PATH}` reads: a secret or a setting, not a configuration fragment.
pub const FILE_VALUE_BYTES_MAX: u64 = 64 << 10;

/// Looks variables up in the process environment.
pub(crate) fn process_env(name: &str) -> Lookup {
    match std::env::var(name) {
        Ok(value) => Lookup::Set(value),
        Err(std::env::VarError::NotPresent) => Lookup::Unset,
        Err(std::env::VarError::NotUnicode(_)) => Lookup::NotUnicode,
    }
}

/// Substitutes every reference in `text`, looking variables up with `lookup`.
pub(crate) fn substitute(
    text: &str,
    lookup: impl Fn(&str) -> Lookup,
) -> Result<Substituted, EnvError> {
    // Fast path: nothing to do, and no column map to build.
    if !text.contains('$') {
        return Ok(Substituted {
            text: text.to_string(),
            columns: ColumnMap::default(),
        });
    }
    let mut out = String::with_capacity(text.len());
    let mut columns = ColumnMap::default();
    for (line_no, line) in text.split('\n').enumerate() {
        if line_no > 0 {
            out.push('\n');
        }
        let edits = substitute_line(line, line_no, &lookup, &mut out)?;
        if !edits.is_empty() {
            columns.lines.insert(line_no, edits);
        }
    }
    Ok(Substituted { text: out, columns })
}

/// Where a reference sits, which decides how its value is written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Quote {
    Plain,
    Double,
    Single,
}

fn substitute_line(
    line: &str,
    line_no: usize,
    lookup: &impl Fn(&str) -> Lookup,
    out: &mut String,
) -> Result<Vec<Edit>, EnvError> {
    let chars: Vec<char> = line.chars().collect();
    let mut edits = Vec::new();
    let mut quote = Quote::Plain;
    let mut new_col = 0usize;
    let mut i = 0usize;
    let err = |col: usize, message: String| EnvError {
        line: line_no + 1,
        column: col + 1,
        message,
    };
    let push = |out: &mut String, c: char, new_col: &mut usize| {
        out.push(c);
        *new_col += 1;
    };
    while i < chars.len() {
        let c = chars[i];
        match quote {
            Quote::Double => {
                if c == '\\' && i + 1 < chars.len() {
                    push(out, c, &mut new_col);
                    push(out, chars[i + 1], &mut new_col);
                    i += 2;
                    continue;
                }
                if c == '"' {
                    quote = Quote::Plain;
                }
            }
            Quote::Single => {
                if c == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        push(out, c, &mut new_col);
                        push(out, c, &mut new_col);
                        i += 2;
                        continue;
                    }
                    quote = Quote::Plain;
                }
            }
            Quote::Plain => {
                if c == '#' && (i == 0 || chars[i - 1].is_whitespace()) {
                    // A comment: the rest of the line stays as written.
                    out.extend(&chars[i..]);
                    return Ok(edits);
                }
                if (c == '"' || c == '\'') && starts_token(&chars, i) {
                    quote = if c == '"' {
                        Quote::Double
                    } else {
                        Quote::Single
                    };
                }
            }
        }
        if c == '$' && chars.get(i + 1) == Some(&'$') {
            edits.push(Edit {
                orig_start: i,
                orig_end: i + 2,
                new_start: new_col,
                new_end: new_col + 1,
            });
            push(out, '$', &mut new_col);
            i += 2;
            continue;
        }
        if c == '$' && chars.get(i + 1) == Some(&'{') {
            let close = chars[i + 2..]
                .iter()
                .take(REFERENCE_LEN_MAX)
                .position(|&c| c == '}')
                .map(|p| i + 2 + p)
                .ok_or_else(|| err(i, "`${` without a closing `}`".to_string()))?;
            let inner: String = chars[i + 2..close].iter().collect();
            let value = resolve(&inner, lookup).map_err(|m| err(i, m))?;
            let whole_scalar =
                quote == Quote::Plain && starts_token(&chars, i) && ends_token(&chars, close + 1);
            let written =
                place(&value, quote, whole_scalar).map_err(|m| err(i, format!("{inner}: {m}")))?;
            let len = written.chars().count();
            edits.push(Edit {
                orig_start: i,
                orig_end: close + 1,
                new_start: new_col,
                new_end: new_col + len,
            });
            out.push_str(&written);
            new_col += len;
            i = close + 1;
            continue;
        }
        push(out, c, &mut new_col);
        i += 1;
    }
    Ok(edits)
}

/// Whether a scalar (or quote) may begin at `i`: at the line's start or after a space or a
/// flow/mapping indicator.
fn starts_token(chars: &[char], i: usize) -> bool {
    i == 0 || chars[i - 1].is_whitespace() || matches!(chars[i - 1], '[' | '{' | ',' | ':')
}

/// Whether a plain scalar may end at `i`: end of line, a space, or a flow indicator.
fn ends_token(chars: &[char], i: usize) -> bool {
    i >= chars.len() || chars[i].is_whitespace() || matches!(chars[i], ',' | ']' | '}')
}

/// Resolves the inside of `${...}` to a value.
fn resolve(inner: &str, lookup: &impl Fn(&str) -> Lookup) -> Result<String, String> {
    // No provider: the Collector's default scheme, `env`.
    let (provider, rest) = inner.split_once(':').unwrap_or(("env", inner));
    match provider {
        "env" => {}
        "file" => return read_file_value(rest),
        _ => {
            return Err(format!(
                "`${{{inner}}}` uses the `{provider}` provider; tailgate substitutes \
                 `${{env:VAR}}` (or `${{VAR}}`) and `${{file:PATH}}` (write `$${{` for a literal \
                 `${{`)"
            ))
        }
    }
    let (name, default) = match rest.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (rest, None),
    };
    let valid_name = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_name {
        return Err(format!(
            "`{name}` is not an environment variable name (letters, digits and `_`, not \
             starting with a digit)"
        ));
    }
    if default.is_some_and(|d| d.contains("${")) {
        return Err(format!(
            "the default of `${{{inner}}}` contains another reference, which is not supported"
        ));
    }
    let value = match (lookup(name), default) {
        (Lookup::Set(value), Some(default)) if value.is_empty() => default.to_string(),
        (Lookup::Set(value), _) => value,
        (Lookup::Unset, Some(default)) => default.to_string(),
        (Lookup::Unset, None) => {
            return Err(format!(
                "environment variable {name} is not set (give a default with \
                 `${{env:{name}:-default}}`)"
            ))
        }
        (Lookup::NotUnicode, _) => {
            return Err(format!("environment variable {name} is not valid UTF-8"))
        }
    };
    if value.contains(['\n', '\r']) {
        return Err(format!(
            "the value of {name} contains a line break, which would change the file's \
             structure and line numbers"
        ));
    }
    Ok(value)
}

/// The value of `${file:PATH}`: the file's content, one trailing line break dropped.
fn read_file_value(path: &str) -> Result<String, String> {
    if path.is_empty() {
        return Err("`${file:}` names no file; write `${file:/path/to/file}`".into());
    }
    let file = std::fs::File::open(path).map_err(|err| format!("cannot read {path}: {err}"))?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, FILE_VALUE_BYTES_MAX + 1),
        &mut bytes,
    )
    .map_err(|err| format!("cannot read {path}: {err}"))?;
    if bytes.len() as u64 > FILE_VALUE_BYTES_MAX {
        return Err(format!(
            "{path} is over {} KiB; `${{file:...}}` takes a value (a token, a password), not a \
             configuration fragment",
            FILE_VALUE_BYTES_MAX >> 10
        ));
    }
    let mut value =
        String::from_utf8(bytes).map_err(|_| format!("{path} is not valid UTF-8 text"))?;
    for ending in ["\r\n", "\n"] {
        if value.ends_with(ending) {
            value.truncate(value.len() - ending.len());
            break;
        }
    }
    if value.contains(['\n', '\r']) {
        return Err(format!(
            "{path} holds more than one line, which would change the file's structure and line \
             numbers; `${{file:...}}` takes a one-line value"
        ));
    }
    Ok(value)
}

/// Writes `value` where a reference stood, so that it stays one scalar.
fn place(value: &str, quote: Quote, whole_scalar: bool) -> Result<String, String> {
    match quote {
        Quote::Double => Ok(value.replace('\\', "\\\\").replace('"', "\\\"")),
        Quote::Single => Ok(value.replace('\'', "''")),
        Quote::Plain if plain_safe(value) => Ok(value.to_string()),
        Quote::Plain if whole_scalar => Ok(format!(
            "\"{}\"",
            value.replace('\\', "\\\\").replace('"', "\\\"")
        )),
        Quote::Plain => Err(
            "the value has characters YAML would read as structure (`: `, ` #`, a leading \
             indicator, or flow punctuation); put the whole scalar in double quotes"
                .to_string(),
        ),
    }
}

/// Whether `value` reads back as the same plain scalar wherever a plain scalar may stand (block
/// or flow context).
fn plain_safe(value: &str) -> bool {
    if value.is_empty() {
        return true;
    }
    if value.starts_with(char::is_whitespace) || value.ends_with(char::is_whitespace) {
        return false;
    }
    let first = value.chars().next().unwrap_or(' ');
    let second = value.chars().nth(1);
    let indicator = match first {
        '-' | '?' | ':' => second.is_none_or(char::is_whitespace),
        '#' | '&' | '*' | '!' | '|' | '>' | '\'' | '"' | '%' | '@' | '`' => true,
        _ => false,
    };
    !indicator
        && !value.contains(": ")
        && !value.contains(" #")
        && !value.ends_with(':')
        && !value.contains([',', '[', ']', '{', '}'])
        && !value.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Lookup {
        match name {
            "PORT" => Lookup::Set("4317".into()),
            "EMPTY" => Lookup::Set(String::new()),
            "TOKEN" => Lookup::Set("a\"b\\c".into()),
            "COLON" => Lookup::Set("a: b".into()),
            "MULTI" => Lookup::Set("a\nb".into()),
            _ => Lookup::Unset,
        }
    }

    fn sub(text: &str) -> Result<String, EnvError> {
        substitute(text, env).map(|s| s.text)
    }

    #[test]
    fn substitutes_and_escapes() {
        assert_eq!(
            sub("endpoint: 0.0.0.0:${env:PORT}").unwrap(),
            "endpoint: 0.0.0.0:4317"
        );
        assert_eq!(sub("x: ${env:NOPE:-7}").unwrap(), "x: 7");
        assert_eq!(sub("x: ${env:EMPTY:-7}").unwrap(), "x: 7");
        assert_eq!(sub("x: $${env:PORT}").unwrap(), "x: ${env:PORT}");
        assert_eq!(sub("x: a$b").unwrap(), "x: a$b");
        assert_eq!(
            sub("x: \"t=${env:TOKEN}\"").unwrap(),
            "x: \"t=a\\\"b\\\\c\""
        );
        assert_eq!(sub("x: 'it''s ${env:PORT}'").unwrap(), "x: 'it''s 4317'");
        assert_eq!(sub("x: ${env:COLON}").unwrap(), "x: \"a: b\"");
        assert_eq!(sub("x: 1 # ${env:NOPE}").unwrap(), "x: 1 # ${env:NOPE}");
    }

    #[test]
    fn refuses_what_it_cannot_place() {
        let e = sub("a: 1\nx: ${env:NOPE}").unwrap_err();
        assert_eq!((e.line, e.column), (2, 4));
        assert!(e.message.contains("NOPE is not set"), "{}", e.message);
        assert!(sub("x: ${NOPE}")
            .unwrap_err()
            .message
            .contains("NOPE is not set"));
        assert!(sub("x: ${http://example.com/c.yaml}")
            .unwrap_err()
            .message
            .contains("`http` provider"));
        assert!(sub("x: ${file:/nonexistent/tailgate-secret}")
            .unwrap_err()
            .message
            .contains("cannot read /nonexistent/tailgate-secret"));
        assert!(sub("x: ${env:MULTI}")
            .unwrap_err()
            .message
            .contains("line break"));
        assert!(sub("x: pre${env:COLON}").is_err());
        assert!(sub("x: ${env:PORT").is_err());
        assert!(sub("x: ${env:1BAD}").is_err());
    }

    /// `${VAR}` is `${env:VAR}`, as in the Collector's distributions (`DefaultScheme: env`).
    #[test]
    fn no_provider_is_env() {
        assert_eq!(
            sub("endpoint: 0.0.0.0:${PORT}").unwrap(),
            "endpoint: 0.0.0.0:4317"
        );
        assert_eq!(sub("x: \"${TOKEN}\"").unwrap(), "x: \"a\\\"b\\\\c\"");
        assert_eq!(sub("x: $${PORT}").unwrap(), "x: ${PORT}");
    }

    /// `${file:PATH}`: a one-line file's content, its line break dropped, placed as any value;
    /// more than one line, or a file over the bound, is refused with the reason.
    #[test]
    fn file_values() {
        let dir = std::env::temp_dir().join(format!("tailgate-env-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, content: &[u8]| {
            let path = dir.join(name);
            std::fs::write(&path, content).unwrap();
            path.to_string_lossy().into_owned()
        };
        let token = write("token", b"s3cr3t: \"x\"\n");
        assert_eq!(
            sub(&format!("token: ${{file:{token}}}")).unwrap(),
            "token: \"s3cr3t: \\\"x\\\"\""
        );
        let crlf = write("crlf", b"abc\r\n");
        assert_eq!(sub(&format!("t: '${{file:{crlf}}}'")).unwrap(), "t: 'abc'");
        let two = write("two", b"a\nb\n");
        assert!(sub(&format!("t: ${{file:{two}}}"))
            .unwrap_err()
            .message
            .contains("more than one line"));
        let big = write("big", &vec![b'a'; FILE_VALUE_BYTES_MAX as usize + 1]);
        assert!(sub(&format!("t: ${{file:{big}}}"))
            .unwrap_err()
            .message
            .contains("over 64 KiB"));
        let binary = write("binary", b"\xff\xfe");
        assert!(sub(&format!("t: ${{file:{binary}}}"))
            .unwrap_err()
            .message
            .contains("not valid UTF-8"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn columns_map_back() {
        let s = substitute("k: ${env:PORT} ${env:PORT} x", env).unwrap();
        assert_eq!(s.text, "k: 4317 4317 x");
        // `x` is at column 14 after substitution and column 28 in the file.
        assert_eq!(s.columns.original_column(1, 14), 28);
        // Inside the second value: the start of its reference.
        assert_eq!(s.columns.original_column(1, 10), 16);
        assert_eq!(s.columns.original_column(1, 2), 2);
        assert_eq!(s.columns.original_column(2, 9), 9);
    }
}
