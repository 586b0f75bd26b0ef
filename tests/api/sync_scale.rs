//! Calendar sync at the scale of a clinic network: the sweep reaches as far as patients can
//! book, and the sinks are the truth of what they hold when slotgate's own state is gone.

use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::booking::{SOFIA, a_slot, booking};
use crate::helpers::{book_in_canvas, key};
use crate::inbound::settled;
use crate::replicas::{RedisServer, clinic, fresh_replica};
use crate::seed::*;
use crate::sync::{
    book_okafor, canvas_put_on, dead_letters, eventually, google, graph, messages, ok_receiver,
    sink_status, sinks,
};
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

/// A webhook sink only, on Redis, planning and delivery quick, no sweep soon.
fn webhook_only(hooks: &wiremock::MockServer) -> String {
    format!(
        "[state]\nsync_lease_seconds = 1\n[sync]\nreconcile_interval_seconds = 3600\nretry_base_ms = 50\n\
         canvas_webhook_secret = \"{}\"\n\
         [[sync.sinks]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"{}/hooks\"\nsecret = \"{}\"\nphi = \"neutral\"\n",
        crate::sync::CANVAS_SECRET,
        hooks.uri(),
        crate::sync::HOOK_SECRET
    )
}

async fn pending(app: &crate::helpers::TestApp) -> Option<u64> {
    let admin = app.token(None, "scheduling.admin");
    let status: Value = app
        .get("/v1/admin/sync", Some(&admin))
        .await
        .json()
        .await
        .ok()?;
    status["sinks"][0]["pending"].as_u64()
}

