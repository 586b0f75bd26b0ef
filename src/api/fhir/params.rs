//! A FHIR `Parameters` body, read the way the query string is on `/v1`: every parameter checked
//! on its own, every bad one named (by its parameter name), unknown and repeated ones refused.

use jiff::Timestamp;
use jiff::civil::Date;
use serde_json::Value;

use crate::error::{ApiError, FieldError};

/// Every parameter name the operations take (for the outcome's FHIRPath).
const ALL: [&str; 13] = [
    "start",
    "end",
    "visit-type",
    "duration",
    "modality",
    "specialty",
    "practitioner",
    "location-reference",
    "patient-reference",
    "patient-state",
    "_count",
    "appointment-resource",
    "appointment-reference",
];

pub fn is_parameter(name: &str) -> bool {
    ALL.contains(&name)
}

/// A `start` or `end`: a whole local date, or an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    Date(Date),
    Instant(Timestamp),
}

/// A `valueReference`: by id (`Patient/<id>`), or by identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Id(String),
    Identifier {
        system: Option<String>,
        value: String,
    },
}

pub struct Parameters {
    given: Vec<(String, Value)>,
    errors: Vec<FieldError>,
}

impl Parameters {
    /// Reads the body; `allowed` are this operation's parameter names.
    pub fn parse(body: &Value, allowed: &[&str]) -> Result<Parameters, ApiError> {
        if body.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
            return Err(ApiError::invalid(
                "resourceType",
                "the body must be a FHIR Parameters resource",
            ));
        }
        let mut p = Parameters {
            given: Vec::new(),
            errors: Vec::new(),
        };
        let list = match body.get("parameter") {
            None => &Vec::new(),
            Some(Value::Array(list)) => list,
            Some(_) => {
                return Err(ApiError::invalid("parameter", "must be an array"));
            }
        };
        for (i, entry) in list.iter().enumerate() {
            let Some(name) = entry.get("name").and_then(Value::as_str) else {
                p.error(&format!("parameter[{i}]"), "has no name");
                continue;
            };
            if !allowed.contains(&name) {
                p.error(
                    &format!("parameter[{i}]"),
                    &format!(
                        "is not a parameter of this operation (one of {})",
                        allowed.join(", ")
                    ),
                );
                continue;
            }
            if p.given.iter().any(|(n, _)| n == name) {
                p.error(name, "may be given once");
                continue;
            }
            p.given.push((name.to_owned(), entry.clone()));
        }
        Ok(p)
    }

    pub fn error(&mut self, field: &str, message: &str) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    pub fn has(&self, name: &str) -> bool {
        self.given.iter().any(|(n, _)| n == name)
    }

    /// The parameter's `value[x]` of the one type it takes, or an error naming the type.
    fn value(&mut self, name: &str, kind: &str) -> Option<Value> {
        let entry = self.given.iter().find(|(n, _)| n == name)?.1.clone();
        match entry.get(kind) {
            Some(v) => Some(v.clone()),
            None => {
                self.error(name, &format!("must be given as {kind}"));
                None
            }
        }
    }

    /// `valueDate` (a local date) or `valueDateTime` (a date, or an instant with its offset).
    pub fn bound(&mut self, name: &str) -> Option<Bound> {
        let entry = self.given.iter().find(|(n, _)| n == name)?.1.clone();
        let raw = entry
            .get("valueDate")
            .or_else(|| entry.get("valueDateTime"))
            .and_then(Value::as_str);
        let parsed = raw.and_then(|s| {
            if s.len() == 10 {
                s.parse::<Date>().ok().map(Bound::Date)
            } else {
                s.parse::<Timestamp>().ok().map(Bound::Instant)
            }
        });
        if parsed.is_none() {
            self.error(
                name,
                "must be a valueDate (YYYY-MM-DD) or a valueDateTime with its offset",
            );
        }
        parsed
    }

    /// `valueCoding`: its system (when given) and code.
    pub fn coding(&mut self, name: &str) -> Option<(Option<String>, String)> {
        let v = self.value(name, "valueCoding")?;
        let code = v
            .get("code")
            .and_then(Value::as_str)
            .filter(|c| !c.trim().is_empty() && c.len() <= 128);
        let Some(code) = code else {
            self.error(name, "must be a Coding with a code");
            return None;
        };
        let system = v.get("system").and_then(Value::as_str).map(str::to_owned);
        Some((system, code.to_owned()))
    }

    pub fn integer(&mut self, name: &str, min: u32, max: u32) -> Option<u32> {
        let v = self.value(name, "valueInteger")?;
        match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.error(name, &format!("must be a whole number from {min} to {max}"));
                None
            }
        }
    }

    /// `valueCode`, or `valueString` for `kind = "valueString"`.
    pub fn text(&mut self, name: &str, kind: &str) -> Option<String> {
        let v = self.value(name, kind)?;
        match v.as_str() {
            Some(s) if !s.trim().is_empty() && s.len() <= 128 => Some(s.to_owned()),
            _ => {
                self.error(name, "must be a non-empty string of at most 128 characters");
                None
            }
        }
    }

    /// `valueReference`, to a resource of `resource_type` by id, or by identifier.
    pub fn reference(&mut self, name: &str, resource_type: &str) -> Option<Target> {
        let v = self.value(name, "valueReference")?;
        let target = reference(&v, resource_type);
        if target.is_none() {
            self.error(
                name,
                &format!("must reference a {resource_type} as \"{resource_type}/<id>\""),
            );
        }
        target
    }

    /// A whole resource (`resource`) of `resource_type`.
    pub fn resource(&mut self, name: &str, resource_type: &str) -> Option<Value> {
        let v = self.value(name, "resource")?;
        if v.get("resourceType").and_then(Value::as_str) != Some(resource_type) {
            self.error(name, &format!("must be a {resource_type} resource"));
            return None;
        }
        Some(v)
    }

    /// Every error found so far, or nothing.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid_fields(self.errors))
        }
    }
}

