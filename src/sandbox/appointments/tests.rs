use jiff::Timestamp;
use jiff::civil::date;
use serde_json::{Value, json};

use super::*;
use crate::sandbox::clinic::Clinic;

const OKAFOR: &str = "c48de0f40beb4fee86f872da7a840cf9";
const OLIVIA: &str = "6052e4cce53549a5864604d1cf81e0fc";
const OAKLAND: &str = "388f8191-af1d-433a-93d7-6db62585ae1e";

fn clinic() -> Clinic {
    Clinic::demo(date(2026, 6, 15))
}

fn body(extra: Value) -> AppointmentWrite {
    let mut base = json!({
        "resourceType": "Appointment",
        "status": "booked",
        "start": "2026-06-18T16:00:00Z",
        "end": "2026-06-18T16:30:00Z",
        "supportingInformation": [{"reference": format!("Location/{OAKLAND}")}],
        "participant": [
            {"actor": {"reference": format!("Patient/{OLIVIA}")}, "status": "accepted"},
            {"actor": {"reference": format!("Practitioner/{OKAFOR}")}, "status": "accepted"}
        ]
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    AppointmentWrite::parse(base.to_string().as_bytes()).unwrap()
}

fn now() -> Timestamp {
    "2026-06-15T12:00:00Z".parse().unwrap()
}

fn ctx(clinic: &Clinic, reject: bool) -> UpdateContext<'_> {
    UpdateContext {
        clinic,
        today: clinic.today,
        now: now(),
        reject_double_booking: reject,
        if_unmodified_since: None,
    }
}

#[test]
fn a_minimal_body_gets_canvas_defaults() {
    let draft = write::new_draft(&body(json!({})), &clinic()).unwrap();
    assert_eq!(draft.note_type.name, "Office Visit");
    let reason = draft.reason.unwrap();
    assert_eq!(reason.text.as_deref(), Some("No description given"));
    assert_eq!(draft.meeting_link, None);
}

#[test]
fn the_integer_location_form_maps_to_the_uuid() {
    let sent = body(json!({"supportingInformation": [{"reference": "Location/1"}]}));
    let draft = write::new_draft(&sent, &clinic()).unwrap();
    assert_eq!(draft.location_id, OAKLAND);
}

#[test]
fn telehealth_without_an_endpoint_uses_the_personal_room() {
    let sent = body(json!({"appointmentType": {"coding": [
        {"system": "http://snomed.info/sct", "code": "448337001"}]}}));
    let draft = write::new_draft(&sent, &clinic()).unwrap();
    assert!(draft.meeting_link.unwrap().contains("maya-okafor"));
}

#[test]
fn write_errors_carry_canvas_texts() {
    let c = clinic();
    let err = |extra: Value| write::new_draft(&body(extra), &c).unwrap_err();
    assert_eq!(
        err(json!({"appointmentType": {"coding": [{"system": "x", "code": "1"}]}})),
        AppointmentError::Rule("Appointment Type does not exist with code: 1 and system: x".into())
    );
    assert_eq!(
        err(json!({"reasonCode": [{"coding": [{"system": "INTERNAL", "code": "NOPE"}]}]})),
        AppointmentError::Rule("structured reason for visit with code NOPE does not exist".into())
    );
    assert!(matches!(
        err(json!({"status": null})),
        AppointmentError::Invalid(_)
    ));
    assert!(matches!(
        err(json!({"status": "entered-in-error"})),
        AppointmentError::Invalid(_)
    ));
    assert!(matches!(
        err(json!({"end": "2026-06-18T16:00:00Z"})),
        AppointmentError::Invalid(_)
    ));
    assert!(matches!(
        err(json!({"participant": [{"actor": {"reference": format!("Practitioner/{OKAFOR}")}}]})),
        AppointmentError::Rule(_)
    ));
}

#[test]
fn other_events_need_no_patient() {
    let sent = body(json!({
        "appointmentType": {"coding": [{"system": "http://snomed.info/sct", "code": "272379006"}]},
        "participant": [{"actor": {"reference": format!("Practitioner/{OKAFOR}")}}]
    }));
    let draft = write::new_draft(&sent, &clinic()).unwrap();
    assert_eq!(draft.patient, None);
    assert_eq!(draft.reason, None);
}

fn book_with(clinic: &Clinic, sent: AppointmentWrite) -> Book {
    let mut book = Book::default();
    let draft = write::new_draft(&sent, clinic).unwrap();
    book.insert("a1".into(), draft, false, now()).unwrap();
    book
}

#[test]
fn identifiers_not_sent_on_update_are_dropped_unless_already_ended() {
    let c = clinic();
    let sent = body(json!({"identifier": [
        {"system": "s", "value": "live"},
        {"system": "s", "value": "old", "period": {"start": "2020-01-01", "end": "2021-01-01"}}
    ]}));
    let mut book = book_with(&c, sent);
    let stored = book.get("a1").unwrap().draft.identifiers.clone();
    assert_eq!(
        stored[0].period.as_ref().unwrap().end.as_deref(),
        Some("2100-12-31")
    );
    book.update("a1", &body(json!({"status": "arrived"})), ctx(&c, false))
        .unwrap();
    let kept: Vec<_> = book
        .get("a1")
        .unwrap()
        .draft
        .identifiers
        .iter()
        .map(|i| i.value.clone().unwrap())
        .collect();
    assert_eq!(kept, ["old"]);
    let resend = json!({"identifier": [{"id": stored[1].id, "system": "s", "value": "renamed"}]});
    book.update("a1", &body(resend), ctx(&c, false)).unwrap();
    let after = &book.get("a1").unwrap().draft.identifiers;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].id, stored[1].id);
    assert_eq!(after[0].value.as_deref(), Some("renamed"));
}

