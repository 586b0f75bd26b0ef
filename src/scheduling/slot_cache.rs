//! Canvas's free slots per (schedule, local date range, duration), cached so that thousands of
//! patients browsing cost Canvas one Slot search per schedule per TTL. Concurrent identical
//! misses share one Canvas call; when Canvas fails, the last good answer is served (marked
//! stale) for `[cache] stale_if_error_seconds`; bookings and notifications invalidate a
//! clinician's entries.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use moka::future::Cache;

use crate::canvas::{self, CanvasClient};
use crate::metrics::Metrics;
use crate::types::{PractitionerId, ScheduleId};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SlotKey {
    pub schedule: ScheduleId,
    /// Clinic-local dates, both inclusive, as Canvas's Slot search takes them.
    pub from: Date,
    pub to: Date,
    pub duration_minutes: u32,
}

/// One free slot as Canvas offered it, with its local date at the location precomputed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeSlot {
    pub start: Timestamp,
    pub end: Timestamp,
    pub local_date: Date,
}

#[derive(Debug)]
pub struct SlotList {
    /// Sorted by start.
    pub slots: Vec<FreeSlot>,
    pub fetched_at: Timestamp,
    /// The clinician's invalidation generation when the Canvas call started: a list fetched
    /// before an invalidation is never served after it, even if it lands in the cache later.
    generation: u64,
}

/// A cached answer and whether it is the stale fallback.
pub struct Lookup {
    pub list: Arc<SlotList>,
    pub stale: bool,
}

pub struct SlotCache {
    canvas: CanvasClient,
    /// Bumped by every invalidation, so answers computed before it are never reused.
    epoch: AtomicU64,
    /// Per clinician, bumped by their invalidations; plus a global one bumped by
    /// `invalidate_all`. Both only grow, so their sum changes whenever either does.
    generations: Mutex<HashMap<PractitionerId, u64>>,
    global_generation: AtomicU64,
    fresh: Cache<SlotKey, Arc<SlotList>>,
    last_good: Cache<SlotKey, Arc<SlotList>>,
    /// Keys whose Canvas call just failed: served from `last_good` without asking Canvas again
    /// for two seconds, so an outage does not make every request wait for a timeout.
    failing: Cache<SlotKey, ()>,
    metrics: Option<Metrics>,
    /// Where this replica's invalidations go to reach the others (several replicas only).
    broadcast: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<Invalidation>>,
    rules_changed: tokio::sync::Notify,
    /// Told whenever cached availability may have changed (the waitlist looks for openings).
    changed: tokio::sync::Notify,
    /// An entry read this old is fetched again in the background, so that entries in use
    /// are renewed before they expire and nobody waits for Canvas at the TTL.
    refresh_after: Duration,
    /// Keys being fetched again now (one background refresh per key).
    refreshing: Mutex<std::collections::HashSet<SlotKey>>,
}

/// An invalidation, as replicas tell each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    Practitioner(PractitionerId),
    All,
    /// Holds changed: rendered answers are out of date, Canvas data is not.
    Touch,
    /// An operator reloaded the rules: every replica re-reads its own configuration.
    RulesChanged,
}

impl Invalidation {
    pub fn encode(&self) -> String {
        match self {
            Self::Practitioner(p) => format!("p:{}", p.as_str()),
            Self::All => "all".into(),
            Self::Touch => "touch".into(),
            Self::RulesChanged => "rules".into(),
        }
    }

    pub fn decode(text: &str) -> Option<Self> {
        match text {
            "all" => Some(Self::All),
            "touch" => Some(Self::Touch),
            "rules" => Some(Self::RulesChanged),
            _ => text
                .strip_prefix("p:")
                .and_then(|p| p.parse().ok())
                .map(Self::Practitioner),
        }
    }
}

/// Entries are renewed once three quarters of their TTL have passed.
fn refresh_after(ttl: Duration) -> Duration {
    ttl.mul_f64(0.75)
}

/// Whether an entry fetched at `fetched_at` is old enough to renew.
fn due_for_refresh(fetched_at: Timestamp, after: Duration, now: Timestamp) -> bool {
    SignedDuration::try_from(after)
        .ok()
        .and_then(|after| fetched_at.checked_add(after).ok())
        .is_some_and(|due| now >= due)
}

/// How long a failed Canvas call is remembered.
const FAILURE_MEMORY: Duration = Duration::from_secs(2);

