//! Checking credentials on a receiver: one [`ServerAuth`] per server authenticator, shared by
//! every shard, and one [`Gatekeeper`] per receiver protocol per shard, which checks each
//! request, counts refusals and logs them at most once a minute.
//!
//! - `bearertokenauth`: the configured header (default `Authorization`) must be exactly one of
//!   the authorization values (`SCHEME TOKEN`), as the Collector compares it, in constant time
//!   against every value.
//! - `basicauth`: `Authorization: Basic base64(user:password)`, the scheme name in any case;
//!   the user must be in the htpasswd table and the password must verify.
//!
//! A bcrypt check takes milliseconds to a second of a core, by cost. The gatekeeper runs it on
//! the shard's blocking thread (glommio's `spawn_blocking`), at most [`SLOW_CHECKS_MAX`] at a
//! time, so the shard goes on serving; and it remembers the last [`VERIFIED_MAX`] headers it
//! accepted (a salted SHA-1 of each, never the header itself), so a client that sends the same
//! credentials with every request pays for one check, not one per request.

use std::cell::{Cell, RefCell};
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use glommio::sync::Semaphore;
use sha1::{Digest, Sha1};

use super::compare;
use super::htpasswd::Htpasswd;
use super::tokens::{TokenCell, TokenView};
use crate::telemetry::AuthMetrics;

/// bcrypt checks one gatekeeper runs at once; more wait their turn.
pub const SLOW_CHECKS_MAX: usize = 2;
/// Accepted `Authorization` headers a gatekeeper remembers (see the module documentation).
pub const VERIFIED_MAX: usize = 64;
/// The longest a receiver stays silent about refusals it counted.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// The realm in `WWW-Authenticate` challenges.
const REALM: &str = "tailgate";

/// What a server authenticator checks.
pub enum ServerAuth {
    /// `bearertokenauth`.
    Bearer {
        /// The header read, lower-cased.
        header: String,
        /// The accepted authorization values.
        tokens: Arc<TokenCell>,
        /// `WWW-Authenticate` for an HTTP refusal, when the header is `Authorization` and
        /// there is a scheme to name.
        challenge: Option<String>,
    },
    /// `basicauth` with `htpasswd`.
    Basic {
        /// The users and their passwords.
        users: Htpasswd,
    },
}

impl ServerAuth {
    /// `bearertokenauth`: `header` must carry one of `tokens`' values.
    pub fn bearer(header: &str, scheme: &str, tokens: Arc<TokenCell>) -> ServerAuth {
        let header = header.to_ascii_lowercase();
        let challenge = (header == "authorization" && !scheme.is_empty())
            .then(|| format!("{scheme} realm=\"{REALM}\""));
        ServerAuth::Bearer {
            header,
            tokens,
            challenge,
        }
    }

    /// `basicauth`: `Authorization: Basic ...` with a user of `users`.
    pub fn basic(users: Htpasswd) -> ServerAuth {
        ServerAuth::Basic { users }
    }

    /// The header a request's credentials are read from, lower-cased.
    pub fn header(&self) -> &str {
        match self {
            ServerAuth::Bearer { header, .. } => header,
            ServerAuth::Basic { .. } => "authorization",
        }
    }
}

impl fmt::Debug for ServerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerAuth::Bearer { header, tokens, .. } => f
                .debug_struct("Bearer")
                .field("header", header)
                .field("tokens", tokens)
                .finish(),
            ServerAuth::Basic { users } => f.debug_struct("Basic").field("users", users).finish(),
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No credentials: the header is absent or empty.
    Missing,
    /// Credentials that do not match.
    Invalid,
}

impl Refusal {
    /// The `reason` label of `tailgate_receiver_auth_failures`.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Invalid => "invalid",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::Missing => "missing credentials",
            Refusal::Invalid => "invalid credentials",
        })
    }
}

/// One receiver protocol's authentication on one shard; see the module documentation.
pub struct Gatekeeper {
    auth: Arc<ServerAuth>,
    /// The shard's view of a bearer authenticator's tokens.
    tokens: Option<TokenView>,
    verified: RefCell<Verified>,
    slow_checks: Semaphore,
    metrics: AuthMetrics,
    log: RefusalLog,
    challenge: Option<Rc<str>>,
}

