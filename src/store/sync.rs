//! Calendar-sync state behind one small trait: which appointments wait to be synced, what each
//! sink last received, the delivery queue with its retries, and the dead letters. The
//! in-process implementation can persist to a file, so a restart loses and doubles nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use futures::future::BoxFuture;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{StoreError, StoreResult};

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
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub job: Job,
    pub died_at: Timestamp,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SinkStats {
    pub pending: usize,
    pub failing: usize,
    pub dead: usize,
    pub last_success: Option<Timestamp>,
    pub oldest_pending: Option<Timestamp>,
}

pub trait SyncStore: Send + Sync {
    /// Asks for these appointments to be synced (repeats collapse into one).
    fn mark_pending(&self, ids: Vec<String>) -> BoxFuture<'_, StoreResult<()>>;
    /// Takes up to `max` appointments to sync.
    fn take_pending(&self, max: usize) -> BoxFuture<'_, StoreResult<Vec<String>>>;
    fn record(
        &self,
        sink: String,
        appointment: String,
    ) -> BoxFuture<'_, StoreResult<Option<SinkRecord>>>;
    /// Every appointment some sink holds (the reconciler looks at them too).
    fn known_appointments(&self) -> BoxFuture<'_, StoreResult<Vec<String>>>;
    /// Queues a job, replacing a queued (not running) job for the same sink and appointment:
    /// only the latest state is ever delivered. Against the state the sink holds (its record's
    /// `delivered`, read in the same atomic step): a job for that state only undoes older
    /// ones still on their way. True when a job was added.
    fn enqueue(&self, job: Job) -> BoxFuture<'_, StoreResult<bool>>;
    /// Takes due jobs of one sink, at most one per appointment, marking them running.
    fn lease(
        &self,
        sink: String,
        now: Timestamp,
        max: usize,
    ) -> BoxFuture<'_, StoreResult<Vec<Job>>>;
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
    /// Running jobs of a process that died go back to the queue (start-up).
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

/// Dead letters kept per sink: the newest; the reconciler plans the others' appointments again.
const MAX_DEAD_PER_SINK: usize = 1_000;

/// The delivery queue: jobs waiting, running and dead, and each sink's last success. Plain
/// data with the queue's rules, shared by every backend.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Queue {
    queued: BTreeMap<String, Job>,
    running: BTreeMap<String, Job>,
    dead: BTreeMap<String, DeadLetter>,
    last_success: BTreeMap<String, Timestamp>,
}

impl Queue {
    pub fn enqueue(&mut self, job: Job, held: Option<&str>) -> bool {
        let same = |j: &Job| j.sink == job.sink && j.appointment_id == job.appointment_id;
        if job.desired_hash.as_deref() == held {
            // The sink holds this state: an older state waiting to go would undo it.
            self.queued.retain(|_, j| !same(j));
            // One being sent now lands first; this state must follow it, else nothing to do.
            if !self
                .running
                .values()
                .any(|j| same(j) && j.desired_hash != job.desired_hash)
            {
                return false;
            }
        }
        // The same state already on its way: nothing to add.
        if self
            .queued
            .values()
            .chain(self.running.values())
            .any(|j| same(j) && j.desired_hash == job.desired_hash)
        {
            return false;
        }
        self.queued.retain(|_, j| !same(j));
        self.queued.insert(job.id.clone(), job);
        true
    }

    pub fn lease(&mut self, sink: &str, now: Timestamp, max: usize) -> Vec<Job> {
        let mut busy: BTreeSet<String> = self
            .running
            .values()
            .filter(|j| j.sink == sink)
            .map(|j| j.appointment_id.clone())
            .collect();
        let mut candidates: Vec<&Job> = self
            .queued
            .values()
            .filter(|j| j.sink == sink && j.not_before <= now)
            .collect();
        candidates.sort_by_key(|j| (j.not_before, j.created_at));
        let mut due = Vec::new();
        for j in candidates {
            if due.len() == max {
                break;
            }
            // One per appointment: its jobs run in order, never side by side.
            if busy.insert(j.appointment_id.clone()) {
                due.push(j.clone());
            }
        }
        for j in &due {
            self.queued.remove(&j.id);
            self.running.insert(j.id.clone(), j.clone());
        }
        due
    }

    pub fn delivered(&mut self, job: &Job, now: Timestamp) {
        self.running.remove(&job.id);
        self.last_success.insert(job.sink.clone(), now);
    }

