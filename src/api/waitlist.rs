//! `/v1/waitlist`: joining, listing and leaving the waitlist, and answering its offers.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::appointments::{AppointmentDto, appointment_id, dto};
use super::availability::rfc3339;
use super::body::{patient_key, patient_state, practitioner_keys, typed, uuid};
use super::idempotency::{self, Created};
use super::params::{Params, parsed};
use super::refs::{LocationRef, PractitionerRef};
use crate::auth::BookAccess;
use crate::error::{ApiError, Code, FieldError};
use crate::rules::model::Modality;
use crate::scheduling::directory::Snapshot;
use crate::scheduling::waitlist::{self, NewEntry};
use crate::store::waitlist::{Entry, EntryStatus, Offer};
use crate::types::{PatientId, PractitionerId, UsState};

/// Joining the waitlist.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"patient_id": "97491556534444838b94dbb0909b6b3d", "reason_code": "FLUP", "duration": 30, "patient_state": "CA", "modality": "telehealth", "latest_date": "2026-12-31"}))]
pub struct WaitlistBody {
    #[schema(pattern = "^[0-9a-f]{32}$")]
    patient_id: String,
    #[schema(min_length = 1, max_length = 128)]
    reason_code: String,
    /// Minutes; one of the reason's durations.
    #[schema(minimum = 1, maximum = 480)]
    #[serde(deserialize_with = "super::body::whole_number")]
    duration: u32,
    #[schema(value_type = UsState)]
    patient_state: String,
    #[serde(default)]
    modality: Option<Modality>,
    /// Only these clinicians (default: any who may see the patient).
    #[serde(default)]
    #[schema(max_items = 20, value_type = Vec<PractitionerKey>)]
    practitioner_ids: Vec<String>,
    #[serde(default)]
    #[schema(format = Uuid)]
    location_id: Option<String>,
    /// First acceptable date, a local date at the slot's location (as `/v1/availability`
    /// reads dates); default today.
    #[serde(default)]
    #[schema(format = Date)]
    earliest_date: Option<String>,
    /// Last acceptable date, a local date at the slot's location; the entry ends once this
    /// date has passed at its location (without one: everywhere the clinic operates).
    #[schema(format = Date)]
    latest_date: String,
    /// Only times earlier than this upcoming visit of the patient's; accepting an offer
    /// reschedules it.
    #[serde(default)]
    #[schema(format = Uuid)]
    before_appointment_id: Option<String>,
}

/// A Canvas practitioner id, as `/v1/practitioners` lists them (documentation only).
pub struct PractitionerKey;

impl utoipa::PartialSchema for PractitionerKey {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "A Canvas practitioner id, as `/v1/practitioners` lists them",
            ))
            .pattern(Some("^[0-9a-f]{32}$"))
            .examples(["c48de0f40beb4fee86f872da7a840cf9"])
            .into()
    }
}

impl ToSchema for PractitionerKey {}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"start": "2026-12-03T09:00:00-08:00", "end": "2026-12-03T09:30:00-08:00", "practitioner": {"id": "c48de0f40beb4fee86f872da7a840cf9", "name": "Maya Okafor MD"}, "location": {"id": "388f8191-af1d-433a-93d7-6db62585ae1e", "name": "Oakland Clinic"}, "modality": "telehealth"}))]
pub struct OfferedSlot {
    pub start: String,
    pub end: String,
    pub practitioner: PractitionerRef,
    pub location: LocationRef,
    pub modality: Modality,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "5b0a3c3e-1b2d-4c5e-8f90-a1b2c3d4e5f6", "slot": {"start": "2026-12-03T09:00:00-08:00", "end": "2026-12-03T09:30:00-08:00", "practitioner": {"id": "c48de0f40beb4fee86f872da7a840cf9", "name": "Maya Okafor MD"}, "location": {"id": "388f8191-af1d-433a-93d7-6db62585ae1e", "name": "Oakland Clinic"}, "modality": "telehealth"}, "expires_at": "2026-12-01T17:15:00Z"}))]
