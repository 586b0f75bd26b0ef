//! The booking policy's yes-or-no answers, one function per rule, shared by every path that
//! asks (availability, holds, booking, rescheduling, cancelling) so that they cannot disagree.
//! Each "no" is a [`Refusal`] that names the contract's code; `now` is always a parameter.

use jiff::{SignedDuration, Timestamp};

use super::eligibility::{offers_modality, offers_specialty};
use super::model::{BookingPolicy, Modality, PractitionerProfile, Reason, Rules, TypeCoding};
use super::window;

/// Why a rule said no.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No reason with this code that this caller may book.
    UnknownReason,
    /// The clinician does not see patients for the reason's specialty.
    ReasonNotOffered,
    DurationNotAllowed {
        allowed: Vec<u32>,
    },
    /// The reason is not booked this way.
    ModalityNotAllowed {
        modality: Modality,
    },
    /// The clinician does not practise this way for this reason.
    ModalityNotOffered,
    PractitionerNotLicensed,
    OutsideBookingWindow,
    BookingLimitReached {
        max: u32,
    },
    HoldLimitReached {
        max: u32,
    },
    CancellationWindowPassed {
        hours: u32,
    },
}

impl Refusal {
    /// What the client is told.
    pub fn detail(&self) -> String {
        match self {
            Refusal::UnknownReason => "There is no bookable reason with this code.".into(),
            Refusal::ReasonNotOffered => {
                "This clinician does not see patients for this reason.".into()
            }
            Refusal::DurationNotAllowed { allowed } => {
                let minutes: Vec<String> = allowed.iter().map(u32::to_string).collect();
                format!(
                    "This reason is booked for {} minutes.",
                    minutes.join(" or ")
                )
            }
            Refusal::ModalityNotAllowed { modality } => {
                format!("This reason is not offered {modality}.")
            }
            Refusal::ModalityNotOffered => {
                "This clinician does not see patients for this reason this way.".into()
            }
            Refusal::PractitionerNotLicensed => {
                "The clinician holds no licence for this state on that date.".into()
            }
            Refusal::OutsideBookingWindow => {
                "This slot is too soon or too far ahead to book.".into()
            }
            Refusal::BookingLimitReached { max } => {
                format!("This patient already has {max} upcoming appointments, the most allowed.")
            }
            Refusal::HoldLimitReached { max } => format!(
                "This patient already holds {max} slots, the most allowed; book or release one first."
            ),
            Refusal::CancellationWindowPassed { hours } => format!(
                "Appointments can be changed online until {hours} hours before they start; please call the clinic."
            ),
        }
    }
}

/// The reason `code`, if this caller may book it (staff may book reasons patients may not).
pub fn bookable_reason<'a>(
    rules: &'a Rules,
    code: &str,
    staff: bool,
) -> Result<&'a Reason, Refusal> {
    rules
        .reason(code)
        .filter(|r| staff || r.patient_bookable)
        .ok_or(Refusal::UnknownReason)
}

/// Every reason this caller may book, in the clinic's order.
pub fn bookable_reasons(rules: &Rules, staff: bool) -> impl Iterator<Item = &Reason> {
    rules
        .reasons
        .iter()
        .filter(move |r| staff || r.patient_bookable)
}

/// The reason is booked for `minutes` (durations need not be multiples of 15).
pub fn check_duration(reason: &Reason, minutes: u32) -> Result<(), Refusal> {
    if window::duration_allowed(reason, minutes) {
        Ok(())
    } else {
        Err(Refusal::DurationNotAllowed {
            allowed: reason.durations.clone(),
        })
    }
}

/// The Canvas appointment type the reason books `modality` as, if it allows it at all.
pub fn appointment_type(reason: &Reason, modality: Modality) -> Result<&TypeCoding, Refusal> {
    reason
        .modalities
        .get(&modality)
        .ok_or(Refusal::ModalityNotAllowed { modality })
}

