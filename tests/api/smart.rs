//! SMART Scheduling Links (`$bulk-publish`) as an appointment finder reads them: no token, a
//! manifest of absolute URLs, NDJSON files of the demo clinic's locations, schedules and slots
//! whose deep links book through /v1, HTTP caching, rate limits per IP, and no Canvas call for
//! a publication built from a warm cache.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use slotgate::sandbox::Faults;

use crate::booking::SOFIA;
use crate::helpers::{TestApp, assert_problem, key, spawn_app, spawn_app_with};
use crate::seed::*;

const BOOKING_URL: &str = "https://book.example.org/start?clinic=7";
const SMART: &str =
    "[smart]\nenabled = true\nbooking_url = \"https://book.example.org/start?clinic=7\"\n";
const DEEP_LINK: &str =
    "http://fhir-registry.smarthealthit.org/StructureDefinition/booking-deep-link";
const JURISDICTION: &str = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-jurisdiction";
const MANIFEST: &str = "/smart/$bulk-publish";
const FILES: [&str; 3] = [
    "/smart/Location.ndjson",
    "/smart/Schedule.ndjson",
    "/smart/Slot.ndjson",
];

async fn smart_app(extra: &[&str]) -> TestApp {
    let mut overrides = vec![SMART];
    overrides.extend_from_slice(extra);
    spawn_app_with(&overrides).await
}

impl TestApp {
    /// A public GET, with extra headers and no token.
    async fn public(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.http.get(format!("{}{path}", self.address));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.send().await.expect("the request reaches slotgate")
    }

    /// One NDJSON file: its resources and headers.
    async fn ndjson(&self, path: &str) -> (Vec<Value>, HeaderMap) {
        let r = self.public(path, &[]).await;
        assert_eq!(r.status(), 200, "{path}");
        let headers = r.headers().clone();
        assert_eq!(headers["content-type"], "application/fhir+ndjson");
        let text = r.text().await.unwrap();
        assert!(text.ends_with('\n'), "every line ends");
        let lines = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON resource per line"))
            .collect();
        (lines, headers)
    }
}

fn etag(headers: &HeaderMap) -> String {
    headers["etag"].to_str().unwrap().to_owned()
}

fn id_ok(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// The slot id in a Slot's booking deep link.
fn slot_id(slot: &Value) -> String {
    let link = slot["extension"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["url"] == DEEP_LINK)
        .expect("a booking deep link")["valueUrl"]
        .as_str()
        .unwrap();
    let url = url::Url::parse(link).unwrap();
    url.query_pairs()
        .find(|(k, _)| k == "slot")
        .map(|(_, v)| v.into_owned())
        .expect("slot= in the deep link")
}

fn codes(resource: &Value) -> BTreeSet<String> {
    resource["serviceType"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["coding"][0]["code"].as_str().unwrap().to_owned())
        .collect()
}

fn of_schedule<'a>(slots: &'a [Value], schedule: &str) -> Vec<&'a Value> {
    let reference = format!("Schedule/{schedule}");
    slots
        .iter()
        .filter(|s| s["schedule"]["reference"] == reference.as_str())
        .collect()
}

#[tokio::test]
async fn disabled_by_default_every_smart_path_is_a_404() {
    let app = spawn_app().await;
    for path in [MANIFEST].iter().chain(FILES.iter()) {
        assert_problem(app.public(path, &[]).await, 404, "not_found").await;
    }
}

