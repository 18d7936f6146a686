//! The one error type of the config layer: what was wrong, at which key, on which line.
//!
//! A [`ConfigError`] displays as `FILE:LINE:COL: KEY.PATH: message`, the shape compilers use, so
//! editors and terminals link it to the spot. Line and column are 1-based and count characters
//! of the file as written (before `${env:...}` substitution); the key path is the Collector's
//! dotted form with list indexes in brackets (`processors.tail_sampling.policies[2].latency`).

use std::fmt;

/// A configuration that cannot be used, and where the problem is. Boxed: errors are rare and
/// `Result<Config, ConfigError>` stays one pointer wide on the error side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(Box<Details>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Details {
    file: String,
    line: Option<usize>,
    column: Option<usize>,
    path: Option<String>,
    kind: ConfigErrorKind,
}

/// What made a configuration unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigErrorKind {
    /// The file could not be read.
    Read(String),
    /// The file is larger than any sane configuration.
    TooLarge {
        /// The file's length in bytes.
        len: usize,
        /// The most a configuration file may hold, in bytes.
        max: usize,
    },
    /// The text is not well-formed YAML.
    Syntax(String),
    /// The same key twice in one mapping (YAML forbids it; silently keeping one would hide a
    /// mistake).
    DuplicateKey {
        /// The repeated key.
        key: String,
        /// The line of its first occurrence, where known.
        first_line: Option<usize>,
    },
    /// A key this section does not have: a typo, or a Collector setting tailgate lacks.
    UnknownKey {
        /// The key as written.
        key: String,
        /// The keys this section has, for the message.
        expected: String,
    },
    /// A key that must be present is absent.
    MissingKey(String),
    /// A value of the wrong type, out of range, or inconsistent with another value.
    InvalidValue(String),
    /// A setting the Collector has and tailgate parses, but does not support (yet).
    Unsupported(String),
    /// A `${...}` reference that cannot be substituted.
    Substitution(String),
    /// A component type tailgate does not have.
    UnknownComponent {
        /// `receiver`, `processor`, `exporter`.
        section: &'static str,
        /// The type as written.
        kind: String,
        /// The types tailgate has in that section.
        supported: &'static [&'static str],
    },
    /// A pipeline refers to a component that is missing, or that cannot serve it.
    Reference(String),
}

impl ConfigError {
    pub(crate) fn new(file: &str, kind: ConfigErrorKind) -> ConfigError {
        ConfigError(Box::new(Details {
            file: file.to_string(),
            line: None,
            column: None,
            path: None,
            kind,
        }))
    }

    pub(crate) fn at(mut self, line: usize, column: usize) -> ConfigError {
        self.0.line = Some(line);
        self.0.column = Some(column);
        self
    }

    pub(crate) fn with_path(mut self, path: impl Into<String>) -> ConfigError {
        let path = path.into();
        self.0.path = (!path.is_empty()).then_some(path);
        self
    }

    /// The file name, or `<embedded default>`.
    pub fn file(&self) -> &str {
        &self.0.file
    }

    /// 1-based line of the offending key or value, when known.
    pub fn line(&self) -> Option<usize> {
        self.0.line
    }

    /// 1-based column (in characters of the file as written), when known.
    pub fn column(&self) -> Option<usize> {
        self.0.column
    }

    /// The key path (`receivers.otlp.protocols.grpc.endpoint`), when the problem has one.
    pub fn path(&self) -> Option<&str> {
        self.0.path.as_deref()
    }

    /// What was wrong.
    pub fn kind(&self) -> &ConfigErrorKind {
        &self.0.kind
    }

    /// The message alone, without file, line or key path.
    pub fn message(&self) -> String {
        self.0.kind.to_string()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.0;
        f.write_str(&d.file)?;
        if let Some(line) = d.line {
            write!(f, ":{line}")?;
            if let Some(column) = d.column {
                write!(f, ":{column}")?;
            }
        }
        f.write_str(": ")?;
        if let Some(path) = &d.path {
            write!(f, "{path}: ")?;
        }
        write!(f, "{}", d.kind)
    }
}

