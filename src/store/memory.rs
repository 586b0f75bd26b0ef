//! The in-process store: one process, one truth, with the same promises as the shared one.
//! Locks are leases that lapse unless renewed, exactly as in Redis, so that a task that stalls
//! or is dropped loses them the same way; everything sits in one std mutex that is never held
//! across an await, and waiters for a lock are woken when one is released.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use futures::future::BoxFuture;
use jiff::{SignedDuration, Timestamp};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::*;

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    released: Notify,
}

#[derive(Default)]
struct State {
    locks: HashMap<String, Held>,
    holds: HashMap<String, Hold>,
    booked: Vec<Booked>,
    records: HashMap<String, Record>,
    moves: HashMap<String, Move>,
    entries: HashMap<String, waitlist::Entry>,
    offers: HashMap<String, waitlist::Offer>,
}

struct Held {
    token: String,
    until: Instant,
}

#[derive(Debug, Clone)]
enum Phase {
    Running,
    Interrupted,
    Done(StoredResponse),
}

#[derive(Debug, Clone)]
struct Record {
    fingerprint: String,
    phase: Phase,
    /// The token of the attempt that owns the key.
    owner: String,
    progress: serde_json::Value,
    expires_at: Timestamp,
}

fn overlaps(a: (Timestamp, Timestamp), b: (Timestamp, Timestamp)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// The lease that marks an idempotency key's attempt as alive.
fn run_key(key: &str) -> String {
    format!("idem-run:{key}")
}

fn token() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl State {
    fn purge(&mut self, now: Timestamp) {
        self.holds.retain(|_, h| h.expires_at > now);
        self.booked.retain(|b| b.expires_at > now);
        self.records.retain(|_, r| r.expires_at > now);
        let instant = Instant::now();
        self.locks.retain(|_, l| l.until > instant);
    }

    fn holds_lease(&self, lease: &Lease) -> bool {
        self.locks
            .get(&lease.key)
            .is_some_and(|l| l.token == lease.token && l.until > Instant::now())
    }

    /// Grants `key` unless someone holds it; the new lease's token.
    fn try_lock(&mut self, key: &str, lease: Duration) -> Option<String> {
        if self
            .locks
            .get(key)
            .is_some_and(|l| l.until > Instant::now())
        {
            return None;
        }
        let token = token();
        self.locks.insert(
            key.to_owned(),
            Held {
                token: token.clone(),
                until: Instant::now() + lease,
            },
        );
        Some(token)
    }

    fn drop_lease(&mut self, lease: &Lease) -> bool {
        if self
            .locks
            .get(&lease.key)
            .is_some_and(|l| l.token == lease.token)
        {
            self.locks.remove(&lease.key);
            return true;
        }
        false
    }

    /// The record `key` while `owner` owns it.
    fn owned(&mut self, key: &str, owner: &Lease) -> Option<&mut Record> {
        self.records.get_mut(key).filter(|r| r.owner == owner.token)
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ready<T: Send + 'static>(value: T) -> BoxFuture<'static, StoreResult<T>> {
        Box::pin(async move { Ok(value) })
    }
}

impl Store for MemoryStore {
    fn lock(
        &self,
        key: String,
        lease: Duration,
        wait: Duration,
    ) -> BoxFuture<'_, StoreResult<Lease>> {
        Box::pin(async move {
            let deadline = Instant::now() + wait;
            loop {
                let asked = Instant::now();
                // Listening before looking, so a release between the two is not missed.
                let released = self.released.notified();
                tokio::pin!(released);
                released.as_mut().enable();
                let next_expiry = {
                    let mut state = self.state();
                    if let Some(token) = state.try_lock(&key, lease) {
                        return Ok(Lease { key, token, asked });
                    }
                    state.locks.get(&key).map(|l| l.until)
                };
                let now = Instant::now();
                if now >= deadline {
                    return Err(StoreError::Busy("a lock was not granted in time".into()));
                }
                let until = next_expiry.map_or(deadline, |e| e.min(deadline));
                let _ = tokio::time::timeout_at(until.max(now), released).await;
            }
        })
    }

    fn renew(&self, lease: Lease, duration: Duration) -> BoxFuture<'_, StoreResult<bool>> {
        let mut state = self.state();
        let renewed = match state.locks.get_mut(&lease.key) {
            Some(l) if l.token == lease.token && l.until > Instant::now() => {
                l.until = Instant::now() + duration;
                true
            }
            _ => false,
        };
        Self::ready(renewed)
    }

    fn unlock(&self, lease: Lease) -> BoxFuture<'_, StoreResult<()>> {
        if self.state().drop_lease(&lease) {
            self.released.notify_waiters();
        }
        Self::ready(())
    }

    fn put_hold(
        &self,
        hold: Hold,
        max_per_owner: u32,
        now: Timestamp,
    ) -> BoxFuture<'_, StoreResult<HoldOutcome>> {
        let mut state = self.state();
        state.purge(now);
        let span = (hold.start, hold.end);
        let counts_for = hold.counts_for();
        let outcome = if state
            .holds
            .values()
            .filter(|h| h.counts_for() == counts_for)
            .count()
            >= max_per_owner as usize
        {
            HoldOutcome::LimitReached
        } else if state
            .holds
            .values()
            .any(|h| h.practitioner == hold.practitioner && overlaps((h.start, h.end), span))
        {
            HoldOutcome::Held
        } else if state
            .booked
            .iter()
            .any(|b| b.practitioner == hold.practitioner && overlaps((b.start, b.end), span))
        {
            HoldOutcome::Booked
        } else {
            state.holds.insert(hold.id.clone(), hold);
            HoldOutcome::Created
        };
        Self::ready(outcome)
    }

    fn hold(&self, id: String, now: Timestamp) -> BoxFuture<'_, StoreResult<Option<Hold>>> {
        let found = self
            .state()
            .holds
            .get(&id)
            .filter(|h| h.expires_at > now)
            .cloned();
        Self::ready(found)
    }

    fn remove_hold(&self, id: String) -> BoxFuture<'_, StoreResult<bool>> {
        let removed = self.state().holds.remove(&id).is_some();
        Self::ready(removed)
    }

    fn holds(&self, now: Timestamp) -> BoxFuture<'_, StoreResult<Vec<Hold>>> {
        let mut state = self.state();
        state.purge(now);
        let holds = state.holds.values().cloned().collect();
        Self::ready(holds)
    }

    fn claim(
        &self,
        claim: Claim,
        fences: Vec<Lease>,
        now: Timestamp,
    ) -> BoxFuture<'_, StoreResult<ClaimOutcome>> {
        let mut state = self.state();
        state.purge(now);
        let b = &claim.booked;
        let span = (b.start, b.end);
        let others_hold = |h: &Hold| {
            h.owner != claim.hold_owner || claim.hold_id.as_ref().is_some_and(|id| *id != h.id)
        };
        let outcome = if !fences.iter().all(|f| state.holds_lease(f)) {
            ClaimOutcome::Fenced
        } else if state
            .booked
            .iter()
            .any(|e| e.appointment_id == b.appointment_id)
        {
            ClaimOutcome::Unconfirmed
        } else if state.holds.values().any(|h| {
            h.practitioner == b.practitioner && overlaps((h.start, h.end), span) && others_hold(h)
        }) {
            ClaimOutcome::Held
        } else if state
            .booked
            .iter()
            .any(|e| e.practitioner == b.practitioner && overlaps((e.start, e.end), span))
        {
            ClaimOutcome::Booked
        } else {
            state.booked.push(claim.booked);
            ClaimOutcome::Claimed
        };
        Self::ready(outcome)
    }

    fn put_booked(&self, booked: Booked) -> BoxFuture<'_, StoreResult<()>> {
        // One entry per appointment: a moved one hides only its new time.
        let mut state = self.state();
        state
            .booked
            .retain(|b| b.appointment_id != booked.appointment_id);
        state.booked.push(booked);
        Self::ready(())
    }

    fn refresh_booked(&self, booked: Booked) -> BoxFuture<'_, StoreResult<bool>> {
        let mut state = self.state();
        let found = state
            .booked
            .iter_mut()
            .find(|b| b.appointment_id == booked.appointment_id && b.expires_at > Timestamp::now());
        let refreshed = found.map(|b| *b = booked).is_some();
        Self::ready(refreshed)
    }

    fn remove_booked(&self, appointment_id: String) -> BoxFuture<'_, StoreResult<()>> {
        self.state()
            .booked
            .retain(|b| b.appointment_id != appointment_id);
        Self::ready(())
    }

    fn booked(&self, now: Timestamp) -> BoxFuture<'_, StoreResult<Vec<Booked>>> {
        let mut state = self.state();
        state.purge(now);
        let booked = state.booked.clone();
        Self::ready(booked)
    }

    fn begin(
        &self,
        key: String,
        fingerprint: String,
        ttl: IdempotencyTtl,
        now: Timestamp,
    ) -> BoxFuture<'_, StoreResult<Begin>> {
        let mut state = self.state();
        state.purge(now);
        let expires_at = now
            .saturating_add(SignedDuration::try_from(ttl.record).unwrap_or(SignedDuration::ZERO))
            .unwrap_or(now);
        let run = run_key(&key);
        let running = state.locks.contains_key(&run);
        let begin = match state.records.get(&key) {
            Some(r) if r.fingerprint != fingerprint => Begin::Mismatch,
            Some(Record {
                phase: Phase::Done(response),
                ..
            }) => Begin::Replay(response.clone()),
            Some(Record {
                phase: Phase::Running,
                ..
            }) if running => Begin::InProgress,
            found => {
                let progress = found.map(|r| r.progress.clone());
                // Interrupted, or its attempt stopped renewing (it died): this one owns it now.
                let token = state.try_lock(&run, ttl.lease).unwrap_or_else(token);
                let lease = Lease {
                    key: run,
                    token: token.clone(),
                    asked: Instant::now(),
                };
                let record = state.records.entry(key).or_insert_with(|| Record {
                    fingerprint,
                    phase: Phase::Running,
                    owner: String::new(),
                    progress: serde_json::Value::Null,
                    expires_at,
                });
                record.phase = Phase::Running;
                record.owner = token;
                match progress {
                    None => Begin::Started(lease),
                    Some(p) => Begin::Resume(lease, p),
                }
            }
        };
        Self::ready(begin)
    }

    fn progress(
        &self,
        key: String,
        owner: Lease,
        progress: serde_json::Value,
    ) -> BoxFuture<'_, StoreResult<bool>> {
        let mut state = self.state();
        let owned = state.owned(&key, &owner).map(|r| r.progress = progress);
        Self::ready(owned.is_some())
    }

    fn finish(
        &self,
        key: String,
        owner: Lease,
        response: StoredResponse,
    ) -> BoxFuture<'_, StoreResult<bool>> {
        let mut state = self.state();
        let owned = state
            .owned(&key, &owner)
            .map(|r| r.phase = Phase::Done(response));
        if owned.is_some() {
            state.drop_lease(&owner);
        }
        Self::ready(owned.is_some())
    }

    fn interrupt(&self, key: String, owner: Lease) -> BoxFuture<'_, StoreResult<bool>> {
        let mut state = self.state();
        let owned = state
            .owned(&key, &owner)
            .map(|r| r.phase = Phase::Interrupted);
        if owned.is_some() {
            state.drop_lease(&owner);
        }
        Self::ready(owned.is_some())
    }

    fn put_move(&self, m: Move) -> BoxFuture<'_, StoreResult<()>> {
        self.state().moves.insert(m.field(), m);
        Self::ready(())
    }

    fn moves(&self) -> BoxFuture<'_, StoreResult<Vec<Move>>> {
        let moves = self.state().moves.values().cloned().collect();
        Self::ready(moves)
    }

    fn remove_move(&self, m: Move) -> BoxFuture<'_, StoreResult<()>> {
        self.state().moves.remove(&m.field());
        Self::ready(())
    }

    fn add_entry(
        &self,
        entry: waitlist::Entry,
        max_per_patient: u32,
    ) -> BoxFuture<'_, StoreResult<bool>> {
        let mut state = self.state();
        let held = state
            .entries
            .values()
            .filter(|e| e.patient == entry.patient)
            .count();
        let added = held < max_per_patient as usize;
        if added {
            state.entries.insert(entry.id.clone(), entry);
        }
        Self::ready(added)
    }

    fn entries(&self) -> BoxFuture<'_, StoreResult<Vec<waitlist::Entry>>> {
        let entries = self.state().entries.values().cloned().collect();
        Self::ready(entries)
    }

    fn pass_slot(&self, entry_id: String, slot: String) -> BoxFuture<'_, StoreResult<bool>> {
        let mut state = self.state();
        let found = state.entries.get_mut(&entry_id).map(|e| {
            if !e.passed.contains(&slot) {
                e.passed.push(slot);
            }
        });
        Self::ready(found.is_some())
    }

    fn remove_entry(&self, id: String) -> BoxFuture<'_, StoreResult<bool>> {
        let removed = self.state().entries.remove(&id).is_some();
        Self::ready(removed)
    }

    fn put_offer(&self, offer: waitlist::Offer) -> BoxFuture<'_, StoreResult<bool>> {
        let mut state = self.state();
        let busy = state
            .offers
            .values()
            .any(|o| o.entry_id == offer.entry_id && o.status.is_live());
        let stored = state.entries.contains_key(&offer.entry_id) && !busy;
        if stored {
            state.offers.insert(offer.id.clone(), offer);
        }
        Self::ready(stored)
    }

    fn offers(&self) -> BoxFuture<'_, StoreResult<Vec<waitlist::Offer>>> {
        let offers = self.state().offers.values().cloned().collect();
        Self::ready(offers)
    }

    fn settle_offer(
        &self,
        id: String,
        from: waitlist::OfferStatus,
        to: waitlist::OfferStatus,
    ) -> BoxFuture<'_, StoreResult<Option<waitlist::Offer>>> {
        let mut state = self.state();
        let settled = state
            .offers
            .get_mut(&id)
            .filter(|o| o.status == from)
            .map(|o| {
                o.status = to;
                o.clone()
            });
        Self::ready(settled)
    }

    fn begin_accept(
        &self,
        id: String,
        identifier: String,
    ) -> BoxFuture<'_, StoreResult<Option<waitlist::Offer>>> {
        use waitlist::OfferStatus::{Accepting, Open};
        let mut state = self.state();
        let held = state.offers.get_mut(&id).and_then(|o| match o.status {
            Open => {
                o.status = Accepting;
                o.accepting = Some(identifier);
                Some(o.clone())
            }
            Accepting if o.accepting.as_ref() == Some(&identifier) => Some(o.clone()),
            _ => None,
        });
        Self::ready(held)
    }

    fn offer_notified(&self, id: String) -> BoxFuture<'_, StoreResult<()>> {
        if let Some(o) = self.state().offers.get_mut(&id) {
            o.notified = true;
        }
        Self::ready(())
    }

    fn prune_offers(&self, before: Timestamp) -> BoxFuture<'_, StoreResult<()>> {
        self.state()
            .offers
            .retain(|_, o| o.status.is_live() || o.expires_at >= before);
        Self::ready(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn keeps_every_promise_of_a_store() {
        crate::store::conformance::run(&MemoryStore::new()).await;
    }

    #[tokio::test]
    async fn a_waiter_gets_a_released_lock_at_once_not_when_it_would_have_lapsed() {
        let s = Arc::new(MemoryStore::new());
        let long = Duration::from_secs(30);
        let first = s.lock("p".into(), long, Duration::ZERO).await.unwrap();
        let waiter = {
            let s = s.clone();
            tokio::spawn(async move {
                let asked = Instant::now();
                s.lock("p".into(), long, long)
                    .await
                    .map(|_| asked.elapsed())
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        s.unlock(first).await.unwrap();
        let waited = waiter.await.unwrap().expect("granted");
        assert!(waited < Duration::from_secs(1), "{waited:?}");
    }
}
