//! Values that several sections share: key paths, component ids, listen and dial endpoints,
//! HTTP URLs and Go-style durations.
//!
//! Each parser returns a plain message on failure; the caller knows the key path and turns the
//! message into a located [`super::ConfigError`].

use std::fmt;
use std::time::Duration;

/// Where a value sits in the document: `processors.tail_sampling.policies[2].latency`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct KeyPath(Vec<Seg>);

/// One step of a [`KeyPath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

impl KeyPath {
    /// The document root.
    pub(crate) fn root() -> KeyPath {
        KeyPath(Vec::new())
    }

    /// This path extended by a mapping key.
    pub(crate) fn key(&self, key: impl Into<String>) -> KeyPath {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.into()));
        KeyPath(segs)
    }

    /// This path extended by a sequence index.
    pub(crate) fn index(&self, index: usize) -> KeyPath {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        KeyPath(segs)
    }

    pub(crate) fn segs(&self) -> &[Seg] {
        &self.0
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(key) if i == 0 => f.write_str(key)?,
                Seg::Key(key) => write!(f, ".{key}")?,
                Seg::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// The longest component type the Collector accepts (its `type` regex allows 63 characters).
const COMPONENT_TYPE_LEN_MAX: usize = 63;
/// The longest component name after the `/` (the Collector's limit).
const COMPONENT_NAME_LEN_MAX: usize = 1024;

/// A component's id as the Collector writes it: `type` or `type/name` (`otlp`, `otlp/backup`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ComponentId {
    /// The component type: `otlp`, `batch`, `tail_sampling`, ...
    pub kind: String,
    /// The instance name after the `/`, if any.
    pub name: Option<String>,
}

impl ComponentId {
    /// Parses `type` or `type/name` with the Collector's rules: the type is a letter followed by
    /// letters, digits and `_`; the name is non-empty and has no spaces or control characters.
    pub fn parse(text: &str) -> Result<ComponentId, String> {
        let (kind, name) = match text.split_once('/') {
            Some((kind, name)) => (kind, Some(name)),
            None => (text, None),
        };
        let mut chars = kind.chars();
        let kind_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && kind.len() <= COMPONENT_TYPE_LEN_MAX;
        if !kind_ok {
            return Err(format!(
                "`{text}` is not a component id: the type must be a letter followed by up to \
                 {} letters, digits or `_`",
                COMPONENT_TYPE_LEN_MAX - 1
            ));
        }
        if let Some(name) = name {
            if name.is_empty() {
                return Err(format!(
                    "`{text}` is not a component id: the name after `/` is empty"
                ));
            }
            if name.chars().count() > COMPONENT_NAME_LEN_MAX {
                return Err(format!(
                    "component name is longer than {COMPONENT_NAME_LEN_MAX} characters"
                ));
            }
            if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(format!(
                    "`{text}` is not a component id: the name contains a space or control character"
                ));
            }
        }
        Ok(ComponentId {
            kind: kind.to_string(),
            name: name.map(str::to_string),
        })
    }
}

impl fmt::Display for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{}/{name}", self.kind),
            None => f.write_str(&self.kind),
        }
    }
}

/// The longest host name DNS allows.
const HOST_LEN_MAX: usize = 253;

/// A `host:port` pair: an address to listen on or to dial.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// A host name, an IPv4 address or an IPv6 address (without brackets); empty means every
    /// interface, as in Go's `:4317`.
    pub host: String,
    /// The TCP port; 0 (listen only) lets the kernel choose.
    pub port: u16,
}

