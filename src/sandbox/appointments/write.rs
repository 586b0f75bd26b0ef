//! Appointment create and update bodies, validated the way Canvas does (§4): 400 for a
//! malformed or incomplete body, 422 for codes and references Canvas does not know.

use jiff::Timestamp;
use jiff::civil::Date;
use serde::Deserialize;

use super::identifiers::{merge_identifiers, normalise_identifier};
use super::{AppointmentError, Draft, ReasonForVisit};
use crate::canvas::fhir::{
    AppointmentStatus, CodeableConcept, Coding, Endpoint, Identifier, Instant, MEETING_ENDPOINT_ID,
    Participant, Reference,
};
use crate::sandbox::clinic::{Clinic, NoteCategory, NoteType};
use crate::types::{PatientId, PractitionerId};

/// The RFV Canvas records when a note-type appointment is booked without one (§4).
const NO_DESCRIPTION: &str = "No description given";
const STATUSES: &str =
    "proposed, pending, booked, arrived, checked-in, fulfilled, noshow, cancelled";

/// An Appointment body as sent: everything optional, so an update can tell what was sent.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppointmentWrite {
    pub resource_type: Option<String>,
    pub contained: Option<Vec<serde_json::Value>>,
    pub identifier: Option<Vec<Identifier>>,
    pub status: Option<String>,
    pub appointment_type: Option<CodeableConcept>,
    pub reason_code: Option<Vec<CodeableConcept>>,
    pub description: Option<String>,
    pub supporting_information: Option<Vec<Reference>>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub participant: Option<Vec<Participant>>,
}

pub(super) fn invalid(message: impl Into<String>) -> AppointmentError {
    AppointmentError::Invalid(message.into())
}

fn rule(message: impl Into<String>) -> AppointmentError {
    AppointmentError::Rule(message.into())
}

fn required(field: &str) -> AppointmentError {
    invalid(format!("{field}: field required"))
}

impl AppointmentWrite {
    pub fn parse(body: &[u8]) -> Result<AppointmentWrite, AppointmentError> {
        let write: AppointmentWrite =
            serde_json::from_slice(body).map_err(|e| invalid(format!("body: {e}")))?;
        match write.resource_type.as_deref() {
            None | Some("Appointment") => Ok(write),
            Some(other) => Err(invalid(format!(
                "resourceType: expected Appointment, got {other}"
            ))),
        }
    }

    /// Create and update accept every status but entered-in-error (§4).
    fn status(&self) -> Result<Option<AppointmentStatus>, AppointmentError> {
        let Some(text) = self.status.as_deref() else {
            return Ok(None);
        };
        let parsed = serde_json::from_value::<AppointmentStatus>(text.into())
            .ok()
            .filter(|s| {
                !matches!(
                    s,
                    AppointmentStatus::EnteredInError | AppointmentStatus::Waitlist
                )
            });
        parsed
            .map(Some)
            .ok_or_else(|| invalid(format!("status: '{text}' is not one of {STATUSES}")))
    }

    fn instant(field: &str, value: Option<&str>) -> Result<Option<Timestamp>, AppointmentError> {
        value
            .map(|text| {
                Instant::parse(text)
                    .map(|i| i.timestamp)
                    .map_err(|_| invalid(format!("{field}: '{text}' is not a FHIR instant")))
            })
            .transpose()
    }

    fn note_type(&self, clinic: &Clinic) -> Result<Option<NoteType>, AppointmentError> {
        let Some(concept) = &self.appointment_type else {
            return Ok(None);
        };
        let coding = concept
            .coding
            .first()
            .ok_or_else(|| invalid("appointmentType: must contain one coding"))?;
        let (system, code) = (coding.system.as_deref(), coding.code.as_deref());
        // Canvas formats the missing parts the way Python prints None.
        clinic
            .note_type(system, code)
            .cloned()
            .map(Some)
            .ok_or_else(|| {
                rule(format!(
                    "Appointment Type does not exist with code: {} and system: {}",
                    code.unwrap_or("None"),
                    system.unwrap_or("None")
                ))
            })
    }

