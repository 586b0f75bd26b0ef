use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use super::*;
use crate::canvas::licenses::License;
use crate::rules::eligibility::Licensure;
use crate::rules::model::{LocationInfo, Policy, PractitionerProfile, Reason, Rules, TypeCoding};
use crate::scheduling::directory::{Clinician, Place, ScheduleEntry};
use crate::types::ScheduleId;

const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const C: &str = "cccccccccccccccccccccccccccccccc";

fn zone(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap()
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn day(s: &str) -> Date {
    s.parse().unwrap()
}

fn st(s: &str) -> UsState {
    s.parse().unwrap()
}

fn pid(s: &str) -> PractitionerId {
    s.parse().unwrap()
}

fn reason(code: &str, modalities: &[Modality], specialties: &[&str], public: bool) -> Reason {
    let coding = TypeCoding {
        system: "http://snomed.info/sct".into(),
        code: "448337001".into(),
    };
    Reason {
        code: code.into(),
        system: "INTERNAL".into(),
        display: format!("{code} visit"),
        durations: vec![30, 60],
        modalities: modalities.iter().map(|m| (*m, coding.clone())).collect(),
        specialties: specialties.iter().map(|s| s.to_string()).collect(),
        patient_bookable: public,
    }
}

fn clinician(
    id: &str,
    specialties: &[&str],
    modalities: &[Modality],
    licensure: Licensure,
) -> Clinician {
    Clinician {
        id: pid(id),
        name: format!("Dr {}", &id[..1]),
        profile: PractitionerProfile {
            specialties: specialties.iter().map(|s| s.to_string()).collect(),
            modalities: modalities.to_vec(),
            ..PractitionerProfile::default()
        },
        licensure,
        meeting_link: None,
    }
}

fn licence(state: &str, start: Option<&str>, end: Option<&str>) -> License {
    License {
        kind: "STATE".into(),
        state: Some(st(state)),
        start: start.map(day),
        end: end.map(day),
        primary: false,
    }
}

fn place(key: usize, tz: &str, state: &str) -> Place {
    Place {
        info: LocationInfo {
            schedule_key: key.to_string(),
            id: format!("00000000-0000-0000-0000-{key:012}"),
            timezone: zone(tz),
            state: st(state),
        },
        name: format!("Place {key}"),
        details: Default::default(),
    }
}

/// A clinic of these places and clinicians; `at` lists (clinician, place index) schedules.
fn clinic(
    places: Vec<Place>,
    clinicians: Vec<Clinician>,
    at: &[(&str, usize)],
    reasons: Vec<Reason>,
) -> Snapshot {
    let schedules = at
        .iter()
        .map(|(c, p)| ScheduleEntry {
            id: ScheduleId {
                location_key: places[*p].info.schedule_key.clone(),
                practitioner: pid(c),
            },
            place: *p,
        })
        .collect();
    Snapshot {
        clinicians: clinicians.into_iter().map(|c| (c.id.clone(), c)).collect(),
        places,
        schedules,
        fetched_at: Timestamp::UNIX_EPOCH,
        policy: Arc::new(Policy::for_tests(Rules {
            reasons,
            practitioners: BTreeMap::new(),
            locations: Vec::new(),
        })),
    }
}

/// What Canvas lists for a clinician at a place: `length` minutes at each of these local
/// times on each of these local dates (a time a DST gap skips is not listed).
fn offers(
    snapshot: &Snapshot,
    practitioner: &str,
    place: usize,
    dates: &[Date],
    times: &[Time],
    modality: Modality,
) -> Vec<OwnedOffer> {
    let p = &snapshot.places[place];
    let mut out = Vec::new();
    for d in dates {
        for t in times {
            let local = d.to_datetime(*t);
            let Ok(z) = p
                .info
                .timezone
                .to_ambiguous_zoned_datetime(local)
                .unambiguous()
            else {
                continue;
            };
            out.push(OwnedOffer {
                practitioner: pid(practitioner),
                practitioner_name: "Dr".into(),
                place: p.clone(),
                start: z.timestamp(),
                end: z.timestamp() + SignedDuration::from_mins(30),
                modality,
            });
        }
    }
    out
}

fn dates(first: &str, n: i64) -> Vec<Date> {
    (0..n)
        .map(|i| day(first).saturating_add(jiff::Span::new().days(i)))
        .collect()
}

fn morning() -> Vec<Time> {
    (0..6)
        .map(|i| Time::new(9 + i / 2, 30 * (i % 2), 0, 0).unwrap())
        .collect()
}

fn local(slot: &PublicSlot) -> jiff::ZonedDateTime {
    slot.start.to_zoned_datetime(slot.tz.clone())
}

#[test]
fn a_period_is_local_dates_at_each_location() {
    // 10:30 pm on the 6th in Oakland is already the 7th in Brooklyn.
    let now = at("2026-03-07T06:30:00Z");
    assert_eq!(
        Period::at(now, &zone("America/Los_Angeles"), 3),
        Period {
            first: day("2026-03-06"),
            last: day("2026-03-08")
        }
    );
    let brooklyn = Period::at(now, &zone("America/New_York"), 3);
    assert_eq!(
        (brooklyn.first, brooklyn.last),
        (day("2026-03-07"), day("2026-03-09"))
    );
    assert!(brooklyn.contains(day("2026-03-09")) && !brooklyn.contains(day("2026-03-10")));
    assert_eq!(
        Period::at(now, &TimeZone::UTC, 1).last,
        day("2026-03-07"),
        "one day is today"
    );
}

/// Spring forward on 2026-03-08 in both zones: every published slot keeps its local clinic
/// time (the offset moves, the wall clock does not), each location gets exactly its three
/// local dates, and the period ends at local midnight, not 72 hours after it began (the 8th has
/// 23 hours there, so 72 hours would reach 00:30 on the 10th).
#[test]
fn spring_forward_in_new_york_and_los_angeles_keeps_local_times_and_counts() {
    let snapshot = clinic(
        vec![
            place(1, "America/Los_Angeles", "CA"),
            place(3, "America/New_York", "NY"),
        ],
        vec![clinician(
            A,
            &[],
            &[Modality::InPerson],
            Licensure::Override(vec![st("CA"), st("NY")]),
        )],
        &[(A, 0), (A, 1)],
        vec![reason("FLUP", &[Modality::InPerson], &[], true)],
    );
    let now = at("2026-03-07T12:00:00Z");
    let grid = Grid::new(&snapshot, now, 3);
    let (first, last) = grid.dates().unwrap();
    assert!(first <= day("2026-03-07") && day("2026-03-09") <= last);
    let asks = grid.asks();
    assert_eq!(
        asks,
        [Ask {
            reason: 0,
            state: None
        }]
    );
    let mut times = morning();
    times.push(Time::new(0, 30, 0, 0).unwrap());
    let reason = &snapshot.policy.rules.reasons[0];
    for (p, standard, daylight) in [(0, -8, -7), (1, -5, -4)] {
        let listed = offers(
            &snapshot,
            A,
            p,
            &dates("2026-03-06", 5),
            &times,
            Modality::InPerson,
        );
        let slots = grid.slots(&snapshot, asks[0], reason, &listed, &[], &[]);
        assert_eq!(
            slots.len(),
            3 * 7,
            "three local dates of seven slots at place {p}"
        );
        let mut per_day: BTreeMap<Date, usize> = BTreeMap::new();
        for s in &slots {
            let z = local(s);
            *per_day.entry(z.date()).or_default() += 1;
            assert!(times.contains(&z.time()), "{z} is a clinic time");
            assert_eq!(s.status, SlotStatus::Free);
            assert_eq!(s.claim.start, s.start.as_second());
            assert_eq!(s.claim.duration_minutes, 30, "the reason's first duration");
            let hours = z.offset().seconds() / 3600;
            // The clocks go forward at 2 am on the 8th.
            let switched = day("2026-03-08").to_datetime(Time::new(3, 0, 0, 0).unwrap());
            let expected = if z.datetime() < switched {
                standard
            } else {
                daylight
            };
            assert_eq!(hours, expected, "{z}");
        }
        assert_eq!(
            per_day.keys().copied().collect::<Vec<_>>(),
            dates("2026-03-07", 3)
        );
        // The DST day is 23 hours long: 9 am to 9 am across it is 23 hours apart.
        let nine = |d: &str| {
            slots
                .iter()
                .find(|s| {
                    local(s).date() == day(d) && local(s).time() == Time::new(9, 0, 0, 0).unwrap()
                })
                .unwrap()
                .start
        };
        assert_eq!(
            nine("2026-03-08")
                .duration_since(nine("2026-03-07"))
                .as_hours(),
            23
        );
        assert_eq!(
            nine("2026-03-09")
                .duration_since(nine("2026-03-08"))
                .as_hours(),
            24
        );
    }
}

/// Fall back in Berlin (2026-10-25) and in New York (2026-11-01) within one ten-day
/// publication: both instants of the repeated hour are published as two slots, every other
/// time once, and each location still gets exactly its ten local dates.
#[test]
fn fall_back_in_berlin_and_new_york_publishes_the_repeated_hour_twice() {
    let snapshot = clinic(
        // The state is what licensure reads; the zone is what this test is about.
        vec![
            place(3, "America/New_York", "NY"),
            place(5, "Europe/Berlin", "NY"),
        ],
        vec![clinician(
            A,
            &[],
            &[Modality::InPerson],
            Licensure::Override(vec![st("NY")]),
        )],
        &[(A, 0), (A, 1)],
        vec![reason("FLUP", &[Modality::InPerson], &[], true)],
    );
    let now = at("2026-10-24T10:00:00Z");
    let grid = Grid::new(&snapshot, now, 10);
    let reason = &snapshot.policy.rules.reasons[0];
    for (p, change) in [(0, "2026-11-01"), (1, "2026-10-25")] {
        let tz = snapshot.places[p].info.timezone.clone();
        let mut listed = offers(
            &snapshot,
            A,
            p,
            &dates("2026-10-23", 12),
            &morning(),
            Modality::InPerson,
        );
        // Both 1:30 am (New York) or 2:30 am (Berlin): the hour that happens twice.
        let repeated = if p == 0 {
            Time::new(1, 30, 0, 0)
        } else {
            Time::new(2, 30, 0, 0)
        }
        .unwrap();
        let first = tz
            .to_ambiguous_zoned_datetime(day(change).to_datetime(repeated))
            .earlier()
            .unwrap();
        for start in [
            first.timestamp(),
            first.timestamp() + SignedDuration::from_hours(1),
        ] {
            listed.push(OwnedOffer {
                start,
                end: start + SignedDuration::from_mins(30),
                ..listed[0].clone()
            });
        }
        let slots = grid.slots(
            &snapshot,
            Ask {
                reason: 0,
                state: None,
            },
            reason,
            &listed,
            &[],
            &[],
        );
        assert_eq!(slots.len(), 10 * 6 + 2, "place {p}");
        let on_change: Vec<&PublicSlot> = slots
            .iter()
            .filter(|s| local(s).date() == day(change))
            .collect();
        assert_eq!(on_change.len(), 8);
        let twice: Vec<i32> = on_change
            .iter()
            .filter(|s| local(s).time() == repeated)
            .map(|s| local(s).offset().seconds())
            .collect();
        assert_eq!(twice.len(), 2, "both instants of {repeated} on {change}");
        assert_ne!(twice[0], twice[1], "told apart by their offsets");
        let days: std::collections::BTreeSet<Date> =
            slots.iter().map(|s| local(s).date()).collect();
        assert_eq!(
            days.into_iter().collect::<Vec<_>>(),
            dates("2026-10-24", 10)
        );
    }
}

#[test]
fn holds_are_busy_tentative_and_slotgate_bookings_busy() {
    let (a, b) = (pid(A), pid(B));
    let nine = at("2026-12-01T17:00:00Z");
    let half = SignedDuration::from_mins(30);
    let taken = |p: &PractitionerId, from: Timestamp, minutes: i64| Busy {
        practitioner: p.clone(),
        start: from,
        end: from + SignedDuration::from_mins(minutes),
    };
    // A 60-minute hold covers two 30-minute slots; the slot after it stays free.
    let held = [taken(&a, nine, 60)];
    assert_eq!(
        status(&a, nine, nine + half, &held, &[]),
        SlotStatus::BusyTentative
    );
    assert_eq!(
        status(&a, nine + half, nine + half * 2, &held, &[]),
        SlotStatus::BusyTentative
    );
    assert_eq!(
        status(&a, nine + half * 2, nine + half * 3, &held, &[]),
        SlotStatus::Free
    );
    // Another clinician's hold says nothing about this one.
    assert_eq!(status(&b, nine, nine + half, &held, &[]), SlotStatus::Free);
    // A booking slotgate made is busy, held or not.
    let booked = [taken(&a, nine + half, 15)];
    assert_eq!(
        status(&a, nine, nine + half * 2, &held, &booked),
        SlotStatus::Busy
    );
    assert_eq!(
        status(&a, nine, nine + half, &[], &booked),
        SlotStatus::Free,
        "touching is not overlapping"
    );
    assert_eq!(SlotStatus::BusyTentative.as_str(), "busy-tentative");
}

/// Schedules follow what a patient could book: the modality the clinician practises, a licence
/// that overlaps the period (for video, one schedule per licensed state), public reasons only.
#[test]
fn schedules_follow_modalities_licences_and_public_reasons() {
    let both = [Modality::Telehealth, Modality::InPerson];
    let snapshot = clinic(
        vec![place(1, "America/Los_Angeles", "CA")],
        vec![
            // CA for years; TX only from the middle of the period.
            clinician(
                A,
                &["primary_care"],
                &both,
                Licensure::Canvas(vec![
                    licence("CA", None, None),
                    licence("TX", Some("2026-12-10"), None),
                    licence("WA", None, Some("2026-11-30")),
                ]),
            ),
            // In person only, and their CA licence lapsed before the period.
            clinician(
                B,
                &["dermatology"],
                &[Modality::InPerson],
                Licensure::Canvas(vec![licence("CA", None, Some("2026-11-01"))]),
            ),
            // Video only, licensed in New York alone, though their schedule is in Oakland.
            clinician(
                C,
                &["primary_care"],
                &[Modality::Telehealth],
                Licensure::Override(vec![st("NY")]),
            ),
        ],
        &[(A, 0), (B, 0), (C, 0)],
        vec![
            reason("INIV", &both, &["primary_care"], true),
            reason("MEDR", &[Modality::Telehealth], &[], false),
            reason("DERM", &[Modality::InPerson], &["dermatology"], true),
        ],
    );
    let grid = Grid::new(&snapshot, at("2026-12-01T18:00:00Z"), 14);
    let got: Vec<(String, Site, Vec<usize>)> = grid
        .schedules()
        .iter()
        .map(|s| (s.practitioner.to_string(), s.site, s.reasons.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (A.to_owned(), Site::Place(0), vec![0]),
            (A.to_owned(), Site::Virtual(st("CA")), vec![0]),
            (C.to_owned(), Site::Virtual(st("NY")), vec![0]),
            (A.to_owned(), Site::Virtual(st("TX")), vec![0]),
        ]
    );
    assert!(
        grid.schedules().iter().all(|s| !s.reasons.contains(&1)),
        "a staff-only reason is never published"
    );
    assert_eq!(
        grid.asks(),
        vec![
            Ask {
                reason: 0,
                state: None
            },
            Ask {
                reason: 0,
                state: Some(st("CA"))
            },
            Ask {
                reason: 0,
                state: Some(st("NY"))
            },
            Ask {
                reason: 0,
                state: Some(st("TX"))
            },
        ]
    );
}

#[test]
fn video_offers_belong_to_the_state_they_were_asked_for() {
    let snapshot = clinic(
        vec![
            place(1, "America/Los_Angeles", "CA"),
            place(3, "America/New_York", "NY"),
        ],
        vec![
            clinician(
                A,
                &[],
                &[Modality::Telehealth],
                Licensure::Override(vec![st("CA"), st("NY")]),
            ),
            clinician(
                B,
                &[],
                &[Modality::InPerson],
                Licensure::Override(vec![st("CA")]),
            ),
        ],
        &[(A, 0), (A, 1), (B, 0)],
        vec![reason(
            "FLUP",
            &[Modality::Telehealth, Modality::InPerson],
            &[],
            true,
        )],
    );
    let grid = Grid::new(&snapshot, at("2026-12-01T18:00:00Z"), 7);
    let ca = Ask {
        reason: 0,
        state: Some(st("CA")),
    };
    let reason = &snapshot.policy.rules.reasons[0];
    let mut listed = offers(
        &snapshot,
        A,
        1,
        &[day("2026-12-02")],
        &morning(),
        Modality::Telehealth,
    );
    // B sees nobody by video: an offer for them (there should be none) is not published.
    listed.extend(offers(
        &snapshot,
        B,
        0,
        &[day("2026-12-02")],
        &morning(),
        Modality::Telehealth,
    ));
    let slots = grid.slots(&snapshot, ca, reason, &listed, &[], &[]);
    assert_eq!(slots.len(), 6);
    for s in &slots {
        let schedule = &grid.schedules()[s.schedule];
        assert_eq!(
            (schedule.practitioner.as_str(), schedule.site),
            (A, Site::Virtual(st("CA")))
        );
        assert_eq!(s.claim.modality, Modality::Telehealth);
        assert_eq!(
            s.claim.location_key, "3",
            "booked at the location Canvas lists it under"
        );
        assert_eq!(s.claim.reason, "FLUP");
        assert_eq!(s.tz, zone("America/New_York"));
    }
    // Outside the location's period: nothing.
    let late = offers(
        &snapshot,
        A,
        1,
        &[day("2026-12-09")],
        &morning(),
        Modality::Telehealth,
    );
    assert!(
        grid.slots(&snapshot, ca, reason, &late, &[], &[])
            .is_empty()
    );
}
