//! Calendar-sync state in Redis, shared by every replica. Nothing is one document: each sink's
//! queue is a sorted set per lane (by due time), a hash of waiting and of running jobs by
//! appointment, a sorted set of leases (by expiry), and dead letters in a sorted set of their
//! own; every step is one script, so its cost does not grow with the backlog and no replica
//! sees half of it. The rules are [`super::queue::Queue`]'s, checked by the conformance suite.

use std::collections::BTreeMap;

use ::redis::aio::ConnectionManager;
use ::redis::{AsyncCommands, Script};
use futures::future::BoxFuture;
use jiff::Timestamp;

use super::{DeadLetter, Holding, Job, Lane, ReadAsk, SinkRecord, SinkStats, SyncStore};
use crate::store::StoreResult;
use crate::store::redis::unavailable;

/// Shared by every queue script. KEYS, for one sink: 1 records, 2 sinks, 3 last_success,
/// 4 queued (appointment -> job), 5 running (appointment -> job), 6 fast lane, 7 sweep lane,
/// 8 meta (job -> appointment SEP hash), 9 body (job -> JSON), 10 created fast, 11 created
/// sweep, 12 failing (jobs retried), 13 must (jobs sent whatever the record says), 14 leases,
/// 15 dead, 16 deadidx (appointment -> its dead letter).
const COMMON: &str = include_str!("lua/common.lua");

/// ARGV: record field, appointment, job id, job JSON, hash ('' none), not before, created,
/// lane, sink, must send ('1'). 1 when added.
const ENQUEUE: &str = include_str!("lua/enqueue.lua");

/// ARGV: now, max, lease until. Lapsed leases are given back first (a bounded number a call).
/// Gives [JSON, lane, must] per job.
const LEASE: &str = include_str!("lua/lease.lua");

/// ARGV: job id, until.
const RENEW: &str = include_str!("lua/renew.lua");

/// ARGV: job id, appointment, record JSON, now (text), sink.
const DELIVERED: &str = include_str!("lua/delivered.lua");

/// ARGV: job id, appointment, job JSON as it failed, retry at ('' to die), now, hash, bound.
const FAILED: &str = include_str!("lua/failed.lua");

/// ARGV: job id, at, job JSON revived, created. The appointment, or nil when no such letter.
const REVIVE: &str = include_str!("lua/revive.lua");

/// Every running job back to wait, due at once (it was due when it ran).
const RECOVER: &str = include_str!("lua/recover.lua");

/// KEYS: unplanned, planning. ARGV: max. Moves the oldest to planning; gives them.
const TAKE_PENDING: &str = include_str!("lua/take_pending.lua");

/// KEYS: unplanned, planning. Whatever was taken for planning waits again, at its first time.
const UNTAKE: &str = include_str!("lua/untake.lua");

/// Field `<calendar>`: "1" a full read, "0" what changed; field `<calendar>SEP<event>`: one
/// event. ARGV: calendar, "1" | "0" | "" (events only), then the events.
const REQUEST_READ: &str = include_str!("lua/request_read.lua");

const TAKE_ALL: &str = include_str!("lua/take_all.lua");

/// Separates sink and appointment in record fields (neither contains it).
const SEP: char = '\u{1f}';

struct Scripts {
    enqueue: Script,
    lease: Script,
    renew: Script,
    delivered: Script,
    failed: Script,
    revive: Script,
    recover: Script,
    take_pending: Script,
    untake: Script,
    request_read: Script,
    take_all: Script,
}

pub struct RedisSyncStore {
    conn: ConnectionManager,
    prefix: String,
    scripts: Scripts,
}

fn with_common(body: &str) -> Script {
    Script::new(&format!("{COMMON}\n{body}"))
}

fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

fn from_ms(v: f64) -> Option<Timestamp> {
    Timestamp::from_millisecond(v as i64).ok()
}

fn json_error(e: serde_json::Error) -> crate::store::StoreError {
    crate::store::StoreError::Unavailable(format!("sync state: {e}"))
}

