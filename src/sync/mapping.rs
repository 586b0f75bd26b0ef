//! What a sink may see of a Canvas appointment (contract "PHI level per sink"), as a plain
//! function of the appointment as read, so every trigger writes the same thing.

use aws_lc_rs::digest;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::canvas::fhir::{self, AppointmentStatus};
use crate::config::sync::PhiLevel;
use crate::rules::model::{Modality, Rules, TypeCoding};
use crate::scheduling::directory::Snapshot;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Named {
    pub id: String,
    pub name: String,
}

/// One appointment as a calendar event, holding only what the sink's PHI level allows. Its
/// `Debug` shows no more than the `busy` level would.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarEvent {
    pub appointment_id: String,
    pub status: String,
    pub title: String,
    /// RFC 3339 in the location's zone, and that zone.
    pub start: String,
    pub end: String,
    pub timezone: String,
    pub practitioner: Named,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Named>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modality: Option<Modality>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meeting_link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl std::fmt::Debug for CalendarEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CalendarEvent")
            .field("appointment_id", &self.appointment_id)
            .field("status", &self.status)
            .field("start", &self.start)
            .field("end", &self.end)
            .field("timezone", &self.timezone)
            .finish_non_exhaustive()
    }
}

impl CalendarEvent {
    /// Identifies the content: equal hashes, nothing to write.
    pub fn hash(&self) -> String {
        digest(&serde_json::to_string(self).unwrap_or_default())
    }
}

/// A short hex SHA-256.
pub fn digest(text: &str) -> String {
    digest::digest(&digest::SHA256, text.as_bytes()).as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What the mapping needs besides the appointment.
pub struct Context<'a> {
    pub snapshot: &'a Snapshot,
    pub rules: &'a Rules,
    pub event_type: &'a TypeCoding,
    /// Read from Canvas only when some sink is at `full`.
    pub patient_name: Option<&'a str>,
}

/// The event a sink at `level` should hold, or `None` when it should hold nothing (cancelled,
/// no-show, entered in error, or not a timed appointment).
pub fn event(a: &fhir::Appointment, level: PhiLevel, cx: &Context<'_>) -> Option<CalendarEvent> {
    if matches!(
        a.status,
        AppointmentStatus::Cancelled
            | AppointmentStatus::Noshow
            | AppointmentStatus::EnteredInError
    ) {
        return None;
    }
    describe(a, level, cx)
}

/// The appointment at a sink's PHI level whatever its status: what `event` gives for one
/// that holds time, and what a webhook's `appointment.cancelled` message tells of one that
/// no longer does.
pub fn describe(a: &fhir::Appointment, level: PhiLevel, cx: &Context<'_>) -> Option<CalendarEvent> {
    let (start, end) = (a.start?.timestamp, a.end?.timestamp);
    let id = a.id.clone()?;
    let practitioner_id = a.participant_id("Practitioner")?.to_owned();
    let place = a.location_id().and_then(|l| cx.snapshot.place_by_id(l));
    let tz = place
        .map(|p| p.info.timezone.clone())
        .unwrap_or(TimeZone::UTC);
    let at = |t: jiff::Timestamp| fhir::Instant::new(t, tz.to_offset(t)).to_string();
    let type_coding = a.appointment_type.as_ref().and_then(|t| t.coding.first());
    let is_event = type_coding.is_some_and(|c| c.code.as_deref() == Some(&cx.event_type.code));
    let event_title = a
        .description
        .clone()
        .or_else(|| a.reason_code.first().and_then(|r| r.text.clone()));
    let reason = a
        .reason_code
        .first()
        .and_then(|r| r.coding.first())
        .and_then(|c| {
            let code = c.code.as_deref()?;
            Some(
                cx.rules
                    .reason(code)
                    .map(|r| r.display.clone())
                    .or_else(|| c.display.clone())
                    .unwrap_or_else(|| code.to_owned()),
            )
        });
    let modality = (!is_event).then(|| {
        if a.meeting_link().is_some()
            || type_coding.and_then(|c| c.code.as_deref()) == Some("448337001")
        {
            Modality::Telehealth
        } else {
            Modality::InPerson
        }
    });
    let practitioner = Named {
        id: practitioner_id.clone(),
        name: practitioner_id
            .parse()
            .ok()
            .and_then(|p| cx.snapshot.clinicians.get(&p))
            .map(|c| c.name.clone())
            .unwrap_or_default(),
    };
    let mut e = CalendarEvent {
        appointment_id: id,
        status: a.status.as_str().to_owned(),
        title: "Busy".into(),
        start: at(start),
        end: at(end),
        timezone: tz.iana_name().unwrap_or("UTC").to_owned(),
        practitioner,
        location: None,
        modality: None,
        description: None,
        meeting_link: None,
        patient_name: None,
        reason: None,
    };
    if level == PhiLevel::Busy {
        return Some(e);
    }
    e.location = place.map(|p| Named {
        id: p.info.id.clone(),
        name: p.name.clone(),
    });
    e.modality = modality;
    e.title = if is_event {
        event_title.clone().unwrap_or_else(|| "Busy".into())
    } else {
        "Patient visit".into()
    };
    e.description = modality.map(|m| match m {
        Modality::Telehealth => "Telehealth visit".to_owned(),
        Modality::InPerson => "In-person visit".to_owned(),
    });
    if level == PhiLevel::Full && !is_event {
        e.patient_name = cx.patient_name.map(str::to_owned);
        e.reason = reason.clone();
        e.meeting_link = a.meeting_link().map(str::to_owned);
        e.title = match (&reason, cx.patient_name) {
            (Some(r), Some(p)) => format!("{r}: {p}"),
            (None, Some(p)) => format!("Visit: {p}"),
            _ => e.title,
        };
        let mut lines: Vec<String> = e.description.iter().cloned().collect();
        lines.extend(reason.map(|r| format!("Reason: {r}")));
        lines.extend(e.meeting_link.as_ref().map(|l| format!("Join: {l}")));
        e.description = Some(lines.join("\n"));
    }
    Some(e)
}

