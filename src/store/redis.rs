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

/// Holds and bookings as stored: the numbers and names the scripts compare, and the value.
#[derive(Serialize, Deserialize)]
struct Entry<T> {
    /// Practitioner.
    p: String,
    /// Start, end and expiry in Unix milliseconds.
    s: i64,
    t: i64,
    e: i64,
    /// A hold's owner (token subject) and whose allowance it counts against.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    o: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    c: String,
    v: T,
}

/// Shared by the scripts that look at holds and bookings: the live entries of a hash (dead
/// ones are deleted on the way) and overlap.
const LIVE: &str = r"
local function live(hash, now)
  local all, out = redis.call('HGETALL', hash), {}
  for i = 1, #all, 2 do
    local ok, r = pcall(cjson.decode, all[i + 1])
    if (not ok) or r.e <= now then
      redis.call('HDEL', hash, all[i])
    else
      r.field = all[i]
      out[#out + 1] = r
    end
  end
  return out
end
local function overlaps(r, p, s, t) return r.p == p and r.s < t and s < r.t end
";

/// KEYS: holds, booked. ARGV: id, practitioner, now, start, end, value, counts-for, max.
const PUT_HOLD: &str = r"
local now, s, t = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local holds, count = live(KEYS[1], now), 0
for _, r in ipairs(holds) do if r.c == ARGV[7] then count = count + 1 end end
if count >= tonumber(ARGV[8]) then return 'limit' end
for _, r in ipairs(holds) do if overlaps(r, ARGV[2], s, t) then return 'held' end end
for _, r in ipairs(live(KEYS[2], now)) do if overlaps(r, ARGV[2], s, t) then return 'booked' end end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[6])
return 'created'
";

/// KEYS: holds, booked, then the fenced leases. ARGV: id, practitioner, now, start, end, value,
/// hold owner, hold id ('' for any of the owner's), then each fence's token.
const CLAIM: &str = r"
for i = 3, #KEYS do
  if redis.call('GET', KEYS[i]) ~= ARGV[6 + i] then return 'fenced' end
end
local now, s, t = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local booked = live(KEYS[2], now)
for _, r in ipairs(booked) do if r.field == ARGV[1] then return 'unconfirmed' end end
for _, r in ipairs(live(KEYS[1], now)) do
  local mine = r.o == ARGV[7] and (ARGV[8] == '' or r.field == ARGV[8])
  if overlaps(r, ARGV[2], s, t) and not mine then return 'held' end
end
for _, r in ipairs(booked) do if overlaps(r, ARGV[2], s, t) then return 'booked' end end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[6])
return 'claimed'
";

/// Replaces a live entry; never recreates one. KEYS: hash. ARGV: field, value, now.
const REFRESH: &str = r"
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then return 0 end
local ok, r = pcall(cjson.decode, old)
if (not ok) or r.e <= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
";

/// Deletes entries found dead, unless they were rewritten since. KEYS: hash. ARGV: field-value
/// pairs as read.
const PRUNE: &str = r"
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then redis.call('HDEL', KEYS[1], ARGV[i]) end
end
return 0
";

const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
";

const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// KEYS: the record, its attempt's lease. ARGV: fingerprint, token, lease (ms), record ttl (ms).
/// An attempt is running while its lease lives; one that stopped renewing is resumed.
const BEGIN: &str = r"
local k, run = KEYS[1], KEYS[2]
if redis.call('EXISTS', k) == 0 then
  redis.call('HSET', k, 'fp', ARGV[1], 'phase', 'running', 'owner', ARGV[2], 'progress', 'null')
  redis.call('PEXPIRE', k, ARGV[4])
  redis.call('SET', run, ARGV[2], 'PX', ARGV[3])
  return {'started'}
end
if redis.call('HGET', k, 'fp') ~= ARGV[1] then return {'mismatch'} end
local phase = redis.call('HGET', k, 'phase')
if phase == 'done' then return {'replay', redis.call('HGET', k, 'response')} end
if phase == 'running' and redis.call('EXISTS', run) == 1 then return {'in_progress'} end
redis.call('HSET', k, 'phase', 'running', 'owner', ARGV[2])
redis.call('SET', run, ARGV[2], 'PX', ARGV[3])
return {'resume', redis.call('HGET', k, 'progress')}
";

/// Sets fields of a record only while `owner` owns it (never resurrects an expired one), and
/// gives its lease back when asked. KEYS: the record, the lease. ARGV: token, release (0/1),
/// then field-value pairs.
const OWNED_SET: &str = r"
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
if ARGV[2] == '1' and redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
";

pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    put_hold: Script,
    claim: Script,
    refresh: Script,
    prune: Script,
    renew: Script,
    unlock: Script,
    begin: Script,
    owned_set: Script,
    pub(super) waitlist: super::redis_waitlist::Scripts,
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
            put_hold: Script::new(&format!("{LIVE}{PUT_HOLD}")),
            claim: Script::new(&format!("{LIVE}{CLAIM}")),
            refresh: Script::new(REFRESH),
            prune: Script::new(PRUNE),
            renew: Script::new(RENEW),
            unlock: Script::new(UNLOCK),
            begin: Script::new(BEGIN),
            owned_set: Script::new(OWNED_SET),
            waitlist: Default::default(),
        }
    }

    pub(super) fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    pub(super) fn conn(&self) -> ConnectionManager {
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
        let mut prune = self.prune.key(&key);
        let mut dead = false;
        for (field, text) in all {
            match serde_json::from_str::<Entry<T>>(&text) {
                Ok(e) if e.e > ms(now) => live.push(e.v),
                _ => {
                    prune.arg(field).arg(text);
                    dead = true;
                }
            }
        }
        if dead {
            // Best effort: the scripts skip dead entries anyway.
            let _: Result<i64, _> = prune.invoke_async(&mut self.conn()).await;
        }
        Ok(live)
    }

    /// Sets fields of the record `key` while `owner` owns it.
    async fn set_owned(
        &self,
        key: &str,
        owner: &Lease,
        release: bool,
        fields: &[(&str, &str)],
    ) -> StoreResult<bool> {
        let mut invocation = self.owned_set.key(self.key(&format!("idem:{key}")));
        invocation
            .key(&owner.key)
            .arg(&owner.token)
            .arg(if release { "1" } else { "0" });
        for (f, v) in fields {
            invocation.arg(*f).arg(*v);
        }
        let set: i64 = invocation
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        Ok(set == 1)
    }
}

fn hold_entry(hold: &Hold) -> StoreResult<String> {
    serde_json::to_string(&Entry {
        p: hold.practitioner.as_str().to_owned(),
        s: ms(hold.start),
        t: ms(hold.end),
        e: ms(hold.expires_at),
        o: hold.owner.clone(),
        c: hold.counts_for(),
        v: hold,
    })
    .map_err(|e| StoreError::Unavailable(e.to_string()))
}

