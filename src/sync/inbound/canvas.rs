//! One calendar meeting made true in Canvas: an Other Event created, moved or cancelled,
//! found again by its identifier so that every step can be repeated safely.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::meeting::Block;
use crate::canvas::fhir::{Appointment, AppointmentStatus};
use crate::config::sync::InboundSettings;
use crate::scheduling::Services;
use crate::scheduling::canvas_write::{self, CALENDAR_SYSTEM, NewEvent};
use crate::store::Booked;
use crate::sync::outbound::SyncEngine;

/// What slotgate made of one meeting: the Canvas Other Event and the times it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mirror {
    pub canvas_id: String,
    pub start: Timestamp,
    pub end: Timestamp,
    pub title: String,
}

impl Mirror {
    pub fn holds(&self, b: &Block) -> bool {
        self.start == b.start && self.end == b.end && self.title == b.title
    }
}

/// The identifier value of a meeting's Other Event: `<google|graph>:<calendar>:<event id>`.
pub fn identifier(cal: &InboundSettings, event_id: &str) -> String {
    format!("{}:{}:{event_id}", cal.kind().as_str(), cal.calendar)
}

/// Makes Canvas hold `want` (or nothing) for the meeting. `known` is what slotgate made of it
/// last; without it, Canvas is searched by identifier (so lost state never duplicates), but
/// only when `search` is set or something must exist.
#[allow(clippy::too_many_arguments)]
pub async fn apply(
    s: &Services,
    outbound: &SyncEngine,
    cal: &InboundSettings,
    location: &str,
    event_id: &str,
    want: Option<&Block>,
    known: Option<&Mirror>,
    search: bool,
) -> Result<Option<Mirror>, crate::canvas::Error> {
    // Background work: within the background share of the Canvas budget.
    let canvas = outbound.canvas();
    let value = identifier(cal, event_id);
    let token = format!("{CALENDAR_SYSTEM}|{value}");
    let current = match known {
        Some(m) => canvas.appointment(&m.canvas_id).await?,
        None if want.is_some() || search => canvas
            .search_appointments(&[("identifier", &token)])
            .await?
            .into_iter()
            .next(),
        None => None,
    };
    match (want, current) {
        (None, None) => Ok(None),
        (None, Some(current)) => {
            if current.status.blocks_time() {
                let id = current.id.clone().unwrap_or_default();
                canvas
                    .update_appointment(&id, &canvas_write::cancellation(&current, None))
                    .await?;
                changed(s, outbound, cal, &id, None).await;
            }
            Ok(None)
        }
        (Some(b), None) => {
            let body = canvas_write::other_event(&NewEvent {
                event_type: &s.settings.sync.event_type,
                practitioner: &cal.practitioner,
                patient: None,
                location_id: location,
                start: b.start,
                end: b.end,
                title: &b.title,
                identifier: (CALENDAR_SYSTEM, &value),
            });
            let id = match canvas.create_appointment(&body).await {
                Ok(id) => id,
                // It may exist: look before creating again.
                Err(e) if e.is_ambiguous() => canvas
                    .search_appointments(&[("identifier", &token)])
                    .await?
                    .into_iter()
                    .find_map(|a| a.id)
                    .ok_or(e)?,
                Err(e) => return Err(e),
            };
            changed(s, outbound, cal, &id, Some(b)).await;
            Ok(Some(mirror(id, b)))
        }
        (Some(b), Some(current)) => {
            let id = current.id.clone().unwrap_or_default();
            if !shows(&current, b) {
                canvas
                    .update_appointment(
                        &id,
                        &canvas_write::retimed(&current, b.start, b.end, &b.title),
                    )
                    .await?;
                changed(s, outbound, cal, &id, Some(b)).await;
            }
            Ok(Some(mirror(id, b)))
        }
    }
}

fn mirror(canvas_id: String, b: &Block) -> Mirror {
    Mirror {
        canvas_id,
        start: b.start,
        end: b.end,
        title: b.title.clone(),
    }
}

/// Whether Canvas already shows the block as it should.
fn shows(a: &Appointment, b: &Block) -> bool {
    a.status == AppointmentStatus::Booked
        && a.start.as_ref().map(|i| i.timestamp) == Some(b.start)
        && a.end.as_ref().map(|i| i.timestamp) == Some(b.end)
        && a.description.as_deref() == Some(b.title.as_str())
}

/// After a write: availability forgets the clinician's cached slots, the overlay covers the
/// time until Canvas's answers show it, and the outbound sinks hear of it.
async fn changed(
    s: &Services,
    outbound: &SyncEngine,
    cal: &InboundSettings,
    id: &str,
    holds: Option<&Block>,
) {
    let stored = match holds {
        Some(b) => {
            let keep = s.settings.cache.slot_ttl + s.settings.cache.stale_if_error;
            let now = Timestamp::now();
            let expires_at = now
                .saturating_add(SignedDuration::try_from(keep).unwrap_or(SignedDuration::ZERO))
                .unwrap_or(now);
            s.store
                .put_booked(Booked {
                    appointment_id: id.to_owned(),
                    practitioner: cal.practitioner.clone(),
                    start: b.start,
                    end: b.end,
                    expires_at,
                    pending: None,
                })
                .await
        }
        None => s.store.remove_booked(id.to_owned()).await,
    };
    if let Err(e) = stored {
        tracing::warn!(error = %e, "busy overlay not updated; Canvas's answers will show the change");
    }
    s.slot_cache.invalidate_practitioner(&cal.practitioner);
    outbound.enqueue(&[id.to_owned()]).await;
}
