//! `google` sinks: Google Calendar API v3 on each clinician's calendar, as a service account
//! (canvas-fhir.md §10). Events are found again by the private extended property
//! `slotgate_appointment_id` and marked `slotgate = "1"` so inbound sync can ignore them.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use serde_json::{Value, json};
use url::Url;

use super::{Outcome, Sink, retry};
use crate::config::sync::{GoogleKey, PhiLevel};
use crate::store::sync::{Job, SinkRecord};
use crate::sync::mapping::CalendarEvent;
use crate::sync::providers::google::GoogleApi;
use crate::types::PractitionerId;

pub struct GoogleSink {
    name: String,
    phi: PhiLevel,
    calendars: BTreeMap<PractitionerId, String>,
    api: GoogleApi,
}

impl GoogleSink {
    pub fn new(
        name: String,
        phi: PhiLevel,
        key: GoogleKey,
        calendars: BTreeMap<PractitionerId, String>,
        base: Url,
    ) -> Self {
        Self {
            name,
            phi,
            calendars,
            api: GoogleApi::new(key, base),
        }
    }
}

impl GoogleSink {
    async fn find(
        &self,
        token: &str,
        calendar: &str,
        appointment: &str,
    ) -> Result<Option<String>, Outcome> {
        let mut url = self.api.events_url(calendar, None);
        url.query_pairs_mut()
            .append_pair(
                "privateExtendedProperty",
                &format!("slotgate_appointment_id={appointment}"),
            )
            .append_pair("showDeleted", "false");
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
        Ok(v["items"]
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
        let calendar = job
            .practitioner
            .parse()
            .ok()
            .and_then(|p: PractitionerId| self.calendars.get(&p).cloned());
        let Some(calendar) = calendar else {
            return Ok(None);
        };
        let token = self.api.access_token().await?;
        let known = match record.and_then(|r| r.external_id.clone()) {
            Some(id) => Some(id),
            None => self.find(&token, &calendar, &job.appointment_id).await?,
        };
        let Some(event) = event else {
            if let Some(id) = known {
                let r = self
                    .api
                    .http
                    .delete(self.api.events_url(&calendar, Some(&id)))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .map_err(|_| retry("unreachable"))?;
                // Already gone is what we wanted.
                if !matches!(r.status().as_u16(), 404 | 410) {
                    self.api.check(r).await?;
                }
            }
            return Ok(None);
        };
        let body = body(job, event);
        if let Some(id) = known {
            let r = self
                .api
                .http
                .patch(self.api.events_url(&calendar, Some(&id)))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .map_err(|_| retry("unreachable"))?;
            // Deleted by hand in the calendar: insert it again.
            if !matches!(r.status().as_u16(), 404 | 410) {
                self.api.check(r).await?;
                return Ok(Some(id));
            }
        }
        let r = self
            .api
            .http
            .post(self.api.events_url(&calendar, None))
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
            .map_err(|_| retry("unreadable insert answer"))?;
        Ok(created["id"].as_str().map(str::to_owned))
    }
}

/// The Calendar v3 event for an appointment.
pub fn body(job: &Job, e: &CalendarEvent) -> Value {
    let mut body = json!({
        "summary": e.title,
        "start": {"dateTime": e.start, "timeZone": e.timezone},
        "end": {"dateTime": e.end, "timeZone": e.timezone},
        "status": "confirmed",
        "extendedProperties": {"private": {"slotgate_appointment_id": job.appointment_id, "slotgate": "1"}},
    });
    if let Some(d) = &e.description {
        body["description"] = json!(d);
    }
    if let Some(l) = &e.location {
        body["location"] = json!(l.name);
    }
    body
}

impl Sink for GoogleSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "google"
    }

    fn phi(&self) -> PhiLevel {
        self.phi
    }

    fn covers(&self, practitioner: &str) -> bool {
        practitioner
            .parse()
            .is_ok_and(|p: PractitionerId| self.calendars.contains_key(&p))
    }

    fn calendar_of(&self, practitioner: &str) -> Option<&str> {
        practitioner
            .parse()
            .ok()
            .and_then(|p: PractitionerId| self.calendars.get(&p))
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
