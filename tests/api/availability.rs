//! `GET /v1/availability` on the sandbox's demo clinic: each rule shown including and excluding.

use std::collections::BTreeSet;

use jiff::civil::Date;
use serde_json::Value;

use crate::helpers::{TestApp, assert_problem, spawn_app_with};
use crate::seed::*;

/// No minimum notice and a long horizon, so tests can ask about any day ahead.
pub const OPEN_WINDOW: &str =
    "[booking]\nmin_notice_minutes = 0\nmax_horizon_days = 400\nmax_range_days = 31\n";

pub async fn open_app() -> TestApp {
    spawn_app_with(&[OPEN_WINDOW]).await
}

impl TestApp {
    pub async fn availability(&self, token: &str, params: &[(&str, &str)]) -> reqwest::Response {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        self.get(&format!("/v1/availability?{query}"), Some(token))
            .await
    }

    /// A 200 availability answer.
    pub async fn slots(&self, params: &[(&str, &str)]) -> Value {
        let r = self.availability(&self.staff_token(), params).await;
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "{body}");
        body
    }
}

fn practitioners(answer: &Value) -> BTreeSet<String> {
    answer["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["practitioner"]["id"].as_str().unwrap().to_owned())
        .collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// Local dates of the slots' starts (the answer's zone).
fn dates(answer: &Value) -> Vec<Date> {
    answer["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["start"].as_str().unwrap()[..10].parse().unwrap())
        .collect()
}

fn ds(n: i64) -> String {
    days(n).to_string()
}

#[tokio::test]
async fn telehealth_needs_a_licence_in_the_patients_state() {
    let app = open_app().await;
    let (start, end) = (ds(1), ds(7));
    let wa = app
        .slots(&[
            ("reason", "FLUP"),
            ("duration", "30"),
            ("state", "WA"),
            ("modality", "telehealth"),
            ("start", &start),
            ("end", &end),
        ])
        .await;
    assert_eq!(
        practitioners(&wa),
        set(&[REYES, WHITFIELD, VASQUEZ]),
        "exactly the WA-licensed telehealth clinicians"
    );
    let ny = app
        .slots(&[
            ("reason", "FLUP"),
            ("duration", "30"),
            ("state", "NY"),
            ("modality", "telehealth"),
            ("start", &start),
            ("end", &end),
        ])
        .await;
    let ny = practitioners(&ny);
    assert!(
        ny.contains(WHITFIELD) && ny.contains(KIM) && ny.contains(LINDQVIST),
        "{ny:?}"
    );
    for never in [OSEI, CHEN, REYES, OKAFOR, HAYES, PARK] {
        assert!(!ny.contains(never), "{never} offered telehealth in NY");
    }
}

#[tokio::test]
async fn a_licence_that_ends_mid_range_keeps_only_the_days_before() {
    let app = open_app().await;
    let answer = app
        .slots(&[
            ("reason", "FLUP"),
            ("duration", "30"),
            ("state", "CA"),
            ("modality", "telehealth"),
            ("practitioner", RAMAN),
            ("start", &ds(1)),
            ("end", &ds(20)),
            ("tz", "America/Chicago"),
            ("limit", "1000"),
        ])
        .await;
    let d = dates(&answer);
    assert!(!d.is_empty(), "slots before the licence ends");
    assert!(
        d.iter().all(|d| *d <= days(10)),
        "no slot after the CA licence ends on {}",
        days(10)
    );
    let tn = app
        .slots(&[
            ("reason", "FLUP"),
            ("duration", "30"),
            ("state", "TN"),
            ("modality", "telehealth"),
            ("practitioner", RAMAN),
            ("start", &ds(11)),
            ("end", &ds(20)),
            ("tz", "America/Chicago"),
        ])
        .await;
    assert!(
        !dates(&tn).is_empty(),
        "her TN licence still covers those days"
    );
}

#[tokio::test]
async fn a_licence_that_starts_mid_range_keeps_only_the_days_after() {
    let app = open_app().await;
    let answer = app
        .slots(&[
            ("reason", "FLUP"),
            ("duration", "30"),
            ("state", "CA"),
            ("modality", "telehealth"),
            ("practitioner", LINDQVIST),
            ("start", &ds(10)),
            ("end", &ds(30)),
            ("tz", "America/New_York"),
            ("limit", "1000"),
        ])
        .await;
    let d = dates(&answer);
    assert!(!d.is_empty(), "slots once the licence starts");
    assert!(
        d.iter().all(|d| *d >= days(20)),
        "no slot before the CA licence starts on {}",
        days(20)
    );
}

#[tokio::test]
async fn in_person_needs_the_locations_state_and_the_patients() {
    let app = open_app().await;
    let (start, end) = (ds(1), ds(7));
    let derm = |state: Option<&'static str>| {
        let mut p = vec![
            ("reason", "DERM"),
            ("duration", "40"),
            ("modality", "in_person"),
            ("start", start.as_str()),
            ("end", end.as_str()),
        ];
        p.extend(state.map(|s| ("state", s)));
        p
    };
    let anywhere = practitioners(&app.slots(&derm(None)).await);
    assert!(
        anywhere.contains(BELL) && anywhere.contains(LINDQVIST),
        "{anywhere:?}"
    );
    let az = practitioners(&app.slots(&derm(Some("AZ"))).await);
    assert!(az.contains(BELL), "an AZ patient at the Phoenix clinic");
    let ca = practitioners(&app.slots(&derm(Some("CA"))).await);
    assert!(!ca.contains(BELL), "his CA licence expired");
    assert!(!ca.contains(LINDQVIST), "her CA licence has not started");
}

#[tokio::test]
async fn the_reasons_specialty_and_modality_pick_the_clinicians() {
    let app = open_app().await;
    let ther = app
        .slots(&[
            ("reason", "THER"),
            ("duration", "60"),
            ("state", "NY"),
            ("start", &ds(1)),
            ("end", &ds(7)),
        ])
        .await;
    assert_eq!(
        practitioners(&ther),
        set(&[KIM]),
        "behavioral health, licensed in NY, telehealth"
    );
    assert!(
        ther["slots"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["modality"] == "telehealth")
    );
    let tele = app
        .slots(&[
            ("reason", "FLUP"),
            ("duration", "30"),
            ("state", "NY"),
            ("modality", "telehealth"),
            ("location", BROOKLYN),
            ("start", &ds(1)),
            ("end", &ds(7)),
        ])
        .await;
    assert!(!practitioners(&tele).contains(OSEI), "in person only");
    let visit = app
        .slots(&[
            ("reason", "FLUP"),
            ("duration", "30"),
            ("modality", "in_person"),
            ("location", BROOKLYN),
            ("start", &ds(1)),
            ("end", &ds(7)),
        ])
        .await;
    assert!(practitioners(&visit).contains(OSEI));
    assert!(
        visit["slots"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["location"]["id"] == BROOKLYN && s["modality"] == "in_person")
    );
}

#[tokio::test]
async fn language_and_specialty_filters() {
    let app = open_app().await;
    let es = app
        .slots(&[
            ("reason", "FLUP"),
            ("duration", "30"),
            ("state", "CA"),
            ("language", "es"),
            ("start", &ds(1)),
            ("end", &ds(7)),
        ])
        .await;
    assert_eq!(practitioners(&es), set(&[OKAFOR, REYES, VASQUEZ]));
    let derm = app
        .slots(&[
            ("reason", "FLUP"),
            ("duration", "30"),
            ("state", "NY"),
            ("specialty", "dermatology"),
            ("start", &ds(1)),
            ("end", &ds(7)),
        ])
        .await;
    assert!(
        practitioners(&derm)
            .iter()
            .all(|p| [LINDQVIST, BELL, "75305a1a19804d1cb371395424211321"].contains(&p.as_str()))
    );
}

#[tokio::test]
async fn telehealth_slots_of_one_clinician_are_merged_across_locations() {
    let app = open_app().await;
    // Kim keeps the same local hours in Nashville and Brooklyn: an hour apart, so most instants
    // are listed by both schedules.
    let answer = app
        .slots(&[
            ("reason", "THER"),
            ("duration", "60"),
            ("state", "NY"),
            ("practitioner", KIM),
            ("start", &ds(1)),
            ("end", &ds(7)),
            ("tz", "America/New_York"),
            ("limit", "1000"),
        ])
        .await;
    let slots = answer["slots"].as_array().unwrap();
    assert!(!slots.is_empty());
    let starts: Vec<&str> = slots.iter().map(|s| s["start"].as_str().unwrap()).collect();
    let unique: BTreeSet<&str> = starts.iter().copied().collect();
    assert_eq!(
        starts.len(),
        unique.len(),
        "one telehealth offer per clinician and time"
    );
    // An NY patient's visit is anchored at the NY location when both list the time.
    let at_ten: Vec<&Value> = slots
        .iter()
        .filter(|s| s["start"].as_str().unwrap()[11..16] == *"10:00")
        .collect();
    assert!(
        at_ten.iter().all(|s| s["location"]["id"] == BROOKLYN),
        "{at_ten:?}"
    );
}

#[tokio::test]
async fn slots_are_sorted_limited_and_inside_the_range() {
    let app = open_app().await;
    let answer = app
        .slots(&[
            ("reason", "FLUP"),
            ("duration", "15"),
            ("state", "CA"),
            ("start", &ds(1)),
            ("end", &ds(3)),
            ("tz", "America/Los_Angeles"),
            ("limit", "25"),
        ])
        .await;
    let slots = answer["slots"].as_array().unwrap();
    assert_eq!(slots.len(), 25);
    let keys: Vec<(jiff::Timestamp, String)> = slots
        .iter()
        .map(|s| {
            (
                s["start"].as_str().unwrap().parse().unwrap(),
                s["practitioner"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "by start, then clinician");
    assert!(
        dates(&answer)
            .iter()
            .all(|d| *d >= days(1) && *d <= days(3))
    );
    assert_eq!(answer["timezone"], "America/Los_Angeles");
    assert_eq!(answer["duration_minutes"], 15);
    assert_eq!(answer["reason"]["code"], "FLUP");
    assert_eq!(answer["stale"], false);
    for s in slots {
        assert!(s["slot_id"].as_str().unwrap().starts_with("s1."));
        let (start, end): (jiff::Timestamp, jiff::Timestamp) = (
            s["start"].as_str().unwrap().parse().unwrap(),
            s["end"].as_str().unwrap().parse().unwrap(),
        );
        assert_eq!(start.duration_until(end).as_mins(), 15);
    }
}

#[tokio::test]
async fn the_booking_window_hides_what_is_too_soon_or_too_far() {
    // A week's notice and a 12-day horizon over a 14-day question.
    let app =
        spawn_app_with(&["[booking]\nmin_notice_minutes = 10080\nmax_horizon_days = 12\n"]).await;
    let patient = app.token(
        Some("a031d1ba40d74aebb8ed716716da05c2"),
        "scheduling.read scheduling.book",
    );
    let params = [
        ("reason", "FLUP"),
        ("duration", "30"),
        ("state", "CA"),
        ("start", &ds(0)),
        ("end", &ds(13)),
        ("tz", "UTC"),
        ("limit", "1000"),
    ];
    let now = jiff::Timestamp::now();
    let (earliest, latest) = (
        now + jiff::SignedDuration::from_hours(7 * 24),
        now + jiff::SignedDuration::from_hours(12 * 24),
    );
    let starts = |answer: &Value| -> Vec<jiff::Timestamp> {
        answer["slots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["start"].as_str().unwrap().parse().unwrap())
            .collect()
    };
    let for_patient: Value = app
        .availability(&patient, &params)
        .await
        .json()
        .await
        .unwrap();
    let patient_starts = starts(&for_patient);
    assert!(!patient_starts.is_empty());
    // slotgate read its clock after ours: its horizon is at most this late.
    let latest = latest.max(jiff::Timestamp::now() + jiff::SignedDuration::from_hours(12 * 24));
    for start in &patient_starts {
        assert!(
            *start >= earliest - jiff::SignedDuration::from_mins(1),
            "inside the notice: {start}"
        );
        assert!(*start <= latest, "past the horizon: {start}");
    }
    // Staff may book inside the notice (the walk-in at the desk), never past the horizon.
    let staff_starts = starts(&app.slots(&params).await);
    let latest = latest.max(jiff::Timestamp::now() + jiff::SignedDuration::from_hours(12 * 24));
    assert!(
        staff_starts.iter().any(|s| *s < earliest),
        "staff see this week's slots"
    );
    assert!(
        staff_starts
            .iter()
            .all(|s| *s <= latest && *s >= now - jiff::SignedDuration::from_mins(1))
    );
}

async fn local_times(app: &TestApp, location: &str, tz: &str, day: Date) -> Vec<String> {
    let answer = app
        .slots(&[
            ("reason", "FLUP"),
            ("duration", "30"),
            ("state", "CA"),
            ("modality", "telehealth"),
            ("practitioner", WHITFIELD),
            ("location", location),
            ("tz", tz),
            ("start", &day.to_string()),
            ("end", &day.to_string()),
        ])
        .await;
    answer["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["start"].as_str().unwrap()[11..].to_owned())
        .collect()
}

fn expected(hours: std::ops::Range<u32>, offset: &str) -> Vec<String> {
    hours
        .flat_map(|h| {
            [
                format!("{h:02}:00:00{offset}"),
                format!("{h:02}:30:00{offset}"),
            ]
        })
        .collect()
}

/// Whitfield works weekend mornings 8-12 in Oakland and Brooklyn; US DST changes on Sundays.
#[tokio::test]
async fn dst_days_in_los_angeles_and_new_york() {
    let app = open_app().await;
    let (spring, fall) = next_dst_days("America/Los_Angeles");
    assert_eq!((spring, fall), next_dst_days("America/New_York"));
    let saturday = |d: Date| d.yesterday().unwrap();
    // Oakland in its own zone: eight half hours each day, with that day's offset.
    assert_eq!(
        local_times(&app, OAKLAND, "America/Los_Angeles", saturday(spring)).await,
        expected(8..12, "-08:00")
    );
    assert_eq!(
        local_times(&app, OAKLAND, "America/Los_Angeles", spring).await,
        expected(8..12, "-07:00")
    );
    assert_eq!(
        local_times(&app, OAKLAND, "America/Los_Angeles", saturday(fall)).await,
        expected(8..12, "-07:00")
    );
    assert_eq!(
        local_times(&app, OAKLAND, "America/Los_Angeles", fall).await,
        expected(8..12, "-08:00")
    );
    // Brooklyn in its own zone.
    assert_eq!(
        local_times(&app, BROOKLYN, "America/New_York", saturday(spring)).await,
        expected(8..12, "-05:00")
    );
    assert_eq!(
        local_times(&app, BROOKLYN, "America/New_York", spring).await,
        expected(8..12, "-04:00")
    );
    assert_eq!(
        local_times(&app, BROOKLYN, "America/New_York", fall).await,
        expected(8..12, "-05:00")
    );
    // Brooklyn's morning seen from Los Angeles: three hours earlier on both sides of each change.
    assert_eq!(
        local_times(&app, BROOKLYN, "America/Los_Angeles", spring).await,
        expected(5..9, "-07:00")
    );
    assert_eq!(
        local_times(&app, BROOKLYN, "America/Los_Angeles", fall).await,
        expected(5..9, "-08:00")
    );
}

#[tokio::test]
async fn business_rules_say_no_with_their_codes() {
    let app = open_app().await;
    let staff = app.staff_token();
    let patient = app.token(
        Some("a031d1ba40d74aebb8ed716716da05c2"),
        "scheduling.read scheduling.book",
    );
    let q = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        let mut p = vec![("state", "CA")];
        p.extend_from_slice(extra);
        p
    };
    assert_problem(
        app.availability(&staff, &q(&[("reason", "NOPE"), ("duration", "30")]))
            .await,
        422,
        "reason_not_allowed",
    )
    .await;
    assert_problem(
        app.availability(&staff, &q(&[("reason", "FLUP"), ("duration", "45")]))
            .await,
        422,
        "duration_not_allowed",
    )
    .await;
    assert_problem(
        app.availability(
            &staff,
            &q(&[
                ("reason", "THER"),
                ("duration", "60"),
                ("modality", "in_person"),
            ]),
        )
        .await,
        422,
        "modality_not_allowed",
    )
    .await;
    // Staff-only reasons are not offered to patients.
    assert_problem(
        app.availability(&patient, &q(&[("reason", "MEDR"), ("duration", "15")]))
            .await,
        422,
        "reason_not_allowed",
    )
    .await;
    assert_eq!(
        app.availability(&staff, &q(&[("reason", "MEDR"), ("duration", "15")]))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn malformed_questions_are_400s_naming_the_field() {
    let app = open_app().await;
    let staff = app.staff_token();
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("duration", "30")], "reason"),
        (vec![("reason", "FLUP")], "duration"),
        (vec![("reason", "FLUP"), ("duration", "thirty")], "duration"),
        (vec![("reason", "FLUP"), ("duration", "0")], "duration"),
        (
            vec![
                ("reason", "FLUP"),
                ("duration", "30"),
                ("state", "CA"),
                ("tz", ""),
            ],
            "tz",
        ),
        (
            vec![
                ("reason", "FLUP"),
                ("duration", "30"),
                ("state", "CA"),
                ("tz", "Mars/Base"),
            ],
            "tz",
        ),
        (
            vec![("reason", "FLUP"), ("duration", "30"), ("state", "XX")],
            "state",
        ),
        (
            vec![
                ("reason", "FLUP"),
                ("duration", "30"),
                ("state", "CA"),
                ("start", "2026-02-30"),
            ],
            "start",
        ),
        (
            vec![
                ("reason", "FLUP"),
                ("duration", "30"),
                ("state", "CA"),
                ("start", "2026-03-10"),
                ("end", "2026-03-01"),
            ],
            "end",
        ),
        (
            vec![
                ("reason", "FLUP"),
                ("duration", "30"),
                ("state", "CA"),
                ("start", "2026-03-01"),
                ("end", "2026-04-30"),
            ],
            "end",
        ),
        (
            vec![
                ("reason", "FLUP"),
                ("duration", "30"),
                ("modality", "telehealth"),
            ],
            "state",
        ),
        (
            vec![
                ("reason", "FLUP"),
                ("duration", "30"),
                ("state", "CA"),
                ("limit", "5000"),
            ],
            "limit",
        ),
        (
            vec![
                ("reason", "FLUP"),
                ("duration", "30"),
                ("state", "CA"),
                ("practitioner", "dr-who"),
            ],
            "practitioner",
        ),
        (
            vec![
                ("reason", "FLUP"),
                ("duration", "30"),
                ("state", "CA"),
                ("location", "00000000-0000-0000-0000-000000000000"),
            ],
            "location",
        ),
        (
            vec![
                ("reason", "FLUP"),
                ("duration", "30"),
                ("state", "CA"),
                ("colour", "blue"),
            ],
            "colour",
        ),
        (
            vec![("reason", "FLUP"), ("reason", "INIV"), ("duration", "30")],
            "reason",
        ),
    ];
    for (params, field) in cases {
        let body = assert_problem(
            app.availability(&staff, &params).await,
            400,
            "validation_failed",
        )
        .await;
        let named: Vec<&str> = body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(named.contains(&field), "{params:?}: {body}");
    }
}
