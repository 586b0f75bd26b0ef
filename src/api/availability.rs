//! `GET /v1/availability`.

use actix_web::http::header::{self, AcceptEncoding, Encoding, Header};
use actix_web::{HttpRequest, HttpResponse, get, web};
use bytes::Bytes;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::params::{Params, date, integer, parsed, time_zone};
use super::refs::{LocationRef, PractitionerRef, ReasonRef};
use crate::auth::ReadAccess;
use crate::error::ApiError;
use crate::rules::model::{Modality, Policy, Reason};
use crate::rules::policy;
use crate::rules::window::{self, RangeError};
use crate::scheduling::answer_cache::Encoded;
use crate::scheduling::availability::{self, Query};
use crate::scheduling::browse;
use crate::scheduling::directory::Snapshot;
use crate::types::{PractitionerId, UsState};

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"slot_id": "s1.eyJwIjoiNDE1MGNkMjAifQ.c2lnbmF0dXJl", "start": "2026-12-01T09:00:00-08:00", "end": "2026-12-01T09:30:00-08:00", "practitioner": {"id": "4150cd20de8a470aa570a852859ac87e", "name": "Amara Okafor MD"}, "location": {"id": "b3476a18-3f63-422d-87e7-b3dc0cd55060", "name": "Oakland Clinic"}, "modality": "telehealth"}))]
pub struct SlotDto {
    /// Opaque; pass it to `POST /v1/holds` or `POST /v1/appointments` unchanged.
    pub slot_id: String,
    /// RFC 3339 in the answer's `timezone`.
    pub start: String,
    pub end: String,
    pub practitioner: PractitionerRef,
    pub location: LocationRef,
    pub modality: Modality,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"reason": {"code": "INIV", "display": "Initial Visit"}, "duration_minutes": 30, "timezone": "America/Los_Angeles", "slots": [{"slot_id": "s1.eyJwIjoiNDE1MGNkMjAifQ.c2lnbmF0dXJl", "start": "2026-12-01T09:00:00-08:00", "end": "2026-12-01T09:30:00-08:00", "practitioner": {"id": "4150cd20de8a470aa570a852859ac87e", "name": "Amara Okafor MD"}, "location": {"id": "b3476a18-3f63-422d-87e7-b3dc0cd55060", "name": "Oakland Clinic"}, "modality": "telehealth"}], "as_of": "2026-11-30T18:00:00Z", "stale": false}))]
pub struct AvailabilityDto {
    pub reason: ReasonRef,
    pub duration_minutes: u32,
    /// The IANA zone `start` and `end` are given in.
    pub timezone: String,
    /// Sorted by start, then clinician.
    pub slots: Vec<SlotDto>,
    /// When the oldest Canvas data behind this answer was fetched.
    pub as_of: String,
    /// True when Canvas could not be reached and the answer comes from the last good cache.
    pub stale: bool,
}

