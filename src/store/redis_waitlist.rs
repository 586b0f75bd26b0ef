//! The waitlist in Redis. Entries are JSON in one hash and never rewritten; what changes about
//! an entry lives beside it (`wl:passed`, a JSON list per entry) and is changed in place. Each
//! patient's entry ids form a set (`wl:patient:<id>`), so the allowance is counted without
//! reading every entry. Offers are JSON in a hash; `wl:live` names each entry's live (Open or
//! Accepting) offer, so "this entry has none" is one lookup. What must be decided atomically
//! runs as Lua.

use ::redis::{AsyncCommands, Script};
use jiff::Timestamp;

use super::redis::{RedisStore, unavailable};
use super::waitlist::{Entry, Offer, OfferStatus};
use super::{StoreError, StoreResult};

/// KEYS: entries, the patient's set. ARGV: id, value, max. Ids in the set whose entry is gone
/// (none, unless a removal was cut short) do not count.
const ADD_ENTRY: &str = r"
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if redis.call('HEXISTS', KEYS[1], id) == 0 then redis.call('SREM', KEYS[2], id) end
end
if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
";

/// KEYS: entries, passed, the patient's set. ARGV: id.
const REMOVE_ENTRY: &str = r"
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
return redis.call('HDEL', KEYS[1], ARGV[1])
";

/// KEYS: entries, passed. ARGV: id, slot. Appends to the entry's list (a non-empty table, so
/// cjson writes an array) unless the entry is gone or the slot is listed.
const PASS_SLOT: &str = r"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
local v = redis.call('HGET', KEYS[2], ARGV[1])
local list = {}
if v then
  local ok, l = pcall(cjson.decode, v)
  if ok and type(l) == 'table' then list = l end
end
for _, s in ipairs(list) do
  if s == ARGV[2] then return 1 end
end
table.insert(list, ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(list))
return 1
";

/// Whether the offer stored under `id` in KEYS[1] is live; used by PUT_OFFER.
const LIVE: &str = r"
local function live(id)
  local v = redis.call('HGET', KEYS[1], id)
  if not v then return false end
  local ok, o = pcall(cjson.decode, v)
  return ok and (o.status == 'open' or o.status == 'accepting')
end
";

/// KEYS: offers, entries, live. ARGV: offer id, entry id, value.
const PUT_OFFER: &str = r"
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 0 then return 0 end
local current = redis.call('HGET', KEYS[3], ARGV[2])
if current and live(current) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[1])
return 1
";

/// KEYS: offers, live. ARGV: id, from ('' for any), field, new value (a string, or 'true').
/// An offer that stops being live leaves the live index.
const SET_FIELD: &str = r"
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return false end
local ok, o = pcall(cjson.decode, v)
if (not ok) or (ARGV[2] ~= '' and o.status ~= ARGV[2]) then return false end
if ARGV[4] == 'true' then o[ARGV[3]] = true else o[ARGV[3]] = ARGV[4] end
local s = cjson.encode(o)
redis.call('HSET', KEYS[1], ARGV[1], s)
if o.status ~= 'open' and o.status ~= 'accepting' and redis.call('HGET', KEYS[2], o.entry_id) == ARGV[1] then
  redis.call('HDEL', KEYS[2], o.entry_id)
end
return s
";

/// KEYS: offers. ARGV: id, booking identifier.
const BEGIN_ACCEPT: &str = r"
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return false end
local ok, o = pcall(cjson.decode, v)
if not ok then return false end
if o.status == 'accepting' and o.accepting == ARGV[2] then return v end
if o.status ~= 'open' then return false end
o.status = 'accepting'
o.accepting = ARGV[2]
local s = cjson.encode(o)
redis.call('HSET', KEYS[1], ARGV[1], s)
return s
";

pub struct Scripts {
    add_entry: Script,
    remove_entry: Script,
    pass_slot: Script,
    put_offer: Script,
    set_field: Script,
    begin_accept: Script,
}

impl Default for Scripts {
    fn default() -> Self {
        Scripts {
            add_entry: Script::new(ADD_ENTRY),
            remove_entry: Script::new(REMOVE_ENTRY),
            pass_slot: Script::new(PASS_SLOT),
            put_offer: Script::new(&format!("{LIVE}{PUT_OFFER}")),
            set_field: Script::new(SET_FIELD),
            begin_accept: Script::new(BEGIN_ACCEPT),
        }
    }
}

fn text<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Unavailable(e.to_string()))
}

fn status(s: OfferStatus) -> &'static str {
    match s {
        OfferStatus::Open => "open",
        OfferStatus::Accepting => "accepting",
        OfferStatus::Accepted => "accepted",
        OfferStatus::Declined => "declined",
        OfferStatus::Expired => "expired",
    }
}

const ENTRIES: &str = "wl:entries";
const PASSED: &str = "wl:passed";
const OFFERS: &str = "wl:offers";
const LIVE_OFFERS: &str = "wl:live";

impl RedisStore {
    fn patient_set(&self, patient: &str) -> String {
        self.key(&format!("wl:patient:{patient}"))
    }

