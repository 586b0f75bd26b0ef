//! Calendar entries as slotgate reads them, and what each should hold in Canvas: plain
//! functions of plain data (canvas-fhir.md §10 for both calendars' shapes).

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde_json::Value;

use crate::sync::providers::graph::MARK_PROPERTY;

/// Other Event titles are cut to this many characters.
const TITLE_MAX: usize = 200;

/// One calendar entry (a single event, or one occurrence of a recurring one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meeting {
    pub id: String,
    pub title: String,
    pub start: Timestamp,
    pub end: Timestamp,
    pub cancelled: bool,
    /// Shown as free (Google `transparent`, Graph `showAs: free`): it blocks nothing.
    pub free: bool,
    pub all_day: bool,
    /// Written by slotgate's outbound sync (`slotgate = "1"`): never mirrored back.
    pub ours: bool,
}

impl Meeting {
    /// A meeting the calendar no longer has: whatever it held is released.
    pub fn gone(id: String) -> Self {
        Self {
            id,
            title: String::new(),
            start: Timestamp::UNIX_EPOCH,
            end: Timestamp::UNIX_EPOCH,
            cancelled: true,
            free: false,
            all_day: false,
            ours: false,
        }
    }
}

/// The time a meeting blocks in Canvas, as an Other Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub start: Timestamp,
    pub end: Timestamp,
    pub title: String,
}

/// What to do with a calendar entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Ours, or unreadable: leave Canvas as it is.
    Ignore,
    /// The Canvas Other Event should exist with these times.
    Hold(Block),
    /// No Other Event should exist for it (cancelled, free, outside the window, all-day).
    Release,
}

/// The decision for one entry: busy events inside `[from, to)` hold time; all-day ones only
/// when the calendar's entry allows them.
pub fn decide(m: &Meeting, allow_all_day: bool, from: Timestamp, to: Timestamp) -> Decision {
    if m.ours {
        return Decision::Ignore;
    }
    if m.cancelled || m.free || (m.all_day && !allow_all_day) || m.end <= m.start {
        return Decision::Release;
    }
    if m.end <= from || m.start >= to {
        return Decision::Release;
    }
    let title: String = m.title.trim().chars().take(TITLE_MAX).collect();
    Decision::Hold(Block {
        start: m.start,
        end: m.end,
        title: if title.is_empty() {
            "Busy".into()
        } else {
            title
        },
    })
}

/// A Calendar API v3 event (`singleEvents=true`, so occurrences come one by one). All-day
/// dates start at midnight in `zone` (the clinic location's). Deleted events come back as
/// `status: cancelled` with little else: they still parse, to be released.
pub fn google(v: &Value, zone: &TimeZone) -> Option<Meeting> {
    let id = v["id"].as_str()?.to_owned();
    let cancelled = v["status"] == "cancelled";
    let when = |k: &str| -> Option<(Timestamp, bool)> {
        let t = &v[k];
        if let Some(dt) = t["dateTime"].as_str() {
            return dt.parse::<Timestamp>().ok().map(|ts| (ts, false));
        }
        let date: Date = t["date"].as_str()?.parse().ok()?;
        midnight(date, zone).map(|ts| (ts, true))
    };
    let (start, end, all_day) = match (when("start"), when("end")) {
        (Some((s, a)), Some((e, _))) => (s, e, a),
        _ if cancelled => (Timestamp::UNIX_EPOCH, Timestamp::UNIX_EPOCH, false),
        _ => return None,
    };
    Some(Meeting {
        id,
        title: v["summary"].as_str().unwrap_or_default().to_owned(),
        start,
        end,
        cancelled,
        free: v["transparency"] == "transparent",
        all_day,
        ours: v["extendedProperties"]["private"]["slotgate"] == "1",
    })
}

