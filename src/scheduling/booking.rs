//! Booking a slot exactly once, however slow Canvas is. The checks run in the contract's order
//! and the first failure answers. The booking then claims the clinician's time in the shared
//! state, atomically and fenced by its locks, *before* it asks Canvas whether the time is free
//! and creates: from that moment nobody else can hold or book the time, and if the create may
//! have happened (a time-out, a dropped connection, a 5xx) the claim stays until Canvas shows
//! what it did or `[canvas] write_settle_seconds` pass. The create carries an identifier
//! derived from the idempotency key, so a create that may have happened is looked up, never
//! sent again blindly.

use jiff::{SignedDuration, Timestamp};

use super::Services;
use super::canvas_write::{self, BOOKING_SYSTEM, NewAppointment};
use super::directory::{Clinician, Place};
use super::guard::Guard;
use super::slot_id::SlotClaim;
use crate::auth::Principal;
use crate::canvas::{self, fhir};
use crate::error::{ApiError, Code};
use crate::rules::eligibility::licensed_for_visit;
use crate::rules::model::{Modality, Reason, TypeCoding};
use crate::rules::policy::{self, Refusal};
use crate::store::{Booked, Claim, ClaimOutcome, Lease, Move, Pending, StoreError};
use crate::types::{PatientId, PractitionerId, ScheduleId, UsState};

pub struct BookRequest {
    pub slot: SlotClaim,
    pub reason_code: String,
    pub patient: PatientId,
    pub patient_state: UsState,
    /// Free text for the clinician; sent to Canvas, never logged.
    pub comment: Option<String>,
    pub hold_id: Option<String>,
    /// Whose hold the booking spends, when not the caller's own (a waitlist offer's).
    pub hold_owner: Option<String>,
}

/// Where an attempt records its progress: under its idempotency key, as its owner.
#[derive(Clone, Copy)]
pub struct KeyRecord<'a> {
    pub store_key: &'a str,
    pub owner: &'a Lease,
}

/// The progress field that says this key's create was sent: it is never sent again.
pub const CREATE_SENT: &str = "create_sent";

/// Exactly-once bookkeeping of one request.
pub struct Attempt<'a> {
    /// The Canvas identifier value derived from the idempotency key.
    pub identifier: &'a str,
    /// An earlier attempt with this key may have created the appointment.
    pub maybe_created: bool,
    /// An earlier attempt with this key sent its create: only looking it up remains.
    pub sent_before: bool,
    pub record: KeyRecord<'a>,
    /// The appointment this one replaces (a reschedule): linked at Canvas, and not counted
    /// against the patient's limit.
    pub rescheduled_from: Option<&'a str>,
    /// The request's leases, renewed while it works.
    pub guard: &'a Guard,
}

/// The appointment as written, with its Canvas id.
pub struct Made {
    pub appointment: fhir::Appointment,
}

/// Everything the checks established.
struct Checked {
    /// The rules and booking policy the checks used (the rest of the booking uses them too).
    policy: std::sync::Arc<crate::rules::model::Policy>,
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
    if attempt.maybe_created {
        if let Some(found) = find(s, attempt.identifier).await? {
            confirm_found(s, attempt.identifier, &found).await;
            return Ok(Made { appointment: found });
        }
        // Not at Canvas yet: while the earlier try's claim stands, Canvas may still apply it,
        // and a key whose create was sent never sends another.
        if attempt.sent_before || claim_of(s, attempt.identifier, now).await?.is_some() {
            return Err(unconfirmed(attempt.sent_before));
        }
    }
    if !caller.may_act_for(&req.patient) {
        return Err(refuse(
            Code::Forbidden,
            "This token may not book for this patient.",
        ));
    }
    let checked = check_rules(s, caller, req, now).await?;
    let guard = attempt.guard;
    let patient_lock = lock(s, guard, format!("patient:{}", req.patient)).await?;
    let result = async {
        if !caller.scopes.staff {
            check_limit(s, &checked.policy.booking, &req.patient, attempt, now).await?;
        }
        if s.canvas.patient(&req.patient).await?.is_none() {
            return Err(refuse(Code::PatientNotFound, "Canvas has no such patient."));
        }
        let clinician_lock =
            lock(s, guard, format!("practitioner:{}", checked.clinician.id)).await?;
        let made = book_locked(s, caller, req, attempt, &checked, now).await;
        guard.release(clinician_lock).await;
        made
    }
    .await;
    guard.release(patient_lock).await;
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
    // The rules and the clinicians from one snapshot: a reload never mixes them in one check.
    let snapshot = s.directory.snapshot().await?;
    let clinic = snapshot.policy.clone();
    let reason = policy::bookable_reason(&clinic.rules, &req.reason_code, staff)?;
    let (Some(clinician), Some(place)) = (
        snapshot.clinicians.get(&slot.practitioner),
        snapshot.place_by_key(&slot.location_key),
    ) else {
        return Err(refuse(
            Code::SlotUnavailable,
            "This clinician or location no longer takes bookings.",
        ));
    };
    // The contract's order: reason, duration, modality.
    policy::check_specialty(reason, &clinician.profile)?;
    policy::check_duration(reason, slot.duration_minutes)?;
    let appointment_type = policy::appointment_type(reason, slot.modality)?;
    policy::check_modality_offered(reason, &clinician.profile, slot.modality)?;
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
        return Err(Refusal::PractitionerNotLicensed.into());
    }
    policy::check_window(&clinic.booking, now, staff, start)?;
    Ok(Checked {
        policy: clinic.clone(),
        reason: reason.clone(),
        appointment_type: appointment_type.clone(),
        clinician: clinician.clone(),
        place: place.clone(),
        start,
        end,
    })
}

