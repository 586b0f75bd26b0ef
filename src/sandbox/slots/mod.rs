//! The slot engine: free Slots from weekly clinic hours, in the location's own time zone.
//!
//! Pure: no clock, no I/O. Canvas computes Slots from the practitioner's Clinic calendar minus
//! Admin calendars and booked appointments (canvas-fhir.md §3, §9); calendars are Google
//! Calendar events, so local times resolve as RFC 5545 says: a time in a DST gap is read with
//! the offset before the gap (pushed forward), an ambiguous time at a fold is its first
//! occurrence. That is jiff's `compatible` disambiguation.

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

#[cfg(test)]
mod tests;

/// The Fumage base grid: slot starts every fifteen minutes from the window start, united with
/// the duration-stepped grid whenever the duration is not a multiple of it (§3 [OBSERVED]).
const BASE_GRID_MINUTES: i64 = 15;

/// A recurring weekly clinic window in local wall-clock time, `start < end` on the same day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeeklyWindow {
    pub weekday: Weekday,
    pub start: Time,
    pub end: Time,
}

/// A half-open physical interval `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interval {
    pub start: Timestamp,
    pub end: Timestamp,
}

impl Interval {
    pub fn overlaps(&self, other: &Interval) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// What to compute: the clinic hours of one practitioner at one location, for the local dates
/// `first..=last`, with `busy` time (appointments, admin blocks) taken out.
#[derive(Debug, Clone, Copy)]
pub struct SlotRequest<'a> {
    pub tz: &'a TimeZone,
    pub first: Date,
    pub last: Date,
    pub duration_minutes: i64,
    pub hours: &'a [WeeklyWindow],
    pub busy: &'a [Interval],
}

/// The physical interval a local wall-clock window covers on `date`. On a DST day this is
/// shorter or longer than the wall-clock difference; `None` when nothing remains.
pub fn local_interval(tz: &TimeZone, date: Date, start: Time, end: Time) -> Option<Interval> {
    let resolve = |time: Time| {
        tz.to_ambiguous_timestamp(date.to_datetime(time))
            .compatible()
            .ok()
    };
    let interval = Interval {
        start: resolve(start)?,
        end: resolve(end)?,
    };
    (interval.start < interval.end).then_some(interval)
}

/// The clinic windows of the request as physical intervals, in date order.
pub fn windows(request: &SlotRequest<'_>) -> Vec<Interval> {
    let mut out = Vec::new();
    let mut date = request.first;
    while date <= request.last {
        for window in request.hours.iter().filter(|w| w.weekday == date.weekday()) {
            out.extend(local_interval(request.tz, date, window.start, window.end));
        }
        match date.tomorrow() {
            Ok(next) => date = next,
            Err(_) => break,
        }
    }
    out.sort();
    out
}

/// Slot starts in one window: stepped in absolute time from the window start, so gap times are
/// never produced and fold times never twice; each slot ends by the window end.
fn grid(window: Interval, duration: SignedDuration) -> Vec<Timestamp> {
    let minutes = duration.as_secs() / 60;
    let mut steps = vec![duration];
    if minutes % BASE_GRID_MINUTES != 0 {
        steps.push(SignedDuration::from_mins(BASE_GRID_MINUTES));
    }
    let mut starts = Vec::new();
    for step in steps {
        let mut start = window.start;
        while start + duration <= window.end {
            starts.push(start);
            start += step;
        }
    }
    starts.sort();
    starts.dedup();
    starts
}

/// Free slots of the request, sorted by start; each overlaps no busy interval.
pub fn free_slots(request: &SlotRequest<'_>) -> Vec<Interval> {
    if request.duration_minutes <= 0 {
        return Vec::new();
    }
    let duration = SignedDuration::from_mins(request.duration_minutes);
    let mut slots: Vec<Interval> = windows(request)
        .into_iter()
        .flat_map(|window| grid(window, duration))
        .map(|start| Interval {
            start,
            end: start + duration,
        })
        .filter(|slot| !request.busy.iter().any(|b| b.overlaps(slot)))
        .collect();
    slots.sort();
    slots.dedup();
    slots
}
