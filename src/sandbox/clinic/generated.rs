//! A large, regular clinic for load benchmarks: cheap to build and to compute slots for.

use jiff::civil::{Date, Weekday, time};

use super::build::{MON_FRI, Staff, days, person, state_licence, week};
use super::{Clinic, ClinicLocation, Clinician, SeedAppointment, catalog, demo, patients};
use crate::canvas::fhir::AppointmentStatus;

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

/// SNOMED "Office visit", every seeded visit's note type.
const OFFICE: &str = "308335008";

/// Active patients (in the clinic's order) the seeded visits leave alone, so that a benchmark
/// can book for them within `max_active_per_patient`.
pub const UNBOOKED_PATIENTS: usize = 4;

pub fn visits(clinic: &Clinic, per_day: usize) -> Vec<SeedAppointment> {
    let patients: Vec<_> = clinic
        .patients
        .iter()
        .filter(|p| p.active)
        .skip(UNBOOKED_PATIENTS)
        .collect();
    let mut out = Vec::new();
    if patients.is_empty() {
        return out;
    }
    for (i, c) in clinic.clinicians.iter().enumerate() {
        let location = clinic.locations[i % clinic.locations.len()].key;
        for offset in -1..=30 {
            let date = days(clinic.today, offset);
            if matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday) {
                continue;
            }
            for k in 0..per_day.min(20) {
                let n = out.len();
                let minutes = 8 * 60 + 30 * k as i64;
                out.push(SeedAppointment {
                    id: format!("b00c0000-0000-4000-8000-{n:012}"),
                    practitioner: c.id.clone(),
                    patient: Some(patients[n % patients.len()].id.clone()),
                    location,
                    date,
                    start: time((minutes / 60) as i8, (minutes % 60) as i8, 0, 0),
                    minutes: 30,
                    status: AppointmentStatus::Booked,
                    note_type_code: OFFICE.into(),
                    reason_code: Some("FLUP".into()),
                    reason_text: None,
                    identifier: None,
                });
            }
        }
    }
    out
}
