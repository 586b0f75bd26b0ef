//! `GET /Patient` and `GET /Patient/<id>` (§6).

use std::cmp::Ordering;

use actix_web::http::StatusCode;
use actix_web::web::{Data, Path};
use actix_web::{HttpRequest, HttpResponse};

use super::outcome::{FhirError, json};
use super::paging::searchset;
use crate::sandbox::clinic::ClinicPatient;
use crate::sandbox::params::{DateBound, Params, Token, utc_midnight};
use crate::sandbox::state::Shared;

#[derive(Default)]
struct Query {
    ids: Option<Vec<String>>,
    identifiers: Vec<Vec<Token>>,
    family: Option<String>,
    given: Option<String>,
    name: Option<String>,
    birth_dates: Vec<DateBound>,
    gender: Option<String>,
    active: Option<bool>,
    sort: Vec<(String, bool)>,
}

fn starts_with(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().starts_with(needle)
}

impl Query {
    fn parse(params: &Params) -> Result<Query, FhirError> {
        let lower = |name: &str| params.first(name).map(str::to_lowercase);
        let birth_dates = params
            .all("birthdate")
            .chain(params.all("birthDate"))
            .map(|d| {
                DateBound::parse(d).map_err(|e| FhirError::bad_request(format!("birthdate: {e}")))
            })
            .collect::<Result<_, _>>()?;
        let sort = params.list("_sort").unwrap_or_default();
        let sort = sort
            .iter()
            .map(|key| match key.strip_prefix('-') {
                Some(k) => (k.to_owned(), true),
                None => (key.clone(), false),
            })
            .collect();
        Ok(Query {
            ids: params.list("_id"),
            identifiers: params
                .all("identifier")
                .map(|v| v.split(',').map(Token::parse).collect())
                .collect(),
            family: lower("family"),
            given: lower("given"),
            name: lower("name"),
            birth_dates,
            gender: lower("gender"),
            active: params.flag("active").map_err(FhirError::bad_request)?,
            sort,
        })
    }

    fn matches(&self, p: &ClinicPatient) -> bool {
        let identifiers = p.identifiers();
        let full_name = format!("{} {}", p.given, p.family).to_lowercase();
        self.ids
            .as_ref()
            .is_none_or(|ids| ids.iter().any(|id| id == p.id.as_str()))
            && self.identifiers.iter().all(|any| {
                any.iter().any(|t| {
                    identifiers
                        .iter()
                        .any(|i| t.matches(i.system.as_deref(), i.value.as_deref()))
                })
            })
            && self
                .family
                .as_deref()
                .is_none_or(|f| starts_with(&p.family, f))
            && self
                .given
                .as_deref()
                .is_none_or(|g| starts_with(&p.given, g))
            && self.name.as_deref().is_none_or(|n| full_name.contains(n))
            && self
                .birth_dates
                .iter()
                .all(|b| b.matches(utc_midnight(p.birth_date)))
            && self.gender.as_deref().is_none_or(|g| p.gender == g)
            && self.active.is_none_or(|a| p.active == a)
    }

    fn order(&self, a: &ClinicPatient, b: &ClinicPatient) -> Ordering {
        self.sort
            .iter()
            .map(|(key, descending)| {
                let ordering = match key.as_str() {
                    "_id" => a.id.cmp(&b.id),
                    "birthdate" | "birthDate" => a.birth_date.cmp(&b.birth_date),
                    "family" => a.family.cmp(&b.family),
                    "given" => a.given.cmp(&b.given),
                    _ => Ordering::Equal,
                };
                if *descending {
                    ordering.reverse()
                } else {
                    ordering
                }
            })
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

pub async fn search(shared: Data<Shared>, req: HttpRequest) -> Result<HttpResponse, FhirError> {
    let params = Params::parse(req.query_string());
    let query = Query::parse(&params)?;
    let mut matches: Vec<&ClinicPatient> = shared
        .clinic
        .patients
        .iter()
        .filter(|p| query.matches(p))
        .collect();
    matches.sort_by(|a, b| query.order(a, b));
    searchset("/Patient", &params, matches, ClinicPatient::to_fhir)
}

pub async fn read(shared: Data<Shared>, id: Path<String>) -> Result<HttpResponse, FhirError> {
    let patient = shared
        .clinic
        .patient(&id)
        .ok_or_else(|| FhirError::not_found("Patient", &id))?;
    Ok(json(StatusCode::OK, &patient.to_fhir()))
}
