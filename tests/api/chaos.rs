//! Chaos: two replicas on one Redis, and a Canvas whose weather changes every two seconds (calm,
//! slow up to 3 x the time-out, failing with 503 + Retry-After, committing late, losing
//! answers, or all at once). Twenty bookers go after five slots for a minute (holding first
//! half the time, cancelling some of what they get), and retry with their keys as a client
//! should. Afterwards Canvas must show no clinician time booked twice, every 201 must be exactly
//! one Canvas appointment, no key may have made two, every appointment made must be some key's
//! 201, and no lock, running key, hold or unconfirmed claim may be left in Redis.
//!
//! It runs for `CHAOS_SECONDS` (default 60) and stops by itself; `.ci/run` runs it on its own,
//! after the other tests, so that its load does not disturb their timing:
//! `cargo test --test api chaos -- --ignored`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use slotgate::sandbox::Faults;

use crate::booking::{ELIJAH, GRACE, OLIVIA, SOFIA, booking, week_of};
use crate::helpers::{TestApp, key};
use crate::seed::*;
use crate::slow_canvas::Clinic;

const CHAOS: &str = "[canvas]\ntimeout_ms = 1000\nconnect_timeout_ms = 500\nretry_base_ms = 50\n\
    write_settle_seconds = 5\ncircuit_open_seconds = 1\nrequests_per_second = 1000\n\
    [state]\nlock_lease_ms = 600\nrecovery_interval_ms = 250\n\
    [rate_limit]\nbrowse_per_minute = 1000000\nbook_per_minute = 1000000\n";

/// One two-second spell of Canvas weather.
fn weather() -> Faults {
    let calm = Faults::default();
    let slow = Faults {
        latency_jitter_ms: 3_000,
        ..calm.clone()
    };
    let failing = Faults {
        error_rate: 0.3,
        retry_after_seconds: 1,
        ..calm.clone()
    };
    let late = Faults {
        late_commit_rate: 0.6,
        late_commit_max_ms: 3_000,
        ..calm.clone()
    };
    let lossy = Faults {
        drop_rate: 0.2,
        ..calm.clone()
    };
    let storm = Faults {
        latency_jitter_ms: 1_500,
        error_rate: 0.1,
        retry_after_seconds: 1,
        late_commit_rate: 0.3,
        late_commit_max_ms: 3_000,
        drop_rate: 0.1,
        ..calm.clone()
    };
    let all = [calm, slow, failing, late, lossy, storm];
    all[fastrand::usize(..all.len())].clone()
}

#[derive(Default)]
struct Ledger {
    /// Each key that answered 201, with the appointment it named.
    booked: BTreeMap<String, String>,
    /// Appointments cancelled through slotgate (200), or replaced by a reschedule (201).
    cancelled: BTreeSet<String>,
    rescheduled: usize,
    answers: BTreeMap<String, usize>,
}

/// Posts with one key until a definitive answer (2xx or a 4xx other than "still running"), or
/// `give_up`; the last answer.
async fn settle(
    app: &TestApp,
    path: &str,
    token: &str,
    body: &Value,
    k: &str,
    give_up: Instant,
    ledger: &Mutex<Ledger>,
) -> Option<(u16, Value)> {
    loop {
        let r = app.post_json(path, token, body, Some(k)).await;
        let status = r.status().as_u16();
        let answer: Value = r.json().await.unwrap_or(Value::Null);
        let code = answer["code"]
            .as_str()
            .map_or(status.to_string(), str::to_owned);
        *ledger.lock().unwrap().answers.entry(code).or_default() += 1;
        let running = status == 409 && answer["code"] == "request_in_progress";
        if !(status >= 500 || status == 429 || running) {
            return Some((status, answer));
        }
        if Instant::now() > give_up {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(fastrand::u64(50..400))).await;
    }
}

