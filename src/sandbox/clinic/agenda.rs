//! What is already on the calendar: admin blocks, a holiday, and a few appointments in the
//! coming days, placed on days the clinicians actually work.

use jiff::civil::{Date, Weekday, time};

use super::build::{MON_FRI, days};
use super::{AdminBlock, BlockTime, SeedAppointment};
use crate::canvas::fhir::AppointmentStatus;
use crate::sandbox::slots::WeeklyWindow;

const MAYA_OKAFOR: &str = "c48de0f40beb4fee86f872da7a840cf9";
const DANIEL_REYES: &str = "f8caf3fdef4f451a8f708556591ee1c2";
const JORDAN_KIM: &str = "1bf21ed0b976409ea862be25ec429b39";
const HANNAH_LINDQVIST: &str = "e43f924a27f242bfb3b95130e0350652";
const NOAH_GOLDBERG: &str = "75305a1a19804d1cb371395424211321";
const AISHA_RAHMAN: &str = "b1eabf4b904f4d3ba7d855aa6c080727";

/// An external system that books through Canvas and tags its appointments.
pub const BOOKING_SYSTEM: &str = "https://booking.sandbox.example/ids";

/// The first date on or after `from` that falls on one of `weekdays`.
pub fn next_on(from: Date, weekdays: &[Weekday]) -> Date {
    (0..7)
        .map(|n| days(from, n))
        .find(|d| weekdays.contains(&d.weekday()))
        .unwrap_or(from)
}

pub fn blocks(today: Date) -> Vec<AdminBlock> {
    vec![
        // Organisation-wide, and outside everyone's standard hours (lunch): blocks nothing.
        AdminBlock {
            title: "Team meeting".into(),
            practitioner: None,
            location: None,
            when: BlockTime::Weekly(WeeklyWindow {
                weekday: Weekday::Wednesday,
                start: time(12, 0, 0, 0),
                end: time(13, 0, 0, 0),
            }),
        },
        // Inside Dr Okafor's hours: Tuesday afternoons lose an hour.
        AdminBlock {
            title: "Charting time".into(),
            practitioner: Some(MAYA_OKAFOR.parse().expect("seed id")),
            location: None,
            when: BlockTime::Weekly(WeeklyWindow {
                weekday: Weekday::Tuesday,
                start: time(15, 0, 0, 0),
                end: time(16, 0, 0, 0),
            }),
        },
        // A Monday two weeks out when every location is closed.
        AdminBlock {
            title: "Clinic closed: staff training day".into(),
            practitioner: None,
            location: None,
            when: BlockTime::AllDay(next_on(days(today, 14), &[Weekday::Monday])),
        },
    ]
}

const OFFICE: &str = "308335008";
const TELE: &str = "448337001";
const GENERIC_EVENT: &str = "272379006";
const MWF: &[Weekday] = &[Weekday::Monday, Weekday::Wednesday, Weekday::Friday];
const MON_THU: &[Weekday] = &[
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
];

/// One seeded booking: on the first of `weekdays` at least `from_days` after today.
struct Booking {
    practitioner: &'static str,
    patient: Option<&'static str>,
    location: u32,
    from_days: i64,
    weekdays: &'static [Weekday],
    at: (i8, i8),
    minutes: i64,
    status: AppointmentStatus,
    note_type: &'static str,
    reason: Option<&'static str>,
    text: &'static str,
}

use AppointmentStatus::{Booked, Cancelled, Proposed};

#[rustfmt::skip]
const BOOKINGS: [Booking; 7] = [
    Booking { practitioner: MAYA_OKAFOR, patient: Some("6052e4cce53549a5864604d1cf81e0fc"), location: 1, from_days: 1, weekdays: MON_FRI, at: (10, 0), minutes: 30, status: Booked, note_type: OFFICE, reason: Some("INIV"), text: "New patient visit" },
    // Cancelled: it must not take its slot away.
    Booking { practitioner: MAYA_OKAFOR, patient: Some("97491556534444838b94dbb0909b6b3d"), location: 1, from_days: 1, weekdays: MON_FRI, at: (14, 0), minutes: 20, status: Cancelled, note_type: OFFICE, reason: Some("FLUP"), text: "Follow-up, cancelled by patient" },
    Booking { practitioner: DANIEL_REYES, patient: Some("dd29985f53784d5eb45ee0a157c5f866"), location: 1, from_days: 2, weekdays: MWF, at: (9, 0), minutes: 20, status: Booked, note_type: TELE, reason: Some("FLUP"), text: "Blood pressure follow-up" },
    Booking { practitioner: JORDAN_KIM, patient: Some("7652c75faafc4bafa1d8393b1189715f"), location: 3, from_days: 1, weekdays: MON_FRI, at: (10, 0), minutes: 50, status: Booked, note_type: TELE, reason: Some("THER"), text: "Weekly therapy" },
    Booking { practitioner: HANNAH_LINDQVIST, patient: Some("1690cde96a6143d6830cad31f6ebba2a"), location: 3, from_days: 3, weekdays: MON_THU, at: (11, 0), minutes: 30, status: Booked, note_type: OFFICE, reason: Some("DERM"), text: "Mole check" },
    // An Other Event: no patient, still blocks the clinician's time.
    Booking { practitioner: NOAH_GOLDBERG, patient: None, location: 2, from_days: 1, weekdays: MWF, at: (13, 0), minutes: 60, status: Booked, note_type: GENERIC_EVENT, reason: None, text: "Journal club" },
    Booking { practitioner: AISHA_RAHMAN, patient: Some("d358abfb2b894ceaa0a6cfde34feae93"), location: 2, from_days: 2, weekdays: MON_FRI, at: (9, 30), minutes: 30, status: Proposed, note_type: OFFICE, reason: Some("MEDR"), text: "Medication review" },
];

/// Seed ids are recognisable: `5eed0000-0000-4000-8000-00000000000<n>`.
fn seed(n: usize, b: &Booking, today: Date) -> SeedAppointment {
    SeedAppointment {
        id: format!("5eed0000-0000-4000-8000-{:012}", n + 1),
        practitioner: b.practitioner.parse().expect("seed id"),
        patient: b.patient.map(|p| p.parse().expect("seed id")),
        location: b.location,
        date: next_on(days(today, b.from_days), b.weekdays),
        start: time(b.at.0, b.at.1, 0, 0),
        minutes: b.minutes,
        status: b.status,
        note_type_code: b.note_type.into(),
        reason_code: b.reason.map(Into::into),
        reason_text: Some(b.text.into()),
        identifier: None,
    }
}

pub fn appointments(today: Date) -> Vec<SeedAppointment> {
    let mut out: Vec<_> = BOOKINGS
        .iter()
        .enumerate()
        .map(|(n, b)| seed(n, b, today))
        .collect();
    // The telehealth follow-up came from an external booking system.
    out[2].identifier = Some((BOOKING_SYSTEM.into(), "BK-1001".into()));
    out
}
