//! `POST /v1/appointments`, `POST /v1/appointments/{id}/reschedule`, `POST /v1/appointments/{id}/cancel`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, post, web};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::appointments::{AppointmentDto, appointment_id, dto};
use super::body::{patient_key, patient_state, text, typed};
use super::idempotency::{self, Created};
use crate::auth::BookAccess;
use crate::canvas::fhir;
use crate::error::{ApiError, FieldError};
use crate::scheduling::booking::{self, BookRequest, CREATE_SENT};
use crate::scheduling::lifecycle::{self, NEW_APPOINTMENT, Reschedule};
use crate::scheduling::slot_id::SlotClaim;
use crate::types::UsState;

/// A booking.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"slot_id": "s1.eyJwIjoiNDE1MGNkMjAifQ.c2lnbmF0dXJl", "reason_code": "FLUP", "patient_id": "97491556534444838b94dbb0909b6b3d", "patient_state": "CA", "comment": "Follow-up on blood pressure", "hold_id": "0d6f5e4c-5b1a-4c53-9a5e-3c1f2b7d9e10"}))]
pub struct BookBody {
    /// From `/v1/availability`, unchanged.
    #[schema(min_length = 1, max_length = 1024)]
    slot_id: String,
    /// The structured reason for visit.
    #[schema(min_length = 1, max_length = 128)]
    reason_code: String,
    /// The Canvas patient key; a patient token may only name its own patient.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    patient_id: String,
    /// Where the patient will be during the visit.
    #[schema(value_type = UsState)]
    patient_state: String,
    /// For the clinician, at most 1,000 characters.
    #[serde(default)]
    #[schema(max_length = 1000)]
    comment: Option<String>,
    /// The caller's hold on this slot, if it placed one.
    #[serde(default)]
    #[schema(format = Uuid)]
    hold_id: Option<String>,
}

/// Moving an appointment to another slot.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"slot_id": "s1.eyJwIjoiNDE1MGNkMjAifQ.c2lnbmF0dXJl", "patient_state": "CA"}))]
pub struct RescheduleBody {
    #[schema(min_length = 1, max_length = 1024)]
    slot_id: String,
    #[schema(value_type = UsState)]
    patient_state: String,
    #[serde(default)]
    #[schema(format = Uuid)]
    hold_id: Option<String>,
}

/// A cancellation.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "Feeling better"}))]
pub struct CancelBody {
    /// Why, at most 500 characters. Canvas's FHIR API has no field for it, so it is kept nowhere.
    #[serde(default)]
    #[schema(max_length = 500)]
    reason: Option<String>,
}

fn slot(state: &AppState, raw: &str) -> Result<SlotClaim, FieldError> {
    state.slot_ids.verify(raw).map_err(|e| FieldError {
        field: "slot_id".into(),
        message: e.to_string(),
    })
}

fn hold_id(raw: Option<String>, errors: &mut Vec<FieldError>) -> Option<String> {
    let raw = raw?;
    match uuid::Uuid::parse_str(&raw) {
        Ok(u) => Some(u.to_string()),
        Err(_) => {
            errors.push(FieldError {
                field: "hold_id".into(),
                message: "is not a hold id from POST /v1/holds".into(),
            });
            None
        }
    }
}

async fn created(
    state: &AppState,
    appointment: &fhir::Appointment,
    status: StatusCode,
) -> Result<Created, ApiError> {
    let snapshot = state.directory.snapshot().await?;
    let body = dto(state, &snapshot, appointment);
    let id = body.id.clone();
    Ok(Created {
        status,
        body: Bytes::from(serde_json::to_vec(&body).map_err(|e| ApiError::internal(&e))?),
        location: (status == StatusCode::CREATED).then(|| format!("/v1/appointments/{id}")),
    })
}

