//! Calendar sync out: Canvas changes reach a webhook receiver, a Google calendar and an Outlook
//! calendar (wiremock, asserting the requests those APIs document) exactly once per change,
//! signed, at the sink's PHI level, surviving failures and restarts.

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::availability::OPEN_WINDOW;
use crate::booking::{SOFIA, a_slot, booking};
use crate::helpers::{TestApp, assert_problem, book_in_canvas, key, spawn_app_with};
use crate::seed::*;

pub const HOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const CANVAS_SECRET: &str = "whsec_Y2FudmFzIG5vdGlmaWNhdGlvbiBzZWNyZXQ=";

/// A Google calendar: the token endpoint, lookups that find nothing (so only slotgate's own
/// records can stop a second insert), inserts that answer `evt-<appointment>`, patches and
/// deletes.
pub async fn google() -> MockServer {
    let g = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "g-token", "expires_in": 3600, "token_type": "Bearer"}),
        ))
        .mount(&g)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("^/calendar/v3/calendars/[^/]+/events$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"items": []})))
        .mount(&g)
        .await;
    Mock::given(method("POST"))
        .and(path_regex("^/calendar/v3/calendars/[^/]+/events$"))
        .respond_with(|r: &Request| {
            let body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let id = body["extendedProperties"]["private"]["slotgate_appointment_id"]
                .as_str()
                .unwrap_or("x")
                .replace('-', "");
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": format!("evt{id}"), "status": "confirmed"}))
        })
        .mount(&g)
        .await;
    Mock::given(method("PATCH"))
        .and(path_regex("^/calendar/v3/calendars/[^/]+/events/[^/]+$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"status": "confirmed"})))
        .mount(&g)
        .await;
    Mock::given(method("DELETE"))
        .and(path_regex("^/calendar/v3/calendars/[^/]+/events/[^/]+$"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&g)
        .await;
    g
}

/// An Outlook mailbox behind Microsoft Graph, likewise.
pub async fn graph() -> MockServer {
    let m = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=client_credentials"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "m-token", "expires_in": 3600, "token_type": "Bearer"}),
        ))
        .mount(&m)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("^/v1.0/users/[^/]+/events$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": []})))
        .mount(&m)
        .await;
    Mock::given(method("POST"))
        .and(path_regex("^/v1.0/users/[^/]+/events$"))
        .respond_with(|r: &Request| {
            let body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let id = body["singleValueExtendedProperties"][0]["value"]
                .as_str()
                .unwrap_or("x")
                .replace('-', "");
            ResponseTemplate::new(201).set_body_json(json!({"id": format!("AAMk{id}")}))
        })
        .mount(&m)
        .await;
    Mock::given(method("PATCH"))
        .and(path_regex("^/v1.0/users/[^/]+/events/[^/]+$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&m)
        .await;
    Mock::given(method("DELETE"))
        .and(path_regex("^/v1.0/users/[^/]+/events/[^/]+$"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&m)
        .await;
    m
}

/// A Google service-account key whose token endpoint is the mock.
pub fn google_key(google: &MockServer) -> String {
    let mut key: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/google-service-account.json"
        ))
        .unwrap(),
    )
    .unwrap();
    key["token_uri"] = json!(format!("{}/token", google.uri()));
    let file = std::env::temp_dir().join(format!("slotgate-google-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&file, key.to_string()).unwrap();
    file.display().to_string()
}

/// Sinks for a webhook receiver (`neutral`), Google (`busy`) and Graph (`neutral`), the
/// latter two for Okafor's calendar only.
pub fn sinks(hooks: &MockServer, google: &MockServer, graph: &MockServer, extra: &str) -> String {
    format!(
        r#"[sync]
canvas_webhook_secret = "{CANVAS_SECRET}"
retry_base_ms = 50
max_attempts = 3
{extra}
[[sync.sinks]]
name = "ops"
kind = "webhook"
url = "{hooks}/hooks"
secret = "{HOOK_SECRET}"
phi = "neutral"
[[sync.sinks]]
name = "gcal"
kind = "google"
phi = "busy"
service_account_key_file = "{key}"
base_url = "{google}/calendar/v3"
calendars = {{ "{OKAFOR}" = "okafor@clinic.example" }}
[[sync.sinks]]
name = "outlook"
kind = "graph"
phi = "neutral"
tenant_id = "clinic-tenant"
client_id = "slotgate-app"
client_secret = "graph-secret-value"
token_url = "{graph}/token"
base_url = "{graph}/v1.0"
calendars = {{ "{OKAFOR}" = "okafor@clinic.example" }}
"#,
        hooks = hooks.uri(),
        google = google.uri(),
        graph = graph.uri(),
        key = google_key(google),
    )
}

/// Webhook messages received for one appointment, in order.
pub async fn messages(hooks: &MockServer, appointment: &str) -> Vec<(Request, Value)> {
    hooks
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| {
            let body: Value = serde_json::from_slice(&r.body).ok()?;
            (body["data"]["appointment_id"] == appointment).then_some((r, body))
        })
        .collect()
}

/// The appointment of every message the receiver got, in order.
pub async fn appointment_ids(hooks: &MockServer) -> Vec<String> {
    hooks
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|r| {
            let body: Value = serde_json::from_slice(&r.body).ok()?;
            body["data"]["appointment_id"].as_str().map(str::to_owned)
        })
        .collect()
}

