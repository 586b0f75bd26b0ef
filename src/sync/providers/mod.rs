//! The calendar providers both directions of sync talk to: Google Calendar API v3 and
//! Microsoft Graph, each as one account with its token, its URLs and how it answers. The
//! outbound sinks (`sinks/`) write appointments through them; inbound sync (`inbound/`)
//! watches and reads clinicians' calendars through them.

pub mod google;
pub mod graph;

use std::time::{Duration, Instant};

use tokio::sync::Mutex;

/// An OAuth access token kept until shortly before it expires, fetched by one caller at a time.
#[derive(Default)]
pub struct TokenCache {
    current: Mutex<Option<(String, Instant)>>,
}

impl TokenCache {
    pub async fn get<F>(&self, fetch: F) -> Result<String, String>
    where
        F: std::future::Future<Output = Result<(String, u64), String>>,
    {
        let mut current = self.current.lock().await;
        if let Some((token, until)) = current.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let (token, expires_in) = fetch.await?;
        let lifetime = Duration::from_secs(expires_in.clamp(60, 24 * 3600));
        *current = Some((
            token.clone(),
            Instant::now() + lifetime - Duration::from_secs(30),
        ));
        Ok(token)
    }

    pub async fn forget(&self) {
        *self.current.lock().await = None;
    }
}
