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
    api: GraphApi,
}

/// Microsoft Graph as one app registration (client credentials): its token, its URLs and how
/// it answers. Shared by the outbound sink and the inbound calendars that reuse it.
pub struct GraphApi {
    pub settings: GraphSettings,
    pub http: reqwest::Client,
    token: TokenCache,
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

impl GraphApi {
    pub fn new(settings: GraphSettings) -> Self {
        Self {
            settings,
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

    pub fn events_url(&self, user: &str, event: Option<&str>) -> Url {
        let mut path = vec!["users", user, "events"];
        path.extend(event);
        self.url(&path)
    }

    /// `base_url` + the given path segments (each percent-encoded as needed).
    pub fn url(&self, path: &[&str]) -> Url {
        let mut url = self.settings.base_url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(path);
        }
        url
    }

    /// The answer if it is a success; else what to do about it.
    pub async fn check(&self, r: reqwest::Response) -> Result<reqwest::Response, Outcome> {
        if r.status().as_u16() == 401 {
            self.token.forget().await;
            return Err(retry("token refused"));
        }
        match classify(r.status(), retry_after(&r)) {
            Some(outcome) => Err(outcome),
            None => Ok(r),
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

fn retry(reason: &str) -> Outcome {
    Outcome::Retry {
        reason: reason.to_owned(),
        after: None,
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
mod tests {
    use std::collections::BTreeMap;

    use wiremock::matchers::{body_string_contains, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::config::Secret;
    use crate::sync::mapping::Named;

    const DR: &str = "4150cd20de8a470aa570a852859ac87e";
    const APPT: &str = "9a1f3c2e-4b5d-4e6f-8a7b-0c1d2e3f4a5b";
    const EVENTS: &str = "/v1.0/users/dr@clinic.example/events";

    async fn graph() -> (MockServer, GraphSink) {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/tenant/oauth2/v2.0/token"))
            .and(body_string_contains("grant_type=client_credentials"))
            .and(body_string_contains(
                "scope=https%3A%2F%2Fgraph.microsoft.com%2F.default",
            ))
            .and(body_string_contains("client_secret=graph-secret"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"access_token": "eyJ0.g", "expires_in": 3599})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let settings = GraphSettings {
            client_id: "app".into(),
            client_secret: Secret::new("graph-secret"),
            token_url: format!("{}/tenant/oauth2/v2.0/token", server.uri())
                .parse()
                .unwrap(),
            base_url: format!("{}/v1.0", server.uri()).parse().unwrap(),
            calendars: BTreeMap::from([(DR.parse().unwrap(), "dr@clinic.example".to_owned())]),
        };
        (
            server,
            GraphSink::new("outlook".into(), PhiLevel::Neutral, settings),
        )
    }

    fn job() -> Job {
        Job {
            id: "j1".into(),
            sink: "outlook".into(),
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

    #[test]
    fn times_keep_their_zone_unless_the_wall_clock_repeats() {
        let cases = [
            // Spring forward: 03:30 exists once (02:xx does not exist at all).
            (
                "2026-03-08T03:30:00-07:00",
                "America/Los_Angeles",
                "2026-03-08T03:30:00",
                "America/Los_Angeles",
            ),
            (
                "2026-03-08T01:30:00-05:00",
                "America/New_York",
                "2026-03-08T01:30:00",
                "America/New_York",
            ),
            (
                "2026-03-08T03:00:00-04:00",
                "America/New_York",
                "2026-03-08T03:00:00",
                "America/New_York",
            ),
            // Fall back: 01:30 happens twice; both go in UTC.
            (
                "2026-11-01T01:30:00-07:00",
                "America/Los_Angeles",
                "2026-11-01T08:30:00",
                "UTC",
            ),
            (
                "2026-11-01T01:30:00-08:00",
                "America/Los_Angeles",
                "2026-11-01T09:30:00",
                "UTC",
            ),
            (
                "2026-11-01T01:00:00-04:00",
                "America/New_York",
                "2026-11-01T05:00:00",
                "UTC",
            ),
            (
                "2026-11-01T02:00:00-05:00",
                "America/New_York",
                "2026-11-01T02:00:00",
                "America/New_York",
            ),
            // A month end, nothing special.
            (
                "2026-01-31T23:45:00-05:00",
                "America/New_York",
                "2026-01-31T23:45:00",
                "America/New_York",
            ),
        ];
        for (at, zone, wall, shown) in cases {
            assert_eq!(
                graph_time(at, zone),
                json!({"dateTime": wall, "timeZone": shown}),
                "{at} in {zone}"
            );
        }
    }

    fn event() -> CalendarEvent {
        CalendarEvent {
            appointment_id: APPT.into(),
            status: "booked".into(),
            title: "Follow-up visit".into(),
            start: "2026-11-01T01:30:00-04:00".into(),
            end: "2026-11-01T01:30:00-05:00".into(),
            timezone: "America/New_York".into(),
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

    #[tokio::test]
    async fn found_by_its_extended_property_then_patched_in_local_time() {
        let (server, sink) = graph().await;
        Mock::given(method("GET"))
            .and(path(EVENTS))
            .and(query_param(
                "$filter",
                format!("singleValueExtendedProperties/Any(ep: ep/id eq '{APPOINTMENT_PROPERTY}' and ep/value eq '{APPT}')"),
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": [{"id": "AAMk1"}]})))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("PATCH"))
            .and(path(format!("{EVENTS}/AAMk1")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
            .expect(1)
            .mount(&server)
            .await;
        let out = sink.deliver(&job(), None, Some(&event())).await;
        assert_eq!(
            out,
            Outcome::Delivered {
                external_id: Some("AAMk1".into())
            }
        );
        let patch = server
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.method.as_str() == "PATCH")
            .unwrap();
        assert_eq!(patch.headers.get("authorization").unwrap(), "Bearer eyJ0.g");
        let body: Value = serde_json::from_slice(&patch.body).unwrap();
        // The fall-back hour: 01:30 EDT to 01:30 EST, the same wall-clock time twice. In the
        // zone it would be a zero-length event; in UTC it is the hour it is.
        assert_eq!(
            (&body["start"], &body["end"]),
            (
                &json!({"dateTime": "2026-11-01T05:30:00", "timeZone": "UTC"}),
                &json!({"dateTime": "2026-11-01T06:30:00", "timeZone": "UTC"})
            )
        );
        assert_eq!(
            body["singleValueExtendedProperties"],
            json!([{"id": APPOINTMENT_PROPERTY, "value": APPT}, {"id": MARK_PROPERTY, "value": "1"}])
        );
    }

    #[tokio::test]
    async fn deleting_a_missing_event_is_done_and_throttling_waits() {
        let (server, sink) = graph().await;
        Mock::given(method("DELETE"))
            .and(path(format!("{EVENTS}/gone")))
            .respond_with(ResponseTemplate::new(404))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("PATCH"))
            .and(path(format!("{EVENTS}/busy")))
            .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "3"))
            .mount(&server)
            .await;
        let record = |id: &str| SinkRecord {
            delivered: None,
            external_id: Some(id.into()),
        };
        assert_eq!(
            sink.deliver(&job(), Some(&record("gone")), None).await,
            Outcome::Delivered { external_id: None }
        );
        assert_eq!(
            sink.deliver(&job(), Some(&record("busy")), Some(&event()))
                .await,
            Outcome::Retry {
                reason: "HTTP 429".into(),
                after: Some(std::time::Duration::from_secs(3))
            }
        );
    }
}
