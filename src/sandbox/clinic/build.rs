//! Small constructors that keep the seed tables readable.

use jiff::ToSpan;
use jiff::civil::{Date, Weekday, date, time};

use super::{ClinicHours, Clinician, Licence, LicenceKind};
use crate::sandbox::slots::WeeklyWindow;
use crate::types::{PractitionerId, UsState};

pub const MON_FRI: &[Weekday] = &[
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
];
/// Weekday clinic hours with a lunch break.
pub const STANDARD: &[(i8, i8)] = &[(9, 12), (13, 17)];

/// `today + n` days (negative for the past).
pub fn days(today: Date, n: i64) -> Date {
    today.saturating_add(n.days())
}

/// Whole-hour windows on each of `weekdays`.
pub fn week(weekdays: &[Weekday], spans: &[(i8, i8)]) -> Vec<WeeklyWindow> {
    weekdays
        .iter()
        .flat_map(|&weekday| {
            spans.iter().map(move |&(from, to)| WeeklyWindow {
                weekday,
                start: time(from, 0, 0, 0),
                end: time(to, 0, 0, 0),
            })
        })
        .collect()
}

pub fn person(
    id: &str,
    (given, family, credentials): (&str, &str, &str),
    npi: &str,
    specialties: &[&str],
    modalities: &[&str],
    languages: &[&str],
) -> Clinician {
    let strings = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect();
    Clinician {
        id: id
            .parse::<PractitionerId>()
            .expect("seed ids are Canvas keys"),
        given: given.into(),
        family: family.into(),
        credentials: credentials.into(),
        npi: npi.into(),
        birth_date: date(1980, 1, 1),
        active: true,
        schedulable: true,
        specialties: strings(specialties),
        modalities: strings(modalities),
        languages: strings(languages),
        licences: Vec::new(),
        meeting_room: None,
        primary_location: 0,
        hours: Vec::new(),
    }
}

/// Chained additions to a seed clinician.
pub trait Staff: Sized {
    fn at(self, location: u32, windows: Vec<WeeklyWindow>) -> Self;
    fn licensed(self, licence: Licence) -> Self;
    /// A personal meeting room, as telehealth clinicians have in Canvas (§5).
    fn with_room(self) -> Self;
}

impl Staff for Clinician {
    fn at(mut self, location: u32, windows: Vec<WeeklyWindow>) -> Self {
        if self.primary_location == 0 {
            self.primary_location = location;
        }
        self.hours.push(ClinicHours { location, windows });
        self
    }

    fn licensed(mut self, licence: Licence) -> Self {
        self.licences.push(licence);
        self
    }

    fn with_room(mut self) -> Self {
        let slug = format!("{}-{}", self.given, self.family).to_ascii_lowercase();
        self.meeting_room = Some(format!("https://meet.sandbox.example/room/{slug}"));
        self
    }
}

/// The licensing board of a state, long and short name.
fn board(state: &str) -> (&'static str, &'static str) {
    match state {
        "CA" => ("Medical Board of California", "MBC"),
        "TN" => ("Tennessee Board of Medical Examiners", "TBME"),
        "NY" => (
            "New York State Education Department, Office of the Professions",
            "NYSED",
        ),
        "AZ" => ("Arizona Medical Board", "AMB"),
        "TX" => ("Texas Medical Board", "TMB"),
        "FL" => ("Florida Board of Medicine", "FBOM"),
        "WA" => ("Washington Medical Commission", "WMC"),
        "NJ" => ("New Jersey State Board of Medical Examiners", "NJBME"),
        "CT" => ("Connecticut Medical Examining Board", "CMEB"),
        "NM" => ("New Mexico Medical Board", "NMMB"),
        _ => ("State Medical Board", "SMB"),
    }
}

fn us_state(code: &str) -> UsState {
    code.parse().expect("seed states are US states")
}

pub fn state_licence(state: &str, number: &str, start: Date, end: Date, primary: bool) -> Licence {
    let (issuer, short) = board(state);
    Licence {
        kind: LicenceKind::State,
        number: number.into(),
        state: Some(us_state(state)),
        start,
        end,
        issuer: issuer.into(),
        issuer_short: short.into(),
        primary,
    }
}

/// A DEA registration: a licence clients must not mistake for state licensure.
pub fn dea(state: &str, number: &str, start: Date, end: Date) -> Licence {
    Licence {
        kind: LicenceKind::Dea,
        number: number.into(),
        state: Some(us_state(state)),
        start,
        end,
        issuer: "Drug Enforcement Administration".into(),
        issuer_short: "DEA".into(),
        primary: false,
    }
}

pub fn taxonomy(code: &str, start: Date, end: Date) -> Licence {
    Licence {
        kind: LicenceKind::Taxonomy,
        number: code.into(),
        state: None,
        start,
        end,
        issuer: "National Uniform Claim Committee".into(),
        issuer_short: "NUCC".into(),
        primary: false,
    }
}
