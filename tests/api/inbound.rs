//! Calendar sync in: meetings in a clinician's Google or Outlook calendar (stateful wiremock
//! fakes that answer as those APIs document) become Canvas Other Events in the sandbox, and
//! availability loses the time they block.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::availability::OPEN_WINDOW;
use crate::helpers::{TestApp, spawn_app_with};
use crate::seed::*;
use crate::sync::{eventually, google_key, okafor_starts};

const CALENDAR: &str = "okafor@clinic.example";
const PUBLIC: &str = "https://slotgate.example.org";

/// Google Calendar for one calendar: events with a change sequence, sync tokens `t<seq>`,
/// two events per page, and a switch that makes the next token-based read `410 Gone`.
#[derive(Default)]
struct GoogleState {
    events: BTreeMap<String, (u64, Value)>,
    seq: u64,
    gone: bool,
}

struct FakeGoogle {
    server: MockServer,
    state: Arc<Mutex<GoogleState>>,
}

impl FakeGoogle {
    async fn start() -> Self {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(GoogleState::default()));
        Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"access_token": "ya29.fake", "expires_in": 3599})),
            )
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path_regex("^/calendar/v3/calendars/[^/]+/events/watch$"))
            .respond_with(|r: &Request| {
                let body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
                let ttl: i64 = body["params"]["ttl"].as_str().and_then(|t| t.parse().ok()).unwrap_or(3600);
                let expiration = jiff::Timestamp::now().as_millisecond() + ttl * 1000;
                ResponseTemplate::new(200).set_body_json(json!({
                    "kind": "api#channel", "id": body["id"], "resourceId": format!("res-{}", body["id"].as_str().unwrap_or("")),
                    "resourceUri": "https://www.googleapis.com/calendar/v3/calendars/okafor/events", "expiration": expiration.to_string()
                }))
            })
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/calendar/v3/channels/stop"))
            .respond_with(ResponseTemplate::new(204))
            .mount(&server)
            .await;
        let s = state.clone();
        Mock::given(method("GET"))
            .and(path_regex("^/calendar/v3/calendars/[^/]+/events$"))
            .respond_with(move |r: &Request| list(&s.lock().unwrap(), r))
            .mount(&server)
            .await;
        // slotgate's outbound sink writes here too (marked slotgate = "1").
        let s = state.clone();
        Mock::given(method("POST"))
            .and(path_regex("^/calendar/v3/calendars/[^/]+/events$"))
            .respond_with(move |r: &Request| {
                let mut body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
                let mut st = s.lock().unwrap();
                let id = format!("out{}", st.seq + 1);
                body["id"] = json!(id);
                st.seq += 1;
                let seq = st.seq;
                st.events.insert(id, (seq, body.clone()));
                ResponseTemplate::new(200).set_body_json(body)
            })
            .mount(&server)
            .await;
        Mock::given(method("PATCH"))
            .and(path_regex("^/calendar/v3/calendars/[^/]+/events/[^/]+$"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
            .mount(&server)
            .await;
        Mock::given(method("DELETE"))
            .and(path_regex("^/calendar/v3/calendars/[^/]+/events/[^/]+$"))
            .respond_with(ResponseTemplate::new(204))
            .mount(&server)
            .await;
        Self { server, state }
    }

    /// Adds or changes a meeting, as a clinician would in Google Calendar.
    fn put(&self, event: Value) {
        let mut st = self.state.lock().unwrap();
        st.seq += 1;
        let seq = st.seq;
        let id = event["id"].as_str().unwrap().to_owned();
        st.events.insert(id, (seq, event));
    }

    /// Deletes a meeting: Google keeps it as `cancelled` for incremental readers.
    fn delete(&self, id: &str) {
        let mut st = self.state.lock().unwrap();
        st.seq += 1;
        let seq = st.seq;
        st.events.insert(
            id.to_owned(),
            (seq, json!({"id": id, "status": "cancelled"})),
        );
    }

    fn expire_sync_tokens(&self) {
        self.state.lock().unwrap().gone = true;
    }

    async fn requests(&self, verb: &str, suffix: &str) -> Vec<Request> {
        self.server
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.method.as_str() == verb && r.url.path().ends_with(suffix))
            .collect()
    }

    /// Reads of the event list that slotgate's inbound side made (not the sink's lookups).
    async fn reads(&self) -> Vec<Request> {
        self.requests("GET", "/events")
            .await
            .into_iter()
            .filter(|r| {
                !r.url
                    .query()
                    .unwrap_or("")
                    .contains("privateExtendedProperty")
            })
            .collect()
    }
}

fn list(st: &GoogleState, r: &Request) -> ResponseTemplate {
    let q: BTreeMap<String, String> = r.url.query_pairs().into_owned().collect();
    if let Some(property) = q.get("privateExtendedProperty") {
        let (k, v) = property.split_once('=').unwrap();
        let items: Vec<&Value> = st
            .events
            .values()
            .map(|(_, e)| e)
            .filter(|e| e["extendedProperties"]["private"][k] == v)
            .collect();
        return ResponseTemplate::new(200).set_body_json(json!({"items": items}));
    }
    assert_eq!(q.get("singleEvents").map(String::as_str), Some("true"));
    let (since, all) = match q.get("syncToken") {
        Some(t) => {
            if st.gone {
                return ResponseTemplate::new(410).set_body_json(
                    json!({"error": {"code": 410, "message": "Sync token is no longer valid, a full sync is required."}}),
                );
            }
            assert!(!q.contains_key("timeMin"), "syncToken excludes timeMin");
            assert_eq!(q.get("showDeleted").map(String::as_str), Some("true"));
            (t.trim_start_matches('t').parse::<u64>().unwrap(), true)
        }
        None => {
            assert!(q.contains_key("timeMin") && q.contains_key("timeMax"));
            (0, false)
        }
    };
    let items: Vec<Value> = st
        .events
        .values()
        .filter(|(seq, e)| *seq > since && (all || e["status"] != "cancelled"))
        .map(|(_, e)| e.clone())
        .collect();
    let offset: usize = q
        .get("pageToken")
        .map_or(0, |p| p.trim_start_matches('p').parse().unwrap());
    let page: Vec<&Value> = items.iter().skip(offset).take(2).collect();
    let mut body = json!({"kind": "calendar#events", "items": page});
    if offset + 2 < items.len() {
        body["nextPageToken"] = json!(format!("p{}", offset + 2));
    } else {
        body["nextSyncToken"] = json!(format!("t{}", st.seq));
    }
    ResponseTemplate::new(200).set_body_json(body)
}

