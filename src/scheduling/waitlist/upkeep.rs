//! What each matcher pass settles before it makes offers: offers that lapsed, offers whose
//! entry is gone, entries whose booking was made, accepts that never finished, entries whose
//! last day passed. Each item on its own: one that fails is logged (no patient data) and
//! tried again on the next pass, and the rest go on.

use std::collections::HashSet;

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};

use super::accept::retried;
use super::{let_go, store_error};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::scheduling::Services;
use crate::scheduling::booking;
use crate::store::waitlist::{Entry, Offer, OfferStatus};

/// How long past its offer's expiry an accept may still be running: later, the matcher looks
/// at Canvas to settle it (its request died, or its client never came back).
pub const STALE_ACCEPT: SignedDuration = SignedDuration::from_mins(5);

/// What to do with an offer, seen at `now` beside the ids of the entries that exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    Nothing,
    /// Open past its expiry: the slot passes on.
    Lapse,
    /// Open for an entry that is gone (withdrawn, booked or ended meanwhile).
    Orphan,
    /// Accepted while its entry still exists: the entry ends.
    EndEntry,
    /// Accepting far past its expiry: look up its booking.
    Unfinished,
}

/// See [`Settle`].
pub fn settle(offer: &Offer, entry_exists: bool, now: Timestamp) -> Settle {
    match offer.status {
        OfferStatus::Open if !entry_exists => Settle::Orphan,
        OfferStatus::Open if offer.expires_at <= now => Settle::Lapse,
        OfferStatus::Accepted if entry_exists => Settle::EndEntry,
        OfferStatus::Accepting
            if offer
                .expires_at
                .checked_add(STALE_ACCEPT)
                .is_ok_and(|stale| stale <= now) =>
        {
            Settle::Unfinished
        }
        _ => Settle::Nothing,
    }
}

/// Whether an entry is over: its last day passed (`today`: the earliest date it still is
/// anywhere the entry may be seen), or the visit it would replace has begun. An entry whose
/// offer is being accepted is left to that accept.
pub fn entry_over(entry: &Entry, today: Date, now: Timestamp) -> bool {
    entry.latest_date < today || entry.before_start.is_some_and(|b| b <= now)
}

/// Settles what the pass finds; `today` tells each entry's current date.
pub async fn tidy(
    s: &Services,
    metrics: Option<&Metrics>,
    now: Timestamp,
    today: impl Fn(&Entry) -> Date,
) -> Result<(), ApiError> {
    // Offers first: an entry, once removed, never comes back, so an offer whose entry is
    // missing from this (later) list has lost it, even if another leader's pass (a handover)
    // made it a moment ago.
    let offers = s.store.offers().await.map_err(store_error)?;
    let entries = s.store.entries().await.map_err(store_error)?;
    let ids: HashSet<&str> = entries.iter().map(|e| e.id.as_str()).collect();
    for offer in &offers {
        let done = match settle(offer, ids.contains(offer.entry_id.as_str()), now) {
            Settle::Nothing => Ok(()),
            Settle::Lapse => let_go(s, offer, OfferStatus::Open, OfferStatus::Expired)
                .await
                .map(|lapsed| {
                    if lapsed {
                        super::matcher::count(metrics, "expired");
                    }
                }),
            Settle::Orphan => let_go(s, offer, OfferStatus::Open, OfferStatus::Expired)
                .await
                .map(drop),
            Settle::EndEntry => end(s, &offer.entry_id).await,
            Settle::Unfinished => unfinished(s, offer).await,
        };
        if let Err(e) = done {
            tracing::warn!(error = %e.detail, "waitlist: an offer is settled on a later pass");
        }
    }
    let accepting: HashSet<&str> = offers
        .iter()
        .filter(|o| o.status == OfferStatus::Accepting)
        .map(|o| o.entry_id.as_str())
        .collect();
    for entry in &entries {
        if entry_over(entry, today(entry), now) && !accepting.contains(entry.id.as_str()) {
            // Its open offer, if any, is an orphan on the next pass.
            if let Err(e) = end(s, &entry.id).await {
                tracing::warn!(error = %e.detail, "waitlist: an entry is ended on a later pass");
            }
        }
    }
    Ok(())
}

async fn end(s: &Services, entry_id: &str) -> Result<(), ApiError> {
    s.store
        .remove_entry(entry_id.to_owned())
        .await
        .map(drop)
        .map_err(store_error)
}

