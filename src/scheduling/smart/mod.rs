//! SMART Scheduling Links: the clinic's bookable time for the next `[smart] days` days as a
//! public bulk publication. Built from the same computation as `/v1/availability`
//! (`availability::find` over the slot cache, the booking window, licensure on each slot's local
//! date, modalities), except that time held or booked through slotgate is marked rather than
//! hidden. One build serves every consumer until availability changes (the slot cache's epoch,
//! a new directory snapshot, a hold or booking record lapsing) or `max_age` passes.

pub mod grid;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_lc_rs::digest;
use bytes::Bytes;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use futures::StreamExt;

use self::grid::{Ask, Grid, PublicSlot, ScheduleSpec, Site};
use super::Services;
use super::answer_cache::Encoded;
use super::availability::{self, Query};
use super::browse;
use super::directory::Snapshot;
use crate::config::smart::SmartSettings;
use crate::error::ApiError;
use crate::rules::window;
use crate::types::UsState;

/// What one build found, before it becomes FHIR.
pub struct Publication {
    pub snapshot: Arc<Snapshot>,
    pub schedules: Vec<ScheduleSpec>,
    /// Sorted by schedule, start, then reason.
    pub slots: Vec<PublicSlot>,
    /// When the oldest Canvas data behind it was read.
    pub as_of: Timestamp,
}

impl Publication {
    /// Every state the publication concerns: its locations', and its video schedules'.
    pub fn states(&self) -> Vec<UsState> {
        let mut states: Vec<UsState> = self
            .snapshot
            .places
            .iter()
            .map(|p| p.info.state)
            .chain(self.schedules.iter().filter_map(|s| match s.site {
                Site::Virtual(state) => Some(state),
                Site::Place(_) => None,
            }))
            .collect();
        states.sort();
        states.dedup();
        states
    }
}

/// The three NDJSON files of a publication (Location, Schedule, Slot), made by the API layer.
pub type Render = fn(&Services, &SmartSettings, &Publication) -> [Vec<u8>; 3];

/// One published file: its body (gzip made once) and a tag that names its content.
pub struct File {
    pub body: Encoded,
    /// Hex of its SHA-256: the same on every replica for the same bytes.
    pub tag: String,
}

impl File {
    fn new(body: Vec<u8>) -> File {
        let hash = digest::digest(&digest::SHA256, &body);
        File {
            tag: hash.as_ref()[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            body: Encoded::new(Bytes::from(body)),
        }
    }
}

/// A publication as served.
pub struct Files {
    pub location: File,
    pub schedule: File,
    pub slot: File,
    pub states: Vec<UsState>,
    /// When this replica first published exactly this data (whole seconds).
    pub transaction_time: Timestamp,
}

impl Files {
    fn same_data(&self, other: &Files) -> bool {
        self.location.tag == other.location.tag
            && self.schedule.tag == other.schedule.tag
            && self.slot.tag == other.slot.tag
            && self.states == other.states
    }
}

/// Without the shared state, holds are unknown: such a build is kept only this long.
const INCOMPLETE: Duration = Duration::from_secs(5);

#[derive(Clone)]
struct Kept {
    files: Arc<Files>,
    /// The slot cache's epoch and the directory snapshot it was built from.
    epoch: u64,
    directory: Timestamp,
    /// `max_age` after the build, or sooner when a hold or booking record it marked lapses.
    until: Timestamp,
}

/// The publication, built at most once at a time and shared.
#[derive(Default)]
pub struct Publisher {
    /// Held while a build runs: consumers arriving meanwhile wait for it instead of building.
    kept: tokio::sync::Mutex<Option<Kept>>,
    /// A publication that merely aged is being built again beside the consumers.
    refreshing: AtomicBool,
}

impl Publisher {
    pub fn new() -> Publisher {
        Publisher::default()
    }

