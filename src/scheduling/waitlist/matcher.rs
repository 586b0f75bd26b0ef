//! Offers, made by the sync leader alone: whenever cached availability changes (a cancellation
//! seen through slotgate's own writes, a Canvas notification, the reconciler, a hold let go) and
//! every `[waitlist] scan_interval_ms`, lapsed offers pass their slot on, and each waiting entry,
//! oldest first, is offered the first slot that satisfies it under every booking rule (the
//! same availability computation patients' questions use: licensure on that date, reason,
//! duration, modality, window, holds and bookings in flight), not within `stop_hours_before`,
//! before the visit it would replace, and not one it let go. The slot is held for the offer
//! (so never offered twice at once), and a patient has one open offer at a time.

use std::sync::Arc;

use futures::future::BoxFuture;
use jiff::{SignedDuration, Timestamp};

use super::announce::Resends;
use super::{search, upkeep};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::rules::model::Modality;
use crate::scheduling::Services;
use crate::scheduling::availability::{self, Query};
use crate::scheduling::browse::busy_slots;
use crate::scheduling::directory::Snapshot;
use crate::store::waitlist::{Entry, Offer, OfferStatus};
use crate::store::{Hold, HoldOutcome};
use crate::types::UsState;

pub use super::announce::{Announce, Notice};

pub fn spawn(
    s: Arc<Services>,
    metrics: Option<Metrics>,
    announce: Announce,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut resends = Resends::default();
        let mut every = tokio::time::interval(s.settings.waitlist.scan_interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                () = s.slot_cache.changed() => {}
            }
            let one: BoxFuture<'_, Result<usize, ApiError>> =
                Box::pin(pass(&s, metrics.as_ref(), &announce, &mut resends));
            if let Err(e) = one.await {
                tracing::warn!(error = %e.detail, "waitlist: a pass did not finish");
            }
        }
    })
}

/// Every replica reports how many entries wait (the list is shared; whichever replica a
/// scrape reaches tells the same).
pub fn spawn_reporting(s: Arc<Services>, metrics: Metrics) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let (Ok(entries), Ok(snapshot)) =
                (s.store.entries().await, s.directory.snapshot().await)
            {
                let now = Timestamp::now();
                let waiting = entries
                    .iter()
                    .filter(|e| {
                        let today = search::today_at(e.location_id.as_deref(), &snapshot, now);
                        !upkeep::entry_over(e, today, now)
                    })
                    .count();
                metrics
                    .waitlist_entries
                    .set(i64::try_from(waiting).unwrap_or(i64::MAX));
            }
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        }
    })
}

