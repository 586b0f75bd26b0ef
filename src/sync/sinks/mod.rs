//! Where appointments are mirrored. Each sink turns "this appointment should now look like
//! this (or be gone)" into its own API calls; the delivery worker handles retries.

pub mod google;
pub mod graph;
pub mod webhook;

use std::time::Duration;

use futures::future::BoxFuture;

use super::mapping::CalendarEvent;
use crate::config::sync::PhiLevel;
use crate::store::sync::{Job, SinkRecord};

/// How one delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered {
        external_id: Option<String>,
    },
    /// Try again later (after `after` when the receiver said so).
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// Will never work as sent: dead-letter it.
    Failed(String),
}

pub trait Sink: Send + Sync {
    fn name(&self) -> &str;
    fn kind(&self) -> &'static str;
    fn phi(&self) -> PhiLevel;
    /// Whether this sink mirrors the clinician's appointments at all.
    fn covers(&self, practitioner: &str) -> bool;
    /// The calendar the clinician's appointments go to, for sinks that are calendars.
    fn calendar_of(&self, _practitioner: &str) -> Option<&str> {
        None
    }
    /// Makes the receiver hold `event` (or nothing) for the job's appointment; `record` is what
    /// it was last given.
    fn deliver<'a>(
        &'a self,
        job: &'a Job,
        record: Option<&'a SinkRecord>,
        event: Option<&'a CalendarEvent>,
    ) -> BoxFuture<'a, Outcome>;
    /// Sends a message that is not an appointment's state (`waitlist.offer`), for sinks that
    /// take messages; calendars do not (`None`).
    fn announce<'a>(
        &'a self,
        _kind: &'a str,
        _message_id: &'a str,
        _data: &'a serde_json::Value,
    ) -> Option<BoxFuture<'a, Outcome>> {
        None
    }
}

/// Try again later, for `reason`, with no time the receiver asked for.
pub fn retry(reason: &str) -> Outcome {
    Outcome::Retry {
        reason: reason.to_owned(),
        after: None,
    }
}

/// `Retry-After` in seconds, when a receiver sends one.
pub fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .map(Duration::from_secs)
}

/// The usual reading of an answer: 2xx done, 408/429/5xx later, other 4xx never.
pub fn classify(status: reqwest::StatusCode, after: Option<Duration>) -> Option<Outcome> {
    if status.is_success() {
        return None;
    }
    let reason = format!("HTTP {}", status.as_u16());
    Some(
        if matches!(status.as_u16(), 408 | 429) || status.is_server_error() {
            Outcome::Retry { reason, after }
        } else {
            Outcome::Failed(reason)
        },
    )
}

/// The shared HTTP client of the sinks: every call has 10 seconds (the contract's webhook limit).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(3))
        .user_agent(concat!("slotgate/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}
