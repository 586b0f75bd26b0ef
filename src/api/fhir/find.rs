//! `POST /fhir/r4/Appointment/$find`: `/v1/availability`'s question and answer in FHIR. The
//! same rules, cache and holds decide; each bookable slot is a `proposed` Appointment that
//! carries its slot id for `$hold` and `$book`.

use actix_web::{HttpRequest, HttpResponse, post, web};
use bytes::Bytes;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use super::params::{Bound, Parameters, Target};
use super::resources::{self, Status, Visit};
use super::{FHIR_JSON, ParametersBody, parameters_body};
use crate::api::AppState;
use crate::api::availability::render_slot_id;
use crate::auth::{Principal, ReadAccess};
use crate::error::{ApiError, Code};
use crate::rules::model::Modality;
use crate::rules::policy;
use crate::rules::window::{self, RangeError};
use crate::scheduling::availability::{Answer, OwnedOffer, Query};
use crate::scheduling::browse;
use crate::scheduling::directory::Snapshot;
use crate::types::{PatientId, PractitionerId, UsState};

const PARAMETERS: [&str; 11] = [
    "start",
    "end",
    "visit-type",
    "duration",
    "modality",
    "specialty",
    "practitioner",
    "location-reference",
    "patient-reference",
    "patient-state",
    "_count",
];

/// The question as the parameters put it, before the clinic's rules are applied.
struct Question {
    start: Option<Bound>,
    end: Option<Bound>,
    reason: (Option<String>, String),
    duration: Option<u32>,
    modality: Option<Modality>,
    specialty: Option<String>,
    practitioner: Option<PractitionerId>,
    location: Option<String>,
    patient: Option<PatientId>,
    patient_state: Option<UsState>,
    count: u32,
}

fn read(body: &serde_json::Value) -> Result<Question, ApiError> {
    let mut p = Parameters::parse(body, &PARAMETERS)?;
    let start = p.bound("start");
    let end = p.bound("end");
    let reason = p.coding("visit-type");
    if !p.has("visit-type") {
        p.error(
            "visit-type",
            "is required: a reason's system and code from /v1/reasons",
        );
    }
    let duration = p.integer("duration", 1, 480);
    let modality = p.text("modality", "valueCode").and_then(|m| {
        Modality::parse(&m).or_else(|| {
            p.error("modality", "must be telehealth or in_person");
            None
        })
    });
    let specialty = p.coding("specialty").map(|(_, code)| code);
    let practitioner = p
        .reference("practitioner", "Practitioner")
        .and_then(|t| by_id(&mut p, "practitioner", t, "a Canvas practitioner id"));
    let location = p
        .reference("location-reference", "Location")
        .and_then(|t| by_id::<uuid::Uuid>(&mut p, "location-reference", t, "a Canvas Location id"))
        .map(|u| u.to_string());
    let patient = p
        .reference("patient-reference", "Patient")
        .and_then(|t| by_id(&mut p, "patient-reference", t, "a Canvas patient key"));
    let patient_state = p.text("patient-state", "valueString").and_then(|s| {
        s.parse().ok().or_else(|| {
            p.error("patient-state", "is not a two-letter US state code");
            None
        })
    });
    let count = p.integer("_count", 1, 1000).unwrap_or(100);
    if let (Some(Bound::Instant(a)), Some(Bound::Instant(b))) = (start, end)
        && b <= a
    {
        p.error("end", "must be after start");
    }
    p.finish()?;
    let Some(reason) = reason else {
        return Err(ApiError::invalid("visit-type", "is required"));
    };
    Ok(Question {
        start,
        end,
        reason,
        duration,
        modality,
        specialty,
        practitioner,
        location,
        patient,
        patient_state,
        count,
    })
}

/// A reference's id parsed as `T`; references by identifier name nothing here.
pub(super) fn by_id<T: std::str::FromStr>(
    p: &mut Parameters,
    name: &str,
    target: Target,
    what: &str,
) -> Option<T> {
    match target {
        Target::Id(id) => id.parse().ok().or_else(|| {
            p.error(name, &format!("is not {what}"));
            None
        }),
        Target::Identifier { .. } => {
            p.error(name, &format!("must reference {what} by id"));
            None
        }
    }
}

/// The patient the question is for (the token's own when a patient asks without naming one),
/// checked against the token.
pub(super) fn patient_for(
    caller: &Principal,
    named: Option<PatientId>,
) -> Result<Option<PatientId>, ApiError> {
    match named {
        Some(p) if !caller.may_act_for(&p) => Err(ApiError::new(
            Code::Forbidden,
            "This token may not act for this patient.",
        )),
        Some(p) => Ok(Some(p)),
        None => Ok(caller.patient.clone()),
    }
}