/// A Microsoft Graph event read with `Prefer: outlook.timezone="UTC"`; its `dateTime` has no
/// offset and is in `timeZone` (UTC, or an IANA name when Graph ignored the preference).
/// All-day events start at midnight in `zone`.
pub fn graph(v: &Value, zone: &TimeZone) -> Option<Meeting> {
    let id = v["id"].as_str()?.to_owned();
    let all_day = v["isAllDay"] == true;
    let when = |k: &str| -> Option<Timestamp> {
        let civil: DateTime = v[k]["dateTime"].as_str()?.parse().ok()?;
        if all_day {
            return midnight(civil.date(), zone);
        }
        let tz = match v[k]["timeZone"].as_str().unwrap_or("UTC") {
            "UTC" | "Etc/UTC" | "tzone://Microsoft/Utc" => TimeZone::UTC,
            name => TimeZone::get(name).ok()?,
        };
        tz.to_ambiguous_zoned_datetime(civil)
            .compatible()
            .ok()
            .map(|z| z.timestamp())
    };
    let ours = v["singleValueExtendedProperties"]
        .as_array()
        .is_some_and(|ps| {
            ps.iter().any(|p| {
                p["id"]
                    .as_str()
                    .is_some_and(|i| i.eq_ignore_ascii_case(MARK_PROPERTY))
                    && p["value"] == "1"
            })
        });
    Some(Meeting {
        id,
        title: v["subject"].as_str().unwrap_or_default().to_owned(),
        start: when("start")?,
        end: when("end")?,
        cancelled: v["isCancelled"] == true,
        free: v["showAs"] == "free",
        all_day,
        ours,
    })
}

/// The first instant of `date` in `zone` (a day that starts in a DST gap starts when the
/// clock jumps).
fn midnight(date: Date, zone: &TimeZone) -> Option<Timestamp> {
    date.to_zoned_datetime(zone.clone())
        .ok()
        .map(|z| z.timestamp())
}

