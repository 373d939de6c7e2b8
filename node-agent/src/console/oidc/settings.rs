//! `[console.oidc]`: the authority's own identity provider, for staff to
//! sign in to the console with their normal login (Entra ID, Keycloak, NHS
//! CIS2, ...), and how its ID-token claims become a Kith acting user.
//!
//! Checked whole at start: the issuer must be HTTPS (plain HTTP only on a
//! loopback host, as for the console itself), the client secret comes from
//! a file or an environment variable (never the config text, so it is in no
//! config dump or log), and every role code the map names must be one of
//! the policy set's roles. Each error names its key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;
use crate::console::Roles;

/// `[console.oidc]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSection {
    /// The issuer URL; discovery reads `ISSUER/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    /// A file holding the client secret (first line; relative to the config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_file: Option<PathBuf>,
    /// An environment variable holding the client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_env: Option<String>,
    /// This console's callback, registered at the provider:
    /// `https://HOST:PORT/oidc/callback`.
    pub redirect_url: String,
    /// Scopes asked for besides `openid`.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// What the sign-in button says: "Sign in with ...".
    #[serde(default = "default_label")]
    pub label: String,
    /// A PEM file of extra CA certificates to trust for the provider (a
    /// private PKI); the public web roots are always trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub claims: ClaimMapping,
    /// Provider role or group values (as they appear in the role claim) to
    /// Kith role codes, e.g. `"kith-social-workers" = "social_worker"`.
    pub role_map: BTreeMap<String, String>,
}

/// `[console.oidc.claims]`: which ID-token claim holds what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClaimMapping {
    /// The acting user's id (audited at the hub): `sub`,
    /// `preferred_username`, `email`, Entra's `oid`, ...
    pub user_id: String,
    /// The name shown and sent to the hub.
    pub display_name: String,
    /// The user's team; none when empty or absent from the token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// The claim whose value (a string or an array of strings) is looked up
    /// in `role_map`: `roles`, `groups`, ...
    pub role: String,
}

impl Default for ClaimMapping {
    fn default() -> Self {
        Self {
            user_id: "sub".into(),
            display_name: "name".into(),
            team: None,
            role: "roles".into(),
        }
    }
}

fn default_scopes() -> Vec<String> {
    vec!["profile".into()]
}