impl Gatekeeper {
    /// The gatekeeper of `receiver` over `transport` on `shard`, counting in `metrics`. Made on
    /// the shard's thread, which alone uses it.
    pub fn new(
        auth: Arc<ServerAuth>,
        metrics: AuthMetrics,
        receiver: &str,
        transport: &'static str,
        shard: usize,
    ) -> Gatekeeper {
        let (tokens, challenge) = match &*auth {
            ServerAuth::Bearer {
                tokens, challenge, ..
            } => (
                Some(TokenView::new(tokens.clone())),
                challenge.as_deref().map(Rc::from),
            ),
            ServerAuth::Basic { .. } => (
                None,
                Some(Rc::from(format!(
                    "Basic realm=\"{REALM}\", charset=\"UTF-8\""
                ))),
            ),
        };
        Gatekeeper {
            auth,
            tokens,
            verified: RefCell::new(Verified::new()),
            slow_checks: Semaphore::new(SLOW_CHECKS_MAX as u64),
            metrics,
            log: RefusalLog {
                receiver: receiver.to_string(),
                transport,
                shard,
                last: Cell::new(None),
                unreported: Cell::new(0),
            },
            challenge,
        }
    }

    /// The header to hand to [`Gatekeeper::check`], lower-cased.
    pub fn header(&self) -> &str {
        self.auth.header()
    }

    /// The `WWW-Authenticate` value for an HTTP refusal, where one applies.
    pub fn challenge(&self) -> Option<Rc<str>> {
        self.challenge.clone()
    }

    /// Checks the value of the request's [`Gatekeeper::header`] (`None` when absent); counts
    /// and (rate-limited) logs a refusal.
    pub async fn check(&self, value: Option<&[u8]>) -> Result<(), Refusal> {
        let result = match value.filter(|v| !v.is_empty()) {
            None => Err(Refusal::Missing),
            Some(value) => self.verify(value).await,
        };
        if let Err(refusal) = result {
            match refusal {
                Refusal::Missing => self.metrics.missing.add(1),
                Refusal::Invalid => self.metrics.invalid.add(1),
            }
            self.log.note(refusal);
        }
        result
    }

    async fn verify(&self, value: &[u8]) -> Result<(), Refusal> {
        match &*self.auth {
            ServerAuth::Bearer { .. } => {
                let view = self
                    .tokens
                    .as_ref()
                    .expect("a bearer gatekeeper has a view");
                let (values, _) = view.current();
                let accepted = compare::any_equal(value, values.iter().map(|v| v.as_bytes()));
                accepted.then_some(()).ok_or(Refusal::Invalid)
            }
            ServerAuth::Basic { users } => {
                let credentials = BasicCredentials::parse(value).ok_or(Refusal::Invalid)?;
                let hash = users.get(credentials.user()).ok_or(Refusal::Invalid)?;
                if !hash.is_slow() {
                    let accepted = hash.verify(credentials.password());
                    return accepted.then_some(()).ok_or(Refusal::Invalid);
                }
                let digest = self.verified.borrow().digest(value);
                if self.verified.borrow().contains(&digest) {
                    return Ok(());
                }
                let _permit = self.slow_checks.acquire_permit(1).await;
                let (hash, password) = (hash.clone(), credentials.password().to_vec());
                let accepted = glommio::executor()
                    .spawn_blocking(move || hash.verify(&password))
                    .await;
                if !accepted {
                    return Err(Refusal::Invalid);
                }
                self.verified.borrow_mut().insert(digest);
                Ok(())
            }
        }
    }
}

/// The user and password of an `Authorization: Basic ...` value.
pub struct BasicCredentials {
    decoded: Vec<u8>,
    colon: usize,
}

