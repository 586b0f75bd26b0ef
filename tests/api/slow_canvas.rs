//! The booking guarantees when Canvas is slow, late and failing: no two bookings in one time,
//! one appointment per Idempotency-Key, a create that may have happened hidden from everyone
//! until Canvas shows it, never "nothing was booked" once Canvas booked. Each runs on one
//! replica on the memory store and on two replicas sharing a real Redis, with a 1-second Canvas
//! time-out and short leases, so that any lifetime guessed from Canvas's speed would lapse.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use slotgate::canvas::fhir::AppointmentStatus;
use slotgate::sandbox::{Faults, Sandbox};

use crate::booking::{ELIJAH, SOFIA, a_slot, booking, week_of};
use crate::helpers::{TestApp, assert_problem, key};
use crate::replicas::{RedisServer, clinic, creates};
use crate::seed::*;
use crate::sync::eventually;

/// A Canvas time-out of one second, leases a fraction of it.
pub const SLOW: &str = "[canvas]\ntimeout_ms = 1000\nconnect_timeout_ms = 500\nretry_base_ms = 50\nwrite_settle_seconds = 30\n\
    [state]\nlock_lease_ms = 600\nrecovery_interval_ms = 200\n";

/// One replica on the memory store, or two on Redis: `apps[0]` and `apps[last]` may be one.
pub struct Clinic {
    pub sandbox: Sandbox,
    pub apps: Vec<TestApp>,
    pub _redis: Option<RedisServer>,
}

impl Clinic {
    pub async fn start(shared: bool, extra: &str) -> Clinic {
        let redis = shared.then(RedisServer::start);
        let (sandbox, apps) = clinic(redis.as_ref(), if shared { 2 } else { 1 }, extra).await;
        Clinic {
            sandbox,
            apps,
            _redis: redis,
        }
    }

    pub fn a(&self) -> &TestApp {
        &self.apps[0]
    }

    /// The other replica (the same one on the memory store).
    pub fn b(&self) -> &TestApp {
        &self.apps[self.apps.len() - 1]
    }

    fn faults(&self, faults: Faults) {
        self.sandbox.control().set_faults(faults);
    }

    /// Appointments at Canvas that take the clinician's time at `start`.
    pub fn booked_at(&self, practitioner: &str, start: &Value) -> usize {
        let start: jiff::Timestamp = start.as_str().unwrap().parse().unwrap();
        self.sandbox
            .control()
            .appointments()
            .into_iter()
            .filter(|a| a.status == AppointmentStatus::Booked)
            .filter(|a| a.start.is_some_and(|s| s.timestamp == start))
            .filter(|a| a.participant_id("Practitioner") == Some(practitioner))
            .count()
    }
}

/// Canvas commits creates `commit_ms` after receiving them (answering only then), and answers
/// the next two identifier lookups 503 with `Retry-After: 2`.
fn slow_commit(commit_ms: u64) -> Faults {
    Faults {
        commit_late_ms: commit_ms,
        fail_next_lookups: 2,
        retry_after_seconds: 2,
        ..Faults::default()
    }
}

async fn two_patients_never_share_a_time(shared: bool) {
    let c = Clinic::start(shared, SLOW).await;
    let (sofia, elijah) = (c.a().patient_token(SOFIA), c.b().patient_token(ELIJAH));
    let slot = a_slot(c.a(), &sofia, OKAFOR, 0).await;
    c.sandbox.control().clear_journal();
    // Canvas takes 6 s to commit and then stalls the lookups: the first booking works ~5 s.
    c.faults(slow_commit(6_000));
    let (k, body) = (key(), booking(&slot, SOFIA));
    let first = c.a().post_json("/v1/appointments", &sofia, &body, Some(&k));
    let meanwhile = async {
        // The create timed out at 1 s; the lookup is under way. The time is already hidden:
        // no hold, no offer, no booking for anyone else.
        tokio::time::sleep(Duration::from_millis(1_300)).await;
        let hold = c
            .b()
            .post_json(
                "/v1/holds",
                &elijah,
                &json!({"slot_id": slot["slot_id"]}),
                None,
            )
            .await;
        assert_problem(hold, 409, "slot_unavailable").await;
        let offered = week_of(c.b(), &elijah, OKAFOR, "telehealth").await;
        assert!(!offered.iter().any(|s| s["start"] == slot["start"]));
        let other = c
            .b()
            .post_json(
                "/v1/appointments",
                &elijah,
                &booking(&slot, ELIJAH),
                Some(&key()),
            )
            .await;
        other.status().as_u16()
    };
    let (first, other) = futures::join!(first, meanwhile);
    assert_problem(first, 504, "upstream_timeout").await;
    assert_ne!(
        other, 201,
        "the second patient was not booked into the time"
    );
    // After the first try answered, and before Canvas commits, the time stays taken.
    let again = c
        .b()
        .post_json(
            "/v1/appointments",
            &elijah,
            &booking(&slot, ELIJAH),
            Some(&key()),
        )
        .await;
    assert_problem(again, 409, "slot_unavailable").await;
    // Canvas commits the first create at 6 s; the key's retry then finds it.
    eventually("Canvas commits the first booking", || async {
        c.booked_at(OKAFOR, &slot["start"]) == 1
    })
    .await;
    let retry = c
        .b()
        .post_json("/v1/appointments", &sofia, &booking(&slot, SOFIA), Some(&k))
        .await;
    assert_eq!(retry.status(), 201);
    let later = c
        .a()
        .post_json(
            "/v1/appointments",
            &elijah,
            &booking(&slot, ELIJAH),
            Some(&key()),
        )
        .await;
    assert_problem(later, 409, "slot_unavailable").await;
    assert_eq!(
        c.booked_at(OKAFOR, &slot["start"]),
        1,
        "one booking in the time"
    );
    assert_eq!(creates(&c.sandbox), 1, "one create sent to Canvas");
}

