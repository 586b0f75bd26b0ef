//! A publication as SMART Scheduling Links' FHIR R4 NDJSON: one minified resource per line.
//! Locations (practice locations, and a virtual one per state served by video), Schedules (a
//! clinician at a location) and Slots with their booking deep links. Nothing about patients.

use std::io::Write;

use aws_lc_rs::digest;
use serde_json::{Value, json};
use url::Url;

use super::super::availability::rfc3339;
use crate::config::smart::SmartSettings;
use crate::rules::model::Reason;
use crate::scheduling::Services;
use crate::scheduling::directory::Place;
use crate::scheduling::smart::Publication;
use crate::scheduling::smart::grid::{ScheduleSpec, Site};
use crate::types::UsState;

/// SMART Scheduling Links' Slot extension: where a patient starts booking this slot.
pub const BOOKING_DEEP_LINK: &str =
    "http://fhir-registry.smarthealthit.org/StructureDefinition/booking-deep-link";
/// The state a virtual location serves. The HL7 ballot of SMART Scheduling Links models virtual
/// locations (`physicalType` "Virtual") but defines no extension for the state a telehealth
/// location serves, so this is US Core's jurisdiction extension, made for "a practitioner's state
/// or local jurisdiction for a license", with a USPS code. US Core allows it on an Identifier
/// only, so it rides on the virtual location's identifier.
pub const JURISDICTION: &str =
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-jurisdiction";
const USPS: &str = "https://www.usps.com/";
/// The identifier system of slotgate's virtual (telehealth) locations.
const VIRTUAL_SYSTEM: &str = "urn:slotgate:virtual-location";
const PHYSICAL_TYPE: &str = "http://terminology.hl7.org/CodeSystem/location-physical-type";

/// Location, Schedule and Slot files, in that order.
pub fn render(s: &Services, smart: &SmartSettings, p: &Publication) -> [Vec<u8>; 3] {
    [
        ndjson(locations(smart, p)),
        ndjson(schedules(p)),
        ndjson(slots(s, smart, p)),
    ]
}

fn ndjson(resources: impl Iterator<Item = Value>) -> Vec<u8> {
    let mut out = Vec::new();
    for resource in resources {
        // A `Value` always serialises, and writing to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, &resource);
        let _ = out.write_all(b"\n");
    }
    out
}

/// A Location's id: Canvas's for a practice location (a UUID), `virtual-<state>` otherwise.
pub fn location_id(p: &Publication, site: Site) -> String {
    match site {
        Site::Place(i) => p
            .snapshot
            .places
            .get(i)
            .map_or_else(|| format!("place-{i}"), |place| place.info.id.clone()),
        Site::Virtual(state) => format!("virtual-{state}"),
    }
}

/// A Schedule's id within FHIR's 64 characters: the clinician's Canvas id and the site.
pub fn schedule_id(p: &Publication, schedule: &ScheduleSpec) -> String {
    match schedule.site {
        Site::Place(i) => {
            let key = p
                .snapshot
                .places
                .get(i)
                .map_or("0", |place| place.info.schedule_key.as_str());
            format!("{}-{key}", schedule.practitioner)
        }
        Site::Virtual(state) => format!("{}-virtual-{state}", schedule.practitioner),
    }
}

