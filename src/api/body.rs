//! JSON bodies: read as a value (so the idempotency fingerprint sees exactly what was sent),
//! then into the typed request with every bad field named.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::context::{field_of, sanitize};
use crate::error::{ApiError, FieldError};
use crate::types::{PatientId, PractitionerId, UsState};

pub fn typed<T: DeserializeOwned>(body: &Value) -> Result<T, ApiError> {
    if !body.is_object() {
        return Err(ApiError::invalid("body", "must be a JSON object"));
    }
    serde_json::from_value(body.clone()).map_err(|e| {
        let message = e.to_string();
        ApiError::invalid(
            field_of(&message).unwrap_or_else(|| "body".into()),
            sanitize(&message),
        )
    })
}

/// A Canvas key (patient, practitioner) or a state code, or a field error saying what it is not.
pub fn key<T: std::str::FromStr>(
    field: &str,
    raw: &str,
    what: &str,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    raw.parse()
        .map_err(|_| {
            errors.push(FieldError {
                field: field.into(),
                message: format!("is not {what}"),
            })
        })
        .ok()
}

pub fn patient_key(raw: &str, errors: &mut Vec<FieldError>) -> Option<PatientId> {
    key("patient_id", raw, "a Canvas patient key", errors)
}

pub fn patient_state(raw: &str, errors: &mut Vec<FieldError>) -> Option<UsState> {
    key("patient_state", raw, "a two-letter US state code", errors)
}

/// Every id in the list, each bad one named by its index.
pub fn practitioner_keys(raw: &[String], errors: &mut Vec<FieldError>) -> Vec<PractitionerId> {
    raw.iter()
        .enumerate()
        .filter_map(|(i, p)| {
            key(
                &format!("practitioner_ids[{i}]"),
                p,
                "a Canvas practitioner id",
                errors,
            )
        })
        .collect()
}

/// A UUID (a Canvas Location or Appointment id), in its canonical spelling.
pub fn uuid(field: &str, raw: &str, what: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    key::<uuid::Uuid>(field, raw, what, errors).map(|u| u.to_string())
}

/// A whole number however JSON spells it: `30` and `30.0` are the same number to JSON
/// Schema (and so to every client generated from the spec); `30.5` is not whole.
pub fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    use serde::Deserialize;
    use serde::de::Error;
    let n = serde_json::Number::deserialize(d)?;
    if let Some(v) = n.as_u64() {
        return u32::try_from(v).map_err(|_| D::Error::custom("must be a whole number of minutes"));
    }
    match n.as_f64() {
        Some(v) if v.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&v) => Ok(v as u32),
        _ => Err(D::Error::custom("must be a whole number of minutes")),
    }
}

/// Free text bounded in size; never logged.
pub fn text(
    field: &str,
    value: Option<String>,
    max: usize,
    errors: &mut Vec<crate::error::FieldError>,
) -> Option<String> {
    let value = value?;
    // Counted as sent, as the spec's maxLength is: trailing padding does not sneak past it.
    if value.chars().count() > max {
        errors.push(crate::error::FieldError {
            field: field.into(),
            message: format!("must be at most {max} characters"),
        });
        return None;
    }
    Some(value.trim().to_owned()).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::text;

    #[test]
    fn whole_numbers_may_be_spelled_with_a_zero_fraction() {
        #[derive(serde::Deserialize)]
        struct M {
            #[serde(deserialize_with = "super::whole_number")]
            m: u32,
        }
        let read = |v: serde_json::Value| serde_json::from_value::<M>(v).map(|m| m.m);
        assert_eq!(read(serde_json::json!({"m": 30})).ok(), Some(30));
        assert_eq!(read(serde_json::json!({"m": 30.0})).ok(), Some(30));
        assert!(read(serde_json::json!({"m": 30.5})).is_err());
        assert!(read(serde_json::json!({"m": -1})).is_err());
        assert!(read(serde_json::json!({"m": "30"})).is_err());
        assert!(read(serde_json::json!({"m": 5_000_000_000u64})).is_err());
    }

    #[test]
    fn text_is_bounded_as_sent_and_trimmed_when_kept() {
        let mut errors = Vec::new();
        assert_eq!(
            text("reason", Some("  moved away \t".into()), 20, &mut errors).as_deref(),
            Some("moved away")
        );
        assert_eq!(text("reason", Some(" \t ".into()), 20, &mut errors), None);
        assert!(errors.is_empty());
        // Padding counts: the spec's maxLength is on the string as sent.
        let padded = format!("ok{}", "\t".repeat(20));
        assert_eq!(text("reason", Some(padded), 20, &mut errors), None);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "reason");
        // Characters, not bytes.
        assert!(text("reason", Some("é".repeat(20)), 20, &mut errors).is_some());
    }
}
