//! Other Events: staff block clinicians' time without a note (meetings, travel, co-visits).
//! One Canvas appointment of the Other Event type per clinician, so each blocks their own time.

use jiff::{SignedDuration, Timestamp};

use super::Services;
use super::booking::{self, refuse};
use super::canvas_write::{self, EVENT_SYSTEM, NewEvent};
use super::guard::Guard;
use crate::canvas::fhir;
use crate::error::{ApiError, Code};
use crate::rules::model::TypeCoding;
use crate::store::Booked;
use crate::types::{PatientId, PractitionerId};

pub struct EventRequest {
    pub practitioners: Vec<PractitionerId>,
    pub start: Timestamp,
    pub end: Timestamp,
    pub title: String,
    pub event_type: Option<TypeCoding>,
    pub location_id: Option<String>,
    pub patient: Option<PatientId>,
}

/// Creates the events; `identifier` (from the idempotency key, or fresh) makes a retried
/// request find what an interrupted one already created.
pub async fn create(
    s: &Services,
    guard: &Guard,
    req: &EventRequest,
    identifier: &str,
    resumed: bool,
) -> Result<Vec<fhir::Appointment>, ApiError> {
    let snapshot = s.directory.snapshot().await?;
    let mut problems = Vec::new();
    for (i, p) in req.practitioners.iter().enumerate() {
        if !snapshot.clinicians.contains_key(p) {
            problems.push(crate::error::FieldError {
                field: format!("practitioner_ids[{i}]"),
                message: "is not a schedulable practitioner".into(),
            });
        }
    }
    let location = match &req.location_id {
        Some(id) => snapshot.place_by_id(id).map(|p| p.info.id.clone()),
        // The contract's default: the first [[locations]] entry.
        None => s.policy().rules.locations.first().map(|l| l.id.clone()),
    };
    if location.is_none() {
        problems.push(crate::error::FieldError {
            field: "location_id".into(),
            message: "is not a location from /v1/locations".into(),
        });
    }
    if !problems.is_empty() {
        return Err(ApiError::invalid_fields(problems));
    }
    if let Some(p) = &req.patient
        && s.canvas.patient(p).await?.is_none()
    {
        return Err(refuse(Code::PatientNotFound, "Canvas has no such patient."));
    }
    let location = location.unwrap_or_default();
    let event_type = req
        .event_type
        .clone()
        .unwrap_or_else(|| s.settings.sync.event_type.clone());
    let mut made = Vec::new();
    // The same order everywhere, so two requests for the same people cannot deadlock.
    let mut practitioners = req.practitioners.clone();
    practitioners.sort();
    practitioners.dedup();
    for (n, practitioner) in practitioners.iter().enumerate() {
        let value = format!("{identifier}-{n}");
        let lease = booking::lock(s, guard, format!("practitioner:{practitioner}")).await?;
        // A request that lost its lock while Canvas was slow stops before it writes.
        let result = match guard.check() {
            Ok(()) => create_one(s, req, &event_type, practitioner, &location, &value, resumed).await,
            Err(_) => Err(ApiError::new(
                Code::UpstreamUnavailable,
                "Creating the events took too long to stay safe and was stopped; retry with the same Idempotency-Key.",
            )
            .with_retry_after(1)),
        };
        guard.release(lease).await;
        made.push(result?);
    }
    Ok(made)
}

async fn create_one(
    s: &Services,
    req: &EventRequest,
    event_type: &TypeCoding,
    practitioner: &PractitionerId,
    location: &str,
    value: &str,
    resumed: bool,
) -> Result<fhir::Appointment, ApiError> {
    let token = format!("{EVENT_SYSTEM}|{value}");
    if resumed
        && let Some(found) = s
            .canvas
            .search_appointments(&[("identifier", &token)])
            .await?
            .into_iter()
            .next()
    {
        return Ok(found);
    }
    let body = canvas_write::other_event(&NewEvent {
        event_type,
        practitioner,
        patient: req.patient.as_ref(),
        location_id: location,
        start: req.start,
        end: req.end,
        title: &req.title,
        identifier: (EVENT_SYSTEM, value),
    });
    let id = match s.canvas.create_appointment(&body).await {
        Ok(id) => id,
        Err(e) if e.is_ambiguous() => match s
            .canvas
            .search_appointments(&[("identifier", &token)])
            .await?
            .into_iter()
            .next()
        {
            Some(found) => found.id.unwrap_or_default(),
            None => {
                return Err(ApiError::new(
                    Code::UpstreamTimeout,
                    "Canvas did not confirm the event in time. Retry with the same Idempotency-Key to finish.",
                ));
            }
        },
        Err(e) => return Err(e.into()),
    };
    let keep = s.settings.cache.slot_ttl + s.settings.cache.stale_if_error;
    let now = Timestamp::now();
    let expires_at = now
        .saturating_add(SignedDuration::try_from(keep).unwrap_or(SignedDuration::ZERO))
        .unwrap_or(now);
    // Canvas has it: nothing after this may answer "nothing was made".
    if let Err(e) = s
        .store
        .put_booked(Booked {
            appointment_id: id.clone(),
            practitioner: practitioner.clone(),
            start: req.start,
            end: req.end,
            expires_at,
            pending: None,
        })
        .await
    {
        tracing::warn!(error = %e, "an Other Event is made but not in the overlay; Canvas's answers will show it");
    }
    s.slot_cache.invalidate_practitioner(practitioner);
    Ok(fhir::Appointment {
        id: Some(id),
        ..body
    })
}
