//! The FHIR bodies slotgate writes to Canvas, as pure functions (canvas-fhir.md §4).

use aws_lc_rs::digest;
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::canvas::fhir::{
    Appointment, AppointmentStatus, CodeableConcept, Coding, Endpoint, Identifier, Instant,
    MEETING_ENDPOINT_ID, Participant, Reference,
};
use crate::rules::model::{Reason, TypeCoding};
use crate::types::{PatientId, PractitionerId};

/// Identifier system of appointments slotgate books; the value is derived from the
/// idempotency key, so a create that may have happened can be found again (§4 identifiers).
pub const BOOKING_SYSTEM: &str = "urn:slotgate:booking";
/// Identifier system of Other Events slotgate creates for staff.
pub const EVENT_SYSTEM: &str = "urn:slotgate:event";
/// Identifier system of Other Events that mirror a meeting in a clinician's calendar; the
/// value is `<google|graph>:<calendar>:<event id>`.
pub const CALENDAR_SYSTEM: &str = "urn:slotgate:calendar-event";
pub const PREVIOUSLY_RESCHEDULED: &str = "Previously Rescheduled Appointment";
pub const RESCHEDULED_REPLACEMENT: &str = "Rescheduled Replacement Appointment";

/// A stable, opaque value for a caller's idempotency key: the key itself never reaches Canvas.
pub fn identifier_value(subject: &str, key: &str, purpose: &str) -> String {
    let d = digest::digest(
        &digest::SHA256,
        format!("{purpose}\n{subject}\n{key}").as_bytes(),
    );
    d.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn identifier(system: &str, value: &str) -> Identifier {
    Identifier {
        use_: Some("usual".into()),
        system: Some(system.into()),
        value: Some(value.into()),
        ..Identifier::default()
    }
}

fn coding(t: &TypeCoding) -> CodeableConcept {
    CodeableConcept {
        coding: vec![Coding {
            system: Some(t.system.clone()),
            code: Some(t.code.clone()),
            ..Coding::default()
        }],
        text: None,
    }
}

fn participant(resource: &str, id: &str) -> Participant {
    // Canvas stores `accepted` whatever is sent, and rejects `active` (§4 participant).
    Participant {
        actor: Reference::to(resource, id),
        status: Some("accepted".into()),
    }
}

/// What a booking writes.
pub struct NewAppointment<'a> {
    pub reason: &'a Reason,
    pub appointment_type: &'a TypeCoding,
    pub practitioner: &'a PractitionerId,
    pub patient: &'a PatientId,
    pub location_id: &'a str,
    pub start: Timestamp,
    pub end: Timestamp,
    /// The patient's free text: the structured reason's comment (`reasonCode[0].text`).
    pub comment: Option<&'a str>,
    /// The clinic's configured telehealth link for the clinician, if any.
    pub meeting_link: Option<&'a str>,
    pub identifier: &'a str,
    /// The appointment this one replaces.
    pub rescheduled_from: Option<&'a str>,
}

pub fn appointment(a: &NewAppointment<'_>) -> Appointment {
    let mut supporting = vec![Reference::to("Location", a.location_id)];
    let mut contained = Vec::new();
    if let Some(link) = a.meeting_link {
        // v2 requires status, connectionType and payloadType; only the address is used.
        contained.push(Endpoint {
            resource_type: "Endpoint".into(),
            id: Some(MEETING_ENDPOINT_ID.into()),
            status: Some("active".into()),
            connection_type: Some(json!({})),
            payload_type: Some(json!([{"coding": []}])),
            address: Some(link.into()),
        });
        supporting.push(Reference {
            reference: Some(format!("#{MEETING_ENDPOINT_ID}")),
            resource_type: Some("Endpoint".into()),
            ..Reference::default()
        });
    }
    if let Some(old) = a.rescheduled_from {
        supporting.push(Reference {
            reference: Some(format!("Appointment/{old}")),
            resource_type: Some("Appointment".into()),
            display: Some(PREVIOUSLY_RESCHEDULED.into()),
            ..Reference::default()
        });
    }
    Appointment {
        resource_type: "Appointment".into(),
        id: None,
        contained,
        extension: Vec::new(),
        identifier: vec![identifier(BOOKING_SYSTEM, a.identifier)],
        status: AppointmentStatus::Booked,
        appointment_type: Some(coding(a.appointment_type)),
        reason_code: vec![CodeableConcept {
            coding: vec![Coding {
                system: Some(a.reason.system.clone()),
                code: Some(a.reason.code.clone()),
                display: Some(a.reason.display.clone()),
                user_selected: None,
            }],
            text: a.comment.map(str::to_owned),
        }],
        description: None,
        supporting_information: supporting,
        start: Some(Instant::utc(a.start)),
        end: Some(Instant::utc(a.end)),
        participant: vec![
            participant("Patient", a.patient.as_str()),
            participant("Practitioner", a.practitioner.as_str()),
        ],
    }
}

