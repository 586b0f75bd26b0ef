//! The waitlist: patients waiting for an earlier time, and offers of a held slot when one opens.
//! Entries and offers live in the shared state (any replica answers, a restart loses none); the
//! sync leader makes the offers (`matcher`); accepting books through the normal booking path,
//! spending the offer's hold, exactly once.

mod accept;
pub mod announce;
pub mod matcher;
pub mod search;
mod upkeep;

pub use accept::{Accepted, accept};

use jiff::Timestamp;
use jiff::civil::Date;

use super::Services;
use super::lifecycle;
use crate::auth::Principal;
use crate::error::{ApiError, Code, FieldError};
use crate::rules::model::Modality;
use crate::rules::policy;
use crate::store::waitlist::{Entry, Offer, OfferStatus};
use crate::types::{PatientId, PractitionerId, UsState};

/// A patient's request to be offered an earlier time.
pub struct NewEntry {
    pub patient: PatientId,
    pub reason_code: String,
    pub duration: u32,
    pub patient_state: UsState,
    pub modality: Option<Modality>,
    pub practitioner_ids: Vec<PractitionerId>,
    pub location_id: Option<String>,
    pub earliest_date: Option<Date>,
    pub latest_date: Date,
    pub before_appointment_id: Option<String>,
}

fn store_error(e: crate::store::StoreError) -> ApiError {
    super::booking_store_error(e)
}

/// Adds the entry, checked with the booking rules that do not depend on a slot.
pub async fn join(s: &Services, caller: &Principal, new: NewEntry) -> Result<Entry, ApiError> {
    if !caller.may_act_for(&new.patient) {
        return Err(ApiError::new(
            Code::Forbidden,
            "This token may not join the waitlist for this patient.",
        ));
    }
    let snapshot = s.directory.snapshot().await?;
    let clinic = snapshot.policy.clone();
    let staff = caller.scopes.staff;
    let reason = policy::bookable_reason(&clinic.rules, &new.reason_code, staff)?;
    policy::check_duration(reason, new.duration)?;
    if let Some(m) = new.modality {
        policy::appointment_type(reason, m)?;
    }
    let mut problems = Vec::new();
    // Its dates are the clinic's local dates: a date that is still today where the patient may
    // be seen (anywhere the clinic operates, without a location) is not past.
    let today = search::today_at(new.location_id.as_deref(), &snapshot, Timestamp::now());
    if new.latest_date < today {
        problems.push(FieldError {
            field: "latest_date".into(),
            message: "must not be in the past".into(),
        });
    }
    if new.earliest_date.is_some_and(|e| e > new.latest_date) {
        problems.push(FieldError {
            field: "earliest_date".into(),
            message: "must not be after latest_date".into(),
        });
    }
    for (i, p) in new.practitioner_ids.iter().enumerate() {
        if !snapshot.clinicians.contains_key(p) {
            problems.push(FieldError {
                field: format!("practitioner_ids[{i}]"),
                message: "is not a schedulable practitioner".into(),
            });
        }
    }
    if let Some(l) = &new.location_id
        && snapshot.place_by_id(l).is_none()
    {
        problems.push(FieldError {
            field: "location_id".into(),
            message: "is not a location from /v1/locations".into(),
        });
    }
    if !problems.is_empty() {
        return Err(ApiError::unprocessable_fields(problems));
    }
    if s.canvas.patient(&new.patient).await?.is_none() {
        return Err(ApiError::new(
            Code::PatientNotFound,
            "Canvas has no such patient.",
        ));
    }
    let before_start = match &new.before_appointment_id {
        Some(id) => Some(visit_to_replace(s, caller, &new.patient, id).await?),
        None => None,
    };
    let entry = Entry {
        id: uuid::Uuid::new_v4().to_string(),
        owner: caller.subject.clone(),
        patient: new.patient.to_string(),
        reason_code: reason.code.clone(),
        duration: new.duration,
        patient_state: new.patient_state.to_string(),
        modality: new.modality,
        practitioner_ids: new
            .practitioner_ids
            .iter()
            .map(ToString::to_string)
            .collect(),
        location_id: new.location_id,
        earliest_date: new.earliest_date,
        latest_date: new.latest_date,
        before_appointment_id: new.before_appointment_id,
        before_start,
        created_at: Timestamp::now(),
        passed: Vec::new(),
    };
    let max = s.settings.waitlist.max_entries_per_patient;
    if !s
        .store
        .add_entry(entry.clone(), max)
        .await
        .map_err(store_error)?
    {
        return Err(ApiError::new(
            Code::WaitlistLimitReached,
            format!("This patient already waits with {max} entries, the most allowed."),
        ));
    }
    // The leader looks at once.
    s.slot_cache.touch();
    Ok(entry)
}

/// The visit an entry would replace: the patient's own, still to come; its start.
async fn visit_to_replace(
    s: &Services,
    caller: &Principal,
    patient: &PatientId,
    id: &str,
) -> Result<Timestamp, ApiError> {
    let not_found = || {
        ApiError::unprocessable_fields(vec![FieldError {
            field: "before_appointment_id".into(),
            message: "is not an upcoming visit of this patient".into(),
        }])
    };
    // Canvas failing is not the patient's mistake: only "no such visit" is a field error.
    let visit = lifecycle::visible(s, caller, id)
        .await
        .map_err(|e| unless_missing(e, not_found))?;
    let ours = visit.participant_id("Patient") == Some(patient.as_str());
    match visit.start {
        Some(start) if ours && visit.status.blocks_time() && start.timestamp > Timestamp::now() => {
            Ok(start.timestamp)
        }
        _ => Err(not_found()),
    }
}

