//! docs/CONFIGURATION.md names every key the configuration parser accepts, every component kind
//! and every tail-sampling policy type.
//!
//! Where the names come from: src/config/ reads YAML into `Raw*` structs that derive serde's
//! `Deserialize`, each `deny_unknown_fields`, so a struct's fields are exactly the keys its
//! mapping may carry. Component kinds (`otlp`, `tail_sampling`, `bearertokenauth`, ...) are the
//! string literals of the match arms in each `from_kind`, which picks a component's settings by
//! its kind; policy types are the `POLICY_TYPES` list the policy check accepts (and any other
//! `*_KINDS` / `*_TYPES` string list). This test reads those sources as text at test time, so a
//! field or kind added to the parser fails it until the reference documents it.
//!
//! What counts as documented: the name inside backticks in the reference, outside fenced code
//! blocks, alone (`` `name` ``) or as the last segment of a dotted path
//! (`` `receivers.otlp.protocols.grpc.name` ``); a `[]` or `[N]` after a segment and a `/NAME`
//! after a kind are ignored.
//!
//! The scanner is small on purpose. It knows the shapes src/config/ uses — one field a line,
//! `#[serde(...)]` attributes above a struct or field, `rename`, `alias`, `skip`, `flatten` — and
//! fails loudly on a shape it does not know (an enum or tuple struct deriving `Deserialize`,
//! `rename_all`, `rename(deserialize = ...)`), so a new shape is taught to it rather than
//! silently missed. What it cannot see: names matched by hand-written deserializers or checks
//! instead of serde fields (the pipeline signals `traces`, `metrics`, `logs`; `cpus: all`; value
//! spellings such as `gzip`), and whether a default or bound the reference states is right.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A name the parser accepts, and where it was found (for the failure message).
struct Accepted {
    name: String,
    /// `field of RawGrpc` or `kind in from_kind`.
    what: String,
    file: String,
    line: usize,
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, sorted, so failures list in a stable order.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/config is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The attribute starting at `lines[i]` (`#[...]`, possibly over several lines) as one string,
/// and the index of the line after it.
fn attribute(lines: &[&str], mut i: usize) -> (String, usize) {
    let mut text = String::new();
    let mut depth = 0i32;
    loop {
        let line = lines[i].trim();
        text.push_str(line);
        depth += line.matches('[').count() as i32 - line.matches(']').count() as i32;
        i += 1;
        if depth <= 0 || i == lines.len() {
            return (text, i);
        }
    }
}

/// The string literals in `text` (`"a" | "b"` gives `a`, `b`); no escapes are expected.
fn string_literals(text: &str) -> Vec<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The comma-separated parts of a `#[serde(...)]` attribute, or none for another attribute.
fn serde_parts(attr: &str) -> Vec<String> {
    match attr
        .strip_prefix("#[serde(")
        .and_then(|s| s.strip_suffix(")]"))
    {
        // Values in src/config/ hold no commas (paths and key names), so a plain split works.
        Some(inner) => inner.split(',').map(|p| p.trim().to_string()).collect(),
        None => Vec::new(),
    }
}

/// The YAML keys a field named `field` with these attributes accepts.
fn keys_of_field(field: &str, attrs: &[String], at: &str) -> Vec<String> {
    let mut primary = Some(field.to_string());
    let mut aliases = Vec::new();
    for part in attrs.iter().flat_map(|a| serde_parts(a)) {
        let (name, value) = match part.split_once('=') {
            Some((name, value)) => (name.trim(), string_literals(value).into_iter().next()),
            None => (part.as_str(), None),
        };
        match (name, value) {
            // Not read from YAML at all.
            ("skip" | "skip_deserializing", _) => return Vec::new(),
            // The flattened struct's own fields are keys here, and it is scanned as a struct
            // of its own; the field's name is no key.
            ("flatten", _) => primary = None,
            ("rename", Some(v)) => primary = Some(v),
            ("alias", Some(v)) => aliases.push(v),
            (n, _) if n.starts_with("rename(") || n.starts_with("alias(") => {
                panic!(
                    "{at}: `{part}`: the scanner reads only `rename = \"...\"` and \
                     `alias = \"...\"`; teach it this form"
                )
            }
            _ => {}
        }
    }
    primary.into_iter().chain(aliases).collect()
}

/// Every key accepted by a struct that derives `Deserialize` in one file.
fn scan_struct_fields(file: &str, text: &str, out: &mut Vec<Accepted>) {
    let lines: Vec<&str> = text.lines().collect();
    let mut pending: Vec<String> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        if line.starts_with("#[") {
            let (attr, next) = attribute(&lines, i);
            pending.push(attr);
            i = next;
            continue;
        }
        if line.is_empty() || line.starts_with("//") {
            i += 1;
            continue;
        }
        // An item: the attributes gathered above belong to it.
        let attrs = std::mem::take(&mut pending);
        let derives = attrs.iter().any(|a| {
            a.strip_prefix("#[derive(").is_some_and(|d| {
                d.split([',', ')'])
                    .any(|t| t.trim().ends_with("Deserialize"))
            })
        });
        let at = format!("{file}:{}", i + 1);
        if !derives {
            i += 1;
            continue;
        }
        assert!(
            !attrs.iter().any(|a| a.contains("rename_all")),
            "{at}: `rename_all` changes every key's name; teach the scanner to apply it"
        );
        let words: Vec<&str> = line.split_whitespace().collect();
        let kw = words
            .iter()
            .position(|w| *w == "struct" || *w == "enum")
            .unwrap_or_else(|| panic!("{at}: `{line}` derives Deserialize but is no struct"));
        assert_eq!(
            words[kw], "struct",
            "{at}: an enum derives Deserialize: its variants are YAML names the scanner cannot \
             read yet; teach it, or write the enum's Deserialize by hand as RawCpus does"
        );
        assert!(
            line.ends_with('{'),
            "{at}: `{line}`: only structs with named fields are scanned"
        );
        let owner = words[kw + 1].trim_end_matches('{').to_string();
        i += 1;
        let mut field_attrs: Vec<String> = Vec::new();
        while lines[i].trim() != "}" {
            let l = lines[i].trim();
            if l.starts_with("#[") {
                let (attr, next) = attribute(&lines, i);
                field_attrs.push(attr);
                i = next;
                continue;
            }
            if l.is_empty() || l.starts_with("//") {
                i += 1;
                continue;
            }
            let at = format!("{file}:{}", i + 1);
            // `[pub[(crate|super)]] name: Type,`
            let decl = l
                .strip_prefix("pub(crate) ")
                .or_else(|| l.strip_prefix("pub(super) "))
                .or_else(|| l.strip_prefix("pub "))
                .unwrap_or(l);
            let name = decl
                .split_once(':')
                .map(|(n, _)| n.trim().trim_start_matches("r#"))
                .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_alphanumeric() || c == '_'))
                .unwrap_or_else(|| panic!("{at}: cannot read a field from `{l}`"));
            for key in keys_of_field(name, &field_attrs, &at) {
                out.push(Accepted {
                    name: key,
                    what: format!("field of {owner}"),
                    file: file.to_string(),
                    line: i + 1,
                });
            }
            field_attrs.clear();
            // A type written over several lines ends at the line with the field's comma.
            let code = |line: &str| line.split("//").next().unwrap_or("").trim_end().to_string();
            while !code(lines[i]).ends_with(',') && lines[i + 1].trim() != "}" {
                i += 1;
            }
            i += 1;
        }
        i += 1;
    }
}

