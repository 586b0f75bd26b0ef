//! Spawning sandboxes and speaking to them like a Canvas client would.

use std::sync::Arc;

use jiff::ToSpan;
use jiff::civil::{Date, Weekday};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use slotgate::sandbox::{Clinic, Sandbox, SandboxControl, SandboxOptions};

pub const CLIENT_ID: &str = "test-client";
pub const CLIENT_SECRET: &str = "test-secret";

// Demo clinic ids the tests name.
pub const OKAFOR: &str = "c48de0f40beb4fee86f872da7a840cf9";
pub const REYES: &str = "f8caf3fdef4f451a8f708556591ee1c2";
pub const KIM: &str = "1bf21ed0b976409ea862be25ec429b39";
pub const WHITFIELD: &str = "f095654613f54e5f8e260eb5b4e52c6d";
pub const BELL: &str = "4a829176cbc043e8aa428e61f78a8cf0";
pub const HAYES: &str = "6421173d214542e4bbece9b3ccb4a1f4";
pub const PARK: &str = "18e7f384238642fdbf422ec7eee550ac";
pub const OLIVIA: &str = "6052e4cce53549a5864604d1cf81e0fc";
pub const JAMES: &str = "dd29985f53784d5eb45ee0a157c5f866";
pub const SOFIA: &str = "97491556534444838b94dbb0909b6b3d";
pub const ISABELLA: &str = "98091815347b4afdbb4e58267ad82f71";
pub const CHARLOTTE: &str = "6e43282b443745afafcf103f3447235e";
pub const BENJAMIN: &str = "d5fc5fc68b9c4edf81e899844eb3a706";
pub const NOAH_BROWN: &str = "7652c75faafc4bafa1d8393b1189715f";
pub const OAKLAND: &str = "388f8191-af1d-433a-93d7-6db62585ae1e";
pub const BROOKLYN: &str = "0b4e6abb-b7fb-4f1c-97e9-1d7253d3d5a5";

pub struct TestSandbox {
    pub sandbox: Sandbox,
    pub base: String,
    pub client: reqwest::Client,
    pub token: String,
}

pub fn options() -> SandboxOptions {
    SandboxOptions {
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        ..SandboxOptions::default()
    }
}

pub async fn spawn() -> TestSandbox {
    spawn_with(options()).await
}

pub async fn spawn_with(options: SandboxOptions) -> TestSandbox {
    let sandbox = Sandbox::start(options).await.expect("sandbox starts");
    let base = sandbox.base_url();
    let client = reqwest::Client::new();
    let mut app = TestSandbox {
        sandbox,
        base,
        client,
        token: String::new(),
    };
    let answer = app
        .request_token(CLIENT_ID, CLIENT_SECRET, "client_credentials")
        .await;
    if answer.status() == StatusCode::OK {
        let body: Value = answer.json().await.unwrap();
        app.token = body["access_token"].as_str().unwrap().to_owned();
    }
    app
}

impl TestSandbox {
    pub fn control(&self) -> SandboxControl {
        self.sandbox.control()
    }

    pub fn clinic(&self) -> Arc<Clinic> {
        self.control().clinic()
    }

    pub fn today(&self) -> Date {
        self.clinic().today
    }

    pub async fn request_token(&self, id: &str, secret: &str, grant: &str) -> Response {
        self.client
            .post(format!("{}/auth/token/", self.base))
            .form(&[
                ("grant_type", grant),
                ("client_id", id),
                ("client_secret", secret),
            ])
            .send()
            .await
            .unwrap()
    }

