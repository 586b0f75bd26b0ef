//! `GET /fhir/r4/metadata` and the operations' `OperationDefinition`s: what a FHIR client reads
//! to learn what this server does. Public, as FHIR servers' capability statements are.

use actix_web::{HttpRequest, HttpResponse, get, web};
use serde_json::{Value, json};

use super::FHIR_JSON;
use crate::error::ApiError;

/// When what the statement says last changed.
const CHANGED: &str = "2026-12-04";

#[derive(Clone, Copy)]
/// One input of an operation: name, cardinality, type, what it means.
struct Input(&'static str, u32, &'static str, &'static str, &'static str);

struct Operation {
    id: &'static str,
    code: &'static str,
    title: &'static str,
    description: &'static str,
    affects_state: bool,
    inputs: &'static [Input],
    output: (&'static str, &'static str),
}

const APPOINTMENT_REFS: [Input; 2] = [
    Input(
        "appointment-resource",
        0,
        "1",
        "Appointment",
        "The Appointment $find (or $hold) answered; its identifier of system urn:slotgate:slot-id names the slot.",
    ),
    Input(
        "appointment-reference",
        0,
        "1",
        "Reference",
        "Appointment/<id> of a hold from $hold, or a reference by the slot identifier (system urn:slotgate:slot-id).",
    ),
];

const OPERATIONS: [Operation; 3] = [
    Operation {
        id: "appointment-find",
        code: "find",
        title: "Find bookable appointments",
        description: "The clinic's bookable times for a visit type, with its rules applied (licensure on each date, reasons and their durations, modalities, the booking window; held times are never offered), as proposed Appointments.",
        affects_state: false,
        inputs: &[
            Input(
                "start",
                0,
                "1",
                "dateTime",
                "The first date (a whole local day) or instant; default today.",
            ),
            Input(
                "end",
                0,
                "1",
                "dateTime",
                "The last date (inclusive) or instant; default start + 6 days; at most [booking] max_range_days days.",
            ),
            Input(
                "visit-type",
                1,
                "1",
                "Coding",
                "The reason for visit: a system and code from /v1/reasons.",
            ),
            Input(
                "duration",
                0,
                "1",
                "integer",
                "Minutes (slotgate's extension); default the reason's first duration.",
            ),
            Input(
                "modality",
                0,
                "1",
                "code",
                "telehealth or in_person (slotgate's extension); default every modality the reason allows.",
            ),
            Input(
                "specialty",
                0,
                "1",
                "Coding",
                "Only clinicians of this specialty (its code).",
            ),
            Input(
                "practitioner",
                0,
                "1",
                "Reference",
                "Only this clinician (Practitioner/<id>).",
            ),
            Input(
                "location-reference",
                0,
                "1",
                "Reference",
                "Only this location (Location/<id>); its time zone reads the dates.",
            ),
            Input(
                "patient-reference",
                0,
                "1",
                "Reference",
                "The patient (Patient/<id>): the state of their address in Canvas decides licensure.",
            ),
            Input(
                "patient-state",
                0,
                "1",
                "string",
                "Where the patient will be (two-letter US state; slotgate's extension); wins over the address.",
            ),
            Input(
                "_count",
                0,
                "1",
                "integer",
                "At most this many (1 to 1000, default 100).",
            ),
        ],
        output: (
            "Bundle",
            "A searchset Bundle of proposed Appointments, total set.",
        ),
    },
    Operation {
        id: "appointment-hold",
        code: "hold",
        title: "Hold an appointment",
        description: "Holds the slot for [booking] hold_minutes, as POST /v1/holds does: hidden from everyone else's answers, bookable only by the holder.",
        affects_state: true,
        inputs: &[
            APPOINTMENT_REFS[0],
            APPOINTMENT_REFS[1],
            Input(
                "patient-reference",
                0,
                "1",
                "Reference",
                "The patient the hold is for (staff); a patient token holds for its own.",
            ),
        ],
        output: (
            "Appointment",
            "The pending Appointment; its id is the hold's.",
        ),
    },
    Operation {
        id: "appointment-book",
        code: "book",
        title: "Book an appointment",
        description: "Books the slot exactly once, as POST /v1/appointments does (the Idempotency-Key header is required: the same key and parameters book once).",
        affects_state: true,
        inputs: &[
            APPOINTMENT_REFS[0],
            APPOINTMENT_REFS[1],
            Input(
                "patient-reference",
                0,
                "1",
                "Reference",
                "The patient (Patient/<id>); default the patient token's own.",
            ),
            Input(
                "patient-state",
                0,
                "1",
                "string",
                "Where the patient will be (two-letter US state); default the state of their address in Canvas.",
            ),
        ],
        output: ("Appointment", "The booked Appointment with its Canvas id."),
    },
];

