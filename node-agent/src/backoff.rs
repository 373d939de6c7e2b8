//! How long to wait before trying the hub again.
//!
//! Exponential backoff with full jitter: the ceiling doubles with each failed
//! attempt, from `initial` up to `max`, and the actual delay is drawn at
//! random below the ceiling (but never under `initial`, so a failing hub is
//! never hammered in a tight loop). Jitter keeps hundreds of agents that lost
//! the hub at the same moment from all coming back at the same moment.
//!
//! A hub that *refuses* the agent (PermissionDenied, Unauthenticated: say its
//! certificate names an authority that is not a federation member) will not
//! change its mind in a second: [`Backoff::refused`] goes to the maximum
//! delay at once.

use std::time::Duration;

use rand::Rng;

/// The longest delay allowed after `attempt` failures in a row (0-based):
/// `initial * 2^attempt`, capped at `max`.
pub fn backoff_ceiling(attempt: u32, initial: Duration, max: Duration) -> Duration {
    let factor = 2u32.checked_pow(attempt.min(31)).unwrap_or(u32::MAX);
    initial
        .checked_mul(factor)
        .unwrap_or(max)
        .min(max)
        .max(initial.min(max))
}

/// A delay drawn uniformly from `[initial, ceiling(attempt)]`.
pub fn backoff_delay(
    attempt: u32,
    initial: Duration,
    max: Duration,
    rng: &mut impl Rng,
) -> Duration {
    let floor = initial.min(max);
    let ceiling = backoff_ceiling(attempt, initial, max);
    let floor_ms = floor.as_millis() as u64;
    let ceiling_ms = ceiling.as_millis() as u64;
    Duration::from_millis(rng.random_range(floor_ms..=ceiling_ms.max(floor_ms)))
}

/// Counts failed attempts and hands out the next delay; `reset` after a
/// success.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            attempt: 0,
        }
    }

    /// The delay before the next try; each call counts one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let delay = backoff_delay(self.attempt, self.initial, self.max, &mut rand::rng());
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// The delay after the hub refused this agent: the maximum, at once, and
    /// every later failure stays there until [`Backoff::reset`].
    pub fn refused(&mut self) -> Duration {
        self.attempt = u32::MAX;
        self.max.max(self.initial)
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.attempt
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const INITIAL: Duration = Duration::from_millis(200);
    const MAX: Duration = Duration::from_millis(30_000);

    #[test]
    fn the_ceiling_doubles_then_stops_at_the_maximum() {
        let ceilings: Vec<u64> = (0..12)
            .map(|a| backoff_ceiling(a, INITIAL, MAX).as_millis() as u64)
            .collect();
        assert_eq!(
            ceilings,
            [
                200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000, 30000
            ]
        );
        // Absurd attempt counts neither overflow nor exceed the cap.
        assert_eq!(backoff_ceiling(u32::MAX, INITIAL, MAX), MAX);
    }

    #[test]
    fn delays_stay_between_initial_and_the_ceiling() {
        let mut rng = StdRng::seed_from_u64(7);
        for attempt in 0..40 {
            let ceiling = backoff_ceiling(attempt, INITIAL, MAX);
            for _ in 0..200 {
                let d = backoff_delay(attempt, INITIAL, MAX, &mut rng);
                assert!(
                    d >= INITIAL && d <= ceiling,
                    "attempt {attempt}: {d:?} not in [{INITIAL:?}, {ceiling:?}]"
                );
            }
        }
    }

    #[test]
    fn delays_are_jittered_and_grow_on_average() {
        let mut rng = StdRng::seed_from_u64(11);
        let mean = |attempt: u32, rng: &mut StdRng| {
            (0..500)
                .map(|_| backoff_delay(attempt, INITIAL, MAX, rng).as_millis() as u64)
                .sum::<u64>()
                / 500
        };
        let early = mean(1, &mut rng);
        let late = mean(8, &mut rng);
        assert!(
            late > early * 10,
            "mean delay should grow: {early} ms then {late} ms"
        );
        let distinct: std::collections::HashSet<_> = (0..50)
            .map(|_| backoff_delay(6, INITIAL, MAX, &mut rng))
            .collect();
        assert!(distinct.len() > 10, "delays should be jittered");
    }

    #[test]
    fn a_refusal_goes_to_the_maximum_at_once_and_stays_there() {
        let mut b = Backoff::new(INITIAL, MAX);
        assert_eq!(b.refused(), MAX, "no ramp from the initial delay");
        for _ in 0..20 {
            assert_eq!(
                backoff_ceiling(b.failures(), INITIAL, MAX),
                MAX,
                "later failures keep the maximum ceiling"
            );
            b.next_delay();
        }
        b.reset();
        assert_eq!(b.next_delay(), INITIAL);
    }

    #[test]
    fn reset_starts_again_from_the_floor() {
        let mut b = Backoff::new(INITIAL, MAX);
        for _ in 0..10 {
            b.next_delay();
        }
        assert_eq!(b.failures(), 10);
        b.reset();
        assert_eq!(
            b.next_delay(),
            INITIAL,
            "the first delay is exactly initial"
        );
    }
}
