//! Telling the webhook sinks of offers: each open offer until every sink has it. One that
//! failed is sent again after a pause that doubles per failure (from `[sync] retry_base_ms`,
//! at most `MAX_PAUSE`), not on every pass, for as long as the offer stays open.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use jiff::{SignedDuration, Timestamp};

use super::store_error;
use crate::error::ApiError;
use crate::scheduling::Services;
use crate::store::waitlist::{Offer, OfferStatus};
use crate::types::PractitionerId;

/// What the webhook sinks are told of an offer.
#[derive(Debug, Clone)]
pub struct Notice {
    pub offer: Offer,
    pub practitioner_name: String,
    pub location_name: String,
    /// The location's: the slot's times are told in it, as appointments' are.
    pub timezone: jiff::tz::TimeZone,
}

/// Tells the webhook sinks of an offer; `true` once every one has it.
pub type Announce = Arc<dyn Fn(Notice) -> BoxFuture<'static, bool> + Send + Sync>;

/// The longest pause between two sends of one offer (an offer lasts minutes).
pub const MAX_PAUSE: Duration = Duration::from_secs(60);

/// The pause after an offer's `failures`-th failed announcement.
pub fn pause(failures: u32, base: Duration) -> Duration {
    base.saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(MAX_PAUSE)
}

/// The leader's memory of failed announcements: how many, and when the next may go. A new
/// leader starts afresh (one early resend, which receivers tell apart by its message id).
#[derive(Debug, Default)]
pub struct Resends {
    failed: HashMap<String, (u32, Timestamp)>,
}

impl Resends {
    pub fn due(&self, offer: &str, now: Timestamp) -> bool {
        self.failed.get(offer).is_none_or(|(_, next)| *next <= now)
    }

    pub fn failed(&mut self, offer: &str, now: Timestamp, base: Duration) {
        let failures = self.failed.get(offer).map_or(0, |(n, _)| *n) + 1;
        let wait = SignedDuration::try_from(pause(failures, base)).unwrap_or_default();
        let next = now.saturating_add(wait).unwrap_or(now);
        self.failed.insert(offer.to_owned(), (failures, next));
    }

    /// Forgets every offer but these (announced, or no longer open).
    pub fn keep(&mut self, still: &[&str]) {
        self.failed.retain(|id, _| still.contains(&id.as_str()));
    }
}

/// Announces the open offers the sinks have not all had, those whose pause is over.
pub async fn announce_open(
    s: &Services,
    announce: &Announce,
    resends: &mut Resends,
    now: Timestamp,
) -> Result<(), ApiError> {
    let unannounced: Vec<Offer> = s
        .store
        .offers()
        .await
        .map_err(store_error)?
        .into_iter()
        .filter(|o| o.status == OfferStatus::Open && !o.notified)
        .collect();
    resends.keep(
        &unannounced
            .iter()
            .map(|o| o.id.as_str())
            .collect::<Vec<_>>(),
    );
    for offer in unannounced {
        if !resends.due(&offer.id, now) {
            continue;
        }
        let id = offer.id.clone();
        if !announce(notice(s, offer).await).await {
            resends.failed(&id, now, s.settings.sync.retry_base);
        } else if let Err(e) = s.store.offer_notified(id).await {
            tracing::warn!(error = %e, "waitlist: an announced offer may be announced again");
        }
    }
    Ok(())
}

async fn notice(s: &Services, offer: Offer) -> Notice {
    let snapshot = s.directory.snapshot().await.ok();
    let practitioner_name = snapshot
        .as_ref()
        .and_then(|snap| {
            let id: PractitionerId = offer.practitioner.parse().ok()?;
            snap.clinicians.get(&id).map(|c| c.name.clone())
        })
        .unwrap_or_default();
    let place = snapshot
        .as_ref()
        .and_then(|snap| snap.place_by_id(&offer.location_id));
    let location_name = place.map(|p| p.name.clone()).unwrap_or_default();
    let timezone = place.map_or(jiff::tz::TimeZone::UTC, |p| p.info.timezone.clone());
    Notice {
        offer,
        practitioner_name,
        location_name,
        timezone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn the_pause_doubles_per_failure_up_to_a_minute() {
        let base = Duration::from_millis(500);
        assert_eq!(pause(1, base), base);
        assert_eq!(pause(2, base), Duration::from_secs(1));
        assert_eq!(pause(4, base), Duration::from_secs(4));
        assert_eq!(pause(20, base), MAX_PAUSE);
        assert_eq!(pause(u32::MAX, base), MAX_PAUSE);
    }

    #[test]
    fn a_failed_offer_is_not_sent_again_until_its_pause_is_over() {
        let mut r = Resends::default();
        let (now, base) = (at("2026-12-04T17:00:00Z"), Duration::from_secs(2));
        assert!(r.due("a", now), "never tried");
        r.failed("a", now, base);
        assert!(!r.due("a", now + SignedDuration::from_millis(1999)));
        assert!(r.due("a", now + SignedDuration::from_secs(2)));
        let later = now + SignedDuration::from_secs(2);
        r.failed("a", later, base);
        assert!(
            !r.due("a", later + SignedDuration::from_millis(3999)),
            "doubled"
        );
        assert!(r.due("b", now), "others are not held back");
        r.keep(&["b"]);
        assert!(r.due("a", later), "forgotten once announced or closed");
    }
}
