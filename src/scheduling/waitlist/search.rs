//! Where and when an entry's openings are looked for, as plain functions: its dates are the
//! clinic's local dates (as `/v1/availability` reads them, in the location's zone), searched
//! in ranges of `max_range_days` up to its last date or the booking horizon, within a window
//! that already leaves out what may not be offered (within `stop_hours_before`, not before the
//! visit it would replace), among the clinicians it names alone, a page at a time until one
//! fits or the range ends.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp};

use crate::rules::window::Window;
use crate::scheduling::directory::Snapshot;
use crate::store::waitlist::Entry;

/// Slots asked for at once; more pages follow while none fits.
pub const PAGE: usize = 50;

/// The date it is now where an entry may be seen: at its location, or (with none named) the
/// earliest date anywhere the clinic operates; its dates are still to come while this is not
/// past them. UTC for a clinic with no location known.
pub fn today_at(location: Option<&str>, snapshot: &Snapshot, now: Timestamp) -> Date {
    let named = location.and_then(|l| snapshot.place_by_id(l));
    let zones: Vec<&TimeZone> = match named {
        Some(place) => vec![&place.info.timezone],
        None => snapshot.places.iter().map(|p| &p.info.timezone).collect(),
    };
    earliest_date(zones, now)
}

/// The earliest local date of `now` among these zones (UTC for none).
pub fn earliest_date<'a>(zones: impl IntoIterator<Item = &'a TimeZone>, now: Timestamp) -> Date {
    zones
        .into_iter()
        .map(|tz| now.to_zoned_datetime(tz.clone()).date())
        .min()
        .unwrap_or_else(|| now.to_zoned_datetime(TimeZone::UTC).date())
}

/// The booking window narrowed to what may be offered to an entry: nothing starting before
/// `not_before`, nor at or after the visit it would replace. `None` when nothing is left.
pub fn offer_window(
    booking: Window,
    not_before: Timestamp,
    before_start: Option<Timestamp>,
) -> Option<Window> {
    let earliest = booking.earliest.max(not_before);
    let latest = match before_start {
        Some(visit) => booking
            .latest
            .min(visit.checked_sub(SignedDuration::from_secs(1)).ok()?),
        None => booking.latest,
    };
    (earliest <= latest).then_some(Window { earliest, latest })
}

/// The local dates an entry's openings may fall on: from its earliest (never before `today`)
/// to its latest, never past `horizon` (the last date the booking window reaches).
pub fn days(entry: &Entry, today: Date, horizon: Date) -> Option<(Date, Date)> {
    let first = entry.earliest_date.unwrap_or(today).max(today);
    let last = entry.latest_date.min(horizon);
    (first <= last).then_some((first, last))
}

/// The last local date anywhere that a window ending at `latest` reaches (zones run at most 14
/// hours ahead of UTC, so the next UTC date covers them all).
pub fn horizon_date(latest: Timestamp) -> Date {
    let utc = latest.to_zoned_datetime(TimeZone::UTC).date();
    utc.tomorrow().unwrap_or(utc)
}

/// `first..=last` in consecutive ranges of at most `max_range_days` dates each.
pub fn ranges(first: Date, last: Date, max_range_days: u32) -> Vec<(Date, Date)> {
    let step = i64::from(max_range_days.max(1)) - 1;
    let mut out = Vec::new();
    let mut from = first;
    while from <= last {
        let to = from.saturating_add(Span::new().days(step)).min(last);
        out.push((from, to));
        match to.tomorrow() {
            Ok(next) => from = next,
            Err(_) => break,
        }
    }
    out
}

/// The UTC dates whose availability holds every slot on the local dates `first..=last`, in any
/// zone (local dates are at most a day off the UTC date).
pub fn utc_dates(first: Date, last: Date) -> (Date, Date) {
    (
        first.yesterday().unwrap_or(first),
        last.tomorrow().unwrap_or(last),
    )
}

/// The clinic as the entry may be offered it: only the schedules of the clinicians it names
/// (all of them when it names none).
pub fn narrowed(snapshot: &Snapshot, entry: &Entry) -> Option<Snapshot> {
    if entry.practitioner_ids.is_empty() {
        return None;
    }
    let named =
        |p: &crate::types::PractitionerId| entry.practitioner_ids.iter().any(|n| n == p.as_str());
    Some(Snapshot {
        clinicians: snapshot
            .clinicians
            .iter()
            .filter(|(id, _)| named(id))
            .map(|(id, c)| (id.clone(), c.clone()))
            .collect(),
        schedules: snapshot
            .schedules
            .iter()
            .filter(|s| named(&s.id.practitioner))
            .cloned()
            .collect(),
        places: snapshot.places.clone(),
        fetched_at: snapshot.fetched_at,
        policy: snapshot.policy.clone(),
    })
}

