//! The OpenAPI 3.1 document, generated from the handlers and DTOs. The committed
//! `openapi/openapi.json` must equal `ApiDoc::openapi()`; a test compares them.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "slotgate",
        description = "Scheduling API gateway for clinics on the Canvas Medical EHR: who can see a patient, when, and booking it exactly once.\n\nEvery error is `application/problem+json` with a stable `code`; every response carries `x-request-id`. Authenticate with a bearer JWT from the clinic's identity provider (scopes `scheduling.read`, `scheduling.book`, `scheduling.staff`, `scheduling.admin`).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    servers((url = "/", description = "This slotgate instance")),
    paths(
        super::health::healthz,
        super::health::readyz,
        super::health::metrics,
        super::reasons::list,
        super::locations::list,
        super::practitioners::list,
        super::availability::search,
        super::holds::place,
        super::holds::release,
        super::booking::book,
        super::appointments::list,
        super::appointments::read,
        super::booking::reschedule,
        super::booking::cancel,
        super::events::create,
        super::waitlist::join,
        super::waitlist::list,
        super::waitlist::leave,
        super::waitlist::accept,
        super::waitlist::decline,
        super::webhooks::canvas,
        super::webhooks::google,
        super::webhooks::graph,
        super::admin::status,
        super::admin::dead_letters,
        super::admin::retry,
        super::operators::reload_rules,
        super::operators::purge_cache,
        super::fhir::find::find,
        super::fhir::hold::hold,
        super::fhir::book::book,
        super::fhir::capability::metadata,
        super::fhir::capability::definition,
        super::smart::manifest,
        super::smart::locations,
        super::smart::schedules,
        super::smart::slots,
    ),
    components(schemas(crate::error::Problem, crate::error::FieldError)),
    tags(
        (name = "browse", description = "Reasons, locations, clinicians and their availability"),
        (name = "appointments", description = "Holds, bookings, rescheduling, cancelling, and Other Events"),
        (name = "waitlist", description = "Waiting for an earlier time, and answering the offers when one opens"),
        (name = "webhooks", description = "Notifications slotgate receives (own authentication, no JWT)"),
        (name = "admin", description = "Calendar sync status and dead letters"),
        (name = "operations", description = "Health, readiness and metrics for operators"),
        (name = "fhir", description = "FHIR R4 scheduling operations (IHE ITI Scheduling): $find, $hold and $book over the same rules and booking path, `application/fhir+json`; errors are OperationOutcomes carrying the /v1 code"),
        (name = "smart", description = "SMART Scheduling Links: the clinic's open slots as a public FHIR bulk publication for appointment finders, directories and aggregators (no token; 404 unless `[smart] enabled`)"),
    ),
    modifiers(&BearerJwt, &RateLimited, &GatewayFailures)
)]
pub struct ApiDoc;

struct BearerJwt;

impl Modify for BearerJwt {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("A JWT from the clinic's identity provider; `slotgate token` mints development ones."))
                    .build(),
            ),
        );
    }
}

/// Every operation but health and metrics may be rate limited; say so once, for all of them.
struct RateLimited;

impl Modify for RateLimited {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref, ResponseBuilder};
        let response = |content_type: &str, schema: &str| {
            ResponseBuilder::new()
            .description("Too many requests from this caller (`rate_limited`); retry after `Retry-After` seconds")
            .header("Retry-After", HeaderBuilder::new().schema(Some(utoipa::openapi::schema::ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::Integer))).build())
            .content(content_type, ContentBuilder::new().schema(Some(Ref::from_schema_name(schema))).build())
            .build()
        };
        let (problem, fhir) = (
            response("application/problem+json", "Problem"),
            response("application/fhir+json", "FhirResource"),
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            if matches!(path.as_str(), "/healthz" | "/readyz" | "/metrics") {
                continue;
            }
            let response = if path.starts_with("/fhir/") {
                &fhir
            } else {
                &problem
            };
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                op.responses
                    .responses
                    .insert("429".into(), response.clone().into());
            }
        }
    }
}

/// Two failures every route shares by construction, said once: a request body over
/// `[server] max_body_bytes` is 413 wherever there is a body, and a route that may answer 503
/// because of Canvas may as well meet a failing (502) or slow (504) Canvas.
struct GatewayFailures;

impl Modify for GatewayFailures {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let problem = |description: &str| -> RefOr<utoipa::openapi::Response> {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/problem+json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build()
                .into()
        };
        let outcome = |description: &str| -> RefOr<utoipa::openapi::Response> {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/fhir+json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("FhirResource")))
                        .build(),
                )
                .build()
                .into()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            // Readiness reports on Canvas; it does not relay it.
            let fhir = path.starts_with("/fhir/");
            if !path.starts_with("/v1/") && !fhir {
                continue;
            }
            let problem = |description: &str| {
                if fhir {
                    outcome(description)
                } else {
                    problem(description)
                }
            };
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                let responses = &mut op.responses.responses;
                if op.request_body.is_some() {
                    responses
                        .entry("413".into())
                        .or_insert_with(|| problem("The body is too large (`payload_too_large`)"));
                }
                let canvas_unavailable = matches!(
                    responses.get("503"),
                    Some(RefOr::T(r)) if r.description.contains("Canvas")
                );
                if canvas_unavailable {
                    responses
                        .entry("502".into())
                        .or_insert_with(|| problem("Canvas failed (`upstream_error`)"));
                    responses
                        .entry("504".into())
                        .or_insert_with(|| problem("Canvas was too slow (`upstream_timeout`)"));
                }
            }
        }
    }
}

/// The document as served and committed, pretty-printed with a trailing newline.
pub fn openapi_json() -> String {
    let mut text = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".to_owned());
    text.push('\n');
    text
}
