//! Adding credentials on an exporter: one [`ClientAuth`] per client authenticator, carried in
//! the exporter settings and shared by every shard, and one [`AuthHeader`] per exporter per
//! shard, which yields the header each request carries.
//!
//! - `bearertokenauth`: `HEADER: SCHEME TOKEN` with the first token (the Collector's rule when
//!   several are given); a token from `filename` follows the file, the next request after the
//!   watcher saw a change carrying the new one.
//! - `basicauth` with `client_auth`: `Authorization: Basic base64(username:password)`, kept in
//!   a [`TokenCell`] of scheme `Basic` as a bearer token is; with `username_file` or
//!   `password_file` the watcher reads the files every second and publishes the new pair.

use std::cell::RefCell;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use http::{HeaderName, HeaderValue};

use super::tokens::{read_token_file, TokenCell, TokenError, TokenView, TOKEN_FILE_BYTES_MAX};
use crate::config::Credential;

/// What a client authenticator sends: `header` with the first of `tokens`' values.
struct Credentials {
    header: HeaderName,
    tokens: Arc<TokenCell>,
}

/// Why a Basic username cannot be sent, if it cannot.
pub fn check_basic_username(username: &str) -> Result<(), &'static str> {
    if username.contains(':') || username.chars().any(char::is_control) {
        return Err("a Basic username may not contain `:` or control characters");
    }
    Ok(())
}

/// Why a Basic password cannot be sent, if it cannot.
pub fn check_basic_password(password: &str) -> Result<(), &'static str> {
    if password.chars().any(char::is_control) {
        return Err("the password may not contain control characters or line breaks");
    }
    Ok(())
}

/// The token of `Authorization: Basic TOKEN`.
fn basic_token(username: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
}

/// A credential file's value, as the Collector reads one: its text, trimmed of surrounding
/// whitespace; refused when empty, larger than 64 KiB or not UTF-8.
fn read_credential_file(path: &Path) -> Result<String, String> {
    // Read as a token file is, within the same bound.
    let bytes = read_token_file(path).map_err(|err| match err {
        TokenError::TooLarge => format!("it is larger than {TOKEN_FILE_BYTES_MAX} bytes"),
        other => other.to_string(),
    })?;
    let text = String::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_string())?;
    let value = text.trim();
    if value.is_empty() {
        return Err("it is empty".into());
    }
    Ok(value.to_string())
}

/// The Basic token `client_auth` sends now: its files read and checked. The error names the
/// key and the file.
pub(crate) fn current_basic_token(
    username: &Credential,
    password: &Credential,
) -> Result<String, String> {
    let value = |credential: &Credential, key: &str| match credential {
        Credential::Inline(value) => Ok(value.expose().to_string()),
        Credential::File(path) => read_credential_file(path)
            .map_err(|why| format!("{key}_file: {}: {why}", path.display())),
    };
    let user = value(username, "username")?;
    check_basic_username(&user).map_err(|why| format!("username: {why}"))?;
    let pass = value(password, "password")?;
    check_basic_password(&pass).map_err(|why| format!("password: {why}"))?;
    Ok(basic_token(&user, &pass))
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
            credentials: Arc::new(Credentials { header, tokens }),
        })
    }

    /// `basicauth` extension `name` with `client_auth`: `Authorization: Basic ...` with the
    /// token `tokens` holds (scheme `Basic`, see [`ClientAuth::basic_cell`]).
    pub fn basic_from(name: &str, tokens: Arc<TokenCell>) -> ClientAuth {
        ClientAuth {
            name: name.to_string(),
            credentials: Arc::new(Credentials {
                header: http::header::AUTHORIZATION,
                tokens,
            }),
        }
    }

    /// A cell holding `client_auth`'s credentials as they are now (its files read); the
    /// watcher publishes to it when a file changes.
    pub fn basic_cell(
        username: &Credential,
        password: &Credential,
    ) -> Result<Arc<TokenCell>, String> {
        let token = current_basic_token(username, password)?;
        Ok(Arc::new(TokenCell::new("Basic", &[token], None)))
    }

    /// `basicauth` extension `name` with an inline `username` and `password` (the tests'
    /// shorthand for [`ClientAuth::basic_cell`] and [`ClientAuth::basic_from`]).
    #[cfg(test)]
    pub fn basic(name: &str, username: &str, password: &str) -> Result<ClientAuth, String> {
        check_basic_username(username)?;
        check_basic_password(password)?;
        let token = basic_token(username, password);
        let cell = Arc::new(TokenCell::new("Basic", &[token], None));
        Ok(Self::basic_from(name, cell))
    }

    /// The extension's id.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The header it sets.
    pub fn header_name(&self) -> &HeaderName {
        &self.credentials.header
    }

    /// The header for the calling shard's exporter.
    pub fn for_shard(&self) -> AuthHeader {
        let view = TokenView::new(self.credentials.tokens.clone());
        let value = first_value(&view.current().0).unwrap_or_else(|| HeaderValue::from_static(""));
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
    view: TokenView,
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
        let (values, changed) = self.view.current();
        if changed {
            if let Some(value) = first_value(&values) {
                *self.value.borrow_mut() = value;
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