    /// The current publication. The kept one while nothing it depends on changed; once it has
    /// only aged (past `max_age`, or a hold it marked lapsed), still the kept one while a new one
    /// is built in the background (a cold build of a large clinic waits on the background
    /// share of the Canvas budget, and no consumer should wait with it); after availability
    /// changed (a hold, a booking, an invalidation, a new directory), a new one at once.
    pub async fn files(
        &self,
        s: &Arc<Services>,
        smart: &SmartSettings,
        render: Render,
    ) -> Result<Arc<Files>, ApiError> {
        let mut kept = self.kept.lock().await;
        // Read before the build: a change during it makes the next request build again.
        let epoch = s.slot_cache.epoch();
        let snapshot = s.directory.snapshot().await?;
        let now = Timestamp::now();
        if let Some(k) = kept.as_ref()
            && k.epoch == epoch
            && k.directory == snapshot.fetched_at
        {
            if now >= k.until && !self.refreshing.swap(true, Ordering::SeqCst) {
                let (s, smart, previous) = (s.clone(), smart.clone(), k.clone());
                tokio::spawn(async move {
                    s.publisher.refresh(&s, &smart, render, previous).await;
                });
            }
            return Ok(k.files.clone());
        }
        let previous = kept.as_ref().map(|k| k.files.clone());
        let built = build(s, smart, render, snapshot, epoch, now, previous).await?;
        let files = built.files.clone();
        *kept = Some(built);
        Ok(files)
    }

