//! Services that combine the clinic's rules, caches, shared state and Canvas into answers.

use std::sync::Arc;

use crate::canvas::CanvasClient;
use crate::config::Settings;
use crate::store::Store;
pub mod answer_cache;
pub mod availability;
#[cfg(test)]
mod availability_props;
pub mod booking;
pub mod browse;
pub mod canvas_write;
pub mod clinicians;
pub mod directory;
pub mod events;
pub mod guard;
pub mod holds;
pub mod lifecycle;
pub mod recovery;
pub mod reload;
pub mod slot_cache;
pub mod slot_id;
pub mod smart;
pub mod waitlist;

/// Everything the scheduling services work with, built once at start-up.
pub struct Services {
    pub canvas: CanvasClient,
    pub settings: Arc<Settings>,
    pub directory: Arc<directory::Directory>,
    pub slot_cache: Arc<slot_cache::SlotCache>,
    pub slot_ids: slot_id::SlotIds,
    pub store: Arc<dyn Store>,
    /// Rendered availability answers.
    pub answers: answer_cache::AnswerCache,
    /// Keys the patient references telemetry may carry.
    pub log_key: aws_lc_rs::hmac::Key,
    /// The SMART Scheduling Links publication, built once and shared.
    pub publisher: smart::Publisher,
}

impl Services {
    /// The clinic's rules and booking policy in force (replaced whole by a reload).
    pub fn policy(&self) -> Arc<crate::rules::model::Policy> {
        self.directory.policy()
    }

    /// How telemetry names a patient: a keyed hash, the same on every replica (the key derives
    /// from the shared slot-id secret), that support can match but no log reader can reverse.
    pub fn patient_ref(&self, patient: &crate::types::PatientId) -> String {
        let tag = aws_lc_rs::hmac::sign(&self.log_key, patient.as_str().as_bytes());
        tag.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The key for [`Services::patient_ref`], derived from a deployment secret.
pub fn log_key(secret: &[u8]) -> aws_lc_rs::hmac::Key {
    let derived = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret),
        b"slotgate patient references",
    );
    aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, derived.as_ref())
}

/// Shared state that cannot be reached: writes fail closed.
pub fn booking_store_error(e: crate::store::StoreError) -> crate::error::ApiError {
    tracing::error!(error = %e, "shared state unavailable");
    crate::error::ApiError::new(
        crate::error::Code::UpstreamUnavailable,
        "Booking is unavailable right now; please retry.",
    )
    .with_retry_after(2)
}
