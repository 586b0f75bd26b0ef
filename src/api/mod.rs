//! HTTP only: one file per resource, their DTOs, and the OpenAPI document. Handlers extract and
//! validate input, call one service function, and map the result to a DTO.

pub mod availability;
pub mod context;
pub mod docs;
pub mod health;
pub mod locations;
pub mod params;
pub mod practitioners;
pub mod reasons;
pub mod refs;

use std::sync::Arc;

use actix_web::web;

use crate::canvas::CanvasClient;
use crate::config::Settings;
use crate::scheduling::answer_cache::AnswerCache;
use crate::scheduling::availability::Busy;
use crate::scheduling::directory::Directory;
use crate::scheduling::slot_cache::SlotCache;
use crate::scheduling::slot_id::SlotIds;

/// What every handler can reach.
pub struct AppState {
    pub canvas: CanvasClient,
    pub settings: Arc<Settings>,
    pub directory: Arc<Directory>,
    pub slot_cache: Arc<SlotCache>,
    pub slot_ids: SlotIds,
    pub answers: AnswerCache,
}

impl AppState {
    /// Time taken by holds and by bookings Canvas does not show yet. The booking store fills
    /// this in; until then nothing is hidden beyond what Canvas says.
    pub async fn busy_slots(&self) -> Vec<Busy> {
        Vec::new()
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(health::metrics)
        .service(
            web::scope("/v1")
                .service(reasons::list)
                .service(locations::list)
                .service(practitioners::list)
                .service(availability::search),
        );
}
