//! Appointment create, read and update as Canvas answers them (canvas-fhir.md §4).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    OKAFOR, OLIVIA, TestSandbox, appointment, appointment_id, at, day, local, outcome, rejected,
    spawn, variant,
};

async fn read(app: &TestSandbox, id: &str) -> Value {
    let (status, body) = app.get_json(&format!("/Appointment/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn create_answers_201_null_with_a_location_header() {
    let app = spawn().await;
    let d = day(&app);
    let body = appointment(OKAFOR, Some(OLIVIA), &at(d, "17:00"), &at(d, "17:30"));
    let response = app.post("/Appointment", &body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert!(response.headers().contains_key("fumage-correlation-id"));
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(response.text().await.unwrap(), "null");
    let prefix = format!("{}/Appointment/", app.base);
    assert!(
        location.starts_with(&prefix) && location.ends_with("/_history/1"),
        "{location}"
    );
    let id = appointment_id(&location);
    assert!(uuid::Uuid::parse_str(&id).is_ok());
    assert!(
        app.control()
            .appointments()
            .iter()
            .any(|a| a.id.as_deref() == Some(&*id))
    );
}

#[tokio::test]
async fn reads_are_normalised() {
    let app = spawn().await;
    let d = day(&app);
    let mut body = appointment(
        OKAFOR,
        Some(OLIVIA),
        &format!("{d}T09:00:00-08:00"),
        &format!("{d}T09:30:00-08:00"),
    );
    body["contained"] = json!([{"resourceType": "Endpoint", "id": "appointment-meeting-endpoint",
        "status": "active", "connectionType": {}, "payloadType": [{"coding": []}],
        "address": "https://meet.example.com/abc"}]);
    body["supportingInformation"]
        .as_array_mut()
        .unwrap()
        .push(json!({"reference": "#appointment-meeting-endpoint", "type": "Endpoint"}));
    body["identifier"] = json!([{"system": "urn:slotgate:booking", "value": "k-1",
        "assigner": {"display": "slotgate"}}]);
    let id = app.book(&body).await;
    let a = read(&app, &id).await;
    assert_eq!(a["id"], id);
    assert_eq!(a["start"], format!("{d}T17:00:00+00:00"));
    assert_eq!(a["end"], format!("{d}T17:30:00+00:00"));
    assert_eq!(a["description"], "First visit");
    assert_eq!(a["contained"][0]["id"], "appointment-meeting-endpoint-0");
    assert_eq!(a["contained"][0]["address"], "https://meet.example.com/abc");
    let support = a["supportingInformation"].as_array().unwrap();
    assert_eq!(support[0]["type"], "Location");
    assert_eq!(
        support[1],
        json!({"reference": "#appointment-meeting-endpoint-0", "type": "Endpoint"})
    );
    assert_eq!(a["participant"][0]["actor"]["type"], "Practitioner");
    assert_eq!(a["participant"][1]["actor"]["type"], "Patient");
    assert_eq!(a["participant"][1]["status"], "accepted");
    assert!(
        a["extension"][0]["url"]
            .as_str()
            .unwrap()
            .ends_with("note-id")
    );
    assert!(a["extension"][0]["valueId"].is_string());
    assert_eq!(a["reasonCode"][0]["coding"][0]["display"], "Initial Visit");
    let identifier = &a["identifier"][0];
    assert!(identifier["id"].is_string());
    assert_eq!(identifier["use"], "usual");
    assert_eq!(
        identifier["period"],
        json!({"start": "1970-01-01", "end": "2100-12-31"})
    );
    assert!(identifier.get("assigner").is_none());
    let (status, missing) = app
        .get_json("/Appointment/a47c7b0e-bbb4-42cd-bc4a-df259d148ea1")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        outcome(&missing),
        (
            "not-found".into(),
            "Unknown Appointment resource 'a47c7b0e-bbb4-42cd-bc4a-df259d148ea1'".into()
        )
    );
}

#[tokio::test]
async fn put_merges_only_what_was_sent() {
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
    let before = read(&app, &id).await;
    let response = app
        .put(
            &format!("/Appointment/{id}"),
            &json!({"resourceType": "Appointment",
            "status": "arrived", "start": at(d, "17:10"), "end": at(d, "17:40")}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "null");
    let after = read(&app, &id).await;
    assert_eq!(after["status"], "arrived");
    assert_eq!(after["start"], format!("{d}T17:10:00+00:00"));
    for kept in [
        "reasonCode",
        "description",
        "participant",
        "supportingInformation",
        "appointmentType",
        "extension",
    ] {
        assert_eq!(after[kept], before[kept], "{kept}");
    }
}

#[tokio::test]
async fn cancelling_by_put_frees_the_slot_and_is_final() {
    let app = spawn().await;
    let d = day(&app);
    let (ten, half_past) = (local(&app, 1, d, 10, 0), local(&app, 1, d, 10, 30));
    let body = appointment(OKAFOR, Some(OLIVIA), &ten, &half_past);
    let id = app.book(&body).await;
    let schedule = crate::helpers::schedule_id(1, OKAFOR);
    let has_ten = |slots: &[Value]| slots.iter().any(|s| s["start"] == ten.as_str());
    assert!(!has_ten(&app.slots(&schedule, d, d, 30).await));
    let cancel = json!({"status": "cancelled", "start": body["start"], "end": body["end"],
        "supportingInformation": body["supportingInformation"], "participant": body["participant"]});
    assert_eq!(
        app.put(&format!("/Appointment/{id}"), &cancel)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(read(&app, &id).await["status"], "cancelled");
    assert!(has_ten(&app.slots(&schedule, d, d, 30).await));
    let revive = app
        .put(&format!("/Appointment/{id}"), &json!({"status": "booked"}))
        .await;
    assert_eq!(revive.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(outcome(&revive.json().await.unwrap()).0, "business-rule");
}

#[tokio::test]
async fn if_unmodified_since_answers_412_when_modified_since() {
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
    let put = |since: &'static str| {
        app.client
            .put(format!("{}/Appointment/{id}", app.base))
            .bearer_auth(&app.token)
            .header("if-unmodified-since", since)
            .json(&json!({"status": "arrived"}))
            .send()
    };
    let stale = put("Wed, 21 Oct 2015 07:28:00 GMT").await.unwrap();
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(
        outcome(&stale.json().await.unwrap()),
        (
            "conflict".into(),
            "Resource updated since If-Unmodified-Since date".into()
        )
    );
    let fresh = put("Fri, 01 Jan 2100 00:00:00 GMT").await.unwrap();
    assert_eq!(fresh.status(), StatusCode::OK);
    let unknown = app
        .put("/Appointment/nope", &json!({"status": "arrived"}))
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn malformed_bodies_are_400_invalid() {
    let app = spawn().await;
    let d = day(&app);
    let good = appointment(OKAFOR, Some(OLIVIA), &at(d, "17:00"), &at(d, "17:30"));
    let endpoint = json!([{"resourceType": "Endpoint", "id": "zoom", "address": "https://x"}]);
    let patient_only = json!([{"actor": {"reference": format!("Patient/{OLIVIA}")}}]);
    for (key, value) in [
        ("status", Value::Null),
        ("status", json!("entered-in-error")),
        ("start", Value::Null),
        ("start", json!("tomorrow")),
        ("end", json!(at(d, "16:00"))),
        ("supportingInformation", json!([])),
        ("participant", patient_only),
        ("contained", endpoint),
    ] {
        let (status, code, _) = rejected(&app, &variant(&good, key, value.clone())).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "invalid"),
            "{key} = {value}"
        );
    }
    let response = app
        .client
        .post(format!("{}/Appointment", app.base))
        .bearer_auth(&app.token)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn other_events_need_no_patient_and_take_integer_locations() {
    let app = spawn().await;
    let d = day(&app);
    let good = appointment(OKAFOR, None, &at(d, "17:00"), &at(d, "17:30"));
    let mut event = variant(
        &good,
        "supportingInformation",
        json!([{"reference": "Location/1"}]),
    );
    event["appointmentType"] =
        json!({"coding": [{"system": "http://snomed.info/sct", "code": "272379006"}]});
    let id = app.book(&event).await;
    let read = read(&app, &id).await;
    assert_eq!(read["participant"].as_array().unwrap().len(), 1);
    assert_eq!(
        read["supportingInformation"][0]["reference"],
        "Location/388f8191-af1d-433a-93d7-6db62585ae1e"
    );
    assert!(read.get("extension").is_none(), "Other Events have no note");
    // Moving it must name its type again (§4).
    let moved = app
        .put(
            &format!("/Appointment/{id}"),
            &json!({"status": "booked", "start": at(d, "18:00"), "end": at(d, "18:30")}),
        )
        .await;
    assert_eq!(moved.status(), StatusCode::BAD_REQUEST);
}
