//! Typed failures of Canvas calls. The API layer maps them to 502/503/504; the scheduling layer
//! looks at the specific ones (`NotFound`, `BusinessRule`) where they mean something.

use super::fhir::OperationOutcome;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// 404 `not-found`.
    #[error("{operation}: Canvas has no such resource")]
    NotFound { operation: &'static str },
    /// 422 `business-rule`, e.g. "This appointment time is no longer available."
    #[error("{operation}: Canvas refused: {text}")]
    BusinessRule {
        operation: &'static str,
        text: String,
    },
    /// 400 `invalid`: our request was malformed in Canvas's eyes.
    #[error("{operation}: Canvas found the request invalid: {text}")]
    Invalid {
        operation: &'static str,
        text: String,
    },
    /// 412 `conflict` on a conditional update.
    #[error("{operation}: Canvas reports a conflicting update")]
    Conflict { operation: &'static str },
    /// Any other refusal (401 after a fresh token, 403, 405, …).
    #[error("{operation}: Canvas answered {status}: {text}")]
    Rejected {
        operation: &'static str,
        status: u16,
        text: String,
    },
    /// Canvas could not be reached or said it is unavailable (connection refused, 429/503
    /// after retries). `maybe_sent` is true when a write may have reached Canvas.
    #[error("{operation}: Canvas is unavailable: {reason}")]
    Unavailable {
        operation: &'static str,
        reason: String,
        maybe_sent: bool,
    },
    /// No answer within `[canvas] timeout_ms`; a write may or may not have happened.
    #[error("{operation}: Canvas did not answer in time")]
    Timeout { operation: &'static str },
    /// A write answered 5xx (Canvas, or a proxy in front of it, failed after the request was
    /// sent), or succeeded without naming what it made: it may have been applied.
    #[error("{operation}: the write's outcome is unknown: HTTP {status}")]
    WriteFailed {
        operation: &'static str,
        status: u16,
    },
    /// Canvas failed (5xx) or answered something we cannot read.
    #[error("{operation}: Canvas failed: {reason}")]
    Upstream {
        operation: &'static str,
        reason: String,
    },
}

impl Error {
    /// Maps a non-success status and its (possible) OperationOutcome body.
    pub(super) fn from_status(operation: &'static str, status: u16, body: &[u8]) -> Error {
        let outcome: Option<OperationOutcome> = serde_json::from_slice(body).ok();
        let text = outcome
            .as_ref()
            .map(|o| o.first().1.to_owned())
            .unwrap_or_default();
        match status {
            404 => Error::NotFound { operation },
            422 => Error::BusinessRule { operation, text },
            400 => Error::Invalid { operation, text },
            412 => Error::Conflict { operation },
            504 => Error::Timeout { operation },
            429 | 503 => Error::Unavailable {
                operation,
                reason: format!("HTTP {status}"),
                maybe_sent: false,
            },
            500..=599 => Error::Upstream {
                operation,
                reason: format!("HTTP {status} {text}"),
            },
            _ => Error::Rejected {
                operation,
                status,
                text,
            },
        }
    }

    /// Whether a write may have been applied by Canvas although it did not say so.
    pub fn is_ambiguous(&self) -> bool {
        matches!(
            self,
            Error::Timeout { .. }
                | Error::WriteFailed { .. }
                | Error::Unavailable {
                    maybe_sent: true,
                    ..
                }
        )
    }

    /// A write's failure status: any 5xx may come after Canvas applied it (a time-out or
    /// crash behind its proxy), so none of them says "nothing happened".
    pub(super) fn from_write_status(operation: &'static str, status: u16, body: &[u8]) -> Error {
        match Error::from_status(operation, status, body) {
            Error::Unavailable { reason, .. } if status >= 500 => Error::Unavailable {
                operation,
                reason,
                maybe_sent: true,
            },
            Error::Upstream { .. } => Error::WriteFailed { operation, status },
            other => other,
        }
    }
}