/// The modalities a question is about: the one asked (if the reason allows it), else every one
/// the reason allows, telehealth only when the patient's state is known.
pub fn modalities_asked(
    reason: &Reason,
    asked: Option<Modality>,
    state_known: bool,
) -> Result<Vec<Modality>, Refusal> {
    match asked {
        Some(m) => appointment_type(reason, m).map(|_| vec![m]),
        None => Ok(reason
            .modalities
            .keys()
            .copied()
            .filter(|m| *m == Modality::InPerson || state_known)
            .collect()),
    }
}

/// The clinician sees patients for the reason's specialty.
pub fn check_specialty(reason: &Reason, profile: &PractitionerProfile) -> Result<(), Refusal> {
    if offers_specialty(reason, profile) {
        Ok(())
    } else {
        Err(Refusal::ReasonNotOffered)
    }
}

/// The clinician practises this way (and the reason allows it).
pub fn check_modality_offered(
    reason: &Reason,
    profile: &PractitionerProfile,
    modality: Modality,
) -> Result<(), Refusal> {
    if offers_modality(reason, profile, modality) {
        Ok(())
    } else {
        Err(Refusal::ModalityNotOffered)
    }
}

/// The slot starts within the booking window (staff skip the minimum notice).
pub fn check_window(
    policy: &BookingPolicy,
    now: Timestamp,
    staff: bool,
    start: Timestamp,
) -> Result<(), Refusal> {
    if window::window(policy, now, staff).allows(start) {
        Ok(())
    } else {
        Err(Refusal::OutsideBookingWindow)
    }
}

/// Another booking keeps the patient within `max_active_per_patient` upcoming ones; staff are
/// exempt. `active` counts what they have now (an appointment being replaced not among them).
pub fn check_booking_limit(
    policy: &BookingPolicy,
    active: usize,
    staff: bool,
) -> Result<(), Refusal> {
    let max = policy.max_active_per_patient;
    if staff || active < max as usize {
        Ok(())
    } else {
        Err(Refusal::BookingLimitReached { max })
    }
}

