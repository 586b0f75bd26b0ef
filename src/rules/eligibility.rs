//! Who may see a patient for a reason: specialty, modality and state licensure. Plain
//! functions of plain data; the dates are the slot's local date at its location.

use jiff::civil::Date;

use super::model::{Modality, PractitionerProfile, Reason};
use crate::canvas::licenses::License;
use crate::types::UsState;

/// The clinician offers the reason's specialty (any, when the reason names none).
pub fn offers_specialty(reason: &Reason, profile: &PractitionerProfile) -> bool {
    reason.specialties.is_empty()
        || reason
            .specialties
            .iter()
            .any(|s| profile.specialties.contains(s))
}

/// The reason allows the modality and the clinician practises it.
pub fn offers_modality(reason: &Reason, profile: &PractitionerProfile, modality: Modality) -> bool {
    reason.modalities.contains_key(&modality) && profile.modalities.contains(&modality)
}

/// Where a clinician may practise: the clinic's override when configured, else Canvas's
/// STATE licences.
#[derive(Debug, Clone, PartialEq)]
pub enum Licensure {
    /// `licensed_states` from `[[practitioners]]`: valid on every date.
    Override(Vec<UsState>),
    /// Canvas STATE qualifications (other licence types are ignored).
    Canvas(Vec<License>),
}

impl Licensure {
    pub fn new(profile: &PractitionerProfile, licenses: &[License]) -> Licensure {
        match &profile.licensed_states {
            Some(states) => Licensure::Override(states.clone()),
            None => Licensure::Canvas(
                licenses
                    .iter()
                    .filter(|l| l.is_state_license() && l.state.is_some())
                    .cloned()
                    .collect(),
            ),
        }
    }

    /// An active licence for `state` whose period covers `date`, both ends inclusive.
    pub fn covers(&self, state: UsState, date: Date) -> bool {
        match self {
            Licensure::Override(states) => states.contains(&state),
            Licensure::Canvas(licenses) => licenses.iter().any(|l| {
                l.state == Some(state)
                    && l.start.is_none_or(|s| s <= date)
                    && l.end.is_none_or(|e| date <= e)
            }),
        }
    }

    /// Licensed for `state` on at least one day of `from..=to`: a cheap pre-filter before
    /// asking Canvas for a clinician's slots.
    pub fn covers_any(&self, state: UsState, from: Date, to: Date) -> bool {
        match self {
            Licensure::Override(states) => states.contains(&state),
            Licensure::Canvas(licenses) => licenses.iter().any(|l| {
                l.state == Some(state)
                    && l.start.is_none_or(|s| s <= to)
                    && l.end.is_none_or(|e| from <= e)
            }),
        }
    }

    /// The states licensed on some day of `from..=to`, sorted.
    pub fn states(&self, from: Date, to: Date) -> Vec<UsState> {
        let mut out: Vec<UsState> = match self {
            Licensure::Override(states) => states.clone(),
            Licensure::Canvas(licenses) => licenses
                .iter()
                .filter(|l| l.start.is_none_or(|s| s <= to) && l.end.is_none_or(|e| from <= e))
                .filter_map(|l| l.state)
                .collect(),
        };
        out.sort();
        out.dedup();
        out
    }
}

