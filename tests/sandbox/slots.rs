//! Slot search over HTTP: defaults, the grid quirk, what blocks time, and DST days in the
//! location's own zone (canvas-fhir.md §3).

use jiff::civil::{Date, Weekday, date};
use jiff::{SignedDuration, ToSpan};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    BELL, BROOKLYN, KIM, NOAH_BROWN, OKAFOR, WHITFIELD, appointment, instant, link, next, outcome,
    schedule_id, spawn, starts,
};

fn minutes(slot: &Value) -> i64 {
    let start = instant(slot["start"].as_str().unwrap());
    let end = instant(slot["end"].as_str().unwrap());
    end.duration_since(start).as_mins()
}

/// The local dates (as stamped) of a list of slots.
fn local_dates(slots: &[Value]) -> Vec<String> {
    slots
        .iter()
        .map(|s| s["start"].as_str().unwrap()[..10].to_owned())
        .collect()
}

fn overlaps(slot: &Value, from: &str, to: &str) -> bool {
    let (s, e) = (
        instant(slot["start"].as_str().unwrap()),
        instant(slot["end"].as_str().unwrap()),
    );
    s < instant(to) && instant(from) < e
}

#[tokio::test]
async fn defaults_are_today_utc_a_week_inclusive_and_twenty_minutes() {
    let app = spawn().await;
    let today = app.today();
    // Dr Okafor works Monday to Saturday, so day +7 has hours unless it is a Sunday.
    let schedule = schedule_id(1, OKAFOR);
    let defaults = app
        .all(&format!("/Slot?schedule={schedule}&_count=100"))
        .await;
    let explicit = app
        .slots(&schedule, today, today.saturating_add(7.days()), 20)
        .await;
    assert_eq!(defaults, explicit);
    assert!(defaults.iter().all(|s| minutes(s) == 20));
    let six = app
        .slots(&schedule, today, today.saturating_add(6.days()), 20)
        .await;
    if today.weekday() != Weekday::Sunday {
        assert!(defaults.len() > six.len(), "the end date is inclusive");
        let last_day = today.saturating_add(7.days()).to_string();
        assert!(local_dates(&defaults).contains(&last_day));
    }
    let dates = local_dates(&defaults);
    assert!(
        dates
            .iter()
            .all(|d| d.as_str() >= today.to_string().as_str())
    );
    let sorted = {
        let mut s = starts(&defaults);
        s.sort_by_key(|t| instant(t));
        s
    };
    assert_eq!(starts(&defaults), sorted);
}

#[tokio::test]
async fn twenty_minutes_interleave_the_quarter_hour_grid_and_thirty_are_back_to_back() {
    let app = spawn().await;
    // A Monday Dr Bell works in Phoenix, well before the holiday.
    let day = next(app.today(), 7, Weekday::Monday);
    let schedule = schedule_id(4, BELL);
    let twenty = starts(&app.slots(&schedule, day, day, 20).await);
    let first: Vec<_> = twenty.iter().take(5).map(|s| &s[11..16]).collect();
    assert_eq!(first, ["09:00", "09:15", "09:20", "09:30", "09:40"]);
    assert!(twenty.iter().all(|s| s.ends_with("-07:00")));
    let thirty = app.slots(&schedule, day, day, 30).await;
    assert_eq!(thirty.len(), 6 + 8, "09-12 and 13-17, back to back");
    for pair in thirty.windows(2) {
        let (a_end, b_start) = (&pair[0]["end"], &pair[1]["start"]);
        assert!(
            a_end == b_start
                || instant(b_start.as_str().unwrap()) > instant(a_end.as_str().unwrap())
        );
    }
    let mut unique = twenty.clone();
    unique.dedup();
    assert_eq!(unique.len(), twenty.len());
}

