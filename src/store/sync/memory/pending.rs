//! The appointments waiting to be planned, in memory: each with when it was first asked for,
//! `unplanned` until taken, then `planning` until planned (or given back by `recover`).

use futures::future::BoxFuture;
use jiff::Timestamp;

use super::{MemorySyncStore, ready};
use crate::store::StoreResult;

impl MemorySyncStore {
    pub(super) fn mark_pending(&self, ids: Vec<String>) -> BoxFuture<'_, StoreResult<()>> {
        let now = Timestamp::now();
        self.change_if(move |d| {
            let before = d.unplanned.len();
            for id in ids {
                d.unplanned.entry(id).or_insert(now);
            }
            ((), d.unplanned.len() != before)
        })
    }

    pub(super) fn take_pending(&self, max: usize) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        self.change_if(move |d| {
            let mut oldest: Vec<(Timestamp, String)> = d
                .unplanned
                .iter()
                .map(|(id, at)| (*at, id.clone()))
                .collect();
            oldest.sort();
            oldest.truncate(max);
            for (at, id) in &oldest {
                d.unplanned.remove(id);
                d.planning.insert(id.clone(), *at);
            }
            let changed = !oldest.is_empty();
            (oldest.into_iter().map(|(_, id)| id).collect(), changed)
        })
    }

    pub(super) fn planned(&self, ids: Vec<String>) -> BoxFuture<'_, StoreResult<()>> {
        self.change_if(move |d| {
            let before = d.planning.len();
            for id in &ids {
                d.planning.remove(id);
            }
            ((), d.planning.len() != before)
        })
    }

    pub(super) fn oldest_unplanned(&self) -> BoxFuture<'_, StoreResult<Option<Timestamp>>> {
        let data = self.data();
        ready(Ok(data
            .0
            .unplanned
            .values()
            .chain(data.0.planning.values())
            .min()
            .copied()))
    }

    pub(super) fn recover(&self) -> BoxFuture<'_, StoreResult<()>> {
        self.change(move |d| {
            d.queue.recover();
            let planning = std::mem::take(&mut d.planning);
            for (id, at) in planning {
                let first = d.unplanned.entry(id).or_insert(at);
                *first = (*first).min(at);
            }
        })
    }
}