impl SlotCache {
    pub fn new(
        canvas: CanvasClient,
        ttl: Duration,
        stale_if_error: Duration,
        max_entries: u64,
        metrics: Option<Metrics>,
    ) -> Self {
        let fresh = Cache::builder()
            .max_capacity(max_entries)
            .time_to_live(ttl)
            .support_invalidation_closures()
            .build();
        let last_good = Cache::builder()
            .max_capacity(max_entries)
            .time_to_live(ttl + stale_if_error)
            .build();
        Self {
            canvas,
            epoch: AtomicU64::new(0),
            generations: Mutex::new(HashMap::new()),
            global_generation: AtomicU64::new(0),
            failing: Cache::builder()
                .max_capacity(max_entries)
                .time_to_live(FAILURE_MEMORY)
                .build(),
            fresh,
            last_good,
            metrics,
            broadcast: std::sync::OnceLock::new(),
            rules_changed: tokio::sync::Notify::new(),
            changed: tokio::sync::Notify::new(),
            refresh_after: refresh_after(ttl),
            refreshing: Mutex::new(std::collections::HashSet::new()),
        }
    }

    /// From now on every invalidation is also sent here, for the other replicas.
    pub fn broadcast_to(&self, sender: tokio::sync::mpsc::UnboundedSender<Invalidation>) {
        let _ = self.broadcast.set(sender);
    }

    fn tell_others(&self, what: Invalidation) {
        if let Some(sender) = self.broadcast.get() {
            let _ = sender.send(what);
        }
    }

    /// Applies another replica's invalidation here (without sending it on).
    pub fn apply(&self, what: &Invalidation) {
        match what {
            Invalidation::Practitioner(p) => self.drop_practitioner(p),
            Invalidation::All => self.drop_all(),
            Invalidation::Touch => {
                self.epoch.fetch_add(1, Ordering::SeqCst);
                self.changed.notify_one();
            }
            // One wake-up is kept if nobody waits yet, so a reload is never missed.
            Invalidation::RulesChanged => self.rules_changed.notify_one(),
        }
    }

    /// Tells the other replicas to reload their rules.
    pub fn announce_rules_changed(&self) {
        self.tell_others(Invalidation::RulesChanged);
    }

    /// Returns when cached availability may have changed (here or, told, on another replica).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Returns when another replica announced a rules reload.
    pub async fn rules_changed(&self) {
        self.rules_changed.notified().await;
    }

    /// The free slots for `key`, from the cache or one Canvas call shared by every caller
    /// that misses at the same time. `tz` is the location's zone (for local dates).
    pub async fn get(
        self: &Arc<Self>,
        key: &SlotKey,
        tz: &TimeZone,
    ) -> Result<Lookup, canvas::Error> {
        self.lookup(key, tz, false).await
    }

    /// As [`get`](Self::get), for work nobody waits on (filling the cache for the SMART
    /// publication): a Canvas call it needs waits for the background share of the budget, so
    /// that hundreds of slot searches never take patients' share.
    pub async fn get_in_background(
        self: &Arc<Self>,
        key: &SlotKey,
        tz: &TimeZone,
    ) -> Result<Lookup, canvas::Error> {
        self.lookup(key, tz, true).await
    }

    async fn lookup(
        self: &Arc<Self>,
        key: &SlotKey,
        tz: &TimeZone,
        background: bool,
    ) -> Result<Lookup, canvas::Error> {
        let generation = self.generation(&key.schedule.practitioner);
        if let Some(list) = self.fresh.get(key).await {
            if list.generation == generation {
                self.count("hit");
                // Not while Canvas just failed for this key: that would spend the Canvas
                // budget (bookings need it) on a call per read.
                if due_for_refresh(list.fetched_at, self.refresh_after, Timestamp::now())
                    && !self.failing.contains_key(key)
                {
                    self.refresh(key, tz, generation);
                }
                return Ok(Lookup { list, stale: false });
            }
            // Fetched before an invalidation that it outlived.
            self.fresh.invalidate(key).await;
        }
        if self.failing.contains_key(key)
            && let Some(list) = self.last_good.get(key).await
        {
            self.count("stale");
            return Ok(Lookup { list, stale: true });
        }
        let ran = std::sync::atomic::AtomicBool::new(false);
        let fetch = async {
            ran.store(true, Ordering::SeqCst);
            self.count("miss");
            self.fetch(key, tz, generation, background).await
        };
        let answer = self.fresh.try_get_with(key.clone(), fetch).await;
        if !ran.load(Ordering::SeqCst) {
            // Another caller's Canvas call answered this one too (or filled the cache meanwhile).
            self.count("coalesced");
        }
        match answer {
            Ok(list) => Ok(Lookup { list, stale: false }),
            Err(error) => {
                self.failing.insert(key.clone(), ()).await;
                match self.last_good.get(key).await {
                    Some(list) => {
                        self.count("stale");
                        Ok(Lookup { list, stale: true })
                    }
                    None => Err((*error).clone()),
                }
            }
        }
    }

