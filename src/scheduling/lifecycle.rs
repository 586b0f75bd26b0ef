//! After a booking: reading, cancelling and rescheduling appointments.

use jiff::Timestamp;

use super::Services;
use super::booking::{self, Attempt, BookRequest, Made, refuse};
use super::canvas_write;
use super::guard::Guard;
use crate::auth::Principal;
use crate::canvas::fhir::{self, AppointmentStatus};
use crate::error::{ApiError, Code};
use crate::rules::policy;
use crate::store::Move;
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

/// The appointment, if the caller may change it: what they may see, and for a patient only
/// their visits. Other Events are staff business even when they name the patient.
async fn changeable(
    s: &Services,
    caller: &Principal,
    id: &str,
) -> Result<fhir::Appointment, ApiError> {
    let appointment = visible(s, caller, id).await?;
    if !caller.scopes.staff
        && canvas_write::is_other_event(&appointment, &s.settings.sync.event_type)
    {
        return Err(ApiError::not_found("There is no such appointment."));
    }
    Ok(appointment)
}

fn check_cutoff(
    s: &Services,
    caller: &Principal,
    appointment: &fhir::Appointment,
    now: Timestamp,
) -> Result<(), ApiError> {
    policy::check_change_cutoff(
        &s.policy().booking,
        now,
        caller.scopes.staff,
        appointment.start.map(|t| t.timestamp),
    )?;
    Ok(())
}

/// Cancels; cancelling what is already cancelled changes nothing and answers the same.
pub async fn cancel(
    s: &Services,
    guard: &Guard,
    caller: &Principal,
    id: &str,
) -> Result<fhir::Appointment, ApiError> {
    locked(s, guard, id, async || {
        let current = changeable(s, caller, id).await?;
        if current.status == AppointmentStatus::Cancelled {
            return Ok(current);
        }
        check_cutoff(s, caller, &current, Timestamp::now())?;
        guard.check().map_err(|_| busy())?;
        put_cancelled(s, &current, None).await
    })
    .await
}

/// Changes to one appointment are serialised, and each re-reads it under the lock, so two
/// concurrent reschedules cannot both move it.
async fn locked<T>(
    s: &Services,
    guard: &Guard,
    id: &str,
    change: impl AsyncFnOnce() -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let lease = booking::lock(s, guard, appointment_lock(id)).await?;
    let result = change().await;
    guard.release(lease).await;
    result
}

pub fn appointment_lock(id: &str) -> String {
    format!("appointment:{id}")
}

fn busy() -> ApiError {
    ApiError::new(
        Code::UpstreamUnavailable,
        "This change took too long to stay safe and was stopped; nothing was changed. Please retry.",
    )
    .with_retry_after(1)
}

/// Cancels `current` at Canvas (pointing at its replacement, if any) and frees its time.
pub async fn put_cancelled(
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
    /// Whose hold the new booking spends, when not the caller's own (a waitlist offer's).
    pub hold_owner: Option<String>,
}

/// How far a reschedule got, kept with the idempotency key so a retry finishes it.
pub const NEW_APPOINTMENT: &str = "new_appointment";

/// Books the new slot first, then cancels the old appointment. The move is recorded before
/// anything is written, so that it ends with exactly one of the two active whatever fails: if
/// the booking fails for certain the old one is untouched; if the new one exists (or may) and
/// the old one could not be cancelled, the recovery loop finishes it (see [`finish_move`]).
pub async fn reschedule(
    s: &Services,
    caller: &Principal,
    old_id: &str,
    req: &Reschedule,
    attempt: &Attempt<'_>,
    done: Option<&str>,
    record: impl AsyncFnOnce(&str),
) -> Result<fhir::Appointment, ApiError> {
    locked(s, attempt.guard, old_id, async || {
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
    record: impl AsyncFnOnce(&str),
) -> Result<fhir::Appointment, ApiError> {
    let old = changeable(s, caller, old_id).await?;
    let earlier = match done {
        Some(new_id) => s.canvas.appointment(new_id).await?,
        None if attempt.maybe_created => booking::find(s, attempt.identifier).await?,
        None => None,
    };
    let new = match earlier {
        Some(new) => new,
        None => {
            let new = book_replacement(s, caller, &old, old_id, req, attempt).await?;
            record(new.id.as_deref().unwrap_or_default()).await;
            new
        }
    };
    // Once the replacement exists the move has happened: whatever became of the replacement
    // since (a patient may cancel it right away), the old one goes.
    if old.status != AppointmentStatus::Cancelled {
        let new_id = new.id.clone().unwrap_or_default();
        let cancelled = match attempt.guard.check() {
            Ok(()) => put_cancelled(s, &old, Some(&new_id)).await.map(drop),
            Err(_) => Err(busy()),
        };
        if let Err(e) = cancelled {
            // The move stays recorded: the recovery loop cancels the old one shortly.
            tracing::error!(error = %e, "rescheduled; the old appointment will be cancelled by the recovery loop");
            return Ok(new);
        }
    }
    forget_move(s, old_id, attempt.identifier).await;
    Ok(new)
}

async fn book_replacement(
    s: &Services,
    caller: &Principal,
    old: &fhir::Appointment,
    old_id: &str,
    req: &Reschedule,
    attempt: &Attempt<'_>,
) -> Result<fhir::Appointment, ApiError> {
    if !old.status.blocks_time() {
        return Err(refuse(
            Code::AppointmentNotActive,
            "This appointment is cancelled or over; book a new one instead.",
        ));
    }
    check_cutoff(s, caller, old, Timestamp::now())?;
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
        hold_owner: req.hold_owner.clone(),
    };
    // The booking records the move just before it sends the create: from then on, whatever
    // fails, the recovery loop settles it from Canvas (and drops it if nothing was made).
    let attempt = Attempt {
        rescheduled_from: Some(old_id),
        ..*attempt
    };
    let Made { appointment } = booking::book(s, caller, &request, &attempt).await?;
    Ok(appointment)
}

async fn forget_move(s: &Services, old_id: &str, identifier: &str) {
    let m = Move {
        old: old_id.to_owned(),
        identifier: identifier.to_owned(),
        since: Timestamp::now(),
        attempts: 0,
        next_try: None,
    };
    if let Err(e) = s.store.remove_move(m).await {
        tracing::warn!(error = %e, "a finished reschedule stays recorded; the recovery loop drops it");
    }
}

/// What became of a recorded reschedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveOutcome {
    /// The new appointment is active and the old one cancelled (now or before).
    Finished,
    /// No replacement was made: the old one stays.
    Moot,
    /// Canvas has not yet shown whether the replacement was made, or the cancel failed again.
    Pending,
}

