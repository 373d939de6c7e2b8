//! Server-side sessions, in the agent's database.
//!
//! The browser holds only a random 256-bit session id in a cookie that is
//! `HttpOnly`, `SameSite=Strict`, path `/`, and over HTTPS `Secure` with the
//! `__Host-` prefix (so no other host or path can set or shadow it). The
//! table holds only the SHA-256 of the id, the acting user fixed at sign-in,
//! the session's CSRF token and its times. A session ends when unused for
//! the idle timeout, at the absolute timeout after sign-in, or at sign-out;
//! an ended session's row is deleted when next seen.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use cookie::{Cookie, SameSite};
use rand::RngCore;
use sqlx::{Row, SqlitePool};

use super::accounts::StaffIdentity;
use crate::outbox::Outbox;

/// A signed-in session, as the pages see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub staff: StaffIdentity,
    /// Put in every form; checked on every POST ([`super::csrf`]).
    pub csrf_token: String,
    /// The SHA-256 of the session id (hex): the row's key.
    id_hash: String,
}

/// The session table and its timeouts.
#[derive(Debug, Clone)]
pub struct Sessions {
    pool: SqlitePool,
    idle: Duration,
    absolute: Duration,
    tls: bool,
}

/// A random 256-bit value, URL-safe base64.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn hash_id(id: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, id.as_bytes()))
}

impl Sessions {
    pub fn new(outbox: &Outbox, idle: Duration, absolute: Duration, tls: bool) -> Self {
        Self {
            pool: outbox.pool().clone(),
            idle,
            absolute,
            tls,
        }
    }

    /// How long an unused session lasts.
    pub fn idle(&self) -> Duration {
        self.idle
    }

