//! Patients first: a background call (a sync sweep's page, a planning read) does not start
//! while a patient-facing call is in flight, nor until patients' calls have been quiet for a
//! moment (a booking is a few calls in a row, and the gaps between them are not an opening).
//! It waits at most `MAX_WAIT`, so that background work still moves, slowly, while patients
//! keep Canvas busy all the time.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// How long patients' calls must have been quiet before a background call starts.
const QUIET: Duration = Duration::from_millis(10);
/// The longest a background call gives way.
const MAX_WAIT: Duration = Duration::from_millis(250);

pub(super) struct Foreground {
    in_flight: AtomicUsize,
    /// When the last patient-facing call ended, in microseconds since `origin`.
    last_ended: AtomicU64,
    origin: Instant,
    quiet: Notify,
}

/// A patient-facing call in flight, until dropped.
pub(super) struct InFlight<'a>(&'a Foreground);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let f = self.0;
        f.last_ended
            .store(f.micros(Instant::now()), Ordering::SeqCst);
        if f.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            f.quiet.notify_waiters();
        }
    }
}

impl Foreground {
    pub(super) fn new() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            last_ended: AtomicU64::new(0),
            origin: Instant::now(),
            quiet: Notify::new(),
        }
    }

    fn micros(&self, at: Instant) -> u64 {
        u64::try_from(at.duration_since(self.origin).as_micros()).unwrap_or(u64::MAX)
    }

    pub(super) fn begin(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self)
    }

    /// Waits until patients' calls have been quiet for `QUIET`, or `MAX_WAIT` has passed.
    pub(super) async fn give_way(&self) {
        let deadline = Instant::now() + MAX_WAIT;
        loop {
            let now = Instant::now();
            let Some(left) = deadline
                .checked_duration_since(now)
                .filter(|d| !d.is_zero())
            else {
                return;
            };
            let quiet = self.quiet.notified();
            tokio::pin!(quiet);
            quiet.as_mut().enable();
            let wait = if self.in_flight.load(Ordering::SeqCst) == 0 {
                let since = self
                    .micros(now)
                    .saturating_sub(self.last_ended.load(Ordering::SeqCst));
                match wait_left(Duration::from_micros(since)) {
                    None => return,
                    Some(rest) => rest.min(left),
                }
            } else {
                left
            };
            // Woken when the last call in flight ends, or when the quiet time is up.
            let _ = tokio::time::timeout(wait, quiet).await;
        }
    }
}

/// How much longer a background call waits, patients' calls having been quiet for `since`.
fn wait_left(since: Duration) -> Option<Duration> {
    QUIET.checked_sub(since).filter(|d| !d.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_background_call_starts_once_patients_have_been_quiet_long_enough() {
        assert_eq!(wait_left(Duration::ZERO), Some(QUIET));
        assert_eq!(wait_left(QUIET / 2), Some(QUIET / 2));
        assert_eq!(wait_left(QUIET), None);
        assert_eq!(wait_left(QUIET * 3), None);
    }

    #[tokio::test]
    async fn it_waits_for_the_patients_call_in_flight_to_end() {
        let f = std::sync::Arc::new(Foreground::new());
        tokio::time::sleep(QUIET * 2).await;
        let started = Instant::now();
        f.give_way().await;
        assert!(
            started.elapsed() < QUIET,
            "nobody in flight, quiet long enough"
        );

        let call = f.begin();
        let waiter = {
            let f = f.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                f.give_way().await;
                started.elapsed()
            })
        };
        tokio::time::sleep(Duration::from_millis(40)).await;
        drop(call);
        let waited = waiter.await.unwrap();
        assert!(
            waited >= Duration::from_millis(40) + QUIET,
            "until the call ended and then the quiet time: {waited:?}"
        );
        assert!(waited < MAX_WAIT, "{waited:?}");
    }

    #[tokio::test]
    async fn it_gives_way_no_longer_than_its_limit() {
        let f = Foreground::new();
        let _forever = f.begin();
        let started = Instant::now();
        f.give_way().await;
        let waited = started.elapsed();
        assert!(waited >= MAX_WAIT, "{waited:?}");
        assert!(waited < MAX_WAIT * 2, "{waited:?}");
    }
}