/// The question. `reason` and `duration` are required; `state` is required for telehealth.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the parameters; parsing names each bad one itself
pub struct AvailabilityParams {
    /// A reason code from `/v1/reasons`.
    #[param(min_length = 1, max_length = 128)]
    reason: String,
    /// Minutes; one of the reason's `durations_minutes`.
    #[param(minimum = 1, maximum = 480)]
    duration: u32,
    /// Two-letter US state where the patient will be during the visit; required for telehealth.
    #[param(value_type = Option<UsState>)]
    state: Option<String>,
    /// Default: every modality the reason allows (telehealth only when `state` is given).
    modality: Option<Modality>,
    /// First local date in `tz`, inclusive (default today).
    #[param(format = Date)]
    start: Option<String>,
    /// Last local date in `tz`, inclusive (default `start` + 6 days); at most
    /// `[booking] max_range_days` days counted inclusively.
    #[param(format = Date)]
    end: Option<String>,
    /// IANA time zone of the dates and of the answer (default: the `location`'s zone, else UTC).
    #[param(min_length = 1, example = "America/Los_Angeles")]
    tz: Option<String>,
    /// Only this clinician (Canvas Practitioner id).
    #[param(pattern = "^[0-9a-f]{32}$")]
    practitioner: Option<String>,
    /// Only this Canvas Location id.
    #[param(format = Uuid)]
    location: Option<String>,
    #[param(min_length = 1, max_length = 128)]
    specialty: Option<String>,
    #[param(min_length = 1, max_length = 128)]
    language: Option<String>,
    /// At most this many slots (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

const PARAMS: [&str; 12] = [
    "reason",
    "duration",
    "state",
    "modality",
    "start",
    "end",
    "tz",
    "practitioner",
    "location",
    "specialty",
    "language",
    "limit",
];

/// Bookable slots.
///
/// Only clinicians who offer the reason's specialty and modality and hold an active STATE licence
/// for `state` (and, in person, for the location's state) on the slot's local date appear. Slots
/// honour the booking window, holds and bookings Canvas does not show yet.
#[utoipa::path(
    operation_id = "search_availability",
    context_path = "/v1",
    tag = "browse",
    params(AvailabilityParams),
    security(("bearer" = ["scheduling.read"])),
    responses(
        (status = 200, description = "The bookable slots", body = AvailabilityDto),
        (status = 400, description = "A parameter is missing, empty, malformed or unknown, or the range is too long (`validation_failed`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks scheduling.read", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`reason_not_allowed`, `duration_not_allowed` or `modality_not_allowed`", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 502, description = "Canvas failed", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Canvas is unavailable and nothing is cached", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 504, description = "Canvas was too slow", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/availability")]
pub async fn search(
    caller: ReadAccess,
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let staff = caller.0.scopes.staff;
    // The rules and the clinicians from one snapshot: a reload never mixes them in one answer.
    let snapshot = state.directory.snapshot().await?;
    let clinic = snapshot.policy.clone();
    let asked = parse(request.query_string(), &clinic, staff)?;
    let query = resolve(asked, &snapshot, &clinic)?;
    let body = browse::answer(&state, &query, staff, "v1", |answer| {
        serde_json::to_vec(&render(&state, &query, answer))
            .map(Bytes::from)
            .map_err(|e| ApiError::internal(&e))
    })
    .await?;
    Ok(respond(&request, &body))
}

/// The answer in gzip when the client takes it (encoded once per cached answer; the
/// compression middleware leaves an encoded body alone), as it is otherwise.
fn respond(request: &HttpRequest, body: &Encoded) -> HttpResponse {
    let gzip = <AcceptEncoding as Header>::parse(request)
        .ok()
        .and_then(|accept| accept.negotiate([Encoding::gzip(), Encoding::identity()].iter()))
        == Some(Encoding::gzip());
    let mut response = HttpResponse::Ok();
    response
        .content_type("application/json")
        .insert_header((header::VARY, "Accept-Encoding"));
    if gzip {
        response
            .insert_header((header::CONTENT_ENCODING, "gzip"))
            .body(body.gzip())
    } else {
        response.body(body.identity())
    }
}

/// The question as asked, each parameter checked on its own.
struct Asked {
    reason: Reason,
    duration: u32,
    patient_state: Option<UsState>,
    modalities: Vec<Modality>,
    start: Option<Date>,
    end: Option<Date>,
    tz: Option<TimeZone>,
    practitioner: Option<PractitionerId>,
    location: Option<String>,
    specialty: Option<String>,
    language: Option<String>,
    limit: usize,
}

fn parse(query: &str, clinic: &Policy, staff: bool) -> Result<Asked, ApiError> {
    let mut p = Params::parse(query, &PARAMS);
    let reason_code = p.require("reason", |s| {
        if s.len() > 128 {
            Err("is too long".into())
        } else {
            Ok(s.to_owned())
        }
    });
    let duration = p.require("duration", integer(1, 480));
    let patient_state: Option<UsState> = p.get("state", parsed("a two-letter US state code"));
    let modality = p.get("modality", |s| {
        Modality::parse(s).ok_or_else(|| "must be telehealth or in_person".to_owned())
    });
    let start = p.get("start", date);
    let end = p.get("end", date);
    let tz = p.get("tz", time_zone);
    let practitioner: Option<PractitionerId> =
        p.get("practitioner", parsed("a Canvas practitioner id"));
    let location = p.get("location", |s| {
        uuid::Uuid::parse_str(s)
            .map(|u| u.to_string())
            .map_err(|_| "is not a Canvas Location id".to_owned())
    });
    let specialty = p.text("specialty");
    let language = p.text("language");
    let limit = p.get("limit", integer(1, 1000)).unwrap_or(100);
    if modality == Some(Modality::Telehealth) && !p.has("state") {
        p.error(
            "state",
            "is required for telehealth: the state where the patient will be",
        );
    }
    p.finish()?;
    let (Some(code), Some(duration)) = (reason_code, duration) else {
        return Err(ApiError::invalid("reason", "is required"));
    };
    let reason = policy::bookable_reason(&clinic.rules, &code, staff)?;
    policy::check_duration(reason, duration)?;
    let modalities = policy::modalities_asked(reason, modality, patient_state.is_some())?;
    if modalities.is_empty() {
        return Err(ApiError::invalid(
            "state",
            "is required for telehealth: the state where the patient will be",
        ));
    }
    Ok(Asked {
        reason: reason.clone(),
        duration,
        patient_state,
        modalities,
        start,
        end,
        tz,
        practitioner,
        location,
        specialty,
        language,
        limit: limit as usize,
    })
}

/// Fills in the defaults that depend on the clinic (the location's zone, today) and checks the range.
fn resolve(asked: Asked, snapshot: &Snapshot, clinic: &Policy) -> Result<Query, ApiError> {
    let place = match &asked.location {
        Some(id) => Some(snapshot.place_by_id(id).ok_or_else(|| {
            ApiError::invalid("location", "is not a location from /v1/locations")
        })?),
        None => None,
    };
    let tz = asked
        .tz
        .or_else(|| place.map(|p| p.info.timezone.clone()))
        .unwrap_or(TimeZone::UTC);
    let today = Timestamp::now().to_zoned_datetime(tz.clone()).date();
    let start = asked.start.unwrap_or(today);
    let end = asked.end.unwrap_or_else(|| start.saturating_add(6.days()));
    match window::check_range(&clinic.booking, start, end) {
        Ok(_) => {}
        Err(RangeError::EndBeforeStart) => {
            return Err(ApiError::invalid("end", "must not be before start"));
        }
        Err(RangeError::TooLong { days, max }) => {
            return Err(ApiError::invalid(
                "end",
                format!("the range is {days} days; at most {max} may be asked at once"),
            ));
        }
    }
    Ok(Query {
        reason: asked.reason,
        duration_minutes: asked.duration,
        patient_state: asked.patient_state,
        modalities: asked.modalities,
        start,
        end,
        tz,
        practitioner: asked.practitioner,
        location: asked.location,
        specialty: asked.specialty,
        language: asked.language,
        limit: asked.limit,
    })
}

fn render(state: &AppState, query: &Query, answer: &availability::Answer) -> AvailabilityDto {
    let tz = &query.tz;
    let slots = answer
        .offers
        .iter()
        .map(|o| SlotDto {
            slot_id: render_slot_id(state, query, o),
            start: rfc3339(o.start, tz),
            end: rfc3339(o.end, tz),
            practitioner: PractitionerRef {
                id: o.practitioner.to_string(),
                name: o.practitioner_name.clone(),
            },
            location: LocationRef {
                id: o.place.info.id.clone(),
                name: o.place.name.clone(),
            },
            modality: o.modality,
        })
        .collect();
    AvailabilityDto {
        reason: ReasonRef {
            code: query.reason.code.clone(),
            display: query.reason.display.clone(),
        },
        duration_minutes: query.duration_minutes,
        timezone: tz.iana_name().unwrap_or("UTC").to_owned(),
        slots,
        as_of: answer.as_of.to_string(),
        stale: answer.stale,
    }
}

/// The slot id an offer is booked by, on every surface.
pub fn render_slot_id(state: &AppState, query: &Query, o: &availability::OwnedOffer) -> String {
    state
        .slot_ids
        .issue(&o.claim(query.duration_minutes, &query.reason.code))
}

/// RFC 3339 with the zone's offset at that instant (`2026-03-08T03:00:00-07:00`).
pub fn rfc3339(ts: Timestamp, tz: &TimeZone) -> String {
    crate::canvas::fhir::Instant::new(ts, tz.to_offset(ts)).to_string()
}
