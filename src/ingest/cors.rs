//! CORS for the HTTP receiver: what a browser posting OTLP from a page of another origin needs
//! (the OpenTelemetry JS SDK in a web page), as the Collector's confighttp answers it.
//!
//! - A **preflight** (`OPTIONS` with `Access-Control-Request-Method`) is answered 204, before
//!   any authentication (browsers send no credentials on it). When the origin is allowed, the
//!   method is `POST` and every requested header is allowed, the answer allows them:
//!   `Access-Control-Allow-Origin` (the request's origin, echoed), `-Allow-Methods: POST`,
//!   `-Allow-Headers` (those requested), `-Allow-Credentials: true` (as the Collector sets it)
//!   and `-Max-Age` when configured. Otherwise it carries none of them, and the browser does not
//!   send the request.
//! - Every other answer to a request from an allowed origin, refusals included, carries
//!   `Access-Control-Allow-Origin` and `-Allow-Credentials`, so the page can read the status
//!   and the reason.
//! - Origins are compared without regard to case; `*` allows any, and one `*` within an origin
//!   stands for any run of characters (`https://*.example.com`). The headers always allowed are
//!   the CORS-safelisted ones the Collector documents (`Accept`, `Accept-Language`,
//!   `Content-Type`, `Content-Language`), and `X-Requested-With` when none is configured; `*`
//!   allows any.

use crate::config::Cors;

/// Headers allowed whatever `allowed_headers` says.
const ALWAYS_ALLOWED: [&str; 5] = [
    "accept",
    "accept-language",
    "content-type",
    "content-language",
    "origin",
];

/// One allowed origin.
#[derive(Debug, Clone)]
enum Origin {
    Any,
    Exact(String),
    /// `prefix*suffix`.
    Wildcard(String, String),
}

impl Origin {
    fn parse(text: &str) -> Origin {
        let text = text.to_ascii_lowercase();
        if text == "*" {
            return Origin::Any;
        }
        match text.split_once('*') {
            Some((prefix, suffix)) => Origin::Wildcard(prefix.to_string(), suffix.to_string()),
            None => Origin::Exact(text),
        }
    }

    fn matches(&self, origin: &str) -> bool {
        match self {
            Origin::Any => true,
            Origin::Exact(allowed) => allowed == origin,
            Origin::Wildcard(prefix, suffix) => {
                origin.len() > prefix.len().saturating_add(suffix.len())
                    && origin.starts_with(prefix.as_str())
                    && origin.ends_with(suffix.as_str())
            }
        }
    }
}

/// A receiver's CORS settings, ready to answer with.
#[derive(Debug, Clone)]
pub struct CorsPolicy {
    origins: Vec<Origin>,
    /// Lower case; with `*`, any.
    headers: Vec<String>,
    any_header: bool,
    max_age: Option<u64>,
    /// `Access-Control-Expose-Headers`' line, when `exposed_headers` names any.
    expose: String,
}

impl CorsPolicy {
    /// The policy `cors` describes.
    pub fn new(cors: &Cors) -> CorsPolicy {
        let mut headers: Vec<String> = ALWAYS_ALLOWED.iter().map(|h| h.to_string()).collect();
        if cors.allowed_headers.is_empty() {
            headers.push("x-requested-with".into());
        }
        headers.extend(cors.allowed_headers.iter().map(|h| h.to_ascii_lowercase()));
        CorsPolicy {
            origins: cors
                .allowed_origins
                .iter()
                .map(|o| Origin::parse(o))
                .collect(),
            any_header: cors.allowed_headers.iter().any(|h| h == "*"),
            headers,
            max_age: cors.max_age,
            expose: if cors.exposed_headers.is_empty() {
                String::new()
            } else {
                format!(
                    "Access-Control-Expose-Headers: {}\r\n",
                    cors.exposed_headers.join(", ")
                )
            },
        }
    }

    /// Whether a page of `origin` may post here.
    pub fn allows_origin(&self, origin: &str) -> bool {
        let origin = origin.trim().to_ascii_lowercase();
        self.origins.iter().any(|allowed| allowed.matches(&origin))
    }

    /// The header lines (each ending in CRLF) an answer to a request from `origin` carries
    /// (`exposed_headers` among them; a preflight's answer has its own); `None` when it has no
    /// origin or one that is not allowed.
    pub fn answer_headers(&self, origin: Option<&str>) -> Option<String> {
        let origin = origin?;
        self.allows_origin(origin).then(|| {
            format!(
                "Access-Control-Allow-Origin: {origin}\r\nAccess-Control-Allow-Credentials: \
                 true\r\nVary: Origin\r\n{}",
                self.expose
            )
        })
    }

