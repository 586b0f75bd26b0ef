//! Per-request plumbing: the `x-request-id` header, problem+json for every error (ours and
//! actix's own), latency metrics per route template, and one log line per request.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};

use crate::error::{ApiError, Code, PROBLEM_JSON};
use crate::metrics::Metrics;
use crate::telemetry::RequestId;

/// No legitimate call needs more: a query string this long, or headers this large together.
const MAX_QUERY_BYTES: usize = 8 * 1024;
const MAX_HEADER_BYTES: usize = 16 * 1024;

fn oversized(req: &ServiceRequest) -> Option<ApiError> {
    if req.query_string().len() > MAX_QUERY_BYTES {
        return Some(ApiError::invalid(
            "query",
            format!("must be at most {MAX_QUERY_BYTES} bytes"),
        ));
    }
    let headers: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    (headers > MAX_HEADER_BYTES).then(|| {
        ApiError::invalid(
            "headers",
            format!("must be at most {MAX_HEADER_BYTES} bytes together"),
        )
    })
}

pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    if let Some(error) = oversized(&req) {
        let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
        let (request, _) = req.into_parts();
        let answer = if super::fhir::is_fhir_path(request.path()) {
            super::fhir::outcome::response(&error, request_id.as_deref())
        } else {
            error.response(request_id.as_deref())
        };
        let mut response = ServiceResponse::new(request, answer);
        if let Some(id) = request_id.and_then(|id| HeaderValue::from_str(&id).ok()) {
            response
                .headers_mut()
                .insert(header::HeaderName::from_static("x-request-id"), id);
        }
        return Ok(response);
    }
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    // Handlers and extractors put their errors in the response; an `Err` here would be an
    // inner middleware's, and the App turns it into a response on its own.
    let response = next.call(req).await?.map_into_boxed_body();
    let request_id = response
        .request()
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut response = as_problem(response, &request_id);
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert(header::HeaderName::from_static("x-request-id"), v);
    }
    let status = response.status();
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    // A fixed set, so that invented methods cannot mint metric series.
    let method = match response.request().method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "DELETE" | "PATCH" | "HEAD" | "OPTIONS") => m,
        _ => "other",
    }
    .to_owned();
    let elapsed = started.elapsed();
    if let Some(m) = metrics {
        m.http_requests
            .with_label_values(&[&method, &route, status.as_str()])
            .inc();
        m.http_duration
            .with_label_values(&[&method, &route])
            .observe(elapsed.as_secs_f64());
    }
    tracing::info!(
        status = status.as_u16(),
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    Ok(response)
}

/// Renders every error response as our problem document, with the request id in it.
fn as_problem(response: ServiceResponse<BoxBody>, request_id: &str) -> ServiceResponse<BoxBody> {
    let status = response.status();
    let error = match response.response().error() {
        Some(e) => Some(
            e.as_error::<ApiError>()
                .cloned()
                .unwrap_or_else(|| foreign(status, e)),
        ),
        None if status.is_client_error() || status.is_server_error() => {
            let is_problem = response
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| {
                    v.as_bytes().starts_with(PROBLEM_JSON.as_bytes())
                        || v.as_bytes().starts_with(super::fhir::FHIR_JSON.as_bytes())
                });
            (!is_problem).then(|| by_status(status))
        }
        None => None,
    };
    let Some(error) = error else {
        return response;
    };
    tracing::Span::current().record("error.code", error.code.as_str());
    let (request, _) = response.into_parts();
    let answer = if super::fhir::is_fhir_path(request.path()) {
        super::fhir::outcome::response(&error, Some(request_id))
    } else {
        error.response(Some(request_id))
    };
    ServiceResponse::new(request, answer)
}

/// An actix or library error that did not come through `ApiError`: keep its status, give it
/// our code, and never echo its text (it may quote the request).
fn foreign(status: StatusCode, e: &actix_web::Error) -> ApiError {
    if status.is_server_error() {
        return ApiError::internal(e);
    }
    by_status(status)
}