/// A patient's upcoming appointments (Canvas's, and other bookings of theirs still in flight)
/// stay under `[booking] max_active_per_patient`; the one a reschedule replaces does not count.
async fn check_limit(
    s: &Services,
    booking: &crate::rules::model::BookingPolicy,
    patient: &PatientId,
    attempt: &Attempt<'_>,
    now: Timestamp,
) -> Result<(), ApiError> {
    let replacing = attempt.rescheduled_from;
    let (who, from) = (format!("Patient/{patient}"), format!("ge{now}"));
    let upcoming = s
        .canvas
        .search_appointments(&[("patient", &who), ("date", &from)])
        .await?;
    let active: Vec<&fhir::Appointment> = upcoming
        .iter()
        .filter(|a| a.status.blocks_time() && a.start.is_some_and(|t| t.timestamp > now))
        .filter(|a| replacing.is_none_or(|old| a.id.as_deref() != Some(old)))
        .collect();
    let in_flight = s
        .store
        .booked(now)
        .await
        .map_err(store_unavailable)?
        .into_iter()
        .filter_map(|b| b.pending)
        .filter(|p| p.patient == patient.as_str() && p.identifier != attempt.identifier)
        .filter(|p| !active.iter().any(|a| carries(a, &p.identifier)))
        .count();
    policy::check_booking_limit(booking, active.len() + in_flight, false)?;
    Ok(())
}

/// The appointment carries slotgate's booking identifier `value`.
fn carries(a: &fhir::Appointment, value: &str) -> bool {
    a.identifier
        .iter()
        .any(|i| i.system.as_deref() == Some(BOOKING_SYSTEM) && i.value.as_deref() == Some(value))
}

/// Claims the time, checks Canvas now, creates: under the clinician's lock.
async fn book_locked(
    s: &Services,
    caller: &Principal,
    req: &BookRequest,
    attempt: &Attempt<'_>,
    c: &Checked,
    now: Timestamp,
) -> Result<Made, ApiError> {
    let guard = attempt.guard;
    let identifier = attempt.identifier;
    let owner = req
        .hold_owner
        .clone()
        .unwrap_or_else(|| caller.subject.clone());
    let entry = Booked {
        appointment_id: Pending::entry_id(identifier),
        practitioner: c.clinician.id.clone(),
        start: c.start,
        end: c.end,
        expires_at: guard.pending_expiry(),
        pending: Some(Pending {
            identifier: identifier.to_owned(),
            patient: req.patient.to_string(),
            since: now,
            hold_owner: owner.clone(),
            hold_id: req.hold_id.clone(),
        }),
    };
    let claim = Claim {
        booked: entry.clone(),
        hold_owner: owner.clone(),
        hold_id: req.hold_id.clone(),
    };
    match s
        .store
        .claim(claim, guard.fences(), now)
        .await
        .map_err(store_unavailable)?
    {
        ClaimOutcome::Claimed => guard.keep_pending(entry.clone()),
        ClaimOutcome::Held => {
            return Err(refuse(Code::SlotHeld, "Someone else is holding this time."));
        }
        ClaimOutcome::Booked => {
            let taken = refuse(Code::SlotUnavailable, "This time was just booked.");
            return ours_or(s, identifier, taken).await;
        }
        ClaimOutcome::Unconfirmed => return Err(unconfirmed(false)),
        ClaimOutcome::Fenced => return Err(lost()),
    }
    // Others' cached answers that still offer the time must not be served.
    s.slot_cache.invalidate_practitioner(&c.clinician.id);
    match send(s, req, attempt, c).await {
        Ok(made) => {
            confirm(s, guard, &entry, &made, &owner, req.hold_id.as_deref()).await;
            Ok(made)
        }
        // Canvas may yet apply it: the claim keeps the time until Canvas shows what it did.
        Err(Unsent::MaybeCreated(e)) => Err(e),
        Err(Unsent::Nothing(e)) => {
            give_back(s, guard, &entry).await;
            if e.code == Code::SlotUnavailable {
                return ours_or(s, identifier, e).await;
            }
            Err(e)
        }
    }
}

