//! The Canvas client against wiremock, for the failure modes the sandbox cannot produce on
//! demand: token expiry and refusal, Retry-After, timeouts, odd Location headers.

use std::time::{Duration, Instant};

use serde_json::json;
use slotgate::canvas::{CanvasClient, ClientOptions, Error};
use slotgate::config::Secret;
use wiremock::matchers::{body_string_contains, header, header_exists, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

fn client(server: &MockServer, timeout: Duration) -> CanvasClient {
    slotgate::telemetry::init_for_tests();
    CanvasClient::new(
        ClientOptions {
            fhir_url: format!("{}/", server.uri()).parse().unwrap(),
            token_url: format!("{}/auth/token/", server.uri()).parse().unwrap(),
            client_id: "cid".into(),
            client_secret: Secret::new("csecret"),
            timeout,
            connect_timeout: Duration::from_millis(500),
            max_concurrency: 8,
            max_retries: 2,
            retry_base: Duration::from_millis(10),
            requests_per_second: 1000,
            circuit_threshold: 1000,
            circuit_cooldown: Duration::from_secs(10),
        },
        None,
    )
    .unwrap()
}

fn token(value: &str, expires_in: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "access_token": value, "expires_in": expires_in, "token_type": "Bearer", "scope": "system/*.*"
    }))
}

fn locations(ids: &[&str], next: Option<&str>) -> serde_json::Value {
    let mut link = vec![json!({"relation": "self", "url": "/Location?_count=100&_offset=0"})];
    if let Some(n) = next {
        link.push(json!({"relation": "next", "url": n}));
    }
    json!({"resourceType": "Bundle", "type": "searchset", "total": ids.len(), "link": link,
           "entry": ids.iter().map(|id| json!({"resource": {"resourceType": "Location", "id": id, "name": id}})).collect::<Vec<_>>()})
}

/// The ids of the Locations a search returned, in order.
async fn location_ids(c: &CanvasClient) -> Vec<String> {
    c.locations()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect()
}

async fn mount_token(server: &MockServer, value: &str, expires_in: u64, times: u64) {
    Mock::given(method("POST"))
        .and(path("/auth/token/"))
        .and(body_string_contains("grant_type=client_credentials"))
        .and(body_string_contains("client_id=cid"))
        .and(body_string_contains("client_secret=csecret"))
        .respond_with(token(value, expires_in))
        .expect(times)
        .mount(server)
        .await;
}

#[tokio::test]
async fn one_token_serves_many_concurrent_calls() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/auth/token/"))
        .respond_with(token("t1", 36_000).set_delay(Duration::from_millis(100)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/Location"))
        .and(header("authorization", "Bearer t1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(locations(&["a"], None)))
        .expect(20)
        .mount(&server)
        .await;
    let c = client(&server, Duration::from_secs(5));
    let calls = (0..20).map(|_| c.locations());
    for result in futures::future::join_all(calls).await {
        assert_eq!(result.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn an_expiring_token_is_replaced_before_it_expires() {
    let server = MockServer::start().await;
    // expires_in 1 s: cached for half of it, so a call 700 ms later fetches a new one.
    mount_token(&server, "short", 1, 2).await;
    Mock::given(method("GET"))
        .and(path("/Location"))
        .respond_with(ResponseTemplate::new(200).set_body_json(locations(&[], None)))
        .mount(&server)
        .await;
    let c = client(&server, Duration::from_secs(5));
    c.locations().await.unwrap();
    c.locations().await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    c.locations().await.unwrap();
}

#[tokio::test]
async fn a_refused_token_is_reacquired_once_and_the_call_repeated() {
    let server = MockServer::start().await;
    mount_token(&server, "fresh", 36_000, 2).await;
    Mock::given(method("GET"))
        .and(path("/Location"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "unknown", "details": {"text": "Authentication failed"}}]}),
        ))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/Location"))
        .respond_with(ResponseTemplate::new(200).set_body_json(locations(&["a"], None)))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server, Duration::from_secs(5));
    assert_eq!(c.locations().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_second_401_is_an_error_not_a_loop() {
    let server = MockServer::start().await;
    mount_token(&server, "t", 36_000, 2).await;
    Mock::given(method("GET"))
        .and(path("/Location"))
        .respond_with(ResponseTemplate::new(401))
        .expect(2)
        .mount(&server)
        .await;
    let c = client(&server, Duration::from_secs(5));
    assert!(matches!(
        c.locations().await,
        Err(Error::Rejected { status: 401, .. })
    ));
}

#[tokio::test]
async fn bad_client_credentials_are_reported_without_the_secret() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/auth/token/"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"})))
        .mount(&server)
        .await;
    let c = client(&server, Duration::from_secs(5));
    let e = c.ensure_token().await.unwrap_err();
    assert!(matches!(e, Error::Rejected { status: 401, .. }));
    assert!(!e.to_string().contains("csecret"));
}