/// Where one page of a search ends, given the starts it returned (sorted) and its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The page held everything left.
    Done,
    /// The page was full: the next one starts at this instant (the page's last instant may
    /// have been cut short, so its slots are asked again rather than considered now).
    From(Timestamp),
    /// One instant filled the whole page: ask again with a larger limit.
    Wider,
}

/// How many of a page's slots to consider now, and where the next page starts.
pub fn page(starts: &[Timestamp], limit: usize) -> (usize, Next) {
    let (Some(&first), Some(&last)) = (starts.first(), starts.last()) else {
        return (0, Next::Done);
    };
    if starts.len() < limit {
        return (starts.len(), Next::Done);
    }
    if first == last {
        return (0, Next::Wider);
    }
    (starts.partition_point(|s| *s < last), Next::From(last))
}

/// Whether a slot's local date is one the entry accepts.
pub fn on_its_days(entry: &Entry, local_date: Date) -> bool {
    entry.earliest_date.is_none_or(|e| e <= local_date) && local_date <= entry.latest_date
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::rules::model::{LocationInfo, Policy};
    use crate::scheduling::directory::{Place, ScheduleEntry};
    use crate::types::ScheduleId;

    const OKAFOR: &str = "c48de0f40beb4fee86f872da7a840cf9";
    const REYES: &str = "f8caf3fdef4f451a8f708556591ee1c2";
    const CHEN: &str = "4150cd20de8a470aa570a852859ac87e";

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn day(s: &str) -> Date {
        s.parse().unwrap()
    }

    fn zone(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    fn entry() -> Entry {
        Entry {
            id: "e".into(),
            owner: "patient".into(),
            patient: "97491556534444838b94dbb0909b6b3d".into(),
            reason_code: "FLUP".into(),
            duration: 30,
            patient_state: "CA".into(),
            modality: None,
            practitioner_ids: Vec::new(),
            location_id: None,
            earliest_date: None,
            latest_date: day("2026-12-31"),
            before_appointment_id: None,
            before_start: None,
            created_at: at("2026-12-01T00:00:00Z"),
            passed: Vec::new(),
        }
    }

    /// Oakland (Los Angeles time) and Brooklyn (New York time), each with the three clinicians.
    fn clinic() -> Snapshot {
        let place = |n: usize, tz: &str| Place {
            info: LocationInfo {
                schedule_key: n.to_string(),
                id: format!("00000000-0000-0000-0000-{n:012}"),
                timezone: zone(tz),
                state: "CA".parse().unwrap(),
            },
            name: format!("Place {n}"),
            details: Default::default(),
        };
        let mut schedules = Vec::new();
        for p in 0..2 {
            for c in [OKAFOR, REYES, CHEN] {
                schedules.push(ScheduleEntry {
                    id: ScheduleId {
                        location_key: p.to_string(),
                        practitioner: c.parse().unwrap(),
                    },
                    place: p,
                });
            }
        }
        Snapshot {
            clinicians: BTreeMap::new(),
            places: vec![
                place(0, "America/Los_Angeles"),
                place(1, "America/New_York"),
            ],
            schedules,
            fetched_at: Timestamp::UNIX_EPOCH,
            policy: std::sync::Arc::new(Policy::for_tests(Default::default())),
        }
    }

    #[test]
    fn today_is_the_locations_date_and_without_one_the_earliest_the_clinic_has() {
        let clinic = clinic();
        // 9:30 pm on the 4th in Oakland is already the 5th in Brooklyn (and in UTC).
        let now = at("2026-12-05T05:30:00Z");
        assert_eq!(today_at(None, &clinic, now), day("2026-12-04"));
        let brooklyn = clinic.places[1].info.id.clone();
        assert_eq!(today_at(Some(&brooklyn), &clinic, now), day("2026-12-05"));
        let oakland = clinic.places[0].info.id.clone();
        assert_eq!(today_at(Some(&oakland), &clinic, now), day("2026-12-04"));
        assert_eq!(
            earliest_date([], now),
            day("2026-12-05"),
            "UTC when no zone is known"
        );
    }

    #[test]
    fn a_slot_counts_on_its_local_date() {
        let mut e = entry();
        e.earliest_date = Some(day("2026-12-04"));
        e.latest_date = day("2026-12-04");
        // 5 pm on the 4th in Oakland is 1 am on the 5th in UTC: still the 4th there.
        let evening = at("2026-12-05T01:00:00Z").to_zoned_datetime(zone("America/Los_Angeles"));
        assert!(on_its_days(&e, evening.date()));
        assert!(!on_its_days(&e, day("2026-12-05")));
        assert!(!on_its_days(&e, day("2026-12-03")));
        let (first, last) = utc_dates(day("2026-12-04"), day("2026-12-04"));
        assert!(
            first <= day("2026-12-03") && day("2026-12-05") <= last,
            "asked wide enough"
        );
    }

    #[test]
    fn the_window_leaves_out_the_stop_time_and_the_visit_to_replace() {
        let booking = Window {
            earliest: at("2026-12-04T17:00:00Z"),
            latest: at("2027-03-04T17:00:00Z"),
        };
        let not_before = at("2026-12-04T19:00:00Z");
        let visit = at("2026-12-10T17:00:00Z");
        let w = offer_window(booking, not_before, Some(visit)).unwrap();
        assert_eq!(w.earliest, not_before);
        assert!(w.allows(at("2026-12-10T16:59:59Z")));
        assert!(!w.allows(visit), "the same time is no earlier");
        assert_eq!(
            offer_window(booking, not_before, None).unwrap().latest,
            booking.latest
        );
        assert_eq!(
            offer_window(booking, not_before, Some(at("2026-12-04T18:00:00Z"))),
            None,
            "nothing between the stop time and the visit"
        );
    }

    #[test]
    fn the_days_run_to_the_last_date_or_the_horizon_in_ranges_the_policy_allows() {
        let mut e = entry();
        e.earliest_date = Some(day("2026-11-20"));
        e.latest_date = day("2027-02-15");
        let today = day("2026-12-25");
        let horizon = horizon_date(at("2027-01-20T17:00:00Z"));
        assert_eq!(horizon, day("2027-01-21"));
        let (first, last) = days(&e, today, horizon).unwrap();
        assert_eq!((first, last), (today, horizon));
        let r = ranges(first, last, 14);
        assert_eq!(r.first(), Some(&(day("2026-12-25"), day("2027-01-07"))));
        assert_eq!(r.last(), Some(&(day("2027-01-08"), horizon)));
        assert_eq!(r.len(), 2);
        for pair in r.windows(2) {
            assert_eq!(pair[0].1.tomorrow().unwrap(), pair[1].0, "no date skipped");
        }
        assert_eq!(ranges(today, today, 14), vec![(today, today)]);
        e.latest_date = day("2026-12-24");
        assert_eq!(days(&e, today, horizon), None, "its last date passed");
    }

    #[test]
    fn only_the_named_clinicians_schedules_are_searched() {
        let clinic = clinic();
        assert!(narrowed(&clinic, &entry()).is_none(), "any clinician");
        let mut e = entry();
        e.practitioner_ids = vec![OKAFOR.into(), CHEN.into()];
        let mine = narrowed(&clinic, &e).unwrap();
        assert_eq!(mine.schedules.len(), 4, "two clinicians at two places");
        assert!(
            mine.schedules
                .iter()
                .all(|s| s.id.practitioner.as_str() != REYES)
        );
        assert_eq!(mine.places, clinic.places);
    }

    #[test]
    fn a_full_page_is_continued_from_its_last_instant() {
        let (a, b, c) = (
            at("2026-12-10T17:00:00Z"),
            at("2026-12-10T17:30:00Z"),
            at("2026-12-10T18:00:00Z"),
        );
        assert_eq!(page(&[a, b], 3), (2, Next::Done));
        assert_eq!(page(&[], 3), (0, Next::Done));
        assert_eq!(
            page(&[a, b, b], 3),
            (1, Next::From(b)),
            "the last instant may have been cut short"
        );
        assert_eq!(page(&[a, b, c], 3), (2, Next::From(c)));
        assert_eq!(page(&[a, a, a], 3), (0, Next::Wider));
    }
}
