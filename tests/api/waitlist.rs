//! The waitlist: an opening (cancelled in Canvas, or through slotgate) is offered within seconds
//! to the oldest entry it suits under every booking rule, held for it, announced to the
//! webhook sinks at their PHI level; declined or lapsed, it passes on; accepted, it books (or
//! reschedules) exactly once, on any replica, across a restart.

use std::time::Duration;

use serde_json::{Value, json};
use slotgate::sandbox::SandboxControl;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::availability::OPEN_WINDOW;
use crate::booking::{ELIJAH, GRACE, OLIVIA, SOFIA, booking, slots_for};
use crate::helpers::{TestApp, assert_problem, book_in_canvas, key, spawn_app_with};
use crate::replicas::{RedisServer, clinic, creates};
use crate::seed::*;
use crate::sync::{CANVAS_SECRET, HOOK_SECRET, canvas_put, eventually};

pub const JAMES: &str = "dd29985f53784d5eb45ee0a157c5f866"; // CA
pub const LUCAS: &str = "e43a5a99d2524f3b9905679312409024"; // TX

/// The matcher looks twice a second; notifications wake it at once anyway.
pub const QUICK: &str = "[waitlist]\nscan_interval_ms = 500\n";

/// Okafor's 30-minute telehealth follow-ups starting on one day at Oakland, where she works:
/// a waitlist entry's dates are the clinic's local dates.
pub async fn okafor_day(app: &TestApp, day: jiff::civil::Date) -> Vec<Value> {
    let me = app.patient_token(JAMES);
    let day = day.to_string();
    slots_for(
        app,
        &me,
        &[
            ("reason", "FLUP"),
            ("duration", "30"),
            ("state", "CA"),
            ("modality", "telehealth"),
            ("practitioner", OKAFOR),
            ("start", &day),
            ("end", &day),
            ("tz", "America/Los_Angeles"),
            ("limit", "1000"),
        ],
    )
    .await
}

/// The app's sandbox and its URL, a day Okafor works (and the day after), and that day filled
/// with visits booked in Canvas itself (each visit's id and start).
pub async fn okafor_full_day(
    app: &TestApp,
) -> (
    SandboxControl,
    String,
    jiff::civil::Date,
    Vec<(String, jiff::Timestamp)>,
) {
    let (canvas, canvas_url) = (
        app.sandbox.clone().unwrap(),
        app.sandbox_url.clone().unwrap(),
    );
    let day = working_days(app).await;
    let filled = fill_okafor(app, &canvas, &canvas_url, day).await;
    (canvas, canvas_url, day, filled)
}

/// A day, at least three days out, on which Okafor works, and the day after too.
pub async fn working_days(app: &TestApp) -> jiff::civil::Date {
    for n in 3..12 {
        if okafor_day(app, days(n)).await.len() >= 8
            && okafor_day(app, days(n + 1)).await.len() >= 8
        {
            return days(n);
        }
    }
    panic!("Okafor works no two days in a row");
}

/// Front-desk staff fill the day in Canvas's own UI (James, back to back); slotgate's cached
/// availability is purged so that nothing of the day is offered any more. The appointments, in
/// time order.
pub async fn fill_okafor(
    app: &TestApp,
    canvas: &SandboxControl,
    canvas_url: &str,
    day: jiff::civil::Date,
) -> Vec<(String, jiff::Timestamp)> {
    let mut made = Vec::new();
    let mut free_from = jiff::Timestamp::MIN;
    for slot in okafor_day(app, day).await {
        let start = at(&slot["start"]);
        if start < free_from {
            continue;
        }
        free_from = at(&slot["end"]);
        made.push((
            book_in_canvas(canvas, canvas_url, &slot, JAMES, OKAFOR).await,
            start,
        ));
    }
    let admin = app.token(None, "scheduling.admin");
    let r = app
        .post_json("/v1/admin/cache/purge", &admin, &json!({}), None)
        .await;
    assert!(r.status().is_success(), "purged: {}", r.status());
    assert_eq!(
        okafor_day(app, day).await,
        Vec::<Value>::new(),
        "the day is full"
    );
    made
}

