//! The demo clinic: four locations in four states and three time zones (one without DST),
//! twelve bookable clinicians whose licences cover every case slotgate must handle, and two
//! who must stay hidden (inactive, not schedulable).

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;

use super::build::{MON_FRI, STANDARD, Staff, days, dea, person, state_licence, taxonomy, week};
use super::{Clinic, ClinicLocation, Clinician, agenda, catalog, patients};

pub const ORGANIZATION: &str = "Canvas Sandbox Health";

pub fn clinic(today: Date) -> Clinic {
    Clinic {
        today,
        organization: ORGANIZATION.into(),
        locations: locations(),
        clinicians: clinicians(today),
        patients: patients::demo(),
        note_types: catalog::note_types(),
        reasons: catalog::reasons(),
        blocks: agenda::blocks(today),
        appointments: agenda::appointments(today),
    }
}

#[allow(clippy::too_many_arguments)]
fn location(
    key: u32,
    id: &str,
    name: &str,
    zone: &str,
    state: &str,
    (line, city, postal_code): (&str, &str, &str),
    npi: &str,
) -> ClinicLocation {
    ClinicLocation {
        key,
        id: id.into(),
        name: name.into(),
        alias: name.trim_end_matches(" Clinic").into(),
        tz: TimeZone::get(zone).expect("seed zones are in the bundled tzdb"),
        state: state.parse().expect("seed states are US states"),
        line: line.into(),
        city: city.into(),
        postal_code: postal_code.into(),
        npi: npi.into(),
    }
}

pub fn locations() -> Vec<ClinicLocation> {
    vec![
        location(
            1,
            "388f8191-af1d-433a-93d7-6db62585ae1e",
            "Oakland Clinic",
            "America/Los_Angeles",
            "CA",
            ("405 49th St", "Oakland", "94609"),
            "1659301001",
        ),
        location(
            2,
            "19d9a94f-82e8-41d9-bf35-29ebc86c68d7",
            "Nashville Clinic",
            "America/Chicago",
            "TN",
            ("1200 Broadway", "Nashville", "37203"),
            "1659301002",
        ),
        location(
            3,
            "0b4e6abb-b7fb-4f1c-97e9-1d7253d3d5a5",
            "Brooklyn Clinic",
            "America/New_York",
            "NY",
            ("350 Atlantic Ave", "Brooklyn", "11217"),
            "1659301003",
        ),
        location(
            4,
            "7cbde114-c934-4d9d-b5ee-c8930a3550bc",
            "Phoenix Clinic",
            "America/Phoenix",
            "AZ",
            ("2 N Central Ave", "Phoenix", "85004"),
            "1659301004",
        ),
    ]
}

const SAT: &[Weekday] = &[Weekday::Saturday];
const WEEKEND: &[Weekday] = &[Weekday::Saturday, Weekday::Sunday];
const MWF: &[Weekday] = &[Weekday::Monday, Weekday::Wednesday, Weekday::Friday];
const TUE_THU: &[Weekday] = &[Weekday::Tuesday, Weekday::Thursday];
const MON_THU: &[Weekday] = &[
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
];

fn clinicians(today: Date) -> Vec<Clinician> {
    let bookable = [
        okafor, reyes, raman, osei, rahman, whitfield, lindqvist, bell, goldberg, vasquez, kim,
        chen,
    ];
    let mut all: Vec<Clinician> = bookable.iter().map(|build| build(today)).collect();
    all.extend(hidden(today));
    all
}

/// The period of a licence that is simply valid: renewed a while ago, good for years.
fn valid(today: Date) -> (Date, Date) {
    (days(today, -900), days(today, 700))
}

const PC: &[&str] = &["primary_care"];
const DERM: &[&str] = &["dermatology"];
const BH: &[&str] = &["behavioral_health"];
const TELE: &[&str] = &["telehealth"];
const IN_PERSON: &[&str] = &["in_person"];
const BOTH: &[&str] = &["telehealth", "in_person"];

