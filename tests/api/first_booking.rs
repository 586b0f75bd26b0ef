//! A newcomer's first booking, as the README tells it: `cargo run` with no configuration, the
//! banner's patient and token, Swagger UI's example body from the served document, and the
//! README's walk-through pasted into a shell.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cli::slotgate;

/// The binary as `cargo run` starts it (on a free port), and what its banner says.
struct FirstRun {
    child: Child,
    base: String,
    patient: String,
    token: String,
}

impl Drop for FirstRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn first_run() -> FirstRun {
    let mut child = slotgate()
        .env("SLOTGATE_SERVER__LISTEN", "127.0.0.1:0")
        .env("SLOTGATE_TELEMETRY__LOG_FILTER", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut demo = None;
    for line in lines.map_while(Result::ok) {
        if let Some(exports) = line.strip_prefix("export ") {
            demo = Some(exports.to_owned());
            break;
        }
    }
    let exports = demo.expect("the banner prints the shell exports");
    let value = |name: &str| {
        exports
            .split(' ')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} in {exports}"))
            .to_owned()
    };
    FirstRun {
        base: value("BASE"),
        patient: value("PATIENT"),
        token: value("TOKEN"),
        child,
    }
}

impl FirstRun {
    /// The served OpenAPI document once `live` says its examples are live (within 20 s: the
    /// clinic is loading).
    async fn live_spec(&self, live: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let spec: Value = reqwest::get(format!("{}/api-docs/openapi.json", self.base))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if live(&spec) {
                return spec;
            }
            assert!(Instant::now() < deadline, "no live examples");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test]
async fn the_banners_patient_books_with_swagger_uis_example_body_as_served() {
    let run = first_run();
    let http = reqwest::Client::new();
    // The served document's examples name an upcoming slot once the clinic is loaded.
    // The committed example names the demo patient too: a live one names a real slot.
    let committed: Value = serde_json::from_str(&slotgate::api::docs::openapi_json()).unwrap();
    let placeholder = &committed["components"]["schemas"]["BookBody"]["example"]["slot_id"];
    let book_body = |spec: &Value| spec["components"]["schemas"]["BookBody"]["example"].clone();
    let example = book_body(
        &run.live_spec(|spec| {
            let example = book_body(spec);
            example["patient_id"] == run.patient.as_str() && &example["slot_id"] != placeholder
        })
        .await,
    );
    let r = http
        .post(format!("{}/v1/appointments", run.base))
        .bearer_auth(&run.token)
        .header("Idempotency-Key", "swagger-ui-try-it-out")
        .json(&example)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["patient_id"], run.patient.as_str());
    assert_eq!(body["status"], "booked");
}

#[tokio::test]
async fn swagger_uis_fhir_examples_find_and_book_for_the_banners_patient() {
    let run = first_run();
    let http = reqwest::Client::new();
    let committed: Value = serde_json::from_str(&slotgate::api::docs::openapi_json()).unwrap();
    let example_of = |spec: &Value, op: &str| {
        spec["paths"][format!("/fhir/r4/Appointment/{op}")]["post"]["requestBody"]["content"]
            ["application/fhir+json"]["example"]
            .clone()
    };
    let spec = run
        .live_spec(|spec| example_of(spec, "$book") != example_of(&committed, "$book"))
        .await;
    let post = |op: &str, key: Option<&str>| {
        let mut request = http
            .post(format!("{}/fhir/r4/Appointment/{op}", run.base))
            .bearer_auth(&run.token)
            .header("Content-Type", "application/fhir+json")
            .body(example_of(&spec, op).to_string());
        if let Some(k) = key {
            request = request.header("Idempotency-Key", k);
        }
        request.send()
    };
    let found: Value = post("$find", None).await.unwrap().json().await.unwrap();
    assert_eq!(found["resourceType"], "Bundle", "{found}");
    assert!(found["total"].as_u64().unwrap() > 0, "{found}");
    let r = post("$book", Some("swagger-ui-fhir")).await.unwrap();
    let status = r.status();
    let booked: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{booked}");
    assert_eq!(booked["status"], "booked");
    assert_eq!(
        booked["participant"][0]["actor"]["reference"],
        format!("Patient/{}", run.patient)
    );
}

