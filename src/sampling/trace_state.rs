//! `trace_state`: a span whose W3C `tracestate` has the key with one of the values.
//!
//! The Collector parses each span's trace state with OpenTelemetry-Go's
//! `trace.ParseTraceState` and asks `Get(key)`; a trace state that does not parse matches
//! nothing. [`lookup`] reproduces that parser's acceptance rules without allocating: members
//! split on `,` (empty members skipped), key and value split at the first `=`, blanks and tabs
//! trimmed before the key and after the value only, W3C key and value grammars, no duplicate
//! keys, at most 32 members.

use std::collections::HashSet;

/// The most list members a trace state may have.
const MEMBERS_MAX: usize = 32;
/// The longest value.
const VALUE_LEN_MAX: usize = 256;
/// Key and value together must stay under this for a configured value to be usable, as the
/// Collector's filter requires (`len(key)+len(value) < 256`).
const MEMBER_LEN_LIMIT: usize = 256;

/// A compiled `trace_state` policy.
#[derive(Debug, Clone)]
pub(crate) struct TraceStateFilter {
    key: Box<[u8]>,
    values: HashSet<Box<[u8]>>,
}

impl TraceStateFilter {
    pub(crate) fn new(key: &str, values: &[String]) -> Self {
        let values = values
            .iter()
            .filter(|v| !v.is_empty() && key.len() + v.len() < MEMBER_LEN_LIMIT)
            .map(|v| v.as_bytes().into())
            .collect();
        TraceStateFilter {
            key: key.as_bytes().into(),
            values,
        }
    }

    /// Whether this span's trace state matches.
    pub(crate) fn matches(&self, trace_state: &[u8]) -> bool {
        lookup(trace_state, &self.key).is_some_and(|value| self.values.contains(value))
    }
}

/// `ParseTraceState(trace_state).Get(key)`: the value of `key`, or `None` when the key is
/// absent or the trace state does not parse.
pub(crate) fn lookup<'t>(trace_state: &'t [u8], key: &[u8]) -> Option<&'t [u8]> {
    parse_get(trace_state, key).ok().flatten()
}

/// A trace state OpenTelemetry-Go's `ParseTraceState` refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unparsable;

/// `ParseTraceState(trace_state)`, then `Get(key)` on the result: `Ok(None)` when the key is
/// absent (Go's `Get` answers ""), [`Unparsable`] when the trace state does not parse.
pub(crate) fn parse_get<'t>(
    trace_state: &'t [u8],
    key: &[u8],
) -> Result<Option<&'t [u8]>, Unparsable> {
    let mut keys: [&[u8]; MEMBERS_MAX] = [&[]; MEMBERS_MAX];
    let mut count = 0;
    let mut found = None;
    for member in trace_state.split(|&b| b == b',') {
        if member.is_empty() {
            continue;
        }
        let eq = member.iter().position(|&b| b == b'=').ok_or(Unparsable)?;
        let k = trim_start(&member[..eq]);
        let v = trim_end(&member[eq + 1..]);
        if !valid_key(k) || !valid_value(v) || keys[..count].contains(&k) {
            return Err(Unparsable);
        }
        if count == MEMBERS_MAX {
            return Err(Unparsable);
        }
        keys[count] = k;
        count += 1;
        if k == key {
            found = Some(v);
        }
    }
    Ok(found)
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_start(s: &[u8]) -> &[u8] {
    let from = s.iter().position(|&b| !is_blank(b)).unwrap_or(s.len());
    &s[from..]
}

fn trim_end(s: &[u8]) -> &[u8] {
    let to = s.iter().rposition(|&b| !is_blank(b)).map_or(0, |i| i + 1);
    &s[..to]
}