fn booked_entry(booked: &Booked) -> StoreResult<String> {
    serde_json::to_string(&Entry {
        p: booked.practitioner.as_str().to_owned(),
        s: ms(booked.start),
        t: ms(booked.end),
        e: ms(booked.expires_at),
        o: String::new(),
        c: String::new(),
        v: booked,
    })
    .map_err(|e| StoreError::Unavailable(e.to_string()))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl Store for RedisStore {
    fn lock(
        &self,
        key: String,
        lease: Duration,
        wait: Duration,
    ) -> BoxFuture<'_, StoreResult<Lease>> {
        Box::pin(async move {
            let token = uuid::Uuid::new_v4().to_string();
            let name = self.key(&format!("lock:{key}"));
            let deadline = Instant::now() + wait;
            loop {
                let asked = tokio::time::Instant::now();
                let granted: Option<String> = ::redis::cmd("SET")
                    .arg(&name)
                    .arg(&token)
                    .arg("NX")
                    .arg("PX")
                    .arg(millis(lease))
                    .query_async(&mut self.conn())
                    .await
                    .map_err(unavailable)?;
                if granted.is_some() {
                    return Ok(Lease {
                        key: name,
                        token,
                        asked,
                    });
                }
                if Instant::now() >= deadline {
                    return Err(StoreError::Busy("a lock was not granted in time".into()));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    }

    fn renew(&self, lease: Lease, duration: Duration) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            let renewed: i64 = self
                .renew
                .key(&lease.key)
                .arg(&lease.token)
                .arg(millis(duration))
                .invoke_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
            Ok(renewed == 1)
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

    fn put_hold(
        &self,
        hold: Hold,
        max_per_owner: u32,
        now: Timestamp,
    ) -> BoxFuture<'_, StoreResult<HoldOutcome>> {
        Box::pin(async move {
            let value = hold_entry(&hold)?;
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
                .arg(hold.counts_for())
                .arg(max_per_owner)
                .invoke_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
            Ok(match outcome.as_str() {
                "created" => HoldOutcome::Created,
                "booked" => HoldOutcome::Booked,
                "limit" => HoldOutcome::LimitReached,
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

    fn claim(
        &self,
        claim: Claim,
        fences: Vec<Lease>,
        now: Timestamp,
    ) -> BoxFuture<'_, StoreResult<ClaimOutcome>> {
        Box::pin(async move {
            let b = &claim.booked;
            let value = booked_entry(b)?;
            let mut invocation = self.claim.key(self.key("holds"));
            invocation.key(self.key("booked"));
            for f in &fences {
                invocation.key(&f.key);
            }
            invocation
                .arg(&b.appointment_id)
                .arg(b.practitioner.as_str())
                .arg(ms(now))
                .arg(ms(b.start))
                .arg(ms(b.end))
                .arg(value)
                .arg(&claim.hold_owner)
                .arg(claim.hold_id.as_deref().unwrap_or_default());
            for f in &fences {
                invocation.arg(&f.token);
            }
            let outcome: String = invocation
                .invoke_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
            Ok(match outcome.as_str() {
                "claimed" => ClaimOutcome::Claimed,
                "held" => ClaimOutcome::Held,
                "booked" => ClaimOutcome::Booked,
                "unconfirmed" => ClaimOutcome::Unconfirmed,
                _ => ClaimOutcome::Fenced,
            })
        })
    }

    fn put_booked(&self, booked: Booked) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let value = booked_entry(&booked)?;
            // Keyed by appointment: a moved one replaces its old time.
            let _: i64 = self
                .conn()
                .hset(self.key("booked"), &booked.appointment_id, value)
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }

    fn refresh_booked(&self, booked: Booked) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            let value = booked_entry(&booked)?;
            let refreshed: i64 = self
                .refresh
                .key(self.key("booked"))
                .arg(&booked.appointment_id)
                .arg(value)
                .arg(ms(Timestamp::now()))
                .invoke_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
            Ok(refreshed == 1)
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
        _now: Timestamp,
    ) -> BoxFuture<'_, StoreResult<Begin>> {
        Box::pin(async move {
            let token = uuid::Uuid::new_v4().to_string();
            let run = self.key(&format!("idem-run:{key}"));
            let asked = tokio::time::Instant::now();
            let answer: Vec<String> = self
                .begin
                .key(self.key(&format!("idem:{key}")))
                .key(&run)
                .arg(&fingerprint)
                .arg(&token)
                .arg(millis(ttl.lease))
                .arg(millis(ttl.record))
                .invoke_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
            let broken = || StoreError::Unavailable("unreadable idempotency record".into());
            let lease = Lease {
                key: run,
                token,
                asked,
            };
            Ok(match answer.first().map(String::as_str) {
                Some("started") => Begin::Started(lease),
                Some("mismatch") => Begin::Mismatch,
                Some("in_progress") => Begin::InProgress,
                Some("replay") => Begin::Replay(
                    answer
                        .get(1)
                        .and_then(|t| serde_json::from_str(t).ok())
                        .ok_or_else(broken)?,
                ),
                Some("resume") => Begin::Resume(
                    lease,
                    answer
                        .get(1)
                        .and_then(|t| serde_json::from_str(t).ok())
                        .unwrap_or(serde_json::Value::Null),
                ),
                _ => return Err(broken()),
            })
        })
    }

    fn progress(
        &self,
        key: String,
        owner: Lease,
        progress: serde_json::Value,
    ) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            let text = progress.to_string();
            self.set_owned(&key, &owner, false, &[("progress", &text)])
                .await
        })
    }

    fn finish(
        &self,
        key: String,
        owner: Lease,
        response: StoredResponse,
    ) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            let text = serde_json::to_string(&response)
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            self.set_owned(
                &key,
                &owner,
                true,
                &[("phase", "done"), ("response", &text)],
            )
            .await
        })
    }

    fn interrupt(&self, key: String, owner: Lease) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            self.set_owned(&key, &owner, true, &[("phase", "interrupted")])
                .await
        })
    }

    fn put_move(&self, m: Move) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let text =
                serde_json::to_string(&m).map_err(|e| StoreError::Unavailable(e.to_string()))?;
            let _: i64 = self
                .conn()
                .hset(self.key("moves"), m.field(), text)
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }

    fn moves(&self) -> BoxFuture<'_, StoreResult<Vec<Move>>> {
        Box::pin(async move {
            let all: Vec<String> = self
                .conn()
                .hvals(self.key("moves"))
                .await
                .map_err(unavailable)?;
            Ok(all
                .iter()
                .filter_map(|t| serde_json::from_str(t).ok())
                .collect())
        })
    }

    fn remove_move(&self, m: Move) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let _: i64 = self
                .conn()
                .hdel(self.key("moves"), m.field())
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }

    fn add_entry(
        &self,
        entry: waitlist::Entry,
        max_per_patient: u32,
    ) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(self.wl_add_entry(entry, max_per_patient))
    }

    fn entries(&self) -> BoxFuture<'_, StoreResult<Vec<waitlist::Entry>>> {
        Box::pin(self.wl_entries())
    }

    fn pass_slot(&self, entry_id: String, slot: String) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(self.wl_pass_slot(entry_id, slot))
    }

    fn remove_entry(&self, id: String) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(self.wl_remove_entry(id))
    }

    fn put_offer(&self, offer: waitlist::Offer) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(self.wl_put_offer(offer))
    }

    fn offers(&self) -> BoxFuture<'_, StoreResult<Vec<waitlist::Offer>>> {
        Box::pin(self.wl_offers())
    }

    fn settle_offer(
        &self,
        id: String,
        from: waitlist::OfferStatus,
        to: waitlist::OfferStatus,
    ) -> BoxFuture<'_, StoreResult<Option<waitlist::Offer>>> {
        Box::pin(self.wl_settle(id, from, to))
    }

    fn begin_accept(
        &self,
        id: String,
        identifier: String,
    ) -> BoxFuture<'_, StoreResult<Option<waitlist::Offer>>> {
        Box::pin(self.wl_begin_accept(id, identifier))
    }

    fn offer_notified(&self, id: String) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(self.wl_notified(id))
    }

    fn prune_offers(&self, before: Timestamp) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(self.wl_prune(before))
    }
}
