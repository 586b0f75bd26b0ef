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
    calendars: BTreeMap<PractitionerId, String>,
    api: GoogleApi,
}

/// Calendar API v3 as one service account: its token, its URLs and how it answers.
/// Shared by the outbound sink and the inbound calendars that reuse its key.
pub struct GoogleApi {
    key: GoogleKey,
    base: Url,
    pub http: reqwest::Client,
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
            calendars,
            api: GoogleApi::new(key, base),
        }
    }
}

impl GoogleApi {
    pub fn new(key: GoogleKey, base: Url) -> Self {
        Self {
            key,
            base,
            http: super::http(),
            token: TokenCache::default(),
        }
    }

    /// A cached access token, fetched again shortly before it expires.
    pub async fn access_token(&self) -> Result<String, Outcome> {
        self.token
            .get(self.fetch_token())
            .await
            .map_err(|e| retry(&e))
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

    pub fn events_url(&self, calendar: &str, event: Option<&str>) -> Url {
        let mut path = vec!["calendars", calendar, "events"];
        path.extend(event);
        self.url(&path)
    }

    /// `base` + the given path segments (each percent-encoded as needed).
    pub fn url(&self, path: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(path);
        }
        url
    }

    /// The answer if it is a success; else what to do about it.
    pub async fn check(&self, r: reqwest::Response) -> Result<reqwest::Response, Outcome> {
        let after = retry_after(&r);
        match r.status().as_u16() {
            401 => {
                self.token.forget().await;
                Err(retry("token refused"))
            }
            // Google answers rate limits with 403 as well as 429 (usageLimits domain); any other
            // 403 (a calendar not shared with the service account) will not heal by waiting.
            403 => {
                let body: Value = r.json().await.unwrap_or_default();
                if rate_limited(&body) {
                    Err(Outcome::Retry {
                        reason: "HTTP 403 rate limited".into(),
                        after,
                    })
                } else {
                    Err(Outcome::Failed("HTTP 403".into()))
                }
            }
            _ => match classify(r.status(), after) {
                Some(outcome) => Err(outcome),
                None => Ok(r),
            },
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

/// Whether a Calendar API error body is one of its rate-limit errors.
fn rate_limited(body: &Value) -> bool {
    body["error"]["errors"].as_array().is_some_and(|errors| {
        errors.iter().any(|e| {
            e["domain"] == "usageLimits"
                || matches!(
                    e["reason"].as_str(),
                    Some("rateLimitExceeded" | "userRateLimitExceeded" | "quotaExceeded")
                )
        })
    })
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
mod tests {
    use std::time::Duration;

    use wiremock::matchers::{body_string_contains, method, path, query_param};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};

    use super::*;
    use crate::config::Secret;
    use crate::sync::mapping::Named;

    const DR: &str = "4150cd20de8a470aa570a852859ac87e";
    const APPT: &str = "9a1f3c2e-4b5d-4e6f-8a7b-0c1d2e3f4a5b";
    const EVENTS: &str = "/calendar/v3/calendars/dr@clinic.example/events";

    async fn google() -> (MockServer, GoogleSink) {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(body_string_contains(
                "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer",
            ))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"access_token": "ya29.t", "expires_in": 3599})),
            )
            .expect(1) // cached across deliveries
            .mount(&server)
            .await;
        let fixture: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/google-service-account.json"
        ))
        .unwrap();
        let key = GoogleKey {
            client_email: fixture["client_email"].as_str().unwrap().to_owned(),
            private_key: Secret::new(fixture["private_key"].as_str().unwrap()),
            token_uri: format!("{}/token", server.uri()).parse().unwrap(),
        };
        let calendars = BTreeMap::from([(DR.parse().unwrap(), "dr@clinic.example".to_owned())]);
        let base = format!("{}/calendar/v3", server.uri()).parse().unwrap();
        let sink = GoogleSink::new("gcal".into(), PhiLevel::Busy, key, calendars, base);
        (server, sink)
    }

    fn job() -> Job {
        Job {
            id: "j1".into(),
            sink: "gcal".into(),
            appointment_id: APPT.into(),
            practitioner: DR.into(),
            desired: None,
            desired_hash: Some("h".into()),
            message_id: "msg_1".into(),
            farewell: None,
            must_send: false,
            attempts: 0,
            not_before: jiff::Timestamp::UNIX_EPOCH,
            last_error: None,
            created_at: jiff::Timestamp::UNIX_EPOCH,
            lane: crate::store::sync::Lane::Fast,
        }
    }

    fn event() -> CalendarEvent {
        CalendarEvent {
            appointment_id: APPT.into(),
            status: "booked".into(),
            title: "Busy".into(),
            start: "2026-03-08T09:00:00-07:00".into(),
            end: "2026-03-08T09:30:00-07:00".into(),
            timezone: "America/Los_Angeles".into(),
            practitioner: Named {
                id: DR.into(),
                name: "Dr".into(),
            },
            location: None,
            modality: None,
            description: None,
            meeting_link: None,
            patient_name: None,
            reason: None,
        }
    }

    fn record(id: &str) -> SinkRecord {
        SinkRecord {
            delivered: Some("old".into()),
            external_id: Some(id.into()),
        }
    }

    async fn lookup_finds(server: &MockServer, items: Value) {
        Mock::given(method("GET"))
            .and(path(EVENTS))
            .and(query_param(
                "privateExtendedProperty",
                format!("slotgate_appointment_id={APPT}"),
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"items": items})))
            .expect(1)
            .mount(server)
            .await;
    }

    #[tokio::test]
    async fn without_a_record_the_event_is_found_by_its_private_property_and_patched() {
        let (server, sink) = google().await;
        lookup_finds(&server, json!([{"id": "evt42"}])).await;
        Mock::given(method("PATCH"))
            .and(path(format!("{EVENTS}/evt42")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "evt42"})))
            .expect(2)
            .mount(&server)
            .await;
        let out = sink.deliver(&job(), None, Some(&event())).await;
        assert_eq!(
            out,
            Outcome::Delivered {
                external_id: Some("evt42".into())
            }
        );
        // Again, with what it now knows: no second lookup, no second token.
        let out = sink
            .deliver(&job(), Some(&record("evt42")), Some(&event()))
            .await;
        assert!(matches!(out, Outcome::Delivered { .. }));
        let patches: Vec<Request> = server
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.method.as_str() == "PATCH")
            .collect();
        assert_eq!(patches.len(), 2);
        assert_eq!(
            patches[0].headers.get("authorization").unwrap(),
            "Bearer ya29.t"
        );
        let body: Value = serde_json::from_slice(&patches[0].body).unwrap();
        assert_eq!(
            body["extendedProperties"]["private"],
            json!({"slotgate_appointment_id": APPT, "slotgate": "1"})
        );
        assert_eq!(body["start"]["timeZone"], "America/Los_Angeles");
    }

    #[tokio::test]
    async fn an_event_deleted_by_hand_is_inserted_again() {
        let (server, sink) = google().await;
        Mock::given(method("PATCH"))
            .and(path(format!("{EVENTS}/gone1")))
            .respond_with(ResponseTemplate::new(404))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path(EVENTS))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "evt7"})))
            .expect(1)
            .mount(&server)
            .await;
        let out = sink
            .deliver(&job(), Some(&record("gone1")), Some(&event()))
            .await;
        assert_eq!(
            out,
            Outcome::Delivered {
                external_id: Some("evt7".into())
            }
        );
    }

    #[tokio::test]
    async fn removing_what_is_already_gone_is_done() {
        let (server, sink) = google().await;
        for (id, status) in [("e404", 404), ("e410", 410)] {
            Mock::given(method("DELETE"))
                .and(path(format!("{EVENTS}/{id}")))
                .respond_with(ResponseTemplate::new(status))
                .expect(1)
                .mount(&server)
                .await;
            let out = sink.deliver(&job(), Some(&record(id)), None).await;
            assert_eq!(out, Outcome::Delivered { external_id: None }, "{status}");
        }
        // Nothing known, nothing found: nothing to delete.
        lookup_finds(&server, json!([])).await;
        let out = sink.deliver(&job(), None, None).await;
        assert_eq!(out, Outcome::Delivered { external_id: None });
    }

    #[tokio::test]
    async fn rate_limits_back_off_and_a_forbidden_calendar_gives_up() {
        let (server, sink) = google().await;
        let answers = [
            (
                "limited",
                ResponseTemplate::new(403).set_body_json(json!({"error": {"code": 403, "errors": [{"domain": "usageLimits", "reason": "userRateLimitExceeded"}]}})),
            ),
            (
                "tooMany",
                ResponseTemplate::new(429).insert_header("retry-after", "7"),
            ),
            (
                "notShared",
                ResponseTemplate::new(403).set_body_json(json!({"error": {"code": 403, "errors": [{"domain": "calendar", "reason": "forbiddenForServiceAccounts"}]}})),
            ),
        ];
        let mut outcomes = Vec::new();
        for (id, answer) in answers {
            Mock::given(method("PATCH"))
                .and(path(format!("{EVENTS}/{id}")))
                .respond_with(answer)
                .mount(&server)
                .await;
            outcomes.push(
                sink.deliver(&job(), Some(&record(id)), Some(&event()))
                    .await,
            );
        }
        assert!(matches!(&outcomes[0], Outcome::Retry { .. }));
        assert_eq!(
            outcomes[1],
            Outcome::Retry {
                reason: "HTTP 429".into(),
                after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(outcomes[2], Outcome::Failed("HTTP 403".into()));
    }
}