    /// One Canvas Slot search, as the cache keeps it (and as the stale fallback).
    async fn fetch(
        &self,
        key: &SlotKey,
        tz: &TimeZone,
        generation: u64,
        background: bool,
    ) -> Result<Arc<SlotList>, canvas::Error> {
        let canvas = if background {
            self.canvas.background()
        } else {
            self.canvas.clone()
        };
        let slots = canvas
            .slots(&key.schedule, key.from, key.to, key.duration_minutes)
            .await?;
        let mut free: Vec<FreeSlot> = slots
            .into_iter()
            // Canvas only lists free slots (§3); anything else is not bookable anyway.
            .filter(|s| s.status == "free")
            .map(|s| FreeSlot {
                start: s.start.timestamp,
                end: s.end.timestamp,
                local_date: s.start.timestamp.to_zoned_datetime(tz.clone()).date(),
            })
            .filter(|s| s.end > s.start)
            .collect();
        // Availability merges lists in start order; Canvas's order is not a contract.
        free.sort_by_key(|s| (s.start, s.end));
        free.dedup();
        // Kept for a while, tens of thousands of them: no room for growth.
        free.shrink_to_fit();
        let list = Arc::new(SlotList {
            slots: free,
            fetched_at: Timestamp::now(),
            generation,
        });
        self.last_good.insert(key.clone(), list.clone()).await;
        Ok(list)
    }

    /// Fetches `key` again in the background, once at a time; the entry it replaces keeps
    /// answering meanwhile. A failure changes nothing: the entry expires as it would have.
    fn refresh(self: &Arc<Self>, key: &SlotKey, tz: &TimeZone, generation: u64) {
        {
            let mut refreshing = self.refreshing.lock().unwrap_or_else(|e| e.into_inner());
            if !refreshing.insert(key.clone()) {
                return;
            }
        }
        self.count("refresh");
        let (cache, key, tz) = (self.clone(), key.clone(), tz.clone());
        tokio::spawn(async move {
            match cache.fetch(&key, &tz, generation, false).await {
                // Not over an invalidation that came meanwhile.
                Ok(list) if cache.generation(&key.schedule.practitioner) == generation => {
                    cache.fresh.insert(key.clone(), list).await;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "slot refresh failed; the entry expires as usual");
                    cache.failing.insert(key.clone(), ()).await;
                }
            }
            cache
                .refreshing
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
        });
    }

    fn generation(&self, practitioner: &PractitionerId) -> u64 {
        let generations = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        self.global_generation.load(Ordering::SeqCst)
            + generations.get(practitioner).copied().unwrap_or(0)
    }

    /// Drops every fresh entry of a clinician (any location, any range): the next query asks
    /// Canvas again. The stale fallback stays, for when Canvas is down.
    pub fn invalidate_practitioner(&self, practitioner: &PractitionerId) {
        self.drop_practitioner(practitioner);
        self.tell_others(Invalidation::Practitioner(practitioner.clone()));
    }

    fn drop_practitioner(&self, practitioner: &PractitionerId) {
        {
            let mut generations = self.generations.lock().unwrap_or_else(|e| e.into_inner());
            *generations.entry(practitioner.clone()).or_default() += 1;
        }
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_one();
        let practitioner = practitioner.clone();
        if let Err(e) = self
            .fresh
            .invalidate_entries_if(move |k, _| k.schedule.practitioner == practitioner)
        {
            tracing::warn!(error = %e, "slot cache invalidation failed; dropping everything");
            self.fresh.invalidate_all();
        }
    }

    pub fn invalidate_all(&self) {
        self.drop_all();
        self.tell_others(Invalidation::All);
    }

    /// Drops everything here only (a replica that may have missed invalidations).
    pub fn drop_all(&self) {
        self.global_generation.fetch_add(1, Ordering::SeqCst);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_one();
        self.fresh.invalidate_all();
    }

    /// Marks every rendered answer out of date without dropping Canvas data (a hold changed).
    pub fn touch(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_one();
        self.tell_others(Invalidation::Touch);
    }

    /// How old an entry is when a read renews it in the background.
    pub fn refresh_after(&self) -> Duration {
        self.refresh_after
    }

    /// Changes whenever cached availability may have become wrong.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    fn count(&self, outcome: &str) {
        if let Some(m) = &self.metrics {
            m.slot_cache.with_label_values(&[outcome]).inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_due_for_renewal_at_three_quarters_of_their_ttl() {
        assert_eq!(
            refresh_after(Duration::from_secs(60)),
            Duration::from_secs(45)
        );
        assert_eq!(
            refresh_after(Duration::from_secs(1)),
            Duration::from_millis(750)
        );
        let at: Timestamp = "2026-11-01T08:00:00Z".parse().unwrap();
        let after = Duration::from_secs(45);
        let secs = |n: i64| at + SignedDuration::from_secs(n);
        assert!(!due_for_refresh(at, after, secs(44)));
        assert!(due_for_refresh(at, after, secs(45)));
        assert!(due_for_refresh(at, after, secs(600)));
        // A clock that went back says nothing is due.
        assert!(!due_for_refresh(at, after, secs(-5)));
        assert!(!due_for_refresh(Timestamp::MAX, after, Timestamp::MAX));
    }
}
