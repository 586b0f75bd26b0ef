//! `ApiError`: the one place that maps failures to problem+json (RFC 9457) bodies with the
//! contract's stable codes. 5xx bodies stay opaque; their cause goes to the log.

use std::fmt;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// The contract's error codes; clients branch on these, never on text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    ValidationFailed,
    Unauthorized,
    Forbidden,
    NotFound,
    PatientNotFound,
    MethodNotAllowed,
    SlotUnavailable,
    SlotHeld,
    RequestInProgress,
    AppointmentNotActive,
    OfferExpired,
    PayloadTooLarge,
    ReasonNotAllowed,
    DurationNotAllowed,
    ModalityNotAllowed,
    PractitionerNotLicensed,
    OutsideBookingWindow,
    BookingLimitReached,
    HoldLimitReached,
    WaitlistLimitReached,
    CancellationWindowPassed,
    IdempotencyKeyReused,
    RateLimited,
    InternalError,
    UpstreamError,
    UpstreamUnavailable,
    UpstreamTimeout,
}

impl Code {
    pub const ALL: [Code; 27] = [
        Code::ValidationFailed,
        Code::Unauthorized,
        Code::Forbidden,
        Code::NotFound,
        Code::PatientNotFound,
        Code::MethodNotAllowed,
        Code::SlotUnavailable,
        Code::SlotHeld,
        Code::RequestInProgress,
        Code::AppointmentNotActive,
        Code::OfferExpired,
        Code::PayloadTooLarge,
        Code::ReasonNotAllowed,
        Code::DurationNotAllowed,
        Code::ModalityNotAllowed,
        Code::PractitionerNotLicensed,
        Code::OutsideBookingWindow,
        Code::BookingLimitReached,
        Code::HoldLimitReached,
        Code::WaitlistLimitReached,
        Code::CancellationWindowPassed,
        Code::IdempotencyKeyReused,
        Code::RateLimited,
        Code::InternalError,
        Code::UpstreamError,
        Code::UpstreamUnavailable,
        Code::UpstreamTimeout,
    ];

    /// Status, stable code and title, in one table.
    fn spec(self) -> (StatusCode, &'static str, &'static str) {
        use StatusCode as S;
        match self {
            Code::ValidationFailed => (
                S::BAD_REQUEST,
                "validation_failed",
                "The request is not valid",
            ),
            Code::Unauthorized => (
                S::UNAUTHORIZED,
                "unauthorized",
                "Authentication is required",
            ),
            Code::Forbidden => (S::FORBIDDEN, "forbidden", "Not allowed"),
            Code::NotFound => (S::NOT_FOUND, "not_found", "Not found"),
            Code::PatientNotFound => (S::NOT_FOUND, "patient_not_found", "Patient not found"),
            Code::MethodNotAllowed => (
                S::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
            ),
            Code::SlotUnavailable => (
                S::CONFLICT,
                "slot_unavailable",
                "The slot is no longer available",
            ),
            Code::SlotHeld => (S::CONFLICT, "slot_held", "The slot is held by someone else"),
            Code::RequestInProgress => (
                S::CONFLICT,
                "request_in_progress",
                "A request with this idempotency key is still running",
            ),
            Code::AppointmentNotActive => (
                S::CONFLICT,
                "appointment_not_active",
                "The appointment is cancelled or over",
            ),
            Code::OfferExpired => (
                S::CONFLICT,
                "offer_expired",
                "The waitlist offer lapsed or was taken",
            ),
            Code::PayloadTooLarge => (
                S::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "The request body is too large",
            ),
            Code::ReasonNotAllowed => (
                S::UNPROCESSABLE_ENTITY,
                "reason_not_allowed",
                "This reason for visit cannot be booked",
            ),
            Code::DurationNotAllowed => (
                S::UNPROCESSABLE_ENTITY,
                "duration_not_allowed",
                "This duration is not offered for the reason",
            ),
            Code::ModalityNotAllowed => (
                S::UNPROCESSABLE_ENTITY,
                "modality_not_allowed",
                "This modality is not offered",
            ),
            Code::PractitionerNotLicensed => (
                S::UNPROCESSABLE_ENTITY,
                "practitioner_not_licensed",
                "The clinician is not licensed for this state on this date",
            ),
            Code::OutsideBookingWindow => (
                S::UNPROCESSABLE_ENTITY,
                "outside_booking_window",
                "Outside the booking window",
            ),
            Code::BookingLimitReached => (
                S::UNPROCESSABLE_ENTITY,
                "booking_limit_reached",
                "Too many upcoming appointments",
            ),
            Code::HoldLimitReached => (
                S::UNPROCESSABLE_ENTITY,
                "hold_limit_reached",
                "Too many slots held",
            ),
            Code::WaitlistLimitReached => (
                S::UNPROCESSABLE_ENTITY,
                "waitlist_limit_reached",
                "Too many waitlist entries",
            ),
            Code::CancellationWindowPassed => (
                S::UNPROCESSABLE_ENTITY,
                "cancellation_window_passed",
                "Too late to cancel online",
            ),
            Code::IdempotencyKeyReused => (
                S::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "The idempotency key was used for another request",
            ),
            Code::RateLimited => (S::TOO_MANY_REQUESTS, "rate_limited", "Too many requests"),
            Code::InternalError => (S::INTERNAL_SERVER_ERROR, "internal_error", "Internal error"),
            Code::UpstreamError => (
                S::BAD_GATEWAY,
                "upstream_error",
                "Canvas answered with an error",
            ),
            Code::UpstreamUnavailable => (
                S::SERVICE_UNAVAILABLE,
                "upstream_unavailable",
                "Canvas is unavailable",
            ),
            Code::UpstreamTimeout => (
                S::GATEWAY_TIMEOUT,
                "upstream_timeout",
                "Canvas did not answer in time",
            ),
        }
    }

