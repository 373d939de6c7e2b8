//! Failed sign-ins, rate-limited per account and per address.
//!
//! Each key (an account's user id, a client address) may fail
//! `max_failures` times within the window; then attempts for it are
//! refused, without checking the password, until the window since its
//! first counted failure has passed. A success clears the account's count.
//! Counts are kept in memory (a restart forgives), and the table is
//! bounded: when full, the stalest entries are dropped first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most keys tracked at once.
const MAX_KEYS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Count {
    first: Instant,
    failures: u32,
}

/// What a key is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Account(String),
    Address(IpAddr),
}

#[derive(Debug)]
pub struct Throttle {
    max_failures: u32,
    window: Duration,
    counts: Mutex<HashMap<Key, Count>>,
}

impl Throttle {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures,
            window,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// How long until the account or the address may try again; `None`
    /// when it may try now.
    pub fn blocked(&self, account: &str, address: IpAddr) -> Option<Duration> {
        self.blocked_at(account, address, Instant::now())
    }

    pub fn blocked_at(&self, account: &str, address: IpAddr, now: Instant) -> Option<Duration> {
        let counts = self.counts.lock().expect("throttle lock");
        [Key::Account(account.to_string()), Key::Address(address)]
            .iter()
            .filter_map(|k| counts.get(k))
            .filter(|c| c.failures >= self.max_failures)
            .filter_map(|c| (c.first + self.window).checked_duration_since(now))
            .filter(|d| !d.is_zero())
            .max()
    }

    /// Counts a failed sign-in against both keys.
    pub fn failed(&self, account: &str, address: IpAddr) {
        self.failed_at(account, address, Instant::now())
    }

    pub fn failed_at(&self, account: &str, address: IpAddr, now: Instant) {
        let mut counts = self.counts.lock().expect("throttle lock");
        if counts.len() >= MAX_KEYS {
            counts.retain(|_, c| now.duration_since(c.first) < self.window);
            if counts.len() >= MAX_KEYS {
                let mut oldest: Vec<(Key, Instant)> =
                    counts.iter().map(|(k, c)| (k.clone(), c.first)).collect();
                oldest.sort_by_key(|(_, first)| *first);
                for (k, _) in oldest.into_iter().take(MAX_KEYS / 10) {
                    counts.remove(&k);
                }
            }
        }
        // The account key is bounded: user ids are at most 64 characters
        // by the time they are counted (longer ones are cut).
        let account: String = account.chars().take(64).collect();
        for key in [Key::Account(account), Key::Address(address)] {
            let c = counts.entry(key).or_insert(Count {
                first: now,
                failures: 0,
            });
            if now.duration_since(c.first) >= self.window {
                *c = Count {
                    first: now,
                    failures: 0,
                };
            }
            c.failures += 1;
        }
    }

    /// Clears an account's count after a successful sign-in.
    pub fn succeeded(&self, account: &str) {
        self.counts
            .lock()
            .expect("throttle lock")
            .remove(&Key::Account(account.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_account_is_locked_after_its_failures_then_freed_by_time() {
        let t = Throttle::new(3, Duration::from_secs(900));
        let now = Instant::now();
        for i in 0..3 {
            assert_eq!(t.blocked_at("sam", ip("10.0.0.1"), now), None, "try {i}");
            // From different addresses: the account count still grows.
            t.failed_at("sam", ip(&format!("10.0.0.{}", i + 1)), now);
        }
        let wait = t.blocked_at("sam", ip("10.0.0.9"), now).unwrap();
        assert_eq!(wait, Duration::from_secs(900));
        assert_eq!(t.blocked_at("jo", ip("10.0.0.9"), now), None);
        let later = now + Duration::from_secs(901);
        assert_eq!(t.blocked_at("sam", ip("10.0.0.9"), later), None);
    }

    #[test]
    fn an_address_is_locked_whatever_account_it_tries() {
        let t = Throttle::new(3, Duration::from_secs(60));
        let now = Instant::now();
        for name in ["a", "b", "c"] {
            t.failed_at(name, ip("192.0.2.7"), now);
        }
        assert!(t.blocked_at("d", ip("192.0.2.7"), now).is_some());
        assert!(t.blocked_at("d", ip("192.0.2.8"), now).is_none());
    }

    #[test]
    fn success_clears_the_account_and_the_table_is_bounded() {
        let t = Throttle::new(2, Duration::from_secs(60));
        let now = Instant::now();
        t.failed_at("sam", ip("10.0.0.1"), now);
        t.succeeded("sam");
        t.failed_at("sam", ip("10.0.0.2"), now);
        assert!(t.blocked_at("sam", ip("10.0.0.3"), now).is_none());
        for i in 0..(MAX_KEYS as u32) {
            t.failed_at(&format!("u{i}"), ip("10.0.0.4"), now);
        }
        assert!(t.counts.lock().unwrap().len() <= MAX_KEYS);
    }
}
