//! `graph` sinks: Microsoft Graph events on each clinician's mailbox calendar, with client
//! credentials (canvas-fhir.md §10). The appointment id lives in a single-value extended
//! property, so the event is found again; a second one marks events slotgate wrote.

use futures::future::BoxFuture;
use serde_json::{Value, json};
use url::Url;

use super::{Outcome, Sink, TokenCache, classify, retry_after};
use crate::config::sync::{GraphSettings, PhiLevel};
use crate::store::sync::{Job, SinkRecord};
use crate::sync::mapping::CalendarEvent;
use crate::types::PractitionerId;

/// MAPI named properties in the PS_PUBLIC_STRINGS set.
pub const APPOINTMENT_PROPERTY: &str =
    "String {00020329-0000-0000-C000-000000000046} Name slotgate_appointment_id";
pub const MARK_PROPERTY: &str = "String {00020329-0000-0000-C000-000000000046} Name slotgate";

pub struct GraphSink {
    name: String,
    phi: PhiLevel,
    settings: GraphSettings,
    http: reqwest::Client,
    token: TokenCache,
}

impl GraphSink {
    pub fn new(name: String, phi: PhiLevel, settings: GraphSettings) -> Self {
        Self {
            name,
            phi,
            settings,
            http: super::http(),
            token: TokenCache::default(),
        }
    }

    async fn fetch_token(&self) -> Result<(String, u64), String> {
        let s = &self.settings;
        let form = [
            ("client_id", s.client_id.as_str()),
            ("client_secret", s.client_secret.expose()),
            ("scope", "https://graph.microsoft.com/.default"),
            ("grant_type", "client_credentials"),
        ];
        let r = self
            .http
            .post(s.token_url.clone())
            .form(&form)
            .send()
            .await
            .map_err(|_| "token endpoint unreachable".to_owned())?;
        if !r.status().is_success() {
            return Err(format!("token endpoint answered {}", r.status().as_u16()));
        }
        let v: Value = r
            .json()
            .await
            .map_err(|_| "unreadable token answer".to_owned())?;
        Ok((
            v["access_token"]
                .as_str()
                .ok_or("no access_token")?
                .to_owned(),
            v["expires_in"].as_u64().unwrap_or(3600),
        ))
    }

    fn events_url(&self, user: &str, event: Option<&str>) -> Url {
        let mut url = self.settings.base_url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(["users", user, "events"]);
            if let Some(e) = event {
                segments.push(e);
            }
        }
        url
    }

    async fn find(
        &self,
        token: &str,
        user: &str,
        appointment: &str,
    ) -> Result<Option<String>, Outcome> {
        let mut url = self.events_url(user, None);
        url.query_pairs_mut()
            .append_pair("$filter", &format!("singleValueExtendedProperties/Any(ep: ep/id eq '{APPOINTMENT_PROPERTY}' and ep/value eq '{appointment}')"))
            .append_pair("$select", "id");
        let r = self
            .http
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|_| retry("lookup unreachable"))?;
        self.check(&r).await?;
        let v: Value = r.json().await.map_err(|_| retry("unreadable lookup"))?;
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
            .and_then(|p: PractitionerId| self.settings.calendars.get(&p).cloned());
        let Some(user) = user else { return Ok(None) };
        let token = self
            .token
            .get(self.fetch_token())
            .await
            .map_err(|e| retry(&e))?;
        let known = match record.and_then(|r| r.external_id.clone()) {
            Some(id) => Some(id),
            None => self.find(&token, &user, &job.appointment_id).await?,
        };
        let Some(event) = event else {
            if let Some(id) = known {
                let r = self
                    .http
                    .delete(self.events_url(&user, Some(&id)))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .map_err(|_| retry("unreachable"))?;
                if r.status().as_u16() != 404 {
                    self.check(&r).await?;
                }
            }
            return Ok(None);
        };
        let body = body(job, event);
        if let Some(id) = known {
            let r = self
                .http
                .patch(self.events_url(&user, Some(&id)))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .map_err(|_| retry("unreachable"))?;
            if r.status().as_u16() != 404 {
                self.check(&r).await?;
                return Ok(Some(id));
            }
        }
        let r = self
            .http
            .post(self.events_url(&user, None))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .map_err(|_| retry("unreachable"))?;
        self.check(&r).await?;
        let created: Value = r
            .json()
            .await
            .map_err(|_| retry("unreadable create answer"))?;
        Ok(created["id"].as_str().map(str::to_owned))
    }

    async fn check(&self, r: &reqwest::Response) -> Result<(), Outcome> {
        if r.status().as_u16() == 401 {
            self.token.forget().await;
            return Err(retry("token refused"));
        }
        classify(r.status(), retry_after(r)).map_or(Ok(()), Err)
    }
}

fn retry(reason: &str) -> Outcome {
    Outcome::Retry {
        reason: reason.to_owned(),
        after: None,
    }
}

/// Graph wants the wall-clock time and the zone apart.
fn local(rfc3339: &str) -> &str {
    rfc3339.get(..19).unwrap_or(rfc3339)
}

/// The Graph event for an appointment.
pub fn body(job: &Job, e: &CalendarEvent) -> Value {
    let mut body = json!({
        "subject": e.title,
        "start": {"dateTime": local(&e.start), "timeZone": e.timezone},
        "end": {"dateTime": local(&e.end), "timeZone": e.timezone},
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
            .is_ok_and(|p: PractitionerId| self.settings.calendars.contains_key(&p))
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
