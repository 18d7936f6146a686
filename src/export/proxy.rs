//! Exporter connections through an HTTP proxy, as the Collector's clients make them.
//!
//! Go's HTTP client and grpc-go take their proxy from `HTTPS_PROXY`, `HTTP_PROXY` and
//! `NO_PROXY` (upper case first, then lower case), and `otlphttp` also from `proxy_url`. Users
//! behind an egress proxy set these for the Collector, so tailgate reads them the same way:
//!
//! - `otlp` (gRPC): `HTTPS_PROXY`, whether the connection is TLS or not (grpc-go asks for the
//!   proxy of `https://host:port` for every target);
//! - `otlphttp`: `proxy_url` when given, else `HTTPS_PROXY` for an `https://` URL and
//!   `HTTP_PROXY` for an `http://` one;
//! - a target the environment's proxy does not serve: `localhost`, a loopback address, and what
//!   `NO_PROXY` names (`*`; an IP address; a CIDR block; `example.com`, which covers the domain
//!   and its subdomains, or `.example.com` and `*.example.com`, its subdomains only; each
//!   optionally with `:port`). An explicit `proxy_url` serves every target.
//!
//! The connection is a tunnel: `CONNECT host:port` to the proxy (with `Proxy-Authorization:
//! Basic` when the proxy URL carries `user:password@`), a `200` answer, then TLS or plaintext
//! through it as without a proxy. The proxy resolves the target's name. A proxy URL without a
//! scheme is `http://`, as in Go; `https://` (TLS to the proxy) and `socks5://` proxies are
//! refused rather than bypassed: an exporter that would go through one does not start. The
//! environment is read once, at the first exporter's start.

use std::io;
use std::net::IpAddr;
use std::sync::OnceLock;

use base64::Engine as _;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use tailgate_wire::grpc::percent_decode;

/// The most bytes a proxy's answer to `CONNECT` may take.
const ANSWER_BYTES_MAX: usize = 8 * 1024;
/// The most `NO_PROXY` entries read.
const NO_PROXY_ENTRIES_MAX: usize = 256;

/// A proxy to tunnel through, checked. Its `Debug` shows the URL without the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    /// The proxy's host (a name, or an IP address without brackets).
    pub host: String,
    /// The proxy's port (80 when the URL gives none).
    pub port: u16,
    /// `Basic ...` from the URL's user information.
    authorization: Option<String>,
    /// The URL without its password, for messages.
    shown: String,
}

impl ProxyUrl {
    /// Parses a proxy URL as Go reads `HTTPS_PROXY`: `http://[user[:password]@]host[:port]`, or
    /// the same without a scheme; the port defaults to 80. An error shows the URL with its
    /// password hidden.
    pub fn parse(text: &str) -> Result<ProxyUrl, String> {
        let text = text.trim();
        let (scheme, rest) = match text.split_once("://") {
            Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
            None => ("http".to_string(), text),
        };
        // The user information ends at the last `@` before the path, if any.
        let (userinfo, after) = match rest.rsplit_once('@') {
            Some((userinfo, after)) => (Some(userinfo), after),
            None => (None, rest),
        };
        let user = userinfo.map(|u| u.split(':').next().unwrap_or(""));
        let shown_as = |scheme: &str| match user {
            Some(user) => format!("{scheme}://{user}:***@{after}"),
            None => format!("{scheme}://{after}"),
        };
        let shown = shown_as(&scheme);
        match scheme.as_str() {
            "http" => {}
            "https" => {
                return Err(format!(
                    "`{shown}`: TLS to the proxy (https://) is not supported; use an http:// \
                     proxy (the tunnel still carries TLS to the upstream)"
                ))
            }
            other => {
                return Err(format!(
                    "`{shown}`: {other} proxies are not supported; use an http:// proxy, which \
                     tailgate tunnels through with CONNECT"
                ))
            }
        }
        let hostport = after.strip_suffix('/').unwrap_or(after);
        if hostport.contains('/') || hostport.contains('?') || hostport.contains('#') {
            return Err(format!("`{shown}`: a proxy URL has no path"));
        }
        let authority: http::uri::Authority = hostport
            .parse()
            .map_err(|_| format!("`{shown}`: not a host or host:port"))?;
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err(format!("`{shown}`: no host"));
        }
        let port = authority.port_u16().unwrap_or(80);
        if port == 0 {
            return Err(format!("`{shown}`: port 0"));
        }
        // As Go encodes it: `user:password`, the colon there even without a password.
        let authorization = userinfo.map(|userinfo| {
            let mut credentials = percent_decode(userinfo.as_bytes());
            if !userinfo.contains(':') {
                credentials.push(b':');
            }
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(credentials)
            )
        });
        Ok(ProxyUrl {
            host: host.to_string(),
            port,
            authorization,
            shown: shown_as("http").trim_end_matches('/').to_string(),
        })
    }

    /// The URL without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

