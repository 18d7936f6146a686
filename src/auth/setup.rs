//! From the configuration's enabled extensions to authenticators, once, at start-up: token and
//! htpasswd files are read here, and what cannot be used stops the start with the extension's
//! key path.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use super::client::ClientAuth;
use super::headers::HeaderSetter;
use super::htpasswd::{Htpasswd, HTPASSWD_BYTES_MAX};
use super::server::ServerAuth;
use super::tokens::{read_token_file, tokens_of, TokenCell};
use super::watch::{Followed, WatchedFile};
use crate::config::{
    BasicAuth, BearerTokenAuth, BearerTokens, ComponentId, Config, Credential, Extension,
    HtpasswdSource,
};

/// Why an extension cannot start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupError {
    /// The extension's id.
    pub extension: String,
    /// What is wrong, naming the key and file.
    pub message: String,
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "extensions.{}.{}", self.extension, self.message)
    }
}

impl std::error::Error for SetupError {}

/// The enabled authenticators, by extension id.
#[derive(Debug, Clone, Default)]
pub struct Authenticators {
    servers: BTreeMap<ComponentId, Arc<ServerAuth>>,
    clients: BTreeMap<ComponentId, ClientAuth>,
    setters: BTreeMap<ComponentId, Arc<HeaderSetter>>,
    watched: Vec<WatchedFile>,
}

impl Authenticators {
    /// Builds every extension `service.extensions` enables.
    pub fn from_config(config: &Config) -> Result<Authenticators, SetupError> {
        let mut built = Authenticators::default();
        for id in &config.service.extensions {
            let Some(extension) = config.extensions.get(id) else {
                continue;
            };
            let name = id.to_string();
            let error = |message: String| SetupError {
                extension: name.clone(),
                message,
            };
            match extension {
                Extension::BearerTokenAuth(bearer) => {
                    let cell = Arc::new(bearer_tokens(&name, bearer).map_err(error)?);
                    if cell.file().is_some() {
                        built.watched.push(WatchedFile {
                            extension: name.clone(),
                            cell: cell.clone(),
                            followed: Followed::Tokens,
                        });
                    }
                    let server = ServerAuth::bearer(&bearer.header, &bearer.scheme, cell.clone());
                    built.servers.insert(id.clone(), Arc::new(server));
                    let client = ClientAuth::bearer(&name, &bearer.header, cell)
                        .map_err(|why| error(format!("header: {why}")))?;
                    built.clients.insert(id.clone(), client);
                }
                Extension::BasicAuth(BasicAuth::Server(source)) => {
                    let users = htpasswd(source).map_err(error)?;
                    built
                        .servers
                        .insert(id.clone(), Arc::new(ServerAuth::basic(users)));
                }
                Extension::BasicAuth(BasicAuth::Client { username, password }) => {
                    let cell = ClientAuth::basic_cell(username, password)
                        .map_err(|why| error(format!("client_auth.{why}")))?;
                    let from_files = [username, password]
                        .iter()
                        .any(|c| matches!(c, Credential::File(_)));
                    if from_files {
                        built.watched.push(WatchedFile {
                            extension: name.clone(),
                            cell: cell.clone(),
                            followed: Followed::Basic {
                                username: username.clone(),
                                password: password.clone(),
                            },
                        });
                    }
                    built
                        .clients
                        .insert(id.clone(), ClientAuth::basic_from(&name, cell));
                }
                Extension::HeadersSetter(config) => {
                    let setter = HeaderSetter::new(&name, config).map_err(error)?;
                    built.setters.insert(id.clone(), Arc::new(setter));
                }
                // Served by the gateway beside the admin endpoint, or not at all: no
                // authenticators.
                Extension::HealthCheck(_) | Extension::FileStorage(_) | Extension::Unserved(_) => {}
            }
        }
        Ok(built)
    }

    /// The server side of extension `id`, when it has one and is enabled.
    pub fn server(&self, id: &ComponentId) -> Option<Arc<ServerAuth>> {
        self.servers.get(id).cloned()
    }

    /// The client side of extension `id`, when it has one and is enabled.
    pub fn client(&self, id: &ComponentId) -> Option<ClientAuth> {
        self.clients.get(id).cloned()
    }

    /// The `headers_setter` extension `id`, when it is one and is enabled.
    pub fn setter(&self, id: &ComponentId) -> Option<Arc<HeaderSetter>> {
        self.setters.get(id).cloned()
    }

    /// The token files the watcher follows.
    pub fn watched_files(&self) -> Vec<WatchedFile> {
        self.watched.clone()
    }
}

fn bearer_tokens(name: &str, bearer: &BearerTokenAuth) -> Result<TokenCell, String> {
    match &bearer.tokens {
        BearerTokens::Inline(tokens) => {
            let tokens: Vec<String> = tokens.iter().map(|t| t.expose().to_string()).collect();
            Ok(TokenCell::new(&bearer.scheme, &tokens, None))
        }
        BearerTokens::File {
            path,
            ignores_inline,
        } => {
            if *ignores_inline {
                tracing::warn!(
                    "extensions.{name}: `filename` is set, so `token`/`tokens` are ignored (as \
                     in the Collector)"
                );
            }
            let tokens = read_token_file(path)
                .and_then(|bytes| tokens_of(&bytes))
                .map_err(|err| format!("filename: {}: {err}", path.display()))?;
            Ok(TokenCell::new(&bearer.scheme, &tokens, Some(path.clone())))
        }
    }
}

fn htpasswd(source: &HtpasswdSource) -> Result<Htpasswd, String> {
    let mut users = Htpasswd::default();
    if let Some(path) = &source.file {
        let text = read_htpasswd(path)
            .map_err(|why| format!("htpasswd.file: {}: {why}", path.display()))?;
        let from_file = Htpasswd::parse(&text)
            .map_err(|err| format!("htpasswd.file: {}: {err}", path.display()))?;
        users.extend(from_file);
    }
    if let Some(inline) = &source.inline {
        // Checked when the configuration was read.
        let inline =
            Htpasswd::parse(inline.expose()).map_err(|err| format!("htpasswd.inline: {err}"))?;
        users.extend(inline);
    }
    if users.is_empty() {
        return Err("htpasswd: no user is defined, so every request would be refused".into());
    }
    Ok(users)
}

fn read_htpasswd(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read it: {e}"))?;
    let mut bytes = Vec::new();
    file.take(HTPASSWD_BYTES_MAX as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.len() > HTPASSWD_BYTES_MAX {
        return Err(format!("larger than {HTPASSWD_BYTES_MAX} bytes"));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())
}