/// Books a slot, exactly once.
///
/// Checks, in order, answering with the first failure: the body (400), the token may act for
/// `patient_id` (403), the reason and duration (422 `reason_not_allowed` / `duration_not_allowed`),
/// the modality (422 `modality_not_allowed`), licensure for `patient_state` on the slot's date
/// (422 `practitioner_not_licensed`), the booking window (422 `outside_booking_window`), the
/// patient's upcoming bookings (422 `booking_limit_reached`; staff exempt), the patient exists
/// (404 `patient_not_found`), someone else's hold (409 `slot_held`), and the slot still free in
/// Canvas now (409 `slot_unavailable`). The same `Idempotency-Key` and body replay the first
/// answer; another body is 422 `idempotency_key_reused`; while the first runs, 409
/// `request_in_progress`.
#[utoipa::path(
    operation_id = "book_appointment",
    context_path = "/v1",
    tag = "appointments",
    params(("Idempotency-Key" = String, Header, description = "A unique string per intended booking, reused on retries", min_length = 1, max_length = 255, pattern = "^[!-~]+$")),
    request_body = BookBody,
    security(("bearer" = ["scheduling.book"])),
    responses(
        (status = 201, description = "Booked; `Location` names the appointment. A replay (same Idempotency-Key, same body) answers the first request's 201 again", body = AppointmentDto, headers(("Location" = String, description = "/v1/appointments/{id}"))),
        (status = 400, description = "The body or the Idempotency-Key header is missing or malformed (`validation_failed`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token may not act for this patient", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "`patient_not_found`", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`slot_held`, `slot_unavailable` or `request_in_progress`", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A business rule said no (see the description) or `idempotency_key_reused`", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 502, description = "Canvas failed", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Canvas or the shared state is unavailable; nothing was booked (once Canvas has a booking the answer is 201)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 504, description = "Canvas did not confirm in time; the time stays held for this booking, and a retry with the same key answers 201 once Canvas shows it", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/appointments")]
pub async fn book(
    caller: BookAccess,
    request: HttpRequest,
    body: web::Json<Value>,
    state: web::Data<AppState>,
    metrics: web::Data<crate::metrics::Metrics>,
) -> Result<HttpResponse, ApiError> {
    counted(&metrics, book_once(caller, request, body, state).await)
}

/// A booking's outcome, counted (on any surface).
pub fn counted<T>(
    metrics: &crate::metrics::Metrics,
    result: Result<T, ApiError>,
) -> Result<T, ApiError> {
    // Bounded labels: one outcome, or one of the contract's problem codes.
    let outcome = match &result {
        Ok(_) => "booked",
        Err(e) => e.code.as_str(),
    };
    metrics.bookings.with_label_values(&[outcome]).inc();
    result
}

async fn book_once(
    caller: BookAccess,
    request: HttpRequest,
    body: web::Json<Value>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let raw: BookBody = typed(&body)?;
    let mut errors = Vec::new();
    let claim = slot(&state, &raw.slot_id).map_err(|e| errors.push(e)).ok();
    let patient = patient_key(&raw.patient_id, &mut errors);
    let patient_state = patient_state(&raw.patient_state, &mut errors);
    let comment = text("comment", raw.comment, 1000, &mut errors);
    let hold = hold_id(raw.hold_id, &mut errors);
    if raw.reason_code.trim().is_empty() || raw.reason_code.len() > 128 {
        errors.push(FieldError {
            field: "reason_code".into(),
            message: "must be a reason code from /v1/reasons".into(),
        });
    }
    let (Some(claim), Some(patient), Some(patient_state), true) =
        (claim, patient, patient_state, errors.is_empty())
    else {
        return Err(ApiError::invalid_fields(errors));
    };
    let request_data = BookRequest {
        slot: claim,
        reason_code: raw.reason_code,
        patient,
        patient_state,
        comment,
        hold_id: hold,
        hold_owner: None,
    };
    let (caller, work) = (caller.0, state.clone());
    let who = caller.clone();
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
            let attempt = keyed.attempt(&guard);
            let made = booking::book(&state, &caller, &request_data, &attempt).await?;
            state
                .sync
                .enqueue(&made.appointment.id.iter().cloned().collect::<Vec<_>>())
                .await;
            created(&state, &made.appointment, StatusCode::CREATED).await
        },
    )
    .await
}

/// Moves an appointment: books the new slot first (every booking rule applies), then cancels
/// the old one, which the new one references as "Previously Rescheduled Appointment".
///
/// It ends with exactly one of the two active, whatever fails. If the new booking fails, the
/// old appointment is untouched. If cancelling the old one fails, the answer is still 201 and
/// slotgate cancels it on its own within seconds; if Canvas does not confirm the new booking
/// (504), slotgate finishes the move once Canvas shows it. The appointment being replaced does
/// not count toward `max_active_per_patient`. Patients may reschedule only until the
/// cancellation cut-off, and never an Other Event.
#[utoipa::path(
    operation_id = "reschedule_appointment",
    context_path = "/v1",
    tag = "appointments",
    params(
        ("id" = String, Path, description = "The appointment to move", format = Uuid),
        ("Idempotency-Key" = String, Header, description = "A unique string per intended change, reused on retries", min_length = 1, max_length = 255, pattern = "^[!-~]+$"),
    ),
    request_body = RescheduleBody,
    security(("bearer" = ["scheduling.book"])),
    responses(
        (status = 201, description = "The new appointment", body = AppointmentDto, headers(("Location" = String, description = "/v1/appointments/{id}"))),
        (status = 400, description = "The body or the Idempotency-Key header is missing or malformed", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks scheduling.book", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such appointment, another patient's, or (for a patient token) an Other Event", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`slot_held`, `slot_unavailable`, `request_in_progress` or `appointment_not_active`", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A booking rule, `cancellation_window_passed` or `idempotency_key_reused`", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 502, description = "Canvas failed; nothing was moved", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Canvas or the shared state is unavailable", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 504, description = "Canvas did not confirm in time; retry with the same key", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/appointments/{id}/reschedule")]
