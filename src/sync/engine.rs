//! One sync engine, three triggers. Notifications, slotgate's own writes and the reconciler
//! only mark appointments pending; the planner reads each one's current state from Canvas and
//! queues, per sink, the latest state where it differs from what the sink holds; one delivery
//! loop per sink sends, retries and dead-letters, so a slow sink delays nobody else.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp, ToSpan};
use tokio::sync::Notify;
use tracing::Instrument;

use super::mapping::{self, CalendarEvent};
use super::sinks::{Outcome, Sink};
use crate::canvas::fhir;
use crate::config::sync::PhiLevel;
use crate::metrics::Metrics;
use crate::scheduling::Services;
use crate::store::sync::{Job, SinkRecord, SyncStore};

/// Deliveries in flight at once for one sink.
const PARALLEL_PER_SINK: usize = 8;

/// What one sink should hold of an appointment: its event, or nothing (and then, for the
/// sinks that tell of it, how it ended).
struct Planned {
    event: Option<CalendarEvent>,
    farewell: Option<CalendarEvent>,
}

pub struct SyncEngine {
    services: Arc<Services>,
    store: Arc<dyn SyncStore>,
    sinks: Vec<Arc<dyn Sink>>,
    metrics: Option<Metrics>,
    retry_base: Duration,
    planned: Notify,
    queued: Notify,
    /// What each appointment looked like when last planned, to invalidate availability on change.
    seen: Mutex<HashMap<String, String>>,
    /// Appointments being read to find their clinician after a notification (one read each).
    reading: Arc<Mutex<std::collections::HashSet<String>>>,
}