    /// Builds again beside the consumers, and keeps the result unless availability changed
    /// meanwhile (then the next request builds anyway).
    async fn refresh(&self, s: &Arc<Services>, smart: &SmartSettings, render: Render, aged: Kept) {
        let epoch = s.slot_cache.epoch();
        match s.directory.snapshot().await {
            // Availability changed meanwhile: the next request builds, at once.
            Ok(snapshot) if snapshot.fetched_at != aged.directory || epoch != aged.epoch => {}
            Ok(snapshot) => {
                let now = Timestamp::now();
                match build(s, smart, render, snapshot, epoch, now, Some(aged.files)).await {
                    Ok(built) => {
                        let mut kept = self.kept.lock().await;
                        if kept.as_ref().is_some_and(|k| {
                            k.epoch == built.epoch && k.directory == built.directory
                        }) {
                            *kept = Some(built);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "SMART publication not refreshed"),
                }
            }
            Err(e) => tracing::warn!(error = %e, "SMART publication not refreshed"),
        }
        self.refreshing.store(false, Ordering::SeqCst);
    }
}

/// One build: gathered from the slot cache and the shared state, rendered, hashed and
/// compressed off the async threads. Unchanged data keeps the previous files (and so its
/// publication time and manifest).
async fn build(
    s: &Arc<Services>,
    smart: &SmartSettings,
    render: Render,
    snapshot: Arc<Snapshot>,
    epoch: u64,
    now: Timestamp,
    previous: Option<Arc<Files>>,
) -> Result<Kept, ApiError> {
    let directory = snapshot.fetched_at;
    let (publication, next_change) = gather(s, snapshot, now, smart.days).await?;
    let until = [
        Some(later(now, smart.max_age)),
        next_change.map(|t| t.max(now)),
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(now);
    let (services, settings) = (s.clone(), smart.clone());
    // Rendering, hashing and compressing megabytes is CPU work: off the async threads.
    let files = tokio::task::spawn_blocking(move || {
        let [location, schedule, slot] = render(&services, &settings, &publication);
        let files = Files {
            location: File::new(location),
            schedule: File::new(schedule),
            slot: File::new(slot),
            states: publication.states(),
            transaction_time: Timestamp::from_second(publication.as_of.as_second())
                .unwrap_or(publication.as_of),
        };
        match previous {
            Some(previous) if previous.same_data(&files) => previous,
            _ => {
                for file in [&files.location, &files.schedule, &files.slot] {
                    file.body.gzip();
                }
                Arc::new(files)
            }
        }
    })
    .await
    .map_err(|e| ApiError::internal(&e))?;
    Ok(Kept {
        files,
        epoch,
        directory,
        until,
    })
}

fn later(now: Timestamp, by: Duration) -> Timestamp {
    SignedDuration::try_from(by)
        .ok()
        .and_then(|by| now.checked_add(by).ok())
        .unwrap_or(now)
}

/// Each of the grid's questions as `/v1/availability` would be asked it: a reason at its
/// first duration, in person or by video for one state, over every location's dates, with no
/// limit.
fn questions(grid: &Grid, snapshot: &Snapshot) -> Vec<(Ask, Query)> {
    let Some((start, end)) = grid.dates() else {
        return Vec::new();
    };
    grid.asks()
        .into_iter()
        .filter_map(|ask| {
            let reason = snapshot.policy.rules.reasons.get(ask.reason)?;
            let duration = reason.durations.first().copied()?;
            let query = Query {
                reason: reason.clone(),
                duration_minutes: duration,
                patient_state: ask.state,
                modalities: vec![ask.modality()],
                start,
                end,
                tz: TimeZone::UTC,
                practitioner: None,
                location: None,
                specialty: None,
                language: None,
                limit: usize::MAX,
            };
            Some((ask, query))
        })
        .collect()
}

/// Fills the slot cache with every list the questions need, on the background share of the
/// Canvas budget: a cold build over a large clinic then never takes patients' share. What is
/// already cached costs nothing; a failure here is met again (and reported) by the question.
async fn prefetch(
    s: &Services,
    snapshot: &Snapshot,
    questions: &[(Ask, Query)],
    window: crate::rules::window::Window,
) {
    let mut keys = std::collections::HashMap::new();
    for (_, query) in questions {
        if let Some(span) = availability::span(query, &window) {
            let candidates = availability::plan(query, snapshot, span);
            keys.extend(availability::slot_keys(query, &candidates));
        }
    }
    futures::stream::iter(keys)
        .for_each_concurrent(browse::fan_out(s), |(key, tz)| async move {
            if let Err(e) = s.slot_cache.get_in_background(&key, &tz).await {
                tracing::debug!(error = %e, "SMART prefetch failed; the question asks again");
            }
        })
        .await;
}

/// Asks availability each question the grid has, with nothing hidden, and marks what is held
/// or booked. Returns the publication and when it stops being right on its own (a hold or a
/// booking record lapsing; soon when the shared state could not be read).
#[tracing::instrument(skip_all, fields(days = days))]
async fn gather(
    s: &Services,
    snapshot: Arc<Snapshot>,
    now: Timestamp,
    days: u32,
) -> Result<(Publication, Option<Timestamp>), ApiError> {
    let grid = Grid::new(&snapshot, now, days);
    let window = window::window(&snapshot.policy.booking, now, false);
    let (taken, next_change) = match browse::taken(s).await {
        Ok(taken) => {
            let next = taken.next_change;
            (taken, next)
        }
        Err(e) => {
            tracing::warn!(error = %e, "SMART publication without holds and recent bookings");
            let taken = browse::Taken {
                held: Vec::new(),
                booked: Vec::new(),
                next_change: None,
            };
            (taken, Some(later(now, INCOMPLETE)))
        }
    };
    let stale = s.directory.is_stale().await;
    let questions = questions(&grid, &snapshot);
    prefetch(s, &snapshot, &questions, window).await;
    let mut slots = Vec::new();
    let mut as_of = snapshot.fetched_at;
    for (ask, query) in &questions {
        // Nothing busy is passed: held and booked time is marked below, not hidden.
        let answer = availability::find(
            snapshot.clone(),
            stale,
            &s.slot_cache,
            query,
            window,
            &[],
            browse::fan_out(s),
        )
        .await?;
        as_of = as_of.min(answer.as_of);
        slots.extend(grid.slots(
            &snapshot,
            *ask,
            &query.reason,
            &answer.offers,
            &taken.held,
            &taken.booked,
        ));
    }
    slots.sort_by_key(|a| (a.schedule, a.start, a.reason));
    tracing::debug!(
        schedules = grid.schedules().len(),
        slots = slots.len(),
        "SMART publication gathered"
    );
    let publication = Publication {
        snapshot,
        schedules: grid.into_schedules(),
        slots,
        as_of,
    };
    Ok((publication, next_change))
}