/// One pass: lapsed and orphaned offers passed on, finished entries ended, offers made,
/// offers announced. One entry that cannot be matched (Canvas failing for its clinicians,
/// say) is logged and skipped; the others are still matched and every offer made announced.
pub async fn pass(
    s: &Services,
    metrics: Option<&Metrics>,
    announce: &Announce,
    resends: &mut Resends,
) -> Result<usize, ApiError> {
    let store_error = super::store_error;
    let now = Timestamp::now();
    let snapshot = match s.directory.snapshot().await {
        Ok(snapshot) => snapshot,
        Err(e) => {
            // Without the clinic's zones no entry is ended early, but lapsed and orphaned
            // offers still give their slots back.
            upkeep::tidy(s, metrics, now, |e: &Entry| e.latest_date).await?;
            return Err(e.into());
        }
    };
    let today = |e: &Entry| search::today_at(e.location_id.as_deref(), &snapshot, now);
    upkeep::tidy(s, metrics, now, today).await?;
    let mut entries = s.store.entries().await.map_err(store_error)?;
    entries.sort_by_key(|e| e.created_at);
    entries.retain(|e| !upkeep::entry_over(e, today(e), now));
    if let Some(m) = metrics {
        m.waitlist_entries
            .set(i64::try_from(entries.len()).unwrap_or(i64::MAX));
    }
    let offers = s.store.offers().await.map_err(store_error)?;
    let live: Vec<&Offer> = offers.iter().filter(|o| o.status.is_live()).collect();
    let mut busy_patients: Vec<String> = live.iter().map(|o| o.patient.clone()).collect();
    let mut made = 0;
    let mut turns = Turns::default();
    'rounds: loop {
        turns.oldest_miss = None;
        for entry in &entries {
            // "Offered" is an entry with a live offer; a patient has one at a time.
            if live.iter().any(|o| o.entry_id == entry.id) || busy_patients.contains(&entry.patient)
            {
                continue;
            }
            let began = s.slot_cache.epoch();
            match offer_to(s, &snapshot, entry, now, &mut turns).await {
                Ok(Matched::Offered) => {
                    busy_patients.push(entry.patient.clone());
                    made += 1;
                    count(metrics, "made");
                }
                Ok(Matched::Nothing) => {
                    turns.oldest_miss.get_or_insert(began);
                }
                Ok(Matched::OlderFirst) => {
                    turns.rounds += 1;
                    continue 'rounds;
                }
                Err(e) => {
                    tracing::warn!(code = ?e.code, error = %e.detail, "waitlist: an entry is matched on a later pass");
                }
            }
        }
        break;
    }
    super::announce::announce_open(s, announce, resends, now).await?;
    let day_ago = now
        .checked_sub(SignedDuration::from_hours(24))
        .unwrap_or(now);
    if let Err(e) = s.store.prune_offers(day_ago).await {
        tracing::warn!(error = %e, "waitlist: old offers are pruned on a later pass");
    }
    Ok(made)
}

/// What one entry's search came to.
#[derive(Debug, PartialEq, Eq)]
enum Matched {
    Offered,
    Nothing,
    /// It found a slot, but availability changed since an older entry of this pass searched
    /// and found nothing: the older ones search again first.
    OlderFirst,
}

/// Rounds of a pass after which offers are made as found: a clinic whose availability changes
/// all the time still gets its offers, and the next pass (the change woke it) looks again.
const MAX_ROUNDS: u32 = 3;

/// Fairness within one pass. Entries search oldest first, but a cancellation can reach the
/// slot cache between two of them: the opening is then seen by a younger entry although an
/// older one, which searched a moment earlier, would have taken it. An offer is made only if
/// availability has not changed since the oldest entry that found nothing began its search;
/// otherwise the pass starts its round again (entries offered meanwhile are skipped).
#[derive(Debug, Default)]
struct Turns {
    /// The slot cache's epoch when the oldest entry that found nothing this round began to
    /// search.
    oldest_miss: Option<u64>,
    rounds: u32,
}

impl Turns {
    /// Whether a slot found now may be offered, the cache's epoch being `epoch`.
    fn may_offer(&self, epoch: u64) -> bool {
        self.rounds >= MAX_ROUNDS || self.oldest_miss.is_none_or(|e| e == epoch)
    }

    /// An offer just made moved the epoch from `before` to `after`: when that was its own hold
    /// alone (one step), it took a slot and revealed none, so it sends nobody back.
    fn offered(&mut self, before: u64, after: u64) {
        if after == before + 1 && self.oldest_miss == Some(before) {
            self.oldest_miss = Some(after);
        }
    }
}

pub(super) fn count(metrics: Option<&Metrics>, outcome: &str) {
    if let Some(m) = metrics {
        m.waitlist_offers.with_label_values(&[outcome]).inc();
    }
}

