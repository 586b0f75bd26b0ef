//! Telemetry end to end: an incoming `traceparent` becomes the trace of slotgate's server
//! span and of every Canvas call span (as exported over OTLP/HTTP to a receiver), and of the
//! `traceparent` the Canvas sandbox receives. Its own binary: the exporter is configured by
//! the standard environment variable before telemetry starts, once per process.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use slotgate::config::{Settings, Sources};
use slotgate::startup::Application;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";
/// A seeded appointment of the demo clinic.
const APPOINTMENT: &str = "5eed0000-0000-4000-8000-000000000001";

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn one_trace_from_the_caller_through_slotgate_to_canvas() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let collector = runtime.block_on(async {
        let collector = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/traces"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&collector)
            .await;
        collector
    });
    // SAFETY: set before telemetry and before any thread of ours reads the environment.
    unsafe {
        std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", collector.uri());
        std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "100");
    }
    let settings = Settings::load(&Sources {
        file: None,
        environment: false,
        overrides: &[
            "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 1\n[sandbox]\nlisten = \"127.0.0.1:0\"\n[telemetry]\nlog_format = \"json\"\nlog_filter = \"warn\"\n",
        ],
    })
    .expect("valid settings");
    let telemetry = slotgate::telemetry::init(&settings.telemetry);
    let mut sent_parent = String::new();
    runtime.block_on(async {
        let app = Application::build(settings.clone()).await.unwrap();
        let address = format!("http://{}", app.address());
        let sandbox = app.sandbox().unwrap().control();
        let token = slotgate::auth::DevToken {
            secret: settings.auth.hs256_secret.as_ref().unwrap(),
            issuer: &settings.auth.issuer,
            audience: &settings.auth.audience,
            patient_claim: &settings.auth.patient_claim,
        }
        .mint("staff:otel", None, "scheduling.read scheduling.staff", 600)
        .unwrap();
        let handle = app.handle();
        let server = tokio::spawn(app.run_until_stopped());
        sandbox.clear_journal();
        // Revoked tokens make slotgate re-acquire one, so the token call is seen here too.
        sandbox.revoke_tokens();
        let r = reqwest::Client::new()
            .get(format!("{address}/v1/appointments/{APPOINTMENT}"))
            .bearer_auth(&token)
            .header("traceparent", format!("00-{TRACE}-{PARENT}-01"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        // The sandbox got the caller's trace, with a span of slotgate's as parent.
        let read = sandbox
            .journal()
            .into_iter()
            .find(|j| j.path == format!("/Appointment/{APPOINTMENT}"))
            .expect("slotgate read the appointment from Canvas");
        let sent = read.traceparent.expect("a traceparent on the Canvas call");
        let parts: Vec<&str> = sent.split('-').collect();
        assert_eq!(parts[1], TRACE);
        assert_ne!(parts[2], PARENT, "a span of slotgate's is the parent");
        sent_parent = parts[2].to_owned();
        let journal = sandbox.journal();
        let token_calls: Vec<_> = journal
            .iter()
            .filter(|j| j.path == "/auth/token/")
            .collect();
        assert_eq!(token_calls.len(), 1, "one token request after the 401");
        let sent = token_calls[0]
            .traceparent
            .as_deref()
            .expect("a traceparent on the token call");
        // One refresh serves every caller waiting on it, so it joins the trace of whichever
        // caller started it (a background directory refresh may win); it must carry one.
        let parts: Vec<&str> = sent.split('-').collect();
        assert_eq!(parts.len(), 4, "{sent}");
        assert_eq!(parts[1].len(), 32, "{sent}");
        handle.stop(true).await;
        let _ = server.await;
    });
    // Flush what was recorded, then look at what the collector received.
    std::thread::spawn(move || telemetry.shutdown())
        .join()
        .unwrap();
    let requests: Vec<Vec<u8>> = runtime.block_on(async {
        collector
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.url.path() == "/v1/traces")
            .map(|r| {
                assert_eq!(
                    r.headers.get("content-type").unwrap(),
                    "application/x-protobuf"
                );
                r.body
            })
            .collect()
    });
    assert!(!requests.is_empty(), "spans were exported over OTLP/HTTP");
    // Decoded as OTLP: every span of the request, with its trace, parent and attributes.
    let spans: Vec<Span> = requests
        .iter()
        .flat_map(|body| {
            ExportTraceServiceRequest::decode(body.as_slice())
                .expect("an OTLP trace export")
                .resource_spans
        })
        .flat_map(|r| r.scope_spans)
        .flat_map(|s| s.spans)
        .collect();
    let named = |name: &str| -> Vec<&Span> { spans.iter().filter(|s| s.name == name).collect() };
    let server = named("GET /v1/appointments/{id}");
    assert_eq!(server.len(), 1, "one server span for the request");
    let server = server[0];
    assert_eq!(server.trace_id, hex(TRACE), "the caller's trace");
    assert_eq!(
        server.parent_span_id,
        hex(PARENT),
        "the caller's span as parent"
    );
    let read = named("Appointment.read");
    assert!(!read.is_empty(), "a span for the Canvas read");
    for span in &read {
        assert_eq!(
            span.trace_id,
            hex(TRACE),
            "the Canvas call joins the caller's trace"
        );
    }
    // The traceparent the sandbox received names one of those Canvas call spans as parent.
    assert!(
        read.iter().any(|s| s.span_id == hex(&sent_parent)),
        "Canvas got the Canvas call span as its parent"
    );
    // Every span of the trace descends from the server span.
    let trace: Vec<&Span> = spans.iter().filter(|s| s.trace_id == hex(TRACE)).collect();
    let ids: std::collections::BTreeSet<&[u8]> =
        trace.iter().map(|s| s.span_id.as_slice()).collect();
    for span in &trace {
        assert!(
            span.span_id == server.span_id || ids.contains(span.parent_span_id.as_slice()),
            "{} hangs off nothing of the trace",
            span.name
        );
    }
    // No raw ids anywhere in what left the process.
    let everything: Vec<u8> = requests.concat();
    assert!(
        !contains(&everything, APPOINTMENT.as_bytes()),
        "no raw ids in exported spans"
    );
}
