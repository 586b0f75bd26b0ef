//! Microsoft Graph, read side: subscriptions on a mailbox's events, the events a notification
//! names, and the calendar view of the window (canvas-fhir.md §10,
//! learn.microsoft.com/graph/change-notifications-delivery-webhooks).

use jiff::Timestamp;
use serde_json::{Value, json};

use super::{Failure, Opened};
use crate::sync::providers::graph::{GraphApi, MARK_PROPERTY};
use crate::sync::sinks::Outcome;

/// Subscribes to changes of `user`'s events, notified at `address` with `client_state`.
pub async fn subscribe(
    api: &GraphApi,
    user: &str,
    address: &str,
    client_state: &str,
    until: Timestamp,
) -> Result<Opened, Failure> {
    let access = api.access_token().await.map_err(Failure::from)?;
    let body = json!({
        "changeType": "created,updated,deleted",
        "notificationUrl": address,
        // Lifecycle events (reauthorizationRequired, subscriptionRemoved, missed) come to the
        // same receiver, with the same clientState.
        "lifecycleNotificationUrl": address,
        "resource": format!("/users/{user}/events"),
        "expirationDateTime": until.to_string(),
        "clientState": client_state,
    });
    let r = api
        .http
        .post(api.url(&["subscriptions"]))
        .bearer_auth(access)
        .json(&body)
        .send()
        .await
        .map_err(|_| Failure::unreachable())?;
    opened(api, r).await
}

/// Extends a subscription; `Err(Failure::Gone)` when Graph no longer has it.
pub async fn renew(api: &GraphApi, id: &str, until: Timestamp) -> Result<Opened, Failure> {
    let access = api.access_token().await.map_err(Failure::from)?;
    let r = api
        .http
        .patch(api.url(&["subscriptions", id]))
        .bearer_auth(access)
        .json(&json!({"expirationDateTime": until.to_string()}))
        .send()
        .await
        .map_err(|_| Failure::unreachable())?;
    if r.status().as_u16() == 404 {
        return Err(Failure::Gone);
    }
    opened(api, r).await
}

/// Deletes a subscription; one Graph no longer has is deleted already.
pub async fn unsubscribe(api: &GraphApi, id: &str) -> Result<(), Failure> {
    let access = api.access_token().await.map_err(Failure::from)?;
    let r = api
        .http
        .delete(api.url(&["subscriptions", id]))
        .bearer_auth(access)
        .send()
        .await
        .map_err(|_| Failure::unreachable())?;
    if r.status().as_u16() == 404 {
        return Ok(());
    }
    api.check(r).await.map(drop).map_err(Failure::from)
}

/// What `window` and `events` ask of each event.
const SELECT: &str = "id,subject,start,end,isAllDay,isCancelled,showAs,type";

fn expand_mark() -> String {
    format!("singleValueExtendedProperties($filter=id eq '{MARK_PROPERTY}')")
}

/// The events a notification named, read one by one, times in UTC: `None` for one Graph no
/// longer has (deleted). `Ok(None)` overall when one is a recurring series' master: its
/// occurrences are only in the calendar view, so the caller reads the window instead.
pub async fn events(
    api: &GraphApi,
    user: &str,
    ids: &std::collections::BTreeSet<String>,
) -> Result<Option<Vec<(String, Option<Value>)>>, Failure> {
    let access = api.access_token().await.map_err(Failure::from)?;
    let mut found = Vec::with_capacity(ids.len());
    for id in ids {
        let mut url = api.url(&["users", user, "events", id]);
        url.query_pairs_mut()
            .append_pair("$select", SELECT)
            .append_pair("$expand", &expand_mark());
        let r = api
            .http
            .get(url)
            .bearer_auth(&access)
            .header("Prefer", "outlook.timezone=\"UTC\"")
            .send()
            .await
            .map_err(|_| Failure::unreachable())?;
        if r.status().as_u16() == 404 {
            found.push((id.clone(), None));
            continue;
        }
        let v = read(api, r).await?;
        if v["type"] == "seriesMaster" {
            return Ok(None);
        }
        found.push((id.clone(), Some(v)));
    }
    Ok(Some(found))
}

/// Every event and occurrence of `user`'s calendar in `[from, to)`, times in UTC, with
/// slotgate's mark when it carries one.
pub async fn window(
    api: &GraphApi,
    user: &str,
    (from, to): (Timestamp, Timestamp),
) -> Result<Vec<Value>, Failure> {
    let access = api.access_token().await.map_err(Failure::from)?;
    let mut url = api.url(&["users", user, "calendarView"]);
    url.query_pairs_mut()
        .append_pair("startDateTime", &from.to_string())
        .append_pair("endDateTime", &to.to_string())
        .append_pair("$select", SELECT)
        .append_pair("$expand", &expand_mark())
        .append_pair("$top", "100");
    let mut next = Some(url.to_string());
    let mut items = Vec::new();
    while let Some(page) = next.take() {
        let r = api
            .http
            .get(page)
            .bearer_auth(&access)
            .header("Prefer", "outlook.timezone=\"UTC\"")
            .send()
            .await
            .map_err(|_| Failure::unreachable())?;
        let v: Value = read(api, r).await?;
        items.extend(v["value"].as_array().cloned().unwrap_or_default());
        next = v["@odata.nextLink"].as_str().map(str::to_owned);
    }
    Ok(items)
}

async fn opened(api: &GraphApi, r: reqwest::Response) -> Result<Opened, Failure> {
    let v = read(api, r).await?;
    let expires_at = v["expirationDateTime"]
        .as_str()
        .and_then(|t| t.parse::<Timestamp>().ok())
        .ok_or_else(|| Failure::Broken("subscription answer without an expiration".into()))?;
    let id = v["id"]
        .as_str()
        .ok_or_else(|| Failure::Broken("subscription answer without an id".into()))?;
    Ok(Opened {
        resource: Some(id.to_owned()),
        expires_at,
    })
}

async fn read(api: &GraphApi, r: reqwest::Response) -> Result<Value, Failure> {
    let status = r.status().as_u16();
    let r = api.check(r).await.map_err(|o| match status {
        403 => Failure::Broken("access refused (HTTP 403)".into()),
        404 => Failure::Broken("mailbox or calendar not found (HTTP 404)".into()),
        _ => Failure::from(o),
    })?;
    r.json().await.map_err(|_| {
        Failure::from(Outcome::Retry {
            reason: "unreadable answer".into(),
            after: None,
        })
    })
}
