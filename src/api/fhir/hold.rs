//! `POST /fhir/r4/Appointment/$hold`: the same hold as `POST /v1/holds`, answered as a
//! `pending` Appointment whose id is the hold's.

use actix_web::{HttpRequest, HttpResponse, post, web};
use bytes::Bytes;
use serde_json::Value;

use super::find::{by_id, patient_for};
use super::params::{Parameters, Target};
use super::resources::{self, Status, Visit};
use super::{FHIR_JSON, ParametersBody, SLOT_SYSTEM, parameters_body};
use crate::api::AppState;
use crate::auth::{BookAccess, Principal};
use crate::error::{ApiError, FieldError};
use crate::scheduling::holds;
use crate::scheduling::slot_id::SlotClaim;
use crate::store::Hold;
use crate::types::PatientId;

/// The slot an operation is about, and the hold on it when the caller named one.
pub(super) struct Chosen {
    pub slot_id: String,
    pub claim: SlotClaim,
    /// A hold the caller named (by the held Appointment's id or identifier).
    pub hold_id: Option<String>,
    /// That hold, when it was looked up and is the caller's.
    pub hold: Option<Hold>,
}

const RESOURCE: &str = "appointment-resource";
const REFERENCE: &str = "appointment-reference";

/// Reads `appointment-resource` (an Appointment from `$find` or `$hold`) or
/// `appointment-reference` (`Appointment/<hold id>` from `$hold`, or a reference by the slot
/// identifier) from the parameters; the caller finishes them.
pub(super) fn named(p: &mut Parameters) -> Option<Named> {
    match (p.has(RESOURCE), p.has(REFERENCE)) {
        (true, true) => {
            p.error(
                REFERENCE,
                "give appointment-resource or appointment-reference, not both",
            );
            None
        }
        (false, false) => {
            p.error(
                RESOURCE,
                "is required: the Appointment from $find or $hold (or an appointment-reference)",
            );
            None
        }
        (true, false) => {
            let resource = p.resource(RESOURCE, "Appointment")?;
            let Some(slot_id) = resources::slot_id_of(&resource) else {
                p.error(RESOURCE, &format!("carries no slot id (an identifier of system {SLOT_SYSTEM}): send the Appointment $find answered"));
                return None;
            };
            Some(Named::Slot {
                slot_id,
                hold_id: resources::hold_id_of(&resource),
            })
        }
        (false, true) => match p.reference(REFERENCE, "Appointment")? {
            Target::Id(id) => match uuid::Uuid::parse_str(&id) {
                Ok(u) => Some(Named::Hold(u.to_string())),
                Err(_) => {
                    p.error(REFERENCE, "names no Appointment from $hold (or a booked one, which cannot be held or booked again)");
                    None
                }
            },
            Target::Identifier { system, value }
                if system.as_deref().is_none_or(|s| s == SLOT_SYSTEM) =>
            {
                Some(Named::Slot {
                    slot_id: value,
                    hold_id: None,
                })
            }
            Target::Identifier { .. } => {
                p.error(
                    REFERENCE,
                    &format!("an identifier reference must be of system {SLOT_SYSTEM}"),
                );
                None
            }
        },
    }
}

/// What the body named, before anything is looked up.
pub(super) enum Named {
    Slot {
        slot_id: String,
        hold_id: Option<String>,
    },
    Hold(String),
}

/// The slot (and hold) the caller named, verified and looked up.
pub(super) async fn choose(
    state: &AppState,
    caller: &Principal,
    named: Named,
) -> Result<Chosen, ApiError> {
    let (slot_id, hold_id, held) = match named {
        Named::Slot { slot_id, hold_id } => (slot_id, hold_id, None),
        Named::Hold(id) => {
            let now = jiff::Timestamp::now();
            let found = state
                .store
                .hold(id.clone(), now)
                .await
                .map_err(crate::api::store_error)?
                .filter(|h| h.owner == caller.subject || caller.scopes.staff)
                .ok_or_else(|| {
                    ApiError::not_found("There is no such held Appointment (it may have lapsed).")
                })?;
            (found.slot_id.clone(), Some(id), Some(found))
        }
    };
    let claim = state.slot_ids.verify(&slot_id).map_err(|e| {
        ApiError::invalid_fields(vec![FieldError {
            field: RESOURCE.into(),
            message: format!("its slot identifier {e}"),
        }])
    })?;
    Ok(Chosen {
        slot_id,
        claim,
        hold_id,
        hold: held,
    })
}

