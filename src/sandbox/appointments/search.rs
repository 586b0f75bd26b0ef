//! `GET /Appointment` filters and sort (§4 "Search").

use std::cmp::Ordering;

use crate::sandbox::params::{DateBound, Params, Token};

use super::{AppointmentError, Record};
use crate::canvas::fhir::AppointmentStatus;

/// Every Appointment search parameter canvas-fhir.md §4 lists.
const PARAMETERS: [&str; 9] = [
    "_id",
    "appointment-type",
    "identifier",
    "location",
    "patient",
    "practitioner",
    "date",
    "status",
    "_sort",
];

#[derive(Debug, Clone, Copy)]
enum SortKey {
    Date,
    Patient,
    Practitioner,
}

/// Every filter of one search; repeated parameters must all match, comma lists any.
#[derive(Debug, Default)]
pub struct Filter {
    ids: Option<Vec<String>>,
    identifiers: Vec<Vec<Token>>,
    patient: Option<String>,
    practitioner: Option<String>,
    location: Option<String>,
    dates: Vec<DateBound>,
    statuses: Option<Vec<AppointmentStatus>>,
    types: Option<Vec<Token>>,
    sort: Vec<(SortKey, bool)>,
}

fn invalid(message: String) -> AppointmentError {
    AppointmentError::Invalid(message)
}

/// `Patient/<id>` or a bare id.
fn reference_id(value: &str, kind: &str) -> String {
    value
        .strip_prefix(kind)
        .and_then(|rest| rest.strip_prefix('/'))
        .unwrap_or(value)
        .to_owned()
}

fn statuses(params: &Params) -> Result<Option<Vec<AppointmentStatus>>, AppointmentError> {
    params
        .list("status")
        .map(|list| {
            list.iter()
                .map(|s| {
                    serde_json::from_value(s.as_str().into())
                        .map_err(|_| invalid(format!("status: unknown status '{s}'")))
                })
                .collect()
        })
        .transpose()
}

fn sort(params: &Params) -> Result<Vec<(SortKey, bool)>, AppointmentError> {
    let Some(keys) = params.list("_sort") else {
        return Ok(Vec::new());
    };
    keys.iter()
        .map(|key| {
            let (name, descending) = match key.strip_prefix('-') {
                Some(name) => (name, true),
                None => (key.as_str(), false),
            };
            let key = match name {
                "date" => SortKey::Date,
                "patient" => SortKey::Patient,
                "practitioner" => SortKey::Practitioner,
                other => return Err(invalid(format!("_sort: cannot sort by '{other}'"))),
            };
            Ok((key, descending))
        })
        .collect()
}

impl Filter {
    pub fn from_params(params: &Params) -> Result<Filter, AppointmentError> {
        params
            .reject_unknown("Appointment", &PARAMETERS)
            .map_err(invalid)?;
        let tokens = |v: &str| v.split(',').map(Token::parse).collect::<Vec<_>>();
        Ok(Filter {
            ids: params.list("_id"),
            identifiers: params.all("identifier").map(tokens).collect(),
            patient: params.first("patient").map(|v| reference_id(v, "Patient")),
            practitioner: params
                .first("practitioner")
                .map(|v| reference_id(v, "Practitioner")),
            location: params
                .first("location")
                .map(|v| reference_id(v, "Location")),
            dates: params
                .all("date")
                .map(|d| DateBound::parse(d).map_err(|e| invalid(format!("date: {e}"))))
                .collect::<Result<_, _>>()?,
            statuses: statuses(params)?,
            types: params
                .list("appointment-type")
                .map(|l| l.iter().map(|t| Token::parse(t)).collect()),
            sort: sort(params)?,
        })
    }

    pub fn matches(&self, record: &Record) -> bool {
        let d = &record.draft;
        let patient = d.patient.as_ref().map(|p| p.as_str());
        self.ids.as_ref().is_none_or(|ids| ids.contains(&record.id))
            && self.identifiers.iter().all(|any| {
                any.iter().any(|t| {
                    d.identifiers
                        .iter()
                        .any(|i| t.matches(i.system.as_deref(), i.value.as_deref()))
                })
            })
            && self.patient.as_deref().is_none_or(|p| patient == Some(p))
            && self
                .practitioner
                .as_deref()
                .is_none_or(|p| d.practitioner.as_str() == p)
            && self.location.as_deref().is_none_or(|l| d.location_id == l)
            && self.dates.iter().all(|bound| bound.matches(d.start))
            && self.statuses.as_ref().is_none_or(|s| s.contains(&d.status))
            && self.types.as_ref().is_none_or(|types| {
                types
                    .iter()
                    .any(|t| t.matches(Some(&d.note_type.system), Some(&d.note_type.code)))
            })
    }

    /// Creation order unless `_sort` says otherwise.
    pub fn order(&self, a: &Record, b: &Record) -> Ordering {
        self.sort
            .iter()
            .map(|&(key, descending)| {
                let ordering = match key {
                    SortKey::Date => a.draft.start.cmp(&b.draft.start),
                    SortKey::Patient => a.draft.patient.cmp(&b.draft.patient),
                    SortKey::Practitioner => a.draft.practitioner.cmp(&b.draft.practitioner),
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

    /// The matching records, sorted (stable, so ties keep creation order); a search naming a
    /// practitioner looks at theirs only.
    pub fn apply<'a>(&self, book: &'a super::Book) -> Vec<&'a Record> {
        let mut out: Vec<&Record> = match self.practitioner.as_deref() {
            Some(p) => book
                .of_practitioner(p)
                .filter(|r| self.matches(r))
                .collect(),
            None => book.records().iter().filter(|r| self.matches(r)).collect(),
        };
        out.sort_by(|a, b| self.order(a, b));
        out
    }
}
