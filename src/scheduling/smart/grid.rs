//! What a SMART Scheduling Links publication lists, as plain functions of plain data: the local
//! dates it covers at each location, its schedules (a clinician at a practice location, and by
//! video in each state they are licensed in), the availability questions whose answers are its
//! slots, and each slot's status. No I/O and no clock: `now` is a parameter.

use std::collections::HashMap;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use crate::rules::eligibility::{offers_modality, offers_specialty};
use crate::rules::model::{Modality, Reason};
use crate::scheduling::availability::{Busy, OwnedOffer};
use crate::scheduling::directory::Snapshot;
use crate::scheduling::slot_id::SlotClaim;
use crate::scheduling::waitlist::search::utc_dates;
use crate::types::{PractitionerId, UsState};

/// The local dates published at one location: today there and the `days - 1` after it. Local
/// dates, not `days × 24` hours: a publication over a DST change still ends at local midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub first: Date,
    pub last: Date,
}

impl Period {
    pub fn at(now: Timestamp, tz: &TimeZone, days: u32) -> Period {
        let first = now.to_zoned_datetime(tz.clone()).date();
        let last = first.saturating_add((i64::from(days.max(1)) - 1).days());
        Period { first, last }
    }

    pub fn contains(&self, date: Date) -> bool {
        self.first <= date && date <= self.last
    }
}

/// Where a schedule's visits happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Site {
    /// In person at `Snapshot::places[i]`.
    Place(usize),
    /// By video, with patients who are in this state.
    Virtual(UsState),
}

/// A clinician at a site, and the public reasons they may be booked for there.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleSpec {
    pub practitioner: PractitionerId,
    pub site: Site,
    /// Indices into the policy's reasons, in the clinic's order.
    pub reasons: Vec<usize>,
}

/// One availability question whose offers become published slots: a reason in person, or by
/// video for patients in one state (as `/v1/availability` asks with `state` and `modality`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ask {
    pub reason: usize,
    pub state: Option<UsState>,
}

impl Ask {
    pub fn modality(&self) -> Modality {
        match self.state {
            Some(_) => Modality::Telehealth,
            None => Modality::InPerson,
        }
    }
}

/// A published slot's status: SMART's `free` and `busy`, and FHIR's `busy-tentative` for a
/// time someone holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotStatus {
    Free,
    BusyTentative,
    Busy,
}

impl SlotStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SlotStatus::Free => "free",
            SlotStatus::BusyTentative => "busy-tentative",
            SlotStatus::Busy => "busy",
        }
    }
}

/// Canvas lists only free slots, so a time it has booked never reaches here. What remains
/// taken is what slotgate knows and Canvas may not show yet: its own bookings (busy, they are
/// made) and holds (busy-tentative, they lapse unless booked).
pub fn status(
    practitioner: &PractitionerId,
    start: Timestamp,
    end: Timestamp,
    held: &[Busy],
    booked: &[Busy],
) -> SlotStatus {
    let overlaps = |b: &Busy| &b.practitioner == practitioner && b.start < end && start < b.end;
    if booked.iter().any(overlaps) {
        SlotStatus::Busy
    } else if held.iter().any(overlaps) {
        SlotStatus::BusyTentative
    } else {
        SlotStatus::Free
    }
}

/// A published slot, before it becomes FHIR.
#[derive(Debug, Clone, PartialEq)]
pub struct PublicSlot {
    /// Index into the publication's schedules.
    pub schedule: usize,
    /// Index into the policy's reasons.
    pub reason: usize,
    pub start: Timestamp,
    pub end: Timestamp,
    /// The zone of the location whose Canvas schedule lists it: its times are given there.
    pub tz: TimeZone,
    pub status: SlotStatus,
    /// What its booking link's slot id says, exactly as `/v1/availability` would issue it.
    pub claim: SlotClaim,
}

/// The publication's frame for one directory snapshot: periods, schedules, questions.
pub struct Grid {
    /// Per `Snapshot::places`.
    periods: Vec<Period>,
    schedules: Vec<ScheduleSpec>,
    index: HashMap<(PractitionerId, Site), usize>,
}

impl Grid {
    pub fn new(snapshot: &Snapshot, now: Timestamp, days: u32) -> Grid {
        let periods: Vec<Period> = snapshot
            .places
            .iter()
            .map(|p| Period::at(now, &p.info.timezone, days))
            .collect();
        let mut schedules = schedules(snapshot, &periods);
        schedules.sort_by(|a, b| {
            a.site
                .cmp(&b.site)
                .then_with(|| a.practitioner.cmp(&b.practitioner))
        });
        let index = schedules
            .iter()
            .enumerate()
            .map(|(i, s)| ((s.practitioner.clone(), s.site), i))
            .collect();
        Grid {
            periods,
            schedules,
            index,
        }
    }

