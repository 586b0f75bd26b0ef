//! Tracing: JSON (or pretty) logs behind an env filter, request spans that carry the route
//! template but never the raw path or query (they hold patient ids and states), and
//! OpenTelemetry. Spans always get trace ids so the outbound `traceparent` joins the caller's
//! trace; they are exported over OTLP/HTTP only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or the
//! traces-specific variable) is set.

use std::sync::OnceLock;

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderMap;
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Span;
use tracing_actix_web::RootSpanBuilder;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, TelemetrySettings};
use crate::error::ApiError;

/// Keeps the tracer provider alive; `shutdown` flushes pending spans.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("flushing traces failed: {e}");
        }
    }
}

fn otlp_configured() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

fn provider(service_name: &str) -> SdkTracerProvider {
    let resource = Resource::builder()
        .with_service_name(service_name.to_owned())
        .build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if otlp_configured() {
        // The exporter reads the standard OTEL_EXPORTER_OTLP_* variables itself.
        match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .build()
        {
            Ok(exporter) => builder = builder.with_batch_exporter(exporter),
            Err(e) => eprintln!("OTLP exporter not started: {e}"),
        }
    }
    builder.build()
}

/// Installs the global subscriber and propagator. Call once, from `main`.
pub fn init(settings: &TelemetrySettings) -> Telemetry {
    let provider = provider(&settings.service_name);
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(provider.clone());
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.log_filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = match settings.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer().compact().boxed(),
    };
    // The log filter quiets logs only: traces keep every info span (requests, Canvas calls,
    // deliveries), or `log_filter = "warn"` would also cut the trace a caller sent.
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("slotgate"))
        .with_filter(trace_filter());
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel)
        .try_init();
    Telemetry { provider }
}

/// What becomes a trace span: slotgate's own spans at info and above, whatever the log filter.
fn trace_filter() -> EnvFilter {
    EnvFilter::new("info")
}

/// For test binaries: installs telemetry once; logs are shown only with `TEST_LOG` set.
pub fn init_for_tests() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let provider = provider("slotgate-test");
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        opentelemetry::global::set_tracer_provider(provider.clone());
        let otel = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("slotgate"))
            .with_filter(trace_filter());
        let show = std::env::var_os("TEST_LOG").is_some();
        let filter = EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new(if show { "debug" } else { "info" }));
        let fmt = show.then(|| {
            tracing_subscriber::fmt::layer()
                .json()
                .with_test_writer()
                .boxed()
        });
        let _ = tracing_subscriber::registry()
            .with(fmt.map(|f| f.with_filter(filter)))
            .with(otel)
            .try_init();
        std::mem::forget(provider);
    });
}

/// The request id chosen for this request (echoed from `x-request-id` or generated).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Incoming ids are echoed only when they look like ids, so a header cannot inject text
/// into logs or response headers.
pub fn request_id_from(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Root span of every request: method, route template, status, error code, request id.
pub struct SlotgateRootSpan;

impl RootSpanBuilder for SlotgateRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let request_id = request_id_from(request.headers());
        request
            .extensions_mut()
            .insert(RequestId(request_id.clone()));
        let route = request
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned());
        let method = request.method().as_str().to_owned();
        let span = tracing::info_span!(
            "HTTP request",
            otel.name = %format!("{method} {route}"),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            http.request.method = %method,
            http.route = %route,
            http.response.status_code = tracing::field::Empty,
            error.code = tracing::field::Empty,
            request_id = %request_id,
        );
        let parent = opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&HeaderExtractor(request.headers()))
        });
        let _ = span.set_parent(parent);
        span
    }

    fn on_request_end<B: MessageBody>(
        span: Span,
        outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        let (status, error) = match outcome {
            Ok(response) => (
                response.status(),
                response
                    .response()
                    .error()
                    .and_then(|e| e.as_error::<ApiError>().cloned()),
            ),
            Err(e) => (
                e.as_response_error().status_code(),
                e.as_error::<ApiError>().cloned(),
            ),
        };
        span.record("http.response.status_code", status.as_u16());
        if let Some(e) = error {
            span.record("error.code", e.code.as_str());
        }
        span.record(
            "otel.status_code",
            if status.is_server_error() {
                "ERROR"
            } else {
                "OK"
            },
        );
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::from_static("x-request-id"),
            HeaderValue::from_str(v).unwrap(),
        );
        h
    }

    #[test]
    fn request_ids_are_echoed_only_when_they_look_like_ids() {
        assert_eq!(request_id_from(&headers("abc-123_x.y:z")), "abc-123_x.y:z");
        let generated = request_id_from(&headers("name=Jane Doe"));
        assert_ne!(generated, "name=Jane Doe");
        assert!(uuid::Uuid::parse_str(&generated).is_ok());
        assert!(uuid::Uuid::parse_str(&request_id_from(&HeaderMap::new())).is_ok());
    }
}