#[test]
fn a_partial_update_keeps_what_was_not_sent() {
    let c = clinic();
    let sent = body(json!({"reasonCode": [{"coding": [{"code": "FLUP"}], "text": "Knee"}]}));
    let mut book = book_with(&c, sent);
    let update = AppointmentWrite::parse(br#"{"status":"cancelled"}"#).unwrap();
    book.update("a1", &update, ctx(&c, false)).unwrap();
    let draft = &book.get("a1").unwrap().draft;
    assert_eq!(draft.status, AppointmentStatus::Cancelled);
    assert_eq!(draft.reason.as_ref().unwrap().text.as_deref(), Some("Knee"));
    assert_eq!(draft.location_id, OAKLAND);
    let revive = AppointmentWrite::parse(br#"{"status":"booked"}"#).unwrap();
    assert!(matches!(
        book.update("a1", &revive, ctx(&c, false)),
        Err(AppointmentError::Rule(_))
    ));
}

#[test]
fn if_unmodified_since_guards_updates() {
    let c = clinic();
    let mut book = book_with(&c, body(json!({})));
    let update = AppointmentWrite::parse(br#"{"status":"arrived"}"#).unwrap();
    let mut guarded = ctx(&c, false);
    guarded.if_unmodified_since = Some("2026-06-15T11:59:59Z".parse().unwrap());
    assert_eq!(
        book.update("a1", &update, guarded),
        Err(AppointmentError::ModifiedSince)
    );
    guarded.if_unmodified_since = Some(now());
    book.update("a1", &update, guarded).unwrap();
    assert_eq!(
        book.update("nope", &update, ctx(&c, false)),
        Err(AppointmentError::NotFound("nope".into()))
    );
}

#[test]
fn double_booking_is_refused_only_when_the_setting_is_on() {
    let c = clinic();
    let mut book = book_with(&c, body(json!({})));
    let overlapping = body(json!({"start": "2026-06-18T16:15:00Z", "end": "2026-06-18T16:45:00Z"}));
    let draft = write::new_draft(&overlapping, &c).unwrap();
    assert_eq!(
        book.insert("a2".into(), draft.clone(), true, now()),
        Err(AppointmentError::Rule(NO_LONGER_AVAILABLE.into()))
    );
    book.insert("a2".into(), draft, false, now()).unwrap();
    // Already double-booked: a status change that does not move it is fine.
    let arrive = AppointmentWrite::parse(br#"{"status":"arrived"}"#).unwrap();
    book.update("a2", &arrive, ctx(&c, true)).unwrap();
    let moved = body(json!({"start": "2026-06-18T16:10:00Z"}));
    assert!(book.update("a2", &moved, ctx(&c, true)).is_err());
    let cancelled = body(json!({"status": "cancelled"}));
    book.update("a1", &cancelled, ctx(&c, true)).unwrap();
    book.update("a2", &moved, ctx(&c, true)).unwrap();
}

#[test]
fn reads_are_normalised_like_the_canvas_example() {
    let c = clinic();
    let sent = body(json!({
        "contained": [{"resourceType": "Endpoint", "id": "appointment-meeting-endpoint",
            "status": "active", "connectionType": {}, "payloadType": [{"coding": []}],
            "address": "https://meet.example.com/x"}],
        "supportingInformation": [
            {"reference": format!("Location/{OAKLAND}")},
            {"reference": "#appointment-meeting-endpoint", "type": "Endpoint"}],
        "reasonCode": [{"coding": [{"system": "INTERNAL", "code": "INIV"}], "text": "First visit"}],
        "start": "2026-06-18T09:00:00-07:00", "end": "2026-06-18T09:30:00-07:00",
        "identifier": [{"system": "sys", "value": "v", "assigner": {"display": "x"}}]
    }));
    let book = book_with(&c, sent);
    let read = serde_json::to_value(book.get("a1").unwrap().to_fhir()).unwrap();
    assert_eq!(read["start"], "2026-06-18T16:00:00+00:00");
    assert_eq!(read["description"], "First visit");
    assert_eq!(read["contained"][0]["id"], "appointment-meeting-endpoint-0");
    assert_eq!(
        read["supportingInformation"][1]["reference"],
        "#appointment-meeting-endpoint-0"
    );
    assert_eq!(read["supportingInformation"][0]["type"], "Location");
    assert_eq!(read["participant"][0]["actor"]["type"], "Practitioner");
    assert_eq!(read["participant"][1]["actor"]["type"], "Patient");
    assert_eq!(
        read["reasonCode"][0]["coding"][0]["display"],
        "Initial Visit"
    );
    assert_eq!(read["appointmentType"]["coding"][0]["code"], "308335008");
    assert!(read["extension"][0]["valueId"].is_string());
    assert!(read["identifier"][0].get("assigner").is_none());
    assert_eq!(read["identifier"][0]["period"]["start"], "1970-01-01");
}
