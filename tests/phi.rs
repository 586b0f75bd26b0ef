//! No patient data in telemetry: a full browse-and-book flow with every crate logging at
//! TRACE into a buffer, which must then hold no seeded patient's name, birth date or address,
//! no free text a patient typed, and no secret or bearer token.
//!
//! Its own test binary, because the capturing subscriber must be the process's global one.

#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

const SOFIA: &str = "97491556534444838b94dbb0909b6b3d";
const OKAFOR: &str = "c48de0f40beb4fee86f872da7a840cf9";
const COMMENT: &str = "Chest pain since Tuesday, worse on stairs";

#[tokio::test]
async fn a_full_flow_at_trace_level_logs_no_patient_data() {
    let capture = Capture::default();
    tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_current_span(true)
        .with_span_list(true)
        // Span attributes are telemetry too: log every span as it opens and closes.
        .with_span_events(
            tracing_subscriber::fmt::format::FmtSpan::NEW
                | tracing_subscriber::fmt::format::FmtSpan::CLOSE,
        )
        .with_writer(capture.clone())
        .init();
    // Canvas as a separate server with known credentials, configured as a real one would be,
    // so the client secret can be looked for too.
    let canvas_secret = "canvas-client-secret-never-logged";
    let sandbox = slotgate::sandbox::Sandbox::start(slotgate::sandbox::SandboxOptions {
        client_id: "phi-test".into(),
        client_secret: canvas_secret.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let rules_day = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    let rules = format!(
        "{}\n{}",
        slotgate::config::DEMO_REASONS,
        slotgate::sandbox::Clinic::demo(rules_day).slotgate_rules_toml()
    );
    let canvas = format!(
        "[canvas]\nfhir_url = \"{0}\"\ntoken_url = \"{0}/auth/token/\"\nclient_id = \"phi-test\"\nclient_secret = \"{canvas_secret}\"\n\
         [auth]\nissuer = \"https://id.example.org\"\naudience = \"slotgate\"\nhs256_secret = \"a jwt secret that must never be logged!\"\n\
         [booking]\nmin_notice_minutes = 0\nmax_horizon_days = 400\n",
        sandbox.base_url()
    );
    // A sink at `full` (covered by a BAA) receives the patient's name; the logs must not.
    let receiver = silent_receiver().await;
    let sink = format!(
        "[sync]\nretry_base_ms = 50\n[[sync.sinks]]\nname = \"ehr-mirror\"\nkind = \"webhook\"\nurl = \"http://{receiver}/hooks\"\n\
         secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\nphi = \"full\"\nbaa = true\n"
    );
    let app = helpers::spawn_app_with(&[&rules, &canvas, &sink]).await;
    let me = app.patient_token(SOFIA);
    let staff = app.staff_token();
    for path in ["/v1/reasons", "/v1/locations", "/v1/practitioners?state=CA"] {
        assert_eq!(app.get(path, Some(&me)).await.status(), 200);
    }
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    let (start, end) = (
        today.saturating_add(jiff::ToSpan::days(3)),
        today.saturating_add(jiff::ToSpan::days(9)),
    );
    let query = format!(
        "/v1/availability?reason=FLUP&duration=30&state=CA&modality=telehealth&practitioner={OKAFOR}&start={start}&end={end}"
    );
    let slots: Value = app.get(&query, Some(&me)).await.json().await.unwrap();
    let (first, second) = (&slots["slots"][0], &slots["slots"][3]);
    let hold: Value = app
        .post_json(
            "/v1/holds",
            &me,
            &json!({"slot_id": first["slot_id"]}),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let body = json!({"slot_id": first["slot_id"], "reason_code": "FLUP", "patient_id": SOFIA, "patient_state": "CA", "comment": COMMENT, "hold_id": hold["hold_id"]});
    let made = app
        .post_json("/v1/appointments", &me, &body, Some("phi-key-1"))
        .await;
    assert_eq!(made.status(), 201);
    let made: Value = made.json().await.unwrap();
    let id = made["id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/v1/appointments/{id}"), Some(&me))
            .await
            .status(),
        200
    );
    assert_eq!(app.get("/v1/appointments", Some(&me)).await.status(), 200);
    let moved = app
        .post_json(
            &format!("/v1/appointments/{id}/reschedule"),
            &me,
            &json!({"slot_id": second["slot_id"], "patient_state": "CA"}),
            Some("phi-key-2"),
        )
        .await;
    assert_eq!(moved.status(), 201);
    let moved: Value = moved.json().await.unwrap();
    let cancel = app
        .post_json(
            &format!("/v1/appointments/{}/cancel", moved["id"].as_str().unwrap()),
            &me,
            &json!({"reason": "Feeling much better now"}),
            Some("phi-key-3"),
        )
        .await;
    assert_eq!(cancel.status(), 200);
    let event = json!({"practitioner_ids": [OKAFOR], "start": format!("{end}T20:00:00Z"), "end": format!("{end}T21:00:00Z"), "title": "Home visit planning", "patient_id": SOFIA});
    assert_eq!(
        app.post_json("/v1/events", &staff, &event, None)
            .await
            .status(),
        201
    );
    // Failures log too: a refused booking, a bad body.
    assert_eq!(
        app.post_json(
            "/v1/appointments",
            &me,
            &json!({"comment": COMMENT}),
            Some("phi-key-4")
        )
        .await
        .status(),
        400
    );

    // Let calendar sync deliver everything, at the full level.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let mut logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    // Metric labels are searched too: route templates and outcomes only.
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(
        metrics.contains("slotgate_http_requests_total"),
        "{metrics}"
    );
    logs.push('\n');
    logs.push_str(&metrics);
    assert!(
        logs.contains("sync.delivery"),
        "the sync deliveries ran and were traced"
    );
    assert!(
        logs.len() > 10_000,
        "the flow was logged at trace level ({} bytes)",
        logs.len()
    );
    if !logs.contains("\"patient\":\"") {
        let booking: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains("booking"))
            .take(3)
            .collect();
        panic!("bookings name their patient by a keyed hash: {booking:#?}");
    }
    let clinic = slotgate::sandbox::Clinic::demo(today);
    let mut forbidden: Vec<(String, String)> = Vec::new();
    for p in &clinic.patients {
        forbidden.push((
            format!("{} {}", p.given, p.family),
            "a patient's name".into(),
        ));
        forbidden.push((
            format!("\"{}\"", p.family),
            "a patient's family name".into(),
        ));
        forbidden.push((p.birth_date.to_string(), "a patient's birth date".into()));
        forbidden.push((p.line.clone(), "a patient's address".into()));
        forbidden.push((p.mrn.clone(), "a patient's MRN".into()));
        forbidden.push((p.phone.clone(), "a patient's phone number".into()));
        forbidden.push((p.email.clone(), "a patient's email".into()));
        if let Some(nickname) = &p.nickname {
            forbidden.push((format!("\"{nickname}\""), "a patient's nickname".into()));
        }
    }
    forbidden.push((
        SOFIA.into(),
        "a raw patient id (only keyed hashes may be logged)".into(),
    ));
    forbidden.push((COMMENT.into(), "a patient's free text".into()));
    forbidden.push((
        "Feeling much better now".into(),
        "a cancellation reason".into(),
    ));
    forbidden.push((canvas_secret.into(), "the Canvas client secret".into()));
    forbidden.push((me.clone(), "a bearer token".into()));
    forbidden.push((staff.clone(), "a bearer token".into()));
    forbidden.push((
        app.settings
            .auth
            .hs256_secret
            .as_ref()
            .unwrap()
            .expose()
            .to_owned(),
        "the JWT secret".into(),
    ));
    for (needle, what) in forbidden {
        if let Some(at) = logs.find(&needle) {
            let line_start = logs[..at].rfind('\n').map_or(0, |i| i + 1);
            let line_end = logs[at..].find('\n').map_or(logs.len(), |i| at + i);
            panic!(
                "{what} ({needle:?}) is in the logs:\n{}",
                &logs[line_start..line_end]
            );
        }
    }
}

/// An HTTP receiver that answers 204 to anything and logs nothing (a library's own trace
/// output about the bodies it received would blur what slotgate logs).
async fn silent_receiver() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut seen = Vec::new();
                // Read the head, then as much body as Content-Length says.
                loop {
                    let Ok(n) = socket.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&seen).into_owned();
                    if let Some(head_end) = text.find("\r\n\r\n") {
                        let length = text[..head_end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if seen.len() >= head_end + 4 + length {
                            let _ = socket
                                .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                                .await;
                            seen.clear();
                        }
                    }
                }
            });
        }
    });
    address
}