/// The state of the patient's address in Canvas (home first), for licensure.
pub(super) async fn address_state(
    state: &AppState,
    patient: &PatientId,
) -> Result<Option<UsState>, ApiError> {
    let Some(found) = state.canvas.patient(patient).await? else {
        return Err(ApiError::new(
            Code::PatientNotFound,
            "Canvas has no such patient.",
        ));
    };
    let mut addresses: Vec<_> = found
        .address
        .iter()
        .filter(|a| a.use_.as_deref() != Some("old"))
        .collect();
    addresses.sort_by_key(|a| a.use_.as_deref() != Some("home"));
    Ok(addresses
        .iter()
        .find_map(|a| a.state.as_deref().and_then(|s| s.parse().ok())))
}

/// The zone dates are read in: the location's, else the clinic's when it has one; and whether
/// that is every answer's own zone (else UTC, and each answer is cut to its local dates).
fn zone(snapshot: &Snapshot, location: Option<&str>) -> (TimeZone, bool) {
    if let Some(place) = location.and_then(|id| snapshot.place_by_id(id)) {
        return (place.info.timezone.clone(), true);
    }
    let mut zones = snapshot.places.iter().map(|p| &p.info.timezone);
    match zones.next() {
        Some(first) if zones.all(|z| z == first) => (first.clone(), true),
        _ => (TimeZone::UTC, false),
    }
}

