//! The FHIR R4 scheduling operations (after IHE ITI Scheduling, the R4 successor of the
//! Argonaut Scheduling IG) under `/fhir/r4`: `Appointment/$find`, `$hold` and `$book`, and
//! `metadata`. Thin translations: the questions and answers of `/v1` in FHIR's shapes, decided
//! by the same rules, cache, holds and booking code, refused with the same codes (in an
//! `OperationOutcome`, see [`outcome`]).

pub mod book;
pub mod capability;
pub mod find;
pub mod hold;
pub mod outcome;
pub mod params;
pub mod resources;

use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, web};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::ApiError;

pub const FHIR_JSON: &str = "application/fhir+json";
/// The system of the `/v1` codes in an `OperationOutcome`'s `issue.details.coding`.
pub const PROBLEM_SYSTEM: &str = "urn:slotgate:problem";
/// The identifier system of the slot id a proposed or held Appointment carries.
pub const SLOT_SYSTEM: &str = "urn:slotgate:slot-id";
/// The identifier system of the hold a pending Appointment stands for.
pub const HOLD_SYSTEM: &str = "urn:slotgate:hold-id";
/// When a hold lapses (an extension: Appointment has no element for it).
pub const HOLD_EXPIRES_EXTENSION: &str = "urn:slotgate:fhir:hold-expires-at";

/// Whether a path is on this surface (its errors are `OperationOutcome`s).
pub fn is_fhir_path(path: &str) -> bool {
    path == "/fhir/r4" || path.starts_with("/fhir/r4/")
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/fhir/r4")
            .service(find::find)
            .service(hold::hold)
            .service(book::book)
            .service(capability::metadata)
            .service(capability::definition),
    );
}

/// The body of an operation: a FHIR `Parameters` resource, sent as `application/fhir+json`
/// (or `application/json`).
pub fn parameters_body(request: &HttpRequest, body: &[u8]) -> Result<Value, ApiError> {
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if !matches!(
        content_type.as_deref(),
        Some(FHIR_JSON | "application/json")
    ) {
        return Err(ApiError::invalid(
            "Content-Type",
            "must be application/fhir+json",
        ));
    }
    serde_json::from_slice(body).map_err(|_| ApiError::invalid("body", "is not JSON"))
}

/// Any FHIR R4 resource (the operations answer Bundle, Appointment, OperationOutcome,
/// CapabilityStatement and OperationDefinition), in FHIR's JSON format.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "conflict", "details": {"coding": [{"system": "urn:slotgate:problem", "code": "slot_held", "display": "The slot is held by someone else"}], "text": "Someone else is holding this time."}}]}))]
pub struct FhirResource {
    #[serde(rename = "resourceType")]
    resource_type: String,
}

/// A FHIR `Parameters` resource: the operation's inputs, each a `name` with one `value[x]`
/// (`valueDate`, `valueDateTime`, `valueCoding`, `valueInteger`, `valueCode`, `valueString`,
/// `valueReference`) or a `resource`.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"resourceType": "Parameters", "parameter": [{"name": "visit-type", "valueCoding": {"system": "INTERNAL", "code": "FLUP"}}, {"name": "patient-state", "valueString": "CA"}]}))]
pub struct ParametersBody {
    #[serde(rename = "resourceType")]
    #[schema(pattern = "^Parameters$")]
    resource_type: String,
    parameter: Vec<Parameter>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"name": "patient-state", "valueString": "CA"}))]
pub struct Parameter {
    name: String,
}
