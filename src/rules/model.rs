//! The clinic's rules as plain data, built once from the configuration. Rule functions take
//! these and return decisions; nothing here does I/O or reads a clock.

use std::collections::BTreeMap;
use std::fmt;

use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::types::{PractitionerId, UsState};

/// How the visit happens.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[schema(example = "telehealth")]
pub enum Modality {
    Telehealth,
    InPerson,
}

impl Modality {
    pub const ALL: [Modality; 2] = [Modality::Telehealth, Modality::InPerson];

    pub fn as_str(self) -> &'static str {
        match self {
            Modality::Telehealth => "telehealth",
            Modality::InPerson => "in_person",
        }
    }

    pub fn parse(s: &str) -> Option<Modality> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

impl fmt::Display for Modality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A coding as Canvas wants it for `appointmentType` (system + code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeCoding {
    pub system: String,
    pub code: String,
}

/// A structured reason for visit the clinic offers (the contract's `[[reasons]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Reason {
    pub code: String,
    pub system: String,
    pub display: String,
    /// Allowed durations in minutes, ascending, each > 0.
    pub durations: Vec<u32>,
    /// Allowed modalities, each with the Canvas appointment type it books.
    pub modalities: BTreeMap<Modality, TypeCoding>,
    /// Empty: any clinician may see it.
    pub specialties: Vec<String>,
    /// Whether a patient token may book it; staff always may.
    pub patient_bookable: bool,
}

/// What the clinic knows of a clinician beyond Canvas FHIR (the `[[practitioners]]` overlay).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PractitionerProfile {
    pub specialties: Vec<String>,
    pub modalities: Vec<Modality>,
    pub languages: Vec<String>,
    /// Overrides the Canvas STATE qualifications when set.
    pub licensed_states: Option<Vec<UsState>>,
    pub telehealth_url: Option<String>,
}

/// A practice location as the clinic maps it (`[[locations]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct LocationInfo {
    /// The `<n>` of Schedule ids `Location.<n>-Staff.<key>`.
    pub schedule_key: String,
    /// The Canvas Location id (a UUID).
    pub id: String,
    pub timezone: TimeZone,
    pub state: UsState,
}

/// Everything an operator may change while slotgate runs (a rules reload): the clinic's rules
/// and its booking policy, replaced together.
#[derive(Debug, Clone)]
pub struct Policy {
    pub rules: Rules,
    pub booking: BookingPolicy,
}

impl Policy {
    /// Rules with an everyday booking policy, for tests that build snapshots by hand.
    #[cfg(test)]
    pub fn for_tests(rules: Rules) -> Policy {
        Policy {
            rules,
            booking: BookingPolicy {
                min_notice_minutes: 120,
                max_horizon_days: 90,
                max_range_days: 14,
                hold_minutes: 10,
                patient_cancel_cutoff_hours: 24,
                max_active_per_patient: 3,
                max_holds_per_patient: 2,
            },
        }
    }
}

/// Patient-facing booking policy (`[booking]`).
#[derive(Debug, Clone, PartialEq)]
pub struct BookingPolicy {
    pub min_notice_minutes: u32,
    pub max_horizon_days: u32,
    pub max_range_days: u32,
    pub hold_minutes: u32,
    pub patient_cancel_cutoff_hours: u32,
    pub max_active_per_patient: u32,
    pub max_holds_per_patient: u32,
}

/// Everything the clinic configured about who may be booked for what.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub reasons: Vec<Reason>,
    pub practitioners: BTreeMap<PractitionerId, PractitionerProfile>,
    pub locations: Vec<LocationInfo>,
}

impl Rules {
    pub fn reason(&self, code: &str) -> Option<&Reason> {
        self.reasons.iter().find(|r| r.code == code)
    }

    pub fn location_by_key(&self, schedule_key: &str) -> Option<&LocationInfo> {
        self.locations
            .iter()
            .find(|l| l.schedule_key == schedule_key)
    }

    pub fn location_by_id(&self, id: &str) -> Option<&LocationInfo> {
        self.locations.iter().find(|l| l.id == id)
    }
}
