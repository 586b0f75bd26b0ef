//! What one request holds while it works, kept alive for exactly as long as it works: the
//! leases of its idempotency key and of its locks, and the overlay entries of creates it has
//! sent. One task renews them every third of the lease. A lease whose renewal is refused was
//! lost (it lapsed and someone else took it); one that cannot be renewed (the store is away)
//! counts as lost once its last renewal runs out. Before anything is written to Canvas the
//! request asks [`Guard::check`], and every write to the shared state that relies on a lock is
//! fenced by the store with the lease's token, so a request that lost a lock stops instead of
//! trusting it. When the request ends (or its task is dropped), whatever is left is released.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::time::Instant;

use crate::store::{Booked, Lease, Store, StoreError};

pub struct Guard {
    shared: Arc<Shared>,
    renewer: tokio::task::AbortHandle,
}

struct Shared {
    store: Arc<dyn Store>,
    lease: Duration,
    /// How long a sent create's time stays hidden after its request was last seen alive.
    settle: Duration,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    leases: Vec<(Lease, Instant)>,
    pending: Vec<Booked>,
    lost: bool,
}

/// A lease this request relied on is gone: it must not write to Canvas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a lock this request relied on was lost")]
pub struct Lost;

/// Time left on a lease below which it is not trusted for a write that may take a while.
fn margin(lease: Duration) -> Duration {
    lease / 5
}

impl Shared {
    fn held(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn expiry(&self) -> Timestamp {
        let now = Timestamp::now();
        now.saturating_add(SignedDuration::try_from(self.settle).unwrap_or(SignedDuration::MAX))
            .unwrap_or(now)
    }

    async fn renew_all(&self) {
        let leases: Vec<Lease> = self.held().leases.iter().map(|(l, _)| l.clone()).collect();
        for lease in leases {
            let sent = Instant::now();
            match self.store.renew(lease.clone(), self.lease).await {
                Ok(true) => {
                    if let Some(entry) = self.held().leases.iter_mut().find(|(l, _)| *l == lease) {
                        entry.1 = sent + self.lease;
                    }
                }
                Ok(false) => {
                    tracing::warn!("a lease was lost while its request still worked");
                    self.held().lost = true;
                }
                // Not lost yet: its last renewal runs out on its own, and `check` sees that.
                Err(e) => tracing::warn!(error = %e, "could not renew a lease"),
            }
        }
        let pending: Vec<Booked> = self.held().pending.clone();
        for mut entry in pending {
            entry.expires_at = self.expiry();
            match self.store.refresh_booked(entry.clone()).await {
                Ok(true) => {}
                Ok(false) => self
                    .held()
                    .pending
                    .retain(|b| b.appointment_id != entry.appointment_id),
                Err(e) => tracing::warn!(error = %e, "could not keep an unconfirmed booking"),
            }
        }
    }
}

impl Guard {
    pub fn new(store: Arc<dyn Store>, lease: Duration, settle: Duration) -> Guard {
        let shared = Arc::new(Shared {
            store,
            lease,
            settle,
            held: Mutex::new(Held::default()),
        });
        let weak = Arc::downgrade(&shared);
        let renewer = tokio::spawn(async move {
            let mut every = tokio::time::interval(lease / 3);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await;
            loop {
                every.tick().await;
                let Some(shared) = weak.upgrade() else { return };
                shared.renew_all().await;
            }
        })
        .abort_handle();
        Guard { shared, renewer }
    }

    /// How long a lease lives without renewal.
    pub fn lease(&self) -> Duration {
        self.shared.lease
    }

    /// Takes over a lease granted just now (an idempotency key's).
    pub fn adopt(&self, lease: Lease) {
        let until = lease.asked + self.shared.lease;
        self.shared.held().leases.push((lease, until));
    }

    /// Waits up to `wait` for the lock `key` and keeps it renewed until released.
    pub async fn lock(&self, key: String, wait: Duration) -> Result<Lease, StoreError> {
        let lease = self.shared.store.lock(key, self.shared.lease, wait).await?;
        // It runs from the grant, not from when this request began to wait for it.
        let until = lease.asked + self.shared.lease;
        self.shared.held().leases.push((lease.clone(), until));
        Ok(lease)
    }

    /// Gives a lock back now.
    pub async fn release(&self, lease: Lease) {
        self.forget(&lease);
        if let Err(e) = self.shared.store.unlock(lease).await {
            // It lapses on its own within a lease.
            tracing::warn!(error = %e, "could not release a lock");
        }
    }

    /// Stops renewing a lease that was given back another way (an answered idempotency key).
    pub fn forget(&self, lease: &Lease) {
        self.shared.held().leases.retain(|(l, _)| l != lease);
    }

