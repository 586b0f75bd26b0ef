//! The checks of the appointments waiting to be planned: each taken once, and what a dead
//! leader had taken comes back to the next one.

use crate::store::sync::SyncStore;

pub(super) async fn pending_appointments_are_taken_once(s: &dyn SyncStore) {
    s.mark_pending(vec!["a".into(), "b".into(), "c".into()])
        .await
        .unwrap();
    s.mark_pending(vec!["a".into()]).await.unwrap();
    let mut taken = s.take_pending(2).await.unwrap();
    assert_eq!(taken.len(), 2);
    taken.extend(s.take_pending(10).await.unwrap());
    taken.sort();
    assert_eq!(taken, ["a", "b", "c"], "each once, however often marked");
    assert!(s.take_pending(10).await.unwrap().is_empty());
}

pub(super) async fn appointments_taken_for_planning_come_back_to_a_new_leader(s: &dyn SyncStore) {
    assert_eq!(s.oldest_unplanned().await.unwrap(), None);
    s.mark_pending(vec!["a".into(), "b".into()]).await.unwrap();
    let marked = s.oldest_unplanned().await.unwrap().expect("an age");
    let taken = s.take_pending(10).await.unwrap();
    assert_eq!(taken.len(), 2);
    assert!(s.take_pending(10).await.unwrap().is_empty());
    assert_eq!(
        s.oldest_unplanned().await.unwrap(),
        Some(marked),
        "taken is not planned"
    );
    // The leader planned a, then died.
    s.planned(vec!["a".into()]).await.unwrap();
    s.recover().await.unwrap();
    assert_eq!(s.take_pending(10).await.unwrap(), ["b"]);
    s.planned(vec!["b".into()]).await.unwrap();
    s.recover().await.unwrap();
    assert!(s.take_pending(10).await.unwrap().is_empty());
    assert_eq!(s.oldest_unplanned().await.unwrap(), None);
}
