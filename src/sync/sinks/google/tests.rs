//! The `google` sink against a mock Calendar API: finding, patching, re-inserting and
//! deleting events, and how rate limits and refusals are read.

use std::time::Duration;

use wiremock::matchers::{body_string_contains, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::*;
use crate::config::Secret;
use crate::sync::mapping::Named;

const DR: &str = "4150cd20de8a470aa570a852859ac87e";
const APPT: &str = "9a1f3c2e-4b5d-4e6f-8a7b-0c1d2e3f4a5b";
const EVENTS: &str = "/calendar/v3/calendars/dr@clinic.example/events";

async fn google() -> (MockServer, GoogleSink) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer",
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "ya29.t", "expires_in": 3599})),
        )
        .expect(1) // cached across deliveries
        .mount(&server)
        .await;
    let fixture: Value = serde_json::from_str(include_str!(
        "../../../../tests/fixtures/google-service-account.json"
    ))
    .unwrap();
    let key = GoogleKey {
        client_email: fixture["client_email"].as_str().unwrap().to_owned(),
        private_key: Secret::new(fixture["private_key"].as_str().unwrap()),
        token_uri: format!("{}/token", server.uri()).parse().unwrap(),
    };
    let calendars = BTreeMap::from([(DR.parse().unwrap(), "dr@clinic.example".to_owned())]);
    let base = format!("{}/calendar/v3", server.uri()).parse().unwrap();
    let sink = GoogleSink::new("gcal".into(), PhiLevel::Busy, key, calendars, base);
    (server, sink)
}

fn job() -> Job {
    Job {
        id: "j1".into(),
        sink: "gcal".into(),
        appointment_id: APPT.into(),
        practitioner: DR.into(),
        desired: None,
        desired_hash: Some("h".into()),
        message_id: "msg_1".into(),
        farewell: None,
        must_send: false,
        attempts: 0,
        not_before: jiff::Timestamp::UNIX_EPOCH,
        last_error: None,
        created_at: jiff::Timestamp::UNIX_EPOCH,
        lane: crate::store::sync::Lane::Fast,
    }
}

fn event() -> CalendarEvent {
    CalendarEvent {
        appointment_id: APPT.into(),
        status: "booked".into(),
        title: "Busy".into(),
        start: "2026-03-08T09:00:00-07:00".into(),
        end: "2026-03-08T09:30:00-07:00".into(),
        timezone: "America/Los_Angeles".into(),
        practitioner: Named {
            id: DR.into(),
            name: "Dr".into(),
        },
        location: None,
        modality: None,
        description: None,
        meeting_link: None,
        patient_name: None,
        reason: None,
    }
}

fn record(id: &str) -> SinkRecord {
    SinkRecord {
        delivered: Some("old".into()),
        external_id: Some(id.into()),
    }
}

async fn lookup_finds(server: &MockServer, items: Value) {
    Mock::given(method("GET"))
        .and(path(EVENTS))
        .and(query_param(
            "privateExtendedProperty",
            format!("slotgate_appointment_id={APPT}"),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"items": items})))
        .expect(1)
        .mount(server)
        .await;
}

#[tokio::test]
async fn without_a_record_the_event_is_found_by_its_private_property_and_patched() {
    let (server, sink) = google().await;
    lookup_finds(&server, json!([{"id": "evt42"}])).await;
    Mock::given(method("PATCH"))
        .and(path(format!("{EVENTS}/evt42")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "evt42"})))
        .expect(2)
        .mount(&server)
        .await;
    let out = sink.deliver(&job(), None, Some(&event())).await;
    assert_eq!(
        out,
        Outcome::Delivered {
            external_id: Some("evt42".into())
        }
    );
    // Again, with what it now knows: no second lookup, no second token.
    let out = sink
        .deliver(&job(), Some(&record("evt42")), Some(&event()))
        .await;
    assert!(matches!(out, Outcome::Delivered { .. }));
    let patches: Vec<Request> = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == "PATCH")
        .collect();
    assert_eq!(patches.len(), 2);
    assert_eq!(
        patches[0].headers.get("authorization").unwrap(),
        "Bearer ya29.t"
    );
    let body: Value = serde_json::from_slice(&patches[0].body).unwrap();
    assert_eq!(
        body["extendedProperties"]["private"],
        json!({"slotgate_appointment_id": APPT, "slotgate": "1"})
    );
    assert_eq!(body["start"]["timeZone"], "America/Los_Angeles");
}

#[tokio::test]
async fn an_event_deleted_by_hand_is_inserted_again() {
    let (server, sink) = google().await;
    Mock::given(method("PATCH"))
        .and(path(format!("{EVENTS}/gone1")))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(EVENTS))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "evt7"})))
        .expect(1)
        .mount(&server)
        .await;
    let out = sink
        .deliver(&job(), Some(&record("gone1")), Some(&event()))
        .await;
    assert_eq!(
        out,
        Outcome::Delivered {
            external_id: Some("evt7".into())
        }
    );
}

#[tokio::test]
async fn removing_what_is_already_gone_is_done() {
    let (server, sink) = google().await;
    for (id, status) in [("e404", 404), ("e410", 410)] {
        Mock::given(method("DELETE"))
            .and(path(format!("{EVENTS}/{id}")))
            .respond_with(ResponseTemplate::new(status))
            .expect(1)
            .mount(&server)
            .await;
        let out = sink.deliver(&job(), Some(&record(id)), None).await;
        assert_eq!(out, Outcome::Delivered { external_id: None }, "{status}");
    }
    // Nothing known, nothing found: nothing to delete.
    lookup_finds(&server, json!([])).await;
    let out = sink.deliver(&job(), None, None).await;
    assert_eq!(out, Outcome::Delivered { external_id: None });
}

#[tokio::test]
async fn rate_limits_back_off_and_a_forbidden_calendar_gives_up() {
    let (server, sink) = google().await;
    let answers = [
        (
            "limited",
            ResponseTemplate::new(403).set_body_json(json!({"error": {"code": 403, "errors": [{"domain": "usageLimits", "reason": "userRateLimitExceeded"}]}})),
        ),
        (
            "tooMany",
            ResponseTemplate::new(429).insert_header("retry-after", "7"),
        ),
        (
            "notShared",
            ResponseTemplate::new(403).set_body_json(json!({"error": {"code": 403, "errors": [{"domain": "calendar", "reason": "forbiddenForServiceAccounts"}]}})),
        ),
    ];
    let mut outcomes = Vec::new();
    for (id, answer) in answers {
        Mock::given(method("PATCH"))
            .and(path(format!("{EVENTS}/{id}")))
            .respond_with(answer)
            .mount(&server)
            .await;
        outcomes.push(
            sink.deliver(&job(), Some(&record(id)), Some(&event()))
                .await,
        );
    }
    assert!(matches!(&outcomes[0], Outcome::Retry { .. }));
    assert_eq!(
        outcomes[1],
        Outcome::Retry {
            reason: "HTTP 429".into(),
            after: Some(Duration::from_secs(7))
        }
    );
    assert_eq!(outcomes[2], Outcome::Failed("HTTP 403".into()));
}
