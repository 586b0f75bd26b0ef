//! Calendar-sync state in Redis, shared by every replica. Nothing is one document: each sink's
//! queue is a sorted set per lane (by due time), a hash of waiting and of running jobs by
//! appointment, a sorted set of leases (by expiry), and dead letters in a sorted set of their
//! own; every step is one script, so its cost does not grow with the backlog and no replica
//! sees half of it. The rules are [`super::queue::Queue`]'s, checked by the conformance suite.
//!
//! This file holds the store itself: its connection, key names, scripts and the
//! [`SyncStore`] impl, which hands each operation to the room of its concern:
//! `pending` (appointments waiting to be planned), `records` (what each sink holds),
//! `queue` (delivery jobs, leases, retries, dead letters) and `calendars` (inbound
//! calendar state and read requests). The scripts are in `lua/`.

mod calendars;
mod pending;
mod queue;
mod records;

use ::redis::aio::ConnectionManager;
use ::redis::{AsyncCommands, Script};
use futures::future::BoxFuture;
use jiff::Timestamp;

use super::{DeadLetter, Holding, Job, ReadAsk, SinkRecord, SinkStats, SyncStore};
use crate::store::StoreResult;
use crate::store::redis::unavailable;
use calendars::{REQUEST_READ, TAKE_ALL};
use pending::{TAKE_PENDING, UNTAKE};
use queue::{DELIVERED, ENQUEUE, FAILED, LEASE, RECOVER, RENEW, REVIVE};

/// Shared by every queue script. KEYS, for one sink: 1 records, 2 sinks, 3 last_success,
/// 4 queued (appointment -> job), 5 running (appointment -> job), 6 fast lane, 7 sweep lane,
/// 8 meta (job -> appointment SEP hash), 9 body (job -> JSON), 10 created fast, 11 created
/// sweep, 12 failing (jobs retried), 13 must (jobs sent whatever the record says), 14 leases,
/// 15 dead, 16 deadidx (appointment -> its dead letter).
const COMMON: &str = include_str!("lua/common.lua");

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

// Each method is the inherent one of the same name in its room (inherent methods are found
// before the trait's), so this list reads as the trait, grouped by concern.
impl SyncStore for RedisSyncStore {
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
        // Every change is in Redis when it returns.
        Box::pin(async { Ok(()) })
    }
}
