//! Property tests of `plan` + `assemble` against an independent oracle: for random clinics,
//! licences, rules and questions in several zones around their DST changes, no offer breaks a
//! rule, no slot every rule allows is lost, and offers are sorted and inside the range.

use std::collections::{BTreeMap, BTreeSet};

use jiff::civil::{Date, date};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use proptest::prelude::*;

use super::availability::{Busy, Query, assemble, plan, span};
use super::directory::{Clinician, Place, ScheduleEntry, Snapshot};
use super::slot_cache::FreeSlot;
use crate::canvas::licenses::License;
use crate::rules::eligibility::Licensure;
use crate::rules::model::{LocationInfo, Modality, PractitionerProfile, Reason, TypeCoding};
use crate::rules::window::Window;
use crate::types::{PractitionerId, ScheduleId, UsState};

const ZONES: [&str; 6] = [
    "America/Los_Angeles",
    "America/New_York",
    "Europe/Berlin",
    "Australia/Lord_Howe",
    "America/Phoenix",
    "UTC",
];
const STATES: [&str; 3] = ["CA", "NY", "TX"];
const SPECIALTIES: [&str; 2] = ["primary_care", "dermatology"];
/// Days just before the DST changes of the zones above (2026).
const AROUND: [(i16, i8, i8); 5] = [
    (2026, 3, 6),
    (2026, 3, 27),
    (2026, 4, 3),
    (2026, 10, 23),
    (2026, 10, 30),
];

fn st(i: usize) -> UsState {
    STATES[i % STATES.len()].parse().unwrap()
}

#[derive(Debug, Clone)]
struct World {
    snapshot: Snapshot,
    /// Free slots per schedule index.
    free: Vec<Vec<FreeSlot>>,
    query: Query,
    window: Window,
    busy: Vec<Busy>,
}

fn pid(i: usize) -> PractitionerId {
    format!("{i:032x}").parse().unwrap()
}

fn modalities(mask: u8) -> Vec<Modality> {
    Modality::ALL
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, m)| *m)
        .collect()
}

prop_compose! {
    fn licence(base: Date)(state in 0..3usize, start in proptest::option::of(-6i64..8), len in proptest::option::of(0i64..8)) -> License {
        let start_date = start.map(|s| base.saturating_add(s.days()));
        let end = len.map(|l| start_date.unwrap_or(base).saturating_add(l.days()));
        License { kind: "STATE".into(), state: Some(st(state)), start: start_date, end, primary: false }
    }
}

prop_compose! {
    fn clinician(i: usize, base: Date)(
        specialties in 0u8..4, mask in 1u8..4, licences in proptest::collection::vec(licence(base), 0..3),
    ) -> Clinician {
        let profile = PractitionerProfile {
            specialties: SPECIALTIES.iter().enumerate().filter(|(j, _)| specialties & (1 << j) != 0).map(|(_, s)| s.to_string()).collect(),
            modalities: modalities(mask),
            ..PractitionerProfile::default()
        };
        Clinician { id: pid(i), name: format!("Clinician {}", i % 3), licensure: Licensure::new(&profile, &licences), profile, meeting_link: None }
    }
}

fn world() -> impl Strategy<Value = World> {
    (
        0..AROUND.len(),
        2..5usize,
        1..4usize,
        prop::sample::select(vec![15u32, 20, 30, 45]),
    )
        .prop_flat_map(|(around, n_clinicians, n_places, duration)| {
            let (y, m, d) = AROUND[around];
            let base = date(y, m, d);
            let clinicians: Vec<_> = (0..n_clinicians).map(|i| clinician(i, base)).collect();
            let places = proptest::collection::vec((0..ZONES.len(), 0..3usize), n_places);
            let schedules = proptest::collection::vec((0..n_clinicians, 0..n_places), 1..8);
            let reason = (0u8..4, 1u8..4);
            let question = (
                0i64..6,
                0i64..4,
                0..ZONES.len(),
                proptest::option::of(0..3usize),
                1u8..4,
            );
            let window = (-48i64..96, 0i64..240, 24i64..400);
            (
                Just(base),
                Just(duration),
                clinicians,
                places,
                schedules,
                reason,
                question,
                window,
                any::<u64>(),
            )
        })
        .prop_map(
            |(base, duration, clinicians, places, schedules, reason, question, window, seed)| {
                build(
                    base, duration, clinicians, places, schedules, reason, question, window, seed,
                )
            },
        )
}

