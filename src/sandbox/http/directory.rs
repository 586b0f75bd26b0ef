//! `GET /Schedule` (§2) and `GET /Location` (§6).

use actix_web::http::StatusCode;
use actix_web::web::{Data, Path};
use actix_web::{HttpRequest, HttpResponse};

use super::outcome::{FhirError, json};
use super::paging::searchset;
use crate::sandbox::clinic::schedule;
use crate::sandbox::params::Params;
use crate::sandbox::state::Shared;

/// Canvas documents no Schedule parameter, but a Canvas-collection plugin sends `actor` and
/// is not refused (§2).
const SCHEDULE_PARAMETERS: [&str; 1] = ["actor"];
/// Location's one documented parameter (§6).
const LOCATION_PARAMETERS: [&str; 1] = ["_id"];

/// `actor=Practitioner/<id>` (or a bare id) narrows the list.
pub async fn schedules(shared: Data<Shared>, req: HttpRequest) -> Result<HttpResponse, FhirError> {
    let params = Params::parse(req.query_string());
    params
        .reject_unknown("Schedule", &SCHEDULE_PARAMETERS)
        .map_err(FhirError::bad_request)?;
    let actor = params
        .first("actor")
        .map(|a| a.strip_prefix("Practitioner/").unwrap_or(a).to_owned());
    let matches: Vec<_> = shared
        .clinic
        .schedules()
        .into_iter()
        .filter(|(_, c)| actor.as_deref().is_none_or(|a| c.id.as_str() == a))
        .collect();
    searchset("/Schedule", &params, matches, |(l, c)| schedule(l, c))
}

pub async fn locations(shared: Data<Shared>, req: HttpRequest) -> Result<HttpResponse, FhirError> {
    let params = Params::parse(req.query_string());
    params
        .reject_unknown("Location", &LOCATION_PARAMETERS)
        .map_err(FhirError::bad_request)?;
    let ids = params.list("_id");
    let clinic = &shared.clinic;
    let matches: Vec<_> = clinic
        .locations
        .iter()
        .filter(|l| ids.as_ref().is_none_or(|ids| ids.contains(&l.id)))
        .collect();
    searchset("/Location", &params, matches, |l| {
        l.to_fhir(&clinic.organization)
    })
}

pub async fn location(shared: Data<Shared>, id: Path<String>) -> Result<HttpResponse, FhirError> {
    let clinic = &shared.clinic;
    let location = clinic
        .location(&id)
        .ok_or_else(|| FhirError::not_found("Location", &id))?;
    Ok(json(
        StatusCode::OK,
        &location.to_fhir(&clinic.organization),
    ))
}
