//! "Who can see me, and when?": the clinic's rules applied to Canvas's free slots.
//!
//! Two pure steps around the Canvas fan-out, so the rules can be tested without I/O:
//! `plan` picks the schedules worth asking Canvas about and the local dates to ask for;
//! `assemble` turns their free slots into offers, keeping only what every rule allows.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use super::directory::{Clinician, Place, ScheduleEntry, Snapshot};
use super::slot_cache::{FreeSlot, SlotCache, SlotKey};
use crate::canvas;
use crate::rules::eligibility::{licensed_for_visit, offers_modality, offers_specialty};
use crate::rules::model::{Modality, Reason};
use crate::rules::window::Window;
use crate::types::{PractitionerId, UsState};

/// A validated availability question.
#[derive(Debug, Clone)]
pub struct Query {
    pub reason: Reason,
    pub duration_minutes: u32,
    pub patient_state: Option<UsState>,
    /// The modalities asked about (already checked against the reason).
    pub modalities: Vec<Modality>,
    /// Local dates in `tz`, both inclusive.
    pub start: Date,
    pub end: Date,
    pub tz: TimeZone,
    pub practitioner: Option<PractitionerId>,
    pub location: Option<String>,
    pub specialty: Option<String>,
    pub language: Option<String>,
    pub limit: usize,
}

impl Query {
    /// Everything the answer depends on, normalised: equal questions asked differently share
    /// it, and its size is bounded because every part was validated.
    pub fn cache_key(&self, staff: bool) -> String {
        let modalities: Vec<&str> = self.modalities.iter().map(|m| m.as_str()).collect();
        format!(
            "{staff}|{}|{}|{:?}|{}|{}..{}|{}|{:?}|{:?}|{:?}|{:?}|{}",
            self.reason.code,
            self.duration_minutes,
            self.patient_state.map(|s| s.to_string()),
            modalities.join(","),
            self.start,
            self.end,
            self.tz.iana_name().unwrap_or("UTC"),
            self.practitioner.as_ref().map(|p| p.as_str()),
            self.location,
            self.specialty,
            self.language,
            self.limit,
        )
    }

    /// Whether the booking horizon cut the question short, so that its answer grows as time
    /// passes (and must not be reused).
    pub fn clipped_by_horizon(&self, window: &Window) -> bool {
        let after = self
            .end
            .tomorrow()
            .ok()
            .and_then(|d| d.to_zoned_datetime(self.tz.clone()).ok())
            .map(|z| z.timestamp());
        after.is_none_or(|after| window.latest < after)
    }
}

/// Time a clinician is taken although Canvas may not show it yet (holds, fresh bookings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busy {
    pub practitioner: PractitionerId,
    pub start: Timestamp,
    pub end: Timestamp,
}

/// A schedule worth asking Canvas about, and for which modalities.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    pub schedule: &'a ScheduleEntry,
    pub clinician: &'a Clinician,
    pub place: &'a Place,
    pub modalities: Vec<Modality>,
    /// The Canvas Slot search: clinic-local dates at the schedule's location.
    pub from: Date,
    pub to: Date,
}

/// An offered slot, before it gets its id.
#[derive(Debug, Clone)]
pub struct Offer<'a> {
    pub clinician: &'a Clinician,
    pub place: &'a Place,
    pub start: Timestamp,
    pub end: Timestamp,
    pub modality: Modality,
}

/// The instants `[from, until)` the query covers, clipped to the booking window.
pub fn span(query: &Query, window: &Window) -> Option<(Timestamp, Timestamp)> {
    let first = query
        .start
        .to_zoned_datetime(query.tz.clone())
        .ok()?
        .timestamp();
    let after = query
        .end
        .tomorrow()
        .ok()?
        .to_zoned_datetime(query.tz.clone())
        .ok()?
        .timestamp();
    let from = first.max(window.earliest);
    let until = after.min(
        window
            .latest
            .saturating_add(SignedDuration::from_secs(1))
            .ok()?,
    );
    (from < until).then_some((from, until))
}

fn local_date(ts: Timestamp, tz: &TimeZone) -> Date {
    ts.to_zoned_datetime(tz.clone()).date()
}