/// Offers the entry the first slot that satisfies it, if any (and if `turns` lets it). Its
/// dates are searched range by range up to its last (or the horizon), a page at a time, among
/// the clinicians it names; an answer from a stale cache (Canvas failing) offers nothing.
async fn offer_to(
    s: &Services,
    snapshot: &Arc<Snapshot>,
    entry: &Entry,
    now: Timestamp,
    turns: &mut Turns,
) -> Result<Matched, ApiError> {
    let Some(base) = query_of(snapshot, entry) else {
        return Ok(Matched::Nothing);
    };
    let booking = &snapshot.policy.booking;
    let not_before = now
        .saturating_add(
            SignedDuration::try_from(s.settings.waitlist.stop_before).unwrap_or_default(),
        )
        .unwrap_or(now);
    let Some(window) = search::offer_window(
        crate::rules::window::window(booking, now, false),
        not_before,
        entry.before_start,
    ) else {
        return Ok(Matched::Nothing);
    };
    let today = search::today_at(entry.location_id.as_deref(), snapshot, now);
    let Some((first, last)) = search::days(entry, today, search::horizon_date(window.latest))
    else {
        return Ok(Matched::Nothing);
    };
    let scope = search::narrowed(snapshot, entry).map_or_else(|| snapshot.clone(), Arc::new);
    let (busy, _) = busy_slots(s).await.map_err(super::store_error)?;
    // The visit it would replace, read from Canvas once a slot fits (not on every pass).
    let mut visit: Option<Option<Timestamp>> = None;
    for (from, to) in search::ranges(first, last, booking.max_range_days) {
        let (start, end) = search::utc_dates(from, to);
        let mut query = Query {
            start,
            end,
            ..base.clone()
        };
        let mut window = window;
        loop {
            let answer = availability::find(
                scope.clone(),
                false,
                &s.slot_cache,
                &query,
                window,
                &busy,
                s.settings.canvas.max_concurrency,
            )
            .await?;
            if answer.stale {
                tracing::info!("waitlist: Canvas is failing; an entry waits for fresh slots");
                return Ok(Matched::Nothing);
            }
            let starts: Vec<Timestamp> = answer.offers.iter().map(|o| o.start).collect();
            let (considered, next) = search::page(&starts, query.limit);
            for o in &answer.offers[..considered] {
                let local = o
                    .start
                    .to_zoned_datetime(o.place.info.timezone.clone())
                    .date();
                let fits = search::on_its_days(entry, local)
                    && (from..=to).contains(&local)
                    && may_offer(entry, o.practitioner.as_str(), o.start, not_before);
                if !fits {
                    continue;
                }
                if let Some(id) = &entry.before_appointment_id {
                    let current = match visit {
                        Some(known) => known,
                        None => *visit.insert(visit_start(s, id, now).await?),
                    };
                    let Some(current) = current else {
                        // Cancelled, moved or over since the entry was made: nothing is earlier
                        // than it any more, and accepting would fail.
                        end_entry(s, entry).await?;
                        return Ok(Matched::Nothing);
                    };
                    if o.start >= current {
                        return Ok(Matched::Nothing);
                    }
                }
                let before = s.slot_cache.epoch();
                if !turns.may_offer(before) {
                    return Ok(Matched::OlderFirst);
                }
                if make_offer(s, entry, o, now).await? {
                    turns.offered(before, s.slot_cache.epoch());
                    return Ok(Matched::Offered);
                }
            }
            match next {
                search::Next::Done => break,
                search::Next::From(t) => {
                    window.earliest = t;
                    query.limit = search::PAGE;
                }
                search::Next::Wider => query.limit = query.limit.saturating_mul(2),
            }
        }
    }
    Ok(Matched::Nothing)
}

/// The start of the visit an entry would replace, if it is still to come and takes time.
async fn visit_start(
    s: &Services,
    id: &str,
    now: Timestamp,
) -> Result<Option<Timestamp>, ApiError> {
    let visit = s.canvas.appointment(id).await?;
    Ok(visit
        .filter(|v| v.status.blocks_time())
        .and_then(|v| v.start)
        .map(|t| t.timestamp)
        .filter(|start| *start > now))
}

async fn end_entry(s: &Services, entry: &Entry) -> Result<(), ApiError> {
    tracing::info!("waitlist: an entry ends, the visit it would replace is no longer active");
    s.store
        .remove_entry(entry.id.clone())
        .await
        .map(drop)
        .map_err(super::store_error)
}

