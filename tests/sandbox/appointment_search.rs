//! Appointment search (canvas-fhir.md §4 "Search").

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{
    BROOKLYN, KIM, OAKLAND, OKAFOR, OLIVIA, appointment, at, day, outcome, spawn,
};

#[tokio::test]
async fn search_by_identifier_patient_practitioner_and_status() {
    let app = spawn().await;
    let d = day(&app);
    let mut body = appointment(OKAFOR, Some(OLIVIA), &at(d, "17:00"), &at(d, "17:30"));
    body["identifier"] = json!([{"system": "urn:slotgate:idempotency", "value": "abc-123"}]);
    let id = app.book(&body).await;
    let found = app.all("/Appointment?identifier=abc-123").await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["id"], id);
    assert_eq!(
        app.all("/Appointment?identifier=urn:slotgate:idempotency%7Cabc-123")
            .await
            .len(),
        1
    );
    assert!(
        app.all("/Appointment?identifier=other%7Cabc-123")
            .await
            .is_empty()
    );
    let seeded = app
        .all("/Appointment?identifier=https://booking.sandbox.example/ids|BK-1001")
        .await;
    assert_eq!(seeded.len(), 1);
    let olivia = app
        .all(&format!("/Appointment?patient=Patient/{OLIVIA}"))
        .await;
    assert_eq!(olivia.len(), 2, "one seeded, one new");
    let okafor = app
        .all(&format!(
            "/Appointment?practitioner=Practitioner/{OKAFOR}&status=booked,proposed"
        ))
        .await;
    assert!(okafor.iter().all(|a| a["status"] != "cancelled"));
    assert_eq!(okafor.len(), 2);
    let cancelled = app.all("/Appointment?status=cancelled").await;
    assert_eq!(cancelled.len(), 1);
    let events = app
        .all("/Appointment?appointment-type=http://snomed.info/sct|272379006")
        .await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        app.all("/Appointment?appointment-type=308335008")
            .await
            .len(),
        5
    );
    assert_eq!(app.all(&format!("/Appointment?_id={id}")).await.len(), 1);
}