/// The schedules whose clinician and location pass every rule that does not depend on the
/// slot itself, with the local dates to ask Canvas for.
pub fn plan<'a>(
    query: &Query,
    snapshot: &'a Snapshot,
    span: (Timestamp, Timestamp),
) -> Vec<Candidate<'a>> {
    let (from, until) = span;
    let last = until
        .saturating_sub(SignedDuration::from_secs(1))
        .unwrap_or(until);
    snapshot
        .schedules
        .iter()
        .filter_map(|schedule| {
            let clinician = snapshot.clinicians.get(&schedule.id.practitioner)?;
            let place = snapshot.places.get(schedule.place)?;
            let profile = &clinician.profile;
            let wanted = query
                .practitioner
                .as_ref()
                .is_none_or(|p| p == &clinician.id)
                && query.location.as_ref().is_none_or(|l| l == &place.info.id)
                && query
                    .specialty
                    .as_ref()
                    .is_none_or(|s| profile.specialties.contains(s))
                && query
                    .language
                    .as_ref()
                    .is_none_or(|l| profile.languages.contains(l))
                && offers_specialty(&query.reason, profile);
            if !wanted {
                return None;
            }
            let tz = &place.info.timezone;
            let (d0, d1) = (local_date(from, tz), local_date(last, tz));
            let modalities: Vec<Modality> = query
                .modalities
                .iter()
                .copied()
                .filter(|m| offers_modality(&query.reason, profile, *m))
                .filter(|m| {
                    // A cheap pre-check: some licence overlaps the dates at all.
                    let l = &clinician.licensure;
                    match m {
                        Modality::Telehealth => {
                            query.patient_state.is_some_and(|s| l.covers_any(s, d0, d1))
                        }
                        Modality::InPerson => {
                            l.covers_any(place.info.state, d0, d1)
                                && query.patient_state.is_none_or(|s| l.covers_any(s, d0, d1))
                        }
                    }
                })
                .collect();
            (!modalities.is_empty()).then_some(Candidate {
                schedule,
                clinician,
                place,
                modalities,
                from: d0,
                to: d1,
            })
        })
        .collect()
}

/// Offers from the candidates' free slots: inside the span, the right length, not busy,
/// licensed on the slot's local date; one telehealth offer per clinician and time however
/// many locations list it; sorted by start, then clinician, then location; at most `limit`.
///
/// Each candidate's slots are sorted by start, so the offers are merged in start order and
/// the work stops at `limit`: a week of fifty clinicians costs a hundred heap steps, not a
/// sort of thousands of slots.
pub fn assemble<'a>(
    query: &Query,
    candidates: &[Candidate<'a>],
    free: &[&[FreeSlot]],
    busy: &[Busy],
    span: (Timestamp, Timestamp),
) -> Vec<Offer<'a>> {
    let length = SignedDuration::from_mins(i64::from(query.duration_minutes));
    let taken: Vec<Vec<&Busy>> = candidates
        .iter()
        .map(|c| {
            busy.iter()
                .filter(|b| b.practitioner == c.clinician.id)
                .collect()
        })
        .collect();
    // (next start, candidate, position) for every candidate with slots left in the span.
    let mut heap: BinaryHeap<Reverse<(Timestamp, usize, usize)>> = free
        .iter()
        .enumerate()
        .filter_map(|(c, slots)| {
            let first = slots.partition_point(|s| s.start < span.0);
            slots.get(first).map(|s| Reverse((s.start, c, first)))
        })
        .collect();
    let mut offers = Vec::new();
    let mut batch = Vec::new();
    while let Some(Reverse((start, _, _))) = heap.peek().copied() {
        if start >= span.1 || offers.len() >= query.limit {
            break;
        }
        // Every candidate's slots that start at this instant.
        while let Some(Reverse((s, c, i))) = heap.peek().copied() {
            if s != start {
                break;
            }
            heap.pop();
            let slots = free[c];
            offer(
                query,
                &candidates[c],
                &slots[i],
                &taken[c],
                length,
                &mut batch,
            );
            if let Some(next) = slots.get(i + 1) {
                heap.push(Reverse((next.start, c, i + 1)));
            }
        }
        settle(query, &mut batch);
        offers.append(&mut batch);
    }
    offers.truncate(query.limit);
    offers
}

/// The offers one free slot makes, one per modality the rules allow on its date.
fn offer<'a>(
    query: &Query,
    candidate: &Candidate<'a>,
    slot: &FreeSlot,
    taken: &[&Busy],
    length: SignedDuration,
    out: &mut Vec<Offer<'a>>,
) {
    if slot.start.duration_until(slot.end) != length
        || taken
            .iter()
            .any(|b| b.start < slot.end && slot.start < b.end)
    {
        return;
    }
    for &modality in &candidate.modalities {
        if licensed_for_visit(
            &candidate.clinician.licensure,
            modality,
            query.patient_state,
            candidate.place.info.state,
            slot.local_date,
        ) {
            out.push(Offer {
                clinician: candidate.clinician,
                place: candidate.place,
                start: slot.start,
                end: slot.end,
                modality,
            });
        }
    }
}

