//! The delivery queue's rules as plain data: what waits (per lane), what runs (under a lease),
//! what died, and each sink's last success. The memory backend keeps one of these; the Redis
//! backend keeps the same rules in its scripts, and the conformance suite holds both to them.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{DeadLetter, Job, Lane, SinkStats};

/// Dead letters kept per sink: the newest; the reconciler plans the others' appointments again.
pub const MAX_DEAD_PER_SINK: usize = 1_000;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Queue {
    queued: BTreeMap<String, Job>,
    running: BTreeMap<String, Job>,
    /// Running job -> when its lease ends. A running job without one is orphaned.
    leases: BTreeMap<String, Timestamp>,
    dead: BTreeMap<String, DeadLetter>,
    last_success: BTreeMap<String, Timestamp>,
}

fn same(a: &Job, b: &Job) -> bool {
    a.sink == b.sink && a.appointment_id == b.appointment_id
}

impl Queue {
    /// Queues the latest state of an appointment for a sink, against `held`, the state the sink
    /// holds (a job that must be sent is queued whatever the record says): (whether a job was
    /// added, whether anything changed).
    pub fn enqueue(&mut self, job: Job, held: Option<&str>) -> (bool, bool) {
        let before = self.queued.len();
        if !job.must_send && job.desired_hash.as_deref() == held {
            // The sink holds this state: an older state waiting to go would undo it.
            self.queued.retain(|_, j| !same(j, &job));
            // One being sent now lands first; this state must follow it, else nothing to do.
            if !self
                .running
                .values()
                .any(|j| same(j, &job) && j.desired_hash != job.desired_hash)
            {
                return (false, self.queued.len() != before);
            }
        }
        // The same state already on its way: nothing to add.
        if self
            .queued
            .values()
            .chain(self.running.values())
            .any(|j| same(j, &job) && j.desired_hash == job.desired_hash)
        {
            return (false, self.queued.len() != before);
        }
        // A newer state takes the older one's place, and its lane if that one was faster: a
        // sweep never slows down a change somebody is waiting for.
        let mut job = job;
        if let Some(older) = self.queued.values().find(|j| same(j, &job)) {
            job.lane = job.lane.min(older.lane);
        }
        self.queued.retain(|_, j| !same(j, &job));
        self.queued.insert(job.id.clone(), job);
        (true, true)
    }

    /// Due jobs of a sink, fast lane first, one per appointment, now running until `until`;
    /// running jobs whose lease ended are given back first.
    pub fn lease(&mut self, sink: &str, now: Timestamp, max: usize, until: Timestamp) -> Vec<Job> {
        let lapsed: Vec<String> = self
            .running
            .values()
            .filter(|j| j.sink == sink && self.leases.get(&j.id).is_none_or(|t| *t <= now))
            .map(|j| j.id.clone())
            .collect();
        for id in lapsed {
            self.give_back(&id);
        }
        let mut busy: BTreeSet<String> = self
            .running
            .values()
            .filter(|j| j.sink == sink)
            .map(|j| j.appointment_id.clone())
            .collect();
        let mut candidates: Vec<&Job> = self
            .queued
            .values()
            .filter(|j| j.sink == sink && j.not_before <= now)
            .collect();
        candidates.sort_by_key(|j| (j.lane, j.not_before, j.created_at));
        let mut due = Vec::new();
        for j in candidates {
            if due.len() == max {
                break;
            }
            // One per appointment: its jobs run in order, never side by side.
            if busy.insert(j.appointment_id.clone()) {
                due.push(j.clone());
            }
        }
        for j in &due {
            self.queued.remove(&j.id);
            self.running.insert(j.id.clone(), j.clone());
            self.leases.insert(j.id.clone(), until);
        }
        due
    }

    /// Whether a job of this appointment waits or runs for the sink.
    pub fn moving(&self, sink: &str, appointment: &str) -> bool {
        self.queued
            .values()
            .chain(self.running.values())
            .any(|j| j.sink == sink && j.appointment_id == appointment)
    }

    pub fn renew(&mut self, job_id: &str, until: Timestamp) -> bool {
        if !self.running.contains_key(job_id) {
            return false;
        }
        self.leases.insert(job_id.to_owned(), until);
        true
    }

    pub fn delivered(&mut self, job: &Job, now: Timestamp) {
        self.running.remove(&job.id);
        self.leases.remove(&job.id);
        self.last_success.insert(job.sink.clone(), now);
        self.dead.retain(|_, l| !same(&l.job, job));
    }