fn meeting(id: &str, start: &Value, end: &Value, title: &str) -> Value {
    json!({"id": id, "status": "confirmed", "summary": title, "transparency": "opaque",
           "start": {"dateTime": start, "timeZone": "America/Los_Angeles"},
           "end": {"dateTime": end, "timeZone": "America/Los_Angeles"}})
}

fn google_config(g: &FakeGoogle, extra: &str) -> String {
    format!(
        r#"[sync]
public_url = "{PUBLIC}"
reconcile_interval_seconds = 3600
{extra}
[[sync.sinks]]
name = "gcal"
kind = "google"
phi = "busy"
service_account_key_file = "{key}"
base_url = "{uri}/calendar/v3"
calendars = {{ "{OKAFOR}" = "{CALENDAR}" }}
[[sync.inbound]]
kind = "google"
practitioner_id = "{OKAFOR}"
calendar = "{CALENDAR}"
sink = "gcal"
"#,
        key = google_key(&g.server),
        uri = g.server.uri(),
    )
}

/// The Other Events the sandbox holds for a meeting.
fn mirrors(app: &TestApp, kind: &str, event: &str) -> Vec<slotgate::canvas::fhir::Appointment> {
    let value = format!("{kind}:{CALENDAR}:{event}");
    app.sandbox
        .as_ref()
        .unwrap()
        .appointments()
        .into_iter()
        .filter(|a| {
            a.identifier.iter().any(|i| {
                i.system.as_deref() == Some("urn:slotgate:calendar-event")
                    && i.value.as_deref() == Some(value.as_str())
            })
        })
        .collect()
}

/// The watch channel slotgate opened most recently: (id, token).
async fn channel(g: &FakeGoogle) -> (String, String) {
    let watch = g.requests("POST", "/events/watch").await;
    let body: Value = serde_json::from_slice(&watch.last().expect("a watch channel").body).unwrap();
    (
        body["id"].as_str().unwrap().to_owned(),
        body["token"].as_str().unwrap().to_owned(),
    )
}

async fn push(app: &TestApp, id: &str, token: &str, state: &str) -> reqwest::Response {
    app.http
        .post(format!("{}/v1/webhooks/google", app.address))
        .header("X-Goog-Channel-ID", id)
        .header("X-Goog-Channel-Token", token)
        .header("X-Goog-Resource-State", state)
        .header("X-Goog-Resource-ID", "res")
        .header("X-Goog-Message-Number", "2")
        .send()
        .await
        .unwrap()
}

async fn started(g: &FakeGoogle, extra: &str) -> TestApp {
    let app = spawn_app_with(&[OPEN_WINDOW, &google_config(g, extra)]).await;
    eventually("the watch channel is open", || async {
        !g.requests("POST", "/events/watch").await.is_empty()
    })
    .await;
    eventually("the first full read is done", || async {
        !g.reads().await.is_empty()
    })
    .await;
    app
}

fn times(slot: &Value) -> (jiff::Timestamp, jiff::Timestamp) {
    (
        slot["start"].as_str().unwrap().parse().unwrap(),
        slot["end"].as_str().unwrap().parse().unwrap(),
    )
}

#[tokio::test]
async fn a_meeting_added_moved_and_deleted_in_google_follows_in_canvas_and_availability() {
    let g = FakeGoogle::start().await;
    let app = started(&g, "").await;
    let me = app.patient_token(crate::booking::SOFIA);
    let slot = crate::booking::a_slot(&app, &me, OKAFOR, 2).await;
    let later = crate::booking::a_slot(&app, &me, OKAFOR, 6).await;
    let (start, end) = times(&slot);
    assert!(okafor_starts(&app).await.contains(&start));
    // Added: a 2 pm meeting accepted in Google.
    g.put(meeting("m1", &slot["start"], &slot["end"], "Case review"));
    let (id, token) = channel(&g).await;
    assert_eq!(push(&app, &id, &token, "exists").await.status(), 200);
    eventually("Canvas holds the meeting", || async {
        mirrors(&app, "google", "m1").len() == 1
    })
    .await;
    let held = mirrors(&app, "google", "m1").remove(0);
    assert_eq!(held.status.as_str(), "booked");
    assert_eq!(
        (held.start.unwrap().timestamp, held.end.unwrap().timestamp),
        (start, end)
    );
    assert_eq!(held.description.as_deref(), Some("Case review"));
    let refs: Vec<&str> = held
        .participant
        .iter()
        .filter_map(|p| p.actor.reference.as_deref())
        .collect();
    assert_eq!(refs, [format!("Practitioner/{OKAFOR}")], "no patient");
    assert_eq!(
        held.appointment_type.as_ref().unwrap().coding[0]
            .code
            .as_deref(),
        Some("272379006"),
        "the Generic Event type"
    );
    eventually("availability loses the time", || async {
        !okafor_starts(&app).await.contains(&start)
    })
    .await;
    // Moved to a later slot: the same Canvas appointment, new times.
    g.put(meeting("m1", &later["start"], &later["end"], "Case review"));
    push(&app, &id, &token, "exists").await;
    let (later_start, later_end) = times(&later);
    eventually("Canvas moved it", || async {
        mirrors(&app, "google", "m1")
            .first()
            .and_then(|a| a.start.as_ref())
            .is_some_and(|s| s.timestamp == later_start)
    })
    .await;
    let moved = mirrors(&app, "google", "m1");
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].id, held.id, "moved, not recreated");
    assert_eq!(moved[0].end.as_ref().unwrap().timestamp, later_end);
    let puts = app
        .sandbox
        .as_ref()
        .unwrap()
        .journal()
        .into_iter()
        .filter(|j| j.method == "PUT" && j.path.ends_with(held.id.as_deref().unwrap()))
        .count();
    assert_eq!(puts, 1);
    eventually("the old time is free again, the new one taken", || async {
        let offered = okafor_starts(&app).await;
        offered.contains(&start) && !offered.contains(&later_start)
    })
    .await;
    // Deleted in Google: cancelled in Canvas.
    g.delete("m1");
    push(&app, &id, &token, "exists").await;
    eventually("Canvas cancelled it", || async {
        mirrors(&app, "google", "m1")
            .first()
            .is_some_and(|a| a.status.as_str() == "cancelled")
    })
    .await;
    eventually("its time is offered again", || async {
        okafor_starts(&app).await.contains(&later_start)
    })
    .await;
    let admin = app.token(None, "scheduling.admin");
    let status: Value = app
        .get("/v1/admin/sync", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    let inbound = &status["inbound"][0];
    assert_eq!(
        (&inbound["kind"], &inbound["calendar"], &inbound["mirrored"]),
        (&json!("google"), &json!(CALENDAR), &json!(0))
    );
    assert!(inbound["channel_expires_at"].is_string() && inbound["last_error"].is_null());
}