/// What an Other Event (a block of a clinician's time without a note) writes.
pub struct NewEvent<'a> {
    pub event_type: &'a TypeCoding,
    pub practitioner: &'a PractitionerId,
    pub patient: Option<&'a PatientId>,
    pub location_id: &'a str,
    pub start: Timestamp,
    pub end: Timestamp,
    pub title: &'a str,
    /// (system, value) that finds the event again.
    pub identifier: (&'a str, &'a str),
}

pub fn other_event(e: &NewEvent<'_>) -> Appointment {
    let mut participants = vec![participant("Practitioner", e.practitioner.as_str())];
    if let Some(p) = e.patient {
        participants.insert(0, participant("Patient", p.as_str()));
    }
    Appointment {
        resource_type: "Appointment".into(),
        id: None,
        contained: Vec::new(),
        extension: Vec::new(),
        identifier: vec![identifier(e.identifier.0, e.identifier.1)],
        status: AppointmentStatus::Booked,
        appointment_type: Some(coding(e.event_type)),
        reason_code: vec![CodeableConcept {
            coding: Vec::new(),
            text: Some(e.title.into()),
        }],
        description: Some(e.title.into()),
        supporting_information: vec![Reference::to("Location", e.location_id)],
        start: Some(Instant::utc(e.start)),
        end: Some(Instant::utc(e.end)),
        participant: participants,
    }
}

/// The PUT that gives an Other Event (as read) new times and title, booked again if it was
/// cancelled; identifiers and type go back as read (§4 Update).
pub fn retimed(current: &Appointment, start: Timestamp, end: Timestamp, title: &str) -> Value {
    let mut body = cancellation(current, None);
    body["status"] = json!("booked");
    body["start"] = json!(Instant::utc(start));
    body["end"] = json!(Instant::utc(end));
    body["reasonCode"] = json!([{"text": title}]);
    body
}

/// The PUT that cancels `current` (as read). Canvas merges what is sent field by field, but
/// deletes identifiers that are not sent again and wants an Other Event's type re-sent (§4
/// Update), so both go back as read; so do the supporting references (location, visit link,
/// the appointment it replaced) and the contained visit link they point to, which a new
/// `supportingInformation` would otherwise replace.
pub fn cancellation(current: &Appointment, replaced_by: Option<&str>) -> Value {
    // In the shapes a create sends them (§4): the location, the visit link, and the links
    // between rescheduled appointments. Encounters and the like are Canvas's own; not sent.
    let mut supporting: Vec<Value> = current
        .supporting_information
        .iter()
        .filter_map(|r| {
            let reference = r.reference.as_deref()?;
            if reference.starts_with("Location/") {
                Some(json!({"reference": reference}))
            } else if reference.starts_with('#') {
                Some(json!({"reference": reference, "type": "Endpoint"}))
            } else if reference.starts_with("Appointment/") {
                Some(json!({"reference": reference, "type": "Appointment", "display": r.display}))
            } else {
                None
            }
        })
        .collect();
    if let Some(new) = replaced_by {
        let reference = format!("Appointment/{new}");
        if !current
            .supporting_information
            .iter()
            .any(|r| r.reference.as_deref() == Some(reference.as_str()))
        {
            supporting.push(json!({"reference": reference, "type": "Appointment", "display": RESCHEDULED_REPLACEMENT}));
        }
    }
    let participants: Vec<Value> = current
        .participant
        .iter()
        .filter_map(|p| p.actor.reference.as_ref())
        .map(|r| json!({"actor": {"reference": r}, "status": "accepted"}))
        .collect();
    let mut body = json!({
        "resourceType": "Appointment",
        "status": "cancelled",
        "start": current.start,
        "end": current.end,
        "participant": participants,
        "supportingInformation": supporting,
        "identifier": current.identifier,
    });
    if let Some(t) = &current.appointment_type {
        body["appointmentType"] = json!(t);
    }
    if !current.contained.is_empty() {
        body["contained"] = json!(current.contained);
    }
    body
}

