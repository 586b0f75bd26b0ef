//! What each sink holds, in memory: a [`SinkRecord`] per sink and appointment, written when
//! a delivery lands ([`super::queue`]); read here, alone or for many at once, and forgotten.

use std::collections::BTreeSet;

use futures::future::BoxFuture;

use super::{MemorySyncStore, ready};
use crate::store::StoreResult;
use crate::store::sync::{Holding, SinkRecord};

impl MemorySyncStore {
    pub(super) fn record(
        &self,
        sink: String,
        appointment: String,
    ) -> BoxFuture<'_, StoreResult<Option<SinkRecord>>> {
        ready(Ok(self
            .data()
            .0
            .records
            .get(&sink)
            .and_then(|r| r.get(&appointment))
            .cloned()))
    }

    pub(super) fn holding(
        &self,
        sink: String,
        appointments: Vec<String>,
    ) -> BoxFuture<'_, StoreResult<Vec<Holding>>> {
        let data = self.data();
        let records = data.0.records.get(&sink);
        let out = appointments
            .iter()
            .map(|a| {
                if data.0.queue.moving(&sink, a) {
                    return Holding::Moving;
                }
                match records.and_then(|r| r.get(a)) {
                    Some(r) => Holding::Settled(r.delivered.clone()),
                    None => Holding::Unknown,
                }
            })
            .collect();
        ready(Ok(out))
    }

    pub(super) fn known_appointments(&self) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        let data = self.data();
        let ids: BTreeSet<String> = data
            .0
            .records
            .values()
            .flat_map(|r| r.keys().cloned())
            .collect();
        ready(Ok(ids.into_iter().collect()))
    }

    pub(super) fn forget(&self, appointments: Vec<String>) -> BoxFuture<'_, StoreResult<()>> {
        self.change_if(move |d| {
            let mut changed = false;
            for records in d.records.values_mut() {
                for a in &appointments {
                    changed |= records.remove(a).is_some();
                }
            }
            ((), changed)
        })
    }
}
