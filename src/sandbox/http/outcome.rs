//! Errors as Canvas answers them: an OperationOutcome with the issue codes of §7.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::canvas::fhir::OperationOutcome;
use crate::sandbox::appointments::AppointmentError;

pub const JSON: &str = "application/json";

/// A 200-family JSON answer.
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> HttpResponse {
    HttpResponse::build(status).content_type(JSON).json(body)
}

#[derive(Debug, Clone)]
pub struct FhirError {
    status: StatusCode,
    code: &'static str,
    text: String,
    diagnostics: Option<String>,
}

impl FhirError {
    fn new(status: StatusCode, code: &'static str, text: impl Into<String>) -> FhirError {
        FhirError {
            status,
            code,
            text: text.into(),
            diagnostics: None,
        }
    }

    /// 400 `invalid` "Bad request", with what was wrong in `diagnostics`.
    pub fn bad_request(diagnostics: impl Into<String>) -> FhirError {
        FhirError {
            diagnostics: Some(diagnostics.into()),
            ..FhirError::new(StatusCode::BAD_REQUEST, "invalid", "Bad request")
        }
    }

    pub fn unauthorized() -> FhirError {
        FhirError::new(StatusCode::UNAUTHORIZED, "unknown", "Authentication failed")
    }

    pub fn not_found(resource_type: &str, id: &str) -> FhirError {
        FhirError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("Unknown {resource_type} resource '{id}'"),
        )
    }

    pub fn unknown_path(path: &str) -> FhirError {
        FhirError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("Unknown path '{path}'"),
        )
    }

    pub fn not_supported() -> FhirError {
        FhirError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "not-supported",
            "Operation is not supported",
        )
    }

    pub fn business_rule(text: impl Into<String>) -> FhirError {
        FhirError::new(StatusCode::UNPROCESSABLE_ENTITY, "business-rule", text)
    }

    /// What a Canvas outage or an injected fault looks like.
    /// 500 `exception`: Canvas failing inside.
    pub fn internal() -> FhirError {
        FhirError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            "Internal server error",
        )
    }

    pub fn unavailable() -> FhirError {
        FhirError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "exception",
            "Service unavailable",
        )
    }

    pub fn outcome(&self) -> OperationOutcome {
        let mut outcome = OperationOutcome::error(self.code, self.text.clone());
        if let Some(issue) = outcome.issue.first_mut() {
            issue.diagnostics = self.diagnostics.clone();
        }
        outcome
    }
}

impl fmt::Display for FhirError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.text)
    }
}

impl ResponseError for FhirError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        json(self.status, &self.outcome())
    }
}

impl From<AppointmentError> for FhirError {
    fn from(error: AppointmentError) -> FhirError {
        match error {
            AppointmentError::Invalid(message) => FhirError::bad_request(message),
            AppointmentError::Rule(message) => FhirError::business_rule(message),
            AppointmentError::NotFound(id) => FhirError::not_found("Appointment", &id),
            AppointmentError::ModifiedSince => FhirError::new(
                StatusCode::PRECONDITION_FAILED,
                "conflict",
                error.to_string(),
            ),
        }
    }
}
