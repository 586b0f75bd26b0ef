//! `webhook` sinks: Standard Webhooks messages, `appointment.created|updated|cancelled`.

use futures::future::BoxFuture;
use serde_json::json;
use url::Url;

use super::{Outcome, Sink, classify, retry_after};
use crate::config::Secret;
use crate::config::sync::{PhiLevel, webhook_key};
use crate::store::sync::{Job, SinkRecord};
use crate::sync::mapping::CalendarEvent;
use crate::sync::signature;

pub struct WebhookSink {
    name: String,
    phi: PhiLevel,
    url: Url,
    key: Vec<u8>,
    http: reqwest::Client,
}

impl WebhookSink {
    pub fn new(name: String, phi: PhiLevel, url: Url, secret: &Secret) -> Self {
        Self {
            name,
            phi,
            url,
            key: webhook_key(secret.expose()).unwrap_or_default(),
            http: super::http(),
        }
    }
}

/// The message a change makes; `None` when there is nothing to say (never held, still gone).
pub fn message(
    job: &Job,
    record: Option<&SinkRecord>,
    event: Option<&CalendarEvent>,
) -> Option<serde_json::Value> {
    // Without a record, a job that must be sent says the receiver may have heard of it
    // (slotgate's state was lost): a removal then tells of the cancellation.
    let held = match record {
        Some(r) => r.delivered.is_some(),
        None => job.must_send && event.is_none(),
    };
    let (kind, data) = match (event, held) {
        (Some(e), false) => ("appointment.created", json!(e)),
        (Some(e), true) => ("appointment.updated", json!(e)),
        // As it ended, when Canvas still has it (else it is gone: its id is all there is).
        (None, true) => (
            "appointment.cancelled",
            job.farewell.clone().unwrap_or_else(
                || json!({"appointment_id": job.appointment_id, "status": "cancelled"}),
            ),
        ),
        (None, false) => return None,
    };
    Some(json!({"type": kind, "timestamp": job.created_at.to_string(), "data": data}))
}

impl Sink for WebhookSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn phi(&self) -> PhiLevel {
        self.phi
    }

    fn covers(&self, _: &str) -> bool {
        true
    }

    fn deliver<'a>(
        &'a self,
        job: &'a Job,
        record: Option<&'a SinkRecord>,
        event: Option<&'a CalendarEvent>,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let Some(body) = message(job, record, event) else {
                return Outcome::Delivered { external_id: None };
            };
            self.send(&job.message_id, &body).await
        })
    }

    fn announce<'a>(
        &'a self,
        kind: &'a str,
        message_id: &'a str,
        data: &'a serde_json::Value,
    ) -> Option<BoxFuture<'a, Outcome>> {
        let body =
            json!({"type": kind, "timestamp": jiff::Timestamp::now().to_string(), "data": data});
        Some(Box::pin(async move { self.send(message_id, &body).await }))
    }
}

impl WebhookSink {
    /// One signed Standard Webhooks POST.
    async fn send(&self, message_id: &str, body: &serde_json::Value) -> Outcome {
        let body = body.to_string().into_bytes();
        let timestamp = jiff::Timestamp::now().as_second();
        let signature = signature::sign(&self.key, message_id, timestamp, &body);
        let sent = self
            .http
            .post(self.url.clone())
            .header("content-type", "application/json")
            .header("webhook-id", message_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        match sent {
            // The contract: 2xx is delivered, anything else is tried again until
            // `max_attempts` (a receiver's 4xx is often a deploy in progress, not a verdict).
            Ok(r) => match classify(r.status(), retry_after(&r)) {
                None => Outcome::Delivered { external_id: None },
                Some(Outcome::Failed(reason)) => Outcome::Retry {
                    reason,
                    after: retry_after(&r),
                },
                Some(other) => other,
            },
            Err(e) => Outcome::Retry {
                reason: if e.is_timeout() {
                    "no answer in 10 s".into()
                } else {
                    "unreachable".into()
                },
                after: None,
            },
        }
    }
}