/// `value = 0*255(chr) nblk-chr`, `chr = %x20 / nblk-chr`, `nblk-chr = %x21-2B / %x2D-3C /
/// %x3E-7E`.
fn valid_value(v: &[u8]) -> bool {
    let Some((&last, rest)) = v.split_last() else {
        return false;
    };
    v.len() <= VALUE_LEN_MAX
        && rest
            .iter()
            .all(|&c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
        && (0x21..=0x7e).contains(&last)
        && last != b','
        && last != b'='
}

/// `key = simple-key / tenant-id "@" system-id`, split at the first `@`:
/// `simple-key = lcalpha 0*255(rest)`, `tenant-id = (lcalpha / DIGIT) 0*240(rest)`,
/// `system-id = lcalpha 0*13(rest)`.
fn valid_key(k: &[u8]) -> bool {
    match k.iter().position(|&b| b == b'@') {
        None => key_part(k, 255, false),
        Some(at) => key_part(&k[..at], 240, true) && key_part(&k[at + 1..], 13, false),
    }
}

/// A key part: its first byte (a lowercase letter, or also a digit for a tenant id), then at
/// most `rest_max` bytes checked as Go checks them (see [`valid_key_rest`]).
fn key_part(part: &[u8], rest_max: usize, digit_first: bool) -> bool {
    let Some((&first, rest)) = part.split_first() else {
        return false;
    };
    let first_ok = first.is_ascii_lowercase() || (digit_first && first.is_ascii_digit());
    first_ok && rest.len() <= rest_max && valid_key_rest(rest)
}

/// `rest = lcalpha / DIGIT / "_" / "-" / "*" / "/"`. Go walks this part by runes and checks
/// each rune's low byte (`byte(r)`), so a multi-byte character whose code point ends in an
/// allowed byte passes and invalid UTF-8 (U+FFFD, low byte 0xFD) fails; done the same way here.
fn valid_key_rest(rest: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(rest) else {
        return false;
    };
    text.chars().all(|c| {
        let b = c as u32 as u8;
        b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'*' | b'/')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'t>(ts: &'t str, key: &str) -> Option<&'t str> {
        lookup(ts.as_bytes(), key.as_bytes()).map(|v| std::str::from_utf8(v).unwrap())
    }

    #[test]
    fn reads_members_as_go_does() {
        assert_eq!(
            get("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", "congo"),
            Some("t61rcWkgMzE")
        );
        assert_eq!(
            get("a=1,,b=2,", "b"),
            Some("2"),
            "empty members are skipped"
        );
        assert_eq!(
            get("  a=1\t ,\tb=2 ", "b"),
            Some("2"),
            "blanks trimmed outside"
        );
        assert_eq!(
            get("a= 1", "a"),
            Some(" 1"),
            "a leading blank in a value is a chr"
        );
        assert_eq!(get("t0@vendor=x", "t0@vendor"), Some("x"));
        assert_eq!(get("a=1", "b"), None);
        assert_eq!(get("", "a"), None);
    }

    #[test]
    fn an_invalid_trace_state_matches_nothing() {
        assert_eq!(get("a=1,b", "a"), None, "member without '='");
        assert_eq!(get("a=1,a=2", "a"), None, "duplicate key");
        assert_eq!(get("a=1,B=2", "a"), None, "uppercase key");
        assert_eq!(get("a =1", "a"), None, "blank after the key");
        assert_eq!(get("a=1=2", "a"), None, "'=' in the value");
        assert_eq!(get("a=", "a"), None, "empty value");
        assert_eq!(
            get("a=x ,b=", "a"),
            None,
            "a later bad member spoils the list"
        );
        assert_eq!(get("@v=1", "@v"), None, "empty tenant");
        assert_eq!(get("t@v@w=1", "t@v@w"), None, "two '@'");
        assert_eq!(
            get("t@abcdefghijklmno=1", "t@abcdefghijklmno"),
            None,
            "system id > 14"
        );
    }

    #[test]
    fn at_most_32_members() {
        let mut ts: Vec<String> = (0..32).map(|i| format!("k{i}=v")).collect();
        assert_eq!(get(&ts.join(","), "k31"), Some("v"));
        ts.push("k32=v".to_string());
        assert_eq!(get(&ts.join(","), "k0"), None);
    }

    #[test]
    fn value_and_key_lengths() {
        let value = "v".repeat(VALUE_LEN_MAX);
        assert!(get(&format!("a={value}"), "a").is_some());
        assert!(get(&format!("a={value}v"), "a").is_none());
        let key = format!("a{}", "b".repeat(255));
        assert!(get(&format!("{key}=1"), &key).is_some());
        let key = format!("a{}", "b".repeat(256));
        assert!(get(&format!("{key}=1"), &key).is_none());
    }

    #[test]
    fn key_runes_are_checked_by_their_low_byte_as_in_go() {
        // U+0161 ends in 0x61 ('a'): Go accepts it. U+00E9 ends in 0xE9: refused.
        assert_eq!(get("k\u{161}=1", "k\u{161}"), Some("1"));
        assert_eq!(get("k\u{e9}=1", "k\u{e9}"), None);
        assert_eq!(lookup(b"k\xff=1", b"k\xff"), None);
    }

    #[test]
    fn configured_values_too_long_for_the_key_never_match() {
        let long = "v".repeat(252); // 4 + 252 = 256: one too many
        let fits = "v".repeat(251);
        let values = [long.clone(), fits.clone(), "x".to_string()];
        let filter = TraceStateFilter::new("key3", &values);
        assert!(!filter.matches(format!("key3={long}").as_bytes()));
        assert!(filter.matches(format!("key3={fits}").as_bytes()));
        assert!(filter.matches(b"key3=x"));
        assert!(!filter.matches(b"key3=y"));
        assert!(!filter.matches(b"key4=x"));
    }
}