/// The visit a slot id describes, as the clinic's directory names its people and places.
pub(super) async fn visit_of(
    state: &AppState,
    chosen: &Chosen,
    status: Status,
    patient: Option<String>,
) -> Result<Value, ApiError> {
    let snapshot = state.directory.snapshot().await?;
    let claim = &chosen.claim;
    let place = snapshot.place_by_key(&claim.location_key);
    let tz = place
        .map(|p| p.info.timezone.clone())
        .unwrap_or(jiff::tz::TimeZone::UTC);
    let (Some(start), Some(end)) = (claim.start(), claim.end()) else {
        return Err(ApiError::invalid(
            RESOURCE,
            "its slot identifier is not a slot",
        ));
    };
    let clinician = snapshot.clinicians.get(&claim.practitioner);
    Ok(resources::appointment(&Visit {
        id: chosen.hold.as_ref().map(|h| h.id.clone()),
        status,
        start: crate::api::availability::rfc3339(start, &tz),
        end: crate::api::availability::rfc3339(end, &tz),
        minutes: Some(claim.duration_minutes),
        reason: snapshot.policy.rules.reason(&claim.reason),
        reason_code: Some(claim.reason.clone()),
        modality: Some(claim.modality),
        practitioner: Some((
            claim.practitioner.to_string(),
            clinician.map(|c| c.name.clone()).unwrap_or_default(),
        )),
        location: place.map(|p| (p.info.id.clone(), p.name.clone())),
        patient,
        slot_id: Some(chosen.slot_id.clone()),
        hold: chosen.hold.as_ref().map(|h| (h.id.clone(), h.expires_at)),
    }))
}

/// Holds a slot for `[booking] hold_minutes`.
///
/// Takes `appointment-resource` (a proposed Appointment from `$find`) or
/// `appointment-reference` (by the slot identifier; `Appointment/<id>` of a hold of the
/// caller's answers that hold again), and optionally `patient-reference` (staff holding for a
/// patient). The same hold as `POST /v1/holds`, with its limits and refusals; the answer is the
/// `pending` Appointment, its id the hold's, its expiry in an extension.
#[utoipa::path(
    operation_id = "fhir_hold",
    path = "/fhir/r4/Appointment/$hold",
    tag = "fhir",
    request_body(content = ParametersBody, content_type = "application/fhir+json", example = json!({"resourceType": "Parameters", "parameter": [
        {"name": "appointment-reference", "valueReference": {"identifier": {"system": "urn:slotgate:slot-id", "value": "s1.eyJwIjoiNDE1MGNkMjAifQ.c2lnbmF0dXJl"}}}]})),
    security(("bearer" = ["scheduling.book"])),
    responses(
        (status = 200, description = "The held, pending Appointment", body = super::FhirResource, content_type = "application/fhir+json"),
        (status = 400, description = "The parameters are malformed or the slot id was altered (`validation_failed`)", body = super::FhirResource, content_type = "application/fhir+json"),
        (status = 401, description = "No valid token", body = super::FhirResource, content_type = "application/fhir+json"),
        (status = 403, description = "The token lacks scheduling.book or may not act for the patient", body = super::FhirResource, content_type = "application/fhir+json"),
        (status = 404, description = "No such hold of the caller's (`not_found`)", body = super::FhirResource, content_type = "application/fhir+json"),
        (status = 409, description = "`slot_held` or `slot_unavailable`", body = super::FhirResource, content_type = "application/fhir+json"),
        (status = 422, description = "`outside_booking_window` or `hold_limit_reached`", body = super::FhirResource, content_type = "application/fhir+json"),
        (status = 503, description = "Canvas or the shared state is unavailable", body = super::FhirResource, content_type = "application/fhir+json"),
    )
)]
#[post("/Appointment/$hold")]
pub async fn hold(
    caller: BookAccess,
    request: HttpRequest,
    body: Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = parameters_body(&request, &body)?;
    let mut p = Parameters::parse(&body, &[RESOURCE, REFERENCE, "patient-reference"])?;
    let named = named(&mut p);
    let patient: Option<PatientId> = p
        .reference("patient-reference", "Patient")
        .and_then(|t| by_id(&mut p, "patient-reference", t, "a Canvas patient key"));
    p.finish()?;
    let Some(named) = named else {
        return Err(ApiError::invalid(RESOURCE, "is required"));
    };
    let caller = caller.0;
    let patient = patient_for(&caller, patient)?;
    // The pending Appointment $hold answered, sent again: that hold, not a second one.
    let named = match named {
        Named::Slot {
            hold_id: Some(id), ..
        } => Named::Hold(id),
        other => other,
    };
    let mut chosen = choose(&state, &caller, named).await?;
    if chosen.hold.is_none() {
        let placed = holds::place(&state, &caller, &chosen.slot_id, &chosen.claim, patient).await?;
        chosen.hold = Some(placed);
    }
    let patient = chosen.hold.as_ref().and_then(|h| h.patient.clone());
    let body = visit_of(&state, &chosen, Status::Pending, patient).await?;
    Ok(HttpResponse::Ok().content_type(FHIR_JSON).json(body))
}
