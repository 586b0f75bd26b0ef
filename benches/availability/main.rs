//! Load benchmark for `GET /v1/availability` (see README, "Performance").
//!
//! One command, `cargo bench --bench availability`, runs for each clinic size in
//! `BENCH_SCALES` (default `50,100,500` clinicians, one schedule each) a process of its own
//! that starts slotgate in-process on its embedded sandbox (100 ms added Canvas latency) and
//! measures, in one run:
//! 1. cold questions over every schedule (fresh date ranges, nothing cached) against the
//!    sandbox's own floor for the same Slot reads sent at once;
//! 2. upstream amplification: 100 identical concurrent cold questions, counting the Slot
//!    searches the sandbox received per schedule;
//! 3. warm availability (7-day telehealth question, limit=100) beside `/healthz` on the same
//!    server: closed-loop throughput over 32 connections, and latency at a fixed 1,000
//!    requests/s (open loop, from the intended send time) - with our own reqwest loop, and with
//!    `oha` when it is on the PATH (it asks for compression, as browsers do);
//! 4. in a further process, resident memory once 10,000 slot windows are cached.
//!
//! Knobs: BENCH_SCALES, BENCH_SECONDS (default 10), BENCH_CONNECTIONS (32), BENCH_RATE (1000).

mod load;
mod oha;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use jiff::ToSpan;
use slotgate::auth::DevToken;
use slotgate::config::{Settings, Sources};
use slotgate::startup::Application;

const LATENCY_MS: u64 = 100;
const WINDOWS: usize = 10_000;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn question(first_day: i64, days: i64) -> String {
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    let (start, end) = (
        today.saturating_add(first_day.days()),
        today.saturating_add((first_day + days - 1).days()),
    );
    format!(
        "/v1/availability?reason=FLUP&duration=30&state=CA&modality=telehealth&start={start}&end={end}&tz=America/Los_Angeles&limit=100"
    )
}

fn main() {
    let phase = std::env::var("BENCH_PHASE").unwrap_or_default();
    let clinicians = env("BENCH_CLINICIANS", 50) as usize;
    if phase.is_empty() {
        // Each measurement in a process of its own: fresh caches, and memory that is its own.
        let scales = std::env::var("BENCH_SCALES").unwrap_or_else(|_| "50,100,500".into());
        let me = std::env::current_exe().expect("the benchmark's own path");
        for n in scales.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            for phase in ["load", "memory"] {
                let status = Command::new(&me)
                    .env("BENCH_PHASE", phase)
                    .env("BENCH_CLINICIANS", n)
                    .status()
                    .expect("the benchmark runs itself");
                assert!(status.success(), "{phase} at {n} clinicians failed");
            }
        }
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    match phase.as_str() {
        "memory" => runtime.block_on(memory(clinicians)),
        _ => runtime.block_on(run(clinicians)),
    }
}

struct Running {
    base: String,
    control: slotgate::sandbox::SandboxControl,
    sandbox_url: String,
    client: reqwest::Client,
    token: String,
    tokens: Vec<String>,
}

/// slotgate on a generated clinic; `extra` is TOML layered on top.
async fn start(clinicians: usize, latency_ms: u64, extra: &str, callers: usize) -> Running {
    // Each connection stands for a crowd of patients behind the clinic's gateway, so the
    // per-caller budget is lifted; slotgate's own Canvas budget keeps its default.
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[sandbox]\nlisten = \"127.0.0.1:0\"\nclinicians = {clinicians}\nlatency_ms = {latency_ms}\n\
         [booking]\nmin_notice_minutes = 0\nmax_horizon_days = 400\n[telemetry]\nlog_filter = \"warn\"\n\
         [rate_limit]\nbrowse_per_minute = 1000000000\n"
    );
    let settings = Settings::load(&Sources {
        file: None,
        environment: false,
        overrides: &[&config, extra],
    })
    .expect("benchmark settings");
    let auth = settings.auth.clone();
    let app = Application::build(settings).await.expect("slotgate starts");
    let base = format!("http://{}", app.address());
    let sandbox = app.sandbox().expect("embedded sandbox");
    let (control, sandbox_url) = (sandbox.control(), sandbox.base_url());
    tokio::spawn(app.run_until_stopped());
    let minter = DevToken {
        secret: auth.hs256_secret.as_ref().unwrap(),
        issuer: &auth.issuer,
        audience: &auth.audience,
        patient_claim: &auth.patient_claim,
    };
    let mint = |subject: &str| {
        minter
            .mint(subject, None, "scheduling.read scheduling.staff", 3600)
            .unwrap()
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(2048)
        .build()
        .unwrap();
    let running = Running {
        base,
        control,
        sandbox_url,
        client,
        token: mint("bench"),
        // One caller per connection, as many patients would be.
        tokens: (0..callers).map(|i| mint(&format!("bench-{i}"))).collect(),
    };
    // The directory (schedules, clinicians, locations) loads at start-up; wait for it, and for
    // the start-up reconcile, which reads every appointment once (and drops cached slots of
    // clinicians whose appointments it had not seen): steady state, not start-up, is measured.
    assert_eq!(running.get("/v1/locations").await.status(), 200);
    let mut reads = f64::NAN;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let metrics = running.get("/metrics").await.text().await.unwrap();
        let now: f64 = metrics
            .lines()
            .filter(|l| l.contains("operation=\"Appointment.search\""))
            .filter(|l| l.starts_with("slotgate_canvas_requests_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if now == reads {
            break;
        }
        reads = now;
    }
    running
}

