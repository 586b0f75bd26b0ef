//! Accepting an offer: the offer is reserved for this booking (Open -> Accepting, atomically)
//! before anything is booked, so a lapse or a decline cannot pass its slot on meanwhile; the
//! booking then goes through the normal path (or reschedules), spending the offer's hold,
//! exactly once. Whatever booked, the offer ends Accepted and the entry ends; what did not,
//! gives the offer back (Open) or lets it go when its slot is gone.

use std::time::Duration;

use jiff::Timestamp;

use super::{Services, lapsed, let_go, store_error, visible_offer};
use crate::auth::Principal;
use crate::canvas::fhir;
use crate::error::{ApiError, Code};
use crate::scheduling::booking::{self, Attempt, BookRequest, Made};
use crate::scheduling::lifecycle::{self, Reschedule};
use crate::store::StoreResult;
use crate::store::waitlist::{Entry, Offer, OfferStatus};
use crate::types::{PatientId, UsState};

/// What an accepted offer made, and how long it took from the offer.
pub struct Accepted {
    pub appointment: fhir::Appointment,
    pub offered_for: std::time::Duration,
}

/// Books the offered slot for the entry's patient through the booking path (or, for an entry
/// that replaces a visit, reschedules it), spending the offer's hold.
pub async fn accept(
    s: &Services,
    caller: &Principal,
    id: &str,
    attempt: &Attempt<'_>,
) -> Result<Accepted, ApiError> {
    let offer = visible_offer(s, caller, id).await?;
    let Some(offer) = reserve(s, &offer, attempt.identifier).await? else {
        // An earlier try of this very accept may have booked it, however the offer ended since
        // (the matcher settles an accept left unfinished): that booking is the answer.
        if attempt.maybe_created
            && let Some(found) = booking::find(s, attempt.identifier).await?
        {
            booking::confirm_found(s, attempt.identifier, &found).await;
            booked(s, &offer).await;
            return Ok(Accepted {
                appointment: found,
                offered_for: since(offer.made_at),
            });
        }
        return Err(lapsed());
    };
    let entry = s
        .store
        .entries()
        .await
        .map_err(store_error)?
        .into_iter()
        .find(|e| e.id == offer.entry_id);
    let Some(entry) = entry else {
        // Withdrawn meanwhile: nobody is left to book for.
        let_go(s, &offer, OfferStatus::Accepting, OfferStatus::Expired).await?;
        return Err(lapsed());
    };
    match book(s, caller, &offer, &entry, attempt).await {
        Ok(appointment) => {
            booked(s, &offer).await;
            Ok(Accepted {
                appointment,
                offered_for: since(offer.made_at),
            })
        }
        Err(e) => Err(refused(s, &offer, &entry, e).await),
    }
}

/// The offer, held for this booking: an open offer that has not lapsed, or one this very
/// booking (a retry with the same key) already holds. `None` when it is not this booking's.
async fn reserve(s: &Services, offer: &Offer, identifier: &str) -> Result<Option<Offer>, ApiError> {
    let ours =
        offer.status == OfferStatus::Accepting && offer.accepting.as_deref() == Some(identifier);
    let open = offer.status == OfferStatus::Open && offer.expires_at > Timestamp::now();
    if !ours && !open {
        return Ok(None);
    }
    s.store
        .begin_accept(offer.id.clone(), identifier.to_owned())
        .await
        .map_err(store_error)
}

async fn book(
    s: &Services,
    caller: &Principal,
    offer: &Offer,
    entry: &Entry,
    attempt: &Attempt<'_>,
) -> Result<fhir::Appointment, ApiError> {
    let slot = s
        .slot_ids
        .verify(&offer.slot_id)
        .map_err(|e| ApiError::internal(&e))?;
    let patient: PatientId = entry
        .patient
        .parse()
        .map_err(|_| ApiError::internal(&"a waitlist entry without a patient"))?;
    let patient_state: UsState = entry
        .patient_state
        .parse()
        .map_err(|_| ApiError::internal(&"a waitlist entry without a state"))?;
    let hold_owner = Some(Offer::hold_owner(&offer.id));
    match &entry.before_appointment_id {
        Some(old) => {
            let move_to = Reschedule {
                slot,
                patient_state,
                hold_id: Some(offer.hold_id.clone()),
                hold_owner,
            };
            lifecycle::reschedule(s, caller, old, &move_to, attempt, None, async |_| {}).await
        }
        None => {
            let request = BookRequest {
                slot,
                reason_code: entry.reason_code.clone(),
                patient,
                patient_state,
                comment: None,
                hold_id: Some(offer.hold_id.clone()),
                hold_owner,
            };
            booking::book(s, caller, &request, attempt)
                .await
                .map(|Made { appointment }| appointment)
        }
    }
}