impl std::fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ProxyUrl").field(&self.shown).finish()
    }
}

/// One `NO_PROXY` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Bypass {
    /// `*`: no target is proxied.
    All,
    Ip(IpAddr, Option<u16>),
    Cidr(IpAddr, u8),
    /// A domain, lower-cased, with a leading dot: its subdomains; with `and_itself` (written
    /// without the dot), the domain itself too.
    Domain {
        suffix: String,
        and_itself: bool,
        port: Option<u16>,
    },
}

impl Bypass {
    /// An entry as Go's `httpproxy` reads it: `*.example.com` is `.example.com` (subdomains
    /// only), `example.com` the domain and its subdomains.
    fn parse(entry: &str) -> Option<Bypass> {
        let entry = entry.trim().to_ascii_lowercase();
        if entry.is_empty() {
            return None;
        }
        if entry == "*" {
            return Some(Bypass::All);
        }
        if let Some((ip, bits)) = entry.split_once('/') {
            let ip: IpAddr = ip.parse().ok()?;
            let bits: u8 = bits.parse().ok()?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            return (bits <= max).then_some(Bypass::Cidr(ip, bits));
        }
        if let Ok(ip) = entry.trim_matches(['[', ']']).parse::<IpAddr>() {
            return Some(Bypass::Ip(ip, None));
        }
        let (host, port) = match entry.rsplit_once(':') {
            Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => {
                (host.to_string(), port.parse().ok())
            }
            _ => (entry.clone(), None),
        };
        if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
            return Some(Bypass::Ip(ip, port));
        }
        let host = host.strip_prefix('*').unwrap_or(&host);
        let (suffix, and_itself) = match host.strip_prefix('.') {
            Some(_) => (host.to_string(), false),
            None => (format!(".{host}"), true),
        };
        (suffix.len() > 1).then_some(Bypass::Domain {
            suffix,
            and_itself,
            port,
        })
    }

    fn covers(&self, host: &str, ip: Option<IpAddr>, port: u16) -> bool {
        let port_matches = |want: &Option<u16>| want.is_none_or(|want| want == port);
        match self {
            Bypass::All => true,
            Bypass::Ip(want, want_port) => ip == Some(*want) && port_matches(want_port),
            Bypass::Cidr(net, bits) => ip.is_some_and(|ip| in_block(ip, *net, *bits)),
            Bypass::Domain {
                suffix,
                and_itself,
                port: want_port,
            } => {
                let host = host.trim_end_matches('.').to_ascii_lowercase();
                let matches =
                    host.ends_with(suffix.as_str()) || (*and_itself && host == suffix[1..]);
                matches && port_matches(want_port)
            }
        }
    }
}

fn in_block(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// `HTTP_PROXY`, `HTTPS_PROXY` and `NO_PROXY`, as read at start. A variable that names a proxy
/// tailgate cannot use is kept as its error, raised when a connection would go through it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProxyEnv {
    http: Option<Result<ProxyUrl, String>>,
    https: Option<Result<ProxyUrl, String>>,
    bypass: Vec<Bypass>,
}