#[tokio::test]
async fn searches_follow_relative_next_links() {
    let server = MockServer::start().await;
    mount_token(&server, "t", 36_000, 1).await;
    Mock::given(method("GET"))
        .and(path("/Location"))
        .and(query_param("_count", "100"))
        .and(query_param("_offset", "100"))
        .respond_with(ResponseTemplate::new(200).set_body_json(locations(&["c"], None)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/Location"))
        .and(query_param("_count", "100"))
        .respond_with(ResponseTemplate::new(200).set_body_json(locations(
            &["a", "b"],
            Some("/Location?_count=100&_offset=100"),
        )))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let c = client(&server, Duration::from_secs(5));
    let ids = location_ids(&c).await;
    assert_eq!(ids, ["a", "b", "c"]);
}

#[tokio::test]
async fn a_search_keeps_its_own_resources_and_refuses_an_unreadable_one() {
    let server = MockServer::start().await;
    mount_token(&server, "t", 36_000, 1).await;
    // Canvas may put an OperationOutcome warning among the results, first or between them.
    let mut mixed = locations(&["a", "b"], None);
    let warning = json!({"resource": {"resourceType": "OperationOutcome", "issue": [{"severity": "warning", "code": "informational"}]}});
    if let Some(entries) = mixed["entry"].as_array_mut() {
        entries.insert(0, warning.clone());
        entries.insert(2, warning);
    }
    Mock::given(method("GET"))
        .and(path("/Location"))
        .respond_with(ResponseTemplate::new(200).set_body_json(mixed))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let c = client(&server, Duration::from_secs(5));
    let ids = location_ids(&c).await;
    assert_eq!(ids, ["a", "b"]);

    // A Location without its id is an error naming what was unreadable, not a silent gap.
    let mut broken = locations(&["a"], None);
    broken["entry"][0]["resource"]
        .as_object_mut()
        .unwrap()
        .remove("id");
    Mock::given(method("GET"))
        .and(path("/Location"))
        .respond_with(ResponseTemplate::new(200).set_body_json(broken))
        .mount(&server)
        .await;
    match c.locations().await {
        Err(Error::Upstream { reason, .. }) => {
            assert!(reason.contains("unreadable Location"), "{reason}")
        }
        other => panic!("expected an unreadable Location, got {other:?}"),
    }
}

#[tokio::test]
async fn a_next_link_to_another_host_is_refused() {
    let server = MockServer::start().await;
    mount_token(&server, "t", 36_000, 1).await;
    Mock::given(method("GET"))
        .and(path("/Location"))
        .respond_with(ResponseTemplate::new(200).set_body_json(locations(
            &["a"],
            Some("https://evil.example.org/Location?_offset=10"),
        )))
        .mount(&server)
        .await;
    let c = client(&server, Duration::from_secs(5));
    assert!(matches!(c.locations().await, Err(Error::Upstream { .. })));
}

#[tokio::test]
async fn reads_are_retried_after_retry_after() {
    let server = MockServer::start().await;
    mount_token(&server, "t", 36_000, 1).await;
    Mock::given(method("GET"))
        .and(path("/Location"))
        .respond_with(ResponseTemplate::new(503).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/Location"))
        .respond_with(ResponseTemplate::new(200).set_body_json(locations(&["a"], None)))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server, Duration::from_secs(5));
    let started = Instant::now();
    assert_eq!(c.locations().await.unwrap().len(), 1);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was not honoured"
    );
}

#[tokio::test]
async fn reads_give_up_after_the_configured_retries() {
    let server = MockServer::start().await;
    mount_token(&server, "t", 36_000, 1).await;
    Mock::given(method("GET"))
        .and(path("/Location"))
        .respond_with(ResponseTemplate::new(429))
        .expect(3)
        .mount(&server)
        .await;
    let c = client(&server, Duration::from_secs(5));
    assert!(matches!(
        c.locations().await,
        Err(Error::Unavailable { .. })
    ));
}

#[tokio::test]
async fn writes_are_never_retried() {
    let server = MockServer::start().await;
    mount_token(&server, "t", 36_000, 1).await;
    Mock::given(method("POST"))
        .and(path("/Appointment"))
        .respond_with(ResponseTemplate::new(503))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server, Duration::from_secs(5));
    let e = c.create_appointment(&appointment()).await.unwrap_err();
    assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
}

#[tokio::test]
async fn a_slow_canvas_is_a_timeout_and_an_ambiguous_write() {
    let server = MockServer::start().await;
    mount_token(&server, "t", 36_000, 1).await;
    Mock::given(method("POST"))
        .and(path("/Appointment"))
        .respond_with(ResponseTemplate::new(201).set_delay(Duration::from_secs(3)))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server, Duration::from_millis(300));
    let started = Instant::now();
    let e = c.create_appointment(&appointment()).await.unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    assert!(e.is_ambiguous());
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn operation_outcomes_become_typed_errors() {
    let server = MockServer::start().await;
    mount_token(&server, "t", 36_000, 1).await;
    Mock::given(method("POST"))
        .and(path("/Appointment"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "business-rule", "details": {"text": "This appointment time is no longer available."}}]})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/Appointment/a47c7b0e-bbb4-42cd-bc4a-df259d148ea1"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "not-found", "details": {"text": "Unknown Appointment resource 'a47c'"}}]})))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/Appointment/x1"))
        .respond_with(ResponseTemplate::new(412))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/Location"))
        .respond_with(ResponseTemplate::new(500).set_body_string("<html>oops</html>"))
        .mount(&server)
        .await;
    let c = client(&server, Duration::from_secs(5));
    match c.create_appointment(&appointment()).await {
        Err(Error::BusinessRule { text, .. }) => {
            assert_eq!(text, "This appointment time is no longer available.")
        }
        other => panic!("{other:?}"),
    }
    assert!(
        c.appointment("a47c7b0e-bbb4-42cd-bc4a-df259d148ea1")
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        c.update_appointment("x1", &json!({"status": "cancelled"}))
            .await,
        Err(Error::Conflict { .. })
    ));
    assert!(matches!(c.locations().await, Err(Error::Upstream { .. })));
}

