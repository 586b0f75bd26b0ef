use std::collections::HashSet;

use jiff::civil::date;

use super::*;

fn today() -> Date {
    date(2026, 6, 15)
}

fn by_name<'a>(clinic: &'a Clinic, family: &str) -> &'a Clinician {
    clinic
        .clinicians
        .iter()
        .find(|c| c.family == family)
        .unwrap()
}

#[test]
fn demo_ids_are_unique_and_deterministic() {
    let a = Clinic::demo(today());
    let b = Clinic::demo(today());
    let ids: HashSet<_> = a.clinicians.iter().map(|c| c.id.clone()).collect();
    assert_eq!(ids.len(), a.clinicians.len());
    let patients: HashSet<_> = a.patients.iter().map(|p| p.id.clone()).collect();
    assert_eq!(patients.len(), 20);
    assert_eq!(a.slotgate_rules_toml(), b.slotgate_rules_toml());
}

#[test]
fn demo_covers_states_zones_and_specialties() {
    let clinic = Clinic::demo(today());
    let zones: HashSet<_> = clinic.locations.iter().map(|l| l.timezone_name()).collect();
    assert_eq!(zones.len(), 4);
    let bookable: Vec<_> = clinic
        .clinicians
        .iter()
        .filter(|c| c.is_bookable())
        .collect();
    assert!(bookable.len() >= 12);
    for specialty in ["primary_care", "behavioral_health", "dermatology"] {
        assert!(
            bookable
                .iter()
                .any(|c| c.specialties.iter().any(|s| s == specialty))
        );
    }
    assert!(bookable.iter().any(|c| c.hours.len() == 2));
    let states: HashSet<_> = clinic
        .patients
        .iter()
        .map(|p| p.state.to_string())
        .collect();
    assert_eq!(states.len(), 7);
}

#[test]
fn demo_licences_cover_every_case() {
    let clinic = Clinic::demo(today());
    let ca: UsState = "CA".parse().unwrap();
    let on = |c: &Clinician, n: i64| c.licensed_states_on(build::days(today(), n));
    let raman = by_name(&clinic, "Raman");
    assert!(on(raman, 10).contains(&ca) && !on(raman, 11).contains(&ca));
    let lindqvist = by_name(&clinic, "Lindqvist");
    assert!(!on(lindqvist, 19).contains(&ca) && on(lindqvist, 20).contains(&ca));
    assert!(!on(by_name(&clinic, "Bell"), 0).contains(&ca));
    assert!(on(by_name(&clinic, "Chen"), 0).is_empty());
    assert!(on(by_name(&clinic, "Reyes"), 0).len() >= 3);
    assert_eq!(on(by_name(&clinic, "Okafor"), 0), vec![ca]);
}

#[test]
fn patient_contacts_are_fictional_distinct_and_care_teams_name_demo_staff() {
    let clinic = Clinic::demo(today());
    let phones: HashSet<_> = clinic.patients.iter().map(|p| p.phone.as_str()).collect();
    let emails: HashSet<_> = clinic.patients.iter().map(|p| p.email.as_str()).collect();
    assert_eq!((phones.len(), emails.len()), (20, 20));
    for p in &clinic.patients {
        assert!(
            p.phone.len() == 10 && p.phone.starts_with("555"),
            "{}",
            p.id
        );
        assert!(p.phone.bytes().all(|b| b.is_ascii_digit()));
        assert!(p.email.ends_with("@example.org"));
        for member in &p.care_team {
            assert!(clinic.clinician(member.as_str()).is_some(), "{member:?}");
        }
    }
    assert!(clinic.patients.iter().any(|p| p.nickname.is_some()));
    assert!(clinic.patients.iter().any(|p| p.care_team.len() > 1));
}

#[test]
fn hidden_staff_have_no_schedules() {
    let clinic = Clinic::demo(today());
    let hidden: Vec<_> = clinic
        .clinicians
        .iter()
        .filter(|c| !c.is_bookable())
        .collect();
    assert_eq!(hidden.len(), 2);
    for (_, clinician) in clinic.schedules() {
        assert!(clinician.is_bookable());
    }
    assert_eq!(clinic.schedules().len(), 16);
}