impl ProxyEnv {
    /// Reads the variables through `get` (upper case first, as Go does).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> ProxyEnv {
        let any = |names: [&'static str; 2]| {
            names.iter().find_map(|name| {
                get(name)
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| (*name, v))
            })
        };
        let proxy = |names: [&'static str; 2]| {
            any(names)
                .map(|(name, value)| ProxyUrl::parse(&value).map_err(|e| format!("{name}: {e}")))
        };
        let bypass = any(["NO_PROXY", "no_proxy"])
            .map(|(_, value)| {
                value
                    .split(',')
                    .take(NO_PROXY_ENTRIES_MAX)
                    .filter_map(Bypass::parse)
                    .collect()
            })
            .unwrap_or_default();
        ProxyEnv {
            http: proxy(["HTTP_PROXY", "http_proxy"]),
            https: proxy(["HTTPS_PROXY", "https_proxy"]),
            bypass,
        }
    }

    /// The proxy for a connection to `host:port`: `HTTPS_PROXY`'s for TLS targets and every
    /// gRPC one (`https_scheme`), `HTTP_PROXY`'s otherwise; none for a target the environment
    /// exempts (see the module documentation). An error when the variable that applies names a
    /// proxy tailgate cannot use.
    pub fn for_target(
        &self,
        https_scheme: bool,
        host: &str,
        port: u16,
    ) -> Result<Option<&ProxyUrl>, String> {
        let proxy = if https_scheme {
            &self.https
        } else {
            &self.http
        };
        let Some(proxy) = proxy else {
            return Ok(None);
        };
        let host = host.trim_matches(['[', ']']);
        let ip = host.parse::<IpAddr>().ok();
        if host.eq_ignore_ascii_case("localhost") || ip.is_some_and(|ip| ip.is_loopback()) {
            return Ok(None);
        }
        if self.bypass.iter().any(|b| b.covers(host, ip, port)) {
            return Ok(None);
        }
        proxy.as_ref().map(Some).map_err(Clone::clone)
    }
}

/// The process's proxy variables, read once.
pub fn env() -> &'static ProxyEnv {
    static ENV: OnceLock<ProxyEnv> = OnceLock::new();
    ENV.get_or_init(|| ProxyEnv::from_lookup(|name| std::env::var(name).ok()))
}

