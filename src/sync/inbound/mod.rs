//! Calendar sync in: meetings in clinicians' Google and Outlook calendars become Canvas Other
//! Events that block their time (contract "Inbound"). Pushes only say "something changed";
//! the calendar is then read and Canvas brought in line, one calendar at a time.

pub mod canvas;
pub mod google;
pub mod graph;
pub mod meeting;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use self::canvas::Mirror;
use self::meeting::{Decision, Meeting};
use crate::config::sync::{CalendarAccess, InboundSettings};
use crate::scheduling::Services;
use crate::store::sync::{ReadAsk, SyncStore};
use crate::sync::outbound::SyncEngine;
use crate::sync::sinks::Outcome;
use crate::sync::sinks::google::GoogleApi;
use crate::sync::sinks::graph::GraphApi;

/// A channel or subscription just opened (or renewed).
pub struct Opened {
    /// Google's `resourceId`, or Graph's subscription id.
    pub resource: Option<String>,
    pub expires_at: Timestamp,
}

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

/// A push that did not come from a channel slotgate opened.
#[derive(Debug)]
pub struct Refused;

/// The event a Graph change notification names: `resourceData.id`, else the last segment of
/// `resource` (`Users/{user}/Events/{id}`). Anything odd names none, and the window is read.
fn changed_event(n: &serde_json::Value) -> Option<String> {
    let id = n["resourceData"]["id"].as_str().or_else(|| {
        let resource = n["resource"].as_str()?;
        let (path, id) = resource.rsplit_once('/')?;
        path.to_ascii_lowercase().ends_with("/events").then_some(id)
    })?;
    let plausible = !id.is_empty()
        && id.len() <= 512
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_=+/".contains(&b));
    plausible.then(|| id.to_owned())
}

/// What a verified Graph notification is about (`lifecycleEvent`, absent on a change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lifecycle {
    Change,
    Missed,
    ReauthorizationRequired,
    SubscriptionRemoved,
}

