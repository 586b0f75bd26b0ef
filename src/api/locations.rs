//! `GET /v1/locations`.

use actix_web::{get, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::auth::ReadAccess;
use crate::error::ApiError;

/// A practice location.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "b3476a18-3f63-422d-87e7-b3dc0cd55060", "name": "Oakland Clinic", "state": "CA", "timezone": "America/Los_Angeles"}))]
pub struct LocationDto {
    /// The Canvas Location id.
    pub id: String,
    pub name: String,
    /// Two-letter US state of the location.
    pub state: String,
    /// IANA time zone of the location.
    pub timezone: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"locations": [{"id": "b3476a18-3f63-422d-87e7-b3dc0cd55060", "name": "Oakland Clinic", "state": "CA", "timezone": "America/Los_Angeles"}]}))]
pub struct LocationList {
    pub locations: Vec<LocationDto>,
}

/// Practice locations patients can be seen at.
///
/// The clinic's mapped, active Canvas locations, sorted by name.
#[utoipa::path(
    operation_id = "list_locations",
    context_path = "/v1",
    tag = "browse",
    security(("bearer" = ["scheduling.read"])),
    responses(
        (status = 200, description = "The locations", body = LocationList),
        (status = 401, description = "No valid token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks scheduling.read", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 502, description = "Canvas failed", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Canvas is unavailable", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 504, description = "Canvas was too slow", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/locations")]
pub async fn list(
    _: ReadAccess,
    state: web::Data<AppState>,
) -> Result<web::Json<LocationList>, ApiError> {
    let snapshot = state.directory.snapshot().await?;
    Ok(web::Json(LocationList {
        locations: snapshot
            .places
            .iter()
            .cloned()
            .map(|p| LocationDto {
                id: p.info.id,
                name: p.name,
                state: p.info.state.to_string(),
                timezone: p.info.timezone.iana_name().unwrap_or("UTC").to_owned(),
            })
            .collect(),
    }))
}
