//! What each sink holds, in Redis: one `records` hash for every sink, its fields
//! `<sink>SEP<appointment>`, each a [`SinkRecord`] as JSON. Written when a delivery lands
//! ([`super::queue`]); read here, alone or for many appointments in one step, and forgotten.

use ::redis::AsyncCommands;
use futures::future::BoxFuture;

use super::{RedisSyncStore, SEP, field};
use crate::store::StoreResult;
use crate::store::redis::unavailable;
use crate::store::sync::{Holding, SinkRecord};

/// Fields a step when all records are read.
const SCAN_COUNT: usize = 1000;

impl RedisSyncStore {
    pub(super) fn record(
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

    pub(super) fn holding(
        &self,
        sink: String,
        appointments: Vec<String>,
    ) -> BoxFuture<'_, StoreResult<Vec<Holding>>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(appointments.len());
            for chunk in appointments.chunks(500) {
                let fields: Vec<String> = chunk.iter().map(|a| field(&sink, a)).collect();
                type Values = Vec<Option<String>>;
                let (records, queued, running): (Values, Values, Values) = ::redis::pipe()
                    .cmd("HMGET")
                    .arg(self.key("records"))
                    .arg(&fields)
                    .cmd("HMGET")
                    .arg(self.key(&format!("queued:{sink}")))
                    .arg(chunk)
                    .cmd("HMGET")
                    .arg(self.key(&format!("running:{sink}")))
                    .arg(chunk)
                    .query_async(&mut self.conn())
                    .await
                    .map_err(unavailable)?;
                for ((record, queued), running) in records.into_iter().zip(queued).zip(running) {
                    out.push(if queued.is_some() || running.is_some() {
                        Holding::Moving
                    } else {
                        match record.and_then(|r| serde_json::from_str::<SinkRecord>(&r).ok()) {
                            Some(r) => Holding::Settled(r.delivered),
                            None => Holding::Unknown,
                        }
                    });
                }
            }
            Ok(out)
        })
    }

    pub(super) fn known_appointments(&self) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        Box::pin(async move {
            // A cursor, a thousand fields a step: one HKEYS of a clinic network's records
            // (hundreds of thousands) would hold Redis, and every booking's lock, for its length.
            let mut ids = std::collections::BTreeSet::new();
            let mut cursor: u64 = 0;
            loop {
                let (next, page): (u64, Vec<String>) = ::redis::cmd("HSCAN")
                    .arg(self.key("records"))
                    .arg(cursor)
                    .arg("COUNT")
                    .arg(SCAN_COUNT)
                    .query_async(&mut self.conn())
                    .await
                    .map_err(unavailable)?;
                // Field, value, field, value…; a field may come twice (the set dedups).
                ids.extend(
                    page.iter()
                        .step_by(2)
                        .filter_map(|f| f.split_once(SEP).map(|(_, a)| a.to_owned())),
                );
                if next == 0 {
                    return Ok(ids.into_iter().collect());
                }
                cursor = next;
            }
        })
    }

    pub(super) fn forget(&self, appointments: Vec<String>) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let sinks = self.sinks().await?;
            let fields: Vec<String> = sinks
                .iter()
                .flat_map(|s| appointments.iter().map(move |a| field(s, a)))
                .collect();
            for chunk in fields.chunks(500) {
                let _: i64 = self
                    .conn()
                    .hdel(self.key("records"), chunk)
                    .await
                    .map_err(unavailable)?;
            }
            Ok(())
        })
    }
}
