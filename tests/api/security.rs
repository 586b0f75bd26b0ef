//! Security at the door: the JWT attack matrix, JWKS rotation, the authorization matrix, rate
//! limits and trusted proxies, body limits, CORS and headers.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::availability::OPEN_WINDOW;
use crate::booking::{ELIJAH, SOFIA, a_slot, booking};
use crate::helpers::{TestApp, assert_problem, key, spawn_app_with};
use crate::seed::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap()
}

fn claims(app: &TestApp, changes: Value) -> Value {
    let now = jiff::Timestamp::now().as_second();
    let mut c = json!({"sub": "attacker", "iss": app.settings.auth.issuer, "aud": app.settings.auth.audience,
                       "iat": now, "nbf": now, "exp": now + 600, "scope": "scheduling.read"});
    for (k, v) in changes.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn hs(secret: &str, c: &Value) -> String {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(secret.as_bytes()),
        None,
        c,
    )
}

fn rs(key_file: &str, kid: Option<&str>, c: &Value) -> String {
    sign(
        Algorithm::RS256,
        &EncodingKey::from_rsa_pem(fixture(key_file).as_bytes()).unwrap(),
        kid,
        c,
    )
}

async fn status(app: &TestApp, token: &str) -> u16 {
    app.get("/v1/reasons", Some(token)).await.status().as_u16()
}

async fn keyed_app() -> TestApp {
    let auth = format!(
        "[auth]\nrs256_public_key_pem = \"{FIXTURES}/rsa-1.pub.pem\"\nes256_public_key_pem = \"{FIXTURES}/ec.pub.pem\"\nhs256_secret = \"a development secret of 32+ chars\"\n"
    );
    spawn_app_with(&[&auth]).await
}

#[tokio::test]
async fn the_jwt_attack_matrix() {
    let app = keyed_app().await;
    let secret = app
        .settings
        .auth
        .hs256_secret
        .as_ref()
        .unwrap()
        .expose()
        .to_owned();
    let now = jiff::Timestamp::now().as_second();
    let ok = claims(&app, json!({}));
    // What must pass.
    assert_eq!(status(&app, &hs(&secret, &ok)).await, 200, "HS256");
    assert_eq!(
        status(&app, &rs("rsa-1.key.pem", None, &ok)).await,
        200,
        "RS256"
    );
    let es = sign(
        Algorithm::ES256,
        &EncodingKey::from_ec_pem(fixture("ec.key.pem").as_bytes()).unwrap(),
        None,
        &ok,
    );
    assert_eq!(status(&app, &es).await, 200, "ES256");
    assert_eq!(
        status(&app, &hs(&secret, &claims(&app, json!({"exp": now - 10})))).await,
        200,
        "within the leeway"
    );
    // What must not.
    let unsigned = {
        let b64 = |v: &Value| {
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                v.to_string(),
            )
        };
        format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            b64(&ok)
        )
    };
    let confusion = hs(&fixture("rsa-1.pub.pem"), &ok);
    let cases: Vec<(&str, String)> = vec![
        ("malformed", "not-a-jwt".into()),
        ("alg none", unsigned),
        (
            "expired",
            hs(&secret, &claims(&app, json!({"exp": now - 120}))),
        ),
        (
            "not yet valid",
            hs(&secret, &claims(&app, json!({"nbf": now + 600}))),
        ),
        (
            "wrong issuer",
            hs(
                &secret,
                &claims(&app, json!({"iss": "https://evil.example.org"})),
            ),
        ),
        (
            "wrong audience",
            hs(&secret, &claims(&app, json!({"aud": "another-api"}))),
        ),
        (
            "wrong secret",
            hs("another secret of thirty-two characters!", &ok),
        ),
        ("unknown key", rs("rsa-2.key.pem", None, &ok)),
        ("HS256 signed with the RS256 public key", confusion),
        ("no subject", hs(&secret, &claims(&app, json!({"sub": ""})))),
    ];
    for (name, token) in cases {
        let r = app.get("/v1/reasons", Some(&token)).await;
        assert_eq!(
            r.headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap()),
            Some("Bearer"),
            "{name}"
        );
        let body = assert_problem(r, 401, "unauthorized").await;
        assert!(
            !body["detail"].as_str().unwrap().contains(&token),
            "{name}: the token is not echoed"
        );
    }
    assert_problem(app.get("/v1/reasons", None).await, 401, "unauthorized").await;
}

