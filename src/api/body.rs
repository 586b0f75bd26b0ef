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
    let value = value
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())?;
    if value.chars().count() > max {
        errors.push(crate::error::FieldError {
            field: field.into(),
            message: format!("must be at most {max} characters"),
        });
        return None;
    }
    Some(value)
}