pub fn entry(
    patient: &str,
    reason: &str,
    duration: u32,
    modality: &str,
    from: jiff::civil::Date,
    to: jiff::civil::Date,
) -> Value {
    json!({"patient_id": patient, "reason_code": reason, "duration": duration, "patient_state": "CA",
        "modality": modality, "practitioner_ids": [OKAFOR],
        "earliest_date": from.to_string(), "latest_date": to.to_string()})
}

pub async fn join(app: &TestApp, body: &Value) -> Value {
    let patient = body["patient_id"].as_str().unwrap();
    let r = app
        .post_json("/v1/waitlist", &app.patient_token(patient), body, None)
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let made: Value = r.json().await.unwrap();
    assert_eq!(made["status"], "waiting");
    made
}

pub async fn entries(app: &TestApp, patient: &str) -> Vec<Value> {
    let r = app
        .get(
            &format!("/v1/waitlist?patient_id={patient}"),
            Some(&app.staff_token()),
        )
        .await;
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["entries"]
        .as_array()
        .unwrap()
        .clone()
}

/// The patient's open offer, if any.
pub async fn offer_of(app: &TestApp, patient: &str) -> Option<Value> {
    entries(app, patient)
        .await
        .into_iter()
        .find_map(|e| e.get("offer").cloned())
}

pub async fn answer(
    app: &TestApp,
    patient: &str,
    offer: &str,
    verb: &str,
    key: Option<&str>,
) -> reqwest::Response {
    app.post_json(
        &format!("/v1/waitlist/offers/{offer}/{verb}"),
        &app.patient_token(patient),
        &json!({}),
        key,
    )
    .await
}

pub async fn receiver() -> MockServer {
    let hooks = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&hooks)
        .await;
    hooks
}

/// Three webhook sinks on one receiver, one per PHI level, and Canvas's notifications.
pub fn sinks(hooks: &MockServer) -> String {
    let mut out = format!(
        "[sync]\ncanvas_webhook_secret = \"{CANVAS_SECRET}\"\nreconcile_interval_seconds = 3600\nretry_base_ms = 50\n"
    );
    for level in ["busy", "neutral", "full"] {
        // Patient data goes only where a business associate agreement covers it.
        let baa = if level == "full" { "baa = true\n" } else { "" };
        out.push_str(&format!(
            "[[sync.sinks]]\nname = \"{level}\"\nkind = \"webhook\"\nurl = \"{}/{level}\"\nsecret = \"{HOOK_SECRET}\"\nphi = \"{level}\"\n{baa}",
            hooks.uri()
        ));
    }
    out
}

/// The `waitlist.offer` messages each sink got: (path, request, body).
pub async fn offers_sent(hooks: &MockServer) -> Vec<(String, wiremock::Request, Value)> {
    hooks
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| {
            let body: Value = serde_json::from_slice(&r.body).ok()?;
            (body["type"] == "waitlist.offer").then(|| (r.url.path().to_owned(), r, body))
        })
        .collect()
}

pub fn at(v: &Value) -> jiff::Timestamp {
    v.as_str().unwrap().parse().unwrap()
}