/// Patients may cancel, and so reschedule, until `patient_cancel_cutoff_hours` before the
/// start; staff at any time. An appointment without a start is treated as starting now.
pub fn check_change_cutoff(
    policy: &BookingPolicy,
    now: Timestamp,
    staff: bool,
    start: Option<Timestamp>,
) -> Result<(), Refusal> {
    let hours = policy.patient_cancel_cutoff_hours;
    let cutoff = now
        .saturating_add(SignedDuration::from_hours(i64::from(hours)))
        .unwrap_or(now);
    if staff || cutoff <= start.unwrap_or(now) {
        Ok(())
    } else {
        Err(Refusal::CancellationWindowPassed { hours })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn coding(code: &str) -> TypeCoding {
        TypeCoding {
            system: "http://snomed.info/sct".into(),
            code: code.into(),
        }
    }

    fn reason(code: &str, patient_bookable: bool) -> Reason {
        Reason {
            code: code.into(),
            system: "INTERNAL".into(),
            display: code.into(),
            durations: vec![20, 45],
            modalities: BTreeMap::from([
                (Modality::Telehealth, coding("448337001")),
                (Modality::InPerson, coding("308335008")),
            ]),
            specialties: vec!["cardiology".into()],
            patient_bookable,
        }
    }

    fn policy() -> BookingPolicy {
        BookingPolicy {
            min_notice_minutes: 120,
            max_horizon_days: 90,
            max_range_days: 14,
            hold_minutes: 10,
            patient_cancel_cutoff_hours: 24,
            max_active_per_patient: 3,
            max_holds_per_patient: 2,
        }
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn patients_book_only_patient_bookable_reasons_and_staff_any() {
        let rules = Rules {
            reasons: vec![reason("INIV", true), reason("PROC", false)],
            ..Rules::default()
        };
        assert!(bookable_reason(&rules, "INIV", false).is_ok());
        assert_eq!(
            bookable_reason(&rules, "PROC", false),
            Err(Refusal::UnknownReason)
        );
        assert!(bookable_reason(&rules, "PROC", true).is_ok());
        let listed = |staff| {
            bookable_reasons(&rules, staff)
                .map(|r| r.code.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(listed(false), ["INIV"]);
        assert_eq!(listed(true), ["INIV", "PROC"]);
        assert_eq!(
            bookable_reason(&rules, "NOPE", true),
            Err(Refusal::UnknownReason)
        );
    }

    #[test]
    fn durations_need_not_be_multiples_of_fifteen_but_must_be_offered() {
        let r = reason("X", true);
        assert!(check_duration(&r, 20).is_ok() && check_duration(&r, 45).is_ok());
        let refused = check_duration(&r, 30).unwrap_err();
        assert_eq!(
            refused.detail(),
            "This reason is booked for 20 or 45 minutes."
        );
    }

    #[test]
    fn modalities_default_to_what_the_reason_allows_and_the_state_permits() {
        let mut r = reason("X", true);
        assert_eq!(
            modalities_asked(&r, None, false),
            Ok(vec![Modality::InPerson]),
            "telehealth needs the patient's state"
        );
        assert_eq!(
            modalities_asked(&r, None, true),
            Ok(vec![Modality::Telehealth, Modality::InPerson])
        );
        r.modalities.remove(&Modality::InPerson);
        assert_eq!(
            modalities_asked(&r, Some(Modality::InPerson), true),
            Err(Refusal::ModalityNotAllowed {
                modality: Modality::InPerson
            })
        );
        assert_eq!(modalities_asked(&r, None, false), Ok(vec![]));
        assert_eq!(
            appointment_type(&r, Modality::Telehealth),
            Ok(&coding("448337001"))
        );
    }

    #[test]
    fn clinicians_must_offer_the_specialty_and_the_modality() {
        let r = reason("X", true);
        let mut profile = PractitionerProfile {
            specialties: vec!["dermatology".into()],
            modalities: vec![Modality::InPerson],
            ..PractitionerProfile::default()
        };
        assert_eq!(
            check_specialty(&r, &profile),
            Err(Refusal::ReasonNotOffered)
        );
        profile.specialties.push("cardiology".into());
        assert!(check_specialty(&r, &profile).is_ok());
        assert!(check_modality_offered(&r, &profile, Modality::InPerson).is_ok());
        assert_eq!(
            check_modality_offered(&r, &profile, Modality::Telehealth),
            Err(Refusal::ModalityNotOffered)
        );
    }

    #[test]
    fn the_window_is_inclusive_and_staff_skip_only_the_notice() {
        let now = ts("2026-12-01T10:00:00Z");
        let p = policy();
        assert!(check_window(&p, now, false, ts("2026-12-01T12:00:00Z")).is_ok());
        assert_eq!(
            check_window(&p, now, false, ts("2026-12-01T11:59:59Z")),
            Err(Refusal::OutsideBookingWindow)
        );
        assert!(check_window(&p, now, true, ts("2026-12-01T10:00:00Z")).is_ok());
        assert_eq!(
            check_window(&p, now, true, ts("2027-03-01T10:00:01Z")),
            Err(Refusal::OutsideBookingWindow),
            "the horizon binds staff too"
        );
    }

    #[test]
    fn the_booking_limit_counts_what_the_patient_has_now() {
        let p = policy();
        assert!(check_booking_limit(&p, 2, false).is_ok());
        assert_eq!(
            check_booking_limit(&p, 3, false),
            Err(Refusal::BookingLimitReached { max: 3 })
        );
        assert!(check_booking_limit(&p, 7, true).is_ok(), "staff are exempt");
    }

    #[test]
    fn the_cutoff_is_exactly_the_configured_hours_across_a_dst_change() {
        let p = policy();
        // 24 hours before a start on the morning after the US fall-back night is 25 wall-clock
        // hours in New York: the rule counts real hours, not local clock hours.
        let start = ts("2026-11-02T14:00:00Z");
        assert!(check_change_cutoff(&p, ts("2026-11-01T14:00:00Z"), false, Some(start)).is_ok());
        assert_eq!(
            check_change_cutoff(&p, ts("2026-11-01T14:00:01Z"), false, Some(start)),
            Err(Refusal::CancellationWindowPassed { hours: 24 })
        );
        assert!(check_change_cutoff(&p, ts("2026-11-02T13:00:00Z"), true, Some(start)).is_ok());
        assert!(
            check_change_cutoff(&p, ts("2026-11-01T14:00:00Z"), false, None).is_err(),
            "no start: treated as now"
        );
    }
}
