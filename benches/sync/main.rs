//! Calendar sync at the scale of a clinic network (see README, "Performance").
//!
//! `cargo bench --bench sync` runs two processes of its own:
//! 1. `sweep`: slotgate on Redis and its embedded sandbox's generated clinic, `BENCH_CLINICIANS`
//!    (500) clinicians with 12 visits booked on every working day from yesterday to 30 days
//!    ahead, a local webhook receiver and a Google Calendar fake (every clinician's calendar).
//!    It measures (a) the start-up sweep's duration and its Canvas calls, and (b) while that
//!    sweep and the delivery of everything it found run, 50 changes (25 bookings through
//!    slotgate, 25 made in Canvas itself, whose notification the sandbox sends), each timed
//!    from its request to its arrival at the webhook receiver. Then (1) patients first: once
//!    everything is delivered, sweeps run every 20 s, and cold availability questions and
//!    bookings are timed while one runs and between two, from a thread and connections of
//!    their own (patients' apps are not tasks in slotgate's runtime), and with `oha` when it
//!    is on the PATH (random cold questions, 10 a second, for 10 s during a sweep and 10 s
//!    between two).
//! 2. `backlog`: (c) the Redis traffic of one queue operation with 20,000 jobs queued for a
//!    sink that is down (on a Redis of its own: nothing else talks to it), and booking latency
//!    through slotgate before and during such an outage of its webhook sink.
//!
//! Knobs: BENCH_CLINICIANS, BENCH_VISITS (12), BENCH_CHANGES (50), BENCH_SAMPLES (100: patients'
//! questions and bookings while steady-state sweeps run, and as many between), BENCH_BACKLOG
//! (20000), BENCH_WORKERS (2: the benchmark's tokio worker threads).

mod receiver;
// Shared with the availability benchmark; this one runs it with random URLs.
#[allow(dead_code)]
#[path = "../availability/oha.rs"]
mod oha;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde_json::{Value, json};
use slotgate::auth::DevToken;
use slotgate::config::{Settings, Sources};
use slotgate::startup::Application;
use slotgate::store::sync::SyncStore;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let phase = std::env::var("BENCH_PHASE").unwrap_or_default();
    if phase.is_empty() {
        let me = std::env::current_exe().expect("the benchmark's own path");
        for phase in ["sweep", "backlog"] {
            let status = Command::new(&me)
                .env("BENCH_PHASE", phase)
                .status()
                .expect("the benchmark runs itself");
            assert!(status.success(), "{phase} failed");
        }
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(env("BENCH_WORKERS", 2) as usize)
        .enable_all()
        .build()
        .unwrap();
    match phase.as_str() {
        "backlog" => runtime.block_on(backlog()),
        _ => runtime.block_on(sweep()),
    }
}

/// A redis-server of the benchmark's own, on a free port.
struct Redis {
    port: u16,
    child: Child,
}

impl Redis {
    fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on the PATH (apt-get install redis-server)");
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis { port, child }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone)]
struct Running {
    base: String,
    client: reqwest::Client,
    staff: String,
    control: slotgate::sandbox::SandboxControl,
    sandbox_url: String,
    /// Patients the seeded visits leave alone.
    patients: Vec<String>,
}

const HOOK_SECRET: &str = "whsec_c2xvdGdhdGUtYmVuY2gtd2ViaG9vay1zZWNyZXQ=";
const CANVAS_SECRET: &str = "whsec_c2xvdGdhdGUtYmVuY2gtY2FudmFzLXNlY3JldA==";