/// This server's FHIR base: `[smart] public_url` when set, else as the client reached it
/// (forwarded scheme and host believed only from `[server] trusted_proxies`).
fn base(request: &HttpRequest) -> String {
    let origin = match request.app_data::<web::Data<crate::api::AppState>>() {
        Some(state) => crate::api::smart::base_url(
            request,
            state
                .settings
                .smart
                .as_ref()
                .and_then(|s| s.public_url.as_ref()),
            &state.settings.server.trusted_proxies,
        )
        .to_string(),
        None => "http://localhost/".to_owned(),
    };
    format!("{}/fhir/r4", origin.trim_end_matches('/'))
}

fn definition_of(op: &Operation, base: &str) -> Value {
    let mut parameters: Vec<Value> = op
        .inputs
        .iter()
        .map(|Input(name, min, max, kind, doc)| {
            json!({"name": name, "use": "in", "min": min, "max": max, "type": kind, "documentation": doc})
        })
        .collect();
    let (kind, doc) = op.output;
    parameters.push(json!({"name": "return", "use": "out", "min": 1, "max": "1", "type": kind, "documentation": doc}));
    json!({
        "resourceType": "OperationDefinition",
        "id": op.id,
        "url": format!("{base}/OperationDefinition/{}", op.id),
        "name": op.title.replace(' ', ""),
        "title": op.title,
        "status": "active",
        "kind": "operation",
        "description": op.description,
        "affectsState": op.affects_state,
        "code": op.code,
        "resource": ["Appointment"],
        "system": false,
        "type": true,
        "instance": false,
        "parameter": parameters,
    })
}

pub fn capability_statement(base: &str) -> Value {
    let operations: Vec<Value> = OPERATIONS
        .iter()
        .map(|op| json!({"name": op.code, "definition": format!("{base}/OperationDefinition/{}", op.id), "documentation": op.description}))
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": CHANGED,
        "publisher": "slotgate",
        "kind": "instance",
        "software": {"name": "slotgate", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "Scheduling over Canvas Medical with the clinic's rules applied", "url": base},
        "fhirVersion": "4.0.1",
        "format": [FHIR_JSON, "json"],
        "rest": [{
            "mode": "server",
            "documentation": "The IHE ITI Scheduling operations ($find, $hold, $book) over Canvas; errors are OperationOutcomes whose issue.details.coding (system urn:slotgate:problem) carries slotgate's /v1 code.",
            "security": {
                "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "OAuth"}]}],
                "description": "A bearer JWT from the clinic's identity provider: scheduling.read for $find, scheduling.book for $hold and $book."
            },
            "resource": [
                {"type": "Appointment", "operation": operations},
                {"type": "OperationDefinition", "interaction": [{"code": "read"}]}
            ]
        }]
    })
}

/// What this server does, in FHIR terms.
#[utoipa::path(
    operation_id = "fhir_metadata",
    path = "/fhir/r4/metadata",
    tag = "fhir",
    responses(
        (status = 200, description = "The CapabilityStatement naming $find, $hold and $book", body = super::FhirResource, content_type = "application/fhir+json"),
    )
)]
#[get("/metadata")]
pub async fn metadata(request: HttpRequest) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(FHIR_JSON)
        .json(capability_statement(&base(&request)))
}

/// One of the operations' definitions (`appointment-find`, `appointment-hold`, `appointment-book`).
#[utoipa::path(
    operation_id = "fhir_operation_definition",
    path = "/fhir/r4/OperationDefinition/{id}",
    tag = "fhir",
    params(("id" = String, Path, description = "appointment-find, appointment-hold or appointment-book")),
    responses(
        (status = 200, description = "The OperationDefinition", body = super::FhirResource, content_type = "application/fhir+json"),
        (status = 404, description = "No such operation", body = super::FhirResource, content_type = "application/fhir+json"),
    )
)]
#[get("/OperationDefinition/{id}")]
pub async fn definition(
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let op = OPERATIONS
        .iter()
        .find(|op| op.id == path.as_str())
        .ok_or_else(|| ApiError::not_found("There is no such OperationDefinition."))?;
    Ok(HttpResponse::Ok()
        .content_type(FHIR_JSON)
        .json(definition_of(op, &base(&request))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statement_points_at_every_definition() {
        let cs = capability_statement("http://h/fhir/r4");
        let ops = cs["rest"][0]["resource"][0]["operation"]
            .as_array()
            .unwrap();
        let codes: Vec<&str> = ops.iter().map(|o| o["name"].as_str().unwrap()).collect();
        assert_eq!(codes, ["find", "hold", "book"]);
        for op in &OPERATIONS {
            let d = definition_of(op, "http://h/fhir/r4");
            assert_eq!(
                d["url"],
                ops.iter().find(|o| o["name"] == op.code).unwrap()["definition"]
            );
            assert_eq!(
                d["parameter"].as_array().unwrap().last().unwrap()["name"],
                "return"
            );
        }
    }
}
