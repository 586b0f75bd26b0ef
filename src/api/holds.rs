//! `POST /v1/holds` and `DELETE /v1/holds/{id}`.

use actix_web::{HttpResponse, delete, post, web};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::body::{patient_key, typed};
use crate::auth::BookAccess;
use crate::error::{ApiError, FieldError};
use crate::scheduling::holds;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"slot_id": "s1.eyJwIjoiNDE1MGNkMjAifQ.c2lnbmF0dXJl", "patient_id": "97491556534444838b94dbb0909b6b3d"}))]
pub struct HoldBody {
    /// From `/v1/availability`, unchanged.
    #[schema(min_length = 1, max_length = 1024)]
    slot_id: String,
    /// The patient the slot is held for; a patient token may only name its own.
    #[serde(default)]
    #[schema(pattern = "^[0-9a-f]{32}$")]
    patient_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"hold_id": "0d6f5e4c-5b1a-4c53-9a5e-3c1f2b7d9e10", "slot_id": "s1.eyJwIjoiNDE1MGNkMjAifQ.c2lnbmF0dXJl", "expires_at": "2026-12-01T17:10:00Z"}))]
pub struct HoldDto {
    pub hold_id: String,
    pub slot_id: String,
    /// When the hold lapses unless the slot is booked.
    pub expires_at: String,
}

/// Holds a slot for `[booking] hold_minutes`: it disappears from everyone's availability, and
/// only the holder may book it. A patient holds at most `[booking] max_holds_per_patient` slots
/// at once (a staff hold for a patient counts for the patient; one without a patient counts for
/// the token), and a time whose booking is in flight is never held.
#[utoipa::path(
    operation_id = "place_hold",
    context_path = "/v1",
    tag = "appointments",
    request_body = HoldBody,
    security(("bearer" = ["scheduling.book"])),
    responses(
        (status = 201, description = "Held", body = HoldDto),
        (status = 400, description = "The body is malformed or the slot id was altered", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token may not act for this patient", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`slot_held` (someone else holds it) or `slot_unavailable` (booked, or a booking of it is in flight)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`outside_booking_window` or `hold_limit_reached`", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Canvas or the shared state is unavailable", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/holds")]
pub async fn place(
    caller: BookAccess,
    body: web::Json<Value>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let raw: HoldBody = typed(&body)?;
    let mut errors = Vec::new();
    let claim = state
        .slot_ids
        .verify(&raw.slot_id)
        .map_err(|e| {
            errors.push(FieldError {
                field: "slot_id".into(),
                message: e.to_string(),
            })
        })
        .ok();
    let patient = raw
        .patient_id
        .as_deref()
        .and_then(|p| patient_key(p, &mut errors));
    let (Some(claim), true) = (claim, errors.is_empty()) else {
        return Err(ApiError::invalid_fields(errors));
    };
    let hold = holds::place(&state, &caller.0, &raw.slot_id, &claim, patient).await?;
    Ok(HttpResponse::Created().json(HoldDto {
        hold_id: hold.id,
        slot_id: hold.slot_id,
        expires_at: hold.expires_at.to_string(),
    }))
}

/// Releases a hold. Only its holder (or staff) may; anyone else is told it does not exist.
#[utoipa::path(
    operation_id = "release_hold",
    context_path = "/v1",
    tag = "appointments",
    params(("id" = String, Path, description = "The hold id", format = Uuid)),
    security(("bearer" = ["scheduling.book"])),
    responses(
        (status = 204, description = "Released"),
        (status = 401, description = "No valid token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks scheduling.book", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such hold, or another caller's", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The shared state is unavailable", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/holds/{id}")]
pub async fn release(
    caller: BookAccess,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id =
        uuid::Uuid::parse_str(&path).map_err(|_| ApiError::not_found("There is no such hold."))?;
    holds::release(&state, &caller.0, &id.to_string()).await?;
    Ok(HttpResponse::NoContent().finish())
}