impl Running {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }

    async fn answered(&self, path: &str) {
        let r = self.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        let _ = r.bytes().await;
    }
}

async fn run(clinicians: usize) {
    let seconds = env("BENCH_SECONDS", 10);
    let connections = env("BENCH_CONNECTIONS", 32) as usize;
    let rate = env("BENCH_RATE", 1000);
    // A network of hundreds of clinicians gives slotgate the Canvas budget to match: one cold
    // question reads every schedule, and the default (100 calls a second, 100 in flight) would
    // make it wait seconds for the budget, which is the budget working, not the fan-out.
    let budget = if clinicians > 100 {
        (
            1000,
            "[canvas]\nrequests_per_second = 1000\nmax_concurrency = 500\n",
        )
    } else {
        (100, "")
    };
    let app = start(clinicians, LATENCY_MS, budget.1, connections).await;
    let schedules = app.control.clinic().schedules().len();
    println!(
        "\n== {clinicians} clinicians, {schedules} schedules, +{LATENCY_MS} ms Canvas latency; {} CPUs shared by server, sandbox and load",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    if !budget.1.is_empty() {
        println!("(at this size: [canvas] requests_per_second = 1000, max_concurrency = 500)");
    }
    cold(&app, schedules, budget.0).await;

    // Warm: our loop, then oha, on the same server.
    let warm = question(1, 7);
    app.answered(&warm).await;
    let health = load::closed_loop(
        &app.client,
        &format!("{}/healthz", app.base),
        &app.tokens,
        seconds,
    )
    .await;
    println!(
        "{}",
        health.line(&format!("ours: /healthz, {connections} connections"))
    );
    app.answered(&warm).await;
    let url = format!("{}{warm}", app.base);
    let avail = load::closed_loop(&app.client, &url, &app.tokens, seconds).await;
    println!(
        "{}",
        avail.line(&format!("ours: availability, {connections} connections"))
    );
    println!(
        "ours: availability = {:.0} % of /healthz (target >= 50 %)",
        100.0 * avail.rate() / health.rate()
    );
    let fixed = load::open_loop(&app.client, &url, &app.token, rate, seconds).await;
    println!(
        "{}",
        fixed.line(&format!("ours: availability at {rate} req/s"))
    );
    for (what, stats) in [
        ("/healthz", &health),
        ("availability", &avail),
        ("fixed rate", &fixed),
    ] {
        assert_eq!(stats.errors, 0, "{what}: {} requests failed", stats.errors);
    }
    if !oha::available() {
        println!("oha is not installed (cargo install oha --locked): only our own loop measured");
        return;
    }
    let external = |url: String, rate: Option<u64>| {
        let token = app.token.clone();
        tokio::task::spawn_blocking(move || oha::run(&url, &token, connections, seconds, rate))
    };
    let health = external(format!("{}/healthz", app.base), None)
        .await
        .unwrap();
    println!(
        "{}",
        health.line(&format!("oha: /healthz, {connections} connections"))
    );
    app.answered(&warm).await;
    let avail = external(url.clone(), None).await.unwrap();
    println!(
        "{}",
        avail.line(&format!("oha: availability, {connections} connections"))
    );
    println!(
        "oha: availability = {:.0} % of /healthz (target >= 50 %)",
        100.0 * avail.rate / health.rate
    );
    app.answered(&warm).await;
    let fixed = external(url, Some(rate)).await.unwrap();
    println!(
        "{}",
        fixed.line(&format!("oha: availability at {rate} req/s"))
    );
    println!("(target: p99 < 10 ms at {rate} req/s)");
    for (what, o) in [
        ("/healthz", &health),
        ("availability", &avail),
        ("fixed rate", &fixed),
    ] {
        assert_eq!(o.failures, 0, "oha {what}: {} failures", o.failures);
    }
}

/// Cold questions, the sandbox's floor for the same reads, and amplification.
async fn cold(app: &Running, schedules: usize, per_second: usize) {
    let control = &app.control;
    // Each cold question spends one Slot read per schedule of slotgate's default budget of 100
    // Canvas calls a second: a pause before each lets that budget refill, so that the numbers
    // show the fan-out and not the budget (which a clinic of more schedules than that does see).
    let refill = Duration::from_secs_f64((2.0 * schedules as f64 / per_second as f64).max(1.0));
    let tries = if schedules > 100 { 2 } else { 5 };
    let mut cold_ms = Vec::new();
    let mut reads = Vec::new();
    for week in 0..tries {
        tokio::time::sleep(refill).await;
        control.clear_journal();
        let t = Instant::now();
        app.answered(&question(1 + 7 * week, 7)).await;
        cold_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        // The searches it made (their further pages follow from the answers).
        reads = control
            .journal()
            .into_iter()
            .filter(|j| j.path == "/Slot" && !j.query.contains("_offset="))
            .map(|j| format!("{}/Slot?{}", app.sandbox_url, j.query))
            .collect();
    }
    cold_ms.sort_by(f64::total_cmp);
    let median = cold_ms[cold_ms.len() / 2];
    // The floor: the same Slot searches, straight to the sandbox, all at once (each following
    // its own `next` pages, as any client must).
    let token = control.issue_token();
    let mut floors = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let searches = futures::future::join_all(reads.iter().map(|first| async {
            let mut url = Some(first.clone());
            while let Some(u) = url.take() {
                let page: serde_json::Value = app
                    .client
                    .get(&u)
                    .bearer_auth(&token)
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                url = page["link"]
                    .as_array()
                    .and_then(|l| l.iter().find(|l| l["relation"] == "next"))
                    .and_then(|l| l["url"].as_str())
                    .map(|next| format!("{}{next}", app.sandbox_url));
            }
            Some(())
        }))
        .await;
        assert!(searches.iter().all(Option::is_some));
        floors.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    floors.sort_by(f64::total_cmp);
    println!(
        "cold 7-day question, {} Slot searches: median {median:.0} ms of {tries}; the sandbox's floor for them at once {:.0} ms: {:.2} x (target <= 1.5 x)",
        reads.len(),
        floors[1],
        median / floors[1]
    );
    tokio::time::sleep(refill).await;
    control.clear_journal();
    let path = question(40, 7);
    let answers =
        futures::future::join_all((0..100).map(|_| async { app.get(&path).await.status() })).await;
    assert!(answers.iter().all(|s| *s == 200));
    let mut per_schedule: BTreeMap<String, usize> = BTreeMap::new();
    let journal: Vec<_> = control
        .journal()
        .into_iter()
        .filter(|j| j.path == "/Slot")
        .collect();
    let pages = journal.len();
    // A search's further pages (`_offset`) are the same search, not another one.
    for j in journal.iter().filter(|j| !j.query.contains("_offset=")) {
        let schedule = url::form_urlencoded::parse(j.query.as_bytes())
            .find(|(k, _)| k == "schedule")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        *per_schedule.entry(schedule).or_default() += 1;
    }
    let calls: usize = per_schedule.values().sum();
    let most = per_schedule.values().max().copied().unwrap_or(0);
    println!(
        "amplification: 100 identical cold questions -> {calls} Slot searches ({pages} pages) over {} schedules (at most {most} per schedule; target 1)",
        per_schedule.len()
    );
}

/// Resident memory with `WINDOWS` slot windows cached (one-day questions over every schedule),
/// Canvas without added latency and slotgate's Canvas budget lifted so that filling is quick.
async fn memory(clinicians: usize) {
    let app = start(
        clinicians,
        0,
        "[canvas]\nrequests_per_second = 100000\nmax_concurrency = 256\n[cache]\nslot_ttl_seconds = 3600\n",
        1,
    )
    .await;
    let schedules = app.control.clinic().schedules().len();
    let questions = WINDOWS.div_ceil(schedules);
    let before = resident_mb();
    for day in 0..questions as i64 {
        app.answered(&question(1 + day, 1)).await;
    }
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let fetched: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("slotgate_slot_cache_lookups_total{outcome=\"miss\"}"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    println!(
        "memory: {fetched:.0} slot windows cached ({questions} one-day questions over {schedules} schedules): resident {:.0} MB ({before:.0} MB before) for the whole process, its embedded sandbox and this client included (target < 100 MB)",
        resident_mb()
    );
}

fn resident_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(f64::NAN);
    kb / 1024.0
}
