//! Appointment notifications, as a clinic's Canvas notification protocol sends them
//! (canvas-fhir.md §8a, the legacy payloads), signed with Standard Webhooks so the whole
//! sync loop runs locally. Sent after the change is stored, never delaying Canvas's answer.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::canvas::fhir::{self, AppointmentStatus};

/// Where the sandbox reports appointment changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyTarget {
    pub url: String,
    /// `whsec_<base64>`: the key the receiver verifies with.
    pub secret: String,
}

/// The legacy protocol's payload for a create or an update.
pub fn payload(a: &fhir::Appointment, created: bool) -> Value {
    let id = a.id.clone().unwrap_or_default();
    let patient = a.participant_id("Patient").unwrap_or_default();
    let times = |mut v: Value| {
        v["start_time"] = json!(a.start.map(|t| fhir::Instant::utc(t.timestamp).to_string()));
        v["end_time"] = json!(a.end.map(|t| fhir::Instant::utc(t.timestamp).to_string()));
        v
    };
    let flag = match (created, a.status) {
        (true, _) => "created",
        (false, AppointmentStatus::Cancelled) => "cancelled",
        (false, AppointmentStatus::Noshow) => "no_show",
        (false, AppointmentStatus::CheckedIn | AppointmentStatus::Arrived) => "checked_in",
        (false, _) => "rescheduled",
    };
    let base = json!({"canvas_patient_key": patient, "appointment_external_id": id, flag: true});
    if matches!(flag, "created" | "rescheduled") {
        times(base)
    } else {
        base
    }
}

/// The HTTP client notifications go out with: one per sandbox, built when the first one is
/// sent (building a client reads the system's root certificates, too much to do per change).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        // Shorter than slotgate's keep-alive (30 s): a kept connection is never one it closed.
        .pool_idle_timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap_or_default()
}

/// Posts the notification in the background; a receiver that is down just misses it (the
/// reconciler is what heals that).
pub fn send(client: &reqwest::Client, target: &NotifyTarget, body: Value) {
    let key = crate::config::sync::webhook_key(&target.secret).unwrap_or_default();
    let url = target.url.clone();
    let client = client.clone();
    tokio::spawn(async move {
        let bytes = body.to_string().into_bytes();
        let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
        let ts = jiff::Timestamp::now().as_second();
        let signature = crate::sync::signature::sign(&key, &id, ts, &bytes);
        let sent = client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .body(bytes)
            .send()
            .await;
        if let Err(e) = sent {
            tracing::debug!(error = %e, "sandbox notification not delivered");
        }
    });
}
