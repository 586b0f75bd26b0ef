//! What slotgate keeps per inbound calendar in the sync store: its read progress (sync token,
//! what each meeting became in Canvas) and its push channels, and how they are loaded and saved.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::canvas::Mirror;
use super::{Failure, Inbound};

/// A calendar's sync progress (store key `<kind>:<calendar>`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Progress {
    /// Google's `nextSyncToken` (Graph calendars are read whole).
    pub sync_token: Option<String>,
    /// Meeting id → what it became in Canvas.
    pub mirrors: BTreeMap<String, Mirror>,
    pub last_sync: Option<Timestamp>,
    pub last_full_sync: Option<Timestamp>,
    pub last_error: Option<String>,
}

/// A calendar's push channels (store key `<kind>:<calendar>#channels`): Google watch
/// channels, or Graph subscriptions (`id` the subscription id, `secret` its clientState).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Channels {
    pub open: Vec<Channel>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    pub id: String,
    pub secret: String,
    pub resource: Option<String>,
    pub expires_at: Timestamp,
    /// Graph asked for it to be reauthorized (`reauthorizationRequired`): renew it now.
    #[serde(default)]
    pub reauthorize: bool,
}

impl Inbound {
    pub(super) async fn progress(&self, index: usize) -> Result<Progress, Failure> {
        let key = self.calendars[index].key.clone();
        let v = self
            .store
            .calendar(key)
            .await
            .map_err(|e| Failure::Later(e.to_string()))?;
        Ok(v.and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default())
    }

    pub(super) async fn save(&self, index: usize, p: &Progress) -> Result<(), Failure> {
        let key = self.calendars[index].key.clone();
        let v = serde_json::to_value(p).map_err(|e| Failure::Later(e.to_string()))?;
        self.store
            .put_calendar(key, v)
            .await
            .map_err(|e| Failure::Later(e.to_string()))
    }

    /// A calendar's channels; none known when the store cannot be read (a push is then
    /// refused, which is the safe side).
    pub(super) async fn channels(&self, index: usize) -> Channels {
        self.stored_channels(index).await.unwrap_or_default()
    }

    /// The channels as stored, or `None` when the store cannot be read: whoever changes and
    /// saves them back must not save an empty list over the real one.
    pub(super) async fn stored_channels(&self, index: usize) -> Option<Channels> {
        let key = format!("{}#channels", self.calendars[index].key);
        match self.store.calendar(key).await {
            Ok(Some(v)) => Some(serde_json::from_value(v).unwrap_or_default()),
            Ok(None) => Some(Channels::default()),
            Err(e) => {
                tracing::warn!(error = %e, "calendar channels unavailable");
                None
            }
        }
    }

    pub(super) async fn save_channels(&self, index: usize, c: &Channels) {
        let key = format!("{}#channels", self.calendars[index].key);
        let saved = match serde_json::to_value(c) {
            Ok(v) => self
                .store
                .put_calendar(key, v)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = saved {
            tracing::warn!(error = %e, "push channels not saved");
        }
    }

    pub(super) async fn note_error(&self, index: usize, failure: &Failure) {
        if let Ok(mut p) = self.progress(index).await {
            p.last_error = Some(failure.to_string());
            let _ = self.save(index, &p).await;
        }
    }
}
