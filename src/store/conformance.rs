//! What every [`Store`] must do, as one suite run against each backend (the memory store in
//! unit tests, Redis in the replica tests). Keys are fresh per run, times near the real now.
//! Leases are short here (300 ms) so that "lapses when not renewed" takes a moment to show.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::*;

const DR: &str = "4150cd20de8a470aa570a852859ac87e";
const LEASE: Duration = Duration::from_millis(300);
const NO_WAIT: Duration = Duration::from_millis(20);

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

fn booked(id: &str, now: Timestamp, start: i64, end: i64, life: i64) -> Booked {
    Booked {
        appointment_id: id.into(),
        practitioner: DR.parse().expect("a practitioner id"),
        start: at(now, start),
        end: at(now, end),
        expires_at: at(now, life),
        pending: None,
    }
}

/// Minutes far in the future, so no other run's data overlaps.
fn far() -> i64 {
    60 * 24 * 365 * 5 + i64::from(fastrand::u16(..)) * 600
}

/// Runs every check; panics on the first broken promise.
pub async fn run(s: &dyn Store) {
    let run = uuid::Uuid::new_v4().simple().to_string();
    locks(s, &run).await;
    holds(s, &run).await;
    claims(s, &run).await;
    overlay(s, &run).await;
    idempotency(s, &run).await;
    moves(s, &run).await;
    waitlist(s, &run).await;
}

async fn locks(s: &dyn Store, run: &str) {
    let key = format!("practitioner:{run}");
    let first = s.lock(key.clone(), LEASE, NO_WAIT).await.expect("granted");
    let busy = s.lock(key.clone(), LEASE, NO_WAIT).await;
    assert!(
        matches!(busy, Err(StoreError::Busy(_))),
        "not granted twice"
    );
    // Renewed, it outlives its first lease…
    for _ in 0..3 {
        tokio::time::sleep(LEASE / 2).await;
        assert!(s.renew(first.clone(), LEASE).await.unwrap(), "renewed");
    }
    let busy = s.lock(key.clone(), LEASE, NO_WAIT).await;
    assert!(
        matches!(busy, Err(StoreError::Busy(_))),
        "renewed, still held"
    );
    s.unlock(first.clone()).await.unwrap();
    assert!(
        !s.renew(first, LEASE).await.unwrap(),
        "released: not renewable"
    );
    // …and without renewal it lapses, and a waiter gets it.
    let second = s.lock(key.clone(), LEASE, NO_WAIT).await.expect("granted");
    let third = s
        .lock(key.clone(), LEASE, LEASE * 3)
        .await
        .expect("granted once the second lapsed");
    assert!(
        !s.renew(second.clone(), LEASE).await.unwrap(),
        "a lapsed lease taken by another is not renewable"
    );
    s.unlock(second).await.unwrap();
    let busy = s.lock(key.clone(), LEASE, NO_WAIT).await;
    assert!(
        matches!(busy, Err(StoreError::Busy(_))),
        "a lapsed holder's unlock leaves the new holder's lock alone"
    );
    s.unlock(third).await.unwrap();
    let again = s
        .lock(key, LEASE, NO_WAIT)
        .await
        .expect("granted after release");
    s.unlock(again).await.unwrap();
}

