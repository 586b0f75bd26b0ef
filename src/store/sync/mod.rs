//! Calendar-sync state behind one small trait: which appointments wait to be planned, what
//! each sink last received, the delivery queue with its two lanes, running leases and retries,
//! and the dead letters. Every backend keeps the rules of [`queue::Queue`]; each operation
//! costs the same however long the backlog (Redis: sorted sets and hashes, one script a step).
//! The in-process implementation can persist to a file, so a restart loses and doubles nothing.

use std::collections::BTreeSet;

use futures::future::BoxFuture;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::StoreResult;

#[doc(hidden)]
pub mod conformance;
mod memory;
pub mod queue;
pub mod redis;

pub use memory::MemorySyncStore;

/// Which work a job belongs to. `Fast`: a change somebody just made (a notification, our own
/// write, a retry), due in seconds; `Sweep`: the reconciler's comparison of everything, which
/// goes when the fast lane is empty.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lane {
    #[default]
    Fast,
    Sweep,
}

impl Lane {
    pub const ALL: [Lane; 2] = [Lane::Fast, Lane::Sweep];

    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Fast => "fast",
            Lane::Sweep => "sweep",
        }
    }
}

/// What a sink holds for one appointment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkRecord {
    /// Hash of the state last delivered; `None` once removed.
    pub delivered: Option<String>,
    /// The sink's own id for it (a Google or Graph event id).
    pub external_id: Option<String>,
}

/// One message for one sink: bring this appointment to this state. Its `Debug` leaves the
/// states out: at the `full` PHI level they carry the patient's name.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub sink: String,
    pub appointment_id: String,
    /// The appointment's clinician (whose calendar it goes to).
    pub practitioner: String,
    /// The state to deliver, as JSON (the sink's mapped event), or `None` to remove it.
    pub desired: Option<serde_json::Value>,
    pub desired_hash: Option<String>,
    /// Stable across retries of this message (Standard Webhooks `webhook-id`).
    pub message_id: String,
    /// With a removal: the appointment as it ended (cancelled, no-show), for the sinks that
    /// tell of it rather than delete something (webhooks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub farewell: Option<serde_json::Value>,
    /// An older job for this appointment may have reached the sink without being confirmed
    /// (it timed out, or its replica died): what the record says is not to be trusted, so this
    /// one is sent even when the record claims the sink holds it already.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub must_send: bool,
    pub attempts: u32,
    pub not_before: Timestamp,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    #[serde(default)]
    pub lane: Lane,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("id", &self.id)
            .field("sink", &self.sink)
            .field("appointment_id", &self.appointment_id)
            .field("desired_hash", &self.desired_hash)
            .field("message_id", &self.message_id)
            .field("attempts", &self.attempts)
            .field("not_before", &self.not_before)
            .field("must_send", &self.must_send)
            .field("lane", &self.lane)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub job: Job,
    pub died_at: Timestamp,
}

/// What a sink holds of an appointment, as far as planning needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holding {
    /// No record: the sink never had it, or its state was lost.
    Unknown,
    /// The state it holds (`None`: removed), with nothing of it waiting or running.
    Settled(Option<String>),
    /// A job of it is waiting or running.
    Moving,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SinkStats {
    pub pending: usize,
    pub failing: usize,
    pub dead: usize,
    pub last_success: Option<Timestamp>,
    /// When the oldest job still waiting or running was made, per lane.
    pub oldest_fast: Option<Timestamp>,
    pub oldest_sweep: Option<Timestamp>,
}

impl SinkStats {
    pub fn oldest_pending(&self) -> Option<Timestamp> {
        self.oldest_fast.into_iter().chain(self.oldest_sweep).min()
    }
}

