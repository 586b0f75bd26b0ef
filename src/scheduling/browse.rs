//! Answering "who can see me, when?": from the rendered-answer cache while that answer is still
//! exactly right, else computed from the slot cache with the booking window and the time that
//! holds and unconfirmed bookings take, then kept for as long as it stays right.

use bytes::Bytes;
use jiff::Timestamp;

use super::Services;
use super::answer_cache::{self, Answer as Rendered, AnswerKey};
use super::availability::{self, Answer, Busy, Query};
use crate::error::ApiError;
use crate::rules::window;
use crate::store::StoreError;

/// The rendered answer to `query` (`render` turns a computed answer into the body).
pub async fn answer(
    s: &Services,
    query: &Query,
    staff: bool,
    render: impl FnOnce(&Answer) -> Result<Bytes, ApiError>,
) -> Result<Bytes, ApiError> {
    let snapshot = s.directory.snapshot().await?;
    let now = Timestamp::now();
    let key = AnswerKey {
        question: query.cache_key(staff),
        epoch: s.slot_cache.epoch(),
        directory: snapshot.fetched_at,
    };
    if let Some(body) = s.answers.get(&key, now).await {
        return Ok(body);
    }
    let window = window::window(&s.settings.booking, now, staff);
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
        s.settings.canvas.max_concurrency,
    )
    .await?;
    let body = render(&answer)?;
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
    let now = Timestamp::now();
    let holds = s.store.holds(now).await?;
    let booked = s.store.booked(now).await?;
    let expiry = holds
        .iter()
        .map(|h| h.expires_at)
        .chain(booked.iter().map(|b| b.expires_at))
        .min();
    let busy = holds
        .into_iter()
        .map(|h| Busy {
            practitioner: h.practitioner,
            start: h.start,
            end: h.end,
        })
        .chain(booked.into_iter().map(|b| Busy {
            practitioner: b.practitioner,
            start: b.start,
            end: b.end,
        }))
        .collect();
    Ok((busy, expiry))
}