/// Finishes a reschedule its request did not: once Canvas shows the replacement active, the old
/// appointment is cancelled; once it is certain no replacement was made, the record is dropped.
/// Runs under the old appointment's lock, so never beside a live request for the same move. A
/// cancel Canvas keeps refusing is tried again less and less often (at least once a minute).
pub async fn finish_move(s: &Services, guard: &Guard, m: &Move) -> Result<MoveOutcome, ApiError> {
    let now = Timestamp::now();
    if m.next_try.is_some_and(|t| t > now) {
        return Ok(MoveOutcome::Pending);
    }
    let lease = match guard
        .lock(appointment_lock(&m.old), std::time::Duration::ZERO)
        .await
    {
        Ok(lease) => lease,
        // Its request (or another replica's recovery) is at it.
        Err(crate::store::StoreError::Busy(_)) => return Ok(MoveOutcome::Pending),
        Err(e) => return Err(super::booking_store_error(e)),
    };
    let outcome = settle_move(s, guard, m).await;
    guard.release(lease).await;
    match outcome {
        Ok(MoveOutcome::Pending) => Ok(MoveOutcome::Pending),
        Ok(done) => {
            forget_move(s, &m.old, &m.identifier).await;
            Ok(done)
        }
        Err(e) => {
            back_off(s, m, now).await;
            Err(e)
        }
    }
}

/// Tries again later: the interval doubles per failure, up to a minute.
async fn back_off(s: &Services, m: &Move, now: Timestamp) {
    let base = s.settings.leases.recovery_interval;
    let wait = base
        .saturating_mul(1 << m.attempts.min(16))
        .min(std::time::Duration::from_secs(60));
    let later = Move {
        attempts: m.attempts.saturating_add(1),
        next_try: now
            .checked_add(jiff::SignedDuration::try_from(wait).unwrap_or_default())
            .ok(),
        ..m.clone()
    };
    if later.attempts.is_multiple_of(10) {
        tracing::error!(
            attempts = later.attempts,
            "a reschedule's old appointment is still not cancelled"
        );
    }
    if let Err(e) = s.store.put_move(later).await {
        tracing::warn!(error = %e, "could not record a reschedule's retry");
    }
}

async fn settle_move(s: &Services, guard: &Guard, m: &Move) -> Result<MoveOutcome, ApiError> {
    let Some(new) = booking::find(s, &m.identifier).await? else {
        let now = Timestamp::now();
        let in_flight = s
            .store
            .booked(now)
            .await
            .map_err(super::booking_store_error)?
            .iter()
            .any(|b| {
                b.pending
                    .as_ref()
                    .is_some_and(|p| p.identifier == m.identifier)
            });
        // Until its claim lapses the replacement may still appear at Canvas.
        return Ok(if in_flight {
            MoveOutcome::Pending
        } else {
            MoveOutcome::Moot
        });
    };
    booking::confirm_found(s, &m.identifier, &new).await;
    // The replacement exists: the move happened (even if the replacement was cancelled since).
    let Some(old) = s.canvas.appointment(&m.old).await? else {
        return Ok(MoveOutcome::Finished);
    };
    if old.status == AppointmentStatus::Cancelled {
        return Ok(MoveOutcome::Finished);
    }
    guard.check().map_err(|_| busy())?;
    let new_id = new.id.clone().unwrap_or_default();
    put_cancelled(s, &old, Some(&new_id)).await?;
    tracing::info!("a reschedule was finished by the recovery loop");
    Ok(MoveOutcome::Finished)
}
