//! State licences read from Practitioner `qualification` (canvas-fhir.md §5, the shape a 2026
//! Canvas plugin confirmed against a live instance): `code.text = "STATE"`, the state in the
//! issuer's `issuing-authority-state` extension, validity in `period`.

use jiff::civil::Date;

use super::fhir::{
    EXT_ISSUING_AUTHORITY_STATE, EXT_LICENSE_PRIMARY, Practitioner, Qualification, extension,
};
use crate::types::UsState;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct License {
    /// `STATE`, `DEA`, `TAXONOMY`, … as Canvas names the licence type.
    pub kind: String,
    pub state: Option<UsState>,
    /// First valid day; `None` when Canvas sent no start.
    pub start: Option<Date>,
    /// Last valid day (inclusive); `None` when it does not expire.
    pub end: Option<Date>,
    pub primary: bool,
}

impl License {
    pub fn is_state_license(&self) -> bool {
        self.kind.eq_ignore_ascii_case("STATE")
    }
}

/// Every licence of a practitioner. A malformed date makes that bound unknown, and an unknown
/// start or end is read as "unbounded" only when Canvas omitted it; a bound Canvas sent but we
/// cannot read voids the licence, because trusting it could offer a clinician unlicensed.
pub fn licenses(practitioner: &Practitioner) -> Vec<License> {
    practitioner
        .qualification
        .iter()
        .filter_map(license)
        .collect()
}

fn license(q: &Qualification) -> Option<License> {
    let kind = q.code.text.clone().or_else(|| {
        q.code
            .coding
            .first()
            .and_then(|c| c.code.clone().or(c.display.clone()))
    })?;
    let issuer_ext = q
        .issuer
        .as_ref()
        .map(|i| i.extension.as_slice())
        .unwrap_or(&[]);
    let state = extension(issuer_ext, EXT_ISSUING_AUTHORITY_STATE)
        .and_then(|e| e.value_string.as_deref())
        .and_then(|s| s.parse().ok());
    let primary = extension(issuer_ext, EXT_LICENSE_PRIMARY)
        .and_then(|e| e.value_boolean)
        .unwrap_or(false);
    let bound = |text: Option<&String>| -> Result<Option<Date>, ()> {
        match text {
            None => Ok(None),
            // FHIR allows a dateTime here; the date part is what a licence means.
            Some(t) => t.get(..10).and_then(|d| d.parse().ok()).map(Some).ok_or(()),
        }
    };
    let period = q.period.clone().unwrap_or_default();
    let start = bound(period.start.as_ref()).ok()?;
    let end = bound(period.end.as_ref()).ok()?;
    Some(License {
        kind,
        state,
        start,
        end,
        primary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn practitioner(json: serde_json::Value) -> Practitioner {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn reads_the_live_state_licence_shape() {
        let p = practitioner(serde_json::json!({
            "resourceType": "Practitioner", "id": "e766816672f34a5b866771c773e38f3c",
            "qualification": [{
                "identifier": [{"system": "http://schemas.canvasmedical.com/fhir/extensions/issuing-authority-url", "value": "A1"}],
                "code": {"text": "STATE"},
                "period": {"start": "2024-01-01", "end": "2026-12-31"},
                "issuer": {"display": "Texas Medical Board", "extension": [
                    {"url": "http://schemas.canvasmedical.com/fhir/extensions/issuing-authority-short-name", "valueString": "TMB"},
                    {"url": "http://schemas.canvasmedical.com/fhir/extensions/issuing-authority-state", "valueString": "TX"},
                    {"url": "http://schemas.canvasmedical.com/fhir/extensions/license-primary", "valueBoolean": true}]}
            }, {
                "code": {"text": "DEA"}, "period": {"start": "2020-01-01"}
            }]
        }));
        let l = licenses(&p);
        assert_eq!(l.len(), 2);
        assert!(l[0].is_state_license());
        assert_eq!(l[0].state.map(|s| s.to_string()).as_deref(), Some("TX"));
        assert_eq!(l[0].start, Some(jiff::civil::date(2024, 1, 1)));
        assert_eq!(l[0].end, Some(jiff::civil::date(2026, 12, 31)));
        assert!(l[0].primary);
        assert!(!l[1].is_state_license());
        assert_eq!(l[1].end, None);
    }

    #[test]
    fn an_unreadable_bound_voids_the_licence_and_a_datetime_bound_counts_by_date() {
        let p = practitioner(serde_json::json!({
            "id": "e766816672f34a5b866771c773e38f3c",
            "qualification": [
                {"code": {"text": "STATE"}, "period": {"end": "someday"}},
                {"code": {"text": "STATE"}, "period": {"end": "2026-03-08T23:59:59-08:00"}}
            ]
        }));
        let l = licenses(&p);
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].end, Some(jiff::civil::date(2026, 3, 8)));
        assert_eq!(l[0].state, None);
    }
}
