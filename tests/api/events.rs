//! Other Events: staff block clinicians' time, and availability loses it.

use serde_json::{Value, json};

use crate::availability::open_app;
use crate::booking::slots_for;
use crate::helpers::{assert_problem, key};
use crate::seed::*;

#[tokio::test]
async fn staff_block_two_clinicians_time_and_availability_loses_it() {
    let app = open_app().await;
    let staff = app.staff_token();
    let (start, end) = (days(3).to_string(), days(9).to_string());
    let params = [
        ("reason", "FLUP"),
        ("duration", "30"),
        ("state", "CA"),
        ("modality", "telehealth"),
        ("practitioner", OKAFOR),
        ("start", start.as_str()),
        ("end", end.as_str()),
    ];
    let before = slots_for(&app, &staff, &params).await;
    let first = before[0]["start"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap();
    let meeting = json!({
        "practitioner_ids": [OKAFOR, REYES],
        "start": first.to_string(),
        "end": (first + jiff::SignedDuration::from_hours(1)).to_string(),
        "title": "Case conference",
    });
    let r = app
        .post_json("/v1/events", &staff, &meeting, Some(&key()))
        .await;
    assert_eq!(r.status(), 201);
    let made: Value = r.json().await.unwrap();
    let events = made["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    for e in events {
        assert_eq!(e["title"], "Case conference");
        assert_eq!(e["patient_id"], Value::Null);
        assert_eq!(e["reason"], Value::Null);
    }
    let after = slots_for(&app, &staff, &params).await;
    let blocked = |s: &Value| {
        let t: jiff::Timestamp = s["start"].as_str().unwrap().parse().unwrap();
        t >= first && t < first + jiff::SignedDuration::from_hours(1)
    };
    assert!(before.iter().any(blocked));
    assert!(!after.iter().any(blocked), "the meeting's hour is gone");
    // In Canvas: Generic Events, practitioner only, the title as description.
    let creates = app.creates();
    assert_eq!(creates.len(), 2);
    for c in &creates {
        assert_eq!(
            c["appointmentType"]["coding"][0],
            json!({"system": "http://snomed.info/sct", "code": "272379006"})
        );
        assert_eq!(c["description"], "Case conference");
        assert_eq!(c["participant"].as_array().unwrap().len(), 1);
        assert_eq!(c["identifier"][0]["system"], "urn:slotgate:event");
    }
}

#[tokio::test]
async fn only_staff_create_events_and_bad_ones_name_their_fields() {
    let app = open_app().await;
    let patient = app.patient_token("97491556534444838b94dbb0909b6b3d");
    let body = json!({"practitioner_ids": [OKAFOR], "start": "2030-01-01T10:00:00Z", "end": "2030-01-01T11:00:00Z", "title": "x"});
    assert_problem(
        app.post_json("/v1/events", &patient, &body, None).await,
        403,
        "forbidden",
    )
    .await;
    let staff = app.staff_token();
    let bad = json!({"practitioner_ids": ["nobody", CHEN], "start": "tomorrow", "end": "2030-01-01T11:00:00Z", "title": ""});
    let problem = assert_problem(
        app.post_json("/v1/events", &staff, &bad, None).await,
        400,
        "validation_failed",
    )
    .await;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"practitioner_ids[0]")
            && fields.contains(&"start")
            && fields.contains(&"title"),
        "{fields:?}"
    );
    let backwards = json!({"practitioner_ids": [OKAFOR], "start": "2030-01-01T11:00:00Z", "end": "2030-01-01T10:00:00Z", "title": "x"});
    assert_problem(
        app.post_json("/v1/events", &staff, &backwards, None).await,
        400,
        "validation_failed",
    )
    .await;
    let unknown = json!({"practitioner_ids": [HAYES], "start": "2030-01-01T10:00:00Z", "end": "2030-01-01T11:00:00Z", "title": "x"});
    let problem = assert_problem(
        app.post_json("/v1/events", &staff, &unknown, None).await,
        400,
        "validation_failed",
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "practitioner_ids[0]");
    assert!(app.creates().is_empty());
}
