//! The checks of the delivery queue: only the latest state goes, one job per appointment
//! at a time, lanes, leases, retries, dead letters and their revival, and a new leader
//! taking over what was running.

use super::{job, take, ts};
use crate::store::sync::{Lane, SinkRecord, SyncStore};

pub(super) async fn only_the_latest_state_waits_and_one_job_per_appointment_runs(
    s: &dyn SyncStore,
) {
    let now = ts("2026-12-01T10:00:00Z");
    s.enqueue(job("1", "a", "v1")).await.unwrap();
    s.enqueue(job("2", "a", "v2")).await.unwrap();
    s.enqueue(job("3", "b", "v1")).await.unwrap();
    let leased = take(s, now, 10).await;
    let ids: Vec<&str> = leased.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["2", "3"], "v1 of a was superseded");
    s.enqueue(job("4", "a", "v3")).await.unwrap();
    assert!(take(s, now, 10).await.is_empty(), "a is still running");
    let record = SinkRecord {
        delivered: Some("v2".into()),
        external_id: None,
    };
    s.delivered(leased[0].clone(), record.clone(), now)
        .await
        .unwrap();
    assert_eq!(take(s, now, 10).await[0].id, "4");
    assert_eq!(
        s.record("ops".into(), "a".into()).await.unwrap(),
        Some(record)
    );
}

pub(super) async fn the_same_state_is_not_queued_twice_while_on_its_way(s: &dyn SyncStore) {
    let now = ts("2026-12-01T10:00:00Z");
    s.enqueue(job("1", "a", "v1")).await.unwrap();
    let running = take(s, now, 10).await;
    assert_eq!(running.len(), 1);
    s.enqueue(job("2", "a", "v1")).await.unwrap();
    s.delivered(
        running[0].clone(),
        SinkRecord {
            delivered: Some("v1".into()),
            external_id: None,
        },
        now,
    )
    .await
    .unwrap();
    assert!(take(s, now, 10).await.is_empty(), "v1 was already running");
}

pub(super) async fn failures_wait_then_die_and_can_be_revived(s: &dyn SyncStore) {
    let now = ts("2026-12-01T10:00:00Z");
    s.enqueue(job("1", "a", "v1")).await.unwrap();
    let j = take(s, now, 1).await.remove(0);
    s.failed(j, Some(ts("2026-12-01T10:00:05Z")), "HTTP 500".into(), now)
        .await
        .unwrap();
    assert!(
        take(s, now, 1).await.is_empty(),
        "not before its retry time"
    );
    let j = take(s, ts("2026-12-01T10:00:05Z"), 1).await.remove(0);
    s.failed(j, None, "HTTP 500".into(), now).await.unwrap();
    assert_eq!(s.stats("ops".into()).await.unwrap().dead, 1);
    assert_eq!(s.dead_letters().await.unwrap()[0].job.id, "1");
    // Revived to go two seconds later, the same message, attempts reset.
    let later = ts("2026-12-01T10:00:02Z");
    assert_eq!(
        s.revive("1".into(), later).await.unwrap().as_deref(),
        Some("a")
    );
    assert_eq!(s.stats("ops".into()).await.unwrap().dead, 0);
    assert_eq!(
        s.revive("1".into(), later).await.unwrap(),
        None,
        "only once"
    );
    assert!(take(s, now, 1).await.is_empty(), "not yet");
    let again = take(s, later, 1).await.remove(0);
    assert_eq!(
        (again.id.as_str(), again.message_id.as_str(), again.attempts),
        ("1", "msg_1", 0)
    );
    // Planned again meanwhile to a newer state: that one goes instead.
    s.failed(again, None, "HTTP 500".into(), now).await.unwrap();
    s.revive("1".into(), later).await.unwrap();
    s.enqueue(job("2", "a", "v2")).await.unwrap();
    let next = take(s, later, 10).await;
    let ids: Vec<&str> = next.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["2"], "the newer state replaces the revived letter");
}