#[tokio::test]
async fn jwks_keys_rotate_and_forged_kids_cannot_hammer_the_provider() {
    let idp = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/jwks"))
        .respond_with(ResponseTemplate::new(200).set_body_string(fixture("jwks-1.json")))
        .up_to_n_times(1)
        .mount(&idp)
        .await;
    Mock::given(method("GET"))
        .and(path("/jwks"))
        .respond_with(ResponseTemplate::new(200).set_body_string(fixture("jwks-2.json")))
        .mount(&idp)
        .await;
    let app = spawn_app_with(&[&format!(
        "[auth]\njwks_url = \"{}/jwks\"\njwks_refresh_seconds = 2\n",
        idp.uri()
    )])
    .await;
    let ok = claims(&app, json!({}));
    // The first fetch (start-up) has key-1 only.
    let mut first = 0;
    for _ in 0..50 {
        first = status(&app, &rs("rsa-1.key.pem", Some("key-1"), &ok)).await;
        if first == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(first, 200, "a key from the JWKS");
    assert_eq!(
        status(&app, &rs("rsa-1.key.pem", Some("key-2"), &ok)).await,
        401,
        "a key with another kid's id"
    );
    let fetches = || async { idp.received_requests().await.unwrap().len() };
    let before = fetches().await;
    // Forged kids within the refresh interval cost the provider at most one fetch.
    for i in 0..20 {
        assert_eq!(
            status(
                &app,
                &rs("rsa-1.key.pem", Some(&format!("forged-{i}")), &ok)
            )
            .await,
            401
        );
    }
    assert!(
        fetches().await - before <= 1,
        "{} fetches for 20 forged kids",
        fetches().await - before
    );
    // The provider rotated in key-2; after the interval a token with it refetches and passes.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(
        status(&app, &rs("rsa-2.key.pem", Some("key-2"), &ok)).await,
        200,
        "the rotated key"
    );
    assert_eq!(
        status(&app, &rs("rsa-1.key.pem", Some("key-1"), &ok)).await,
        200,
        "the old key still listed"
    );
}