/// An accept that never finished: booked at Canvas, it ends as accepted; not booked and no
/// create in flight, the offer lapses and the entry waits again.
async fn unfinished(s: &Services, offer: &Offer) -> Result<(), ApiError> {
    let Some(identifier) = offer.accepting.as_deref() else {
        return let_go(s, offer, OfferStatus::Accepting, OfferStatus::Expired)
            .await
            .map(drop);
    };
    if let Some(found) = booking::find(s, identifier).await? {
        booking::confirm_found(s, identifier, &found).await;
        retried(|| {
            s.store.settle_offer(
                offer.id.clone(),
                OfferStatus::Accepting,
                OfferStatus::Accepted,
            )
        })
        .await;
        return end(s, &offer.entry_id).await;
    }
    let in_flight = s
        .store
        .booked(Timestamp::now())
        .await
        .map_err(store_error)?
        .iter()
        .any(|b| {
            b.pending
                .as_ref()
                .is_some_and(|p| p.identifier == identifier)
        });
    if !in_flight {
        let_go(s, offer, OfferStatus::Accepting, OfferStatus::Expired).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::model::Modality;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn offer(status: OfferStatus) -> Offer {
        Offer {
            id: "o".into(),
            entry_id: "e".into(),
            patient: "p".into(),
            slot_id: "s".into(),
            hold_id: "h".into(),
            practitioner: "dr".into(),
            location_id: "l".into(),
            start: at("2026-12-10T17:00:00Z"),
            end: at("2026-12-10T17:30:00Z"),
            modality: Modality::Telehealth,
            made_at: at("2026-12-04T17:00:00Z"),
            expires_at: at("2026-12-04T17:15:00Z"),
            status,
            notified: true,
            accepting: None,
        }
    }

    #[test]
    fn an_open_offer_whose_entry_is_gone_is_let_go_even_before_it_lapses() {
        let early = at("2026-12-04T17:01:00Z");
        assert_eq!(
            settle(&offer(OfferStatus::Open), false, early),
            Settle::Orphan
        );
        assert_eq!(
            settle(&offer(OfferStatus::Open), true, early),
            Settle::Nothing
        );
    }

    #[test]
    fn an_open_offer_lapses_at_its_expiry_but_one_being_accepted_does_not() {
        let lapsed = at("2026-12-04T17:15:00Z");
        assert_eq!(
            settle(&offer(OfferStatus::Open), true, lapsed),
            Settle::Lapse
        );
        assert_eq!(
            settle(&offer(OfferStatus::Accepting), true, lapsed),
            Settle::Nothing,
            "a slow booking keeps its offer"
        );
        assert_eq!(
            settle(&offer(OfferStatus::Accepting), false, lapsed),
            Settle::Nothing,
            "even when the entry was withdrawn meanwhile"
        );
    }

    #[test]
    fn an_accept_left_unfinished_is_settled_once_long_past_its_expiry() {
        let o = offer(OfferStatus::Accepting);
        let almost = at("2026-12-04T17:19:59Z");
        assert_eq!(settle(&o, true, almost), Settle::Nothing);
        assert_eq!(
            settle(&o, true, at("2026-12-04T17:20:00Z")),
            Settle::Unfinished
        );
    }

    #[test]
    fn an_entry_whose_offer_was_accepted_ends() {
        let now = at("2026-12-04T17:05:00Z");
        assert_eq!(
            settle(&offer(OfferStatus::Accepted), true, now),
            Settle::EndEntry
        );
        assert_eq!(
            settle(&offer(OfferStatus::Accepted), false, now),
            Settle::Nothing
        );
        assert_eq!(
            settle(&offer(OfferStatus::Declined), true, now),
            Settle::Nothing
        );
    }

    fn waiting(latest: &str) -> Entry {
        Entry {
            id: "e".into(),
            owner: "patient".into(),
            patient: "p".into(),
            reason_code: "FLUP".into(),
            duration: 30,
            patient_state: "CA".into(),
            modality: None,
            practitioner_ids: Vec::new(),
            location_id: None,
            earliest_date: None,
            latest_date: latest.parse().unwrap(),
            before_appointment_id: None,
            before_start: None,
            created_at: at("2026-12-01T00:00:00Z"),
            passed: Vec::new(),
        }
    }

    #[test]
    fn an_entry_ends_the_day_after_its_last_and_when_its_visit_begins() {
        let now = at("2026-12-04T17:00:00Z");
        let e = waiting("2026-12-04");
        assert!(!entry_over(&e, "2026-12-04".parse().unwrap(), now));
        assert!(entry_over(&e, "2026-12-05".parse().unwrap(), now));
        let mut replacing = waiting("2026-12-31");
        replacing.before_start = Some(at("2026-12-04T17:00:00Z"));
        assert!(
            entry_over(&replacing, "2026-12-04".parse().unwrap(), now),
            "nothing is earlier than a visit that has begun"
        );
        replacing.before_start = Some(at("2026-12-05T17:00:00Z"));
        assert!(!entry_over(&replacing, "2026-12-04".parse().unwrap(), now));
    }
}