/// A FHIR Reference to a `resource_type`: `"Type/<id>"` (relative, or the tail of an absolute
/// URL), or a logical reference by identifier.
pub fn reference(v: &Value, resource_type: &str) -> Option<Target> {
    if let Some(r) = v.get("reference").and_then(Value::as_str) {
        let mut tail = r.rsplit('/');
        let id = tail.next()?;
        let kind = tail.next()?;
        return (kind == resource_type && !id.is_empty() && id.len() <= 64)
            .then(|| Target::Id(id.to_owned()));
    }
    let identifier = v.get("identifier")?;
    let value = identifier.get("value").and_then(Value::as_str)?;
    Some(Target::Identifier {
        system: identifier
            .get("system")
            .and_then(Value::as_str)
            .map(str::to_owned),
        value: value.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FIND: [&str; 3] = ["start", "visit-type", "_count"];

    #[test]
    fn names_unknown_repeated_and_mistyped_parameters() {
        let body = json!({"resourceType": "Parameters", "parameter": [
            {"name": "start", "valueDate": "2026-03-08"},
            {"name": "start", "valueDate": "2026-03-09"},
            {"name": "colour", "valueString": "blue"},
            {"name": "_count", "valueString": "ten"},
        ]});
        let mut p = Parameters::parse(&body, &FIND).unwrap();
        assert_eq!(
            p.bound("start"),
            Some(Bound::Date("2026-03-08".parse().unwrap()))
        );
        assert_eq!(p.integer("_count", 1, 1000), None);
        let e = p.finish().unwrap_err();
        let fields: Vec<&str> = e.errors.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["start", "parameter[2]", "_count"]);
    }

    #[test]
    fn only_a_parameters_resource_is_read() {
        let e = Parameters::parse(&json!({"resourceType": "Bundle"}), &FIND)
            .err()
            .unwrap();
        assert_eq!(e.errors[0].field, "resourceType");
        assert!(Parameters::parse(&json!([1]), &FIND).is_err());
    }

    #[test]
    fn a_date_time_is_an_instant_with_its_offset() {
        let body = json!({"resourceType": "Parameters", "parameter": [
            {"name": "start", "valueDateTime": "2026-11-01T01:30:00-04:00"},
        ]});
        let mut p = Parameters::parse(&body, &FIND).unwrap();
        assert_eq!(
            p.bound("start"),
            Some(Bound::Instant("2026-11-01T05:30:00Z".parse().unwrap()))
        );
        // Without its offset an instant means nothing.
        let body = json!({"resourceType": "Parameters", "parameter": [
            {"name": "start", "valueDateTime": "2026-11-01T01:30:00"},
        ]});
        let mut p = Parameters::parse(&body, &FIND).unwrap();
        assert_eq!(p.bound("start"), None);
    }

    #[test]
    fn references_by_id_or_identifier() {
        assert_eq!(
            reference(&json!({"reference": "Patient/abc"}), "Patient"),
            Some(Target::Id("abc".into()))
        );
        assert_eq!(
            reference(
                &json!({"reference": "https://x.org/fhir/Patient/abc"}),
                "Patient"
            ),
            Some(Target::Id("abc".into()))
        );
        assert_eq!(
            reference(&json!({"reference": "Location/abc"}), "Patient"),
            None
        );
        assert_eq!(
            reference(
                &json!({"identifier": {"system": "s", "value": "v"}}),
                "Appointment"
            ),
            Some(Target::Identifier {
                system: Some("s".into()),
                value: "v".into()
            })
        );
    }
}
