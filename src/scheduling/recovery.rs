//! Finishing what a request could not. Every `[state] recovery_interval_ms`, on every replica:
//! - a booking whose create Canvas did not confirm (its claim is still in the overlay) is
//!   looked up by its identifier; once Canvas shows it, the claim becomes an ordinary overlay
//!   entry and the key's retry finds it. A claim Canvas never shows lapses `[canvas]
//!   write_settle_seconds` after its request was last alive.
//! - a recorded reschedule is settled from Canvas alone ([`lifecycle::finish_move`]): the old
//!   appointment is cancelled once the replacement shows, or the record is dropped once it is
//!   certain there is none. So a reschedule ends with exactly one of the two active even when
//!   its client never comes back.

use std::sync::Arc;

use futures::future::BoxFuture;
use jiff::{SignedDuration, Timestamp};

use super::Services;
use super::booking;
use super::guard::Guard;
use super::lifecycle::{self, MoveOutcome};

/// Told of appointments the recovery changed (the calendar sync listens).
pub type OnChange = Arc<dyn Fn(Vec<String>) -> BoxFuture<'static, ()> + Send + Sync>;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Unconfirmed bookings found at Canvas.
    pub confirmed: usize,
    /// Reschedules finished (old cancelled) or found moot.
    pub moves_settled: usize,
    /// Reschedules still waiting on Canvas.
    pub moves_waiting: usize,
}

pub fn spawn(s: Arc<Services>, on_change: OnChange) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(s.settings.leases.recovery_interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            run_once(&s, &on_change).await;
        }
    })
}

/// One pass over the unconfirmed bookings and the unfinished reschedules.
pub async fn run_once(s: &Services, on_change: &OnChange) -> Pass {
    let mut pass = Pass::default();
    let now = Timestamp::now();
    // A claim whose request still runs is kept `write_settle` ahead by it (renewed every third
    // of a lease): it is that request's business, not ours.
    let settle = SignedDuration::try_from(s.settings.canvas.write_settle).unwrap_or_default();
    let lease = SignedDuration::try_from(s.settings.leases.lock).unwrap_or_default();
    let alive_after = now
        .saturating_add(settle)
        .and_then(|t| t.checked_sub(lease))
        .unwrap_or(now);
    let booked = match s.store.booked(now).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "recovery: the shared state is unavailable");
            return pass;
        }
    };
    for pending in booked
        .into_iter()
        .filter(|b| b.expires_at <= alive_after)
        .filter_map(|b| b.pending)
    {
        match booking::find(s, &pending.identifier).await {
            Ok(Some(found)) => {
                booking::confirm_found(s, &pending.identifier, &found).await;
                pass.confirmed += 1;
                on_change(found.id.into_iter().collect()).await;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e.detail, "recovery: Canvas lookup failed"),
        }
    }
    let moves = match s.store.moves().await {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "recovery: the shared state is unavailable");
            return pass;
        }
    };
    if moves.is_empty() {
        return pass;
    }
    let guard = Guard::new(
        s.store.clone(),
        s.settings.leases.lock,
        s.settings.canvas.write_settle,
    );
    for m in moves {
        match lifecycle::finish_move(s, &guard, &m).await {
            Ok(MoveOutcome::Finished) => {
                pass.moves_settled += 1;
                on_change(vec![m.old.clone()]).await;
            }
            Ok(MoveOutcome::Moot) => pass.moves_settled += 1,
            Ok(MoveOutcome::Pending) => pass.moves_waiting += 1,
            Err(e) => {
                pass.moves_waiting += 1;
                tracing::warn!(error = %e.detail, "recovery: a reschedule could not be settled yet");
            }
        }
    }
    pass
}