/// Every route, for every kind of caller: nobody reaches what their token does not allow.
#[tokio::test]
async fn the_authorization_matrix() {
    let app = spawn_app_with(&[OPEN_WINDOW]).await;
    let sofia = app.patient_token(SOFIA);
    let slot = a_slot(&app, &sofia, OKAFOR, 0).await;
    let made: Value = app
        .post_json(
            "/v1/appointments",
            &sofia,
            &booking(&slot, SOFIA),
            Some(&key()),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = made["id"].as_str().unwrap().to_owned();
    let elijah = app.patient_token(ELIJAH);
    let read_only = app.token(None, "scheduling.read");
    let book_only = app.token(Some(SOFIA), "scheduling.book");
    let admin_only = app.token(None, "scheduling.admin");
    let staff = app.token(None, "scheduling.read scheduling.book scheduling.staff");
    let slot2 = a_slot(&app, &sofia, OKAFOR, 2).await;
    let slot3 = a_slot(&app, &sofia, OKAFOR, 4).await;
    let held: Value = app
        .post_json(
            "/v1/holds",
            &sofia,
            &json!({"slot_id": slot3["slot_id"]}),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let hold = format!("/v1/holds/{}", held["hold_id"].as_str().unwrap());
    let event = json!({"practitioner_ids": [REYES], "start": "2030-01-07T17:00:00Z", "end": "2030-01-07T18:00:00Z", "title": "Meeting"});
    let availability = format!(
        "/v1/availability?reason=FLUP&duration=30&state=CA&start={}&end={}",
        days(1),
        days(2)
    );
    type Case<'a> = (&'a str, String, Option<Value>, &'a str, u16);
    let cases: Vec<Case> = vec![
        ("GET", "/v1/reasons".into(), None, "none", 401),
        ("GET", "/v1/reasons".into(), None, "read", 200),
        ("GET", "/v1/reasons".into(), None, "book", 403),
        ("GET", "/v1/reasons".into(), None, "admin", 403),
        ("GET", "/v1/locations".into(), None, "patient", 200),
        ("GET", "/v1/practitioners".into(), None, "admin", 403),
        ("GET", availability.clone(), None, "staff", 200),
        ("GET", availability, None, "none", 401),
        (
            "GET",
            format!("/v1/appointments/{id}"),
            None,
            "patient",
            200,
        ),
        ("GET", format!("/v1/appointments/{id}"), None, "other", 404),
        ("GET", format!("/v1/appointments/{id}"), None, "staff", 200),
        ("GET", format!("/v1/appointments/{id}"), None, "read", 403),
        ("GET", format!("/v1/appointments/{id}"), None, "admin", 403),
        (
            "GET",
            format!("/v1/appointments?patient_id={SOFIA}"),
            None,
            "patient",
            200,
        ),
        (
            "GET",
            format!("/v1/appointments?patient_id={SOFIA}"),
            None,
            "other",
            403,
        ),
        (
            "GET",
            format!("/v1/appointments?patient_id={SOFIA}"),
            None,
            "staff",
            200,
        ),
        (
            "POST",
            "/v1/holds".into(),
            Some(json!({"slot_id": slot2["slot_id"], "patient_id": SOFIA})),
            "other",
            403,
        ),
        (
            "POST",
            "/v1/holds".into(),
            Some(json!({"slot_id": slot2["slot_id"]})),
            "read",
            403,
        ),
        (
            "POST",
            "/v1/appointments".into(),
            Some(booking(&slot2, SOFIA)),
            "other",
            403,
        ),
        (
            "POST",
            "/v1/appointments".into(),
            Some(booking(&slot2, SOFIA)),
            "read",
            403,
        ),
        (
            "POST",
            "/v1/appointments".into(),
            Some(booking(&slot2, SOFIA)),
            "none",
            401,
        ),
        (
            "POST",
            format!("/v1/appointments/{id}/reschedule"),
            Some(json!({"slot_id": slot2["slot_id"], "patient_state": "CA"})),
            "other",
            404,
        ),
        (
            "POST",
            format!("/v1/appointments/{id}/cancel"),
            Some(json!({})),
            "other",
            404,
        ),
        (
            "POST",
            format!("/v1/appointments/{id}/cancel"),
            Some(json!({})),
            "admin",
            403,
        ),
        (
            "POST",
            "/v1/events".into(),
            Some(event.clone()),
            "patient",
            403,
        ),
        (
            "POST",
            "/v1/events".into(),
            Some(event.clone()),
            "read",
            403,
        ),
        (
            "POST",
            "/v1/events".into(),
            Some(event.clone()),
            "admin",
            403,
        ),
        (
            "POST",
            "/v1/events".into(),
            Some(event.clone()),
            "book",
            403,
        ),
        (
            "POST",
            "/v1/events".into(),
            Some(event.clone()),
            "none",
            401,
        ),
        ("POST", "/v1/events".into(), Some(event), "staff", 201),
        // Every route for the scopes it does not list.
        ("GET", "/v1/reasons".into(), None, "patient", 200),
        ("GET", "/v1/reasons".into(), None, "staff", 200),
        ("GET", "/v1/locations".into(), None, "none", 401),
        ("GET", "/v1/locations".into(), None, "book", 403),
        ("GET", "/v1/locations".into(), None, "admin", 403),
        ("GET", "/v1/practitioners".into(), None, "read", 200),
        ("GET", "/v1/practitioners".into(), None, "patient", 200),
        ("GET", "/v1/practitioners".into(), None, "none", 401),
        ("GET", "/v1/practitioners".into(), None, "book", 403),
        ("GET", format!("/v1/appointments/{id}"), None, "none", 401),
        ("GET", format!("/v1/appointments/{id}"), None, "book", 200),
        (
            "GET",
            format!("/v1/appointments?patient_id={SOFIA}"),
            None,
            "read",
            403,
        ),
        (
            "GET",
            format!("/v1/appointments?patient_id={SOFIA}"),
            None,
            "admin",
            403,
        ),
        (
            "POST",
            "/v1/holds".into(),
            Some(json!({"slot_id": slot2["slot_id"]})),
            "none",
            401,
        ),
        (
            "POST",
            "/v1/holds".into(),
            Some(json!({"slot_id": slot2["slot_id"]})),
            "admin",
            403,
        ),
        ("DELETE", hold.clone(), None, "none", 401),
        ("DELETE", hold.clone(), None, "read", 403),
        ("DELETE", hold.clone(), None, "admin", 403),
        ("DELETE", hold.clone(), None, "other", 404),
        ("DELETE", hold, None, "patient", 204),
        (
            "POST",
            format!("/v1/appointments/{id}/reschedule"),
            Some(json!({"slot_id": slot2["slot_id"], "patient_state": "CA"})),
            "read",
            403,
        ),
        (
            "POST",
            format!("/v1/appointments/{id}/reschedule"),
            Some(json!({"slot_id": slot2["slot_id"], "patient_state": "CA"})),
            "admin",
            403,
        ),
        (
            "POST",
            format!("/v1/appointments/{id}/reschedule"),
            Some(json!({"slot_id": slot2["slot_id"], "patient_state": "CA"})),
            "none",
            401,
        ),
        (
            "POST",
            format!("/v1/appointments/{id}/cancel"),
            Some(json!({})),
            "read",
            403,
        ),
        (
            "POST",
            format!("/v1/appointments/{id}/cancel"),
            Some(json!({})),
            "none",
            401,
        ),
        ("GET", "/v1/admin/sync".into(), None, "none", 401),
        ("GET", "/v1/admin/sync".into(), None, "patient", 403),
        ("GET", "/v1/admin/sync".into(), None, "read", 403),
        ("GET", "/v1/admin/sync".into(), None, "staff", 403),
        ("GET", "/v1/admin/sync".into(), None, "admin", 200),
        (
            "GET",
            "/v1/admin/sync/dead-letters".into(),
            None,
            "staff",
            403,
        ),
        (
            "GET",
            "/v1/admin/sync/dead-letters".into(),
            None,
            "book",
            403,
        ),
        (
            "GET",
            "/v1/admin/sync/dead-letters".into(),
            None,
            "admin",
            200,
        ),
        (
            "POST",
            "/v1/admin/sync/dead-letters/nothing/retry".into(),
            Some(json!({})),
            "patient",
            403,
        ),
        (
            "POST",
            "/v1/admin/sync/dead-letters/nothing/retry".into(),
            Some(json!({})),
            "staff",
            403,
        ),
        (
            "POST",
            "/v1/admin/sync/dead-letters/nothing/retry".into(),
            Some(json!({})),
            "admin",
            404,
        ),
        (
            "POST",
            "/v1/appointments".into(),
            Some(booking(&slot2, SOFIA)),
            "book",
            201,
        ),
    ];
    for (verb, route, body, who, expected) in cases {
        let token = match who {
            "none" => None,
            "patient" => Some(sofia.clone()),
            "other" => Some(elijah.clone()),
            "read" => Some(read_only.clone()),
            "book" => Some(book_only.clone()),
            "admin" => Some(admin_only.clone()),
            _ => Some(staff.clone()),
        };
        let mut request = app
            .http
            .request(verb.parse().unwrap(), format!("{}{route}", app.address))
            .header("Idempotency-Key", key());
        if let Some(t) = &token {
            request = request.bearer_auth(t);
        }
        if let Some(b) = &body {
            request = request.json(b);
        }
        let r = request.send().await.unwrap();
        assert_eq!(
            r.status().as_u16(),
            expected,
            "{verb} {route} as {who}: {}",
            r.text().await.unwrap()
        );
    }
    // Nothing above reached Canvas for another patient: Sofia's two bookings and the event.
    let creates = app.creates();
    assert_eq!(creates.len(), 3);
    for c in creates {
        let patients: Vec<&str> = c["participant"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["actor"]["reference"].as_str())
            .filter(|r| r.starts_with("Patient/"))
            .collect();
        assert!(
            patients.is_empty() || patients == [format!("Patient/{SOFIA}")],
            "{patients:?}"
        );
    }
}

#[tokio::test]
async fn rate_limits_per_caller_and_kind_with_health_exempt() {
    let app = spawn_app_with(&["[rate_limit]\nbrowse_per_minute = 5\nbook_per_minute = 2\n"]).await;
    let a = app.patient_token(SOFIA);
    for _ in 0..5 {
        assert_eq!(app.get("/v1/reasons", Some(&a)).await.status(), 200);
    }
    let limited = app.get("/v1/reasons", Some(&a)).await;
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait));
    assert_problem(limited, 429, "rate_limited").await;
    assert_eq!(
        app.get("/v1/reasons", Some(&app.patient_token(ELIJAH)))
            .await
            .status(),
        200,
        "another caller has its own budget"
    );
    // Writes have their own budget.
    let r = app
        .post_json("/v1/holds", &a, &json!({"slot_id": "s1.x.y"}), None)
        .await;
    assert_eq!(r.status(), 400, "the write budget is untouched by browsing");
    for _ in 0..50 {
        assert_eq!(
            app.get("/healthz", None).await.status(),
            200,
            "health is never limited"
        );
    }
}

