//! Answering "who can see me, when?": from the rendered-answer cache while that answer is still
//! exactly right, else computed from the slot cache with the booking window and the time that
//! holds and unconfirmed bookings take, then kept for as long as it stays right.

use std::sync::Arc;

use bytes::Bytes;
use jiff::Timestamp;

use super::Services;
use super::answer_cache::{self, Answer as Rendered, AnswerKey, Encoded};
use super::availability::{self, Answer, Busy, Query};
use crate::error::ApiError;
use crate::rules::window;
use crate::store::StoreError;

/// The rendered answer to `query` (`render` turns a computed answer into the body).
/// `surface` names the rendering (and anything beyond `query` it depends on): each surface
/// keeps its own rendered answers.
pub async fn answer(
    s: &Services,
    query: &Query,
    staff: bool,
    surface: &str,
    render: impl FnOnce(&Answer) -> Result<Bytes, ApiError>,
) -> Result<Arc<Encoded>, ApiError> {
    let snapshot = s.directory.snapshot().await?;
    let now = Timestamp::now();
    let key = AnswerKey {
        question: format!("{surface}|{}", query.cache_key(staff)),
        epoch: s.slot_cache.epoch(),
        directory: snapshot.fetched_at,
    };
    if let Some(body) = s.answers.get(&key, now).await {
        return Ok(body);
    }
    let window = window::window(&s.policy().booking, now, staff);
    // Holds and bookings Canvas does not show yet hide their slots from everyone.
    // Without the shared state (Redis down) browsing goes on from Canvas alone: nobody can
    // hold or book meanwhile (those fail closed), and such an answer is not kept.
    let (busy, busy_changes, complete) = match busy_slots(s).await {
        Ok((busy, changes)) => (busy, changes, true),
        Err(e) => {
            tracing::warn!(error = %e, "availability without holds and recent bookings");
            (Vec::new(), None, false)
        }
    };
    let directory_stale = s.directory.is_stale().await;
    let answer = availability::find(
        snapshot,
        directory_stale,
        &s.slot_cache,
        query,
        window,
        &busy,
        fan_out(s),
    )
    .await?;
    let body = Arc::new(Encoded::new(render(&answer)?));
    if complete && !answer.stale && !query.clipped_by_horizon(&window) {
        let first = answer.offers.first().map(|o| o.start);
        let valid_until = answer_cache::valid_until(
            now,
            window.earliest,
            first,
            answer.slots_as_of,
            // Until its slots are due for renewal: the next computation renews them.
            s.slot_cache.refresh_after(),
            busy_changes,
        );
        let kept = Rendered {
            body: body.clone(),
            valid_until,
        };
        s.answers.put(key, kept).await;
    }
    Ok(body)
}

/// Time taken by holds and by bookings Canvas does not show yet (made, in flight or
/// unconfirmed), and the first instant at which that list shrinks.
pub async fn busy_slots(s: &Services) -> Result<(Vec<Busy>, Option<Timestamp>), StoreError> {
    let taken = taken(s).await?;
    let busy = taken.held.into_iter().chain(taken.booked).collect();
    Ok((busy, taken.next_change))
}

/// Time the shared state says is taken, by kind: held, or booked by slotgate (made, in flight
/// or unconfirmed) while Canvas may still list it as free.
pub struct Taken {
    pub held: Vec<Busy>,
    pub booked: Vec<Busy>,
    /// The first instant at which a hold or a booking record lapses.
    pub next_change: Option<Timestamp>,
}

/// What the shared state holds now: holds and slotgate's bookings, kept apart.
pub async fn taken(s: &Services) -> Result<Taken, StoreError> {
    let now = Timestamp::now();
    let holds = s.store.holds(now).await?;
    let booked = s.store.booked(now).await?;
    let next_change = holds
        .iter()
        .map(|h| h.expires_at)
        .chain(booked.iter().map(|b| b.expires_at))
        .min();
    Ok(Taken {
        held: holds
            .into_iter()
            .map(|h| Busy {
                practitioner: h.practitioner,
                start: h.start,
                end: h.end,
            })
            .collect(),
        booked: booked
            .into_iter()
            .map(|b| Busy {
                practitioner: b.practitioner,
                start: b.start,
                end: b.end,
            })
            .collect(),
        next_change,
    })
}

/// Slot reads one question may have in flight: all of them at once (a cold question costs one
/// Canvas round trip, not several), up to what slotgate may spend on Canvas in a second and
/// what it may have in flight at all.
pub fn fan_out(s: &Services) -> usize {
    let canvas = &s.settings.canvas;
    canvas
        .max_concurrency
        .min(canvas.requests_per_second as usize)
}

/// The next `count` slots a patient in `state` could book by video (else in person) for
/// `reason`, starting after the patients' change cut-off so that they can also be moved and
/// cancelled: the live examples of the demo's API document.
pub async fn upcoming(
    s: &Services,
    reason: &str,
    state: crate::types::UsState,
    count: usize,
) -> Result<Vec<super::slot_id::SlotClaim>, ApiError> {
    use crate::rules::model::Modality;
    let clinic = s.policy();
    let reason = crate::rules::policy::bookable_reason(&clinic.rules, reason, false)?;
    let modality = [Modality::Telehealth, Modality::InPerson]
        .into_iter()
        .find(|m| reason.modalities.contains_key(m))
        .ok_or_else(|| ApiError::internal(&"a reason without a modality"))?;
    let duration = reason.durations.first().copied().unwrap_or(30);
    let policy = &clinic.booking;
    let now = Timestamp::now();
    let first = now
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date()
        .saturating_add(
            jiff::Span::new().days(i64::from(policy.patient_cancel_cutoff_hours / 24 + 1)),
        );
    let days = i64::from(policy.max_range_days.min(7)) - 1;
    let query = Query {
        reason: reason.clone(),
        duration_minutes: duration,
        patient_state: Some(state),
        modalities: vec![modality],
        start: first,
        end: first.saturating_add(jiff::Span::new().days(days)),
        tz: jiff::tz::TimeZone::UTC,
        practitioner: None,
        location: None,
        specialty: None,
        language: None,
        limit: count,
    };
    let snapshot = s.directory.snapshot().await?;
    let window = window::window(policy, now, false);
    let (busy, _) = busy_slots(s).await.map_err(super::booking_store_error)?;
    let answer = availability::find(
        snapshot,
        false,
        &s.slot_cache,
        &query,
        window,
        &busy,
        fan_out(s),
    )
    .await?;
    Ok(answer
        .offers
        .iter()
        .map(|o| o.claim(duration, &reason.code))
        .collect())
}