impl BasicCredentials {
    /// Reads a header value as Go's `net/http` does: the scheme name in any case, then
    /// standard base64 of `user:password`, split at the first `:`.
    pub fn parse(value: &[u8]) -> Option<BasicCredentials> {
        const PREFIX: &[u8] = b"basic ";
        if value.len() < PREFIX.len() || !value[..PREFIX.len()].eq_ignore_ascii_case(PREFIX) {
            return None;
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(&value[PREFIX.len()..])
            .ok()?;
        let colon = decoded.iter().position(|&b| b == b':')?;
        std::str::from_utf8(&decoded[..colon]).ok()?;
        Some(BasicCredentials { decoded, colon })
    }

    /// The user name.
    pub fn user(&self) -> &str {
        std::str::from_utf8(&self.decoded[..self.colon]).expect("checked in parse")
    }

    /// The password, as bytes.
    pub fn password(&self) -> &[u8] {
        &self.decoded[self.colon + 1..]
    }
}

/// Salted digests of accepted headers, replaced round-robin.
struct Verified {
    key: [u8; 16],
    digests: Vec<[u8; 20]>,
    next: usize,
}

impl Verified {
    fn new() -> Verified {
        let mut key = [0u8; 16];
        for half in key.chunks_mut(8) {
            // `RandomState` is seeded from the operating system's randomness.
            let random = RandomState::new().build_hasher().finish();
            half.copy_from_slice(&random.to_le_bytes());
        }
        Verified {
            key,
            digests: Vec::new(),
            next: 0,
        }
    }

    fn digest(&self, value: &[u8]) -> [u8; 20] {
        let mut hasher = Sha1::new();
        hasher.update(self.key);
        hasher.update(value);
        hasher.finalize().into()
    }

    fn contains(&self, digest: &[u8; 20]) -> bool {
        compare::any_equal(digest, self.digests.iter().map(|d| d.as_slice()))
    }

