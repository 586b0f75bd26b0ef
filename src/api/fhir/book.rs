//! `POST /fhir/r4/Appointment/$book`: the booking of `POST /v1/appointments`, exactly once, by
//! the same code (checks, locks, the Canvas identifier derived from the idempotency key).

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, post, web};
use bytes::Bytes;

use super::find::{address_state, by_id, patient_for};
use super::hold::{Chosen, choose, named};
use super::params::Parameters;
use super::resources::{self, Visit, status_of};
use super::{FHIR_JSON, ParametersBody, parameters_body};
use crate::api::AppState;
use crate::api::appointments::dto;
use crate::api::idempotency::{self, Created};
use crate::auth::BookAccess;
use crate::canvas::fhir;
use crate::error::ApiError;
use crate::rules::model::Modality;
use crate::scheduling::booking::{self, BookRequest};
use crate::types::{PatientId, UsState};

/// Books a slot, exactly once.
///
/// Takes `appointment-resource` (the Appointment from `$find`, or the pending one from
/// `$hold`, whose hold it spends) or `appointment-reference` (`Appointment/<id>` of a hold
/// from `$hold`, or a reference by the slot identifier); `patient-reference` (a patient token's
/// own patient when absent); `patient-state` (`valueString`; default: the state of the
/// patient's address in Canvas). Every check of `POST /v1/appointments` applies, in its order,
/// with its codes. `Idempotency-Key` is required, as on `/v1`: the same key and parameters
/// book once and replay the first answer. Answers the `booked` Appointment with its Canvas
/// id (readable at `GET /v1/appointments/{id}`).
#[utoipa::path(
    operation_id = "fhir_book",
    path = "/fhir/r4/Appointment/$book",
    tag = "fhir",
    params(("Idempotency-Key" = String, Header, description = "A unique string per intended booking, reused on retries", min_length = 1, max_length = 255, pattern = "^[!-~]+$")),
    request_body(content = ParametersBody, content_type = "application/fhir+json", example = json!({"resourceType": "Parameters", "parameter": [
        {"name": "appointment-reference", "valueReference": {"reference": "Appointment/0d6f5e4c-5b1a-4c53-9a5e-3c1f2b7d9e10"}},
        {"name": "patient-reference", "valueReference": {"reference": "Patient/97491556534444838b94dbb0909b6b3d"}}]})),
    security(("bearer" = ["scheduling.book"])),
    responses(
        (status = 200, description = "The booked Appointment (a replay answers the first booking again, with `Idempotent-Replayed: true`)", body = super::FhirResource, content_type = "application/fhir+json"),
        (status = 400, description = "The parameters or the Idempotency-Key are missing or malformed (`validation_failed`)", body = super::FhirResource, content_type = "application/fhir+json"),
        (status = 401, description = "No valid token", body = super::FhirResource, content_type = "application/fhir+json"),
        (status = 403, description = "The token may not act for this patient", body = super::FhirResource, content_type = "application/fhir+json"),
        (status = 404, description = "`patient_not_found`, or no such hold of the caller's", body = super::FhirResource, content_type = "application/fhir+json"),
        (status = 409, description = "`slot_held`, `slot_unavailable` or `request_in_progress`", body = super::FhirResource, content_type = "application/fhir+json"),
        (status = 422, description = "A booking rule said no, or `idempotency_key_reused`", body = super::FhirResource, content_type = "application/fhir+json"),
        (status = 503, description = "Canvas or the shared state is unavailable; nothing was booked", body = super::FhirResource, content_type = "application/fhir+json"),
        (status = 504, description = "Canvas did not confirm in time; a retry with the same key answers once Canvas shows it", body = super::FhirResource, content_type = "application/fhir+json"),
    )
)]
#[post("/Appointment/$book")]
pub async fn book(
    caller: BookAccess,
    request: HttpRequest,
    body: Bytes,
    state: web::Data<AppState>,
    metrics: web::Data<crate::metrics::Metrics>,
) -> Result<HttpResponse, ApiError> {
    let mut response =
        crate::api::booking::counted(&metrics, book_once(caller, request, body, state).await)?;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    Ok(response)
}

