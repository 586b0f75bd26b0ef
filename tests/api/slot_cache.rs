//! The slot cache seen from outside: Canvas is asked once per schedule however many patients
//! browse, and a Canvas outage serves the last good answer marked stale.

use std::collections::BTreeMap;

use serde_json::Value;
use slotgate::sandbox::{Faults, SandboxControl};

use crate::availability::OPEN_WINDOW;
use crate::helpers::{assert_problem, spawn_app_with};
use crate::seed::{OKAFOR, days};

/// Slot searches the sandbox received, by (schedule, offset).
fn slot_calls(sandbox: &SandboxControl) -> BTreeMap<(String, String), usize> {
    let mut calls = BTreeMap::new();
    for entry in sandbox.journal().into_iter().filter(|j| j.path == "/Slot") {
        let params: BTreeMap<String, String> = url::form_urlencoded::parse(entry.query.as_bytes())
            .into_owned()
            .collect();
        let key = (
            params.get("schedule").cloned().unwrap_or_default(),
            params.get("_offset").cloned().unwrap_or_default(),
        );
        *calls.entry(key).or_default() += 1;
    }
    calls
}

/// The slot cache's lookups with this outcome so far, from `/metrics`.
async fn lookups(app: &crate::helpers::TestApp, outcome: &str) -> usize {
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    let name = format!("slotgate_slot_cache_lookups_total{{outcome=\"{outcome}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name.as_str()))
        .map_or(0, |v| v.parse().unwrap())
}

#[tokio::test]
async fn a_hundred_identical_cold_questions_cost_one_canvas_call_per_schedule() {
    let app = spawn_app_with(&[OPEN_WINDOW]).await;
    let sandbox = app.sandbox.clone().unwrap();
    // Warm the directory, so only Slot searches remain.
    assert_eq!(
        app.get("/v1/locations", Some(&app.staff_token()))
            .await
            .status(),
        200
    );
    sandbox.set_faults(Faults {
        latency_ms: 150,
        ..Faults::default()
    });
    sandbox.clear_journal();
    let (start, end) = (days(1).to_string(), days(7).to_string());
    let params = [
        ("reason", "FLUP"),
        ("duration", "30"),
        ("state", "CA"),
        ("start", start.as_str()),
        ("end", end.as_str()),
    ];
    let token = app.staff_token();
    let answers =
        futures::future::join_all((0..100).map(|_| app.availability(&token, &params))).await;
    let mut bodies = Vec::new();
    for r in answers {
        assert_eq!(r.status(), 200);
        bodies.push(r.json::<Value>().await.unwrap());
    }
    assert!(
        bodies.windows(2).all(|w| w[0]["slots"] == w[1]["slots"]),
        "every patient sees the same answer"
    );
    let calls = slot_calls(&sandbox);
    assert!(!calls.is_empty());
    for ((schedule, offset), n) in &calls {
        assert_eq!(*n, 1, "{schedule} (offset {offset}) was asked {n} times");
    }
    // The metrics tell the same story: one miss per Canvas call; the rest hit or waited.
    assert_eq!(lookups(&app, "miss").await, calls.len());
    // Warm now: asking again costs Canvas nothing.
    sandbox.clear_journal();
    assert_eq!(app.availability(&token, &params).await.status(), 200);
    assert!(slot_calls(&sandbox).is_empty());
}

#[tokio::test]
async fn a_canvas_outage_serves_the_last_good_answer_as_stale() {
    let app = spawn_app_with(&[
        OPEN_WINDOW,
        "[cache]\nslot_ttl_seconds = 1\n[canvas]\ncircuit_failures = 1000\n",
    ])
    .await;
    let sandbox = app.sandbox.clone().unwrap();
    let token = app.staff_token();
    let (start, end) = (days(1).to_string(), days(3).to_string());
    let params = [
        ("reason", "FLUP"),
        ("duration", "30"),
        ("state", "CA"),
        ("start", start.as_str()),
        ("end", end.as_str()),
    ];
    let fresh: Value = app
        .availability(&token, &params)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fresh["stale"], false);
    sandbox.set_faults(Faults {
        down: true,
        ..Faults::default()
    });
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let r = app.availability(&token, &params).await;
    assert_eq!(r.status(), 200);
    let stale: Value = r.json().await.unwrap();
    assert_eq!(stale["stale"], true);
    assert_eq!(stale["slots"], fresh["slots"]);
    assert_eq!(
        stale["as_of"], fresh["as_of"],
        "as_of tells how old the data is"
    );
    // A question never answered before has nothing to fall back on.
    let (s2, e2) = (days(20).to_string(), days(21).to_string());
    let cold = [
        ("reason", "FLUP"),
        ("duration", "30"),
        ("state", "CA"),
        ("start", s2.as_str()),
        ("end", e2.as_str()),
    ];
    assert_problem(
        app.availability(&token, &cold).await,
        503,
        "upstream_unavailable",
    )
    .await;
    sandbox.set_faults(Faults::default());
    // A failure is remembered for two seconds, then Canvas is asked again.
    let mut back = Value::Null;
    for _ in 0..30 {
        back = app
            .availability(&token, &params)
            .await
            .json()
            .await
            .unwrap();
        if back["stale"] == false {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(back["stale"], false, "fresh again once Canvas is back");
}

#[tokio::test]
async fn canvas_failures_on_a_cold_question_map_to_gateway_codes() {
    let app = spawn_app_with(&[OPEN_WINDOW, "[canvas]\ntimeout_ms = 500\nconnect_timeout_ms = 200\nmax_retries = 1\nretry_base_ms = 10\ncircuit_failures = 1000\n"]).await;
    let sandbox = app.sandbox.clone().unwrap();
    let token = app.staff_token();
    assert_eq!(app.get("/v1/locations", Some(&token)).await.status(), 200);
    let (start, end) = (days(2).to_string(), days(4).to_string());
    let params = [
        ("reason", "FLUP"),
        ("duration", "30"),
        ("state", "CA"),
        ("start", start.as_str()),
        ("end", end.as_str()),
    ];
    sandbox.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    assert_problem(
        app.availability(&token, &params).await,
        503,
        "upstream_unavailable",
    )
    .await;
    sandbox.set_faults(Faults {
        latency_ms: 1500,
        ..Faults::default()
    });
    let body = assert_problem(
        app.availability(&token, &params).await,
        504,
        "upstream_timeout",
    )
    .await;
    let text = body.to_string();
    assert!(
        !text.contains("127.0.0.1") && !text.contains("Slot"),
        "no upstream details leak: {text}"
    );
}

#[tokio::test]
async fn a_failing_canvas_opens_the_circuit_then_a_probe_closes_it() {
    let app = spawn_app_with(&[
        OPEN_WINDOW,
        "[canvas]\nmax_retries = 0\ncircuit_failures = 3\ncircuit_open_seconds = 1\n",
    ])
    .await;
    let sandbox = app.sandbox.clone().unwrap();
    let token = app.staff_token();
    assert_eq!(app.get("/v1/locations", Some(&token)).await.status(), 200);
    sandbox.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    // Each question a new range, so each asks Canvas; three failures open the circuit.
    let ask = |n: i64| {
        let (start, end) = (days(n).to_string(), days(n).to_string());
        let app = &app;
        let token = token.clone();
        async move {
            let params = [
                ("reason", "FLUP"),
                ("duration", "30"),
                ("state", "CA"),
                ("practitioner", OKAFOR),
                ("start", start.as_str()),
                ("end", end.as_str()),
            ];
            app.availability(&token, &params).await
        }
    };
    for n in 1..=3 {
        assert_eq!(ask(n).await.status(), 503);
    }
    sandbox.clear_journal();
    let r = ask(4).await;
    assert_problem(r, 503, "upstream_unavailable").await;
    assert!(
        slot_calls(&sandbox).is_empty(),
        "an open circuit does not call Canvas"
    );
    // Canvas recovers; after the cooldown one probe closes the circuit.
    sandbox.set_faults(Faults::default());
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(ask(5).await.status(), 200);
    assert_eq!(ask(6).await.status(), 200);
}

#[tokio::test]
async fn entries_in_use_are_renewed_before_they_expire() {
    let app = spawn_app_with(&[OPEN_WINDOW, "[cache]\nslot_ttl_seconds = 2\n"]).await;
    let sandbox = app.sandbox.clone().unwrap();
    let token = app.staff_token();
    assert_eq!(app.get("/v1/locations", Some(&token)).await.status(), 200);
    let (start, end) = (days(1).to_string(), days(3).to_string());
    let params = [
        ("reason", "FLUP"),
        ("duration", "30"),
        ("state", "CA"),
        ("start", start.as_str()),
        ("end", end.as_str()),
    ];
    sandbox.clear_journal();
    assert_eq!(app.availability(&token, &params).await.status(), 200);
    let schedules = slot_calls(&sandbox).len();
    assert!(schedules > 0);
    let misses = lookups(&app, "miss").await;
    // Three quarters of the TTL on, a question is answered from the cache and renews it.
    tokio::time::sleep(std::time::Duration::from_millis(1_600)).await;
    assert_eq!(app.availability(&token, &params).await.status(), 200);
    crate::sync::eventually("renewed in the background", || async {
        slot_calls(&sandbox).values().sum::<usize>() == 2 * schedules
    })
    .await;
    assert_eq!(lookups(&app, "refresh").await, schedules);
    // Past the first fetch's TTL: still answered from the cache, nobody waits for Canvas.
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    assert_eq!(app.availability(&token, &params).await.status(), 200);
    assert_eq!(lookups(&app, "miss").await, misses, "no miss at the TTL");
    assert_eq!(slot_calls(&sandbox).values().sum::<usize>(), 2 * schedules);
}