#[allow(clippy::too_many_arguments)]
fn build(
    base: Date,
    duration: u32,
    clinicians: Vec<Clinician>,
    places: Vec<(usize, usize)>,
    schedules: Vec<(usize, usize)>,
    (specialties, mask): (u8, u8),
    (offset, length, zone, state, wanted): (i64, i64, usize, Option<usize>, u8),
    (now_hours, notice_minutes, horizon_hours): (i64, i64, i64),
    seed: u64,
) -> World {
    let mut rng = fastrand::Rng::with_seed(seed);
    let places: Vec<Place> = places
        .iter()
        .enumerate()
        .map(|(i, (zone, state))| Place {
            info: LocationInfo {
                schedule_key: (i + 1).to_string(),
                id: format!("00000000-0000-0000-0000-{:012}", i + 1),
                timezone: TimeZone::get(ZONES[*zone]).unwrap(),
                state: st(*state),
            },
            name: format!("Place {i}"),
            details: Default::default(),
        })
        .collect();
    let mut entries: Vec<ScheduleEntry> = schedules
        .iter()
        .map(|(c, p)| ScheduleEntry {
            id: ScheduleId {
                location_key: (p + 1).to_string(),
                practitioner: pid(*c),
            },
            place: *p,
        })
        .collect();
    entries.sort_by(|a, b| a.id.cmp(&b.id));
    entries.dedup_by(|a, b| a.id == b.id);
    let start = base.saturating_add(offset.days());
    let end = start.saturating_add(length.days());
    let coding = TypeCoding {
        system: "s".into(),
        code: "c".into(),
    };
    let reason = Reason {
        code: "R".into(),
        system: "INTERNAL".into(),
        display: "R".into(),
        durations: vec![duration],
        modalities: modalities(mask)
            .into_iter()
            .map(|m| (m, coding.clone()))
            .collect(),
        specialties: SPECIALTIES
            .iter()
            .enumerate()
            .filter(|(j, _)| specialties & (1 << j) != 0)
            .map(|(_, s)| s.to_string())
            .collect(),
        patient_bookable: true,
    };
    let asked: Vec<Modality> = modalities(wanted)
        .into_iter()
        .filter(|m| reason.modalities.contains_key(m))
        .collect();
    let tz = TimeZone::get(ZONES[zone]).unwrap();
    // Free slots as Canvas would list them: local times on a 15-minute grid in each
    // location's zone, a day either side of the question, some of the wrong length.
    let free: Vec<Vec<FreeSlot>> = entries
        .iter()
        .map(|e| {
            let ltz = &places[e.place].info.timezone;
            let mut slots = Vec::new();
            for day in -1..=length + 1 {
                let d = start.saturating_add(day.days());
                for _ in 0..rng.usize(0..12) {
                    let local = d.at(rng.i8(0..24), 15 * rng.i8(0..4), 0, 0);
                    let Ok(zoned) = local.to_zoned_datetime(ltz.clone()) else {
                        continue;
                    };
                    let minutes = if rng.u8(0..10) == 0 {
                        i64::from(duration) + 5
                    } else {
                        i64::from(duration)
                    };
                    let s = zoned.timestamp();
                    slots.push(FreeSlot {
                        start: s,
                        end: s + SignedDuration::from_mins(minutes),
                        local_date: s.to_zoned_datetime(ltz.clone()).date(),
                    });
                }
            }
            slots.sort_by_key(|s| s.start);
            slots.dedup();
            slots
        })
        .collect();
    let anchor = start.to_zoned_datetime(tz.clone()).unwrap().timestamp();
    let now = anchor + SignedDuration::from_hours(now_hours);
    let window = Window {
        earliest: now + SignedDuration::from_mins(notice_minutes),
        latest: now + SignedDuration::from_hours(horizon_hours),
    };
    let mut busy = Vec::new();
    for _ in 0..rng.usize(0..4) {
        let c = rng.usize(0..clinicians.len());
        let s = anchor + SignedDuration::from_mins(15 * rng.i64(0..(length + 1) * 96));
        busy.push(Busy {
            practitioner: pid(c),
            start: s,
            end: s + SignedDuration::from_mins(15 * rng.i64(1..5)),
        });
    }
    let snapshot = Snapshot {
        clinicians: clinicians.into_iter().map(|c| (c.id.clone(), c)).collect(),
        places,
        schedules: entries,
        fetched_at: Timestamp::UNIX_EPOCH,
        policy: std::sync::Arc::new(crate::rules::model::Policy::for_tests(Default::default())),
    };
    let query = Query {
        reason,
        duration_minutes: duration,
        patient_state: state.map(st),
        modalities: asked,
        start,
        end,
        tz,
        practitioner: None,
        location: None,
        specialty: None,
        language: None,
        limit: 100_000,
    };
    World {
        snapshot,
        free,
        query,
        window,
        busy,
    }
}