#[tokio::test]
async fn two_patients_never_share_a_time_however_slow_canvas_is_in_one_process() {
    two_patients_never_share_a_time(false).await;
}

#[tokio::test]
async fn two_patients_never_share_a_time_however_slow_canvas_is_across_replicas() {
    two_patients_never_share_a_time(true).await;
}

async fn one_key_makes_one_appointment(shared: bool) {
    let c = Clinic::start(shared, SLOW).await;
    let sofia = c.a().patient_token(SOFIA);
    let slot = a_slot(c.a(), &sofia, OKAFOR, 1).await;
    c.sandbox.control().clear_journal();
    // The first try ends (504) at about 5 s; Canvas commits at 7 s.
    c.faults(slow_commit(7_000));
    let (k, body) = (key(), booking(&slot, SOFIA));
    let started = Instant::now();
    let first = c.a().post_json("/v1/appointments", &sofia, &body, Some(&k));
    // The client gives up waiting and retries with its key on the other replica, twice while
    // the first try still works (well past any fixed marker lifetime of its lease).
    let retries = async {
        let mut statuses = Vec::new();
        for at in [1_500, 3_500] {
            tokio::time::sleep_until((started + Duration::from_millis(at)).into()).await;
            let r = c
                .b()
                .post_json("/v1/appointments", &sofia, &body, Some(&k))
                .await;
            statuses.push(assert_problem(r, 409, "request_in_progress").await["code"].clone());
        }
        statuses
    };
    let (first, retries) = futures::join!(first, retries);
    assert_eq!(retries.len(), 2);
    assert_problem(first, 504, "upstream_timeout").await;
    // Canvas has not shown it yet: the key waits rather than creating again.
    assert_eq!(c.booked_at(OKAFOR, &slot["start"]), 0, "not committed yet");
    let r = c
        .b()
        .post_json("/v1/appointments", &sofia, &body, Some(&k))
        .await;
    assert_problem(r, 504, "upstream_timeout").await;
    eventually("Canvas commits", || async {
        c.booked_at(OKAFOR, &slot["start"]) == 1
    })
    .await;
    let done = c
        .b()
        .post_json("/v1/appointments", &sofia, &body, Some(&k))
        .await;
    assert_eq!(done.status(), 201);
    let made: Value = done.json().await.unwrap();
    let replay = c
        .a()
        .post_json("/v1/appointments", &sofia, &body, Some(&k))
        .await;
    assert_eq!(replay.status(), 201);
    assert_eq!(replay.json::<Value>().await.unwrap()["id"], made["id"]);
    assert_eq!(creates(&c.sandbox), 1, "one create for one key");
    assert_eq!(c.booked_at(OKAFOR, &slot["start"]), 1);
}

#[tokio::test]
async fn one_key_makes_one_appointment_however_slow_canvas_is_in_one_process() {
    one_key_makes_one_appointment(false).await;
}

#[tokio::test]
async fn one_key_makes_one_appointment_however_slow_canvas_is_across_replicas() {
    one_key_makes_one_appointment(true).await;
}

