//! The FHIR R4 resources the operations answer with, built from what `/v1` answers with, so
//! both surfaces say the same thing about a visit.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::{HOLD_EXPIRES_EXTENSION, HOLD_SYSTEM, SLOT_SYSTEM};
use crate::rules::model::{Modality, Reason};

/// A visit as an Appointment shows it.
#[derive(Debug, Clone)]
pub struct Visit<'a> {
    /// Canvas's id once booked; the hold's while held; none while only proposed.
    pub id: Option<String>,
    pub status: Status,
    /// RFC 3339 with the location's offset.
    pub start: String,
    pub end: String,
    pub minutes: Option<u32>,
    pub reason: Option<&'a Reason>,
    /// A reason the clinic no longer lists, as the appointment carries it.
    pub reason_code: Option<String>,
    pub modality: Option<Modality>,
    pub practitioner: Option<(String, String)>,
    pub location: Option<(String, String)>,
    pub patient: Option<String>,
    /// What `$hold` and `$book` (and `/v1`) take.
    pub slot_id: Option<String>,
    pub hold: Option<(String, Timestamp)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Proposed,
    Pending,
    Booked,
    /// Anything else Canvas says (cancelled, fulfilled, …), as FHIR spells it.
    Other(&'static str),
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Proposed => "proposed",
            Status::Pending => "pending",
            Status::Booked => "booked",
            Status::Other(s) => s,
        }
    }

    /// How each participant stands: asked, tentatively held, or accepted.
    fn participation(self) -> &'static str {
        match self {
            Status::Proposed => "needs-action",
            Status::Pending => "tentative",
            _ => "accepted",
        }
    }
}

/// FHIR's spelling of the Appointment statuses Canvas may report.
pub fn status_of(canvas: &str) -> Status {
    match canvas {
        "proposed" => Status::Proposed,
        "pending" => Status::Pending,
        "booked" => Status::Booked,
        "arrived" => Status::Other("arrived"),
        "fulfilled" => Status::Other("fulfilled"),
        "cancelled" => Status::Other("cancelled"),
        "noshow" => Status::Other("noshow"),
        "entered-in-error" => Status::Other("entered-in-error"),
        "checked-in" => Status::Other("checked-in"),
        "waitlist" => Status::Other("waitlist"),
        _ => Status::Booked,
    }
}

fn coding(system: &str, code: &str, display: Option<&str>) -> Value {
    let mut c = json!({"system": system, "code": code});
    if let Some(d) = display {
        c["display"] = json!(d);
    }
    c
}

pub fn appointment(v: &Visit) -> Value {
    let mut a = json!({"resourceType": "Appointment"});
    if let Some(id) = &v.id {
        a["id"] = json!(id);
    }
    if let Some((_, expires)) = &v.hold {
        a["extension"] =
            json!([{"url": HOLD_EXPIRES_EXTENSION, "valueInstant": expires.to_string()}]);
    }
    let mut identifiers = Vec::new();
    if let Some(slot) = &v.slot_id {
        identifiers.push(json!({"system": SLOT_SYSTEM, "value": slot}));
    }
    if let Some((hold, _)) = &v.hold {
        identifiers.push(json!({"system": HOLD_SYSTEM, "value": hold}));
    }
    if !identifiers.is_empty() {
        a["identifier"] = json!(identifiers);
    }
    a["status"] = json!(v.status.as_str());
    match (v.reason, &v.reason_code) {
        (Some(r), _) => {
            let concept = json!({"coding": [coding(&r.system, &r.code, Some(&r.display))], "text": r.display});
            // The visit type IHE scheduling matches on, and the reason Canvas keeps.
            a["serviceType"] = json!([concept.clone()]);
            a["reasonCode"] = json!([concept]);
            if let Some(t) = v.modality.and_then(|m| r.modalities.get(&m)) {
                a["appointmentType"] = json!({"coding": [coding(&t.system, &t.code, None)], "text": modality_text(v.modality)});
            }
        }
        (None, Some(code)) => a["reasonCode"] = json!([{"text": code}]),
        (None, None) => {}
    }
    a["start"] = json!(v.start);
    a["end"] = json!(v.end);
    if let Some(m) = v.minutes {
        a["minutesDuration"] = json!(m);
    }
    let taking = v.status.participation();
    let mut participants = Vec::new();
    if let Some(p) = &v.patient {
        participants.push(json!({"actor": {"reference": format!("Patient/{p}")}, "required": "required", "status": taking}));
    }
    for (kind, (id, name)) in [("Practitioner", &v.practitioner), ("Location", &v.location)]
        .into_iter()
        .filter_map(|(kind, who)| who.as_ref().map(|w| (kind, w)))
    {
        let mut actor = json!({"reference": format!("{kind}/{id}")});
        // FHIR has no empty strings: a name the directory no longer knows is left out.
        if !name.is_empty() {
            actor["display"] = json!(name);
        }
        participants.push(json!({"actor": actor, "required": "required", "status": taking}));
    }
    a["participant"] = json!(participants);
    a
}

