//! `GET /v1/practitioners`.

use actix_web::{HttpRequest, get, web};
use jiff::ToSpan;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::params::{Params, parsed};
use super::refs::LocationRef;
use crate::auth::ReadAccess;
use crate::error::ApiError;
use crate::rules::model::Modality;
use crate::scheduling::clinicians::{self, Filters};
use crate::types::UsState;

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "4150cd20de8a470aa570a852859ac87e", "name": "Amara Okafor MD", "specialties": ["primary_care"], "languages": ["en", "es"], "modalities": ["telehealth", "in_person"], "licensed_states": ["CA", "NY"], "locations": [{"id": "b3476a18-3f63-422d-87e7-b3dc0cd55060", "name": "Oakland Clinic"}]}))]
pub struct PractitionerDto {
    pub id: String,
    pub name: String,
    pub specialties: Vec<String>,
    pub languages: Vec<String>,
    pub modalities: Vec<Modality>,
    /// States with a STATE licence valid on some day from today to the booking horizon.
    pub licensed_states: Vec<String>,
    /// Locations with a schedule for this clinician.
    pub locations: Vec<LocationRef>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"practitioners": [{"id": "4150cd20de8a470aa570a852859ac87e", "name": "Amara Okafor MD", "specialties": ["primary_care"], "languages": ["en", "es"], "modalities": ["telehealth", "in_person"], "licensed_states": ["CA", "NY"], "locations": [{"id": "b3476a18-3f63-422d-87e7-b3dc0cd55060", "name": "Oakland Clinic"}]}]}))]
pub struct PractitionerList {
    pub practitioners: Vec<PractitionerDto>,
}

/// Filters; every one is optional and they combine with AND.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the parameters; parsing names each bad one itself
pub struct PractitionerFilters {
    /// Licensed in this US state (two letters).
    #[param(value_type = Option<UsState>)]
    state: Option<String>,
    /// Sees this reason (its specialty and one of its modalities); a reason the caller may not
    /// book matches nobody.
    #[param(min_length = 1, max_length = 128)]
    reason: Option<String>,
    /// Practises this modality.
    modality: Option<Modality>,
    /// Has a schedule at this Canvas Location id.
    #[param(format = Uuid)]
    location: Option<String>,
    #[param(min_length = 1, max_length = 128)]
    specialty: Option<String>,
    /// A language code, as configured (`en`, `es`).
    #[param(min_length = 1, max_length = 128)]
    language: Option<String>,
}

/// Clinicians eligible for the filters.
#[utoipa::path(
    operation_id = "list_practitioners",
    context_path = "/v1",
    tag = "browse",
    params(PractitionerFilters),
    security(("bearer" = ["scheduling.read"])),
    responses(
        (status = 200, description = "The clinicians, by name", body = PractitionerList),
        (status = 400, description = "A filter is malformed or unknown", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks scheduling.read", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Canvas is unavailable", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/practitioners")]
pub async fn list(
    caller: ReadAccess,
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<web::Json<PractitionerList>, ApiError> {
    let mut p = Params::parse(
        request.query_string(),
        &[
            "state",
            "reason",
            "modality",
            "location",
            "specialty",
            "language",
        ],
    );
    let us_state: Option<UsState> = p.get("state", parsed("a two-letter US state code"));
    let reason_code = p.text("reason");
    let modality = p.get("modality", |s| {
        Modality::parse(s).ok_or_else(|| "must be telehealth or in_person".to_owned())
    });
    let location = p.get("location", |s| {
        uuid::Uuid::parse_str(s)
            .map(|u| u.to_string())
            .map_err(|_| "is not a Canvas Location id".to_owned())
    });
    let specialty = p.text("specialty");
    let language = p.text("language");
    p.finish()?;
    let clinic = state.policy();
    let rules = &clinic.rules;
    // A reason the caller may not book is a filter nobody passes.
    let reason = reason_code.map(|code| {
        crate::rules::policy::bookable_reason(rules, &code, caller.0.scopes.staff).ok()
    });
    if reason.as_ref().is_some_and(Option::is_none) {
        return Ok(web::Json(PractitionerList {
            practitioners: Vec::new(),
        }));
    }
    let reason = reason.flatten();
    let snapshot = state.directory.snapshot().await?;
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    let horizon = today.saturating_add(i64::from(clinic.booking.max_horizon_days).days());
    let filters = Filters {
        state: us_state,
        reason: reason.cloned(),
        modality,
        location,
        specialty,
        language,
    };
    let practitioners = clinicians::eligible(&snapshot, &filters, today, horizon)
        .into_iter()
        .map(|e| PractitionerDto {
            id: e.clinician.id.to_string(),
            name: e.clinician.name.clone(),
            specialties: e.clinician.profile.specialties.clone(),
            languages: e.clinician.profile.languages.clone(),
            modalities: e.clinician.profile.modalities.clone(),
            licensed_states: e.states.iter().map(ToString::to_string).collect(),
            locations: e
                .places
                .iter()
                .map(|p| LocationRef {
                    id: p.info.id.clone(),
                    name: p.name.clone(),
                })
                .collect(),
        })
        .collect();
    Ok(web::Json(PractitionerList { practitioners }))
}
