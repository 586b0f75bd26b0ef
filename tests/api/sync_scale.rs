//! Calendar sync at the scale of a clinic network: the sweep reaches as far as patients can
//! book, and the sinks are the truth of what they hold when slotgate's own state is gone.

use serde_json::{Value, json};
use wiremock::matchers::{method, path_regex, query_param};
use wiremock::{Mock, ResponseTemplate};

use crate::booking::{SOFIA, a_slot, booking};
use crate::helpers::{book_in_canvas, key};
use crate::replicas::{clinic, fresh_replica};
use crate::seed::*;
use crate::sync::{canvas_put_on, eventually, google, graph, messages, ok_receiver, sinks};
use crate::waitlist::JAMES;

/// Waits up to `seconds` for `check`.
async fn within<F, Fut>(seconds: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while std::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("never happened within {seconds} s: {what}");
}

#[tokio::test]
async fn a_visit_booked_in_canvas_eighty_days_ahead_reaches_the_sinks_without_a_notification() {
    let (hooks, g, m) = (ok_receiver().await, google().await, graph().await);
    let (sandbox, apps) = clinic(
        None,
        1,
        &sinks(&hooks, &g, &m, "reconcile_interval_seconds = 1\n"),
    )
    .await;
    // Staff book far ahead in Canvas's UI and the plugin is not installed: only the sweep can
    // see it. Patients may book 90 days ahead, so the sweep must reach that far (its window
    // is 30 days).
    let day = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date()
        .saturating_add(jiff::ToSpan::days(80));
    let slot = json!({
        "start": format!("{day}T17:00:00Z"), "end": format!("{day}T17:30:00Z"),
        "location": {"id": OAKLAND},
    });
    let id = book_in_canvas(
        &sandbox.control(),
        &sandbox.base_url(),
        &slot,
        JAMES,
        OKAFOR,
    )
    .await;
    within(15, "the receiver has it", || async {
        messages(&hooks, &id).await.len() == 1
    })
    .await;
    let (_, message) = messages(&hooks, &id).await.remove(0);
    assert_eq!(message["type"], "appointment.created");
    eventually("Google has it", || async {
        g.received_requests()
            .await
            .unwrap()
            .iter()
            .any(|r| r.method.as_str() == "POST" && String::from_utf8_lossy(&r.body).contains(&id))
    })
    .await;
    drop(apps);
}

#[tokio::test]
async fn a_visit_cancelled_while_slotgate_was_down_leaves_the_calendars_after_a_restart_with_no_state()
 {
    let (hooks, g, m) = (ok_receiver().await, google().await, graph().await);
    let settings = sinks(&hooks, &g, &m, "reconcile_interval_seconds = 3600\n");
    let (sandbox, mut apps) = clinic(None, 1, &settings).await;
    let app = &mut apps[0];
    let me = app.patient_token(SOFIA);
    let slot = a_slot(app, &me, OKAFOR, 0).await;
    let r = app
        .post_json(
            "/v1/appointments",
            &me,
            &booking(&slot, SOFIA),
            Some(&key()),
        )
        .await;
    assert_eq!(r.status(), 201);
    let made: Value = r.json().await.unwrap();
    let id = made["id"].as_str().unwrap().to_owned();
    eventually("every sink has it", || async {
        messages(&hooks, &id).await.len() == 1
            && g.received_requests().await.unwrap().iter().any(|r| {
                r.method.as_str() == "POST" && String::from_utf8_lossy(&r.body).contains(&id)
            })
    })
    .await;
    // slotgate stops, and its state (memory, no file) goes with it. Meanwhile the visit is
    // cancelled in Canvas, and nobody tells slotgate.
    app.stop().await;
    canvas_put_on(&sandbox.control(), &sandbox.base_url(), &id, |b| {
        b["status"] = json!("cancelled");
    })
    .await;
    // Google's own marker finds the event slotgate made.
    let event = format!("evt{}", id.replace('-', ""));
    Mock::given(method("GET"))
        .and(path_regex("^/calendar/v3/calendars/[^/]+/events$"))
        .and(query_param(
            "privateExtendedProperty",
            format!("slotgate_appointment_id={id}"),
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"items": [{"id": event, "status": "confirmed"}]})),
        )
        .with_priority(1)
        .mount(&g)
        .await;
    let _restarted = fresh_replica(&sandbox, &settings).await;
    within(15, "the receiver hears of the cancellation", || async {
        messages(&hooks, &id)
            .await
            .iter()
            .any(|(_, m)| m["type"] == "appointment.cancelled")
    })
    .await;
    eventually("the Google event goes", || async {
        g.received_requests().await.unwrap().iter().any(|r| {
            r.method.as_str() == "DELETE" && r.url.path().ends_with(&format!("/events/{event}"))
        })
    })
    .await;
}