/// The dead letters of one appointment at one sink (`GET /v1/admin/sync/dead-letters`).
pub async fn dead_letters(app: &TestApp, admin: &str, appointment: &str, sink: &str) -> Vec<Value> {
    let body: Value = app
        .get("/v1/admin/sync/dead-letters", Some(admin))
        .await
        .json()
        .await
        .unwrap();
    body["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["appointment_id"] == appointment && d["sink"] == sink)
        .cloned()
        .collect()
}

/// One sink's line of `GET /v1/admin/sync`.
pub async fn sink_status(app: &TestApp, admin: &str, sink: &str) -> Value {
    let status: Value = app
        .get("/v1/admin/sync", Some(admin))
        .await
        .json()
        .await
        .unwrap();
    status["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == sink)
        .cloned()
        .unwrap()
}

/// Waits up to ten seconds for `check` to hold: "within seconds" with room for a loaded CI
/// machine (two replicas and the rest of the suite share two cores).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never happened: {what}");
}

pub async fn ok_receiver() -> MockServer {
    let hooks = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&hooks)
        .await;
    hooks
}

pub async fn book_okafor(app: &TestApp, nth: usize) -> Value {
    let me = app.patient_token(SOFIA);
    let slot = a_slot(app, &me, OKAFOR, nth).await;
    let r = app
        .post_json(
            "/v1/appointments",
            &me,
            &booking(&slot, SOFIA),
            Some(&key()),
        )
        .await;
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

pub fn signed(secret: &str, body: &str, id: &str, ts: i64) -> [(String, String); 3] {
    let key = slotgate::config::sync::webhook_key(secret).unwrap();
    [
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), ts.to_string()),
        (
            "webhook-signature".into(),
            slotgate::sync::signature::sign(&key, id, ts, body.as_bytes()),
        ),
    ]
}

pub async fn notify(app: &TestApp, body: &str, headers: &[(String, String)]) -> reqwest::Response {
    let mut r = app
        .http
        .post(format!("{}/v1/webhooks/canvas", app.address))
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (k, v) in headers {
        r = r.header(k, v);
    }
    r.send().await.unwrap()
}

#[tokio::test]
async fn notifications_are_verified_and_replays_refused() {
    let (hooks, g, m) = (ok_receiver().await, google().await, graph().await);
    let app = spawn_app_with(&[OPEN_WINDOW, &sinks(&hooks, &g, &m, "")]).await;
    let id = "317d8c8d-6b2e-4a7c-9d1e-1f2a3b4c5d6e";
    let body = json!({"canvas_patient_key": SOFIA, "appointment_external_id": id, "created": true})
        .to_string();
    let now = jiff::Timestamp::now().as_second();
    let r = notify(&app, &body, &signed(CANVAS_SECRET, &body, "msg_1", now)).await;
    assert_eq!(r.status(), 202);
    assert_eq!(r.json::<Value>().await.unwrap()["accepted"], id);
    let bearer = [(
        "authorization".to_owned(),
        format!("Bearer {CANVAS_SECRET}"),
    )];
    assert_eq!(
        notify(&app, &body, &bearer).await.status(),
        202,
        "the bearer alternative"
    );
    // Refused notifications name another appointment: none of them may make slotgate read it.
    let refused = "9b7e1c2d-3f4a-4b5c-8d6e-7f8091a2b3c4";
    let body =
        json!({"canvas_patient_key": SOFIA, "appointment_external_id": refused, "created": true})
            .to_string();
    let wrong_key = "whsec_YW5vdGhlciBrZXkgYWx0b2dldGhlcg==";
    for (what, headers) in [
        (
            "another key",
            signed(wrong_key, &body, "msg_2", now).to_vec(),
        ),
        (
            "six minutes old",
            signed(CANVAS_SECRET, &body, "msg_3", now - 360).to_vec(),
        ),
        (
            "a changed body",
            signed(CANVAS_SECRET, "{}", "msg_4", now).to_vec(),
        ),
        (
            "a wrong bearer",
            vec![(
                "authorization".to_owned(),
                "Bearer not-the-secret".to_owned(),
            )],
        ),
        ("nothing", vec![]),
    ] {
        let r = notify(&app, &body, &headers).await;
        assert_eq!(r.status(), 401, "{what}");
        assert_problem(r, 401, "unauthorized").await;
    }
    // The accepted one was read from Canvas (so reads do show up here) ...
    let journal = || app.sandbox.as_ref().unwrap().journal();
    eventually("the accepted notification read its appointment", || async {
        journal()
            .iter()
            .any(|j| j.path == format!("/Appointment/{id}"))
    })
    .await;
    // ... and the refused ones made nothing happen.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        journal()
            .iter()
            .all(|j| !j.path.contains(refused) && !j.query.contains(refused)),
        "a refused notification reached Canvas"
    );
}