fn metric(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l.contains(label))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn an_opening_in_canvas_goes_to_the_oldest_suitable_entry_and_on_when_declined() {
    let hooks = receiver().await;
    let app = spawn_app_with(&[OPEN_WINDOW, QUICK, &sinks(&hooks)]).await;
    let (canvas, canvas_url, day, filled) = okafor_full_day(&app).await;
    let next = day.tomorrow().unwrap();
    fill_okafor(&app, &canvas, &canvas_url, next).await;
    // In line, oldest first: four who that opening does not suit, then Sofia, then Elijah.
    let mut texan = entry(LUCAS, "FLUP", 30, "telehealth", day, day);
    texan["patient_state"] = json!("TX"); // Okafor is licensed in CA alone
    join(&app, &texan).await;
    join(&app, &entry(GRACE, "DERM", 20, "in_person", day, day)).await; // not Okafor's
    join(&app, &entry(JAMES, "INIV", 60, "telehealth", day, day)).await; // too long
    join(&app, &entry(OLIVIA, "FLUP", 30, "telehealth", next, next)).await; // another day
    let sofia = join(&app, &entry(SOFIA, "FLUP", 30, "telehealth", day, day)).await;
    join(&app, &entry(ELIJAH, "FLUP", 30, "telehealth", day, day)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for p in [LUCAS, GRACE, JAMES, OLIVIA, SOFIA, ELIJAH] {
        assert_eq!(offer_of(&app, p).await, None, "nothing is open yet");
    }

    // The patient in the middle of the day cancels by phone: staff cancel it in Canvas.
    let (cancelled, opened) = filled[filled.len() / 2].clone();
    canvas_put(&app, &cancelled, |b| b["status"] = json!("cancelled")).await;
    eventually("Sofia is offered the opening", || async {
        offer_of(&app, SOFIA).await.is_some()
    })
    .await;
    let offer = offer_of(&app, SOFIA).await.unwrap();
    assert_eq!(at(&offer["slot"]["start"]), opened);
    assert_eq!(offer["slot"]["practitioner"]["id"], OKAFOR);
    assert_eq!(offer["slot"]["modality"], "telehealth");
    let mine = &entries(&app, SOFIA).await[0];
    assert_eq!(mine["id"], sofia["id"]);
    assert_eq!(mine["status"], "offered");
    for p in [LUCAS, GRACE, JAMES, OLIVIA, ELIJAH] {
        assert_eq!(offer_of(&app, p).await, None, "{p} is not offered it");
    }
    // Held for her: nobody else is shown it.
    assert!(
        !okafor_day(&app, day)
            .await
            .iter()
            .any(|s| at(&s["start"]) == opened),
        "an offered slot is held"
    );
    // Every sink hears of it, signed, at its PHI level.
    eventually("three sinks told", || async {
        offers_sent(&hooks).await.len() >= 3
    })
    .await;
    let sent = offers_sent(&hooks).await;
    let id = offer["id"].as_str().unwrap();
    let key_bytes = slotgate::config::sync::webhook_key(HOOK_SECRET).unwrap();
    for (to, request, body) in &sent {
        let header = |h: &str| request.headers.get(h).unwrap().to_str().unwrap().to_owned();
        let ts = header("webhook-timestamp");
        assert_eq!(
            slotgate::sync::signature::verify(
                &key_bytes,
                Some(&header("webhook-id")),
                Some(&ts),
                Some(&header("webhook-signature")),
                &request.body,
                ts.parse().unwrap(),
            ),
            Ok(()),
            "{to} signed"
        );
        let data = &body["data"];
        assert_eq!(data["offer_id"], id);
        assert_eq!(data["waitlist_id"], sofia["id"]);
        assert_eq!(at(&data["slot"]["start"]), opened);
        assert_eq!(data["expires_at"], offer["expires_at"]);
        match to.as_str() {
            "/busy" => {
                assert_eq!(data["slot"].get("practitioner"), None);
                assert_eq!(data["slot"].get("location"), None);
                assert_eq!(data.get("patient_id"), None);
            }
            "/neutral" => {
                assert_eq!(data["slot"]["practitioner"]["id"], OKAFOR);
                assert_eq!(data["slot"]["location"]["id"], OAKLAND);
                assert_eq!(data["slot"]["modality"], "telehealth");
                assert_eq!(data.get("patient_id"), None);
            }
            "/full" => assert_eq!(data["patient_id"], SOFIA),
            other => panic!("a message to {other}"),
        }
        let text = String::from_utf8_lossy(&request.body);
        assert!(
            !text.contains("Sofia") && !text.contains("Patel"),
            "no names: {text}"
        );
    }
    let paths: std::collections::BTreeSet<_> = sent.iter().map(|(p, _, _)| p.clone()).collect();
    assert_eq!(paths.len(), 3, "one message per sink: {paths:?}");

    // Another patient cannot see or answer it.
    assert_problem(
        answer(&app, ELIJAH, id, "accept", Some(&key())).await,
        404,
        "not_found",
    )
    .await;
    // Sofia declines: it passes to Elijah, next in line; she waits on, never offered it again.
    assert_eq!(answer(&app, SOFIA, id, "decline", None).await.status(), 204);
    assert_problem(
        answer(&app, SOFIA, id, "decline", None).await,
        409,
        "offer_expired",
    )
    .await;
    eventually("Elijah is offered it", || async {
        offer_of(&app, ELIJAH).await.is_some()
    })
    .await;
    let second = offer_of(&app, ELIJAH).await.unwrap();
    assert_eq!(at(&second["slot"]["start"]), opened);
    assert_ne!(second["id"], offer["id"]);
    let mine = &entries(&app, SOFIA).await[0];
    assert_eq!(mine["status"], "waiting");
    assert_eq!(mine.get("offer"), None);

    // Elijah accepts: booked once, and a retry with the key answers the same.
    let second = second["id"].as_str().unwrap();
    let k = key();
    let r = answer(&app, ELIJAH, second, "accept", Some(&k)).await;
    assert_eq!(r.status(), 201);
    let made: Value = r.json().await.unwrap();
    assert_eq!(at(&made["start"]), opened);
    assert_eq!(made["patient_id"], ELIJAH);
    let again: Value = answer(&app, ELIJAH, second, "accept", Some(&k))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["id"], made["id"]);
    let booked = canvas
        .appointments()
        .into_iter()
        .filter(|a| a.status.blocks_time() && a.start.map(|s| s.timestamp) == Some(opened))
        .count();
    assert_eq!(booked, 1, "one appointment in the opening");
    assert!(entries(&app, ELIJAH).await.is_empty(), "his entry is done");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        offer_of(&app, SOFIA).await,
        None,
        "a declined slot is not offered again"
    );

    // Sofia gives up: she leaves the line.
    let leave = app
        .delete(
            &format!("/v1/waitlist/{}", sofia["id"].as_str().unwrap()),
            &app.patient_token(SOFIA),
        )
        .await;
    assert_eq!(leave.status(), 204);
    assert!(entries(&app, SOFIA).await.is_empty());

    let text = app.get("/metrics", None).await.text().await.unwrap();
    let offers = "slotgate_waitlist_offers_total";
    assert!(metric(&text, offers, "outcome=\"made\"") >= 2.0, "{text}");
    assert_eq!(metric(&text, offers, "outcome=\"declined\""), 1.0);
    assert_eq!(metric(&text, offers, "outcome=\"accepted\""), 1.0);
    assert!(metric(&text, "slotgate_waitlist_offer_to_booked_seconds_count", "") >= 1.0);
    eventually("four wait on", || async {
        let text = app.get("/metrics", None).await.text().await.unwrap();
        metric(&text, "slotgate_waitlist_entries", "") == 4.0
    })
    .await;
}

