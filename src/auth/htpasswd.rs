//! htpasswd: the users a `basicauth` server accepts, and how each one's password is checked.
//!
//! The Collector reads htpasswd with `go-htpasswd`'s default schemes. tailgate verifies the
//! ones a maintained crate (or a one-line construction on one) checks correctly, and refuses
//! the others at start, naming the line, rather than guessing:
//!
//! | hash                         | how it is checked                                         |
//! |------------------------------|-----------------------------------------------------------|
//! | `$2y$`, `$2b$`, `$2a$`, `$2x$` | bcrypt (the `bcrypt` crate); cost at most [`BCRYPT_COST_MAX`] |
//! | `{SHA}`                      | SHA-1 of the password, base64 (the `sha1` crate)          |
//! | `{SSHA}`                     | SHA-1 of the password and a salt, base64 with the salt after |
//! | anything else                | the password as written (`{PLAIN}` prefix optional), as the Collector does |
//!
//! Refused: `$apr1$` and `$1$` (MD5-crypt, htpasswd's `-m`), `$5$`/`$6$` (SHA-crypt) and any
//! other `$id$...` or `{SCHEME}` value: read as plain text they would make the hash itself the
//! password. Rewrite such users with `htpasswd -B` (bcrypt).
//!
//! Every comparison is constant-time (`super::compare`); bcrypt's own is `subtle`'s too.
//! bcrypt is slow on purpose (a few milliseconds to a second per check, by cost), so the
//! server checks it off the shard's thread and remembers what it accepted (`super::server`).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use base64::Engine;
use sha1::{Digest, Sha1};

use super::compare;

/// The highest bcrypt cost accepted: each check of a cost-14 hash takes about a second of a
/// core; higher costs would let every unknown password a client tries stall a shard's
/// checks for many seconds.
pub const BCRYPT_COST_MAX: u32 = 14;

/// The most bytes of htpasswd text (file and inline together) read.
pub const HTPASSWD_BYTES_MAX: usize = 4 * 1024 * 1024;

const SHA1_BYTES: usize = 20;
/// bcrypt's base64 alphabet, for checking a hash's salt and digest when it is read.
const BCRYPT_ALPHABET: &str = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// How one user's password is checked.
pub enum PasswordHash {
    /// A bcrypt hash, as written.
    Bcrypt(String),
    /// `{SHA}`: the SHA-1 digest of the password.
    Sha1([u8; SHA1_BYTES]),
    /// `{SSHA}`: the SHA-1 digest of the password followed by `salt`.
    SaltedSha1 {
        /// The digest.
        digest: [u8; SHA1_BYTES],
        /// The salt, appended to the password before hashing.
        salt: Vec<u8>,
    },
    /// The password itself.
    Plain(String),
}

impl PasswordHash {
    /// Whether checking a password takes long enough to keep off the shard's thread.
    pub fn is_slow(&self) -> bool {
        matches!(self, PasswordHash::Bcrypt(_))
    }