impl Endpoint {
    /// Parses `host:port`, `[v6]:port` or `:port`.
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("`{text}` has `[` without a closing `]`"))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(format!("`{host}` in `{text}` is not an IPv6 address"));
            }
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| format!("`{text}` is not host:port (the port is missing)"))?;
            (host, port)
        } else {
            let (host, port) = text
                .rsplit_once(':')
                .ok_or_else(|| format!("`{text}` is not host:port (the port is missing)"))?;
            if host.contains(':') {
                return Err(format!(
                    "`{text}` is not host:port (write an IPv6 address in brackets: [::1]:4317)"
                ));
            }
            check_host(host).map_err(|why| format!("`{text}` is not host:port ({why})"))?;
            (host, port)
        };
        let port = parse_port(port).map_err(|why| format!("`{text}` is not host:port ({why})"))?;
        Ok(Endpoint {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

fn parse_port(port: &str) -> Result<u16, String> {
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("port `{port}` is not a number"));
    }
    port.parse::<u16>()
        .map_err(|_| format!("port {port} is above 65535"))
}

/// Accepts an empty host, an IPv4 address or a DNS name; IPv6 hosts come in brackets and are
/// checked by the caller.
fn check_host(host: &str) -> Result<(), String> {
    if host.len() > HOST_LEN_MAX {
        return Err(format!("the host is longer than {HOST_LEN_MAX} characters"));
    }
    let ok = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!("`{host}` is not a host name or IP address"))
    }
}

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `http://`: plain text.
    Http,
    /// `https://`: TLS.
    Https,
}

impl Scheme {
    /// The scheme's name as written in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    /// Splits `http://` or `https://` (any case) off the front of `text`.
    pub(crate) fn strip(text: &str) -> Option<(Scheme, &str)> {
        let (scheme, rest) = text.split_once("://")?;
        if scheme.eq_ignore_ascii_case("http") {
            Some((Scheme::Http, rest))
        } else if scheme.eq_ignore_ascii_case("https") {
            Some((Scheme::Https, rest))
        } else {
            None
        }
    }
}

/// An absolute `http://` or `https://` URL, as the OTLP/HTTP exporter posts to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpUrl {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Where to connect; the port is the scheme's default when the URL has none.
    pub endpoint: Endpoint,
    /// The path, starting with `/` (just `/` when the URL has none).
    pub path: String,
}

impl HttpUrl {
    /// Parses an absolute HTTP(S) URL. Query strings, fragments and user info are refused: OTLP
    /// endpoints have none, and user info would put a secret in logs.
    pub fn parse(text: &str) -> Result<HttpUrl, String> {
        let (scheme, rest) = Scheme::strip(text)
            .ok_or_else(|| format!("`{text}` is not a URL starting with http:// or https://"))?;
        if rest.contains(['?', '#']) {
            return Err(format!(
                "`{text}` has a query string or fragment, which OTLP endpoints do not use"
            ));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(format!(
                "`{text}` has user info before the host; send credentials in `headers` instead"
            ));
        }
        if authority.is_empty() {
            return Err(format!("`{text}` has no host"));
        }
        let endpoint = if authority.ends_with(']') || !authority.contains(':') {
            // No port: the scheme's default.
            let host = authority
                .strip_prefix('[')
                .and_then(|a| a.strip_suffix(']'))
                .unwrap_or(authority);
            if authority.starts_with('[') {
                if host.parse::<std::net::Ipv6Addr>().is_err() {
                    return Err(format!("`{host}` in `{text}` is not an IPv6 address"));
                }
            } else {
                check_host(host).map_err(|why| format!("`{text}`: {why}"))?;
            }
            Endpoint {
                host: host.to_string(),
                port: scheme.default_port(),
            }
        } else {
            Endpoint::parse(authority).map_err(|why| format!("in `{text}`: {why}"))?
        };
        if endpoint.host.is_empty() {
            return Err(format!("`{text}` has no host"));
        }
        Ok(HttpUrl {
            scheme,
            endpoint,
            path: path.to_string(),
        })
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme.as_str(),
            self.endpoint,
            self.path
        )
    }
}

/// Whether `name` is an HTTP header name (a token: RFC 9110, 5.1 and 5.6.2).
pub(crate) fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

