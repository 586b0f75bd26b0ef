//! The waitlist in Redis: entries and offers as JSON in two hashes; what must be decided
//! atomically (an entry against the patient's allowance, an offer's next status) runs as Lua.

use ::redis::{AsyncCommands, Script};
use jiff::Timestamp;

use super::redis::{RedisStore, unavailable};
use super::waitlist::{Entry, Offer, OfferStatus};
use super::{StoreError, StoreResult};

/// KEYS: entries. ARGV: id, patient, value, max.
const ADD_ENTRY: &str = r"
local n = 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do
  local ok, e = pcall(cjson.decode, v)
  if ok and e.patient == ARGV[2] then n = n + 1 end
end
if n >= tonumber(ARGV[4]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
";

/// KEYS: the hash. ARGV: field, value. Replaces a field that is there.
const UPDATE: &str = r"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
";

/// KEYS: offers. ARGV: id, from ('' for any), field, new value (a string, or 'true').
const SET_FIELD: &str = r"
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return false end
local ok, o = pcall(cjson.decode, v)
if (not ok) or (ARGV[2] ~= '' and o.status ~= ARGV[2]) then return false end
if ARGV[4] == 'true' then o[ARGV[3]] = true else o[ARGV[3]] = ARGV[4] end
local s = cjson.encode(o)
redis.call('HSET', KEYS[1], ARGV[1], s)
return s
";

pub struct Scripts {
    add_entry: Script,
    update: Script,
    set_field: Script,
}

impl Default for Scripts {
    fn default() -> Self {
        Scripts {
            add_entry: Script::new(ADD_ENTRY),
            update: Script::new(UPDATE),
            set_field: Script::new(SET_FIELD),
        }
    }
}

fn text<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Unavailable(e.to_string()))
}

fn status(s: OfferStatus) -> &'static str {
    match s {
        OfferStatus::Open => "open",
        OfferStatus::Accepted => "accepted",
        OfferStatus::Declined => "declined",
        OfferStatus::Expired => "expired",
    }
}

impl RedisStore {
    pub(super) async fn wl_add_entry(&self, entry: Entry, max: u32) -> StoreResult<bool> {
        let added: i64 = self
            .waitlist
            .add_entry
            .key(self.key("wl:entries"))
            .arg(&entry.id)
            .arg(&entry.patient)
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
        self.values("wl:entries").await
    }

    pub(super) async fn wl_update_entry(&self, entry: Entry) -> StoreResult<bool> {
        let updated: i64 = self
            .waitlist
            .update
            .key(self.key("wl:entries"))
            .arg(&entry.id)
            .arg(text(&entry)?)
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        Ok(updated == 1)
    }

    pub(super) async fn wl_remove(&self, hash: &str, id: String) -> StoreResult<bool> {
        let removed: i64 = self
            .conn()
            .hdel(self.key(hash), id)
            .await
            .map_err(unavailable)?;
        Ok(removed > 0)
    }

    pub(super) async fn wl_put_offer(&self, offer: Offer) -> StoreResult<()> {
        let _: i64 = self
            .conn()
            .hset(self.key("wl:offers"), &offer.id, text(&offer)?)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    pub(super) async fn wl_offers(&self) -> StoreResult<Vec<Offer>> {
        self.values("wl:offers").await
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
            .key(self.key("wl:offers"))
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

    pub(super) async fn wl_notified(&self, id: String) -> StoreResult<()> {
        self.set_offer_field(id, None, "notified", "true")
            .await
            .map(drop)
    }

    pub(super) async fn wl_prune(&self, before: Timestamp) -> StoreResult<()> {
        for offer in self.wl_offers().await? {
            if offer.status != OfferStatus::Open && offer.expires_at < before {
                self.wl_remove("wl:offers", offer.id).await?;
            }
        }
        Ok(())
    }
}