async fn holds(s: &dyn Store, run: &str) {
    let now = Timestamp::now();
    let id = |n: &str| format!("{run}-{n}");
    let base = far();
    let max = 10;
    let a = hold(&id("a"), now, base, base + 30, 10);
    assert_eq!(
        s.put_hold(a.clone(), max, now).await.unwrap(),
        HoldOutcome::Created
    );
    let b = hold(&id("b"), now, base + 15, base + 45, 10);
    assert_eq!(
        s.put_hold(b, max, now).await.unwrap(),
        HoldOutcome::Held,
        "overlap"
    );
    let c = hold(&id("c"), now, base + 30, base + 60, 10);
    assert_eq!(
        s.put_hold(c, max, now).await.unwrap(),
        HoldOutcome::Created,
        "back to back"
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
    let d = hold(&id("d"), later, base, base + 15, 20);
    assert_eq!(
        s.put_hold(d, max, later).await.unwrap(),
        HoldOutcome::Created
    );
    // A fresh booking blocks holds until it is removed.
    s.put_booked(booked(&id("appt"), now, base + 100, base + 130, 5))
        .await
        .unwrap();
    let over = hold(&id("e"), now, base + 110, base + 120, 10);
    assert_eq!(
        s.put_hold(over.clone(), max, now).await.unwrap(),
        HoldOutcome::Booked
    );
    s.remove_booked(id("appt")).await.unwrap();
    assert_eq!(
        s.put_hold(over, max, now).await.unwrap(),
        HoldOutcome::Created
    );
    // Each patient (or, without one, each subject) holds at most `max` at once.
    let mine = |n: &str, offset: i64, patient: Option<&str>, owner: &str| Hold {
        patient: patient.map(str::to_owned),
        owner: owner.into(),
        ..hold(&id(n), now, base + 200 + offset, base + 215 + offset, 10)
    };
    let p = format!("patient-{run}");
    let staff = format!("staff-{run}");
    assert_eq!(
        s.put_hold(mine("p1", 0, Some(&p), &p), 2, now)
            .await
            .unwrap(),
        HoldOutcome::Created
    );
    assert_eq!(
        s.put_hold(mine("p2", 30, Some(&p), &staff), 2, now)
            .await
            .unwrap(),
        HoldOutcome::Created,
        "staff holding for the patient"
    );
    assert_eq!(
        s.put_hold(mine("p3", 60, Some(&p), &p), 2, now)
            .await
            .unwrap(),
        HoldOutcome::LimitReached,
        "the staff hold counts for the patient"
    );
    assert_eq!(
        s.put_hold(mine("s1", 90, None, &staff), 2, now)
            .await
            .unwrap(),
        HoldOutcome::Created,
        "without a patient it counts for the subject"
    );
    s.remove_hold(id("p1")).await.unwrap();
    assert_eq!(
        s.put_hold(mine("p3", 60, Some(&p), &p), 2, now)
            .await
            .unwrap(),
        HoldOutcome::Created,
        "released, the allowance is back"
    );
}

async fn claims(s: &dyn Store, run: &str) {
    let now = Timestamp::now();
    let base = far();
    let id = |n: &str| format!("{run}-{n}");
    let claim = |identifier: &str, start: i64, hold_id: Option<String>| Claim {
        booked: Booked {
            pending: Some(Pending {
                identifier: id(identifier),
                patient: "p".into(),
                since: now,
                hold_owner: "user-1".into(),
                hold_id: None,
            }),
            ..booked(
                &Pending::entry_id(&id(identifier)),
                now,
                base + start,
                base + start + 30,
                5,
            )
        },
        hold_owner: "user-1".into(),
        hold_id,
    };
    let lock = s
        .lock(id("clinician"), LEASE, NO_WAIT)
        .await
        .expect("granted");
    let fences = vec![lock.clone()];
    assert_eq!(
        s.claim(claim("one", 0, None), fences.clone(), now)
            .await
            .unwrap(),
        ClaimOutcome::Claimed
    );
    assert_eq!(
        s.claim(claim("one", 500, None), fences.clone(), now)
            .await
            .unwrap(),
        ClaimOutcome::Unconfirmed,
        "one identifier, one claim"
    );
    assert_eq!(
        s.claim(claim("two", 15, None), fences.clone(), now)
            .await
            .unwrap(),
        ClaimOutcome::Booked,
        "a claim in flight blocks overlapping ones"
    );
    let over = hold(&id("h-over"), now, base + 10, base + 20, 10);
    assert_eq!(
        s.put_hold(over, 10, now).await.unwrap(),
        HoldOutcome::Booked,
        "and holds"
    );
    // Holds: the caller's own does not stand in its way; another's, or another of its own
    // than the one named, does.
    let theirs = Hold {
        owner: "user-2".into(),
        ..hold(&id("h2"), now, base + 100, base + 130, 10)
    };
    s.put_hold(theirs, 10, now).await.unwrap();
    assert_eq!(
        s.claim(claim("three", 100, None), fences.clone(), now)
            .await
            .unwrap(),
        ClaimOutcome::Held
    );
    s.put_hold(hold(&id("h1"), now, base + 200, base + 230, 10), 10, now)
        .await
        .unwrap();
    assert_eq!(
        s.claim(claim("four", 200, Some(id("other"))), fences.clone(), now)
            .await
            .unwrap(),
        ClaimOutcome::Held
    );
    assert_eq!(
        s.claim(claim("four", 200, Some(id("h1"))), fences.clone(), now)
            .await
            .unwrap(),
        ClaimOutcome::Claimed
    );
    // A claim is kept alive while its request runs, and never brought back once given back.
    let mut kept = claim("one", 0, None).booked;
    kept.expires_at = at(now, 20);
    assert!(s.refresh_booked(kept.clone()).await.unwrap());
    let mine = |all: Vec<Booked>| {
        all.into_iter()
            .find(|b| b.appointment_id == kept.appointment_id)
    };
    assert!(
        mine(s.booked(at(now, 10)).await.unwrap()).is_some(),
        "refreshed"
    );
    s.remove_booked(kept.appointment_id.clone()).await.unwrap();
    assert!(
        !s.refresh_booked(kept.clone()).await.unwrap(),
        "not recreated"
    );
    assert!(mine(s.booked(now).await.unwrap()).is_none());
    // Fencing: once the lock lapsed and went to another, the old holder writes nothing.
    tokio::time::sleep(LEASE + LEASE / 2).await;
    let other = s
        .lock(id("clinician"), LEASE, NO_WAIT)
        .await
        .expect("lapsed");
    assert_eq!(
        s.claim(claim("five", 300, None), fences, now)
            .await
            .unwrap(),
        ClaimOutcome::Fenced
    );
    assert_eq!(
        s.claim(claim("five", 300, None), vec![other.clone()], now)
            .await
            .unwrap(),
        ClaimOutcome::Claimed,
        "nothing was written by the fenced claim"
    );
    s.unlock(other).await.unwrap();
}

async fn overlay(s: &dyn Store, run: &str) {
    let now = Timestamp::now();
    let id = format!("{run}-moved");
    s.put_booked(booked(&id, now, 1000, 1030, 5)).await.unwrap();
    let moved = booked(&id, now, 2000, 2030, 5);
    s.put_booked(moved.clone()).await.unwrap();
    let mine = |all: Vec<Booked>| -> Vec<Booked> {
        all.into_iter().filter(|b| b.appointment_id == id).collect()
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
        lease: LEASE,
        record: Duration::from_secs(86_400),
    };
    let key = format!("{run}-k");
    let Begin::Started(first) = s.begin(key.clone(), "f1".into(), ttl, now).await.unwrap() else {
        panic!("a new key starts");
    };
    assert_eq!(
        s.begin(key.clone(), "f1".into(), ttl, now).await.unwrap(),
        Begin::InProgress
    );
    assert_eq!(
        s.begin(key.clone(), "f2".into(), ttl, now).await.unwrap(),
        Begin::Mismatch
    );
    let progress = serde_json::json!({"created": "a1", "list": []});
    assert!(
        s.progress(key.clone(), first.clone(), progress.clone())
            .await
            .unwrap()
    );
    // Renewed, the attempt keeps its key past its first lease.
    for _ in 0..3 {
        tokio::time::sleep(LEASE / 2).await;
        assert!(s.renew(first.clone(), LEASE).await.unwrap());
    }
    assert_eq!(
        s.begin(key.clone(), "f1".into(), ttl, now).await.unwrap(),
        Begin::InProgress
    );
    // Not renewed (its replica died), the key resumes within a lease, with the progress.
    tokio::time::sleep(LEASE + LEASE / 2).await;
    let second = match s.begin(key.clone(), "f1".into(), ttl, now).await.unwrap() {
        Begin::Resume(owner, p) => {
            assert_eq!(p, progress);
            owner
        }
        other => panic!("expected a resume, got {other:?}"),
    };
    // The late first attempt can no longer write anything under the key.
    let late = StoredResponse {
        status: 409,
        body: b"{}".to_vec(),
        location: None,
    };
    assert!(!s.finish(key.clone(), first.clone(), late).await.unwrap());
    assert!(!s.interrupt(key.clone(), first.clone()).await.unwrap());
    assert!(
        !s.progress(key.clone(), first, serde_json::json!(1))
            .await
            .unwrap()
    );
    assert_eq!(
        s.begin(key.clone(), "f1".into(), ttl, now).await.unwrap(),
        Begin::InProgress,
        "the second attempt runs"
    );
    // Interrupted by its owner, the key resumes at once.
    assert!(s.interrupt(key.clone(), second).await.unwrap());
    let Begin::Resume(third, _) = s.begin(key.clone(), "f1".into(), ttl, now).await.unwrap() else {
        panic!("an interrupted key resumes");
    };
    let answer = StoredResponse {
        status: 201,
        body: b"{\"id\":\"a1\"}".to_vec(),
        location: Some("/v1/appointments/a1".into()),
    };
    assert!(s.finish(key.clone(), third, answer.clone()).await.unwrap());
    assert_eq!(
        s.begin(key.clone(), "f1".into(), ttl, now).await.unwrap(),
        Begin::Replay(answer)
    );
    // Progress and answers of keys never begun are not invented.
    let ghost = format!("{run}-ghost");
    let nobody = Lease {
        key: format!("{run}-nobody"),
        token: "t".into(),
        asked: tokio::time::Instant::now(),
    };
    assert!(
        !s.progress(ghost.clone(), nobody.clone(), serde_json::json!(1))
            .await
            .unwrap()
    );
    assert!(!s.interrupt(ghost.clone(), nobody).await.unwrap());
    assert!(matches!(
        s.begin(ghost, "f".into(), ttl, now).await.unwrap(),
        Begin::Started(_)
    ));
}

async fn moves(s: &dyn Store, run: &str) {
    let m = Move {
        old: format!("{run}-old"),
        identifier: format!("{run}-new"),
        since: Timestamp::now(),
        attempts: 0,
        next_try: None,
    };
    let other = Move {
        identifier: format!("{run}-other"),
        ..m.clone()
    };
    s.put_move(m.clone()).await.unwrap();
    s.put_move(other.clone()).await.unwrap();
    let retried = Move {
        attempts: 1,
        ..m.clone()
    };
    s.put_move(retried.clone()).await.unwrap();
    let all = s.moves().await.unwrap();
    assert!(
        all.contains(&retried) && all.contains(&other),
        "one per replacement"
    );
    assert!(!all.contains(&m), "updated in place");
    s.remove_move(m.clone()).await.unwrap();
    let all = s.moves().await.unwrap();
    assert!(!all.contains(&retried) && all.contains(&other));
    s.remove_move(other).await.unwrap();
}

async fn waitlist(s: &dyn Store, run: &str) {
    use super::waitlist::Entry;
    let now = Timestamp::now();
    let entry = |n: &str| Entry {
        id: format!("{run}-{n}"),
        owner: "user-1".into(),
        patient: format!("{run}-patient"),
        reason_code: "FLUP".into(),
        duration: 30,
        patient_state: "CA".into(),
        modality: None,
        practitioner_ids: vec![DR.into()],
        location_id: None,
        earliest_date: None,
        latest_date: jiff::civil::date(2030, 1, 1),
        before_appointment_id: None,
        before_start: None,
        created_at: now,
        passed: vec![],
    };
    assert!(s.add_entry(entry("a"), 2).await.unwrap());
    assert!(s.add_entry(entry("b"), 2).await.unwrap());
    assert!(
        !s.add_entry(entry("c"), 2).await.unwrap(),
        "two per patient"
    );
    let mut other = entry("x");
    other.patient = format!("{run}-other");
    assert!(
        s.add_entry(other.clone(), 2).await.unwrap(),
        "another patient's allowance is their own"
    );
    let a = entry("a");
    assert!(s.pass_slot(a.id.clone(), "dr@1".into()).await.unwrap());
    assert!(s.pass_slot(a.id.clone(), "dr@2".into()).await.unwrap());
    assert!(
        s.pass_slot(a.id.clone(), "dr@1".into()).await.unwrap(),
        "listed once"
    );
    let stored = |all: Vec<Entry>, id: &str| all.into_iter().find(|e| e.id == id);
    let now_a = stored(s.entries().await.unwrap(), &a.id).expect("a is there");
    assert_eq!(now_a.passed, vec!["dr@1".to_owned(), "dr@2".to_owned()]);
    assert_eq!(
        now_a.practitioner_ids,
        vec![DR.to_owned()],
        "the rest of the entry is untouched"
    );
    assert!(s.remove_entry(a.id.clone()).await.unwrap());
    assert!(!s.remove_entry(a.id.clone()).await.unwrap(), "once");
    assert!(
        !s.pass_slot(a.id.clone(), "dr@3".into()).await.unwrap(),
        "never brought back"
    );
    assert_eq!(stored(s.entries().await.unwrap(), &a.id), None);
    assert!(s.add_entry(entry("c"), 2).await.unwrap(), "room again");
    assert_eq!(
        stored(s.entries().await.unwrap(), &format!("{run}-c"))
            .expect("c is there")
            .passed,
        Vec::<String>::new(),
        "a new entry starts with nothing passed"
    );
    offers(s, run, now, &entry("b"), &a).await;
    for e in s
        .entries()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.patient == a.patient || e.patient == other.patient)
    {
        s.remove_entry(e.id).await.unwrap();
    }
}

