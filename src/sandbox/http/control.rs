//! `/_sandbox/*`: the fault knobs, settings and journal over HTTP, for tests in other
//! languages and for docker-compose setups. No auth: the sandbox only ever serves loopback.

use actix_web::http::StatusCode;
use actix_web::web::{self, Data, Json};
use actix_web::{HttpResponse, Responder};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::outcome::json;
use crate::sandbox::Faults;
use crate::sandbox::state::Shared;

#[derive(Debug, Serialize, Deserialize)]
pub struct Settings {
    pub reject_double_booking: bool,
}

async fn faults(shared: Data<Shared>) -> impl Responder {
    json(StatusCode::OK, &shared.faults())
}

async fn set_faults(shared: Data<Shared>, faults: Json<Faults>) -> HttpResponse {
    if let Err(name) = faults.check() {
        return json(
            StatusCode::BAD_REQUEST,
            &json!({"error": format!("{name} must be between 0.0 and 1.0")}),
        );
    }
    shared.set_faults(faults.into_inner());
    json(StatusCode::OK, &shared.faults())
}

fn settings_of(shared: &Shared) -> Settings {
    Settings {
        reject_double_booking: shared.reject_double_booking(),
    }
}

async fn settings(shared: Data<Shared>) -> impl Responder {
    json(StatusCode::OK, &settings_of(&shared))
}

async fn set_settings(shared: Data<Shared>, settings: Json<Settings>) -> impl Responder {
    shared.set_reject_double_booking(settings.reject_double_booking);
    json(StatusCode::OK, &settings_of(&shared))
}

async fn journal(shared: Data<Shared>) -> impl Responder {
    json(StatusCode::OK, &shared.journal())
}

async fn clear_journal(shared: Data<Shared>) -> impl Responder {
    shared.clear_journal();
    HttpResponse::NoContent().finish()
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/_sandbox/faults")
            .get(faults)
            .put(set_faults),
    )
    .service(
        web::resource("/_sandbox/settings")
            .get(settings)
            .put(set_settings),
    )
    .service(
        web::resource("/_sandbox/journal")
            .get(journal)
            .delete(clear_journal),
    );
}
