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
pub mod canvas_write;
pub mod clinicians;
pub mod directory;
pub mod events;
pub mod holds;
pub mod lifecycle;
pub mod slot_cache;
pub mod slot_id;

/// Everything the scheduling services work with, built once at start-up.
pub struct Services {
    pub canvas: CanvasClient,
    pub settings: Arc<Settings>,
    pub directory: Arc<directory::Directory>,
    pub slot_cache: Arc<slot_cache::SlotCache>,
    pub slot_ids: slot_id::SlotIds,
    pub store: Arc<dyn Store>,
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
