//! `graph` sinks: Microsoft Graph events on each clinician's mailbox calendar, with client
//! credentials (canvas-fhir.md §10). The appointment id lives in a single-value extended
//! property, so the event is found again; a second one marks events slotgate wrote.

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::{Outcome, Sink, retry};
use crate::config::sync::{GraphSettings, PhiLevel};
use crate::store::sync::{Job, SinkRecord};
use crate::sync::mapping::CalendarEvent;
use crate::sync::providers::graph::{GraphApi, MARK_PROPERTY};
use crate::types::PractitionerId;

/// A MAPI named property in the PS_PUBLIC_STRINGS set (like [`MARK_PROPERTY`]): the
/// appointment an event mirrors, so that it is found again.
pub const APPOINTMENT_PROPERTY: &str =
    "String {00020329-0000-0000-C000-000000000046} Name slotgate_appointment_id";

pub struct GraphSink {
    name: String,
    phi: PhiLevel,
    api: GraphApi,
}

impl GraphSink {
    pub fn new(name: String, phi: PhiLevel, settings: GraphSettings) -> Self {
        Self {
            name,
            phi,
            api: GraphApi::new(settings),
        }
    }
}

impl GraphSink {
    async fn find(
        &self,
        token: &str,
        user: &str,
        appointment: &str,
    ) -> Result<Option<String>, Outcome> {
        let mut url = self.api.events_url(user, None);
        url.query_pairs_mut()
            .append_pair("$filter", &format!("singleValueExtendedProperties/Any(ep: ep/id eq '{APPOINTMENT_PROPERTY}' and ep/value eq '{appointment}')"))
            .append_pair("$select", "id");
        let r = self
            .api
            .http
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|_| retry("lookup unreachable"))?;
        let v: Value = self
            .api
            .check(r)
            .await?
            .json()
            .await
            .map_err(|_| retry("unreadable lookup"))?;
        Ok(v["value"]
            .as_array()
            .and_then(|items| items.first())
            .and_then(|i| i["id"].as_str())
            .map(str::to_owned))
    }

    async fn write(
        &self,
        job: &Job,
        record: Option<&SinkRecord>,
        event: Option<&CalendarEvent>,
    ) -> Result<Option<String>, Outcome> {
        let user = job
            .practitioner
            .parse()
            .ok()
            .and_then(|p: PractitionerId| self.api.settings.calendars.get(&p).cloned());
        let Some(user) = user else { return Ok(None) };
        let token = self.api.access_token().await?;
        let known = match record.and_then(|r| r.external_id.clone()) {
            Some(id) => Some(id),
            None => self.find(&token, &user, &job.appointment_id).await?,
        };
        let http = &self.api.http;
        let Some(event) = event else {
            if let Some(id) = known {
                let r = http
                    .delete(self.api.events_url(&user, Some(&id)))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .map_err(|_| retry("unreachable"))?;
                // Already gone is what we wanted.
                if r.status().as_u16() != 404 {
                    self.api.check(r).await?;
                }
            }
            return Ok(None);
        };
        let body = body(job, event);
        if let Some(id) = known {
            let r = http
                .patch(self.api.events_url(&user, Some(&id)))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .map_err(|_| retry("unreachable"))?;
            // Deleted by hand in the calendar: create it again.
            if r.status().as_u16() != 404 {
                self.api.check(r).await?;
                return Ok(Some(id));
            }
        }
        let r = http
            .post(self.api.events_url(&user, None))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .map_err(|_| retry("unreachable"))?;
        let created: Value = self
            .api
            .check(r)
            .await?
            .json()
            .await
            .map_err(|_| retry("unreadable create answer"))?;
        Ok(created["id"].as_str().map(str::to_owned))
    }
}

/// Graph wants the wall-clock time and the zone apart. The location's zone when its wall
/// time names the instant unambiguously; UTC for a time in the repeated hour of a DST
/// fall-back (01:30 there happens twice, and Graph would pick one).
fn graph_time(rfc3339: &str, zone: &str) -> Value {
    let exact = || -> Option<Value> {
        let at: jiff::Timestamp = rfc3339.parse().ok()?;
        let tz = jiff::tz::TimeZone::get(zone).ok()?;
        let wall = at.to_zoned_datetime(tz.clone()).datetime();
        let once = tz
            .to_ambiguous_zoned_datetime(wall)
            .unambiguous()
            .is_ok_and(|z| z.timestamp() == at);
        Some(if once {
            json!({"dateTime": wall.strftime("%Y-%m-%dT%H:%M:%S").to_string(), "timeZone": zone})
        } else {
            let utc = at.to_zoned_datetime(jiff::tz::TimeZone::UTC).datetime();
            json!({"dateTime": utc.strftime("%Y-%m-%dT%H:%M:%S").to_string(), "timeZone": "UTC"})
        })
    };
    exact().unwrap_or_else(
        || json!({"dateTime": rfc3339.get(..19).unwrap_or(rfc3339), "timeZone": zone}),
    )
}

/// The Graph event for an appointment.
pub fn body(job: &Job, e: &CalendarEvent) -> Value {
    let mut body = json!({
        "subject": e.title,
        "start": graph_time(&e.start, &e.timezone),
        "end": graph_time(&e.end, &e.timezone),
        "singleValueExtendedProperties": [
            {"id": APPOINTMENT_PROPERTY, "value": job.appointment_id},
            {"id": MARK_PROPERTY, "value": "1"},
        ],
    });
    if let Some(d) = &e.description {
        body["body"] = json!({"contentType": "text", "content": d});
    }
    if let Some(l) = &e.location {
        body["location"] = json!({"displayName": l.name});
    }
    body
}

impl Sink for GraphSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "graph"
    }

    fn phi(&self) -> PhiLevel {
        self.phi
    }

    fn covers(&self, practitioner: &str) -> bool {
        practitioner
            .parse()
            .is_ok_and(|p: PractitionerId| self.api.settings.calendars.contains_key(&p))
    }

    fn calendar_of(&self, practitioner: &str) -> Option<&str> {
        practitioner
            .parse()
            .ok()
            .and_then(|p: PractitionerId| self.api.settings.calendars.get(&p))
            .map(String::as_str)
    }

    fn deliver<'a>(
        &'a self,
        job: &'a Job,
        record: Option<&'a SinkRecord>,
        event: Option<&'a CalendarEvent>,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            match self.write(job, record, event).await {
                Ok(external_id) => Outcome::Delivered { external_id },
                Err(outcome) => outcome,
            }
        })
    }
}

#[cfg(test)]
mod tests;