/// A Slot's id: slot ids are longer than FHIR allows and carry `_`, so a digest of what makes
/// the slot itself (schedule, reason, start), stable across builds and replicas.
pub fn slot_resource_id(schedule: &str, reason: &str, start: i64) -> String {
    let hash = digest::digest(
        &digest::SHA256,
        format!("{schedule}|{reason}|{start}").as_bytes(),
    );
    hash.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `booking_url` with `slot=<slot_id>` in its query (replacing any `slot` it had).
pub fn deep_link(booking_url: &Url, slot_id: &str) -> String {
    let mut url = booking_url.clone();
    if url.query_pairs().any(|(k, _)| k == "slot") {
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != "slot")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
    url.query_pairs_mut().append_pair("slot", slot_id);
    url.into()
}

fn service_type(reason: &Reason) -> Value {
    json!({
        "coding": [{"system": reason.system, "code": reason.code, "display": reason.display}],
        "text": reason.display,
    })
}

fn general_contact(smart: &SmartSettings) -> Value {
    json!([{"system": "url", "value": smart.booking_url.as_str()}])
}

fn locations<'a>(smart: &'a SmartSettings, p: &'a Publication) -> impl Iterator<Item = Value> + 'a {
    let physical = p.snapshot.places.iter().map(|place| practice(smart, place));
    let mut states: Vec<UsState> = p
        .schedules
        .iter()
        .filter_map(|s| match s.site {
            Site::Virtual(state) => Some(state),
            Site::Place(_) => None,
        })
        .collect();
    states.sort();
    states.dedup();
    physical.chain(
        states
            .into_iter()
            .map(move |state| virtual_location(smart, state)),
    )
}

fn practice(smart: &SmartSettings, place: &Place) -> Value {
    let mut identifier = vec![
        json!({"system": "urn:ietf:rfc:3986", "value": format!("urn:uuid:{}", place.info.id)}),
    ];
    identifier.extend(place.details.identifiers.iter().filter_map(|i| {
        Some(json!({"system": i.system.as_deref()?, "value": i.value.as_deref()?}))
    }));
    let state = place.info.state.as_str();
    let address = match &place.details.address {
        Some(a) => {
            // FHIR has no empty strings: a blank state in Canvas is the clinic's configured one.
            let given = a.state.as_deref().filter(|s| !s.trim().is_empty());
            let mut address = json!({"state": given.unwrap_or(state)});
            if !a.line.is_empty() {
                address["line"] = json!(a.line);
            }
            for (key, value) in [
                ("city", &a.city),
                ("postalCode", &a.postal_code),
                ("country", &a.country),
            ] {
                if let Some(v) = value {
                    address[key] = json!(v);
                }
            }
            address
        }
        None => json!({"state": state}),
    };
    json!({
        "resourceType": "Location",
        "id": place.info.id,
        "identifier": identifier,
        "status": "active",
        "name": place.name,
        "mode": "instance",
        "telecom": general_contact(smart),
        "address": address,
    })
}

/// Where a video visit "is": with the patient, anywhere in the state whose licence it needs.
fn virtual_location(smart: &SmartSettings, state: UsState) -> Value {
    let name = state.name();
    json!({
        "resourceType": "Location",
        "id": format!("virtual-{state}"),
        "identifier": [{
            "extension": [{
                "url": JURISDICTION,
                "valueCodeableConcept": {"coding": [{"system": USPS, "code": state.as_str(), "display": name}]},
            }],
            "system": VIRTUAL_SYSTEM,
            "value": format!("virtual-{state}"),
        }],
        "status": "active",
        "name": format!("Telehealth in {name}"),
        "description": format!("Video visits with clinicians licensed in {name}, for patients who are in {name} at the time of the visit."),
        // A kind of place (wherever the patient is in the state), not one address.
        "mode": "kind",
        "physicalType": {"coding": [{"system": PHYSICAL_TYPE, "code": "vi", "display": "Virtual"}]},
        "telecom": general_contact(smart),
        "address": {"state": state.as_str(), "country": "US"},
    })
}

fn schedules(p: &Publication) -> impl Iterator<Item = Value> + '_ {
    let reasons = &p.snapshot.policy.rules.reasons;
    p.schedules.iter().map(move |schedule| {
        let location = location_id(p, schedule.site);
        let location_name = match schedule.site {
            Site::Place(i) => p.snapshot.places.get(i).map(|pl| pl.name.clone()),
            Site::Virtual(state) => Some(format!("Telehealth in {}", state.name())),
        };
        let clinician = p
            .snapshot
            .clinicians
            .get(&schedule.practitioner)
            .map(|c| c.name.clone());
        json!({
            "resourceType": "Schedule",
            "id": schedule_id(p, schedule),
            "active": true,
            "serviceType": schedule
                .reasons
                .iter()
                .filter_map(|&r| reasons.get(r))
                .map(service_type)
                .collect::<Vec<_>>(),
            "actor": [
                reference(format!("Location/{location}"), location_name),
                reference(format!("Practitioner/{}", schedule.practitioner), clinician),
            ],
        })
    })
}

/// A reference, with its display only when there is one (FHIR JSON has no nulls).
fn reference(to: String, display: Option<String>) -> Value {
    let mut r = json!({"reference": to});
    if let Some(d) = display {
        r["display"] = json!(d);
    }
    r
}

fn slots<'a>(
    s: &'a Services,
    smart: &'a SmartSettings,
    p: &'a Publication,
) -> impl Iterator<Item = Value> + 'a {
    let reasons = &p.snapshot.policy.rules.reasons;
    let schedule_ids: Vec<String> = p.schedules.iter().map(|sc| schedule_id(p, sc)).collect();
    p.slots.iter().filter_map(move |slot| {
        let schedule = schedule_ids.get(slot.schedule)?;
        let reason = reasons.get(slot.reason)?;
        // Issued exactly as /v1/availability issues it: POST /v1/appointments books it.
        let slot_id = s.slot_ids.issue(&slot.claim);
        Some(json!({
            "resourceType": "Slot",
            "id": slot_resource_id(schedule, &reason.code, slot.claim.start),
            "extension": [{"url": BOOKING_DEEP_LINK, "valueUrl": deep_link(&smart.booking_url, &slot_id)}],
            "serviceType": [service_type(reason)],
            "schedule": {"reference": format!("Schedule/{schedule}")},
            "status": slot.status.as_str(),
            "start": rfc3339(slot.start, &slot.tz),
            "end": rfc3339(slot.end, &slot.tz),
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deep_link_adds_the_slot_to_any_query_encoded() {
        let base = Url::parse("https://book.example.org/start?clinic=7&lang=en").unwrap();
        assert_eq!(
            deep_link(&base, "s1.eyJwIjoi_x-y.c2ln"),
            "https://book.example.org/start?clinic=7&lang=en&slot=s1.eyJwIjoi_x-y.c2ln"
        );
        let bare = Url::parse("https://book.example.org/start").unwrap();
        assert_eq!(
            deep_link(&bare, "a b&c=d"),
            "https://book.example.org/start?slot=a+b%26c%3Dd"
        );
        // A `slot` already there is replaced, not doubled.
        let stale = Url::parse("https://book.example.org/?slot=old&x=1").unwrap();
        assert_eq!(
            deep_link(&stale, "new"),
            "https://book.example.org/?x=1&slot=new"
        );
        // A fragment stays a fragment.
        let app = Url::parse("https://book.example.org/app#/book").unwrap();
        assert_eq!(
            deep_link(&app, "s"),
            "https://book.example.org/app?slot=s#/book"
        );
    }

    #[test]
    fn slot_ids_are_short_stable_and_fhir_ids() {
        let id = slot_resource_id("c48de0f40beb4fee86f872da7a840cf9-1", "FLUP", 1_796_140_800);
        assert_eq!(
            id,
            slot_resource_id("c48de0f40beb4fee86f872da7a840cf9-1", "FLUP", 1_796_140_800)
        );
        assert_ne!(
            id,
            slot_resource_id("c48de0f40beb4fee86f872da7a840cf9-1", "INIV", 1_796_140_800)
        );
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