pub(super) async fn a_state_the_sink_holds_undoes_older_ones_on_their_way(s: &dyn SyncStore) {
    let now = ts("2026-12-01T10:00:00Z");
    let record = |hash: &str| SinkRecord {
        delivered: Some(hash.into()),
        external_id: None,
    };
    // The sink holds v1 of a.
    s.enqueue(job("0", "a", "v1")).await.unwrap();
    let first = take(s, now, 10).await.remove(0);
    s.delivered(first, record("v1"), now).await.unwrap();
    // Planned again with nothing on its way: nothing to send.
    assert!(!s.enqueue(job("1", "a", "v1")).await.unwrap());
    assert!(take(s, now, 10).await.is_empty());
    // a moved to v2 (queued, say retrying), then back to v1, which the sink still holds:
    // v2 must never be sent.
    assert!(s.enqueue(job("2", "a", "v2")).await.unwrap());
    assert!(!s.enqueue(job("3", "a", "v1")).await.unwrap());
    assert!(take(s, now, 10).await.is_empty());
    // v2 already being sent when a goes back to v1: v1 follows it.
    assert!(s.enqueue(job("4", "a", "v2")).await.unwrap());
    let running = take(s, now, 10).await;
    assert!(s.enqueue(job("5", "a", "v1")).await.unwrap());
    s.delivered(running[0].clone(), record("v2"), now)
        .await
        .unwrap();
    let next = take(s, now, 10).await;
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].desired_hash.as_deref(), Some("v1"));
    s.delivered(next[0].clone(), record("v1"), now)
        .await
        .unwrap();
    // Once v2 has landed (the record says so), going back to v1 is a job again.
    assert!(s.enqueue(job("6", "a", "v2")).await.unwrap());
    let v2 = take(s, now, 10).await.remove(0);
    s.delivered(v2, record("v2"), now).await.unwrap();
    assert!(s.enqueue(job("7", "a", "v1")).await.unwrap());
}

pub(super) async fn a_new_leader_takes_over_what_was_running(s: &dyn SyncStore) {
    let now = ts("2026-12-01T10:00:00Z");
    s.enqueue(job("1", "a", "v1")).await.unwrap();
    s.enqueue(job("2", "b", "v1")).await.unwrap();
    let running = take(s, now, 10).await;
    assert_eq!(running.len(), 2);
    // The replica sending them dies; meanwhile a changes again.
    s.enqueue(job("3", "a", "v2")).await.unwrap();
    assert_eq!(s.stats("ops".into()).await.unwrap().pending, 3);
    // The next leader starts by taking back what was running.
    s.recover().await.unwrap();
    let mut again = take(s, now, 10).await;
    again.sort_by(|x, y| x.appointment_id.cmp(&y.appointment_id));
    let got: Vec<(&str, &str, &str)> = again
        .iter()
        .map(|j| {
            (
                j.appointment_id.as_str(),
                j.id.as_str(),
                j.message_id.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [("a", "3", "msg_3"), ("b", "2", "msg_2")],
        "b resent as the same message; a only in its newer state"
    );
}

pub(super) async fn only_the_latest_dead_letter_of_an_appointment_is_kept(s: &dyn SyncStore) {
    let now = ts("2026-12-01T10:00:00Z");
    for (id, hash) in [("1", "v1"), ("2", "v2")] {
        s.enqueue(job(id, "a", hash)).await.unwrap();
        let j = take(s, now, 1).await.remove(0);
        s.failed(j, None, "HTTP 410".into(), now).await.unwrap();
    }
    s.enqueue(job("3", "b", "v1")).await.unwrap();
    let j = take(s, now, 1).await.remove(0);
    s.failed(j, None, "HTTP 410".into(), now).await.unwrap();
    let mut ids: Vec<String> = s
        .dead_letters()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.job.id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["2", "3"], "a's older letter is obsolete");
}

pub(super) async fn a_newer_state_follows_an_unconfirmed_one_whatever_the_record_says(
    s: &dyn SyncStore,
) {
    let now = ts("2026-12-01T10:00:00Z");
    let v1 = SinkRecord {
        delivered: Some("v1".into()),
        external_id: None,
    };
    s.enqueue(job("0", "a", "v1")).await.unwrap();
    let first = take(s, now, 10).await.remove(0);
    s.delivered(first, v1, now).await.unwrap();
    // v2 is being sent when a goes back to v1; v2 times out (it may have landed).
    s.enqueue(job("1", "a", "v2")).await.unwrap();
    let v2 = take(s, now, 10).await.remove(0);
    s.enqueue(job("2", "a", "v1")).await.unwrap();
    s.failed(v2, Some(now), "no answer in 10 s".into(), now)
        .await
        .unwrap();
    let next = take(s, now, 10).await;
    assert_eq!(next.len(), 1, "v2 is superseded");
    assert_eq!(next[0].desired_hash.as_deref(), Some("v1"));
    assert!(next[0].must_send, "the record's v1 may be stale");
}

pub(super) async fn changes_somebody_waits_for_go_before_the_sweep(s: &dyn SyncStore) {
    let now = ts("2026-12-01T10:00:00Z");
    // The sweep queued many (here two, older); then a booking arrives.
    for (id, appointment) in [("s1", "a"), ("s2", "b")] {
        let mut j = job(id, appointment, "v1");
        j.lane = Lane::Sweep;
        j.created_at = ts("2026-12-01T09:00:00Z");
        j.not_before = j.created_at;
        s.enqueue(j).await.unwrap();
    }
    s.enqueue(job("f1", "c", "v1")).await.unwrap();
    let first = take(s, now, 1).await;
    assert_eq!(first[0].id, "f1", "the fast lane first");
    assert_eq!(first[0].lane, Lane::Fast);
    let stats = s.stats("ops".into()).await.unwrap();
    assert_eq!(stats.oldest_sweep, Some(ts("2026-12-01T09:00:00Z")));
    assert_eq!(stats.oldest_fast, Some(now));
    // A change to an appointment the sweep queued moves it to the fast lane.
    s.enqueue(job("f2", "b", "v2")).await.unwrap();
    let next = take(s, now, 1).await;
    assert_eq!((next[0].id.as_str(), next[0].lane), ("f2", Lane::Fast));
    let last = take(s, now, 10).await;
    assert_eq!(last.len(), 1);
    assert_eq!((last[0].id.as_str(), last[0].lane), ("s1", Lane::Sweep));
}

pub(super) async fn a_job_whose_lease_ends_goes_back_to_the_queue(s: &dyn SyncStore) {
    let now = ts("2026-12-01T10:00:00Z");
    let soon = ts("2026-12-01T10:00:30Z");
    s.enqueue(job("1", "a", "v1")).await.unwrap();
    let j = s.lease("ops".into(), now, 1, soon).await.unwrap().remove(0);
    assert!(take(s, now, 1).await.is_empty(), "running under its lease");
    // Renewed: still its own.
    let renewed = ts("2026-12-01T10:01:00Z");
    assert!(s.renew(j.clone(), renewed).await.unwrap());
    assert!(take(s, ts("2026-12-01T10:00:45Z"), 1).await.is_empty());
    // Its delivery's writes never land (a Redis blip, a dead replica): once the lease ends,
    // the job goes again, as the same message.
    let again = take(s, ts("2026-12-01T10:01:01Z"), 1).await;
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].id.as_str(), again[0].message_id.as_str()),
        ("1", "msg_1")
    );
    s.delivered(
        again[0].clone(),
        SinkRecord {
            delivered: Some("v1".into()),
            external_id: None,
        },
        now,
    )
    .await
    .unwrap();
    assert!(
        !s.renew(j, renewed).await.unwrap(),
        "done: nothing to renew"
    );
    assert_eq!(s.stats("ops".into()).await.unwrap().pending, 0);
}

