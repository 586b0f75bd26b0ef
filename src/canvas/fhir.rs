//! The subset of FHIR R4 that Canvas's "Fumage" API sends and accepts for scheduling.
//!
//! Shapes follow `shared/design/canvas-fhir.md`; the sandbox serialises these same types, so
//! what the client parses is exactly what the sandbox emits. Fields Canvas may omit are
//! `Option` or default to empty, and unknown fields are ignored, because Canvas adds fields
//! without notice.

use std::fmt;

use jiff::{Timestamp, fmt::temporal::Pieces, tz::Offset};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Canvas extension URL prefix (canvas-fhir.md §5).
pub const EXT_PREFIX: &str = "http://schemas.canvasmedical.com/fhir/extensions/";
pub const EXT_ISSUING_AUTHORITY_STATE: &str =
    "http://schemas.canvasmedical.com/fhir/extensions/issuing-authority-state";
pub const EXT_ISSUING_AUTHORITY_SHORT_NAME: &str =
    "http://schemas.canvasmedical.com/fhir/extensions/issuing-authority-short-name";
pub const EXT_ISSUING_AUTHORITY_URL: &str =
    "http://schemas.canvasmedical.com/fhir/extensions/issuing-authority-url";
pub const EXT_LICENSE_PRIMARY: &str =
    "http://schemas.canvasmedical.com/fhir/extensions/license-primary";
pub const EXT_MEETING_ROOM_LINK: &str =
    "http://schemas.canvasmedical.com/fhir/extensions/practitioner-personal-meeting-room-link";
pub const EXT_PRIMARY_PRACTICE_LOCATION: &str =
    "http://schemas.canvasmedical.com/fhir/extensions/practitioner-primary-practice-location";
pub const EXT_NOTE_ID: &str = "http://schemas.canvasmedical.com/fhir/extensions/note-id";
pub const NPI_SYSTEM: &str = "http://hl7.org/fhir/sid/us-npi";
/// Canvas names the contained telehealth Endpoint this on write and `-0` on read (§4).
pub const MEETING_ENDPOINT_ID: &str = "appointment-meeting-endpoint";

/// A FHIR `instant`/`dateTime` with its offset kept, because Canvas stamps slots in the
/// clinic's own offset (`2026-06-18T09:00:00-07:00`) and we echo that faithfully.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Instant {
    pub timestamp: Timestamp,
    pub offset: Offset,
}

impl Instant {
    pub fn new(timestamp: Timestamp, offset: Offset) -> Self {
        Self { timestamp, offset }
    }

    pub fn utc(timestamp: Timestamp) -> Self {
        Self::new(timestamp, Offset::UTC)
    }

    /// Parses RFC 3339 with an offset (`Z` or `±hh:mm`); seconds and fractions optional, as
    /// Canvas accepts `YYYY-MM-DDTHH:MM` plus offset.
    pub fn parse(text: &str) -> Result<Self, InstantError> {
        let pieces = Pieces::parse(text).map_err(|_| InstantError(text.to_owned()))?;
        let offset = match pieces.offset() {
            Some(jiff::fmt::temporal::PiecesOffset::Zulu) => Offset::UTC,
            Some(jiff::fmt::temporal::PiecesOffset::Numeric(n)) => n.offset(),
            _ => return Err(InstantError(text.to_owned())),
        };
        let time = pieces.time().ok_or_else(|| InstantError(text.to_owned()))?;
        let timestamp = offset
            .to_timestamp(pieces.date().to_datetime(time))
            .map_err(|_| InstantError(text.to_owned()))?;
        Ok(Self { timestamp, offset })
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let local = self.offset.to_datetime(self.timestamp);
        let (h, m) = (
            self.offset.seconds().abs() / 3600,
            self.offset.seconds().abs() % 3600 / 60,
        );
        let sign = if self.offset.seconds() < 0 { '-' } else { '+' };
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{sign}{h:02}:{m:02}",
            local.year(),
            local.month(),
            local.day(),
            local.hour(),
            local.minute(),
            local.second()
        )
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("not an RFC 3339 date-time with offset: {0:?}")]
pub struct InstantError(pub String);

impl Serialize for Instant {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Instant {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Instant::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle<T> {
    #[serde(default = "bundle_type")]
    pub resource_type: String,
    #[serde(rename = "type", default)]
    pub bundle_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub link: Vec<BundleLink>,
    #[serde(default = "Vec::new", skip_serializing_if = "Vec::is_empty")]
    pub entry: Vec<BundleEntry<T>>,
}

fn bundle_type() -> String {
    "Bundle".into()
}

impl<T> Bundle<T> {
    pub fn searchset(total: u64, link: Vec<BundleLink>, resources: Vec<T>) -> Self {
        Self {
            resource_type: "Bundle".into(),
            bundle_type: "searchset".into(),
            total: Some(total),
            link,
            entry: resources
                .into_iter()
                .map(|resource| BundleEntry { resource })
                .collect(),
        }
    }