#[tokio::test]
async fn forwarded_for_counts_only_behind_a_trusted_proxy() {
    let limited = "[rate_limit]\nbrowse_per_minute = 2\n";
    let untrusted = spawn_app_with(&[limited]).await;
    let trusted =
        spawn_app_with(&[limited, "[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n"]).await;
    let from = |app: &TestApp, ip: &str| {
        let request = app
            .http
            .get(format!("{}/v1/reasons", app.address))
            .header("x-forwarded-for", ip.to_owned());
        async move { request.send().await.unwrap().status().as_u16() }
    };
    // Unauthenticated callers are limited by IP; an untrusted peer's header is ignored.
    for ip in ["198.51.100.1", "198.51.100.2"] {
        assert_eq!(from(&untrusted, ip).await, 401);
    }
    assert_eq!(
        from(&untrusted, "198.51.100.3").await,
        429,
        "all from one peer"
    );
    // Behind a trusted proxy each client has its own budget.
    for ip in [
        "198.51.100.1",
        "198.51.100.1",
        "198.51.100.2",
        "198.51.100.2",
    ] {
        assert_eq!(from(&trusted, ip).await, 401);
    }
    assert_eq!(from(&trusted, "198.51.100.1").await, 429);
}

#[tokio::test]
async fn oversized_bodies_are_413_and_nothing_happens() {
    let app = spawn_app_with(&["[server]\nmax_body_bytes = 2048\n"]).await;
    let huge = json!({"slot_id": "s1.x.y", "reason_code": "FLUP", "patient_id": SOFIA, "patient_state": "CA", "comment": "x".repeat(4000)});
    let r = app
        .post_json(
            "/v1/appointments",
            &app.patient_token(SOFIA),
            &huge,
            Some(&key()),
        )
        .await;
    assert_problem(r, 413, "payload_too_large").await;
    assert!(app.creates().is_empty());
}