#[tokio::test]
async fn a_booking_reaches_every_sink_once_at_its_phi_level() {
    let (hooks, g, m) = (ok_receiver().await, google().await, graph().await);
    let app = spawn_app_with(&[OPEN_WINDOW, &sinks(&hooks, &g, &m, "")]).await;
    let made = book_okafor(&app, 0).await;
    let id = made["id"].as_str().unwrap().to_owned();
    let event_id = format!("evt{}", id.replace('-', ""));
    eventually("the webhook receiver has the booking", || async {
        !messages(&hooks, &id).await.is_empty()
    })
    .await;
    eventually("Google has it", || async {
        g.received_requests()
            .await
            .unwrap()
            .iter()
            .any(|r| r.method.as_str() == "POST" && String::from_utf8_lossy(&r.body).contains(&id))
    })
    .await;
    eventually("Outlook has it", || async {
        m.received_requests()
            .await
            .unwrap()
            .iter()
            .any(|r| r.method.as_str() == "POST" && String::from_utf8_lossy(&r.body).contains(&id))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Webhook: one signed appointment.created, at the neutral level.
    let sent = messages(&hooks, &id).await;
    assert_eq!(
        sent.len(),
        1,
        "exactly once though three triggers fired (own write, Canvas notification, reconciler)"
    );
    let (request, message) = &sent[0];
    assert_eq!(message["type"], "appointment.created");
    let data = &message["data"];
    assert_eq!(data["title"], "Patient visit");
    assert_eq!(data["modality"], "telehealth");
    assert_eq!(data["location"]["name"], "Oakland Clinic");
    assert_eq!(
        data["practitioner"],
        json!({"id": OKAFOR, "name": "Maya Okafor MD"})
    );
    let header = |h: &str| request.headers.get(h).unwrap().to_str().unwrap().to_owned();
    let key = slotgate::config::sync::webhook_key(HOOK_SECRET).unwrap();
    let ts: i64 = header("webhook-timestamp").parse().unwrap();
    assert_eq!(
        slotgate::sync::signature::verify(
            &key,
            Some(&header("webhook-id")),
            Some(&ts.to_string()),
            Some(&header("webhook-signature")),
            &request.body,
            ts
        ),
        Ok(())
    );
    // Google: the exact insert, at the busy level.
    let inserts: Vec<Value> = g
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| {
            r.method.as_str() == "POST"
                && r.url.path() == "/calendar/v3/calendars/okafor@clinic.example/events"
        })
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .filter(|b: &Value| b["extendedProperties"]["private"]["slotgate_appointment_id"] == id)
        .collect();
    assert_eq!(inserts.len(), 1);
    let start = made["start"].as_str().unwrap();
    assert_eq!(
        inserts[0],
        json!({
            "summary": "Busy",
            "start": {"dateTime": start, "timeZone": "America/Los_Angeles"},
            "end": {"dateTime": made["end"], "timeZone": "America/Los_Angeles"},
            "status": "confirmed",
            "extendedProperties": {"private": {"slotgate_appointment_id": id, "slotgate": "1"}},
        })
    );
    assert!(
        g.received_requests()
            .await
            .unwrap()
            .iter()
            .any(|r| r.method.as_str() == "GET"
                && r.url
                    .query()
                    .unwrap_or_default()
                    .contains(&format!("slotgate_appointment_id%3D{id}"))),
        "found again by the private property"
    );
    let token = g
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.url.path() == "/token")
        .unwrap();
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&token.body)
        .into_owned()
        .collect();
    let assertion = &form.iter().find(|(k, _)| k == "assertion").unwrap().1;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(assertion.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["scope"], "https://www.googleapis.com/auth/calendar");
    assert_eq!(
        claims["iss"],
        "slotgate@slotgate-test.iam.gserviceaccount.com"
    );
    // Graph: the exact create with the appointment in an extended property.
    let creates: Vec<(Request, Value)> = m
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| {
            r.method.as_str() == "POST"
                && r.url.path() == "/v1.0/users/okafor@clinic.example/events"
        })
        .map(|r| {
            let b = serde_json::from_slice(&r.body).unwrap();
            (r, b)
        })
        .filter(|(_, b): &(Request, Value)| b["singleValueExtendedProperties"][0]["value"] == id)
        .collect();
    assert_eq!(creates.len(), 1);
    let (create, body) = &creates[0];
    assert_eq!(
        create.headers.get("authorization").unwrap(),
        "Bearer m-token"
    );
    assert_eq!(body["subject"], "Patient visit");
    assert_eq!(
        body["start"],
        json!({"dateTime": &start[..19], "timeZone": "America/Los_Angeles"})
    );
    assert_eq!(
        body["singleValueExtendedProperties"][0]["id"],
        "String {00020329-0000-0000-C000-000000000046} Name slotgate_appointment_id"
    );
    assert_eq!(body["location"], json!({"displayName": "Oakland Clinic"}));
    // No patient data below `full`, anywhere.
    let everything = [
        hooks.received_requests().await.unwrap(),
        g.received_requests().await.unwrap(),
        m.received_requests().await.unwrap(),
    ]
    .concat();
    for r in everything {
        let text = String::from_utf8_lossy(&r.body);
        for leak in [SOFIA, "Sofia", "Patel", "1995-07-21"] {
            assert!(!text.contains(leak), "{leak} sent to {}", r.url);
        }
    }
    let touched: Vec<String> = g
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().ends_with(&event_id))
        .map(|r| {
            format!(
                "{} {} {}",
                r.method,
                r.url.path(),
                String::from_utf8_lossy(&r.body)
            )
        })
        .collect();
    assert!(
        touched.is_empty(),
        "nothing patched or deleted yet: {touched:#?}"
    );
}

/// Changes an appointment directly in Canvas (the sandbox), as its own UI would: a PUT with
/// the fields that change, the rest re-sent as read.
pub async fn canvas_put(app: &TestApp, id: &str, change: impl FnOnce(&mut Value)) {
    canvas_put_on(
        app.sandbox.as_ref().unwrap(),
        app.sandbox_url.as_ref().unwrap(),
        id,
        change,
    )
    .await;
}

