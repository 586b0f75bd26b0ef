//! The in-process [`SyncStore`]: one process's state, written to a file (when it has one)
//! after each operation that changed something.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use futures::future::BoxFuture;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::queue::Queue;
use super::{DeadLetter, Holding, Job, ReadAsk, SinkRecord, SinkStats, SyncStore};
use crate::store::{StoreError, StoreResult};

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct Data {
    /// Files of earlier versions: appointments to plan, without times.
    #[serde(skip_serializing)]
    pending: BTreeSet<String>,
    /// Appointment -> when it was first asked to be planned.
    unplanned: BTreeMap<String, Timestamp>,
    /// Taken for planning and not yet planned.
    planning: BTreeMap<String, Timestamp>,
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
                let mut data: Data = serde_json::from_str(&text)
                    .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?;
                let now = Timestamp::now();
                for id in std::mem::take(&mut data.pending) {
                    data.unplanned.entry(id).or_insert(now);
                }
                data
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
        self.change_if(move |d| (f(d), true))
    }

    /// `change` for an operation that may change nothing (an idle poll): `f` says whether it
    /// did, and the file is written only then.
    fn change_if<'a, T: Send + 'a>(
        &'a self,
        f: impl FnOnce(&mut Data) -> (T, bool) + Send + 'a,
    ) -> BoxFuture<'a, StoreResult<T>> {
        let (out, version, text) = {
            let mut guard = self.data();
            let (out, changed) = f(&mut guard.0);
            if changed {
                guard.1 += 1;
            }
            let text = self
                .file
                .as_ref()
                .filter(|_| changed)
                .map(|_| serde_json::to_vec(&guard.0));
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
        let now = Timestamp::now();
        self.change_if(move |d| {
            let before = d.unplanned.len();
            for id in ids {
                d.unplanned.entry(id).or_insert(now);
            }
            ((), d.unplanned.len() != before)
        })
    }

    fn take_pending(&self, max: usize) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        self.change_if(move |d| {
            let mut oldest: Vec<(Timestamp, String)> = d
                .unplanned
                .iter()
                .map(|(id, at)| (*at, id.clone()))
                .collect();
            oldest.sort();
            oldest.truncate(max);
            for (at, id) in &oldest {
                d.unplanned.remove(id);
                d.planning.insert(id.clone(), *at);
            }
            let changed = !oldest.is_empty();
            (oldest.into_iter().map(|(_, id)| id).collect(), changed)
        })
    }

    fn planned(&self, ids: Vec<String>) -> BoxFuture<'_, StoreResult<()>> {
        self.change_if(move |d| {
            let before = d.planning.len();
            for id in &ids {
                d.planning.remove(id);
            }
            ((), d.planning.len() != before)
        })
    }

    fn oldest_unplanned(&self) -> BoxFuture<'_, StoreResult<Option<Timestamp>>> {
        let data = self.data();
        ready(Ok(data
            .0
            .unplanned
            .values()
            .chain(data.0.planning.values())
            .min()
            .copied()))
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

    fn holding(
        &self,
        sink: String,
        appointments: Vec<String>,
    ) -> BoxFuture<'_, StoreResult<Vec<Holding>>> {
        let data = self.data();
        let records = data.0.records.get(&sink);
        let out = appointments
            .iter()
            .map(|a| {
                if data.0.queue.moving(&sink, a) {
                    return Holding::Moving;
                }
                match records.and_then(|r| r.get(a)) {
                    Some(r) => Holding::Settled(r.delivered.clone()),
                    None => Holding::Unknown,
                }
            })
            .collect();
        ready(Ok(out))
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

    fn forget(&self, appointments: Vec<String>) -> BoxFuture<'_, StoreResult<()>> {
        self.change_if(move |d| {
            let mut changed = false;
            for records in d.records.values_mut() {
                for a in &appointments {
                    changed |= records.remove(a).is_some();
                }
            }
            ((), changed)
        })
    }

    fn enqueue(&self, job: Job) -> BoxFuture<'_, StoreResult<bool>> {
        self.change_if(move |d| {
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
        until: Timestamp,
    ) -> BoxFuture<'_, StoreResult<Vec<Job>>> {
        self.change_if(move |d| {
            let before = d.queue.stats(&sink);
            let leased = d.queue.lease(&sink, now, max, until);
            // Lapsed leases given back change the queue even when nothing is leased.
            let changed = !leased.is_empty() || d.queue.stats(&sink) != before;
            (leased, changed)
        })
    }

    fn renew(&self, job: Job, until: Timestamp) -> BoxFuture<'_, StoreResult<bool>> {
        // A lease lives as long as the process: nothing to write for it.
        self.change_if(move |d| (d.queue.renew(&job.id, until), false))
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
        self.change(move |d| {
            d.queue.recover();
            let planning = std::mem::take(&mut d.planning);
            for (id, at) in planning {
                let first = d.unplanned.entry(id).or_insert(at);
                *first = (*first).min(at);
            }
        })
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
        self.change_if(|d| {
            let changed = !d.reads.is_empty() || !d.read_events.is_empty();
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
            (asks.into_iter().collect(), changed)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::queue::MAX_DEAD_PER_SINK;
    use super::*;
    use crate::store::sync::conformance::{job, ts};

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
        crate::store::sync::conformance::run(|| async {
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
            s.lease("ops".into(), now, 1, now).await.unwrap();
        }
        let s = MemorySyncStore::new(Some(path.clone())).unwrap();
        s.recover().await.unwrap();
        assert_eq!(s.take_pending(10).await.unwrap(), ["x"]);
        assert_eq!(
            s.lease("ops".into(), now, 1, now).await.unwrap()[0].id,
            "1",
            "the running job is queued again"
        );
        let _ = std::fs::remove_file(path);
    }

    #[tokio::test]
    async fn idle_polls_do_not_write_the_file() {
        let path =
            std::env::temp_dir().join(format!("slotgate-sync-{}.json", uuid::Uuid::new_v4()));
        let s = MemorySyncStore::new(Some(path.clone())).unwrap();
        let now = ts("2026-12-01T10:00:00Z");
        s.enqueue(job("1", "a", "v1")).await.unwrap();
        let written = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::fs::remove_file(&path).unwrap();
        // Nothing due, nothing pending, nothing to read: nothing changes, nothing is written.
        let later = ts("2026-12-01T09:00:00Z");
        assert!(
            s.lease("gcal".into(), later, 8, now)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(s.take_pending(32).await.unwrap().is_empty());
        assert!(s.take_reads().await.unwrap().is_empty());
        s.mark_pending(Vec::new()).await.unwrap();
        assert!(!path.exists(), "written at {written:?} and not since");
        // A change is.
        s.mark_pending(vec!["b".into()]).await.unwrap();
        assert!(path.exists());
        let _ = std::fs::remove_file(path);
    }
}
