//! What the waitlist promises when things go wrong: an accept Canvas confirms late keeps its
//! offer until it is settled and, once booked, ends the entry; openings are found on every
//! date an entry allows; an entry whose visit to replace is gone ends rather than being
//! offered times it cannot take; a receiver that refuses an offer is not asked on every pass.

use std::time::Duration;

use serde_json::{Value, json};
use slotgate::sandbox::Faults;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::availability::OPEN_WINDOW;
use crate::booking::{ELIJAH, OLIVIA, SOFIA, booking};
use crate::helpers::{assert_problem, key, spawn_app_with};
use crate::seed::{OKAFOR, OSEI};
use crate::slow_canvas::SLOW;
use crate::sync::{CANVAS_SECRET, HOOK_SECRET, canvas_put, eventually};
use crate::waitlist::{
    QUICK, answer, at, entries, entry, fill_okafor, join, offer_of, offers_sent, okafor_day,
    okafor_full_day,
};

#[tokio::test]
async fn an_accept_canvas_confirms_late_keeps_its_offer_and_its_retry_ends_the_entry() {
    let app = spawn_app_with(&[
        OPEN_WINDOW,
        QUICK,
        SLOW,
        &format!("[sync]\ncanvas_webhook_secret = \"{CANVAS_SECRET}\"\n"),
    ])
    .await;
    let (canvas, _, day, filled) = okafor_full_day(&app).await;
    join(&app, &entry(SOFIA, "FLUP", 30, "telehealth", day, day)).await;
    let (cancelled, opened) = filled[1].clone();
    canvas_put(&app, &cancelled, |b| b["status"] = json!("cancelled")).await;
    eventually("Sofia is offered it", || async {
        offer_of(&app, SOFIA).await.is_some()
    })
    .await;
    let offer = offer_of(&app, SOFIA).await.unwrap();
    let id = offer["id"].as_str().unwrap().to_owned();

    // Canvas takes 6 s to commit the create and then stalls the first lookups: the accept
    // cannot tell whether it booked.
    canvas.set_faults(Faults {
        commit_late_ms: 6_000,
        fail_next_lookups: 2,
        retry_after_seconds: 2,
        ..Faults::default()
    });
    let k = key();
    let first = answer(&app, SOFIA, &id, "accept", Some(&k)).await;
    assert_problem(first, 504, "upstream_timeout").await;
    // Meanwhile the offer is still hers, being accepted: not passed on, not declinable, and
    // she is offered nothing else.
    let mine = &entries(&app, SOFIA).await[0];
    assert_eq!(mine["status"], "offered");
    assert_eq!(mine["offer"]["id"], offer["id"]);
    assert_problem(
        answer(&app, SOFIA, &id, "decline", None).await,
        409,
        "offer_expired",
    )
    .await;
    let booked = || {
        canvas
            .appointments()
            .into_iter()
            .filter(|a| a.status.blocks_time() && a.start.map(|s| s.timestamp) == Some(opened))
            .count()
    };
    let mut committed = false;
    for _ in 0..200 {
        if booked() == 1 {
            committed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(committed, "Canvas commits the first create");

    // Her app retries with its key: the booking Canvas made is the answer, and she is off the
    // waitlist (not left waiting, to be offered more times she no longer needs).
    let retry = answer(&app, SOFIA, &id, "accept", Some(&k)).await;
    assert_eq!(retry.status(), 201);
    let made: serde_json::Value = retry.json().await.unwrap();
    assert_eq!(at(&made["start"]), opened);
    assert_eq!(made["patient_id"], SOFIA);
    assert!(entries(&app, SOFIA).await.is_empty(), "her entry is done");
    assert_eq!(booked(), 1, "one appointment in the opening");
    assert!(
        !okafor_day(&app, day)
            .await
            .iter()
            .any(|s| at(&s["start"]) == opened),
        "the time is taken"
    );
}

#[tokio::test]
async fn an_opening_beyond_the_first_range_of_days_reaches_an_entry_naming_two_clinicians() {
    // One date per availability question: the entry's second date is a range of its own.
    let app = spawn_app_with(&[
        OPEN_WINDOW,
        QUICK,
        "[booking]\nmax_range_days = 1\n",
        &format!("[sync]\ncanvas_webhook_secret = \"{CANVAS_SECRET}\"\n"),
    ])
    .await;
    let (canvas, canvas_url, day, _) = okafor_full_day(&app).await;
    let next = day.tomorrow().unwrap();
    let filled = fill_okafor(&app, &canvas, &canvas_url, next).await;
    // Either clinician will do (Osei sees no telehealth patients, so the time is Okafor's).
    let mut either = entry(SOFIA, "FLUP", 30, "telehealth", day, next);
    either["practitioner_ids"] = json!([OKAFOR, OSEI]);
    join(&app, &either).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(offer_of(&app, SOFIA).await, None, "nothing is free yet");

    let (cancelled, opened) = filled[filled.len() / 2].clone();
    canvas_put(&app, &cancelled, |b| b["status"] = json!("cancelled")).await;
    eventually(
        "Sofia is offered the opening on her second date",
        || async { offer_of(&app, SOFIA).await.is_some() },
    )
    .await;
    let offer = offer_of(&app, SOFIA).await.unwrap();
    assert_eq!(at(&offer["slot"]["start"]), opened);
    assert_eq!(offer["slot"]["practitioner"]["id"], OKAFOR);
}

#[tokio::test]
async fn an_entry_whose_visit_was_cancelled_in_canvas_ends_and_its_opening_goes_to_the_next_in_line()
 {
    let app = spawn_app_with(&[
        OPEN_WINDOW,
        QUICK,
        &format!("[sync]\ncanvas_webhook_secret = \"{CANVAS_SECRET}\"\n"),
    ])
    .await;
    let (canvas, canvas_url, day, filled) = okafor_full_day(&app).await;
    let next = day.tomorrow().unwrap();
    // Sofia has Okafor's last visit of the next day; the rest of it is taken.
    let last = okafor_day(&app, next).await.last().cloned().unwrap();
    let r = app
        .post_json(
            "/v1/appointments",
            &app.patient_token(SOFIA),
            &booking(&last, SOFIA),
            Some(&key()),
        )
        .await;
    assert_eq!(r.status(), 201);
    let sofias = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    fill_okafor(&app, &canvas, &canvas_url, next).await;
    let mut earlier = entry(SOFIA, "FLUP", 30, "telehealth", day, next);
    earlier["before_appointment_id"] = json!(sofias);
    join(&app, &earlier).await;
    join(&app, &entry(OLIVIA, "FLUP", 30, "telehealth", day, day)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(offer_of(&app, SOFIA).await, None, "nothing earlier is free");

    // The front desk cancels her visit in Canvas; later a visit earlier than it opens.
    canvas_put(&app, &sofias, |b| b["status"] = json!("cancelled")).await;
    let (cancelled, opened) = filled[filled.len() / 2].clone();
    canvas_put(&app, &cancelled, |b| b["status"] = json!("cancelled")).await;
    eventually("Olivia, next in line, is offered the opening", || async {
        offer_of(&app, OLIVIA).await.is_some()
    })
    .await;
    assert_eq!(
        at(&offer_of(&app, OLIVIA).await.unwrap()["slot"]["start"]),
        opened
    );
    // Sofia is not offered a time she could not accept (there is no visit left to move),
    // and her entry ends (upkeep notices the cancelled visit on its own round).
    assert_eq!(offer_of(&app, SOFIA).await, None);
    eventually("Sofia's entry ends with her visit", || async {
        entries(&app, SOFIA).await.is_empty()
    })
    .await;
    assert_eq!(offer_of(&app, SOFIA).await, None);
}

#[tokio::test]
async fn an_offer_a_receiver_refuses_is_sent_again_after_growing_pauses_until_it_is_taken() {
    let hooks = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&hooks)
        .await;
    let app = spawn_app_with(&[
        OPEN_WINDOW,
        QUICK,
        &format!(
            "[sync]\ncanvas_webhook_secret = \"{CANVAS_SECRET}\"\nreconcile_interval_seconds = 3600\nretry_base_ms = 1000\n\
             [[sync.sinks]]\nname = \"app\"\nkind = \"webhook\"\nurl = \"{}/app\"\nsecret = \"{HOOK_SECRET}\"\nphi = \"busy\"\n",
            hooks.uri()
        ),
    ])
    .await;
    let (_, _, day, filled) = okafor_full_day(&app).await;
    join(&app, &entry(SOFIA, "FLUP", 30, "telehealth", day, day)).await;
    canvas_put(&app, &filled[2].0, |b| b["status"] = json!("cancelled")).await;
    eventually("the app is told of the offer", || async {
        !offers_sent(&hooks).await.is_empty()
    })
    .await;
    // The matcher looks twice a second; the receiver is not asked on every look.
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    let tries = offers_sent(&hooks).await.len();
    assert!(
        (2..=4).contains(&tries),
        "sent at about 0, 1 and 3 s, not every pass: {tries}"
    );
    // The receiver is back: the offer reaches it, and is not sent again.
    hooks.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&hooks)
        .await;
    let mut delivered = false;
    for _ in 0..200 {
        if !offers_sent(&hooks).await.is_empty() {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(delivered, "sent again once its pause was over");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(offers_sent(&hooks).await.len(), 1, "once delivered, done");
}

#[tokio::test]
async fn an_opening_that_appears_during_a_pass_goes_to_the_oldest_entry_first() {
    let app = spawn_app_with(&[
        OPEN_WINDOW,
        QUICK,
        &format!("[sync]\ncanvas_webhook_secret = \"{CANVAS_SECRET}\"\n"),
    ])
    .await;
    let (canvas, canvas_url, day, filled) = okafor_full_day(&app).await;
    join(&app, &entry(SOFIA, "FLUP", 30, "telehealth", day, day)).await;
    join(&app, &entry(ELIJAH, "FLUP", 30, "telehealth", day, day)).await;
    // Canvas's answers arrive 1.5 s after it made them. A pass begins with a cold cache:
    // Sofia's (older) search is answered from before the cancellation below, and Elijah's,
    // after it, from after.
    canvas.set_faults(Faults {
        hold_answers_ms: 1_500,
        ..Faults::default()
    });
    tokio::time::sleep(Duration::from_millis(600)).await;
    let admin = app.token(None, "scheduling.admin");
    let purge = || async {
        let r = app
            .post_json("/v1/admin/cache/purge", &admin, &json!({}), None)
            .await;
        assert!(r.status().is_success(), "purged: {}", r.status());
    };
    purge().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (cancelled, opened) = filled[1].clone();
    let cancel = {
        let (sandbox, url) = (canvas.clone(), canvas_url.clone());
        tokio::spawn(async move {
            crate::sync::canvas_put_on(&sandbox, &url, &cancelled, |b| {
                b["status"] = json!("cancelled")
            })
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    purge().await;
    cancel.await.unwrap();
    eventually("the opening is offered", || async {
        offer_of(&app, SOFIA).await.is_some() || offer_of(&app, ELIJAH).await.is_some()
    })
    .await;
    assert_eq!(
        offer_of(&app, ELIJAH).await,
        None,
        "the younger entry is not offered what the older one waits for"
    );
    let offer = offer_of(&app, SOFIA).await.unwrap();
    assert_eq!(at(&offer["slot"]["start"]), opened);
}