pub(super) async fn a_later_success_clears_the_dead_letter(s: &dyn SyncStore) {
    let now = ts("2026-12-01T10:00:00Z");
    s.enqueue(job("1", "a", "v1")).await.unwrap();
    let j = take(s, now, 1).await.remove(0);
    s.failed(j, None, "HTTP 500".into(), now).await.unwrap();
    assert_eq!(s.stats("ops".into()).await.unwrap().dead, 1);
    // The receiver is back; the appointment changes and its new state lands.
    s.enqueue(job("2", "a", "v2")).await.unwrap();
    let j = take(s, now, 1).await.remove(0);
    let record = SinkRecord {
        delivered: Some("v2".into()),
        external_id: None,
    };
    s.delivered(j, record, now).await.unwrap();
    assert_eq!(s.stats("ops".into()).await.unwrap().dead, 0);
    assert!(s.dead_letters().await.unwrap().is_empty());
    assert_eq!(s.revive("1".into(), now).await.unwrap(), None);
}

pub(super) async fn a_removal_that_must_be_sent_is_queued_against_an_empty_record(
    s: &dyn SyncStore,
) {
    let now = ts("2026-12-01T10:00:00Z");
    let removal = |id: &str| {
        let mut j = job(id, "a", "");
        j.desired = None;
        j.desired_hash = None;
        j
    };
    // Nothing known of a: a plain removal is nothing to do...
    assert!(!s.enqueue(removal("1")).await.unwrap());
    // ...but after a restart with no state, the sink may hold it: that one goes.
    let mut must = removal("2");
    must.must_send = true;
    assert!(s.enqueue(must).await.unwrap());
    let j = take(s, now, 1).await.remove(0);
    assert!(j.must_send && j.desired.is_none());
}