/// An Other Event rather than a patient's visit: of the clinic's Other Event type, or one
/// slotgate created as an event (whatever type its creator chose).
pub fn is_other_event(a: &Appointment, event_type: &TypeCoding) -> bool {
    let of_event_type = a
        .appointment_type
        .as_ref()
        .and_then(|t| t.coding.first())
        .is_some_and(|c| {
            c.code.as_deref() == Some(event_type.code.as_str())
                && c.system.as_deref().is_none_or(|s| s == event_type.system)
        });
    of_event_type
        || a.identifier
            .iter()
            .any(|i| i.system.as_deref() == Some(EVENT_SYSTEM))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn reason() -> Reason {
        Reason {
            code: "INIV".into(),
            system: "INTERNAL".into(),
            display: "Initial Visit".into(),
            durations: vec![30],
            modalities: BTreeMap::new(),
            specialties: vec![],
            patient_bookable: true,
        }
    }

    #[test]
    fn a_booking_is_the_create_body_canvas_documents() {
        let (reason, t) = (
            reason(),
            TypeCoding {
                system: "http://snomed.info/sct".into(),
                code: "448337001".into(),
            },
        );
        let (practitioner, patient) = (
            "4150cd20de8a470aa570a852859ac87e".parse().unwrap(),
            "ee1c7803325b47b492008f3e7c9d7a3d".parse().unwrap(),
        );
        let body = serde_json::to_value(appointment(&NewAppointment {
            reason: &reason,
            appointment_type: &t,
            practitioner: &practitioner,
            patient: &patient,
            location_id: "b3476a18-3f63-422d-87e7-b3dc0cd55060",
            start: "2026-12-01T17:00:00Z".parse().unwrap(),
            end: "2026-12-01T17:30:00Z".parse().unwrap(),
            comment: Some("sore throat"),
            meeting_link: Some("https://meet.example.org/okafor"),
            identifier: "abc",
            rescheduled_from: Some("7fa2874e-73c8-418d-bb25-eea0ccac651c"),
        }))
        .unwrap();
        assert_eq!(
            body,
            json!({
                "resourceType": "Appointment",
                "contained": [{"resourceType": "Endpoint", "id": "appointment-meeting-endpoint", "status": "active",
                               "connectionType": {}, "payloadType": [{"coding": []}], "address": "https://meet.example.org/okafor"}],
                "identifier": [{"use": "usual", "system": "urn:slotgate:booking", "value": "abc"}],
                "status": "booked",
                "appointmentType": {"coding": [{"system": "http://snomed.info/sct", "code": "448337001"}]},
                "reasonCode": [{"coding": [{"system": "INTERNAL", "code": "INIV", "display": "Initial Visit"}], "text": "sore throat"}],
                "supportingInformation": [
                    {"reference": "Location/b3476a18-3f63-422d-87e7-b3dc0cd55060"},
                    {"reference": "#appointment-meeting-endpoint", "type": "Endpoint"},
                    {"reference": "Appointment/7fa2874e-73c8-418d-bb25-eea0ccac651c", "type": "Appointment", "display": "Previously Rescheduled Appointment"}
                ],
                "start": "2026-12-01T17:00:00+00:00",
                "end": "2026-12-01T17:30:00+00:00",
                "participant": [
                    {"actor": {"reference": "Patient/ee1c7803325b47b492008f3e7c9d7a3d"}, "status": "accepted"},
                    {"actor": {"reference": "Practitioner/4150cd20de8a470aa570a852859ac87e"}, "status": "accepted"}
                ]
            })
        );
    }

    #[test]
    fn identifier_values_are_stable_per_caller_key_and_purpose() {
        let a = identifier_value("sub-1", "key-1", "book");
        assert_eq!(a, identifier_value("sub-1", "key-1", "book"));
        assert_ne!(a, identifier_value("sub-2", "key-1", "book"));
        assert_ne!(a, identifier_value("sub-1", "key-1", "event"));
        assert_eq!(a.len(), 32);
        assert!(!a.contains("key-1"));
    }

    #[test]
    fn a_cancellation_resends_identifiers_and_the_type() {
        let read: Appointment = serde_json::from_value(json!({
            "resourceType": "Appointment", "id": "a1", "status": "booked",
            "identifier": [{"id": "97b2", "use": "usual", "system": "urn:slotgate:booking", "value": "abc",
                            "period": {"start": "1970-01-01", "end": "2100-12-31"}}],
            "appointmentType": {"coding": [{"system": "http://snomed.info/sct", "code": "272379006"}]},
            "start": "2026-12-01T17:00:00+00:00", "end": "2026-12-01T17:30:00+00:00",
            "contained": [{"resourceType": "Endpoint", "id": "appointment-meeting-endpoint-0", "status": "active",
                           "connectionType": {"code": "https"}, "payloadType": [{"coding": [{"code": "video-call"}]}],
                           "address": "https://meet.example.org/okafor"}],
            "supportingInformation": [{"reference": "Location/b347", "type": "Location"},
                                      {"reference": "#appointment-meeting-endpoint-0", "type": "Endpoint"},
                                      {"reference": "Encounter/e1", "type": "Encounter"},
                                      {"reference": "Appointment/p0", "type": "Appointment",
                                       "display": "Previously Rescheduled Appointment"}],
            "participant": [{"actor": {"reference": "Practitioner/4150", "type": "Practitioner"}, "status": "accepted"}]
        }))
        .unwrap();
        let body = cancellation(&read, Some("n1"));
        assert_eq!(body["status"], "cancelled");
        assert_eq!(body["identifier"][0]["id"], "97b2");
        assert_eq!(body["appointmentType"]["coding"][0]["code"], "272379006");
        assert_eq!(
            body["supportingInformation"],
            json!([
                {"reference": "Location/b347"},
                {"reference": "#appointment-meeting-endpoint-0", "type": "Endpoint"},
                {"reference": "Appointment/p0", "type": "Appointment", "display": "Previously Rescheduled Appointment"},
                {"reference": "Appointment/n1", "type": "Appointment", "display": "Rescheduled Replacement Appointment"}
            ])
        );
        // The visit link the reference points to goes back with it.
        assert_eq!(body["contained"][0]["id"], "appointment-meeting-endpoint-0");
        assert_eq!(
            body["contained"][0]["address"],
            "https://meet.example.org/okafor"
        );
        assert_eq!(
            body["participant"],
            json!([{"actor": {"reference": "Practitioner/4150"}, "status": "accepted"}])
        );
    }

    #[test]
    fn a_meeting_moved_or_restored_keeps_what_finds_it() {
        let read: Appointment = serde_json::from_value(json!({
            "resourceType": "Appointment", "id": "a2", "status": "cancelled",
            "identifier": [{"id": "51c0", "use": "usual", "system": CALENDAR_SYSTEM, "value": "google:dr@clinic.example:evt1",
                            "period": {"start": "1970-01-01", "end": "2100-12-31"}}],
            "appointmentType": {"coding": [{"system": "http://snomed.info/sct", "code": "272379006"}]},
            "start": "2026-03-08T17:00:00+00:00", "end": "2026-03-08T18:00:00+00:00",
            "supportingInformation": [{"reference": "Location/b347", "type": "Location"}],
            "participant": [{"actor": {"reference": "Practitioner/4150", "type": "Practitioner"}, "status": "accepted"}]
        }))
        .unwrap();
        let body = retimed(
            &read,
            "2026-03-08T18:30:00Z".parse().unwrap(),
            "2026-03-08T19:15:00Z".parse().unwrap(),
            "Board meeting",
        );
        assert_eq!(
            (&body["status"], &body["start"], &body["end"]),
            (
                &json!("booked"),
                &json!("2026-03-08T18:30:00+00:00"),
                &json!("2026-03-08T19:15:00+00:00")
            )
        );
        assert_eq!(body["identifier"], json!(read.identifier));
        assert_eq!(body["reasonCode"], json!([{"text": "Board meeting"}]));
        assert_eq!(body["appointmentType"]["coding"][0]["code"], "272379006");
    }
}
