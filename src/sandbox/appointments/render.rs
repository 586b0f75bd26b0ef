//! The read shape of an Appointment, normalised as Canvas returns it (§4 "Read response"):
//! `type` on every reference, times in `+00:00`, `description` mirroring the reason text, the
//! contained Endpoint as `appointment-meeting-endpoint-0`, the note-id extension.

use crate::canvas::fhir::{
    Appointment, CodeableConcept, Coding, EXT_NOTE_ID, Endpoint, Extension, Instant,
    MEETING_ENDPOINT_ID, Participant, Reference,
};
use crate::sandbox::clinic::{NoteType, typed_reference};

use super::Record;

fn endpoint_id() -> String {
    format!("{MEETING_ENDPOINT_ID}-0")
}

fn meeting_endpoint(address: &str) -> Endpoint {
    Endpoint {
        resource_type: "Endpoint".into(),
        id: Some(endpoint_id()),
        status: Some("active".into()),
        connection_type: Some(serde_json::json!({"code": "https"})),
        payload_type: Some(serde_json::json!([{"coding": [{"code": "video-call"}]}])),
        address: Some(address.into()),
    }
}

/// A reference with `type` taken from its `Type/id` form when it was sent without one.
fn with_type(reference: &Reference) -> Reference {
    let mut out = reference.clone();
    if out.resource_type.is_none() {
        out.resource_type = reference
            .reference
            .as_deref()
            .and_then(|r| r.split_once('/'))
            .map(|(kind, _)| kind.to_owned());
    }
    out
}

fn participant(resource_type: &str, id: &str) -> Participant {
    Participant {
        actor: typed_reference(resource_type, id),
        status: Some("accepted".into()),
    }
}

fn supporting_information(record: &Record) -> Vec<Reference> {
    let draft = &record.draft;
    let mut out = vec![typed_reference("Location", &draft.location_id)];
    if draft.meeting_link.is_some() {
        out.push(Reference {
            reference: Some(format!("#{}", endpoint_id())),
            resource_type: Some("Endpoint".into()),
            ..Reference::default()
        });
    }
    out.extend(draft.related.iter().map(with_type));
    out
}

fn appointment_type(note_type: &NoteType) -> CodeableConcept {
    CodeableConcept {
        coding: vec![Coding {
            system: Some(note_type.system.clone()),
            code: Some(note_type.code.clone()),
            display: Some(note_type.name.clone()),
            user_selected: None,
        }],
        text: None,
    }
}

fn note_extension(note_id: &str) -> Extension {
    Extension {
        url: EXT_NOTE_ID.into(),
        value_id: Some(note_id.into()),
        ..Extension::default()
    }
}

pub fn render(record: &Record) -> Appointment {
    let draft = &record.draft;
    let mut participants = vec![participant("Practitioner", draft.practitioner.as_str())];
    participants.extend(
        draft
            .patient
            .as_ref()
            .map(|p| participant("Patient", p.as_str())),
    );
    let reason = draft.reason.as_ref();
    Appointment {
        resource_type: "Appointment".into(),
        id: Some(record.id.clone()),
        contained: draft
            .meeting_link
            .as_deref()
            .map(meeting_endpoint)
            .into_iter()
            .collect(),
        extension: record
            .note_id
            .as_deref()
            .map(note_extension)
            .into_iter()
            .collect(),
        identifier: draft.identifiers.clone(),
        status: draft.status,
        appointment_type: Some(appointment_type(&draft.note_type)),
        reason_code: reason
            .map(|r| CodeableConcept {
                coding: r.coding.iter().cloned().collect(),
                text: r.text.clone(),
            })
            .into_iter()
            .collect(),
        description: reason.and_then(|r| r.text.clone()),
        supporting_information: supporting_information(record),
        start: Some(Instant::utc(draft.start)),
        end: Some(Instant::utc(draft.end)),
        participant: participants,
    }
}