/// Finds bookable times.
///
/// The same question as `GET /v1/availability`, as a FHIR `Parameters` body: `visit-type` (a
/// reason's `valueCoding`, required), `start`/`end` (`valueDate`, whole local days in the
/// location's zone, or the clinic's when it has one zone, else UTC; or
/// `valueDateTime` with an offset, exact instants), `duration` (`valueInteger` minutes; default
/// the reason's first), `modality` (`valueCode`: `telehealth` or `in_person`), `specialty`
/// (`valueCoding`), `practitioner` and `location-reference` (`valueReference`),
/// `patient-reference` (`valueReference`; by video its address's state in Canvas decides
/// licensure, in person the clinic's) or `patient-state` (`valueString`, slotgate's extension;
/// wins when given), `_count` (`valueInteger`, default 100). Answers a `searchset` Bundle of
/// `proposed` Appointments, `total` every match (up to 1,000); each carries its slot id as an identifier (system `urn:slotgate:slot-id`).
/// Refusals are `OperationOutcome`s carrying the `/v1` code.
#[utoipa::path(
    operation_id = "fhir_find",
    path = "/fhir/r4/Appointment/$find",
    tag = "fhir",
    request_body(content = ParametersBody, content_type = "application/fhir+json", example = json!({"resourceType": "Parameters", "parameter": [
        {"name": "visit-type", "valueCoding": {"system": "INTERNAL", "code": "INIV"}},
        {"name": "start", "valueDate": "2026-12-07"}, {"name": "end", "valueDate": "2026-12-11"},
        {"name": "patient-state", "valueString": "CA"}, {"name": "_count", "valueInteger": 5}]})),
    security(("bearer" = ["scheduling.read"])),
    responses(
        (status = 200, description = "A searchset Bundle of proposed Appointments", body = super::FhirResource, content_type = "application/fhir+json"),
        (status = 400, description = "A parameter is missing, unknown, repeated or malformed, or the range is too long (`validation_failed`)", body = super::FhirResource, content_type = "application/fhir+json"),
        (status = 401, description = "No valid token", body = super::FhirResource, content_type = "application/fhir+json"),
        (status = 403, description = "The token lacks scheduling.read, or may not act for the patient", body = super::FhirResource, content_type = "application/fhir+json"),
        (status = 404, description = "`patient_not_found`", body = super::FhirResource, content_type = "application/fhir+json"),
        (status = 422, description = "`reason_not_allowed`, `duration_not_allowed` or `modality_not_allowed`", body = super::FhirResource, content_type = "application/fhir+json"),
        (status = 503, description = "Canvas is unavailable and nothing is cached", body = super::FhirResource, content_type = "application/fhir+json"),
    )
)]
#[post("/Appointment/$find")]
pub async fn find(
    caller: ReadAccess,
    request: HttpRequest,
    body: Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = parameters_body(&request, &body)?;
    let q = read(&body)?;
    let caller = caller.0;
    let staff = caller.scopes.staff;
    let patient = patient_for(&caller, q.patient.clone())?;
    let snapshot = state.directory.snapshot().await?;
    let clinic = snapshot.policy.clone();
    let (system, code) = &q.reason;
    let reason = policy::bookable_reason(&clinic.rules, code, staff)
        .ok()
        .filter(|r| system.as_ref().is_none_or(|s| s == &r.system))
        .ok_or_else(|| ApiError::from(policy::Refusal::UnknownReason))?;
    let duration = q
        .duration
        .or_else(|| reason.durations.first().copied())
        .unwrap_or(30);
    policy::check_duration(reason, duration)?;
    // Where the patient will be: as given; else, by video, where they live (their address in
    // Canvas); in person, at the clinic, whose own licence rule applies.
    let by_video = q.modality != Some(Modality::InPerson)
        && reason.modalities.contains_key(&Modality::Telehealth);
    let (video_state, in_person_state) = match (q.patient_state, &patient) {
        (Some(s), _) => (Some(s), Some(s)),
        (None, Some(p)) if by_video => (address_state(&state, p).await?, None),
        _ => (None, None),
    };
    if q.modality == Some(Modality::Telehealth) && video_state.is_none() {
        return Err(ApiError::invalid(
            "patient-state",
            "is required for telehealth (or a patient-reference whose address has a state)",
        ));
    }
    let modalities = policy::modalities_asked(reason, q.modality, video_state.is_some())?;
    if modalities.is_empty() {
        return Err(ApiError::invalid(
            "patient-state",
            "is required: the reason is only seen by telehealth",
        ));
    }
    if let Some(id) = &q.location
        && snapshot.place_by_id(id).is_none()
    {
        return Err(ApiError::invalid(
            "location-reference",
            "is not a location from /v1/locations",
        ));
    }
    let (tz, exact_zone) = zone(&snapshot, q.location.as_deref());
    let today = Timestamp::now().to_zoned_datetime(tz.clone()).date();
    let date = |b: Bound| match b {
        Bound::Date(d) => d,
        Bound::Instant(t) => t.to_zoned_datetime(tz.clone()).date(),
    };
    let start = q.start.map(date).unwrap_or(today);
    let end = q
        .end
        .map(date)
        .unwrap_or_else(|| start.saturating_add(6.days()));
    match window::check_range(&clinic.booking, start, end) {
        Ok(_) => {}
        Err(RangeError::EndBeforeStart) => {
            return Err(ApiError::invalid("end", "must not be before start"));
        }
        Err(RangeError::TooLong { days, max }) => {
            return Err(ApiError::invalid(
                "end",
                format!("the range is {days} days; at most {max} may be asked at once"),
            ));
        }
    }
    let cut = Cut {
        from: match q.start {
            Some(Bound::Instant(t)) => Some(t),
            _ => None,
        },
        until: match q.end {
            Some(Bound::Instant(t)) => Some(t),
            _ => None,
        },
        // Whole days are each location's own local days; read in one zone for all, a clinic
        // across zones is asked a day either side and cut to them.
        dates: (!exact_zone).then_some((start, end)),
    };
    let widen = i64::from(!exact_zone);
    // One question per place the patient will be: by video where they live, in person at the
    // clinic (when that differs).
    let mut questions: Vec<(Vec<Modality>, Option<UsState>)> = Vec::new();
    if video_state == in_person_state {
        questions.push((modalities, video_state));
    } else {
        for m in modalities {
            let at = if m == Modality::Telehealth {
                video_state
            } else {
                in_person_state
            };
            questions.push((vec![m], at));
        }
    }
    let mut visits = Vec::new();
    let mut stale = false;
    for (modalities, patient_state) in questions {
        let query = Query {
            reason: reason.clone(),
            duration_minutes: duration,
            patient_state,
            modalities,
            start: start.saturating_sub(widen.days()),
            end: end.saturating_add(widen.days()),
            tz: tz.clone(),
            practitioner: q.practitioner.clone(),
            location: q.location.clone(),
            specialty: q.specialty.clone(),
            language: None,
            limit: MATCHES,
        };
        let (found, was_stale) = matches(&state, &query, staff, &cut, patient.as_ref()).await?;
        visits.extend(found);
        stale |= was_stale;
    }
    // Merged in time order (each list is), then clinician, as /v1 orders them.
    visits.sort_by_cached_key(|(at, name, _)| (*at, name.clone()));
    let total = visits.len();
    let shown: Vec<serde_json::Value> = visits
        .into_iter()
        .take(q.count as usize)
        .map(|(_, _, v)| v)
        .collect();
    let mut bundle = resources::searchset(shown, stale);
    bundle["total"] = serde_json::json!(total);
    Ok(HttpResponse::Ok().content_type(FHIR_JSON).json(bundle))
}

/// At most this many matches are counted (and so `Bundle.total` says at most this).
const MATCHES: usize = 1000;