#[tokio::test]
async fn a_booking_takes_the_time_at_every_location_of_the_practitioner() {
    let app = spawn().await;
    let day = next(app.today(), 8, Weekday::Wednesday);
    let brooklyn = schedule_id(3, KIM);
    let nashville = schedule_id(2, KIM);
    // 11:00-11:30 in Brooklyn is 10:00-10:30 in Nashville; Brooklyn's offset that day is
    // read off its own slots.
    let brooklyn_slots = app.slots(&brooklyn, day, day, 30).await;
    let offset = &brooklyn_slots[0]["start"].as_str().unwrap()[19..];
    let (from, to) = (
        format!("{day}T11:00:00{offset}"),
        format!("{day}T11:30:00{offset}"),
    );
    let before = app.slots(&nashville, day, day, 30).await;
    assert!(before.iter().any(|s| overlaps(s, &from, &to)));
    let mut body = appointment(KIM, Some(NOAH_BROWN), &from, &to);
    body["supportingInformation"] = json!([{"reference": format!("Location/{BROOKLYN}")}]);
    app.book(&body).await;
    for schedule in [&brooklyn, &nashville] {
        let after = app.slots(schedule, day, day, 30).await;
        assert!(!after.iter().any(|s| overlaps(s, &from, &to)), "{schedule}");
        assert!(!after.is_empty());
    }
}

#[tokio::test]
async fn seeded_bookings_block_but_the_cancelled_one_does_not() {
    let app = spawn().await;
    let clinic = app.clinic();
    let seeded = |n: usize| clinic.appointments[n].clone();
    let (booked, cancelled) = (seeded(0), seeded(1));
    assert_eq!(booked.status.as_str(), "booked");
    assert_eq!(cancelled.status.as_str(), "cancelled");
    let day = booked.date;
    let slots = starts(&app.slots(&schedule_id(1, OKAFOR), day, day, 20).await);
    let at = |hhmm: &str| slots.iter().any(|s| &s[11..16] == hhmm);
    assert!(
        !at("10:00") && !at("10:15") && !at("09:45"),
        "booked 10:00-10:30"
    );
    assert!(at("09:20") && at("10:30"));
    assert!(at("14:00"), "the cancelled 14:00 stays free");
}

#[tokio::test]
async fn admin_blocks_and_the_holiday_take_time_away() {
    let app = spawn().await;
    let today = app.today();
    let tuesday = next(today, 8, Weekday::Tuesday);
    let okafor = schedule_id(1, OKAFOR);
    let slots = starts(&app.slots(&okafor, tuesday, tuesday, 30).await);
    let hours: Vec<_> = slots.iter().map(|s| &s[11..13]).collect();
    assert!(
        !hours.contains(&"15"),
        "Tuesday 15:00-16:00 is charting time"
    );
    assert!(hours.contains(&"14") && hours.contains(&"16"));
    let holiday = next(today, 14, Weekday::Monday);
    assert!(app.slots(&okafor, holiday, holiday, 30).await.is_empty());
    assert!(
        app.slots(&schedule_id(3, KIM), holiday, holiday, 30)
            .await
            .is_empty()
    );
    let after = holiday.saturating_add(1.days());
    assert!(
        !app.slots(&schedule_id(3, KIM), after, after, 30)
            .await
            .is_empty()
    );
}

/// Offsets stamped on the slots of each day, and the count per day.
async fn per_day(
    app: &crate::helpers::TestSandbox,
    schedule: &str,
    days: &[Date],
) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for &day in days {
        let slots = starts(&app.slots(schedule, day, day, 20).await);
        let mut offsets: Vec<_> = slots.iter().map(|s| s[19..].to_owned()).collect();
        offsets.dedup();
        assert_eq!(offsets.len(), 1, "{schedule} {day}: {offsets:?}");
        let mut unique = slots.clone();
        unique.dedup();
        assert_eq!(unique.len(), slots.len());
        out.push((offsets[0].clone(), slots.len()));
    }
    out
}

#[tokio::test]
async fn dst_days_carry_the_right_offsets_and_counts() {
    let app = spawn().await;
    // Whitfield works Saturday and Sunday 08:00-12:00 in Oakland and Brooklyn: 23 twenty-
    // minute slots per day (12 stepped by 20, 15 by 15, 4 shared).
    let spring = [date(2026, 3, 7), date(2026, 3, 8)];
    let autumn = [date(2026, 10, 31), date(2026, 11, 1)];
    let oakland = schedule_id(1, WHITFIELD);
    let brooklyn = schedule_id(3, WHITFIELD);
    let expect = |a: &str, b: &str| vec![(a.to_owned(), 23), (b.to_owned(), 23)];
    assert_eq!(
        per_day(&app, &oakland, &spring).await,
        expect("-08:00", "-07:00")
    );
    assert_eq!(
        per_day(&app, &oakland, &autumn).await,
        expect("-07:00", "-08:00")
    );
    assert_eq!(
        per_day(&app, &brooklyn, &spring).await,
        expect("-05:00", "-04:00")
    );
    assert_eq!(
        per_day(&app, &brooklyn, &autumn).await,
        expect("-04:00", "-05:00")
    );
    // One query across the change: both offsets, in order, still 08:00 local each day.
    let both = starts(&app.slots(&oakland, spring[0], spring[1], 20).await);
    assert_eq!(both[0], "2026-03-07T08:00:00-08:00");
    assert_eq!(both[23], "2026-03-08T08:00:00-07:00");
}