/// Component kinds: the string literals left of `=>` in each `fn from_kind`; and the entries
/// of `const *_KINDS` / `*_TYPES: &[&str]` lists (policy types).
fn scan_kinds(file: &str, text: &str, out: &mut Vec<Accepted>) {
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        // A declaration without a body (the trait's) has no arms.
        if line.trim_start().starts_with("fn from_kind") && !line.trim_end().ends_with(';') {
            let indent = line.len() - line.trim_start().len();
            i += 1;
            // The function ends at the first `}` at its own indentation.
            while !(lines[i].trim() == "}"
                && lines[i].len() - lines[i].trim_start().len() == indent)
            {
                if let Some((pattern, _)) = lines[i].split_once("=>") {
                    for kind in string_literals(pattern) {
                        out.push(Accepted {
                            name: kind,
                            what: "component kind in from_kind".to_string(),
                            file: file.to_string(),
                            line: i + 1,
                        });
                    }
                }
                i += 1;
            }
        } else if let Some(name) = list_constant(line) {
            let start = i;
            let mut body = String::new();
            while !body.contains("];") {
                body.push_str(lines[i]);
                i += 1;
            }
            let body = body.split_once("= &[").map_or("", |(_, b)| b);
            for kind in string_literals(body) {
                out.push(Accepted {
                    name: kind,
                    what: format!("entry of {name}"),
                    file: file.to_string(),
                    line: start + 1,
                });
            }
            continue;
        }
        i += 1;
    }
}

