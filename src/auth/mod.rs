//! Authentication: the Collector's `bearertokenauth` and `basicauth` extensions, checking the
//! credentials of requests to the receivers and adding credentials to the exporters' requests.
//!
//! # Who owns what, which thread runs it
//!
//! At start-up, on the main thread, [`Authenticators::from_config`] turns every enabled
//! extension into a [`ServerAuth`] (for receivers) and a [`ClientAuth`] (for exporters), reading
//! token and htpasswd files once; what it refuses stops the start. Both are shared by every
//! shard (`Arc`) and read-only, with one exception: bearer tokens from a `filename` and
//! `basicauth` client credentials from `username_file` / `password_file`, which the watcher
//! thread ([`Watcher`], a plain thread, never a shard) re-reads every second and publishes to
//! the extension's [`TokenCell`]. A shard sees a publication through its own view
//! of the cell, at the cost of one atomic load per request (see `tokens`).
//!
//! Each shard then builds, on its own thread, a [`Gatekeeper`] per authenticated receiver
//! protocol, which checks every request before anything of it is decoded, and an
//! [`AuthHeader`] per authenticated exporter, which each request takes its header from. Both
//! are the shard's alone, like its metric cells.
//!
//! # What is promised
//!
//! - Secrets are compared in constant time ([`compare`]), and never logged: `Debug` of every
//!   type here that holds one prints the extension's name or a count instead.
//! - Every refused request is counted with its reason (`missing` or `invalid`); the log gets
//!   at most one line a minute per receiver protocol per shard.
//! - Everything read from outside is bounded: token files ([`TOKEN_FILE_BYTES_MAX`], at most
//!   [`TOKENS_MAX`] tokens), htpasswd ([`HTPASSWD_BYTES_MAX`]), bcrypt's cost
//!   ([`BCRYPT_COST_MAX`]), the bcrypt checks in flight and the accepted headers remembered.

mod client;
pub mod compare;
mod headers;
mod htpasswd;
mod server;
mod setup;
mod tokens;
mod watch;

pub use client::{check_basic_password, check_basic_username, AuthHeader, ClientAuth};
pub use headers::{HeaderError, HeaderSetter};
pub use htpasswd::{
    Htpasswd, HtpasswdError, HtpasswdErrorKind, PasswordHash, BCRYPT_COST_MAX, HTPASSWD_BYTES_MAX,
};
pub use server::{
    BasicCredentials, Gatekeeper, Refusal, ServerAuth, REFUSAL_LOG_INTERVAL, SLOW_CHECKS_MAX,
    VERIFIED_MAX,
};
pub use setup::{Authenticators, SetupError};
pub use tokens::{
    check_token, parse_token_file, read_token_file, tokens_of, TokenCell, TokenError, TokenView,
    TOKENS_MAX, TOKEN_FILE_BYTES_MAX,
};
pub use watch::{Followed, WatchedFile, Watcher, TOKEN_POLL_INTERVAL};