impl fmt::Display for ConfigErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigErrorKind::Read(why) => write!(f, "cannot read the file: {why}"),
            ConfigErrorKind::TooLarge { len, max } => write!(
                f,
                "the file is {len} bytes; a configuration may have at most {max}"
            ),
            ConfigErrorKind::Syntax(why) => write!(f, "not valid YAML: {why}"),
            ConfigErrorKind::DuplicateKey { key, first_line } => {
                write!(f, "key `{key}` appears twice in the same mapping")?;
                if let Some(line) = first_line {
                    write!(f, " (first on line {line})")?;
                }
                Ok(())
            }
            ConfigErrorKind::UnknownKey { key, expected } => {
                write!(f, "unknown key `{key}`")?;
                if !expected.is_empty() {
                    write!(f, "; expected {expected}")?;
                }
                Ok(())
            }
            ConfigErrorKind::MissingKey(key) => write!(f, "missing required key `{key}`"),
            ConfigErrorKind::InvalidValue(why)
            | ConfigErrorKind::Unsupported(why)
            | ConfigErrorKind::Substitution(why)
            | ConfigErrorKind::Reference(why) => f.write_str(why),
            ConfigErrorKind::UnknownComponent {
                section,
                kind,
                supported,
            } => {
                write!(f, "unknown {section} type `{kind}`; tailgate has ")?;
                for (i, s) in supported.iter().enumerate() {
                    match i {
                        0 => write!(f, "`{s}`")?,
                        i if i + 1 == supported.len() => write!(f, " and `{s}`")?,
                        _ => write!(f, ", `{s}`")?,
                    }
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// A serde_norway error taken apart: its key path, its message and its position.
pub(crate) struct SerdeParts {
    pub(crate) path: Option<String>,
    pub(crate) kind: ConfigErrorKind,
    pub(crate) line: Option<usize>,
    pub(crate) column: Option<usize>,
}

/// Splits a serde_norway error into path, kind and position.
///
/// serde_norway exposes the position but not the path: its message reads
/// `PATH: MESSAGE at line L column C` (no `PATH: ` at the document root). The suffix is removed
/// by matching the known position; the path is the text before the first `: ` when that text
/// has no spaces (serde's own messages start with words, as in `invalid type: ...`). For an
/// unknown key, serde's path is the enclosing mapping, so the key is appended.
pub(crate) fn split_serde_error(err: &serde_norway::Error) -> SerdeParts {
    let mut text = err.to_string();
    let (line, column) = match err.location() {
        Some(loc) => {
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            if let Some(i) = text.find(&suffix) {
                text.replace_range(i..i + suffix.len(), "");
            }
            (Some(loc.line()), Some(loc.column()))
        }
        None => (None, None),
    };
    let (mut path, message) = match text.find(": ") {
        Some(i) if is_serde_path(&text[..i]) => {
            (Some(text[..i].to_string()), text[i + 2..].to_string())
        }
        _ => (None, text),
    };
    let kind = if let Some(rest) = message.strip_prefix("unknown field `") {
        let (key, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let expected = expected.trim_start_matches(", expected ").trim();
        let expected = if expected == "there are no fields" {
            "no keys here".to_string()
        } else {
            expected.replace("one of ", "one of: ")
        };
        path = Some(match path {
            Some(p) => format!("{p}.{key}"),
            None => key.to_string(),
        });
        ConfigErrorKind::UnknownKey {
            key: key.to_string(),
            expected,
        }
    } else if let Some(rest) = message.strip_prefix("missing field `") {
        ConfigErrorKind::MissingKey(rest.trim_end_matches('`').to_string())
    } else {
        ConfigErrorKind::InvalidValue(humanize(&message))
    };
    SerdeParts {
        path,
        kind,
        line,
        column,
    }
}

fn is_serde_path(text: &str) -> bool {
    !text.is_empty() && !text.contains(char::is_whitespace) && !text.contains('`')
}

/// serde's derived messages name Rust types (`expected struct RawBatch`); users see YAML.
fn humanize(message: &str) -> String {
    let mut out = message.to_string();
    if let Some(i) = out.find("expected struct ") {
        let end = out[i + 16..]
            .find([',', ' '])
            .map_or(out.len(), |n| i + 16 + n);
        out.replace_range(i..end, "expected a mapping of settings");
    }
    out.replace("invalid type: map,", "invalid type: a mapping,")
        .replace("invalid type: sequence,", "invalid type: a list,")
        .replace("expected a sequence", "expected a list")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_has_file_line_column_path() {
        let e = ConfigError::new("gw.yaml", ConfigErrorKind::MissingKey("endpoint".into()))
            .at(12, 5)
            .with_path("exporters.otlp");
        assert_eq!(
            e.to_string(),
            "gw.yaml:12:5: exporters.otlp: missing required key `endpoint`"
        );
        let e = ConfigError::new("gw.yaml", ConfigErrorKind::Read("gone".into()));
        assert_eq!(e.to_string(), "gw.yaml: cannot read the file: gone");
    }

    #[test]
    fn unknown_component_lists_supported() {
        let kind = ConfigErrorKind::UnknownComponent {
            section: "exporter",
            kind: "kafka".into(),
            supported: &["otlp", "otlphttp", "debug"],
        };
        assert_eq!(
            kind.to_string(),
            "unknown exporter type `kafka`; tailgate has `otlp`, `otlphttp` and `debug`"
        );
    }

    #[test]
    fn humanize_names_yaml_not_rust() {
        assert_eq!(
            humanize("invalid type: integer `5`, expected struct RawBatch"),
            "invalid type: integer `5`, expected a mapping of settings"
        );
    }
}