pub struct OfferDto {
    /// Accept or decline it at `/v1/waitlist/offers/{id}/...`.
    pub id: String,
    pub slot: OfferedSlot,
    pub expires_at: String,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "0f4d7c1a-9e2b-4a6c-8d3f-5b7e9a1c2d4e", "status": "waiting", "patient_id": "97491556534444838b94dbb0909b6b3d", "reason_code": "FLUP", "duration": 30, "patient_state": "CA", "modality": "telehealth", "practitioner_ids": [], "latest_date": "2026-12-31", "created_at": "2026-12-01T17:00:00Z"}))]
pub struct EntryDto {
    pub id: String,
    /// `waiting`, or `offered` while an offer is open.
    pub status: EntryStatus,
    pub patient_id: String,
    pub reason_code: String,
    pub duration: u32,
    pub patient_state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modality: Option<Modality>,
    pub practitioner_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub earliest_date: Option<String>,
    pub latest_date: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before_appointment_id: Option<String>,
    pub created_at: String,
    /// The open offer, if one is (or the one being accepted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offer: Option<OfferDto>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"entries": []}))]
pub struct EntryList {
    pub entries: Vec<EntryDto>,
}

fn offer_dto(snapshot: &Snapshot, o: &Offer) -> OfferDto {
    let practitioner = o
        .practitioner
        .parse::<PractitionerId>()
        .ok()
        .and_then(|p| snapshot.clinicians.get(&p).map(|c| c.name.clone()))
        .unwrap_or_default();
    let place = snapshot.place_by_id(&o.location_id);
    let location = place.map(|p| p.name.clone()).unwrap_or_default();
    // In the location's time, as appointments are.
    let tz = place.map_or(jiff::tz::TimeZone::UTC, |p| p.info.timezone.clone());
    OfferDto {
        id: o.id.clone(),
        slot: OfferedSlot {
            start: rfc3339(o.start, &tz),
            end: rfc3339(o.end, &tz),
            practitioner: PractitionerRef {
                id: o.practitioner.clone(),
                name: practitioner,
            },
            location: LocationRef {
                id: o.location_id.clone(),
                name: location,
            },
            modality: o.modality,
        },
        expires_at: o.expires_at.to_string(),
    }
}

fn entry_dto(snapshot: &Snapshot, e: Entry, offer: Option<&Offer>) -> EntryDto {
    EntryDto {
        id: e.id,
        status: EntryStatus::of(offer.is_some()),
        patient_id: e.patient,
        reason_code: e.reason_code,
        duration: e.duration,
        patient_state: e.patient_state,
        modality: e.modality,
        practitioner_ids: e.practitioner_ids,
        location_id: e.location_id,
        earliest_date: e.earliest_date.map(|d| d.to_string()),
        latest_date: e.latest_date.to_string(),
        before_appointment_id: e.before_appointment_id,
        created_at: e.created_at.to_string(),
        offer: offer.map(|o| offer_dto(snapshot, o)),
    }
}

fn date_field(field: &str, raw: &str, errors: &mut Vec<FieldError>) -> Option<jiff::civil::Date> {
    raw.parse()
        .map_err(|_| {
            errors.push(FieldError {
                field: field.into(),
                message: "is not a date (YYYY-MM-DD)".into(),
            })
        })
        .ok()
}

fn parse(raw: WaitlistBody) -> Result<NewEntry, ApiError> {
    let mut errors = Vec::new();
    let patient = patient_key(&raw.patient_id, &mut errors);
    let state = patient_state(&raw.patient_state, &mut errors);
    if raw.reason_code.trim().is_empty() || raw.reason_code.len() > 128 {
        errors.push(FieldError {
            field: "reason_code".into(),
            message: "must be a reason code from /v1/reasons".into(),
        });
    }
    if raw.practitioner_ids.len() > 20 {
        errors.push(FieldError {
            field: "practitioner_ids".into(),
            message: "must list at most 20 practitioners".into(),
        });
    }
    let practitioners = practitioner_keys(&raw.practitioner_ids, &mut errors);
    let location = raw
        .location_id
        .as_deref()
        .and_then(|l| uuid("location_id", l, "a Canvas Location id", &mut errors));
    let before = raw
        .before_appointment_id
        .as_deref()
        .and_then(|b| uuid("before_appointment_id", b, "an appointment id", &mut errors));
    let earliest = raw
        .earliest_date
        .as_deref()
        .and_then(|d| date_field("earliest_date", d, &mut errors));
    let latest = date_field("latest_date", &raw.latest_date, &mut errors);
    match (patient, state, latest, errors.is_empty()) {
        (Some(patient), Some(patient_state), Some(latest_date), true) => Ok(NewEntry {
            patient,
            reason_code: raw.reason_code,
            duration: raw.duration,
            patient_state,
            modality: raw.modality,
            practitioner_ids: practitioners,
            location_id: location,
            earliest_date: earliest,
            latest_date,
            before_appointment_id: before,
        }),
        _ => Err(ApiError::invalid_fields(errors)),
    }
}

/// Joins the waitlist: when a time opens that suits this entry (every booking rule: licensure
/// on that date, reason, duration, modality, window), it is held for the patient for
/// `[waitlist] offer_minutes` and offered (to the oldest suitable entry first), and the webhook
/// sinks hear `waitlist.offer`. At most `[waitlist] max_entries_per_patient` entries per patient.
#[utoipa::path(
    operation_id = "join_waitlist",
    context_path = "/v1",
    tag = "waitlist",
    request_body = WaitlistBody,
    security(("bearer" = ["scheduling.book"])),
    responses(
        (status = 201, description = "Waiting", body = EntryDto),
        (status = 400, description = "A field is missing or malformed (`validation_failed`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token may not act for this patient", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "`patient_not_found`: Canvas has no such patient", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`reason_not_allowed`, `duration_not_allowed`, `modality_not_allowed`, `waitlist_limit_reached`, or `validation_failed` naming each well-formed field that names nothing it may (no such clinician or location, not an upcoming visit of the patient's, `latest_date` past or before `earliest_date`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 502, description = "Canvas failed", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Canvas or the shared state is unavailable", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 504, description = "Canvas was too slow", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/waitlist")]
pub async fn join(
    caller: BookAccess,
    body: web::Json<Value>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let new = parse(typed(&body)?)?;
    let entry = waitlist::join(&state, &caller.0, new).await?;
    let snapshot = state.directory.snapshot().await?;
    Ok(HttpResponse::Created().json(entry_dto(&snapshot, entry, None)))
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the parameter
pub struct ListParams {
    /// The patient; a patient token may omit it (its own) and may name no other. Staff without
    /// it see every entry, oldest first.
    #[param(pattern = "^[0-9a-f]{32}$")]
    patient_id: Option<String>,
}

/// A patient's waitlist entries (staff without `patient_id`: everyone's), oldest first, each
/// with its open offer.
#[utoipa::path(
    operation_id = "list_waitlist",
    context_path = "/v1",
    tag = "waitlist",
    params(ListParams),
    security(("bearer" = ["scheduling.book"])),
    responses(
        (status = 200, description = "The entries", body = EntryList),
        (status = 400, description = "A parameter is malformed or missing", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "A patient token naming another patient", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The shared state is unavailable", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/waitlist")]
pub async fn list(
    caller: BookAccess,
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<web::Json<EntryList>, ApiError> {
    let caller = caller.0;
    let mut p = Params::parse(request.query_string(), &["patient_id"]);
    let named: Option<PatientId> = p.get("patient_id", parsed("a Canvas patient key"));
    if !caller.scopes.staff && named.is_none() && caller.patient.is_none() {
        p.error("patient_id", "this token speaks for no patient");
    }
    p.finish()?;
    // Staff without a patient see the whole line; a patient token sees its own.
    let patient = if caller.scopes.staff {
        named
    } else {
        named.or_else(|| caller.patient.clone())
    };
    if let Some(patient) = &patient
        && !caller.may_act_for(patient)
    {
        return Err(ApiError::new(
            Code::Forbidden,
            "This token may not see this patient's waitlist.",
        ));
    }
    let entries = waitlist::list(&state, patient.as_ref()).await?;
    let snapshot = state.directory.snapshot().await?;
    Ok(web::Json(EntryList {
        entries: entries
            .into_iter()
            .map(|(e, o)| entry_dto(&snapshot, e, o.as_ref()))
            .collect(),
    }))
}

/// Leaves the waitlist (an open offer is given back).
#[utoipa::path(
    operation_id = "leave_waitlist",
    context_path = "/v1",
    tag = "waitlist",
    params(("id" = String, Path, description = "The entry", format = Uuid)),
    security(("bearer" = ["scheduling.book"])),
    responses(
        (status = 204, description = "Left"),
        (status = 400, description = "The id is malformed", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks scheduling.book", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such entry, or another patient's", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The shared state is unavailable", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/waitlist/{id}")]
pub async fn leave(
    caller: BookAccess,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = appointment_id(&path)?;
    waitlist::withdraw(&state, &caller.0, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Accepts an offer: books the held slot for the entry's patient through the normal booking
/// path (every rule checked again; exactly once; the `Idempotency-Key` as for bookings), or,
/// for an entry with `before_appointment_id`, reschedules that visit to it.
#[utoipa::path(
    operation_id = "accept_waitlist_offer",
    context_path = "/v1",
    tag = "waitlist",
    params(
        ("id" = String, Path, description = "The offer", format = Uuid),
        ("Idempotency-Key" = String, Header, description = "A unique string per intended booking, reused on retries", min_length = 1, max_length = 255, pattern = "^[!-~]+$"),
    ),
    security(("bearer" = ["scheduling.book"])),
    responses(
        (status = 201, description = "Booked", body = AppointmentDto, headers(("Location" = String, description = "/v1/appointments/{id}"))),
        (status = 400, description = "The id or the Idempotency-Key header is malformed", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks scheduling.book", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such offer, or another patient's", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`offer_expired` (lapsed, declined or taken) or `request_in_progress`", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A booking rule said no, or `idempotency_key_reused`", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 502, description = "Canvas failed", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Canvas or the shared state is unavailable; nothing was booked", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 504, description = "Canvas did not confirm in time; retry with the same key", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/waitlist/offers/{id}/accept")]
pub async fn accept(
    caller: BookAccess,
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
    metrics: web::Data<crate::metrics::Metrics>,
) -> Result<HttpResponse, ApiError> {
    let id = appointment_id(&path)?;
    let (caller, work) = (caller.0, state.clone());
    let who = caller.clone();
    let body = serde_json::json!({"offer": id});
    idempotency::run(
        &state,
        &request,
        &caller,
        &body,
        true,
        move |guard, keyed| async move {
            let (state, caller) = (work, who);
            let keyed = keyed.ok_or_else(|| ApiError::internal(&"an accept without a key"))?;
            let attempt = keyed.attempt(&guard);
            let accepted = waitlist::accept(&state, &caller, &id, &attempt).await;
            let outcome = if accepted.is_ok() {
                "accepted"
            } else {
                "refused"
            };
            metrics.waitlist_offers.with_label_values(&[outcome]).inc();
            let accepted = accepted?;
            metrics
                .waitlist_to_booked
                .observe(accepted.offered_for.as_secs_f64());
            let made = accepted.appointment;
            state
                .sync
                .enqueue(&made.id.iter().cloned().collect::<Vec<_>>())
                .await;
            let snapshot = state.directory.snapshot().await?;
            let answer = dto(&state, &snapshot, &made);
            let id = answer.id.clone();
            Ok(Created {
                status: StatusCode::CREATED,
                body: Bytes::from(serde_json::to_vec(&answer).map_err(|e| ApiError::internal(&e))?),
                location: Some(format!("/v1/appointments/{id}")),
            })
        },
    )
    .await
}

/// Declines an offer: its hold goes, the next in line may get the slot, and the entry keeps
/// waiting (never offered that slot again).
#[utoipa::path(
    operation_id = "decline_waitlist_offer",
    context_path = "/v1",
    tag = "waitlist",
    params(("id" = String, Path, description = "The offer", format = Uuid)),
    security(("bearer" = ["scheduling.book"])),
    responses(
        (status = 204, description = "Declined"),
        (status = 400, description = "The id is malformed", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks scheduling.book", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such offer, or another patient's", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`offer_expired`: already lapsed or answered", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The shared state is unavailable", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/waitlist/offers/{id}/decline")]
pub async fn decline(
    caller: BookAccess,
    path: web::Path<String>,
    state: web::Data<AppState>,
    metrics: web::Data<crate::metrics::Metrics>,
) -> Result<HttpResponse, ApiError> {
    let id = appointment_id(&path)?;
    waitlist::decline(&state, &caller.0, &id).await?;
    metrics
        .waitlist_offers
        .with_label_values(&["declined"])
        .inc();
    Ok(HttpResponse::NoContent().finish())
}
