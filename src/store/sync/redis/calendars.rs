//! Inbound calendars in Redis: each one's state in the `calendars` hash, and the reads asked
//! for by whichever replica received a push, in the `reads` hash until the leader takes them.

use std::collections::BTreeMap;

use ::redis::AsyncCommands;
use futures::future::BoxFuture;

use super::{RedisSyncStore, SEP};
use crate::store::StoreResult;
use crate::store::redis::unavailable;
use crate::store::sync::ReadAsk;

/// Field `<calendar>`: "1" a full read, "0" what changed; field `<calendar>SEP<event>`: one
/// event. ARGV: calendar, "1" | "0" | "" (events only), then the events.
pub(super) const REQUEST_READ: &str = include_str!("lua/request_read.lua");

pub(super) const TAKE_ALL: &str = include_str!("lua/take_all.lua");

impl RedisSyncStore {
    pub(super) fn calendar(
        &self,
        key: String,
    ) -> BoxFuture<'_, StoreResult<Option<serde_json::Value>>> {
        Box::pin(async move {
            let text: Option<String> = self
                .conn()
                .hget(self.key("calendars"), key)
                .await
                .map_err(unavailable)?;
            Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
        })
    }

    pub(super) fn put_calendar(
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

    pub(super) fn request_read(
        &self,
        calendar: String,
        ask: ReadAsk,
    ) -> BoxFuture<'_, StoreResult<()>> {
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

    pub(super) fn take_reads(&self) -> BoxFuture<'_, StoreResult<Vec<(String, ReadAsk)>>> {
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