    pub fn schedules(&self) -> &[ScheduleSpec] {
        &self.schedules
    }

    pub fn into_schedules(self) -> Vec<ScheduleSpec> {
        self.schedules
    }

    /// The UTC dates to ask availability for: every location's period, whatever its zone.
    pub fn dates(&self) -> Option<(Date, Date)> {
        let first = self.periods.iter().map(|p| p.first).min()?;
        let last = self.periods.iter().map(|p| p.last).max()?;
        Some(utc_dates(first, last))
    }

    /// The questions to ask: each public reason in person if some schedule offers it so, and
    /// by video for each state where some clinician may be booked for it.
    pub fn asks(&self) -> Vec<Ask> {
        let mut asks: Vec<Ask> = Vec::new();
        for s in &self.schedules {
            for &reason in &s.reasons {
                let ask = Ask {
                    reason,
                    state: match s.site {
                        Site::Place(_) => None,
                        Site::Virtual(state) => Some(state),
                    },
                };
                if !asks.contains(&ask) {
                    asks.push(ask);
                }
            }
        }
        asks.sort_by_key(|a| (a.reason, a.state));
        asks
    }

    /// The published slots among one question's offers: those of a published schedule on a
    /// date of its location's period, each with its status and the claim its link books.
    pub fn slots(
        &self,
        snapshot: &Snapshot,
        ask: Ask,
        reason: &Reason,
        offers: &[OwnedOffer],
        held: &[Busy],
        booked: &[Busy],
    ) -> Vec<PublicSlot> {
        let Some(duration) = reason.durations.first().copied() else {
            return Vec::new();
        };
        offers
            .iter()
            .filter_map(|o| {
                let place = snapshot
                    .places
                    .iter()
                    .position(|p| p.info.schedule_key == o.place.info.schedule_key)?;
                let site = ask.state.map_or(Site::Place(place), Site::Virtual);
                let schedule = *self.index.get(&(o.practitioner.clone(), site))?;
                if !self.schedules[schedule].reasons.contains(&ask.reason) {
                    return None;
                }
                let tz = &o.place.info.timezone;
                let date = o.start.to_zoned_datetime(tz.clone()).date();
                if !self.periods.get(place)?.contains(date) {
                    return None;
                }
                Some(PublicSlot {
                    schedule,
                    reason: ask.reason,
                    start: o.start,
                    end: o.end,
                    tz: tz.clone(),
                    status: status(&o.practitioner, o.start, o.end, held, booked),
                    claim: o.claim(duration, &reason.code),
                })
            })
            .collect()
    }
}

/// Every clinician at each practice location they have a Canvas schedule at and are licensed
/// for during its period (in person), and by video in each state they are licensed in during
/// their locations' periods; each with the public reasons (never staff-only ones) they offer
/// that way. A site with no such reason has no schedule.
fn schedules(snapshot: &Snapshot, periods: &[Period]) -> Vec<ScheduleSpec> {
    let reasons = &snapshot.policy.rules.reasons;
    let mut out = Vec::new();
    for clinician in snapshot.clinicians.values() {
        let places: Vec<usize> = snapshot
            .schedules
            .iter()
            .filter(|e| e.id.practitioner == clinician.id)
            .map(|e| e.place)
            .collect();
        let (Some(first), Some(last)) = (
            places
                .iter()
                .filter_map(|&p| periods.get(p))
                .map(|p| p.first)
                .min(),
            places
                .iter()
                .filter_map(|&p| periods.get(p))
                .map(|p| p.last)
                .max(),
        ) else {
            continue;
        };
        let offered = |modality: Modality| -> Vec<usize> {
            reasons
                .iter()
                .enumerate()
                .filter(|(_, r)| {
                    r.patient_bookable
                        && offers_modality(r, &clinician.profile, modality)
                        && offers_specialty(r, &clinician.profile)
                })
                .map(|(i, _)| i)
                .collect()
        };
        let in_person = offered(Modality::InPerson);
        if !in_person.is_empty() {
            for &p in &places {
                let (Some(place), Some(period)) = (snapshot.places.get(p), periods.get(p)) else {
                    continue;
                };
                if clinician
                    .licensure
                    .covers_any(place.info.state, period.first, period.last)
                {
                    out.push(ScheduleSpec {
                        practitioner: clinician.id.clone(),
                        site: Site::Place(p),
                        reasons: in_person.clone(),
                    });
                }
            }
        }
        let video = offered(Modality::Telehealth);
        if !video.is_empty() {
            for state in clinician.licensure.states(first, last) {
                out.push(ScheduleSpec {
                    practitioner: clinician.id.clone(),
                    site: Site::Virtual(state),
                    reasons: video.clone(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