    fn insert(&mut self, digest: [u8; 20]) {
        if self.digests.len() < VERIFIED_MAX {
            self.digests.push(digest);
        } else {
            self.digests[self.next] = digest;
            self.next = (self.next + 1) % VERIFIED_MAX;
        }
    }
}

/// Refusals are counted always, and logged at most once per [`REFUSAL_LOG_INTERVAL`] per
/// gatekeeper: a client with a wrong token retrying in a loop must not flood the log.
struct RefusalLog {
    receiver: String,
    transport: &'static str,
    shard: usize,
    last: Cell<Option<Instant>>,
    unreported: Cell<u64>,
}

impl RefusalLog {
    fn note(&self, refusal: Refusal) {
        let count = self.unreported.get() + 1;
        let now = Instant::now();
        if self
            .last
            .get()
            .is_some_and(|at| now.duration_since(at) < REFUSAL_LOG_INTERVAL)
        {
            self.unreported.set(count);
            return;
        }
        tracing::warn!(
            receiver = %self.receiver,
            transport = self.transport,
            shard = self.shard,
            "refused {count} request(s) for missing or invalid credentials since the last \
             report (the latest: {refusal}); logged at most once a minute, counted in \
             tailgate_receiver_auth_failures"
        );
        self.last.set(Some(now));
        self.unreported.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::RegistryBuilder;
    use glommio::LocalExecutor;

    fn gatekeeper(auth: ServerAuth) -> (Gatekeeper, AuthMetrics) {
        let metrics = AuthMetrics::register(&mut RegistryBuilder::new(), "otlp", "grpc", "0");
        let keeper = Gatekeeper::new(Arc::new(auth), metrics.clone(), "otlp", "grpc", 0);
        (keeper, metrics)
    }

    fn basic(user: &str, password: &str) -> Vec<u8> {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {encoded}").into_bytes()
    }

    #[test]
    fn bearer_accepts_any_listed_token_and_counts_refusals_by_reason() {
        LocalExecutor::default().run(async {
            let cell = Arc::new(TokenCell::new("Bearer", &["t1".into(), "t2".into()], None));
            let (keeper, metrics) =
                gatekeeper(ServerAuth::bearer("Authorization", "Bearer", cell.clone()));
            assert_eq!(keeper.header(), "authorization");
            assert_eq!(
                keeper.challenge().as_deref(),
                Some("Bearer realm=\"tailgate\"")
            );
            assert_eq!(keeper.check(Some(b"Bearer t1")).await, Ok(()));
            assert_eq!(keeper.check(Some(b"Bearer t2")).await, Ok(()));
            assert_eq!(
                keeper.check(Some(b"Bearer t3")).await,
                Err(Refusal::Invalid)
            );
            assert_eq!(keeper.check(Some(b"t1")).await, Err(Refusal::Invalid));
            assert_eq!(keeper.check(Some(b"")).await, Err(Refusal::Missing));
            assert_eq!(keeper.check(None).await, Err(Refusal::Missing));
            assert_eq!((metrics.missing.get(), metrics.invalid.get()), (2, 2));
            cell.publish(&["t3".into()]);
            assert_eq!(keeper.check(Some(b"Bearer t3")).await, Ok(()));
            assert_eq!(
                keeper.check(Some(b"Bearer t1")).await,
                Err(Refusal::Invalid)
            );
        });
    }

    #[test]
    fn a_custom_header_without_a_scheme_has_no_challenge() {
        let cell = Arc::new(TokenCell::new("", &["k".into()], None));
        let auth = ServerAuth::bearer("X-Api-Key", "", cell);
        assert_eq!(auth.header(), "x-api-key");
        assert!(matches!(
            auth,
            ServerAuth::Bearer {
                challenge: None,
                ..
            }
        ));
    }

    #[test]
    fn basic_checks_users_and_remembers_bcrypt_successes() {
        LocalExecutor::default().run(async {
            let hash = bcrypt::hash_with_salt("s3cret", 4, [3u8; 16])
                .unwrap()
                .format_for_version(bcrypt::Version::TwoY);
            let users = Htpasswd::parse(&format!(
                "alice:{hash}\nbob:{{SHA}}87u9ZqY9S/F0eUBXjsPQEDUw4h0="
            ))
            .unwrap();
            let (keeper, metrics) = gatekeeper(ServerAuth::basic(users));
            assert!(keeper
                .challenge()
                .is_some_and(|c| c.starts_with("Basic realm=")));
            assert_eq!(keeper.check(Some(&basic("bob", "hunter2"))).await, Ok(()));
            assert_eq!(
                keeper.check(Some(&basic("bob", "hunter3"))).await,
                Err(Refusal::Invalid)
            );
            assert_eq!(keeper.check(Some(&basic("alice", "s3cret"))).await, Ok(()));
            assert_eq!(keeper.verified.borrow().digests.len(), 1);
            assert_eq!(keeper.check(Some(&basic("alice", "s3cret"))).await, Ok(()));
            assert_eq!(keeper.verified.borrow().digests.len(), 1);
            assert_eq!(
                keeper.check(Some(&basic("alice", "wrong"))).await,
                Err(Refusal::Invalid)
            );
            assert_eq!(
                keeper.check(Some(&basic("carol", "x"))).await,
                Err(Refusal::Invalid)
            );
            assert_eq!(
                keeper.check(Some(b"Bearer abc")).await,
                Err(Refusal::Invalid)
            );
            assert_eq!(
                keeper.check(Some(b"Basic !!notbase64")).await,
                Err(Refusal::Invalid)
            );
            assert_eq!(metrics.invalid.get(), 5);
        });
    }

    #[test]
    fn basic_credentials_parse_as_go_reads_them() {
        let c = BasicCredentials::parse(b"bAsIc dXNlcjpwOnNz").unwrap();
        assert_eq!((c.user(), c.password()), ("user", &b"p:ss"[..]));
        assert!(
            BasicCredentials::parse(b"Basic dXNlcg==").is_none(),
            "no colon"
        );
        assert!(BasicCredentials::parse(b"Basic").is_none());
        assert!(BasicCredentials::parse(b"Bearer dXNlcjpw").is_none());
    }

    #[test]
    fn the_verified_cache_is_bounded() {
        let mut verified = Verified::new();
        for i in 0..(VERIFIED_MAX + 10) {
            let digest = verified.digest(format!("header {i}").as_bytes());
            verified.insert(digest);
        }
        assert_eq!(verified.digests.len(), VERIFIED_MAX);
        let last = verified.digest(format!("header {}", VERIFIED_MAX + 9).as_bytes());
        assert!(verified.contains(&last));
        assert!(!verified.contains(&verified.digest(b"header 0")));
    }
}
