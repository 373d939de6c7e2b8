//! The hub's state and its one door: [`Hub::authenticate`].
//!
//! Everything the gRPC layer may ask of the hub is a method on [`Hub`]
//! (in [`crate::publish`] and [`crate::query`]), taking an authenticated
//! [`Caller`]. No method takes a tonic type.

use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use kith_core::AuthorityCode;
use kith_policy::PolicySet;

use crate::audit_writer::AuditWriter;
pub use crate::config::Settings;
use crate::detail::DetailSource;
use crate::directory::{Directory, Member};
use crate::error::HubError;
use crate::notifier::Notifier;
use crate::refusals::RefusalLog;
use crate::store::Store;

/// An authenticated member authority.
#[derive(Debug, Clone)]
pub struct Caller {
    pub authority: AuthorityCode,
    pub member: Member,
}

pub struct Hub {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) settings: Settings,
    pub(crate) notifier: Arc<Notifier>,
    pub(crate) audit: AuditWriter,
    pub(crate) directory: Directory,
    policies: RwLock<Arc<PolicySet>>,
    pub(crate) jurisdiction: String,
    pub(crate) detail: Arc<dyn DetailSource>,
    pub(crate) refusals: Arc<RefusalLog>,
    pub(crate) conditions: Arc<crate::health::Conditions>,
}

impl Hub {
    pub fn new(
        store: Arc<dyn Store>,
        directory: Directory,
        policies: PolicySet,
        jurisdiction: String,
        detail: Arc<dyn DetailSource>,
    ) -> Self {
        let notifier = Arc::new(Notifier::default());
        let conditions = Arc::new(crate::health::Conditions::default());
        let audit = AuditWriter::spawn(store.clone(), notifier.clone(), conditions.clone());
        let settings = Settings::default();
        Self {
            conditions,
            refusals: crate::refusals::start(settings.refusal_window, audit.clone()),
            audit,
            settings,
            notifier,
            store,
            directory,
            policies: RwLock::new(Arc::new(policies)),
            jurisdiction,
            detail,
        }
    }

    /// Replaces the default settings.
    pub fn with_settings(mut self, settings: Settings) -> Self {
        self.refusals.set_window(settings.refusal_window);
        self.settings = settings;
        self
    }

    /// What the health service reports, per condition.
    pub fn conditions(&self) -> &Arc<crate::health::Conditions> {
        &self.conditions
    }

    /// The policy set serving now.
    pub fn policies(&self) -> Arc<PolicySet> {
        self.policies
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Puts a new, already validated policy set in service.
    pub(crate) fn replace_policies(&self, set: PolicySet) {
        *self.policies.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Where this hub runs (england, wales, …), as configured.
    pub fn jurisdiction(&self) -> &str {
        &self.jurisdiction
    }

    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// Turns a certificate-proven authority into a caller, if it is a member
    /// of the federation. Refusals are audited, coalesced per peer
    /// ([`crate::refusals`]): the first of a window at once, the rest
    /// counted into one entry.
    pub async fn authenticate(&self, authority: AuthorityCode) -> Result<Caller, HubError> {
        match self.directory.member(authority.as_str()) {
            Some(member) => Ok(Caller {
                member: member.clone(),
                authority,
            }),
            None => {
                if let Some(entry) = self
                    .refusals
                    .note(authority.as_str(), std::time::Instant::now())
                {
                    self.audit.append(entry).await?;
                }
                Err(HubError::PermissionDenied(format!(
                    "authority {authority} is not a member of this federation"
                )))
            }
        }
    }
}

impl Hub {
    /// Writes every refusal counted and not yet written (at shutdown).
    pub async fn flush_refusals(&self) -> Result<(), HubError> {
        let pending = self.refusals.due(std::time::Instant::now(), true);
        if !pending.is_empty() {
            self.audit.append_all(pending).await?;
        }
        Ok(())
    }
}

/// The hub's clock.
pub fn now() -> DateTime<Utc> {
    Utc::now()
}
