use crate::helpers::{assert_problem, spawn_app};
use slotgate::sandbox::Faults;

#[tokio::test]
async fn locations_come_from_the_sandbox_through_canvas_fhir() {
    let app = spawn_app().await;
    let r = app.get("/v1/locations", Some(&app.staff_token())).await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    let locations = body["locations"].as_array().unwrap();
    assert!(locations.len() >= 3, "{body}");
    let states: std::collections::BTreeSet<&str> = locations
        .iter()
        .map(|l| l["state"].as_str().unwrap())
        .collect();
    assert!(states.len() >= 3, "three states: {states:?}");
    let zones: std::collections::BTreeSet<&str> = locations
        .iter()
        .map(|l| l["timezone"].as_str().unwrap())
        .collect();
    assert!(zones.len() >= 2, "two zones: {zones:?}");
    for l in locations {
        assert!(uuid::Uuid::parse_str(l["id"].as_str().unwrap()).is_ok());
        assert!(!l["name"].as_str().unwrap().is_empty());
    }
    let names: Vec<&str> = locations
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "sorted by name");
    // It really went over HTTP to the sandbox, with a bearer token.
    let journal = app.sandbox.as_ref().unwrap().journal();
    assert!(
        journal
            .iter()
            .any(|j| j.method == "GET" && j.path == "/Location" && j.status == 200)
    );
    assert!(journal.iter().any(|j| j.path == "/auth/token/"));
}

#[tokio::test]
async fn a_read_token_is_required() {
    let app = spawn_app().await;
    assert_problem(app.get("/v1/locations", None).await, 401, "unauthorized").await;
    let r = app.get("/v1/locations", Some("not.a.jwt")).await;
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_problem(r, 401, "unauthorized").await;
    let no_scope = app.token(None, "openid");
    assert_problem(
        app.get("/v1/locations", Some(&no_scope)).await,
        403,
        "forbidden",
    )
    .await;
    let reader = app.token(None, "scheduling.read");
    assert_eq!(app.get("/v1/locations", Some(&reader)).await.status(), 200);
}

#[tokio::test]
async fn locations_keep_answering_from_the_last_good_copy_when_canvas_fails() {
    // A one-second directory, so the copy is well past its refresh when Canvas goes away.
    let app = crate::helpers::spawn_app_with(&["[cache]\ndirectory_ttl_seconds = 1\n"]).await;
    let token = app.staff_token();
    assert_eq!(app.get("/v1/locations", Some(&token)).await.status(), 200);
    // Canvas hangs for a second on every call, then fails.
    app.sandbox.as_ref().unwrap().set_faults(Faults {
        down: true,
        latency_ms: 1000,
        ..Faults::default()
    });
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let started = std::time::Instant::now();
    let answers =
        futures::future::join_all((0..6).map(|_| app.get("/v1/locations", Some(&token)))).await;
    for r in answers {
        assert_eq!(r.status(), 200);
        assert!(
            r.json::<serde_json::Value>().await.unwrap()["locations"]
                .as_array()
                .unwrap()
                .len()
                >= 3
        );
    }
    assert!(
        started.elapsed() < std::time::Duration::from_millis(500),
        "served at once, not queued behind failing reloads: {:?}",
        started.elapsed()
    );
}
