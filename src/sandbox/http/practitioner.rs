//! `GET /Practitioner` and `GET /Practitioner/<id>` (§5).

use actix_web::http::StatusCode;
use actix_web::web::{Data, Path};
use actix_web::{HttpRequest, HttpResponse};

use super::outcome::{FhirError, json};
use super::paging::searchset;
use crate::sandbox::clinic::Clinician;
use crate::sandbox::params::Params;
use crate::sandbox::state::Shared;

/// Every Practitioner search parameter canvas-fhir.md §5 lists, with both spellings of the
/// include flag that Canvas's pages have used.
const PARAMETERS: [&str; 7] = [
    "_id",
    "name",
    "active",
    "email",
    "npiNumber",
    "include-non-schedulable-practitioners",
    "include-non-scheduleable-practitioners",
];

struct Query {
    ids: Option<Vec<String>>,
    name: Option<String>,
    email: Option<String>,
    npi: Option<String>,
    active: bool,
    include_non_schedulable: bool,
}

impl Query {
    fn parse(params: &Params) -> Result<Query, FhirError> {
        params
            .reject_unknown("Practitioner", &PARAMETERS)
            .map_err(FhirError::bad_request)?;
        // Both spellings appear in Canvas's docs over time.
        let include = params
            .flag("include-non-schedulable-practitioners")
            .and_then(|a| Ok(a.or(params.flag("include-non-scheduleable-practitioners")?)))
            .map_err(FhirError::bad_request)?;
        Ok(Query {
            ids: params.list("_id"),
            name: params.first("name").map(str::to_lowercase),
            email: params.first("email").map(str::to_lowercase),
            npi: params.first("npiNumber").map(str::to_owned),
            active: params
                .flag("active")
                .map_err(FhirError::bad_request)?
                .unwrap_or(true),
            include_non_schedulable: include.unwrap_or(false),
        })
    }

    /// By default only schedulable staff are listed; inactive staff need the include flag too.
    /// `name` and `email` filter as documented, although a plugin reports live Fumage not
    /// filtering on name/telecom values (§5): clients should still check what comes back.
    fn matches(&self, c: &Clinician) -> bool {
        (self.include_non_schedulable || c.is_bookable())
            && c.active == self.active
            && self
                .ids
                .as_ref()
                .is_none_or(|ids| ids.iter().any(|id| id == c.id.as_str()))
            && self
                .name
                .as_deref()
                .is_none_or(|n| c.display_name().to_lowercase().contains(n))
            && self
                .email
                .as_deref()
                .is_none_or(|e| c.email().to_lowercase() == e)
            && self.npi.as_deref().is_none_or(|n| c.npi == n)
    }
}

pub async fn search(shared: Data<Shared>, req: HttpRequest) -> Result<HttpResponse, FhirError> {
    let params = Params::parse(req.query_string());
    let query = Query::parse(&params)?;
    let clinic = &shared.clinic;
    let matches: Vec<_> = clinic
        .clinicians
        .iter()
        .filter(|c| query.matches(c))
        .collect();
    searchset("/Practitioner", &params, matches, |c| c.to_fhir(clinic))
}

pub async fn read(shared: Data<Shared>, id: Path<String>) -> Result<HttpResponse, FhirError> {
    let clinic = &shared.clinic;
    let clinician = clinic
        .clinician(&id)
        .ok_or_else(|| FhirError::not_found("Practitioner", &id))?;
    Ok(json(StatusCode::OK, &clinician.to_fhir(clinic)))
}