    pub fn status(self) -> StatusCode {
        self.spec().0
    }

    pub fn as_str(self) -> &'static str {
        self.spec().1
    }

    pub fn title(self) -> &'static str {
        self.spec().2
    }

    pub fn parse(code: &str) -> Option<Code> {
        Code::ALL.into_iter().find(|c| c.as_str() == code)
    }
}

/// One offending input, named the way the client sent it (`patient_state`, `start`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[schema(example = json!({"field": "duration", "message": "must be one of 30, 60"}))]
pub struct FieldError {
    #[schema(example = "duration")]
    pub field: String,
    #[schema(example = "must be one of 30, 60")]
    pub message: String,
}

/// An RFC 9457 problem document, the body of every error.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:slotgate:problem:validation_failed",
    "title": "The request is not valid",
    "status": 400,
    "detail": "duration: must be one of 30, 60",
    "code": "validation_failed",
    "request_id": "4f3c9c1e-2a40-4a55-9f0c-8a1f0b2d7e61",
    "errors": [{"field": "duration", "message": "must be one of 30, 60"}]
}))]
pub struct Problem {
    /// A URI naming the problem type; stable per `code`.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code from the contract's error table.
    pub code: String,
    /// The request's `x-request-id`, for support.
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: Code,
    pub detail: String,
    pub errors: Vec<FieldError>,
    /// Seconds, for 429 and 503.
    pub retry_after: Option<u64>,
    /// The methods a path supports, for 405.
    pub allow: Option<String>,
    /// A status other than the code's own, where the contract says so (a configuration that a
    /// reload refuses is 422 `validation_failed`: the request was fine, the file is not).
    pub status: Option<StatusCode>,
}

impl ApiError {
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
            allow: None,
            status: None,
        }
    }

    /// A 400 naming one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::invalid_fields(vec![FieldError {
            field: field.into(),
            message: message.into(),
        }])
    }

    /// A 400 naming every offending field.
    pub fn invalid_fields(errors: Vec<FieldError>) -> Self {
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        Self {
            code: Code::ValidationFailed,
            detail,
            errors,
            retry_after: None,
            allow: None,
            status: None,
        }
    }

    /// A 422 `validation_failed`: every field well formed, but one names nothing it may (an id
    /// of no clinician, location or visit of the patient's; dates out of order).
    pub fn unprocessable_fields(errors: Vec<FieldError>) -> Self {
        let mut e = Self::invalid_fields(errors);
        e.status = Some(StatusCode::UNPROCESSABLE_ENTITY);
        e
    }

    /// The status sent: the code's own unless overridden.
    pub fn status(&self) -> StatusCode {
        self.status.unwrap_or_else(|| self.code.status())
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(Code::NotFound, detail)
    }

    /// A 500 whose cause is logged here and never shown to the client.
    pub fn internal(cause: &dyn fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(Code::InternalError, "Something went wrong on our side.")
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn problem(&self, request_id: Option<&str>) -> Problem {
        Problem {
            problem_type: format!("urn:slotgate:problem:{}", self.code.as_str()),
            title: self.code.title().to_owned(),
            status: self.status().as_u16(),
            detail: self.detail.clone(),
            code: self.code.as_str().to_owned(),
            request_id: request_id.map(str::to_owned),
            errors: self.errors.clone(),
        }
    }

    /// The full response; the request-context middleware calls it again with the request id.
    pub fn response(&self, request_id: Option<&str>) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status());
        builder.content_type(PROBLEM_JSON);
        if let Some(seconds) = self.retry_after {
            builder.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        if let Some(methods) = &self.allow {
            builder.insert_header((header::ALLOW, methods.clone()));
        }
        if self.code == Code::Unauthorized {
            builder.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        builder.json(self.problem(request_id))
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.detail)
    }
}