    /// The session cookie's name: `__Host-` prefixed over HTTPS. (Browsers
    /// take a `__Host-` cookie only when `Secure`, and `Secure` only over
    /// HTTPS, so plain HTTP on loopback uses a plain name.)
    pub fn cookie_name(&self) -> &'static str {
        if self.tls {
            "__Host-kith-session"
        } else {
            "kith-session"
        }
    }

    /// The `Set-Cookie` value for a new session id.
    pub fn cookie(&self, id: &str) -> String {
        self.build_cookie(id.to_string(), None)
    }

    /// The `Set-Cookie` value that clears the session cookie.
    pub fn clearing_cookie(&self) -> String {
        self.build_cookie(String::new(), Some(cookie::time::Duration::ZERO))
    }

    fn build_cookie(&self, value: String, max_age: Option<cookie::time::Duration>) -> String {
        let mut c = Cookie::build((self.cookie_name(), value))
            .path("/")
            .http_only(true)
            .secure(self.tls)
            .same_site(SameSite::Strict);
        if let Some(age) = max_age {
            c = c.max_age(age);
        }
        c.build().to_string()
    }

    /// Starts a session for `staff`; returns the session id for the cookie.
    pub async fn create(&self, staff: &StaffIdentity) -> Result<String, sqlx::Error> {
        let id = random_token();
        let now = Utc::now().timestamp_millis();
        sqlx::query(
            "INSERT INTO console_sessions (id_hash, user_id, display_name, team, role, \
             csrf_token, created_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(hash_id(&id))
        .bind(&staff.user_id)
        .bind(&staff.display_name)
        .bind(&staff.team)
        .bind(&staff.role)
        .bind(random_token())
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// The live session with this id, touched (its idle clock restarted);
    /// `None` when unknown or timed out (a timed-out row is deleted).
    pub async fn find(&self, id: &str) -> Result<Option<Session>, sqlx::Error> {
        self.find_at(id, Utc::now().timestamp_millis()).await
    }

    /// [`Self::find`] as of `now_ms` (milliseconds since the epoch).
    pub async fn find_at(&self, id: &str, now_ms: i64) -> Result<Option<Session>, sqlx::Error> {
        if id.is_empty() || id.len() > 64 {
            return Ok(None);
        }
        let id_hash = hash_id(id);
        let Some(row) = sqlx::query(
            "SELECT user_id, display_name, team, role, csrf_token, created_at, last_seen_at \
             FROM console_sessions WHERE id_hash = ?",
        )
        .bind(&id_hash)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let created: i64 = row.get(5);
        let last_seen: i64 = row.get(6);
        let idle_ms = self.idle.as_millis() as i64;
        let absolute_ms = self.absolute.as_millis() as i64;
        if now_ms - last_seen >= idle_ms || now_ms - created >= absolute_ms {
            self.delete_hash(&id_hash).await?;
            return Ok(None);
        }
        sqlx::query("UPDATE console_sessions SET last_seen_at = ? WHERE id_hash = ?")
            .bind(now_ms)
            .bind(&id_hash)
            .execute(&self.pool)
            .await?;
        Ok(Some(Session {
            staff: StaffIdentity {
                user_id: row.get(0),
                display_name: row.get(1),
                team: row.get(2),
                role: row.get(3),
            },
            csrf_token: row.get(4),
            id_hash,
        }))
    }

    /// Ends a session (sign-out).
    pub async fn end(&self, session: &Session) -> Result<(), sqlx::Error> {
        self.delete_hash(&session.id_hash).await
    }

    async fn delete_hash(&self, id_hash: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM console_sessions WHERE id_hash = ?")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes every timed-out session (run now and then).
    pub async fn sweep(&self) -> Result<u64, sqlx::Error> {
        let now = Utc::now().timestamp_millis();
        let done =
            sqlx::query("DELETE FROM console_sessions WHERE last_seen_at <= ? OR created_at <= ?")
                .bind(now - self.idle.as_millis() as i64)
                .bind(now - self.absolute.as_millis() as i64)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected())
    }

    /// The stored id hashes, for tests that check no id is kept in clear.
    #[doc(hidden)]
    pub async fn stored_id_hashes(&self) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT id_hash FROM console_sessions")
            .fetch_all(&self.pool)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sessions(tls: bool) -> (tempfile::TempDir, Sessions) {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(&dir.path().join("outbox.db")).await.unwrap();
        let s = Sessions::new(
            &outbox,
            Duration::from_secs(15 * 60),
            Duration::from_secs(3600),
            tls,
        );
        (dir, s)
    }

    fn staff() -> StaffIdentity {
        StaffIdentity {
            user_id: "sam".into(),
            display_name: "Sam Patel".into(),
            team: "MASH".into(),
            role: "social_worker".into(),
        }
    }

    #[tokio::test]
    async fn the_cookie_is_host_only_http_only_secure_and_strict() {
        let (_d, s) = sessions(true).await;
        let c = s.cookie("abc");
        for part in [
            "__Host-kith-session=abc",
            "HttpOnly",
            "Secure",
            "SameSite=Strict",
            "Path=/",
        ] {
            assert!(c.contains(part), "{part} missing from {c}");
        }
        assert!(!c.contains("Domain"), "{c}");
        assert!(s.clearing_cookie().contains("Max-Age=0"));
        let (_d, plain) = sessions(false).await;
        let c = plain.cookie("abc");
        assert!(c.starts_with("kith-session=abc"), "{c}");
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Strict"),
            "{c}"
        );
    }

    #[tokio::test]
    async fn only_a_hash_of_the_id_is_stored() {
        let (_d, s) = sessions(true).await;
        let id = s.create(&staff()).await.unwrap();
        let stored = s.stored_id_hashes().await.unwrap();
        assert_eq!(stored, vec![hash_id(&id)]);
        assert!(!stored[0].contains(&id));
        let found = s.find(&id).await.unwrap().unwrap();
        assert_eq!(found.staff, staff());
        assert!(s.find("not-a-session").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn idle_and_absolute_timeouts_and_sign_out_end_a_session() {
        let (_d, s) = sessions(true).await;
        let id = s.create(&staff()).await.unwrap();
        let now = Utc::now().timestamp_millis();
        let minute = 60_000;
        // Used every 14 minutes: alive, until the hour is up.
        assert!(s.find_at(&id, now + 14 * minute).await.unwrap().is_some());
        assert!(s.find_at(&id, now + 28 * minute).await.unwrap().is_some());
        assert!(s.find_at(&id, now + 42 * minute).await.unwrap().is_some());
        assert!(s.find_at(&id, now + 56 * minute).await.unwrap().is_some());
        assert!(s.find_at(&id, now + 61 * minute).await.unwrap().is_none());
        assert!(s.stored_id_hashes().await.unwrap().is_empty());

        // Left alone for 15 minutes: gone.
        let id = s.create(&staff()).await.unwrap();
        assert!(
            s.find_at(&id, now + 15 * minute + 1000)
                .await
                .unwrap()
                .is_none()
        );

        let id = s.create(&staff()).await.unwrap();
        let live = s.find(&id).await.unwrap().unwrap();
        s.end(&live).await.unwrap();
        assert!(s.find(&id).await.unwrap().is_none());
    }
}