#[tokio::test]
async fn a_redis_blip_while_a_delivery_is_recorded_delays_it_and_strands_nothing() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let redis = RedisServer::start();
    let url = redis.url();
    let hooks = wiremock::MockServer::start().await;
    let (armed, paused) = (
        std::sync::Arc::new(AtomicBool::new(false)),
        std::sync::Arc::new(AtomicBool::new(false)),
    );
    let (arm, first) = (armed.clone(), paused.clone());
    // Once armed, the receiver takes the next message; while its 2xx is on the way back,
    // Redis stops answering for three seconds (slotgate's Redis calls time out after one).
    Mock::given(method("POST"))
        .respond_with(move |_: &wiremock::Request| {
            if arm.load(Ordering::SeqCst) && !first.swap(true, Ordering::SeqCst) {
                let url = url.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
                    let _: () = redis::cmd("CLIENT")
                        .arg("PAUSE")
                        .arg(3000)
                        .arg("ALL")
                        .query(&mut c)
                        .unwrap();
                });
                ResponseTemplate::new(204).set_delay(std::time::Duration::from_millis(400))
            } else {
                ResponseTemplate::new(204)
            }
        })
        .mount(&hooks)
        .await;
    let (_sandbox, apps) = clinic(Some(&redis), 1, &webhook_only(&hooks)).await;
    let app = &apps[0];
    let me = app.patient_token(SOFIA);
    let slot = a_slot(app, &me, OKAFOR, 2).await;
    // The start-up sweep's deliveries are done; the next message is the booking's.
    within(20, "the start-up sweep delivered", || async {
        pending(app).await == Some(0) && !hooks.received_requests().await.unwrap().is_empty()
    })
    .await;
    armed.store(true, Ordering::SeqCst);
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
    within(
        20,
        "delivered, recorded, and nothing left running",
        || async { !messages(&hooks, &id).await.is_empty() && pending(app).await == Some(0) },
    )
    .await;
    assert!(paused.load(Ordering::SeqCst), "the blip happened");
    // Delivered at least once, each time as the same message.
    let ids: std::collections::BTreeSet<String> = messages(&hooks, &id)
        .await
        .iter()
        .filter_map(|(r, _)| {
            r.headers
                .get("webhook-id")?
                .to_str()
                .ok()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
}

#[tokio::test]
async fn a_leader_killed_while_planning_loses_nothing() {
    let redis = RedisServer::start();
    let hooks = ok_receiver().await;
    let (sandbox, apps) = clinic(Some(&redis), 2, &webhook_only(&hooks)).await;
    let mut apps = apps.into_iter();
    let (a, b) = (apps.next().unwrap(), apps.next().unwrap());
    eventually("one leader", || async {
        crate::replicas::leads(&a).await != crate::replicas::leads(&b).await
    })
    .await;
    let (mut leader, follower) = if crate::replicas::leads(&a).await {
        (a, b)
    } else {
        (b, a)
    };
    // Staff book in Canvas; its notification reaches the follower while Canvas answers
    // slowly, so the leader is still reading the appointment when it dies.
    let me = follower.patient_token(SOFIA);
    let slot = a_slot(&follower, &me, OKAFOR, 3).await;
    let control = sandbox.control();
    let id = book_in_canvas(&control, &sandbox.base_url(), &slot, SOFIA, OKAFOR).await;
    control.set_faults(slotgate::sandbox::Faults {
        latency_ms: 3000,
        ..Default::default()
    });
    let note = json!({"canvas_patient_key": SOFIA, "appointment_external_id": id, "created": true})
        .to_string();
    let stamp = jiff::Timestamp::now().as_second();
    let headers = crate::sync::signed(crate::sync::CANVAS_SECRET, &note, "msg_planned", stamp);
    assert_eq!(
        crate::sync::notify(&follower, &note, &headers)
            .await
            .status(),
        202
    );
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(messages(&hooks, &id).await.is_empty(), "still planning");
    leader.stop().await;
    control.set_faults(slotgate::sandbox::Faults::default());
    // The follower leads within two lease periods and plans what the dead leader had taken.
    within(20, "the booking reaches the receiver", || async {
        !messages(&hooks, &id).await.is_empty()
    })
    .await;
}

#[tokio::test]
async fn a_dead_letter_is_cleared_when_a_later_change_of_its_visit_gets_through() {
    let redis = RedisServer::start();
    let hooks = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&hooks)
        .await;
    let (g, m) = (google().await, graph().await);
    let (_sandbox, apps) = clinic(
        Some(&redis),
        1,
        &sinks(&hooks, &g, &m, "reconcile_interval_seconds = 3600\n"),
    )
    .await;
    let app = &apps[0];
    let id = book_okafor(app, 3).await["id"].as_str().unwrap().to_owned();
    let admin = app.token(None, "scheduling.admin");
    // The visit's dead letters at the webhook sink, and the sink's dead count.
    let dead = || async {
        let mine = dead_letters(app, &admin, &id, "ops").await.len();
        let counted = sink_status(app, &admin, "ops").await["dead"]
            .as_u64()
            .unwrap();
        (mine, counted as usize)
    };
    // The clinic's seeded visits reach the dead receiver too: the sink counts theirs as well.
    eventually("dead-lettered after max_attempts", || async {
        dead().await.0 == 1
    })
    .await;
    let before = settled(|| async { dead().await.1 }).await;
    // The receiver recovers, and nobody retries the letter; the visit is then cancelled, and
    // that later change gets through: the letter about its older state is moot and goes.
    hooks.reset().await;
    Mock::given(method("POST"))
        .and(path("/hooks"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&hooks)
        .await;
    let r = app
        .post_json(
            &format!("/v1/appointments/{id}/cancel"),
            &app.staff_token(),
            &json!({}),
            Some(&key()),
        )
        .await;
    assert!(r.status().is_success(), "{}", r.status());
    eventually("the cancellation reaches the receiver", || async {
        messages(&hooks, &id)
            .await
            .iter()
            .any(|(_, body)| body["type"] == "appointment.cancelled")
    })
    .await;
    eventually(
        "the dead letter is gone, and the sink counts one fewer",
        || async { dead().await == (0, before - 1) },
    )
    .await;
}
