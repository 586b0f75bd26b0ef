//! Operators' routes: `POST /v1/admin/rules/reload` and `POST /v1/admin/cache/purge`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, post, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::auth::AdminAccess;
use crate::error::{ApiError, Code, FieldError};
use crate::scheduling::reload::{self, ReloadError};

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"reasons": 5, "practitioners": 12, "locations": 4, "needs_restart": ["server"], "replicas": "every replica reloads its own configuration within seconds"}))]
pub struct RulesReloaded {
    pub reasons: usize,
    pub practitioners: usize,
    pub locations: usize,
    /// Sections of the configuration that changed but only apply after a restart.
    pub needs_restart: Vec<String>,
    pub replicas: String,
}

/// Re-reads the configuration file's rules (`[[reasons]]`, `[[practitioners]]`,
/// `[[locations]]`) and `[booking]`, validated as at start-up. A valid file is applied in one
/// step (with the clinician directory rebuilt from Canvas), cached answers that depend on it are
/// dropped, and every other replica is told to reload its own file. An invalid one changes
/// nothing and names every problem by key. `SIGHUP` does the same.
#[utoipa::path(
    operation_id = "reload_rules",
    context_path = "/v1",
    tag = "admin",
    security(("bearer" = ["scheduling.admin"])),
    responses(
        (status = 200, description = "Reloaded; sections that need a restart are named", body = RulesReloaded),
        (status = 401, description = "No valid token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks scheduling.admin", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "The configuration is invalid (`validation_failed`, `errors[]` names every key); nothing changed", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Canvas could not be read to apply the rules; nothing changed", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/admin/rules/reload")]
pub async fn reload_rules(
    _: AdminAccess,
    state: web::Data<AppState>,
) -> Result<web::Json<RulesReloaded>, ApiError> {
    match reload::reload(&state.services).await {
        Ok(done) => {
            state.slot_cache.announce_rules_changed();
            Ok(web::Json(RulesReloaded {
                reasons: done.reasons,
                practitioners: done.practitioners,
                locations: done.locations,
                needs_restart: done.needs_restart.iter().map(|s| (*s).to_owned()).collect(),
                replicas: "every replica reloads its own configuration within seconds".into(),
            }))
        }
        Err(ReloadError::Invalid(problems)) => {
            let errors = problems
                .0
                .into_iter()
                .map(|p| FieldError {
                    field: p.key,
                    message: p.message,
                })
                .collect();
            let mut e = ApiError::invalid_fields(errors);
            e.status = Some(StatusCode::UNPROCESSABLE_ENTITY);
            Err(e)
        }
        Err(ReloadError::Canvas(e)) => {
            tracing::warn!(error = %e, "rules reload could not read Canvas");
            Err(ApiError::new(
                Code::UpstreamUnavailable,
                "The configuration is valid, but Canvas could not be read to apply it; nothing changed. Retry.",
            )
            .with_retry_after(5))
        }
    }
}

/// Drops cached availability (slot lists and rendered answers) on every replica: the next
/// questions ask Canvas again.
#[utoipa::path(
    operation_id = "purge_cache",
    context_path = "/v1",
    tag = "admin",
    security(("bearer" = ["scheduling.admin"])),
    responses(
        (status = 204, description = "Dropped here; the other replicas are told at once"),
        (status = 401, description = "No valid token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks scheduling.admin", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/admin/cache/purge")]
pub async fn purge_cache(_: AdminAccess, state: web::Data<AppState>) -> HttpResponse {
    state.slot_cache.invalidate_all();
    tracing::info!("cached availability purged");
    HttpResponse::NoContent().finish()
}
