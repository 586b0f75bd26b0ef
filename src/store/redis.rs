//! The shared store: every replica's locks, holds, overlay and idempotency records in one
//! Redis. Whatever must be decided atomically (a hold against other holds and bookings, an
//! idempotency key's next phase, releasing only one's own lock) runs as a Lua script.
//! Any Redis failure is `StoreError::Unavailable`: callers fail closed.

use std::time::{Duration, Instant};

use ::redis::aio::ConnectionManager;
use ::redis::{AsyncCommands, Script};
use futures::future::BoxFuture;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::*;

/// Holds and bookings as stored: the numbers the scripts compare, and the value itself.
#[derive(Serialize, Deserialize)]
struct Entry<T> {
    /// Practitioner.
    p: String,
    /// Start, end and expiry in Unix milliseconds.
    s: i64,
    t: i64,
    e: i64,
    v: T,
}

const PUT_HOLD: &str = r"
local function clash(hash, now, p, s, t)
  local all = redis.call('HGETALL', hash)
  for i = 1, #all, 2 do
    local ok, r = pcall(cjson.decode, all[i + 1])
    if (not ok) or r.e <= now then
      redis.call('HDEL', hash, all[i])
    elseif r.p == p and r.s < t and s < r.t then
      return true
    end
  end
  return false
end
local now, s, t = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if clash(KEYS[1], now, ARGV[2], s, t) then return 'held' end
if clash(KEYS[2], now, ARGV[2], s, t) then return 'booked' end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[6])
return 'created'
";

const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// ARGV: fingerprint, now (ms), marker (ms), record ttl (ms).
const BEGIN: &str = r"
local k = KEYS[1]
if redis.call('EXISTS', k) == 0 then
  redis.call('HSET', k, 'fp', ARGV[1], 'phase', 'running', 'since', ARGV[2], 'marker', ARGV[3], 'progress', 'null')
  redis.call('PEXPIRE', k, ARGV[4])
  return {'started'}
end
if redis.call('HGET', k, 'fp') ~= ARGV[1] then return {'mismatch'} end
local phase = redis.call('HGET', k, 'phase')
if phase == 'done' then return {'replay', redis.call('HGET', k, 'response')} end
local since = tonumber(redis.call('HGET', k, 'since')) or 0
local marker = tonumber(redis.call('HGET', k, 'marker')) or 0
if phase == 'running' and tonumber(ARGV[2]) - since < marker then return {'in_progress'} end
redis.call('HSET', k, 'phase', 'running', 'since', ARGV[2], 'marker', ARGV[3])
return {'resume', redis.call('HGET', k, 'progress')}
";

/// Sets fields of a record only while it exists (never resurrects an expired one).
const SET_IF_EXISTS: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
";

pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    put_hold: Script,
    unlock: Script,
    begin: Script,
    set_if_exists: Script,
}

/// How long one Redis command may take before the caller is told Redis is unavailable.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

