//! HTTP only: one file per resource, their DTOs, and the OpenAPI document. Handlers extract and
//! validate input, call one service function, and map the result to a DTO.

pub mod admin;
pub mod appointments;
pub mod availability;
pub mod body;
pub mod booking;
pub mod context;
pub mod docs;
pub mod events;
pub mod fhir;
pub mod health;
pub mod holds;
pub mod idempotency;
pub mod limits;
pub mod locations;
pub mod operators;
pub mod params;
pub mod practitioners;
pub mod reasons;
pub mod refs;
pub mod smart;
pub mod spec;
pub mod waitlist;
pub mod webhooks;

use std::sync::Arc;

use actix_web::web;

use crate::scheduling::Services;

/// What every handler can reach: the scheduling services, and what only HTTP needs.
pub struct AppState {
    pub services: Arc<Services>,
    /// Calendar sync: own writes tell it what changed.
    pub sync: Arc<crate::sync::outbound::SyncEngine>,
    /// Calendar sync in: pushes from Google and Graph land here.
    pub inbound: Arc<crate::sync::inbound::Inbound>,
    /// Whether this replica is the sync leader.
    pub leading: Arc<std::sync::atomic::AtomicBool>,
}

/// Handlers read the services as if they were the state's own fields.
impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.services
    }
}

pub use crate::scheduling::booking_store_error as store_error;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(health::metrics)
        .service(smart::manifest)
        .service(smart::locations)
        .service(smart::schedules)
        .service(smart::slots)
        .service(
            web::scope("/v1")
                .service(reasons::list)
                .service(locations::list)
                .service(practitioners::list)
                .service(availability::search)
                .service(holds::place)
                .service(holds::release)
                .service(booking::book)
                .service(appointments::list)
                .service(appointments::read)
                .service(booking::reschedule)
                .service(booking::cancel)
                .service(events::create)
                .service(waitlist::join)
                .service(waitlist::list)
                .service(waitlist::leave)
                .service(waitlist::accept)
                .service(waitlist::decline)
                .service(webhooks::canvas)
                .service(webhooks::google)
                .service(webhooks::graph)
                .service(admin::status)
                .service(admin::dead_letters)
                .service(admin::retry)
                .service(operators::reload_rules)
                .service(operators::purge_cache),
        )
        .configure(fhir::configure);
}
