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

/// `_has:CareTeam:participant:member=Practitioner/<id>`, the one reverse chain Canvas
/// supports (§6).
const CARE_TEAM_MEMBER: &str = "_has:CareTeam:participant:member";

/// Every Patient search parameter canvas-fhir.md §6 lists. `birthDate` is its spelling and
/// `birthdate` Canvas's page's (and `_sort`'s); both are accepted.
const PARAMETERS: [&str; 14] = [
    "_id",
    "identifier",
    "name",
    "family",
    "given",
    "nickname",
    "birthdate",
    "birthDate",
    "gender",
    "email",
    "phone",
    "active",
    "_sort",
    CARE_TEAM_MEMBER,
];

#[derive(Debug, Clone, Copy)]
enum SortKey {
    Id,
    BirthDate,
    Family,
    Given,
}

struct Query {
    ids: Option<Vec<String>>,
    identifiers: Vec<Vec<Token>>,
    family: Option<String>,
    given: Option<String>,
    name: Option<String>,
    nickname: Option<String>,
    birth_dates: Vec<DateBound>,
    gender: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    active: Option<bool>,
    /// One entry per occurrence, each a comma list of staff keys: all occurrences must match,
    /// any key of one.
    care_team: Vec<Vec<String>>,
    sort: Vec<(SortKey, bool)>,
}

fn starts_with(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().starts_with(needle)
}

/// The four keys Canvas sorts patients by (§6), `-` for descending; any other is a 400, not
/// an order silently dropped.
fn sort(params: &Params) -> Result<Vec<(SortKey, bool)>, FhirError> {
    let keys = params.list("_sort").unwrap_or_default();
    keys.iter()
        .map(|key| {
            let (name, descending) = match key.strip_prefix('-') {
                Some(name) => (name, true),
                None => (key.as_str(), false),
            };
            let key = match name {
                "_id" => SortKey::Id,
                "birthdate" | "birthDate" => SortKey::BirthDate,
                "family" => SortKey::Family,
                "given" => SortKey::Given,
                other => {
                    return Err(FhirError::bad_request(format!(
                        "_sort: cannot sort by '{other}'"
                    )));
                }
            };
            Ok((key, descending))
        })
        .collect()
}

/// Canvas expects ten digits (§6); anything else cannot match a stored number.
fn phone(params: &Params) -> Result<Option<String>, FhirError> {
    params
        .first("phone")
        .map(|v| {
            let digits = v.trim();
            if digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit()) {
                Ok(digits.to_owned())
            } else {
                Err(FhirError::bad_request("phone: expected 10 digits"))
            }
        })
        .transpose()
}

/// `Practitioner/<id>` or a bare key, per occurrence.
fn care_team(params: &Params) -> Vec<Vec<String>> {
    params
        .all(CARE_TEAM_MEMBER)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(|m| m.strip_prefix("Practitioner/").unwrap_or(m).to_owned())
                .collect()
        })
        .collect()
}

impl Query {
    fn parse(params: &Params) -> Result<Query, FhirError> {
        params
            .reject_unknown("Patient", &PARAMETERS)
            .map_err(FhirError::bad_request)?;
        let lower = |name: &str| params.first(name).map(str::to_lowercase);
        let birth_dates = params
            .all("birthdate")
            .chain(params.all("birthDate"))
            .map(|d| {
                DateBound::parse(d).map_err(|e| FhirError::bad_request(format!("birthdate: {e}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Query {
            ids: params.list("_id"),
            identifiers: params
                .all("identifier")
                .map(|v| v.split(',').map(Token::parse).collect())
                .collect(),
            family: lower("family"),
            given: lower("given"),
            name: lower("name"),
            nickname: lower("nickname"),
            birth_dates,
            gender: lower("gender"),
            email: lower("email"),
            phone: phone(params)?,
            active: params.flag("active").map_err(FhirError::bad_request)?,
            care_team: care_team(params),
            sort: sort(params)?,
        })
    }

    fn matches(&self, p: &ClinicPatient) -> bool {
        self.ids
            .as_ref()
            .is_none_or(|ids| ids.iter().any(|id| id == p.id.as_str()))
            && self.matches_identifiers(p)
            && self.matches_names(p)
            && self
                .birth_dates
                .iter()
                .all(|b| b.matches(utc_midnight(p.birth_date)))
            && self.gender.as_deref().is_none_or(|g| p.gender == g)
            && self
                .email
                .as_deref()
                .is_none_or(|e| p.email.to_lowercase() == e)
            && self.phone.as_deref().is_none_or(|n| p.phone == n)
            && self.active.is_none_or(|a| p.active == a)
            && self.care_team.iter().all(|any| {
                any.iter()
                    .any(|member| p.care_team.iter().any(|c| c.as_str() == member))
            })
    }

    fn matches_identifiers(&self, p: &ClinicPatient) -> bool {
        let identifiers = p.identifiers();
        self.identifiers.iter().all(|any| {
            any.iter().any(|t| {
                identifiers
                    .iter()
                    .any(|i| t.matches(i.system.as_deref(), i.value.as_deref()))
            })
        })
    }

    /// `name` finds part of the full name or of the nickname: Canvas searches "first, middle,
    /// last, suffix or nickname" (its patient page, §6).
    fn matches_names(&self, p: &ClinicPatient) -> bool {
        let full_name = format!("{} {}", p.given, p.family).to_lowercase();
        let nickname = p.nickname.as_deref().map(str::to_lowercase);
        self.family
            .as_deref()
            .is_none_or(|f| starts_with(&p.family, f))
            && self
                .given
                .as_deref()
                .is_none_or(|g| starts_with(&p.given, g))
            && self
                .nickname
                .as_deref()
                .is_none_or(|n| nickname.as_deref().is_some_and(|nick| nick.starts_with(n)))
            && self.name.as_deref().is_none_or(|n| {
                full_name.contains(n) || nickname.as_deref().is_some_and(|nick| nick.contains(n))
            })
    }

    fn order(&self, a: &ClinicPatient, b: &ClinicPatient) -> Ordering {
        self.sort
            .iter()
            .map(|&(key, descending)| {
                let ordering = match key {
                    SortKey::Id => a.id.cmp(&b.id),
                    SortKey::BirthDate => a.birth_date.cmp(&b.birth_date),
                    SortKey::Family => a.family.cmp(&b.family),
                    SortKey::Given => a.given.cmp(&b.given),
                };
                if descending {
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