impl RedisSyncStore {
    pub fn new(conn: ConnectionManager, prefix: &str) -> Self {
        Self {
            conn,
            prefix: format!("{prefix}sync:"),
            scripts: Scripts {
                enqueue: with_common(ENQUEUE),
                lease: with_common(LEASE),
                renew: with_common(RENEW),
                delivered: with_common(DELIVERED),
                failed: with_common(FAILED),
                revive: with_common(REVIVE),
                recover: with_common(RECOVER),
                take_pending: Script::new(TAKE_PENDING),
                untake: Script::new(UNTAKE),
                request_read: Script::new(REQUEST_READ),
                take_all: Script::new(TAKE_ALL),
            },
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// A queue script's invocation with the sink's sixteen keys.
    fn on_sink<'a>(&self, script: &'a Script, sink: &str) -> ::redis::ScriptInvocation<'a> {
        let mut call = script.prepare_invoke();
        call.key(self.key("records"))
            .key(self.key("sinks"))
            .key(self.key("last_success"));
        for part in [
            "queued",
            "running",
            "lane:fast",
            "lane:sweep",
            "meta",
            "body",
            "created:fast",
            "created:sweep",
            "failing",
            "must",
            "leases",
            "dead",
            "deadidx",
        ] {
            call.key(self.key(&format!("{part}:{sink}")));
        }
        call
    }

    async fn sinks(&self) -> StoreResult<Vec<String>> {
        self.conn()
            .smembers(self.key("sinks"))
            .await
            .map_err(unavailable)
    }
}

fn field(sink: &str, appointment: &str) -> String {
    format!("{sink}{SEP}{appointment}")
}

