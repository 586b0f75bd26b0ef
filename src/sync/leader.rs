//! One replica at a time does the calendar-sync work (planning, deliveries, the reconciler,
//! inbound channels and reads): the holder of a lease in Redis, renewed every third of its
//! life. A replica that dies stops renewing, and another takes over within two lease periods;
//! one that cannot renew (Redis away) steps down at once, so two never work side by side
//! longer than a lease. Every replica still accepts pushes and enqueues work in the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ::redis::Script;
use ::redis::aio::ConnectionManager;

/// How this process decides it may do the sync work.
pub enum Leadership {
    /// One process (memory backend): always.
    Alone,
    /// Several replicas: while holding the lease `key`.
    Lease {
        conn: ConnectionManager,
        key: String,
        period: Duration,
    },
}

const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
";

/// Aborts the work when leadership ends (or this supervisor is itself aborted).
struct Work(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Work {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Runs `start`'s tasks while this replica leads; `leading` tells others (shutdown) whether it
/// does.
pub fn spawn(
    leadership: Leadership,
    leading: Arc<AtomicBool>,
    start: impl Fn() -> Vec<tokio::task::JoinHandle<()>> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        match leadership {
            Leadership::Alone => {
                leading.store(true, Ordering::SeqCst);
                let _work = Work(start());
                std::future::pending::<()>().await;
            }
            Leadership::Lease { conn, key, period } => {
                lead_while_leased(conn, key, period, leading, start).await;
            }
        }
    })
}

async fn lead_while_leased(
    conn: ConnectionManager,
    key: String,
    period: Duration,
    leading: Arc<AtomicBool>,
    start: impl Fn() -> Vec<tokio::task::JoinHandle<()>>,
) {
    let me = uuid::Uuid::new_v4().simple().to_string();
    let period_ms = u64::try_from(period.as_millis()).unwrap_or(u64::MAX).max(1);
    let renew = Script::new(RENEW);
    let beat = period / 3;
    loop {
        let won: Result<Option<String>, _> = ::redis::cmd("SET")
            .arg(&key)
            .arg(&me)
            .arg("NX")
            .arg("PX")
            .arg(period_ms)
            .query_async(&mut conn.clone())
            .await;
        if matches!(won, Ok(Some(_))) {
            tracing::info!("this replica is now the sync leader");
            leading.store(true, Ordering::SeqCst);
            let work = Work(start());
            loop {
                tokio::time::sleep(beat).await;
                let renewed: Result<i64, _> = renew
                    .key(&key)
                    .arg(&me)
                    .arg(period_ms)
                    .invoke_async(&mut conn.clone())
                    .await;
                if !matches!(renewed, Ok(1)) {
                    break;
                }
            }
            leading.store(false, Ordering::SeqCst);
            drop(work);
            tracing::warn!("sync leadership lost; another replica takes over");
        }
        tokio::time::sleep(beat).await;
    }
}