/// The calendar an appointment came from (kind, calendar), when it mirrors a meeting: both
/// directions need it (inbound to find its meetings, outbound not to echo them back).
pub fn origin(a: &fhir::Appointment) -> Option<(&str, &str)> {
    a.identifier
        .iter()
        .filter(|i| i.system.as_deref() == Some(crate::scheduling::canvas_write::CALENDAR_SYSTEM))
        .find_map(|i| {
            let mut parts = i.value.as_deref()?.splitn(3, ':');
            Some((parts.next()?, parts.next()?))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn appointment(status: &str, type_code: &str) -> fhir::Appointment {
        serde_json::from_value(serde_json::json!({
            "resourceType": "Appointment", "id": "a1", "status": status,
            "appointmentType": {"coding": [{"system": "http://snomed.info/sct", "code": type_code}]},
            "reasonCode": [{"coding": [{"system": "INTERNAL", "code": "INIV", "display": "Initial Visit"}], "text": "Sore throat"}],
            "description": "Sore throat",
            "contained": [{"resourceType": "Endpoint", "id": "appointment-meeting-endpoint-0", "address": "https://meet.example.org/x"}],
            "supportingInformation": [{"reference": "Location/b3476a18-3f63-422d-87e7-b3dc0cd55060"}],
            "start": "2026-12-01T17:00:00+00:00", "end": "2026-12-01T17:30:00+00:00",
            "participant": [{"actor": {"reference": "Patient/ee1c7803325b47b492008f3e7c9d7a3d"}}, {"actor": {"reference": "Practitioner/4150cd20de8a470aa570a852859ac87e"}}]
        }))
        .unwrap()
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            clinicians: BTreeMap::new(),
            places: Vec::new(),
            schedules: Vec::new(),
            fetched_at: jiff::Timestamp::UNIX_EPOCH,
            policy: std::sync::Arc::new(crate::rules::model::Policy::for_tests(Rules::default())),
        }
    }

    fn cx<'a>(snapshot: &'a Snapshot, rules: &'a Rules, t: &'a TypeCoding) -> Context<'a> {
        Context {
            snapshot,
            rules,
            event_type: t,
            patient_name: Some("Olivia Martinez"),
        }
    }

    #[test]
    fn each_level_shows_only_what_it_may() {
        let (s, r) = (snapshot(), Rules::default());
        let t = TypeCoding {
            system: "http://snomed.info/sct".into(),
            code: "272379006".into(),
        };
        let a = appointment("booked", "448337001");
        let busy = event(&a, PhiLevel::Busy, &cx(&s, &r, &t)).unwrap();
        assert_eq!(busy.title, "Busy");
        assert_eq!(
            (
                busy.description.as_deref(),
                busy.location.as_ref(),
                busy.modality
            ),
            (None, None, None)
        );
        let neutral = event(&a, PhiLevel::Neutral, &cx(&s, &r, &t)).unwrap();
        assert_eq!(neutral.title, "Patient visit");
        assert_eq!(neutral.modality, Some(Modality::Telehealth));
        let text = serde_json::to_string(&neutral).unwrap();
        for leak in [
            "Olivia",
            "Sore throat",
            "Initial Visit",
            "meet.example.org",
            "ee1c7803",
        ] {
            assert!(!text.contains(leak), "{leak} at neutral: {text}");
        }
        let full = event(&a, PhiLevel::Full, &cx(&s, &r, &t)).unwrap();
        assert_eq!(full.title, "Initial Visit: Olivia Martinez");
        // Even the full event prints nothing of the patient's through Debug.
        let printed = format!("{full:?}");
        for leak in ["Olivia", "Initial Visit", "meet.example.org"] {
            assert!(!printed.contains(leak), "{leak} in {printed}");
        }
        assert_eq!(
            full.meeting_link.as_deref(),
            Some("https://meet.example.org/x")
        );
        assert!(
            full.description
                .unwrap()
                .contains("Join: https://meet.example.org/x")
        );
    }

    #[test]
    fn other_events_keep_their_title_and_ended_ones_are_removed() {
        let (s, r) = (snapshot(), Rules::default());
        let t = TypeCoding {
            system: "http://snomed.info/sct".into(),
            code: "272379006".into(),
        };
        let meeting = appointment("booked", "272379006");
        assert_eq!(
            event(&meeting, PhiLevel::Neutral, &cx(&s, &r, &t))
                .unwrap()
                .title,
            "Sore throat"
        );
        assert_eq!(
            event(&meeting, PhiLevel::Busy, &cx(&s, &r, &t))
                .unwrap()
                .title,
            "Busy"
        );
        assert_eq!(
            event(&meeting, PhiLevel::Full, &cx(&s, &r, &t))
                .unwrap()
                .patient_name,
            None
        );
        for gone in ["cancelled", "noshow", "entered-in-error"] {
            assert!(
                event(
                    &appointment(gone, "448337001"),
                    PhiLevel::Full,
                    &cx(&s, &r, &t)
                )
                .is_none(),
                "{gone}"
            );
        }
        let a = appointment("booked", "448337001");
        let b = appointment("arrived", "448337001");
        assert_ne!(
            event(&a, PhiLevel::Busy, &cx(&s, &r, &t)).unwrap().hash(),
            event(&b, PhiLevel::Busy, &cx(&s, &r, &t)).unwrap().hash()
        );
    }
}