/// Changes an appointment in Canvas itself, as staff do in its UI.
pub async fn canvas_put_on(
    sandbox: &slotgate::sandbox::SandboxControl,
    canvas_url: &str,
    id: &str,
    change: impl FnOnce(&mut Value),
) {
    let current = sandbox
        .appointments()
        .into_iter()
        .find(|a| a.id.as_deref() == Some(id))
        .unwrap();
    let mut body = json!({
        "resourceType": "Appointment",
        "status": current.status.as_str(),
        "start": current.start, "end": current.end,
        "appointmentType": current.appointment_type,
        "participant": current.participant.iter().map(|p| json!({"actor": {"reference": p.actor.reference}, "status": "accepted"})).collect::<Vec<_>>(),
        "supportingInformation": [{"reference": format!("Location/{}", current.location_id().unwrap())}],
        "identifier": current.identifier,
    });
    change(&mut body);
    let r = reqwest::Client::new()
        .put(format!("{canvas_url}/Appointment/{id}"))
        .bearer_auth(sandbox.issue_token())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

pub fn shift(body: &mut Value, hours: i64) {
    for k in ["start", "end"] {
        let t: jiff::Timestamp = body[k].as_str().unwrap().parse().unwrap();
        body[k] = json!((t + jiff::SignedDuration::from_hours(hours)).to_string());
    }
}

fn count(requests: &[Request], verb: &str, suffix: &str) -> usize {
    requests
        .iter()
        .filter(|r| r.method.as_str() == verb && r.url.path().ends_with(suffix))
        .count()
}

#[tokio::test]
async fn a_move_and_a_cancel_in_canvas_patch_then_delete_everywhere() {
    let (hooks, g, m) = (ok_receiver().await, google().await, graph().await);
    let app = spawn_app_with(&[OPEN_WINDOW, &sinks(&hooks, &g, &m, "")]).await;
    let made = book_okafor(&app, 1).await;
    let id = made["id"].as_str().unwrap().to_owned();
    let (gevt, mevt) = (
        format!("evt{}", id.replace('-', "")),
        format!("AAMk{}", id.replace('-', "")),
    );
    eventually("created everywhere", || async {
        let holds = |requests: Vec<Request>| {
            requests
                .iter()
                .any(|r| String::from_utf8_lossy(&r.body).contains(&id))
        };
        messages(&hooks, &id).await.len() == 1
            && holds(g.received_requests().await.unwrap())
            && holds(m.received_requests().await.unwrap())
    })
    .await;
    // Moved an hour later in Canvas: the sandbox notifies slotgate, which patches.
    canvas_put(&app, &id, |b| shift(b, 1)).await;
    let moved_start = made["start"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap()
        + jiff::SignedDuration::from_hours(1);
    eventually("Google patched", || async {
        count(&g.received_requests().await.unwrap(), "PATCH", &gevt) == 1
    })
    .await;
    eventually("Outlook patched", || async {
        count(&m.received_requests().await.unwrap(), "PATCH", &mevt) == 1
    })
    .await;
    eventually("the receiver told", || async {
        messages(&hooks, &id).await.len() == 2
    })
    .await;
    let patch: Value = g
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.method.as_str() == "PATCH")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .unwrap();
    assert_eq!(
        patch["start"]["dateTime"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap(),
        moved_start
    );
    // Outlook gets the new time as wall time in a named zone, and keeps the appointment's mark.
    let patch: Value = m
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.method.as_str() == "PATCH" && r.url.path().ends_with(&mevt))
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .unwrap();
    let graph_instant = |v: &Value| {
        let zone = jiff::tz::TimeZone::get(v["timeZone"].as_str().unwrap()).unwrap();
        let wall: jiff::civil::DateTime = v["dateTime"].as_str().unwrap().parse().unwrap();
        zone.to_ambiguous_zoned_datetime(wall)
            .unambiguous()
            .unwrap()
            .timestamp()
    };
    assert_eq!(graph_instant(&patch["start"]), moved_start);
    assert_eq!(
        graph_instant(&patch["end"]) - graph_instant(&patch["start"]),
        jiff::SignedDuration::from_mins(30)
    );
    assert_eq!(
        patch["subject"], "Patient visit",
        "the sink's PHI level is neutral"
    );
    assert!(
        patch["singleValueExtendedProperties"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["value"] == id.as_str()),
        "{patch}"
    );
    let update = &messages(&hooks, &id).await[1].1;
    assert_eq!(update["type"], "appointment.updated");
    assert_eq!(
        update["data"]["start"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap(),
        moved_start
    );
    // Cancelled in Canvas: deleted everywhere.
    canvas_put(&app, &id, |b| b["status"] = json!("cancelled")).await;
    eventually("Google deleted", || async {
        count(&g.received_requests().await.unwrap(), "DELETE", &gevt) == 1
    })
    .await;
    eventually("Outlook deleted", || async {
        count(&m.received_requests().await.unwrap(), "DELETE", &mevt) == 1
    })
    .await;
    eventually("the receiver told", || async {
        messages(&hooks, &id).await.len() == 3
    })
    .await;
    let cancelled = &messages(&hooks, &id).await[2].1;
    assert_eq!(cancelled["type"], "appointment.cancelled");
    // The contract's message shape, as the appointment ended.
    let data = &cancelled["data"];
    assert_eq!(
        (
            &data["appointment_id"],
            &data["status"],
            &data["practitioner"]["id"]
        ),
        (
            &json!(id),
            &json!("cancelled"),
            &update["data"]["practitioner"]["id"]
        )
    );
    assert_eq!(data["start"], update["data"]["start"]);
    assert_eq!(data["end"], update["data"]["end"]);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (gr, mr) = (
        g.received_requests().await.unwrap(),
        m.received_requests().await.unwrap(),
    );
    assert_eq!(
        (count(&gr, "PATCH", &gevt), count(&gr, "DELETE", &gevt)),
        (1, 1),
        "exactly once per change on Google"
    );
    assert_eq!(
        (count(&mr, "PATCH", &mevt), count(&mr, "DELETE", &mevt)),
        (1, 1),
        "exactly once per change on Outlook"
    );
    assert_eq!(
        messages(&hooks, &id).await.len(),
        3,
        "exactly once per change on the webhook"
    );
}

#[tokio::test]
async fn a_receiver_that_fails_twice_gets_one_message_with_one_id() {
    let hooks = MockServer::start().await;
    let (g, m) = (google().await, graph().await);
    let app = spawn_app_with(&[
        OPEN_WINDOW,
        &sinks(&hooks, &g, &m, "reconcile_interval_seconds = 3600\n"),
    ])
    .await;
    let made = book_okafor(&app, 2).await;
    let id = made["id"].as_str().unwrap().to_owned();
    // Fails twice for this appointment (a 400, then a 500: anything but 2xx is tried again),
    // then accepts.
    for (status, priority) in [(400, 1), (500, 2)] {
        Mock::given(method("POST"))
            .and(path("/hooks"))
            .and(body_string_contains(id.as_str()))
            .respond_with(ResponseTemplate::new(status))
            .up_to_n_times(1)
            .with_priority(priority)
            .mount(&hooks)
            .await;
    }
    Mock::given(method("POST"))
        .and(path("/hooks"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(3)
        .mount(&hooks)
        .await;
    eventually("delivered on the third try", || async {
        messages(&hooks, &id).await.len() >= 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = messages(&hooks, &id).await;
    assert_eq!(sent.len(), 3, "two failures, one success, nothing after");
    let ids: std::collections::BTreeSet<String> = sent
        .iter()
        .map(|(r, _)| {
            r.headers
                .get("webhook-id")
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        ids.len(),
        1,
        "one message, one webhook-id across its retries"
    );
}

#[tokio::test]
async fn a_dead_receiver_dead_letters_and_the_admin_retries() {
    let hooks = MockServer::start().await;
    let (g, m) = (google().await, graph().await);
    Mock::given(method("POST"))
        .and(path("/hooks"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&hooks)
        .await;
    let app = spawn_app_with(&[
        OPEN_WINDOW,
        &sinks(&hooks, &g, &m, "reconcile_interval_seconds = 3600\n"),
    ])
    .await;
    let made = book_okafor(&app, 3).await;
    let id = made["id"].as_str().unwrap().to_owned();
    let admin = app.token(None, "scheduling.admin");
    let letter = || async {
        dead_letters(&app, &admin, &id, "ops")
            .await
            .into_iter()
            .next()
    };
    eventually("dead-lettered after max_attempts", || async {
        letter().await.is_some()
    })
    .await;
    let dead = letter().await.unwrap();
    assert_eq!(
        (
            dead["attempts"].as_u64(),
            dead["last_error"].as_str(),
            dead["type"].as_str()
        ),
        (Some(3), Some("HTTP 503"), Some("upsert"))
    );
    assert!(dead["webhook_id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(
        messages(&hooks, &id).await.len(),
        3,
        "max_attempts tries in all"
    );
    let ops = sink_status(&app, &admin, "ops").await;
    assert!(ops["dead"].as_u64().unwrap() >= 1 && ops["kind"] == "webhook");
    assert_problem(
        app.get(
            "/v1/admin/sync",
            Some(&app.token(None, "scheduling.read scheduling.staff")),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    // The receiver recovers; the admin retries the letter; it arrives once, with the same id.
    hooks.reset().await;
    Mock::given(method("POST"))
        .and(path("/hooks"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&hooks)
        .await;
    let path_ = format!(
        "/v1/admin/sync/dead-letters/{}/retry",
        dead["id"].as_str().unwrap()
    );
    assert_eq!(
        app.post_json(&path_, &admin, &json!({}), None)
            .await
            .status(),
        202
    );
    eventually("delivered after the retry", || async {
        messages(&hooks, &id).await.len() == 1
    })
    .await;
    assert_eq!(
        messages(&hooks, &id).await[0]
            .0
            .headers
            .get("webhook-id")
            .unwrap()
            .to_str()
            .unwrap(),
        dead["webhook_id"].as_str().unwrap()
    );
    assert!(letter().await.is_none());
    assert_problem(
        app.post_json(&path_, &admin, &json!({}), None).await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn a_missed_notification_is_healed_by_the_reconciler() {
    let (hooks, g, m) = (ok_receiver().await, google().await, graph().await);
    let app = spawn_app_with(&[
        OPEN_WINDOW,
        &sinks(&hooks, &g, &m, "reconcile_interval_seconds = 1\n"),
    ])
    .await;
    let made = book_okafor(&app, 4).await;
    let id = made["id"].as_str().unwrap().to_owned();
    eventually("created", || async {
        messages(&hooks, &id).await.len() == 1
    })
    .await;
    // Canvas's notification is lost; the change happens anyway.
    app.sandbox.as_ref().unwrap().set_notify(None);
    canvas_put(&app, &id, |b| shift(b, 2)).await;
    eventually("the reconciler finds the move", || async {
        messages(&hooks, &id).await.len() == 2
    })
    .await;
    assert_eq!(
        messages(&hooks, &id).await[1].1["type"],
        "appointment.updated"
    );
}

#[tokio::test]
async fn a_notification_that_lies_about_times_loses_to_canvas() {
    let (hooks, g, m) = (ok_receiver().await, google().await, graph().await);
    let app = spawn_app_with(&[
        OPEN_WINDOW,
        &sinks(&hooks, &g, &m, "reconcile_interval_seconds = 3600\n"),
    ])
    .await;
    let made = book_okafor(&app, 5).await;
    let id = made["id"].as_str().unwrap().to_owned();
    eventually("created", || async {
        messages(&hooks, &id).await.len() == 1
    })
    .await;
    app.sandbox.as_ref().unwrap().set_notify(None);
    canvas_put(&app, &id, |b| shift(b, 3)).await;
    // The notification claims a time Canvas does not have.
    let body = json!({"canvas_patient_key": SOFIA, "appointment_external_id": id, "start_time": "2031-01-01T09:00:00+00:00", "end_time": "2031-01-01T09:30:00+00:00", "rescheduled": true}).to_string();
    let r = notify(
        &app,
        &body,
        &signed(
            CANVAS_SECRET,
            &body,
            "msg_lie",
            jiff::Timestamp::now().as_second(),
        ),
    )
    .await;
    assert_eq!(r.status(), 202);
    eventually("synced from Canvas", || async {
        messages(&hooks, &id).await.len() == 2
    })
    .await;
    let sent: jiff::Timestamp = messages(&hooks, &id).await[1].1["data"]["start"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let truth = made["start"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap()
        + jiff::SignedDuration::from_hours(3);
    assert_eq!(sent, truth, "Canvas's time, not the notification's");
}

/// slotgate configured for a Canvas of its own (a separate sandbox), as in production.
async fn spawn_on(sandbox: &slotgate::sandbox::Sandbox, layers: &[&str]) -> TestApp {
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    let rules = format!(
        "{}\n{}",
        slotgate::config::DEMO_REASONS,
        slotgate::sandbox::Clinic::demo(today).slotgate_rules_toml()
    );
    let canvas = format!(
        "[canvas]\nfhir_url = \"{0}\"\ntoken_url = \"{0}/auth/token/\"\nclient_id = \"sync-test\"\nclient_secret = \"sync-test-secret\"\n\
         [auth]\nissuer = \"https://id.example.org\"\naudience = \"slotgate\"\nhs256_secret = \"a jwt secret for the sync tests....\"\n",
        sandbox.base_url()
    );
    let mut all = vec![rules.as_str(), canvas.as_str(), OPEN_WINDOW];
    all.extend_from_slice(layers);
    spawn_app_with(&all).await
}

#[tokio::test]
async fn a_restart_with_pending_work_loses_nothing_and_doubles_nothing() {
    let sandbox = slotgate::sandbox::Sandbox::start(slotgate::sandbox::SandboxOptions {
        client_id: "sync-test".into(),
        client_secret: "sync-test-secret".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let (hooks, g, m) = (MockServer::start().await, google().await, graph().await);
    let state =
        std::env::temp_dir().join(format!("slotgate-sync-state-{}.json", uuid::Uuid::new_v4()));
    let config = sinks(
        &hooks,
        &g,
        &m,
        &format!(
            "reconcile_interval_seconds = 3600\nstate_file = \"{}\"\n",
            state.display()
        ),
    );
    let retries = "[sync]\nmax_attempts = 100\n";
    // The receiver accepts the clinic's seeded appointments (ids 5eed…) and, for now, refuses
    // everything else: the booking made below stays pending.
    Mock::given(method("POST"))
        .and(path("/hooks"))
        .and(|r: &Request| !String::from_utf8_lossy(&r.body).contains("\"appointment_id\":\"5eed"))
        .respond_with(ResponseTemplate::new(503))
        .with_priority(1)
        .mount(&hooks)
        .await;
    Mock::given(method("POST"))
        .and(path("/hooks"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&hooks)
        .await;
    let mut first = spawn_on(&sandbox, &[&config, retries]).await;
    let made = book_okafor(&first, 0).await;
    let id = made["id"].as_str().unwrap().to_owned();
    eventually("tried and failed", || async {
        !messages(&hooks, &id).await.is_empty()
    })
    .await;
    // Let the seeded appointments be delivered too, then stop while this one is pending.
    tokio::time::sleep(Duration::from_millis(800)).await;
    first.stop().await;
    let delivered_before: std::collections::BTreeSet<String> = appointment_ids(&hooks)
        .await
        .into_iter()
        .filter(|a| a.starts_with("5eed"))
        .collect();
    assert!(
        !delivered_before.is_empty(),
        "the seeded appointments reached the receiver before the restart"
    );
    // The receiver recovers; a new slotgate starts on the same state.
    hooks.reset().await;
    Mock::given(method("POST"))
        .and(path("/hooks"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&hooks)
        .await;
    let _second = spawn_on(&sandbox, &[&config, retries]).await;
    eventually(
        "the pending booking is delivered after the restart",
        || async { messages(&hooks, &id).await.len() == 1 },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(messages(&hooks, &id).await.len(), 1, "delivered once");
    // The calendars too: one insert each across both runs (their mocks' lookups find nothing,
    // so only the kept state stops a second insert).
    for (calendar, server) in [("Google", &g), ("Outlook", &m)] {
        let inserts = server
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| {
                r.method.as_str() == "POST"
                    && r.url.path().ends_with("/events")
                    && String::from_utf8_lossy(&r.body).contains(&id)
            })
            .count();
        assert_eq!(inserts, 1, "{calendar} got the booking {inserts} times");
    }
    let again: Vec<String> = appointment_ids(&hooks)
        .await
        .into_iter()
        .filter(|a| delivered_before.contains(a))
        .collect();
    assert!(
        again.is_empty(),
        "appointments delivered before the restart were sent again: {again:?}"
    );
    let _ = std::fs::remove_file(state);
}

#[tokio::test]
async fn rescheduling_and_cancelling_through_slotgate_follow_everywhere_once() {
    let (hooks, g, m) = (ok_receiver().await, google().await, graph().await);
    let app = spawn_app_with(&[
        OPEN_WINDOW,
        &sinks(&hooks, &g, &m, "reconcile_interval_seconds = 3600\n"),
    ])
    .await;
    let old = book_okafor(&app, 0).await;
    let old_id = old["id"].as_str().unwrap().to_owned();
    // Mirrored everywhere before it moves (a visit moved before its first delivery is only
    // ever sent as what it became).
    let mevt = |id: &str| format!("AAMk{}", id.replace('-', ""));
    eventually("the booking mirrored everywhere", || async {
        let inserted = |requests: &[Request]| {
            requests.iter().any(|r| {
                r.method.as_str() == "POST" && String::from_utf8_lossy(&r.body).contains(&old_id)
            })
        };
        inserted(&g.received_requests().await.unwrap())
            && inserted(&m.received_requests().await.unwrap())
            && !messages(&hooks, &old_id).await.is_empty()
    })
    .await;
    let me = app.patient_token(SOFIA);
    let target = a_slot(&app, &me, OKAFOR, 4).await;
    let r = app
        .post_json(
            &format!("/v1/appointments/{old_id}/reschedule"),
            &me,
            &json!({"slot_id": target["slot_id"], "patient_state": "CA"}),
            Some(&key()),
        )
        .await;
    assert_eq!(r.status(), 201);
    let new_id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let evt = |id: &str| format!("evt{}", id.replace('-', ""));
    eventually("the old event deleted, the new inserted", || async {
        let gr = g.received_requests().await.unwrap();
        count(&gr, "DELETE", &evt(&old_id)) == 1
            && gr.iter().any(|r| {
                r.method.as_str() == "POST" && String::from_utf8_lossy(&r.body).contains(&new_id)
            })
    })
    .await;
    let cancel = app
        .post_json(
            &format!("/v1/appointments/{new_id}/cancel"),
            &me,
            &json!({}),
            Some(&key()),
        )
        .await;
    assert_eq!(cancel.status(), 200);
    eventually("the new event deleted", || async {
        count(
            &g.received_requests().await.unwrap(),
            "DELETE",
            &evt(&new_id),
        ) == 1
    })
    .await;
    eventually("the receiver told of both", || async {
        messages(&hooks, &old_id)
            .await
            .iter()
            .any(|(_, b)| b["type"] == "appointment.cancelled")
            && messages(&hooks, &new_id)
                .await
                .iter()
                .any(|(_, b)| b["type"] == "appointment.cancelled")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    for id in [&old_id, &new_id] {
        let kinds: Vec<String> = messages(&hooks, id)
            .await
            .into_iter()
            .map(|(_, b)| b["type"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            kinds,
            ["appointment.created", "appointment.cancelled"],
            "{id}"
        );
    }
    let gr = g.received_requests().await.unwrap();
    assert_eq!(
        count(&gr, "DELETE", &evt(&old_id)) + count(&gr, "DELETE", &evt(&new_id)),
        2
    );
    // Outlook the same: each event inserted once, then deleted once.
    eventually("Outlook followed", || async {
        let mr = m.received_requests().await.unwrap();
        count(&mr, "DELETE", &mevt(&old_id)) == 1 && count(&mr, "DELETE", &mevt(&new_id)) == 1
    })
    .await;
    let mr = m.received_requests().await.unwrap();
    for id in [&old_id, &new_id] {
        let inserts = mr
            .iter()
            .filter(|r| {
                r.method.as_str() == "POST"
                    && r.url.path().ends_with("/events")
                    && String::from_utf8_lossy(&r.body).contains(id.as_str())
            })
            .count();
        assert_eq!(inserts, 1, "{id} inserted in Outlook {inserts} times");
        assert_eq!(count(&mr, "DELETE", &mevt(id)), 1);
    }
}

/// The start of every slot Okafor offers Sofia a few days out (as `a_slot` asks).
pub async fn okafor_starts(app: &TestApp) -> Vec<jiff::Timestamp> {
    let me = app.patient_token(SOFIA);
    crate::booking::week_of(app, &me, OKAFOR, "telehealth")
        .await
        .iter()
        .map(|s| s["start"].as_str().unwrap().parse().unwrap())
        .collect()
}

#[tokio::test]
async fn a_cancel_in_canvas_frees_the_slot_for_browsing_at_once() {
    // No sinks at all: the notification still clears the cached answer (slot TTL 60 s).
    let app = spawn_app_with(&[
        OPEN_WINDOW,
        &format!("[sync]\ncanvas_webhook_secret = \"{CANVAS_SECRET}\"\n"),
    ])
    .await;
    let made = book_okafor(&app, 2).await;
    let id = made["id"].as_str().unwrap().to_owned();
    let taken: jiff::Timestamp = made["start"].as_str().unwrap().parse().unwrap();
    let before = okafor_starts(&app).await;
    assert!(!before.contains(&taken), "booked, so not offered");
    assert_eq!(okafor_starts(&app).await, before, "answered from the cache");
    canvas_put(&app, &id, |b| b["status"] = json!("cancelled")).await;
    eventually("the slot is offered again", || async {
        okafor_starts(&app).await.contains(&taken)
    })
    .await;
}

#[tokio::test]
async fn a_hanging_receiver_holds_back_nothing_else() {
    // The receiver hangs (past slotgate's 10-second client timeout) on the first booking
    // it sees; everything else it answers at once.
    let hooks = MockServer::start().await;
    let hung = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let seen = hung.clone();
    Mock::given(method("POST"))
        .and(path("/hooks"))
        .respond_with(move |r: &Request| {
            let body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let id = body["data"]["appointment_id"].as_str().unwrap_or_default();
            let mut hung = seen.lock().unwrap();
            if !id.starts_with("5eed") && hung.get_or_insert_with(|| id.to_owned()) == id {
                ResponseTemplate::new(200).set_delay(Duration::from_secs(30))
            } else {
                ResponseTemplate::new(200)
            }
        })
        .mount(&hooks)
        .await;
    let (g, m) = (google().await, graph().await);
    let app = spawn_app_with(&[
        OPEN_WINDOW,
        &sinks(&hooks, &g, &m, "reconcile_interval_seconds = 3600\n"),
    ])
    .await;
    let first = book_okafor(&app, 0).await;
    let first = first["id"].as_str().unwrap().to_owned();
    eventually("the receiver is hanging on the first booking", || async {
        hung.lock().unwrap().as_deref() == Some(first.as_str())
    })
    .await;
    // The API, the other sinks and the receiver's other appointments carry on.
    let second = book_okafor(&app, 1).await;
    let second = second["id"].as_str().unwrap().to_owned();
    eventually("the second booking reaches the receiver", || async {
        !messages(&hooks, &second).await.is_empty()
    })
    .await;
    for (name, server) in [("Google", &g), ("Outlook", &m)] {
        let holds = |id: &str| {
            let id = id.to_owned();
            async move {
                server.received_requests().await.unwrap().iter().any(|r| {
                    r.method.as_str() == "POST" && String::from_utf8_lossy(&r.body).contains(&id)
                })
            }
        };
        eventually(&format!("{name} has both"), || async {
            holds(&first).await && holds(&second).await
        })
        .await;
    }
    // The metrics tell: Google delivered both, the receiver still owes one.
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    let value = |name: &str, labels: &[&str]| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|x| l.contains(x)))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{metrics}"))
    };
    assert!(
        value(
            "slotgate_sync_deliveries_total",
            &["sink=\"gcal\"", "outcome=\"delivered\""]
        ) >= 2.0
    );
    assert!(value("slotgate_sync_pending", &["sink=\"ops\""]) >= 1.0);
    assert!(value("slotgate_sync_lag_seconds", &["sink=\"ops\""]) > 0.0);
}

#[tokio::test]
async fn a_booking_made_in_canvas_itself_reaches_every_sink_once() {
    let (hooks, g, m) = (ok_receiver().await, google().await, graph().await);
    let app = spawn_app_with(&[
        OPEN_WINDOW,
        &sinks(&hooks, &g, &m, "reconcile_interval_seconds = 3600\n"),
    ])
    .await;
    // Front-desk staff book in Canvas's own UI: slotgate only hears the notification.
    let me = app.patient_token(SOFIA);
    let slot = a_slot(&app, &me, OKAFOR, 5).await;
    let id = book_in_canvas(
        app.sandbox.as_ref().unwrap(),
        app.sandbox_url.as_ref().unwrap(),
        &slot,
        SOFIA,
        OKAFOR,
    )
    .await;
    let inserts = |requests: Vec<Request>| {
        requests
            .iter()
            .filter(|r| {
                r.method.as_str() == "POST" && String::from_utf8_lossy(&r.body).contains(&id)
            })
            .count()
    };
    eventually("every sink has it", || async {
        messages(&hooks, &id).await.len() == 1
            && inserts(g.received_requests().await.unwrap()) == 1
            && inserts(m.received_requests().await.unwrap()) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(messages(&hooks, &id).await.len(), 1, "once");
    assert_eq!(inserts(g.received_requests().await.unwrap()), 1, "once");
    assert_eq!(inserts(m.received_requests().await.unwrap()), 1, "once");
    assert_eq!(
        messages(&hooks, &id).await[0].1["type"],
        "appointment.created"
    );
    // And the slot is no longer offered.
    let taken: jiff::Timestamp = slot["start"].as_str().unwrap().parse().unwrap();
    eventually("the slot is taken", || async {
        !okafor_starts(&app).await.contains(&taken)
    })
    .await;
}