impl SyncStore for RedisSyncStore {
    fn mark_pending(&self, ids: Vec<String>) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            if ids.is_empty() {
                return Ok(());
            }
            let now = ms(Timestamp::now());
            let mut cmd = ::redis::cmd("ZADD");
            cmd.arg(self.key("unplanned")).arg("NX");
            for id in ids {
                cmd.arg(now).arg(id);
            }
            let _: i64 = cmd
                .query_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }

    fn take_pending(&self, max: usize) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        Box::pin(async move {
            self.scripts
                .take_pending
                .key(self.key("unplanned"))
                .key(self.key("planning"))
                .arg(max.max(1))
                .invoke_async(&mut self.conn())
                .await
                .map_err(unavailable)
        })
    }

    fn planned(&self, ids: Vec<String>) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            if ids.is_empty() {
                return Ok(());
            }
            let _: i64 = self
                .conn()
                .zrem(self.key("planning"), ids)
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }

    fn oldest_unplanned(&self) -> BoxFuture<'_, StoreResult<Option<Timestamp>>> {
        Box::pin(async move {
            type Oldest = Vec<(String, f64)>;
            let (a, b): (Oldest, Oldest) = ::redis::pipe()
                .zrange_withscores(self.key("unplanned"), 0, 0)
                .zrange_withscores(self.key("planning"), 0, 0)
                .query_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
            Ok(a.into_iter().chain(b).filter_map(|(_, s)| from_ms(s)).min())
        })
    }

    fn record(
        &self,
        sink: String,
        appointment: String,
    ) -> BoxFuture<'_, StoreResult<Option<SinkRecord>>> {
        Box::pin(async move {
            let text: Option<String> = self
                .conn()
                .hget(self.key("records"), field(&sink, &appointment))
                .await
                .map_err(unavailable)?;
            Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
        })
    }

    fn holding(
        &self,
        sink: String,
        appointments: Vec<String>,
    ) -> BoxFuture<'_, StoreResult<Vec<Holding>>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(appointments.len());
            for chunk in appointments.chunks(500) {
                let fields: Vec<String> = chunk.iter().map(|a| field(&sink, a)).collect();
                type Values = Vec<Option<String>>;
                let (records, queued, running): (Values, Values, Values) = ::redis::pipe()
                    .cmd("HMGET")
                    .arg(self.key("records"))
                    .arg(&fields)
                    .cmd("HMGET")
                    .arg(self.key(&format!("queued:{sink}")))
                    .arg(chunk)
                    .cmd("HMGET")
                    .arg(self.key(&format!("running:{sink}")))
                    .arg(chunk)
                    .query_async(&mut self.conn())
                    .await
                    .map_err(unavailable)?;
                for ((record, queued), running) in records.into_iter().zip(queued).zip(running) {
                    out.push(if queued.is_some() || running.is_some() {
                        Holding::Moving
                    } else {
                        match record.and_then(|r| serde_json::from_str::<SinkRecord>(&r).ok()) {
                            Some(r) => Holding::Settled(r.delivered),
                            None => Holding::Unknown,
                        }
                    });
                }
            }
            Ok(out)
        })
    }

    fn known_appointments(&self) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        Box::pin(async move {
            let fields: Vec<String> = self
                .conn()
                .hkeys(self.key("records"))
                .await
                .map_err(unavailable)?;
            let ids: std::collections::BTreeSet<String> = fields
                .iter()
                .filter_map(|f| f.split_once(SEP).map(|(_, a)| a.to_owned()))
                .collect();
            Ok(ids.into_iter().collect())
        })
    }

    fn forget(&self, appointments: Vec<String>) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let sinks = self.sinks().await?;
            let fields: Vec<String> = sinks
                .iter()
                .flat_map(|s| appointments.iter().map(move |a| field(s, a)))
                .collect();
            for chunk in fields.chunks(500) {
                let _: i64 = self
                    .conn()
                    .hdel(self.key("records"), chunk)
                    .await
                    .map_err(unavailable)?;
            }
            Ok(())
        })
    }

    fn enqueue(&self, job: Job) -> BoxFuture<'_, StoreResult<bool>> {
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

    fn lease(
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

    fn renew(&self, job: Job, until: Timestamp) -> BoxFuture<'_, StoreResult<bool>> {
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

    fn delivered(
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

    fn failed(
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
                .arg(super::queue::MAX_DEAD_PER_SINK)
                .invoke_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
            if outcome == 2 {
                tracing::warn!(sink = %job.sink, "dead letters over their bound; the oldest dropped (the reconciler plans those appointments again)");
            }
            Ok(())
        })
    }

    fn dead_letters(&self) -> BoxFuture<'_, StoreResult<Vec<DeadLetter>>> {
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

    fn revive(&self, job_id: String, at: Timestamp) -> BoxFuture<'_, StoreResult<Option<String>>> {
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

    fn stats(&self, sink: String) -> BoxFuture<'_, StoreResult<SinkStats>> {
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

    fn recover(&self) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            for sink in self.sinks().await? {
                let _: i64 = self
                    .on_sink(&self.scripts.recover, &sink)
                    .invoke_async(&mut self.conn())
                    .await
                    .map_err(unavailable)?;
            }
            let _: i64 = self
                .scripts
                .untake
                .key(self.key("unplanned"))
                .key(self.key("planning"))
                .invoke_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }

    fn flush(&self) -> BoxFuture<'_, StoreResult<()>> {
        // Every change is in Redis when it returns.
        Box::pin(async { Ok(()) })
    }

    fn calendar(&self, key: String) -> BoxFuture<'_, StoreResult<Option<serde_json::Value>>> {
        Box::pin(async move {
            let text: Option<String> = self
                .conn()
                .hget(self.key("calendars"), key)
                .await
                .map_err(unavailable)?;
            Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
        })
    }

    fn put_calendar(
        &self,
        key: String,
        state: serde_json::Value,
    ) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let _: i64 = self
                .conn()
                .hset(self.key("calendars"), key, state.to_string())
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }

    fn request_read(&self, calendar: String, ask: ReadAsk) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let flag = match (ask.full, ask.changes) {
                (true, _) => "1",
                (false, true) => "0",
                (false, false) => "",
            };
            let _: i64 = self
                .scripts
                .request_read
                .key(self.key("reads"))
                .arg(calendar)
                .arg(flag)
                .arg(ask.events.into_iter().collect::<Vec<_>>())
                .invoke_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }

    fn take_reads(&self) -> BoxFuture<'_, StoreResult<Vec<(String, ReadAsk)>>> {
        Box::pin(async move {
            let all: Vec<String> = self
                .scripts
                .take_all
                .key(self.key("reads"))
                .invoke_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
            let mut asks: BTreeMap<String, ReadAsk> = BTreeMap::new();
            for pair in all.chunks(2) {
                let [field, value] = pair else { continue };
                let (calendar, ask) = match field.split_once(SEP) {
                    Some((calendar, event)) => (calendar, ReadAsk::events([event.to_owned()])),
                    None if value == "1" => (field.as_str(), ReadAsk::full()),
                    None => (field.as_str(), ReadAsk::changes()),
                };
                asks.entry(calendar.to_owned()).or_default().merge(ask);
            }
            Ok(asks.into_iter().collect())
        })
    }
}