    pub fn failed(
        &mut self,
        mut job: Job,
        retry_at: Option<Timestamp>,
        error: String,
        now: Timestamp,
    ) {
        self.running.remove(&job.id);
        job.last_error = Some(error);
        match retry_at {
            // A newer job for the same appointment, queued meanwhile, supersedes this one.
            Some(at)
                if !self
                    .queued
                    .values()
                    .any(|q| q.sink == job.sink && q.appointment_id == job.appointment_id) =>
            {
                job.not_before = at;
                self.queued.insert(job.id.clone(), job);
            }
            Some(_) => self.follow_unconfirmed(&job),
            None => {
                // The latest state that died is the one worth retrying; older ones of the same
                // appointment are obsolete. And a sink down for long keeps its newest letters.
                let (sink, appointment) = (job.sink.clone(), job.appointment_id.clone());
                self.dead
                    .retain(|_, l| !(l.job.sink == sink && l.job.appointment_id == appointment));
                self.dead
                    .insert(job.id.clone(), DeadLetter { job, died_at: now });
                let mut of_sink: Vec<(Timestamp, String)> = self
                    .dead
                    .iter()
                    .filter(|(_, l)| l.job.sink == sink)
                    .map(|(id, l)| (l.died_at, id.clone()))
                    .collect();
                if of_sink.len() > MAX_DEAD_PER_SINK {
                    of_sink.sort();
                    let excess = of_sink.len() - MAX_DEAD_PER_SINK;
                    for (_, id) in of_sink.into_iter().take(excess) {
                        self.dead.remove(&id);
                    }
                    tracing::warn!(sink = %sink, "dead letters over their bound; the oldest dropped (the reconciler plans those appointments again)");
                }
            }
        }
    }

    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.dead.values().cloned().collect()
    }

    pub fn revive(&mut self, job_id: &str, at: Timestamp) -> Option<String> {
        let mut job = self.dead.remove(job_id)?.job;
        let appointment = job.appointment_id.clone();
        let newer = self
            .queued
            .values()
            .chain(self.running.values())
            .any(|q| q.sink == job.sink && q.appointment_id == job.appointment_id);
        if !newer {
            job.attempts = 0;
            job.not_before = at;
            self.queued.insert(job.id.clone(), job);
        }
        Some(appointment)
    }

    pub fn stats(&self, sink: &str) -> SinkStats {
        let waiting: Vec<&Job> = self
            .queued
            .values()
            .chain(self.running.values())
            .filter(|j| j.sink == sink)
            .collect();
        SinkStats {
            pending: waiting.len(),
            failing: waiting.iter().filter(|j| j.attempts > 0).count(),
            dead: self.dead.values().filter(|l| l.job.sink == sink).count(),
            last_success: self.last_success.get(sink).copied(),
            oldest_pending: waiting.iter().map(|j| j.created_at).min(),
        }
    }

    /// Running jobs of a process that died go back to the queue.
    pub fn recover(&mut self) {
        let running = std::mem::take(&mut self.running);
        for (id, job) in running {
            if self
                .queued
                .values()
                .any(|q| q.sink == job.sink && q.appointment_id == job.appointment_id)
            {
                self.follow_unconfirmed(&job);
            } else {
                self.queued.insert(id, job);
            }
        }
    }

    /// `job` was given up for a newer one of its appointment, but may have landed: the newer
    /// one goes whatever the record says.
    fn follow_unconfirmed(&mut self, job: &Job) {
        for q in self.queued.values_mut() {
            if q.sink == job.sink && q.appointment_id == job.appointment_id {
                q.must_send = true;
            }
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct Data {
    pending: BTreeSet<String>,
    /// (sink, appointment) -> record
    records: BTreeMap<String, BTreeMap<String, SinkRecord>>,
    #[serde(flatten)]
    queue: Queue,
    calendars: BTreeMap<String, serde_json::Value>,
    /// Calendar -> full read wanted (else what changed).
    reads: BTreeMap<String, bool>,
    /// Calendar -> single events to read.
    read_events: BTreeMap<String, BTreeSet<String>>,
}

pub struct MemorySyncStore {
    /// The data and the version of its latest change.
    data: Mutex<(Data, u64)>,
    file: Option<PathBuf>,
    /// The version last written to the file: a write never replaces a newer one.
    written: tokio::sync::Mutex<u64>,
}

impl MemorySyncStore {
    /// With a file, state is loaded from it and written back after every change.
    pub fn new(file: Option<PathBuf>) -> Result<Self, StoreError> {
        let data = match &file {
            Some(path) if path.exists() => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?;
                serde_json::from_str(&text)
                    .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?
            }
            _ => Data::default(),
        };
        Ok(Self {
            data: Mutex::new((data, 0)),
            file,
            written: tokio::sync::Mutex::new(0),
        })
    }

    fn data(&self) -> MutexGuard<'_, (Data, u64)> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies a change at once (so it survives the caller being cancelled), then writes the
    /// new state to the file, if there is one, off the async runtime and in version order.
    fn change<'a, T: Send + 'a>(
        &'a self,
        f: impl FnOnce(&mut Data) -> T + Send + 'a,
    ) -> BoxFuture<'a, StoreResult<T>> {
        let (out, version, text) = {
            let mut guard = self.data();
            let out = f(&mut guard.0);
            guard.1 += 1;
            let text = self.file.as_ref().map(|_| serde_json::to_vec(&guard.0));
            (out, guard.1, text)
        };
        Box::pin(async move {
            if let Some(text) = text {
                self.write(
                    version,
                    text.map_err(|e| StoreError::Unavailable(e.to_string()))?,
                )
                .await?;
            }
            Ok(out)
        })
    }

    async fn write(&self, version: u64, text: Vec<u8>) -> StoreResult<()> {
        let Some(path) = self.file.clone() else {
            return Ok(());
        };
        let mut written = self.written.lock().await;
        if *written >= version {
            return Ok(());
        }
        tokio::task::spawn_blocking(move || {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, text)
                .and_then(|()| std::fs::rename(&tmp, &path))
                .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))??;
        *written = version;
        Ok(())
    }
}

