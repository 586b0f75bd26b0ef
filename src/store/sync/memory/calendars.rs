//! Inbound calendars in memory: each one's state, and the reads asked for (a full read or
//! what changed, per calendar, and single events) until the leader takes them.

use std::collections::{BTreeMap, BTreeSet};

use futures::future::BoxFuture;

use super::{MemorySyncStore, ready};
use crate::store::StoreResult;
use crate::store::sync::ReadAsk;

impl MemorySyncStore {
    pub(super) fn calendar(
        &self,
        key: String,
    ) -> BoxFuture<'_, StoreResult<Option<serde_json::Value>>> {
        ready(Ok(self.data().0.calendars.get(&key).cloned()))
    }

    pub(super) fn put_calendar(
        &self,
        key: String,
        state: serde_json::Value,
    ) -> BoxFuture<'_, StoreResult<()>> {
        self.change(move |d| {
            d.calendars.insert(key, state);
        })
    }

    pub(super) fn request_read(
        &self,
        calendar: String,
        ask: ReadAsk,
    ) -> BoxFuture<'_, StoreResult<()>> {
        self.change(move |d| {
            if ask.full || ask.changes {
                *d.reads.entry(calendar.clone()).or_default() |= ask.full;
            }
            if !ask.events.is_empty() {
                d.read_events
                    .entry(calendar)
                    .or_default()
                    .extend(ask.events);
            }
        })
    }

    pub(super) fn take_reads(&self) -> BoxFuture<'_, StoreResult<Vec<(String, ReadAsk)>>> {
        self.change_if(|d| {
            let changed = !d.reads.is_empty() || !d.read_events.is_empty();
            let mut asks: BTreeMap<String, ReadAsk> = BTreeMap::new();
            for (calendar, full) in std::mem::take(&mut d.reads) {
                asks.entry(calendar).or_default().merge(ReadAsk {
                    full,
                    changes: !full,
                    events: BTreeSet::new(),
                });
            }
            for (calendar, events) in std::mem::take(&mut d.read_events) {
                asks.entry(calendar)
                    .or_default()
                    .merge(ReadAsk::events(events));
            }
            (asks.into_iter().collect(), changed)
        })
    }
}