#[tokio::test]
async fn a_cancellation_through_slotgate_offers_an_earlier_visit_and_accepting_moves_it() {
    let app = spawn_app_with(&[OPEN_WINDOW, QUICK]).await;
    let day = working_days(&app).await;
    let slots = okafor_day(&app, day).await;
    // Elijah has the day's first visit, Sofia the next one free.
    let first = &slots[0];
    let later = slots
        .iter()
        .find(|s| at(&s["start"]) >= at(&first["end"]))
        .unwrap();
    let book = |slot: &Value, patient: &str| {
        let (slot, patient) = (slot.clone(), patient.to_owned());
        let app = &app;
        async move {
            let r = app
                .post_json(
                    "/v1/appointments",
                    &app.patient_token(&patient),
                    &booking(&slot, &patient),
                    Some(&key()),
                )
                .await;
            assert_eq!(r.status(), 201);
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let elijahs = book(first, ELIJAH).await;
    let sofias = book(later, SOFIA).await;
    // Only a visit of her own may be replaced.
    let mut wrong = entry(SOFIA, "FLUP", 30, "telehealth", day, day);
    wrong["before_appointment_id"] = json!(elijahs);
    let r = app
        .post_json("/v1/waitlist", &app.patient_token(SOFIA), &wrong, None)
        .await;
    let problem = assert_problem(r, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "before_appointment_id");
    let mut earlier = entry(SOFIA, "FLUP", 30, "telehealth", day, day);
    earlier["before_appointment_id"] = json!(sofias);
    join(&app, &earlier).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(offer_of(&app, SOFIA).await, None, "nothing earlier is free");

    let cancel = app
        .post_json(
            &format!("/v1/appointments/{elijahs}/cancel"),
            &app.patient_token(ELIJAH),
            &json!({}),
            Some(&key()),
        )
        .await;
    assert!(cancel.status().is_success(), "{}", cancel.status());
    eventually("Sofia is offered the earlier time", || async {
        offer_of(&app, SOFIA).await.is_some()
    })
    .await;
    let offer = offer_of(&app, SOFIA).await.unwrap();
    assert_eq!(at(&offer["slot"]["start"]), at(&first["start"]));
    let r = answer(
        &app,
        SOFIA,
        offer["id"].as_str().unwrap(),
        "accept",
        Some(&key()),
    )
    .await;
    assert_eq!(r.status(), 201);
    let moved: Value = r.json().await.unwrap();
    assert_eq!(at(&moved["start"]), at(&first["start"]));
    assert_ne!(moved["id"].as_str().unwrap(), sofias);
    let old: Value = app
        .get(
            &format!("/v1/appointments/{sofias}"),
            Some(&app.patient_token(SOFIA)),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(old["status"], "cancelled", "the later visit is given up");
    assert!(entries(&app, SOFIA).await.is_empty());
}

#[tokio::test]
async fn an_offer_nobody_answers_passes_to_the_next_in_line_when_it_lapses() {
    // The shortest offer there is: one minute.
    let app = spawn_app_with(&[
        OPEN_WINDOW,
        QUICK,
        &format!(
            "[sync]\ncanvas_webhook_secret = \"{CANVAS_SECRET}\"\n[waitlist]\noffer_minutes = 1\n"
        ),
    ])
    .await;
    let (_, _, day, filled) = okafor_full_day(&app).await;
    join(&app, &entry(SOFIA, "FLUP", 30, "telehealth", day, day)).await;
    join(&app, &entry(ELIJAH, "FLUP", 30, "telehealth", day, day)).await;
    let (cancelled, opened) = filled[1].clone();
    canvas_put(&app, &cancelled, |b| b["status"] = json!("cancelled")).await;
    eventually("Sofia is offered it", || async {
        offer_of(&app, SOFIA).await.is_some()
    })
    .await;
    let first = offer_of(&app, SOFIA).await.unwrap();
    assert_eq!(at(&first["slot"]["start"]), opened);
    let expires: jiff::Timestamp = first["expires_at"].as_str().unwrap().parse().unwrap();
    let left = expires.duration_since(jiff::Timestamp::now());
    assert!(left.as_secs() <= 60 && left.as_secs() >= 50, "{left:?}");
    // Still hers until it lapses...
    tokio::time::sleep(Duration::from_secs(40)).await;
    assert_eq!(offer_of(&app, ELIJAH).await, None);
    // ...then Elijah's.
    let mut passed = false;
    for _ in 0..60 {
        if offer_of(&app, ELIJAH).await.is_some() {
            passed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(passed, "the lapsed offer passed on");
    assert!(jiff::Timestamp::now() >= expires, "not before it lapsed");
    assert_eq!(
        at(&offer_of(&app, ELIJAH).await.unwrap()["slot"]["start"]),
        opened
    );
    let late = answer(
        &app,
        SOFIA,
        first["id"].as_str().unwrap(),
        "accept",
        Some(&key()),
    )
    .await;
    assert_problem(late, 409, "offer_expired").await;
    assert_eq!(entries(&app, SOFIA).await[0]["status"], "waiting");
    let text = app.get("/metrics", None).await.text().await.unwrap();
    assert_eq!(
        metric(
            &text,
            "slotgate_waitlist_offers_total",
            "outcome=\"expired\""
        ),
        1.0
    );
}

#[tokio::test]
async fn two_replicas_accept_one_offer_once_and_an_offer_outlives_its_replica() {
    let redis = RedisServer::start();
    let (sandbox, mut apps) = clinic(
        Some(&redis),
        2,
        &format!("[state]\nsync_lease_seconds = 1\n{QUICK}"),
    )
    .await;
    let (canvas, canvas_url) = (sandbox.control(), sandbox.base_url());
    let day = working_days(&apps[0]).await;
    let filled = fill_okafor(&apps[0], &canvas, &canvas_url, day).await;
    // The purge reaches the other replica too.
    eventually("the day is full on both", || async {
        okafor_day(&apps[1], day).await.is_empty()
    })
    .await;
    join(&apps[0], &entry(SOFIA, "FLUP", 30, "telehealth", day, day)).await;
    join(&apps[1], &entry(ELIJAH, "FLUP", 30, "telehealth", day, day)).await;

    // Staff cancel one visit through one replica; whichever leads makes the offer.
    let staff = apps[1].staff_token();
    let cancel = |id: String| {
        let app = &apps[1];
        let staff = staff.clone();
        async move {
            let r = app
                .post_json(
                    &format!("/v1/appointments/{id}/cancel"),
                    &staff,
                    &json!({}),
                    Some(&key()),
                )
                .await;
            assert!(r.status().is_success(), "{}", r.status());
        }
    };
    cancel(filled[2].0.clone()).await;
    eventually("Sofia is offered it, on both replicas", || async {
        let (a, b) = (
            offer_of(&apps[0], SOFIA).await,
            offer_of(&apps[1], SOFIA).await,
        );
        a.is_some() && a == b
    })
    .await;
    let offer = offer_of(&apps[0], SOFIA).await.unwrap();
    assert_eq!(at(&offer["slot"]["start"]), filled[2].1);
    let id = offer["id"].as_str().unwrap();
    // Two accepts at once (a double tap, each with its own key), one per replica.
    let before = creates(&sandbox);
    let (k1, k2) = (key(), key());
    let (one, two) = tokio::join!(
        answer(&apps[0], SOFIA, id, "accept", Some(&k1)),
        answer(&apps[1], SOFIA, id, "accept", Some(&k2)),
    );
    let mut codes = [one.status().as_u16(), two.status().as_u16()];
    codes.sort_unstable();
    assert_eq!(codes, [201, 409], "one books, the other is told it is gone");
    assert_eq!(creates(&sandbox) - before, 1, "one appointment");

    // A second opening goes to Elijah; its replica (the leader, say) stops right after.
    cancel(filled[4].0.clone()).await;
    eventually("Elijah is offered it", || async {
        offer_of(&apps[1], ELIJAH).await.is_some()
    })
    .await;
    let offer = offer_of(&apps[1], ELIJAH).await.unwrap();
    for i in [0, 1] {
        if crate::replicas::leads(&apps[i]).await {
            apps[i].stop().await;
            apps.remove(i);
            break;
        }
    }
    let survivor = &apps[0];
    eventually("the survivor leads", || async {
        crate::replicas::leads(survivor).await
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        offer_of(survivor, ELIJAH).await,
        Some(offer.clone()),
        "the offer stands, once"
    );
    let r = answer(
        survivor,
        ELIJAH,
        offer["id"].as_str().unwrap(),
        "accept",
        Some(&key()),
    )
    .await;
    assert_eq!(r.status(), 201);
    let made: Value = r.json().await.unwrap();
    assert_eq!(at(&made["start"]), filled[4].1);
}