fn ready<T: Send + 'static>(v: StoreResult<T>) -> BoxFuture<'static, StoreResult<T>> {
    Box::pin(async move { v })
}

impl SyncStore for MemorySyncStore {
    fn mark_pending(&self, ids: Vec<String>) -> BoxFuture<'_, StoreResult<()>> {
        self.change(move |d| d.pending.extend(ids))
    }

    fn take_pending(&self, max: usize) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        self.change(move |d| {
            let taken: Vec<String> = d.pending.iter().take(max).cloned().collect();
            for id in &taken {
                d.pending.remove(id);
            }
            taken
        })
    }

    fn record(
        &self,
        sink: String,
        appointment: String,
    ) -> BoxFuture<'_, StoreResult<Option<SinkRecord>>> {
        ready(Ok(self
            .data()
            .0
            .records
            .get(&sink)
            .and_then(|r| r.get(&appointment))
            .cloned()))
    }

    fn known_appointments(&self) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        let data = self.data();
        let ids: BTreeSet<String> = data
            .0
            .records
            .values()
            .flat_map(|r| r.keys().cloned())
            .collect();
        ready(Ok(ids.into_iter().collect()))
    }

    fn enqueue(&self, job: Job) -> BoxFuture<'_, StoreResult<bool>> {
        self.change(move |d| {
            let held = d
                .records
                .get(&job.sink)
                .and_then(|r| r.get(&job.appointment_id))
                .and_then(|r| r.delivered.clone());
            d.queue.enqueue(job, held.as_deref())
        })
    }

    fn lease(
        &self,
        sink: String,
        now: Timestamp,
        max: usize,
    ) -> BoxFuture<'_, StoreResult<Vec<Job>>> {
        self.change(move |d| d.queue.lease(&sink, now, max))
    }

    fn delivered(
        &self,
        job: Job,
        record: SinkRecord,
        now: Timestamp,
    ) -> BoxFuture<'_, StoreResult<()>> {
        self.change(move |d| {
            d.queue.delivered(&job, now);
            d.records
                .entry(job.sink.clone())
                .or_default()
                .insert(job.appointment_id.clone(), record);
        })
    }

    fn failed(
        &self,
        job: Job,
        retry_at: Option<Timestamp>,
        error: String,
        now: Timestamp,
    ) -> BoxFuture<'_, StoreResult<()>> {
        self.change(move |d| d.queue.failed(job, retry_at, error, now))
    }

    fn dead_letters(&self) -> BoxFuture<'_, StoreResult<Vec<DeadLetter>>> {
        ready(Ok(self.data().0.queue.dead_letters()))
    }

    fn revive(&self, job_id: String, at: Timestamp) -> BoxFuture<'_, StoreResult<Option<String>>> {
        self.change(move |d| d.queue.revive(&job_id, at))
    }

    fn stats(&self, sink: String) -> BoxFuture<'_, StoreResult<SinkStats>> {
        ready(Ok(self.data().0.queue.stats(&sink)))
    }

    fn flush(&self) -> BoxFuture<'_, StoreResult<()>> {
        self.change(|_| ())
    }

    fn calendar(&self, key: String) -> BoxFuture<'_, StoreResult<Option<serde_json::Value>>> {
        ready(Ok(self.data().0.calendars.get(&key).cloned()))
    }

    fn put_calendar(
        &self,
        key: String,
        state: serde_json::Value,
    ) -> BoxFuture<'_, StoreResult<()>> {
        self.change(move |d| {
            d.calendars.insert(key, state);
        })
    }

    fn recover(&self) -> BoxFuture<'_, StoreResult<()>> {
        self.change(move |d| d.queue.recover())
    }

    fn request_read(&self, calendar: String, ask: ReadAsk) -> BoxFuture<'_, StoreResult<()>> {
        self.change(move |d| {
            if ask.full || ask.changes {
                *d.reads.entry(calendar.clone()).or_default() |= ask.full;
            }
            if !ask.events.is_empty() {
                d.read_events
                    .entry(calendar)
                    .or_default()
                    .extend(ask.events);
            }
        })
    }

    fn take_reads(&self) -> BoxFuture<'_, StoreResult<Vec<(String, ReadAsk)>>> {
        self.change(|d| {
            let mut asks: BTreeMap<String, ReadAsk> = BTreeMap::new();
            for (calendar, full) in std::mem::take(&mut d.reads) {
                asks.entry(calendar).or_default().merge(ReadAsk {
                    full,
                    changes: !full,
                    events: BTreeSet::new(),
                });
            }
            for (calendar, events) in std::mem::take(&mut d.read_events) {
                asks.entry(calendar)
                    .or_default()
                    .merge(ReadAsk::events(events));
            }
            asks.into_iter().collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sync_conformance::{job, ts};

    #[test]
    fn dead_letters_keep_the_newest_per_sink() {
        let mut q = Queue::default();
        let base = ts("2026-12-01T10:00:00Z");
        for i in 0..MAX_DEAD_PER_SINK + 5 {
            let mut j = job(&format!("j{i}"), &format!("a{i}"), "v1");
            j.sink = "ops".into();
            let died = base + jiff::SignedDuration::from_secs(i as i64);
            q.failed(j, None, "HTTP 500".into(), died);
        }
        let mut other = job("x", "a0", "v1");
        other.sink = "gcal".into();
        q.failed(other, None, "HTTP 500".into(), base);
        let letters = q.dead_letters();
        let ops: Vec<&DeadLetter> = letters.iter().filter(|l| l.job.sink == "ops").collect();
        assert_eq!(ops.len(), MAX_DEAD_PER_SINK);
        assert!(
            ops.iter().all(|l| l.job.id != "j0" && l.job.id != "j4"),
            "the oldest went"
        );
        assert!(
            ops.iter()
                .any(|l| l.job.id == format!("j{}", MAX_DEAD_PER_SINK + 4))
        );
        assert_eq!(letters.iter().filter(|l| l.job.sink == "gcal").count(), 1);
    }

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

    #[tokio::test]
    async fn keeps_every_promise_of_a_sync_store() {
        crate::store::sync_conformance::run(|| async {
            Box::new(MemorySyncStore::new(None).unwrap()) as Box<dyn SyncStore>
        })
        .await;
    }

    #[tokio::test]
    async fn a_file_keeps_everything_across_a_restart() {
        let path =
            std::env::temp_dir().join(format!("slotgate-sync-{}.json", uuid::Uuid::new_v4()));
        let now = ts("2026-12-01T10:00:00Z");
        {
            let s = MemorySyncStore::new(Some(path.clone())).unwrap();
            s.mark_pending(vec!["x".into()]).await.unwrap();
            s.enqueue(job("1", "a", "v1")).await.unwrap();
            // Crash while the job runs.
            s.lease("ops".into(), now, 1).await.unwrap();
        }
        let s = MemorySyncStore::new(Some(path.clone())).unwrap();
        s.recover().await.unwrap();
        assert_eq!(s.take_pending(10).await.unwrap(), ["x"]);
        assert_eq!(
            s.lease("ops".into(), now, 1).await.unwrap()[0].id,
            "1",
            "the running job is queued again"
        );
        let _ = std::fs::remove_file(path);
    }
}