    /// A GET of a path relative to the FHIR root (`/Slot?...`), with the bearer token.
    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        let response = self.get(path).await;
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    /// Every entry's resource of a search, following `next` links as a client must.
    pub async fn all(&self, path: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut next = Some(path.to_owned());
        while let Some(path) = next {
            let (status, bundle) = self.get_json(&path).await;
            assert_eq!(status, StatusCode::OK, "{path}: {bundle}");
            let entries = bundle["entry"].as_array().cloned().unwrap_or_default();
            out.extend(entries.into_iter().map(|e| e["resource"].clone()));
            next = link(&bundle, "next");
        }
        out
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn put(&self, path: &str, body: &Value) -> Response {
        self.client
            .put(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Creates an appointment and answers its id, from the `Location` header.
    pub async fn book(&self, body: &Value) -> String {
        let response = self.post("/Appointment", body).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        appointment_id(&location)
    }

    /// Every free slot of a schedule on `start..=end` for `duration` minutes.
    pub async fn slots(&self, schedule: &str, start: Date, end: Date, duration: u32) -> Vec<Value> {
        let query = format!(
            "/Slot?schedule={schedule}&start={start}&end={end}&duration={duration}&_count=100"
        );
        self.all(&query).await
    }
}

pub fn link(bundle: &Value, relation: &str) -> Option<String> {
    bundle["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == relation)
        .and_then(|l| l["url"].as_str())
        .map(str::to_owned)
}

/// The id in `http://host/Appointment/<id>/_history/1`.
pub fn appointment_id(location: &str) -> String {
    let rest = location
        .split("/Appointment/")
        .nth(1)
        .expect("an Appointment URL");
    rest.split('/').next().unwrap().to_owned()
}

pub fn schedule_id(location_key: u32, practitioner: &str) -> String {
    format!("Location.{location_key}-Staff.{practitioner}")
}

/// The first date on or after `today + from_days` that falls on `weekday`.
pub fn next(today: Date, from_days: i64, weekday: Weekday) -> Date {
    let start = today.saturating_add(from_days.days());
    (0..7)
        .map(|n| start.saturating_add(n.days()))
        .find(|d| d.weekday() == weekday)
        .unwrap()
}

/// A booking body in the shape of the Canvas docs' create example.
pub fn appointment(practitioner: &str, patient: Option<&str>, start: &str, end: &str) -> Value {
    let mut participants = vec![json!({
        "actor": {"reference": format!("Practitioner/{practitioner}")}, "status": "accepted"})];
    if let Some(patient) = patient {
        participants.push(json!({
            "actor": {"reference": format!("Patient/{patient}")}, "status": "accepted"}));
    }
    json!({
        "resourceType": "Appointment",
        "status": "booked",
        "appointmentType": {"coding": [{"system": "http://snomed.info/sct", "code": "308335008"}]},
        "reasonCode": [{"coding": [{"system": "INTERNAL", "code": "INIV"}], "text": "First visit"}],
        "supportingInformation": [{"reference": format!("Location/{OAKLAND}")}],
        "start": start,
        "end": end,
        "participant": participants,
    })
}

/// The issue code and text of an OperationOutcome body.
pub fn outcome(body: &Value) -> (String, String) {
    assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
    let issue = &body["issue"][0];
    (
        issue["code"].as_str().unwrap().to_owned(),
        issue["details"]["text"].as_str().unwrap().to_owned(),
    )
}

pub fn starts(slots: &[Value]) -> Vec<String> {
    slots
        .iter()
        .map(|s| s["start"].as_str().unwrap().to_owned())
        .collect()
}

pub fn instant(text: &str) -> jiff::Timestamp {
    text.parse().unwrap()
}

/// `day` at local `hh:mm` at the location with this practice-location key, stamped with that
/// instant's offset as Canvas stamps slots.
pub fn local(app: &TestSandbox, location_key: u32, day: Date, hh: i8, mm: i8) -> String {
    let clinic = app.clinic();
    let tz = &clinic.location_by_key(location_key).unwrap().tz;
    let at = tz
        .to_ambiguous_timestamp(day.at(hh, mm, 0, 0))
        .compatible()
        .unwrap();
    slotgate::canvas::fhir::Instant::new(at, tz.to_offset(at)).to_string()
}

/// A weekday a week out, clear of seeded bookings and the holiday.
pub fn day(app: &TestSandbox) -> Date {
    next(app.today(), 8, Weekday::Thursday)
}

/// `day` at `hh:mm` UTC.
pub fn at(day: Date, hhmm: &str) -> String {
    format!("{day}T{hhmm}:00Z")
}

/// A create that must fail: its status, issue code and text.
pub async fn rejected(app: &TestSandbox, body: &Value) -> (StatusCode, String, String) {
    let response = app.post("/Appointment", body).await;
    let status = response.status();
    let (code, text) = outcome(&response.json().await.unwrap());
    (status, code, text)
}

/// `good` with one field replaced, or removed for `null`.
pub fn variant(good: &Value, key: &str, value: Value) -> Value {
    let mut body = good.clone();
    if value.is_null() {
        body.as_object_mut().unwrap().remove(key);
    } else {
        body[key] = value;
    }
    body
}