/// Orders the offers of one instant and merges telehealth across locations: the same
/// clinician and time listed under several locations is one offer, anchored at a location in
/// the patient's state when there is one.
fn settle(query: &Query, batch: &mut Vec<Offer<'_>>) {
    let prefer = |o: &Offer| {
        (
            Some(o.place.info.state) != query.patient_state,
            o.place.info.schedule_key.len(),
            o.place.info.schedule_key.clone(),
        )
    };
    batch.sort_by(|a, b| {
        order(a, b).then_with(|| match (a.modality, b.modality) {
            (Modality::Telehealth, Modality::Telehealth) => prefer(a).cmp(&prefer(b)),
            (Modality::InPerson, Modality::InPerson) => a.place.info.id.cmp(&b.place.info.id),
            _ => Ordering::Equal,
        })
    });
    // One video offer per clinician and instant (from the preferred place), and one in-person
    // offer per clinician, place and instant: Canvas may list a slot twice (offset paging while
    // its data changes), or two slots of different lengths at one start.
    batch.dedup_by(|later, kept| {
        later.clinician.id == kept.clinician.id
            && later.modality == kept.modality
            && (later.modality == Modality::Telehealth || later.place.info.id == kept.place.info.id)
    });
    batch.sort_by(|a, b| order(a, b).then_with(|| a.place.name.cmp(&b.place.name)));
}

fn order(a: &Offer, b: &Offer) -> Ordering {
    a.start
        .cmp(&b.start)
        .then_with(|| a.clinician.name.cmp(&b.clinician.name))
        .then_with(|| a.clinician.id.cmp(&b.clinician.id))
        .then_with(|| a.modality.cmp(&b.modality))
}

/// The answer before it becomes a DTO.
pub struct Answer {
    pub snapshot: Arc<Snapshot>,
    pub offers: Vec<OwnedOffer>,
    /// When the oldest Canvas data behind the answer was fetched (slots and directory).
    pub as_of: Timestamp,
    /// When the oldest slot list behind it was fetched: what the slot TTL counts from.
    pub slots_as_of: Timestamp,
    pub stale: bool,
}

/// An offer that outlives the snapshot borrow.
#[derive(Debug, Clone)]
pub struct OwnedOffer {
    pub practitioner: PractitionerId,
    pub practitioner_name: String,
    pub place: Place,
    pub start: Timestamp,
    pub end: Timestamp,
    pub modality: Modality,
}

impl OwnedOffer {
    /// What its slot id says, for a visit of `reason` lasting `duration_minutes`.
    pub fn claim(&self, duration_minutes: u32, reason: &str) -> super::slot_id::SlotClaim {
        super::slot_id::SlotClaim {
            practitioner: self.practitioner.clone(),
            location_key: self.place.info.schedule_key.clone(),
            start: self.start.as_second(),
            duration_minutes,
            modality: self.modality,
            reason: reason.to_owned(),
        }
    }
}

/// The slot lists the candidates need (each with its location's zone), owned so that the
/// lookups can run on any task (the waitlist's, a request's, the SMART publication's).
pub fn slot_keys(query: &Query, candidates: &[Candidate<'_>]) -> Vec<(SlotKey, TimeZone)> {
    candidates
        .iter()
        .map(|c| {
            let key = SlotKey {
                schedule: c.schedule.id.clone(),
                from: c.from,
                to: c.to,
                duration_minutes: query.duration_minutes,
            };
            (key, c.place.info.timezone.clone())
        })
        .collect()
}

/// Plans, fans out to the slot cache with bounded concurrency, assembles. `directory_stale`
/// says the snapshot is older than its refresh period (Canvas failing).
pub async fn find(
    snapshot: Arc<Snapshot>,
    directory_stale: bool,
    cache: &Arc<SlotCache>,
    query: &Query,
    window: Window,
    busy: &[Busy],
    fan_out: usize,
) -> Result<Answer, canvas::Error> {
    let Some(span) = span(query, &window) else {
        return Ok(Answer {
            as_of: snapshot.fetched_at,
            slots_as_of: Timestamp::now(),
            snapshot,
            offers: Vec::new(),
            stale: directory_stale,
        });
    };
    let candidates = plan(query, &snapshot, span);
    let keys = slot_keys(query, &candidates);
    let lookups: Vec<_> = futures::stream::iter(keys.into_iter().map(|(key, tz)| {
        let cache = cache.clone();
        async move { cache.get(&key, &tz).await }
    }))
    .buffered(fan_out.max(1))
    .try_collect()
    .await?;
    // The oldest Canvas data behind the answer: the slots, and the clinicians' licences.
    let slots_as_of = lookups
        .iter()
        .map(|l| l.list.fetched_at)
        .min()
        .unwrap_or_else(Timestamp::now);
    let as_of = slots_as_of.min(snapshot.fetched_at);
    let stale = directory_stale || lookups.iter().any(|l| l.stale);
    let free: Vec<&[FreeSlot]> = lookups.iter().map(|l| l.list.slots.as_slice()).collect();
    let offers = assemble(query, &candidates, &free, busy, span)
        .into_iter()
        .map(|o| OwnedOffer {
            practitioner: o.clinician.id.clone(),
            practitioner_name: o.clinician.name.clone(),
            place: o.place.clone(),
            start: o.start,
            end: o.end,
            modality: o.modality,
        })
        .collect();
    Ok(Answer {
        snapshot: snapshot.clone(),
        offers,
        as_of,
        slots_as_of,
        stale,
    })
}