/// A connection that (re)connects on demand: slotgate starts, and browses, without Redis.
pub fn connection(client: &::redis::Client) -> Result<ConnectionManager, StoreError> {
    let config = ::redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(RESPONSE_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(unavailable)
}

pub fn unavailable(e: ::redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {}", e.kind_description()))
}

trait KindDescription {
    fn kind_description(&self) -> String;
}

impl KindDescription for ::redis::RedisError {
    /// The kind of failure, never the command or its values (they may be patient ids).
    fn kind_description(&self) -> String {
        if self.is_timeout() {
            "timed out".into()
        } else if self.is_connection_refusal() || self.is_connection_dropped() || self.is_io_error()
        {
            "not reachable".into()
        } else {
            format!("{:?}", self.kind())
        }
    }
}

fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

impl RedisStore {
    pub fn new(conn: ConnectionManager, prefix: &str) -> Self {
        Self {
            conn,
            prefix: prefix.to_owned(),
            put_hold: Script::new(PUT_HOLD),
            unlock: Script::new(UNLOCK),
            begin: Script::new(BEGIN),
            set_if_exists: Script::new(SET_IF_EXISTS),
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Live entries of a hash of holds or bookings; expired ones are dropped on the way.
    async fn entries<T: serde::de::DeserializeOwned>(
        &self,
        hash: &str,
        now: Timestamp,
    ) -> StoreResult<Vec<T>> {
        let key = self.key(hash);
        let all: Vec<(String, String)> = self.conn().hgetall(&key).await.map_err(unavailable)?;
        let mut live = Vec::new();
        let mut dead = Vec::new();
        for (field, text) in all {
            match serde_json::from_str::<Entry<T>>(&text) {
                Ok(e) if e.e > ms(now) => live.push(e.v),
                _ => dead.push(field),
            }
        }
        if !dead.is_empty() {
            let _: Result<(), _> = self.conn().hdel(&key, dead).await;
        }
        Ok(live)
    }

    async fn set_fields(&self, key: &str, fields: &[(&str, &str)]) -> StoreResult<()> {
        let mut invocation = self.set_if_exists.key(self.key(key));
        for (f, v) in fields {
            invocation.arg(*f).arg(*v);
        }
        let _: i64 = invocation
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

fn entry<T: Serialize>(
    practitioner: &PractitionerId,
    start: Timestamp,
    end: Timestamp,
    expires_at: Timestamp,
    value: &T,
) -> StoreResult<String> {
    serde_json::to_string(&Entry {
        p: practitioner.as_str().to_owned(),
        s: ms(start),
        t: ms(end),
        e: ms(expires_at),
        v: value,
    })
    .map_err(|e| StoreError::Unavailable(e.to_string()))
}

impl Store for RedisStore {
    fn lock(
        &self,
        key: String,
        ttl: Duration,
        wait: Duration,
    ) -> BoxFuture<'_, StoreResult<Lease>> {
        Box::pin(async move {
            let token = uuid::Uuid::new_v4().to_string();
            let name = self.key(&format!("lock:{key}"));
            let deadline = Instant::now() + wait;
            let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            loop {
                let granted: Option<String> = ::redis::cmd("SET")
                    .arg(&name)
                    .arg(&token)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms)
                    .query_async(&mut self.conn())
                    .await
                    .map_err(unavailable)?;
                if granted.is_some() {
                    return Ok(Lease {
                        key: name,
                        token,
                        guard: None,
                    });
                }
                if Instant::now() >= deadline {
                    return Err(StoreError::Busy(format!("lock {key} not granted in time")));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    }

    fn unlock(&self, lease: Lease) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            // Compare-and-delete: a lease that expired and went to someone else stays theirs.
            let _: i64 = self
                .unlock
                .key(&lease.key)
                .arg(&lease.token)
                .invoke_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }

    fn put_hold(&self, hold: Hold, now: Timestamp) -> BoxFuture<'_, StoreResult<HoldOutcome>> {
        Box::pin(async move {
            let value = entry(
                &hold.practitioner,
                hold.start,
                hold.end,
                hold.expires_at,
                &hold,
            )?;
            let outcome: String = self
                .put_hold
                .key(self.key("holds"))
                .key(self.key("booked"))
                .arg(&hold.id)
                .arg(hold.practitioner.as_str())
                .arg(ms(now))
                .arg(ms(hold.start))
                .arg(ms(hold.end))
                .arg(value)
                .invoke_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
            Ok(match outcome.as_str() {
                "created" => HoldOutcome::Created,
                "booked" => HoldOutcome::Booked,
                _ => HoldOutcome::Held,
            })
        })
    }

    fn hold(&self, id: String, now: Timestamp) -> BoxFuture<'_, StoreResult<Option<Hold>>> {
        Box::pin(async move {
            let text: Option<String> = self
                .conn()
                .hget(self.key("holds"), &id)
                .await
                .map_err(unavailable)?;
            Ok(text
                .and_then(|t| serde_json::from_str::<Entry<Hold>>(&t).ok())
                .filter(|e| e.e > ms(now))
                .map(|e| e.v))
        })
    }

    fn remove_hold(&self, id: String) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            let removed: i64 = self
                .conn()
                .hdel(self.key("holds"), &id)
                .await
                .map_err(unavailable)?;
            Ok(removed > 0)
        })
    }

    fn holds(&self, now: Timestamp) -> BoxFuture<'_, StoreResult<Vec<Hold>>> {
        Box::pin(self.entries("holds", now))
    }

    fn put_booked(&self, booked: Booked) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let value = entry(
                &booked.practitioner,
                booked.start,
                booked.end,
                booked.expires_at,
                &booked,
            )?;
            // Keyed by appointment: a moved one replaces its old time.
            let _: i64 = self
                .conn()
                .hset(self.key("booked"), &booked.appointment_id, value)
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }

    fn remove_booked(&self, appointment_id: String) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let _: i64 = self
                .conn()
                .hdel(self.key("booked"), &appointment_id)
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }

    fn booked(&self, now: Timestamp) -> BoxFuture<'_, StoreResult<Vec<Booked>>> {
        Box::pin(self.entries("booked", now))
    }

    fn begin(
        &self,
        key: String,
        fingerprint: String,
        ttl: IdempotencyTtl,
        now: Timestamp,
    ) -> BoxFuture<'_, StoreResult<Begin>> {
        Box::pin(async move {
            let answer: Vec<String> = self
                .begin
                .key(self.key(&format!("idem:{key}")))
                .arg(&fingerprint)
                .arg(ms(now))
                .arg(u64::try_from(ttl.marker.as_millis()).unwrap_or(u64::MAX))
                .arg(
                    u64::try_from(ttl.record.as_millis())
                        .unwrap_or(u64::MAX)
                        .max(1),
                )
                .invoke_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
            let broken = || StoreError::Unavailable("unreadable idempotency record".into());
            Ok(match answer.first().map(String::as_str) {
                Some("started") => Begin::Started,
                Some("mismatch") => Begin::Mismatch,
                Some("in_progress") => Begin::InProgress,
                Some("replay") => Begin::Replay(
                    answer
                        .get(1)
                        .and_then(|t| serde_json::from_str(t).ok())
                        .ok_or_else(broken)?,
                ),
                Some("resume") => Begin::Resume(
                    answer
                        .get(1)
                        .and_then(|t| serde_json::from_str(t).ok())
                        .unwrap_or(serde_json::Value::Null),
                ),
                _ => return Err(broken()),
            })
        })
    }

    fn progress(&self, key: String, progress: serde_json::Value) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let text = progress.to_string();
            self.set_fields(&format!("idem:{key}"), &[("progress", &text)])
                .await
        })
    }

    fn finish(
        &self,
        key: String,
        response: StoredResponse,
        _now: Timestamp,
    ) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let text = serde_json::to_string(&response)
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            self.set_fields(
                &format!("idem:{key}"),
                &[("phase", "done"), ("response", &text)],
            )
            .await
        })
    }

    fn interrupt(&self, key: String) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            self.set_fields(&format!("idem:{key}"), &[("phase", "interrupted")])
                .await
        })
    }
}