#[tokio::test]
async fn pushes_are_verified_and_the_handshake_answered() {
    let g = FakeGoogle::start().await;
    let app = started(&g, "").await;
    let (id, token) = channel(&g).await;
    // The handshake right after the watch: 200, nothing read (counted once the first read is
    // over: a loaded machine may still be at it).
    let reads = settled(|| async { g.reads().await.len() }).await;
    assert_eq!(push(&app, &id, &token, "sync").await.status(), 200);
    // Strangers: 401 and nothing read, nothing asked of Canvas.
    app.sandbox.as_ref().unwrap().clear_journal();
    for (cid, tok) in [
        (id.as_str(), "not-the-token"),
        ("someone-else", token.as_str()),
        ("", ""),
    ] {
        let r = push(&app, cid, tok, "exists").await;
        assert_eq!(r.status(), 401, "{cid}/{tok}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "unauthorized");
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(g.reads().await.len(), reads, "no calendar read");
    assert!(
        app.sandbox.as_ref().unwrap().journal().is_empty(),
        "no Canvas call"
    );
    // A real push is answered at once, the reading happens after.
    let asked = std::time::Instant::now();
    assert_eq!(push(&app, &id, &token, "exists").await.status(), 200);
    assert!(asked.elapsed() < Duration::from_secs(1));
    eventually("read after the push", || async {
        g.reads().await.len() > reads
    })
    .await;
    let read = g.reads().await.pop().unwrap();
    assert!(read.url.query().unwrap().contains("syncToken=t"));
    assert_eq!(
        read.headers.get("authorization").unwrap(),
        "Bearer ya29.fake"
    );
}

#[tokio::test]
async fn channels_are_opened_renewed_and_closed() {
    let g = FakeGoogle::start().await;
    let mut app = started(&g, "channel_ttl_seconds = 4\n").await;
    let first = g.requests("POST", "/events/watch").await.remove(0);
    assert_eq!(
        first.url.path(),
        format!("/calendar/v3/calendars/{CALENDAR}/events/watch")
    );
    let body: Value = serde_json::from_slice(&first.body).unwrap();
    assert!(uuid::Uuid::parse_str(body["id"].as_str().unwrap()).is_ok());
    assert_eq!(body["type"], "web_hook");
    assert_eq!(body["address"], format!("{PUBLIC}/v1/webhooks/google"));
    assert_eq!(body["params"], json!({"ttl": "4"}));
    assert!(body["token"].as_str().unwrap().len() >= 32);
    // A quarter of its life before it ends, a new channel, and the old one stopped.
    eventually("renewed", || async {
        g.requests("POST", "/events/watch").await.len() >= 2
    })
    .await;
    eventually("the old one stopped", || async {
        g.requests("POST", "/channels/stop").await.iter().any(|r| {
            let b: Value = serde_json::from_slice(&r.body).unwrap();
            b["id"] == body["id"]
                && b["resourceId"] == format!("res-{}", body["id"].as_str().unwrap())
        })
    })
    .await;
    let (old_id, old_token) = (
        body["id"].as_str().unwrap().to_owned(),
        body["token"].as_str().unwrap().to_owned(),
    );
    assert_eq!(
        push(&app, &old_id, &old_token, "exists").await.status(),
        401,
        "a stopped channel is a stranger"
    );
    let (id, token) = channel(&g).await;
    assert_eq!(push(&app, &id, &token, "exists").await.status(), 200);
    // Shutdown closes the live channel.
    app.stop().await;
    let stops = g.requests("POST", "/channels/stop").await;
    assert!(stops.iter().any(|r| {
        let b: Value = serde_json::from_slice(&r.body).unwrap();
        b["id"] == id.as_str()
    }));
}

#[tokio::test]
async fn redelivered_pushes_and_expired_tokens_never_duplicate() {
    let g = FakeGoogle::start().await;
    let app = started(&g, "").await;
    let me = app.patient_token(crate::booking::SOFIA);
    let slot = crate::booking::a_slot(&app, &me, OKAFOR, 3).await;
    g.put(meeting("m2", &slot["start"], &slot["end"], "Supervision"));
    let (id, token) = channel(&g).await;
    push(&app, &id, &token, "exists").await;
    eventually("held", || async {
        mirrors(&app, "google", "m2").len() == 1
    })
    .await;
    // The same push, delivered again (Google retries): nothing new.
    push(&app, &id, &token, "exists").await;
    push(&app, &id, &token, "exists").await;
    // The token expires: a full read, still one Other Event.
    let reads = g.reads().await.len();
    g.expire_sync_tokens();
    push(&app, &id, &token, "exists").await;
    eventually("a full read after 410", || async {
        g.reads()
            .await
            .iter()
            .skip(reads)
            .any(|r| r.url.query().unwrap().contains("timeMin="))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mirrors(&app, "google", "m2").len(), 1);
    let creates = app
        .creates()
        .into_iter()
        .filter(|c| c.to_string().contains(":m2"))
        .count();
    assert_eq!(creates, 1, "one Canvas create");
}

#[tokio::test]
async fn existing_and_recurring_meetings_block_time_from_the_start_and_free_ones_do_not() {
    let g = FakeGoogle::start().await;
    let day = |d: i64, h: i8| {
        json!(
            days(d)
                .at(h, 0, 0, 0)
                .to_zoned_datetime(jiff::tz::TimeZone::get("America/Los_Angeles").unwrap())
                .unwrap()
                .timestamp()
                .to_string()
        )
    };
    // A weekly 1:1, expanded by Google into its occurrences (singleEvents=true), some more
    // than two to a page.
    for (n, d) in [3, 4, 5].into_iter().enumerate() {
        g.put(
            json!({"id": format!("weekly_{n}"), "recurringEventId": "weekly", "status": "confirmed",
            "summary": "1:1", "start": {"dateTime": day(d, 12)}, "end": {"dateTime": day(d, 13)}}),
        );
    }
    g.put(json!({"id": "focus", "status": "confirmed", "summary": "Focus time", "transparency": "transparent",
        "start": {"dateTime": day(3, 15)}, "end": {"dateTime": day(3, 16)}}));
    g.put(
        json!({"id": "offsite", "status": "confirmed", "summary": "Offsite",
        "start": {"date": days(6).to_string()}, "end": {"date": days(7).to_string()}}),
    );
    let app = started(&g, "").await;
    eventually("every occurrence held, with no push at all", || async {
        (0..3).all(|n| mirrors(&app, "google", &format!("weekly_{n}")).len() == 1)
    })
    .await;
    assert!(
        mirrors(&app, "google", "focus").is_empty(),
        "free time blocks nothing"
    );
    assert!(
        mirrors(&app, "google", "offsite").is_empty(),
        "all-day only when the entry says so"
    );
    let noon: jiff::Timestamp = day(4, 12).as_str().unwrap().parse().unwrap();
    assert!(!okafor_starts(&app).await.contains(&noon));
}

#[tokio::test]
async fn one_calendar_both_ways_echoes_nothing() {
    let g = FakeGoogle::start().await;
    let app = started(&g, "").await;
    // A booking through slotgate goes out to the calendar as a busy block (slotgate = "1").
    let me = app.patient_token(crate::booking::SOFIA);
    let slot = crate::booking::a_slot(&app, &me, OKAFOR, 4).await;
    let made: Value = app
        .post_json(
            "/v1/appointments",
            &me,
            &crate::booking::booking(&slot, crate::booking::SOFIA),
            Some(&crate::helpers::key()),
        )
        .await
        .json()
        .await
        .unwrap();
    let booked = made["id"].as_str().unwrap().to_owned();
    eventually("the busy block is in Google", || async {
        g.requests("POST", "/events")
            .await
            .iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains(&booked))
    })
    .await;
    // And a meeting comes in from the calendar.
    let slot = crate::booking::a_slot(&app, &me, OKAFOR, 0).await;
    g.put(meeting("m3", &slot["start"], &slot["end"], "Team meeting"));
    let (id, token) = channel(&g).await;
    push(&app, &id, &token, "exists").await;
    eventually("held", || async {
        mirrors(&app, "google", "m3").len() == 1
    })
    .await;
    let other_event = mirrors(&app, "google", "m3")[0].id.clone().unwrap();
    // Pushes for slotgate's own write, and time for any echo to happen.
    push(&app, &id, &token, "exists").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let others: Vec<_> = app
        .sandbox
        .as_ref()
        .unwrap()
        .appointments()
        .into_iter()
        .filter(|a| {
            a.identifier
                .iter()
                .any(|i| i.system.as_deref() == Some("urn:slotgate:calendar-event"))
        })
        .collect();
    assert_eq!(
        others.len(),
        1,
        "the busy block did not come back as an Other Event"
    );
    let inserts = g.requests("POST", "/events").await;
    assert!(
        !inserts
            .iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains(&other_event)),
        "the meeting's Other Event was not written back to its own calendar"
    );
}

#[tokio::test]
async fn canvas_down_means_retries_and_a_vanished_calendar_shows_in_admin() {
    let g = FakeGoogle::start().await;
    let app = started(&g, "").await;
    let me = app.patient_token(crate::booking::SOFIA);
    let slot = crate::booking::a_slot(&app, &me, OKAFOR, 5).await;
    let sandbox = app.sandbox.as_ref().unwrap();
    sandbox.set_faults(slotgate::sandbox::Faults {
        down: true,
        ..Default::default()
    });
    g.put(meeting("m4", &slot["start"], &slot["end"], "Grand rounds"));
    let (id, token) = channel(&g).await;
    assert_eq!(push(&app, &id, &token, "exists").await.status(), 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sandbox.set_faults(slotgate::sandbox::Faults::default());
    eventually("held once Canvas is back", || async {
        mirrors(&app, "google", "m4").len() == 1
    })
    .await;
    // The calendar is deleted in Google: reads answer 404; the admin view says so.
    g.server.reset().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "ya29.fake", "expires_in": 3599})),
        )
        .mount(&g.server)
        .await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_json(json!({"error": {"code": 404, "message": "Not Found"}})),
        )
        .mount(&g.server)
        .await;
    push(&app, &id, &token, "exists").await;
    let admin = app.token(None, "scheduling.admin");
    eventually("the admin view shows it", || async {
        let status: Value = app
            .get("/v1/admin/sync", Some(&admin))
            .await
            .json()
            .await
            .unwrap();
        status["inbound"][0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("404"))
    })
    .await;
    assert_eq!(app.get("/healthz", None).await.status(), 200);
    assert_eq!(
        mirrors(&app, "google", "m4").len(),
        1,
        "what was held stays held"
    );
}

