//! OAuth2 client credentials against Canvas's `/auth/token/` (canvas-fhir.md §1): one token
//! shared by every call, cached until `expires_in` − 60 s, refreshed by a single request even
//! when many callers find it expired at once.

use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};
use url::Url;

use super::Error;
use crate::config::Secret;

#[derive(Clone)]
struct Cached {
    value: Secret,
    refresh_at: Instant,
}

pub(super) struct TokenSource {
    url: Url,
    client_id: String,
    client_secret: Secret,
    current: RwLock<Option<Cached>>,
    refresh: Mutex<()>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default = "default_expiry")]
    expires_in: u64,
}

/// Canvas tokens live 10 hours (§1).
fn default_expiry() -> u64 {
    36_000
}

impl TokenSource {
    pub(super) fn new(url: Url, client_id: String, client_secret: Secret) -> Self {
        Self {
            url,
            client_id,
            client_secret,
            current: RwLock::new(None),
            refresh: Mutex::new(()),
        }
    }

    /// A valid token, fetching one if none is cached or it is about to expire.
    pub(super) async fn get(&self, http: &reqwest::Client) -> Result<Secret, Error> {
        if let Some(t) = self.fresh().await {
            return Ok(t);
        }
        // One refresher; everyone else waits here and then finds the new token.
        let _gate = self.refresh.lock().await;
        if let Some(t) = self.fresh().await {
            return Ok(t);
        }
        let fetched = self.fetch(http).await?;
        let value = fetched.value.clone();
        *self.current.write().await = Some(fetched);
        Ok(value)
    }

    /// Drops the cached token after Canvas refused it, unless another caller already replaced it.
    pub(super) async fn invalidate(&self, refused: &Secret) {
        let mut current = self.current.write().await;
        if current.as_ref().is_some_and(|c| &c.value == refused) {
            *current = None;
        }
    }

    async fn fresh(&self) -> Option<Secret> {
        let current = self.current.read().await;
        current
            .as_ref()
            .filter(|c| Instant::now() < c.refresh_at)
            .map(|c| c.value.clone())
    }

    #[tracing::instrument(name = "canvas.token", skip_all, fields(otel.kind = "client", http.status_code))]
    async fn fetch(&self, http: &reqwest::Client) -> Result<Cached, Error> {
        const OP: &str = "token";
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose()),
        ];
        let response = http
            .post(self.url.clone())
            .headers(super::client::trace_headers())
            .form(&form)
            .send()
            .await
            .map_err(|e| super::client::transport_error(OP, &e, false))?;
        let status = response.status();
        tracing::Span::current().record("http.status_code", status.as_u16());
        let body = response
            .bytes()
            .await
            .map_err(|e| super::client::transport_error(OP, &e, false))?;
        if !status.is_success() {
            // Token errors are OAuth2 bodies, not OperationOutcomes; never log the body.
            return Err(match status.as_u16() {
                400 | 401 | 403 => Error::Rejected {
                    operation: OP,
                    status: status.as_u16(),
                    text: "Canvas refused slotgate's client credentials".into(),
                },
                code => Error::from_status(OP, code, &[]),
            });
        }
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|_| Error::Upstream {
            operation: OP,
            reason: "token response without access_token".into(),
        })?;
        Ok(Cached {
            value: Secret::new(parsed.access_token),
            refresh_at: Instant::now() + usable_for(parsed.expires_in),
        })
    }
}

/// How long a token of `expires_in` seconds is used: until 60 s before it expires, or half its
/// life when that is shorter (a token of 90 s is used for 45). A year at most: an absurd
/// `expires_in` must not overflow the clock.
fn usable_for(expires_in: u64) -> Duration {
    let lifetime = Duration::from_secs(expires_in.min(365 * 24 * 3600));
    lifetime - Duration::from_secs(60).min(lifetime / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_used_until_a_minute_before_it_expires() {
        let s = Duration::from_secs;
        // Canvas's tokens live ten hours.
        assert_eq!(usable_for(36_000), s(35_940));
        assert_eq!(usable_for(3_600), s(3_540));
        assert_eq!(usable_for(121), s(61));
        // Short ones: half their life, never a refresh after expiry.
        assert_eq!(usable_for(120), s(60));
        assert_eq!(usable_for(90), s(45));
        assert_eq!(usable_for(1), Duration::from_millis(500));
        assert_eq!(usable_for(0), s(0));
        assert_eq!(usable_for(u64::MAX), s(365 * 24 * 3600 - 60));
    }
}
