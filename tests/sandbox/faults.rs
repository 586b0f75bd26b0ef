//! Injected faults and the request journal, through `SandboxControl` and `/_sandbox`.

use std::time::{Duration, Instant};

use jiff::civil::Weekday;
use reqwest::StatusCode;
use serde_json::{Value, json};
use slotgate::sandbox::{Faults, JournalEntry, SandboxOptions};

use crate::helpers::{
    CLIENT_ID, CLIENT_SECRET, OKAFOR, OLIVIA, appointment, next, options, outcome, spawn,
    spawn_with,
};

#[tokio::test]
async fn latency_delays_fhir_and_token_responses() {
    let app = spawn().await;
    app.control().set_faults(Faults {
        latency_ms: 300,
        ..Faults::default()
    });
    let started = Instant::now();
    assert_eq!(app.get("/Location").await.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let started = Instant::now();
    let token = app
        .request_token(CLIENT_ID, CLIENT_SECRET, "client_credentials")
        .await;
    assert_eq!(token.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn an_error_rate_of_one_fails_every_fhir_request_but_not_tokens() {
    let app = spawn_with(SandboxOptions {
        faults: Faults {
            error_rate: 1.0,
            ..Faults::default()
        },
        ..options()
    })
    .await;
    assert!(
        !app.token.is_empty(),
        "the token endpoint is not a FHIR route"
    );
    for path in ["/Schedule", "/Patient", "/Location"] {
        let (status, body) = app.get_json(path).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(outcome(&body).0, "exception");
    }
    app.control().set_faults(Faults::default());
    assert_eq!(app.get("/Schedule").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn down_answers_503_everywhere_including_the_token_endpoint() {
    let app = spawn().await;
    let put = app
        .client
        .put(format!("{}/_sandbox/faults", app.base))
        .json(&json!({"down": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::OK);
    assert!(app.control().faults().down);
    let token = app
        .request_token(CLIENT_ID, CLIENT_SECRET, "client_credentials")
        .await;
    assert_eq!(token.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(token.headers().contains_key("fumage-correlation-id"));
    assert_eq!(
        app.get("/Practitioner").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let (status, faults) = {
        let r = app
            .client
            .get(format!("{}/_sandbox/faults", app.base))
            .send()
            .await
            .unwrap();
        (r.status(), r.json::<Faults>().await.unwrap())
    };
    assert_eq!(status, StatusCode::OK, "controls work while down");
    assert!(faults.down);
    let bad = app
        .client
        .put(format!("{}/_sandbox/faults", app.base))
        .json(&json!({"error_rate": 2.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_stalled_create_stores_the_appointment_before_answering() {
    let app = spawn().await;
    app.control().set_faults(Faults {
        stall_after_create_ms: 1500,
        ..Faults::default()
    });
    let d = next(app.today(), 8, Weekday::Thursday);
    let mut body = appointment(
        OKAFOR,
        Some(OLIVIA),
        &format!("{d}T17:00:00Z"),
        &format!("{d}T17:30:00Z"),
    );
    body["identifier"] = json!([{"system": "urn:slotgate:idempotency", "value": "stall-1"}]);
    let attempt = app
        .client
        .post(format!("{}/Appointment", app.base))
        .bearer_auth(&app.token)
        .timeout(Duration::from_millis(300))
        .json(&body)
        .send()
        .await;
    assert!(attempt.unwrap_err().is_timeout());
    // The client gave up, yet Canvas has the booking: look it up by identifier.
    app.control().set_faults(Faults::default());
    let found = app.all("/Appointment?identifier=stall-1").await;
    assert_eq!(found.len(), 1);
    // Once the stall is over the journal shows the create, answered or abandoned.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let posts: Vec<_> = app
        .control()
        .journal()
        .into_iter()
        .filter(|e| e.method == "POST" && e.path == "/Appointment")
        .collect();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert!([201, 499].contains(&posts[0].status));
    let started = Instant::now();
    app.control().set_faults(Faults {
        stall_after_create_ms: 400,
        ..Faults::default()
    });
    body["identifier"] = json!([]);
    assert_eq!(
        app.post("/Appointment", &body).await.status(),
        StatusCode::CREATED
    );
    assert!(started.elapsed() >= Duration::from_millis(400));
}

#[tokio::test]
async fn the_journal_records_requests_but_not_controls() {
    let app = spawn().await;
    app.control().clear_journal();
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let d = next(app.today(), 8, Weekday::Thursday);
    let body = appointment(
        OKAFOR,
        Some(OLIVIA),
        &format!("{d}T17:00:00Z"),
        &format!("{d}T17:30:00Z"),
    );
    let response = app
        .client
        .post(format!("{}/Appointment", app.base))
        .bearer_auth(&app.token)
        .header("traceparent", traceparent)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    app.get("/Patient?family=mart&_count=5").await;
    app.request_token(CLIENT_ID, CLIENT_SECRET, "client_credentials")
        .await;
    app.client
        .get(format!("{}/_sandbox/faults", app.base))
        .send()
        .await
        .unwrap();
    let journal = app.control().journal();
    assert_eq!(journal.len(), 3, "{journal:?}");
    let create = &journal[0];
    assert_eq!(create.method, "POST");
    assert_eq!(create.path, "/Appointment");
    assert_eq!(create.traceparent.as_deref(), Some(traceparent));
    assert_eq!(create.body.as_ref(), Some(&body));
    assert_eq!(create.status, 201);
    assert_eq!(journal[1].query, "family=mart&_count=5");
    assert_eq!(journal[1].body, None);
    let token_body = journal[2].body.as_ref().unwrap();
    assert_eq!(token_body["client_id"], CLIENT_ID);
    assert_eq!(token_body["client_secret"], "***");
    let over_http: Vec<JournalEntry> = app
        .client
        .get(format!("{}/_sandbox/journal", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(over_http, journal);
    let cleared = app
        .client
        .delete(format!("{}/_sandbox/journal", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), StatusCode::NO_CONTENT);
    assert!(app.control().journal().is_empty());
}

#[tokio::test]
async fn generated_clinics_serve_many_schedules_quickly() {
    let app = spawn_with(SandboxOptions {
        clinic: slotgate::sandbox::ClinicSpec::Generated { clinicians: 50 },
        ..options()
    })
    .await;
    let schedules = app.all("/Schedule?_count=100").await;
    assert_eq!(schedules.len(), 50);
    let started = Instant::now();
    let id = schedules[0]["id"].as_str().unwrap();
    let (status, bundle): (StatusCode, Value) = app
        .get_json(&format!("/Slot?schedule={id}&_count=100"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(bundle["total"].as_u64().unwrap() > 100);
    assert!(started.elapsed() < Duration::from_secs(2));
    app.sandbox.stop().await;
}
