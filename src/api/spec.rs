//! `GET /api-docs/openapi.json`: the OpenAPI document, exactly as committed. On the embedded
//! demo (no Canvas configured, a development token printed), the request-body examples of
//! holding, booking and rescheduling name what exists right now: an upcoming slot and the demo
//! patient, so that Swagger UI's "Try it out" books as it is.

use std::sync::Mutex;
use std::time::{Duration, Instant};

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
    /// The document with live examples, and when they were found (slots are taken, and pass).
    live: Mutex<Option<(Instant, Bytes)>>,
}

/// How long live examples are reused.
const FRESH: Duration = Duration::from_secs(30);
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

    fn cached(&self) -> Option<Bytes> {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.as_ref()
            .filter(|(at, _)| at.elapsed() < FRESH)
            .map(|(_, body)| body.clone())
    }

    /// The document with the demo's examples, when an upcoming slot can be found.
    async fn live(&self, state: &AppState, demo: &DemoPatient) -> Option<Bytes> {
        if let Some(body) = self.cached() {
            return Some(body);
        }
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
        let body = Bytes::from(serde_json::to_vec_pretty(&document).ok()?);
        *self.live.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), body.clone()));
        Some(body)
    }
}

#[get("/api-docs/openapi.json")]
pub async fn serve(spec: web::Data<Spec>, state: web::Data<AppState>) -> HttpResponse {
    let body = match &spec.demo {
        Some(demo) => spec.live(&state, demo).await,
        None => None,
    };
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body.unwrap_or_else(|| spec.committed.clone()))
}