fn default_label() -> String {
    "your organisation's account".into()
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

/// Whether `url` is `https://`, or `http://` to a loopback host.
fn secure_or_loopback(url: &openidconnect::url::Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => match url.host() {
            Some(openidconnect::url::Host::Domain(d)) => d == "localhost",
            Some(openidconnect::url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(openidconnect::url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        },
        _ => false,
    }
}

/// A claim name: short, printable, no spaces.
fn check_claim_name(key: &'static str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || name.len() > 100 || !name.chars().all(|c| c.is_ascii_graphic()) {
        return Err(invalid(
            key,
            format!("{name:?} is not a claim name (1 to 100 printable characters, no spaces)"),
        ));
    }
    Ok(())
}

impl OidcSection {
    pub(crate) fn resolve_paths(&mut self, base: &Path) {
        for p in [&mut self.client_secret_file, &mut self.ca_file]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    /// Checks the section on its own (no file is read and no role looked
    /// up: [`Self::check_roles`] and [`Self::client_secret`] do that).
    pub fn check(&self) -> Result<(), ConfigError> {
        let issuer = openidconnect::url::Url::parse(&self.issuer)
            .map_err(|e| invalid("console.oidc.issuer", format!("not a URL: {e}")))?;
        if !secure_or_loopback(&issuer) {
            return Err(invalid(
                "console.oidc.issuer",
                "must be an https:// URL (http:// only to a loopback host)",
            ));
        }
        let redirect = openidconnect::url::Url::parse(&self.redirect_url)
            .map_err(|e| invalid("console.oidc.redirect_url", format!("not a URL: {e}")))?;
        if !secure_or_loopback(&redirect) {
            return Err(invalid(
                "console.oidc.redirect_url",
                "must be an https:// URL (http:// only to a loopback host)",
            ));
        }
        if redirect.path() != "/oidc/callback" {
            return Err(invalid(
                "console.oidc.redirect_url",
                format!(
                    "the console's callback path is /oidc/callback, not {}",
                    redirect.path()
                ),
            ));
        }
        if self.client_id.trim().is_empty() || self.client_id.len() > 256 {
            return Err(invalid(
                "console.oidc.client_id",
                "must be 1 to 256 characters",
            ));
        }
        if self.client_secret_file.is_some() && self.client_secret_env.is_some() {
            return Err(invalid(
                "console.oidc.client_secret_file",
                "give client_secret_file or client_secret_env, not both",
            ));
        }
        if self.scopes.len() > 20 {
            return Err(invalid("console.oidc.scopes", "at most 20 scopes"));
        }
        for s in &self.scopes {
            if s.is_empty() || s.len() > 100 || !s.chars().all(|c| c.is_ascii_graphic()) {
                return Err(invalid(
                    "console.oidc.scopes",
                    format!("{s:?} is not a scope (1 to 100 printable characters, no spaces)"),
                ));
            }
        }
        if self.label.trim().is_empty() || self.label.chars().count() > 80 {
            return Err(invalid("console.oidc.label", "must be 1 to 80 characters"));
        }
        check_claim_name("console.oidc.claims.user_id", &self.claims.user_id)?;
        check_claim_name(
            "console.oidc.claims.display_name",
            &self.claims.display_name,
        )?;
        if let Some(team) = &self.claims.team {
            check_claim_name("console.oidc.claims.team", team)?;
        }
        check_claim_name("console.oidc.claims.role", &self.claims.role)?;
        if self.role_map.is_empty() {
            return Err(invalid(
                "console.oidc.role_map",
                "map at least one provider value to a Kith role code",
            ));
        }
        if self.role_map.len() > 1000 {
            return Err(invalid("console.oidc.role_map", "at most 1,000 entries"));
        }
        for value in self.role_map.keys() {
            if value.is_empty() || value.len() > 256 {
                return Err(invalid(
                    "console.oidc.role_map",
                    "each provider value must be 1 to 256 characters",
                ));
            }
        }
        Ok(())
    }

    /// Checks every role code the map names is one of `roles`.
    pub fn check_roles(&self, roles: &Roles) -> Result<(), ConfigError> {
        for (value, code) in &self.role_map {
            roles.check(code).map_err(|reason| {
                invalid(
                    "console.oidc.role_map",
                    format!("entry {value:?}: {reason}"),
                )
            })?;
        }
        Ok(())
    }

    /// The client secret, read from its file or variable; `None` for a
    /// public client (PKCE alone).
    pub fn client_secret(&self) -> Result<Option<String>, ConfigError> {
        let secret = if let Some(path) = &self.client_secret_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                invalid(
                    "console.oidc.client_secret_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            let line = text.lines().next().unwrap_or("").trim().to_string();
            if line.is_empty() {
                return Err(invalid(
                    "console.oidc.client_secret_file",
                    format!("{} is empty", path.display()),
                ));
            }
            line
        } else if let Some(var) = &self.client_secret_env {
            match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
                _ => {
                    return Err(invalid(
                        "console.oidc.client_secret_env",
                        format!("the environment variable {var} is not set or empty"),
                    ));
                }
            }
        } else {
            return Ok(None);
        };
        if secret.len() > 4096 {
            return Err(invalid(
                "console.oidc.client_secret_file",
                "the client secret is longer than 4,096 bytes",
            ));
        }
        Ok(Some(secret))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(e: ConfigError) -> &'static str {
        match e {
            ConfigError::Invalid { key, .. } => key,
            other => panic!("not a key error: {other}"),
        }
    }

    fn section() -> OidcSection {
        toml::from_str(
            r#"
            issuer = "https://login.example.org/tenant/v2.0"
            client_id = "kith-console"
            redirect_url = "https://console.example.org:8443/oidc/callback"
            [claims]
            role = "groups"
            team = "department"
            [role_map]
            "kith-social-workers" = "social_worker"
            "#,
        )
        .unwrap()
    }

    #[test]
    fn a_good_section_parses_with_defaults() {
        let s = section();
        s.check().unwrap();
        assert_eq!(s.claims.user_id, "sub");
        assert_eq!(s.claims.display_name, "name");
        assert_eq!(s.claims.role, "groups");
        assert_eq!(s.scopes, vec!["profile".to_string()]);
        s.check_roles(&Roles::default_set()).unwrap();
        assert_eq!(s.client_secret().unwrap(), None);
    }

    #[test]
    fn an_unknown_role_code_is_a_config_error_naming_the_map() {
        let mut s = section();
        s.role_map.insert("canteen".into(), "cook".into());
        let e = s.check_roles(&Roles::default_set()).unwrap_err();
        assert!(e.to_string().contains("\"canteen\""), "{e}");
        assert!(e.to_string().contains("cook"), "{e}");
        assert_eq!(key_of(e), "console.oidc.role_map");
        let mut s = section();
        s.role_map.clear();
        assert_eq!(key_of(s.check().unwrap_err()), "console.oidc.role_map");
    }

    #[test]
    fn the_issuer_and_callback_must_be_https_off_loopback() {
        let mut s = section();
        s.issuer = "http://login.example.org".into();
        assert_eq!(key_of(s.check().unwrap_err()), "console.oidc.issuer");
        s.issuer = "http://localhost:3000".into();
        s.check().unwrap();
        s.issuer = "http://127.0.0.1:3000".into();
        s.check().unwrap();
        s.issuer = "not a url".into();
        assert_eq!(key_of(s.check().unwrap_err()), "console.oidc.issuer");
        let mut s = section();
        s.redirect_url = "http://console.example.org/oidc/callback".into();
        assert_eq!(key_of(s.check().unwrap_err()), "console.oidc.redirect_url");
        s.redirect_url = "https://console.example.org/callback".into();
        assert_eq!(key_of(s.check().unwrap_err()), "console.oidc.redirect_url");
    }

    #[test]
    fn claim_names_scopes_and_the_secret_are_checked() {
        let mut s = section();
        s.claims.role = "has space".into();
        assert_eq!(key_of(s.check().unwrap_err()), "console.oidc.claims.role");
        let mut s = section();
        s.scopes = vec!["".into()];
        assert_eq!(key_of(s.check().unwrap_err()), "console.oidc.scopes");
        let mut s = section();
        s.client_secret_file = Some("a".into());
        s.client_secret_env = Some("B".into());
        assert_eq!(
            key_of(s.check().unwrap_err()),
            "console.oidc.client_secret_file"
        );

        let dir = tempfile::tempdir().unwrap();
        let mut s = section();
        s.client_secret_file = Some("secret.txt".into());
        s.resolve_paths(dir.path());
        let e = s.client_secret().unwrap_err();
        assert_eq!(key_of(e), "console.oidc.client_secret_file");
        std::fs::write(dir.path().join("secret.txt"), "\n").unwrap();
        assert_eq!(
            key_of(s.client_secret().unwrap_err()),
            "console.oidc.client_secret_file"
        );
        std::fs::write(dir.path().join("secret.txt"), "s3cret value\n").unwrap();
        assert_eq!(s.client_secret().unwrap().as_deref(), Some("s3cret value"));

        let mut s = section();
        s.client_secret_env = Some("KITH_TEST_SURELY_UNSET_SECRET_VAR".into());
        assert_eq!(
            key_of(s.client_secret().unwrap_err()),
            "console.oidc.client_secret_env"
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = toml::from_str::<OidcSection>(
            "issuer = \"https://x\"\nclient_id = \"c\"\nredirect_url = \"https://y/oidc/callback\"\nclient_secret = \"inline\"\n[role_map]\na = \"social_worker\"\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("client_secret"), "{e}");
    }
}
