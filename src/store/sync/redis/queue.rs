//! The delivery queue in Redis: per sink, two lanes, waiting and running jobs, leases,
//! retries and dead letters (the keys are listed on [`super::COMMON`]). Each step is one
//! script run with the sink's keys ([`RedisSyncStore::on_sink`]).

use ::redis::AsyncCommands;
use futures::future::BoxFuture;
use jiff::Timestamp;

use super::{RedisSyncStore, field, from_ms, json_error, ms};
use crate::store::StoreResult;
use crate::store::redis::unavailable;
use crate::store::sync::queue::MAX_DEAD_PER_SINK;
use crate::store::sync::{DeadLetter, Job, Lane, SinkRecord, SinkStats};

/// ARGV: record field, appointment, job id, job JSON, hash ('' none), not before, created,
/// lane, sink, must send ('1'). 1 when added.
pub(super) const ENQUEUE: &str = include_str!("lua/enqueue.lua");

/// ARGV: now, max, lease until. Lapsed leases are given back first (a bounded number a call).
/// Gives [JSON, lane, must] per job.
pub(super) const LEASE: &str = include_str!("lua/lease.lua");

/// ARGV: job id, until.
pub(super) const RENEW: &str = include_str!("lua/renew.lua");

/// ARGV: job id, appointment, record JSON, now (text), sink.
pub(super) const DELIVERED: &str = include_str!("lua/delivered.lua");

/// ARGV: job id, appointment, job JSON as it failed, retry at ('' to die), now, hash, bound.
pub(super) const FAILED: &str = include_str!("lua/failed.lua");

/// ARGV: job id, at, job JSON revived, created. The appointment, or nil when no such letter.
pub(super) const REVIVE: &str = include_str!("lua/revive.lua");

/// Every running job back to wait, due at once (it was due when it ran).
pub(super) const RECOVER: &str = include_str!("lua/recover.lua");