/// The time is taken; if by this very booking (an earlier attempt whose record the shared
/// state lost, say), that is the answer rather than a refusal.
async fn ours_or(s: &Services, identifier: &str, refusal: ApiError) -> Result<Made, ApiError> {
    match find(s, identifier).await {
        Ok(Some(found)) => {
            confirm_found(s, identifier, &found).await;
            Ok(Made { appointment: found })
        }
        _ => Err(refusal),
    }
}

/// Why a booking with its time claimed was not made.
enum Unsent {
    /// Nothing reached Canvas, or Canvas refused it.
    Nothing(ApiError),
    /// The create may have been applied.
    MaybeCreated(ApiError),
}

/// With the time claimed: Canvas still has it free, this request still holds its locks, create.
async fn send(
    s: &Services,
    req: &BookRequest,
    attempt: &Attempt<'_>,
    c: &Checked,
) -> Result<Made, Unsent> {
    match still_free(s, &req.slot, c).await {
        Ok(true) => {}
        Ok(false) => {
            return Err(Unsent::Nothing(refuse(
                Code::SlotUnavailable,
                "This time is no longer free.",
            )));
        }
        Err(e) => return Err(Unsent::Nothing(e)),
    }
    // A request that lost a lock while Canvas was slow stops before it writes.
    attempt.guard.check().map_err(|_| Unsent::Nothing(lost()))?;
    record_sent(s, attempt).await.map_err(Unsent::Nothing)?;
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
            Modality::Telehealth => c.clinician.profile.telehealth_url.as_deref(),
            Modality::InPerson => None,
        },
        identifier: attempt.identifier,
        rescheduled_from: attempt.rescheduled_from,
    });
    let appointment = create_once(s, &body, attempt.identifier).await?;
    Ok(Made { appointment })
}

/// How long a booking made through slotgate stays in the overlay: until every cached answer
/// (fresh or stale) was fetched after it.
fn overlay_expiry(s: &Services, now: Timestamp) -> Timestamp {
    let keep = s.settings.cache.slot_ttl + s.settings.cache.stale_if_error;
    now.saturating_add(SignedDuration::try_from(keep).unwrap_or(SignedDuration::ZERO))
        .unwrap_or(now)
}

