//! Read requests: the sync leader's queue of calendars to read (what each is asked for, when
//! it is due, how often it failed), asks from any replica through the store, and the loop that
//! reads what is due a few calendars at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};

use super::{Failure, Inbound};
use crate::store::sync::ReadAsk;

#[derive(Debug, Clone)]
pub(super) struct Queued {
    ask: ReadAsk,
    due: Instant,
    failures: u32,
}

/// Calendars read at once by the sync leader.
const PARALLEL_READS: usize = 4;

impl Inbound {
    fn queue(&self) -> MutexGuard<'_, BTreeMap<usize, Queued>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a read of calendar `index` here (on the sync leader).
    pub(super) fn request(&self, index: usize, ask: ReadAsk) {
        let mut q = self.queue();
        let entry = q.entry(index).or_insert(Queued {
            ask: ReadAsk::default(),
            due: Instant::now(),
            failures: 0,
        });
        entry.ask.merge(ask);
        entry.due = entry.due.min(Instant::now());
        drop(q);
        self.wake.notify_one();
    }

    /// Asks for a read from any replica (a push): the sync leader takes it from the store.
    pub(super) async fn ask(&self, index: usize, ask: ReadAsk) {
        let key = self.calendars[index].key.clone();
        if let Err(e) = self.store.request_read(key, ask).await {
            // The next full read catches up.
            tracing::warn!(error = %e, "calendar read not requested");
        }
        self.wake.notify_one();
    }

    /// Moves reads asked for by any replica into this (the leader's) queue.
    async fn take_asked(&self) {
        match self.store.take_reads().await {
            Ok(asked) => {
                for (key, ask) in asked {
                    if let Some(i) = self.calendars.iter().position(|c| c.key == key) {
                        self.request(i, ask);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "calendar read requests unavailable"),
        }
    }

    /// Reads what is asked, up to [`PARALLEL_READS`] calendars at once and never one calendar
    /// twice at a time (its progress is read, changed and written back by one read): a slow
    /// mailbox holds back its own pushes, not everyone's.
    pub(super) async fn read_forever(self: Arc<Self>) {
        for i in 0..self.calendars.len() {
            self.request(i, ReadAsk::full());
        }
        let mut running = tokio::task::JoinSet::new();
        let mut reading: BTreeMap<tokio::task::Id, usize> = BTreeMap::new();
        loop {
            self.take_asked().await;
            while running.len() < PARALLEL_READS {
                let next = {
                    let mut q = self.queue();
                    let now = Instant::now();
                    let busy: BTreeSet<usize> = reading.values().copied().collect();
                    let due = q
                        .iter()
                        .find(|(i, e)| e.due <= now && !busy.contains(i))
                        .map(|(i, _)| *i);
                    due.and_then(|i| q.remove(&i).map(|job| (i, job)))
                };
                let Some((index, job)) = next else { break };
                let me = self.clone();
                let task = running.spawn(async move {
                    let result = me.read(index, &job.ask).await;
                    (job, result)
                });
                reading.insert(task.id(), index);
            }
            tokio::select! {
                Some(done) = running.join_next_with_id(), if !running.is_empty() => {
                    let (id, outcome) = match done {
                        Ok((id, (job, result))) => (id, Some((job, result))),
                        // A read that panicked: its calendar is asked again by the next resync.
                        Err(e) => (e.id(), None),
                    };
                    let index = reading.remove(&id);
                    if let (Some(index), Some((job, Err(failure)))) = (index, outcome) {
                        self.retry_later(index, job, &failure).await;
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = self.wake.notified() => {}
            }
        }
    }

    /// A read that failed goes back in the queue, with what it was asked, after a backoff.
    async fn retry_later(&self, index: usize, job: Queued, failure: &Failure) {
        let cal = &self.calendars[index];
        tracing::warn!(calendar = %cal.key, error = %failure, "calendar not read; will retry");
        self.note_error(index, failure).await;
        let failures = job.failures + 1;
        let wait = Duration::from_secs(1 << failures.min(6)).min(Duration::from_secs(60));
        let mut q = self.queue();
        let entry = q.entry(index).or_insert(Queued {
            ask: ReadAsk::default(),
            due: Instant::now() + wait,
            failures,
        });
        entry.ask.merge(job.ask);
        entry.failures = entry.failures.max(failures);
        entry.due = entry.due.max(Instant::now() + wait);
    }

    pub(super) async fn resync_if_due(&self, index: usize) {
        let every = self.services.settings.sync.reconcile_interval;
        let Ok(p) = self.progress(index).await else {
            return;
        };
        let due = p.last_full_sync.is_none_or(|t| {
            t.duration_until(Timestamp::now())
                > SignedDuration::try_from(every).unwrap_or(SignedDuration::MAX)
        });
        if due && !self.queue().contains_key(&index) {
            self.request(index, ReadAsk::full());
        }
    }
}
