//! Calendar-sync state in Redis, shared by every replica: the pending set, each sink's
//! records, inbound calendars and read requests as plain Redis sets and hashes; the delivery
//! queue (small: what waits, runs and died) as one document changed by compare-and-set, so
//! the queue's rules stay the ones [`Queue`] states for every backend.

use std::collections::BTreeMap;

use ::redis::aio::ConnectionManager;
use ::redis::{AsyncCommands, Script};
use futures::future::BoxFuture;
use jiff::Timestamp;

use super::StoreResult;
use super::redis::unavailable;
use super::sync::{DeadLetter, Job, Queue, ReadAsk, SinkRecord, SinkStats, SyncStore};

/// ARGV: expected version ('' when none), the new document, then optionally a record field
/// and value to set with it.
const SWAP: &str = r"
local v = redis.call('GET', KEYS[2]) or ''
if v ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('INCR', KEYS[2])
if ARGV[3] then redis.call('HSET', KEYS[3], ARGV[3], ARGV[4]) end
return 1
";

/// Field `<calendar>`: "1" a full read, "0" what changed; field `<calendar>SEP<event>`: one
/// event. ARGV: calendar, "1" | "0" | "" (events only), then the events.
const REQUEST_READ: &str = r"
if ARGV[2] ~= '' and redis.call('HGET', KEYS[1], ARGV[1]) ~= '1' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
for i = 3, #ARGV do redis.call('HSET', KEYS[1], ARGV[1] .. '\31' .. ARGV[i], '') end
return 1
";

const TAKE_ALL: &str = r"
local all = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return all
";

/// Separates sink and appointment in record fields (neither contains it).
const SEP: char = '\u{1f}';

pub struct RedisSyncStore {
    conn: ConnectionManager,
    prefix: String,
    swap: Script,
    request_read: Script,
    take_all: Script,
}

impl RedisSyncStore {
    pub fn new(conn: ConnectionManager, prefix: &str) -> Self {
        Self {
            conn,
            prefix: format!("{prefix}sync:"),
            swap: Script::new(SWAP),
            request_read: Script::new(REQUEST_READ),
            take_all: Script::new(TAKE_ALL),
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// The queue, its version, and the document as stored (to tell whether a change changed it).
    async fn queue(&self) -> StoreResult<(Queue, String, Option<String>)> {
        let (doc, version): (Option<String>, Option<String>) = ::redis::cmd("MGET")
            .arg(self.key("queue"))
            .arg(self.key("queue:version"))
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        let queue = doc
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or_default();
        Ok((queue, version.unwrap_or_default(), doc))
    }

    /// Applies `f` to the queue as it is now; retried when another replica changed it meanwhile.
    async fn change<T>(
        &self,
        f: impl Fn(&mut Queue) -> T,
        record: Option<(String, String)>,
    ) -> StoreResult<T> {
        self.change_seeing(None, |q, _| f(q), record).await
    }

    /// `change`, with `f` also given what one record says the sink holds. The record is read
    /// after the document: a delivery that writes it bumps the version too, so the swap fails
    /// and `f` runs again on both as they are.
    async fn change_seeing<T>(
        &self,
        seeing: Option<&str>,
        f: impl Fn(&mut Queue, Option<&str>) -> T,
        record: Option<(String, String)>,
    ) -> StoreResult<T> {
        for _ in 0..50 {
            let (mut queue, version, stored) = self.queue().await?;
            let held = match seeing {
                Some(field) => {
                    let text: Option<String> = self
                        .conn()
                        .hget(self.key("records"), field)
                        .await
                        .map_err(unavailable)?;
                    text.and_then(|t| serde_json::from_str::<SinkRecord>(&t).ok())
                        .and_then(|r| r.delivered)
                }
                None => None,
            };
            let out = f(&mut queue, held.as_deref());
            let doc = serde_json::to_string(&queue)
                .map_err(|e| super::StoreError::Unavailable(e.to_string()))?;
            // Nothing changed (an idle poll, a state already on its way): nothing to write.
            if stored.as_deref() == Some(doc.as_str()) && record.is_none() {
                return Ok(out);
            }
            let mut call = self.swap.key(self.key("queue"));
            call.key(self.key("queue:version"))
                .key(self.key("records"))
                .arg(&version)
                .arg(doc);
            if let Some((field, value)) = &record {
                call.arg(field).arg(value);
            }
            let swapped: i64 = call
                .invoke_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
            if swapped == 1 {
                return Ok(out);
            }
            tokio::time::sleep(std::time::Duration::from_millis(fastrand::u64(1..10))).await;
        }
        Err(super::StoreError::Unavailable(
            "the delivery queue is too contended".into(),
        ))
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
            let _: i64 = self
                .conn()
                .sadd(self.key("pending"), ids)
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }

    fn take_pending(&self, max: usize) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        Box::pin(async move {
            let taken: Vec<String> = ::redis::cmd("SPOP")
                .arg(self.key("pending"))
                .arg(max.max(1))
                .query_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
            Ok(taken)
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

    fn enqueue(&self, job: Job) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            let watched = field(&job.sink, &job.appointment_id);
            self.change_seeing(Some(&watched), |q, held| q.enqueue(job.clone(), held), None)
                .await
        })
    }

    fn lease(
        &self,
        sink: String,
        now: Timestamp,
        max: usize,
    ) -> BoxFuture<'_, StoreResult<Vec<Job>>> {
        Box::pin(self.change(move |q| q.lease(&sink, now, max), None))
    }

    fn delivered(
        &self,
        job: Job,
        record: SinkRecord,
        now: Timestamp,
    ) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let value = serde_json::to_string(&record)
                .map_err(|e| super::StoreError::Unavailable(e.to_string()))?;
            self.change(
                |q| q.delivered(&job, now),
                Some((field(&job.sink, &job.appointment_id), value)),
            )
            .await
        })
    }

    fn failed(
        &self,
        job: Job,
        retry_at: Option<Timestamp>,
        error: String,
        now: Timestamp,
    ) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(self.change(
            move |q| q.failed(job.clone(), retry_at, error.clone(), now),
            None,
        ))
    }

    fn dead_letters(&self) -> BoxFuture<'_, StoreResult<Vec<DeadLetter>>> {
        Box::pin(async move { Ok(self.queue().await?.0.dead_letters()) })
    }

    fn revive(&self, job_id: String, at: Timestamp) -> BoxFuture<'_, StoreResult<Option<String>>> {
        Box::pin(self.change(move |q| q.revive(&job_id, at), None))
    }

    fn stats(&self, sink: String) -> BoxFuture<'_, StoreResult<SinkStats>> {
        Box::pin(async move { Ok(self.queue().await?.0.stats(&sink)) })
    }

    fn recover(&self) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(self.change(Queue::recover, None))
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