    /// Whether `password` is this user's password.
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            PasswordHash::Bcrypt(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            PasswordHash::Sha1(digest) => compare::equal(&Sha1::digest(password), digest),
            PasswordHash::SaltedSha1 { digest, salt } => {
                let mut hasher = Sha1::new();
                hasher.update(password);
                hasher.update(salt);
                compare::equal(&hasher.finalize(), digest)
            }
            PasswordHash::Plain(expected) => compare::equal(password, expected.as_bytes()),
        }
    }

    /// Reads the part of an htpasswd line after the user's `:`.
    fn parse(encoded: &str) -> Result<PasswordHash, HtpasswdErrorKind> {
        if let Some(rest) = encoded.strip_prefix("{SHA}") {
            let bytes = decode_base64(rest, "{SHA}")?;
            let digest = bytes.try_into().map_err(|_| HtpasswdErrorKind::Malformed {
                scheme: "{SHA}",
                why: "the digest is not 20 bytes",
            })?;
            return Ok(PasswordHash::Sha1(digest));
        }
        if let Some(rest) = encoded.strip_prefix("{SSHA}") {
            let mut bytes = decode_base64(rest, "{SSHA}")?;
            if bytes.len() <= SHA1_BYTES {
                return Err(HtpasswdErrorKind::Malformed {
                    scheme: "{SSHA}",
                    why: "no salt after the 20-byte digest",
                });
            }
            let salt = bytes.split_off(SHA1_BYTES);
            let digest = bytes.try_into().expect("split at 20 bytes");
            return Ok(PasswordHash::SaltedSha1 { digest, salt });
        }
        if let Some(rest) = encoded.strip_prefix("{PLAIN}") {
            return Ok(PasswordHash::Plain(rest.to_string()));
        }
        if let Some(id) = dollar_id(encoded) {
            return match id {
                "2a" | "2b" | "2x" | "2y" => parse_bcrypt(encoded),
                "apr1" | "1" => Err(HtpasswdErrorKind::Unsupported("MD5-crypt ($apr1$, $1$)")),
                "5" | "6" => Err(HtpasswdErrorKind::Unsupported("SHA-crypt ($5$, $6$)")),
                _ => Err(HtpasswdErrorKind::Unsupported("an unknown $id$ hash")),
            };
        }
        if encoded.starts_with('{') && encoded.contains('}') {
            return Err(HtpasswdErrorKind::Unsupported("an unknown {SCHEME} hash"));
        }
        Ok(PasswordHash::Plain(encoded.to_string()))
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The scheme only: neither hashes nor plain passwords belong in a log.
        f.write_str(match self {
            PasswordHash::Bcrypt(_) => "Bcrypt",
            PasswordHash::Sha1(_) => "Sha1",
            PasswordHash::SaltedSha1 { .. } => "SaltedSha1",
            PasswordHash::Plain(_) => "Plain",
        })
    }
}

/// `id` of a value shaped `$id$...`.
fn dollar_id(encoded: &str) -> Option<&str> {
    let rest = encoded.strip_prefix('$')?;
    let (id, _) = rest.split_once('$')?;
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric())).then_some(id)
}

fn decode_base64(text: &str, scheme: &'static str) -> Result<Vec<u8>, HtpasswdErrorKind> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| HtpasswdErrorKind::Malformed {
            scheme,
            why: "not base64",
        })
}

fn parse_bcrypt(encoded: &str) -> Result<PasswordHash, HtpasswdErrorKind> {
    let malformed = |why| HtpasswdErrorKind::Malformed {
        scheme: "bcrypt",
        why,
    };
    let parts = bcrypt::HashParts::from_str(encoded)
        .map_err(|_| malformed("not $2y$COST$ followed by 53 characters of salt and hash"))?;
    let cost = parts.get_cost();
    if !(4..=31).contains(&cost) {
        return Err(malformed("the cost is outside 4 to 31"));
    }
    if cost > BCRYPT_COST_MAX {
        return Err(HtpasswdErrorKind::CostTooHigh(cost));
    }
    let tail = encoded.rsplit('$').next().unwrap_or("");
    if !tail.chars().all(|c| BCRYPT_ALPHABET.contains(c)) {
        return Err(malformed(
            "the salt and hash hold characters bcrypt does not use",
        ));
    }
    Ok(PasswordHash::Bcrypt(encoded.to_string()))
}

/// A line of htpasswd text that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HtpasswdError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub kind: HtpasswdErrorKind,
}

/// What is wrong with an htpasswd line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HtpasswdErrorKind {
    /// No `:` between user and password.
    NoColon,
    /// Nothing before the `:`.
    EmptyUser,
    /// A hash scheme tailgate does not verify.
    Unsupported(&'static str),
    /// A hash of a known scheme that does not parse.
    Malformed {
        /// The scheme the hash claims.
        scheme: &'static str,
        /// What does not parse.
        why: &'static str,
    },
    /// A bcrypt cost above [`BCRYPT_COST_MAX`].
    CostTooHigh(u32),
}