impl SyncEngine {
    pub fn new(
        services: Arc<Services>,
        store: Arc<dyn SyncStore>,
        sinks: Vec<Arc<dyn Sink>>,
        retry_base: Duration,
        metrics: Option<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            services,
            store,
            sinks,
            metrics,
            retry_base,
            planned: Notify::new(),
            queued: Notify::new(),
            seen: Mutex::new(HashMap::new()),
            reading: Arc::default(),
        })
    }

    pub fn store(&self) -> &Arc<dyn SyncStore> {
        &self.store
    }

    pub fn sinks(&self) -> &[Arc<dyn Sink>] {
        &self.sinks
    }

    /// Asks for these appointments to be synced soon. Never fails the caller: the reconciler
    /// catches anything this misses.
    pub async fn enqueue(&self, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        if let Err(e) = self.store.mark_pending(ids.to_vec()).await {
            tracing::warn!(error = %e, "could not mark appointments for sync; the reconciler will");
        }
        self.planned.notify_one();
    }

    /// A Canvas notification: the clinician's cached availability goes at once, before the
    /// planner (which may be busy) reads the appointment; then it is planned like any change.
    /// The clinician is known when this replica planned the appointment before (the sync leader
    /// plans every one); otherwise one read of it finds them, in the background (the notification
    /// is answered meanwhile), shared by repeated notifications of the same appointment.
    pub async fn notified(&self, id: String) {
        let known = {
            let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.get(&id)
                .and_then(|f| f.rsplit('|').next())
                .and_then(|p| p.parse::<crate::types::PractitionerId>().ok())
        };
        match known {
            Some(p) => self.services.slot_cache.invalidate_practitioner(&p),
            None => {
                let first = {
                    let mut reading = self.reading.lock().unwrap_or_else(|e| e.into_inner());
                    reading.insert(id.clone())
                };
                // Repeated notifications of one appointment share one read.
                if first {
                    let (services, reading, id) =
                        (self.services.clone(), self.reading.clone(), id.clone());
                    tokio::spawn(async move {
                        if let Ok(Some(a)) = services.canvas.appointment(&id).await
                            && let Some(p) = a
                                .participant_id("Practitioner")
                                .and_then(|p| p.parse::<crate::types::PractitionerId>().ok())
                        {
                            services.slot_cache.invalidate_practitioner(&p);
                        }
                        reading
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&id);
                    });
                }
            }
        }
        self.enqueue(&[id]).await;
    }

    /// Keeps this replica's sync gauges (pending, dead, lag per sink) on the shared queue's
    /// numbers, leader or not: every replica then exports the same values, and one that stops
    /// leading does not keep reporting what it last saw.
    pub fn spawn_reporting(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let engine = self.clone();
        tokio::spawn(async move {
            loop {
                for sink in &engine.sinks {
                    engine.report(sink.name()).await;
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        })
    }

    /// Starts the planner, one delivery loop per sink and the reconciler.
    /// The delivery loops wait until what a previous leader left running is back in the
    /// queue: recovering after they start would hand this leader's own deliveries in flight
    /// back to the queue, and send them twice at once.
    pub fn spawn(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        let (recovered, ready) = tokio::sync::watch::channel(false);
        let mut tasks = vec![
            tokio::spawn(self.clone().plan_forever()),
            tokio::spawn(self.clone().reconcile_forever(recovered)),
        ];
        for i in 0..self.sinks.len() {
            let (engine, mut ready) = (self.clone(), ready.clone());
            tasks.push(tokio::spawn(async move {
                // A dropped sender (recovery task gone) lets the loop start as well.
                let _ = ready.wait_for(|done| *done).await;
                engine.deliver_forever(i).await;
            }));
        }
        tasks
    }

    async fn plan_forever(self: Arc<Self>) {
        loop {
            let ids = match self.store.take_pending(32).await {
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
            let mut failed = Vec::new();
            for id in ids {
                if let Err(e) = self.plan(&id).await {
                    tracing::warn!(error = %e, "could not read an appointment to sync; will retry");
                    failed.push(id);
                }
            }
            if !failed.is_empty() {
                // Canvas is failing: try these again shortly rather than spin.
                let _ = self.store.mark_pending(failed).await;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }

    /// Reads the appointment now and queues what each sink is missing.
    async fn plan(&self, id: &str) -> Result<(), crate::canvas::Error> {
        let s = &self.services;
        let appointment = s.canvas.appointment(id).await?;
        let snapshot = s.directory.snapshot().await?;
        let Some(a) = appointment else {
            // Unknown to Canvas: nothing should mirror it.
            return self.queue(id, None, &[]).await;
        };
        let practitioner = a
            .participant_id("Practitioner")
            .unwrap_or_default()
            .to_owned();
        self.note_change(&a, &practitioner);
        if !a.status.blocks_time() {
            // Cancelled in Canvas: a booking made here stops hiding its slot at once.
            if let Err(e) = s.store.remove_booked(id.to_owned()).await {
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
            (true, Some(p)) => s
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
            .filter(|(_, k)| k.covers(&practitioner) && !came_from(&a, k.as_ref(), &practitioner))
            .map(|(i, k)| {
                let event = mapping::event(&a, k.phi(), &cx);
                let farewell = match event {
                    Some(_) => None,
                    None => mapping::describe(&a, k.phi(), &cx),
                };
                (i, Planned { event, farewell })
            })
            .collect();
        self.queue(id, Some(&practitioner), &events).await
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

    async fn queue(
        &self,
        id: &str,
        practitioner: Option<&str>,
        events: &[(usize, Planned)],
    ) -> Result<(), crate::canvas::Error> {
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
                must_send: false,
                attempts: 0,
                not_before: now,
                last_error: None,
                created_at: now,
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
        Ok(())
    }

    /// Delivers one sink's jobs, up to [`PARALLEL_PER_SINK`] at once: a receiver that hangs on
    /// one appointment holds one of them, not the others. The deliveries belong to this loop, so
    /// stopping it stops them (an interrupted one is re-sent after restart, with its same id).
    async fn deliver_forever(self: Arc<Self>, index: usize) {
        let sink = self.sinks[index].clone();
        let mut running = tokio::task::JoinSet::new();
        loop {
            while running.try_join_next().is_some() {}
            let free = PARALLEL_PER_SINK.saturating_sub(running.len());
            let jobs = if free == 0 {
                Vec::new()
            } else {
                self.store
                    .lease(sink.name().to_owned(), Timestamp::now(), free)
                    .await
                    .unwrap_or_default()
            };
            self.report(sink.name()).await;
            if jobs.is_empty() {
                tokio::select! {
                    () = self.queued.notified() => {}
                    Some(_) = running.join_next(), if !running.is_empty() => {}
                    () = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
                continue;
            }
            for job in jobs {
                let (engine, sink) = (self.clone(), sink.clone());
                running.spawn(async move { engine.deliver(&sink, job).await });
            }
        }
    }

    async fn deliver(&self, sink: &Arc<dyn Sink>, job: Job) {
        let span = tracing::info_span!(
            "sync.delivery",
            sink = sink.name(),
            kind = sink.kind(),
            attempt = job.attempts + 1,
            outcome = tracing::field::Empty
        );
        let record = self
            .store
            .record(job.sink.clone(), job.appointment_id.clone())
            .await
            .ok()
            .flatten();
        let event: Option<CalendarEvent> = job
            .desired
            .clone()
            .and_then(|v| serde_json::from_value(v).ok());
        // The sink already holds exactly this: nothing to send (unless an older write of this
        // appointment may have landed unconfirmed).
        let outcome = if !job.must_send
            && record
                .as_ref()
                .is_some_and(|r| r.delivered == job.desired_hash)
        {
            Outcome::Delivered { external_id: None }
        } else {
            sink.deliver(&job, record.as_ref(), event.as_ref())
                .instrument(span.clone())
                .await
        };
        let now = Timestamp::now();
        let max = self.services.settings.sync.max_attempts;
        let label = match &outcome {
            Outcome::Delivered { external_id } => {
                let kept = if job.desired.is_some() {
                    external_id.clone().or(record.and_then(|r| r.external_id))
                } else {
                    None
                };
                let record = SinkRecord {
                    delivered: job.desired_hash.clone(),
                    external_id: kept,
                };
                if let Err(e) = self.store.delivered(job, record, now).await {
                    tracing::warn!(error = %e, "delivered, but could not record it");
                }
                "delivered"
            }
            Outcome::Retry { reason, after } if job.attempts + 1 < max => {
                let attempts = job.attempts + 1;
                let wait = after.unwrap_or_else(|| backoff(self.retry_base, attempts));
                let at = now
                    .saturating_add(SignedDuration::try_from(wait).unwrap_or(SignedDuration::ZERO))
                    .unwrap_or(now);
                let _ = self
                    .store
                    .failed(Job { attempts, ..job }, Some(at), reason.clone(), now)
                    .await;
                "retried"
            }
            Outcome::Retry { reason, .. } | Outcome::Failed(reason) => {
                let attempts = job.attempts + 1;
                tracing::warn!(sink = sink.name(), attempts, error = %reason, "delivery dead-lettered");
                let _ = self
                    .store
                    .failed(Job { attempts, ..job }, None, reason.clone(), now)
                    .await;
                "dead"
            }
        };
        span.record("outcome", label);
        if let Some(m) = &self.metrics {
            m.sync_deliveries
                .with_label_values(&[sink.name(), label])
                .inc();
        }
    }

    async fn report(&self, sink: &str) {
        let (Some(m), Ok(stats)) = (&self.metrics, self.store.stats(sink.to_owned()).await) else {
            return;
        };
        m.sync_pending
            .with_label_values(&[sink])
            .set(stats.pending as i64);
        m.sync_dead
            .with_label_values(&[sink])
            .set(stats.dead as i64);
        let lag = stats.oldest_pending.map_or(0.0, |t| {
            t.duration_until(Timestamp::now()).as_secs_f64().max(0.0)
        });
        m.sync_lag.with_label_values(&[sink]).set(lag);
    }

    async fn reconcile_forever(self: Arc<Self>, recovered: tokio::sync::watch::Sender<bool>) {
        if let Err(e) = self.store.recover().await {
            tracing::warn!(error = %e, "could not recover interrupted deliveries");
        }
        let _ = recovered.send(true);
        loop {
            match self.reconcile().await {
                Ok(n) => tracing::info!(appointments = n, "reconciled"),
                Err(e) => {
                    tracing::warn!(error = %e, "reconciliation failed; next round will retry")
                }
            }
            tokio::time::sleep(self.services.settings.sync.reconcile_interval).await;
        }
    }

    /// Marks every appointment of every mapped clinician from yesterday to `window_days` ahead,
    /// and everything a sink holds, for syncing: the planner then converges each sink.
    pub async fn reconcile(&self) -> Result<usize, crate::canvas::Error> {
        let s = &self.services;
        let today = Timestamp::now()
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .date();
        let (from, to) = (
            today.saturating_sub(1.day()),
            today.saturating_add(i64::from(s.settings.sync.window_days).days()),
        );
        let (ge, le) = (format!("ge{from}"), format!("le{to}"));
        let mut ids: Vec<String> = self.store.known_appointments().await.unwrap_or_default();
        let clinic = s.policy();
        for practitioner in clinic.rules.practitioners.keys() {
            if !self.sinks.iter().any(|k| k.covers(practitioner.as_str())) {
                continue;
            }
            let who = format!("Practitioner/{practitioner}");
            let found = s
                .canvas
                .search_appointments(&[("practitioner", &who), ("date", &ge), ("date", &le)])
                .await?;
            ids.extend(found.into_iter().filter_map(|a| a.id));
        }
        ids.sort();
        ids.dedup();
        let n = ids.len();
        self.enqueue(&ids).await;
        Ok(n)
    }
}

/// 1 s, doubling, capped at 5 minutes, with jitter (contract "Outbound").
fn backoff(base: Duration, attempts: u32) -> Duration {
    let ceiling = base
        .saturating_mul(1 << attempts.saturating_sub(1).min(16))
        .min(Duration::from_secs(300));
    ceiling.mul_f64(0.8 + 0.4 * fastrand::f64())
}

/// Whether the appointment mirrors a meeting of the very calendar this sink writes the
/// clinician's appointments to: sending it back would echo the meeting into itself.
fn came_from(a: &fhir::Appointment, sink: &dyn Sink, practitioner: &str) -> bool {
    crate::sync::inbound::canvas::origin(a).is_some_and(|(kind, calendar)| {
        kind == sink.kind() && sink.calendar_of(practitioner) == Some(calendar)
    })
}
