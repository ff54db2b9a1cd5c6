//! [`BasicAuth`]: `basic_auth_users`, validated at load, and the check of
//! `Authorization: Basic` credentials against their bcrypt hashes.
//!
//! Owns the timing defences (unknown users pay for bcrypt too, one bcrypt at a
//! time) and the cache of verified credentials. It must never log or print a
//! password, a header value or a hash.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use http::HeaderValue;
use secrecy::{ExposeSecret, SecretSlice};
use subtle::ConstantTimeEq;

use crate::{lock, Problem};

/// How many successful (user, password) pairs [`BasicAuth`] remembers, as
/// exporter-toolkit does (its cache holds 100 entries).
const AUTH_CACHE_SIZE: usize = 100;

/// Salt and digest of a bcrypt hash of a string nobody sends; an unknown user is
/// verified against it (with the configured cost) so that it costs as much as a
/// wrong password and user names cannot be told apart by response time.
const DUMMY_BCRYPT_TAIL: &str = "It2ZcKOQkSGgTfz/2UtKDe5nTwACq59Bk5WGgWDOqtU56oS//Dj2C";

/// Checks `Authorization: Basic` credentials against `basic_auth_users`. Cheap to
/// clone; clones share the cache.
#[derive(Clone)]
pub struct BasicAuth {
    inner: Arc<BasicAuthInner>,
}

struct BasicAuthInner {
    /// User name → bcrypt hash, validated at load.
    users: BTreeMap<String, String>,
    /// What an unknown user is verified against: same cost as the dearest real hash.
    dummy_hash: String,
    /// Recently verified (user, password) pairs, oldest first, so that repeated
    /// scrapes do not pay for bcrypt each time (exporter-toolkit does the same).
    /// Only successes are kept.
    cache: Mutex<VecDeque<CachedCredential>>,
    /// One bcrypt at a time, as exporter-toolkit does: a flood of bad passwords
    /// then costs one core, not the whole blocking pool.
    /// The permit moves into the blocking task, so a cancelled request does not
    /// free the slot while its bcrypt still runs.
    bcrypt_slot: Arc<tokio::sync::Semaphore>,
    /// How many bcrypt verifications ran; lets tests see that unknown users pay too.
    #[cfg(test)]
    verifications: std::sync::atomic::AtomicUsize,
}

struct CachedCredential {
    user: String,
    password: SecretSlice<u8>,
}

impl BasicAuth {
    pub(crate) fn new(users: BTreeMap<String, String>) -> Result<BasicAuth, Problem> {
        let mut max_cost = 0;
        for (user, hash) in &users {
            let key = format!("basic_auth_users.{user}");
            let parts: bcrypt::HashParts = hash
                .parse()
                .map_err(|err| Problem::new(&key, format!("not a bcrypt hash: {err}")))?;
            let cost = parts.get_cost();
            if !(4..=31).contains(&cost) {
                return Err(Problem::new(
                    key,
                    format!("bcrypt cost {cost} is outside 4..=31"),
                ));
            }
            max_cost = max_cost.max(cost);
        }
        Ok(BasicAuth {
            inner: Arc::new(BasicAuthInner {
                users,
                dummy_hash: format!("$2b${max_cost:02}${DUMMY_BCRYPT_TAIL}"),
                cache: Mutex::new(VecDeque::with_capacity(AUTH_CACHE_SIZE)),
                bcrypt_slot: Arc::new(tokio::sync::Semaphore::new(1)),
                #[cfg(test)]
                verifications: std::sync::atomic::AtomicUsize::new(0),
            }),
        })
    }

    /// Whether `authorization` (the request's `Authorization` header, if any)
    /// carries `Basic` credentials of a configured user. bcrypt runs on the
    /// blocking pool; an unknown user costs as much as a wrong password.
    pub async fn check(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return false;
        };
        let inner = &self.inner;
        if inner.is_cached(&user, &password) {
            return true;
        }
        let Ok(slot) = Arc::clone(&inner.bcrypt_slot).acquire_owned().await else {
            return false; // never closed
        };
        // Another request may have verified the same pair while we waited.
        if inner.is_cached(&user, &password) {
            return true;
        }
        let known_hash = inner.users.get(&user);
        let hash = known_hash.unwrap_or(&inner.dummy_hash).clone();
        #[cfg(test)]
        inner
            .verifications
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let verified = tokio::task::spawn_blocking(move || {
            let secret = password.expose_secret();
            // Go's bcrypt refuses passwords over 72 bytes; the crate would truncate.
            let ok = bcrypt::verify(secret, &hash).unwrap_or(false) && secret.len() <= 72;
            drop(slot);
            (ok, password)
        })
        .await;
        let Ok((matches, password)) = verified else {
            return false;
        };
        let ok = matches && known_hash.is_some();
        if ok {
            let mut cache = lock(&inner.cache);
            if cache.len() >= AUTH_CACHE_SIZE {
                cache.pop_front();
            }
            cache.push_back(CachedCredential { user, password });
        }
        ok
    }

    #[cfg(test)]
    fn verifications(&self) -> usize {
        self.inner
            .verifications
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl BasicAuthInner {
    fn is_cached(&self, user: &str, password: &SecretSlice<u8>) -> bool {
        let password = password.expose_secret();
        lock(&self.cache).iter().any(|cached| {
            cached.user == user && bool::from(cached.password.expose_secret().ct_eq(password))
        })
    }
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Redacted;
        impl fmt::Debug for Redacted {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("[REDACTED]")
            }
        }
        struct Users<'a>(&'a BTreeMap<String, String>);
        impl fmt::Debug for Users<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map()
                    .entries(self.0.keys().map(|user| (user, Redacted)))
                    .finish()
            }
        }
        f.debug_struct("BasicAuth")
            .field("users", &Users(&self.inner.users))
            .finish_non_exhaustive()
    }
}