    pub fn failed(
        &mut self,
        mut job: Job,
        retry_at: Option<Timestamp>,
        error: String,
        now: Timestamp,
    ) {
        self.running.remove(&job.id);
        self.leases.remove(&job.id);
        job.last_error = Some(error);
        match retry_at {
            // A newer job for the same appointment, queued meanwhile, supersedes this one.
            Some(at) if !self.queued.values().any(|q| same(q, &job)) => {
                job.not_before = at;
                // Retries go in the fast lane: they are changes somebody is waiting for.
                job.lane = Lane::Fast;
                self.queued.insert(job.id.clone(), job);
            }
            Some(_) => self.follow_unconfirmed(&job),
            None => {
                // The latest state that died is the one worth retrying; older ones of the same
                // appointment are obsolete. And a sink down for long keeps its newest letters.
                let sink = job.sink.clone();
                self.dead.retain(|_, l| !same(&l.job, &job));
                self.dead
                    .insert(job.id.clone(), DeadLetter { job, died_at: now });
                let mut of_sink: Vec<(Timestamp, String)> = self
                    .dead
                    .iter()
                    .filter(|(_, l)| l.job.sink == sink)
                    .map(|(id, l)| (l.died_at, id.clone()))
                    .collect();
                if of_sink.len() > MAX_DEAD_PER_SINK {
                    of_sink.sort();
                    let excess = of_sink.len() - MAX_DEAD_PER_SINK;
                    for (_, id) in of_sink.into_iter().take(excess) {
                        self.dead.remove(&id);
                    }
                    tracing::warn!(sink = %sink, "dead letters over their bound; the oldest dropped (the reconciler plans those appointments again)");
                }
            }
        }
    }

    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.dead.values().cloned().collect()
    }

    pub fn revive(&mut self, job_id: &str, at: Timestamp) -> Option<String> {
        let mut job = self.dead.remove(job_id)?.job;
        let appointment = job.appointment_id.clone();
        let newer = self
            .queued
            .values()
            .chain(self.running.values())
            .any(|q| same(q, &job));
        if !newer {
            job.attempts = 0;
            job.not_before = at;
            job.lane = Lane::Fast;
            self.queued.insert(job.id.clone(), job);
        }
        Some(appointment)
    }

    pub fn stats(&self, sink: &str) -> SinkStats {
        let waiting: Vec<&Job> = self
            .queued
            .values()
            .chain(self.running.values())
            .filter(|j| j.sink == sink)
            .collect();
        let oldest = |lane: Lane| {
            waiting
                .iter()
                .filter(|j| j.lane == lane)
                .map(|j| j.created_at)
                .min()
        };
        SinkStats {
            pending: waiting.len(),
            failing: waiting.iter().filter(|j| j.attempts > 0).count(),
            dead: self.dead.values().filter(|l| l.job.sink == sink).count(),
            last_success: self.last_success.get(sink).copied(),
            oldest_fast: oldest(Lane::Fast),
            oldest_sweep: oldest(Lane::Sweep),
        }
    }

    /// Every running job goes back to the queue: whoever ran them is gone.
    pub fn recover(&mut self) {
        let ids: Vec<String> = self.running.keys().cloned().collect();
        for id in ids {
            self.give_back(&id);
        }
    }

    /// A running job back to wait, or, when a newer job of its appointment waits, dropped for
    /// it (which then goes whatever the record says: the older one may have landed).
    fn give_back(&mut self, id: &str) {
        self.leases.remove(id);
        let Some(job) = self.running.remove(id) else {
            return;
        };
        if self.queued.values().any(|q| same(q, &job)) {
            self.follow_unconfirmed(&job);
        } else {
            self.queued.insert(job.id.clone(), job);
        }
    }

    /// `job` was given up for a newer one of its appointment, but may have landed: the newer
    /// one goes whatever the record says.
    fn follow_unconfirmed(&mut self, job: &Job) {
        for q in self.queued.values_mut() {
            if same(q, job) {
                q.must_send = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sync::conformance::{job, ts};

    #[test]
    fn dead_letters_keep_the_newest_per_sink() {
        let mut q = Queue::default();
        let base = ts("2026-12-01T10:00:00Z");
        for i in 0..MAX_DEAD_PER_SINK + 5 {
            let mut j = job(&format!("j{i}"), &format!("a{i}"), "v1");
            j.sink = "ops".into();
            let died = base + jiff::SignedDuration::from_secs(i as i64);
            q.failed(j, None, "HTTP 500".into(), died);
        }
        let mut other = job("x", "a0", "v1");
        other.sink = "gcal".into();
        q.failed(other, None, "HTTP 500".into(), base);
        let letters = q.dead_letters();
        let ops: Vec<&DeadLetter> = letters.iter().filter(|l| l.job.sink == "ops").collect();
        assert_eq!(ops.len(), MAX_DEAD_PER_SINK);
        assert!(
            ops.iter().all(|l| l.job.id != "j0" && l.job.id != "j4"),
            "the oldest went"
        );
        assert!(
            ops.iter()
                .any(|l| l.job.id == format!("j{}", MAX_DEAD_PER_SINK + 4))
        );
        assert_eq!(letters.iter().filter(|l| l.job.sink == "gcal").count(), 1);
    }
}