    /// Every lease still held, for the store to fence a write with.
    pub fn fences(&self) -> Vec<Lease> {
        self.shared
            .held()
            .leases
            .iter()
            .map(|(l, _)| l.clone())
            .collect()
    }

    /// Whether every lease is still certainly this request's, with time to spare.
    pub fn check(&self) -> Result<(), Lost> {
        let held = self.shared.held();
        let safe = Instant::now() + margin(self.shared.lease);
        if held.lost || held.leases.iter().any(|(_, until)| *until <= safe) {
            return Err(Lost);
        }
        Ok(())
    }

    /// The expiry to give a pending entry written now.
    pub fn pending_expiry(&self) -> Timestamp {
        self.shared.expiry()
    }

    /// Keeps a claimed create's time hidden while this request runs, and `settle` after.
    pub fn keep_pending(&self, entry: Booked) {
        self.shared.held().pending.push(entry);
    }

    /// Stops keeping an entry (it was confirmed or given back).
    pub fn drop_pending(&self, appointment_id: &str) {
        self.shared
            .held()
            .pending
            .retain(|b| b.appointment_id != appointment_id);
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.renewer.abort();
        let leases: Vec<Lease> = std::mem::take(&mut self.shared.held().leases)
            .into_iter()
            .map(|(l, _)| l)
            .collect();
        if leases.is_empty() {
            return;
        }
        let store = self.shared.store.clone();
        // A request dropped half way: its locks go back now rather than when they lapse.
        tokio::spawn(async move {
            for lease in leases {
                let _ = store.unlock(lease).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    const LEASE: Duration = Duration::from_millis(300);

    fn guard(store: &Arc<MemoryStore>) -> Guard {
        Guard::new(store.clone(), LEASE, Duration::from_secs(60))
    }

    #[tokio::test]
    async fn a_working_request_keeps_its_lock_for_as_long_as_it_works() {
        let store = Arc::new(MemoryStore::new());
        let g = guard(&store);
        g.lock("practitioner:a".into(), Duration::ZERO)
            .await
            .unwrap();
        // Ten leases long: without renewal it would have lapsed nine times over.
        tokio::time::sleep(LEASE * 10).await;
        assert_eq!(g.check(), Ok(()));
        let other = store
            .lock("practitioner:a".into(), LEASE, Duration::from_millis(10))
            .await;
        assert!(matches!(other, Err(StoreError::Busy(_))), "still held");
    }

    #[tokio::test]
    async fn a_dropped_request_gives_its_locks_back_at_once() {
        let store = Arc::new(MemoryStore::new());
        let g = guard(&store);
        g.lock("practitioner:a".into(), Duration::ZERO)
            .await
            .unwrap();
        drop(g);
        let again = store
            .lock("practitioner:a".into(), Duration::from_secs(30), LEASE / 3)
            .await;
        assert!(again.is_ok(), "released on drop, not when it lapses");
    }

    #[tokio::test]
    async fn a_lock_taken_by_another_is_lost_and_fences_every_write() {
        let store = Arc::new(MemoryStore::new());
        let g = guard(&store);
        let lease = g
            .lock("practitioner:a".into(), Duration::ZERO)
            .await
            .unwrap();
        // Someone else ends up with it (as after a stall longer than the lease).
        store.unlock(lease.clone()).await.unwrap();
        let theirs = store
            .lock("practitioner:a".into(), LEASE, Duration::ZERO)
            .await
            .unwrap();
        tokio::time::sleep(LEASE / 2).await;
        assert_eq!(g.check(), Err(Lost), "the renewal found it gone");
        assert_eq!(g.fences(), vec![lease]);
        assert!(!store.renew(g.fences()[0].clone(), LEASE).await.unwrap());
        drop(g);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            store.renew(theirs, LEASE).await.unwrap(),
            "the loser's release leaves the new holder's lock alone"
        );
    }

    #[tokio::test]
    async fn a_sent_create_stays_hidden_while_its_request_runs_and_settle_after() {
        let store = Arc::new(MemoryStore::new());
        let g = guard(&store);
        let now = Timestamp::now();
        let entry = Booked {
            appointment_id: "pending:x".into(),
            practitioner: "4150cd20de8a470aa570a852859ac87e".parse().unwrap(),
            start: now + SignedDuration::from_hours(24),
            end: now + SignedDuration::from_hours(25),
            // Shorter than the work: only renewal keeps it.
            expires_at: now + SignedDuration::from_millis(200),
            pending: None,
        };
        store.put_booked(entry.clone()).await.unwrap();
        g.keep_pending(entry);
        tokio::time::sleep(LEASE * 2).await;
        let later = Timestamp::now();
        let kept = store.booked(later).await.unwrap();
        assert_eq!(kept.len(), 1, "renewed while the request runs");
        assert!(kept[0].expires_at > later + SignedDuration::from_secs(50));
    }
}
