//! The OAuth token endpoint and the bearer check on every FHIR route (canvas-fhir.md §1).

use reqwest::StatusCode;
use serde_json::Value;
use slotgate::sandbox::SandboxOptions;

use crate::helpers::{CLIENT_ID, CLIENT_SECRET, options, outcome, spawn, spawn_with};

#[tokio::test]
async fn good_credentials_get_a_ten_hour_bearer_token() {
    let app = spawn().await;
    let response = app
        .request_token(CLIENT_ID, CLIENT_SECRET, "client_credentials")
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().contains_key("fumage-correlation-id"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 36000);
    assert_eq!(body["scope"], "system/*.*");
    let token = body["access_token"].as_str().unwrap();
    assert!(token.len() >= 32);
    assert_ne!(token, app.token, "tokens are random");
}

#[tokio::test]
async fn wrong_credentials_and_grants_are_refused_the_oauth_way() {
    let app = spawn().await;
    let wrong_secret = app
        .request_token(CLIENT_ID, "nope", "client_credentials")
        .await;
    assert_eq!(wrong_secret.status(), StatusCode::UNAUTHORIZED);
    let body: Value = wrong_secret.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    let wrong_grant = app
        .request_token(CLIENT_ID, CLIENT_SECRET, "password")
        .await;
    assert_eq!(wrong_grant.status(), StatusCode::BAD_REQUEST);
    let body: Value = wrong_grant.json().await.unwrap();
    assert_eq!(body["error"], "unsupported_grant_type");
}

#[tokio::test]
async fn fhir_routes_need_a_valid_bearer_token() {
    let app = spawn().await;
    for auth in [None, Some("Bearer not-a-token"), Some("Basic dGVzdDp0ZXN0")] {
        let mut request = app.client.get(format!("{}/Practitioner", app.base));
        if let Some(value) = auth {
            request = request.header("authorization", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        assert!(response.headers().contains_key("fumage-correlation-id"));
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            outcome(&body),
            ("unknown".into(), "Authentication failed".into())
        );
    }
    let ok = app.get("/Practitioner").await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(
        ok.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let app = spawn_with(SandboxOptions {
        token_ttl_seconds: 0,
        ..options()
    })
    .await;
    assert!(!app.token.is_empty());
    let (status, body) = app.get_json("/Location").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(outcome(&body).0, "unknown");
}

#[tokio::test]
async fn correlation_ids_are_fresh_per_response() {
    let app = spawn().await;
    let a = app.get("/Location").await;
    let b = app.get("/Location").await;
    let id = |r: &reqwest::Response| {
        r.headers()["fumage-correlation-id"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_ne!(id(&a), id(&b));
    assert!(uuid::Uuid::parse_str(&id(&a)).is_ok());
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_operation_outcomes() {
    let app = spawn().await;
    let (status, body) = app.get_json("/Observation").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(outcome(&body).0, "not-found");
    let response = app
        .client
        .patch(format!(
            "{}/Practitioner/{}",
            app.base,
            crate::helpers::OKAFOR
        ))
        .bearer_auth(&app.token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        outcome(&body),
        ("not-supported".into(), "Operation is not supported".into())
    );
}
