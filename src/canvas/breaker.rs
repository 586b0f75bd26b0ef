//! A circuit breaker in front of Canvas: after `threshold` failures in a row (unreachable,
//! too slow, 5xx) it opens and calls fail at once for `cooldown`; then one probe goes through,
//! and its outcome closes or reopens the circuit. Canvas's refusals (4xx) are answers, not
//! failures.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// The cooldown passed and one probe is out.
    Probing,
}

pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

/// What the breaker says about one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    Go,
    /// The circuit is open: fail without calling.
    Refused,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn permit(&self, now: Instant) -> Permit {
        let mut state = self.state();
        match *state {
            State::Closed { .. } => Permit::Go,
            State::Open { until } if now >= until => {
                *state = State::Probing;
                Permit::Go
            }
            State::Open { .. } | State::Probing => Permit::Refused,
        }
    }

    pub fn record(&self, success: bool, now: Instant) {
        let mut state = self.state();
        *state = match (*state, success) {
            (_, true) => State::Closed { failures: 0 },
            (State::Closed { failures }, false) if failures + 1 < self.threshold => State::Closed {
                failures: failures + 1,
            },
            (State::Open { until }, false) => State::Open { until },
            (_, false) => {
                tracing::warn!(
                    cooldown_seconds = self.cooldown.as_secs(),
                    "Canvas keeps failing: circuit open"
                );
                State::Open {
                    until: now + self.cooldown,
                }
            }
        };
    }

    pub fn is_open(&self) -> bool {
        !matches!(*self.state(), State::Closed { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_repeated_failures_and_probes_to_close() {
        let b = Breaker::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        for _ in 0..2 {
            assert_eq!(b.permit(t0), Permit::Go);
            b.record(false, t0);
        }
        assert!(!b.is_open(), "two failures are not yet a pattern");
        b.record(false, t0);
        assert!(b.is_open());
        assert_eq!(
            b.permit(t0 + Duration::from_secs(5)),
            Permit::Refused,
            "fails fast while open"
        );
        // After the cooldown, exactly one probe.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(b.permit(later), Permit::Go);
        assert_eq!(b.permit(later), Permit::Refused);
        b.record(false, later);
        assert_eq!(
            b.permit(later + Duration::from_secs(1)),
            Permit::Refused,
            "a failed probe reopens"
        );
        let again = later + Duration::from_secs(10);
        assert_eq!(b.permit(again), Permit::Go);
        b.record(true, again);
        assert!(!b.is_open());
        assert_eq!(b.permit(again), Permit::Go);
    }

    #[test]
    fn a_success_resets_the_count() {
        let b = Breaker::new(2, Duration::from_secs(1));
        let t = Instant::now();
        b.record(false, t);
        b.record(true, t);
        b.record(false, t);
        assert!(!b.is_open());
    }
}
