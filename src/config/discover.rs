//! `slotgate discover`: a starter `[[locations]]` and `[[practitioners]]` configuration from what
//! Canvas knows (its Schedules, Locations and Practitioners), with what only the clinic can say
//! marked `TODO`. Canvas does not say which Location a Schedule's `Location.<n>` is (canvas-fhir
//! §6): it is matched by the location name the Schedule's comment ends with. Canvas has no time
//! zone on a Location either: it comes from the address's state, and a state that spans zones
//! is marked for checking. A plain function of Canvas's answers, so that tests pin it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use jiff::civil::Date;

use crate::canvas::fhir::{Location, Practitioner, Schedule};
use crate::canvas::licenses::licenses;
use crate::types::{PractitionerId, ScheduleId, UsState};

/// Each state's (and territory's) zone for most of it, and whether part of it keeps another.
const ZONES: [(&str, &str, bool); 56] = [
    ("AL", "America/Chicago", false),
    ("AK", "America/Anchorage", true),
    ("AZ", "America/Phoenix", true),
    ("AR", "America/Chicago", false),
    ("CA", "America/Los_Angeles", false),
    ("CO", "America/Denver", false),
    ("CT", "America/New_York", false),
    ("DE", "America/New_York", false),
    ("DC", "America/New_York", false),
    ("FL", "America/New_York", true),
    ("GA", "America/New_York", false),
    ("HI", "Pacific/Honolulu", false),
    ("ID", "America/Boise", true),
    ("IL", "America/Chicago", false),
    ("IN", "America/Indiana/Indianapolis", true),
    ("IA", "America/Chicago", false),
    ("KS", "America/Chicago", true),
    ("KY", "America/New_York", true),
    ("LA", "America/Chicago", false),
    ("ME", "America/New_York", false),
    ("MD", "America/New_York", false),
    ("MA", "America/New_York", false),
    ("MI", "America/Detroit", true),
    ("MN", "America/Chicago", false),
    ("MS", "America/Chicago", false),
    ("MO", "America/Chicago", false),
    ("MT", "America/Denver", false),
    ("NE", "America/Chicago", true),
    ("NV", "America/Los_Angeles", true),
    ("NH", "America/New_York", false),
    ("NJ", "America/New_York", false),
    ("NM", "America/Denver", false),
    ("NY", "America/New_York", false),
    ("NC", "America/New_York", false),
    ("ND", "America/Chicago", true),
    ("OH", "America/New_York", false),
    ("OK", "America/Chicago", false),
    ("OR", "America/Los_Angeles", true),
    ("PA", "America/New_York", false),
    ("RI", "America/New_York", false),
    ("SC", "America/New_York", false),
    ("SD", "America/Chicago", true),
    ("TN", "America/Chicago", true),
    ("TX", "America/Chicago", true),
    ("UT", "America/Denver", false),
    ("VT", "America/New_York", false),
    ("VA", "America/New_York", false),
    ("WA", "America/Los_Angeles", false),
    ("WV", "America/New_York", false),
    ("WI", "America/Chicago", false),
    ("WY", "America/Denver", false),
    ("PR", "America/Puerto_Rico", false),
    ("VI", "America/St_Thomas", false),
    ("GU", "Pacific/Guam", false),
    ("AS", "Pacific/Pago_Pago", false),
    ("MP", "Pacific/Saipan", false),
];

/// The time zone of most of a state, and whether part of it keeps another.
pub fn zone_of(state: &str) -> Option<(&'static str, bool)> {
    ZONES
        .iter()
        .find(|(s, _, _)| s.eq_ignore_ascii_case(state))
        .map(|(_, zone, split)| (*zone, *split))
}

/// The location name a Schedule names: `Schedule for <clinician> at <location name>`.
fn location_named(schedule: &Schedule) -> Option<&str> {
    let text = schedule.comment.as_deref()?;
    text.rsplit_once(" at ").map(|(_, name)| name.trim())
}

