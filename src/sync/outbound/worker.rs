//! Delivery: one loop per sink, fast lane first, each job under a lease its delivery keeps
//! renewing. Every write of the outcome is retried; one that never lands lets the lease run
//! out, and the job is delivered again (with its same message id), never stranded.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tracing::Instrument;

use super::SyncEngine;
use crate::store::StoreResult;
use crate::store::sync::{Job, SinkRecord};
use crate::sync::mapping::CalendarEvent;
use crate::sync::sinks::{Outcome, Sink};

/// Deliveries in flight at once for one sink.
const PARALLEL_PER_SINK: usize = 8;
/// A running job's lease, renewed every third of it while its delivery lasts: a replica that
/// dies hands its jobs back within one lease.
const LEASE: Duration = Duration::from_secs(30);
/// Tries of one queue write before the lease is left to hand the job back.
const WRITE_TRIES: u32 = 6;

fn later(t: Timestamp, d: Duration) -> Timestamp {
    t.saturating_add(SignedDuration::try_from(d).unwrap_or(SignedDuration::ZERO))
        .unwrap_or(t)
}

impl SyncEngine {
    /// Delivers one sink's jobs, up to [`PARALLEL_PER_SINK`] at once: a receiver that hangs on
    /// one appointment holds one of them, not the others. The deliveries belong to this loop, so
    /// stopping it stops them (an interrupted one is re-sent later, with its same id).
    pub(super) async fn deliver_forever(self: Arc<Self>, index: usize) {
        let sink = self.sinks[index].clone();
        let mut running = tokio::task::JoinSet::new();
        loop {
            while running.try_join_next().is_some() {}
            let free = PARALLEL_PER_SINK.saturating_sub(running.len());
            let jobs = if free == 0 {
                Vec::new()
            } else {
                let now = Timestamp::now();
                self.store
                    .lease(sink.name().to_owned(), now, free, later(now, LEASE))
                    .await
                    .unwrap_or_default()
            };
            // The sink's gauges at every turn (a handful of O(1) reads).
            self.report(sink.name()).await;
            if jobs.is_empty() {
                tokio::select! {
                    () = self.queued.notified() => {}
                    Some(_) = running.join_next(), if !running.is_empty() => {}
                    () = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
                continue;
            }
            for job in jobs {
                let (engine, sink) = (self.clone(), sink.clone());
                running.spawn(async move { engine.deliver(&sink, job).await });
            }
        }
    }

    async fn deliver(&self, sink: &Arc<dyn Sink>, job: Job) {
        let span = tracing::info_span!(
            "sync.delivery",
            sink = sink.name(),
            kind = sink.kind(),
            lane = job.lane.as_str(),
            attempt = job.attempts + 1,
            outcome = tracing::field::Empty
        );
        let outcome = {
            let delivery = self.attempt(sink, &job).instrument(span.clone());
            tokio::pin!(delivery);
            let mut renew = tokio::time::interval(LEASE / 3);
            renew.tick().await;
            loop {
                tokio::select! {
                    outcome = &mut delivery => break outcome,
                    _ = renew.tick() => {
                        let until = later(Timestamp::now(), LEASE);
                        if let Err(e) = self.store.renew(job.clone(), until).await {
                            tracing::warn!(error = %e, "could not renew a delivery's lease");
                        }
                    }
                }
            }
        };
        let now = Timestamp::now();
        let max = self.services.settings.sync.max_attempts;
        let label = match outcome {
            (Outcome::Delivered { external_id }, record) => {
                let kept = if job.desired.is_some() {
                    external_id.or(record.and_then(|r| r.external_id))
                } else {
                    None
                };
                let record = SinkRecord {
                    delivered: job.desired_hash.clone(),
                    external_id: kept,
                };
                self.persist("record a delivery", || {
                    self.store.delivered(job.clone(), record.clone(), now)
                })
                .await;
                "delivered"
            }
            (Outcome::Retry { reason, after }, _) if job.attempts + 1 < max => {
                let attempts = job.attempts + 1;
                let wait = after.unwrap_or_else(|| backoff(self.retry_base, attempts));
                let retried = Job {
                    attempts,
                    ..job.clone()
                };
                self.persist("queue a retry", || {
                    self.store
                        .failed(retried.clone(), Some(later(now, wait)), reason.clone(), now)
                })
                .await;
                "retried"
            }
            (Outcome::Retry { reason, .. } | Outcome::Failed(reason), _) => {
                let attempts = job.attempts + 1;
                tracing::warn!(sink = sink.name(), attempts, error = %reason, "delivery dead-lettered");
                let dead = Job {
                    attempts,
                    ..job.clone()
                };
                self.persist("dead-letter a delivery", || {
                    self.store.failed(dead.clone(), None, reason.clone(), now)
                })
                .await;
                "dead"
            }
        };
        span.record("outcome", label);
        if let Some(m) = &self.metrics {
            m.sync_deliveries
                .with_label_values(&[sink.name(), label])
                .inc();
        }
    }

    /// Sends the job unless the sink holds its state already; the outcome and the record read.
    async fn attempt(&self, sink: &Arc<dyn Sink>, job: &Job) -> (Outcome, Option<SinkRecord>) {
        let record = self
            .store
            .record(job.sink.clone(), job.appointment_id.clone())
            .await
            .ok()
            .flatten();
        let event: Option<CalendarEvent> = job
            .desired
            .clone()
            .and_then(|v| serde_json::from_value(v).ok());
        // The sink already holds exactly this: nothing to send (unless an older write of this
        // appointment may have landed unconfirmed).
        let outcome = if !job.must_send
            && record
                .as_ref()
                .is_some_and(|r| r.delivered == job.desired_hash)
        {
            Outcome::Delivered { external_id: None }
        } else {
            sink.deliver(job, record.as_ref(), event.as_ref()).await
        };
        (outcome, record)
    }

    /// A queue write, tried again with backoff when the store is briefly unreachable. One that
    /// never lands leaves the job running under a lease nobody renews: it goes back to the
    /// queue when the lease ends, and is delivered again.
    async fn persist<'a, F, Fut>(&'a self, what: &str, write: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = StoreResult<()>> + 'a,
    {
        for tries in 1..=WRITE_TRIES {
            match write().await {
                Ok(()) => return,
                Err(e) if tries == WRITE_TRIES => {
                    tracing::warn!(error = %e, "could not {what}; the job goes back to the queue when its lease ends");
                }
                Err(_) => {
                    let wait = Duration::from_millis(100 << tries.min(6));
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

/// 1 s, doubling, capped at 5 minutes, with jitter (contract "Outbound").
pub(super) fn backoff(base: Duration, attempts: u32) -> Duration {
    let ceiling = base
        .saturating_mul(1 << attempts.saturating_sub(1).min(16))
        .min(Duration::from_secs(300));
    ceiling.mul_f64(0.8 + 0.4 * fastrand::f64())
}
