//! The checks of inbound calendars' read requests: merged per calendar until taken.

use crate::store::sync::{ReadAsk, SyncStore};

pub(super) async fn read_requests_merge_per_calendar_until_taken(s: &dyn SyncStore) {
    let ids = |v: &[&str]| v.iter().map(|e| (*e).to_owned()).collect::<Vec<_>>();
    assert!(s.take_reads().await.unwrap().is_empty());
    // Two pushes naming events, one naming none, on one calendar; a full read on another.
    s.request_read("graph:a".into(), ReadAsk::events(ids(&["e1", "e2"])))
        .await
        .unwrap();
    s.request_read("graph:a".into(), ReadAsk::events(ids(&["e2", "e3"])))
        .await
        .unwrap();
    s.request_read("google:b".into(), ReadAsk::changes())
        .await
        .unwrap();
    s.request_read("google:b".into(), ReadAsk::full())
        .await
        .unwrap();
    s.request_read("google:b".into(), ReadAsk::changes())
        .await
        .unwrap();
    let mut taken = s.take_reads().await.unwrap();
    taken.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        taken,
        [
            ("google:b".to_owned(), ReadAsk::full()),
            (
                "graph:a".to_owned(),
                ReadAsk::events(ids(&["e1", "e2", "e3"]))
            ),
        ]
    );
    assert!(taken[1].1.events_only(), "named events alone answer it");
    assert!(s.take_reads().await.unwrap().is_empty(), "taken once");
    // Events and a push naming none: both wanted, so the window is read.
    s.request_read("graph:a".into(), ReadAsk::events(ids(&["e9"])))
        .await
        .unwrap();
    s.request_read("graph:a".into(), ReadAsk::changes())
        .await
        .unwrap();
    let taken = s.take_reads().await.unwrap();
    assert_eq!(taken.len(), 1);
    assert!(taken[0].1.changes && !taken[0].1.full && !taken[0].1.events_only());
}