#[tokio::test]
async fn the_manifest_lists_three_files_by_absolute_url_without_a_token() {
    let app = smart_app(&[]).await;
    // No token, and a token that is no good, are both fine: it is not looked at.
    for headers in [
        vec![],
        vec![("Authorization", "Bearer not-a-token")],
        vec![("Accept", "application/json")],
    ] {
        let r = app.public(MANIFEST, &headers).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/json");
        assert_eq!(r.headers()["cache-control"], "public, max-age=300");
        // Weak: each replica stamps its own transactionTime on the same data.
        assert!(etag(r.headers()).starts_with("W/\""), "a weak ETag");
    }
    let manifest: Value = app.public(MANIFEST, &[]).await.json().await.unwrap();
    let fields: Vec<&str> = manifest
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(fields, ["error", "output", "request", "transactionTime"]);
    assert_eq!(
        manifest["request"],
        format!("{}/smart/$bulk-publish", app.address)
    );
    assert_eq!(manifest["error"], json!([]));
    let time = manifest["transactionTime"].as_str().unwrap();
    let published: jiff::Timestamp = time.parse().expect("an RFC 3339 instant");
    assert!(time.len() == 20 && time.ends_with('Z'), "{time}");
    assert!(published <= jiff::Timestamp::now());
    let output = manifest["output"].as_array().unwrap();
    let types: Vec<&str> = output.iter().map(|o| o["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["Location", "Schedule", "Slot"]);
    for (o, path) in output.iter().zip(FILES) {
        assert_eq!(o["url"], format!("{}{path}", app.address));
        let states: Vec<&str> = o["extension"]["state"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert_eq!(states, ["AZ", "CA", "FL", "NY", "TN", "TX", "WA"]);
        let r = app
            .public(path, &[("Accept", "application/fhir+ndjson")])
            .await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["cache-control"], "public, max-age=300");
    }
    // `$` percent-encoded is the same address.
    assert_eq!(
        app.public("/smart/%24bulk-publish", &[]).await.status(),
        200
    );
    // Behind a CDN, the configured public URL is what the manifest names.
    let behind =
        smart_app(&["[smart]\npublic_url = \"https://api.example.org/scheduling\"\n"]).await;
    let manifest: Value = behind.public(MANIFEST, &[]).await.json().await.unwrap();
    assert_eq!(
        manifest["request"],
        "https://api.example.org/scheduling/smart/$bulk-publish"
    );
    assert_eq!(
        manifest["output"][2]["url"],
        "https://api.example.org/scheduling/smart/Slot.ndjson"
    );
    // A Host a client made up is not believed from an untrusted peer's X-Forwarded-Host.
    let spoofed: Value = app
        .public(MANIFEST, &[("X-Forwarded-Host", "evil.example")])
        .await
        .json()
        .await
        .unwrap();
    assert!(!spoofed.to_string().contains("evil.example"));
}

#[tokio::test]
async fn locations_schedules_and_slots_of_the_demo_clinic() {
    let app = smart_app(&[]).await;
    let (locations, _) = app.ndjson(FILES[0]).await;
    let (schedules, _) = app.ndjson(FILES[1]).await;
    let (slots, _) = app.ndjson(FILES[2]).await;
    // Locations: the four practice locations, and one virtual location per state served by
    // video, each naming its state with the jurisdiction extension.
    let by_id: BTreeMap<&str, &Value> = locations
        .iter()
        .map(|l| (l["id"].as_str().unwrap(), l))
        .collect();
    for (id, state) in [
        (OAKLAND, "CA"),
        (NASHVILLE, "TN"),
        (BROOKLYN, "NY"),
        (PHOENIX, "AZ"),
    ] {
        let l = by_id[id];
        assert_eq!(l["resourceType"], "Location");
        assert_eq!(l["address"]["state"], state);
        assert!(l["address"]["city"].is_string() && l["name"].is_string());
        assert_eq!(l["telecom"][0]["value"], BOOKING_URL);
    }
    let virtuals: Vec<&str> = by_id
        .keys()
        .copied()
        .filter(|id| id.starts_with("virtual-"))
        .collect();
    assert_eq!(
        virtuals,
        [
            "virtual-AZ",
            "virtual-CA",
            "virtual-FL",
            "virtual-NY",
            "virtual-TN",
            "virtual-TX",
            "virtual-WA"
        ]
    );
    let ca = by_id["virtual-CA"];
    assert_eq!(ca["name"], "Telehealth in California");
    assert_eq!(ca["physicalType"]["coding"][0]["code"], "vi");
    let jurisdiction = &ca["identifier"][0]["extension"][0];
    assert_eq!(jurisdiction["url"], JURISDICTION);
    assert_eq!(
        jurisdiction["valueCodeableConcept"]["coding"][0]["code"],
        "CA"
    );
    // Schedules: a clinician at a location, with the public reasons offered there.
    let ids: BTreeSet<&str> = schedules
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    for s in &schedules {
        let location = s["actor"][0]["reference"].as_str().unwrap();
        let location = location
            .strip_prefix("Location/")
            .expect("a Location first");
        assert!(
            by_id.contains_key(location),
            "{location} is in the Location file"
        );
        assert!(
            s["actor"][1]["reference"]
                .as_str()
                .unwrap()
                .starts_with("Practitioner/")
        );
        assert!(s["actor"][1]["display"].is_string(), "the clinician's name");
        assert!(id_ok(s["id"].as_str().unwrap()));
        let offered = codes(s);
        assert!(!offered.is_empty());
        assert!(
            !offered.contains("MEDR"),
            "a staff-only reason never appears"
        );
    }
    let has = |who: &str, site: &str| ids.contains(format!("{who}-{site}").as_str());
    assert!(has(OKAFOR, "1") && has(OKAFOR, "virtual-CA"));
    assert!(has(REYES, "virtual-WA") && has(REYES, "4"));
    assert!(has(RAMAN, "virtual-CA"), "licensed in CA for ten more days");
    // Not licensed there in these fourteen days, or no video: no schedule there.
    assert!(!has(LINDQVIST, "virtual-CA"), "CA starts in twenty days");
    assert!(
        !has(BELL, "virtual-CA") && !has(BELL, "virtual-AZ"),
        "in person only"
    );
    assert!(!has(OSEI, "virtual-NY"), "in person only");
    assert!(!has(OKAFOR, "virtual-NY"), "licensed in CA only");
    assert!(
        !ids.iter().any(|id| id.starts_with(CHEN)),
        "no STATE licence"
    );
    assert!(
        !ids.iter()
            .any(|id| id.starts_with(HAYES) || id.starts_with(PARK))
    );
    // Slots: each belongs to a published schedule, free, with a deep link that carries a
    // slot id, a FHIR id, and times with an offset.
    assert!(slots.len() > 1000, "{} slots", slots.len());
    let mut seen = BTreeSet::new();
    for s in &slots {
        let id = s["id"].as_str().unwrap();
        assert!(id_ok(id), "{id}");
        assert!(seen.insert(id.to_owned()), "{id} twice");
        let schedule = s["schedule"]["reference"].as_str().unwrap();
        assert!(ids.contains(schedule.strip_prefix("Schedule/").unwrap()));
        assert_eq!(s["status"], "free", "nothing is held");
        let (start, end): (jiff::Timestamp, jiff::Timestamp) = (
            s["start"].as_str().unwrap().parse().unwrap(),
            s["end"].as_str().unwrap().parse().unwrap(),
        );
        assert!(start < end);
        assert!(slot_id(s).starts_with("s1."));
        assert!(
            s["extension"][0]["valueUrl"]
                .as_str()
                .unwrap()
                .starts_with("https://book.example.org/start?clinic=7&slot=s1.")
        );
        assert!(!codes(s).contains("MEDR"));
    }
    // Raman's California licence ends ten days from today: video slots for California patients
    // end that day (Nashville time); Tennessee's go on.
    let last = |schedule: &str| {
        of_schedule(&slots, schedule)
            .iter()
            .map(|s| s["start"].as_str().unwrap()[..10].to_owned())
            .max()
            .unwrap()
    };
    let (ca_last, tn_last) = (
        last(&format!("{RAMAN}-virtual-CA")),
        last(&format!("{RAMAN}-virtual-TN")),
    );
    assert!(ca_last <= days(10).to_string(), "{ca_last}");
    assert!(
        ca_last >= days(8).to_string(),
        "{ca_last}: slots until close to the end"
    );
    assert!(tn_last > days(10).to_string(), "{tn_last}");
}

#[tokio::test]
async fn held_time_is_busy_tentative_and_a_booking_busy_until_canvas_lists_it() {
    let app = smart_app(&[]).await;
    let (slots, headers) = app.ndjson(FILES[2]).await;
    let first_tag = etag(&headers);
    let tomorrow = days(2).to_string();
    let chosen = of_schedule(&slots, &format!("{OKAFOR}-virtual-CA"))
        .into_iter()
        .find(|s| s["start"].as_str().unwrap() >= tomorrow.as_str() && codes(s).contains("FLUP"))
        .expect("a follow-up with Okafor by video")
        .clone();
    let sofia = app.patient_token(SOFIA);
    let r = app
        .post_json(
            "/v1/holds",
            &sofia,
            &json!({"slot_id": slot_id(&chosen)}),
            None,
        )
        .await;
    assert_eq!(r.status(), 201);
    let hold: Value = r.json().await.unwrap();
    let (slots, headers) = app.ndjson(FILES[2]).await;
    assert_ne!(etag(&headers), first_tag, "a hold changes the file");
    let now_of = |id: &Value| slots.iter().find(|s| s["id"] == *id).cloned();
    assert_eq!(now_of(&chosen["id"]).unwrap()["status"], "busy-tentative");
    // Okafor's time is held however it was published: in person at Oakland too.
    let in_person: Vec<&Value> = of_schedule(&slots, &format!("{OKAFOR}-1"))
        .into_iter()
        .filter(|s| s["start"] == chosen["start"])
        .collect();
    assert!(!in_person.is_empty());
    assert!(in_person.iter().all(|s| s["status"] == "busy-tentative"));
    // The deep link's slot id books through /v1, with the hold. Canvas takes its time to
    // store it: meanwhile Canvas still lists the slot as free, and slotgate publishes it busy.
    let sandbox = app.sandbox.clone().unwrap();
    sandbox.set_faults(Faults {
        commit_late_ms: 2_000,
        ..Faults::default()
    });
    let (body, idempotency) = (
        json!({"slot_id": slot_id(&chosen), "reason_code": "FLUP", "patient_id": SOFIA,
                "patient_state": "CA", "hold_id": hold["hold_id"]}),
        key(),
    );
    let book = app.post_json("/v1/appointments", &sofia, &body, Some(&idempotency));
    let meanwhile = async {
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        app.ndjson(FILES[2]).await
    };
    let (r, (slots, during)) = tokio::join!(book, meanwhile);
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    sandbox.set_faults(Faults::default());
    assert_ne!(
        etag(&during),
        etag(&headers),
        "the booking changes the file"
    );
    let busy = slots.iter().find(|s| s["id"] == chosen["id"]).unwrap();
    assert_eq!(
        busy["status"], "busy",
        "booked, though Canvas lists it free"
    );
    // Once Canvas has it, its slot search no longer lists the time: it leaves the file.
    let (slots, after) = app.ndjson(FILES[2]).await;
    assert_ne!(etag(&after), etag(&during));
    assert!(slots.iter().all(|s| s["id"] != chosen["id"]));
    assert!(
        slots
            .iter()
            .filter(|s| s["start"] == chosen["start"] && s["status"] == "free")
            .all(|s| !s["schedule"]["reference"]
                .as_str()
                .unwrap()
                .contains(OKAFOR)),
        "none of Okafor's slots at that time is free any more"
    );
}

#[tokio::test]
async fn an_in_person_deep_link_books_through_v1() {
    let app = smart_app(&[]).await;
    let (slots, _) = app.ndjson(FILES[2]).await;
    let after = days(2).to_string();
    let slot = of_schedule(&slots, &format!("{OKAFOR}-1"))
        .into_iter()
        .find(|s| s["start"].as_str().unwrap() >= after.as_str() && codes(s).contains("INIV"))
        .expect("an initial visit at Oakland")
        .clone();
    let r = app
        .post_json(
            "/v1/appointments",
            &app.patient_token(SOFIA),
            &json!({"slot_id": slot_id(&slot), "reason_code": "INIV", "patient_id": SOFIA, "patient_state": "CA"}),
            Some(&key()),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let made: Value = r.json().await.unwrap();
    assert_eq!(made["start"], slot["start"]);
}

#[tokio::test]
async fn if_none_match_is_a_304_and_etags_are_content_hashes() {
    let secret = "[booking]\nslot_id_secret = \"one secret shared by every replica..\"\n";
    let (one, two) = (smart_app(&[secret]).await, smart_app(&[secret]).await);
    for path in [MANIFEST].iter().chain(FILES.iter()) {
        let r = one.public(path, &[]).await;
        let tag = etag(r.headers());
        let body = r.bytes().await.unwrap();
        if *path != MANIFEST {
            // The tag names the bytes: any replica with the same data sends the same tag.
            let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &body);
            let hex: String = hash.as_ref()[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(tag, format!("\"{hex}\""), "{path}");
        }
        let again = one.public(path, &[("If-None-Match", &tag)]).await;
        assert_eq!(again.status(), 304, "{path}");
        assert_eq!(etag(again.headers()), tag);
        assert_eq!(again.headers()["cache-control"], "public, max-age=300");
        assert!(again.bytes().await.unwrap().is_empty(), "no body");
        // Among others, or weak, it still matches; another tag does not.
        let listed = format!("\"other\", W/{}", tag.trim_start_matches("W/"));
        assert_eq!(
            one.public(path, &[("If-None-Match", &listed)])
                .await
                .status(),
            304
        );
        assert_eq!(
            one.public(path, &[("If-None-Match", "\"other\"")])
                .await
                .status(),
            200
        );
        // The gzip encoding has a tag of its own, and either is a match.
        let gz = one.public(path, &[("Accept-Encoding", "gzip")]).await;
        assert_eq!(gz.headers()["content-encoding"], "gzip");
        let gz_tag = etag(gz.headers());
        assert_eq!(gz_tag, format!("{}-gzip\"", tag.trim_end_matches('"')));
        assert_eq!(
            one.public(path, &[("If-None-Match", &gz_tag)])
                .await
                .status(),
            304
        );
    }
    // Two replicas of the same clinic publish the same locations and schedules, tag and all.
    for path in &FILES[..2] {
        let (a, b) = (one.public(path, &[]).await, two.public(path, &[]).await);
        assert_eq!(etag(a.headers()), etag(b.headers()), "{path}");
    }
}

/// Slot searches the sandbox received, by their whole query.
fn slot_searches(app: &TestApp) -> BTreeMap<String, usize> {
    let mut calls = BTreeMap::new();
    for entry in app.sandbox.as_ref().unwrap().journal() {
        if entry.path == "/Slot" {
            *calls.entry(entry.query).or_default() += 1;
        }
    }
    calls
}

async fn cache_hits(app: &TestApp) -> usize {
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("slotgate_slot_cache_lookups_total{outcome=\"hit\"} "))
        .map_or(0, |v| v.parse().unwrap())
}

#[tokio::test]
async fn many_consumers_cost_one_build_and_a_warm_rebuild_costs_canvas_nothing() {
    let app = smart_app(&["[smart]\nmax_age_seconds = 1\n"]).await;
    // The directory first, so that only slot searches are left to count.
    assert_eq!(
        app.get("/v1/locations", Some(&app.staff_token()))
            .await
            .status(),
        200
    );
    app.sandbox.as_ref().unwrap().clear_journal();
    let answers = futures::future::join_all((0..30).map(|_| app.public(FILES[2], &[]))).await;
    let tags: BTreeSet<String> = answers.iter().map(|r| etag(r.headers())).collect();
    assert!(answers.iter().all(|r| r.status() == 200));
    assert_eq!(tags.len(), 1, "every consumer got the same publication");
    let cold = slot_searches(&app);
    assert!(!cold.is_empty());
    assert!(
        cold.values().all(|n| *n == 1),
        "each Canvas slot search once for thirty consumers: {cold:?}"
    );
    // Past max-age the aged publication is still served at once, and built again beside the
    // consumers from the slot cache alone.
    let hits = cache_hits(&app).await;
    app.sandbox.as_ref().unwrap().clear_journal();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = app.public(FILES[2], &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        etag(r.headers()),
        *tags.iter().next().unwrap(),
        "the same data"
    );
    let mut rebuilt = false;
    for _ in 0..50 {
        if cache_hits(&app).await > hits {
            rebuilt = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(rebuilt, "it was built again");
    assert!(
        slot_searches(&app).is_empty(),
        "a warm build asks Canvas nothing"
    );
}

#[tokio::test]
async fn rate_limited_per_client_ip_whatever_token_comes_along() {
    let app = smart_app(&["[rate_limit]\nbrowse_per_minute = 3\n"]).await;
    let staff = format!("Bearer {}", app.staff_token());
    let patient = format!("Bearer {}", app.patient_token(SOFIA));
    assert_eq!(app.public(MANIFEST, &[]).await.status(), 200);
    assert_eq!(
        app.public(FILES[0], &[("Authorization", &staff)])
            .await
            .status(),
        200
    );
    assert_eq!(
        app.public(FILES[1], &[("Authorization", &patient)])
            .await
            .status(),
        200
    );
    let limited = app.public(FILES[2], &[("Authorization", &staff)]).await;
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    assert_problem(limited, 429, "rate_limited").await;
    // The staff token's own budget, on /v1, is untouched.
    assert_eq!(
        app.get("/v1/reasons", Some(&app.staff_token()))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn no_patient_data_in_any_line() {
    let app = smart_app(&[]).await;
    // Someone booked, through slotgate, so that a busy slot is published too.
    let (slots, _) = app.ndjson(FILES[2]).await;
    let slot = of_schedule(&slots, &format!("{OKAFOR}-virtual-CA"))
        .into_iter()
        .find(|s| s["start"].as_str().unwrap() >= days(2).to_string().as_str())
        .unwrap()
        .clone();
    let code = codes(&slot).into_iter().next().unwrap();
    let r = app
        .post_json(
            "/v1/appointments",
            &app.patient_token(SOFIA),
            &json!({"slot_id": slot_id(&slot), "reason_code": code, "patient_id": SOFIA, "patient_state": "CA"}),
            Some(&key()),
        )
        .await;
    assert_eq!(r.status(), 201);
    let clinic = app.sandbox.as_ref().unwrap().clinic();
    let mut text = app.public(MANIFEST, &[]).await.text().await.unwrap();
    text.push('\n');
    for path in FILES {
        text.push_str(&app.public(path, &[]).await.text().await.unwrap());
    }
    // No reference to a patient, and no field about one, at any depth.
    assert!(!text.contains("Patient/"));
    fn keys(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(map) => map.iter().for_each(|(k, v)| {
                out.insert(k.to_lowercase());
                keys(v, out);
            }),
            Value::Array(items) => items.iter().for_each(|v| keys(v, out)),
            _ => {}
        }
    }
    let mut fields = BTreeSet::new();
    for line in text.lines().filter(|l| l.starts_with('{')) {
        keys(&serde_json::from_str(line).unwrap(), &mut fields);
    }
    for word in [
        "patient",
        "participant",
        "birth",
        "gender",
        "subject",
        "comment",
    ] {
        assert!(
            fields.iter().all(|f| !f.contains(word)),
            "{word} in {fields:?}"
        );
    }
    for p in &clinic.patients {
        for value in [
            format!("{} {}", p.given, p.family),
            p.id.to_string(),
            p.mrn.clone(),
            p.birth_date.to_string(),
            p.line.clone(),
        ] {
            assert!(!text.contains(&value), "{value} is published");
        }
    }
}

#[test]
fn check_config_names_the_smart_keys() {
    let dir = std::env::temp_dir().join(format!("slotgate-smart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("smart.toml");
    std::fs::write(&file, "[smart]\nenabled = true\ndays = 120\n").unwrap();
    let out = crate::cli::slotgate()
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("smart.booking_url"), "{text}");
    assert!(text.contains("smart.days"), "{text}");
    std::fs::write(&file, "[smart]\ndays = 7\n").unwrap();
    let out = crate::cli::slotgate()
        .arg("check-config")
        .arg(&file)
        .env("SLOTGATE_SMART__ENABLED", "true")
        .env(
            "SLOTGATE_SMART__BOOKING_URL",
            "https://book.example.org/start",
        )
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(
            "publishes SMART Scheduling Links (7 days, booked at https://book.example.org/start)"
        ),
        "{text}"
    );
}
