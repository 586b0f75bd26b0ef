//! Booking a slot exactly once. The checks run in the contract's order and the first failure
//! answers; bookings of one clinician are serialised by a lock so that of two requests for
//! overlapping time exactly one reaches Canvas; the create is tagged with an identifier so a
//! create that may have happened is found again instead of repeated.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::Services;
use super::canvas_write::{self, BOOKING_SYSTEM, NewAppointment};
use super::directory::{Clinician, Place};
use super::slot_id::SlotClaim;
use crate::auth::Principal;
use crate::canvas::{self, fhir};
use crate::error::{ApiError, Code};
use crate::rules::eligibility::{licensed_for_visit, offers_modality, offers_specialty};
use crate::rules::model::{Reason, TypeCoding};
use crate::rules::window;
use crate::store::{Booked, Lease, StoreError};
use crate::types::{PatientId, ScheduleId, UsState};

pub struct BookRequest {
    pub slot: SlotClaim,
    pub reason_code: String,
    pub patient: PatientId,
    pub patient_state: UsState,
    /// Free text for the clinician; sent to Canvas, never logged.
    pub comment: Option<String>,
    pub hold_id: Option<String>,
}

/// Exactly-once bookkeeping of one request.
pub struct Attempt<'a> {
    /// The Canvas identifier value derived from the idempotency key.
    pub identifier: &'a str,
    /// An earlier attempt with this key may have created the appointment.
    pub maybe_created: bool,
    pub rescheduled_from: Option<&'a str>,
}

/// The appointment as written, with its Canvas id.
pub struct Made {
    pub appointment: fhir::Appointment,
}

/// Everything the checks established.
struct Checked {
    reason: Reason,
    appointment_type: TypeCoding,
    clinician: Clinician,
    place: Place,
    start: Timestamp,
    end: Timestamp,
}

pub fn refuse(code: Code, detail: &str) -> ApiError {
    ApiError::new(code, detail)
}

#[tracing::instrument(
    name = "booking",
    skip_all,
    fields(
        patient = %s.patient_ref(&req.patient),
        practitioner = %req.slot.practitioner,
        modality = %req.slot.modality,
        reason = %req.reason_code,
    )
)]
pub async fn book(
    s: &Services,
    caller: &Principal,
    req: &BookRequest,
    attempt: &Attempt<'_>,
) -> Result<Made, ApiError> {
    let now = Timestamp::now();
    if attempt.maybe_created
        && let Some(found) = find(s, attempt.identifier).await?
    {
        return Ok(Made { appointment: found });
    }
    if !caller.may_act_for(&req.patient) {
        return Err(refuse(
            Code::Forbidden,
            "This token may not book for this patient.",
        ));
    }
    let checked = check_rules(s, caller, req, now).await?;
    let patient_lock = lock(s, format!("patient:{}", req.patient)).await?;
    let result = async {
        if !caller.scopes.staff {
            check_limit(s, &req.patient, now).await?;
        }
        if s.canvas.patient(&req.patient).await?.is_none() {
            return Err(refuse(Code::PatientNotFound, "Canvas has no such patient."));
        }
        let clinician_lock = lock(s, format!("practitioner:{}", checked.clinician.id)).await?;
        let made = book_locked(s, caller, req, attempt, &checked, now).await;
        release(s, clinician_lock).await;
        made
    }
    .await;
    release(s, patient_lock).await;
    result
}

/// Reason, duration, modality, licensure and window: everything that needs no lock.
async fn check_rules(
    s: &Services,
    caller: &Principal,
    req: &BookRequest,
    now: Timestamp,
) -> Result<Checked, ApiError> {
    let staff = caller.scopes.staff;
    let slot = &req.slot;
    let reason = s
        .settings
        .rules
        .reason(&req.reason_code)
        .filter(|r| staff || r.patient_bookable)
        .ok_or_else(|| {
            refuse(
                Code::ReasonNotAllowed,
                "There is no bookable reason with this code.",
            )
        })?;
    let snapshot = s.directory.snapshot().await?;
    let (Some(clinician), Some(place)) = (
        snapshot.clinicians.get(&slot.practitioner),
        snapshot.place_by_key(&slot.location_key),
    ) else {
        return Err(refuse(
            Code::SlotUnavailable,
            "This clinician or location no longer takes bookings.",
        ));
    };
    if !offers_specialty(reason, &clinician.profile) {
        return Err(refuse(
            Code::ReasonNotAllowed,
            "This clinician does not see patients for this reason.",
        ));
    }
    if !window::duration_allowed(reason, slot.duration_minutes) {
        return Err(refuse(
            Code::DurationNotAllowed,
            "This reason is not booked for the slot's duration.",
        ));
    }
    let Some(appointment_type) = reason
        .modalities
        .get(&slot.modality)
        .filter(|_| offers_modality(reason, &clinician.profile, slot.modality))
    else {
        return Err(refuse(
            Code::ModalityNotAllowed,
            "This reason or clinician is not offered this way.",
        ));
    };
    let (Some(start), Some(end)) = (slot.start(), slot.end()) else {
        return Err(ApiError::invalid(
            "slot_id",
            "is not a slot from /v1/availability",
        ));
    };
    let local_date = start.to_zoned_datetime(place.info.timezone.clone()).date();
    if !licensed_for_visit(
        &clinician.licensure,
        slot.modality,
        Some(req.patient_state),
        place.info.state,
        local_date,
    ) {
        return Err(refuse(
            Code::PractitionerNotLicensed,
            "The clinician holds no licence for this state on that date.",
        ));
    }
    if !window::window(&s.settings.booking, now, staff).allows(start) {
        return Err(refuse(
            Code::OutsideBookingWindow,
            "This slot is too soon or too far ahead to book.",
        ));
    }
    Ok(Checked {
        reason: reason.clone(),
        appointment_type: appointment_type.clone(),
        clinician: clinician.clone(),
        place: place.clone(),
        start,
        end,
    })
}

