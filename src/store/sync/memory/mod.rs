//! The in-process [`SyncStore`]: one process's state, written to a file (when it has one)
//! after each operation that changed something.
//!
//! This file holds the state, its file and the [`SyncStore`] impl, which hands each operation
//! to the room of its concern: `pending` (appointments waiting to be planned), `records`
//! (what each sink holds), `queue` (delivery jobs, over the rules of [`Queue`]) and
//! `calendars` (inbound calendar state and read requests).

mod calendars;
mod pending;
mod queue;
mod records;

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
        let unavailable = |e: tokio::task::JoinError| StoreError::Unavailable(e.to_string());
        // Asked for from the runtime's own threads: a blocking thread started from the sync
        // sweep's idle-priority thread (`crate::idle`) would keep that priority for later work.
        tokio::spawn(async move {
            tokio::task::spawn_blocking(move || {
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, text)
                    .and_then(|()| std::fs::rename(&tmp, &path))
                    .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))
            })
            .await
        })
        .await
        .map_err(unavailable)?
        .map_err(unavailable)??;
        *written = version;
        Ok(())
    }
}

fn ready<T: Send + 'static>(v: StoreResult<T>) -> BoxFuture<'static, StoreResult<T>> {
    Box::pin(async move { v })
}

// Each method is the inherent one of the same name in its room (inherent methods are found
// before the trait's), so this list reads as the trait, grouped by concern.
impl SyncStore for MemorySyncStore {
    fn mark_pending(&self, ids: Vec<String>) -> BoxFuture<'_, StoreResult<()>> {
        self.mark_pending(ids)
    }

    fn take_pending(&self, max: usize) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        self.take_pending(max)
    }

    fn planned(&self, ids: Vec<String>) -> BoxFuture<'_, StoreResult<()>> {
        self.planned(ids)
    }

    fn oldest_unplanned(&self) -> BoxFuture<'_, StoreResult<Option<Timestamp>>> {
        self.oldest_unplanned()
    }

    fn recover(&self) -> BoxFuture<'_, StoreResult<()>> {
        self.recover()
    }

    fn record(
        &self,
        sink: String,
        appointment: String,
    ) -> BoxFuture<'_, StoreResult<Option<SinkRecord>>> {
        self.record(sink, appointment)
    }

    fn holding(
        &self,
        sink: String,
        appointments: Vec<String>,
    ) -> BoxFuture<'_, StoreResult<Vec<Holding>>> {
        self.holding(sink, appointments)
    }

    fn known_appointments(&self) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        self.known_appointments()
    }

    fn forget(&self, appointments: Vec<String>) -> BoxFuture<'_, StoreResult<()>> {
        self.forget(appointments)
    }

    fn enqueue(&self, job: Job) -> BoxFuture<'_, StoreResult<bool>> {
        self.enqueue(job)
    }

    fn lease(
        &self,
        sink: String,
        now: Timestamp,
        max: usize,
        until: Timestamp,
    ) -> BoxFuture<'_, StoreResult<Vec<Job>>> {
        self.lease(sink, now, max, until)
    }

    fn renew(&self, job: Job, until: Timestamp) -> BoxFuture<'_, StoreResult<bool>> {
        self.renew(job, until)
    }

    fn delivered(
        &self,
        job: Job,
        record: SinkRecord,
        now: Timestamp,
    ) -> BoxFuture<'_, StoreResult<()>> {
        self.delivered(job, record, now)
    }

    fn failed(
        &self,
        job: Job,
        retry_at: Option<Timestamp>,
        error: String,
        now: Timestamp,
    ) -> BoxFuture<'_, StoreResult<()>> {
        self.failed(job, retry_at, error, now)
    }

    fn dead_letters(&self) -> BoxFuture<'_, StoreResult<Vec<DeadLetter>>> {
        self.dead_letters()
    }

    fn revive(&self, job_id: String, at: Timestamp) -> BoxFuture<'_, StoreResult<Option<String>>> {
        self.revive(job_id, at)
    }

    fn stats(&self, sink: String) -> BoxFuture<'_, StoreResult<SinkStats>> {
        self.stats(sink)
    }

    fn calendar(&self, key: String) -> BoxFuture<'_, StoreResult<Option<serde_json::Value>>> {
        self.calendar(key)
    }

    fn put_calendar(
        &self,
        key: String,
        state: serde_json::Value,
    ) -> BoxFuture<'_, StoreResult<()>> {
        self.put_calendar(key, state)
    }

    fn request_read(&self, calendar: String, ask: ReadAsk) -> BoxFuture<'_, StoreResult<()>> {
        self.request_read(calendar, ask)
    }

    fn take_reads(&self) -> BoxFuture<'_, StoreResult<Vec<(String, ReadAsk)>>> {
        self.take_reads()
    }

    fn flush(&self) -> BoxFuture<'_, StoreResult<()>> {
        self.change(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sync::conformance::{job, ts};

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
