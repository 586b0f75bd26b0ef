//! Holds: a held slot vanishes from everyone's availability, only its holder may book it, and it
//! comes back when released or expired.

use serde_json::{Value, json};

use crate::availability::open_app;
use crate::booking::{ELIJAH, GRACE, SOFIA, a_slot, booking, slots_for};
use crate::helpers::{TestApp, assert_problem, key, spawn_app_with};
use crate::seed::*;

async fn okafor_slots(app: &TestApp, token: &str) -> Vec<Value> {
    let (start, end) = (days(3).to_string(), days(9).to_string());
    slots_for(
        app,
        token,
        &[
            ("reason", "FLUP"),
            ("duration", "30"),
            ("state", "CA"),
            ("modality", "telehealth"),
            ("practitioner", OKAFOR),
            ("start", &start),
            ("end", &end),
        ],
    )
    .await
}

#[tokio::test]
async fn a_held_slot_vanishes_until_released_and_only_its_holder_may_book_it() {
    let app = open_app().await;
    let (sofia, elijah) = (app.patient_token(SOFIA), app.patient_token(ELIJAH));
    let slot = a_slot(&app, &sofia, OKAFOR, 0).await;
    let r = app
        .post_json(
            "/v1/holds",
            &sofia,
            &json!({"slot_id": slot["slot_id"]}),
            None,
        )
        .await;
    assert_eq!(r.status(), 201);
    let hold: Value = r.json().await.unwrap();
    assert_eq!(hold["slot_id"], slot["slot_id"]);
    let expires: jiff::Timestamp = hold["expires_at"].as_str().unwrap().parse().unwrap();
    let minutes = jiff::Timestamp::now().duration_until(expires).as_mins();
    assert!(
        (9..=10).contains(&minutes),
        "held for the configured 10 minutes, not {minutes}"
    );
    assert!(
        okafor_slots(&app, &elijah)
            .await
            .iter()
            .all(|s| s["start"] != slot["start"]),
        "hidden from others"
    );
    // Another hold on it, or someone else's booking, is refused.
    assert_problem(
        app.post_json(
            "/v1/holds",
            &elijah,
            &json!({"slot_id": slot["slot_id"]}),
            None,
        )
        .await,
        409,
        "slot_held",
    )
    .await;
    assert_problem(
        app.post_json(
            "/v1/appointments",
            &elijah,
            &booking(&slot, ELIJAH),
            Some(&key()),
        )
        .await,
        409,
        "slot_held",
    )
    .await;
    // Only the holder releases it; others are told it does not exist.
    let path = format!("/v1/holds/{}", hold["hold_id"].as_str().unwrap());
    assert_problem(app.delete(&path, &elijah).await, 404, "not_found").await;
    assert_eq!(app.delete(&path, &sofia).await.status(), 204);
    assert!(
        okafor_slots(&app, &elijah)
            .await
            .iter()
            .any(|s| s["start"] == slot["start"]),
        "back once released"
    );
    assert_problem(app.delete(&path, &sofia).await, 404, "not_found").await;
}

#[tokio::test]
async fn the_holder_books_with_the_hold_and_the_hold_is_spent() {
    let app = open_app().await;
    let grace = app.patient_token(GRACE);
    let slot = a_slot(&app, &grace, OKAFOR, 1).await;
    let hold: Value = app
        .post_json(
            "/v1/holds",
            &grace,
            &json!({"slot_id": slot["slot_id"]}),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let mut body = booking(&slot, GRACE);
    body["hold_id"] = hold["hold_id"].clone();
    assert_eq!(
        app.post_json("/v1/appointments", &grace, &body, Some(&key()))
            .await
            .status(),
        201
    );
    // A booked slot cannot be held.
    assert_problem(
        app.post_json(
            "/v1/holds",
            &app.patient_token(SOFIA),
            &json!({"slot_id": slot["slot_id"]}),
            None,
        )
        .await,
        409,
        "slot_unavailable",
    )
    .await;
    let path = format!("/v1/holds/{}", hold["hold_id"].as_str().unwrap());
    assert_problem(app.delete(&path, &grace).await, 404, "not_found").await;
}

/// The store's unit tests show an expired hold freeing its time; here, that its length follows
/// `[booking] hold_minutes` and it protects the slot meanwhile.
#[tokio::test]
async fn a_hold_lasts_the_configured_minutes() {
    let app = spawn_app_with(&[
        crate::availability::OPEN_WINDOW,
        "[booking]\nhold_minutes = 1\n",
    ])
    .await;
    let sofia = app.patient_token(SOFIA);
    let slot = a_slot(&app, &sofia, OKAFOR, 2).await;
    let hold: Value = app
        .post_json(
            "/v1/holds",
            &sofia,
            &json!({"slot_id": slot["slot_id"]}),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let expires: jiff::Timestamp = hold["expires_at"].as_str().unwrap().parse().unwrap();
    assert!(jiff::Timestamp::now().duration_until(expires).as_secs() <= 60);
    let elijah = app.patient_token(ELIJAH);
    assert_problem(
        app.post_json(
            "/v1/holds",
            &elijah,
            &json!({"slot_id": slot["slot_id"]}),
            None,
        )
        .await,
        409,
        "slot_held",
    )
    .await;
}

#[tokio::test]
async fn holds_are_checked_like_bookings() {
    let app = open_app().await;
    let sofia = app.patient_token(SOFIA);
    let slot = a_slot(&app, &sofia, OKAFOR, 3).await;
    let r = app
        .post_json(
            "/v1/holds",
            &sofia,
            &json!({"slot_id": "s1.bogus.AAAA"}),
            None,
        )
        .await;
    assert_eq!(
        assert_problem(r, 400, "validation_failed").await["errors"][0]["field"],
        "slot_id"
    );
    assert_problem(
        app.post_json(
            "/v1/holds",
            &sofia,
            &json!({"slot_id": slot["slot_id"], "patient_id": ELIJAH}),
            None,
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        app.post_json(
            "/v1/holds",
            &sofia,
            &json!({"slot_id": slot["slot_id"], "colour": "red"}),
            None,
        )
        .await,
        400,
        "validation_failed",
    )
    .await;
    assert_problem(
        app.delete("/v1/holds/not-a-hold", &sofia).await,
        404,
        "not_found",
    )
    .await;
}
