//! JSON bodies: read as a value (so the idempotency fingerprint sees exactly what was sent),
//! then into the typed request with every bad field named.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::context::{field_of, sanitize};
use crate::error::ApiError;

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
