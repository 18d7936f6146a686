//! The OpenTelemetry entry (`ot`) of a span's W3C tracestate: reading its `rv` and `th`, and
//! writing a new `th`, with the rules of the Collector's `pkg/sampling` (so a span the Collector
//! would leave alone is left alone here, and one it rewrites is rewritten to the same text).
//!
//! A tracestate is read in place, twice at most: once to validate it and find the `ot` entry,
//! once to write the new text. Nothing is allocated but the output.
//!
//! The rules, as the Collector applies them:
//! - The whole tracestate must be valid W3C syntax (at most 1024 bytes; fewer than 32
//!   comma-separated members, empty ones counted; keys `[a-z][a-z0-9_\-*/]*`, or
//!   `tenant@system` with at most 241 and 14 bytes; values of printable ASCII without `,` and
//!   `=`, not ending in a space, at most 256 bytes; keys at most 256 bytes), and its `ot` value
//!   valid OpenTelemetry syntax (at most 256 bytes; `key:value` members separated by `;`, keys
//!   `[a-z][a-z0-9]*`, values `[a-zA-Z0-9._-]*`; an `rv` of exactly 14 hex digits and a `th` of
//!   1 to 14). Anything else is unparseable: not read, not rewritten, counted.
//! - When `ot` appears twice, the last one counts; within it, the last `rv` and `th` count.
//! - Writing puts `ot` first (`rv`, then `th`, then its other members), then the other members
//!   in their order, without the optional whitespace and empty members; a `th` already
//!   stricter (greater) than the new one is kept, and the span left as it was.

use super::threshold::{Randomness, Threshold};

const W3C_LEN_MAX: usize = 1024;
/// Members (empty ones included) from which a tracestate is refused: the Collector's scanner
/// counts 32 as too many.
const W3C_MEMBERS_LIMIT: usize = 32;
const W3C_KEY_LEN_MAX: usize = 256;
const W3C_TENANT_LEN_MAX: usize = 241;
const W3C_SYSTEM_LEN_MAX: usize = 14;
const W3C_VALUE_LEN_MAX: usize = 256;
const OT_LEN_MAX: usize = 256;

/// What a tracestate's `ot` entry says about sampling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct OtSampling {
    /// Its `rv`.
    pub(crate) randomness: Option<Randomness>,
    /// Its `th`.
    pub(crate) threshold: Option<Threshold>,
}

/// A tracestate, validated, with its last `ot` value found.
struct Parsed<'a> {
    input: &'a [u8],
    ot: Option<&'a [u8]>,
    sampling: OtSampling,
}

/// Reads the sampling fields of `tracestate`; `None` when it is unparseable (see the module
/// documentation). An empty tracestate has none.
pub(crate) fn read(tracestate: &[u8]) -> Option<OtSampling> {
    parse(tracestate).map(|p| p.sampling)
}

/// What writing a threshold did to a span's tracestate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    /// The tracestate does not parse: left as it was.
    Unparseable,
    /// It carries a stricter threshold: left as it was.
    Stricter,
    /// The new text is the old one.
    Same,
    /// The new text is in the output.
    Changed,
}

/// Sets `th` to `threshold` in `tracestate`, writing the new text into `out` (cleared first)
/// when it differs from the old.
pub(crate) fn write_threshold(
    tracestate: &[u8],
    threshold: Threshold,
    out: &mut String,
) -> Written {
    out.clear();
    let Some(parsed) = parse(tracestate) else {
        return Written::Unparseable;
    };
    if parsed.sampling.threshold.is_some_and(|old| old > threshold) {
        return Written::Stricter;
    }
    // The `ot` entry, written straight into `out` (no scratch: this runs for every kept span
    // under the gate): rv, th, then its other members in order; taken back out if empty.
    out.push_str("ot=");
    let members_from = out.len();
    let sep = |s: &mut String| {
        if s.len() > members_from {
            s.push(';');
        }
    };
    if let Some(value) = parsed.ot.and_then(|ot| last_value(ot, b"rv")) {
        sep(out);
        out.push_str("rv:");
        push_ascii(out, value);
    }
    if threshold != Threshold::NEVER {
        sep(out);
        out.push_str("th:");
        threshold.write_tvalue(out);
    }
    for (key, value) in parsed.ot.into_iter().flat_map(ot_members) {
        if key != b"rv" && key != b"th" {
            sep(out);
            push_ascii(out, key);
            out.push(':');
            push_ascii(out, value);
        }
    }
    if out.len() == members_from {
        out.clear();
    }
    for (key, value) in w3c_members(parsed.input) {
        if key != b"ot" {
            if !out.is_empty() {
                out.push(',');
            }
            push_ascii(out, key);
            out.push('=');
            push_ascii(out, value);
        }
    }
    if out.as_bytes() == tracestate {
        Written::Same
    } else {
        Written::Changed
    }
}