/// `Basic base64(user:password)`, as Go's `Request.BasicAuth` reads it: the scheme
/// is case-insensitive and followed by one space; standard base64 with padding.
fn parse_basic(value: &HeaderValue) -> Option<(String, SecretSlice<u8>)> {
    const PREFIX: &[u8] = b"Basic ";
    let bytes = value.as_bytes();
    if bytes.len() < PREFIX.len() || !bytes[..PREFIX.len()].eq_ignore_ascii_case(PREFIX) {
        return None;
    }
    let decoded = SecretSlice::from(
        base64::engine::general_purpose::STANDARD
            .decode(&bytes[PREFIX.len()..])
            .ok()?,
    );
    let decoded = decoded.expose_secret();
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = std::str::from_utf8(&decoded[..colon]).ok()?.to_owned();
    let password = SecretSlice::from(decoded[colon + 1..].to_vec());
    Some((user, password))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> HeaderValue {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {token}")).unwrap()
    }

    /// alice (cost 4) and bob (cost 5).
    fn basic_auth() -> BasicAuth {
        let users = BTreeMap::from([
            ("alice".to_owned(), bcrypt::hash("s3cret", 4).unwrap()),
            ("bob".to_owned(), bcrypt::hash("hunter2", 5).unwrap()),
        ]);
        BasicAuth::new(users).unwrap()
    }

    #[tokio::test]
    async fn basic_auth_accepts_right_password_and_caches_it() {
        let auth = basic_auth();
        assert!(auth.check(Some(&basic("alice", "s3cret"))).await);
        assert_eq!(auth.verifications(), 1);
        // Cached: the second scrape pays no bcrypt, also through a clone.
        assert!(auth.clone().check(Some(&basic("alice", "s3cret"))).await);
        assert_eq!(auth.verifications(), 1);
        // Scheme is case-insensitive, as in Go.
        let lower = HeaderValue::from_str(
            &basic("bob", "hunter2")
                .to_str()
                .unwrap()
                .replace("Basic", "basic"),
        )
        .unwrap();
        assert!(auth.check(Some(&lower)).await);
        assert_eq!(auth.verifications(), 2);
    }

    #[tokio::test]
    async fn basic_auth_refuses_wrong_password() {
        let auth = basic_auth();
        assert!(!auth.check(Some(&basic("alice", "wrong"))).await);
        assert!(!auth.check(Some(&basic("alice", "s3cret "))).await);
        let long = format!("s3cret{}", "x".repeat(70)); // bcrypt sees only 72 bytes
        assert!(!auth.check(Some(&basic("alice", &long))).await);
        // A user's password does not open another user.
        assert!(!auth.check(Some(&basic("bob", "s3cret"))).await);
        assert_eq!(auth.verifications(), 4);
        // Failures are not cached: each one pays bcrypt.
        assert!(!auth.check(Some(&basic("alice", "wrong"))).await);
        assert_eq!(auth.verifications(), 5);
    }

    #[tokio::test]
    async fn basic_auth_unknown_user_pays_for_bcrypt() {
        let auth = basic_auth();
        assert!(!auth.check(Some(&basic("mallory", "s3cret"))).await);
        assert_eq!(auth.verifications(), 1);
        // The dummy hash costs as much as the dearest configured one (bob: 5).
        let dummy: bcrypt::HashParts = auth.inner.dummy_hash.parse().unwrap();
        assert_eq!(dummy.get_cost(), 5);
        assert!(!bcrypt::verify("s3cret", &auth.inner.dummy_hash).unwrap());
    }

    #[tokio::test]
    async fn basic_auth_refuses_missing_or_malformed_headers() {
        let auth = basic_auth();
        assert!(!auth.check(None).await);
        let token = base64::engine::general_purpose::STANDARD.encode("alice");
        for value in [
            "".to_owned(),
            "Basic".to_owned(),
            "Basic ".to_owned(),
            "Bearer abc".to_owned(),
            "Basic !!!not-base64!!!".to_owned(),
            format!("Basic {token}"), // no colon
            format!(
                "Basic  {}",
                &basic("alice", "s3cret").to_str().unwrap()[6..]
            ), // two spaces
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(b"\xff\xfe:x")
            ),
        ] {
            let header = HeaderValue::from_str(&value).unwrap();
            assert!(!auth.check(Some(&header)).await, "{value:?}");
        }
        assert_eq!(auth.verifications(), 0);
    }

    #[test]
    fn the_handle_is_send_and_sync() {
        fn send_sync<T: Send + Sync + Clone + 'static>(_: &T) {}
        fn send<T: Send>(_: T) {}
        let auth = basic_auth();
        send_sync(&auth);
        send(auth.check(None));
        assert_eq!(auth.verifications(), 0);
    }
}
