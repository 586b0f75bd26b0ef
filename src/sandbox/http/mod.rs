//! The sandbox's HTTP surface: the Canvas OAuth token endpoint, the Fumage FHIR routes, and
//! `/_sandbox` controls. Handlers stay thin; the rules live in `appointments`, `slots`,
//! `clinic` and `params`.

use actix_web::{HttpRequest, HttpResponse, ResponseError, web};

mod appointment;
mod control;
mod directory;
pub mod frontdoor;
mod outcome;
mod paging;
mod patient;
mod practitioner;
mod slot;
mod token;

pub use outcome::FhirError;

/// Other methods on a known resource path: 405 `not-supported` (Fumage answers PATCH so).
async fn not_supported() -> HttpResponse {
    FhirError::not_supported().error_response()
}

/// Paths Fumage would not know.
pub async fn unknown_path(req: HttpRequest) -> HttpResponse {
    FhirError::unknown_path(req.path()).error_response()
}

fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(not_supported))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    control::routes(cfg);
    cfg.service(resource("/auth/token/").post(token::issue))
        .service(resource("/Schedule").get(directory::schedules))
        .service(resource("/Slot").get(slot::search))
        .service(resource("/Location").get(directory::locations))
        .service(resource("/Location/{id}").get(directory::location))
        .service(resource("/Practitioner").get(practitioner::search))
        .service(resource("/Practitioner/{id}").get(practitioner::read))
        .service(resource("/Patient").get(patient::search))
        .service(resource("/Patient/{id}").get(patient::read))
        .service(
            resource("/Appointment")
                .get(appointment::search)
                .post(appointment::create),
        )
        .service(
            resource("/Appointment/{id}")
                .get(appointment::read)
                .put(appointment::update),
        );
}
