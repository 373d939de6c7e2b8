//! The staff console: the agent's web pages for its own case workers,
//! auditors and operators, served by `kith-agent run`
//! when the config has a `[console]` section.
//!
//! Server-rendered HTML (maud, escaped by default) styled with GOV.UK
//! Frontend, no script. Staff sign in; the acting user the console sends to
//! the hub is always the signed-in one, fixed in the server-side session at
//! sign-in, never a form field. Searches are POSTs, so no NHS number or
//! name reaches a URL, the browser's history or a log line. The pages call
//! the same library code as the command line ([`crate::query`]).
//!
//! | file | what it holds |
//! |---|---|
//! | `settings.rs` | the `[console]` config section |
//! | `server.rs` | the listener: HTTPS (rustls, ring) or loopback-only HTTP |
//! | `headers.rs` | CSP, HSTS, frame-ancestors, no-store |
//! | `session.rs` | server-side sessions and their cookie |
//! | `csrf.rs` | the per-session form token |
//! | `signed_in.rs` | the signed-in and CSRF-checked request extractors |
//! | `accounts.rs` | local accounts, argon2id |
//! | `oidc/` | OpenID Connect sign-in: `[console.oidc]`, pending sign-ins, claim mapping |
//! | `throttle.rs` | failed sign-ins per account and address |
//! | `roles.rs` | Kith role codes and what each reaches |
//! | `assets.rs` | the embedded GOV.UK Frontend files |
//! | `pages/` | the pages |

pub mod accounts;
pub mod assets;
pub mod csrf;
pub mod headers;
pub mod oidc;
pub mod pages;
pub mod roles;
pub mod server;
pub mod session;
pub mod settings;
pub mod signed_in;
pub mod throttle;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use accounts::{Accounts, StaffIdentity};
pub use roles::Roles;
pub use server::ServeError;
pub use session::Sessions;
pub use settings::{ConsoleSection, ConsoleTls};
pub use throttle::Throttle;

use crate::config::AgentConfig;
use crate::outbox::Outbox;

/// Largest form body taken (a search is well under 2 KiB).
pub const MAX_FORM_BYTES: usize = 16 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct ConsoleState {
    pub agent: Arc<AgentConfig>,
    pub sessions: Sessions,
    pub accounts: Accounts,
    pub throttle: Arc<Throttle>,
    pub roles: Arc<Roles>,
    /// Sign-in through the identity provider, when `[console.oidc]` is set.
    pub oidc: Option<Arc<oidc::Oidc>>,
    pub tls: bool,
    /// The agent's database (the operator page reads its status and
    /// notifications).
    pub outbox: Outbox,
}

impl ConsoleState {
    /// The state for `agent`'s console section, over the agent's database.
    pub fn new(
        agent: &AgentConfig,
        section: &ConsoleSection,
        outbox: &Outbox,
    ) -> Result<Self, crate::config::ConfigError> {
        let roles = match &agent.policy {
            Some(p) => Roles::from_policy_dir(&p.dir).map_err(|reason| {
                crate::config::ConfigError::Invalid {
                    key: "policy.dir",
                    reason,
                }
            })?,
            None => Roles::default_set(),
        };
        let oidc = match &section.oidc {
            Some(o) => Some(Arc::new(oidc::Oidc::new(o, &roles)?)),
            None => None,
        };
        Ok(Self {
            agent: Arc::new(agent.clone()),
            sessions: Sessions::new(
                outbox,
                section.idle_timeout(),
                section.absolute_timeout(),
                section.is_tls(),
            ),
            accounts: Accounts::new(outbox),
            throttle: Arc::new(Throttle::new(
                section.max_failed_sign_ins,
                section.lockout(),
            )),
            roles: Arc::new(roles),
            oidc,
            tls: section.is_tls(),
            outbox: outbox.clone(),
        })
    }
}

impl ConsoleState {
    /// The idle timeout, in minutes, as the sign-in page tells it.
    pub fn sessions_idle_minutes(&self) -> u64 {
        self.sessions.idle().as_secs() / 60
    }
}

/// Every route. Unknown paths get the not-found page.
pub fn router(state: ConsoleState) -> Router {
    let tls = state.tls;
    Router::new()
        .route("/", get(pages::home))
        .route(
            "/sign-in",
            get(pages::sign_in::form).post(pages::sign_in::submit),
        )
        .route("/sign-out", post(pages::sign_in::sign_out))
        .route("/oidc/start", get(pages::oidc::start))
        .route("/oidc/callback", get(pages::oidc::callback))
        .route(
            "/search",
            get(pages::search::form).post(pages::search::submit),
        )
        .route("/break-glass", post(pages::search::break_glass))
        .merge(pages::staff_routes())
        .route("/assets/{*path}", get(assets::serve))
        .fallback(pages::not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            tls,
            headers::security_headers,
        ))
}

/// A console that is serving.
pub struct RunningConsole {
    pub address: SocketAddr,
    pub task: JoinHandle<()>,
}

/// Starts the console of `agent` (which must have a `[console]` section)
/// over the agent's database; it stops when `shutdown` is set. Timed-out
/// sessions are swept every minute.
pub async fn start(
    agent: &AgentConfig,
    outbox: &Outbox,
    shutdown: watch::Receiver<bool>,
) -> Result<RunningConsole, ServeError> {
    let section = agent
        .console
        .as_ref()
        .ok_or(crate::config::ConfigError::Invalid {
            key: "console",
            reason: "no [console] section".into(),
        })?;
    let state = ConsoleState::new(agent, section, outbox)?;
    if let Some(oidc) = state.oidc.clone() {
        // Discover now so a wrong issuer shows in the log at start; the
        // sign-in page tries again when needed.
        tokio::spawn(async move {
            match oidc.discover().await {
                Ok(()) => {
                    tracing::info!(issuer = %oidc.section().issuer, "console OIDC provider discovered")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "console OIDC provider not reachable at start")
                }
            }
        });
    }
    let sessions = state.sessions.clone();
    let mut stop = shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = crate::agent::stopped(&mut stop) => return,
                _ = tokio::time::sleep(Duration::from_secs(60)) => {
                    if let Err(e) = sessions.sweep().await {
                        tracing::warn!(error = %e, "cannot sweep console sessions");
                    }
                }
            }
        }
    });
    let (address, task) = server::serve(section, router(state), shutdown).await?;
    Ok(RunningConsole { address, task })
}
