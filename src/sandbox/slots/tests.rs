use jiff::civil::{Date, Time, Weekday, date, time};
use jiff::tz::TimeZone;

use super::*;

fn tz(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap()
}

fn every_day(start: Time, end: Time) -> Vec<WeeklyWindow> {
    [
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
        Weekday::Saturday,
        Weekday::Sunday,
    ]
    .into_iter()
    .map(|weekday| WeeklyWindow {
        weekday,
        start,
        end,
    })
    .collect()
}

/// Slots rendered as `HH:MM±hh:mm` local starts, the way Canvas stamps them.
fn local_starts(zone: &TimeZone, day: Date, hours: &[WeeklyWindow], minutes: i64) -> Vec<String> {
    let request = SlotRequest {
        tz: zone,
        first: day,
        last: day,
        duration_minutes: minutes,
        hours,
        busy: &[],
    };
    free_slots(&request)
        .iter()
        .map(|s| {
            let offset = zone.to_offset(s.start);
            let local = offset.to_datetime(s.start);
            let off = offset.seconds() / 3600;
            format!("{:02}:{:02}{:+03}", local.hour(), local.minute(), off)
        })
        .collect()
}

#[test]
fn durations_off_the_quarter_hour_overlap_with_the_fifteen_minute_grid() {
    let hours = every_day(time(9, 0, 0, 0), time(10, 0, 0, 0));
    let la = tz("America/Los_Angeles");
    assert_eq!(
        local_starts(&la, date(2026, 6, 18), &hours, 20),
        ["09:00-07", "09:15-07", "09:20-07", "09:30-07", "09:40-07"]
    );
}

#[test]
fn durations_on_the_quarter_hour_are_back_to_back() {
    let hours = every_day(time(9, 0, 0, 0), time(12, 0, 0, 0));
    let la = tz("America/Los_Angeles");
    let thirty = local_starts(&la, date(2026, 6, 18), &hours, 30);
    assert_eq!(thirty.len(), 6);
    assert_eq!(thirty[1], "09:30-07");
    assert_eq!(
        local_starts(&la, date(2026, 6, 18), &hours, 45),
        ["09:00-07", "09:45-07", "10:30-07", "11:15-07"]
    );
    assert_eq!(local_starts(&la, date(2026, 6, 18), &hours, 15).len(), 12);
}

#[test]
fn every_slot_ends_by_the_window_end_and_none_repeats() {
    let hours = every_day(time(13, 0, 0, 0), time(17, 0, 0, 0));
    let zone = tz("America/Chicago");
    let request = SlotRequest {
        tz: &zone,
        first: date(2026, 6, 15),
        last: date(2026, 6, 21),
        duration_minutes: 50,
        hours: &hours,
        busy: &[],
    };
    let slots = free_slots(&request);
    let windows = windows(&request);
    assert_eq!(windows.len(), 7);
    for slot in &slots {
        assert!(
            windows
                .iter()
                .any(|w| w.start <= slot.start && slot.end <= w.end)
        );
    }
    let mut starts: Vec<_> = slots.iter().map(|s| s.start).collect();
    starts.dedup();
    assert_eq!(starts.len(), slots.len());
    // 4 h window, 50 min: the 50-grid gives 4, the 15-grid 13 (13:00..16:00+10); union 15.
    assert_eq!(slots.len(), 7 * 15);
}

#[test]
fn busy_time_removes_overlapping_slots_only() {
    let hours = every_day(time(9, 0, 0, 0), time(11, 0, 0, 0));
    let la = tz("America/Los_Angeles");
    let day = date(2026, 6, 18);
    let busy = [local_interval(&la, day, time(9, 30, 0, 0), time(10, 0, 0, 0)).unwrap()];
    let request = SlotRequest {
        tz: &la,
        first: day,
        last: day,
        duration_minutes: 30,
        hours: &hours,
        busy: &busy,
    };
    let starts: Vec<_> = free_slots(&request)
        .iter()
        .map(|s| la.to_offset(s.start).to_datetime(s.start).time())
        .collect();
    assert_eq!(
        starts,
        [time(9, 0, 0, 0), time(10, 0, 0, 0), time(10, 30, 0, 0)]
    );
}

#[test]
fn dates_are_inclusive_and_follow_the_weekday_of_the_local_date() {
    let hours = [WeeklyWindow {
        weekday: Weekday::Monday,
        start: time(9, 0, 0, 0),
        end: time(10, 0, 0, 0),
    }];
    let ny = tz("America/New_York");
    let request = SlotRequest {
        tz: &ny,
        first: date(2026, 6, 15),
        last: date(2026, 6, 22),
        duration_minutes: 30,
        hours: &hours,
        busy: &[],
    };
    assert_eq!(free_slots(&request).len(), 4, "two Mondays, two slots each");
}

