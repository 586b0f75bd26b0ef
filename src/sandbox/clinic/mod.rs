//! The seed: a clinic that shows off the product, usable with or without a server.
//!
//! Everything is deterministic (fixed ids, dates relative to `today`) so tests can name
//! clinicians and patients, and the same clinic renders as Canvas FHIR resources
//! (`resources`) and as slotgate configuration (`rules_toml`).

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;

use crate::canvas::fhir::AppointmentStatus;
use crate::sandbox::slots::{Interval, WeeklyWindow, local_interval};
use crate::types::{PatientId, PractitionerId, UsState};

mod agenda;
mod build;
mod catalog;
mod demo;
pub mod generated;
mod patients;
mod resources;
mod rules_toml;
#[cfg(test)]
mod tests;

pub use agenda::BOOKING_SYSTEM;
pub use catalog::{CANVAS_MRN_SYSTEM, INTERNAL, NoteCategory, NoteType, SNOMED, VisitReason};
pub use patients::PARTNER_SYSTEM;
pub use resources::{schedule, typed_reference};

/// The clinic the sandbox serves.
#[derive(Debug, Clone)]
pub struct Clinic {
    /// The date every relative date of the seed was computed from.
    pub today: Date,
    pub organization: String,
    pub locations: Vec<ClinicLocation>,
    pub clinicians: Vec<Clinician>,
    pub patients: Vec<ClinicPatient>,
    pub note_types: Vec<NoteType>,
    pub reasons: Vec<VisitReason>,
    pub blocks: Vec<AdminBlock>,
    pub appointments: Vec<SeedAppointment>,
}

/// A Canvas practice location: FHIR Location (UUID) plus the integer key Schedule ids use.
#[derive(Debug, Clone)]
pub struct ClinicLocation {
    /// The practice-location integer of `Location.<key>-Staff.<id>` (§2).
    pub key: u32,
    /// The Location resource UUID.
    pub id: String,
    pub name: String,
    pub alias: String,
    pub tz: TimeZone,
    pub state: UsState,
    pub line: String,
    pub city: String,
    pub postal_code: String,
    pub npi: String,
}

impl ClinicLocation {
    pub fn timezone_name(&self) -> &str {
        self.tz.iana_name().unwrap_or("UTC")
    }
}

/// A staff member. Schedulable and active ones get Schedules; the others exist for reads and
/// `include-non-schedulable-practitioners` searches.
#[derive(Debug, Clone)]
pub struct Clinician {
    pub id: PractitionerId,
    pub given: String,
    pub family: String,
    /// Credentials shown after the name ("MD"), as in Canvas's "Schedule for Youta Priti MD".
    pub credentials: String,
    pub npi: String,
    pub birth_date: Date,
    pub active: bool,
    pub schedulable: bool,
    /// slotgate vocabulary: primary_care, behavioral_health, dermatology.
    pub specialties: Vec<String>,
    /// slotgate vocabulary: telehealth, in_person.
    pub modalities: Vec<String>,
    pub languages: Vec<String>,
    pub licences: Vec<Licence>,
    pub meeting_room: Option<String>,
    /// Key of the primary practice location.
    pub primary_location: u32,
    pub hours: Vec<ClinicHours>,
}

impl Clinician {
    /// "Given Family Credentials", the credentialed name Canvas puts in Schedule comments.
    pub fn display_name(&self) -> String {
        [&self.given, &self.family, &self.credentials]
            .into_iter()
            .filter(|part| !part.is_empty())
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Listed by default in Practitioner searches and given Schedules.
    pub fn is_bookable(&self) -> bool {
        self.active && self.schedulable
    }

    pub fn hours_at(&self, location: u32) -> Option<&[WeeklyWindow]> {
        self.hours
            .iter()
            .find(|h| h.location == location)
            .map(|h| h.windows.as_slice())
    }

    /// States with a STATE licence whose period covers `date`, both ends inclusive.
    pub fn licensed_states_on(&self, date: Date) -> Vec<UsState> {
        self.licences
            .iter()
            .filter(|l| l.kind == LicenceKind::State && l.start <= date && date <= l.end)
            .filter_map(|l| l.state)
            .collect()
    }
}

/// The weekly clinic calendar of one clinician at one location.
#[derive(Debug, Clone)]
pub struct ClinicHours {
    pub location: u32,
    pub windows: Vec<WeeklyWindow>,
}

/// Canvas staff licence types that appear as `qualification.code.text` (§5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LicenceKind {
    State,
    Dea,
    Taxonomy,
}

impl LicenceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::State => "STATE",
            Self::Dea => "DEA",
            Self::Taxonomy => "TAXONOMY",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Licence {
    pub kind: LicenceKind,
    pub number: String,
    pub state: Option<UsState>,
    pub start: Date,
    pub end: Date,
    pub issuer: String,
    pub issuer_short: String,
    pub primary: bool,
}

#[derive(Debug, Clone)]
pub struct ClinicPatient {
    pub id: PatientId,
    pub mrn: String,
    pub given: String,
    pub family: String,
    pub birth_date: Date,
    /// male | female | other | unknown
    pub gender: String,
    pub line: String,
    pub city: String,
    pub state: UsState,
    pub postal_code: String,
    pub active: bool,
    /// External identifiers as (system, value), beside the Canvas MRN.
    pub external_ids: Vec<(String, String)>,
    /// The preferred name Canvas keeps as a `use: nickname` name (§6), when the patient has one.
    pub nickname: Option<String>,
    /// Ten digits, the form Canvas's `phone` search expects (§6); a fictional 555 number.
    pub phone: String,
    /// At the reserved example.org domain, so it can never reach anyone.
    pub email: String,
    /// Staff on the patient's CareTeam, for `_has:CareTeam:participant:member` (§6). The
    /// sandbox serves no CareTeam resource; the membership only answers that search.
    pub care_team: Vec<PractitionerId>,
}