pub trait SyncStore: Send + Sync {
    /// Asks for these appointments to be read and planned (fast lane). Repeats collapse into
    /// one, which keeps the time it was first asked for.
    fn mark_pending(&self, ids: Vec<String>) -> BoxFuture<'_, StoreResult<()>>;
    /// Takes up to `max` appointments to plan, oldest first. They are moved aside, not
    /// removed: until [`SyncStore::planned`] says so, [`SyncStore::recover`] gives them back.
    fn take_pending(&self, max: usize) -> BoxFuture<'_, StoreResult<Vec<String>>>;
    /// These appointments are planned (or marked pending again).
    fn planned(&self, ids: Vec<String>) -> BoxFuture<'_, StoreResult<()>>;
    /// When the oldest appointment waiting to be planned was asked for.
    fn oldest_unplanned(&self) -> BoxFuture<'_, StoreResult<Option<Timestamp>>>;
    fn record(
        &self,
        sink: String,
        appointment: String,
    ) -> BoxFuture<'_, StoreResult<Option<SinkRecord>>>;
    /// What one sink holds of each of these appointments, in one step for all of them: the
    /// sweep plans only those whose state differs (usually none).
    fn holding(
        &self,
        sink: String,
        appointments: Vec<String>,
    ) -> BoxFuture<'_, StoreResult<Vec<Holding>>>;
    /// Every appointment some sink has a record of.
    fn known_appointments(&self) -> BoxFuture<'_, StoreResult<Vec<String>>>;
    /// Drops every sink's record of these appointments (they left the window; nothing will
    /// change them again).
    fn forget(&self, appointments: Vec<String>) -> BoxFuture<'_, StoreResult<()>>;
    /// Queues a job, replacing a queued (not running) job for the same sink and appointment:
    /// only the latest state is ever delivered. Against the state the sink holds (its record's
    /// `delivered`, read in the same atomic step): a job for that state only undoes older
    /// ones still on their way. True when a job was added.
    fn enqueue(&self, job: Job) -> BoxFuture<'_, StoreResult<bool>>;
    /// Takes due jobs of one sink, fast lane first, at most one per appointment, marking them
    /// running under a lease that ends at `until`. Running jobs whose lease ended (their
    /// delivery or its replica died, or its last write was lost) go back to the queue first.
    fn lease(
        &self,
        sink: String,
        now: Timestamp,
        max: usize,
        until: Timestamp,
    ) -> BoxFuture<'_, StoreResult<Vec<Job>>>;
    /// Extends a running job's lease; false when it is no longer this job's to run.
    fn renew(&self, job: Job, until: Timestamp) -> BoxFuture<'_, StoreResult<bool>>;
    /// The job reached its sink, which now holds `record`; a dead letter of the same
    /// appointment for that sink is obsolete and goes.
    fn delivered(
        &self,
        job: Job,
        record: SinkRecord,
        now: Timestamp,
    ) -> BoxFuture<'_, StoreResult<()>>;
    fn failed(
        &self,
        job: Job,
        retry_at: Option<Timestamp>,
        error: String,
        now: Timestamp,
    ) -> BoxFuture<'_, StoreResult<()>>;
    fn dead_letters(&self) -> BoxFuture<'_, StoreResult<Vec<DeadLetter>>>;
    /// Queues a dead letter again (attempts reset, the same message) to go at `at`, unless a
    /// newer change of its appointment is on its way; gives its appointment (None: no such
    /// letter). The caller has that appointment planned again before `at`: what was saved may
    /// be older than Canvas by now, and planning replaces it, or drops it when the sink holds
    /// the newer state already.
    fn revive(&self, job_id: String, at: Timestamp) -> BoxFuture<'_, StoreResult<Option<String>>>;
    fn stats(&self, sink: String) -> BoxFuture<'_, StoreResult<SinkStats>>;
    /// A new sync leader starts: every running job and every appointment taken for planning
    /// goes back to wait (whoever had them is gone).
    fn recover(&self) -> BoxFuture<'_, StoreResult<()>>;
    /// Makes everything changed so far durable (shutdown).
    fn flush(&self) -> BoxFuture<'_, StoreResult<()>>;
    /// An inbound calendar's state (sync token, channels, what each meeting became).
    fn calendar(&self, key: String) -> BoxFuture<'_, StoreResult<Option<serde_json::Value>>>;
    fn put_calendar(&self, key: String, state: serde_json::Value)
    -> BoxFuture<'_, StoreResult<()>>;
    /// Asks for a read of an inbound calendar, from whichever replica received the push; the
    /// sync leader takes them. Asks for one calendar merge until taken.
    fn request_read(&self, calendar: String, ask: ReadAsk) -> BoxFuture<'_, StoreResult<()>>;
    fn take_reads(&self) -> BoxFuture<'_, StoreResult<Vec<(String, ReadAsk)>>>;
}

/// What is wanted of an inbound calendar's next read. Two asks merge into one that does both:
/// a full read covers what changed, and what changed covers single events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadAsk {
    /// Every meeting in the window (start-up, resync, a lost subscription).
    pub full: bool,
    /// What changed since the last read (a push that names no event).
    pub changes: bool,
    /// Only these events (a push that names them).
    pub events: BTreeSet<String>,
}

impl ReadAsk {
    /// More named events than this are read as changes instead: one request beats many.
    pub const MAX_EVENTS: usize = 20;

    pub fn full() -> Self {
        Self {
            full: true,
            ..Self::default()
        }
    }

    pub fn changes() -> Self {
        Self {
            changes: true,
            ..Self::default()
        }
    }

    pub fn events(ids: impl IntoIterator<Item = String>) -> Self {
        Self {
            events: ids.into_iter().collect(),
            ..Self::default()
        }
    }

    pub fn merge(&mut self, other: ReadAsk) {
        self.full |= other.full;
        self.changes |= other.changes;
        self.events.extend(other.events);
    }

    /// Whether reading the named events alone answers this ask.
    pub fn events_only(&self) -> bool {
        !self.full && !self.changes && self.events.len() <= Self::MAX_EVENTS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_asks_merge_to_the_larger_read() {
        let mut a = ReadAsk::events(["e1".to_owned()]);
        assert!(a.events_only());
        a.merge(ReadAsk::events(["e2".to_owned()]));
        assert!(a.events_only() && a.events.len() == 2);
        a.merge(ReadAsk::changes());
        assert!(
            !a.events_only() && !a.full,
            "a push naming no event needs the changes"
        );
        a.merge(ReadAsk::full());
        assert!(a.full);
        let many = ReadAsk::events((0..=ReadAsk::MAX_EVENTS).map(|i| format!("e{i}")));
        assert!(!many.events_only(), "too many events are read as changes");
        let enough = ReadAsk::events((1..=ReadAsk::MAX_EVENTS).map(|i| format!("e{i}")));
        assert!(enough.events_only());
    }
}