/// The licensure a visit needs on its local date: the patient's state for telehealth; for an
/// in-person visit the location's state, and the patient's too when they gave it.
pub fn licensed_for_visit(
    licensure: &Licensure,
    modality: Modality,
    patient_state: Option<UsState>,
    location_state: UsState,
    date: Date,
) -> bool {
    match modality {
        Modality::Telehealth => patient_state.is_some_and(|s| licensure.covers(s, date)),
        Modality::InPerson => {
            licensure.covers(location_state, date)
                && patient_state.is_none_or(|s| licensure.covers(s, date))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::model::TypeCoding;
    use jiff::civil::date;
    use std::collections::BTreeMap;

    fn st(s: &str) -> UsState {
        s.parse().unwrap()
    }

    fn reason(specialties: &[&str], modalities: &[Modality]) -> Reason {
        let coding = TypeCoding {
            system: "s".into(),
            code: "c".into(),
        };
        Reason {
            code: "R".into(),
            system: "INTERNAL".into(),
            display: "R".into(),
            durations: vec![30],
            modalities: modalities
                .iter()
                .map(|m| (*m, coding.clone()))
                .collect::<BTreeMap<_, _>>(),
            specialties: specialties.iter().map(|s| s.to_string()).collect(),
            patient_bookable: true,
        }
    }

    fn profile(specialties: &[&str], modalities: &[Modality]) -> PractitionerProfile {
        PractitionerProfile {
            specialties: specialties.iter().map(|s| s.to_string()).collect(),
            modalities: modalities.to_vec(),
            ..PractitionerProfile::default()
        }
    }

    fn state_license(state: &str, start: Option<Date>, end: Option<Date>) -> License {
        License {
            kind: "STATE".into(),
            state: Some(st(state)),
            start,
            end,
            primary: false,
        }
    }

    #[test]
    fn specialty_matches_any_of_the_reasons_or_anyone_when_none() {
        let pc = profile(&["primary_care"], &Modality::ALL);
        assert!(offers_specialty(
            &reason(&["primary_care", "dermatology"], &[]),
            &pc
        ));
        assert!(!offers_specialty(&reason(&["dermatology"], &[]), &pc));
        assert!(offers_specialty(&reason(&[], &[]), &pc));
        assert!(!offers_specialty(
            &reason(&["dermatology"], &[]),
            &profile(&[], &Modality::ALL)
        ));
    }

    #[test]
    fn modality_needs_both_the_reason_and_the_clinician() {
        let r = reason(&[], &[Modality::Telehealth]);
        assert!(offers_modality(
            &r,
            &profile(&[], &Modality::ALL),
            Modality::Telehealth
        ));
        assert!(!offers_modality(
            &r,
            &profile(&[], &Modality::ALL),
            Modality::InPerson
        ));
        assert!(!offers_modality(
            &r,
            &profile(&[], &[Modality::InPerson]),
            Modality::Telehealth
        ));
    }

    #[test]
    fn a_licence_covers_its_period_inclusively() {
        let l = Licensure::Canvas(vec![state_license(
            "CA",
            Some(date(2026, 1, 1)),
            Some(date(2026, 12, 31)),
        )]);
        assert!(l.covers(st("CA"), date(2026, 1, 1)));
        assert!(l.covers(st("CA"), date(2026, 12, 31)));
        assert!(!l.covers(st("CA"), date(2025, 12, 31)));
        assert!(!l.covers(st("CA"), date(2027, 1, 1)));
        assert!(!l.covers(st("NY"), date(2026, 6, 1)));
    }

    #[test]
    fn open_ended_licences_and_other_licence_types() {
        let licences = [
            state_license("TX", None, None),
            License {
                kind: "DEA".into(),
                state: Some(st("NY")),
                start: None,
                end: None,
                primary: true,
            },
        ];
        let l = Licensure::new(&PractitionerProfile::default(), &licences);
        assert!(l.covers(st("TX"), date(1990, 1, 1)));
        assert!(
            !l.covers(st("NY"), date(2026, 1, 1)),
            "a DEA registration is not a state licence"
        );
    }

    #[test]
    fn a_licence_ending_or_starting_mid_range() {
        let ends = Licensure::Canvas(vec![state_license("CA", None, Some(date(2026, 3, 10)))]);
        let starts = Licensure::Canvas(vec![state_license("CA", Some(date(2026, 3, 10)), None)]);
        let (from, to) = (date(2026, 3, 8), date(2026, 3, 14));
        assert!(ends.covers_any(st("CA"), from, to));
        assert!(starts.covers_any(st("CA"), from, to));
        assert!(
            ends.covers(st("CA"), date(2026, 3, 10)) && !ends.covers(st("CA"), date(2026, 3, 11))
        );
        assert!(
            !starts.covers(st("CA"), date(2026, 3, 9))
                && starts.covers(st("CA"), date(2026, 3, 10))
        );
        assert!(!ends.covers_any(st("CA"), date(2026, 3, 11), date(2026, 3, 20)));
    }

    #[test]
    fn the_override_replaces_canvas_licences() {
        let p = PractitionerProfile {
            licensed_states: Some(vec![st("WA")]),
            ..PractitionerProfile::default()
        };
        let l = Licensure::new(&p, &[state_license("CA", None, None)]);
        assert!(l.covers(st("WA"), date(2026, 1, 1)));
        assert!(!l.covers(st("CA"), date(2026, 1, 1)));
        assert_eq!(l.states(date(2026, 1, 1), date(2026, 1, 1)), vec![st("WA")]);
    }

    #[test]
    fn licensed_states_in_a_window_are_sorted_and_unique() {
        let l = Licensure::Canvas(vec![
            state_license("NY", None, None),
            state_license("CA", Some(date(2026, 2, 1)), None),
            state_license("CA", None, Some(date(2025, 1, 1))),
            state_license("TX", None, Some(date(2025, 1, 1))),
        ]);
        let s = l.states(date(2026, 1, 1), date(2026, 3, 1));
        assert_eq!(s, vec![st("CA"), st("NY")]);
    }

    #[test]
    fn visits_need_the_right_states() {
        let l = Licensure::Canvas(vec![
            state_license("CA", None, None),
            state_license("AZ", None, None),
        ]);
        let d = date(2026, 6, 1);
        assert!(licensed_for_visit(
            &l,
            Modality::Telehealth,
            Some(st("CA")),
            st("NY"),
            d
        ));
        assert!(!licensed_for_visit(
            &l,
            Modality::Telehealth,
            Some(st("NY")),
            st("CA"),
            d
        ));
        assert!(
            !licensed_for_visit(&l, Modality::Telehealth, None, st("CA"), d),
            "telehealth needs the patient's state"
        );
        assert!(licensed_for_visit(
            &l,
            Modality::InPerson,
            None,
            st("AZ"),
            d
        ));
        assert!(licensed_for_visit(
            &l,
            Modality::InPerson,
            Some(st("CA")),
            st("AZ"),
            d
        ));
        assert!(!licensed_for_visit(
            &l,
            Modality::InPerson,
            Some(st("NY")),
            st("AZ"),
            d
        ));
        assert!(!licensed_for_visit(
            &l,
            Modality::InPerson,
            Some(st("CA")),
            st("TN"),
            d
        ));
    }
}
