//! Liveness, readiness and metrics: unauthenticated, unlimited, for the orchestrator.

use std::time::Duration;

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::error::{ApiError, Code};
use crate::metrics::Metrics;

/// A readiness probe must answer quickly even when Canvas hangs.
const READY_BUDGET: Duration = Duration::from_secs(2);

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct Status {
    /// `ok` for liveness, `ready` for readiness.
    pub status: &'static str,
}

/// Liveness: 200 while the process serves requests.
#[utoipa::path(
    operation_id = "healthz",
    tag = "operations",
    security(()),
    responses((status = 200, description = "The process is serving", body = Status))
)]
#[get("/healthz")]
pub async fn healthz() -> web::Json<Status> {
    web::Json(Status { status: "ok" })
}

/// Readiness: 200 once Canvas has answered a token request, 503 otherwise.
#[utoipa::path(
    operation_id = "readyz",
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "Configuration is valid and Canvas issues tokens", body = Status),
        (status = 503, description = "Canvas does not answer yet", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> Result<web::Json<Status>, ApiError> {
    match tokio::time::timeout(READY_BUDGET, state.canvas.ensure_token()).await {
        Ok(Ok(())) => Ok(web::Json(Status { status: "ready" })),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready");
            Err(ApiError::new(
                Code::UpstreamUnavailable,
                "Canvas does not issue a token yet.",
            )
            .with_retry_after(5))
        }
        Err(_) => Err(ApiError::new(
            Code::UpstreamUnavailable,
            "Canvas did not answer the token request in time.",
        )
        .with_retry_after(5)),
    }
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(
    operation_id = "metrics",
    tag = "operations",
    security(()),
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain; version=0.0.4"))
)]
#[get("/metrics")]
pub async fn metrics(metrics: web::Data<Metrics>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(metrics.render())
}
