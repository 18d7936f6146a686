//! Adding credentials on an exporter: one [`ClientAuth`] per client authenticator, carried in
//! the exporter settings and shared by every shard, and one [`AuthHeader`] per exporter per
//! shard, which yields the header each request carries.
//!
//! - `bearertokenauth`: `HEADER: SCHEME TOKEN` with the first token (the Collector's rule when
//!   several are given); a token from `filename` follows the file, the next request after the
//!   watcher saw a change carrying the new one.
//! - `basicauth` with `client_auth`: `Authorization: Basic base64(username:password)`.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use base64::Engine;
use http::{HeaderName, HeaderValue};

use super::tokens::{TokenCell, TokenView};

/// What a client authenticator sends.
enum Credentials {
    Bearer {
        header: HeaderName,
        tokens: Arc<TokenCell>,
    },
    Basic {
        value: HeaderValue,
    },
}

/// A client authenticator, as the exporter settings carry it; see the module documentation.
#[derive(Clone)]
pub struct ClientAuth {
    /// The extension's id, for messages.
    name: String,
    credentials: Arc<Credentials>,
}

impl ClientAuth {
    /// `bearertokenauth` extension `name`: `header` carries the first of `tokens`' values.
    pub fn bearer(name: &str, header: &str, tokens: Arc<TokenCell>) -> Result<ClientAuth, String> {
        let header = HeaderName::from_bytes(header.as_bytes())
            .map_err(|_| format!("`{header}` is not an HTTP header name"))?;
        Ok(ClientAuth {
            name: name.to_string(),
            credentials: Arc::new(Credentials::Bearer { header, tokens }),
        })
    }

    /// `basicauth` extension `name` with `client_auth`: `Authorization: Basic ...`.
    pub fn basic(name: &str, username: &str, password: &str) -> Result<ClientAuth, String> {
        if username.contains(':') {
            return Err("the username may not contain `:`".into());
        }
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        let mut value = HeaderValue::from_str(&format!("Basic {encoded}"))
            .map_err(|_| "the credentials cannot form a header".to_string())?;
        value.set_sensitive(true);
        Ok(ClientAuth {
            name: name.to_string(),
            credentials: Arc::new(Credentials::Basic { value }),
        })
    }

    /// The extension's id.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The header it sets.
    pub fn header_name(&self) -> &HeaderName {
        match &*self.credentials {
            Credentials::Bearer { header, .. } => header,
            Credentials::Basic { .. } => &http::header::AUTHORIZATION,
        }
    }

    /// The header for the calling shard's exporter.
    pub fn for_shard(&self) -> AuthHeader {
        let view = match &*self.credentials {
            Credentials::Bearer { tokens, .. } => Some(TokenView::new(tokens.clone())),
            Credentials::Basic { .. } => None,
        };
        let value = match (&*self.credentials, &view) {
            (Credentials::Basic { value }, _) => value.clone(),
            (Credentials::Bearer { .. }, Some(view)) => {
                first_value(&view.current().0).unwrap_or_else(|| HeaderValue::from_static(""))
            }
            (Credentials::Bearer { .. }, None) => unreachable!("a bearer authenticator has a view"),
        };
        AuthHeader {
            auth: self.clone(),
            view,
            value: RefCell::new(value),
        }
    }
}

/// The first authorization value as a header value (checked tokens always make one).
fn first_value(values: &[String]) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(values.first()?).ok()?;
    value.set_sensitive(true);
    Some(value)
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The extension's name only: the credentials stay out of logs.
        f.debug_tuple("ClientAuth").field(&self.name).finish()
    }
}

impl PartialEq for ClientAuth {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.credentials, &other.credentials)
    }
}

/// One exporter's authentication header on one shard.
pub struct AuthHeader {
    auth: ClientAuth,
    view: Option<TokenView>,
    value: RefCell<HeaderValue>,
}

impl AuthHeader {
    /// The header's name (lower-case).
    pub fn name(&self) -> &HeaderName {
        self.auth.header_name()
    }

    /// The header's value for the next request: the current token's, when it comes from a
    /// file that changed.
    pub fn value(&self) -> HeaderValue {
        if let Some(view) = &self.view {
            let (values, changed) = view.current();
            if changed {
                if let Some(value) = first_value(&values) {
                    *self.value.borrow_mut() = value;
                }
            }
        }
        self.value.borrow().clone()
    }

    /// Appends the header as an HTTP/1.1 header line.
    pub fn write_line(&self, out: &mut Vec<u8>) {
        let value = self.value();
        out.extend_from_slice(self.name().as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_sends_base64_of_user_and_password() {
        let auth = ClientAuth::basic("basicauth/client", "user", "p:ss").unwrap();
        let header = auth.for_shard();
        assert_eq!(header.name(), "authorization");
        assert_eq!(header.value(), "Basic dXNlcjpwOnNz");
        let mut line = Vec::new();
        header.write_line(&mut line);
        assert_eq!(line, b"authorization: Basic dXNlcjpwOnNz\r\n");
        assert!(ClientAuth::basic("b", "us:er", "x").is_err());
    }

    #[test]
    fn bearer_sends_the_first_token_and_follows_a_new_one() {
        let cell = Arc::new(TokenCell::new(
            "Bearer",
            &["one".into(), "two".into()],
            None,
        ));
        let auth = ClientAuth::bearer("bearertokenauth", "X-Token", cell.clone()).unwrap();
        let header = auth.for_shard();
        assert_eq!(header.name(), "x-token");
        assert_eq!(header.value(), "Bearer one");
        cell.publish(&["three".into()]);
        assert_eq!(header.value(), "Bearer three");
        assert!(ClientAuth::bearer("b", "bad header", cell).is_err());
    }

    #[test]
    fn debug_output_names_the_extension_only() {
        let auth = ClientAuth::basic("basicauth/client", "user", "hunter2").unwrap();
        let text = format!("{auth:?}");
        assert!(text.contains("basicauth/client"));
        assert!(!text.contains("hunter2") && !text.contains("aHVudGVy"));
        assert_eq!(auth, auth.clone());
        assert_ne!(
            auth,
            ClientAuth::basic("basicauth/client", "user", "hunter2").unwrap()
        );
    }
}