    /// Only `reasonCode[0]` counts; its coding is looked up by code alone (§4, §9).
    fn reason(&self, clinic: &Clinic) -> Result<Option<ReasonForVisit>, AppointmentError> {
        let Some(concept) = self.reason_code.as_ref().and_then(|r| r.first()) else {
            return Ok(self.description.clone().map(|text| ReasonForVisit {
                coding: None,
                text: Some(text),
            }));
        };
        let coding = match concept.coding.first() {
            None => None,
            Some(sent) => {
                let code = sent.code.as_deref().unwrap_or("None");
                let known = clinic.reason(code).ok_or_else(|| {
                    rule(format!(
                        "structured reason for visit with code {code} does not exist"
                    ))
                })?;
                Some(Coding {
                    system: Some(known.system.clone()),
                    code: Some(known.code.clone()),
                    display: Some(known.display.clone()),
                    user_selected: Some(false),
                })
            }
        };
        let text = concept.text.clone().or_else(|| self.description.clone());
        Ok(Some(ReasonForVisit { coding, text }))
    }

    fn participants(
        &self,
        clinic: &Clinic,
    ) -> Result<Option<(PractitionerId, Option<PatientId>)>, AppointmentError> {
        let Some(list) = &self.participant else {
            return Ok(None);
        };
        let find = |kind: &str| list.iter().find_map(|p| p.actor.id_of(kind));
        let practitioner = find("Practitioner")
            .ok_or_else(|| invalid("participant: a Practitioner participant is required"))?;
        let practitioner = clinic
            .clinician(practitioner)
            .map(|c| c.id.clone())
            .ok_or_else(|| {
                rule(format!(
                    "Practitioner with id {practitioner} does not exist"
                ))
            })?;
        let patient = find("Patient")
            .map(|id| {
                clinic
                    .patient(id)
                    .map(|p| p.id.clone())
                    .ok_or_else(|| rule(format!("Patient with id {id} does not exist")))
            })
            .transpose()?;
        Ok(Some((practitioner, patient)))
    }
}

/// What `supportingInformation` says: the practice location, whether it points at the
/// contained meeting Endpoint, and any other references.
struct Supporting {
    location_id: String,
    related: Vec<Reference>,
}

fn is_endpoint_id(id: &str) -> bool {
    id == MEETING_ENDPOINT_ID || id.strip_prefix(MEETING_ENDPOINT_ID) == Some("-0")
}

impl AppointmentWrite {
    fn supporting(&self, clinic: &Clinic) -> Result<Option<Supporting>, AppointmentError> {
        let Some(refs) = &self.supporting_information else {
            return Ok(None);
        };
        let mut location = None;
        let mut related = Vec::new();
        for reference in refs {
            let text = reference.reference.as_deref().unwrap_or_default();
            if let Some(local) = text.strip_prefix('#') {
                if !is_endpoint_id(local) || self.endpoint()?.is_none() {
                    return Err(invalid(format!(
                        "supportingInformation: '{text}' does not name a contained Endpoint"
                    )));
                }
            } else if let Some(id) = reference.id_of("Location") {
                location = location.or(Some(id));
            } else {
                related.push(reference.clone());
            }
        }
        let id = location
            .ok_or_else(|| invalid("supportingInformation: a Location reference is required"))?;
        // The integer practice-location form still works for now (release note 2024-01-05).
        let known = match id.parse::<u32>() {
            Ok(key) => clinic.location_by_key(key),
            Err(_) => clinic.location(id),
        };
        let location_id = known
            .map(|l| l.id.clone())
            .ok_or_else(|| rule(format!("Location with id {id} does not exist")))?;
        Ok(Some(Supporting {
            location_id,
            related,
        }))
    }

    /// The contained meeting Endpoint: at most one, and only an Endpoint (§4 v2 guide).
    fn endpoint(&self) -> Result<Option<Endpoint>, AppointmentError> {
        let Some(contained) = &self.contained else {
            return Ok(None);
        };
        if contained.len() > 1 {
            return Err(invalid("contained: at most one Endpoint may be contained"));
        }
        let Some(value) = contained.first() else {
            return Ok(None);
        };
        let endpoint: Endpoint = serde_json::from_value(value.clone())
            .map_err(|e| invalid(format!("contained: {e}")))?;
        if endpoint.resource_type != "Endpoint" {
            return Err(invalid("contained: only an Endpoint may be contained"));
        }
        if !endpoint.id.as_deref().is_some_and(is_endpoint_id) {
            return Err(invalid(format!(
                "contained: the Endpoint id must be {MEETING_ENDPOINT_ID}"
            )));
        }
        if endpoint.address.as_deref().is_none_or(str::is_empty) {
            return Err(invalid("contained: the Endpoint needs an address"));
        }
        Ok(Some(endpoint))
    }