#[test]
fn a_window_across_the_spring_gap_is_its_physical_length() {
    let hours = every_day(time(1, 0, 0, 0), time(4, 0, 0, 0));
    let la = tz("America/Los_Angeles");
    assert_eq!(
        local_starts(&la, date(2026, 3, 8), &hours, 30),
        ["01:00-08", "01:30-08", "03:00-07", "03:30-07"]
    );
    // The day before, the same window holds six.
    assert_eq!(local_starts(&la, date(2026, 3, 7), &hours, 30).len(), 6);
}

#[test]
fn a_window_starting_inside_the_gap_starts_after_it() {
    let hours = every_day(time(2, 30, 0, 0), time(5, 0, 0, 0));
    let ny = tz("America/New_York");
    assert_eq!(
        local_starts(&ny, date(2026, 3, 8), &hours, 30),
        ["03:30-04", "04:00-04", "04:30-04"]
    );
}

#[test]
fn a_window_across_the_autumn_fold_repeats_wall_times_but_never_instants() {
    let hours = every_day(time(1, 0, 0, 0), time(3, 0, 0, 0));
    let la = tz("America/Los_Angeles");
    assert_eq!(
        local_starts(&la, date(2026, 11, 1), &hours, 30),
        [
            "01:00-07", "01:30-07", "01:00-08", "01:30-08", "02:00-08", "02:30-08"
        ]
    );
}

#[test]
fn a_window_across_the_fold_with_the_quirk_grid_has_no_duplicates() {
    let hours = every_day(time(0, 0, 0, 0), time(4, 0, 0, 0));
    let ny = tz("America/New_York");
    let day = date(2026, 11, 1);
    let request = SlotRequest {
        tz: &ny,
        first: day,
        last: day,
        duration_minutes: 20,
        hours: &hours,
        busy: &[],
    };
    let slots = free_slots(&request);
    let mut starts: Vec<_> = slots.iter().map(|s| s.start).collect();
    starts.sort();
    starts.dedup();
    assert_eq!(starts.len(), slots.len());
    // Five physical hours (00:00 EDT to 04:00 EST): every minute offset on either grid.
    let expected = (0..=280)
        .filter(|m| (m % 20 == 0 || m % 15 == 0) && m + 20 <= 300)
        .count();
    assert_eq!(slots.len(), expected);
}

#[test]
fn days_after_the_transition_carry_the_new_offset() {
    let hours = every_day(time(8, 0, 0, 0), time(12, 0, 0, 0));
    for (zone, before, after) in [
        ("America/Los_Angeles", "-08", "-07"),
        ("America/New_York", "-05", "-04"),
    ] {
        let z = tz(zone);
        let sat = local_starts(&z, date(2026, 3, 7), &hours, 20);
        let sun = local_starts(&z, date(2026, 3, 8), &hours, 20);
        assert_eq!(sat.len(), sun.len(), "{zone}");
        assert!(sat.iter().all(|s| s.ends_with(before)), "{zone} {sat:?}");
        assert!(sun.iter().all(|s| s.ends_with(after)), "{zone} {sun:?}");
        let fall = local_starts(&z, date(2026, 11, 1), &hours, 20);
        assert!(fall.iter().all(|s| s.ends_with(before)), "{zone} {fall:?}");
        assert_eq!(
            fall.first().map(String::as_str),
            Some(&*format!("08:00{before}"))
        );
    }
}

#[test]
fn phoenix_keeps_its_offset_all_year() {
    let hours = every_day(time(9, 0, 0, 0), time(10, 0, 0, 0));
    let phx = tz("America/Phoenix");
    for day in [
        date(2026, 3, 8),
        date(2026, 3, 9),
        date(2026, 11, 1),
        date(2026, 7, 1),
    ] {
        let starts = local_starts(&phx, day, &hours, 30);
        assert_eq!(starts, ["09:00-07", "09:30-07"], "{day}");
    }
}

#[test]
fn a_non_positive_duration_yields_nothing() {
    let hours = every_day(time(9, 0, 0, 0), time(10, 0, 0, 0));
    let la = tz("America/Los_Angeles");
    assert!(local_starts(&la, date(2026, 6, 18), &hours, 0).is_empty());
}