#[tokio::test]
async fn phoenix_ignores_dst() {
    let app = spawn().await;
    let phoenix = schedule_id(4, BELL);
    let days = [
        date(2026, 3, 6),
        date(2026, 3, 9),
        date(2026, 10, 30),
        date(2026, 11, 2),
    ];
    for (offset, count) in per_day(&app, &phoenix, &days).await {
        assert_eq!(offset, "-07:00");
        // 09-12: 9 stepped by 20, 11 by 15, 3 shared; 13-17: 23 as above.
        assert_eq!(count, 17 + 23);
    }
}

#[tokio::test]
async fn slot_parameters_are_checked() {
    let app = spawn().await;
    let schedule = schedule_id(1, OKAFOR);
    for bad in [
        "/Slot".to_owned(),
        "/Slot?schedule=Location.1".to_owned(),
        format!("/Slot?schedule={schedule}&start=06/18/2026"),
        format!("/Slot?schedule={schedule}&end=2026-6-1"),
        format!("/Slot?schedule={schedule}&duration=abc"),
        format!("/Slot?schedule={schedule}&duration=0"),
        format!("/Slot?schedule={schedule}&start=2026-01-01&end=2028-01-01"),
    ] {
        let (status, body) = app.get_json(&bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(outcome(&body).0, "invalid");
        assert!(body["issue"][0]["diagnostics"].is_string());
    }
    // Only the four documented parameters and paging (§3, §7); anything else is named.
    let (status, body) = app
        .get_json(&format!("/Slot?schedule={schedule}&status=free"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["issue"][0]["diagnostics"],
        "status: unknown Slot search parameter"
    );
    let day = next(app.today(), 8, Weekday::Thursday);
    let bare = app.slots(&schedule, day, day, 20).await;
    let prefixed = app
        .slots(&format!("Schedule/{schedule}"), day, day, 20)
        .await;
    assert_eq!(bare, prefixed);
    assert_eq!(
        bare[0]["schedule"]["reference"],
        format!("Schedule/{schedule}")
    );
    assert_eq!(bare[0]["schedule"]["type"], "Schedule");
    assert_eq!(bare[0]["status"], "free");
    assert!(bare[0].get("id").is_none());
    // Well-formed but naming no Schedule: no slots, not an error.
    let (status, empty) = app
        .get_json(&format!("/Slot?schedule={}", schedule_id(2, OKAFOR)))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(empty["total"], 0);
}

#[tokio::test]
async fn slot_pages_link_onwards_with_the_query_kept() {
    let app = spawn().await;
    let day = next(app.today(), 8, Weekday::Monday);
    let end = day.saturating_add(4.days());
    let schedule = schedule_id(1, OKAFOR);
    let path = format!("/Slot?schedule={schedule}&start={day}&end={end}&duration=30");
    let (_, first) = app.get_json(&path).await;
    let total = first["total"].as_u64().unwrap();
    assert!(total > 10);
    let next_url = link(&first, "next").unwrap();
    assert!(next_url.starts_with("/Slot?schedule=Location.1-Staff."));
    assert!(next_url.ends_with("&duration=30&_count=10&_offset=10"));
    let all = app.all(&path).await;
    assert_eq!(all.len() as u64, total);
    assert_eq!(all, app.slots(&schedule, day, end, 30).await);
    let span = instant(all.last().unwrap()["start"].as_str().unwrap())
        .duration_since(instant(all[0]["start"].as_str().unwrap()));
    assert!(span > SignedDuration::from_hours(24 * 3));
}