/// `not_found()` for a visit that does not exist (or is not the caller's); any other failure
/// (Canvas unavailable or slow) as it is.
fn unless_missing(e: ApiError, not_found: impl FnOnce() -> ApiError) -> ApiError {
    if e.code == Code::NotFound {
        not_found()
    } else {
        e
    }
}

/// A patient's entries (or, for staff, everyone's), oldest first, each with its live offer.
pub async fn list(
    s: &Services,
    patient: Option<&PatientId>,
) -> Result<Vec<(Entry, Option<Offer>)>, ApiError> {
    let entries = s.store.entries().await.map_err(store_error)?;
    let offers = s.store.offers().await.map_err(store_error)?;
    let mut mine: Vec<(Entry, Option<Offer>)> = entries
        .into_iter()
        .filter(|e| patient.is_none_or(|p| e.patient == p.as_str()))
        .map(|e| {
            let offer = offers
                .iter()
                .find(|o| o.entry_id == e.id && o.status.is_live())
                .cloned();
            (e, offer)
        })
        .collect();
    mine.sort_by_key(|(e, _)| e.created_at);
    Ok(mine)
}

fn may_see(caller: &Principal, patient: &str) -> bool {
    caller.scopes.staff
        || caller
            .patient
            .as_ref()
            .is_some_and(|p| p.as_str() == patient)
}

/// Leaves the waitlist. The entry goes first, so that no offer can be made for it from then
/// on (an offer needs its entry); then its open offer, if any, is given back. An offer being
/// accepted right now is left to finish: its booking ends the entry anyway.
pub async fn withdraw(s: &Services, caller: &Principal, id: &str) -> Result<(), ApiError> {
    let entries = s.store.entries().await.map_err(store_error)?;
    let Some(entry) = entries
        .into_iter()
        .find(|e| e.id == id && may_see(caller, &e.patient))
    else {
        return Err(ApiError::not_found("There is no such waitlist entry."));
    };
    s.store
        .remove_entry(entry.id.clone())
        .await
        .map_err(store_error)?;
    for offer in s.store.offers().await.map_err(store_error)? {
        if offer.entry_id == entry.id && offer.status == OfferStatus::Open {
            // Should this fail, the matcher lets go of offers whose entry is gone.
            if let Err(e) = let_go(s, &offer, OfferStatus::Open, OfferStatus::Declined).await {
                tracing::warn!(error = %e.detail, "waitlist: a withdrawn entry's offer is let go later");
            }
        }
    }
    Ok(())
}

/// The offer, if the caller may act on it (anyone else is told it does not exist).
async fn visible_offer(s: &Services, caller: &Principal, id: &str) -> Result<Offer, ApiError> {
    s.store
        .offers()
        .await
        .map_err(store_error)?
        .into_iter()
        .find(|o| o.id == id && may_see(caller, &o.patient))
        .ok_or_else(|| ApiError::not_found("There is no such offer."))
}

fn lapsed() -> ApiError {
    ApiError::new(
        Code::OfferExpired,
        "This offer has lapsed or was answered; the patient stays on the waitlist.",
    )
}

/// Ends an offer that is in `from` without a booking (`to`: declined or expired): its entry
/// never gets that slot again, and its hold goes. `false` when it was no longer in `from`.
/// The slot is passed first, in place: a failure changes nothing else.
pub async fn let_go(
    s: &Services,
    offer: &Offer,
    from: OfferStatus,
    to: OfferStatus,
) -> Result<bool, ApiError> {
    let slot = Offer::slot_key(&offer.practitioner, offer.start);
    // `false` when the entry is gone: nothing to remember then.
    s.store
        .pass_slot(offer.entry_id.clone(), slot)
        .await
        .map_err(store_error)?;
    let Some(offer) = s
        .store
        .settle_offer(offer.id.clone(), from, to)
        .await
        .map_err(store_error)?
    else {
        return Ok(false);
    };
    if let Err(e) = s.store.remove_hold(offer.hold_id.clone()).await {
        tracing::warn!(error = %e, "waitlist: an offer's hold lapses on its own");
    }
    s.slot_cache.touch();
    Ok(true)
}

pub async fn decline(s: &Services, caller: &Principal, id: &str) -> Result<(), ApiError> {
    let offer = visible_offer(s, caller, id).await?;
    if offer.status != OfferStatus::Open
        || !let_go(s, &offer, OfferStatus::Open, OfferStatus::Declined).await?
    {
        return Err(lapsed());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_visit_canvas_could_not_be_asked_about_is_not_called_missing() {
        let missing = || ApiError::invalid("before_appointment_id", "missing");
        for code in [
            Code::UpstreamUnavailable,
            Code::UpstreamTimeout,
            Code::UpstreamError,
        ] {
            assert_eq!(
                unless_missing(ApiError::new(code, "Canvas failed"), missing).code,
                code
            );
        }
        assert_eq!(
            unless_missing(ApiError::not_found("no such appointment"), missing).code,
            Code::ValidationFailed
        );
    }
}