#[test]
fn qualifications_use_the_newer_shape() {
    let clinic = Clinic::demo(today());
    let json = serde_json::to_value(by_name(&clinic, "Okafor").to_fhir(&clinic)).unwrap();
    let q = &json["qualification"][0];
    assert_eq!(q["code"]["text"], "STATE");
    assert_eq!(q["identifier"][0]["system"], EXT_URL);
    let ext = &q["issuer"]["extension"];
    assert!(
        ext[0]["url"]
            .as_str()
            .unwrap()
            .ends_with("issuing-authority-short-name")
    );
    assert_eq!(ext[1]["valueString"], "CA");
    assert_eq!(ext[2]["valueBoolean"], true);
    assert_eq!(json["qualification"][1]["code"]["text"], "DEA");
}

const EXT_URL: &str = "http://schemas.canvasmedical.com/fhir/extensions/issuing-authority-url";

#[test]
fn the_holiday_blocks_a_whole_local_day_everywhere() {
    let clinic = Clinic::demo(today());
    let holiday = clinic
        .blocks
        .iter()
        .find_map(|b| match b.when {
            BlockTime::AllDay(d) => Some(d),
            BlockTime::Weekly(_) => None,
        })
        .unwrap();
    assert_eq!(holiday.weekday(), jiff::civil::Weekday::Monday);
    let okafor = by_name(&clinic, "Okafor");
    let phoenix = clinic.location_by_key(4).unwrap();
    let blocked = clinic.blocked(&okafor.id, phoenix, holiday, holiday);
    let hours: i64 = blocked
        .iter()
        .map(|i| i.end.duration_since(i.start).as_hours())
        .sum();
    // The Monday holiday (24 h); no Tuesday or Wednesday block falls on a Monday.
    assert_eq!(hours, 24);
}

#[test]
fn rules_toml_names_every_location_and_bookable_clinician() {
    let clinic = Clinic::demo(today());
    let toml = clinic.slotgate_rules_toml();
    assert_eq!(toml.matches("[[locations]]").count(), 4);
    assert_eq!(toml.matches("[[practitioners]]").count(), 12);
    assert!(toml.contains("schedule_key = \"4\""));
    assert!(toml.contains("timezone = \"America/Phoenix\""));
    assert!(toml.contains("modalities = [\"telehealth\"]"));
    assert!(!toml.contains(by_name(&clinic, "Hayes").id.as_str()));
    let reasons = clinic.slotgate_reasons_toml();
    assert_eq!(reasons.matches("[[reasons]]").count(), 5);
}

#[test]
fn generated_clinics_are_regular_and_licensed() {
    let clinic = Clinic::generated(50, today());
    assert_eq!(clinic.clinicians.len(), 50);
    assert_eq!(clinic.schedules().len(), 50);
    let ids: HashSet<_> = clinic.clinicians.iter().map(|c| c.id.clone()).collect();
    assert_eq!(ids.len(), 50);
    let ca: UsState = "CA".parse().unwrap();
    let with_ca = clinic
        .clinicians
        .iter()
        .filter(|c| c.licensed_states_on(today()).contains(&ca))
        .count();
    assert_eq!(with_ca, 50, "every schedule answers a California question");
    for c in &clinic.clinicians {
        let n = c.licensed_states_on(today()).len();
        assert!((1..=3).contains(&n), "{n}");
    }
}

#[test]
fn the_toml_parses_with_the_keys_of_the_contract() {
    use figment::Figment;
    use figment::providers::{Format, Toml};
    let clinic = Clinic::demo(today());
    let text = format!(
        "{}{}",
        clinic.slotgate_rules_toml(),
        clinic.slotgate_reasons_toml()
    );
    let value: serde_json::Value = Figment::from(Toml::string(&text)).extract().unwrap();
    assert_eq!(value["locations"][0]["schedule_key"], "1");
    assert_eq!(value["locations"][3]["state"], "AZ");
    assert_eq!(value["practitioners"][0]["languages"][1], "es");
    assert_eq!(value["reasons"][0]["durations"][1], 60);
    assert_eq!(
        value["reasons"][0]["appointment_type"]["telehealth"]["code"],
        "448337001"
    );
}