/// Validated text is ASCII.
fn push_ascii(out: &mut String, bytes: &[u8]) {
    out.extend(bytes.iter().map(|&b| b as char));
}

fn parse(input: &[u8]) -> Option<Parsed<'_>> {
    let mut parsed = Parsed {
        input,
        ot: None,
        sampling: OtSampling::default(),
    };
    if input.is_empty() {
        return Some(parsed);
    }
    // Members as the Collector's scanner counts them: empty ones too, but not after a
    // trailing comma.
    let members =
        input.iter().filter(|&&b| b == b',').count() + 1 - usize::from(input.ends_with(b","));
    if input.len() > W3C_LEN_MAX || members >= W3C_MEMBERS_LIMIT {
        return None;
    }
    for member in input.split(|&b| b == b',') {
        let member = trim_ows(member);
        if member.is_empty() {
            continue;
        }
        let eq = member.iter().position(|&b| b == b'=')?;
        let (key, value) = (&member[..eq], &member[eq + 1..]);
        if !valid_w3c_key(key) || !valid_w3c_value(value) {
            return None;
        }
        if key == b"ot" {
            parsed.ot = Some(value);
        }
    }
    if let Some(ot) = parsed.ot {
        parsed.sampling = parse_ot(ot)?;
    }
    Some(parsed)
}

fn parse_ot(ot: &[u8]) -> Option<OtSampling> {
    if ot.is_empty() || ot.len() > OT_LEN_MAX || ot.last() == Some(&b';') {
        return None;
    }
    let mut sampling = OtSampling::default();
    for member in ot.split(|&b| b == b';') {
        let colon = member.iter().position(|&b| b == b':')?;
        let (key, value) = (&member[..colon], &member[colon + 1..]);
        let key_ok = key.first().is_some_and(u8::is_ascii_lowercase)
            && key[1..]
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let value_ok = value
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !key_ok || !value_ok {
            return None;
        }
        match key {
            b"rv" => sampling.randomness = Some(Randomness::parse(value)?),
            b"th" => sampling.threshold = Some(Threshold::parse(value)?),
            _ => {}
        }
    }
    Some(sampling)
}

/// The members of a validated tracestate, trimmed, the empty ones skipped.
fn w3c_members(input: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    input.split(|&b| b == b',').filter_map(|member| {
        let member = trim_ows(member);
        let eq = member.iter().position(|&b| b == b'=')?;
        Some((&member[..eq], &member[eq + 1..]))
    })
}

/// The members of a validated `ot` value.
fn ot_members(ot: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    ot.split(|&b| b == b';').filter_map(|member| {
        let colon = member.iter().position(|&b| b == b':')?;
        Some((&member[..colon], &member[colon + 1..]))
    })
}

fn last_value<'a>(ot: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    ot_members(ot)
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .last()
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn valid_key_chars(s: &[u8]) -> bool {
    s.iter().all(|&b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'*' | b'/')
    })
}