/// A patient's upcoming appointments stay under `[booking] max_active_per_patient`.
async fn check_limit(s: &Services, patient: &PatientId, now: Timestamp) -> Result<(), ApiError> {
    let (who, from) = (format!("Patient/{patient}"), format!("ge{now}"));
    let upcoming = s
        .canvas
        .search_appointments(&[("patient", &who), ("date", &from)])
        .await?;
    let active = upcoming
        .iter()
        .filter(|a| a.status.blocks_time() && a.start.is_some_and(|t| t.timestamp > now))
        .count();
    if active >= s.settings.booking.max_active_per_patient as usize {
        return Err(refuse(
            Code::BookingLimitReached,
            "This patient already has the most upcoming appointments allowed.",
        ));
    }
    Ok(())
}

/// Holds, the slot in Canvas now, the create: under the clinician's lock.
async fn book_locked(
    s: &Services,
    caller: &Principal,
    req: &BookRequest,
    attempt: &Attempt<'_>,
    c: &Checked,
    now: Timestamp,
) -> Result<Made, ApiError> {
    let store = &s.store;
    let holds = store.holds(now).await.map_err(store_unavailable)?;
    let mine = |h: &crate::store::Hold| {
        h.owner == caller.subject && req.hold_id.as_ref().is_none_or(|id| id == &h.id)
    };
    let overlapping: Vec<_> = holds
        .iter()
        .filter(|h| h.practitioner == c.clinician.id && h.start < c.end && c.start < h.end)
        .collect();
    if overlapping.iter().any(|h| !mine(h)) {
        return Err(refuse(Code::SlotHeld, "Someone else is holding this time."));
    }
    let booked = store.booked(now).await.map_err(store_unavailable)?;
    let unconfirmed = unconfirmed_id(attempt.identifier);
    if booked.iter().any(|b| b.appointment_id == unconfirmed) {
        // An earlier try of this very request that Canvas has not confirmed: creating again
        // now could make two. Until its hold on the time lapses, the answer stays 504.
        return Err(ApiError::new(
            Code::UpstreamTimeout,
            "Canvas has not confirmed an earlier try of this booking yet. Retry with the same Idempotency-Key in a minute.",
        ));
    }
    if booked
        .iter()
        .any(|b| b.practitioner == c.clinician.id && b.start < c.end && c.start < b.end)
    {
        return Err(refuse(Code::SlotUnavailable, "This time was just booked."));
    }
    if !still_free(s, &req.slot, c).await? {
        return Err(refuse(
            Code::SlotUnavailable,
            "This time is no longer free.",
        ));
    }
    let identifier = attempt.identifier;
    let body = canvas_write::appointment(&NewAppointment {
        reason: &c.reason,
        appointment_type: &c.appointment_type,
        practitioner: &c.clinician.id,
        patient: &req.patient,
        location_id: &c.place.info.id,
        start: c.start,
        end: c.end,
        comment: req.comment.as_deref(),
        // A visit link only where the visit happens by video.
        meeting_link: match req.slot.modality {
            crate::rules::model::Modality::Telehealth => {
                c.clinician.profile.telehealth_url.as_deref()
            }
            crate::rules::model::Modality::InPerson => None,
        },
        identifier,
        rescheduled_from: attempt.rescheduled_from,
    });
    let appointment = match create_once(s, &body, identifier).await {
        Ok(a) => a,
        Err(e) if e.code == Code::UpstreamTimeout => {
            // Canvas may still commit it: nobody else gets this time meanwhile. After a slot
            // TTL every answer comes from Canvas again, which by then shows what it did.
            // Counted from now: the create and its lookup may have taken a while.
            let failed_at = Timestamp::now();
            let until = failed_at
                .saturating_add(
                    SignedDuration::try_from(s.settings.cache.slot_ttl)
                        .unwrap_or(SignedDuration::ZERO),
                )
                .unwrap_or(failed_at);
            let hidden = store
                .put_booked(Booked {
                    appointment_id: unconfirmed,
                    practitioner: c.clinician.id.clone(),
                    start: c.start,
                    end: c.end,
                    expires_at: until,
                })
                .await;
            if let Err(hidden) = hidden {
                tracing::warn!(error = %hidden, "an unconfirmed booking's time is not hidden");
            }
            s.slot_cache.invalidate_practitioner(&c.clinician.id);
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let keep = s.settings.cache.slot_ttl + s.settings.cache.stale_if_error;
    let expires_at = now
        .saturating_add(SignedDuration::try_from(keep).unwrap_or(SignedDuration::ZERO))
        .unwrap_or(now);
    let id = appointment.id.clone().unwrap_or_default();
    store
        .put_booked(Booked {
            appointment_id: id,
            practitioner: c.clinician.id.clone(),
            start: c.start,
            end: c.end,
            expires_at,
        })
        .await
        .map_err(store_unavailable)?;
    for h in overlapping {
        let _ = store.remove_hold(h.id.clone()).await;
    }
    s.slot_cache.invalidate_practitioner(&c.clinician.id);
    Ok(Made { appointment })
}

/// How a booking Canvas did not confirm is held in the overlay: by its identifier, so that the
/// same request retried (same Idempotency-Key) knows it is waiting on its own earlier try.
fn unconfirmed_id(identifier: &str) -> String {
    format!("unconfirmed:{identifier}")
}

/// Canvas still lists the slot as free, asked now rather than from the cache.
async fn still_free(s: &Services, slot: &SlotClaim, c: &Checked) -> Result<bool, ApiError> {
    let schedule = ScheduleId {
        location_key: slot.location_key.clone(),
        practitioner: slot.practitioner.clone(),
    };
    let date = c
        .start
        .to_zoned_datetime(c.place.info.timezone.clone())
        .date();
    let free = s
        .canvas
        .slots(&schedule, date, date, slot.duration_minutes)
        .await?;
    Ok(free
        .iter()
        .any(|f| f.start.timestamp == c.start && f.end.timestamp == c.end))
}

/// Creates the appointment once: a create that may have reached Canvas is looked up by its
/// identifier, never sent again blindly.
async fn create_once(
    s: &Services,
    body: &fhir::Appointment,
    identifier: &str,
) -> Result<fhir::Appointment, ApiError> {
    match s.canvas.create_appointment(body).await {
        Ok(id) => Ok(fhir::Appointment {
            id: Some(id),
            ..body.clone()
        }),
        Err(canvas::Error::BusinessRule { .. }) => {
            // Canvas refuses double booking when the clinic turned that on (§4).
            Err(refuse(
                Code::SlotUnavailable,
                "Canvas reports this time is no longer available.",
            ))
        }
        Err(e) if e.is_ambiguous() => {
            tracing::warn!(error = %e, "appointment create may have happened; looking it up");
            match find(s, identifier).await {
                Ok(Some(found)) => Ok(found),
                _ => Err(ApiError::new(
                    Code::UpstreamTimeout,
                    "Canvas did not confirm the booking in time. Retry with the same Idempotency-Key: it will find the booking if it was made.",
                )),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// The appointment slotgate created under this identifier, if any.
pub async fn find(s: &Services, identifier: &str) -> Result<Option<fhir::Appointment>, ApiError> {
    let token = format!("{BOOKING_SYSTEM}|{identifier}");
    let found = s
        .canvas
        .search_appointments(&[("identifier", &token)])
        .await?;
    Ok(found.into_iter().find(|a| a.id.is_some()))
}

fn store_unavailable(e: StoreError) -> ApiError {
    super::booking_store_error(e)
}

/// Locks live longer than the Canvas calls they protect (a slot check and a create), and a
/// request waits for its turn about as long.
pub async fn lock(s: &Services, key: String) -> Result<Lease, ApiError> {
    let timeout = s.settings.canvas.timeout;
    let ttl = timeout * 3 + Duration::from_secs(5);
    s.store
        .lock(key, ttl, timeout * 3)
        .await
        .map_err(|e| match e {
            StoreError::Busy(_) => ApiError::new(
                Code::UpstreamUnavailable,
                "Too many bookings at once for this clinician; please retry.",
            )
            .with_retry_after(1),
            e => store_unavailable(e),
        })
}

pub async fn release(s: &Services, lease: Lease) {
    if let Err(e) = s.store.unlock(lease).await {
        // The lock expires on its own; the booking itself is done.
        tracing::warn!(error = %e, "could not release a booking lock");
    }
}
