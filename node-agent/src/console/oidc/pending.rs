//! Sign-ins under way at the identity provider: for each, the OAuth
//! `state`, the OIDC nonce and the PKCE verifier, kept on the server (never
//! in the browser) until the provider sends the browser back.
//!
//! Each is bound to the browser that started it by a random cookie whose
//! SHA-256 is stored beside it, so a callback URL replayed in another
//! browser finds nothing. Entries are single use (taken out on the
//! callback), expire after [`PENDING_TTL`], and there are at most
//! [`MAX_PENDING`] at once: when full (after dropping expired ones), a new
//! sign-in is refused rather than an older one dropped.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use openidconnect::{Nonce, PkceCodeVerifier};
use subtle::ConstantTimeEq;

/// How long a browser has to come back from the provider.
pub const PENDING_TTL: Duration = Duration::from_secs(10 * 60);
/// Most sign-ins under way at once.
pub const MAX_PENDING: usize = 10_000;

/// What the callback needs from the start of a sign-in.
pub struct Pending {
    pub nonce: Nonce,
    pub pkce_verifier: PkceCodeVerifier,
    browser_hash: [u8; 32],
    started: Instant,
}

/// Why a callback found no sign-in under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Unknown or already used `state`.
    Unknown,
    /// Started more than [`PENDING_TTL`] ago.
    Expired,
    /// Started in another browser (its cookie is missing or different).
    OtherBrowser,
}

/// The store.
pub struct PendingSignIns {
    entries: Mutex<HashMap<String, Pending>>,
    ttl: Duration,
    max: usize,
}

fn hash(value: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, value.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl Default for PendingSignIns {
    fn default() -> Self {
        Self::new(PENDING_TTL, MAX_PENDING)
    }
}

impl PendingSignIns {
    pub fn new(ttl: Duration, max: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            ttl,
            max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps a sign-in started under `state` by the browser holding the
    /// cookie value `browser`; `false` when the store is full.
    pub fn insert(
        &self,
        state: String,
        browser: &str,
        nonce: Nonce,
        pkce_verifier: PkceCodeVerifier,
    ) -> bool {
        let mut entries = self.lock();
        if entries.len() >= self.max {
            let ttl = self.ttl;
            entries.retain(|_, p| p.started.elapsed() < ttl);
        }
        if entries.len() >= self.max {
            return false;
        }
        entries.insert(
            state,
            Pending {
                nonce,
                pkce_verifier,
                browser_hash: hash(browser),
                started: Instant::now(),
            },
        );
        true
    }

    /// Takes out the sign-in started under `state`, if the same browser
    /// (cookie value `browser`) comes back within the time allowed. The
    /// entry is gone afterwards whatever the answer.
    pub fn take(&self, state: &str, browser: Option<&str>) -> Result<Pending, Missing> {
        if state.is_empty() || state.len() > 128 {
            return Err(Missing::Unknown);
        }
        let pending = self.lock().remove(state).ok_or(Missing::Unknown)?;
        if pending.started.elapsed() >= self.ttl {
            return Err(Missing::Expired);
        }
        let same: bool = match browser {
            Some(b) => hash(b).ct_eq(&pending.browser_hash).into(),
            None => false,
        };
        if !same {
            return Err(Missing::OtherBrowser);
        }
        Ok(pending)
    }

    /// How many are held (for tests).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(p: &PendingSignIns, state: &str, browser: &str) -> bool {
        p.insert(
            state.into(),
            browser,
            Nonce::new("n".into()),
            PkceCodeVerifier::new("v".repeat(43)),
        )
    }

    #[test]
    fn an_entry_is_single_use_and_bound_to_its_browser() {
        let p = PendingSignIns::default();
        assert!(put(&p, "s1", "cookie-a"));
        assert_eq!(
            p.take("s1", Some("cookie-b")).err(),
            Some(Missing::OtherBrowser)
        );
        // Taken out even though refused: a replay finds nothing.
        assert_eq!(p.take("s1", Some("cookie-a")).err(), Some(Missing::Unknown));
        assert!(put(&p, "s2", "cookie-a"));
        assert_eq!(p.take("s2", None).err(), Some(Missing::OtherBrowser));
        assert!(put(&p, "s3", "cookie-a"));
        let got = p.take("s3", Some("cookie-a")).unwrap();
        assert_eq!(got.nonce.secret(), "n");
        assert_eq!(p.take("s3", Some("cookie-a")).err(), Some(Missing::Unknown));
        assert_eq!(p.take("", Some("cookie-a")).err(), Some(Missing::Unknown));
        assert!(p.is_empty());
    }

    #[test]
    fn entries_expire_and_the_store_is_bounded() {
        let p = PendingSignIns::new(Duration::from_millis(30), 2);
        assert!(put(&p, "a", "x"));
        assert!(put(&p, "b", "x"));
        assert!(!put(&p, "c", "x"), "full: refused");
        assert_eq!(p.len(), 2);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(p.take("a", Some("x")).err(), Some(Missing::Expired));
        // Full of expired entries: they make room.
        assert!(put(&p, "c", "x"));
        assert!(put(&p, "d", "x"));
        assert_eq!(p.len(), 2);
        assert!(p.take("d", Some("x")).is_ok());
    }
}
