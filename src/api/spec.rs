//! `GET /api-docs/openapi.json`: the OpenAPI document, exactly as committed. On the embedded
//! demo (no Canvas configured, a development token printed), the request-body examples of
//! holding, booking and rescheduling (on `/v1` and the FHIR operations) name what exists right
//! now: an upcoming slot and the demo patient, so that Swagger UI's "Try it out" books as it is.

use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use actix_web::{HttpResponse, get, web};
use bytes::Bytes;
use serde_json::{Value, json};

use super::AppState;
use crate::scheduling::browse;
use crate::types::{PatientId, UsState};

/// The patient the demo's examples book for.
#[derive(Debug, Clone)]
pub struct DemoPatient {
    pub id: PatientId,
    pub state: UsState,
}

pub struct Spec {
    committed: Bytes,
    document: Value,
    demo: Option<DemoPatient>,
    /// The document as last served on the demo, until when it is reused (slots are taken, and
    /// pass). Held while a new one is made, so that many loads of Swagger UI make one.
    live: Mutex<Option<(Instant, Bytes)>>,
}

/// How long live examples are reused, and how long the committed document stands in when none
/// could be found (Canvas slow or away: Swagger UI does not wait on it).
const FRESH: Duration = Duration::from_secs(30);
const RETRY: Duration = Duration::from_secs(2);
const PATIENCE: Duration = Duration::from_secs(2);
/// The reason the demo's examples book: a 30-minute follow-up, by video.
const DEMO_REASON: &str = "FLUP";

impl Spec {
    pub fn new(demo: Option<DemoPatient>) -> Spec {
        let text = super::docs::openapi_json();
        Spec {
            document: serde_json::from_str(&text).unwrap_or(Value::Null),
            committed: Bytes::from(text),
            demo,
            live: Mutex::new(None),
        }
    }

    /// The demo's document: with live examples when an upcoming slot is found in time, else the
    /// committed one.
    async fn live(&self, state: &AppState, demo: &DemoPatient) -> Bytes {
        let mut live = self.live.lock().await;
        if let Some((until, body)) = live.as_ref()
            && Instant::now() < *until
        {
            return body.clone();
        }
        let made = tokio::time::timeout(PATIENCE, self.with_examples(state, demo))
            .await
            .ok()
            .flatten();
        let (body, keep) = match made {
            Some(body) => (body, FRESH),
            None => (self.committed.clone(), RETRY),
        };
        *live = Some((Instant::now() + keep, body.clone()));
        body
    }

    async fn with_examples(&self, state: &AppState, demo: &DemoPatient) -> Option<Bytes> {
        let slots = browse::upcoming(state, DEMO_REASON, demo.state, 2)
            .await
            .ok()?;
        let [book, move_to] = slots.as_slice() else {
            return None;
        };
        let (book, move_to) = (state.slot_ids.issue(book), state.slot_ids.issue(move_to));
        let (patient, patient_state) = (demo.id.to_string(), demo.state.to_string());
        let mut document = self.document.clone();
        let schemas = &mut document["components"]["schemas"];
        schemas["BookBody"]["example"] = json!({"slot_id": book, "reason_code": DEMO_REASON,
            "patient_id": patient, "patient_state": patient_state,
            "comment": "First visit, booked from Swagger UI"});
        schemas["HoldBody"]["example"] = json!({"slot_id": book, "patient_id": patient});
        schemas["RescheduleBody"]["example"] =
            json!({"slot_id": move_to, "patient_state": patient_state});
        // Two weeks of waiting: the sandbox's cancellations (or one made from Swagger UI) offer
        // the demo patient an opening within seconds.
        let fortnight = jiff::Timestamp::now()
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .date()
            .saturating_add(jiff::Span::new().days(14));
        schemas["WaitlistBody"]["example"] = json!({"patient_id": patient,
            "reason_code": DEMO_REASON, "duration": 30, "patient_state": patient_state,
            "modality": "telehealth", "latest_date": fortnight.to_string()});
        // The FHIR operations' examples: the demo patient's follow-ups from tomorrow, and the
        // same upcoming slot to hold or book by its identifier.
        let tomorrow = jiff::Timestamp::now()
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .date()
            .saturating_add(jiff::Span::new().days(1));
        let patient_ref = json!({"name": "patient-reference",
            "valueReference": {"reference": format!("Patient/{patient}")}});
        let slot_ref = json!({"name": "appointment-reference", "valueReference":
            {"identifier": {"system": super::fhir::SLOT_SYSTEM, "value": book}}});
        let paths = &mut document["paths"];
        let examples = [
            (
                "$find",
                json!([
                {"name": "visit-type", "valueCoding": {"system": "INTERNAL", "code": DEMO_REASON}},
                {"name": "modality", "valueCode": "telehealth"},
                {"name": "start", "valueDate": tomorrow.to_string()},
                patient_ref.clone(),
                {"name": "_count", "valueInteger": 5}]),
            ),
            ("$hold", json!([slot_ref.clone(), patient_ref.clone()])),
            ("$book", json!([slot_ref, patient_ref])),
        ];
        for (op, parameters) in examples {
            paths[format!("/fhir/r4/Appointment/{op}")]["post"]["requestBody"]["content"]
                [super::fhir::FHIR_JSON]["example"] =
                json!({"resourceType": "Parameters", "parameter": parameters});
        }
        serde_json::to_vec_pretty(&document).ok().map(Bytes::from)
    }
}

#[get("/api-docs/openapi.json")]
pub async fn serve(spec: web::Data<Spec>, state: web::Data<AppState>) -> HttpResponse {
    let body = match &spec.demo {
        Some(demo) => spec.live(&state, demo).await,
        None => spec.committed.clone(),
    };
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body)
}