    /// `None` when `contained` was not sent; `Some(link)` when it was.
    fn meeting_link(&self) -> Result<Option<Option<String>>, AppointmentError> {
        if self.contained.is_none() {
            return Ok(None);
        }
        Ok(Some(self.endpoint()?.and_then(|e| e.address)))
    }
}

/// The rules that hold for the finished appointment, whichever fields it came from.
fn check(draft: &Draft) -> Result<(), AppointmentError> {
    if draft.end <= draft.start {
        return Err(invalid("end: must be after start (duration > 0 minutes)"));
    }
    if draft.note_type.patient_required && draft.patient.is_none() {
        return Err(rule(format!(
            "A Patient participant is required for appointment type {}",
            draft.note_type.name
        )));
    }
    Ok(())
}

fn default_reason(note_type: &NoteType) -> Option<ReasonForVisit> {
    (note_type.category == NoteCategory::Encounter).then(|| ReasonForVisit {
        coding: None,
        text: Some(NO_DESCRIPTION.into()),
    })
}

/// A validated new appointment.
pub fn new_draft(body: &AppointmentWrite, clinic: &Clinic) -> Result<Draft, AppointmentError> {
    let status = body.status()?.ok_or_else(|| required("status"))?;
    let start = AppointmentWrite::instant("start", body.start.as_deref())?;
    let end = AppointmentWrite::instant("end", body.end.as_deref())?;
    let (start, end) = (
        start.ok_or_else(|| required("start"))?,
        end.ok_or_else(|| required("end"))?,
    );
    let note_type = body
        .note_type(clinic)?
        .unwrap_or_else(|| clinic.default_note_type().clone());
    let reason = body.reason(clinic)?.or_else(|| default_reason(&note_type));
    let supporting = body
        .supporting(clinic)?
        .ok_or_else(|| required("supportingInformation"))?;
    let link = body.meeting_link()?.flatten();
    let (practitioner, patient) = body
        .participants(clinic)?
        .ok_or_else(|| required("participant"))?;
    let identifiers = body
        .identifier
        .iter()
        .flatten()
        .map(|i| normalise_identifier(i, None))
        .collect::<Result<_, _>>()?;
    // Telehealth types without a link use the practitioner's personal meeting room (§4).
    let room = || {
        clinic
            .clinician(practitioner.as_str())?
            .meeting_room
            .clone()
    };
    let meeting_link = link.or_else(|| note_type.telehealth.then(room).flatten());
    let draft = Draft {
        status,
        note_type,
        reason,
        location_id: supporting.location_id,
        meeting_link,
        related: supporting.related,
        start,
        end,
        practitioner,
        patient,
        identifiers,
    };
    check(&draft)?;
    Ok(draft)
}

/// `current` with what `body` sent merged in; fields not sent stay as they are.
pub fn merged_draft(
    current: &Draft,
    body: &AppointmentWrite,
    clinic: &Clinic,
    today: Date,
) -> Result<Draft, AppointmentError> {
    let status = body.status()?.ok_or_else(|| required("status"))?;
    if current.status == AppointmentStatus::Cancelled && status != AppointmentStatus::Cancelled {
        return Err(rule(
            "A cancelled appointment cannot be updated to another status; restore it from the patient's chart",
        ));
    }
    let note_type = body.note_type(clinic)?;
    if note_type.is_none() && current.note_type.category == NoteCategory::ScheduleEvent {
        return Err(invalid(
            "appointmentType: must be re-sent when updating an Other Event",
        ));
    }
    let mut next = current.clone();
    next.status = status;
    next.note_type = note_type.unwrap_or_else(|| current.note_type.clone());
    if let Some(start) = AppointmentWrite::instant("start", body.start.as_deref())? {
        next.start = start;
    }
    if let Some(end) = AppointmentWrite::instant("end", body.end.as_deref())? {
        next.end = end;
    }
    if let Some(reason) = body.reason(clinic)? {
        next.reason = Some(reason);
    }
    if let Some(supporting) = body.supporting(clinic)? {
        next.location_id = supporting.location_id;
        next.related = supporting.related;
    }
    if let Some(link) = body.meeting_link()? {
        next.meeting_link = link;
    }
    if let Some((practitioner, patient)) = body.participants(clinic)? {
        next.practitioner = practitioner;
        next.patient = patient;
    }
    let sent = body.identifier.as_deref().unwrap_or_default();
    next.identifiers = merge_identifiers(&current.identifiers, sent, today)?;
    check(&next)?;
    Ok(next)
}