// ----- Microsoft Graph -----

struct FakeGraph {
    server: MockServer,
    events: Arc<Mutex<Vec<Value>>>,
}

impl FakeGraph {
    async fn start() -> Self {
        let server = MockServer::start().await;
        let events = Arc::new(Mutex::new(Vec::<Value>::new()));
        Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"access_token": "eyJ0.graph", "expires_in": 3599})),
            )
            .mount(&server)
            .await;
        // Subscription ids are sub-1, sub-2, … in the order they are made.
        let made = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        Mock::given(method("POST"))
            .and(path("/v1.0/subscriptions"))
            .respond_with(move |r: &Request| {
                let body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
                let n = made.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                ResponseTemplate::new(201).set_body_json(json!({
                    "id": format!("sub-{n}"), "resource": body["resource"],
                    "changeType": body["changeType"], "notificationUrl": body["notificationUrl"],
                    "expirationDateTime": body["expirationDateTime"]}))
            })
            .mount(&server)
            .await;
        Mock::given(method("PATCH"))
            .and(path_regex("^/v1.0/subscriptions/[^/]+$"))
            .respond_with(|r: &Request| {
                let body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
                let id = r.url.path().rsplit('/').next().unwrap().to_owned();
                ResponseTemplate::new(200).set_body_json(
                    json!({"id": id, "expirationDateTime": body["expirationDateTime"]}),
                )
            })
            .mount(&server)
            .await;
        Mock::given(method("DELETE"))
            .and(path_regex("^/v1.0/subscriptions/[^/]+$"))
            .respond_with(ResponseTemplate::new(204))
            .mount(&server)
            .await;
        let e = events.clone();
        Mock::given(method("GET"))
            .and(path_regex("^/v1.0/users/[^/]+/calendarView$"))
            .respond_with(move |r: &Request| {
                let q: BTreeMap<String, String> = r.url.query_pairs().into_owned().collect();
                assert!(q.contains_key("startDateTime") && q.contains_key("endDateTime"));
                assert_eq!(
                    r.headers.get("prefer").unwrap().to_str().unwrap(),
                    "outlook.timezone=\"UTC\""
                );
                // The view holds occurrences, never a series' master.
                let view: Vec<Value> = e
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|v| v["type"] != "seriesMaster")
                    .cloned()
                    .collect();
                ResponseTemplate::new(200).set_body_json(json!({ "value": view }))
            })
            .mount(&server)
            .await;
        // slotgate's outbound sink writes the same mailbox: found by its extended property,
        // created, patched and deleted like Graph does.
        let e = events.clone();
        Mock::given(method("GET"))
            .and(path_regex("^/v1.0/users/[^/]+/events$"))
            .respond_with(move |r: &Request| {
                let q: BTreeMap<String, String> = r.url.query_pairs().into_owned().collect();
                let filter = q.get("$filter").cloned().unwrap_or_default();
                let found: Vec<Value> = e
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|v| {
                        v["singleValueExtendedProperties"]
                            .as_array()
                            .is_some_and(|ps| {
                                ps.iter().any(|p| {
                                    p["value"].as_str().is_some_and(|a| {
                                        a.len() > 1
                                            && filter.contains(&format!("ep/value eq '{a}'"))
                                    })
                                })
                            })
                    })
                    .map(|v| json!({"id": v["id"]}))
                    .collect();
                ResponseTemplate::new(200).set_body_json(json!({ "value": found }))
            })
            .mount(&server)
            .await;
        let (e, made) = (
            events.clone(),
            Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        );
        Mock::given(method("POST"))
            .and(path_regex("^/v1.0/users/[^/]+/events$"))
            .respond_with(move |r: &Request| {
                let mut body: Value = serde_json::from_slice(&r.body).unwrap();
                assert!(body["subject"].is_string() && body["start"]["timeZone"].is_string());
                let n = made.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                body["id"] = json!(format!("out{n}"));
                body["type"] = json!("singleInstance");
                e.lock().unwrap().push(body.clone());
                ResponseTemplate::new(201).set_body_json(body)
            })
            .mount(&server)
            .await;
        let e = events.clone();
        Mock::given(method("PATCH"))
            .and(path_regex("^/v1.0/users/[^/]+/events/[^/]+$"))
            .respond_with(move |r: &Request| {
                let patch: Value = serde_json::from_slice(&r.body).unwrap();
                let id = r.url.path().rsplit('/').next().unwrap().to_owned();
                let mut events = e.lock().unwrap();
                match events.iter_mut().find(|v| v["id"] == id.as_str()) {
                    Some(v) => {
                        for (k, x) in patch.as_object().unwrap() {
                            v[k] = x.clone();
                        }
                        ResponseTemplate::new(200).set_body_json(v.clone())
                    }
                    None => ResponseTemplate::new(404),
                }
            })
            .mount(&server)
            .await;
        let e = events.clone();
        Mock::given(method("DELETE"))
            .and(path_regex("^/v1.0/users/[^/]+/events/[^/]+$"))
            .respond_with(move |r: &Request| {
                let id = r.url.path().rsplit('/').next().unwrap().to_owned();
                e.lock().unwrap().retain(|v| v["id"] != id.as_str());
                ResponseTemplate::new(204)
            })
            .mount(&server)
            .await;
        let e = events.clone();
        Mock::given(method("GET"))
            .and(path_regex("^/v1.0/users/[^/]+/events/[^/]+$"))
            .respond_with(move |r: &Request| {
                let q: BTreeMap<String, String> = r.url.query_pairs().into_owned().collect();
                assert!(q["$select"].split(',').any(|f| f == "type"), "{q:?}");
                assert!(q["$expand"].starts_with("singleValueExtendedProperties("));
                assert_eq!(
                    r.headers.get("prefer").unwrap().to_str().unwrap(),
                    "outlook.timezone=\"UTC\""
                );
                let id = r.url.path().rsplit('/').next().unwrap();
                match e.lock().unwrap().iter().find(|v| v["id"] == id) {
                    Some(v) => ResponseTemplate::new(200).set_body_json(v),
                    None => ResponseTemplate::new(404).set_body_json(json!({"error":
                        {"code": "ErrorItemNotFound", "message": "The specified object was not found in the store."}})),
                }
            })
            .mount(&server)
            .await;
        Self { server, events }
    }

    async fn requests(&self, verb: &str, suffix: &str) -> Vec<Request> {
        self.server
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.method.as_str() == verb && r.url.path().ends_with(suffix))
            .collect()
    }
}

