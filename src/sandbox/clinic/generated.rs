//! A large, regular clinic for load benchmarks: cheap to build and to compute slots for.

use jiff::civil::Date;

use super::build::{MON_FRI, Staff, days, person, state_licence, week};
use super::{Clinic, ClinicLocation, Clinician, catalog, demo, patients};

const GIVEN: [&str; 10] = [
    "Alex", "Blair", "Casey", "Devon", "Emery", "Finley", "Harper", "Jesse", "Kai", "Logan",
];
const FAMILY: [&str; 10] = [
    "Adams", "Baker", "Carter", "Diaz", "Evans", "Foster", "Gray", "Hughes", "Ito", "Jensen",
];
const EXTRA_STATES: [&str; 4] = ["TX", "FL", "WA", "NY"];

pub fn clinic(clinicians: usize, today: Date) -> Clinic {
    let locations = demo::locations();
    let clinicians = (0..clinicians)
        .map(|i| clinician(i, &locations[i % locations.len()], today))
        .collect();
    Clinic {
        today,
        organization: demo::ORGANIZATION.into(),
        locations,
        clinicians,
        patients: patients::demo(),
        note_types: catalog::note_types(),
        reasons: catalog::reasons(),
        blocks: Vec::new(),
        appointments: Vec::new(),
    }
}

fn specialty(i: usize) -> &'static str {
    match i % 10 {
        7 => "behavioral_health",
        9 => "dermatology",
        _ => "primary_care",
    }
}

/// One to three states: the location's own, California for everyone (so the benchmark's
/// California question reaches every schedule, as its issue asks), and one more for a third.
fn states(i: usize, home: &str) -> Vec<String> {
    let mut states = vec![home.to_owned()];
    if home != "CA" {
        states.push("CA".into());
    }
    let extra = EXTRA_STATES[i % EXTRA_STATES.len()];
    if i.is_multiple_of(3) && states.len() < 3 && !states.iter().any(|s| s == extra) {
        states.push(extra.into());
    }
    states
}

fn clinician(i: usize, location: &ClinicLocation, today: Date) -> Clinician {
    let id = format!("9e{i:030x}");
    let npi = format!("17{i:08}");
    let languages: &[&str] = if i.is_multiple_of(3) {
        &["en", "es"]
    } else {
        &["en"]
    };
    let name = (
        GIVEN[i % GIVEN.len()],
        FAMILY[(i / GIVEN.len()) % FAMILY.len()],
        "MD",
    );
    let modalities = &["telehealth", "in_person"];
    let mut clinician = person(&id, name, &npi, &[specialty(i)], modalities, languages)
        .at(location.key, week(MON_FRI, &[(8, 18)]))
        .with_room();
    for (n, state) in states(i, location.state.as_str()).iter().enumerate() {
        let number = format!("{state}-G{i:05}");
        let licence = state_licence(state, &number, days(today, -365), days(today, 730), n == 0);
        clinician = clinician.licensed(licence);
    }
    clinician
}
