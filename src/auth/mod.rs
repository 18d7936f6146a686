//! Authentication: the Collector's `bearertokenauth` and `basicauth` extensions.
//!
//! This first part holds what the configuration checks with: bearer tokens ([`check_token`],
//! token files) and htpasswd tables ([`Htpasswd`]), and the constant-time comparison
//! ([`compare`]) every check of a secret goes through.

pub mod compare;
mod htpasswd;
mod tokens;

pub use htpasswd::{
    Htpasswd, HtpasswdError, HtpasswdErrorKind, PasswordHash, BCRYPT_COST_MAX, HTPASSWD_BYTES_MAX,
};
pub use tokens::{
    check_token, parse_token_file, read_token_file, tokens_of, TokenCell, TokenError, TokenView,
    TOKENS_MAX, TOKEN_FILE_BYTES_MAX,
};