/// Single state, with a DEA registration and a taxonomy beside it; Saturday mornings too.
fn okafor(today: Date) -> Clinician {
    let (from, to) = valid(today);
    person(
        "c48de0f40beb4fee86f872da7a840cf9",
        ("Maya", "Okafor", "MD"),
        "1316900001",
        PC,
        BOTH,
        &["en", "es"],
    )
    .at(1, [week(MON_FRI, STANDARD), week(SAT, &[(9, 12)])].concat())
    .licensed(state_licence("CA", "A160001", from, to, true))
    .licensed(dea("CA", "BO1600011", from, to))
    .licensed(taxonomy("207Q00000X", from, to))
    .with_room()
}

/// Multi-state (four), two locations on alternate days.
fn reyes(today: Date) -> Clinician {
    let (from, to) = valid(today);
    person(
        "f8caf3fdef4f451a8f708556591ee1c2",
        ("Daniel", "Reyes", "MD"),
        "1316900002",
        PC,
        BOTH,
        &["en", "es"],
    )
    .at(1, week(MWF, STANDARD))
    .at(4, week(TUE_THU, STANDARD))
    .licensed(state_licence("CA", "A160002", from, to, true))
    .licensed(state_licence("AZ", "AZ-51002", from, to, false))
    .licensed(state_licence("TX", "TX-Q2002", from, to, false))
    .licensed(state_licence("WA", "MD60002", from, to, false))
    .with_room()
}

/// Tennessee, plus a California licence that expires ten days from today.
fn raman(today: Date) -> Clinician {
    let (from, to) = valid(today);
    person(
        "aa8c38d9494c404dbcf7e957b13ad502",
        ("Priya", "Raman", "DO"),
        "1316900003",
        PC,
        BOTH,
        &["en", "hi"],
    )
    .at(2, week(MON_FRI, STANDARD))
    .licensed(state_licence("TN", "TN-DO3003", from, to, true))
    .licensed(state_licence(
        "CA",
        "20A3003",
        days(today, -720),
        days(today, 10),
        false,
    ))
    .with_room()
}

/// Early hours, in person only.
fn osei(today: Date) -> Clinician {
    let (from, to) = valid(today);
    person(
        "b4470023c548406cb4586209203354a7",
        ("Samuel", "Osei", "NP"),
        "1316900004",
        PC,
        IN_PERSON,
        &["en", "fr"],
    )
    .at(3, week(MON_FRI, &[(7, 11)]))
    .licensed(state_licence("NY", "NY-NP4004", from, to, true))
    .licensed(state_licence("NJ", "NJ-NP4004", from, to, false))
}

/// Saturday mornings too.
fn rahman(today: Date) -> Clinician {
    let (from, to) = valid(today);
    person(
        "b1eabf4b904f4d3ba7d855aa6c080727",
        ("Aisha", "Rahman", "MD"),
        "1316900009",
        PC,
        BOTH,
        &["en", "ar"],
    )
    .at(2, [week(MON_FRI, STANDARD), week(SAT, &[(9, 12)])].concat())
    .licensed(state_licence("TN", "TN-MD9009", from, to, true))
    .licensed(state_licence("TX", "TX-Q9009", from, to, false))
    .licensed(state_licence("FL", "ME9009", from, to, false))
    .with_room()
}

/// Weekend telehealth on two coasts: the clinician whose Sundays cross DST changes.
fn whitfield(today: Date) -> Clinician {
    let (from, to) = valid(today);
    person(
        "f095654613f54e5f8e260eb5b4e52c6d",
        ("Grace", "Whitfield", "NP"),
        "1316900011",
        PC,
        TELE,
        &["en"],
    )
    .at(1, week(WEEKEND, &[(8, 12)]))
    .at(3, week(WEEKEND, &[(8, 12)]))
    .licensed(state_licence("CA", "NP95011", from, to, true))
    .licensed(state_licence("NY", "NY-NP5011", from, to, false))
    .licensed(state_licence("WA", "ARNP5011", from, to, false))
    .licensed(state_licence("AZ", "AZ-NP5011", from, to, false))
    .licensed(state_licence("TX", "TX-AP5011", from, to, false))
    .with_room()
}

/// New York, plus a California licence that only starts twenty days from today.
fn lindqvist(today: Date) -> Clinician {
    let (from, to) = valid(today);
    person(
        "e43f924a27f242bfb3b95130e0350652",
        ("Hannah", "Lindqvist", "MD"),
        "1316900005",
        DERM,
        BOTH,
        &["en", "sv"],
    )
    .at(3, week(MON_THU, STANDARD))
    .licensed(state_licence("NY", "NY-MD5005", from, to, true))
    .licensed(state_licence(
        "CA",
        "A165005",
        days(today, 20),
        days(today, 750),
        false,
    ))
    .with_room()
}

