//! What Canvas says about the clinic (schedules, clinicians and their licences, locations),
//! joined with the clinic's rules into one snapshot. Read often, changed rarely: kept for
//! `[cache] directory_ttl_seconds`, refreshed in the background, and when Canvas fails the
//! last good snapshot keeps serving.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tokio::sync::{Mutex, RwLock};

use crate::canvas::fhir::{EXT_MEETING_ROOM_LINK, extension};
use crate::canvas::{self, CanvasClient, licenses};
use crate::rules::eligibility::Licensure;
use crate::rules::model::{LocationInfo, Policy, PractitionerProfile};
use crate::types::{PractitionerId, ScheduleId};

/// A practice location a patient can be seen at.
#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    pub info: LocationInfo,
    pub name: String,
    /// What only public listings show (shared: offers clone their place).
    pub details: Arc<PlaceDetails>,
}

/// What Canvas says of a practice location beyond its name: its address and identifiers (NPI).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlaceDetails {
    pub address: Option<canvas::fhir::Address>,
    pub identifiers: Vec<canvas::fhir::Identifier>,
}

#[derive(Debug, Clone)]
pub struct Clinician {
    pub id: PractitionerId,
    pub name: String,
    pub profile: PractitionerProfile,
    pub licensure: Licensure,
    /// The clinic's configured link, else the Canvas personal meeting room.
    pub meeting_link: Option<String>,
}

/// A bookable (clinician × mapped location) schedule.
#[derive(Debug, Clone)]
pub struct ScheduleEntry {
    pub id: ScheduleId,
    /// Index into `Snapshot::places`.
    pub place: usize,
}

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub clinicians: BTreeMap<PractitionerId, Clinician>,
    pub places: Vec<Place>,
    pub schedules: Vec<ScheduleEntry>,
    pub fetched_at: Timestamp,
    /// The rules and booking policy this snapshot was built with: one request reads both from
    /// here, so a reload never pairs new rules with clinicians built from the old ones.
    pub policy: Arc<Policy>,
}

impl Snapshot {
    pub fn place_by_key(&self, schedule_key: &str) -> Option<&Place> {
        self.places
            .iter()
            .find(|p| p.info.schedule_key == schedule_key)
    }

    pub fn place_by_id(&self, id: &str) -> Option<&Place> {
        self.places.iter().find(|p| p.info.id == id)
    }

    /// Builds the snapshot from Canvas's answers and the clinic's rules.
    pub fn build(
        policy: Arc<Policy>,
        schedules: Vec<canvas::fhir::Schedule>,
        practitioners: Vec<canvas::fhir::Practitioner>,
        locations: Vec<canvas::fhir::Location>,
        fetched_at: Timestamp,
    ) -> Snapshot {
        let rules = &policy.rules;
        let mut places: Vec<Place> = locations
            .into_iter()
            .filter(|l| l.status.as_deref() != Some("inactive"))
            .filter_map(|l| {
                // Unmapped locations cannot be scheduled: their zone and state are unknown.
                let info = rules.location_by_id(&l.id)?.clone();
                let name = l.name.or_else(|| l.alias.first().cloned()).unwrap_or(l.id);
                let details = Arc::new(PlaceDetails {
                    address: l.address,
                    identifiers: l.identifier,
                });
                Some(Place {
                    info,
                    name,
                    details,
                })
            })
            .collect();
        places.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.info.id.cmp(&b.info.id)));
        let clinicians: BTreeMap<PractitionerId, Clinician> = practitioners
            .into_iter()
            .filter(|p| p.active != Some(false))
            .filter_map(|p| {
                let id: PractitionerId = p.id.parse().ok()?;
                // A clinician the clinic did not describe in [[practitioners]] practises no
                // modality here: offering them would guess at what they see.
                let profile = rules.practitioners.get(&id).cloned().unwrap_or_default();
                let licensure = Licensure::new(&profile, &licenses::licenses(&p));
                let name = p
                    .name
                    .first()
                    .and_then(|n| n.display())
                    .unwrap_or_else(|| id.to_string());
                let meeting_link = profile.telehealth_url.clone().or_else(|| {
                    extension(&p.extension, EXT_MEETING_ROOM_LINK).and_then(|e| e.value_url.clone())
                });
                Some((
                    id.clone(),
                    Clinician {
                        id,
                        name,
                        profile,
                        licensure,
                        meeting_link,
                    },
                ))
            })
            .collect();
        let mut schedules: Vec<ScheduleEntry> = schedules
            .into_iter()
            .filter_map(|s| {
                let id: ScheduleId = s.id.parse().ok()?;
                let place = places
                    .iter()
                    .position(|p| p.info.schedule_key == id.location_key)?;
                clinicians
                    .contains_key(&id.practitioner)
                    .then_some(ScheduleEntry { id, place })
            })
            .collect();
        schedules.sort_by(|a, b| a.id.cmp(&b.id));
        Snapshot {
            clinicians,
            places,
            schedules,
            fetched_at,
            policy,
        }
    }
}