async fn book_once(
    caller: BookAccess,
    request: HttpRequest,
    raw: Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = parameters_body(&request, &raw)?;
    let mut p = Parameters::parse(
        &body,
        &[
            "appointment-resource",
            "appointment-reference",
            "patient-reference",
            "patient-state",
        ],
    )?;
    let named = named(&mut p);
    let patient: Option<PatientId> = p
        .reference("patient-reference", "Patient")
        .and_then(|t| by_id(&mut p, "patient-reference", t, "a Canvas patient key"));
    let patient_state: Option<UsState> = p.text("patient-state", "valueString").and_then(|s| {
        s.parse().ok().or_else(|| {
            p.error("patient-state", "is not a two-letter US state code");
            None
        })
    });
    p.finish()?;
    let Some(named) = named else {
        return Err(ApiError::invalid("appointment-resource", "is required"));
    };
    let caller = caller.0;
    let Some(patient) = patient_for(&caller, patient)? else {
        return Err(ApiError::invalid(
            "patient-reference",
            "is required: the patient the visit is for",
        ));
    };
    let (work, who) = (state.clone(), caller.clone());
    idempotency::run(
        &state,
        &request,
        &caller,
        &body,
        true,
        move |guard, keyed| async move {
            let (state, caller) = (work, who);
            let keyed =
                keyed.ok_or_else(|| ApiError::internal(&"booking without an idempotency key"))?;
            // A key an earlier attempt left unfinished: whatever that attempt made at Canvas
            // is the answer, before the hold it spent or the patient's address is looked at.
            if keyed.resume.is_some()
                && let Some(found) = booking::find(&state, &keyed.identifier).await?
            {
                booking::confirm_found(&state, &keyed.identifier, &found).await;
                return booked(&state, None, &found).await;
            }
            // Looked up under the key: a retry replays the first answer even once the hold
            // it named is spent.
            let chosen = choose(&state, &caller, named).await?;
            let patient_state = match patient_state {
                Some(s) => s,
                // In person, the patient is where the clinic is; by video, where they live.
                None if chosen.claim.modality == Modality::InPerson => {
                    in_person_state(&state, &chosen).await?
                }
                None => address_state(&state, &patient).await?.ok_or_else(|| {
                    ApiError::invalid(
                        "patient-state",
                        "is required: the patient's address in Canvas names no state",
                    )
                })?,
            };
            let request_data = BookRequest {
                slot: chosen.claim.clone(),
                reason_code: chosen.claim.reason.clone(),
                patient,
                patient_state,
                comment: None,
                hold_id: chosen.hold_id.clone(),
                hold_owner: None,
            };
            let attempt = keyed.attempt(&guard);
            let made = booking::book(&state, &caller, &request_data, &attempt).await?;
            state
                .sync
                .enqueue(&made.appointment.id.iter().cloned().collect::<Vec<_>>())
                .await;
            booked(&state, Some(&chosen), &made.appointment).await
        },
    )
    .await
}

/// The state of the location an in-person visit is at.
async fn in_person_state(state: &AppState, chosen: &Chosen) -> Result<UsState, ApiError> {
    let snapshot = state.directory.snapshot().await?;
    snapshot
        .place_by_key(&chosen.claim.location_key)
        .map(|p| p.info.state)
        .ok_or_else(|| {
            ApiError::new(
                crate::error::Code::SlotUnavailable,
                "This location no longer takes bookings.",
            )
        })
}

/// The booked Appointment as this surface shows it, built from what `/v1` shows (`chosen`:
/// the slot asked for, when this attempt looked it up).
async fn booked(
    state: &AppState,
    chosen: Option<&Chosen>,
    appointment: &fhir::Appointment,
) -> Result<Created, ApiError> {
    let snapshot = state.directory.snapshot().await?;
    let shown = dto(state, &snapshot, appointment);
    let rules = &snapshot.policy.rules;
    let reason = shown.reason.as_ref().and_then(|r| rules.reason(&r.code));
    let resource = resources::appointment(&Visit {
        id: Some(shown.id.clone()),
        status: status_of(&shown.status),
        start: shown.start.clone(),
        end: shown.end.clone(),
        minutes: chosen.map(|c| c.claim.duration_minutes).or_else(|| {
            let (start, end) = (appointment.start.as_ref()?, appointment.end.as_ref()?);
            u32::try_from(start.timestamp.duration_until(end.timestamp).as_mins()).ok()
        }),
        reason,
        reason_code: shown.reason.as_ref().map(|r| r.code.clone()),
        modality: shown.modality,
        practitioner: shown
            .practitioner
            .as_ref()
            .map(|p| (p.id.clone(), p.name.clone())),
        location: shown
            .location
            .as_ref()
            .map(|l| (l.id.clone(), l.name.clone())),
        patient: shown.patient_id.clone(),
        slot_id: chosen.map(|c| c.slot_id.clone()),
        hold: None,
    });
    Ok(Created {
        status: StatusCode::OK,
        body: Bytes::from(serde_json::to_vec(&resource).map_err(|e| ApiError::internal(&e))?),
        location: None,
    })
}
