//! `Idempotency-Key`: the same key and body replay the first answer; another body is 422
//! `idempotency_key_reused`; while the first request runs, 409 `request_in_progress`. Answers
//! (2xx and 4xx) are kept 24 hours; after a 5xx the key resumes, so a retry finishes what the
//! first attempt started instead of repeating it.

use std::future::Future;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use aws_lc_rs::digest;
use bytes::Bytes;
use serde_json::Value;

use super::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, Code, FieldError};
use crate::store::{Begin, IdempotencyTtl, StoredResponse};

pub const HEADER: &str = "Idempotency-Key";
const RECORD_TTL: Duration = Duration::from_secs(24 * 3600);

/// What the operation learns about its key.
pub struct Keyed {
    /// Where progress is recorded.
    pub store_key: String,
    /// Opaque, stable per caller and key: becomes the Canvas identifier value.
    pub identifier: String,
    /// What an interrupted earlier attempt recorded (`Value::Null` when it recorded nothing).
    pub resume: Option<Value>,
}

/// A successful answer.
pub struct Created {
    pub status: StatusCode,
    pub body: Bytes,
    pub location: Option<String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(parts: &[&[u8]]) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for p in parts {
        ctx.update(p);
        ctx.update(b"\n");
    }
    hex(ctx.finish().as_ref())
}

fn key_of(request: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = request.headers().get(HEADER) else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(k)
            if !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| (0x21..=0x7e).contains(&b)) =>
        {
            Ok(Some(k.to_owned()))
        }
        _ => Err(ApiError::invalid(
            HEADER,
            "must be 1 to 255 visible ASCII characters",
        )),
    }
}

/// Runs `operation` under the request's idempotency key (`required`: a missing key is a 400).
pub async fn run<F, Fut>(
    state: &AppState,
    request: &HttpRequest,
    caller: &Principal,
    body: &Value,
    required: bool,
    operation: F,
) -> Result<HttpResponse, ApiError>
where
    F: FnOnce(Option<Keyed>) -> Fut,
    Fut: Future<Output = Result<Created, ApiError>>,
{
    let Some(key) = key_of(request)? else {
        if required {
            return Err(ApiError::invalid_fields(vec![FieldError {
                field: HEADER.into(),
                message: "is required: a unique string per intended change, reused on retries"
                    .into(),
            }]));
        }
        return operation(None).await.map(respond);
    };
    let purpose = format!("{} {}", request.method(), request.path());
    let store_key = format!(
        "idem:{}",
        sha256(&[caller.subject.as_bytes(), key.as_bytes()])
    );
    // serde_json maps are sorted, so the same JSON always hashes the same.
    let canonical = serde_json::to_vec(body).unwrap_or_default();
    let fingerprint = sha256(&[purpose.as_bytes(), &canonical]);
    let ttl = IdempotencyTtl {
        marker: state.settings.canvas.timeout * 4 + Duration::from_secs(10),
        record: RECORD_TTL,
    };
    let store = &state.store;
    let now = jiff::Timestamp::now();
    let resume = match store
        .begin(store_key.clone(), fingerprint, ttl, now)
        .await
        .map_err(super::store_error)?
    {
        Begin::Started => None,
        Begin::Resume(progress) => Some(progress),
        Begin::Replay(stored) => return replay(stored),
        Begin::Mismatch => {
            return Err(ApiError::new(
                Code::IdempotencyKeyReused,
                "This Idempotency-Key was used for a different request.",
            ));
        }
        Begin::InProgress => {
            return Err(ApiError::new(
                Code::RequestInProgress,
                "A request with this Idempotency-Key is still running.",
            )
            .with_retry_after(1));
        }
    };
    let identifier = sha256(&[
        b"canvas-identifier",
        caller.subject.as_bytes(),
        key.as_bytes(),
    ])[..32]
        .to_owned();
    let outcome = operation(Some(Keyed {
        store_key: store_key.clone(),
        identifier,
        resume,
    }))
    .await;
    let now = jiff::Timestamp::now();
    match outcome {
        Ok(created) => {
            let stored = StoredResponse {
                status: created.status.as_u16(),
                body: created.body.to_vec(),
                location: created.location.clone(),
            };
            store
                .finish(store_key, stored, now)
                .await
                .map_err(super::store_error)?;
            Ok(respond(created))
        }
        Err(e) if e.code.status().is_client_error() => {
            let stored = StoredResponse {
                status: e.code.status().as_u16(),
                body: stored_error(&e),
                location: None,
            };
            store
                .finish(store_key, stored, now)
                .await
                .map_err(super::store_error)?;
            Err(e)
        }
        Err(e) => {
            if let Err(se) = store.interrupt(store_key).await {
                tracing::warn!(error = %se, "could not mark an interrupted request; its marker expires on its own");
            }
            Err(e)
        }
    }
}

pub fn respond(created: Created) -> HttpResponse {
    let mut builder = HttpResponse::build(created.status);
    builder.content_type("application/json");
    if let Some(location) = created.location {
        builder.insert_header((header::LOCATION, location));
    }
    builder.body(created.body)
}

fn stored_error(e: &ApiError) -> Vec<u8> {
    serde_json::to_vec(
        &serde_json::json!({"code": e.code.as_str(), "detail": e.detail, "errors": e.errors}),
    )
    .unwrap_or_default()
}

fn replay(stored: StoredResponse) -> Result<HttpResponse, ApiError> {
    if stored.status >= 400 {
        let v: Value = serde_json::from_slice(&stored.body).unwrap_or_default();
        let code = v["code"]
            .as_str()
            .and_then(Code::parse)
            .unwrap_or(Code::InternalError);
        let mut e = ApiError::new(code, v["detail"].as_str().unwrap_or_default());
        e.errors = serde_json::from_value(v["errors"].clone()).unwrap_or_default();
        return Err(e);
    }
    let mut response = respond(Created {
        status: StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK),
        body: Bytes::from(stored.body),
        location: stored.location,
    });
    response.headers_mut().insert(
        HeaderName::from_static("idempotent-replayed"),
        HeaderValue::from_static("true"),
    );
    Ok(response)
}