#[tokio::test]
async fn a_create_returns_the_id_from_the_location_header() {
    let server = MockServer::start().await;
    mount_token(&server, "t", 36_000, 1).await;
    Mock::given(method("POST"))
        .and(path("/Appointment"))
        .and(header("content-type", "application/json"))
        .respond_with(
            ResponseTemplate::new(201)
                .insert_header(
                    "location",
                    "http://fumage-x.canvasmedical.com/Appointment/621a66fc-9d5c-4de0-97fb-935d611ac176/_history/1",
                )
                .set_body_string("null"),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/Appointment"))
        .respond_with(ResponseTemplate::new(201).set_body_string("null"))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/Appointment/621a66fc-9d5c-4de0-97fb-935d611ac176"))
        .respond_with(ResponseTemplate::new(200).set_body_string("null"))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server, Duration::from_secs(5));
    let id = c.create_appointment(&appointment()).await.unwrap();
    assert_eq!(id, "621a66fc-9d5c-4de0-97fb-935d611ac176");
    c.update_appointment(&id, &json!({"status": "cancelled"}))
        .await
        .unwrap();
    // Without a Location header Canvas made something it did not name: an ambiguous write,
    // to be looked up by its identifier rather than trusted or repeated.
    let unnamed = c.create_appointment(&appointment()).await.unwrap_err();
    assert!(matches!(unnamed, Error::WriteFailed { status: 201, .. }));
    assert!(unnamed.is_ambiguous());
}

#[tokio::test]
async fn every_call_carries_a_traceparent() {
    let server = MockServer::start().await;
    mount_token(&server, "t", 36_000, 1).await;
    Mock::given(method("GET"))
        .and(path("/Location"))
        .and(header_exists("traceparent"))
        .respond_with(ResponseTemplate::new(200).set_body_json(locations(&[], None)))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server, Duration::from_secs(5));
    c.locations().await.unwrap();
    let requests: Vec<Request> = server.received_requests().await.unwrap();
    let tp = requests
        .iter()
        .find(|r| r.url.path() == "/Location")
        .and_then(|r| r.headers.get("traceparent"))
        .and_then(|v| v.to_str().ok())
        .unwrap()
        .to_owned();
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "{tp}");
    assert_eq!(parts[1].len(), 32);
}

fn appointment() -> slotgate::canvas::fhir::Appointment {
    serde_json::from_value(json!({
        "resourceType": "Appointment", "status": "booked",
        "start": "2026-12-01T17:00:00+00:00", "end": "2026-12-01T17:30:00+00:00",
        "supportingInformation": [{"reference": "Location/b3476a18-3f63-422d-87e7-b3dc0cd55060"}],
        "participant": [{"actor": {"reference": "Practitioner/4150cd20de8a470aa570a852859ac87e"}, "status": "accepted"}]
    }))
    .unwrap()
}

#[tokio::test]
async fn slotgates_own_canvas_budget_bounds_what_reaches_canvas() {
    let server = MockServer::start().await;
    mount_token(&server, "t", 36_000, 1).await;
    Mock::given(method("GET"))
        .and(path("/Location"))
        .respond_with(ResponseTemplate::new(200).set_body_json(locations(&[], None)))
        .mount(&server)
        .await;
    let options = ClientOptions {
        fhir_url: format!("{}/", server.uri()).parse().unwrap(),
        token_url: format!("{}/auth/token/", server.uri()).parse().unwrap(),
        client_id: "cid".into(),
        client_secret: Secret::new("csecret"),
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_millis(500),
        max_concurrency: 64,
        max_retries: 0,
        retry_base: Duration::from_millis(10),
        requests_per_second: 2,
        circuit_threshold: 1000,
        circuit_cooldown: Duration::from_secs(10),
    };
    let c = CanvasClient::new(options, None).unwrap();
    let started = Instant::now();
    let results = futures::future::join_all((0..12).map(|_| c.locations())).await;
    let refused = results
        .iter()
        .filter(
            |r| matches!(r, Err(Error::Unavailable { reason, .. }) if reason.contains("budget")),
        )
        .count();
    let reached = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/Location")
        .count();
    // Two at once, then two a second for the two seconds a call may wait: about six.
    assert!((4..=8).contains(&reached), "{reached} calls reached Canvas");
    assert_eq!(
        reached + refused,
        12,
        "the rest were refused, not queued for ever"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
}
