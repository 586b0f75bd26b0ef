//! Appointments as Canvas keeps them: validated writes (§4), stored records, the read shape,
//! and search.

use std::collections::HashMap;

use jiff::Timestamp;
use jiff::civil::Date;

use crate::canvas::fhir::{AppointmentStatus, Coding, Identifier, Reference};
use crate::sandbox::clinic::{Clinic, NoteCategory, NoteType};
use crate::sandbox::slots::Interval;
use crate::types::{PatientId, PractitionerId};

mod identifiers;
mod render;
pub mod search;
mod seed;
#[cfg(test)]
mod tests;
pub mod write;

pub use seed::seeded_book;
pub use write::AppointmentWrite;

/// Canvas's answer to an overlapping booking when double booking is disabled (§4).
pub const NO_LONGER_AVAILABLE: &str = "This appointment time is no longer available.";

/// Why a write was refused, each kind with the status Canvas answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppointmentError {
    /// 400 `invalid`: the body is malformed or misses a required field.
    #[error("{0}")]
    Invalid(String),
    /// 422 `business-rule`.
    #[error("{0}")]
    Rule(String),
    /// 404 `not-found`.
    #[error("Unknown Appointment resource '{0}'")]
    NotFound(String),
    /// 412 `conflict`.
    #[error("Resource updated since If-Unmodified-Since date")]
    ModifiedSince,
}

/// The structured reason for visit (coding) and its free text.
#[derive(Debug, Clone, PartialEq)]
pub struct ReasonForVisit {
    pub coding: Option<Coding>,
    pub text: Option<String>,
}

/// Everything an appointment is, after validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub status: AppointmentStatus,
    pub note_type: NoteType,
    pub reason: Option<ReasonForVisit>,
    /// The Location resource UUID.
    pub location_id: String,
    pub meeting_link: Option<String>,
    /// Other `supportingInformation` references (rescheduling links), kept as sent.
    pub related: Vec<Reference>,
    pub start: Timestamp,
    pub end: Timestamp,
    pub practitioner: PractitionerId,
    pub patient: Option<PatientId>,
    pub identifiers: Vec<Identifier>,
}

impl Draft {
    pub fn interval(&self) -> Interval {
        Interval {
            start: self.start,
            end: self.end,
        }
    }

    fn blocks(&self) -> bool {
        self.status.blocks_time()
    }
}

#[derive(Debug, Clone)]
pub struct Record {
    pub id: String,
    /// Note-type appointments get a note; Other Events do not (§4, canvas-plugins #511).
    pub note_id: Option<String>,
    pub draft: Draft,
    pub last_modified: Timestamp,
}

impl Record {
    /// The appointment as `GET /Appointment/<id>` returns it.
    pub fn to_fhir(&self) -> crate::canvas::fhir::Appointment {
        render::render(self)
    }
}

/// What an update needs besides the body.
#[derive(Debug, Clone, Copy)]
pub struct UpdateContext<'a> {
    pub clinic: &'a Clinic,
    pub today: Date,
    pub now: Timestamp,
    pub reject_double_booking: bool,
    pub if_unmodified_since: Option<Timestamp>,
}

/// Every appointment, in creation order, indexed by id and by practitioner: a clinic network
/// holds a hundred thousand appointments, and every Slot search and most Appointment searches
/// ask about one practitioner (a linear scan per question would make the sandbox, not slotgate,
/// what a benchmark measures).
#[derive(Debug, Default)]
pub struct Book {
    records: Vec<Record>,
    by_id: HashMap<String, usize>,
    /// Positions in `records`, ascending (so in creation order).
    by_practitioner: HashMap<PractitionerId, Vec<usize>>,
}

fn note_id_for(note_type: &NoteType) -> Option<String> {
    (note_type.category == NoteCategory::Encounter).then(|| uuid::Uuid::new_v4().to_string())
}

