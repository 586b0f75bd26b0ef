//! `GET /v1/appointments/{id}` and `GET /v1/appointments`, and the appointment as clients see it.

use actix_web::{HttpRequest, get, web};
use jiff::ToSpan;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::availability::rfc3339;
use super::params::{Params, date, parsed};
use super::refs::{LocationRef, PractitionerRef, ReasonRef};
use crate::auth::BookAccess;
use crate::canvas::fhir::{self, AppointmentStatus};
use crate::error::ApiError;
use crate::rules::model::Modality;
use crate::scheduling::Services;
use crate::scheduling::directory::Snapshot;
use crate::scheduling::lifecycle;
use crate::types::PatientId;

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "621a66fc-9d5c-4de0-97fb-935d611ac176", "status": "booked", "start": "2026-12-01T09:00:00-08:00", "end": "2026-12-01T09:30:00-08:00", "reason": {"code": "INIV", "display": "Initial Visit"}, "modality": "telehealth", "practitioner": {"id": "4150cd20de8a470aa570a852859ac87e", "name": "Amara Okafor MD"}, "location": {"id": "b3476a18-3f63-422d-87e7-b3dc0cd55060", "name": "Oakland Clinic"}, "patient_id": "ee1c7803325b47b492008f3e7c9d7a3d"}))]
pub struct AppointmentDto {
    /// The Canvas Appointment id.
    pub id: String,
    /// FHIR status: proposed, pending, booked, arrived, checked-in, fulfilled, noshow,
    /// cancelled or entered-in-error.
    pub status: String,
    /// RFC 3339 in the location's zone.
    pub start: String,
    pub end: String,
    /// The structured reason for visit; absent for Other Events.
    pub reason: Option<ReasonRef>,
    pub modality: Option<Modality>,
    pub practitioner: Option<PractitionerRef>,
    pub location: Option<LocationRef>,
    pub patient_id: Option<String>,
    /// An Other Event's title; absent for patient visits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"appointments": [{"id": "621a66fc-9d5c-4de0-97fb-935d611ac176", "status": "booked", "start": "2026-12-01T09:00:00-08:00", "end": "2026-12-01T09:30:00-08:00", "reason": {"code": "INIV", "display": "Initial Visit"}, "modality": "telehealth", "practitioner": {"id": "4150cd20de8a470aa570a852859ac87e", "name": "Amara Okafor MD"}, "location": {"id": "b3476a18-3f63-422d-87e7-b3dc0cd55060", "name": "Oakland Clinic"}, "patient_id": "ee1c7803325b47b492008f3e7c9d7a3d"}]}))]
pub struct AppointmentList {
    pub appointments: Vec<AppointmentDto>,
}

/// Maps a Canvas Appointment (as read or as written) to what clients see.
pub fn dto(s: &Services, snapshot: &Snapshot, a: &fhir::Appointment) -> AppointmentDto {
    let rules = &snapshot.policy.rules;
    let coding = a.reason_code.first().and_then(|r| r.coding.first());
    let reason = coding
        .and_then(|c| c.code.as_deref())
        .map(|code| ReasonRef {
            code: code.to_owned(),
            display: rules
                .reason(code)
                .map(|r| r.display.clone())
                .or_else(|| coding.and_then(|c| c.display.clone()))
                .unwrap_or_else(|| code.to_owned()),
        });
    let type_coding = a.appointment_type.as_ref().and_then(|t| t.coding.first());
    let type_is = |t: &crate::rules::model::TypeCoding| {
        type_coding.is_some_and(|c| {
            c.code.as_deref() == Some(&t.code) && c.system.as_deref().is_none_or(|s| s == t.system)
        })
    };
    let is_event = type_is(&s.settings.sync.event_type);
    let modality = if is_event {
        None
    } else {
        let by_reason = reason
            .as_ref()
            .and_then(|r| rules.reason(&r.code))
            .and_then(|r| {
                r.modalities
                    .iter()
                    .find(|(_, t)| type_is(t))
                    .map(|(m, _)| *m)
            });
        Some(by_reason.unwrap_or(
            if a.meeting_link().is_some()
                || type_coding.and_then(|c| c.code.as_deref()) == Some("448337001")
            {
                Modality::Telehealth
            } else {
                Modality::InPerson
            },
        ))
    };
    let place = a.location_id().and_then(|l| snapshot.place_by_id(l));
    let tz = place
        .map(|p| p.info.timezone.clone())
        .unwrap_or(jiff::tz::TimeZone::UTC);
    let practitioner = a.participant_id("Practitioner").map(|id| PractitionerRef {
        id: id.to_owned(),
        name: id
            .parse()
            .ok()
            .and_then(|p| snapshot.clinicians.get(&p))
            .map(|c| c.name.clone())
            .unwrap_or_default(),
    });
    AppointmentDto {
        id: a.id.clone().unwrap_or_default(),
        status: a.status.as_str().to_owned(),
        start: a
            .start
            .map(|t| rfc3339(t.timestamp, &tz))
            .unwrap_or_default(),
        end: a.end.map(|t| rfc3339(t.timestamp, &tz)).unwrap_or_default(),
        reason: if is_event { None } else { reason },
        modality,
        practitioner,
        location: a.location_id().map(|l| LocationRef {
            id: l.to_owned(),
            name: place.map(|p| p.name.clone()).unwrap_or_default(),
        }),
        patient_id: a.participant_id("Patient").map(str::to_owned),
        title: if is_event {
            a.description
                .clone()
                .or_else(|| a.reason_code.first().and_then(|r| r.text.clone()))
        } else {
            None
        },
    }
}

/// Canvas Appointment ids are UUIDs; anything else cannot exist.
pub fn appointment_id(raw: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(raw)
        .map(|u| u.to_string())
        .map_err(|_| ApiError::not_found("There is no such appointment."))
}

/// One appointment.
///
/// A patient token sees only its own patient's appointments; any other id is 404.
#[utoipa::path(
    operation_id = "get_appointment",
    context_path = "/v1",
    tag = "appointments",
    params(("id" = String, Path, description = "Canvas Appointment id", format = Uuid)),
    security(("bearer" = ["scheduling.book"])),
    responses(
        (status = 200, description = "The appointment", body = AppointmentDto),
        (status = 401, description = "No valid token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks scheduling.book", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such appointment, or another patient's", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Canvas is unavailable", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/appointments/{id}")]
pub async fn read(
    caller: BookAccess,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<web::Json<AppointmentDto>, ApiError> {
    let id = appointment_id(&path)?;
    let appointment = lifecycle::visible(&state, &caller.0, &id).await?;
    let snapshot = state.directory.snapshot().await?;
    Ok(web::Json(dto(&state, &snapshot, &appointment)))
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the parameters; parsing names each bad one itself
pub struct ListParams {
    /// The patient; a patient token may omit it (its own) and may name no other. Staff must give it.
    #[param(pattern = "^[0-9a-f]{32}$")]
    patient_id: Option<String>,
    /// First date (UTC), inclusive; default today.
    #[param(format = Date)]
    from: Option<String>,
    /// Last date (UTC), inclusive; default `from` + 90 days.
    #[param(format = Date)]
    to: Option<String>,
    /// Comma-separated FHIR statuses, e.g. `booked,cancelled`.
    #[param(
        pattern = "^(proposed|pending|booked|arrived|checked-in|fulfilled|noshow|cancelled|entered-in-error|waitlist)(,(proposed|pending|booked|arrived|checked-in|fulfilled|noshow|cancelled|entered-in-error|waitlist))*$"
    )]
    status: Option<String>,
}

/// A patient's appointments, by start.
#[utoipa::path(
    operation_id = "list_appointments",
    context_path = "/v1",
    tag = "appointments",
    params(ListParams),
    security(("bearer" = ["scheduling.book"])),
    responses(
        (status = 200, description = "The appointments, by start", body = AppointmentList),
        (status = 400, description = "A parameter is malformed", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "A patient token naming another patient", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Canvas is unavailable", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/appointments")]
pub async fn list(
    caller: BookAccess,
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<web::Json<AppointmentList>, ApiError> {
    let caller = caller.0;
    let mut p = Params::parse(
        request.query_string(),
        &["patient_id", "from", "to", "status"],
    );
    let patient: Option<PatientId> = p.get("patient_id", parsed("a Canvas patient key"));
    let from = p.get("from", date);
    let to = p.get("to", date);
    let statuses = p.get("status", |s| {
        s.split(',')
            .map(|x| {
                serde_json::from_value::<AppointmentStatus>(serde_json::Value::String(
                    x.trim().to_owned(),
                ))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| "must be FHIR appointment statuses separated by commas".to_owned())
    });
    if !caller.scopes.staff && patient.is_none() && caller.patient.is_none() {
        p.error("patient_id", "this token speaks for no patient");
    }
    if caller.scopes.staff && patient.is_none() && !p.has("patient_id") {
        p.error("patient_id", "is required for staff");
    }
    p.finish()?;
    let Some(patient) = patient.or_else(|| caller.patient.clone()) else {
        return Err(ApiError::invalid("patient_id", "is required"));
    };
    if !caller.may_act_for(&patient) {
        return Err(ApiError::new(
            crate::error::Code::Forbidden,
            "This token may not see this patient's appointments.",
        ));
    }
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    let from = from.unwrap_or(today);
    let to = to.unwrap_or_else(|| from.saturating_add(90.days()));
    if to < from {
        return Err(ApiError::invalid("to", "must not be before from"));
    }
    let (who, ge, lt) = (
        format!("Patient/{patient}"),
        format!("ge{from}"),
        format!("lt{}", to.saturating_add(1.day())),
    );
    let status_param = statuses.map(|list| {
        list.iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",")
    });
    let mut query = vec![
        ("patient", who.as_str()),
        ("date", ge.as_str()),
        ("date", lt.as_str()),
        ("_sort", "date"),
    ];
    if let Some(s) = &status_param {
        query.push(("status", s));
    }
    let mut found = state.canvas.search_appointments(&query).await?;
    // By instant: the answers' offsets differ by location, so their text does not sort.
    found.sort_by_key(|a| a.start.map(|t| t.timestamp));
    let snapshot = state.directory.snapshot().await?;
    let appointments = found.iter().map(|a| dto(&state, &snapshot, a)).collect();
    Ok(web::Json(AppointmentList { appointments }))
}