fn modality_text(m: Option<Modality>) -> &'static str {
    match m {
        Some(Modality::Telehealth) => "Telehealth",
        _ => "In person",
    }
}

/// A `searchset` of matches, with a warning first when the answer comes from the last good
/// cache because Canvas could not be reached.
pub fn searchset(matches: Vec<Value>, stale: bool) -> Value {
    let total = matches.len();
    let mut entries: Vec<Value> = matches
        .into_iter()
        .map(|resource| json!({"resource": resource, "search": {"mode": "match"}}))
        .collect();
    if stale {
        entries.insert(
            0,
            json!({"resource": {"resourceType": "OperationOutcome", "issue": [{
                "severity": "warning", "code": "transient",
                "diagnostics": "Canvas could not be reached: these times come from the last good answer and may have been taken."
            }]}, "search": {"mode": "outcome"}}),
        );
    }
    let mut bundle = json!({"resourceType": "Bundle", "type": "searchset", "total": total});
    // FHIR JSON has no empty arrays.
    if !entries.is_empty() {
        bundle["entry"] = json!(entries);
    }
    bundle
}

/// The slot id an Appointment from `$find` or `$hold` carries.
pub fn slot_id_of(appointment: &Value) -> Option<String> {
    identifier(appointment, SLOT_SYSTEM)
}

/// The hold an Appointment from `$hold` carries.
pub fn hold_id_of(appointment: &Value) -> Option<String> {
    identifier(appointment, HOLD_SYSTEM)
}

fn identifier(appointment: &Value, system: &str) -> Option<String> {
    appointment
        .get("identifier")?
        .as_array()?
        .iter()
        .find(|i| i.get("system").and_then(Value::as_str) == Some(system))?
        .get("value")?
        .as_str()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::model::TypeCoding;

    fn reason() -> Reason {
        Reason {
            code: "INIV".into(),
            system: "INTERNAL".into(),
            display: "Initial Visit".into(),
            durations: vec![30, 60],
            modalities: [(
                Modality::Telehealth,
                TypeCoding {
                    system: "http://snomed.info/sct".into(),
                    code: "448337001".into(),
                },
            )]
            .into_iter()
            .collect(),
            specialties: vec![],
            patient_bookable: true,
        }
    }

    #[test]
    fn a_proposed_visit_carries_its_slot_and_everyone_needs_to_act() {
        let r = reason();
        let a = appointment(&Visit {
            id: None,
            status: Status::Proposed,
            start: "2026-03-08T09:00:00-07:00".into(),
            end: "2026-03-08T09:30:00-07:00".into(),
            minutes: Some(30),
            reason: Some(&r),
            reason_code: None,
            modality: Some(Modality::Telehealth),
            practitioner: Some(("p1".into(), "Dr P".into())),
            location: Some(("l1".into(), "Clinic".into())),
            patient: None,
            slot_id: Some("s1.x.y".into()),
            hold: None,
        });
        assert!(a.get("id").is_none());
        assert_eq!(a["status"], "proposed");
        assert_eq!(slot_id_of(&a).as_deref(), Some("s1.x.y"));
        assert_eq!(a["serviceType"][0]["coding"][0]["code"], "INIV");
        assert_eq!(a["appointmentType"]["coding"][0]["code"], "448337001");
        assert_eq!(a["participant"][0]["status"], "needs-action");
        assert_eq!(a["participant"][0]["actor"]["reference"], "Practitioner/p1");
        assert_eq!(a["minutesDuration"], 30);
    }

    #[test]
    fn a_held_visit_names_its_hold_and_when_it_lapses() {
        let expires: Timestamp = "2026-03-08T16:10:00Z".parse().unwrap();
        let a = appointment(&Visit {
            id: Some("h1".into()),
            status: Status::Pending,
            start: "s".into(),
            end: "e".into(),
            minutes: None,
            reason: None,
            reason_code: Some("OLD".into()),
            modality: None,
            practitioner: None,
            location: None,
            patient: Some("pat".into()),
            slot_id: Some("s1".into()),
            hold: Some(("h1".into(), expires)),
        });
        assert_eq!(hold_id_of(&a).as_deref(), Some("h1"));
        assert_eq!(a["extension"][0]["valueInstant"], "2026-03-08T16:10:00Z");
        assert_eq!(a["participant"][0]["status"], "tentative");
        assert_eq!(a["reasonCode"][0]["text"], "OLD");
    }

    #[test]
    fn a_stale_answer_says_so_first() {
        let b = searchset(vec![json!({"resourceType": "Appointment"})], true);
        assert_eq!(b["total"], 1);
        assert_eq!(b["entry"][0]["search"]["mode"], "outcome");
        assert_eq!(b["entry"][1]["search"]["mode"], "match");
        assert!(searchset(vec![], false).get("entry").is_none());
    }
}
