//! Telemetry end to end: an incoming `traceparent` becomes the trace of slotgate's server
//! span and of every Canvas call span (as exported over OTLP/HTTP to a receiver), and of the
//! `traceparent` the Canvas sandbox receives. Its own binary: the exporter is configured by
//! the standard environment variable before telemetry starts, once per process.

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
    let exported: Vec<u8> = runtime.block_on(async {
        collector
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.url.path() == "/v1/traces")
            .flat_map(|r| {
                assert_eq!(
                    r.headers.get("content-type").unwrap(),
                    "application/x-protobuf"
                );
                r.body
            })
            .collect()
    });
    assert!(!exported.is_empty(), "spans were exported over OTLP/HTTP");
    assert!(contains(&exported, &hex(TRACE)), "the caller's trace id");
    assert!(
        contains(&exported, &hex(PARENT)),
        "the caller's span as parent"
    );
    for name in ["GET /v1/appointments/{id}", "Appointment.read"] {
        assert!(contains(&exported, name.as_bytes()), "a span named {name}");
    }
    assert!(
        !contains(&exported, APPOINTMENT.as_bytes()),
        "no raw ids in exported spans"
    );
}
