//! Refusals on the FHIR surface: the same `ApiError` as `/v1`, as an `OperationOutcome` whose
//! `issue.details.coding` carries the `/v1` code (so a client branches on the same codes), with
//! the `/v1` status.

use actix_web::HttpResponse;
use actix_web::http::header;
use serde_json::{Value, json};

use super::{FHIR_JSON, PROBLEM_SYSTEM};
use crate::error::{ApiError, Code};

/// The FHIR issue type closest to each of the contract's codes.
fn issue_type(code: Code) -> &'static str {
    match code {
        Code::ValidationFailed => "invalid",
        Code::Unauthorized => "login",
        Code::Forbidden => "forbidden",
        Code::NotFound | Code::PatientNotFound => "not-found",
        Code::MethodNotAllowed => "not-supported",
        Code::SlotUnavailable
        | Code::SlotHeld
        | Code::RequestInProgress
        | Code::AppointmentNotActive
        | Code::OfferExpired => "conflict",
        Code::PayloadTooLarge => "too-long",
        Code::ReasonNotAllowed
        | Code::DurationNotAllowed
        | Code::ModalityNotAllowed
        | Code::PractitionerNotLicensed
        | Code::OutsideBookingWindow
        | Code::BookingLimitReached
        | Code::HoldLimitReached
        | Code::WaitlistLimitReached
        | Code::CancellationWindowPassed
        | Code::IdempotencyKeyReused => "business-rule",
        Code::RateLimited => "throttled",
        Code::InternalError | Code::UpstreamError => "exception",
        Code::UpstreamUnavailable => "transient",
        Code::UpstreamTimeout => "timeout",
    }
}

/// Where in a `Parameters` body a field is, as FHIRPath; a header or the body as a whole has
/// no such path.
fn expression(field: &str) -> Option<String> {
    let name = field.split(['.', '[']).next().unwrap_or(field);
    (super::params::is_parameter(name))
        .then(|| format!("Parameters.parameter.where(name = '{name}')"))
}

/// The `OperationOutcome` for an error: one issue per offending field, or one for the whole.
pub fn outcome(error: &ApiError, request_id: Option<&str>) -> Value {
    let details = |text: &str| {
        json!({
            "coding": [{"system": PROBLEM_SYSTEM, "code": error.code.as_str(), "display": error.code.title()}],
            "text": text,
        })
    };
    let kind = issue_type(error.code);
    let issues: Vec<Value> = if error.errors.is_empty() {
        vec![json!({"severity": "error", "code": kind, "details": details(&error.detail)})]
    } else {
        error
            .errors
            .iter()
            .map(|f| {
                let mut issue = json!({
                    "severity": "error",
                    "code": if f.message.starts_with("is required") { "required" } else { kind },
                    "details": details(&format!("{}: {}", f.field, f.message)),
                    "diagnostics": f.field,
                });
                if let Some(path) = expression(&f.field) {
                    issue["expression"] = json!([path]);
                }
                issue
            })
            .collect()
    };
    let mut outcome = json!({"resourceType": "OperationOutcome", "issue": issues});
    if let Some(id) = request_id {
        // The request id, for support, where a FHIR client keeps such things.
        outcome["meta"] = json!({"tag": [{"system": "urn:slotgate:request-id", "code": id}]});
    }
    outcome
}

/// The error as the FHIR surface answers it: its `/v1` status and headers, an
/// `OperationOutcome` body.
pub fn response(error: &ApiError, request_id: Option<&str>) -> HttpResponse {
    let mut builder = HttpResponse::build(error.status());
    builder.content_type(FHIR_JSON);
    if let Some(seconds) = error.retry_after {
        builder.insert_header((header::RETRY_AFTER, seconds.to_string()));
    }
    if let Some(methods) = &error.allow {
        builder.insert_header((header::ALLOW, methods.clone()));
    }
    if error.code == Code::Unauthorized {
        builder.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
    }
    builder.json(outcome(error, request_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::FieldError;

    #[test]
    fn the_v1_code_travels_in_the_details() {
        let e = ApiError::new(Code::SlotHeld, "Someone else is holding this time.");
        let o = outcome(&e, Some("r1"));
        assert_eq!(o["resourceType"], "OperationOutcome");
        assert_eq!(o["issue"][0]["code"], "conflict");
        assert_eq!(o["issue"][0]["details"]["coding"][0]["code"], "slot_held");
        assert_eq!(
            o["issue"][0]["details"]["coding"][0]["system"],
            PROBLEM_SYSTEM
        );
        assert_eq!(o["meta"]["tag"][0]["code"], "r1");
    }

    #[test]
    fn every_bad_parameter_is_its_own_issue_with_a_path() {
        let e = ApiError::invalid_fields(vec![
            FieldError {
                field: "visit-type".into(),
                message: "is required".into(),
            },
            FieldError {
                field: "Idempotency-Key".into(),
                message: "must be 1 to 255 visible ASCII characters".into(),
            },
        ]);
        let o = outcome(&e, None);
        assert_eq!(o["issue"][0]["code"], "required");
        assert_eq!(
            o["issue"][0]["expression"][0],
            "Parameters.parameter.where(name = 'visit-type')"
        );
        assert_eq!(o["issue"][1]["code"], "invalid");
        assert!(o["issue"][1].get("expression").is_none());
        assert!(o.get("meta").is_none());
    }
}