/// A name from Canvas, fit for a TOML comment: one line, no control characters.
fn comment(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// The starter configuration, as TOML with comments.
pub fn starter(
    canvas: &str,
    schedules: &[Schedule],
    practitioners: &[Practitioner],
    locations: &[Location],
    today: Date,
) -> String {
    // Location.<n> -> the location name its schedules give, and its clinicians.
    // Keyed by (length, digits): numeric order without parsing a number that may not fit.
    let mut keys: BTreeMap<(usize, String), (Option<String>, BTreeSet<PractitionerId>)> =
        BTreeMap::new();
    for s in schedules {
        let Ok(id) = s.id.parse::<ScheduleId>() else {
            continue;
        };
        let entry = keys
            .entry((id.location_key.len(), id.location_key.clone()))
            .or_default();
        entry.0 = entry
            .0
            .take()
            .or_else(|| location_named(s).map(str::to_owned));
        entry.1.insert(id.practitioner);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# A starter configuration from `slotgate discover`, read from {canvas} on {today}.\n\
         # {} schedules, {} practice locations, {} schedulable practitioners. Fill in every TODO,\n\
         # add the clinic's [[reasons]], then `slotgate check-config` this file.\n",
        schedules.len(),
        keys.len(),
        keys.values()
            .flat_map(|(_, p)| p.iter())
            .collect::<BTreeSet<_>>()
            .len(),
    );
    for ((_, key), (name, _)) in &keys {
        let found = name.as_deref().and_then(|n| {
            locations
                .iter()
                .find(|l| l.name.as_deref() == Some(n) || l.alias.iter().any(|a| a == n))
        });
        let label = name
            .as_deref()
            .map_or_else(|| "a location Canvas did not name".to_owned(), comment);
        let _ = writeln!(out, "[[locations]]\t# {label}\nschedule_key = \"{key}\"");
        match found {
            Some(l) => {
                let _ = writeln!(out, "id = {}", quoted(&l.id));
            }
            None => {
                let _ = writeln!(
                    out,
                    "id = \"\"                        # TODO: the Canvas Location id of practice location {key} (no Location is named {})",
                    quoted(&label)
                );
            }
        }
        let state = found
            .and_then(|l| l.address.as_ref())
            .and_then(|a| a.state.as_deref())
            .and_then(|s| s.parse::<UsState>().ok());
        match state.and_then(|s| zone_of(s.as_str()).map(|z| (s, z))) {
            Some((s, (zone, false))) => {
                let _ = writeln!(out, "timezone = \"{zone}\"\nstate = \"{s}\"\n");
            }
            Some((s, (zone, true))) => {
                let _ = writeln!(
                    out,
                    "timezone = \"{zone}\"   # TODO: check; {s} spans more than one time zone\nstate = \"{s}\"\n"
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "timezone = \"\"                  # TODO: the location's IANA time zone (Canvas gives none)\nstate = \"\"                     # TODO: its two-letter state\n"
                );
            }
        }
    }
    let scheduled: BTreeSet<&PractitionerId> = keys.values().flat_map(|(_, p)| p.iter()).collect();
    let mut clinicians: Vec<(String, &Practitioner)> = practitioners
        .iter()
        .filter(|p| {
            p.id.parse::<PractitionerId>()
                .is_ok_and(|id| scheduled.contains(&id))
        })
        .map(|p| {
            let name = p
                .name
                .first()
                .and_then(|n| n.display())
                .unwrap_or_else(|| p.id.clone());
            (comment(&name), p)
        })
        .collect();
    clinicians.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
    for (name, p) in clinicians {
        let states: Vec<String> = licenses(p)
            .into_iter()
            .filter(|l| l.is_state_license() && l.end.is_none_or(|e| e >= today))
            .filter_map(|l| {
                let state = l.state?;
                Some(match l.end {
                    Some(end) => format!("{state} (until {end})"),
                    None => state.to_string(),
                })
            })
            .collect();
        let licensed = if states.is_empty() {
            "no current STATE licence in Canvas".to_owned()
        } else {
            format!("licensed in {}", states.join(", "))
        };
        let _ = writeln!(
            out,
            "[[practitioners]]\t# {name}; {licensed}\nid = {}\n\
             specialties = []                 # TODO: the reasons' specialties this clinician sees (e.g. [\"primary_care\"])\n\
             modalities = [\"telehealth\", \"in_person\"]   # TODO: how they see patients\n\
             languages = []                   # TODO: e.g. [\"en\", \"es\"]\n",
            quoted(&p.id)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_has_a_zone_and_split_states_are_marked() {
        assert_eq!(zone_of("CA"), Some(("America/Los_Angeles", false)));
        assert_eq!(zone_of("tn"), Some(("America/Chicago", true)));
        assert_eq!(zone_of("ZZ"), None);
        for (state, zone, _) in ZONES {
            assert!(jiff::tz::TimeZone::get(zone).is_ok(), "{state}: {zone}");
            assert!(state.parse::<UsState>().is_ok(), "{state}");
        }
    }
}