/// The name of a `const NAME_KINDS: &[&str]` or `const NAME_TYPES: &[&str]` declared here.
fn list_constant(line: &str) -> Option<&str> {
    let line = line.trim_start();
    let rest = line
        .strip_prefix("pub(crate) ")
        .or_else(|| line.strip_prefix("pub "))
        .unwrap_or(line);
    let rest = rest.strip_prefix("const ")?;
    let (name, ty) = rest.split_once(':')?;
    let listed = name.ends_with("_KINDS") || name.ends_with("_TYPES");
    (listed && ty.trim_start().starts_with("&[&str]")).then_some(name)
}

/// The keys the reference documents: inline code spans outside fenced blocks that read as a
/// key or a dotted path, by their last segment.
fn documented_keys(doc: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut fenced = false;
    for line in doc.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        for span in line.split('`').skip(1).step_by(2) {
            let path_like = !span.is_empty()
                && span
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-/[]".contains(c));
            if !path_like {
                continue;
            }
            let last = span.rsplit('.').next().unwrap_or(span);
            // `readers[]`, `policies[0]`: the key is before the index.
            let last = last.split('[').next().unwrap_or(last);
            keys.insert(last.to_string());
            // `otlp/NAME`: the kind is before the name.
            if let Some((kind, _)) = last.split_once('/') {
                keys.insert(kind.to_string());
            }
        }
    }
    keys
}

/// What the parser accepts, read from src/config/.
fn accepted() -> Vec<Accepted> {
    let root = manifest_dir();
    let mut out = Vec::new();
    for path in rust_files(&root.join("src/config")) {
        let text = std::fs::read_to_string(&path).expect("a readable source file");
        let file = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        scan_struct_fields(&file, &text, &mut out);
        scan_kinds(&file, &text, &mut out);
    }
    out
}

#[test]
fn the_scanner_finds_what_the_parser_accepts() {
    // If a refactor changes the shapes the scanner reads, it would find nothing and the real
    // test below would pass without looking: a few names it must find keep it honest.
    let found: BTreeSet<String> = accepted().into_iter().map(|a| a.name).collect();
    for name in [
        // fields, from several files and depths
        "max_recv_msg_size_mib",
        "permit_without_stream",
        "client_ca_file",
        "sending_queue",
        "decision_wait",
        "type",
        "composite_sub_policy",
        "spin_before_park_us",
        "without_type_suffix",
        "htpasswd",
        // kinds and policy types
        "otlp",
        "otlphttp",
        "tail_sampling",
        "bearertokenauth",
        "zpages",
        "always_sample",
        "trace_flags",
    ] {
        assert!(
            found.contains(name),
            "the scanner no longer finds `{name}` in src/config/: fix the scanner in \
             tests/config_reference.rs before trusting the reference check"
        );
    }
}

#[test]
fn the_reference_documents_every_accepted_key() {
    let reference = manifest_dir().join("docs/CONFIGURATION.md");
    let doc = std::fs::read_to_string(&reference).expect("docs/CONFIGURATION.md exists");
    let documented = documented_keys(&doc);
    let mut missing: Vec<String> = Vec::new();
    let mut seen = BTreeSet::new();
    for a in accepted() {
        if !documented.contains(&a.name) && seen.insert(a.name.clone()) {
            missing.push(format!(
                "  `{}` ({}, {}:{})",
                a.name, a.what, a.file, a.line
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "docs/CONFIGURATION.md does not document {} name(s) the parser accepts:\n{}\n\
         Add each as a key in backticks, with its full path (e.g. \
         `receivers.otlp.protocols.grpc.NAME`), its default, its bounds and its Collector \
         equivalent.",
        missing.len(),
        missing.join("\n")
    );
}
