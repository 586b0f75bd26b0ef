//! Google Calendar, read side: watch channels and incremental sync (canvas-fhir.md §10,
//! developers.google.com/calendar/api/guides/push and /guides/sync).

use jiff::Timestamp;
use serde_json::{Value, json};

use super::{Failure, Opened};
use crate::sync::providers::google::GoogleApi;
use crate::sync::sinks::Outcome;

/// What a listing brought: the events, and the token for the next incremental one.
pub struct Listing {
    pub items: Vec<Value>,
    pub next_sync_token: Option<String>,
}

/// Opens a channel that posts to `address` when the calendar's events change.
pub async fn watch(
    api: &GoogleApi,
    calendar: &str,
    id: &str,
    token: &str,
    address: &str,
    ttl_seconds: u64,
) -> Result<Opened, Failure> {
    let access = api.access_token().await.map_err(Failure::from)?;
    let mut url = api.events_url(calendar, None);
    url.path_segments_mut()
        .map_err(|()| Failure::Broken("unusable base URL".into()))?
        .push("watch");
    let body = json!({"id": id, "type": "web_hook", "address": address, "token": token,
                      "params": {"ttl": ttl_seconds.to_string()}});
    let r = api
        .http
        .post(url)
        .bearer_auth(access)
        .json(&body)
        .send()
        .await
        .map_err(|_| Failure::unreachable())?;
    let v: Value = read(api, r).await?;
    let expires_at = v["expiration"]
        .as_str()
        .and_then(|ms| ms.parse::<i64>().ok())
        .or_else(|| v["expiration"].as_i64())
        .and_then(|ms| Timestamp::from_millisecond(ms).ok())
        .ok_or_else(|| Failure::Broken("watch answer without an expiration".into()))?;
    Ok(Opened {
        resource: v["resourceId"].as_str().map(str::to_owned),
        expires_at,
    })
}

/// Stops a channel; one Google no longer knows is stopped already.
pub async fn stop(api: &GoogleApi, id: &str, resource: Option<&str>) -> Result<(), Failure> {
    let access = api.access_token().await.map_err(Failure::from)?;
    let r = api
        .http
        .post(api.url(&["channels", "stop"]))
        .bearer_auth(access)
        .json(&json!({"id": id, "resourceId": resource}))
        .send()
        .await
        .map_err(|_| Failure::unreachable())?;
    if r.status().as_u16() == 404 {
        return Ok(());
    }
    api.check(r).await.map(drop).map_err(Failure::from)
}

/// Lists the calendar's events: everything in `[from, to)` without a token (a full sync),
/// or what changed since `sync_token`. `Err(Failure::Gone)` when Google no longer honours
/// the token (a full sync is due).
pub async fn list(
    api: &GoogleApi,
    calendar: &str,
    sync_token: Option<&str>,
    (from, to): (Timestamp, Timestamp),
) -> Result<Listing, Failure> {
    let access = api.access_token().await.map_err(Failure::from)?;
    let mut items = Vec::new();
    let mut page: Option<String> = None;
    loop {
        let mut url = api.events_url(calendar, None);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("singleEvents", "true");
            match sync_token {
                // syncToken cannot be combined with timeMin/timeMax (§10).
                Some(token) => {
                    q.append_pair("syncToken", token);
                    q.append_pair("showDeleted", "true");
                }
                None => {
                    q.append_pair("timeMin", &from.to_string());
                    q.append_pair("timeMax", &to.to_string());
                }
            }
            q.append_pair("maxResults", "250");
            if let Some(p) = &page {
                q.append_pair("pageToken", p);
            }
        }
        let r = api
            .http
            .get(url)
            .bearer_auth(&access)
            .send()
            .await
            .map_err(|_| Failure::unreachable())?;
        if r.status().as_u16() == 410 {
            return Err(Failure::Gone);
        }
        let v: Value = read(api, r).await?;
        items.extend(v["items"].as_array().cloned().unwrap_or_default());
        match v["nextPageToken"].as_str() {
            Some(next) => page = Some(next.to_owned()),
            None => {
                return Ok(Listing {
                    items,
                    next_sync_token: v["nextSyncToken"].as_str().map(str::to_owned),
                });
            }
        }
    }
}

async fn read(api: &GoogleApi, r: reqwest::Response) -> Result<Value, Failure> {
    let status = r.status().as_u16();
    let r = api.check(r).await.map_err(|o| match status {
        404 => Failure::Broken("calendar not found (HTTP 404)".into()),
        _ => Failure::from(o),
    })?;
    r.json().await.map_err(|_| {
        Failure::from(Outcome::Retry {
            reason: "unreadable answer".into(),
            after: None,
        })
    })
}