async fn start(
    clinicians: usize,
    visits: usize,
    redis: &Redis,
    receiver: &receiver::Receiver,
    google: bool,
) -> Running {
    let calendars: Vec<String> = (0..clinicians)
        .map(|i| format!("\"9e{i:030x}\" = \"c{i}@clinic.example\""))
        .collect();
    let google_sink = if google {
        format!(
            "[[sync.sinks]]\nname = \"gcal\"\nkind = \"google\"\nphi = \"busy\"\nservice_account_key_file = \"{}\"\nbase_url = \"{}/calendar/v3\"\ncalendars = {{ {} }}\n",
            receiver.google_key(),
            receiver.url(),
            calendars.join(", ")
        )
    } else {
        String::new()
    };
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[sandbox]\nlisten = \"127.0.0.1:0\"\nclinicians = {clinicians}\nvisits_per_day = {visits}\n\
         [booking]\nmin_notice_minutes = 0\nmax_active_per_patient = 1000\nslot_id_secret = \"a slot id secret for the sync benchmark\"\n[telemetry]\nlog_filter = \"error\"\n\
         [rate_limit]\nbrowse_per_minute = 1000000000\nbook_per_minute = 1000000\n\
         [canvas]\nrequests_per_second = 200\n\
         [state]\nbackend = \"redis\"\nredis_url = \"{redis}\"\nkey_prefix = \"bench:\"\n\
         [sync]\ncanvas_webhook_secret = \"{CANVAS_SECRET}\"\nreconcile_interval_seconds = {interval}\n\
         [[sync.sinks]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"{hooks}/hooks\"\nsecret = \"{HOOK_SECRET}\"\nphi = \"neutral\"\n\
         {google_sink}",
        redis = redis.url(),
        hooks = receiver.url(),
        // A sweep every 20 s in the sweep benchmark, so that steady-state sweeps (nothing new
        // to deliver) run between the measurements; none soon in the backlog one.
        interval = if google { 20 } else { 3600 },
    );
    let settings = Settings::load(&Sources {
        file: None,
        environment: false,
        overrides: &[&config],
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
    let staff = minter
        .mint(
            "bench-staff",
            None,
            "scheduling.read scheduling.book scheduling.staff scheduling.admin",
            36_000,
        )
        .unwrap();
    let patients = control
        .clinic()
        .patients
        .iter()
        .filter(|p| p.active)
        .take(slotgate::sandbox::clinic::generated::UNBOOKED_PATIENTS)
        .map(|p| p.id.to_string())
        .collect();
    let running = Running {
        base,
        client: reqwest::Client::new(),
        staff,
        control,
        sandbox_url,
        patients,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while running.get("/v1/locations").await.status() != 200 {
        assert!(Instant::now() < deadline, "slotgate never became ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    running
}

impl Running {
    /// The same handles over new connections, for use on another runtime (a connection is
    /// driven by the runtime that opened it).
    fn with_own_connections(&self) -> Running {
        Running {
            client: reqwest::Client::new(),
            ..self.clone()
        }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.staff)
            .send()
            .await
            .unwrap()
    }

    async fn metric(&self, name: &str, labels: &str) -> f64 {
        let text = self.get("/metrics").await.text().await.unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with(name) && l.contains(labels))
            .filter(|l| l[name.len()..].starts_with(['{', ' ']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Whether a sweep is running.
    async fn sweeping(&self) -> bool {
        self.metric("slotgate_sync_sweep_progress_ratio", "").await < 1.0
    }

    /// Seconds slotgate has spent waiting for Canvas on `operation`, in all.
    async fn canvas_seconds(&self, operation: &str) -> f64 {
        self.metric(
            "slotgate_canvas_request_duration_seconds_sum",
            &format!("operation=\"{operation}\""),
        )
        .await
    }

    /// A free telehealth slot of clinician `i` a few days ahead.
    async fn slot(&self, i: usize) -> Value {
        let today = Timestamp::now()
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .date();
        let (start, end) = (
            today.saturating_add(jiff::ToSpan::days(3)),
            today.saturating_add(jiff::ToSpan::days(9)),
        );
        let path = format!(
            "/v1/availability?reason=FLUP&duration=30&state=CA&modality=telehealth&start={start}&end={end}&practitioner=9e{i:030x}&limit=20"
        );
        let answer: Value = self.get(&path).await.json().await.unwrap();
        answer["slots"]
            .as_array()
            .and_then(|s| s.get(i % 7).or(s.first()))
            .cloned()
            .unwrap_or_else(|| panic!("clinician {i} has no slot: {answer}"))
    }

    /// Books through slotgate; the appointment id and the HTTP round trip.
    async fn book(&self, slot: &Value, patient: &str) -> (String, Duration) {
        let sent = Instant::now();
        let r = self
            .client
            .post(format!("{}/v1/appointments", self.base))
            .bearer_auth(&self.staff)
            .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
            .json(&json!({"slot_id": slot["slot_id"], "reason_code": "FLUP", "patient_id": patient, "patient_state": "CA"}))
            .send()
            .await
            .unwrap();
        let took = sent.elapsed();
        let status = r.status();
        let body: Value = r.json().await.unwrap_or_default();
        assert_eq!(status, 201, "{body}");
        (body["id"].as_str().unwrap_or_default().to_owned(), took)
    }

    /// Books in Canvas itself (the sandbox then notifies slotgate, as the plugin would).
    async fn book_in_canvas(&self, slot: &Value, patient: &str) -> String {
        let practitioner = slot["practitioner"]["id"].as_str().unwrap();
        let location = slot["location"]["id"].as_str().unwrap();
        let r = self
            .client
            .post(format!("{}/Appointment", self.sandbox_url))
            .bearer_auth(self.control.issue_token())
            .json(&json!({
                "resourceType": "Appointment", "status": "booked",
                "appointmentType": {"coding": [{"system": "http://snomed.info/sct", "code": "448337001"}]},
                "supportingInformation": [{"reference": format!("Location/{location}")}],
                "start": slot["start"], "end": slot["end"],
                "participant": [
                    {"actor": {"reference": format!("Patient/{patient}")}, "status": "accepted"},
                    {"actor": {"reference": format!("Practitioner/{practitioner}")}, "status": "accepted"}
                ]
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        r.headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .and_then(|l| l.split("/Appointment/").nth(1))
            .and_then(|rest| rest.split('/').next())
            .unwrap()
            .to_owned()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

async fn sweep() {
    let clinicians = env("BENCH_CLINICIANS", 500) as usize;
    let visits = env("BENCH_VISITS", 12) as usize;
    let changes = env("BENCH_CHANGES", 50) as usize;
    let redis = Redis::start();
    let receiver = receiver::Receiver::start().await;
    let started = Instant::now();
    let app = start(clinicians, visits, &redis, &receiver, true).await;
    let appointments = app.control.appointments().len();
    println!(
        "\n== sync at scale: {clinicians} clinicians, {appointments} appointments in the sandbox, Redis, a webhook receiver and a Google fake; {} CPUs shared by everything",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!("ready after {}", ms(started.elapsed()));
    // (b) While the sweep and the delivery of what it finds run: changes to the receiver.
    let mut arrivals = Vec::new();
    let mut during_sweep = 0;
    let (mut asked, mut booked) = (Vec::new(), Vec::new());
    for n in 0..changes {
        let clinician = (n * 7919) % clinicians;
        let question = Instant::now();
        let slot = app.slot(clinician).await;
        asked.push(question.elapsed());
        let patient = &app.patients[n % app.patients.len()];
        if app.metric("slotgate_sync_sweep_progress_ratio", "").await < 1.0 {
            during_sweep += 1;
        }
        let sent = Instant::now();
        let id = if n % 2 == 0 {
            let (id, took) = app.book(&slot, patient).await;
            booked.push(took);
            id
        } else {
            app.book_in_canvas(&slot, patient).await
        };
        let arrived = receiver.wait_for(&id, Duration::from_secs(60)).await;
        arrivals.push(arrived.map(|at| at.duration_since(sent)));
    }
    println!("    (changes done {} after start)", ms(started.elapsed()));
    let late = arrivals.iter().filter(|a| a.is_none()).count();
    let mut times: Vec<Duration> = arrivals.into_iter().flatten().collect();
    times.sort();
    println!(
        "(b) {changes} changes (half booked through slotgate, half in Canvas with a notification), {during_sweep} of them asked while the sweep ran, behind {:.0} queued sweep jobs: to the webhook receiver p50 {}, p99 {}, max {}; {late} not within 60 s",
        app.metric("slotgate_sync_pending", "").await,
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(times.last().copied().unwrap_or_default()),
    );
    // (a) The start-up sweep: its duration and Canvas calls.
    let deadline = Instant::now() + Duration::from_secs(1800);
    while app.metric("slotgate_sync_sweep_duration_seconds", "").await <= 0.0 {
        assert!(Instant::now() < deadline, "the sweep never finished");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("    (sweep done {} after start)", ms(started.elapsed()));
    let took = app.metric("slotgate_sync_sweep_duration_seconds", "").await;
    let searches = app
        .metric(
            "slotgate_canvas_requests_total",
            "operation=\"Appointment.search\"",
        )
        .await;
    let reads = app
        .metric(
            "slotgate_canvas_requests_total",
            "operation=\"Appointment.read\"",
        )
        .await;
    println!(
        "(a) sweep of {clinicians} clinicians and {appointments} appointments: {took:.1} s, {searches:.0} Appointment searches ({:.2} a clinician), {reads:.0} single reads (the changes above)",
        searches / clinicians as f64
    );
    println!(
        "    queued after it: {:.0} jobs; webhook messages so far {}, Google requests {}",
        app.metric("slotgate_sync_pending", "").await,
        receiver.hooks(),
        receiver.google()
    );
    // Patients first: once everything is delivered, sweeps keep running every 20 s (the steady
    // state: nothing new to send). Questions and bookings asked while one runs, against those
    // asked between two (cold questions both times: a clinician not asked before).
    let deadline = Instant::now() + Duration::from_secs(1800);
    while app.metric("slotgate_sync_pending", "").await > 0.0 {
        assert!(Instant::now() < deadline, "the deliveries never finished");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Patients' apps are other processes: asked from a thread and connections of their own.
    let patients = app.with_own_connections();
    tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("the patients' runtime")
            .block_on(patients_first(&patients, clinicians))
    })
    .await
    .expect("patients' questions");
    patients_first_oha(&app, clinicians).await;
    asked.sort();
    booked.sort();
    println!(
        "(1) patients first, the first full sync: a cold availability question p50 {} p95 {}, a booking p50 {} p95 {}, while it ran",
        ms(percentile(&asked, 0.5)),
        ms(percentile(&asked, 0.95)),
        ms(percentile(&booked, 0.5)),
        ms(percentile(&booked, 0.95)),
    );
}

/// (1) Cold questions and bookings while a steady-state sweep runs and between two.
async fn patients_first(app: &Running, clinicians: usize) {
    let (mut asked_during, mut booked_during) = (Vec::new(), Vec::new());
    let (mut asked_after, mut booked_after) = (Vec::new(), Vec::new());
    // Of each question, the time its Slot searches spent in Canvas (the sandbox, here on the
    // same two cores): what slotgate's own part is, apart from Canvas's.
    let (mut canvas_during, mut canvas_after) = (Vec::new(), Vec::new());
    let samples = env("BENCH_SAMPLES", 100) as usize;
    let until = Instant::now() + Duration::from_secs(300);
    let mut n = 0;
    while Instant::now() < until && (asked_during.len() < samples || asked_after.len() < samples) {
        n += 1;
        let clinician = (n * 7919 + 1) % clinicians;
        let sweeping = app.sweeping().await;
        let in_canvas = app.canvas_seconds("Slot.search").await;
        let question = Instant::now();
        let slot = app.slot(clinician).await;
        let took = question.elapsed();
        let in_canvas =
            Duration::from_secs_f64((app.canvas_seconds("Slot.search").await - in_canvas).max(0.0));
        let booking = app
            .book(&slot, &app.patients[n % app.patients.len()])
            .await
            .1;
        let (a, b, c) = if sweeping {
            (&mut asked_during, &mut booked_during, &mut canvas_during)
        } else {
            (&mut asked_after, &mut booked_after, &mut canvas_after)
        };
        a.push(took);
        b.push(booking);
        c.push(in_canvas);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "(1) patients first, steady-state sweeps: a cold availability question p50 {} p95 {} while a sweep ran ({}), p50 {} p95 {} between sweeps ({}); a booking p50 {} p95 {} while, p50 {} p95 {} between",
        ms(percentile(&sorted(&asked_during), 0.5)),
        ms(percentile(&sorted(&asked_during), 0.95)),
        asked_during.len(),
        ms(percentile(&sorted(&asked_after), 0.5)),
        ms(percentile(&sorted(&asked_after), 0.95)),
        asked_after.len(),
        ms(percentile(&sorted(&booked_during), 0.5)),
        ms(percentile(&sorted(&booked_during), 0.95)),
        ms(percentile(&sorted(&booked_after), 0.5)),
        ms(percentile(&sorted(&booked_after), 0.95)),
    );
    println!(
        "    of those questions, time in Canvas's Slot searches: p50 {} p95 {} while a sweep ran, p50 {} p95 {} between",
        ms(percentile(&sorted(&canvas_during), 0.5)),
        ms(percentile(&sorted(&canvas_during), 0.95)),
        ms(percentile(&sorted(&canvas_after), 0.5)),
        ms(percentile(&sorted(&canvas_after), 0.95)),
    );
}

/// (1) again, measured by `oha`: random cold questions (one of 256 clinicians, a week's range
/// of its own for each run) at 10 a second for 10 s, once while a steady-state sweep runs and
/// once between two sweeps.
async fn patients_first_oha(app: &Running, clinicians: usize) {
    if !oha::available() {
        println!(
            "    oha is not installed (cargo install oha --locked): only our own loop measured"
        );
        return;
    }
    if clinicians < 256 {
        println!("    oha skipped: its questions pick among 256 clinicians");
        return;
    }
    let today = Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    let mut lines = Vec::new();
    for (sweeping, ahead) in [(true, 10), (false, 17)] {
        let (start, end) = (
            today.saturating_add(jiff::ToSpan::days(ahead)),
            today.saturating_add(jiff::ToSpan::days(ahead + 6)),
        );
        // oha's patterns take a dot or a question mark literally in a class only.
        let pattern = format!(
            "{}/v1/availability[?]reason=FLUP&duration=30&state=CA&modality=telehealth&start={start}&end={end}&practitioner=9e0{{28}}[0-9a-f]{{2}}&limit=20",
            app.base.replace('.', "[.]")
        );
        let mut tries = 0;
        let report = loop {
            tries += 1;
            assert!(tries <= 5, "no 10 s without a change of sweep state");
            // From the moment the state begins: a sweep lasts longer than 10 s, and so does the
            // pause between two.
            while app.sweeping().await == sweeping {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            while app.sweeping().await != sweeping {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let (pattern, token) = (pattern.clone(), app.staff.clone());
            let report = tokio::task::spawn_blocking(move || {
                oha::run_with(&pattern, &token, 2, 10, Some(10), &["--rand-regex-url"])
            })
            .await
            .expect("oha ran");
            if app.sweeping().await == sweeping {
                break report;
            }
        };
        assert_eq!(report.failures, 0, "oha: {} failures", report.failures);
        lines.push(report.line(if sweeping {
            "oha: cold questions while a sweep ran"
        } else {
            "oha: cold questions between sweeps"
        }));
    }
    for line in lines {
        println!("    {line}");
    }
}

fn sorted(v: &[Duration]) -> Vec<Duration> {
    let mut v = v.to_vec();
    v.sort();
    v
}

async fn backlog() {
    let jobs = env("BENCH_BACKLOG", 20_000) as usize;
    // (c) One queue operation's Redis traffic, on a Redis nothing else talks to.
    let quiet = Redis::start();
    let client = redis::Client::open(quiet.url()).unwrap();
    let conn = slotgate::store::redis::connection(&client).unwrap();
    let store = slotgate::store::sync::redis::RedisSyncStore::new(conn, "bench:");
    let now = Timestamp::now();
    let job = |n: usize| slotgate::store::sync::Job {
        id: uuid::Uuid::new_v4().to_string(),
        sink: "ops".into(),
        appointment_id: format!("b00c0000-0000-4000-8000-{n:012}"),
        practitioner: "9e000000000000000000000000000001".into(),
        desired: Some(json!({"title": "Patient visit", "start": now.to_string(), "n": n})),
        desired_hash: Some(format!("h{n}")),
        message_id: format!("msg_{n}"),
        farewell: None,
        must_send: false,
        attempts: 0,
        not_before: now,
        last_error: None,
        created_at: now,
        lane: slotgate::store::sync::Lane::Fast,
    };
    let filled = Instant::now();
    for n in 0..jobs {
        store.enqueue(job(n)).await.unwrap();
    }
    println!(
        "\n== backlog: {jobs} jobs queued for one sink in {}",
        ms(filled.elapsed())
    );
    let mut info = redis::Client::open(quiet.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let traffic = |text: String| -> u64 {
        text.lines()
            .filter(|l| {
                l.starts_with("total_net_input_bytes:") || l.starts_with("total_net_output_bytes:")
            })
            .filter_map(|l| l.split(':').nth(1)?.trim().parse::<u64>().ok())
            .sum()
    };
    let mut measure =
        async |what: &str, op: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>>| {
            let a: String = redis::cmd("INFO")
                .arg("stats")
                .query_async(&mut info)
                .await
                .unwrap();
            let b: String = redis::cmd("INFO")
                .arg("stats")
                .query_async(&mut info)
                .await
                .unwrap();
            op.await;
            let c: String = redis::cmd("INFO")
                .arg("stats")
                .query_async(&mut info)
                .await
                .unwrap();
            let overhead = traffic(b.clone()) - traffic(a);
            let moved = traffic(c)
                .saturating_sub(traffic(b))
                .saturating_sub(overhead);
            println!("(c) {what}: {moved} bytes of Redis traffic");
        };
    let later = now + jiff::SignedDuration::from_secs(30);
    measure(
        "enqueue one job",
        Box::pin(async { store.enqueue(job(jobs + 1)).await.map(drop).unwrap() }),
    )
    .await;
    measure(
        "lease 8 jobs",
        Box::pin(async {
            store
                .lease("ops".into(), now, 8, later)
                .await
                .map(drop)
                .unwrap()
        }),
    )
    .await;
    let leased = store.lease("ops".into(), now, 1, later).await.unwrap();
    let record = slotgate::store::sync::SinkRecord {
        delivered: Some("h".into()),
        external_id: None,
    };
    let one = leased[0].clone();
    measure(
        "record one delivery",
        Box::pin(async { store.delivered(one, record, now).await.unwrap() }),
    )
    .await;
    measure(
        "read one sink's stats",
        Box::pin(async { store.stats("ops".into()).await.map(drop).unwrap() }),
    )
    .await;
    measure(
        "an idle poll (nothing due)",
        Box::pin(async {
            store
                .lease(
                    "ops".into(),
                    now - jiff::SignedDuration::from_hours(1),
                    8,
                    later,
                )
                .await
                .map(drop)
                .unwrap()
        }),
    )
    .await;
    drop(quiet);

    // Booking latency before and during an outage of the webhook sink with that backlog.
    let redis = Redis::start();
    let receiver = receiver::Receiver::start().await;
    let app = start(50, 0, &redis, &receiver, false).await;
    let bookings = 30;
    let measure_bookings = async |round: usize| {
        let mut times = Vec::new();
        for n in 0..bookings {
            let slot = app.slot((n * 13 + round * 17) % 50).await;
            let patient = &app.patients[n % app.patients.len()];
            times.push(app.book(&slot, patient).await.1);
        }
        times.sort();
        times
    };
    let before = measure_bookings(0).await;
    receiver.set_down(true);
    let client = redis::Client::open(redis.url()).unwrap();
    let conn = slotgate::store::redis::connection(&client).unwrap();
    let shared = slotgate::store::sync::redis::RedisSyncStore::new(conn, "bench:");
    // A cancellation for each, which the receiver must hear (and cannot, while it is down).
    for n in 0..jobs {
        let mut cancelled = job(n);
        cancelled.desired = None;
        cancelled.desired_hash = None;
        cancelled.must_send = true;
        shared.enqueue(cancelled).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pending = app.metric("slotgate_sync_pending", "").await;
    let during = measure_bookings(1).await;
    println!(
        "(c) booking through slotgate, {bookings} each: without a backlog p50 {} p95 {}; with the sink down and {pending:.0} jobs queued p50 {} p95 {}",
        ms(percentile(&before, 0.5)),
        ms(percentile(&before, 0.95)),
        ms(percentile(&during, 0.5)),
        ms(percentile(&during, 0.95)),
    );
}
