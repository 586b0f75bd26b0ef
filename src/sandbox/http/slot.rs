//! `GET /Slot` (§3): free slots of one Schedule, computed from clinic hours minus
//! appointments and admin blocks, stamped in the location's own offset.
//!
//! A well-formed schedule id that names no Schedule answers an empty bundle: Canvas computes
//! Slots from calendars, and a pair without calendars simply has none. A missing or malformed
//! id is a 400.

use actix_web::web::Data;
use actix_web::{HttpRequest, HttpResponse};
use jiff::ToSpan;
use jiff::civil::Date;

use super::outcome::FhirError;
use super::paging::searchset;
use crate::canvas::fhir::{Instant, Reference, Slot};
use crate::sandbox::params::{Params, parse_date};
use crate::sandbox::slots::{SlotRequest, free_slots};
use crate::sandbox::state::{Shared, today_utc};
use crate::types::ScheduleId;

const DEFAULT_DURATION: i64 = 20;
/// Beyond a year a query is a client bug, not a schedule.
const MAX_RANGE_DAYS: i32 = 366;
const MAX_DURATION: i64 = 24 * 60;

/// Slot's documented parameters (§3).
const PARAMETERS: [&str; 4] = ["schedule", "start", "end", "duration"];

struct Query {
    schedule: ScheduleId,
    first: Date,
    last: Date,
    duration: i64,
}

fn date_param(params: &Params, name: &str) -> Result<Option<Date>, FhirError> {
    params
        .first(name)
        .map(|v| {
            parse_date(v)
                .ok_or_else(|| FhirError::bad_request(format!("{name}: '{v}' is not YYYY-MM-DD")))
        })
        .transpose()
}

impl Query {
    fn parse(params: &Params, today: Date) -> Result<Query, FhirError> {
        params
            .reject_unknown("Slot", &PARAMETERS)
            .map_err(FhirError::bad_request)?;
        let raw = params
            .first("schedule")
            .ok_or_else(|| FhirError::bad_request("schedule: parameter required"))?;
        let schedule: ScheduleId = raw
            .strip_prefix("Schedule/")
            .unwrap_or(raw)
            .parse()
            .map_err(|e: crate::types::ParseError| {
                FhirError::bad_request(format!("schedule: {e}"))
            })?;
        let first = date_param(params, "start")?.unwrap_or(today);
        let last = match date_param(params, "end")? {
            Some(end) => end,
            None => first.saturating_add(7.days()),
        };
        if first
            .until(last)
            .map_or(true, |s| s.get_days() > MAX_RANGE_DAYS)
        {
            return Err(FhirError::bad_request(format!(
                "start..end: at most {MAX_RANGE_DAYS} days"
            )));
        }
        let duration = match params.first("duration") {
            None => DEFAULT_DURATION,
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|d| (1..=MAX_DURATION).contains(d))
                .ok_or_else(|| {
                    FhirError::bad_request(format!("duration: '{v}' is not a number of minutes"))
                })?,
        };
        Ok(Query {
            schedule,
            first,
            last,
            duration,
        })
    }
}

fn compute(shared: &Shared, query: &Query) -> Vec<Slot> {
    let clinic = &shared.clinic;
    let id = &query.schedule;
    let location = id
        .location_key
        .parse()
        .ok()
        .and_then(|key| clinic.location_by_key(key));
    let clinician = clinic
        .clinician(id.practitioner.as_str())
        .filter(|c| c.is_bookable());
    let (Some(location), Some(clinician)) = (location, clinician) else {
        return Vec::new();
    };
    let Some(hours) = clinician.hours_at(location.key) else {
        return Vec::new();
    };
    // Appointments at any location take the clinician's time.
    let mut busy = shared.with_book(|book| book.busy(&clinician.id));
    busy.extend(clinic.blocked(&clinician.id, location, query.first, query.last));
    let request = SlotRequest {
        tz: &location.tz,
        first: query.first,
        last: query.last,
        duration_minutes: query.duration,
        hours,
        busy: &busy,
    };
    let stamp = |at| Instant::new(at, location.tz.to_offset(at));
    free_slots(&request)
        .into_iter()
        .map(|slot| Slot {
            resource_type: "Slot".into(),
            schedule: Reference {
                resource_type: Some("Schedule".into()),
                ..Reference::to("Schedule", &id.to_string())
            },
            status: "free".into(),
            start: stamp(slot.start),
            end: stamp(slot.end),
        })
        .collect()
}

pub async fn search(shared: Data<Shared>, req: HttpRequest) -> Result<HttpResponse, FhirError> {
    let params = Params::parse(req.query_string());
    let query = Query::parse(&params, today_utc())?;
    let slots = if query.first <= query.last {
        compute(&shared, &query)
    } else {
        Vec::new()
    };
    searchset("/Slot", &params, slots, |slot| slot)
}