/// Offers: made only for an entry that is there and has none live; accepted atomically
/// (Open -> Accepting) so that neither a lapse nor a decline can end one being booked.
async fn offers(
    s: &dyn Store,
    run: &str,
    now: Timestamp,
    b: &super::waitlist::Entry,
    gone: &super::waitlist::Entry,
) {
    use super::waitlist::{Offer, OfferStatus};
    let offer = |n: &str, entry: &super::waitlist::Entry| Offer {
        id: format!("{run}-offer-{n}"),
        entry_id: entry.id.clone(),
        patient: entry.patient.clone(),
        slot_id: "s1.x.y".into(),
        hold_id: "h".into(),
        practitioner: DR.into(),
        location_id: "l".into(),
        start: at(now, 60),
        end: at(now, 90),
        modality: crate::rules::model::Modality::Telehealth,
        made_at: now,
        expires_at: at(now, 15),
        status: OfferStatus::Open,
        notified: false,
        accepting: None,
    };
    let listed = |all: Vec<Offer>, id: &str| all.into_iter().find(|o| o.id == id);
    assert!(
        !s.put_offer(offer("orphan", gone)).await.unwrap(),
        "no offer for an entry that is gone"
    );
    assert_eq!(
        listed(s.offers().await.unwrap(), &format!("{run}-offer-orphan")),
        None
    );
    let first = offer("1", b);
    assert!(s.put_offer(first.clone()).await.unwrap());
    assert!(
        !s.put_offer(offer("2", b)).await.unwrap(),
        "one live offer per entry"
    );
    s.offer_notified(first.id.clone()).await.unwrap();

    // Accepting: only from Open, once per booking; a lapse or a decline cannot end it.
    let (mine, theirs) = (format!("{run}-key-1"), format!("{run}-key-2"));
    let held = s
        .begin_accept(first.id.clone(), mine.clone())
        .await
        .unwrap()
        .expect("open, so now accepting");
    assert_eq!(held.status, OfferStatus::Accepting);
    assert_eq!(held.accepting.as_deref(), Some(mine.as_str()));
    assert!(held.notified, "the rest of the offer is kept");
    assert_eq!(
        s.begin_accept(first.id.clone(), mine.clone())
            .await
            .unwrap()
            .map(|o| o.status),
        Some(OfferStatus::Accepting),
        "the same booking again (a retry) holds it still"
    );
    assert_eq!(
        s.begin_accept(first.id.clone(), theirs.clone())
            .await
            .unwrap(),
        None,
        "another booking does not"
    );
    for to in [OfferStatus::Expired, OfferStatus::Declined] {
        assert_eq!(
            s.settle_offer(first.id.clone(), OfferStatus::Open, to)
                .await
                .unwrap(),
            None,
            "not open while being accepted"
        );
    }
    assert!(
        !s.put_offer(offer("2", b)).await.unwrap(),
        "an offer being accepted is live"
    );
    // Nothing booked: it is open again, and another booking may take it.
    assert!(
        s.settle_offer(first.id.clone(), OfferStatus::Accepting, OfferStatus::Open)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        s.begin_accept(first.id.clone(), theirs.clone())
            .await
            .unwrap()
            .is_some()
    );
    let accepted = s
        .settle_offer(
            first.id.clone(),
            OfferStatus::Accepting,
            OfferStatus::Accepted,
        )
        .await
        .unwrap()
        .expect("accepting, so accepted");
    assert_eq!(accepted.status, OfferStatus::Accepted);
    assert_eq!(accepted.accepting.as_deref(), Some(theirs.as_str()));
    assert_eq!(
        s.settle_offer(first.id.clone(), OfferStatus::Open, OfferStatus::Declined)
            .await
            .unwrap(),
        None,
        "one settlement wins"
    );
    assert_eq!(
        s.begin_accept(first.id.clone(), theirs.clone())
            .await
            .unwrap(),
        None,
        "an accepted offer is not held again"
    );
    // Ended, so the entry may be offered again.
    let second = offer("2", b);
    assert!(s.put_offer(second.clone()).await.unwrap());
    assert!(
        s.settle_offer(second.id.clone(), OfferStatus::Open, OfferStatus::Expired)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        s.begin_accept(second.id.clone(), mine.clone())
            .await
            .unwrap(),
        None,
        "a lapsed offer cannot be accepted"
    );
    assert!(s.put_offer(offer("3", b)).await.unwrap());
    s.settle_offer(
        format!("{run}-offer-3"),
        OfferStatus::Open,
        OfferStatus::Declined,
    )
    .await
    .unwrap();

    s.prune_offers(at(now, 10)).await.unwrap();
    assert!(
        listed(s.offers().await.unwrap(), &first.id).is_some(),
        "not ended yet"
    );
    s.prune_offers(at(now, 20)).await.unwrap();
    let left = s.offers().await.unwrap();
    for n in ["1", "2", "3"] {
        assert_eq!(
            listed(left.clone(), &format!("{run}-offer-{n}")),
            None,
            "pruned"
        );
    }
}
