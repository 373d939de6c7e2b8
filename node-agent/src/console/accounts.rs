//! Local console accounts, kept in the agent's database: for the embedded
//! default and the demo, where there is no identity provider.
//!
//! Passwords are stored only as argon2id hashes (PHC strings, the `argon2`
//! crate's default parameters: 19 MiB, 2 passes, 1 lane, as OWASP
//! recommends). A sign-in for an unknown or disabled account still runs one
//! hash, so its timing does not tell which accounts exist. Managed with
//! `kith-agent user add|disable|list|reset-password`.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, password_hash::rand_core::OsRng};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Row, SqlitePool};

use super::roles::Roles;
use crate::outbox::Outbox;

/// Shortest password accepted (NCSC: length over complexity).
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted: hashing is costly, so unbounded input is not.
pub const MAX_PASSWORD_CHARS: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("user {0:?} already exists")]
    Exists(String),
    #[error("no user {0:?}")]
    NotFound(String),
    #[error("the accounts table: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("password hashing: {0}")]
    Hash(String),
}

fn invalid(field: &'static str, reason: impl Into<String>) -> AccountError {
    AccountError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// A new account's details, as given to `kith-agent user add`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAccount {
    pub user_id: String,
    pub display_name: String,
    pub team: String,
    pub role: String,
}

/// An account as listed (never with its hash).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Account {
    pub user_id: String,
    pub display_name: String,
    pub team: String,
    pub role: String,
    pub disabled: bool,
    pub created_at: Option<DateTime<Utc>>,
}

/// Who signed in, as the console sends them to the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffIdentity {
    pub user_id: String,
    pub display_name: String,
    pub team: String,
    pub role: String,
}

/// Hashes a password with argon2id and a random salt.
pub fn hash_password(password: &str) -> Result<String, AccountError> {
    check_password(password)?;
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

fn check_password(password: &str) -> Result<(), AccountError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(invalid(
            "password",
            format!("must be at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(invalid(
            "password",
            format!("must be at most {MAX_PASSWORD_CHARS} characters"),
        ));
    }
    Ok(())
}

/// Whether `password` matches the PHC `hash`; false for a malformed hash.
pub fn verify_password(password: &str, hash: &str) -> bool {
    if password.chars().count() > MAX_PASSWORD_CHARS {
        return false;
    }
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// A hash of nothing anyone knows, verified against when the account does
/// not exist so the answer takes as long either way.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(b"no account has this password", &salt)
            .expect("argon2 hashes")
            .to_string()
    })
}

fn check_text(field: &'static str, value: &str, max: usize) -> Result<String, AccountError> {
    let v = value.trim();
    if v.chars().count() > max {
        return Err(invalid(field, format!("must be at most {max} characters")));
    }
    if v.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(v.to_string())
}