/// Parses a duration as Go's `time.ParseDuration` does (the Collector's format): one or more
/// decimal numbers, each with a unit among `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`, as in
/// `200ms`, `1.5s` or `1h30m`; `0` alone is zero. Negative durations are refused: no setting
/// here has a use for one.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = |why: &str| {
        format!("`{text}` is not a duration ({why}); write a number and a unit: 200ms, 5s, 1m, 1h")
    };
    let s = text.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.starts_with('-') {
        return Err(format!(
            "`{text}` is negative; a duration here must be 0 or more"
        ));
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.is_empty() {
        return Err(bad("it is empty"));
    }
    let mut total_ns: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let unit_ns: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(bad("a number has no unit")),
            other => return Err(bad(&format!("unknown unit `{other}`"))),
        };
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && frac.is_empty() {
            return Err(bad("a unit has no number"));
        }
        if frac.contains('.') {
            return Err(bad("a number has two decimal points"));
        }
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad("a number is too large"))?
        };
        let mut part_ns = whole
            .checked_mul(unit_ns)
            .ok_or_else(|| bad("it is too long"))?;
        // The fraction, digit by digit, as Go does: precise to the nanosecond, rest truncated.
        let mut scale = unit_ns;
        for digit in frac.bytes() {
            scale /= 10;
            part_ns += u128::from(digit - b'0') * scale;
        }
        total_ns = total_ns
            .checked_add(part_ns)
            .ok_or_else(|| bad("it is too long"))?;
    }
    let secs = u64::try_from(total_ns / 1_000_000_000).map_err(|_| bad("it is too long"))?;
    Ok(Duration::new(secs, (total_ns % 1_000_000_000) as u32))
}

/// Formats a duration the way the Collector writes one (`5s`, `200ms`, `1m30s`), for messages.
pub(crate) fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".to_string();
    }
    if d.subsec_nanos() != 0 {
        return if d.subsec_millis() * 1_000_000 == d.subsec_nanos() {
            format!("{}ms", d.as_millis())
        } else {
            format!("{ns}ns")
        };
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_follow_go() {
        let ok = [
            ("0", Duration::ZERO),
            ("5s", Duration::from_secs(5)),
            ("200ms", Duration::from_millis(200)),
            ("1m", Duration::from_secs(60)),
            ("1h", Duration::from_secs(3600)),
            ("1h30m", Duration::from_secs(5400)),
            ("1.5s", Duration::from_millis(1500)),
            (".5s", Duration::from_millis(500)),
            ("10us", Duration::from_micros(10)),
            ("10µs", Duration::from_micros(10)),
            ("7ns", Duration::from_nanos(7)),
        ];
        for (text, want) in ok {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
        for bad in ["5", "5 parsecs", "5x", "s", "-1s", "", "1..5s", "1.2.3s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_format_back() {
        for text in ["5s", "200ms", "1m30s", "1h", "0s", "7ns"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("0.0.0.0:4317").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("0.0.0.0", 4317));
        let e = Endpoint::parse("[::1]:4318").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 4318));
        assert_eq!(e.to_string(), "[::1]:4318");
        assert_eq!(Endpoint::parse(":8888").unwrap().host, "");
        for bad in [
            "localhost",
            "host:",
            "host:99999",
            "::1:80",
            "[zz]:80",
            "a b:80",
            "h:-1",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls() {
        let u = HttpUrl::parse("https://otlp.example.com/base").unwrap();
        assert_eq!(u.endpoint.port, 443);
        assert_eq!(u.path, "/base");
        let u = HttpUrl::parse("http://[::1]:4318").unwrap();
        assert_eq!((u.endpoint.host.as_str(), u.endpoint.port), ("::1", 4318));
        assert_eq!(u.to_string(), "http://[::1]:4318/");
        for bad in [
            "otlp.example.com",
            "ftp://x",
            "http://",
            "http://u:p@h/",
            "http://h/?a=1",
        ] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn component_ids() {
        let id = ComponentId::parse("otlp/backup").unwrap();
        assert_eq!(
            (id.kind.as_str(), id.name.as_deref()),
            ("otlp", Some("backup"))
        );
        assert_eq!(id.to_string(), "otlp/backup");
        for bad in ["", "otlp/", "1otlp", "ot-lp", "otlp/a b"] {
            assert!(ComponentId::parse(bad).is_err(), "{bad}");
        }
    }
}