pub async fn reschedule(
    caller: BookAccess,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Json<Value>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = appointment_id(&path)?;
    let raw: RescheduleBody = typed(&body)?;
    let mut errors = Vec::new();
    let claim = slot(&state, &raw.slot_id).map_err(|e| errors.push(e)).ok();
    let patient_state = patient_state(&raw.patient_state, &mut errors);
    let hold = hold_id(raw.hold_id, &mut errors);
    let (Some(claim), Some(patient_state), true) = (claim, patient_state, errors.is_empty()) else {
        return Err(ApiError::invalid_fields(errors));
    };
    let move_to = Reschedule {
        slot: claim,
        patient_state,
        hold_id: hold,
        hold_owner: None,
    };
    let (caller, work) = (caller.0, state.clone());
    let who = caller.clone();
    idempotency::run(
        &state,
        &request,
        &caller,
        &body,
        true,
        move |guard, keyed| async move {
            let (state, caller) = (work, who);
            let keyed = keyed
                .ok_or_else(|| ApiError::internal(&"rescheduling without an idempotency key"))?;
            let done = keyed
                .resume
                .as_ref()
                .and_then(|p| p[NEW_APPOINTMENT].as_str())
                .map(str::to_owned);
            let attempt = keyed.attempt(&guard);
            let store = &state.store;
            let record = async |new_id: &str| {
                let progress = serde_json::json!({ CREATE_SENT: true, NEW_APPOINTMENT: new_id });
                // Only a help for a retry: the recovery finishes the reschedule from Canvas alone.
                if let Err(e) = store
                    .progress(keyed.store_key.clone(), keyed.owner.clone(), progress)
                    .await
                {
                    tracing::warn!(error = %e, "could not record a reschedule's progress");
                }
            };
            let new = lifecycle::reschedule(
                &state,
                &caller,
                &id,
                &move_to,
                &attempt,
                done.as_deref(),
                record,
            )
            .await;
            // Whatever happened to either appointment, the calendars follow Canvas.
            let mut changed = vec![id.clone()];
            changed.extend(new.as_ref().ok().and_then(|n| n.id.clone()));
            state.sync.enqueue(&changed).await;
            created(&state, &new?, StatusCode::CREATED).await
        },
    )
    .await
}

/// Cancels an appointment. Patients may cancel until `[booking] patient_cancel_cutoff_hours`
/// before the start (then 422 `cancellation_window_passed`); staff at any time. Cancelling an
/// appointment that is already cancelled answers the same and changes nothing.
#[utoipa::path(
    operation_id = "cancel_appointment",
    context_path = "/v1",
    tag = "appointments",
    params(
        ("id" = String, Path, description = "The appointment to cancel", format = Uuid),
        ("Idempotency-Key" = String, Header, description = "A unique string per intended change, reused on retries", min_length = 1, max_length = 255, pattern = "^[!-~]+$"),
    ),
    request_body(content = CancelBody, description = "Optional"),
    security(("bearer" = ["scheduling.book"])),
    responses(
        (status = 200, description = "The appointment, now cancelled", body = AppointmentDto),
        (status = 400, description = "The body or the Idempotency-Key header is malformed", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks scheduling.book", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such appointment, another patient's, or (for a patient token) an Other Event", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`request_in_progress`", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`cancellation_window_passed` or `idempotency_key_reused`", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 502, description = "Canvas failed", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Canvas or the shared state is unavailable", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/appointments/{id}/cancel")]
pub async fn cancel(
    caller: BookAccess,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = appointment_id(&path)?;
    // The body is optional; when there is one it must be JSON.
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|_| ApiError::invalid("body", "must be a JSON object"))?
    };
    let raw: CancelBody = typed(&body)?;
    let mut errors = Vec::new();
    // Accepted and bounded, then dropped: Canvas has nowhere to keep it and logs never see it.
    let _ = text("reason", raw.reason, 500, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::invalid_fields(errors));
    }
    let (caller, work) = (caller.0, state.clone());
    let who = caller.clone();
    idempotency::run(
        &state,
        &request,
        &caller,
        &body,
        true,
        move |guard, _| async move {
            let (state, caller) = (work, who);
            let cancelled = lifecycle::cancel(&state, &guard, &caller, &id).await?;
            state.sync.enqueue(std::slice::from_ref(&id)).await;
            created(&state, &cancelled, StatusCode::OK).await
        },
    )
    .await
}