#[tokio::test]
async fn search_by_date_ranges_and_sort() {
    let app = spawn().await;
    let d = day(&app);
    for hhmm in ["16:00", "18:00", "20:00"] {
        let end = format!("{}:30", &hhmm[..2]);
        app.book(&appointment(
            OKAFOR,
            Some(OLIVIA),
            &at(d, hhmm),
            &at(d, &end),
        ))
        .await;
    }
    let on_day = app.all(&format!("/Appointment?date={d}")).await;
    assert_eq!(on_day.len(), 3);
    let range = app
        .all(&format!(
            "/Appointment?date=ge{d}T17:00:00Z&date=lt{d}T20:00:00Z"
        ))
        .await;
    assert_eq!(range.len(), 1);
    let exact = app
        .all(&format!(
            "/Appointment?patient=Patient/{OLIVIA}&date=eq{d}T16:00:00%2B00:00"
        ))
        .await;
    assert_eq!(exact.len(), 1);
    let after = app.all(&format!("/Appointment?date=gt{d}")).await;
    assert!(
        after
            .iter()
            .all(|a| a["start"].as_str().unwrap() > format!("{d}T23:59").as_str())
    );
    let not_that = app.all(&format!("/Appointment?date=ne{d}")).await;
    assert_eq!(not_that.len(), 7, "the seeded ones");
    let newest = app.all("/Appointment?_sort=-date").await;
    let starts: Vec<_> = newest
        .iter()
        .map(|a| a["start"].as_str().unwrap().to_owned())
        .collect();
    let mut sorted = starts.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(starts, sorted);
    let (status, _) = app.get_json("/Appointment?date=ge18/06/2026").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn search_by_location() {
    let app = spawn().await;
    let d = day(&app);
    let id = app
        .book(&appointment(
            OKAFOR,
            Some(OLIVIA),
            &at(d, "17:00"),
            &at(d, "17:30"),
        ))
        .await;
    let oakland = app
        .all(&format!("/Appointment?location=Location/{OAKLAND}"))
        .await;
    assert_eq!(oakland.len(), 4, "three seeded, one new");
    assert!(
        oakland.iter().all(|a| {
            a["supportingInformation"][0]["reference"] == format!("Location/{OAKLAND}")
        })
    );
    let brooklyn = app
        .all(&format!("/Appointment?location=Location/{BROOKLYN}"))
        .await;
    assert_eq!(brooklyn.len(), 2);
    assert!(!brooklyn.iter().any(|a| a["id"] == id));
    assert_eq!(
        app.all(&format!("/Appointment?location={BROOKLYN}")).await,
        brooklyn,
        "a bare id as well"
    );
    let kim_there = app
        .all(&format!(
            "/Appointment?location=Location/{BROOKLYN}&practitioner=Practitioner/{KIM}"
        ))
        .await;
    assert_eq!(kim_there.len(), 1);
    let new_here = app
        .all(&format!(
            "/Appointment?location=Location/{OAKLAND}&date={d}"
        ))
        .await;
    assert_eq!(new_here.len(), 1);
    assert_eq!(new_here[0]["id"], id);
    assert!(
        app.all("/Appointment?location=Location/00000000-0000-4000-8000-000000000000")
            .await
            .is_empty()
    );
}

/// Every parameter §4 lists, sent at once and each narrowing to the same appointment, then
/// the `_sort` keys not covered above.
#[tokio::test]
async fn every_documented_parameter_is_accepted_together() {
    let app = spawn().await;
    let d = day(&app);
    let mut body = appointment(OKAFOR, Some(OLIVIA), &at(d, "17:00"), &at(d, "17:30"));
    body["identifier"] = json!([{"system": "urn:slotgate:idempotency", "value": "all-1"}]);
    let id = app.book(&body).await;
    let all = format!(
        "/Appointment?_id={id}&appointment-type=http://snomed.info/sct%7C308335008\
         &identifier=urn:slotgate:idempotency%7Call-1&location=Location/{OAKLAND}\
         &patient=Patient/{OLIVIA}&practitioner=Practitioner/{OKAFOR}&date=ge{d}&date=le{d}\
         &status=booked&_sort=-date&_count=5&_offset=0"
    );
    let found = app.all(&all).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["id"], id);
    let actor = |a: &serde_json::Value, kind: &str| {
        a["participant"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                p["actor"]["reference"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .find(|r| r.starts_with(kind))
            .unwrap_or_default()
    };
    for (key, kind) in [("practitioner", "Practitioner/"), ("patient", "Patient/")] {
        let sorted: Vec<String> = app
            .all(&format!("/Appointment?_sort={key}"))
            .await
            .iter()
            .map(|a| actor(a, kind))
            .collect();
        assert!(sorted.is_sorted(), "{key}: {sorted:?}");
    }
}

/// canvas-fhir.md does not say what Fumage does with a parameter it does not support; the
/// sandbox refuses it by name rather than answer every appointment.
#[tokio::test]
async fn unknown_search_parameters_are_refused_by_name() {
    let app = spawn().await;
    for (path, name) in [
        (format!("/Appointment?actor=Practitioner/{OKAFOR}"), "actor"),
        ("/Appointment?start=ge2026-06-18".to_owned(), "start"),
        (
            format!("/Appointment?patient:Patient={OLIVIA}"),
            "patient:Patient",
        ),
        (
            "/Appointment?status=booked&_include=Appointment:patient".to_owned(),
            "_include",
        ),
    ] {
        let (status, body) = app.get_json(&path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(outcome(&body), ("invalid".into(), "Bad request".into()));
        assert_eq!(
            body["issue"][0]["diagnostics"],
            format!("{name}: unknown Appointment search parameter")
        );
    }
}