/// Holds the slot for the entry and offers it; `false` when the slot was taken meanwhile or
/// the entry may no longer be offered anything (withdrawn, or offered by another leader).
async fn make_offer(
    s: &Services,
    entry: &Entry,
    o: &availability::OwnedOffer,
    now: Timestamp,
) -> Result<bool, ApiError> {
    let claim = o.claim(entry.duration, &entry.reason_code);
    let id = uuid::Uuid::new_v4().to_string();
    let expires_at = now
        .saturating_add(SignedDuration::try_from(s.settings.waitlist.offer).unwrap_or_default())
        .unwrap_or(now);
    let hold = Hold {
        id: uuid::Uuid::new_v4().to_string(),
        owner: Offer::hold_owner(&id),
        patient: None,
        slot_id: s.slot_ids.issue(&claim),
        practitioner: o.practitioner.clone(),
        start: o.start,
        end: o.end,
        expires_at,
    };
    // The hold is what keeps the slot for this offer alone; a slot someone took meanwhile
    // is skipped.
    if s.store
        .put_hold(hold.clone(), 1, now)
        .await
        .map_err(super::store_error)?
        != HoldOutcome::Created
    {
        return Ok(false);
    }
    let offer = Offer {
        id,
        entry_id: entry.id.clone(),
        patient: entry.patient.clone(),
        slot_id: hold.slot_id.clone(),
        hold_id: hold.id.clone(),
        practitioner: o.practitioner.to_string(),
        location_id: o.place.info.id.clone(),
        start: o.start,
        end: o.end,
        modality: o.modality,
        made_at: now,
        expires_at,
        status: OfferStatus::Open,
        notified: false,
        accepting: None,
    };
    // Only for an entry that is still there and has no live offer (withdrawn, or offered by
    // another leader meanwhile): else the hold goes back at once.
    let put = s.store.put_offer(offer).await;
    if !matches!(put, Ok(true)) {
        if let Err(e) = s.store.remove_hold(hold.id.clone()).await {
            tracing::warn!(error = %e, "waitlist: an unused hold lapses on its own");
        }
        s.slot_cache.touch();
        return put.map(|_| false).map_err(super::store_error);
    }
    s.slot_cache.touch();
    tracing::info!(practitioner = %o.practitioner, "waitlist: an opening offered");
    Ok(true)
}

/// Whether a slot every booking rule allows for an entry may be offered to it: not starting
/// before `not_before` (`stop_hours_before` from now), with a clinician it accepts, earlier than
/// the visit it would replace, and not one it let go.
pub fn may_offer(
    entry: &Entry,
    practitioner: &str,
    start: Timestamp,
    not_before: Timestamp,
) -> bool {
    let wanted = entry.practitioner_ids.is_empty()
        || entry.practitioner_ids.iter().any(|p| p == practitioner);
    start >= not_before
        && wanted
        && entry.before_start.is_none_or(|b| start < b)
        && !entry.passed.contains(&Offer::slot_key(practitioner, start))
}

