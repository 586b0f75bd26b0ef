//! Twenty demo patients living in seven states, so state-licensure rules have work to do.
//! Every contact detail is fictional: 555 numbers and example.org addresses.

use super::ClinicPatient;

/// (id, MRN, given, family, birth date, gender, street, city, state, ZIP)
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

const ROWS: [Row; 20] = [
    (
        "6052e4cce53549a5864604d1cf81e0fc",
        "100000001",
        "Olivia",
        "Martinez",
        "1988-04-12",
        "female",
        "2150 Shattuck Ave",
        "Berkeley",
        "CA",
        "94704",
    ),
    (
        "dd29985f53784d5eb45ee0a157c5f866",
        "100000002",
        "James",
        "Nguyen",
        "1975-11-03",
        "male",
        "88 Market St",
        "San Francisco",
        "CA",
        "94105",
    ),
    (
        "97491556534444838b94dbb0909b6b3d",
        "100000003",
        "Sofia",
        "Patel",
        "1995-07-21",
        "female",
        "410 Grand Ave",
        "Oakland",
        "CA",
        "94610",
    ),
    (
        "d358abfb2b894ceaa0a6cfde34feae93",
        "100000004",
        "Ethan",
        "Johnson",
        "1969-02-28",
        "male",
        "1501 Church St",
        "Nashville",
        "TN",
        "37203",
    ),
    (
        "a28e16b620ea44979f7524690875a3df",
        "100000005",
        "Ava",
        "Williams",
        "2001-09-09",
        "female",
        "220 Main St",
        "Franklin",
        "TN",
        "37064",
    ),
    (
        "7652c75faafc4bafa1d8393b1189715f",
        "100000006",
        "Noah",
        "Brown",
        "1983-12-30",
        "male",
        "77 Bedford Ave",
        "Brooklyn",
        "NY",
        "11211",
    ),
    (
        "1690cde96a6143d6830cad31f6ebba2a",
        "100000007",
        "Mia",
        "Cohen",
        "1992-05-17",
        "female",
        "301 W 57th St",
        "New York",
        "NY",
        "10019",
    ),
    (
        "b3af45b469f5491fafc220a965a0f002",
        "100000008",
        "Liam",
        "Garcia",
        "1979-08-04",
        "male",
        "1 E Washington St",
        "Phoenix",
        "AZ",
        "85004",
    ),
    (
        "98091815347b4afdbb4e58267ad82f71",
        "100000009",
        "Isabella",
        "Lopez",
        "1986-03-15",
        "female",
        "45 W University Dr",
        "Tempe",
        "AZ",
        "85281",
    ),
    (
        "e43a5a99d2524f3b9905679312409024",
        "100000010",
        "Lucas",
        "Smith",
        "1958-10-01",
        "male",
        "600 Congress Ave",
        "Austin",
        "TX",
        "78701",
    ),
    (
        "f5f06aaad9744cb095b345af064f30fb",
        "100000011",
        "Amelia",
        "Davis",
        "1999-01-25",
        "female",
        "2200 Main St",
        "Houston",
        "TX",
        "77002",
    ),
    (
        "e6980e2badf349f0b6e2042afefab31b",
        "100000012",
        "Mateo",
        "Rodriguez",
        "1990-06-06",
        "male",
        "100 Biscayne Blvd",
        "Miami",
        "FL",
        "33132",
    ),
    (
        "6e43282b443745afafcf103f3447235e",
        "100000013",
        "Charlotte",
        "Wilson",
        "1972-04-19",
        "female",
        "250 N Orange Ave",
        "Orlando",
        "FL",
        "32801",
    ),
    (
        "d5fc5fc68b9c4edf81e899844eb3a706",
        "100000014",
        "Benjamin",
        "Anderson",
        "1965-09-27",
        "male",
        "400 Pine St",
        "Seattle",
        "WA",
        "98101",
    ),
    (
        "be5ac80e08bd4d348247841047d07782",
        "100000015",
        "Harper",
        "Thomas",
        "2004-12-02",
        "female",
        "701 W Broadway",
        "Spokane",
        "WA",
        "99201",
    ),
    (
        "626385e7825a47bc947517782cc056ef",
        "100000016",
        "Elijah",
        "Kim",
        "1981-07-08",
        "male",
        "1300 Lakeside Dr",
        "Oakland",
        "CA",
        "94612",
    ),
    (
        "70171f43bbcd45dca85c6445aa7d27b9",
        "100000017",
        "Evelyn",
        "Moore",
        "1948-02-14",
        "female",
        "12 Court St",
        "Brooklyn",
        "NY",
        "11201",
    ),
    (
        "8c07201a643f48ef85775c308d8193b8",
        "100000018",
        "Alex",
        "Rivera",
        "1997-10-31",
        "other",
        "3000 E Camelback Rd",
        "Phoenix",
        "AZ",
        "85016",
    ),
    (
        "a0a51f5200ef483a8e66e3d45203076c",
        "100000019",
        "Daniel",
        "Taylor",
        "1977-03-03",
        "male",
        "9 Music Sq E",
        "Nashville",
        "TN",
        "37203",
    ),
    (
        "6e7358325b9341e197348c0d9d74e512",
        "100000020",
        "Grace",
        "Lee",
        "1993-08-22",
        "unknown",
        "500 S Grand Ave",
        "Los Angeles",
        "CA",
        "90071",
    ),
];