/// Asks `proxy`, over `stream` (connected to it), for a tunnel to `host:port`.
pub(crate) async fn tunnel(
    stream: &mut TcpStream,
    proxy: &ProxyUrl,
    host: &str,
    port: u16,
) -> io::Result<()> {
    let target = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(authorization) = &proxy.authorization {
        request.push_str(&format!("Proxy-Authorization: {authorization}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    // The answer's head, read a byte at a time so that nothing after it is taken: the tunnel's
    // first bytes are the upstream's. A connection is opened rarely; its answer is short.
    let mut answer = Vec::with_capacity(128);
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        if answer.len() >= ANSWER_BYTES_MAX {
            return Err(proxy_error(
                proxy,
                &format!("answered CONNECT with a head over {ANSWER_BYTES_MAX} bytes"),
            ));
        }
        if stream.read(&mut byte).await? == 0 {
            return Err(proxy_error(
                proxy,
                "closed the connection before answering CONNECT",
            ));
        }
        answer.push(byte[0]);
    }
    let line = answer
        .split(|&b| b == b'\r')
        .next()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let mut parts = line.splitn(3, ' ');
    let (version, status) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !version.starts_with("HTTP/1.") {
        return Err(proxy_error(
            proxy,
            &format!("answered CONNECT with {line:?}"),
        ));
    }
    if status != "200" {
        return Err(proxy_error(
            proxy,
            &format!("refused the tunnel to {target}: {}", line.trim()),
        ));
    }
    Ok(())
}

fn proxy_error(proxy: &ProxyUrl, what: &str) -> io::Error {
    io::Error::other(format!("proxy {} {what}", proxy.shown))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_read_as_go_reads_them() {
        let p = ProxyUrl::parse("proxy.corp:3128").unwrap();
        assert_eq!(
            (p.host.as_str(), p.port, p.shown()),
            ("proxy.corp", 3128, "http://proxy.corp:3128")
        );
        assert_eq!(p.authorization, None);
        let p = ProxyUrl::parse("http://svc%40corp:p%3Ass@10.0.0.1/").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("10.0.0.1", 80));
        assert_eq!(p.shown(), "http://svc%40corp:***@10.0.0.1");
        // base64("svc@corp:p:ss")
        assert_eq!(
            p.authorization.as_deref(),
            Some("Basic c3ZjQGNvcnA6cDpzcw==")
        );
        // A user without a password is sent as `user:`, as Go sends it.
        let p = ProxyUrl::parse("http://user@proxy:3128").unwrap();
        assert_eq!(p.authorization.as_deref(), Some("Basic dXNlcjo="));
        let p = ProxyUrl::parse("http://[::1]:8080").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("::1", 8080));
        assert!(ProxyUrl::parse("socks5://proxy:1080")
            .unwrap_err()
            .contains("socks5 proxies"));
        assert!(ProxyUrl::parse("http://proxy:3128/path").is_err());
        // No error shows a password.
        for bad in [
            "https://svc:hunter2@proxy:443",
            "socks5://svc:hunter2@proxy:1080",
            "http://svc:hunter2@proxy:3128/path",
            "http://svc:hunter2@pro xy:3128",
            "http://svc:hunter2@proxy:0",
        ] {
            let err = ProxyUrl::parse(bad).unwrap_err();
            assert!(!err.contains("hunter2"), "{err}");
            assert!(err.contains("svc:***@"), "{err}");
        }
        assert!(
            format!("{:?}", ProxyUrl::parse("http://u:hunter2@p:1").unwrap()).contains("u:***@")
        );
    }

    fn env(vars: &[(&str, &str)]) -> ProxyEnv {
        ProxyEnv::from_lookup(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn the_environment_chooses_by_scheme_and_exempts_what_no_proxy_names() {
        let e = env(&[
            ("HTTPS_PROXY", "http://secure-proxy:3128"),
            ("https_proxy", "http://ignored:1"),
            ("http_proxy", "plain-proxy:8080"),
            (
                "NO_PROXY",
                "internal.corp, .svc.local,*.mesh, 10.1.0.0/16, 192.0.2.7, api.example:8443",
            ),
        ]);
        let via = |https: bool, host: &str, port: u16| {
            e.for_target(https, host, port)
                .unwrap()
                .map(|p| p.host.clone())
        };
        let proxied = Some("secure-proxy".to_string());
        assert_eq!(via(true, "central.example", 4317), proxied);
        assert_eq!(
            via(false, "central.example", 4318).as_deref(),
            Some("plain-proxy")
        );
        // Loopback is never proxied by the environment.
        for host in ["localhost", "127.0.0.5", "::1", "[::1]"] {
            assert_eq!(via(true, host, 4317), None, "{host}");
        }
        // `internal.corp` covers itself and its subdomains; `.svc.local` and `*.mesh` only
        // subdomains, as Go's httpproxy reads them.
        for host in [
            "internal.corp",
            "a.internal.corp",
            "x.svc.local",
            "b.mesh",
            "10.1.2.3",
            "192.0.2.7",
        ] {
            assert_eq!(via(true, host, 4317), None, "{host}");
        }
        for host in ["svc.local", "mesh", "notinternal.corp", "10.2.0.1"] {
            assert_eq!(via(true, host, 4317), proxied, "{host}");
        }
        // A port in an entry exempts that port only.
        assert_eq!(via(true, "api.example", 8443), None);
        assert_eq!(via(true, "api.example", 443), proxied);
        // `*` exempts everything.
        let all = env(&[("HTTPS_PROXY", "p:1"), ("no_proxy", "*")]);
        assert_eq!(all.for_target(true, "central.example", 4317), Ok(None));
        // Nothing set, nothing proxied.
        assert_eq!(env(&[]).for_target(true, "central.example", 4317), Ok(None));
        // A bad value is an error only where it would be used, naming its variable.
        let bad = env(&[("HTTPS_PROXY", "socks5://p:1"), ("NO_PROXY", "ok.corp")]);
        assert!(bad
            .for_target(true, "central.example", 4317)
            .unwrap_err()
            .starts_with("HTTPS_PROXY: "));
        assert_eq!(bad.for_target(true, "ok.corp", 4317), Ok(None));
        assert_eq!(bad.for_target(true, "127.0.0.1", 4317), Ok(None));
        assert_eq!(bad.for_target(false, "central.example", 80), Ok(None));
    }
}
