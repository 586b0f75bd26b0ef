//! The checks of what each sink holds: records kept, read for many at once, forgotten;
//! and an inbound calendar's state kept beside them.

use super::{job, take, ts};
use crate::store::sync::{Holding, SinkRecord, SyncStore};

pub(super) async fn records_and_calendars_are_kept(s: &dyn SyncStore) {
    let now = ts("2026-12-01T10:00:00Z");
    assert_eq!(s.record("ops".into(), "a".into()).await.unwrap(), None);
    s.enqueue(job("1", "a", "v1")).await.unwrap();
    let j = take(s, now, 1).await.remove(0);
    let record = SinkRecord {
        delivered: Some("v1".into()),
        external_id: Some("evt-1".into()),
    };
    s.delivered(j, record.clone(), now).await.unwrap();
    assert_eq!(
        s.record("ops".into(), "a".into()).await.unwrap(),
        Some(record)
    );
    assert_eq!(s.record("other".into(), "a".into()).await.unwrap(), None);
    assert_eq!(s.known_appointments().await.unwrap(), ["a"]);
    let stats = s.stats("ops".into()).await.unwrap();
    assert_eq!((stats.pending, stats.last_success), (0, Some(now)));
    assert_eq!(s.calendar("google:x".into()).await.unwrap(), None);
    let state =
        serde_json::json!({"sync_token": "t1", "mirrors": {"e1": {"appointment_id": "a1"}}});
    s.put_calendar("google:x".into(), state.clone())
        .await
        .unwrap();
    assert_eq!(s.calendar("google:x".into()).await.unwrap(), Some(state));
    assert_eq!(s.calendar("google:y".into()).await.unwrap(), None);
}

pub(super) async fn records_of_past_appointments_are_forgotten(s: &dyn SyncStore) {
    let now = ts("2026-12-01T10:00:00Z");
    for (id, appointment) in [("1", "a"), ("2", "b")] {
        s.enqueue(job(id, appointment, "v1")).await.unwrap();
        let j = take(s, now, 1).await.remove(0);
        let record = SinkRecord {
            delivered: Some("v1".into()),
            external_id: None,
        };
        s.delivered(j, record, now).await.unwrap();
    }
    s.forget(vec!["a".into()]).await.unwrap();
    assert_eq!(s.known_appointments().await.unwrap(), ["b"]);
    assert_eq!(s.record("ops".into(), "a".into()).await.unwrap(), None);
}

/// More records than one step of Redis's cursor reads: every appointment is still known.
pub(super) async fn every_record_is_known_however_many(s: &dyn SyncStore) {
    let now = ts("2026-12-01T10:00:00Z");
    let ids: Vec<String> = (0..2_500).map(|n| format!("a{n:05}")).collect();
    for (n, id) in ids.iter().enumerate() {
        s.enqueue(job(&n.to_string(), id, "v1")).await.unwrap();
    }
    loop {
        let jobs = take(s, now, 500).await;
        if jobs.is_empty() {
            break;
        }
        for j in jobs {
            let record = SinkRecord {
                delivered: Some("v1".into()),
                external_id: None,
            };
            s.delivered(j, record, now).await.unwrap();
        }
    }
    assert_eq!(s.known_appointments().await.unwrap(), ids);
}

pub(super) async fn what_a_sink_holds_is_read_for_many_at_once(s: &dyn SyncStore) {
    let now = ts("2026-12-01T10:00:00Z");
    s.enqueue(job("1", "a", "v1")).await.unwrap();
    let j = take(s, now, 1).await.remove(0);
    let held = SinkRecord {
        delivered: Some("v1".into()),
        external_id: None,
    };
    s.delivered(j, held, now).await.unwrap();
    s.enqueue(job("2", "b", "v1")).await.unwrap();
    let ids = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
    assert_eq!(
        s.holding("ops".into(), ids.clone()).await.unwrap(),
        [
            Holding::Settled(Some("v1".into())),
            Holding::Moving,
            Holding::Unknown
        ]
    );
    assert_eq!(
        s.holding("other".into(), ids).await.unwrap(),
        [Holding::Unknown, Holding::Unknown, Holding::Unknown]
    );
}