/// Time taken out of clinic hours: a clinician's Admin calendar, or the Organization Admin
/// calendar when `practitioner` is `None` (§9). `location: None` applies everywhere.
#[derive(Debug, Clone)]
pub struct AdminBlock {
    pub title: String,
    pub practitioner: Option<PractitionerId>,
    pub location: Option<u32>,
    pub when: BlockTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockTime {
    /// Every week on that day, local wall-clock times.
    Weekly(WeeklyWindow),
    /// The whole local day.
    AllDay(Date),
}

/// An appointment already on the books when the sandbox starts; it goes through the same
/// validation as a POST.
#[derive(Debug, Clone)]
pub struct SeedAppointment {
    pub id: String,
    pub practitioner: PractitionerId,
    pub patient: Option<PatientId>,
    pub location: u32,
    pub date: Date,
    pub start: Time,
    pub minutes: i64,
    pub status: AppointmentStatus,
    /// SNOMED note type code.
    pub note_type_code: String,
    pub reason_code: Option<String>,
    pub reason_text: Option<String>,
    pub identifier: Option<(String, String)>,
}

impl Clinic {
    pub fn demo(today: Date) -> Clinic {
        demo::clinic(today)
    }

    /// The patient a newcomer tries booking as: Sofia Patel, who lives in California (where
    /// most clinicians hold a licence) and has nothing booked; else the first active patient.
    pub fn first_visit_patient(&self) -> Option<&ClinicPatient> {
        const SOFIA: &str = "97491556534444838b94dbb0909b6b3d";
        self.patients
            .iter()
            .find(|p| p.id.as_str() == SOFIA && p.active)
            .or_else(|| self.patients.iter().find(|p| p.active))
    }

    pub fn generated(clinicians: usize, today: Date) -> Clinic {
        generated::clinic(clinicians, today)
    }

    /// Every clinician booked `per_day` times, back to back from 8:00 local, on each working
    /// day from yesterday to 30 days ahead, patients taken in turn (all but the first
    /// [`generated::UNBOOKED_PATIENTS`] active ones).
    pub fn with_visits(mut self, per_day: usize) -> Clinic {
        self.appointments = generated::visits(&self, per_day);
        self
    }

    pub fn location_by_key(&self, key: u32) -> Option<&ClinicLocation> {
        self.locations.iter().find(|l| l.key == key)
    }

    pub fn location(&self, id: &str) -> Option<&ClinicLocation> {
        self.locations.iter().find(|l| l.id == id)
    }

    pub fn clinician(&self, id: &str) -> Option<&Clinician> {
        self.clinicians.iter().find(|c| c.id.as_str() == id)
    }

    pub fn patient(&self, id: &str) -> Option<&ClinicPatient> {
        self.patients.iter().find(|p| p.id.as_str() == id)
    }

    pub fn note_type(&self, system: Option<&str>, code: Option<&str>) -> Option<&NoteType> {
        self.note_types
            .iter()
            .find(|n| Some(n.system.as_str()) == system && Some(n.code.as_str()) == code)
    }

    /// The note type flagged "Is default appointment type", used when none is sent (§4).
    pub fn default_note_type(&self) -> &NoteType {
        self.note_types
            .iter()
            .find(|n| n.is_default)
            .unwrap_or(&self.note_types[0])
    }

    /// Canvas looks structured reasons up by code only (§9).
    pub fn reason(&self, code: &str) -> Option<&VisitReason> {
        self.reasons.iter().find(|r| r.code == code)
    }

    /// Every (location, clinician) pair that has a Schedule, ordered by location key.
    pub fn schedules(&self) -> Vec<(&ClinicLocation, &Clinician)> {
        let mut out = Vec::new();
        for location in &self.locations {
            for clinician in self.clinicians.iter().filter(|c| c.is_bookable()) {
                if clinician.hours_at(location.key).is_some() {
                    out.push((location, clinician));
                }
            }
        }
        out
    }

    /// Admin and organisation blocks for one clinician at one location on `first..=last`.
    pub fn blocked(
        &self,
        practitioner: &PractitionerId,
        location: &ClinicLocation,
        first: Date,
        last: Date,
    ) -> Vec<Interval> {
        let applies = |b: &&AdminBlock| {
            b.practitioner.as_ref().is_none_or(|p| p == practitioner)
                && b.location.is_none_or(|l| l == location.key)
        };
        let mut out = Vec::new();
        for block in self.blocks.iter().filter(applies) {
            let mut day = first;
            while day <= last {
                out.extend(block_on(block.when, &location.tz, day));
                let Ok(next) = day.tomorrow() else { break };
                day = next;
            }
        }
        out
    }
}

fn block_on(when: BlockTime, tz: &TimeZone, day: Date) -> Option<Interval> {
    match when {
        BlockTime::Weekly(w) if w.weekday == day.weekday() => {
            local_interval(tz, day, w.start, w.end)
        }
        BlockTime::Weekly(_) => None,
        BlockTime::AllDay(date) if date == day => Some(Interval {
            start: tz
                .to_ambiguous_timestamp(day.to_datetime(Time::midnight()))
                .compatible()
                .ok()?,
            end: tz
                .to_ambiguous_timestamp(day.tomorrow().ok()?.to_datetime(Time::midnight()))
                .compatible()
                .ok()?,
        }),
        BlockTime::AllDay(_) => None,
    }
}
