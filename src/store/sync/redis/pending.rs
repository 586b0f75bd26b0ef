//! The appointments waiting to be planned, in Redis: `unplanned` (a sorted set by when each
//! was first asked for) and `planning` (those taken and not yet planned, with that time kept).

use ::redis::AsyncCommands;
use futures::future::BoxFuture;
use jiff::Timestamp;

use super::{RedisSyncStore, from_ms, ms};
use crate::store::StoreResult;
use crate::store::redis::unavailable;

/// KEYS: unplanned, planning. ARGV: max. Moves the oldest to planning; gives them.
pub(super) const TAKE_PENDING: &str = include_str!("lua/take_pending.lua");

/// KEYS: unplanned, planning. Whatever was taken for planning waits again, at its first time.
pub(super) const UNTAKE: &str = include_str!("lua/untake.lua");

impl RedisSyncStore {
    pub(super) fn mark_pending(&self, ids: Vec<String>) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            if ids.is_empty() {
                return Ok(());
            }
            let now = ms(Timestamp::now());
            let mut cmd = ::redis::cmd("ZADD");
            cmd.arg(self.key("unplanned")).arg("NX");
            for id in ids {
                cmd.arg(now).arg(id);
            }
            let _: i64 = cmd
                .query_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }

    pub(super) fn take_pending(&self, max: usize) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        Box::pin(async move {
            self.scripts
                .take_pending
                .key(self.key("unplanned"))
                .key(self.key("planning"))
                .arg(max.max(1))
                .invoke_async(&mut self.conn())
                .await
                .map_err(unavailable)
        })
    }

    pub(super) fn planned(&self, ids: Vec<String>) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            if ids.is_empty() {
                return Ok(());
            }
            let _: i64 = self
                .conn()
                .zrem(self.key("planning"), ids)
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }

    pub(super) fn oldest_unplanned(&self) -> BoxFuture<'_, StoreResult<Option<Timestamp>>> {
        Box::pin(async move {
            type Oldest = Vec<(String, f64)>;
            let (a, b): (Oldest, Oldest) = ::redis::pipe()
                .zrange_withscores(self.key("unplanned"), 0, 0)
                .zrange_withscores(self.key("planning"), 0, 0)
                .query_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
            Ok(a.into_iter().chain(b).filter_map(|(_, s)| from_ms(s)).min())
        })
    }

    /// A new leader starts: running jobs go back to their queues, then whatever was taken for
    /// planning waits again.
    pub(super) fn recover(&self) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            self.requeue_running().await?;
            let _: i64 = self
                .scripts
                .untake
                .key(self.key("unplanned"))
                .key(self.key("planning"))
                .invoke_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }
}
