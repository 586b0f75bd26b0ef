//! `POST /v1/events`: Other Events that block clinicians' time (staff only).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, post, web};
use bytes::Bytes;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::appointments::{AppointmentDto, dto};
use super::body::{patient_key, practitioner_keys, text, typed, uuid};
use super::idempotency::{self, Created};
use crate::auth::StaffAccess;
use crate::error::{ApiError, FieldError};
use crate::rules::model::TypeCoding;
use crate::scheduling::events::{self, EventRequest};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"system": "http://snomed.info/sct", "code": "272379006"}))]
pub struct EventType {
    system: String,
    code: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"practitioner_ids": ["c48de0f40beb4fee86f872da7a840cf9", "f8caf3fdef4f451a8f708556591ee1c2"], "start": "2026-12-02T12:00:00-08:00", "end": "2026-12-02T13:00:00-08:00", "title": "Case conference"}))]
pub struct EventBody {
    /// One or more clinicians (several: a meeting or co-visit); at most 20.
    #[schema(min_items = 1, max_items = 20)]
    practitioner_ids: Vec<String>,
    /// RFC 3339 with an offset.
    #[schema(format = DateTime)]
    start: String,
    #[schema(format = DateTime)]
    end: String,
    /// At most 200 characters; shown in Canvas and in calendars.
    #[schema(min_length = 1, max_length = 200)]
    title: String,
    /// The Canvas Other Event type; default `[sync] event_type` ("Generic Event").
    #[serde(default)]
    event_type: Option<EventType>,
    /// Default: the first configured location.
    #[serde(default)]
    #[schema(format = Uuid)]
    location_id: Option<String>,
    #[serde(default)]
    #[schema(pattern = "^[0-9a-f]{32}$")]
    patient_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"events": [{"id": "7fa2874e-73c8-418d-bb25-eea0ccac651c", "status": "booked", "start": "2026-12-02T12:00:00-08:00", "end": "2026-12-02T13:00:00-08:00", "reason": null, "modality": null, "practitioner": {"id": "c48de0f40beb4fee86f872da7a840cf9", "name": "Maya Okafor MD"}, "location": {"id": "388f8191-af1d-433a-93d7-6db62585ae1e", "name": "Oakland Clinic"}, "patient_id": null, "title": "Case conference"}]}))]
pub struct EventList {
    /// One Canvas appointment per clinician.
    pub events: Vec<AppointmentDto>,
}

fn instant(field: &str, raw: &str, errors: &mut Vec<FieldError>) -> Option<Timestamp> {
    crate::canvas::fhir::Instant::parse(raw)
        .map(|i| i.timestamp)
        .map_err(|_| {
            errors.push(FieldError {
                field: field.into(),
                message: "must be an RFC 3339 date-time with an offset".into(),
            })
        })
        .ok()
}

fn parse(raw: EventBody) -> Result<EventRequest, ApiError> {
    let mut errors = Vec::new();
    if raw.practitioner_ids.is_empty() || raw.practitioner_ids.len() > 20 {
        errors.push(FieldError {
            field: "practitioner_ids".into(),
            message: "must list 1 to 20 practitioners".into(),
        });
    }
    let practitioners = practitioner_keys(&raw.practitioner_ids, &mut errors);
    let start = instant("start", &raw.start, &mut errors);
    let end = instant("end", &raw.end, &mut errors);
    if let (Some(s), Some(e)) = (start, end)
        && !(s < e && s.duration_until(e).as_hours() <= 24)
    {
        errors.push(FieldError {
            field: "end".into(),
            message: "must be after start, within 24 hours".into(),
        });
    }
    let title = text("title", Some(raw.title), 200, &mut errors);
    if title.is_none() && !errors.iter().any(|e| e.field == "title") {
        errors.push(FieldError {
            field: "title".into(),
            message: "must not be empty".into(),
        });
    }
    let patient = raw
        .patient_id
        .as_deref()
        .and_then(|p| patient_key(p, &mut errors));
    let location_id = raw
        .location_id
        .as_deref()
        .and_then(|l| uuid("location_id", l, "a Canvas Location id", &mut errors));
    let event_type = raw.event_type.map(|t| TypeCoding {
        system: t.system,
        code: t.code,
    });
    if let Some(t) = &event_type
        && (t.system.is_empty() || t.code.is_empty())
    {
        errors.push(FieldError {
            field: "event_type".into(),
            message: "needs a system and a code".into(),
        });
    }
    match (start, end, title, errors.is_empty()) {
        (Some(start), Some(end), Some(title), true) => Ok(EventRequest {
            practitioners,
            start,
            end,
            title,
            event_type,
            location_id,
            patient,
        }),
        _ => Err(ApiError::invalid_fields(errors)),
    }
}

/// Blocks clinicians' time without a note: one Canvas Other Event per clinician, which hides
/// that time from availability. An `Idempotency-Key` is optional and works as for bookings.
#[utoipa::path(
    operation_id = "create_events",
    context_path = "/v1",
    tag = "appointments",
    params(("Idempotency-Key" = Option<String>, Header, description = "Optional; replays as for bookings", min_length = 1, max_length = 255, pattern = "^[!-~]+$")),
    request_body = EventBody,
    security(("bearer" = ["scheduling.staff"])),
    responses(
        (status = 201, description = "Created", body = EventList),
        (status = 400, description = "The body is malformed, or names unknown clinicians or locations", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks scheduling.staff", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "`patient_not_found`", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`request_in_progress`", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`idempotency_key_reused`", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 502, description = "Canvas failed", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Canvas or the shared state is unavailable", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/events")]
pub async fn create(
    caller: StaffAccess,
    request: HttpRequest,
    body: web::Json<Value>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let event = parse(typed(&body)?)?;
    let work = state.clone();
    idempotency::run(
        &state,
        &request,
        &caller.0,
        &body,
        false,
        move |guard, keyed| async move {
            let state = work;
            let (identifier, resumed) = match &keyed {
                Some(k) => (k.identifier.clone(), k.resume.is_some()),
                None => (uuid::Uuid::new_v4().simple().to_string(), false),
            };
            let made = events::create(&state, &guard, &event, &identifier, resumed).await?;
            state
                .sync
                .enqueue(&made.iter().filter_map(|a| a.id.clone()).collect::<Vec<_>>())
                .await;
            let snapshot = state.directory.snapshot().await?;
            let list = EventList {
                events: made.iter().map(|a| dto(&state, &snapshot, a)).collect(),
            };
            Ok(Created {
                status: StatusCode::CREATED,
                body: Bytes::from(serde_json::to_vec(&list).map_err(|e| ApiError::internal(&e))?),
                location: None,
            })
        },
    )
    .await
}