/// What becomes of an offer whose booking failed, and what the caller is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterRefusal {
    /// The booking may have been made: the offer stays held for the retry with the same key.
    KeepHeld,
    /// The slot is gone (taken, or held by someone else): the offer lapses.
    LetGo,
    /// The visit the entry would replace is cancelled or gone: the offer lapses, the entry ends.
    EndEntry,
    /// Nothing was booked and the slot is still the patient's: the offer is open again
    /// (until it lapses as any other).
    Reopen,
}

/// Decides from the refusal's code alone (see [`AfterRefusal`]).
pub fn after_refusal(code: Code, replaces_a_visit: bool) -> AfterRefusal {
    match code {
        Code::UpstreamTimeout => AfterRefusal::KeepHeld,
        Code::SlotHeld | Code::SlotUnavailable | Code::OfferExpired => AfterRefusal::LetGo,
        Code::AppointmentNotActive | Code::NotFound if replaces_a_visit => AfterRefusal::EndEntry,
        _ => AfterRefusal::Reopen,
    }
}

async fn refused(s: &Services, offer: &Offer, entry: &Entry, e: ApiError) -> ApiError {
    let outcome = after_refusal(e.code, entry.before_appointment_id.is_some());
    let done = match outcome {
        AfterRefusal::KeepHeld => Ok(()),
        AfterRefusal::LetGo | AfterRefusal::EndEntry => {
            let_go(s, offer, OfferStatus::Accepting, OfferStatus::Expired)
                .await
                .map(drop)
        }
        AfterRefusal::Reopen => s
            .store
            .settle_offer(offer.id.clone(), OfferStatus::Accepting, OfferStatus::Open)
            .await
            .map(drop)
            .map_err(store_error),
    };
    if let Err(failed) = done {
        // The matcher settles an accept left unfinished once its offer is long lapsed.
        tracing::warn!(error = %failed.detail, "waitlist: a refused accept's offer is settled later");
    }
    if outcome == AfterRefusal::EndEntry
        && retried(|| s.store.remove_entry(entry.id.clone()))
            .await
            .is_none()
    {
        tracing::warn!("waitlist: an entry whose visit is gone stays until the matcher ends it");
    }
    match outcome {
        AfterRefusal::LetGo => lapsed(),
        _ => e,
    }
}

/// The offer booked: it ends Accepted and its entry ends. Tried a few times; what still fails
/// the matcher finishes (an entry whose offer was accepted ends there).
async fn booked(s: &Services, offer: &Offer) {
    let settled = retried(|| {
        s.store.settle_offer(
            offer.id.clone(),
            OfferStatus::Accepting,
            OfferStatus::Accepted,
        )
    })
    .await;
    let removed = retried(|| s.store.remove_entry(offer.entry_id.clone())).await;
    if settled.is_none() || removed.is_none() {
        tracing::warn!("waitlist: booked; the offer and entry are settled by the matcher");
    }
}

/// Runs a store operation up to three times, a moment apart; `None` if it never succeeded.
pub(super) async fn retried<T, F>(mut op: impl FnMut() -> F) -> Option<T>
where
    F: std::future::Future<Output = StoreResult<T>>,
{
    for wait in [0, 100, 400] {
        tokio::time::sleep(Duration::from_millis(wait)).await;
        match op().await {
            Ok(done) => return Some(done),
            Err(e) => tracing::warn!(error = %e, "waitlist: a store operation failed"),
        }
    }
    None
}

fn since(t: Timestamp) -> std::time::Duration {
    std::time::Duration::try_from(Timestamp::now().duration_since(t)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_booking_that_may_have_happened_keeps_the_offer_for_its_retry() {
        assert_eq!(
            after_refusal(Code::UpstreamTimeout, false),
            AfterRefusal::KeepHeld
        );
        assert_eq!(
            after_refusal(Code::UpstreamTimeout, true),
            AfterRefusal::KeepHeld
        );
    }

    #[test]
    fn a_slot_gone_lets_the_offer_go_instead_of_keeping_its_hold() {
        for code in [Code::SlotHeld, Code::SlotUnavailable] {
            assert_eq!(after_refusal(code, false), AfterRefusal::LetGo);
            assert_eq!(after_refusal(code, true), AfterRefusal::LetGo);
        }
    }

    #[test]
    fn a_visit_to_replace_that_is_gone_ends_the_entry() {
        assert_eq!(
            after_refusal(Code::AppointmentNotActive, true),
            AfterRefusal::EndEntry
        );
        assert_eq!(after_refusal(Code::NotFound, true), AfterRefusal::EndEntry);
        assert_eq!(
            after_refusal(Code::NotFound, false),
            AfterRefusal::Reopen,
            "a plain booking has no visit to lose"
        );
    }

    #[test]
    fn nothing_booked_and_the_slot_still_held_opens_the_offer_again() {
        for code in [
            Code::UpstreamUnavailable,
            Code::UpstreamError,
            Code::BookingLimitReached,
            Code::PatientNotFound,
            Code::PractitionerNotLicensed,
        ] {
            assert_eq!(after_refusal(code, false), AfterRefusal::Reopen, "{code:?}");
        }
    }
}
