//! The booking window: how soon and how far ahead a patient may book, how wide one query may
//! be, and which durations a reason allows. `now` is a parameter; nothing here reads a clock.

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};

use super::model::{BookingPolicy, Reason};

/// The policy's window as instants: a slot may start in `earliest..=latest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub earliest: Timestamp,
    pub latest: Timestamp,
}

/// Minimum notice and horizon from `now`. Staff are exempt from the notice (they book the
/// walk-in at the desk) but not from the horizon.
pub fn window(policy: &BookingPolicy, now: Timestamp, staff: bool) -> Window {
    let notice = if staff {
        0
    } else {
        i64::from(policy.min_notice_minutes)
    };
    let earliest = now
        .saturating_add(SignedDuration::from_mins(notice))
        .unwrap_or(now);
    let latest = now
        .saturating_add(SignedDuration::from_hours(
            i64::from(policy.max_horizon_days) * 24,
        ))
        .unwrap_or(now);
    Window { earliest, latest }
}

impl Window {
    pub fn allows(&self, start: Timestamp) -> bool {
        self.earliest <= start && start <= self.latest
    }
}

/// Why a date range cannot be queried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeError {
    EndBeforeStart,
    TooLong { days: i64, max: u32 },
}

/// Days in `start..=end` (`start == end` is one day), refused past `max_range_days`.
pub fn check_range(policy: &BookingPolicy, start: Date, end: Date) -> Result<i64, RangeError> {
    let days = i64::from((end - start).get_days()) + 1;
    if end < start {
        return Err(RangeError::EndBeforeStart);
    }
    if days > i64::from(policy.max_range_days) {
        return Err(RangeError::TooLong {
            days,
            max: policy.max_range_days,
        });
    }
    Ok(days)
}

/// The reason offers this duration.
pub fn duration_allowed(reason: &Reason, minutes: u32) -> bool {
    reason.durations.contains(&minutes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

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

    #[test]
    fn notice_and_horizon_bound_the_start_inclusively() {
        let now: Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        let w = window(&policy(), now, false);
        assert!(!w.allows("2026-12-01T11:59:59Z".parse().unwrap()));
        assert!(w.allows("2026-12-01T12:00:00Z".parse().unwrap()));
        assert!(w.allows("2027-03-01T10:00:00Z".parse().unwrap()));
        assert!(!w.allows("2027-03-01T10:00:01Z".parse().unwrap()));
        assert!(
            !w.allows("2026-11-30T12:00:00Z".parse().unwrap()),
            "the past is never bookable"
        );
    }

    #[test]
    fn staff_skip_the_notice_but_not_the_past() {
        let now: Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        let w = window(&policy(), now, true);
        assert!(w.allows("2026-12-01T10:30:00Z".parse().unwrap()));
        assert!(!w.allows("2026-12-01T09:59:00Z".parse().unwrap()));
    }

    #[test]
    fn ranges_count_both_ends_and_cross_month_ends() {
        assert_eq!(
            check_range(&policy(), date(2026, 1, 31), date(2026, 1, 31)),
            Ok(1)
        );
        assert_eq!(
            check_range(&policy(), date(2026, 1, 25), date(2026, 2, 7)),
            Ok(14)
        );
        assert_eq!(
            check_range(&policy(), date(2026, 1, 25), date(2026, 2, 8)),
            Err(RangeError::TooLong { days: 15, max: 14 })
        );
        assert_eq!(
            check_range(&policy(), date(2024, 2, 28), date(2024, 3, 1)),
            Ok(3),
            "leap day"
        );
        assert_eq!(
            check_range(&policy(), date(2026, 2, 2), date(2026, 2, 1)),
            Err(RangeError::EndBeforeStart)
        );
    }

    #[test]
    fn durations_must_be_offered_even_odd_ones() {
        let mut r = crate::rules::model::Reason {
            code: "X".into(),
            system: "INTERNAL".into(),
            display: "X".into(),
            durations: vec![20, 45],
            modalities: Default::default(),
            specialties: vec![],
            patient_bookable: true,
        };
        assert!(duration_allowed(&r, 20) && duration_allowed(&r, 45));
        assert!(!duration_allowed(&r, 30));
        r.durations = vec![];
        assert!(!duration_allowed(&r, 20));
    }
}
