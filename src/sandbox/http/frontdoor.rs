//! What happens to every request before a handler sees it: the journal, injected faults, the
//! bearer check, and the `fumage-correlation-id` header Canvas puts on every response (§1).

use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web::{Bytes, Data};
use actix_web::{Error, HttpMessage};
use serde_json::Value;

use super::outcome::FhirError;
use crate::sandbox::JournalEntry;
use crate::sandbox::params::Params;
use crate::sandbox::state::Shared;

const CORRELATION_ID: HeaderName = HeaderName::from_static("fumage-correlation-id");
/// The sandbox's own control routes: no journal, no faults, no auth.
pub const CONTROL_PREFIX: &str = "/_sandbox";
/// The OAuth host's routes: faults apply (`down`), the bearer check does not.
const AUTH_PREFIX: &str = "/auth/";

/// Form fields never written to the journal in clear.
const SECRET_FIELDS: [&str; 2] = ["client_secret", "refresh_token"];

fn journal_body(content_type: &str, body: &Bytes) -> Option<Value> {
    if body.is_empty() {
        return None;
    }
    if let Ok(json) = serde_json::from_slice::<Value>(body) {
        return Some(json);
    }
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let fields = url::form_urlencoded::parse(body)
            .map(|(k, v)| {
                let shown = if SECRET_FIELDS.contains(&k.as_ref()) {
                    "***".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), Value::String(shown))
            })
            .collect();
        return Some(Value::Object(fields));
    }
    Some(Value::String(String::from_utf8_lossy(body).into_owned()))
}

fn begin_entry(req: &ServiceRequest, body: &Bytes) -> JournalEntry {
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    JournalEntry {
        method: req.method().to_string(),
        path: req.path().to_owned(),
        query: req.query_string().to_owned(),
        traceparent: header("traceparent"),
        body: journal_body(req.content_type(), body),
        status: 0,
    }
}

fn bearer_token(req: &ServiceRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Faults first (a down Canvas answers nothing else), then authentication.
async fn answer(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
    shared: &Shared,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let faults = shared.faults();
    let jitter = match faults.latency_jitter_ms {
        0 => 0,
        max => fastrand::u64(0..=max),
    };
    if faults.latency_ms + jitter > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms + jitter)).await;
    }
    let token_route = req.path().starts_with(AUTH_PREFIX);
    let unlucky = !token_route && faults.error_rate > 0.0 && fastrand::f64() < faults.error_rate;
    let method = req.method().clone();
    let failing_put = method == actix_web::http::Method::PUT && shared.take_failing_put();
    let failing_search = method == actix_web::http::Method::GET
        && req.path() == "/Appointment"
        && Params::parse(req.query_string())
            .first("identifier")
            .is_some()
        && shared.take_failing_lookup();
    if faults.down || unlucky || failing_put || failing_search {
        let mut res = req.error_response(FhirError::unavailable());
        if faults.retry_after_seconds > 0
            && let Ok(value) = HeaderValue::from_str(&faults.retry_after_seconds.to_string())
        {
            res.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return Ok(res);
    }
    if !token_route && !bearer_token(&req).is_some_and(|t| shared.token_valid(t)) {
        return Ok(req.error_response(FhirError::unauthorized()));
    }
    let create = method == actix_web::http::Method::POST && req.path() == "/Appointment";
    let lost = (!token_route && faults.drop_rate > 0.0 && fastrand::f64() < faults.drop_rate)
        || (create && shared.take_dropped_create());
    let failed = create && shared.take_failed_create();
    let res = next.call(req).await?.map_into_boxed_body();
    if !token_route && faults.hold_answers_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.hold_answers_ms)).await;
    }
    if failed && res.status().is_success() {
        // Carried out, then a failure on the way back.
        let (req, _) = res.into_parts();
        let broken = actix_web::ResponseError::error_response(&FhirError::internal());
        return Ok(ServiceResponse::new(req, broken));
    }
    if lost {
        // Carried out, but the answer breaks off after its head: the connection is closed
        // before the body is complete, as when a proxy or the network fails mid-answer.
        return Ok(res.map_body(|_, _| BoxBody::new(BrokenBody)));
    }
    Ok(res)
}

/// A body that fails at once: the server closes the connection mid-answer.
struct BrokenBody;

impl MessageBody for BrokenBody {
    type Error = std::io::Error;

    fn size(&self) -> actix_web::body::BodySize {
        actix_web::body::BodySize::Stream
    }

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Bytes, Self::Error>>> {
        std::task::Poll::Ready(Some(Err(std::io::Error::other("connection lost"))))
    }
}

/// A journal entry that is written however the request ends: with the response status, or
/// with 499 when the client went away first and actix dropped the handler (a stalled create).
struct Pending {
    entry: JournalEntry,
    shared: Data<Shared>,
}

/// nginx's "client closed request": no answer was delivered.
const CLIENT_CLOSED: u16 = 499;

impl Drop for Pending {
    fn drop(&mut self) {
        let mut entry = std::mem::replace(&mut self.entry, JournalEntry::empty());
        if entry.status == 0 {
            entry.status = CLIENT_CLOSED;
        }
        self.shared.record(entry);
    }
}

pub async fn frontdoor(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    if req.path().starts_with(CONTROL_PREFIX) {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let Some(shared) = req.app_data::<Data<Shared>>().cloned() else {
        return Ok(req.error_response(FhirError::unavailable()));
    };
    let body = match req.extract::<Bytes>().await {
        Ok(body) => body,
        Err(e) => return Ok(req.error_response(FhirError::bad_request(e.to_string()))),
    };
    req.set_payload(body.clone().into());
    let mut pending = Pending {
        entry: begin_entry(&req, &body),
        shared: shared.clone(),
    };
    let mut res = answer(req, next, &shared).await?;
    pending.entry.status = res.status().as_u16();
    drop(pending);
    let id = uuid::Uuid::new_v4().to_string();
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(CORRELATION_ID, value);
    }
    Ok(res)
}
