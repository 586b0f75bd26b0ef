//! Holds: a slot set aside for one caller for `[booking] hold_minutes`, hidden from everyone's
//! availability meanwhile. A patient holds at most `[booking] max_holds_per_patient` at once,
//! and no hold is granted on a time whose booking is in flight (the store decides both
//! atomically with the overlap).

use jiff::{SignedDuration, Timestamp};

use super::Services;
use super::booking::refuse;
use super::slot_id::SlotClaim;
use crate::auth::Principal;
use crate::error::{ApiError, Code};
use crate::rules::policy::{self, Refusal};
use crate::store::{Hold, HoldOutcome};
use crate::types::{PatientId, ScheduleId};

pub async fn place(
    s: &Services,
    caller: &Principal,
    slot_id: &str,
    slot: &SlotClaim,
    patient: Option<PatientId>,
) -> Result<Hold, ApiError> {
    let now = Timestamp::now();
    if let Some(p) = &patient
        && !caller.may_act_for(p)
    {
        return Err(refuse(
            Code::Forbidden,
            "This token may not hold slots for this patient.",
        ));
    }
    let (Some(start), Some(end)) = (slot.start(), slot.end()) else {
        return Err(ApiError::invalid(
            "slot_id",
            "is not a slot from /v1/availability",
        ));
    };
    let clinic = s.policy();
    policy::check_window(&clinic.booking, now, caller.scopes.staff, start)?;
    // A slot Canvas no longer offers cannot be held.
    let snapshot = s.directory.snapshot().await?;
    let place = snapshot.place_by_key(&slot.location_key).ok_or_else(|| {
        refuse(
            Code::SlotUnavailable,
            "This location no longer takes bookings.",
        )
    })?;
    let date = start.to_zoned_datetime(place.info.timezone.clone()).date();
    let schedule = ScheduleId {
        location_key: slot.location_key.clone(),
        practitioner: slot.practitioner.clone(),
    };
    let free = s
        .canvas
        .slots(&schedule, date, date, slot.duration_minutes)
        .await?;
    if !free
        .iter()
        .any(|f| f.start.timestamp == start && f.end.timestamp == end)
    {
        return Err(refuse(
            Code::SlotUnavailable,
            "This time is no longer free.",
        ));
    }
    let minutes = i64::from(clinic.booking.hold_minutes);
    let hold = Hold {
        id: uuid::Uuid::new_v4().to_string(),
        owner: caller.subject.clone(),
        patient: patient
            .or_else(|| caller.patient.clone())
            .map(|p| p.to_string()),
        slot_id: slot_id.to_owned(),
        practitioner: slot.practitioner.clone(),
        start,
        end,
        expires_at: now
            .saturating_add(SignedDuration::from_mins(minutes))
            .unwrap_or(now),
    };
    let max = clinic.booking.max_holds_per_patient;
    match s
        .store
        .put_hold(hold.clone(), max, now)
        .await
        .map_err(super::booking_store_error)?
    {
        HoldOutcome::Created => {
            // Cached answers that still list the slot must not be reused.
            s.slot_cache.touch();
            Ok(hold)
        }
        HoldOutcome::Held => Err(refuse(Code::SlotHeld, "Someone else is holding this time.")),
        HoldOutcome::Booked => Err(refuse(Code::SlotUnavailable, "This time was just booked.")),
        HoldOutcome::LimitReached => Err(Refusal::HoldLimitReached { max }.into()),
    }
}

/// Releases a hold; only its holder (or staff) may, and anyone else is told it does not exist.
pub async fn release(s: &Services, caller: &Principal, id: &str) -> Result<(), ApiError> {
    let now = Timestamp::now();
    let hold = s
        .store
        .hold(id.to_owned(), now)
        .await
        .map_err(super::booking_store_error)?;
    match hold {
        Some(h) if h.owner == caller.subject || caller.scopes.staff => {
            s.store
                .remove_hold(id.to_owned())
                .await
                .map_err(super::booking_store_error)?;
            s.slot_cache.touch();
            Ok(())
        }
        _ => Err(ApiError::not_found("There is no such hold.")),
    }
}
