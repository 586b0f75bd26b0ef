//! Operators: a starter configuration from Canvas (`slotgate discover`), rules reloaded without
//! a restart on every replica (the admin route, SIGHUP, a changed file), and a cache purge.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::booking::{SOFIA, booking};
use crate::cli::slotgate;
use crate::helpers::{TestApp, assert_problem, key};
use crate::replicas::{RedisServer, clinic_with_rules};
use crate::seed::*;

/// The demo clinic's rules with one reason left out (FLUP, the follow-up), as a file.
fn rules_without_follow_ups() -> (tempfile_path::Path, String) {
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    let reasons = slotgate::config::DEMO_REASONS;
    let start = reasons
        .find("[[reasons]]\ncode = \"FLUP\"")
        .expect("FLUP in the demo");
    let end = start
        + reasons[start + 1..]
            .find("[[reasons]]")
            .expect("a reason after FLUP")
        + 1;
    let without = format!("{}{}", &reasons[..start], &reasons[end..]);
    let full = format!(
        "{reasons}\n{}",
        slotgate::sandbox::Clinic::demo(today).slotgate_rules_toml()
    );
    let partial = format!(
        "{without}\n{}",
        slotgate::sandbox::Clinic::demo(today).slotgate_rules_toml()
    );
    let path = tempfile_path::Path::new(&partial);
    (path, full)
}

/// A file of the test's own, removed when dropped.
mod tempfile_path {
    pub struct Path(pub std::path::PathBuf);

    impl Path {
        pub fn new(text: &str) -> Path {
            let path = std::env::temp_dir().join(format!("slotgate-{}.toml", uuid::Uuid::new_v4()));
            std::fs::write(&path, text).unwrap();
            Path(path)
        }

        pub fn write(&self, text: &str) {
            std::fs::write(&self.0, text).unwrap();
        }
    }