fn valid_w3c_key(key: &[u8]) -> bool {
    if key.is_empty() || key.len() > W3C_KEY_LEN_MAX {
        return false;
    }
    match key.iter().position(|&b| b == b'@') {
        Some(at) => {
            let (tenant, system) = (&key[..at], &key[at + 1..]);
            !tenant.is_empty()
                && !system.is_empty()
                && tenant.len() <= W3C_TENANT_LEN_MAX
                && system.len() <= W3C_SYSTEM_LEN_MAX
                && (tenant[0].is_ascii_lowercase() || tenant[0].is_ascii_digit())
                && system[0].is_ascii_lowercase()
                && valid_key_chars(&tenant[1..])
                && valid_key_chars(&system[1..])
        }
        None => key[0].is_ascii_lowercase() && valid_key_chars(&key[1..]),
    }
}

fn valid_w3c_value(value: &[u8]) -> bool {
    let nonblank = |b: u8| matches!(b, 0x21..=0x2b | 0x2d..=0x3c | 0x3e..=0x7e);
    match value.split_last() {
        Some((&last, rest)) => {
            value.len() <= W3C_VALUE_LEN_MAX
                && nonblank(last)
                && rest.iter().all(|&b| b == b' ' || nonblank(b))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn th(text: &str) -> Threshold {
        Threshold::parse(text.as_bytes()).unwrap()
    }

    fn write(tracestate: &str, threshold: Threshold) -> (Written, String) {
        let mut out = String::new();
        let written = write_threshold(tracestate.as_bytes(), threshold, &mut out);
        (written, out)
    }

    #[test]
    fn reads_rv_and_th_of_the_last_ot_entry() {
        let read = |s: &str| read(s.as_bytes());
        assert_eq!(read(""), Some(OtSampling::default()));
        assert_eq!(read("vendor=x"), Some(OtSampling::default()));
        assert_eq!(
            read(" ot=rv:0102030405060a;th:8 , b=1"),
            Some(OtSampling {
                randomness: Some(Randomness::from_u56(0x01_0203_0405_060a)),
                threshold: Some(th("8")),
            })
        );
        assert_eq!(
            read("ot=th:8,ot=th:4").unwrap().threshold,
            Some(th("4")),
            "the last ot counts"
        );
        for bad in [
            "ot=rv:123",     // rv of 3 digits
            "ot=th:",        // empty th
            "ot=th:8;",      // trailing ;
            "ot=Th:8",       // key case
            "ot=th:8;x:a+b", // value character
            "Vendor=1",      // key case
            "a=1=2",         // = in a value
            "a=b ,c",        // a member without =
            "t@=1",          // empty system
            "1a=1",          // key starts with a digit
        ] {
            assert_eq!(read(bad), None, "{bad:?}");
        }
        let many = vec!["a=1"; 32].join(",");
        assert_eq!(read(&many), None, "32 members");
        assert!(read(&vec!["a=1"; 31].join(",")).is_some());
        // A trailing comma is not a member of its own (the Collector's scanner stops there).
        assert!(read(&(vec!["a=1"; 31].join(",") + ",")).is_some());
    }

    #[test]
    fn writes_th_as_the_collector_does() {
        let always = Threshold::ALWAYS;
        assert_eq!(write("", always), (Written::Changed, "ot=th:0".into()));
        assert_eq!(
            write("vendor=a, ot=rv:0102030405060a;x:1", th("c")),
            (
                Written::Changed,
                "ot=rv:0102030405060a;th:c;x:1,vendor=a".into()
            )
        );
        assert_eq!(write("ot=th:c", th("c")), (Written::Same, "ot=th:c".into()));
        // A lower probability (a greater threshold) replaces a higher one...
        assert_eq!(
            write("ot=th:8", th("c")),
            (Written::Changed, "ot=th:c".into())
        );
        // ...never the other way round.
        assert_eq!(write("ot=th:c", th("8")).0, Written::Stricter);
        assert_eq!(write("ot=th:c,", always).0, Written::Stricter);
        assert_eq!(write("a=1=2", always).0, Written::Unparseable);
        // Keeping none leaves no th; an ot with nothing else goes.
        assert_eq!(
            write("ot=th:8,b=2", Threshold::NEVER),
            (Written::Changed, "b=2".into())
        );
        assert_eq!(
            write("a=1,,b=2", always),
            (Written::Changed, "ot=th:0,a=1,b=2".into())
        );
    }
}