/// Runs the README's shell block between `<!-- marker -->` and `<!-- /marker -->` against a fresh
/// first run; its stdout when it succeeds.
async fn run_readme_block(marker: &str) -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let block = readme
        .split(&format!("<!-- {marker} -->"))
        .nth(1)
        .and_then(|rest| rest.split(&format!("<!-- /{marker} -->")).next())
        .and_then(|b| b.split("```sh").nth(1))
        .and_then(|b| b.split("```").next())
        .unwrap_or_else(|| panic!("the README's {marker} block"))
        .to_owned();
    let run = first_run();
    let out = tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("set -euo pipefail\n{block}"))
            .env("BASE", &run.base)
            .env("PATIENT", &run.patient)
            .env("TOKEN", &run.token)
            .output()
            .expect("bash runs");
        drop(run);
        out
    })
    .await
    .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    stdout.into_owned()
}

#[tokio::test]
async fn the_readmes_walk_through_runs_as_pasted() {
    let stdout = run_readme_block("first-booking").await;
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.contains("\"status\":\"cancelled\""), "{stdout}");
    assert!(stdout.contains("FLUP"), "the reasons were listed: {stdout}");
}

#[tokio::test]
async fn the_readmes_fhir_find_hold_book_runs_as_pasted() {
    let stdout = run_readme_block("fhir-booking").await;
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("JSON lines: {stdout}")))
        .collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(lines[0]["total"].as_u64().unwrap() >= 3, "{stdout}");
    assert_eq!(lines[0]["starts"].as_array().unwrap().len(), 3, "{stdout}");
    assert_eq!(lines[1]["status"], "booked");
    assert_eq!(
        lines[1]["start"], lines[0]["starts"][0],
        "the first time found was booked"
    );
    assert_eq!(lines[2]["id"], lines[1]["id"]);
    assert_eq!(lines[2]["status"], "booked");
}

#[tokio::test]
async fn the_demo_patient_joins_the_waitlist_from_swagger_ui_and_is_offered_a_time_at_once() {
    let run = first_run();
    let http = reqwest::Client::new();
    let committed: Value = serde_json::from_str(&slotgate::api::docs::openapi_json()).unwrap();
    let placeholder = &committed["components"]["schemas"]["BookBody"]["example"]["slot_id"];
    // Live examples are made together: a live booking example means a live waitlist one.
    let spec = run
        .live_spec(|spec| {
            &spec["components"]["schemas"]["BookBody"]["example"]["slot_id"] != placeholder
        })
        .await;
    let example = spec["components"]["schemas"]["WaitlistBody"]["example"].clone();
    assert_eq!(example["patient_id"], run.patient.as_str());
    let r = http
        .post(format!("{}/v1/waitlist", run.base))
        .bearer_auth(&run.token)
        .json(&example)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    // The demo clinic has open times: one is offered within seconds.
    let deadline = Instant::now() + Duration::from_secs(10);
    let offer = loop {
        let list: Value = http
            .get(format!("{}/v1/waitlist", run.base))
            .bearer_auth(&run.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(offer) = list["entries"][0].get("offer") {
            break offer.clone();
        }
        assert!(Instant::now() < deadline, "no offer: {list}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let r = http
        .post(format!(
            "{}/v1/waitlist/offers/{}/accept",
            run.base,
            offer["id"].as_str().unwrap()
        ))
        .bearer_auth(&run.token)
        .header("Idempotency-Key", "swagger-ui-accept")
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["start"], offer["slot"]["start"]);
    assert_eq!(body["patient_id"], run.patient.as_str());
}