    pub fn next_link(&self) -> Option<&str> {
        self.link
            .iter()
            .find(|l| l.relation == "next")
            .map(|l| l.url.as_str())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleLink {
    pub relation: String,
    pub url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleEntry<T> {
    pub resource: T,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
}

impl Reference {
    pub fn to(resource_type: &str, id: &str) -> Self {
        Self {
            reference: Some(format!("{resource_type}/{id}")),
            ..Self::default()
        }
    }

    /// The id of a `Type/<id>` reference when it names a resource of that type.
    pub fn id_of(&self, resource_type: &str) -> Option<&str> {
        let reference = self.reference.as_deref()?;
        reference
            .strip_prefix(resource_type)?
            .strip_prefix('/')
            .filter(|id| !id.is_empty())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Coding {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_selected: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CodeableConcept {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub coding: Vec<Coding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// A FHIR period. Canvas sends plain dates (`2024-01-01`) for licenses and identifiers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Period {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Extension {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_string: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_boolean: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_reference: Option<Reference>,
}

impl Extension {
    pub fn string(url: &str, value: &str) -> Self {
        Self {
            url: url.into(),
            value_string: Some(value.into()),
            ..Self::default()
        }
    }
}

/// Finds an extension by URL in a list.
pub fn extension<'a>(list: &'a [Extension], url: &str) -> Option<&'a Extension> {
    list.iter().find(|e| e.url == url)
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identifier {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub identifier_type: Option<CodeableConcept>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigner: Option<Reference>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HumanName {
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub given: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefix: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suffix: Vec<String>,
}

impl HumanName {
    /// "Given Family Suffix", or `text` when Canvas only sent that.
    pub fn display(&self) -> Option<String> {
        let mut parts: Vec<&str> = self.given.iter().map(String::as_str).collect();
        parts.extend(self.family.as_deref());
        parts.extend(self.suffix.iter().map(String::as_str));
        if parts.is_empty() {
            self.text.clone()
        } else {
            Some(parts.join(" "))
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub address_type: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub line: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContactPoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Narrative {
    pub status: String,
    pub div: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    pub resource_type: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<Narrative>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actor: Vec<Reference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// Canvas Slots are computed, never stored: no `id`, and `status` is always `free` (§3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Slot {
    pub resource_type: String,
    pub schedule: Reference,
    pub status: String,
    pub start: Instant,
    pub end: Instant,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Qualification {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifier: Vec<Identifier>,
    #[serde(default)]
    pub code: CodeableConcept,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<Reference>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Practitioner {
    #[serde(default = "practitioner_type")]
    pub resource_type: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifier: Vec<Identifier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub name: Vec<HumanName>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub telecom: Vec<ContactPoint>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub address: Vec<Address>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub qualification: Vec<Qualification>,
}

fn practitioner_type() -> String {
    "Practitioner".into()
}

/// Its `Debug` shows the id only: everything else is the patient's own data.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Patient {
    #[serde(default = "patient_type")]
    pub resource_type: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifier: Vec<Identifier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub name: Vec<HumanName>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub telecom: Vec<ContactPoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub address: Vec<Address>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
}

impl std::fmt::Debug for Patient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Patient")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn patient_type() -> String {
    "Patient".into()
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    #[serde(default = "location_type")]
    pub resource_type: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifier: Vec<Identifier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alias: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
}

fn location_type() -> String {
    "Location".into()
}

/// FHIR appointment statuses; Canvas maps them to its own (§4 table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AppointmentStatus {
    Proposed,
    Pending,
    Booked,
    Arrived,
    CheckedIn,
    Fulfilled,
    Noshow,
    Cancelled,
    EnteredInError,
    Waitlist,
}

impl AppointmentStatus {
    /// Whether an appointment in this status occupies the clinician's time. Every status but
    /// cancelled, no-show and entered-in-error blocks a slot (§3, the Canvas-collection slot
    /// calculator).
    pub fn blocks_time(self) -> bool {
        !matches!(
            self,
            Self::Cancelled | Self::Noshow | Self::EnteredInError | Self::Waitlist
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proposed => "proposed",
            Self::Pending => "pending",
            Self::Booked => "booked",
            Self::Arrived => "arrived",
            Self::CheckedIn => "checked-in",
            Self::Fulfilled => "fulfilled",
            Self::Noshow => "noshow",
            Self::Cancelled => "cancelled",
            Self::EnteredInError => "entered-in-error",
            Self::Waitlist => "waitlist",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub resource_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_type: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_type: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Participant {
    pub actor: Reference,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Appointment {
    #[serde(default = "appointment_type")]
    pub resource_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contained: Vec<Endpoint>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifier: Vec<Identifier>,
    pub status: AppointmentStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appointment_type: Option<CodeableConcept>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reason_code: Vec<CodeableConcept>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supporting_information: Vec<Reference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<Instant>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<Instant>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub participant: Vec<Participant>,
}

fn appointment_type() -> String {
    "Appointment".into()
}

impl Appointment {
    /// The id of the first participant of the given type (`Patient`, `Practitioner`).
    pub fn participant_id(&self, resource_type: &str) -> Option<&str> {
        self.participant
            .iter()
            .find_map(|p| p.actor.id_of(resource_type))
    }

    pub fn location_id(&self) -> Option<&str> {
        self.supporting_information
            .iter()
            .find_map(|r| r.id_of("Location"))
    }

    pub fn meeting_link(&self) -> Option<&str> {
        self.contained
            .iter()
            .find(|e| e.resource_type == "Endpoint")
            .and_then(|e| e.address.as_deref())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationOutcome {
    #[serde(default = "outcome_type")]
    pub resource_type: String,
    #[serde(default)]
    pub issue: Vec<Issue>,
}

fn outcome_type() -> String {
    "OperationOutcome".into()
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Issue {
    #[serde(default)]
    pub severity: String,
    #[serde(default)]
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<CodeableConcept>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<String>,
}

impl OperationOutcome {
    pub fn error(code: &str, text: impl Into<String>) -> Self {
        Self {
            resource_type: outcome_type(),
            issue: vec![Issue {
                severity: "error".into(),
                code: code.into(),
                details: Some(CodeableConcept {
                    coding: Vec::new(),
                    text: Some(text.into()),
                }),
                diagnostics: None,
            }],
        }
    }

    /// The first issue's code and text, for typed errors and logs.
    pub fn first(&self) -> (&str, &str) {
        self.issue
            .first()
            .map(|i| {
                (
                    i.code.as_str(),
                    i.details
                        .as_ref()
                        .and_then(|d| d.text.as_deref())
                        .or(i.diagnostics.as_deref())
                        .unwrap_or(""),
                )
            })
            .unwrap_or(("", ""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instant_keeps_the_clinic_offset() {
        let i = Instant::parse("2023-09-21T08:45:00-07:00").unwrap();
        assert_eq!(i.to_string(), "2023-09-21T08:45:00-07:00");
        assert_eq!(i.timestamp.to_string(), "2023-09-21T15:45:00Z");
    }

    #[test]
    fn instant_accepts_zulu_fractions_and_missing_seconds() {
        let z = Instant::parse("2023-10-24T13:30:00.000Z").unwrap();
        assert_eq!(z.to_string(), "2023-10-24T13:30:00+00:00");
        let short = Instant::parse("2023-10-24T13:30+02:00").unwrap();
        assert_eq!(short.timestamp.to_string(), "2023-10-24T11:30:00Z");
    }

    #[test]
    fn instant_rejects_local_times_without_offset() {
        assert!(Instant::parse("2023-10-24T13:30:00").is_err());
        assert!(Instant::parse("2023-10-24").is_err());
        assert!(Instant::parse("yesterday").is_err());
    }

    #[test]
    fn reference_ids_by_type() {
        let r = Reference::to("Practitioner", "abc");
        assert_eq!(r.id_of("Practitioner"), Some("abc"));
        assert_eq!(r.id_of("Patient"), None);
        assert_eq!(Reference::to("Location", "").id_of("Location"), None);
    }

    #[test]
    fn appointment_reads_canvas_read_example() {
        let json = r##"{"resourceType":"Appointment","id":"621a66fc-9d5c-4de0-97fb-935d611ac176",
          "contained":[{"resourceType":"Endpoint","id":"appointment-meeting-endpoint-0","status":"active",
            "connectionType":{"code":"https"},"payloadType":[{"coding":[{"code":"video-call"}]}],
            "address":"https://meet.example.com/abc"}],
          "extension":[{"url":"http://schemas.canvasmedical.com/fhir/extensions/note-id","valueId":"2a81"}],
          "status":"proposed","start":"2023-10-24T13:30:00+00:00","end":"2023-10-24T14:00:00+00:00",
          "supportingInformation":[{"reference":"Location/b347","type":"Location"}],
          "participant":[{"actor":{"reference":"Practitioner/4150","type":"Practitioner"},"status":"accepted"},
                         {"actor":{"reference":"Patient/ee1c","type":"Patient"},"status":"accepted"}]}"##;
        let a: Appointment = serde_json::from_str(json).unwrap();
        assert_eq!(a.status, AppointmentStatus::Proposed);
        assert_eq!(a.participant_id("Patient"), Some("ee1c"));
        assert_eq!(a.participant_id("Practitioner"), Some("4150"));
        assert_eq!(a.location_id(), Some("b347"));
        assert_eq!(a.meeting_link(), Some("https://meet.example.com/abc"));
    }

    #[test]
    fn statuses_that_free_time() {
        assert!(AppointmentStatus::Booked.blocks_time());
        assert!(AppointmentStatus::CheckedIn.blocks_time());
        assert!(!AppointmentStatus::Cancelled.blocks_time());
        assert!(!AppointmentStatus::Noshow.blocks_time());
        assert!(!AppointmentStatus::EnteredInError.blocks_time());
    }
}
