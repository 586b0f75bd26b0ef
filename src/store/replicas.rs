//! What several replicas on one Redis tell each other: invalidations of cached availability
//! (a Redis channel, so a booking on one replica drops the stale answers of all of them), and
//! whether Redis answers at all (`slotgate_redis_up`).

use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::ConnectionManager;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::scheduling::slot_cache::{Invalidation, SlotCache};

/// Starts the publisher, the subscriber and the health check.
pub fn spawn(
    client: ::redis::Client,
    conn: ConnectionManager,
    channel: String,
    slot_cache: Arc<SlotCache>,
    metrics: Metrics,
) -> Vec<tokio::task::JoinHandle<()>> {
    let me = uuid::Uuid::new_v4().simple().to_string();
    let (sender, receiver) = mpsc::unbounded_channel();
    slot_cache.broadcast_to(sender);
    vec![
        tokio::spawn(publish_forever(
            conn.clone(),
            channel.clone(),
            me.clone(),
            receiver,
        )),
        tokio::spawn(subscribe_forever(client, channel, me, slot_cache)),
        tokio::spawn(check_forever(conn, metrics)),
    ]
}

async fn publish_forever(
    conn: ConnectionManager,
    channel: String,
    me: String,
    mut receiver: mpsc::UnboundedReceiver<Invalidation>,
) {
    while let Some(what) = receiver.recv().await {
        let message = format!("{me} {}", what.encode());
        let sent: Result<i64, _> = ::redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(message)
            .query_async(&mut conn.clone())
            .await;
        if let Err(e) = sent {
            // The others drop their whole cache when they get Redis back.
            tracing::warn!(error = %super::redis::unavailable(e), "invalidation not broadcast");
        }
    }
}

async fn subscribe_forever(
    client: ::redis::Client,
    channel: String,
    me: String,
    slot_cache: Arc<SlotCache>,
) {
    let mut first = true;
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => {
                if pubsub.subscribe(&channel).await.is_ok() {
                    // Whatever was said while we were not listening is lost: start clean, and
                    // re-read the rules in case a reload was announced meanwhile.
                    slot_cache.drop_all();
                    if !std::mem::take(&mut first) {
                        slot_cache.apply(&Invalidation::RulesChanged);
                    }
                    tracing::info!("listening for other replicas' invalidations");
                    let mut messages = pubsub.on_message();
                    while let Some(m) = messages.next().await {
                        let Ok(text) = m.get_payload::<String>() else {
                            continue;
                        };
                        let Some((from, what)) = text.split_once(' ') else {
                            continue;
                        };
                        if from != me
                            && let Some(what) = Invalidation::decode(what)
                        {
                            slot_cache.apply(&what);
                        }
                    }
                    tracing::warn!("lost the invalidation channel; reconnecting");
                }
            }
            Err(e) => {
                tracing::debug!(error = %super::redis::unavailable(e), "invalidation channel unavailable");
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn check_forever(conn: ConnectionManager, metrics: Metrics) {
    let mut up = None;
    loop {
        let answer: Result<String, _> = tokio::time::timeout(
            super::redis::RESPONSE_TIMEOUT,
            ::redis::cmd("PING").query_async(&mut conn.clone()),
        )
        .await
        .unwrap_or_else(|_| {
            Err(::redis::RedisError::from((
                ::redis::ErrorKind::Io,
                "timed out",
            )))
        });
        let now_up = answer.is_ok();
        metrics.redis_up.set(i64::from(now_up));
        if up != Some(now_up) {
            match &answer {
                Ok(_) => tracing::info!("redis reachable"),
                Err(e) => tracing::error!(
                    error = %super::redis::unavailable(e.clone()),
                    "redis unreachable: holds, bookings, changes and Other Events fail closed with 503; browsing continues"
                ),
            }
            up = Some(now_up);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
