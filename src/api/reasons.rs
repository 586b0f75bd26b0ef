//! `GET /v1/reasons`.

use actix_web::{get, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::auth::ReadAccess;
use crate::rules::model::Modality;

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"code": "INIV", "system": "INTERNAL", "display": "Initial Visit", "durations_minutes": [30, 60], "modalities": ["telehealth", "in_person"], "specialties": ["primary_care"]}))]
pub struct ReasonDto {
    /// The structured reason's code; `reason` in `/v1/availability` and bookings.
    pub code: String,
    /// The coding system, as configured in Canvas (`INTERNAL`, SNOMED, …).
    pub system: String,
    pub display: String,
    /// The durations a visit for this reason may last.
    pub durations_minutes: Vec<u32>,
    pub modalities: Vec<Modality>,
    /// Clinician specialties that see this reason; empty: any clinician.
    pub specialties: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"reasons": [{"code": "INIV", "system": "INTERNAL", "display": "Initial Visit", "durations_minutes": [30, 60], "modalities": ["telehealth", "in_person"], "specialties": ["primary_care"]}]}))]
pub struct ReasonList {
    pub reasons: Vec<ReasonDto>,
}

/// The structured reasons for visit the caller may book.
///
/// Patient tokens see the reasons patients may book themselves; staff tokens see them all.
#[utoipa::path(
    operation_id = "list_reasons",
    context_path = "/v1",
    tag = "browse",
    security(("bearer" = ["scheduling.read"])),
    responses(
        (status = 200, description = "The reasons", body = ReasonList),
        (status = 401, description = "No valid token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks scheduling.read", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/reasons")]
pub async fn list(caller: ReadAccess, state: web::Data<AppState>) -> web::Json<ReasonList> {
    let staff = caller.0.scopes.staff;
    web::Json(ReasonList {
        reasons: crate::rules::policy::bookable_reasons(&state.policy().rules, staff)
            .map(|r| ReasonDto {
                code: r.code.clone(),
                system: r.system.clone(),
                display: r.display.clone(),
                durations_minutes: r.durations.clone(),
                modalities: r.modalities.keys().copied().collect(),
                specialties: r.specialties.clone(),
            })
            .collect(),
    })
}
