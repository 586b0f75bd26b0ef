//! Microsoft Graph as one app registration (client credentials): the access token, URLs
//! under the configured base, how its answers are read, and the extended property that marks
//! the events slotgate wrote (canvas-fhir.md §10).

use serde_json::Value;
use url::Url;

use super::TokenCache;
use crate::config::sync::GraphSettings;
use crate::sync::sinks::{Outcome, classify, retry, retry_after};

/// A MAPI named property in the PS_PUBLIC_STRINGS set: set on every event slotgate writes, so
/// that inbound sync can tell them from clinicians' own meetings.
pub const MARK_PROPERTY: &str = "String {00020329-0000-0000-C000-000000000046} Name slotgate";

/// Microsoft Graph as one app registration (client credentials): its token, its URLs and how
/// it answers. Shared by the outbound sink and the inbound calendars that reuse it.
pub struct GraphApi {
    pub settings: GraphSettings,
    pub http: reqwest::Client,
    token: TokenCache,
}

impl GraphApi {
    pub fn new(settings: GraphSettings) -> Self {
        Self {
            settings,
            http: crate::sync::sinks::http(),
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