async fn booker(c: &Clinic, n: usize, slots: &[Value], until: Instant, ledger: &Mutex<Ledger>) {
    let patient = [SOFIA, ELIJAH, GRACE, OLIVIA][n % 4];
    // Retries go on past the storm until the key has its answer (Canvas is calm by then).
    let give_up = until + Duration::from_secs(30);
    while Instant::now() < until {
        let app = if fastrand::bool() { c.a() } else { c.b() };
        let token = app.patient_token(patient);
        let slot = &slots[fastrand::usize(..slots.len())];
        let mut body = booking(slot, patient);
        let mut hold = None;
        if fastrand::bool() {
            let r = app
                .post_json(
                    "/v1/holds",
                    &token,
                    &json!({"slot_id": slot["slot_id"]}),
                    None,
                )
                .await;
            if r.status() == 201 {
                let h: Value = r.json().await.unwrap();
                body["hold_id"] = h["hold_id"].clone();
                hold = h["hold_id"].as_str().map(str::to_owned);
            }
        }
        let k = key();
        let answer = settle(app, "/v1/appointments", &token, &body, &k, give_up, ledger).await;
        let made = match answer {
            Some((201, a)) => a["id"].as_str().map(str::to_owned),
            _ => None,
        };
        if let Some(id) = &made {
            ledger.lock().unwrap().booked.insert(k.clone(), id.clone());
        }
        if let (Some(h), None) = (&hold, &made) {
            let _ = app.delete(&format!("/v1/holds/{h}"), &token).await;
        }
        let Some(id) = made else {
            // A patient refused (the time taken, their limit reached) looks again a moment later.
            tokio::time::sleep(Duration::from_millis(fastrand::u64(50..300))).await;
            continue;
        };
        // Half move to another of the five (a few tries, as a patient would pick again), and
        // every booking is let go again a moment later, so that the slots keep changing hands.
        let mut current = id;
        if fastrand::bool() {
            let path = format!("/v1/appointments/{current}/reschedule");
            for _ in 0..3 {
                let to = &slots[fastrand::usize(..slots.len())];
                let body = json!({"slot_id": to["slot_id"], "patient_state": "CA"});
                let k = key();
                let answer = settle(app, &path, &token, &body, &k, give_up, ledger).await;
                if let Some((201, new)) = answer {
                    let new_id = new["id"].as_str().unwrap_or_default().to_owned();
                    let mut ledger = ledger.lock().unwrap();
                    ledger.booked.insert(k, new_id.clone());
                    ledger
                        .cancelled
                        .insert(std::mem::replace(&mut current, new_id));
                    ledger.rescheduled += 1;
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..1_000))).await;
        let path = format!("/v1/appointments/{current}/cancel");
        let answer = settle(app, &path, &token, &json!({}), &key(), give_up, ledger).await;
        if let Some((200, _)) = answer {
            ledger.lock().unwrap().cancelled.insert(current);
        }
    }
}

