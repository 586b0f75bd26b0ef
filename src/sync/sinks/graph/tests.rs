//! The `graph` sink against a mock Graph: times in the location's zone (or UTC when ambiguous),
//! events found by their extended property and patched, deletes and throttling.

use std::collections::BTreeMap;

use wiremock::matchers::{body_string_contains, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::config::Secret;
use crate::sync::mapping::Named;

const DR: &str = "4150cd20de8a470aa570a852859ac87e";
const APPT: &str = "9a1f3c2e-4b5d-4e6f-8a7b-0c1d2e3f4a5b";
const EVENTS: &str = "/v1.0/users/dr@clinic.example/events";

async fn graph() -> (MockServer, GraphSink) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/tenant/oauth2/v2.0/token"))
        .and(body_string_contains("grant_type=client_credentials"))
        .and(body_string_contains(
            "scope=https%3A%2F%2Fgraph.microsoft.com%2F.default",
        ))
        .and(body_string_contains("client_secret=graph-secret"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "eyJ0.g", "expires_in": 3599})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let settings = GraphSettings {
        client_id: "app".into(),
        client_secret: Secret::new("graph-secret"),
        token_url: format!("{}/tenant/oauth2/v2.0/token", server.uri())
            .parse()
            .unwrap(),
        base_url: format!("{}/v1.0", server.uri()).parse().unwrap(),
        calendars: BTreeMap::from([(DR.parse().unwrap(), "dr@clinic.example".to_owned())]),
    };
    (
        server,
        GraphSink::new("outlook".into(), PhiLevel::Neutral, settings),
    )
}

fn job() -> Job {
    Job {
        id: "j1".into(),
        sink: "outlook".into(),
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

#[test]
fn times_keep_their_zone_unless_the_wall_clock_repeats() {
    let cases = [
        // Spring forward: 03:30 exists once (02:xx does not exist at all).
        (
            "2026-03-08T03:30:00-07:00",
            "America/Los_Angeles",
            "2026-03-08T03:30:00",
            "America/Los_Angeles",
        ),
        (
            "2026-03-08T01:30:00-05:00",
            "America/New_York",
            "2026-03-08T01:30:00",
            "America/New_York",
        ),
        (
            "2026-03-08T03:00:00-04:00",
            "America/New_York",
            "2026-03-08T03:00:00",
            "America/New_York",
        ),
        // Fall back: 01:30 happens twice; both go in UTC.
        (
            "2026-11-01T01:30:00-07:00",
            "America/Los_Angeles",
            "2026-11-01T08:30:00",
            "UTC",
        ),
        (
            "2026-11-01T01:30:00-08:00",
            "America/Los_Angeles",
            "2026-11-01T09:30:00",
            "UTC",
        ),
        (
            "2026-11-01T01:00:00-04:00",
            "America/New_York",
            "2026-11-01T05:00:00",
            "UTC",
        ),
        (
            "2026-11-01T02:00:00-05:00",
            "America/New_York",
            "2026-11-01T02:00:00",
            "America/New_York",
        ),
        // A month end, nothing special.
        (
            "2026-01-31T23:45:00-05:00",
            "America/New_York",
            "2026-01-31T23:45:00",
            "America/New_York",
        ),
    ];
    for (at, zone, wall, shown) in cases {
        assert_eq!(
            graph_time(at, zone),
            json!({"dateTime": wall, "timeZone": shown}),
            "{at} in {zone}"
        );
    }
}

fn event() -> CalendarEvent {
    CalendarEvent {
        appointment_id: APPT.into(),
        status: "booked".into(),
        title: "Follow-up visit".into(),
        start: "2026-11-01T01:30:00-04:00".into(),
        end: "2026-11-01T01:30:00-05:00".into(),
        timezone: "America/New_York".into(),
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

#[tokio::test]
async fn found_by_its_extended_property_then_patched_in_local_time() {
    let (server, sink) = graph().await;
    Mock::given(method("GET"))
        .and(path(EVENTS))
        .and(query_param(
            "$filter",
            format!("singleValueExtendedProperties/Any(ep: ep/id eq '{APPOINTMENT_PROPERTY}' and ep/value eq '{APPT}')"),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": [{"id": "AAMk1"}]})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path(format!("{EVENTS}/AAMk1")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(1)
        .mount(&server)
        .await;
    let out = sink.deliver(&job(), None, Some(&event())).await;
    assert_eq!(
        out,
        Outcome::Delivered {
            external_id: Some("AAMk1".into())
        }
    );
    let patch = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.method.as_str() == "PATCH")
        .unwrap();
    assert_eq!(patch.headers.get("authorization").unwrap(), "Bearer eyJ0.g");
    let body: Value = serde_json::from_slice(&patch.body).unwrap();
    // The fall-back hour: 01:30 EDT to 01:30 EST, the same wall-clock time twice. In the
    // zone it would be a zero-length event; in UTC it is the hour it is.
    assert_eq!(
        (&body["start"], &body["end"]),
        (
            &json!({"dateTime": "2026-11-01T05:30:00", "timeZone": "UTC"}),
            &json!({"dateTime": "2026-11-01T06:30:00", "timeZone": "UTC"})
        )
    );
    assert_eq!(
        body["singleValueExtendedProperties"],
        json!([{"id": APPOINTMENT_PROPERTY, "value": APPT}, {"id": MARK_PROPERTY, "value": "1"}])
    );
}

#[tokio::test]
async fn deleting_a_missing_event_is_done_and_throttling_waits() {
    let (server, sink) = graph().await;
    Mock::given(method("DELETE"))
        .and(path(format!("{EVENTS}/gone")))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path(format!("{EVENTS}/busy")))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "3"))
        .mount(&server)
        .await;
    let record = |id: &str| SinkRecord {
        delivered: None,
        external_id: Some(id.into()),
    };
    assert_eq!(
        sink.deliver(&job(), Some(&record("gone")), None).await,
        Outcome::Delivered { external_id: None }
    );
    assert_eq!(
        sink.deliver(&job(), Some(&record("busy")), Some(&event()))
            .await,
        Outcome::Retry {
            reason: "HTTP 429".into(),
            after: Some(std::time::Duration::from_secs(3))
        }
    );
}