/// What cuts an answer beyond its query: exact instants, and local dates at each location.
struct Cut {
    from: Option<Timestamp>,
    until: Option<Timestamp>,
    dates: Option<(jiff::civil::Date, jiff::civil::Date)>,
}

impl Cut {
    fn keeps(&self, o: &OwnedOffer) -> bool {
        let local = || {
            o.start
                .to_zoned_datetime(o.place.info.timezone.clone())
                .date()
        };
        self.from.is_none_or(|f| o.start >= f)
            && self.until.is_none_or(|u| o.end <= u)
            && self.dates.is_none_or(|(a, b)| (a..=b).contains(&local()))
    }
}

/// The proposed Appointments one query finds, each with its start and clinician for merging;
/// rendered once per question and kept in the answer cache like `/v1`'s.
async fn matches(
    state: &AppState,
    query: &Query,
    staff: bool,
    cut: &Cut,
    patient: Option<&PatientId>,
) -> Result<(Vec<(Timestamp, String, serde_json::Value)>, bool), ApiError> {
    let surface = format!(
        "fhir|{:?}|{:?}|{:?}|{:?}",
        cut.from,
        cut.until,
        cut.dates,
        patient.map(|p| p.as_str())
    );
    let rendered = browse::answer(state, query, staff, &surface, |answer: &Answer| {
        let visits: Vec<serde_json::Value> = answer
            .offers
            .iter()
            .filter(|o| cut.keeps(o))
            .map(|o| {
                let tz = &o.place.info.timezone;
                serde_json::json!([
                    o.start.as_second(),
                    o.practitioner_name,
                    resources::appointment(&Visit {
                        id: None,
                        status: Status::Proposed,
                        start: crate::api::availability::rfc3339(o.start, tz),
                        end: crate::api::availability::rfc3339(o.end, tz),
                        minutes: Some(query.duration_minutes),
                        reason: Some(&query.reason),
                        reason_code: None,
                        modality: Some(o.modality),
                        practitioner: Some((
                            o.practitioner.to_string(),
                            o.practitioner_name.clone()
                        )),
                        location: Some((o.place.info.id.clone(), o.place.name.clone())),
                        patient: patient.map(|p| p.to_string()),
                        slot_id: Some(render_slot_id(state, query, o)),
                        hold: None,
                    })
                ])
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({"stale": answer.stale, "visits": visits}))
            .map(Bytes::from)
            .map_err(|e| ApiError::internal(&e))
    })
    .await?;
    let kept: serde_json::Value =
        serde_json::from_slice(&rendered.identity()).map_err(|e| ApiError::internal(&e))?;
    let stale = kept["stale"].as_bool().unwrap_or(false);
    let visits = kept["visits"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|v| {
                    let at = Timestamp::from_second(v[0].as_i64()?).ok()?;
                    Some((at, v[1].as_str()?.to_owned(), v[2].clone()))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok((visits, stale))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_question_names_what_is_wrong_with_it() {
        let body = json!({"resourceType": "Parameters", "parameter": [
            {"name": "modality", "valueCode": "carrier-pigeon"},
            {"name": "practitioner", "valueReference": {"reference": "Practitioner/nope"}},
            {"name": "start", "valueDateTime": "2026-03-09T10:00:00-07:00"},
            {"name": "end", "valueDateTime": "2026-03-09T09:00:00-07:00"},
        ]});
        let e = read(&body).err().unwrap();
        let fields: Vec<&str> = e.errors.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["visit-type", "modality", "practitioner", "end"]);
    }

    #[test]
    fn a_well_formed_question_is_read_whole() {
        let body = json!({"resourceType": "Parameters", "parameter": [
            {"name": "visit-type", "valueCoding": {"system": "INTERNAL", "code": "INIV"}},
            {"name": "start", "valueDate": "2026-03-08"},
            {"name": "patient-state", "valueString": "CA"},
            {"name": "location-reference", "valueReference": {"reference": "Location/B3476A18-3F63-422D-87E7-B3DC0CD55060"}},
            {"name": "_count", "valueInteger": 3},
        ]});
        let q = read(&body).unwrap();
        assert_eq!(q.reason, (Some("INTERNAL".into()), "INIV".into()));
        assert_eq!(q.start, Some(Bound::Date("2026-03-08".parse().unwrap())));
        assert_eq!(
            q.location.as_deref(),
            Some("b3476a18-3f63-422d-87e7-b3dc0cd55060")
        );
        assert_eq!(
            q.patient_state.map(|s| s.to_string()).as_deref(),
            Some("CA")
        );
        assert_eq!(q.count, 3);
    }
}
