//! What every [`Store`] must do, as one suite run against each backend (the memory store in
//! unit tests, Redis in the replica tests). Keys are fresh per run, times near the real now.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::*;

const DR: &str = "4150cd20de8a470aa570a852859ac87e";

fn at(now: Timestamp, minutes: i64) -> Timestamp {
    now + SignedDuration::from_mins(minutes)
}

fn hold(id: &str, now: Timestamp, start: i64, end: i64, life: i64) -> Hold {
    Hold {
        id: id.into(),
        owner: "user-1".into(),
        patient: None,
        slot_id: "s1.x.y".into(),
        practitioner: DR.parse().expect("a practitioner id"),
        start: at(now, start),
        end: at(now, end),
        expires_at: at(now, life),
    }
}

/// Runs every check; panics on the first broken promise.
pub async fn run(s: &dyn Store) {
    let run = uuid::Uuid::new_v4().simple().to_string();
    locks(s, &run).await;
    holds(s, &run).await;
    overlay(s, &run).await;
    idempotency(s, &run).await;
}

async fn locks(s: &dyn Store, run: &str) {
    let key = format!("practitioner:{run}");
    let (long, short) = (Duration::from_secs(30), Duration::from_millis(60));
    let first = s.lock(key.clone(), long, short).await.expect("granted");
    assert!(
        matches!(
            s.lock(key.clone(), long, short).await,
            Err(StoreError::Busy(_))
        ),
        "a held lock is not granted twice"
    );
    s.unlock(first).await.expect("released");
    let again = s
        .lock(key.clone(), long, short)
        .await
        .expect("granted after release");
    s.unlock(again).await.expect("released");
}

async fn holds(s: &dyn Store, run: &str) {
    let now = Timestamp::now();
    let id = |n: &str| format!("{run}-{n}");
    // Far in the future, so no other run's data overlaps.
    let base = 60 * 24 * 365 * 5 + i64::from(fastrand::u16(..)) * 600;
    let a = hold(&id("a"), now, base, base + 30, 10);
    assert_eq!(
        s.put_hold(a.clone(), now).await.unwrap(),
        HoldOutcome::Created
    );
    assert_eq!(
        s.put_hold(hold(&id("b"), now, base + 15, base + 45, 10), now)
            .await
            .unwrap(),
        HoldOutcome::Held,
        "overlapping holds conflict"
    );
    assert_eq!(
        s.put_hold(hold(&id("c"), now, base + 30, base + 60, 10), now)
            .await
            .unwrap(),
        HoldOutcome::Created,
        "back to back is fine"
    );
    assert_eq!(s.hold(id("a"), now).await.unwrap(), Some(a.clone()));
    assert!(s.holds(now).await.unwrap().iter().any(|h| h.id == id("a")));
    assert!(s.remove_hold(id("c")).await.unwrap());
    assert!(!s.remove_hold(id("c")).await.unwrap());
    // After a's life its time is free and it is gone.
    let later = at(now, 11);
    assert_eq!(s.hold(id("a"), later).await.unwrap(), None);
    assert!(
        !s.holds(later)
            .await
            .unwrap()
            .iter()
            .any(|h| h.id == id("a"))
    );
    assert_eq!(
        s.put_hold(hold(&id("d"), later, base, base + 15, 20), later)
            .await
            .unwrap(),
        HoldOutcome::Created
    );
    // A fresh booking blocks holds until it is removed.
    let booked = Booked {
        appointment_id: id("appt"),
        practitioner: DR.parse().expect("a practitioner id"),
        start: at(now, base + 100),
        end: at(now, base + 130),
        expires_at: at(now, 5),
    };
    s.put_booked(booked.clone()).await.unwrap();
    let over = hold(&id("e"), now, base + 110, base + 120, 10);
    assert_eq!(
        s.put_hold(over.clone(), now).await.unwrap(),
        HoldOutcome::Booked
    );
    s.remove_booked(id("appt")).await.unwrap();
    assert_eq!(s.put_hold(over, now).await.unwrap(), HoldOutcome::Created);
}

async fn overlay(s: &dyn Store, run: &str) {
    let now = Timestamp::now();
    let entry = |start: i64, life: i64| Booked {
        appointment_id: format!("{run}-moved"),
        practitioner: DR.parse().expect("a practitioner id"),
        start: at(now, start),
        end: at(now, start + 30),
        expires_at: at(now, life),
    };
    s.put_booked(entry(1000, 5)).await.unwrap();
    let moved = entry(2000, 5);
    s.put_booked(moved.clone()).await.unwrap();
    let mine = |all: Vec<Booked>| -> Vec<Booked> {
        all.into_iter()
            .filter(|b| b.appointment_id == moved.appointment_id)
            .collect()
    };
    assert_eq!(
        mine(s.booked(now).await.unwrap()),
        std::slice::from_ref(&moved),
        "one entry per appointment"
    );
    assert!(
        mine(s.booked(at(now, 6)).await.unwrap()).is_empty(),
        "gone after expiry"
    );
}

async fn idempotency(s: &dyn Store, run: &str) {
    let now = Timestamp::now();
    let ttl = IdempotencyTtl {
        marker: Duration::from_secs(60),
        record: Duration::from_secs(86_400),
    };
    let key = format!("{run}-k");
    assert_eq!(
        s.begin(key.clone(), "f1".into(), ttl, now).await.unwrap(),
        Begin::Started
    );
    assert_eq!(
        s.begin(key.clone(), "f1".into(), ttl, now).await.unwrap(),
        Begin::InProgress
    );
    assert_eq!(
        s.begin(key.clone(), "f2".into(), ttl, now).await.unwrap(),
        Begin::Mismatch
    );
    s.progress(
        key.clone(),
        serde_json::json!({"created": "a1", "list": []}),
    )
    .await
    .unwrap();
    // The marker protects the key for a minute, then the request is presumed dead.
    assert_eq!(
        s.begin(
            key.clone(),
            "f1".into(),
            ttl,
            now + SignedDuration::from_secs(61)
        )
        .await
        .unwrap(),
        Begin::Resume(serde_json::json!({"created": "a1", "list": []}))
    );
    s.interrupt(key.clone()).await.unwrap();
    assert!(matches!(
        s.begin(
            key.clone(),
            "f1".into(),
            ttl,
            now + SignedDuration::from_secs(62)
        )
        .await
        .unwrap(),
        Begin::Resume(_)
    ));
    let answer = StoredResponse {
        status: 201,
        body: b"{\"id\":\"a1\"}".to_vec(),
        location: Some("/v1/appointments/a1".into()),
    };
    s.finish(key.clone(), answer.clone(), now).await.unwrap();
    assert_eq!(
        s.begin(key.clone(), "f1".into(), ttl, now).await.unwrap(),
        Begin::Replay(answer)
    );
    // Progress and answers of keys never begun are not invented.
    let ghost = format!("{run}-ghost");
    s.progress(ghost.clone(), serde_json::json!(1))
        .await
        .unwrap();
    s.interrupt(ghost.clone()).await.unwrap();
    assert_eq!(
        s.begin(ghost, "f".into(), ttl, now).await.unwrap(),
        Begin::Started
    );
}
