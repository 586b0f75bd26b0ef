//! Outbound sync: Canvas appointments to the clinic's calendars and webhooks. Work is sized
//! by what changed. Notifications, slotgate's own writes and retries mark appointments for
//! the fast lane, where the planner reads each one and queues what each sink is missing
//! (`plan`); the reconciler's sweep compares everything from the bodies its searches return
//! and queues in the slow lane (`reconcile`); one delivery loop per sink sends, fast lane
//! first, under a renewed lease, retries and dead-letters (`worker`). All Canvas calls here
//! use the background share of the budget: patients come first.

mod plan;
mod reconcile;
mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::Notify;

use super::sinks::Sink;
use crate::canvas::CanvasClient;
use crate::metrics::Metrics;
use crate::scheduling::Services;
use crate::store::sync::{Lane, SyncStore};

/// Where the running sweep is, for the metrics.
#[derive(Debug, Default, Clone, Copy)]
struct SweepProgress {
    started: Option<Timestamp>,
    done: usize,
    total: usize,
}

pub struct SyncEngine {
    services: Arc<Services>,
    /// Canvas, within the background share.
    canvas: CanvasClient,
    sweep: Mutex<SweepProgress>,
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
            canvas: services.canvas.background(),
            sweep: Mutex::default(),
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

    /// Canvas within the background share of the budget, for every sync step.
    pub fn canvas(&self) -> &CanvasClient {
        &self.canvas
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
                    let canvas = self.canvas.clone();
                    tokio::spawn(async move {
                        if let Ok(Some(a)) = canvas.appointment(&id).await
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
                engine.report_lanes().await;
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
        let engine = self.clone();
        let mut tasks = vec![
            tokio::spawn(self.clone().plan_forever()),
            tokio::spawn(async move {
                if let Err(e) = engine.store.recover().await {
                    tracing::warn!(error = %e, "could not recover interrupted deliveries");
                }
                let _ = recovered.send(true);
            }),
            // Polled on an idle core only (`crate::idle`): patients first, on the CPU too.
            crate::idle::spawn(
                "slotgate-sweep",
                self.clone().reconcile_forever(ready.clone()),
            ),
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

    pub(super) async fn report(&self, sink: &str) {
        let (Some(m), Ok(stats)) = (&self.metrics, self.store.stats(sink.to_owned()).await) else {
            return;
        };
        m.sync_pending
            .with_label_values(&[sink])
            .set(stats.pending as i64);
        m.sync_dead
            .with_label_values(&[sink])
            .set(stats.dead as i64);
        m.sync_lag
            .with_label_values(&[sink])
            .set(age(stats.oldest_pending()));
    }

    /// How far behind planning is, per lane, and where the sweep is.
    async fn report_lanes(&self) {
        let Some(m) = &self.metrics else { return };
        if let Ok(oldest) = self.store.oldest_unplanned().await {
            m.sync_unplanned_age
                .with_label_values(&[Lane::Fast.as_str()])
                .set(age(oldest));
        }
        let sweep = *self.sweep.lock().unwrap_or_else(|e| e.into_inner());
        self.report_sweep(sweep);
    }

    /// Where the sweep is, at once (the sweep calls it at every clinician).
    fn report_sweep(&self, sweep: SweepProgress) {
        let Some(m) = &self.metrics else { return };
        m.sync_unplanned_age
            .with_label_values(&[Lane::Sweep.as_str()])
            .set(age(sweep.started));
        m.sync_sweep_progress.set(match sweep.started {
            Some(_) if sweep.total > 0 => sweep.done as f64 / sweep.total as f64,
            _ => 1.0,
        });
    }
}

/// Seconds since `t` (0 for none).
fn age(t: Option<Timestamp>) -> f64 {
    t.map_or(0.0, |t| {
        t.duration_until(Timestamp::now()).as_secs_f64().max(0.0)
    })
}