pub struct Directory {
    canvas: CanvasClient,
    /// The policy the next snapshot is built with (each snapshot carries its own).
    policy: std::sync::RwLock<Arc<Policy>>,
    ttl: Duration,
    current: RwLock<Option<(Arc<Snapshot>, Instant)>>,
    loading: Mutex<()>,
}

impl Directory {
    pub fn new(canvas: CanvasClient, policy: Policy, ttl: Duration) -> Self {
        Self {
            canvas,
            policy: std::sync::RwLock::new(Arc::new(policy)),
            ttl,
            current: RwLock::new(None),
            loading: Mutex::new(()),
        }
    }

    /// The rules and booking policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        if let Ok(current) = self.current.try_read()
            && let Some((snapshot, _)) = current.as_ref()
        {
            return snapshot.policy.clone();
        }
        self.policy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Builds a snapshot with `policy` from Canvas now and puts both in force together; if
    /// Canvas cannot be read, nothing changes.
    pub async fn replace_policy(&self, policy: Policy) -> Result<(), canvas::Error> {
        let _gate = self.loading.lock().await;
        self.load_with(Arc::new(policy)).await.map(drop)
    }

    /// The current snapshot, whatever its age: only the first use waits for Canvas (one load
    /// however many callers wait). Later refreshes happen in `refresh_forever`, so a Canvas
    /// outage never makes requests queue behind failing reloads; the last good copy serves.
    pub async fn snapshot(&self) -> Result<Arc<Snapshot>, canvas::Error> {
        if let Some((snapshot, _)) = self.current.read().await.as_ref() {
            return Ok(snapshot.clone());
        }
        let _gate = self.loading.lock().await;
        if let Some((snapshot, _)) = self.current.read().await.as_ref() {
            return Ok(snapshot.clone());
        }
        self.load().await
    }

    /// Whether the snapshot is older than two refresh periods: Canvas has been failing.
    pub async fn is_stale(&self) -> bool {
        self.current
            .read()
            .await
            .as_ref()
            .is_some_and(|(_, loaded)| loaded.elapsed() > self.ttl * 2)
    }

    /// Fetches schedules, practitioners and locations at once and replaces the snapshot.
    pub async fn load(&self) -> Result<Arc<Snapshot>, canvas::Error> {
        let policy = self
            .policy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        self.load_with(policy).await
    }

    async fn load_with(&self, policy: Arc<Policy>) -> Result<Arc<Snapshot>, canvas::Error> {
        let (schedules, practitioners, locations) = tokio::try_join!(
            self.canvas.schedules(),
            self.canvas.practitioners(),
            self.canvas.locations()
        )?;
        let snapshot = Arc::new(Snapshot::build(
            policy.clone(),
            schedules,
            practitioners,
            locations,
            Timestamp::now(),
        ));
        let mut current = self.current.write().await;
        *current = Some((snapshot.clone(), Instant::now()));
        *self.policy.write().unwrap_or_else(|e| e.into_inner()) = policy;
        drop(current);
        Ok(snapshot)
    }

    /// Loads now, then every `ttl`; after a failure it tries again within seconds, keeping
    /// the last good copy meanwhile. Runs until the task is dropped.
    pub async fn refresh_forever(self: Arc<Self>) {
        let retry = Duration::from_secs(5).min(self.ttl);
        loop {
            let outcome = {
                let _gate = self.loading.lock().await;
                self.load().await
            };
            let wait = match outcome {
                Ok(_) => self.ttl,
                Err(e) => {
                    tracing::warn!(error = %e, "directory refresh failed; keeping the last good copy");
                    retry
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}