/// The window inbound sync mirrors: from now to `days` ahead.
pub fn window(now: Timestamp, days: u32) -> (Timestamp, Timestamp) {
    let to = now
        .checked_add((i64::from(days) * 24).hours())
        .unwrap_or(now);
    (now, to)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn la() -> TimeZone {
        TimeZone::get("America/Los_Angeles").unwrap()
    }

    fn ny() -> TimeZone {
        TimeZone::get("America/New_York").unwrap()
    }

    fn meeting() -> Meeting {
        Meeting {
            id: "e1".into(),
            title: "Board meeting".into(),
            start: ts("2026-03-09T17:00:00Z"),
            end: ts("2026-03-09T18:00:00Z"),
            cancelled: false,
            free: false,
            all_day: false,
            ours: false,
        }
    }

    const FROM: &str = "2026-03-01T00:00:00Z";
    const TO: &str = "2026-04-01T00:00:00Z";

    fn decide_(m: &Meeting, all_day: bool) -> Decision {
        decide(m, all_day, ts(FROM), ts(TO))
    }

    #[test]
    fn busy_meetings_hold_their_time_and_the_rest_release_it() {
        let m = meeting();
        assert_eq!(
            decide_(&m, false),
            Decision::Hold(Block {
                start: m.start,
                end: m.end,
                title: "Board meeting".into()
            })
        );
        for gone in [
            Meeting {
                cancelled: true,
                ..meeting()
            },
            Meeting {
                free: true,
                ..meeting()
            },
            Meeting {
                all_day: true,
                ..meeting()
            },
            // Moved out of the window, or ending as it starts.
            Meeting {
                start: ts("2026-04-02T17:00:00Z"),
                end: ts("2026-04-02T18:00:00Z"),
                ..meeting()
            },
            Meeting {
                end: ts("2026-03-09T17:00:00Z"),
                ..meeting()
            },
        ] {
            assert_eq!(decide_(&gone, false), Decision::Release, "{gone:?}");
        }
        assert!(matches!(
            decide_(
                &Meeting {
                    all_day: true,
                    ..meeting()
                },
                true
            ),
            Decision::Hold(_)
        ));
        assert_eq!(
            decide_(
                &Meeting {
                    ours: true,
                    ..meeting()
                },
                false
            ),
            Decision::Ignore
        );
        // Straddling the window's start still blocks what is left of it.
        let started = Meeting {
            start: ts("2026-02-28T23:30:00Z"),
            ..meeting()
        };
        assert!(matches!(decide_(&started, false), Decision::Hold(_)));
    }

    #[test]
    fn titles_are_trimmed_bounded_and_never_empty() {
        let untitled = Meeting {
            title: "  ".into(),
            ..meeting()
        };
        let long = Meeting {
            title: "é".repeat(500),
            ..meeting()
        };
        let title = |m: &Meeting| match decide_(m, false) {
            Decision::Hold(b) => b.title,
            other => panic!("{other:?}"),
        };
        assert_eq!(title(&untitled), "Busy");
        assert_eq!(title(&long).chars().count(), 200);
    }

    #[test]
    fn google_events_parse_with_their_offsets_and_marks() {
        let v = json!({"id": "evt1", "status": "confirmed", "summary": "Dentist",
            "start": {"dateTime": "2026-03-08T01:30:00-08:00", "timeZone": "America/Los_Angeles"},
            "end": {"dateTime": "2026-03-08T03:30:00-07:00", "timeZone": "America/Los_Angeles"},
            "transparency": "opaque"});
        let m = google(&v, &la()).unwrap();
        // Across the spring-forward gap: one hour of real time.
        assert_eq!(
            (m.start, m.end),
            (ts("2026-03-08T09:30:00Z"), ts("2026-03-08T10:30:00Z"))
        );
        assert!(!m.free && !m.ours && !m.all_day && !m.cancelled);
        let ours = json!({"id": "evt2", "start": {"dateTime": "2026-03-09T09:00:00Z"}, "end": {"dateTime": "2026-03-09T09:30:00Z"},
            "extendedProperties": {"private": {"slotgate": "1", "slotgate_appointment_id": "a1"}}});
        assert!(google(&ours, &la()).unwrap().ours);
        let free = json!({"id": "evt3", "transparency": "transparent", "start": {"dateTime": "2026-03-09T09:00:00Z"}, "end": {"dateTime": "2026-03-09T09:30:00Z"}});
        assert!(google(&free, &la()).unwrap().free);
        // A deletion in an incremental sync has nothing but its id and status.
        let deleted = google(&json!({"id": "evt4", "status": "cancelled"}), &la()).unwrap();
        assert!(deleted.cancelled);
        assert_eq!(
            google(&json!({"id": "evt5"}), &la()),
            None,
            "no times, not cancelled"
        );
    }

    #[test]
    fn all_day_events_span_the_local_day_on_both_dst_days_of_two_zones() {
        let day = |date: &str, zone: &TimeZone| {
            let v = json!({"id": "d", "start": {"date": date}, "end": {"date": (date.parse::<Date>().unwrap().tomorrow().unwrap()).to_string()}});
            let m = google(&v, zone).unwrap();
            assert!(m.all_day);
            (m.end.as_second() - m.start.as_second()) / 3600
        };
        assert_eq!(day("2026-03-08", &la()), 23);
        assert_eq!(day("2026-11-01", &la()), 25);
        assert_eq!(day("2026-03-08", &ny()), 23);
        assert_eq!(day("2026-11-01", &ny()), 25);
        assert_eq!(day("2026-03-09", &ny()), 24);
    }

    #[test]
    fn graph_events_parse_in_utc_or_their_named_zone() {
        let v = json!({"id": "AAMk1", "subject": "1:1", "isAllDay": false, "isCancelled": false, "showAs": "busy",
            "start": {"dateTime": "2026-11-01T08:30:00.0000000", "timeZone": "UTC"},
            "end": {"dateTime": "2026-11-01T09:00:00.0000000", "timeZone": "UTC"}});
        let m = graph(&v, &ny()).unwrap();
        assert_eq!(
            (m.start, m.end),
            (ts("2026-11-01T08:30:00Z"), ts("2026-11-01T09:00:00Z"))
        );
        // The repeated 1:30 of the fall-back night in New York: the first one.
        let local = json!({"id": "AAMk2", "showAs": "tentative",
            "start": {"dateTime": "2026-11-01T01:30:00.0000000", "timeZone": "America/New_York"},
            "end": {"dateTime": "2026-11-01T02:30:00.0000000", "timeZone": "America/New_York"}});
        let m = graph(&local, &ny()).unwrap();
        assert_eq!(m.start, ts("2026-11-01T05:30:00Z"));
        assert_eq!(m.end, ts("2026-11-01T07:30:00Z"));
        assert!(!m.free, "tentative is busy");
        let ours = json!({"id": "AAMk3", "showAs": "busy",
            "start": {"dateTime": "2026-11-02T08:30:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-11-02T09:00:00", "timeZone": "UTC"},
            "singleValueExtendedProperties": [{"id": MARK_PROPERTY, "value": "1"}]});
        assert!(graph(&ours, &ny()).unwrap().ours);
        let all_day = json!({"id": "AAMk4", "isAllDay": true, "showAs": "oof",
            "start": {"dateTime": "2026-03-08T00:00:00.0000000", "timeZone": "UTC"},
            "end": {"dateTime": "2026-03-09T00:00:00.0000000", "timeZone": "UTC"}});
        let m = graph(&all_day, &la()).unwrap();
        assert_eq!(
            (m.start, m.end),
            (ts("2026-03-08T08:00:00Z"), ts("2026-03-09T07:00:00Z"))
        );
    }
}
