//! The delivery queue in memory: the rules of [`Queue`](crate::store::sync::queue::Queue),
//! held in the state beside the records it reads (what a sink holds) and writes (when a
//! delivery lands).

use futures::future::BoxFuture;
use jiff::Timestamp;

use super::{MemorySyncStore, ready};
use crate::store::StoreResult;
use crate::store::sync::{DeadLetter, Job, SinkRecord, SinkStats};

impl MemorySyncStore {
    pub(super) fn enqueue(&self, job: Job) -> BoxFuture<'_, StoreResult<bool>> {
        self.change_if(move |d| {
            let held = d
                .records
                .get(&job.sink)
                .and_then(|r| r.get(&job.appointment_id))
                .and_then(|r| r.delivered.clone());
            d.queue.enqueue(job, held.as_deref())
        })
    }

    pub(super) fn lease(
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

    pub(super) fn renew(&self, job: Job, until: Timestamp) -> BoxFuture<'_, StoreResult<bool>> {
        // A lease lives as long as the process: nothing to write for it.
        self.change_if(move |d| (d.queue.renew(&job.id, until), false))
    }

    pub(super) fn delivered(
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

    pub(super) fn failed(
        &self,
        job: Job,
        retry_at: Option<Timestamp>,
        error: String,
        now: Timestamp,
    ) -> BoxFuture<'_, StoreResult<()>> {
        self.change(move |d| d.queue.failed(job, retry_at, error, now))
    }

    pub(super) fn dead_letters(&self) -> BoxFuture<'_, StoreResult<Vec<DeadLetter>>> {
        ready(Ok(self.data().0.queue.dead_letters()))
    }

    pub(super) fn revive(
        &self,
        job_id: String,
        at: Timestamp,
    ) -> BoxFuture<'_, StoreResult<Option<String>>> {
        self.change(move |d| d.queue.revive(&job_id, at))
    }

    pub(super) fn stats(&self, sink: String) -> BoxFuture<'_, StoreResult<SinkStats>> {
        ready(Ok(self.data().0.queue.stats(&sink)))
    }
}
