//! Several replicas, one truth: two slotgate instances on one real Redis (Debian's
//! redis-server, started here on a free loopback port) and one Canvas sandbox behave as one
//! service for every booking guarantee.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::availability::OPEN_WINDOW;
use crate::booking::{ELIJAH, SOFIA, a_slot, booking};
use crate::helpers::{TestApp, assert_problem, key};
use crate::seed::*;
use crate::sync::eventually;

/// A Redis of the test's own; stopped when dropped.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Self { port, child: None };
        server.resume();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// (Re)starts it on the same port, empty.
    pub fn resume(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (.ci/run installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

const SECRET: &str = "replica-test-slot-id-secret-0123456789";

/// Two replicas of one clinic: one sandbox, one Redis, the same secrets.
async fn two_replicas(redis: &RedisServer) -> (slotgate::sandbox::Sandbox, TestApp, TestApp) {
    two_replicas_with(redis, "").await
}

async fn two_replicas_with(
    redis: &RedisServer,
    extra: &str,
) -> (slotgate::sandbox::Sandbox, TestApp, TestApp) {
    let (sandbox, mut apps) = clinic(Some(redis), 2, extra).await;
    let b = apps.pop().expect("two replicas");
    let a = apps.pop().expect("two replicas");
    (sandbox, a, b)
}

/// `count` replicas of one clinic on a sandbox of its own: sharing `redis` when given, else
/// (one replica) on the memory store. `extra` is TOML layered over the shared settings.
pub async fn clinic(
    redis: Option<&RedisServer>,
    count: usize,
    extra: &str,
) -> (slotgate::sandbox::Sandbox, Vec<TestApp>) {
    clinic_with_rules(redis, count, extra, None).await
}

/// `rules`: a configuration file with the clinic's rules (which a reload re-reads); without it
/// they are the demo clinic's, layered in.
pub async fn clinic_with_rules(
    redis: Option<&RedisServer>,
    count: usize,
    extra: &str,
    rules_file: Option<&std::path::Path>,
) -> (slotgate::sandbox::Sandbox, Vec<TestApp>) {
    let sandbox = slotgate::sandbox::Sandbox::start(slotgate::sandbox::SandboxOptions {
        client_id: "replicas".into(),
        client_secret: "replicas-secret".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let (rules, shared) = replica_settings(&sandbox, redis);
    let mut layers = vec![shared.as_str(), OPEN_WINDOW, extra];
    if rules_file.is_none() {
        layers.insert(0, rules.as_str());
    }
    let mut apps = Vec::new();
    for _ in 0..count {
        apps.push(crate::helpers::spawn_app_from(rules_file, &layers).await);
    }
    (sandbox, apps)
}

/// The demo clinic's rules, and the settings every replica of a clinic on `sandbox` shares
/// (Canvas, tokens, slot ids; Redis with a fresh prefix when given).
fn replica_settings(
    sandbox: &slotgate::sandbox::Sandbox,
    redis: Option<&RedisServer>,
) -> (String, String) {
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    let rules = format!(
        "{}\n{}",
        slotgate::config::DEMO_REASONS,
        slotgate::sandbox::Clinic::demo(today).slotgate_rules_toml()
    );
    let state = match redis {
        Some(redis) => format!(
            "[state]\nbackend = \"redis\"\nredis_url = \"{}\"\nkey_prefix = \"t{}:\"\n",
            redis.url(),
            uuid::Uuid::new_v4().simple(),
        ),
        None => String::new(),
    };
    let shared = format!(
        "[canvas]\nfhir_url = \"{0}\"\ntoken_url = \"{0}/auth/token/\"\nclient_id = \"replicas\"\nclient_secret = \"replicas-secret\"\n\
         [auth]\nissuer = \"https://id.example.org\"\naudience = \"slotgate\"\nhs256_secret = \"a jwt secret for the replica tests...\"\n\
         [booking]\nslot_id_secret = \"{SECRET}\"\n{state}",
        sandbox.base_url(),
    );
    (rules, shared)
}

/// One more replica of the clinic on `sandbox`, on the memory store: a process started anew,
/// with nothing saved.
pub async fn fresh_replica(sandbox: &slotgate::sandbox::Sandbox, extra: &str) -> TestApp {
    let (rules, shared) = replica_settings(sandbox, None);
    crate::helpers::spawn_app_from(None, &[rules.as_str(), shared.as_str(), OPEN_WINDOW, extra])
        .await
}

pub fn creates(sandbox: &slotgate::sandbox::Sandbox) -> usize {
    sandbox
        .control()
        .journal()
        .into_iter()
        .filter(|j| j.method == "POST" && j.path == "/Appointment")
        .count()
}

async fn offered(app: &TestApp, token: &str, slot: &Value) -> bool {
    crate::booking::week_of(app, token, OKAFOR, "telehealth")
        .await
        .iter()
        .any(|s| s["start"] == slot["start"])
}

#[tokio::test]
async fn the_store_keeps_every_promise_on_redis() {
    let redis = RedisServer::start();
    let client = redis::Client::open(redis.url()).unwrap();
    let conn = slotgate::store::redis::connection(&client).unwrap();
    let store = slotgate::store::redis::RedisStore::new(conn, "conformance:");
    slotgate::store::conformance::run(&store).await;
}

#[tokio::test]
async fn twenty_five_bookings_of_one_slot_over_two_replicas_make_one_appointment() {
    let redis = RedisServer::start();
    let (sandbox, a, b) = two_replicas(&redis).await;
    let me = a.patient_token(SOFIA);
    let slot = a_slot(&a, &me, OKAFOR, 0).await;
    sandbox.control().clear_journal();
    let attempts = (0..25).map(|n| {
        let app = if n % 2 == 0 { &a } else { &b };
        let body = booking(&slot, SOFIA);
        let me = app.patient_token(SOFIA);
        async move {
            app.post_json("/v1/appointments", &me, &body, Some(&key()))
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures::future::join_all(attempts).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [201, 409].contains(s)),
        "{statuses:?}"
    );
    assert_eq!(creates(&sandbox), 1, "one Canvas create");
    // Each replica counts its own outcomes, labelled only by outcome.
    let mut outcomes = std::collections::BTreeMap::<String, f64>::new();
    for app in [&a, &b] {
        let text = app.get("/metrics", None).await.text().await.unwrap();
        for line in text
            .lines()
            .filter(|l| l.starts_with("slotgate_bookings_total{"))
        {
            let (labels, value) = line.rsplit_once(' ').unwrap();
            *outcomes.entry(labels.to_owned()).or_default() += value.parse::<f64>().unwrap();
        }
    }
    assert_eq!(
        outcomes.get("slotgate_bookings_total{outcome=\"booked\"}"),
        Some(&1.0),
        "{outcomes:?}"
    );
    assert_eq!(outcomes.values().sum::<f64>(), 25.0, "{outcomes:?}");
}

#[tokio::test]
async fn a_replay_on_the_other_replica_answers_the_same_and_creates_nothing() {
    let redis = RedisServer::start();
    let (sandbox, a, b) = two_replicas(&redis).await;
    let me = a.patient_token(SOFIA);
    let slot = a_slot(&a, &me, OKAFOR, 1).await;
    let k = key();
    let first = a
        .post_json("/v1/appointments", &me, &booking(&slot, SOFIA), Some(&k))
        .await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = b
        .post_json("/v1/appointments", &me, &booking(&slot, SOFIA), Some(&k))
        .await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    assert_eq!(creates(&sandbox), 1);
    // The same key with another body is refused there too.
    let mut other = booking(&slot, SOFIA);
    other["reason_code"] = json!("INIV");
    assert_problem(
        b.post_json("/v1/appointments", &me, &other, Some(&k)).await,
        422,
        "idempotency_key_reused",
    )
    .await;
}

#[tokio::test]
async fn holds_and_bookings_on_one_replica_show_on_the_other_within_a_second() {
    let redis = RedisServer::start();
    let (_sandbox, a, b) = two_replicas(&redis).await;
    let me = a.patient_token(SOFIA);
    let (held, booked) = (
        a_slot(&a, &me, OKAFOR, 2).await,
        a_slot(&a, &me, OKAFOR, 5).await,
    );
    // B has answered (and cached) the question before anything happens on A.
    assert!(offered(&b, &me, &held).await && offered(&b, &me, &booked).await);
    let r = a
        .post_json("/v1/holds", &me, &json!({"slot_id": held["slot_id"]}), None)
        .await;
    assert_eq!(r.status(), 201);
    let since = Instant::now();
    eventually("B hides the held slot", || async {
        !offered(&b, &me, &held).await
    })
    .await;
    assert!(
        since.elapsed() < Duration::from_secs(1),
        "{:?}",
        since.elapsed()
    );
    // And B refuses to hold it too.
    let elijah = b.patient_token(ELIJAH);
    assert_problem(
        b.post_json(
            "/v1/holds",
            &elijah,
            &json!({"slot_id": held["slot_id"]}),
            None,
        )
        .await,
        409,
        "slot_held",
    )
    .await;
    let r = a
        .post_json(
            "/v1/appointments",
            &me,
            &booking(&booked, SOFIA),
            Some(&key()),
        )
        .await;
    assert_eq!(r.status(), 201);
    let since = Instant::now();
    eventually("B drops its cached answer", || async {
        !offered(&b, &me, &booked).await
    })
    .await;
    assert!(
        since.elapsed() < Duration::from_secs(1),
        "{:?}",
        since.elapsed()
    );
}

#[tokio::test]
async fn without_redis_writes_fail_closed_and_browsing_goes_on() {
    let mut redis = RedisServer::start();
    let (sandbox, a, _b) = two_replicas(&redis).await;
    let me = a.patient_token(SOFIA);
    let slot = a_slot(&a, &me, OKAFOR, 3).await;
    // Something to move and cancel, booked while Redis is up.
    let earlier = a_slot(&a, &me, OKAFOR, 1).await;
    let r = a
        .post_json(
            "/v1/appointments",
            &me,
            &booking(&earlier, SOFIA),
            Some(&key()),
        )
        .await;
    assert_eq!(r.status(), 201);
    let booked: Value = r.json().await.unwrap();
    let booked_id = booked["id"].as_str().unwrap().to_owned();
    redis.stop();
    sandbox.control().clear_journal();
    assert_problem(
        a.post_json(
            "/v1/appointments",
            &me,
            &booking(&slot, SOFIA),
            Some(&key()),
        )
        .await,
        503,
        "upstream_unavailable",
    )
    .await;
    assert_problem(
        a.post_json("/v1/holds", &me, &json!({"slot_id": slot["slot_id"]}), None)
            .await,
        503,
        "upstream_unavailable",
    )
    .await;
    // Every other write too: rescheduling, cancelling, Other Events.
    let unavailable = [
        a.post_json(
            &format!("/v1/appointments/{booked_id}/reschedule"),
            &me,
            &json!({"slot_id": slot["slot_id"], "patient_state": "CA"}),
            Some(&key()),
        )
        .await,
        a.post_json(
            &format!("/v1/appointments/{booked_id}/cancel"),
            &me,
            &json!({}),
            Some(&key()),
        )
        .await,
        a.post_json(
            "/v1/events",
            &a.staff_token(),
            &json!({"practitioner_ids": [OKAFOR], "start": days(2).to_string() + "T20:00:00Z",
                "end": days(2).to_string() + "T21:00:00Z", "title": "Case conference"}),
            Some(&key()),
        )
        .await,
    ];
    for r in unavailable {
        assert_problem(r, 503, "upstream_unavailable").await;
    }
    let writes: Vec<_> = sandbox
        .control()
        .journal()
        .into_iter()
        .filter(|j| j.method != "GET" && j.path.starts_with("/Appointment"))
        .collect();
    assert!(writes.is_empty(), "nothing written to Canvas: {writes:?}");
    assert!(offered(&a, &me, &slot).await, "browsing answers");
    assert_eq!(a.get("/readyz", None).await.status(), 200);
    eventually("slotgate_redis_up is 0", || async {
        a.get("/metrics", None)
            .await
            .text()
            .await
            .unwrap()
            .lines()
            .any(|l| l == "slotgate_redis_up 0")
    })
    .await;
    // Redis is back: writes work again, without a restart.
    redis.resume();
    let mut status = 0;
    for _ in 0..50 {
        status = a
            .post_json(
                "/v1/appointments",
                &me,
                &booking(&slot, SOFIA),
                Some(&key()),
            )
            .await
            .status()
            .as_u16();
        if status == 201 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 201);
    assert_eq!(creates(&sandbox), 1);
    // And the booking made before the outage is as it was: booked, in Canvas.
    let kept = sandbox
        .control()
        .appointments()
        .into_iter()
        .find(|x| x.id.as_deref() == Some(booked_id.as_str()))
        .unwrap();
    assert_eq!(kept.status.as_str(), "booked");
}

#[tokio::test]
async fn the_sync_store_keeps_every_promise_on_redis() {
    let redis = RedisServer::start();
    let client = redis::Client::open(redis.url()).unwrap();
    let conn = slotgate::store::redis::connection(&client).unwrap();
    slotgate::store::sync::conformance::run(|| {
        let conn = conn.clone();
        async move {
            let prefix = format!("c{}:", uuid::Uuid::new_v4().simple());
            Box::new(slotgate::store::sync::redis::RedisSyncStore::new(
                conn, &prefix,
            )) as Box<dyn slotgate::store::sync::SyncStore>
        }
    })
    .await;
}

pub async fn leads(app: &TestApp) -> bool {
    let admin = app.token(None, "scheduling.admin");
    let status: Value = app
        .get("/v1/admin/sync", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    status["leader"] == true
}

#[tokio::test]
async fn one_replica_syncs_and_another_takes_over_when_it_dies() {
    let redis = RedisServer::start();
    let hooks = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(204))
        .mount(&hooks)
        .await;
    let sink = format!(
        "[state]\nsync_lease_seconds = 1\n[sync]\nreconcile_interval_seconds = 3600\nretry_base_ms = 50\n\
         canvas_webhook_secret = \"{}\"\n\
         [[sync.sinks]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"{}/hooks\"\nsecret = \"{}\"\nphi = \"neutral\"\n",
        crate::sync::CANVAS_SECRET,
        hooks.uri(),
        crate::sync::HOOK_SECRET
    );
    let (sandbox, a, b) = two_replicas_with(&redis, &sink).await;
    eventually("one leader", || async {
        leads(&a).await != leads(&b).await
    })
    .await;
    let (mut leader, follower) = if leads(&a).await { (a, b) } else { (b, a) };
    // Both replicas report the shared queue, not only the one working it.
    eventually("the follower reports the sync queue", || async {
        follower
            .get("/metrics", None)
            .await
            .text()
            .await
            .unwrap()
            .lines()
            .any(|l| l.starts_with("slotgate_sync_dead_letters{sink=\"ops\"} 0"))
    })
    .await;
    // A booking on the follower is delivered (by the leader), once.
    let me = follower.patient_token(SOFIA);
    let slot = a_slot(&follower, &me, OKAFOR, 4).await;
    let made: Value = follower
        .post_json(
            "/v1/appointments",
            &me,
            &booking(&slot, SOFIA),
            Some(&key()),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = made["id"].as_str().unwrap().to_owned();
    eventually("delivered", || async {
        crate::sync::messages(&hooks, &id).await.len() == 1
    })
    .await;
    // Canvas moves it and notifies the follower (the load balancer's pick): the follower
    // verifies and accepts it, and the leader delivers the change (no reconciler runs soon).
    let control = sandbox.control();
    let current = control
        .appointments()
        .into_iter()
        .find(|a| a.id.as_deref() == Some(id.as_str()))
        .unwrap();
    let mut moved = json!({
        "resourceType": "Appointment", "status": "booked",
        "start": current.start, "end": current.end,
        "participant": current.participant.iter().map(|p| json!({"actor": {"reference": p.actor.reference}, "status": "accepted"})).collect::<Vec<_>>(),
        "identifier": current.identifier,
    });
    crate::sync::shift(&mut moved, 1);
    let r = reqwest::Client::new()
        .put(format!("{}/Appointment/{id}", sandbox.base_url()))
        .bearer_auth(control.issue_token())
        .json(&moved)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let note =
        json!({"canvas_patient_key": SOFIA, "appointment_external_id": id, "created": false})
            .to_string();
    let stamp = jiff::Timestamp::now().as_second();
    let headers = crate::sync::signed(crate::sync::CANVAS_SECRET, &note, "msg_moved", stamp);
    assert_eq!(
        crate::sync::notify(&follower, &note, &headers)
            .await
            .status(),
        202
    );
    eventually("the move delivered by the leader", || async {
        crate::sync::messages(&hooks, &id).await.len() == 2
    })
    .await;
    assert_eq!(
        crate::sync::messages(&hooks, &id).await[1].1["type"],
        "appointment.updated"
    );
    // The leader dies. Canvas changes with nobody told: the other replica's reconciler finds it.
    leader.stop().await;
    let died = Instant::now();
    let current = control
        .appointments()
        .into_iter()
        .find(|a| a.id.as_deref() == Some(id.as_str()))
        .unwrap();
    let body = slotgate::scheduling::canvas_write::cancellation(&current, None);
    let r = reqwest::Client::new()
        .put(format!("{}/Appointment/{id}", sandbox.base_url()))
        .bearer_auth(control.issue_token())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Two lease periods (1 s each), and a little for a loaded machine.
    while !leads(&follower).await {
        assert!(
            died.elapsed() < Duration::from_millis(2_500),
            "the follower did not take over within two lease periods"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Its reconciler starts at once and finds the change nobody was told of.
    eventually("the cancel delivered by the new leader", || async {
        crate::sync::messages(&hooks, &id).await.len() == 3
    })
    .await;
    let messages = crate::sync::messages(&hooks, &id).await;
    assert_eq!(messages[2].1["type"], "appointment.cancelled");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        crate::sync::messages(&hooks, &id).await.len(),
        3,
        "once each"
    );
}