#[tokio::test]
#[ignore = "a minute of load: .ci/run runs it on its own"]
async fn twenty_bookers_five_slots_two_replicas_and_a_stormy_canvas() {
    let seconds = std::env::var("CHAOS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let c = Clinic::start(true, CHAOS).await;
    let token = c.a().staff_token();
    let slots: Vec<Value> = week_of(c.a(), &token, OKAFOR, "telehealth")
        .await
        .into_iter()
        .take(5)
        .collect();
    assert_eq!(slots.len(), 5);
    let before: BTreeSet<String> = c
        .sandbox
        .control()
        .appointments()
        .into_iter()
        .filter_map(|a| a.id)
        .collect();
    let ledger = Mutex::new(Ledger::default());
    let until = Instant::now() + Duration::from_secs(seconds);
    let storm = async {
        while Instant::now() < until {
            c.sandbox.control().set_faults(weather());
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        c.sandbox.control().set_faults(Faults::default());
    };
    let bookers = futures::future::join_all((0..20).map(|n| booker(&c, n, &slots, until, &ledger)));
    futures::join!(storm, bookers);
    c.sandbox.control().set_faults(Faults::default());
    // Whatever was left unconfirmed settles: found by the recovery, or lapsed; and every
    // reschedule whose old appointment Canvas refused to cancel in the storm is finished (its
    // retries back off to at most a minute apart).
    tokio::time::sleep(Duration::from_secs(7)).await;
    let redis = redis::Client::open(c._redis.as_ref().unwrap().url()).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let moves: Vec<String> = redis::cmd("KEYS")
        .arg("*moves")
        .query_async(&mut conn)
        .await
        .unwrap();
    let drained = Instant::now() + Duration::from_secs(90);
    for m in moves {
        loop {
            let left: i64 = redis::cmd("HLEN")
                .arg(&m)
                .query_async(&mut conn)
                .await
                .unwrap();
            if left == 0 {
                break;
            }
            assert!(
                Instant::now() < drained,
                "{left} reschedules never finished"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    let ledger = ledger.into_inner().unwrap();
    eprintln!(
        "chaos: {} bookings ({} by rescheduling), {} cancelled or replaced, answers {:?}",
        ledger.booked.len(),
        ledger.rescheduled,
        ledger.cancelled.len(),
        ledger.answers
    );
    assert!(
        !ledger.booked.is_empty(),
        "some bookings got through the weather"
    );

    let made: Vec<_> = c
        .sandbox
        .control()
        .appointments()
        .into_iter()
        .filter(|a| a.id.as_ref().is_some_and(|id| !before.contains(id)))
        .collect();
    // No clinician time booked twice.
    let active: Vec<_> = made.iter().filter(|a| a.status.blocks_time()).collect();
    for (i, x) in active.iter().enumerate() {
        for y in &active[i + 1..] {
            let same = x.participant_id("Practitioner") == y.participant_id("Practitioner");
            let at = |t: Option<slotgate::canvas::fhir::Instant>| t.map(|t| t.timestamp);
            let overlap = at(x.start) < at(y.end) && at(y.start) < at(x.end);
            assert!(
                !(same && overlap),
                "double booked: {:?} and {:?}",
                x.id,
                y.id
            );
        }
    }
    // No key made two, and every appointment made is some key's 201.
    let mut by_identifier = BTreeMap::<String, usize>::new();
    for a in &made {
        for i in a
            .identifier
            .iter()
            .filter(|i| i.system.as_deref() == Some("urn:slotgate:booking"))
        {
            *by_identifier
                .entry(i.value.clone().unwrap_or_default())
                .or_default() += 1;
        }
    }
    assert!(by_identifier.values().all(|n| *n == 1), "{by_identifier:?}");
    let answered: BTreeSet<&String> = ledger.booked.values().collect();
    assert_eq!(
        answered.len(),
        ledger.booked.len(),
        "each 201 names its own appointment"
    );
    for a in &made {
        let id = a.id.as_ref().unwrap();
        assert!(
            answered.contains(id),
            "{id} was made but no key was answered with it"
        );
    }
    // Every 201 is exactly one Canvas appointment, active unless cancelled through slotgate.
    for id in &answered {
        let a = made
            .iter()
            .find(|a| a.id.as_ref() == Some(*id))
            .unwrap_or_else(|| panic!("{id} is not at Canvas"));
        assert_eq!(
            a.status.blocks_time(),
            !ledger.cancelled.contains(*id),
            "{id}: {:?}",
            a.status
        );
    }
    // Nothing left behind in Redis.
    let leases: Vec<String> = redis::cmd("KEYS")
        .arg("*lock:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    let running: Vec<String> = redis::cmd("KEYS")
        .arg("*idem-run:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        leases.is_empty() && running.is_empty(),
        "{leases:?} {running:?}"
    );
    let holds: Vec<String> = redis::cmd("KEYS")
        .arg("*holds")
        .query_async(&mut conn)
        .await
        .unwrap();
    for h in holds {
        let left: Vec<String> = redis::cmd("HKEYS")
            .arg(&h)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(left.is_empty(), "holds left: {left:?}");
    }
    let booked: Vec<String> = redis::cmd("KEYS")
        .arg("*booked")
        .query_async(&mut conn)
        .await
        .unwrap();
    let now = jiff::Timestamp::now().as_millisecond();
    for b in booked {
        let entries: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(&b)
            .query_async(&mut conn)
            .await
            .unwrap();
        // Expired entries are dropped lazily; only live ones count.
        let pending: Vec<_> = entries
            .iter()
            .filter(|(f, v)| {
                let e = serde_json::from_str::<Value>(v)
                    .ok()
                    .and_then(|v| v["e"].as_i64());
                f.starts_with("pending:") && e.is_some_and(|e| e > now)
            })
            .collect();
        assert!(pending.is_empty(), "unconfirmed claims left: {pending:?}");
    }
}