/// Canvas stores the create, then its answer does not say so: the booking is found by its
/// identifier, answered 201, and never sent again.
async fn a_create_canvas_made_without_saying_so_is_found(shared: bool, fault: Faults) {
    let c = Clinic::start(shared, SLOW).await;
    let sofia = c.a().patient_token(SOFIA);
    let slot = a_slot(c.a(), &sofia, OKAFOR, 2).await;
    c.sandbox.control().clear_journal();
    c.faults(fault);
    let (k, body) = (key(), booking(&slot, SOFIA));
    let first = c
        .a()
        .post_json("/v1/appointments", &sofia, &body, Some(&k))
        .await;
    assert_eq!(first.status(), 201, "looked up by its identifier");
    let made: Value = first.json().await.unwrap();
    c.faults(Faults::default());
    let retry = c
        .b()
        .post_json("/v1/appointments", &sofia, &body, Some(&k))
        .await;
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.json::<Value>().await.unwrap()["id"], made["id"]);
    assert_eq!(creates(&c.sandbox), 1);
    assert_eq!(c.booked_at(OKAFOR, &slot["start"]), 1);
}

fn lost_answer() -> Faults {
    Faults {
        drop_next_creates: 1,
        ..Faults::default()
    }
}

fn failed_after_commit() -> Faults {
    Faults {
        fail_after_next_creates: 1,
        ..Faults::default()
    }
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_found_not_repeated_in_one_process() {
    a_create_canvas_made_without_saying_so_is_found(false, lost_answer()).await;
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_found_not_repeated_across_replicas() {
    a_create_canvas_made_without_saying_so_is_found(true, lost_answer()).await;
}

#[tokio::test]
async fn a_create_answered_500_after_canvas_stored_it_is_found_not_repeated() {
    a_create_canvas_made_without_saying_so_is_found(false, failed_after_commit()).await;
    a_create_canvas_made_without_saying_so_is_found(true, failed_after_commit()).await;
}

/// A patient one booking short of the limit, holding the slot: the create is unconfirmed, and
/// the key's retry must wait for Canvas, not count the booking against itself (a 422 stored
/// for 24 hours), and once Canvas shows it the hold is spent.
async fn a_retry_never_refuses_its_own_unconfirmed_booking(shared: bool) {
    let limits =
        format!("{SLOW}[booking]\nmax_active_per_patient = 1\nmax_holds_per_patient = 1\n");
    let c = Clinic::start(shared, &limits).await;
    let sofia = c.a().patient_token(SOFIA);
    let slot = a_slot(c.a(), &sofia, OKAFOR, 4).await;
    let held = c
        .a()
        .post_json(
            "/v1/holds",
            &sofia,
            &json!({"slot_id": slot["slot_id"]}),
            None,
        )
        .await;
    assert_eq!(held.status(), 201);
    let held: Value = held.json().await.unwrap();
    let mut body = booking(&slot, SOFIA);
    body["hold_id"] = held["hold_id"].clone();
    c.faults(Faults {
        commit_late_ms: 3_000,
        ..Faults::default()
    });
    let k = key();
    let first = c
        .a()
        .post_json("/v1/appointments", &sofia, &body, Some(&k))
        .await;
    assert_problem(first, 504, "upstream_timeout").await;
    c.faults(Faults::default());
    let retry = c
        .b()
        .post_json("/v1/appointments", &sofia, &body, Some(&k))
        .await;
    assert_problem(retry, 504, "upstream_timeout").await;
    eventually("Canvas commits", || async {
        c.booked_at(OKAFOR, &slot["start"]) == 1
    })
    .await;
    let done = c
        .b()
        .post_json("/v1/appointments", &sofia, &body, Some(&k))
        .await;
    assert_eq!(done.status(), 201);
    // The hold was spent: Sofia may hold another slot again.
    let next = a_slot(c.a(), &sofia, OKAFOR, 6).await;
    let again = c
        .b()
        .post_json(
            "/v1/holds",
            &sofia,
            &json!({"slot_id": next["slot_id"]}),
            None,
        )
        .await;
    assert_eq!(again.status(), 201, "{}", again.text().await.unwrap());
    assert_eq!(creates(&c.sandbox), 1);
}

#[tokio::test]
async fn a_retry_waits_for_its_own_unconfirmed_booking_in_one_process() {
    a_retry_never_refuses_its_own_unconfirmed_booking(false).await;
}

#[tokio::test]
async fn a_retry_waits_for_its_own_unconfirmed_booking_across_replicas() {
    a_retry_never_refuses_its_own_unconfirmed_booking(true).await;
}

#[tokio::test]
async fn once_canvas_booked_the_answer_is_201_even_when_redis_fails_right_after() {
    let mut c = Clinic::start(true, "[canvas]\ntimeout_ms = 3000\n").await;
    let mut redis = c._redis.take().expect("on Redis");
    let sofia = c.a().patient_token(SOFIA);
    let slot = a_slot(c.a(), &sofia, OKAFOR, 3).await;
    c.sandbox.control().clear_journal();
    // Canvas stores the create at once and answers 1.5 s later; Redis dies meanwhile.
    c.faults(Faults {
        stall_after_create_ms: 1_500,
        ..Faults::default()
    });
    let (k, body) = (key(), booking(&slot, SOFIA));
    let booked = c.a().post_json("/v1/appointments", &sofia, &body, Some(&k));
    let kill = async {
        eventually("Canvas stores the create", || async {
            c.booked_at(OKAFOR, &slot["start"]) == 1
        })
        .await;
        redis.stop();
    };
    let (booked, ()) = futures::join!(booked, kill);
    assert_eq!(
        booked.status(),
        201,
        "not a 503 that says nothing was booked"
    );
    let made: Value = booked.json().await.unwrap();
    // Redis comes back empty (no persistence): the key's retry still answers the booking.
    redis.resume();
    c.faults(Faults::default());
    let mut retry = None;
    for _ in 0..50 {
        let r = c
            .b()
            .post_json("/v1/appointments", &sofia, &body, Some(&k))
            .await;
        if r.status() != 503 {
            retry = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let retry = retry.expect("Redis is back");
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.json::<Value>().await.unwrap()["id"], made["id"]);
    assert_eq!(creates(&c.sandbox), 1);
}

/// `$book` on the FHIR surface, with the Idempotency-Key.
async fn fhir_book(app: &TestApp, token: &str, body: &Value, k: &str) -> reqwest::Response {
    app.http
        .post(format!("{}/fhir/r4/Appointment/$book", app.address))
        .bearer_auth(token)
        .header("Content-Type", "application/fhir+json")
        .header("Idempotency-Key", k)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_fhir_booking_retried_by_its_spent_hold_answers_what_canvas_booked() {
    for shared in [false, true] {
        let c = Clinic::start(shared, SLOW).await;
        let sofia = c.a().patient_token(SOFIA);
        let slot = a_slot(c.a(), &sofia, OKAFOR, 4).await;
        let by_slot = json!({"resourceType": "Parameters", "parameter": [{"name": "appointment-reference",
            "valueReference": {"identifier": {"system": "urn:slotgate:slot-id", "value": slot["slot_id"]}}}]});
        let hold = |app: &TestApp, body: Value| {
            let request = app
                .http
                .post(format!("{}/fhir/r4/Appointment/$hold", app.address))
                .bearer_auth(&sofia)
                .header("Content-Type", "application/fhir+json")
                .body(body.to_string());
            async move { request.send().await.unwrap() }
        };
        let held: Value = hold(c.a(), by_slot).await.json().await.unwrap();
        let hold_id = held["id"].as_str().unwrap().to_owned();
        let by_hold = json!({"resourceType": "Parameters", "parameter": [{"name": "appointment-reference",
            "valueReference": {"reference": format!("Appointment/{hold_id}")}}]});
        // Canvas keeps the create but answers late: slotgate cannot say it booked.
        c.faults(Faults {
            commit_late_ms: 3_000,
            ..Faults::default()
        });
        let k = key();
        let first = fhir_book(c.a(), &sofia, &by_hold, &k).await;
        assert_eq!(first.status(), 504);
        c.faults(Faults::default());
        eventually("Canvas commits", || async {
            c.booked_at(OKAFOR, &slot["start"]) == 1
        })
        .await;
        // Once the booking is confirmed its hold is spent: asking for it again finds nothing.
        eventually("the hold is spent", || async {
            hold(c.b(), by_hold.clone()).await.status() == 404
        })
        .await;
        // The retry by that hold answers the booking Canvas made, not "no such hold".
        let mut done = None;
        for _ in 0..100 {
            let r = fhir_book(c.b(), &sofia, &by_hold, &k).await;
            if r.status() != 504 && r.status() != 409 {
                done = Some(r);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let done = done.expect("the retry answers");
        let status = done.status();
        let body: Value = done.json().await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "booked");
        assert_eq!(c.booked_at(OKAFOR, &slot["start"]), 1, "booked once");
    }
}