fn by_status(status: StatusCode) -> ApiError {
    match status.as_u16() {
        401 => ApiError::new(Code::Unauthorized, "Authentication is required."),
        403 => ApiError::new(Code::Forbidden, "Not allowed."),
        404 => ApiError::not_found("There is nothing at this address."),
        405 => ApiError::new(Code::MethodNotAllowed, "This method is not allowed here."),
        413 => ApiError::new(Code::PayloadTooLarge, "The request body is too large."),
        s if s >= 500 => ApiError::internal(&format!("HTTP {s} without an error")),
        _ => ApiError::invalid("request", "the request could not be read"),
    }
}

/// The documented paths and their methods, to tell "no such method here" (405) from "no
/// such path" (404).
pub struct KnownRoutes(Vec<(Vec<String>, Vec<String>)>);

impl KnownRoutes {
    pub fn from_openapi(doc: &utoipa::openapi::OpenApi) -> Self {
        let mut routes: Vec<(Vec<String>, Vec<String>)> = serde_json::to_value(&doc.paths)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default()
            .into_iter()
            .map(|(path, item)| {
                let methods = item
                    .as_object()
                    .map(|ops| ops.keys().map(|m| m.to_ascii_uppercase()).collect())
                    .unwrap_or_default();
                (path.split('/').map(str::to_owned).collect(), methods)
            })
            .collect();
        // The interactive docs are not in the document but answer GET.
        routes.push((
            vec![String::new(), "api-docs".into(), "openapi.json".into()],
            vec!["GET".into()],
        ));
        Self(routes)
    }

    fn allowed(&self, path: &str) -> Option<String> {
        let segments: Vec<&str> = path.split('/').collect();
        self.0
            .iter()
            .find(|(template, _)| {
                template.len() == segments.len()
                    && template
                        .iter()
                        .zip(&segments)
                        .all(|(t, s)| t == s || (t.starts_with('{') && !s.is_empty()))
            })
            .map(|(_, methods)| methods.join(", "))
    }
}

/// For `default_service`: a documented path with another method is a 405 naming the allowed
/// ones; anything else a 404. Both as problem documents.
pub async fn fallback(
    request: HttpRequest,
    routes: web::Data<KnownRoutes>,
) -> Result<HttpResponse, ApiError> {
    match routes.allowed(request.path()) {
        Some(methods) => {
            let mut e = ApiError::new(Code::MethodNotAllowed, "This method is not allowed here.");
            e.allow = Some(methods);
            Err(e)
        }
        None => Err(ApiError::not_found("There is nothing at this address.")),
    }
}

pub(crate) fn sanitize(message: &str) -> String {
    crate::error::redact_serde(message)
}

/// The field a serde message is about, when it names one.
pub(crate) fn field_of(message: &str) -> Option<String> {
    for marker in ["missing field `", "unknown field `", "duplicate field `"] {
        if let Some(rest) = message.split(marker).nth(1) {
            return rest.split('`').next().map(str::to_owned);
        }
    }
    None
}

pub fn json_error(e: JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    let error = match &e {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            ApiError::new(Code::PayloadTooLarge, "The request body is too large.")
        }
        JsonPayloadError::ContentType => {
            ApiError::invalid("body", "Content-Type must be application/json")
        }
        JsonPayloadError::Deserialize(de) => {
            let message = de.to_string();
            let field = field_of(&message).unwrap_or_else(|| "body".into());
            ApiError::invalid(field, sanitize(&message))
        }
        _ => ApiError::invalid("body", "the body could not be read"),
    };
    error.into()
}

pub fn query_error(e: QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    let message = e.to_string();
    let field = field_of(&message).unwrap_or_else(|| "query".into());
    ApiError::invalid(field, sanitize(&message)).into()
}

pub fn path_error(e: PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::invalid("path", sanitize(&e.to_string())).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_values_never_reach_the_client() {
        let m = "invalid type: string \"Jane Doe\", expected u32 at line 1 column 20";
        assert_eq!(sanitize(m), "invalid type, expected u32");
        assert_eq!(
            sanitize("missing field `slot_id` at line 1 column 2"),
            "missing field `slot_id`"
        );
        assert_eq!(
            field_of("missing field `slot_id` at line 1"),
            Some("slot_id".into())
        );
        assert_eq!(field_of("expected value"), None);
    }
}
