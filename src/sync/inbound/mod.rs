//! Calendar sync in: meetings in clinicians' Google and Outlook calendars become Canvas Other
//! Events that block their time (contract "Inbound"). Pushes only say "something changed";
//! the calendar is then read and Canvas brought in line, one calendar at a time.

pub mod canvas;
mod channels;
pub mod google;
pub mod graph;
pub mod meeting;
mod push;
mod queue;
mod read;
mod state;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use serde::Serialize;
use tokio::sync::Notify;

pub use self::channels::Opened;
pub use self::push::Refused;
use self::queue::Queued;
pub use self::state::{Channel, Channels, Progress};
use crate::config::sync::{CalendarAccess, InboundSettings};
use crate::scheduling::Services;
use crate::store::sync::SyncStore;
use crate::sync::outbound::SyncEngine;
use crate::sync::providers::google::GoogleApi;
use crate::sync::providers::graph::GraphApi;
use crate::sync::sinks::Outcome;

/// Why talking to a calendar failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The sync token or subscription is no longer honoured: start over.
    Gone,
    /// Try again shortly.
    Later(String),
    /// Will not heal by waiting (a calendar deleted, access revoked): shown to operators, and
    /// tried again at the next resync in case someone fixed it.
    Broken(String),
}

impl Failure {
    fn unreachable() -> Self {
        Self::Later("unreachable".into())
    }
}

impl From<Outcome> for Failure {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Retry { reason, .. } => Self::Later(reason),
            Outcome::Failed(reason) => Self::Broken(reason),
            Outcome::Delivered { .. } => Self::Later("unexpected answer".into()),
        }
    }
}

impl From<crate::canvas::Error> for Failure {
    fn from(e: crate::canvas::Error) -> Self {
        Self::Later(format!("Canvas: {e}"))
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Gone => f.write_str("sync token expired"),
            Self::Later(r) | Self::Broken(r) => f.write_str(r),
        }
    }
}

/// One inbound calendar's status for `GET /v1/admin/sync`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"kind": "google", "calendar": "dr.okafor@clinic.example", "practitioner_id": "4150cd20de8a470aa570a852859ac87e", "channel_expires_at": "2026-12-02T17:00:00Z", "last_sync": "2026-12-01T17:00:02Z", "mirrored": 3, "last_error": null}))]
pub struct InboundStatus {
    pub kind: &'static str,
    pub calendar: String,
    pub practitioner_id: String,
    /// When the push channel (or subscription) ends unless renewed; absent: no channel.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub channel_expires_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_sync: Option<Timestamp>,
    /// Meetings currently held as Canvas Other Events.
    pub mirrored: usize,
    /// Why the last read or channel renewal failed, if it did.
    pub last_error: Option<String>,
}

enum Api {
    Google(GoogleApi),
    Graph(GraphApi),
}

struct Calendar {
    entry: InboundSettings,
    api: Api,
    key: String,
}

pub struct Inbound {
    services: Arc<Services>,
    store: Arc<dyn SyncStore>,
    outbound: Arc<SyncEngine>,
    calendars: Vec<Calendar>,
    queue: Mutex<BTreeMap<usize, Queued>>,
    wake: Notify,
    /// Wakes the channel keeper when a push asked for a channel to be renewed or replaced.
    keeper: Notify,
}

impl Inbound {
    pub fn new(
        services: Arc<Services>,
        store: Arc<dyn SyncStore>,
        outbound: Arc<SyncEngine>,
    ) -> Arc<Self> {
        let calendars = services
            .settings
            .sync
            .inbound
            .iter()
            .map(|entry| Calendar {
                key: format!("{}:{}", entry.kind().as_str(), entry.calendar),
                api: match &entry.access {
                    CalendarAccess::Google { key, base_url } => {
                        Api::Google(GoogleApi::new(key.clone(), base_url.clone()))
                    }
                    CalendarAccess::Graph(g) => Api::Graph(GraphApi::new(g.clone())),
                },
                entry: entry.clone(),
            })
            .collect();
        Arc::new(Self {
            services,
            store,
            outbound,
            calendars,
            queue: Mutex::new(BTreeMap::new()),
            wake: Notify::new(),
            keeper: Notify::new(),
        })
    }

    /// Starts the reader and the channel keeper (nothing when no calendar is configured).
    pub fn spawn(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        if self.calendars.is_empty() {
            return Vec::new();
        }
        vec![
            tokio::spawn(self.clone().read_forever()),
            tokio::spawn(self.clone().keep_channels_forever()),
        ]
    }

    pub async fn status(&self) -> Vec<InboundStatus> {
        let mut out = Vec::new();
        for (i, cal) in self.calendars.iter().enumerate() {
            let progress = self.progress(i).await.unwrap_or_default();
            let channels = self.channels(i).await;
            out.push(InboundStatus {
                kind: cal.entry.kind().as_str(),
                calendar: cal.entry.calendar.clone(),
                practitioner_id: cal.entry.practitioner.as_str().to_owned(),
                channel_expires_at: channels.open.iter().map(|c| c.expires_at).max(),
                last_sync: progress.last_sync,
                mirrored: progress.mirrors.len(),
                last_error: progress.last_error.or(channels.last_error),
            });
        }
        out
    }
}
