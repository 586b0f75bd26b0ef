//! `google` sinks: Google Calendar API v3 on each clinician's calendar, as a service account
//! (canvas-fhir.md §10). Events are found again by the private extended property
//! `slotgate_appointment_id` and marked `slotgate = "1"` so inbound sync can ignore them.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use url::Url;

use super::{Outcome, Sink, TokenCache, classify, retry_after};
use crate::config::sync::{GoogleKey, PhiLevel};
use crate::store::sync::{Job, SinkRecord};
use crate::sync::mapping::CalendarEvent;
use crate::types::PractitionerId;

const SCOPE: &str = "https://www.googleapis.com/auth/calendar";

pub struct GoogleSink {
    name: String,
    phi: PhiLevel,
    key: GoogleKey,
    calendars: BTreeMap<PractitionerId, String>,
    base: Url,
    http: reqwest::Client,
    token: TokenCache,
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
            key,
            calendars,
            base,
            http: super::http(),
            token: TokenCache::default(),
        }
    }

    /// A signed JWT assertion exchanged at the key's `token_uri` (OAuth 2.0 for service accounts).
    async fn fetch_token(&self) -> Result<(String, u64), String> {
        let now = jiff::Timestamp::now().as_second();
        let claims = json!({"iss": self.key.client_email, "scope": SCOPE, "aud": self.key.token_uri.as_str(), "iat": now, "exp": now + 3600});
        let key = EncodingKey::from_rsa_pem(self.key.private_key.expose().as_bytes())
            .map_err(|_| "unusable private key".to_owned())?;
        let assertion = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key)
            .map_err(|e| e.to_string())?;
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion.as_str()),
        ];
        let r = self
            .http
            .post(self.key.token_uri.clone())
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
        let token = v["access_token"]
            .as_str()
            .ok_or("no access_token")?
            .to_owned();
        Ok((token, v["expires_in"].as_u64().unwrap_or(3600)))
    }

    fn events_url(&self, calendar: &str, event: Option<&str>) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments
                .pop_if_empty()
                .extend(["calendars", calendar, "events"]);
            if let Some(e) = event {
                segments.push(e);
            }
        }
        url
    }

    async fn find(
        &self,
        token: &str,
        calendar: &str,
        appointment: &str,
    ) -> Result<Option<String>, Outcome> {
        let mut url = self.events_url(calendar, None);
        url.query_pairs_mut()
            .append_pair(
                "privateExtendedProperty",
                &format!("slotgate_appointment_id={appointment}"),
            )
            .append_pair("showDeleted", "false");
        let r = self
            .http
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|_| retry("lookup unreachable"))?;
        if let Some(o) = classify(r.status(), retry_after(&r)) {
            return Err(o);
        }
        let v: Value = r.json().await.map_err(|_| retry("unreadable lookup"))?;
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
        let token = self
            .token
            .get(self.fetch_token())
            .await
            .map_err(|e| retry(&e))?;
        let known = match record.and_then(|r| r.external_id.clone()) {
            Some(id) => Some(id),
            None => self.find(&token, &calendar, &job.appointment_id).await?,
        };
        let Some(event) = event else {
            if let Some(id) = known {
                let r = self
                    .http
                    .delete(self.events_url(&calendar, Some(&id)))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .map_err(|_| retry("unreachable"))?;
                // Already gone is what we wanted.
                if !matches!(r.status().as_u16(), 404 | 410) {
                    self.check(&r).await?;
                }
            }
            return Ok(None);
        };
        let body = body(job, event);
        if let Some(id) = known {
            let r = self
                .http
                .patch(self.events_url(&calendar, Some(&id)))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .map_err(|_| retry("unreachable"))?;
            if !matches!(r.status().as_u16(), 404 | 410) {
                self.check(&r).await?;
                return Ok(Some(id));
            }
        }
        let r = self
            .http
            .post(self.events_url(&calendar, None))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .map_err(|_| retry("unreachable"))?;
        self.check(&r).await?;
        let created: Value = r
            .json()
            .await
            .map_err(|_| retry("unreadable insert answer"))?;
        Ok(created["id"].as_str().map(str::to_owned))
    }

    async fn check(&self, r: &reqwest::Response) -> Result<(), Outcome> {
        if r.status().as_u16() == 401 {
            self.token.forget().await;
            return Err(retry("token refused"));
        }
        // Google answers rate limits with 403 (usageLimits) as well as 429: back off.
        if r.status().as_u16() == 403 {
            return Err(Outcome::Retry {
                reason: "HTTP 403".into(),
                after: retry_after(r),
            });
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