    /// The header lines answering a preflight from `origin` for `method` with
    /// `request_headers` (`Access-Control-Request-Headers`, comma-separated): the allowing ones
    /// when all of it is allowed, else only `Vary`.
    pub fn preflight_headers(
        &self,
        origin: Option<&str>,
        method: &str,
        request_headers: Option<&str>,
    ) -> String {
        let vary =
            "Vary: Origin, Access-Control-Request-Method, Access-Control-Request-Headers\r\n";
        let requested: Vec<String> = request_headers
            .unwrap_or_default()
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        let allowed = origin.is_some_and(|origin| self.allows_origin(origin))
            && method.trim().eq_ignore_ascii_case("POST")
            && requested
                .iter()
                .all(|h| self.any_header || self.headers.iter().any(|allowed| allowed == h));
        let Some(origin) = origin.filter(|_| allowed) else {
            return vary.to_string();
        };
        let mut lines = format!(
            "Access-Control-Allow-Origin: {origin}\r\nAccess-Control-Allow-Credentials: \
             true\r\nAccess-Control-Allow-Methods: POST\r\n{vary}"
        );
        if !requested.is_empty() {
            lines.push_str(&format!(
                "Access-Control-Allow-Headers: {}\r\n",
                requested.join(", ")
            ));
        }
        if let Some(seconds) = self.max_age {
            lines.push_str(&format!("Access-Control-Max-Age: {seconds}\r\n"));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(origins: &[&str], headers: &[&str], max_age: Option<u64>) -> CorsPolicy {
        CorsPolicy::new(&Cors {
            allowed_origins: origins.iter().map(|o| o.to_string()).collect(),
            allowed_headers: headers.iter().map(|h| h.to_string()).collect(),
            exposed_headers: Vec::new(),
            max_age,
        })
    }

    #[test]
    fn origins_exact_any_and_wildcard() {
        let cors = policy(
            &["https://app.example.com", "https://*.example.org"],
            &[],
            None,
        );
        assert!(cors.allows_origin("https://app.example.com"));
        assert!(
            cors.allows_origin("HTTPS://APP.EXAMPLE.COM"),
            "case does not matter"
        );
        assert!(!cors.allows_origin("https://app.example.com.evil.net"));
        assert!(cors.allows_origin("https://a.b.example.org"));
        assert!(
            !cors.allows_origin("https://.example.org"),
            "the wildcard stands for something"
        );
        assert!(
            !cors.allows_origin("http://a.example.org"),
            "the scheme is part of it"
        );
        assert!(policy(&["*"], &[], None).allows_origin("http://anything:8080"));
        assert_eq!(cors.answer_headers(None), None);
        assert_eq!(cors.answer_headers(Some("https://other.example.com")), None);
        let answer = cors
            .answer_headers(Some("https://app.example.com"))
            .unwrap();
        assert!(answer.starts_with("Access-Control-Allow-Origin: https://app.example.com\r\n"));
        assert!(answer.contains("Access-Control-Allow-Credentials: true\r\n"));
        assert!(!answer.contains("Expose"));
    }

    /// `exposed_headers` go on answers to allowed pages' requests, not on preflights (as
    /// confighttp's CORS handler sends them).
    #[test]
    fn exposed_headers_go_on_answers_to_allowed_pages() {
        let cors = CorsPolicy::new(&Cors {
            allowed_origins: vec!["https://app.example.com".into()],
            allowed_headers: Vec::new(),
            exposed_headers: vec!["X-Custom-Header".into(), "X-Another-Header".into()],
            max_age: None,
        });
        let answer = cors
            .answer_headers(Some("https://app.example.com"))
            .unwrap();
        assert!(
            answer.contains("Access-Control-Expose-Headers: X-Custom-Header, X-Another-Header\r\n")
        );
        assert_eq!(cors.answer_headers(Some("https://evil.example.com")), None);
        let preflight = cors.preflight_headers(Some("https://app.example.com"), "POST", None);
        assert!(!preflight.contains("Expose"), "{preflight}");
    }

    #[test]
    fn preflights_allow_post_and_the_allowed_headers_only() {
        let cors = policy(&["https://app.example.com"], &["X-Tenant"], Some(600));
        let origin = Some("https://app.example.com");
        let allowed = cors.preflight_headers(origin, "POST", Some("content-type, x-tenant"));
        assert!(
            allowed.contains("Access-Control-Allow-Methods: POST\r\n"),
            "{allowed}"
        );
        assert!(allowed.contains("Access-Control-Allow-Headers: content-type, x-tenant\r\n"));
        assert!(allowed.contains("Access-Control-Max-Age: 600\r\n"));
        for (origin, method, headers) in [
            (origin, "PUT", None),
            (origin, "POST", Some("authorization")),
            (Some("https://evil.example.com"), "POST", None),
            (None, "POST", None),
        ] {
            let refused = cors.preflight_headers(origin, method, headers);
            assert!(
                !refused.contains("Allow-Origin"),
                "{origin:?} {method} {headers:?}"
            );
            assert!(refused.starts_with("Vary: "));
        }
        // With none configured, X-Requested-With is allowed; with `*`, any.
        let plain = policy(&["*"], &[], None);
        assert!(plain
            .preflight_headers(origin, "POST", Some("X-Requested-With"))
            .contains("Allow-Origin"));
        assert!(!cors
            .preflight_headers(origin, "POST", Some("X-Requested-With"))
            .contains("Allow-Origin"));
        assert!(policy(&["*"], &["*"], None)
            .preflight_headers(origin, "POST", Some("authorization, x-anything"))
            .contains("Access-Control-Allow-Headers: authorization, x-anything"));
    }
}
