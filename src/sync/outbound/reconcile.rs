//! The sweep: every covered clinician's appointments from yesterday to the booking horizon,
//! compared from the bodies the searches return (no read per appointment), one clinician at a
//! time, queued in the slow lane behind every change somebody is waiting for.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::StreamExt;
use jiff::{Timestamp, ToSpan};

use super::{SweepProgress, SyncEngine};
use crate::store::sync::Lane;

/// Clinicians whose appointments are searched side by side: one. The sweep is the backstop for
/// changes nobody told slotgate of, not the way changes arrive: it goes gently, one page in
/// Canvas at a time (measured: two at once doubled the tail of patients' Slot searches).
const CLINICIANS_AT_ONCE: usize = 1;
/// Appointments compared between two chances for other work on the same thread to run (a
/// page is a hundred of them): the sweep's own thread is at idle priority (`crate::idle`), but
/// when it could not be started the sweep shares the server's.
const APPOINTMENTS_PER_TURN: usize = 25;

impl SyncEngine {
    /// Sweeps at start-up and every `reconcile_interval`, once what a previous leader left
    /// running is back in the queue (`recovered`).
    pub(super) async fn reconcile_forever(
        self: Arc<Self>,
        mut recovered: tokio::sync::watch::Receiver<bool>,
    ) {
        // A dropped sender (recovery task gone) lets the sweep start as well.
        let _ = recovered.wait_for(|done| *done).await;
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

    /// Compares every appointment of every covered clinician from yesterday to the farther of
    /// `window_days` and the booking horizon with what each sink holds, and queues the
    /// differences; appointments a sink has a record of that no search returned (gone from
    /// Canvas, or past) are read once each in the fast lane. The number of appointments seen.
    pub async fn reconcile(&self) -> Result<usize, crate::canvas::Error> {
        let s = &self.services;
        let clinic = s.policy();
        let days = s
            .settings
            .sync
            .window_days
            .max(clinic.booking.max_horizon_days);
        let today = Timestamp::now()
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .date();
        let (from, to) = (
            today.saturating_sub(1.day()),
            today.saturating_add(i64::from(days).days()),
        );
        let (ge, le) = (format!("ge{from}"), format!("le{to}"));
        let clinicians: Vec<String> = clinic
            .rules
            .practitioners
            .keys()
            .map(ToString::to_string)
            .filter(|p| self.sinks.iter().any(|k| k.covers(p)))
            .collect();
        let started = Timestamp::now();
        self.set_sweep(SweepProgress {
            started: Some(started),
            done: 0,
            total: clinicians.len(),
        });
        let mut seen = BTreeSet::new();
        let mut failure = None;
        let canvas = &self.canvas.sweep();
        let mut pages = futures::stream::iter(clinicians)
            .map(|p| {
                let (ge, le) = (ge.clone(), le.clone());
                async move {
                    let who = format!("Practitioner/{p}");
                    canvas
                        .search_appointments(&[
                            ("practitioner", &who),
                            ("date", &ge),
                            ("date", &le),
                        ])
                        .await
                }
            })
            .buffer_unordered(CLINICIANS_AT_ONCE);
        while let Some(found) = pages.next().await {
            match found {
                Ok(appointments) => {
                    let mut plans = Vec::with_capacity(appointments.len());
                    for (n, a) in appointments.into_iter().enumerate() {
                        if n > 0 && n % APPOINTMENTS_PER_TURN == 0 {
                            tokio::task::yield_now().await;
                        }
                        let Some(id) = a.id.clone() else { continue };
                        match self.prepare(&a).await {
                            Ok(plan) => plans.push(plan),
                            Err(e) => {
                                failure = Some(e);
                                continue;
                            }
                        }
                        seen.insert(id);
                    }
                    self.queue_page(&plans, Lane::Sweep).await;
                }
                Err(e) => failure = Some(e),
            }
            self.sweep_step();
        }
        drop(pages);
        let n = seen.len();
        if failure.is_none() {
            // Only a sweep that saw everything may say what is gone.
            let known = self.store.known_appointments().await.unwrap_or_default();
            let unseen: Vec<String> = known.into_iter().filter(|a| !seen.contains(a)).collect();
            self.enqueue(&unseen).await;
        }
        let took = started.duration_until(Timestamp::now()).as_secs_f64();
        if let Some(m) = &self.metrics {
            m.sync_sweep_seconds.set(took.max(0.0));
        }
        self.set_sweep(SweepProgress::default());
        match failure {
            Some(e) => Err(e),
            None => Ok(n),
        }
    }

    fn set_sweep(&self, progress: SweepProgress) {
        *self.sweep.lock().unwrap_or_else(|e| e.into_inner()) = progress;
        self.report_sweep(progress);
    }

    fn sweep_step(&self) {
        let progress = {
            let mut sweep = self.sweep.lock().unwrap_or_else(|e| e.into_inner());
            sweep.done += 1;
            *sweep
        };
        self.report_sweep(progress);
    }
}