impl Lifecycle {
    fn of(event: Option<&str>) -> Self {
        match event {
            None => Lifecycle::Change,
            Some("reauthorizationRequired") => Lifecycle::ReauthorizationRequired,
            Some("subscriptionRemoved") => Lifecycle::SubscriptionRemoved,
            // `missed`, and any event Graph adds later: reading the whole window is always safe.
            Some(_) => Lifecycle::Missed,
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

#[derive(Debug, Clone)]
struct Queued {
    ask: ReadAsk,
    due: Instant,
    failures: u32,
}

/// Calendars read at once by the sync leader.
const PARALLEL_READS: usize = 4;

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

    fn queue(&self) -> MutexGuard<'_, BTreeMap<usize, Queued>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a read of calendar `index` here (on the sync leader).
    fn request(&self, index: usize, ask: ReadAsk) {
        let mut q = self.queue();
        let entry = q.entry(index).or_insert(Queued {
            ask: ReadAsk::default(),
            due: Instant::now(),
            failures: 0,
        });
        entry.ask.merge(ask);
        entry.due = entry.due.min(Instant::now());
        drop(q);
        self.wake.notify_one();
    }

    /// Asks for a read from any replica (a push): the sync leader takes it from the store.
    async fn ask(&self, index: usize, ask: ReadAsk) {
        let key = self.calendars[index].key.clone();
        if let Err(e) = self.store.request_read(key, ask).await {
            // The next full read catches up.
            tracing::warn!(error = %e, "calendar read not requested");
        }
        self.wake.notify_one();
    }

    /// Moves reads asked for by any replica into this (the leader's) queue.
    async fn take_asked(&self) {
        match self.store.take_reads().await {
            Ok(asked) => {
                for (key, ask) in asked {
                    if let Some(i) = self.calendars.iter().position(|c| c.key == key) {
                        self.request(i, ask);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "calendar read requests unavailable"),
        }
    }

    /// Reads what is asked, up to [`PARALLEL_READS`] calendars at once and never one calendar
    /// twice at a time (its progress is read, changed and written back by one read): a slow
    /// mailbox holds back its own pushes, not everyone's.
    async fn read_forever(self: Arc<Self>) {
        for i in 0..self.calendars.len() {
            self.request(i, ReadAsk::full());
        }
        let mut running = tokio::task::JoinSet::new();
        let mut reading: BTreeMap<tokio::task::Id, usize> = BTreeMap::new();
        loop {
            self.take_asked().await;
            while running.len() < PARALLEL_READS {
                let next = {
                    let mut q = self.queue();
                    let now = Instant::now();
                    let busy: BTreeSet<usize> = reading.values().copied().collect();
                    let due = q
                        .iter()
                        .find(|(i, e)| e.due <= now && !busy.contains(i))
                        .map(|(i, _)| *i);
                    due.and_then(|i| q.remove(&i).map(|job| (i, job)))
                };
                let Some((index, job)) = next else { break };
                let me = self.clone();
                let task = running.spawn(async move {
                    let result = me.read(index, &job.ask).await;
                    (job, result)
                });
                reading.insert(task.id(), index);
            }
            tokio::select! {
                Some(done) = running.join_next_with_id(), if !running.is_empty() => {
                    let (id, outcome) = match done {
                        Ok((id, (job, result))) => (id, Some((job, result))),
                        // A read that panicked: its calendar is asked again by the next resync.
                        Err(e) => (e.id(), None),
                    };
                    let index = reading.remove(&id);
                    if let (Some(index), Some((job, Err(failure)))) = (index, outcome) {
                        self.retry_later(index, job, &failure).await;
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = self.wake.notified() => {}
            }
        }
    }

    /// A read that failed goes back in the queue, with what it was asked, after a backoff.
    async fn retry_later(&self, index: usize, job: Queued, failure: &Failure) {
        let cal = &self.calendars[index];
        tracing::warn!(calendar = %cal.key, error = %failure, "calendar not read; will retry");
        self.note_error(index, failure).await;
        let failures = job.failures + 1;
        let wait = Duration::from_secs(1 << failures.min(6)).min(Duration::from_secs(60));
        let mut q = self.queue();
        let entry = q.entry(index).or_insert(Queued {
            ask: ReadAsk::default(),
            due: Instant::now() + wait,
            failures,
        });
        entry.ask.merge(job.ask);
        entry.failures = entry.failures.max(failures);
        entry.due = entry.due.max(Instant::now() + wait);
    }

    async fn progress(&self, index: usize) -> Result<Progress, Failure> {
        let key = self.calendars[index].key.clone();
        let v = self
            .store
            .calendar(key)
            .await
            .map_err(|e| Failure::Later(e.to_string()))?;
        Ok(v.and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default())
    }

    async fn save(&self, index: usize, p: &Progress) -> Result<(), Failure> {
        let key = self.calendars[index].key.clone();
        let v = serde_json::to_value(p).map_err(|e| Failure::Later(e.to_string()))?;
        self.store
            .put_calendar(key, v)
            .await
            .map_err(|e| Failure::Later(e.to_string()))
    }

    /// A calendar's channels; none known when the store cannot be read (a push is then
    /// refused, which is the safe side).
    async fn channels(&self, index: usize) -> Channels {
        self.stored_channels(index).await.unwrap_or_default()
    }

    /// The channels as stored, or `None` when the store cannot be read: whoever changes and
    /// saves them back must not save an empty list over the real one.
    async fn stored_channels(&self, index: usize) -> Option<Channels> {
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

    async fn save_channels(&self, index: usize, c: &Channels) {
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

    async fn note_error(&self, index: usize, failure: &Failure) {
        if let Ok(mut p) = self.progress(index).await {
            p.last_error = Some(failure.to_string());
            let _ = self.save(index, &p).await;
        }
    }

    /// The clinic location of the calendar's Other Events, and its time zone.
    fn location(&self, cal: &InboundSettings) -> Option<(String, jiff::tz::TimeZone)> {
        let clinic = self.services.policy();
        let locations = &clinic.rules.locations;
        let place = match &cal.location_id {
            Some(id) => locations.iter().find(|l| &l.id == id),
            None => locations.first(),
        }?;
        Some((place.id.clone(), place.timezone.clone()))
    }

    /// Reads the calendar (what changed, or everything when `full`) and brings Canvas in line.
    async fn read(&self, index: usize, ask: &ReadAsk) -> Result<(), Failure> {
        let mut full = ask.full;
        let cal = &self.calendars[index];
        let (location, zone) = self
            .location(&cal.entry)
            .ok_or_else(|| Failure::Broken("no clinic location for its Other Events".into()))?;
        let mut progress = self.progress(index).await?;
        let now = Timestamp::now();
        let window = meeting::window(now, self.services.settings.sync.window_days);
        let (meetings, token) = match &cal.api {
            Api::Google(api) => {
                let since = if full {
                    None
                } else {
                    progress.sync_token.clone()
                };
                full |= since.is_none();
                let listing =
                    match google::list(api, &cal.entry.calendar, since.as_deref(), window).await {
                        Err(Failure::Gone) => {
                            // The token expired: everything again, duplicates impossible by identifier.
                            full = true;
                            google::list(api, &cal.entry.calendar, None, window).await?
                        }
                        other => other?,
                    };
                let meetings: Vec<Meeting> = listing
                    .items
                    .iter()
                    .filter_map(|v| meeting::google(v, &zone))
                    .collect();
                (meetings, listing.next_sync_token)
            }
            Api::Graph(api) => {
                // The events a push named, when that is all that is asked; else the window.
                let named = if ask.events_only() && !ask.events.is_empty() {
                    graph::events(api, &cal.entry.calendar, &ask.events).await?
                } else {
                    None
                };
                // A deleted event slotgate holds nothing for is most likely a whole recurring
                // series (its occurrences are held under their own ids): read the window.
                let named = named.filter(|found| {
                    found
                        .iter()
                        .all(|(id, v)| v.is_some() || progress.mirrors.contains_key(id))
                });
                match named {
                    Some(found) => {
                        let meetings = found
                            .into_iter()
                            .filter_map(|(id, v)| match v {
                                Some(v) => meeting::graph(&v, &zone),
                                None => Some(Meeting::gone(id)),
                            })
                            .collect();
                        (meetings, None)
                    }
                    None => {
                        full = true;
                        let items = graph::window(api, &cal.entry.calendar, window).await?;
                        let meetings = items
                            .iter()
                            .filter_map(|v| meeting::graph(v, &zone))
                            .collect();
                        (meetings, None)
                    }
                }
            }
        };
        let result = self
            .converge(index, &location, &mut progress, &meetings, full, window)
            .await;
        if result.is_ok() {
            // Only once every change is in Canvas: a failure re-reads from the old token.
            progress.sync_token = token;
            progress.last_sync = Some(now);
            progress.last_error = None;
            if full {
                progress.last_full_sync = Some(now);
            }
        }
        self.save(index, &progress).await?;
        result
    }

    async fn converge(
        &self,
        index: usize,
        location: &str,
        progress: &mut Progress,
        meetings: &[Meeting],
        full: bool,
        (from, to): (Timestamp, Timestamp),
    ) -> Result<(), Failure> {
        let cal = &self.calendars[index].entry;
        let mut seen = BTreeSet::new();
        for m in meetings {
            seen.insert(m.id.clone());
            let want = match meeting::decide(m, cal.all_day, from, to) {
                Decision::Ignore => continue,
                Decision::Hold(b) => Some(b),
                Decision::Release => None,
            };
            let known = progress.mirrors.get(&m.id);
            match (&want, known) {
                (Some(b), Some(k)) if k.holds(b) => continue,
                // Nothing known and nothing wanted: in a full read there is nothing to undo;
                // in a change it may be a meeting whose record was lost, so look.
                (None, None) if full => continue,
                _ => {}
            }
            let made = canvas::apply(
                &self.services,
                &self.outbound,
                cal,
                location,
                &m.id,
                want.as_ref(),
                known,
                true,
            )
            .await;
            match made {
                Ok(Some(mirror)) => {
                    progress.mirrors.insert(m.id.clone(), mirror);
                }
                Ok(None) => {
                    progress.mirrors.remove(&m.id);
                }
                Err(e) => {
                    let _ = self.save(index, progress).await;
                    return Err(e.into());
                }
            }
            self.save(index, progress).await?;
        }
        if full {
            // Meetings gone from the calendar (or out of the window) free their time.
            let gone: Vec<(String, Mirror)> = progress
                .mirrors
                .iter()
                .filter(|(id, _)| !seen.contains(*id))
                .map(|(id, m)| (id.clone(), m.clone()))
                .collect();
            for (id, mirror) in gone {
                canvas::apply(
                    &self.services,
                    &self.outbound,
                    cal,
                    location,
                    &id,
                    None,
                    Some(&mirror),
                    false,
                )
                .await?;
                progress.mirrors.remove(&id);
                self.save(index, progress).await?;
            }
        }
        Ok(())
    }

    /// Keeps one live channel per calendar, renewed a quarter of its life before it ends, and
    /// a full read every reconcile interval.
    async fn keep_channels_forever(self: Arc<Self>) {
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

    async fn resync_if_due(&self, index: usize) {
        let every = self.services.settings.sync.reconcile_interval;
        let Ok(p) = self.progress(index).await else {
            return;
        };
        let due = p.last_full_sync.is_none_or(|t| {
            t.duration_until(Timestamp::now())
                > SignedDuration::try_from(every).unwrap_or(SignedDuration::MAX)
        });
        if due && !self.queue().contains_key(&index) {
            self.request(index, ReadAsk::full());
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

    /// Verifies a Google push (`X-Goog-Channel-ID`, `X-Goog-Channel-Token`) and, unless it is
    /// the `sync` handshake, queues a read of that calendar.
    pub async fn google_push(
        &self,
        channel: &str,
        token: &str,
        state: &str,
    ) -> Result<(), Refused> {
        for (i, cal) in self.calendars.iter().enumerate() {
            if !matches!(cal.api, Api::Google(_)) {
                continue;
            }
            if self
                .channels(i)
                .await
                .open
                .iter()
                .any(|c| c.id == channel && constant_time_eq(c.secret.as_bytes(), token.as_bytes()))
            {
                if state != "sync" {
                    self.ask(i, ReadAsk::changes()).await;
                }
                return Ok(());
            }
        }
        Err(Refused)
    }

    /// Verifies every notification of a Graph push (subscription and clientState) and queues
    /// a read of each calendar named; one that does not match refuses the whole push.
    /// Verifies Graph notifications (each must carry its subscription's `clientState`; one
    /// that does not refuses the whole delivery, and nothing is done) and acts on them: a change
    /// queues a read of the event it names (of the calendar when it names none); the
    /// lifecycle events get what Graph asks for:
    /// `missed` a full read, `reauthorizationRequired` a renewal by the sync leader now,
    /// `subscriptionRemoved` a new subscription and a full read of the gap.
    pub async fn graph_push(&self, body: &serde_json::Value) -> Result<usize, Refused> {
        let items = body["value"].as_array().ok_or(Refused)?;
        let mut verified = Vec::with_capacity(items.len());
        for n in items {
            let (Some(sub), Some(state)) =
                (n["subscriptionId"].as_str(), n["clientState"].as_str())
            else {
                return Err(Refused);
            };
            let mut found = None;
            for (i, cal) in self.calendars.iter().enumerate() {
                if matches!(cal.api, Api::Graph(_))
                    && self.channels(i).await.open.iter().any(|c| {
                        c.id == sub && constant_time_eq(c.secret.as_bytes(), state.as_bytes())
                    })
                {
                    found = Some(i);
                    break;
                }
            }
            let lifecycle = Lifecycle::of(n["lifecycleEvent"].as_str());
            verified.push((found.ok_or(Refused)?, sub, lifecycle, changed_event(n)));
        }
        let mut reads: BTreeMap<usize, ReadAsk> = BTreeMap::new();
        for (i, sub, lifecycle, event) in verified {
            let ask = match (lifecycle, event) {
                (Lifecycle::Change, Some(event)) => ReadAsk::events([event]),
                (Lifecycle::Change, None) => ReadAsk::changes(),
                (Lifecycle::Missed, _) => ReadAsk::full(),
                (Lifecycle::ReauthorizationRequired, _) => {
                    self.mark_channel(i, sub, |c| c.reauthorize = true).await;
                    continue;
                }
                (Lifecycle::SubscriptionRemoved, _) => {
                    self.drop_channel(i, sub, "Graph removed the subscription; subscribing again")
                        .await;
                    ReadAsk::full()
                }
            };
            reads.entry(i).or_default().merge(ask);
        }
        let calendars = reads.len();
        for (i, ask) in reads {
            self.ask(i, ask).await;
        }
        Ok(calendars)
    }

    async fn mark_channel(&self, index: usize, id: &str, change: impl Fn(&mut Channel)) {
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

    async fn drop_channel(&self, index: usize, id: &str, why: &str) {
        let Some(mut channels) = self.stored_channels(index).await else {
            return;
        };
        channels.open.retain(|c| c.id != id);
        channels.last_error = Some(why.to_owned());
        tracing::warn!(calendar = %self.calendars[index].key, "{why}");
        self.save_channels(index, &channels).await;
        self.keeper.notify_one();
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_change_notification_names_its_event() {
        let by_data =
            json!({"resource": "Users/u/Events/AAMkAGI1", "resourceData": {"id": "AAMk-AGI_2="}});
        assert_eq!(changed_event(&by_data).as_deref(), Some("AAMk-AGI_2="));
        let by_path = json!({"resource": "Users/dr@clinic.example/Events/AAMkAGI1"});
        assert_eq!(changed_event(&by_path).as_deref(), Some("AAMkAGI1"));
        for odd in [
            json!({}),
            json!({"resource": "Users/u/Messages/AAMkAGI1"}),
            json!({"resourceData": {"id": ""}}),
            json!({"resourceData": {"id": "a b"}}),
            json!({"resourceData": {"id": "x".repeat(513)}}),
            json!({"resourceData": {"id": "../../subscriptions"}}),
        ] {
            assert_eq!(changed_event(&odd), None, "{odd}");
        }
    }

    #[test]
    fn lifecycle_events_are_told_apart_and_unknown_ones_read_everything() {
        assert_eq!(Lifecycle::of(None), Lifecycle::Change);
        assert_eq!(
            Lifecycle::of(Some("reauthorizationRequired")),
            Lifecycle::ReauthorizationRequired
        );
        assert_eq!(
            Lifecycle::of(Some("subscriptionRemoved")),
            Lifecycle::SubscriptionRemoved
        );
        assert_eq!(Lifecycle::of(Some("missed")), Lifecycle::Missed);
        assert_eq!(Lifecycle::of(Some("somethingNew")), Lifecycle::Missed);
    }
}