/// The availability question an entry asks, but for its dates: its reason, duration and
/// modality, its state and location; dates are UTC dates, read wide (see `search`).
fn query_of(snapshot: &Snapshot, entry: &Entry) -> Option<Query> {
    let reason = snapshot.policy.rules.reason(&entry.reason_code)?.clone();
    let state: UsState = entry.patient_state.parse().ok()?;
    let modalities: Vec<Modality> = match entry.modality {
        Some(m) => vec![m],
        None => reason.modalities.keys().copied().collect(),
    };
    let today = entry
        .created_at
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    Some(Query {
        reason,
        duration_minutes: entry.duration,
        patient_state: Some(state),
        modalities,
        start: today,
        end: today,
        tz: jiff::tz::TimeZone::UTC,
        // The clinicians it names are the only ones in the snapshot it is asked of.
        practitioner: None,
        location: entry.location_id.clone(),
        specialty: None,
        language: None,
        limit: search::PAGE,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OKAFOR: &str = "c48de0f40beb4fee86f872da7a840cf9";
    const REYES: &str = "f8caf3fdef4f451a8f708556591ee1c2";

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn entry() -> Entry {
        Entry {
            id: "e".into(),
            owner: "patient".into(),
            patient: "97491556534444838b94dbb0909b6b3d".into(),
            reason_code: "FLUP".into(),
            duration: 30,
            patient_state: "CA".into(),
            modality: None,
            practitioner_ids: Vec::new(),
            location_id: None,
            earliest_date: None,
            latest_date: "2026-12-31".parse().unwrap(),
            before_appointment_id: None,
            before_start: None,
            created_at: at("2026-12-01T00:00:00Z"),
            passed: Vec::new(),
        }
    }

    #[test]
    fn a_younger_entry_waits_while_an_older_one_missed_an_opening_that_appeared_since() {
        let mut turns = Turns::default();
        assert!(turns.may_offer(7), "nobody older missed anything");
        turns.oldest_miss = Some(7);
        assert!(turns.may_offer(7), "nothing changed since the older search");
        assert!(
            !turns.may_offer(8),
            "something changed since: the older one first"
        );
        turns.rounds = MAX_ROUNDS;
        assert!(
            turns.may_offer(8),
            "after a few rounds offers are made as found"
        );
    }

    #[test]
    fn an_offer_made_in_the_pass_sends_nobody_back_unless_something_else_changed() {
        let mut turns = Turns {
            oldest_miss: Some(7),
            rounds: 0,
        };
        turns.offered(7, 8);
        assert!(
            turns.may_offer(8),
            "its own hold took a slot, revealed none"
        );
        turns.offered(8, 10);
        assert!(!turns.may_offer(10), "another change landed with it");
    }

    #[test]
    fn nothing_closer_than_the_stop_time_is_offered() {
        let not_before = at("2026-12-04T18:00:00Z");
        assert!(!may_offer(
            &entry(),
            OKAFOR,
            at("2026-12-04T17:59:59Z"),
            not_before
        ));
        assert!(may_offer(&entry(), OKAFOR, not_before, not_before));
    }

    #[test]
    fn only_the_clinicians_the_entry_names() {
        let mut e = entry();
        let (start, not_before) = (at("2026-12-10T17:00:00Z"), at("2026-12-04T18:00:00Z"));
        assert!(
            may_offer(&e, REYES, start, not_before),
            "any, when none named"
        );
        e.practitioner_ids = vec![OKAFOR.into()];
        assert!(!may_offer(&e, REYES, start, not_before));
        assert!(may_offer(&e, OKAFOR, start, not_before));
    }

    #[test]
    fn only_strictly_earlier_than_the_visit_it_replaces() {
        let mut e = entry();
        let visit = at("2026-12-10T17:00:00Z");
        e.before_start = Some(visit);
        let not_before = at("2026-12-04T18:00:00Z");
        assert!(
            !may_offer(&e, OKAFOR, visit, not_before),
            "the same time is no earlier"
        );
        assert!(!may_offer(
            &e,
            OKAFOR,
            at("2026-12-11T17:00:00Z"),
            not_before
        ));
        assert!(may_offer(
            &e,
            OKAFOR,
            at("2026-12-10T16:45:00Z"),
            not_before
        ));
    }

    #[test]
    fn a_slot_let_go_is_never_offered_again_but_the_clinicians_others_are() {
        let mut e = entry();
        let start = at("2026-12-10T17:00:00Z");
        e.passed.push(Offer::slot_key(OKAFOR, start));
        let not_before = at("2026-12-04T18:00:00Z");
        assert!(!may_offer(&e, OKAFOR, start, not_before));
        assert!(
            may_offer(&e, REYES, start, not_before),
            "another clinician at that time"
        );
        assert!(may_offer(
            &e,
            OKAFOR,
            at("2026-12-10T17:30:00Z"),
            not_before
        ));
    }
}