impl RedisSyncStore {
    pub(super) fn enqueue(&self, job: Job) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            let body = serde_json::to_string(&job).map_err(json_error)?;
            let added: i64 = self
                .on_sink(&self.scripts.enqueue, &job.sink)
                .arg(field(&job.sink, &job.appointment_id))
                .arg(&job.appointment_id)
                .arg(&job.id)
                .arg(body)
                .arg(job.desired_hash.as_deref().unwrap_or(""))
                .arg(ms(job.not_before))
                .arg(ms(job.created_at))
                .arg(job.lane.as_str())
                .arg(&job.sink)
                .arg(if job.must_send { "1" } else { "0" })
                .invoke_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
            Ok(added == 1)
        })
    }

    pub(super) fn lease(
        &self,
        sink: String,
        now: Timestamp,
        max: usize,
        until: Timestamp,
    ) -> BoxFuture<'_, StoreResult<Vec<Job>>> {
        Box::pin(async move {
            let out: Vec<String> = self
                .on_sink(&self.scripts.lease, &sink)
                .arg(ms(now))
                .arg(max)
                .arg(ms(until))
                .invoke_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
            let mut jobs = Vec::new();
            for triple in out.chunks(3) {
                let [body, lane, must] = triple else { continue };
                match serde_json::from_str::<Job>(body) {
                    Ok(mut job) => {
                        job.lane = if lane == "sweep" {
                            Lane::Sweep
                        } else {
                            Lane::Fast
                        };
                        job.must_send |= must == "1";
                        jobs.push(job);
                    }
                    Err(e) => {
                        tracing::warn!(sink = %sink, error = %e, "unreadable sync job skipped")
                    }
                }
            }
            Ok(jobs)
        })
    }

    pub(super) fn renew(&self, job: Job, until: Timestamp) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            let kept: i64 = self
                .on_sink(&self.scripts.renew, &job.sink)
                .arg(&job.id)
                .arg(ms(until))
                .invoke_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
            Ok(kept == 1)
        })
    }

    pub(super) fn delivered(
        &self,
        job: Job,
        record: SinkRecord,
        now: Timestamp,
    ) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let value = serde_json::to_string(&record).map_err(json_error)?;
            let _: i64 = self
                .on_sink(&self.scripts.delivered, &job.sink)
                .arg(&job.id)
                .arg(&job.appointment_id)
                .arg(value)
                .arg(now.to_string())
                .arg(&job.sink)
                .invoke_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }

    pub(super) fn failed(
        &self,
        mut job: Job,
        retry_at: Option<Timestamp>,
        error: String,
        now: Timestamp,
    ) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            job.last_error = Some(error);
            if let Some(at) = retry_at {
                job.not_before = at;
                job.lane = Lane::Fast;
            }
            let body = serde_json::to_string(&job).map_err(json_error)?;
            let outcome: i64 = self
                .on_sink(&self.scripts.failed, &job.sink)
                .arg(&job.id)
                .arg(&job.appointment_id)
                .arg(body)
                .arg(retry_at.map(|t| ms(t).to_string()).unwrap_or_default())
                .arg(ms(now))
                .arg(job.desired_hash.as_deref().unwrap_or(""))
                .arg(MAX_DEAD_PER_SINK)
                .invoke_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
            if outcome == 2 {
                tracing::warn!(sink = %job.sink, "dead letters over their bound; the oldest dropped (the reconciler plans those appointments again)");
            }
            Ok(())
        })
    }

    pub(super) fn dead_letters(&self) -> BoxFuture<'_, StoreResult<Vec<DeadLetter>>> {
        Box::pin(async move {
            let mut letters = Vec::new();
            for sink in self.sinks().await? {
                let died: Vec<(String, f64)> = self
                    .conn()
                    .zrange_withscores(self.key(&format!("dead:{sink}")), 0, -1)
                    .await
                    .map_err(unavailable)?;
                if died.is_empty() {
                    continue;
                }
                let ids: Vec<&String> = died.iter().map(|(id, _)| id).collect();
                let bodies: Vec<Option<String>> = ::redis::cmd("HMGET")
                    .arg(self.key(&format!("body:{sink}")))
                    .arg(&ids)
                    .query_async(&mut self.conn())
                    .await
                    .map_err(unavailable)?;
                for ((_, at), body) in died.iter().zip(bodies) {
                    let job = body.and_then(|b| serde_json::from_str::<Job>(&b).ok());
                    if let (Some(job), Some(died_at)) = (job, from_ms(*at)) {
                        letters.push(DeadLetter { job, died_at });
                    }
                }
            }
            Ok(letters)
        })
    }

    pub(super) fn revive(
        &self,
        job_id: String,
        at: Timestamp,
    ) -> BoxFuture<'_, StoreResult<Option<String>>> {
        Box::pin(async move {
            for sink in self.sinks().await? {
                let body: Option<String> = self
                    .conn()
                    .hget(self.key(&format!("body:{sink}")), &job_id)
                    .await
                    .map_err(unavailable)?;
                let Some(mut job) = body.and_then(|b| serde_json::from_str::<Job>(&b).ok()) else {
                    continue;
                };
                job.attempts = 0;
                job.not_before = at;
                job.lane = Lane::Fast;
                let text = serde_json::to_string(&job).map_err(json_error)?;
                let appointment: Option<String> = self
                    .on_sink(&self.scripts.revive, &sink)
                    .arg(&job_id)
                    .arg(ms(at))
                    .arg(text)
                    .arg(ms(job.created_at))
                    .invoke_async(&mut self.conn())
                    .await
                    .map_err(unavailable)?;
                if appointment.is_some() {
                    return Ok(appointment);
                }
            }
            Ok(None)
        })
    }

    pub(super) fn stats(&self, sink: String) -> BoxFuture<'_, StoreResult<SinkStats>> {
        Box::pin(async move {
            let k = |part: &str| self.key(&format!("{part}:{sink}"));
            #[allow(clippy::type_complexity)]
            let (queued, running, failing, dead, last, fast, sweep): (
                usize,
                usize,
                usize,
                usize,
                Option<String>,
                Vec<(String, f64)>,
                Vec<(String, f64)>,
            ) = ::redis::pipe()
                .hlen(k("queued"))
                .hlen(k("running"))
                .scard(k("failing"))
                .zcard(k("dead"))
                .hget(self.key("last_success"), &sink)
                .zrange_withscores(k("created:fast"), 0, 0)
                .zrange_withscores(k("created:sweep"), 0, 0)
                .query_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
            let oldest = |v: Vec<(String, f64)>| v.first().and_then(|(_, s)| from_ms(*s));
            Ok(SinkStats {
                pending: queued + running,
                failing,
                dead,
                last_success: last.and_then(|t| t.parse().ok()),
                oldest_fast: oldest(fast),
                oldest_sweep: oldest(sweep),
            })
        })
    }

    /// Every sink's running jobs back to wait: the queue's half of a new leader's `recover`.
    pub(super) async fn requeue_running(&self) -> StoreResult<()> {
        for sink in self.sinks().await? {
            let _: i64 = self
                .on_sink(&self.scripts.recover, &sink)
                .invoke_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }
}
