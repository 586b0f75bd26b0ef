//! `Idempotency-Key`: the same key and body replay the first answer; another body is 422
//! `idempotency_key_reused`; while an attempt with the key runs (on any replica), 409
//! `request_in_progress`. An attempt owns its key by a lease it renews while it works, so the
//! key is busy exactly as long as the work, and a replica that died frees it within a lease.
//! Answers (2xx and 4xx) are kept 24 hours, written only by the attempt that owns the key (a
//! late attempt never replaces another's answer); after a 5xx the key resumes, so a retry
//! finishes what the first attempt started instead of repeating it. The work runs as a task of
//! its own: a client that hangs up does not stop a booking half way.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use aws_lc_rs::digest;
use bytes::Bytes;
use serde_json::Value;
use tracing::Instrument;

use super::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, Code, FieldError};
use crate::scheduling::booking::{Attempt, KeyRecord};
use crate::scheduling::guard::Guard;
use crate::store::{Begin, IdempotencyTtl, Lease, StoredResponse};

pub const HEADER: &str = "Idempotency-Key";
const RECORD_TTL: Duration = Duration::from_secs(24 * 3600);

/// What the operation learns about its key.
pub struct Keyed {
    /// Where progress is recorded.
    pub store_key: String,
    /// This attempt's ownership of the key (progress is recorded under it).
    pub owner: Lease,
    /// Opaque, stable per caller and key: becomes the Canvas identifier value.
    pub identifier: String,
    /// What an interrupted earlier attempt recorded (`Value::Null` when it recorded nothing).
    pub resume: Option<Value>,
}

impl Keyed {
    /// The booking's exactly-once bookkeeping under this key (not a reschedule; set
    /// `rescheduled_from` for one).
    pub fn attempt<'a>(&'a self, guard: &'a Guard) -> Attempt<'a> {
        Attempt {
            identifier: &self.identifier,
            maybe_created: self.resume.is_some(),
            sent_before: self.create_sent(),
            record: KeyRecord {
                store_key: &self.store_key,
                owner: &self.owner,
            },
            rescheduled_from: None,
            guard,
        }
    }

    /// An earlier attempt with this key sent its create to Canvas.
    pub fn create_sent(&self) -> bool {
        self.resume
            .as_ref()
            .is_some_and(|p| p[crate::scheduling::booking::CREATE_SENT] == true)
    }
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

/// Runs `operation` under the request's idempotency key (`required`: a missing key is a 400),
/// with a guard that keeps the key's lease, and the locks the operation takes, alive.
pub async fn run<F, Fut>(
    state: &AppState,
    request: &HttpRequest,
    caller: &Principal,
    body: &Value,
    required: bool,
    operation: F,
) -> Result<HttpResponse, ApiError>
where
    F: FnOnce(Arc<Guard>, Option<Keyed>) -> Fut + 'static,
    Fut: Future<Output = Result<Created, ApiError>> + 'static,
{
    let guard = Arc::new(Guard::new(
        state.store.clone(),
        state.settings.leases.lock,
        state.settings.canvas.write_settle,
    ));
    let Some(key) = key_of(request)? else {
        if required {
            return Err(ApiError::invalid_fields(vec![FieldError {
                field: HEADER.into(),
                message: "is required: a unique string per intended change, reused on retries"
                    .into(),
            }]));
        }
        return detached(operation(guard, None)).await.map(respond);
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
        lease: guard.lease(),
        record: RECORD_TTL,
    };
    let store = state.store.clone();
    let now = jiff::Timestamp::now();
    let (owner, resume) = match store
        .begin(store_key.clone(), fingerprint, ttl, now)
        .await
        .map_err(super::store_error)?
    {
        Begin::Started(owner) => (owner, None),
        Begin::Resume(owner, progress) => (owner, Some(progress)),
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
    guard.adopt(owner.clone());
    let identifier = sha256(&[
        b"canvas-identifier",
        caller.subject.as_bytes(),
        key.as_bytes(),
    ])[..32]
        .to_owned();
    let keyed = Keyed {
        store_key: store_key.clone(),
        owner: owner.clone(),
        identifier,
        resume,
    };
    detached(async move {
        let outcome = operation(guard.clone(), Some(keyed)).await;
        // From here the key's answer is written under its ownership, not kept alive by renewal.
        guard.forget(&owner);
        let stored = match &outcome {
            Ok(created) => Some(StoredResponse {
                status: created.status.as_u16(),
                body: created.body.to_vec(),
                location: created.location.clone(),
            }),
            Err(e) if e.status().is_client_error() => Some(StoredResponse {
                status: e.status().as_u16(),
                body: stored_error(e),
                location: None,
            }),
            Err(_) => None,
        };
        let written = match stored {
            Some(answer) => store.finish(store_key, owner, answer).await,
            None => store.interrupt(store_key, owner).await,
        };
        match written {
            Ok(true) => {}
            // Its lease lapsed and another attempt resumed the key: that one's answer stands.
            Ok(false) => tracing::warn!("an attempt ended after another took over its key"),
            // The answer stands all the same: once Canvas has a booking, the client hears so,
            // and a retry with the key resumes and finds it there.
            Err(e) => tracing::warn!(error = %e, "could not record an idempotent answer"),
        }
        outcome
    })
    .await
    .map(respond)
}

/// Runs the work as a task of its own, so that it ends as it would have if the client hangs up.
async fn detached<T: 'static>(
    work: impl Future<Output = Result<T, ApiError>> + 'static,
) -> Result<T, ApiError> {
    // The request's span goes along: Canvas calls stay in the caller's trace.
    actix_web::rt::spawn(work.instrument(tracing::Span::current()))
        .await
        .map_err(|e| ApiError::internal(&e))?
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