    impl Drop for Path {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

async fn reasons(app: &TestApp) -> Vec<String> {
    let token = app.staff_token();
    let list: Value = app
        .get("/v1/reasons", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    list["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap().to_owned())
        .collect()
}

async fn follow_ups(app: &TestApp, token: &str) -> reqwest::Response {
    let (start, end) = (days(3).to_string(), days(9).to_string());
    app.availability(
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
async fn a_reload_that_adds_a_reason_makes_it_bookable_at_once_on_every_replica() {
    let redis = RedisServer::start();
    let (file, full) = rules_without_follow_ups();
    let (_sandbox, apps) = clinic_with_rules(Some(&redis), 2, "", Some(&file.0)).await;
    let (a, b) = (&apps[0], &apps[1]);
    let me = b.patient_token(SOFIA);
    assert!(!reasons(b).await.contains(&"FLUP".to_owned()));
    assert_problem(follow_ups(b, &me).await, 422, "reason_not_allowed").await;
    file.write(&full);
    let admin = a.token(None, "scheduling.admin");
    let r = a
        .post_json("/v1/admin/rules/reload", &admin, &json!({}), None)
        .await;
    assert_eq!(r.status(), 200);
    let done: Value = r.json().await.unwrap();
    assert_eq!(done["reasons"], 5);
    assert_eq!(done["needs_restart"], json!([]));
    assert!(
        reasons(a).await.contains(&"FLUP".to_owned()),
        "applied here at once"
    );
    // The other replica re-reads its own file when told, within seconds.
    let since = Instant::now();
    while !reasons(b).await.contains(&"FLUP".to_owned()) {
        assert!(
            since.elapsed() < Duration::from_secs(5),
            "the other replica did not reload"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let offered: Value = follow_ups(b, &me).await.json().await.unwrap();
    let slot = offered["slots"][0].clone();
    let booked = b
        .post_json(
            "/v1/appointments",
            &me,
            &booking(&slot, SOFIA),
            Some(&key()),
        )
        .await;
    assert_eq!(booked.status(), 201, "bookable at once");
}

#[tokio::test]
async fn an_invalid_reload_changes_nothing_and_names_every_key() {
    let (file, full) = rules_without_follow_ups();
    let (_sandbox, apps) = clinic_with_rules(None, 1, "", Some(&file.0)).await;
    let app = &apps[0];
    let before = reasons(app).await;
    let broken = full
        .replacen("durations = [15, 20, 30]", "durations = [0]", 1)
        .replacen(
            "timezone = \"America/Los_Angeles\"",
            "timezone = \"Mars/Olympus\"",
            1,
        );
    file.write(&broken);
    let admin = app.token(None, "scheduling.admin");
    let r = app
        .post_json("/v1/admin/rules/reload", &admin, &json!({}), None)
        .await;
    let problem = assert_problem(r, 422, "validation_failed").await;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.iter().any(|f| f.starts_with("reasons[1].durations")),
        "{fields:?}"
    );
    assert!(
        fields
            .iter()
            .any(|f| f.starts_with("locations[0].timezone")),
        "{fields:?}"
    );
    assert_eq!(reasons(app).await, before, "nothing changed");
    // Settings only a restart applies are named, and the rules still apply.
    file.write(&format!("{full}\n[cache]\nslot_ttl_seconds = 30\n"));
    let r = app
        .post_json("/v1/admin/rules/reload", &admin, &json!({}), None)
        .await;
    assert_eq!(r.status(), 200);
    let done: Value = r.json().await.unwrap();
    assert_eq!(done["needs_restart"], json!(["cache"]));
    assert!(reasons(app).await.contains(&"FLUP".to_owned()));
}

#[tokio::test]
async fn a_changed_file_is_reloaded_by_itself_when_watched() {
    let (file, full) = rules_without_follow_ups();
    let watch = "[server]\nconfig_watch_seconds = 1\n";
    let (_sandbox, apps) = clinic_with_rules(None, 1, watch, Some(&file.0)).await;
    let app = &apps[0];
    assert!(!reasons(app).await.contains(&"FLUP".to_owned()));
    file.write(&full);
    let since = Instant::now();
    while !reasons(app).await.contains(&"FLUP".to_owned()) {
        assert!(
            since.elapsed() < Duration::from_secs(5),
            "the changed file was not reloaded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn misses(app: &TestApp) -> f64 {
    let text = app.get("/metrics", None).await.text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with("slotgate_slot_cache_lookups_total{outcome=\"miss\"}"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_purge_on_one_replica_empties_the_others_cache() {
    let redis = RedisServer::start();
    let (_sandbox, apps) = crate::replicas::clinic(Some(&redis), 2, "").await;
    let (a, b) = (&apps[0], &apps[1]);
    let me = b.patient_token(SOFIA);
    assert_eq!(follow_ups(b, &me).await.status(), 200);
    let cached = misses(b).await;
    assert_eq!(follow_ups(b, &me).await.status(), 200);
    assert_eq!(misses(b).await, cached, "answered from the cache");
    let admin = a.token(None, "scheduling.admin");
    let r = a
        .post_json("/v1/admin/cache/purge", &admin, &json!({}), None)
        .await;
    assert_eq!(r.status(), 204);
    let since = Instant::now();
    loop {
        assert_eq!(follow_ups(b, &me).await.status(), 200);
        if misses(b).await > cached {
            break;
        }
        assert!(
            since.elapsed() < Duration::from_secs(5),
            "the other replica kept its cache"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn operators_routes_need_the_admin_scope() {
    let app = crate::helpers::spawn_app().await;
    for path in ["/v1/admin/rules/reload", "/v1/admin/cache/purge"] {
        let staff = app.token(None, "scheduling.read scheduling.book scheduling.staff");
        assert_problem(
            app.post_json(path, &staff, &json!({}), None).await,
            403,
            "forbidden",
        )
        .await;
        let r = app
            .http
            .post(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_problem(r, 401, "unauthorized").await;
    }
}

#[test]
fn discover_reads_a_starter_configuration_that_check_config_accepts_and_maps_every_schedule() {
    let out = slotgate().arg("discover").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let starter = String::from_utf8(out.stdout).unwrap();
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    let clinic = slotgate::sandbox::Clinic::demo(today);
    for (location, clinician) in clinic.schedules() {
        assert!(
            starter.contains(&format!(
                "schedule_key = \"{}\"\nid = \"{}\"",
                location.key, location.id
            )),
            "location {} mapped:\n{starter}",
            location.key
        );
        assert!(
            starter.contains(&format!("id = \"{}\"", clinician.id.as_str())),
            "{starter}"
        );
    }
    assert!(
        starter.contains("# TODO"),
        "what only the clinic knows is marked"
    );
    // Filled in as a clinic would, with its reasons added: check-config accepts it.
    let filled = format!(
        "{}\n{}",
        slotgate::config::DEMO_REASONS,
        starter.replace("specialties = []", "specialties = [\"primary_care\"]")
    );
    let file = tempfile_path::Path::new(&filled);
    let check = slotgate()
        .arg("check-config")
        .arg(&file.0)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn discover_says_what_failed_when_canvas_cannot_be_read() {
    let out = slotgate()
        .arg("discover")
        .env("SLOTGATE_CANVAS__FHIR_URL", "http://127.0.0.1:9/")
        .env(
            "SLOTGATE_CANVAS__TOKEN_URL",
            "http://127.0.0.1:9/auth/token/",
        )
        .env("SLOTGATE_CANVAS__CLIENT_ID", "someone")
        .env(
            "SLOTGATE_CANVAS__CLIENT_SECRET",
            "not-a-secret-worth-printing",
        )
        .env(
            "SLOTGATE_AUTH__HS256_SECRET",
            "a development secret of the test",
        )
        .env("SLOTGATE_AUTH__ISSUER", "https://id.example.org")
        .env("SLOTGATE_AUTH__AUDIENCE", "slotgate")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("could not read") && err.contains("http://127.0.0.1:9/"),
        "{err}"
    );
    assert!(!err.contains("not-a-secret-worth-printing"), "{err}");
    assert!(out.stdout.is_empty(), "nothing half-printed");
}

#[test]
fn sighup_reloads_the_rules_of_a_running_slotgate() {
    use std::io::{BufRead, BufReader};
    let (file, full) = rules_without_follow_ups();
    /// Killed however the test ends.
    struct Running(std::process::Child);
    impl Drop for Running {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Running(
        slotgate()
            .env("SLOTGATE_SERVER__LISTEN", "127.0.0.1:0")
            .env("SLOTGATE_TELEMETRY__LOG_FILTER", "warn")
            .env("SLOTGATE_CONFIG", &file.0)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok);
    let base = lines
        .by_ref()
        .find_map(|l| {
            l.strip_prefix("slotgate is listening on ")
                .map(str::to_owned)
        })
        .expect("the banner names the address");
    let token = lines
        .find(|l| l.starts_with("eyJ"))
        .expect("the staff token");
    let codes = || {
        let out = std::process::Command::new("curl")
            .args(["-sf", &format!("{base}/v1/reasons"), "-H"])
            .arg(format!("Authorization: Bearer {token}"))
            .output()
            .unwrap();
        let list: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let codes: Vec<String> = list["reasons"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|r| r["code"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        codes
    };
    assert!(!codes().contains(&"FLUP".to_owned()) && !codes().is_empty());
    file.write(&full);
    let pid = child.0.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let since = Instant::now();
    while !codes().contains(&"FLUP".to_owned()) {
        assert!(
            since.elapsed() < Duration::from_secs(5),
            "SIGHUP did not reload"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
