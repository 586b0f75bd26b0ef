//! What every [`SyncStore`] must do, as one suite run against each backend (memory in unit
//! tests, Redis in the replica tests). Each check gets a store of its own from `fresh`.
//!
//! The checks live by concern, as the trait's operations do: `pending`, `records`,
//! `queue` and `calendars`; [`run`] is the one entry both backends call, and runs them all.

mod calendars;
mod pending;
mod queue;
mod records;

use jiff::Timestamp;

use super::*;

/// Runs every check, each on a fresh, empty store.
pub async fn run<F, Fut>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Box<dyn SyncStore>>,
{
    pending::pending_appointments_are_taken_once(fresh().await.as_ref()).await;
    pending::appointments_taken_for_planning_come_back_to_a_new_leader(fresh().await.as_ref())
        .await;
    records::records_and_calendars_are_kept(fresh().await.as_ref()).await;
    records::records_of_past_appointments_are_forgotten(fresh().await.as_ref()).await;
    records::what_a_sink_holds_is_read_for_many_at_once(fresh().await.as_ref()).await;
    records::every_record_is_known_however_many(fresh().await.as_ref()).await;
    queue::only_the_latest_state_waits_and_one_job_per_appointment_runs(fresh().await.as_ref())
        .await;
    queue::the_same_state_is_not_queued_twice_while_on_its_way(fresh().await.as_ref()).await;
    queue::failures_wait_then_die_and_can_be_revived(fresh().await.as_ref()).await;
    queue::a_state_the_sink_holds_undoes_older_ones_on_their_way(fresh().await.as_ref()).await;
    queue::a_new_leader_takes_over_what_was_running(fresh().await.as_ref()).await;
    queue::only_the_latest_dead_letter_of_an_appointment_is_kept(fresh().await.as_ref()).await;
    queue::a_newer_state_follows_an_unconfirmed_one_whatever_the_record_says(
        fresh().await.as_ref(),
    )
    .await;
    queue::changes_somebody_waits_for_go_before_the_sweep(fresh().await.as_ref()).await;
    queue::a_job_whose_lease_ends_goes_back_to_the_queue(fresh().await.as_ref()).await;
    queue::a_later_success_clears_the_dead_letter(fresh().await.as_ref()).await;
    queue::a_removal_that_must_be_sent_is_queued_against_an_empty_record(fresh().await.as_ref())
        .await;
    calendars::read_requests_merge_per_calendar_until_taken(fresh().await.as_ref()).await;
}

pub fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

pub fn job(id: &str, appointment: &str, hash: &str) -> Job {
    Job {
        id: id.into(),
        sink: "ops".into(),
        appointment_id: appointment.into(),
        practitioner: "4150cd20de8a470aa570a852859ac87e".into(),
        desired: Some(serde_json::json!({"title": hash})),
        desired_hash: Some(hash.into()),
        message_id: format!("msg_{id}"),
        farewell: None,
        must_send: false,
        attempts: 0,
        not_before: ts("2026-12-01T10:00:00Z"),
        last_error: None,
        created_at: ts("2026-12-01T10:00:00Z"),
        lane: Lane::Fast,
    }
}

/// Leases under a lease that outlasts the check.
async fn take(s: &dyn SyncStore, now: Timestamp, max: usize) -> Vec<Job> {
    let until = now + jiff::SignedDuration::from_hours(1);
    s.lease("ops".into(), now, max, until).await.unwrap()
}