/// Canvas has it: the overlay holds the time under its Canvas id until the caches show it, and
/// the caller's holds on it are spent. Nothing here may turn the booking into a failure.
async fn confirm(
    s: &Services,
    guard: &Guard,
    pending: &Booked,
    made: &Made,
    owner: &str,
    hold_id: Option<&str>,
) {
    guard.drop_pending(&pending.appointment_id);
    let now = Timestamp::now();
    let booked = Booked {
        appointment_id: made.appointment.id.clone().unwrap_or_default(),
        expires_at: overlay_expiry(s, now),
        pending: None,
        ..pending.clone()
    };
    if let Err(e) = s.store.put_booked(booked).await {
        tracing::warn!(error = %e, "booked, but the overlay was not updated; the claim keeps the time until it lapses");
    } else if let Err(e) = s.store.remove_booked(pending.appointment_id.clone()).await {
        tracing::warn!(error = %e, "booked; the claim lapses on its own");
    }
    match s.store.holds(now).await {
        Ok(holds) => {
            for h in holds.into_iter().filter(|h| {
                h.owner == owner
                    && hold_id.is_none_or(|id| id == h.id)
                    && h.practitioner == pending.practitioner
                    && h.start < pending.end
                    && pending.start < h.end
            }) {
                let _ = s.store.remove_hold(h.id).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "booked; the caller's hold lapses on its own"),
    }
    s.slot_cache.invalidate_practitioner(&pending.practitioner);
}

/// A booking found at Canvas by its identifier (an earlier attempt's, or the recovery's): its
/// claim becomes an ordinary overlay entry, and the hold it booked is spent.
pub async fn confirm_found(s: &Services, identifier: &str, found: &fhir::Appointment) {
    let pending_id = Pending::entry_id(identifier);
    let now = Timestamp::now();
    if let Ok(Some(Booked {
        pending: Some(p),
        practitioner,
        start,
        end,
        ..
    })) = claim_of(s, identifier, now).await
        && let Ok(holds) = s.store.holds(now).await
    {
        for h in holds.into_iter().filter(|h| {
            h.owner == p.hold_owner
                && p.hold_id.as_ref().is_none_or(|id| *id == h.id)
                && h.practitioner == practitioner
                && h.start < end
                && start < h.end
        }) {
            let _ = s.store.remove_hold(h.id).await;
        }
    }
    let (Some(id), Some(practitioner), Some(start), Some(end)) = (
        found.id.clone(),
        found
            .participant_id("Practitioner")
            .and_then(|p| p.parse::<PractitionerId>().ok()),
        found.start,
        found.end,
    ) else {
        return;
    };
    let booked = Booked {
        appointment_id: id,
        practitioner: practitioner.clone(),
        start: start.timestamp,
        end: end.timestamp,
        expires_at: overlay_expiry(s, Timestamp::now()),
        pending: None,
    };
    if s.store.put_booked(booked).await.is_ok() {
        let _ = s.store.remove_booked(pending_id).await;
    }
    s.slot_cache.invalidate_practitioner(&practitioner);
}

/// Nothing was created: the time goes back.
async fn give_back(s: &Services, guard: &Guard, pending: &Booked) {
    guard.drop_pending(&pending.appointment_id);
    if let Err(e) = s.store.remove_booked(pending.appointment_id.clone()).await {
        tracing::warn!(error = %e, "a claim was not given back; it lapses on its own");
    }
    s.slot_cache.invalidate_practitioner(&pending.practitioner);
}

/// From here Canvas may apply the create: the key remembers it was sent (it never sends
/// another), and a reschedule records its move (the recovery finishes it if nobody else does).
async fn record_sent(s: &Services, attempt: &Attempt<'_>) -> Result<(), ApiError> {
    let record = attempt.record;
    let progress = serde_json::json!({ CREATE_SENT: true });
    let owned = s
        .store
        .progress(record.store_key.to_owned(), record.owner.clone(), progress)
        .await
        .map_err(store_unavailable)?;
    if !owned {
        // Another attempt resumed this key meanwhile: it is the one to create.
        return Err(lost());
    }
    if let Some(old) = attempt.rescheduled_from {
        s.store
            .put_move(Move {
                old: old.to_owned(),
                identifier: attempt.identifier.to_owned(),
                since: Timestamp::now(),
                attempts: 0,
                next_try: None,
            })
            .await
            .map_err(store_unavailable)?;
    }
    Ok(())
}

/// The claim a booking with this identifier holds, if any.
async fn claim_of(
    s: &Services,
    identifier: &str,
    now: Timestamp,
) -> Result<Option<Booked>, ApiError> {
    let booked = s.store.booked(now).await.map_err(store_unavailable)?;
    Ok(booked.into_iter().find(|b| {
        b.pending
            .as_ref()
            .is_some_and(|p| p.identifier == identifier)
    }))
}

fn unconfirmed(sent_long_ago: bool) -> ApiError {
    ApiError::new(
        Code::UpstreamTimeout,
        if sent_long_ago {
            "Canvas has not confirmed an earlier try of this booking. Retry with the same Idempotency-Key; if Canvas never shows it, it was not made."
        } else {
            "Canvas has not confirmed an earlier try of this request yet. Retry with the same Idempotency-Key in a minute."
        },
    )
}

/// A lock was lost before anything was written to Canvas.
fn lost() -> ApiError {
    ApiError::new(
        Code::UpstreamUnavailable,
        "Booking took too long to stay safe and was stopped; nothing was booked. Please retry.",
    )
    .with_retry_after(1)
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
) -> Result<fhir::Appointment, Unsent> {
    match s.canvas.create_appointment(body).await {
        Ok(id) => Ok(fhir::Appointment {
            id: Some(id),
            ..body.clone()
        }),
        Err(canvas::Error::BusinessRule { .. }) => {
            // Canvas refuses double booking when the clinic turned that on (§4).
            Err(Unsent::Nothing(refuse(
                Code::SlotUnavailable,
                "Canvas reports this time is no longer available.",
            )))
        }
        Err(e) if e.is_ambiguous() => {
            tracing::warn!(error = %e, "appointment create may have happened; looking it up");
            match find(s, identifier).await {
                Ok(Some(found)) => Ok(found),
                _ => Err(Unsent::MaybeCreated(ApiError::new(
                    Code::UpstreamTimeout,
                    "Canvas did not confirm the booking in time. Retry with the same Idempotency-Key: it will find the booking if it was made.",
                ))),
            }
        }
        Err(e) => Err(Unsent::Nothing(e.into())),
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

/// Takes a lock for this request, kept by its guard until released. A request waits its turn
/// for about as long as a client waits for an answer; how long the lock then lives depends only
/// on how long its holder works.
pub async fn lock(s: &Services, guard: &Guard, key: String) -> Result<Lease, ApiError> {
    let wait = s.settings.canvas.timeout * 3;
    guard.lock(key, wait).await.map_err(|e| match e {
        StoreError::Busy(_) => ApiError::new(
            Code::UpstreamUnavailable,
            "Too many bookings at once for this clinician; please retry.",
        )
        .with_retry_after(1),
        e => store_unavailable(e),
    })
}
