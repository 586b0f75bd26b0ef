//! After a booking: reading, cancelling and rescheduling appointments.

use jiff::{SignedDuration, Timestamp};

use super::Services;
use super::booking::{self, Attempt, BookRequest, Made, refuse};
use super::canvas_write;
use crate::auth::Principal;
use crate::canvas::fhir::{self, AppointmentStatus};
use crate::error::{ApiError, Code};
use crate::types::PatientId;

/// The appointment, if the caller may see it. A patient asking for someone else's appointment
/// gets the same answer as for one that does not exist, so existence does not leak.
pub async fn visible(
    s: &Services,
    caller: &Principal,
    id: &str,
) -> Result<fhir::Appointment, ApiError> {
    let not_found = || ApiError::not_found("There is no such appointment.");
    let appointment = s.canvas.appointment(id).await?.ok_or_else(not_found)?;
    if caller.scopes.staff {
        return Ok(appointment);
    }
    let patient = appointment
        .participant_id("Patient")
        .and_then(|p| p.parse::<PatientId>().ok());
    match (&patient, &caller.patient) {
        (Some(p), Some(me)) if p == me => Ok(appointment),
        _ => Err(not_found()),
    }
}

/// Patients may cancel (and so reschedule) only until the cut-off before the start.
fn check_cutoff(
    s: &Services,
    caller: &Principal,
    appointment: &fhir::Appointment,
    now: Timestamp,
) -> Result<(), ApiError> {
    if caller.scopes.staff {
        return Ok(());
    }
    let hours = i64::from(s.settings.booking.patient_cancel_cutoff_hours);
    let start = appointment.start.map(|s| s.timestamp).unwrap_or(now);
    if now
        .saturating_add(SignedDuration::from_hours(hours))
        .unwrap_or(now)
        > start
    {
        return Err(refuse(
            Code::CancellationWindowPassed,
            &format!(
                "Appointments can be changed online until {hours} hours before they start; please call the clinic."
            ),
        ));
    }
    Ok(())
}

/// Cancels; cancelling what is already cancelled changes nothing and answers the same.
pub async fn cancel(
    s: &Services,
    caller: &Principal,
    id: &str,
) -> Result<fhir::Appointment, ApiError> {
    locked(s, id, async || cancel_now(s, caller, id).await).await
}

/// Changes to one appointment are serialised, and each re-reads it under the lock, so two
/// concurrent reschedules cannot both move it.
async fn locked<T>(
    s: &Services,
    id: &str,
    change: impl AsyncFnOnce() -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let lease = booking::lock(s, format!("appointment:{id}")).await?;
    let result = change().await;
    booking::release(s, lease).await;
    result
}

async fn cancel_now(
    s: &Services,
    caller: &Principal,
    id: &str,
) -> Result<fhir::Appointment, ApiError> {
    let current = visible(s, caller, id).await?;
    if current.status == AppointmentStatus::Cancelled {
        return Ok(current);
    }
    check_cutoff(s, caller, &current, Timestamp::now())?;
    put_cancelled(s, &current, None).await
}

async fn put_cancelled(
    s: &Services,
    current: &fhir::Appointment,
    replaced_by: Option<&str>,
) -> Result<fhir::Appointment, ApiError> {
    let id = current.id.clone().unwrap_or_default();
    s.canvas
        .update_appointment(&id, &canvas_write::cancellation(current, replaced_by))
        .await?;
    if let Err(e) = s.store.remove_booked(id.clone()).await {
        tracing::warn!(error = %e, "could not drop a cancelled booking from the overlay; it expires on its own");
    }
    if let Some(p) = current
        .participant_id("Practitioner")
        .and_then(|p| p.parse().ok())
    {
        s.slot_cache.invalidate_practitioner(&p);
    }
    Ok(fhir::Appointment {
        status: AppointmentStatus::Cancelled,
        ..current.clone()
    })
}

pub struct Reschedule {
    pub slot: super::slot_id::SlotClaim,
    pub patient_state: crate::types::UsState,
    pub hold_id: Option<String>,
}

/// How far a reschedule got, kept with the idempotency key so a retry finishes it.
pub const NEW_APPOINTMENT: &str = "new_appointment";

/// Books the new slot first, then cancels the old appointment. If the booking fails the old one
/// is untouched; if the cancellation fails the answer says so, and a retry with the same key
/// (resuming with `done`, the new appointment's id) only cancels.
pub async fn reschedule(
    s: &Services,
    caller: &Principal,
    old_id: &str,
    req: &Reschedule,
    attempt: &Attempt<'_>,
    done: Option<&str>,
    record: impl AsyncFnOnce(&str) -> Result<(), ApiError>,
) -> Result<fhir::Appointment, ApiError> {
    locked(s, old_id, async || {
        reschedule_now(s, caller, old_id, req, attempt, done, record).await
    })
    .await
}

async fn reschedule_now(
    s: &Services,
    caller: &Principal,
    old_id: &str,
    req: &Reschedule,
    attempt: &Attempt<'_>,
    done: Option<&str>,
    record: impl AsyncFnOnce(&str) -> Result<(), ApiError>,
) -> Result<fhir::Appointment, ApiError> {
    let old = visible(s, caller, old_id).await?;
    let new = match done {
        Some(new_id) => s
            .canvas
            .appointment(new_id)
            .await?
            .ok_or_else(|| ApiError::internal(&"the rescheduled appointment vanished"))?,
        None => {
            if !old.status.blocks_time() {
                return Err(refuse(
                    Code::AppointmentNotActive,
                    "This appointment is cancelled or over; book a new one instead.",
                ));
            }
            check_cutoff(s, caller, &old, Timestamp::now())?;
            let patient = old
                .participant_id("Patient")
                .and_then(|p| p.parse::<PatientId>().ok())
                .ok_or_else(|| ApiError::not_found("There is no such appointment."))?;
            let reason_code = old
                .reason_code
                .first()
                .and_then(|r| r.coding.first())
                .and_then(|c| c.code.clone())
                .unwrap_or_else(|| req.slot.reason.clone());
            let request = BookRequest {
                slot: req.slot.clone(),
                reason_code,
                patient,
                patient_state: req.patient_state,
                comment: old.reason_code.first().and_then(|r| r.text.clone()),
                hold_id: req.hold_id.clone(),
            };
            let attempt = Attempt {
                rescheduled_from: Some(old_id),
                ..*attempt
            };
            let Made { appointment } = booking::book(s, caller, &request, &attempt).await?;
            record(appointment.id.as_deref().unwrap_or_default()).await?;
            appointment
        }
    };
    if old.status != AppointmentStatus::Cancelled {
        let new_id = new.id.clone().unwrap_or_default();
        put_cancelled(s, &old, Some(&new_id)).await.map_err(|e| {
            tracing::error!(error = %e, "rescheduled, but the old appointment was not cancelled");
            ApiError::new(
                Code::UpstreamError,
                format!("The new appointment {new_id} is booked, but cancelling the old one failed. Retry with the same Idempotency-Key to finish."),
            )
        })?;
    }
    Ok(new)
}