impl Book {
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    pub fn get(&self, id: &str) -> Option<&Record> {
        self.by_id.get(id).map(|&i| &self.records[i])
    }

    /// A practitioner's records, in creation order.
    pub fn of_practitioner<'a>(
        &'a self,
        practitioner: &str,
    ) -> impl Iterator<Item = &'a Record> + 'a {
        let found = self
            .by_practitioner
            .iter()
            .find(|(p, _)| p.as_str() == practitioner)
            .map(|(_, list)| list.as_slice())
            .unwrap_or_default();
        found.iter().map(|&i| &self.records[i])
    }

    fn practitioners_records(
        &self,
        practitioner: &PractitionerId,
    ) -> impl Iterator<Item = &Record> {
        self.by_practitioner
            .get(practitioner)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|&i| &self.records[i])
    }

    /// Stores a validated draft under `id`; the double-booking rule applies when `reject`.
    pub fn insert(
        &mut self,
        id: String,
        draft: Draft,
        reject: bool,
        now: Timestamp,
    ) -> Result<(), AppointmentError> {
        if reject && self.conflicts(&draft, None) {
            return Err(AppointmentError::Rule(NO_LONGER_AVAILABLE.into()));
        }
        let index = self.records.len();
        self.by_id.insert(id.clone(), index);
        self.by_practitioner
            .entry(draft.practitioner.clone())
            .or_default()
            .push(index);
        self.records.push(Record {
            id,
            note_id: note_id_for(&draft.note_type),
            draft,
            last_modified: now,
        });
        Ok(())
    }

    /// Applies a PUT: partial merge of what was sent (§4 "Update (PUT) semantics").
    pub fn update(
        &mut self,
        id: &str,
        body: &AppointmentWrite,
        ctx: UpdateContext<'_>,
    ) -> Result<(), AppointmentError> {
        let index = *self
            .by_id
            .get(id)
            .ok_or_else(|| AppointmentError::NotFound(id.to_owned()))?;
        let current = &self.records[index];
        // HTTP dates have whole seconds.
        if ctx
            .if_unmodified_since
            .is_some_and(|since| current.last_modified.as_second() > since.as_second())
        {
            return Err(AppointmentError::ModifiedSince);
        }
        let next = write::merged_draft(&current.draft, body, ctx.clinic, ctx.today)?;
        let moved = next.start != current.draft.start
            || next.end != current.draft.end
            || next.practitioner != current.draft.practitioner;
        if ctx.reject_double_booking && moved && self.conflicts(&next, Some(id)) {
            return Err(AppointmentError::Rule(NO_LONGER_AVAILABLE.into()));
        }
        if next.practitioner != current.draft.practitioner {
            let old = current.draft.practitioner.clone();
            if let Some(list) = self.by_practitioner.get_mut(&old) {
                list.retain(|&i| i != index);
            }
            let list = self
                .by_practitioner
                .entry(next.practitioner.clone())
                .or_default();
            let at = list.partition_point(|&i| i < index);
            list.insert(at, index);
        }
        let record = &mut self.records[index];
        if record.note_id.is_none() {
            record.note_id = note_id_for(&next.note_type);
        }
        record.draft = next;
        record.last_modified = ctx.now;
        Ok(())
    }

    /// Whether `draft` would overlap another time-blocking appointment of its practitioner.
    fn conflicts(&self, draft: &Draft, except: Option<&str>) -> bool {
        draft.blocks()
            && self.practitioners_records(&draft.practitioner).any(|r| {
                Some(r.id.as_str()) != except
                    && r.draft.practitioner == draft.practitioner
                    && r.draft.blocks()
                    && r.draft.interval().overlaps(&draft.interval())
            })
    }

    /// The time a practitioner is booked, at any location.
    pub fn busy(&self, practitioner: &PractitionerId) -> Vec<Interval> {
        self.practitioners_records(practitioner)
            .filter(|r| r.draft.blocks())
            .map(|r| r.draft.interval())
            .collect()
    }
}
