//! Push channels, kept open by the sync leader: Google watch channels and Graph subscriptions
//! opened, renewed before they end, replaced when gone, marked or dropped when a push says so,
//! and stopped at shutdown.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::state::Channel;
use super::{Api, Failure, Inbound, google, graph};
use crate::store::sync::ReadAsk;

/// A channel or subscription just opened (or renewed).
pub struct Opened {
    /// Google's `resourceId`, or Graph's subscription id.
    pub resource: Option<String>,
    pub expires_at: Timestamp,
}

impl Inbound {
    /// Keeps one live channel per calendar, renewed a quarter of its life before it ends, and
    /// a full read every reconcile interval.
    pub(super) async fn keep_channels_forever(self: Arc<Self>) {
        let ttl = self.services.settings.sync.channel_ttl;
        let pause = (ttl / 8).clamp(Duration::from_millis(250), Duration::from_secs(60));
        loop {
            for i in 0..self.calendars.len() {
                self.keep_channel(i).await;
                self.resync_if_due(i).await;
            }
            let _ = tokio::time::timeout(pause, self.keeper.notified()).await;
        }
    }

    async fn keep_channel(&self, index: usize) {
        let cal = &self.calendars[index];
        let Some(public) = self.services.settings.sync.public_url.clone() else {
            return;
        };
        let ttl = self.services.settings.sync.channel_ttl;
        let now = Timestamp::now();
        let margin = SignedDuration::try_from(ttl / 4).unwrap_or(SignedDuration::ZERO);
        let Some(mut channels) = self.stored_channels(index).await else {
            return;
        };
        let fresh = |c: &Channel| c.expires_at.duration_since(now) > margin && !c.reauthorize;
        if channels.open.iter().any(fresh) {
            let before = channels.open.len();
            channels.open.retain(|c| c.expires_at > now);
            if channels.open.len() != before {
                self.save_channels(index, &channels).await;
            }
            return;
        }
        let until = now
            .checked_add(SignedDuration::try_from(ttl).unwrap_or(SignedDuration::ZERO))
            .unwrap_or(now);
        let outcome = match &cal.api {
            Api::Google(api) => {
                let address = endpoint(&public, "google");
                let channel = Channel {
                    id: uuid::Uuid::new_v4().to_string(),
                    secret: crate::config::random_hex(32),
                    resource: None,
                    expires_at: until,
                    reauthorize: false,
                };
                // Known before Google's `sync` handshake can arrive.
                channels.open.push(channel.clone());
                self.save_channels(index, &channels).await;
                let opened = google::watch(
                    api,
                    &cal.entry.calendar,
                    &channel.id,
                    &channel.secret,
                    &address,
                    ttl.as_secs().max(1),
                )
                .await;
                match opened {
                    Ok(o) => {
                        let old: Vec<Channel> = channels
                            .open
                            .iter()
                            .filter(|c| c.id != channel.id)
                            .cloned()
                            .collect();
                        for c in &old {
                            let _ = google::stop(api, &c.id, c.resource.as_deref()).await;
                        }
                        channels.open = vec![Channel {
                            resource: o.resource,
                            expires_at: o.expires_at,
                            ..channel
                        }];
                        Ok(())
                    }
                    Err(e) => {
                        channels.open.retain(|c| c.id != channel.id);
                        Err(e)
                    }
                }
            }
            Api::Graph(api) => {
                let current = channels.open.iter().find(|c| c.expires_at > now).cloned();
                let renewed = match &current {
                    Some(c) => graph::renew(api, &c.id, until).await,
                    None => Err(Failure::Gone),
                };
                match (renewed, current) {
                    (Ok(o), Some(c)) => {
                        channels.open = vec![Channel {
                            expires_at: o.expires_at,
                            reauthorize: false,
                            ..c
                        }];
                        Ok(())
                    }
                    (Err(Failure::Gone), _) | (Ok(_), None) => {
                        let secret = crate::config::random_hex(32);
                        let address = endpoint(&public, "graph");
                        match graph::subscribe(api, &cal.entry.calendar, &address, &secret, until)
                            .await
                        {
                            Ok(o) => {
                                channels.open = vec![Channel {
                                    id: o.resource.clone().unwrap_or_default(),
                                    secret,
                                    resource: o.resource,
                                    expires_at: o.expires_at,
                                    reauthorize: false,
                                }];
                                // Changes between the old subscription's end and now.
                                self.request(index, ReadAsk::full());
                                Ok(())
                            }
                            Err(e) => Err(e),
                        }
                    }
                    (Err(e), _) => Err(e),
                }
            }
        };
        channels.last_error = outcome.as_ref().err().map(ToString::to_string);
        if let Err(e) = &outcome {
            tracing::warn!(calendar = %cal.key, error = %e, "push channel not opened; will retry");
        }
        self.save_channels(index, &channels).await;
    }

    pub(super) async fn mark_channel(&self, index: usize, id: &str, change: impl Fn(&mut Channel)) {
        let Some(mut channels) = self.stored_channels(index).await else {
            return;
        };
        channels
            .open
            .iter_mut()
            .filter(|c| c.id == id)
            .for_each(change);
        self.save_channels(index, &channels).await;
        // On the sync leader, at once; on another replica, at the leader's next round.
        self.keeper.notify_one();
    }

    pub(super) async fn drop_channel(&self, index: usize, id: &str, why: &str) {
        let Some(mut channels) = self.stored_channels(index).await else {
            return;
        };
        channels.open.retain(|c| c.id != id);
        channels.last_error = Some(why.to_owned());
        tracing::warn!(calendar = %self.calendars[index].key, "{why}");
        self.save_channels(index, &channels).await;
        self.keeper.notify_one();
    }

    /// Closes every push channel (shutdown): the calendars stop posting to this process.
    pub async fn close(&self) {
        for (i, cal) in self.calendars.iter().enumerate() {
            let Some(mut channels) = self.stored_channels(i).await else {
                continue;
            };
            for c in &channels.open {
                let closed = match &cal.api {
                    Api::Google(api) => google::stop(api, &c.id, c.resource.as_deref()).await,
                    Api::Graph(api) => graph::unsubscribe(api, &c.id).await,
                };
                if let Err(e) = closed {
                    tracing::warn!(calendar = %cal.key, error = %e, "push channel not closed; it expires on its own");
                }
            }
            channels.open.clear();
            self.save_channels(i, &channels).await;
        }
    }
}

fn endpoint(public: &url::Url, kind: &str) -> String {
    let mut url = public.clone();
    if let Ok(mut s) = url.path_segments_mut() {
        s.pop_if_empty().extend(["v1", "webhooks", kind]);
    }
    url.to_string()
}