/// Every rule, restated independently of `plan` and `assemble`.
fn allowed(w: &World, schedule: &ScheduleEntry, slot: &FreeSlot, modality: Modality) -> bool {
    let q = &w.query;
    let c = &w.snapshot.clinicians[&schedule.id.practitioner];
    let place = &w.snapshot.places[schedule.place];
    let first = q.start.to_zoned_datetime(q.tz.clone()).unwrap().timestamp();
    let after = q
        .end
        .tomorrow()
        .unwrap()
        .to_zoned_datetime(q.tz.clone())
        .unwrap()
        .timestamp();
    let local = slot
        .start
        .to_zoned_datetime(place.info.timezone.clone())
        .date();
    let licensed = |s: UsState| match &c.licensure {
        Licensure::Canvas(ls) => ls.iter().any(|l| {
            l.state == Some(s)
                && l.start.is_none_or(|x| x <= local)
                && l.end.is_none_or(|x| local <= x)
        }),
        Licensure::Override(states) => states.contains(&s),
    };
    let licence_ok = match modality {
        Modality::Telehealth => q.patient_state.is_some_and(licensed),
        Modality::InPerson => licensed(place.info.state) && q.patient_state.is_none_or(licensed),
    };
    q.modalities.contains(&modality)
        && q.reason.modalities.contains_key(&modality)
        && c.profile.modalities.contains(&modality)
        && (q.reason.specialties.is_empty()
            || q.reason
                .specialties
                .iter()
                .any(|s| c.profile.specialties.contains(s)))
        && first <= slot.start
        && slot.start < after
        && w.window.earliest <= slot.start
        && slot.start <= w.window.latest
        && slot.start.duration_until(slot.end)
            == SignedDuration::from_mins(i64::from(q.duration_minutes))
        && !w
            .busy
            .iter()
            .any(|b| b.practitioner == c.id && b.start < slot.end && slot.start < b.end)
        && licence_ok
}

/// (practitioner, start, modality, location for in-person visits)
type Key = (PractitionerId, Timestamp, Modality, Option<String>);

fn key(practitioner: &PractitionerId, start: Timestamp, modality: Modality, place: &Place) -> Key {
    let location = (modality == Modality::InPerson).then(|| place.info.id.clone());
    (practitioner.clone(), start, modality, location)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn offers_obey_every_rule_and_none_is_lost(w in world()) {
        let Some(sp) = span(&w.query, &w.window) else {
            // No instant of the question is inside the window: nothing could be offered.
            for (i, s) in w.snapshot.schedules.iter().enumerate() {
                for slot in &w.free[i] {
                    for m in Modality::ALL {
                        prop_assert!(!allowed(&w, s, slot, m));
                    }
                }
            }
            return Ok(());
        };
        let candidates = plan(&w.query, &w.snapshot, sp);
        let index: BTreeMap<&ScheduleId, usize> = w.snapshot.schedules.iter().enumerate().map(|(i, s)| (&s.id, i)).collect();
        let free: Vec<&[FreeSlot]> = candidates.iter().map(|c| w.free[index[&c.schedule.id]].as_slice()).collect();
        let offers = assemble(&w.query, &candidates, &free, &w.busy, sp);

        let mut seen = BTreeSet::new();
        for o in &offers {
            let schedule = w.snapshot.schedules.iter().find(|s| s.id.practitioner == o.clinician.id && w.snapshot.places[s.place].info.id == o.place.info.id).unwrap();
            let slot = w.free[index[&schedule.id]].iter().find(|s| s.start == o.start && s.end == o.end).unwrap();
            prop_assert!(allowed(&w, schedule, slot, o.modality), "offer breaks a rule: {:?} {} {:?}", o.clinician.id, o.start, o.modality);
            prop_assert!(seen.insert(key(&o.clinician.id, o.start, o.modality, o.place)), "offered twice");
        }
        for (i, s) in w.snapshot.schedules.iter().enumerate() {
            for slot in &w.free[i] {
                for m in Modality::ALL {
                    if allowed(&w, s, slot, m) {
                        let k = key(&s.id.practitioner, slot.start, m, &w.snapshot.places[s.place]);
                        prop_assert!(seen.contains(&k), "lost: {:?}", k);
                    }
                }
            }
        }
        for pair in offers.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            prop_assert!((a.start, &a.clinician.name, &a.clinician.id) <= (b.start, &b.clinician.name, &b.clinician.id), "not sorted");
        }
        let first = w.query.start.to_zoned_datetime(w.query.tz.clone()).unwrap().timestamp();
        let after = w.query.end.tomorrow().unwrap().to_zoned_datetime(w.query.tz.clone()).unwrap().timestamp();
        for o in &offers {
            prop_assert!(first <= o.start && o.start < after, "outside the range");
        }
    }

    #[test]
    fn the_limit_keeps_the_earliest(w in world(), limit in 1usize..20) {
        let Some(sp) = span(&w.query, &w.window) else { return Ok(()) };
        let candidates = plan(&w.query, &w.snapshot, sp);
        let index: BTreeMap<&ScheduleId, usize> = w.snapshot.schedules.iter().enumerate().map(|(i, s)| (&s.id, i)).collect();
        let free: Vec<&[FreeSlot]> = candidates.iter().map(|c| w.free[index[&c.schedule.id]].as_slice()).collect();
        let all = assemble(&w.query, &candidates, &free, &w.busy, sp);
        let mut q = w.query.clone();
        q.limit = limit;
        let some = assemble(&q, &candidates, &free, &w.busy, sp);
        prop_assert_eq!(some.len(), all.len().min(limit));
        for (a, b) in some.iter().zip(&all) {
            prop_assert_eq!((a.start, &a.clinician.id, a.modality), (b.start, &b.clinician.id, b.modality));
        }
    }
}
