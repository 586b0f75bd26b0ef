//! Google Calendar API v3 as a service account: the access token (a signed JWT assertion
//! exchanged for a bearer token), URLs under the configured base, and how its answers are
//! read, rate limits included (canvas-fhir.md §10).

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use url::Url;

use super::TokenCache;
use crate::config::sync::GoogleKey;
use crate::sync::sinks::{Outcome, classify, retry, retry_after};

const SCOPE: &str = "https://www.googleapis.com/auth/calendar";

/// Calendar API v3 as one service account: its token, its URLs and how it answers.
/// Shared by the outbound sink and the inbound calendars that reuse its key.
pub struct GoogleApi {
    key: GoogleKey,
    base: Url,
    pub http: reqwest::Client,
    token: TokenCache,
}

impl GoogleApi {
    pub fn new(key: GoogleKey, base: Url) -> Self {
        Self {
            key,
            base,
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