impl std::error::Error for ApiError {}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        self.response(None)
    }
}

impl From<crate::rules::policy::Refusal> for ApiError {
    fn from(refusal: crate::rules::policy::Refusal) -> Self {
        use crate::rules::policy::Refusal as R;
        let code = match &refusal {
            R::UnknownReason | R::ReasonNotOffered => Code::ReasonNotAllowed,
            R::DurationNotAllowed { .. } => Code::DurationNotAllowed,
            R::ModalityNotAllowed { .. } | R::ModalityNotOffered => Code::ModalityNotAllowed,
            R::PractitionerNotLicensed => Code::PractitionerNotLicensed,
            R::OutsideBookingWindow => Code::OutsideBookingWindow,
            R::BookingLimitReached { .. } => Code::BookingLimitReached,
            R::HoldLimitReached { .. } => Code::HoldLimitReached,
            R::CancellationWindowPassed { .. } => Code::CancellationWindowPassed,
        };
        ApiError::new(code, refusal.detail())
    }
}

impl From<crate::canvas::Error> for ApiError {
    fn from(e: crate::canvas::Error) -> Self {
        use crate::canvas::Error as E;
        tracing::warn!(error = %e, "Canvas call failed");
        match e {
            E::Timeout { .. } => Self::new(Code::UpstreamTimeout, "Canvas did not answer in time."),
            E::Unavailable { .. } => Self::new(
                Code::UpstreamUnavailable,
                "Canvas cannot be reached right now.",
            )
            .with_retry_after(5),
            _ => Self::new(Code::UpstreamError, "Canvas answered with an error."),
        }
    }
}

/// serde's messages quote the offending value (`invalid type: string "Jane"`), which may be
/// patient data: keep the shape of the complaint, drop the value and the position.
pub fn redact_serde(message: &str) -> String {
    let message = message.split(" at line ").next().unwrap_or(message);
    for prefix in ["invalid type: ", "invalid value: ", "invalid length "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((_, expected)) = rest.split_once(", expected ")
        {
            return format!(
                "{}, expected {expected}",
                prefix.trim_end_matches([':', ' '])
            );
        }
    }
    if let Some((kind, rest)) = message.split_once(" variant `") {
        return match rest.split_once(", expected ") {
            Some((_, expected)) => format!("{kind} variant, expected {expected}"),
            None => format!("{kind} variant"),
        };
    }
    message.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_snake_case_and_match_the_contract_statuses() {
        let mut seen = HashSet::new();
        for c in Code::ALL {
            assert!(seen.insert(c.as_str()), "{} twice", c.as_str());
            assert!(
                c.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
            );
        }
        assert_eq!(Code::SlotHeld.status(), StatusCode::CONFLICT);
        assert_eq!(
            Code::IdempotencyKeyReused.status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(Code::UpstreamTimeout.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(Code::PatientNotFound.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn serde_complaints_never_quote_values() {
        assert_eq!(
            redact_serde("invalid type: string \"Jane Doe\", expected u32 at line 1 column 9"),
            "invalid type, expected u32"
        );
        assert_eq!(
            redact_serde("unknown variant `1988-04-12`, expected `telehealth` or `in_person`"),
            "unknown variant, expected `telehealth` or `in_person`"
        );
        assert_eq!(
            redact_serde("missing field `slot_id`"),
            "missing field `slot_id`"
        );
    }

    #[test]
    fn validation_detail_names_every_field() {
        let e = ApiError::invalid_fields(vec![
            FieldError {
                field: "start".into(),
                message: "not a date".into(),
            },
            FieldError {
                field: "tz".into(),
                message: "unknown time zone".into(),
            },
        ]);
        let p = e.problem(Some("r1"));
        assert_eq!(p.status, 400);
        assert_eq!(p.code, "validation_failed");
        assert_eq!(p.detail, "start: not a date; tz: unknown time zone");
        assert_eq!(p.errors.len(), 2);
        assert_eq!(p.request_id.as_deref(), Some("r1"));
    }
}