    pub(super) async fn wl_add_entry(&self, entry: Entry, max: u32) -> StoreResult<bool> {
        let added: i64 = self
            .waitlist
            .add_entry
            .key(self.key(ENTRIES))
            .key(self.patient_set(&entry.patient))
            .arg(&entry.id)
            .arg(text(&entry)?)
            .arg(max)
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        Ok(added == 1)
    }

    async fn values<T: serde::de::DeserializeOwned>(&self, hash: &str) -> StoreResult<Vec<T>> {
        let all: Vec<String> = self
            .conn()
            .hvals(self.key(hash))
            .await
            .map_err(unavailable)?;
        Ok(all
            .iter()
            .filter_map(|t| serde_json::from_str(t).ok())
            .collect())
    }

    pub(super) async fn wl_entries(&self) -> StoreResult<Vec<Entry>> {
        let mut entries: Vec<Entry> = self.values(ENTRIES).await?;
        let passed: std::collections::HashMap<String, String> = self
            .conn()
            .hgetall(self.key(PASSED))
            .await
            .map_err(unavailable)?;
        for e in &mut entries {
            let more: Vec<String> = passed
                .get(&e.id)
                .and_then(|t| serde_json::from_str(t).ok())
                .unwrap_or_default();
            for slot in more {
                if !e.passed.contains(&slot) {
                    e.passed.push(slot);
                }
            }
        }
        Ok(entries)
    }

    pub(super) async fn wl_pass_slot(&self, id: String, slot: String) -> StoreResult<bool> {
        let passed: i64 = self
            .waitlist
            .pass_slot
            .key(self.key(ENTRIES))
            .key(self.key(PASSED))
            .arg(id)
            .arg(slot)
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        Ok(passed == 1)
    }

    pub(super) async fn wl_remove_entry(&self, id: String) -> StoreResult<bool> {
        let stored: Option<String> = self
            .conn()
            .hget(self.key(ENTRIES), &id)
            .await
            .map_err(unavailable)?;
        // An entry's patient never changes: read first, then remove it and its index atomically.
        let Some(entry) = stored.and_then(|t| serde_json::from_str::<Entry>(&t).ok()) else {
            return self.wl_remove(ENTRIES, id).await;
        };
        let removed: i64 = self
            .waitlist
            .remove_entry
            .key(self.key(ENTRIES))
            .key(self.key(PASSED))
            .key(self.patient_set(&entry.patient))
            .arg(id)
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        Ok(removed > 0)
    }

    async fn wl_remove(&self, hash: &str, id: String) -> StoreResult<bool> {
        let removed: i64 = self
            .conn()
            .hdel(self.key(hash), id)
            .await
            .map_err(unavailable)?;
        Ok(removed > 0)
    }

    pub(super) async fn wl_put_offer(&self, offer: Offer) -> StoreResult<bool> {
        let stored: i64 = self
            .waitlist
            .put_offer
            .key(self.key(OFFERS))
            .key(self.key(ENTRIES))
            .key(self.key(LIVE_OFFERS))
            .arg(&offer.id)
            .arg(&offer.entry_id)
            .arg(text(&offer)?)
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        Ok(stored == 1)
    }

    pub(super) async fn wl_offers(&self) -> StoreResult<Vec<Offer>> {
        self.values(OFFERS).await
    }

    async fn set_offer_field(
        &self,
        id: String,
        from: Option<OfferStatus>,
        field: &str,
        value: &str,
    ) -> StoreResult<Option<Offer>> {
        let now: Option<String> = self
            .waitlist
            .set_field
            .key(self.key(OFFERS))
            .key(self.key(LIVE_OFFERS))
            .arg(id)
            .arg(from.map(status).unwrap_or_default())
            .arg(field)
            .arg(value)
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        Ok(now.and_then(|t| serde_json::from_str(&t).ok()))
    }

    pub(super) async fn wl_settle(
        &self,
        id: String,
        from: OfferStatus,
        to: OfferStatus,
    ) -> StoreResult<Option<Offer>> {
        self.set_offer_field(id, Some(from), "status", status(to))
            .await
    }

    pub(super) async fn wl_begin_accept(
        &self,
        id: String,
        identifier: String,
    ) -> StoreResult<Option<Offer>> {
        let now: Option<String> = self
            .waitlist
            .begin_accept
            .key(self.key(OFFERS))
            .arg(id)
            .arg(identifier)
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        Ok(now.and_then(|t| serde_json::from_str(&t).ok()))
    }

    pub(super) async fn wl_notified(&self, id: String) -> StoreResult<()> {
        self.set_offer_field(id, None, "notified", "true")
            .await
            .map(drop)
    }

    pub(super) async fn wl_prune(&self, before: Timestamp) -> StoreResult<()> {
        for offer in self.wl_offers().await? {
            if !offer.status.is_live() && offer.expires_at < before {
                self.wl_remove(OFFERS, offer.id).await?;
            }
        }
        Ok(())
    }
}
