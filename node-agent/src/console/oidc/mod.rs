//! OpenID Connect sign-in for the console: the authorization code flow
//! with PKCE against the authority's own identity provider, through the
//! `openidconnect` crate (which checks the state's round trip here, and the
//! ID token's signature, issuer, audience, expiry and nonce).
//!
//! | file | what it holds |
//! |---|---|
//! | `settings.rs` | the `[console.oidc]` section |
//! | `pending.rs` | sign-ins under way: state, nonce, PKCE verifier, bound to the browser |
//! | `claims.rs` | ID-token claims to the acting user and role |
//!
//! The provider's metadata and keys are discovered at start and again an
//! hour later (so rotated keys are picked up); when the provider cannot be
//! reached, the sign-in page says so and local accounts still work. The
//! HTTP client follows no redirects (as the crate advises, against SSRF),
//! speaks rustls on ring, and gives up after ten seconds.

pub mod claims;
pub mod pending;
pub mod settings;

use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreProviderMetadata, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, Client, ClientId, ClientSecret, CsrfToken,
    EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields, IssuerUrl,
    Nonce, PkceCodeChallenge, RedirectUrl, Scope, StandardErrorResponse, StandardTokenResponse,
    TokenResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::Mutex;

pub use claims::Refusal;
pub use pending::{Missing, PendingSignIns};
pub use settings::{ClaimMapping, OidcSection};

use crate::config::ConfigError;
use crate::console::{Roles, StaffIdentity};

/// How long discovered metadata and keys are used before asking again.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// How long one request to the provider may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Every claim of the ID token beyond the standard ones, kept so the
/// configured claim names (`groups`, `roles`, `oid`, ...) can be read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AllClaims {
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl AdditionalClaims for AllClaims {}

type IdFields = IdTokenFields<
    AllClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type Tokens = StandardTokenResponse<IdFields, CoreTokenType>;
type OidcClient = Client<
    AllClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    Tokens,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Why a sign-in through the provider did not give a session. The text
/// names no user and no claim value.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the identity provider cannot be reached or its discovery document is not valid: {0}")]
    Discovery(String),
    #[error("too many sign-ins are under way; try again in a few minutes")]
    Busy,
    #[error("no sign-in was under way for this browser ({0:?})")]
    NotPending(Missing),
    #[error("the identity provider refused the sign-in: {0}")]
    Provider(String),
    #[error("the code could not be exchanged for tokens: {0}")]
    Exchange(String),
    #[error("the identity provider sent no ID token")]
    NoIdToken,
    #[error("the ID token did not verify: {0}")]
    Token(String),
    #[error("{0}")]
    Refused(#[from] Refusal),
}

/// The console's OpenID Connect client, built from `[console.oidc]`.
pub struct Oidc {
    section: OidcSection,
    secret: Option<ClientSecret>,
    http: openidconnect::reqwest::Client,
    discovered: Mutex<Option<(Instant, OidcClient)>>,
    pub pending: PendingSignIns,
}

impl Oidc {
    /// Checks the section against the policy set's `roles`, reads the
    /// client secret and builds the HTTP client. Nothing is fetched yet.
    pub fn new(section: &OidcSection, roles: &Roles) -> Result<Self, ConfigError> {
        section.check()?;
        section.check_roles(roles)?;
        let secret = section.client_secret()?.map(ClientSecret::new);
        let mut builder = openidconnect::reqwest::ClientBuilder::new()
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(HTTP_TIMEOUT)
            .https_only(!section.issuer.starts_with("http://"));
        if let Some(path) = &section.ca_file {
            let bad = |reason: String| ConfigError::Certificate {
                what: "identity provider CA file",
                path: path.clone(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
            let certs = openidconnect::reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| bad(e.to_string()))?;
            if certs.is_empty() {
                return Err(bad("holds no certificate".into()));
            }
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let http = builder.build().map_err(|e| ConfigError::Invalid {
            key: "console.oidc",
            reason: format!("cannot build the HTTP client: {e}"),
        })?;
        Ok(Self {
            section: section.clone(),
            secret,
            http,
            discovered: Mutex::new(None),
            pending: PendingSignIns::default(),
        })
    }

    /// The section in force.
    pub fn section(&self) -> &OidcSection {
        &self.section
    }

    /// The client, from metadata discovered within the last hour (or now).
    async fn client(&self) -> Result<OidcClient, OidcError> {
        let mut cached = self.discovered.lock().await;
        if let Some((at, client)) = cached.as_ref()
            && at.elapsed() < METADATA_TTL
        {
            return Ok(client.clone());
        }
        let issuer = IssuerUrl::new(self.section.issuer.clone())
            .map_err(|e| OidcError::Discovery(e.to_string()))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| OidcError::Discovery(error_chain(&e)))?;
        let redirect = RedirectUrl::new(self.section.redirect_url.clone())
            .map_err(|e| OidcError::Discovery(e.to_string()))?;
        let client = OidcClient::from_provider_metadata(
            metadata,
            ClientId::new(self.section.client_id.clone()),
            self.secret.clone(),
        )
        .set_redirect_uri(redirect);
        *cached = Some((Instant::now(), client.clone()));
        Ok(client)
    }

    /// Discovers the provider now, so a wrong issuer shows in the log at
    /// start rather than at the first sign-in.
    pub async fn discover(&self) -> Result<(), OidcError> {
        self.client().await.map(|_| ())
    }

    /// Starts a sign-in for the browser holding cookie value `browser`:
    /// the provider's authorization URL to send it to.
    pub async fn begin(&self, browser: &str) -> Result<String, OidcError> {
        let client = self.client().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for s in &self.section.scopes {
            if s != "openid" {
                request = request.add_scope(Scope::new(s.clone()));
            }
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        if !self
            .pending
            .insert(state.secret().clone(), browser, nonce, verifier)
        {
            return Err(OidcError::Busy);
        }
        Ok(url.to_string())
    }

    /// Finishes the sign-in the provider sent the browser back from: takes
    /// the pending entry for `state` (it must be this browser's), exchanges
    /// `code` with the PKCE verifier, verifies the ID token and maps its
    /// claims to the acting user.
    pub async fn finish(
        &self,
        state: &str,
        code: &str,
        browser: Option<&str>,
    ) -> Result<StaffIdentity, OidcError> {
        let pending = self
            .pending
            .take(state, browser)
            .map_err(OidcError::NotPending)?;
        let client = self.client().await?;
        let tokens = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| OidcError::Exchange(e.to_string()))?
            .set_pkce_verifier(pending.pkce_verifier)
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Exchange(error_chain(&e)))?;
        let id_token = tokens.id_token().ok_or(OidcError::NoIdToken)?;
        let verifier = client.id_token_verifier();
        let verified = id_token
            .claims(&verifier, &pending.nonce)
            .map_err(|e| OidcError::Token(e.to_string()))?;
        let all = match serde_json::to_value(verified) {
            Ok(Value::Object(map)) => map,
            _ => return Err(OidcError::Token("the claims are not an object".into())),
        };
        Ok(claims::map_claims(&self.section, &all)?)
    }
}

/// An error with its sources, one line (no secrets: the crate's errors
/// name URLs and statuses, not tokens).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out.chars().take(500).collect()
}