#[tokio::test]
async fn oversized_queries_and_headers_are_refused_by_name() {
    let app = spawn_app_with(&[]).await;
    let token = app.staff_token();
    let long = format!("/v1/practitioners?language={}", "e".repeat(9000));
    let body = assert_problem(app.get(&long, Some(&token)).await, 400, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "query");
    let r = app
        .http
        .get(format!("{}/v1/reasons", app.address))
        .bearer_auth(&token)
        .header("x-padding", "p".repeat(20_000))
        .send()
        .await
        .unwrap();
    let body = assert_problem(r, 400, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "headers");
}

#[tokio::test]
async fn browsers_of_the_configured_origin_only_and_safe_headers() {
    let app = spawn_app_with(&["[server]\ncors_origins = [\"https://app.example.org\"]\n"]).await;
    let preflight = |origin: &str| {
        app.http
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/v1/appointments", app.address),
            )
            .header("origin", origin.to_owned())
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, idempotency-key, content-type",
            )
            .send()
    };
    let ok = preflight("https://app.example.org").await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example.org"
    );
    let evil = preflight("https://evil.example.org").await.unwrap();
    assert!(evil.headers().get("access-control-allow-origin").is_none());
    let r = app.get("/v1/reasons", Some(&app.staff_token())).await;
    for (h, v) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(r.headers()[h], v, "{h}");
    }
}

#[tokio::test]
async fn an_hs256_token_made_with_the_rs256_public_key_is_refused_where_only_rs256_is_trusted() {
    // No HS256 secret at all: a verifier that let the token pick its algorithm would check
    // this HMAC against the public key's bytes, and accept it.
    let app = spawn_app_with(&[&format!(
        "[auth]\nrs256_public_key_pem = \"{FIXTURES}/rsa-1.pub.pem\"\nhs256_secret = \"\"\n"
    )])
    .await;
    assert!(app.settings.auth.hs256_secret.is_none());
    let ok = claims(&app, json!({}));
    assert_eq!(status(&app, &rs("rsa-1.key.pem", None, &ok)).await, 200);
    for public in [
        fixture("rsa-1.pub.pem"),
        fixture("rsa-1.pub.pem").trim().to_owned(),
    ] {
        let forged = hs(&public, &ok);
        assert_problem(
            app.get("/v1/reasons", Some(&forged)).await,
            401,
            "unauthorized",
        )
        .await;
    }
}
