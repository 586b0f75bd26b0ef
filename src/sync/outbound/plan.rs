//! Planning: what each sink should hold of an appointment, queued where it differs from what
//! the sink holds. The fast lane reads each marked appointment from Canvas; the sweep hands
//! over the bodies its searches returned.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::{Timestamp, ToSpan};

use super::SyncEngine;
use crate::canvas::fhir;
use crate::config::sync::PhiLevel;
use crate::store::sync::{Holding, Job, Lane};
use crate::sync::mapping::{self, CalendarEvent};
use crate::sync::sinks::Sink;

/// Appointments taken for planning at once, and read from Canvas side by side.
const PLAN_BATCH: usize = 32;
const PLAN_READS_AT_ONCE: usize = 8;

/// What each sink should hold of one appointment.
pub(super) struct Plan {
    id: String,
    practitioner: String,
    events: Vec<(usize, Planned)>,
}

/// What one sink should hold of an appointment: its event, or nothing (and then, for the
/// sinks that tell of it, how it ended).
struct Planned {
    event: Option<CalendarEvent>,
    farewell: Option<CalendarEvent>,
}

impl SyncEngine {
    pub(super) async fn plan_forever(self: Arc<Self>) {
        loop {
            let ids = match self.store.take_pending(PLAN_BATCH).await {
                Ok(ids) => ids,
                Err(e) => {
                    tracing::warn!(error = %e, "sync state unavailable");
                    Vec::new()
                }
            };
            if ids.is_empty() {
                let _ = tokio::time::timeout(Duration::from_secs(1), self.planned.notified()).await;
                continue;
            }
            let results: Vec<(String, bool)> = futures::stream::iter(ids)
                .map(|id| {
                    let engine = self.clone();
                    async move {
                        let ok = match engine.plan(&id).await {
                            Ok(()) => true,
                            Err(e) => {
                                tracing::warn!(error = %e, "could not read an appointment to sync; will retry");
                                false
                            }
                        };
                        (id, ok)
                    }
                })
                .buffer_unordered(PLAN_READS_AT_ONCE)
                .collect()
                .await;
            let (done, failed): (Vec<_>, Vec<_>) = results.into_iter().partition(|(_, ok)| *ok);
            let mut done: Vec<String> = done.into_iter().map(|(id, _)| id).collect();
            let failed: Vec<String> = failed.into_iter().map(|(id, _)| id).collect();
            // A failed read waits again; it leaves the planning set only once it does, so a
            // lost write here loses nothing (the next leader gives it back).
            if !failed.is_empty() && self.store.mark_pending(failed.clone()).await.is_ok() {
                done.extend(failed.iter().cloned());
            }
            if let Err(e) = self.store.planned(done).await {
                tracing::warn!(error = %e, "could not record planning done; the next leader plans those again");
            }
            if !failed.is_empty() {
                // Canvas is failing: try these again shortly rather than spin.
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }

    /// Reads the appointment now and queues what each sink is missing.
    async fn plan(&self, id: &str) -> Result<(), crate::canvas::Error> {
        match self.canvas.appointment(id).await? {
            // Unknown to Canvas: nothing should mirror it; once no sink holds anything of it,
            // its records go.
            None => {
                let queued = self.queue(id, None, &[], Lane::Fast, None).await;
                if !queued {
                    self.forget(id).await;
                }
                Ok(())
            }
            Some(a) if self.left_window(&a) => {
                // Past: the sinks keep it as history, and nothing will change it again.
                self.forget(id).await;
                Ok(())
            }
            Some(a) => self.plan_appointment(&a, Lane::Fast).await,
        }
    }

    async fn forget(&self, id: &str) {
        if let Err(e) = self.store.forget(vec![id.to_owned()]).await {
            tracing::warn!(error = %e, "could not drop the sync records of a past appointment");
        }
    }

    /// Whether the appointment ended before the window the sweep covers.
    fn left_window(&self, a: &fhir::Appointment) -> bool {
        let Some(end) = a.end.as_ref().map(|e| e.timestamp) else {
            return false;
        };
        let start = Timestamp::now()
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .date()
            .saturating_sub(1.day());
        end.to_zoned_datetime(jiff::tz::TimeZone::UTC).date() < start
    }

    /// Queues, for every sink, what it should hold of this appointment as Canvas sent it.
    pub(super) async fn plan_appointment(
        &self,
        a: &fhir::Appointment,
        lane: Lane,
    ) -> Result<(), crate::canvas::Error> {
        let plan = self.prepare(a).await?;
        self.queue(&plan.id, Some(&plan.practitioner), &plan.events, lane, None)
            .await;
        Ok(())
    }

    /// Queues, for a page of plans, only what differs from what each sink holds, read for the
    /// whole page at once: a sweep that finds nothing new writes nothing.
    pub(super) async fn queue_page(&self, plans: &[Plan], lane: Lane) {
        let ids: Vec<String> = plans.iter().map(|p| p.id.clone()).collect();
        let mut holdings: Vec<Vec<Holding>> =
            vec![Vec::with_capacity(self.sinks.len()); plans.len()];
        for sink in &self.sinks {
            let held = self
                .store
                .holding(sink.name().to_owned(), ids.clone())
                .await
                .unwrap_or_else(|_| vec![Holding::Moving; plans.len()]);
            for (k, h) in held.into_iter().enumerate() {
                if let Some(of) = holdings.get_mut(k) {
                    of.push(h);
                }
            }
        }
        for (plan, held) in plans.iter().zip(&holdings) {
            let known = (held.len() == self.sinks.len()).then_some(held.as_slice());
            self.queue(
                &plan.id,
                Some(&plan.practitioner),
                &plan.events,
                lane,
                known,
            )
            .await;
        }
    }

    /// What each sink should hold of this appointment as Canvas sent it (and, on the way,
    /// cached availability and the overlay told of a change).
    pub(super) async fn prepare(
        &self,
        a: &fhir::Appointment,
    ) -> Result<Plan, crate::canvas::Error> {
        let s = &self.services;
        let id = a.id.clone().unwrap_or_default();
        let snapshot = s.directory.snapshot().await?;
        let practitioner = a
            .participant_id("Practitioner")
            .unwrap_or_default()
            .to_owned();
        self.note_change(a, &practitioner);
        if !a.status.blocks_time() {
            // Cancelled in Canvas: a booking made here stops hiding its slot at once.
            if let Err(e) = s.store.remove_booked(id.clone()).await {
                tracing::warn!(error = %e, "could not drop a cancelled booking from the overlay; it expires on its own");
            }
        }
        let needs_name = self
            .sinks
            .iter()
            .any(|k| k.phi() == PhiLevel::Full && k.covers(&practitioner));
        let patient_name = match (
            needs_name,
            a.participant_id("Patient").and_then(|p| p.parse().ok()),
        ) {
            (true, Some(p)) => self
                .canvas
                .patient(&p)
                .await?
                .and_then(|p| p.name.first().and_then(fhir::HumanName::display)),
            _ => None,
        };
        let clinic = s.policy();
        let cx = mapping::Context {
            snapshot: &snapshot,
            rules: &clinic.rules,
            event_type: &s.settings.sync.event_type,
            patient_name: patient_name.as_deref(),
        };
        let events: Vec<(usize, Planned)> = self
            .sinks
            .iter()
            .enumerate()
            .filter(|(_, k)| k.covers(&practitioner) && !came_from(a, k.as_ref(), &practitioner))
            .map(|(i, k)| {
                let event = mapping::event(a, k.phi(), &cx);
                let farewell = match event {
                    Some(_) => None,
                    None => mapping::describe(a, k.phi(), &cx),
                };
                (i, Planned { event, farewell })
            })
            .collect();
        Ok(Plan {
            id,
            practitioner,
            events,
        })
    }

    fn note_change(&self, a: &fhir::Appointment, practitioner: &str) {
        let fingerprint = format!(
            "{}|{:?}|{:?}|{practitioner}",
            a.status.as_str(),
            a.start,
            a.end
        );
        let changed = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.insert(a.id.clone().unwrap_or_default(), fingerprint.clone())
                .as_ref()
                != Some(&fingerprint)
        };
        if changed && let Ok(p) = practitioner.parse() {
            self.services.slot_cache.invalidate_practitioner(&p);
        }
    }

    /// Queues each sink's job; whether any was added. `known`: what each sink holds of it,
    /// when read already (a sink holding exactly this, with nothing on its way, is skipped).
    async fn queue(
        &self,
        id: &str,
        practitioner: Option<&str>,
        events: &[(usize, Planned)],
        lane: Lane,
        known: Option<&[Holding]>,
    ) -> bool {
        let now = Timestamp::now();
        let mut queued = false;
        // Sinks not listed for a known appointment should hold nothing either.
        for (i, sink) in self.sinks.iter().enumerate() {
            let planned = events.iter().find(|(j, _)| *j == i).map(|(_, p)| p);
            let event = planned.and_then(|p| p.event.clone());
            let farewell = planned
                .and_then(|p| p.farewell.as_ref())
                .and_then(|f| serde_json::to_value(f).ok());
            let desired_hash = event.as_ref().map(CalendarEvent::hash);
            let holding = known.and_then(|k| k.get(i));
            match holding {
                Some(Holding::Settled(held)) if *held == desired_hash => continue,
                // Never mirrored here, and nothing to mirror.
                Some(Holding::Unknown) if planned.is_none() && event.is_none() => continue,
                _ => {}
            }
            // A removal for a sink that would mirror this appointment, with no record of it
            // (state lost in a restart, say): the sink itself is the truth of what it holds
            // (its marker finds the event; a webhook hears the cancellation), so it goes.
            let must_send = planned.is_some()
                && event.is_none()
                && match holding {
                    Some(h) => *h == Holding::Unknown,
                    None => matches!(
                        self.store
                            .record(sink.name().to_owned(), id.to_owned())
                            .await,
                        Ok(None)
                    ),
                };
            // One message per job: its retries keep the id (Standard Webhooks), and a state the
            // appointment returns to later (A, B, A) is a new message a receiver must not drop.
            let job_id = uuid::Uuid::new_v4();
            let message_id = format!("msg_{}", job_id.simple());
            let job = Job {
                id: job_id.to_string(),
                sink: sink.name().to_owned(),
                appointment_id: id.to_owned(),
                practitioner: practitioner.unwrap_or_default().to_owned(),
                desired: event
                    .as_ref()
                    .map(|e| serde_json::to_value(e).unwrap_or_default()),
                desired_hash,
                message_id,
                farewell,
                must_send,
                attempts: 0,
                not_before: now,
                last_error: None,
                created_at: now,
                lane,
            };
            // The store decides against what is already on its way: the sink holding this state
            // already makes an older queued state obsolete, and changes nothing otherwise.
            match self.store.enqueue(job).await {
                Ok(added) => queued |= added,
                Err(e) => {
                    tracing::warn!(error = %e, "could not queue a delivery; the reconciler will");
                }
            }
        }
        if queued {
            self.queued.notify_waiters();
        }
        queued
    }
}

/// Whether the appointment mirrors a meeting of the very calendar this sink writes the
/// clinician's appointments to: sending it back would echo the meeting into itself.
fn came_from(a: &fhir::Appointment, sink: &dyn Sink, practitioner: &str) -> bool {
    crate::sync::mapping::origin(a).is_some_and(|(kind, calendar)| {
        kind == sink.kind() && sink.calendar_of(practitioner) == Some(calendar)
    })
}