/// A partner system whose member numbers some patients carry, for `identifier=system|value`.
pub const PARTNER_SYSTEM: &str = "https://partner.sandbox.example/members";

/// (row, nickname): some patients have a preferred name, so `nickname` and `name` searches
/// have something to find and something to miss (§6).
const NICKNAMES: [(usize, &str); 8] = [
    (0, "Liv"),
    (1, "Jim"),
    (8, "Bella"),
    (12, "Charlie"),
    (13, "Ben"),
    (15, "Eli"),
    (16, "Evie"),
    (18, "Dan"),
];

// Demo staff keys (clinic/demo.rs) that sit on patients' care teams.
const OKAFOR: &str = "c48de0f40beb4fee86f872da7a840cf9";
const REYES: &str = "f8caf3fdef4f451a8f708556591ee1c2";
const WHITFIELD: &str = "f095654613f54e5f8e260eb5b4e52c6d";
const OSEI: &str = "b4470023c548406cb4586209203354a7";

/// (row, staff keys): care teams for `_has:CareTeam:participant:member` (§6). Olivia shares
/// two members with others, so repeated (all) and comma (any) searches differ.
const CARE_TEAMS: [(usize, &[&str]); 6] = [
    (0, &[OKAFOR, WHITFIELD]),
    (1, &[OKAFOR]),
    (2, &[WHITFIELD]),
    (5, &[OSEI]),
    (6, &[OSEI]),
    (15, &[REYES]),
];

pub fn demo() -> Vec<ClinicPatient> {
    let mut patients: Vec<ClinicPatient> = ROWS.iter().map(patient).collect();
    patients[0]
        .external_ids
        .push((PARTNER_SYSTEM.into(), "M-0001".into()));
    patients[5]
        .external_ids
        .push((PARTNER_SYSTEM.into(), "M-0006".into()));
    for (row, nickname) in NICKNAMES {
        patients[row].nickname = Some(nickname.into());
    }
    for (row, members) in CARE_TEAMS {
        patients[row].care_team = members
            .iter()
            .map(|id| id.parse().expect("seed ids are Canvas keys"))
            .collect();
    }
    // A merged chart: still readable, inactive.
    patients[19].active = false;
    patients
}

fn patient(row: &Row) -> ClinicPatient {
    let &(id, mrn, given, family, birth, gender, line, city, state, zip) = row;
    ClinicPatient {
        // Area code 555 is in service nowhere, so no one can be reached; the MRN's tail
        // keeps the numbers distinct.
        phone: format!("555020{}", &mrn[5..]),
        email: format!("{given}.{family}@example.org").to_ascii_lowercase(),
        nickname: None,
        care_team: Vec::new(),
        id: id.parse().expect("seed ids are Canvas keys"),
        mrn: mrn.into(),
        given: given.into(),
        family: family.into(),
        birth_date: birth.parse().expect("seed birth dates are dates"),
        gender: gender.into(),
        line: line.into(),
        city: city.into(),
        state: state.parse().expect("seed states are US states"),
        postal_code: zip.into(),
        active: true,
        external_ids: Vec::new(),
    }
}