/// Arizona, plus a California licence that expired a month ago.
fn bell(today: Date) -> Clinician {
    let (from, to) = valid(today);
    person(
        "4a829176cbc043e8aa428e61f78a8cf0",
        ("Marcus", "Bell", "MD"),
        "1316900006",
        DERM,
        IN_PERSON,
        &["en"],
    )
    .at(4, week(MON_FRI, STANDARD))
    .licensed(state_licence("AZ", "AZ-56006", from, to, true))
    .licensed(state_licence(
        "CA",
        "A156006",
        days(today, -1100),
        days(today, -30),
        false,
    ))
}

fn goldberg(today: Date) -> Clinician {
    let (from, to) = valid(today);
    person(
        "75305a1a19804d1cb371395424211321",
        ("Noah", "Goldberg", "MD"),
        "1316900012",
        DERM,
        IN_PERSON,
        &["en", "he"],
    )
    .at(2, week(MWF, STANDARD))
    .at(3, week(TUE_THU, STANDARD))
    .licensed(state_licence("TN", "TN-MD2012", from, to, true))
    .licensed(state_licence("NY", "NY-MD2012", from, to, false))
}

/// Evenings, three states, telehealth only.
fn vasquez(today: Date) -> Clinician {
    let (from, to) = valid(today);
    person(
        "717b8aa30f2b4fc590e3e8ec9b99efec",
        ("Elena", "Vasquez", "PsyD"),
        "1316900007",
        BH,
        TELE,
        &["en", "es"],
    )
    .at(1, week(MON_THU, &[(16, 20)]))
    .licensed(state_licence("CA", "PSY7007", from, to, true))
    .licensed(state_licence("WA", "PY7007", from, to, false))
    .licensed(state_licence("FL", "PY7007FL", from, to, false))
    .with_room()
}

/// The same hours at two locations in two zones: a booking at one blocks the other.
fn kim(today: Date) -> Clinician {
    let (from, to) = valid(today);
    person(
        "1bf21ed0b976409ea862be25ec429b39",
        ("Jordan", "Kim", "LCSW"),
        "1316900008",
        BH,
        TELE,
        &["en", "ko"],
    )
    .at(2, week(MON_FRI, STANDARD))
    .at(3, week(MON_FRI, STANDARD))
    .licensed(state_licence("TN", "TN-SW8008", from, to, true))
    .licensed(state_licence("NY", "NY-SW8008", from, to, false))
    .licensed(state_licence("FL", "SW8008", from, to, false))
    .with_room()
}

/// No STATE licence at all: only a DEA registration and a taxonomy.
fn chen(today: Date) -> Clinician {
    let (from, to) = valid(today);
    person(
        "041e387a6c714ef5a40930b7f8cf43c4",
        ("Wei", "Chen", "MD"),
        "1316900010",
        BH,
        BOTH,
        &["en", "zh"],
    )
    .at(
        3,
        week(
            &[Weekday::Tuesday, Weekday::Thursday, Weekday::Friday],
            STANDARD,
        ),
    )
    .licensed(dea("NY", "BC1000010", from, to))
    .licensed(taxonomy("2084P0800X", from, to))
    .with_room()
}

/// Staff that exist in Canvas but must not appear in default searches or Schedules.
fn hidden(today: Date) -> Vec<Clinician> {
    let (from, to) = valid(today);
    let mut retired = person(
        "6421173d214542e4bbece9b3ccb4a1f4",
        ("Robert", "Hayes", "MD"),
        "1316900013",
        &["primary_care"],
        &["in_person"],
        &["en"],
    )
    .at(1, week(MON_FRI, STANDARD))
    .licensed(state_licence("CA", "A130013", from, to, true));
    retired.active = false;
    let mut nurse = person(
        "18e7f384238642fdbf422ec7eee550ac",
        ("Linda", "Park", "RN"),
        "1316900014",
        &["primary_care"],
        &["in_person"],
        &["en", "ko"],
    )
    .licensed(state_licence("CA", "RN950014", from, to, true));
    nurse.schedulable = false;
    nurse.primary_location = 1;
    vec![retired, nurse]
}
