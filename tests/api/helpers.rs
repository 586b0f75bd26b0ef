//! `spawn_app()`: the real application on a random loopback port, on its embedded sandbox
//! (also on a random port), with typed helpers to call it like a client would.

use reqwest::Response;
use slotgate::auth::DevToken;
use slotgate::config::{Settings, Sources};
use slotgate::sandbox::SandboxControl;
use slotgate::startup::Application;

/// Every test app listens on port 0 with one worker; the sandbox too.
const TEST_BASE: &str = r#"
[server]
listen = "127.0.0.1:0"
workers = 1
shutdown_timeout_seconds = 1
[sandbox]
listen = "127.0.0.1:0"
[telemetry]
log_format = "json"
"#;

pub const STAFF_SCOPES: &str = "scheduling.read scheduling.book scheduling.staff scheduling.admin";

#[allow(dead_code)] // not every test file uses every handle
pub struct TestApp {
    pub address: String,
    pub http: reqwest::Client,
    pub sandbox: Option<SandboxControl>,
    pub sandbox_url: Option<String>,
    pub settings: Settings,
    pub handle: actix_web::dev::ServerHandle,
    /// Ends once the server, its background loops and its final state flush are done.
    pub stopped: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub async fn spawn_app_with(overrides: &[&str]) -> TestApp {
    spawn_app_from(None, overrides).await
}

/// The app with a configuration file under the overrides (what a rules reload re-reads).
pub async fn spawn_app_from(file: Option<&std::path::Path>, overrides: &[&str]) -> TestApp {
    slotgate::telemetry::init_for_tests();
    let mut layers = vec![TEST_BASE];
    layers.extend_from_slice(overrides);
    let settings = Settings::load(&Sources {
        file,
        environment: false,
        overrides: &layers,
    })
    .expect("test configuration is valid");
    let app = Application::build(settings.clone())
        .await
        .expect("the application starts");
    let address = format!("http://{}", app.address());
    let sandbox = app.sandbox().map(|s| s.control());
    let sandbox_url = app.sandbox().map(|s| s.base_url());
    let handle = app.handle();
    let stopped = Some(tokio::spawn(app.run_until_stopped()));
    TestApp {
        address,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        sandbox,
        sandbox_url,
        settings,
        handle,
        stopped,
    }
}

impl TestApp {
    /// Stops the server gracefully and waits until it has saved its state.
    pub async fn stop(&mut self) {
        self.handle.stop(true).await;
        if let Some(stopped) = self.stopped.take() {
            stopped
                .await
                .expect("the server task ends")
                .expect("the server stops cleanly");
        }
    }

    /// A token signed with this app's HS256 secret.
    pub fn token(&self, patient: Option<&str>, scope: &str) -> String {
        let auth = &self.settings.auth;
        let minter = DevToken {
            secret: auth.hs256_secret.as_ref().expect("tests sign with HS256"),
            issuer: &auth.issuer,
            audience: &auth.audience,
            patient_claim: &auth.patient_claim,
        };
        // Each caller its own subject, as the identity provider would give them.
        let subject = patient.map_or_else(|| format!("staff:{scope}"), |p| format!("patient:{p}"));
        let patient = patient.map(|p| p.parse().expect("a patient key"));
        minter.mint(&subject, patient.as_ref(), scope, 600).unwrap()
    }

    pub fn staff_token(&self) -> String {
        self.token(None, STAFF_SCOPES)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut request = self.http.get(format!("{}{path}", self.address));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        request.send().await.expect("the request reaches slotgate")
    }
}

/// Asserts a problem+json body with the given status and code and returns it.
#[track_caller]
pub fn assert_problem(
    response: Response,
    status: u16,
    code: &str,
) -> impl std::future::Future<Output = serde_json::Value> {
    let caller = std::panic::Location::caller();
    let code = code.to_owned();
    async move { check_problem(response, status, &code, caller).await }
}

async fn check_problem(
    response: Response,
    status: u16,
    code: &str,
    caller: &std::panic::Location<'_>,
) -> serde_json::Value {
    if response.status().as_u16() != status {
        let got = response.status();
        panic!(
            "{caller}: expected {status} {code}, got {got}: {}",
            response.text().await.unwrap_or_default()
        );
    }
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/problem+json"),
        "{content_type}"
    );
    let body: serde_json::Value = response.json().await.expect("a JSON problem");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert!(body["title"].is_string() && body["detail"].is_string() && body["type"].is_string());
    assert_eq!(
        body["request_id"].as_str(),
        request_id.as_deref(),
        "request id in body and header"
    );
    body
}

impl TestApp {
    pub async fn post_json(
        &self,
        path: &str,
        token: &str,
        body: &serde_json::Value,
        key: Option<&str>,
    ) -> Response {
        let mut request = self
            .http
            .post(format!("{}{path}", self.address))
            .bearer_auth(token)
            .json(body);
        if let Some(k) = key {
            request = request.header("Idempotency-Key", k);
        }
        request.send().await.expect("the request reaches slotgate")
    }

    pub async fn delete(&self, path: &str, token: &str) -> Response {
        self.http
            .delete(format!("{}{path}", self.address))
            .bearer_auth(token)
            .send()
            .await
            .expect("the request reaches slotgate")
    }

    pub fn patient_token(&self, patient: &str) -> String {
        self.token(Some(patient), "scheduling.read scheduling.book")
    }

    /// Appointments the sandbox received as creates.
    pub fn creates(&self) -> Vec<serde_json::Value> {
        self.sandbox
            .as_ref()
            .unwrap()
            .journal()
            .into_iter()
            .filter(|j| j.method == "POST" && j.path == "/Appointment")
            .filter_map(|j| j.body)
            .collect()
    }
}

/// Books in Canvas itself, as front-desk staff do in its UI (slotgate is not asked): an
/// Appointment for the patient and practitioner at the slot's time and location. Its id.
pub async fn book_in_canvas(
    canvas: &SandboxControl,
    canvas_url: &str,
    slot: &serde_json::Value,
    patient: &str,
    practitioner: &str,
) -> String {
    let location = slot["location"]["id"]
        .as_str()
        .expect("the slot's location");
    let r = reqwest::Client::new()
        .post(format!("{canvas_url}/Appointment"))
        .bearer_auth(canvas.issue_token())
        .json(&serde_json::json!({
            "resourceType": "Appointment",
            "status": "booked",
            "appointmentType": {"coding": [{"system": "http://snomed.info/sct", "code": "448337001"}]},
            "supportingInformation": [{"reference": format!("Location/{location}")}],
            "start": slot["start"], "end": slot["end"],
            "participant": [
                {"actor": {"reference": format!("Patient/{patient}")}, "status": "accepted"},
                {"actor": {"reference": format!("Practitioner/{practitioner}")}, "status": "accepted"}
            ]
        }))
        .send()
        .await
        .expect("the sandbox answers");
    assert_eq!(r.status(), 201);
    r.headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .and_then(|l| l.split("/Appointment/").nth(1))
        .and_then(|rest| rest.split('/').next())
        .expect("Canvas's Location header")
        .to_owned()
}

/// A fresh idempotency key.
pub fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}
