//! HTTP only: one file per resource, their DTOs, and the OpenAPI document. Handlers extract and
//! validate input, call one service function, and map the result to a DTO.

pub mod context;
pub mod docs;
pub mod health;
pub mod locations;

use std::sync::Arc;

use actix_web::web;

use crate::canvas::CanvasClient;
use crate::config::Settings;

/// What every handler can reach.
pub struct AppState {
    pub canvas: CanvasClient,
    pub settings: Arc<Settings>,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(health::metrics)
        .service(web::scope("/v1").service(locations::list));
}