/// Checks a user id: 1 to 64 of letters, digits, `.`, `_`, `-`, `@`.
pub fn check_user_id(user_id: &str) -> Result<String, AccountError> {
    let id = user_id.trim();
    if id.is_empty() {
        return Err(invalid("user id", "must not be empty"));
    }
    if id.chars().count() > 64 {
        return Err(invalid("user id", "must be at most 64 characters"));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
    {
        return Err(invalid(
            "user id",
            "may hold only letters, digits and . _ - @",
        ));
    }
    Ok(id.to_string())
}

/// The local accounts table.
#[derive(Debug, Clone)]
pub struct Accounts {
    pool: SqlitePool,
}

impl Accounts {
    pub fn new(outbox: &Outbox) -> Self {
        Self {
            pool: outbox.pool().clone(),
        }
    }

    /// Adds an account; its role must be one of `roles`.
    pub async fn add(
        &self,
        new: &NewAccount,
        password: &str,
        roles: &Roles,
    ) -> Result<(), AccountError> {
        let user_id = check_user_id(&new.user_id)?;
        let display_name = check_text("name", &new.display_name, 200)?;
        if display_name.is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
        let team = check_text("team", &new.team, 200)?;
        roles
            .check(new.role.trim())
            .map_err(|reason| invalid("role", reason))?;
        let hash = hash_password(password)?;
        let now = Utc::now().timestamp_millis();
        let done = sqlx::query(
            "INSERT INTO console_users (user_id, display_name, team, role, password_hash, \
             disabled, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?) \
             ON CONFLICT (user_id) DO NOTHING",
        )
        .bind(&user_id)
        .bind(&display_name)
        .bind(&team)
        .bind(new.role.trim())
        .bind(&hash)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(AccountError::Exists(user_id));
        }
        Ok(())
    }

    /// Disables an account and ends its sessions.
    pub async fn disable(&self, user_id: &str) -> Result<(), AccountError> {
        let update =
            sqlx::query("UPDATE console_users SET disabled = 1, updated_at = ? WHERE user_id = ?")
                .bind(Utc::now().timestamp_millis())
                .bind(user_id);
        self.change_ending_sessions(user_id, update).await
    }

    /// Runs `update` (of `user_id`'s account) and ends the account's
    /// sessions, in one transaction; an account that is not there is
    /// [`AccountError::NotFound`].
    async fn change_ending_sessions<'q>(
        &self,
        user_id: &str,
        update: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    ) -> Result<(), AccountError> {
        let mut tx = self.pool.begin().await?;
        if update.execute(&mut *tx).await?.rows_affected() == 0 {
            return Err(AccountError::NotFound(user_id.to_string()));
        }
        sqlx::query("DELETE FROM console_sessions WHERE user_id = ?")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sets a new password, re-enables the account, and ends its sessions.
    pub async fn reset_password(&self, user_id: &str, password: &str) -> Result<(), AccountError> {
        let hash = hash_password(password)?;
        let update = sqlx::query(
            "UPDATE console_users SET password_hash = ?, disabled = 0, updated_at = ? \
             WHERE user_id = ?",
        )
        .bind(hash)
        .bind(Utc::now().timestamp_millis())
        .bind(user_id);
        self.change_ending_sessions(user_id, update).await
    }

    /// Every account, by user id.
    pub async fn list(&self) -> Result<Vec<Account>, AccountError> {
        let rows = sqlx::query(
            "SELECT user_id, display_name, team, role, disabled, created_at \
             FROM console_users ORDER BY user_id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Account {
                user_id: r.get(0),
                display_name: r.get(1),
                team: r.get(2),
                role: r.get(3),
                disabled: r.get::<i64, _>(4) != 0,
                created_at: DateTime::from_timestamp_millis(r.get(5)),
            })
            .collect())
    }

    /// The account's identity when `password` is right and the account is
    /// enabled; `None` otherwise, after the same work either way.
    pub async fn verify(
        &self,
        user_id: &str,
        password: &str,
    ) -> Result<Option<StaffIdentity>, AccountError> {
        let row = sqlx::query(
            "SELECT user_id, display_name, team, role, password_hash, disabled \
             FROM console_users WHERE user_id = ?",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        let (identity, hash, enabled) = match row {
            Some(r) => (
                Some(StaffIdentity {
                    user_id: r.get(0),
                    display_name: r.get(1),
                    team: r.get(2),
                    role: r.get(3),
                }),
                r.get::<String, _>(4),
                r.get::<i64, _>(5) == 0,
            ),
            None => (None, decoy_hash().to_string(), false),
        };
        let password = password.to_string();
        let matches = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .map_err(|e| AccountError::Hash(e.to_string()))?;
        Ok(identity.filter(|_| matches && enabled))
    }
}

/// The accounts as a plain-text table, for `kith-agent user list`.
pub fn render_table(accounts: &[Account]) -> String {
    if accounts.is_empty() {
        return "no console accounts\n".to_string();
    }
    let rows: Vec<Vec<String>> = accounts
        .iter()
        .map(|a| {
            vec![
                a.user_id.clone(),
                a.display_name.clone(),
                a.team.clone(),
                a.role.clone(),
                if a.disabled { "disabled" } else { "enabled" }.to_string(),
            ]
        })
        .collect();
    crate::table::table(&["USER", "NAME", "TEAM", "ROLE", "STATE"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_phc_strings_with_a_fresh_salt() {
        let a = hash_password("correct horse battery").unwrap();
        let b = hash_password("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify_password("correct horse battery", &a));
        assert!(!verify_password("correct horse batterY", &a));
        assert!(!verify_password("correct horse battery", "not a hash"));
    }

    #[test]
    fn passwords_and_user_ids_are_bounded() {
        assert!(matches!(
            hash_password("short"),
            Err(AccountError::Invalid {
                field: "password",
                ..
            })
        ));
        assert!(hash_password(&"x".repeat(MAX_PASSWORD_CHARS + 1)).is_err());
        assert!(!verify_password(&"x".repeat(10_000), decoy_hash()));
        assert_eq!(check_user_id(" sam.patel ").unwrap(), "sam.patel");
        assert!(check_user_id("").is_err());
        assert!(check_user_id("sam patel").is_err());
        assert!(check_user_id(&"a".repeat(65)).is_err());
    }
}
