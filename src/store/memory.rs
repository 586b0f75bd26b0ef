//! The in-process store: one process, one truth. Locks are tokio mutexes per key; everything
//! else sits in one std mutex that is never held across an await.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::future::BoxFuture;
use jiff::{SignedDuration, Timestamp};

use super::*;

#[derive(Default)]
pub struct MemoryStore {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    holds: HashMap<String, Hold>,
    booked: Vec<Booked>,
    records: HashMap<String, Record>,
}

#[derive(Debug, Clone)]
enum Phase {
    Running { since: Timestamp, marker: Duration },
    Interrupted,
    Done(StoredResponse),
}

#[derive(Debug, Clone)]
struct Record {
    fingerprint: String,
    phase: Phase,
    progress: serde_json::Value,
    expires_at: Timestamp,
}

fn overlaps(a: (Timestamp, Timestamp), b: (Timestamp, Timestamp)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn purge(state: &mut State, now: Timestamp) {
        state.holds.retain(|_, h| h.expires_at > now);
        state.booked.retain(|b| b.expires_at > now);
        state.records.retain(|_, r| r.expires_at > now);
    }
}

impl Store for MemoryStore {
    fn lock(
        &self,
        key: String,
        _ttl: Duration,
        wait: Duration,
    ) -> BoxFuture<'_, StoreResult<Lease>> {
        Box::pin(async move {
            let mutex = {
                let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
                // Forget locks nobody holds or waits for, so the map stays small.
                locks.retain(|_, m| Arc::strong_count(m) > 1);
                locks.entry(key.clone()).or_default().clone()
            };
            let guard = tokio::time::timeout(wait, mutex.lock_owned())
                .await
                .map_err(|_| StoreError::Busy(format!("lock {key} not granted in time")))?;
            Ok(Lease {
                key,
                token: String::new(),
                guard: Some(Box::new(guard)),
            })
        })
    }

    fn unlock(&self, lease: Lease) -> BoxFuture<'_, StoreResult<()>> {
        drop(lease);
        Box::pin(async { Ok(()) })
    }

    fn put_hold(&self, hold: Hold, now: Timestamp) -> BoxFuture<'_, StoreResult<HoldOutcome>> {
        let mut state = self.state();
        Self::purge(&mut state, now);
        let span = (hold.start, hold.end);
        let outcome = if state
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
        Box::pin(async move { Ok(outcome) })
    }

    fn hold(&self, id: String, now: Timestamp) -> BoxFuture<'_, StoreResult<Option<Hold>>> {
        let found = self
            .state()
            .holds
            .get(&id)
            .filter(|h| h.expires_at > now)
            .cloned();
        Box::pin(async move { Ok(found) })
    }

    fn remove_hold(&self, id: String) -> BoxFuture<'_, StoreResult<bool>> {
        let removed = self.state().holds.remove(&id).is_some();
        Box::pin(async move { Ok(removed) })
    }

    fn holds(&self, now: Timestamp) -> BoxFuture<'_, StoreResult<Vec<Hold>>> {
        let mut state = self.state();
        Self::purge(&mut state, now);
        let holds = state.holds.values().cloned().collect();
        Box::pin(async move { Ok(holds) })
    }

    fn put_booked(&self, booked: Booked) -> BoxFuture<'_, StoreResult<()>> {
        // One entry per appointment: a moved one hides only its new time.
        let mut state = self.state();
        state
            .booked
            .retain(|b| b.appointment_id != booked.appointment_id);
        state.booked.push(booked);
        Box::pin(async { Ok(()) })
    }

    fn remove_booked(&self, appointment_id: String) -> BoxFuture<'_, StoreResult<()>> {
        self.state()
            .booked
            .retain(|b| b.appointment_id != appointment_id);
        Box::pin(async { Ok(()) })
    }

    fn booked(&self, now: Timestamp) -> BoxFuture<'_, StoreResult<Vec<Booked>>> {
        let mut state = self.state();
        Self::purge(&mut state, now);
        let booked = state.booked.clone();
        Box::pin(async move { Ok(booked) })
    }

    fn begin(
        &self,
        key: String,
        fingerprint: String,
        ttl: IdempotencyTtl,
        now: Timestamp,
    ) -> BoxFuture<'_, StoreResult<Begin>> {
        let mut state = self.state();
        Self::purge(&mut state, now);
        let running = Phase::Running {
            since: now,
            marker: ttl.marker,
        };
        let expires_at = now
            .saturating_add(SignedDuration::try_from(ttl.record).unwrap_or(SignedDuration::ZERO))
            .unwrap_or(now);
        let begin = match state.records.get_mut(&key) {
            None => {
                state.records.insert(
                    key,
                    Record {
                        fingerprint,
                        phase: running,
                        progress: serde_json::Value::Null,
                        expires_at,
                    },
                );
                Begin::Started
            }
            Some(r) if r.fingerprint != fingerprint => Begin::Mismatch,
            Some(r) => match &r.phase {
                Phase::Done(response) => Begin::Replay(response.clone()),
                Phase::Running { since, marker }
                    if now.duration_since(*since)
                        < SignedDuration::try_from(*marker).unwrap_or(SignedDuration::MAX) =>
                {
                    Begin::InProgress
                }
                // Interrupted, or running so long its request must have died.
                _ => {
                    r.phase = running;
                    Begin::Resume(r.progress.clone())
                }
            },
        };
        Box::pin(async move { Ok(begin) })
    }

    fn progress(&self, key: String, progress: serde_json::Value) -> BoxFuture<'_, StoreResult<()>> {
        if let Some(r) = self.state().records.get_mut(&key) {
            r.progress = progress;
        }
        Box::pin(async { Ok(()) })
    }

    fn finish(
        &self,
        key: String,
        response: StoredResponse,
        _now: Timestamp,
    ) -> BoxFuture<'_, StoreResult<()>> {
        if let Some(r) = self.state().records.get_mut(&key) {
            r.phase = Phase::Done(response);
        }
        Box::pin(async { Ok(()) })
    }

    fn interrupt(&self, key: String) -> BoxFuture<'_, StoreResult<()>> {
        if let Some(r) = self.state().records.get_mut(&key) {
            r.phase = Phase::Interrupted;
        }
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn hold(id: &str, owner: &str, start: &str, end: &str) -> Hold {
        Hold {
            id: id.into(),
            owner: owner.into(),
            patient: None,
            slot_id: "s1.x.y".into(),
            practitioner: "4150cd20de8a470aa570a852859ac87e".parse().unwrap(),
            start: ts(start),
            end: ts(end),
            expires_at: ts("2026-12-01T10:10:00Z"),
        }
    }

    const TTL: IdempotencyTtl = IdempotencyTtl {
        marker: Duration::from_secs(60),
        record: Duration::from_secs(86_400),
    };

    #[tokio::test]
    async fn overlapping_holds_conflict_and_expire() {
        let s = MemoryStore::new();
        let now = ts("2026-12-01T10:00:00Z");
        let a = hold("a", "p1", "2026-12-02T17:00:00Z", "2026-12-02T17:30:00Z");
        assert_eq!(s.put_hold(a, now).await.unwrap(), HoldOutcome::Created);
        let b = hold("b", "p2", "2026-12-02T17:15:00Z", "2026-12-02T17:45:00Z");
        assert_eq!(s.put_hold(b.clone(), now).await.unwrap(), HoldOutcome::Held);
        let mut back_to_back = hold("c", "p2", "2026-12-02T17:30:00Z", "2026-12-02T18:00:00Z");
        back_to_back.expires_at = ts("2026-12-01T10:30:00Z");
        assert_eq!(
            s.put_hold(back_to_back, now).await.unwrap(),
            HoldOutcome::Created
        );
        // After the first hold expires, its time is free again.
        let later = ts("2026-12-01T10:10:00Z");
        assert!(s.hold("a".into(), later).await.unwrap().is_none());
        let b2 = Hold {
            expires_at: ts("2026-12-01T10:20:00Z"),
            ..b
        };
        assert_eq!(
            s.put_hold(b2.clone(), later).await.unwrap(),
            HoldOutcome::Held,
            "c (17:30-18:00) still overlaps b"
        );
        s.remove_hold("c".into()).await.unwrap();
        assert_eq!(
            s.put_hold(b2, later).await.unwrap(),
            HoldOutcome::Created,
            "a expired and c was released"
        );
    }

    #[tokio::test]
    async fn a_fresh_booking_blocks_holds_until_removed() {
        let s = MemoryStore::new();
        let now = ts("2026-12-01T10:00:00Z");
        let h = hold("a", "p1", "2026-12-02T17:00:00Z", "2026-12-02T17:30:00Z");
        s.put_booked(Booked {
            appointment_id: "x".into(),
            practitioner: h.practitioner.clone(),
            start: h.start,
            end: h.end,
            expires_at: ts("2026-12-01T10:05:00Z"),
        })
        .await
        .unwrap();
        assert_eq!(
            s.put_hold(h.clone(), now).await.unwrap(),
            HoldOutcome::Booked
        );
        s.remove_booked("x".into()).await.unwrap();
        assert_eq!(s.put_hold(h, now).await.unwrap(), HoldOutcome::Created);
    }

    #[tokio::test]
    async fn keeps_every_promise_of_a_store() {
        crate::store::conformance::run(&MemoryStore::new()).await;
    }

    #[tokio::test]
    async fn a_moved_booking_hides_only_its_new_time() {
        let s = MemoryStore::new();
        let now = ts("2026-12-01T10:00:00Z");
        let at = |start: &str, end: &str| Booked {
            appointment_id: "x".into(),
            practitioner: "4150cd20de8a470aa570a852859ac87e".parse().unwrap(),
            start: ts(start),
            end: ts(end),
            expires_at: ts("2026-12-01T10:05:00Z"),
        };
        s.put_booked(at("2026-12-02T17:00:00Z", "2026-12-02T17:30:00Z"))
            .await
            .unwrap();
        let moved = at("2026-12-02T19:00:00Z", "2026-12-02T19:30:00Z");
        s.put_booked(moved.clone()).await.unwrap();
        assert_eq!(s.booked(now).await.unwrap(), [moved]);
    }

    #[tokio::test]
    async fn idempotency_records_replay_refuse_and_resume() {
        let s = MemoryStore::new();
        let now = ts("2026-12-01T10:00:00Z");
        assert_eq!(
            s.begin("k".into(), "f1".into(), TTL, now).await.unwrap(),
            Begin::Started
        );
        assert_eq!(
            s.begin("k".into(), "f1".into(), TTL, now).await.unwrap(),
            Begin::InProgress
        );
        assert_eq!(
            s.begin("k".into(), "f2".into(), TTL, now).await.unwrap(),
            Begin::Mismatch
        );
        let answer = StoredResponse {
            status: 201,
            body: b"{}".to_vec(),
            location: Some("/v1/appointments/1".into()),
        };
        s.finish("k".into(), answer.clone(), now).await.unwrap();
        assert_eq!(
            s.begin("k".into(), "f1".into(), TTL, now).await.unwrap(),
            Begin::Replay(answer)
        );
        // Kept for the record TTL, then forgotten.
        let tomorrow = ts("2026-12-02T10:00:01Z");
        assert_eq!(
            s.begin("k".into(), "f2".into(), TTL, tomorrow)
                .await
                .unwrap(),
            Begin::Started
        );
    }

    #[tokio::test]
    async fn a_crashed_or_interrupted_request_resumes_with_its_progress() {
        let s = MemoryStore::new();
        let now = ts("2026-12-01T10:00:00Z");
        assert_eq!(
            s.begin("k".into(), "f".into(), TTL, now).await.unwrap(),
            Begin::Started
        );
        s.progress("k".into(), serde_json::json!({"created": "a1"}))
            .await
            .unwrap();
        // The marker protects the key for a minute, then the request is presumed dead.
        assert_eq!(
            s.begin("k".into(), "f".into(), TTL, ts("2026-12-01T10:00:59Z"))
                .await
                .unwrap(),
            Begin::InProgress
        );
        assert_eq!(
            s.begin("k".into(), "f".into(), TTL, ts("2026-12-01T10:01:01Z"))
                .await
                .unwrap(),
            Begin::Resume(serde_json::json!({"created": "a1"}))
        );
        s.interrupt("k".into()).await.unwrap();
        assert!(matches!(
            s.begin("k".into(), "f".into(), TTL, ts("2026-12-01T10:01:02Z"))
                .await
                .unwrap(),
            Begin::Resume(_)
        ));
    }

    #[tokio::test]
    async fn locks_serialise_and_time_out() {
        let s = Arc::new(MemoryStore::new());
        let first = s
            .lock(
                "p".into(),
                Duration::from_secs(30),
                Duration::from_millis(50),
            )
            .await
            .unwrap();
        let second = s
            .lock(
                "p".into(),
                Duration::from_secs(30),
                Duration::from_millis(50),
            )
            .await;
        assert!(matches!(second, Err(StoreError::Busy(_))));
        let other = s
            .lock(
                "q".into(),
                Duration::from_secs(30),
                Duration::from_millis(50),
            )
            .await;
        assert!(other.is_ok(), "other keys are independent");
        s.unlock(first).await.unwrap();
        assert!(
            s.lock(
                "p".into(),
                Duration::from_secs(30),
                Duration::from_millis(50)
            )
            .await
            .is_ok()
        );
    }
}