impl fmt::Display for HtpasswdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: ", self.line)?;
        match &self.kind {
            HtpasswdErrorKind::NoColon => f.write_str("not `user:password` (no `:`)"),
            HtpasswdErrorKind::EmptyUser => f.write_str("the user name before `:` is empty"),
            HtpasswdErrorKind::Unsupported(what) => write!(
                f,
                "the password is {what}, which tailgate does not verify; store it with bcrypt \
                 (`htpasswd -B`), {{SHA}} or {{SSHA}}"
            ),
            HtpasswdErrorKind::Malformed { scheme, why } => {
                write!(f, "malformed {scheme} hash: {why}")
            }
            HtpasswdErrorKind::CostTooHigh(cost) => write!(
                f,
                "bcrypt cost {cost} is above {BCRYPT_COST_MAX}: every check of a wrong \
                 password would take seconds of a core; rehash with a lower cost (`htpasswd -B \
                 -C 10`)"
            ),
        }
    }
}

/// The users of htpasswd text, by name.
#[derive(Default)]
pub struct Htpasswd {
    users: HashMap<String, Arc<PasswordHash>>,
}

impl Htpasswd {
    /// Reads htpasswd text: `user:password-hash` lines; blank lines are skipped, and a user
    /// named twice keeps the later line (as go-htpasswd does).
    pub fn parse(text: &str) -> Result<Htpasswd, HtpasswdError> {
        let mut users = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let error = |kind| HtpasswdError {
                line: index + 1,
                kind,
            };
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            let (user, encoded) = line
                .split_once(':')
                .ok_or_else(|| error(HtpasswdErrorKind::NoColon))?;
            if user.is_empty() {
                return Err(error(HtpasswdErrorKind::EmptyUser));
            }
            let hash = PasswordHash::parse(encoded).map_err(error)?;
            users.insert(user.to_string(), Arc::new(hash));
        }
        Ok(Htpasswd { users })
    }

    /// Adds `other`'s users, replacing any of the same name (`inline` over `file`, as in the
    /// Collector).
    pub fn extend(&mut self, other: Htpasswd) {
        self.users.extend(other.users);
    }

    /// How `user`'s password is checked, if there is such a user.
    pub fn get(&self, user: &str) -> Option<&Arc<PasswordHash>> {
        self.users.get(user)
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether there is no user.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

impl fmt::Debug for Htpasswd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Htpasswd")
            .field("users", &self.users.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `htpasswd -nbs bob hunter2`: base64 of SHA-1("hunter2").
    const BOB_SHA: &str = "bob:{SHA}87u9ZqY9S/F0eUBXjsPQEDUw4h0=";

    fn check(text: &str, user: &str, password: &str) -> bool {
        let table = Htpasswd::parse(text).expect("valid htpasswd");
        table
            .get(user)
            .is_some_and(|h| h.verify(password.as_bytes()))
    }

    #[test]
    fn bcrypt_sha_ssha_and_plain_verify() {
        let hash = bcrypt::hash_with_salt("s3cret", 4, [7u8; 16]).unwrap();
        for version in [
            bcrypt::Version::TwoY,
            bcrypt::Version::TwoB,
            bcrypt::Version::TwoA,
        ] {
            let line = format!("alice:{}", hash.format_for_version(version));
            assert!(check(&line, "alice", "s3cret"), "{line}");
            assert!(!check(&line, "alice", "s3cret "), "{line}");
        }
        assert!(check(BOB_SHA, "bob", "hunter2"));
        assert!(!check(BOB_SHA, "bob", "hunter3"));
        let salted = {
            let mut digest = Sha1::digest(b"pa55salt").to_vec();
            digest.extend_from_slice(b"salt");
            format!(
                "carol:{{SSHA}}{}",
                base64::engine::general_purpose::STANDARD.encode(digest)
            )
        };
        assert!(check(&salted, "carol", "pa55"));
        assert!(!check(&salted, "carol", "pa55salt"));
        assert!(check("dave:plain words", "dave", "plain words"));
        assert!(check("erin:{PLAIN}secret", "erin", "secret"));
        assert!(!check("erin:{PLAIN}secret", "erin", "{PLAIN}secret"));
        assert!(!check("dave:x", "nobody", "x"));
    }

    /// Hashes made by other implementations: PHP's `crypt` (its manual's example) and
    /// Python's `bcrypt`.
    #[test]
    fn bcrypt_hashes_made_elsewhere_verify() {
        let php = "php:$2a$07$usesomesillystringfore2uDLvp1Ii2e./U9C8sBjqp8I90dH6hi";
        assert!(check(php, "php", "rasmuslerdorf"));
        assert!(!check(php, "php", "rasmuslerdorF"));
        let python = "py:$2b$04$EGdrhbKUv8Oc9vGiXX0HQOxSg445d458Muh7DAHskb6QbtCvdxcie";
        assert!(check(python, "py", "correctbatteryhorsestapler"));
        assert!(Htpasswd::parse(python)
            .unwrap()
            .get("py")
            .unwrap()
            .is_slow());
    }

    #[test]
    fn unverifiable_schemes_are_refused_with_their_line() {
        let text =
            "ok:{SHA}87u9ZqY9S/F0eUBXjsPQEDUw4h0=\n\nmd5:$apr1$lZL6V/ci$eIMz/iKDkbtys/uU7LEK00\n";
        let err = Htpasswd::parse(text).unwrap_err();
        assert_eq!(err.line, 3);
        assert!(matches!(err.kind, HtpasswdErrorKind::Unsupported(_)));
        assert!(err
            .to_string()
            .starts_with("line 3: the password is MD5-crypt"));
        for line in [
            "u:$1$salt$hash",
            "u:$6$salt$hash",
            "u:$5$rounds=5000$salt$hash",
            "u:$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
            "u:{SSHA512}abc",
        ] {
            assert!(
                matches!(
                    Htpasswd::parse(line).unwrap_err().kind,
                    HtpasswdErrorKind::Unsupported(_)
                ),
                "{line}"
            );
        }
    }

    #[test]
    fn malformed_lines_say_what_is_wrong() {
        let kind = |text: &str| Htpasswd::parse(text).unwrap_err().kind;
        assert_eq!(kind("no colon here"), HtpasswdErrorKind::NoColon);
        assert_eq!(kind(":password"), HtpasswdErrorKind::EmptyUser);
        assert!(matches!(
            kind("u:{SHA}not base64!"),
            HtpasswdErrorKind::Malformed { .. }
        ));
        assert!(matches!(
            kind("u:{SHA}YWJj"),
            HtpasswdErrorKind::Malformed { .. }
        ));
        assert!(matches!(
            kind("u:{SSHA}87u9ZqY9S/F0eUBXjsPQEDUw4h0="),
            HtpasswdErrorKind::Malformed { .. }
        ));
        assert!(matches!(
            kind("u:$2y$10$short"),
            HtpasswdErrorKind::Malformed { .. }
        ));
        let costly = bcrypt::hash_with_salt("x", 4, [1u8; 16])
            .unwrap()
            .format_for_version(bcrypt::Version::TwoY)
            .replacen("$04$", "$15$", 1);
        assert_eq!(
            kind(&format!("u:{costly}")),
            HtpasswdErrorKind::CostTooHigh(15)
        );
    }

    #[test]
    fn later_lines_and_inline_text_override() {
        let mut table = Htpasswd::parse("u:first\nu:second").unwrap();
        assert!(table.get("u").unwrap().verify(b"second"));
        table.extend(Htpasswd::parse("u:third\nv:fourth").unwrap());
        assert!(table.get("u").unwrap().verify(b"third"));
        assert_eq!(table.len(), 2);
        assert!(!format!("{table:?}").contains("third"));
    }
}
