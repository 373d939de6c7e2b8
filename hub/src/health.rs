//! What the hub's health says, per service, and why.
//!
//! A load balancer or an agent asks the gRPC health service whether to send
//! calls here. The truth is a handful of conditions, set where they are
//! observed: the store's last write (the audit writer and publish), its
//! reachability and the signing key (probed by `grpc::health` every
//! [`PROBE_INTERVAL`]), and whether the last policy load succeeded (a
//! replica whose reload was rejected serves an older set than the others,
//! so it stops taking queries until the set is fixed). [`Conditions::serving`]
//! maps them onto each service; `grpc::health` publishes that.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;

/// How often reachability and the signing key are probed.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);

/// A condition a service needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Condition {
    /// The last store write succeeded.
    StoreWritable,
    /// The store answered the last probe (PostgreSQL reachable).
    StoreReachable,
    /// The last policy load succeeded.
    PolicyLoaded,
    /// The audit log's signing key can be read and is the one in use.
    SigningKey,
}

impl Condition {
    pub const ALL: [Condition; 4] = [
        Condition::StoreWritable,
        Condition::StoreReachable,
        Condition::PolicyLoaded,
        Condition::SigningKey,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Condition::StoreWritable => "store_writable",
            Condition::StoreReachable => "store_reachable",
            Condition::PolicyLoaded => "policy_loaded",
            Condition::SigningKey => "signing_key",
        }
    }
}

/// The hub's services, as health names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Records,
    Query,
    Audit,
    AgentLink,
    Subscriptions,
}

impl Service {
    pub const ALL: [Service; 5] = [
        Service::Records,
        Service::Query,
        Service::Audit,
        Service::AgentLink,
        Service::Subscriptions,
    ];

    /// The conditions the service cannot do without.
    pub fn needs(self) -> &'static [Condition] {
        use Condition::*;
        match self {
            // A publish stores records and decides data location by policy.
            Service::Records => &[StoreWritable, StoreReachable, PolicyLoaded],
            // A query's audit entry must be durable; levels come from policy.
            Service::Query => &[StoreWritable, StoreReachable, PolicyLoaded],
            // Checkpoints are signed; scopes come from policy; reads are audited.
            Service::Audit => &[StoreWritable, StoreReachable, PolicyLoaded, SigningKey],
            // Acknowledgements and hellos are written.
            Service::AgentLink => &[StoreWritable, StoreReachable],
            // Subscribing is decided by policy and audited.
            Service::Subscriptions => &[StoreWritable, StoreReachable, PolicyLoaded],
        }
    }
}

/// The conditions as last observed; every change wakes the reporter.
#[derive(Debug)]
pub struct Conditions {
    store_writable: AtomicBool,
    store_reachable: AtomicBool,
    policy_loaded: AtomicBool,
    signing_key: AtomicBool,
    changed: watch::Sender<()>,
}

impl Default for Conditions {
    fn default() -> Self {
        Self {
            store_writable: AtomicBool::new(true),
            store_reachable: AtomicBool::new(true),
            policy_loaded: AtomicBool::new(true),
            signing_key: AtomicBool::new(true),
            changed: watch::Sender::new(()),
        }
    }
}

impl Conditions {
    fn flag(&self, c: Condition) -> &AtomicBool {
        match c {
            Condition::StoreWritable => &self.store_writable,
            Condition::StoreReachable => &self.store_reachable,
            Condition::PolicyLoaded => &self.policy_loaded,
            Condition::SigningKey => &self.signing_key,
        }
    }

    /// Notes `c` as holding or not; logs and wakes the reporter on a change.
    pub fn set(&self, c: Condition, holds: bool) {
        if self.flag(c).swap(holds, Ordering::Relaxed) != holds {
            if holds {
                tracing::info!(condition = c.as_str(), "health: recovered");
            } else {
                tracing::error!(
                    condition = c.as_str(),
                    "health: failing; dependent services report NOT_SERVING"
                );
            }
            self.changed.send_replace(());
        }
    }

    pub fn holds(&self, c: Condition) -> bool {
        self.flag(c).load(Ordering::Relaxed)
    }

    /// Notes a store write's outcome.
    pub fn store_write<T, E>(&self, result: &Result<T, E>) {
        self.set(Condition::StoreWritable, result.is_ok());
    }

    /// Whether `service` has every condition it needs.
    pub fn serving(&self, service: Service) -> bool {
        service.needs().iter().all(|c| self.holds(*c))
    }

    /// The conditions failing now.
    pub fn failing(&self) -> Vec<Condition> {
        Condition::ALL
            .into_iter()
            .filter(|c| !self.holds(*c))
            .collect()
    }

    /// Changes from now on.
    pub fn subscribe(&self) -> watch::Receiver<()> {
        self.changed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_condition_stops_only_the_services_that_need_it() {
        let c = Conditions::default();
        assert!(Service::ALL.iter().all(|s| c.serving(*s)));
        c.set(Condition::SigningKey, false);
        assert!(!c.serving(Service::Audit));
        assert!(c.serving(Service::Query) && c.serving(Service::Records));
        c.set(Condition::SigningKey, true);
        c.set(Condition::PolicyLoaded, false);
        assert!(!c.serving(Service::Query) && !c.serving(Service::Records));
        assert!(c.serving(Service::AgentLink));
        assert_eq!(c.failing(), vec![Condition::PolicyLoaded]);
        c.set(Condition::PolicyLoaded, true);
        c.store_write(&Err::<(), _>("disk full"));
        assert!(Service::ALL.iter().all(|s| !c.serving(*s)));
        c.store_write(&Ok::<_, ()>(()));
        assert!(c.failing().is_empty());
    }

    #[test]
    fn a_change_wakes_the_reporter_and_a_repeat_does_not() {
        let c = Conditions::default();
        let mut rx = c.subscribe();
        c.set(Condition::StoreReachable, true);
        assert!(!rx.has_changed().unwrap());
        c.set(Condition::StoreReachable, false);
        assert!(rx.has_changed().unwrap());
        rx.mark_unchanged();
        c.set(Condition::StoreReachable, false);
        assert!(!rx.has_changed().unwrap());
    }
}
