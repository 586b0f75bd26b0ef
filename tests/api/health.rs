use crate::helpers::{assert_problem, spawn_app};
use slotgate::sandbox::Faults;

#[tokio::test]
async fn liveness_answers_without_a_token() {
    let app = spawn_app().await;
    let r = app.get("/healthz", None).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-request-id"));
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["status"], "ok");
}

#[tokio::test]
async fn readiness_follows_canvas_token_endpoint() {
    let app = spawn_app().await;
    assert_eq!(app.get("/readyz", None).await.status(), 200);
}

#[tokio::test]
async fn not_ready_until_canvas_issues_a_token() {
    let app = spawn_app().await;
    let sandbox = app.sandbox.as_ref().unwrap();
    sandbox.set_faults(Faults {
        down: true,
        ..Faults::default()
    });
    let r = app.get("/readyz", None).await;
    assert_problem(r, 503, "upstream_unavailable").await;
    sandbox.set_faults(Faults::default());
    assert_eq!(app.get("/readyz", None).await.status(), 200);
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let app = spawn_app().await;
    let r = app
        .http
        .get(format!("{}/healthz", app.address))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    let generated = app.get("/healthz", None).await;
    let id = generated.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = spawn_app().await;
    assert_problem(app.get("/v1/nothing-here", None).await, 404, "not_found").await;
    let r = app
        .http
        .post(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert!(status == 404 || status == 405, "{status}");
    assert_problem(
        r,
        status,
        if status == 405 {
            "method_not_allowed"
        } else {
            "not_found"
        },
    )
    .await;
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_route_templates() {
    let app = spawn_app().await;
    app.get("/healthz", None).await;
    let r = app.get("/metrics", None).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text().await.unwrap();
    assert!(
        text.contains(
            r#"slotgate_http_requests_total{method="GET",route="/healthz",status="200"}"#
        ),
        "{text}"
    );
    assert!(text.contains("slotgate_http_request_duration_seconds_bucket"));
}

#[tokio::test]
async fn swagger_ui_is_served_and_redirected() {
    let app = spawn_app().await;
    let r = app.get("/swagger-ui", None).await;
    assert!(r.status().is_redirection(), "{}", r.status());
    assert_eq!(r.headers()["location"], "/swagger-ui/");
    let page = app.get("/swagger-ui/", None).await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("swagger-ui"));
    let init = app.get("/swagger-ui/swagger-initializer.js", None).await;
    assert!(
        init.text()
            .await
            .unwrap()
            .contains("/api-docs/openapi.json")
    );
}