fn graph_config(m: &FakeGraph, extra: &str) -> String {
    format!(
        r#"[sync]
public_url = "{PUBLIC}"
reconcile_interval_seconds = 3600
{extra}
[[sync.sinks]]
name = "outlook"
kind = "graph"
phi = "busy"
tenant_id = "clinic-tenant"
client_id = "slotgate-app"
client_secret = "graph-secret-value"
token_url = "{uri}/token"
base_url = "{uri}/v1.0"
calendars = {{ "{OKAFOR}" = "{CALENDAR}" }}
[[sync.inbound]]
kind = "graph"
practitioner_id = "{OKAFOR}"
calendar = "{CALENDAR}"
sink = "outlook"
"#,
        uri = m.server.uri(),
    )
}

async fn graph_push(app: &TestApp, body: &Value) -> reqwest::Response {
    app.http
        .post(format!("{}/v1/webhooks/graph", app.address))
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn outlook_meetings_block_time_through_a_verified_subscription() {
    let m = FakeGraph::start().await;
    let mut app =
        spawn_app_with(&[OPEN_WINDOW, &graph_config(&m, "channel_ttl_seconds = 4\n")]).await;
    eventually("subscribed", || async {
        !m.requests("POST", "/subscriptions").await.is_empty()
    })
    .await;
    let created = m.requests("POST", "/subscriptions").await.remove(0);
    assert_eq!(
        created.headers.get("authorization").unwrap(),
        "Bearer eyJ0.graph"
    );
    let sub: Value = serde_json::from_slice(&created.body).unwrap();
    assert_eq!(sub["changeType"], "created,updated,deleted");
    assert_eq!(
        sub["notificationUrl"],
        format!("{PUBLIC}/v1/webhooks/graph")
    );
    assert_eq!(sub["resource"], format!("/users/{CALENDAR}/events"));
    assert_eq!(
        sub["lifecycleNotificationUrl"],
        format!("{PUBLIC}/v1/webhooks/graph")
    );
    let client_state = sub["clientState"].as_str().unwrap().to_owned();
    assert!(client_state.len() >= 32);
    // Graph's validation handshake: the token back, as text, at once.
    let r = app
        .http
        .post(format!(
            "{}/v1/webhooks/graph?validationToken=Validation%3A%20Testing%20client%20application",
            app.address
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(
        r.text().await.unwrap(),
        "Validation: Testing client application"
    );
    // Renewed before it ends (PATCH), the same subscription.
    eventually("renewed", || async {
        !m.requests("PATCH", "").await.is_empty()
    })
    .await;
    let sub_id = m.requests("PATCH", "").await[0]
        .url
        .path()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    // A meeting appears; Graph notifies.
    let me = app.patient_token(crate::booking::SOFIA);
    let slot = crate::booking::a_slot(&app, &me, OKAFOR, 1).await;
    let utc = |v: &Value| {
        v.as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap()
            .strftime("%Y-%m-%dT%H:%M:%S.0000000")
            .to_string()
    };
    m.events.lock().unwrap().push(json!({"id": "AAMkAGI1", "subject": "Budget", "isAllDay": false, "isCancelled": false, "showAs": "busy",
        "start": {"dateTime": utc(&slot["start"]), "timeZone": "UTC"}, "end": {"dateTime": utc(&slot["end"]), "timeZone": "UTC"}}));
    let note_on = |state: &str, event: &str| {
        json!({"value": [{"subscriptionId": sub_id, "clientState": state, "changeType": "created",
            "resource": format!("Users/{CALENDAR}/Events/{event}"), "tenantId": "clinic-tenant",
            "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "id": event}}]})
    };
    let note = |state: &str| note_on(state, "AAMkAGI1");
    // A wrong clientState: 401, nothing read.
    let reads = m.requests("GET", "/calendarView").await.len();
    app.sandbox.as_ref().unwrap().clear_journal();
    assert_eq!(graph_push(&app, &note("forged")).await.status(), 401);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(m.requests("GET", "/calendarView").await.len(), reads);
    assert!(app.sandbox.as_ref().unwrap().journal().is_empty());
    // The real one: 202 at once; Canvas gets the Other Event.
    assert_eq!(graph_push(&app, &note(&client_state)).await.status(), 202);
    eventually("held", || async {
        mirrors(&app, "graph", "AAMkAGI1").len() == 1
    })
    .await;
    let (start, _) = times(&slot);
    eventually("availability loses it", || async {
        !okafor_starts(&app).await.contains(&start)
    })
    .await;
    // Deleted in Outlook (the event answers 404 now); cancelled in Canvas.
    m.events.lock().unwrap().clear();
    graph_push(&app, &note(&client_state)).await;
    eventually("cancelled", || async {
        mirrors(&app, "graph", "AAMkAGI1")
            .first()
            .is_some_and(|a| a.status.as_str() == "cancelled")
    })
    .await;
    // Those pushes read the event they named, not the whole calendar view.
    assert_eq!(m.requests("GET", "/events/AAMkAGI1").await.len(), 2);
    assert_eq!(m.requests("GET", "/calendarView").await.len(), reads);
    // A recurring series: Graph names its master, whose occurrences are only in the view.
    let standup = |id: &str, kind: &str| {
        json!({"id": id, "type": kind, "seriesMasterId": "AAMkSERIES", "subject": "Standup",
            "isAllDay": false, "isCancelled": false, "showAs": "busy",
            "start": {"dateTime": utc(&slot["start"]), "timeZone": "UTC"},
            "end": {"dateTime": utc(&slot["end"]), "timeZone": "UTC"}})
    };
    m.events.lock().unwrap().extend([
        standup("AAMkSERIES", "seriesMaster"),
        standup("AAMkSERIES-1", "occurrence"),
    ]);
    assert_eq!(
        graph_push(&app, &note_on(&client_state, "AAMkSERIES"))
            .await
            .status(),
        202
    );
    eventually("the occurrence blocks its time", || async {
        mirrors(&app, "graph", "AAMkSERIES-1").len() == 1
    })
    .await;
    assert!(mirrors(&app, "graph", "AAMkSERIES").is_empty());
    assert!(m.requests("GET", "/calendarView").await.len() > reads);
    // The whole series deleted: Graph names the master, now unknown (404), and slotgate,
    // holding nothing under that id, reads the view: the occurrence frees its time.
    m.events.lock().unwrap().clear();
    graph_push(&app, &note_on(&client_state, "AAMkSERIES")).await;
    eventually("the occurrence is cancelled", || async {
        mirrors(&app, "graph", "AAMkSERIES-1")
            .first()
            .is_some_and(|a| a.status.as_str() == "cancelled")
    })
    .await;
    app.stop().await;
    assert!(
        !m.requests("DELETE", &sub_id).await.is_empty(),
        "unsubscribed at shutdown"
    );
}

#[tokio::test]
async fn graph_lifecycle_events_renew_resubscribe_and_reread() {
    let m = FakeGraph::start().await;
    // Long enough that no renewal falls due during the test on its own.
    let mut app = spawn_app_with(&[
        OPEN_WINDOW,
        &graph_config(&m, "channel_ttl_seconds = 600\n"),
    ])
    .await;
    eventually("subscribed and read", || async {
        !m.requests("POST", "/subscriptions").await.is_empty()
            && !m.requests("GET", "/calendarView").await.is_empty()
    })
    .await;
    let sub: Value =
        serde_json::from_slice(&m.requests("POST", "/subscriptions").await[0].body).unwrap();
    let state = sub["clientState"].as_str().unwrap().to_owned();
    let lifecycle = |sub: &str, state: &str, event: &str| {
        json!({"value": [{"subscriptionId": sub, "clientState": state, "lifecycleEvent": event,
            "subscriptionExpirationDateTime": "2026-12-01T00:00:00Z", "tenantId": "clinic-tenant"}]})
    };
    let reads = || async { m.requests("GET", "/calendarView").await.len() };

    // A lifecycle event with a wrong clientState is refused like any other: nothing happens.
    let before = settled(reads).await;
    let r = graph_push(&app, &lifecycle("sub-1", "forged", "subscriptionRemoved")).await;
    assert_eq!(r.status(), 401);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(reads().await, before);
    assert_eq!(m.requests("POST", "/subscriptions").await.len(), 1);
    assert!(m.requests("PATCH", "").await.is_empty());

    // reauthorizationRequired: the subscription is renewed (PATCH) at once, not recreated.
    let r = graph_push(&app, &lifecycle("sub-1", &state, "reauthorizationRequired")).await;
    assert_eq!(r.status(), 202);
    eventually("renewed", || async {
        m.requests("PATCH", "/subscriptions/sub-1").await.len() == 1
    })
    .await;
    assert_eq!(m.requests("POST", "/subscriptions").await.len(), 1);

    // missed: the whole window is read again.
    let before = reads().await;
    let r = graph_push(&app, &lifecycle("sub-1", &state, "missed")).await;
    assert_eq!(r.status(), 202);
    eventually("read again", || async { reads().await > before }).await;

    // subscriptionRemoved: a new subscription with a new clientState, and a full read.
    let before = reads().await;
    let r = graph_push(&app, &lifecycle("sub-1", &state, "subscriptionRemoved")).await;
    assert_eq!(r.status(), 202);
    eventually("subscribed again", || async {
        m.requests("POST", "/subscriptions").await.len() == 2
    })
    .await;
    eventually("read after the gap", || async { reads().await > before }).await;
    let again: Value =
        serde_json::from_slice(&m.requests("POST", "/subscriptions").await[1].body).unwrap();
    let new_state = again["clientState"].as_str().unwrap().to_owned();
    assert_ne!(new_state, state);
    // The removed subscription's pushes are strangers now; the new one's are accepted.
    let change = |sub: &str, state: &str| {
        json!({"value": [{"subscriptionId": sub, "clientState": state, "changeType": "updated",
            "resource": format!("Users/{CALENDAR}/Events/AAMkAGI1")}]})
    };
    assert_eq!(
        graph_push(&app, &change("sub-1", &state)).await.status(),
        401
    );
    assert_eq!(
        graph_push(&app, &change("sub-2", &new_state))
            .await
            .status(),
        202
    );
    let admin = app.token(None, "scheduling.admin");
    let status: Value = app
        .get("/v1/admin/sync", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert!(status["inbound"][0]["channel_expires_at"].is_string());
    assert!(status["inbound"][0]["last_error"].is_null(), "{status}");
    app.stop().await;
}

#[tokio::test]
async fn outlook_moves_follow_redeliveries_change_nothing_and_our_own_events_stay_ours() {
    let m = FakeGraph::start().await;
    let mut app = spawn_app_with(&[OPEN_WINDOW, &graph_config(&m, "")]).await;
    eventually("subscribed", || async {
        !m.requests("POST", "/subscriptions").await.is_empty()
    })
    .await;
    let sub: Value =
        serde_json::from_slice(&m.requests("POST", "/subscriptions").await[0].body).unwrap();
    let state = sub["clientState"].as_str().unwrap().to_owned();
    let note = |event: &str| {
        json!({"value": [{"subscriptionId": "sub-1", "clientState": state, "changeType": "updated",
            "resource": format!("Users/{CALENDAR}/Events/{event}"), "tenantId": "clinic-tenant",
            "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "id": event}}]})
    };
    let sandbox = app.sandbox.clone().unwrap();
    // A booking through slotgate goes out to the clinician's Outlook, marked as slotgate's.
    let me = app.patient_token(crate::booking::SOFIA);
    let slot = crate::booking::a_slot(&app, &me, OKAFOR, 2).await;
    let r = app
        .post_json(
            "/v1/appointments",
            &me,
            &crate::booking::booking(&slot, crate::booking::SOFIA),
            Some(&crate::helpers::key()),
        )
        .await;
    assert_eq!(r.status(), 201);
    let booked: Value = r.json().await.unwrap();
    // The mailbox event that carries a Canvas appointment's id, if any.
    let written_for = |appointment: &str| -> Option<String> {
        m.events
            .lock()
            .unwrap()
            .iter()
            .find(|v| {
                v["singleValueExtendedProperties"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["value"] == appointment))
            })
            .map(|v| v["id"].as_str().unwrap().to_owned())
    };
    let booking_id = booked["id"].as_str().unwrap().to_owned();
    eventually("mirrored to Outlook", || async {
        written_for(&booking_id).is_some()
    })
    .await;
    let out = written_for(&booking_id).unwrap();
    // Graph tells of it like of any change: read, recognised, never made an Other Event.
    let before = sandbox.appointments().len();
    assert_eq!(graph_push(&app, &note(&out)).await.status(), 202);
    eventually("read", || async {
        !m.requests("GET", &format!("/events/{out}"))
            .await
            .is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(mirrors(&app, "graph", &out).is_empty());
    assert_eq!(sandbox.appointments().len(), before, "no echo into Canvas");
    // A meeting appears, then moves an hour later: the same Other Event, PUT to the new time.
    let other = crate::booking::a_slot(&app, &me, OKAFOR, 6).await;
    let (start, end) = times(&other);
    let wall = |t: jiff::Timestamp| t.strftime("%Y-%m-%dT%H:%M:%S.0000000").to_string();
    let meeting = |shift: i64| {
        let d = jiff::SignedDuration::from_hours(shift);
        json!({"id": "AAMkMOVE", "type": "singleInstance", "subject": "Budget review", "isAllDay": false,
            "isCancelled": false, "showAs": "busy",
            "start": {"dateTime": wall(start + d), "timeZone": "UTC"},
            "end": {"dateTime": wall(end + d), "timeZone": "UTC"}})
    };
    m.events.lock().unwrap().push(meeting(0));
    assert_eq!(graph_push(&app, &note("AAMkMOVE")).await.status(), 202);
    eventually("held", || async {
        mirrors(&app, "graph", "AAMkMOVE").len() == 1
    })
    .await;
    let held = mirrors(&app, "graph", "AAMkMOVE").remove(0);
    {
        let mut events = m.events.lock().unwrap();
        events.retain(|v| v["id"] != "AAMkMOVE");
        events.push(meeting(1));
    }
    sandbox.clear_journal();
    assert_eq!(graph_push(&app, &note("AAMkMOVE")).await.status(), 202);
    let moved = start + jiff::SignedDuration::from_hours(1);
    eventually("moved in Canvas", || async {
        mirrors(&app, "graph", "AAMkMOVE")
            .first()
            .and_then(|a| a.start)
            .is_some_and(|s| s.timestamp == moved)
    })
    .await;
    let now = mirrors(&app, "graph", "AAMkMOVE");
    assert_eq!(now.len(), 1, "moved, not duplicated");
    assert_eq!(now[0].id, held.id);
    assert_eq!(now[0].status.as_str(), "booked");
    assert!(
        sandbox
            .journal()
            .iter()
            .any(|j| j.method == "PUT" && j.path.starts_with("/Appointment/")),
        "a PUT of new times"
    );
    // Graph delivers the same notification again (it retries): nothing changes in Canvas.
    sandbox.clear_journal();
    for _ in 0..2 {
        assert_eq!(graph_push(&app, &note("AAMkMOVE")).await.status(), 202);
    }
    eventually("read again", || async {
        m.requests("GET", "/events/AAMkMOVE").await.len() >= 4
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        sandbox
            .journal()
            .iter()
            .all(|j| !(j.path.starts_with("/Appointment") && j.method != "GET")),
        "{:?}",
        sandbox.journal()
    );
    // And the meeting's Other Event was never written back into the mailbox it came from.
    let held_id = held.id.clone().unwrap();
    assert_eq!(written_for(&held_id), None);
    assert!(written_for(&booking_id).is_some());
    app.stop().await;
}

#[tokio::test]
async fn a_slow_calendar_holds_back_only_itself() {
    let g = FakeGoogle::start().await;
    // Reyes's calendar answers its reads only after ten seconds.
    Mock::given(method("GET"))
        .and(path_regex("^/calendar/v3/calendars/slow[^/]*/events$"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(
                    json!({"kind": "calendar#events", "items": [], "nextSyncToken": "s1"}),
                )
                .set_delay(Duration::from_secs(10)),
        )
        .with_priority(1)
        .mount(&g.server)
        .await;
    let slow = format!(
        "[[sync.inbound]]\nkind = \"google\"\npractitioner_id = \"{REYES}\"\ncalendar = \"slow@clinic.example\"\nsink = \"gcal\"\n"
    );
    let app = spawn_app_with(&[OPEN_WINDOW, &format!("{}{slow}", google_config(&g, ""))]).await;
    eventually("Okafor's channel is open and read", || async {
        !g.reads().await.is_empty()
            && g.requests("POST", "/events/watch")
                .await
                .iter()
                .any(|r| r.url.path().contains(CALENDAR))
    })
    .await;
    let watch = g
        .requests("POST", "/events/watch")
        .await
        .into_iter()
        .find(|r| r.url.path().contains(CALENDAR))
        .unwrap();
    let body: Value = serde_json::from_slice(&watch.body).unwrap();
    let (id, token) = (
        body["id"].as_str().unwrap().to_owned(),
        body["token"].as_str().unwrap().to_owned(),
    );
    // While Reyes's first read hangs, a meeting in Okafor's calendar arrives in Canvas.
    let me = app.patient_token(crate::booking::SOFIA);
    let slot = crate::booking::a_slot(&app, &me, OKAFOR, 3).await;
    g.put(meeting("m-fast", &slot["start"], &slot["end"], "Huddle"));
    assert_eq!(push(&app, &id, &token, "exists").await.status(), 200);
    eventually("Canvas holds Okafor's meeting", || async {
        mirrors(&app, "google", "m-fast").len() == 1
    })
    .await;
    // Reyes's read was under way all along (it answers only after ten seconds).
    assert!(
        g.requests("GET", "/events")
            .await
            .iter()
            .any(|r| r.url.path().contains("slow"))
    );
}

/// A count once it has stopped changing (for half a second): what was already under way when
/// a test began has finished.
pub async fn settled<F, Fut>(mut count: F) -> usize
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let mut last = count().await;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = count().await;
        if now == last {
            return now;
        }
        last = now;
    }
}
