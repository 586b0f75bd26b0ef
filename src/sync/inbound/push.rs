//! Pushes from the calendars (`POST /v1/webhooks/{google,graph}`): verified against the
//! channels slotgate opened, then turned into read requests (or, for Graph lifecycle events,
//! channel renewals).

use std::collections::BTreeMap;

use super::{Api, Inbound};
use crate::store::sync::ReadAsk;

/// A push that did not come from a channel slotgate opened.
#[derive(Debug)]
pub struct Refused;

/// The event a Graph change notification names: `resourceData.id`, else the last segment of
/// `resource` (`Users/{user}/Events/{id}`). Anything odd names none, and the window is read.
fn changed_event(n: &serde_json::Value) -> Option<String> {
    let id = n["resourceData"]["id"].as_str().or_else(|| {
        let resource = n["resource"].as_str()?;
        let (path, id) = resource.rsplit_once('/')?;
        path.to_ascii_lowercase().ends_with("/events").then_some(id)
    })?;
    let plausible = !id.is_empty()
        && id.len() <= 512
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_=+/".contains(&b));
    plausible.then(|| id.to_owned())
}

/// What a verified Graph notification is about (`lifecycleEvent`, absent on a change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lifecycle {
    Change,
    Missed,
    ReauthorizationRequired,
    SubscriptionRemoved,
}

impl Lifecycle {
    fn of(event: Option<&str>) -> Self {
        match event {
            None => Lifecycle::Change,
            Some("reauthorizationRequired") => Lifecycle::ReauthorizationRequired,
            Some("subscriptionRemoved") => Lifecycle::SubscriptionRemoved,
            // `missed`, and any event Graph adds later: reading the whole window is always safe.
            Some(_) => Lifecycle::Missed,
        }
    }
}

impl Inbound {
    /// Verifies a Google push (`X-Goog-Channel-ID`, `X-Goog-Channel-Token`) and, unless it is
    /// the `sync` handshake, queues a read of that calendar.
    pub async fn google_push(
        &self,
        channel: &str,
        token: &str,
        state: &str,
    ) -> Result<(), Refused> {
        for (i, cal) in self.calendars.iter().enumerate() {
            if !matches!(cal.api, Api::Google(_)) {
                continue;
            }
            if self
                .channels(i)
                .await
                .open
                .iter()
                .any(|c| c.id == channel && constant_time_eq(c.secret.as_bytes(), token.as_bytes()))
            {
                if state != "sync" {
                    self.ask(i, ReadAsk::changes()).await;
                }
                return Ok(());
            }
        }
        Err(Refused)
    }

    /// Verifies every notification of a Graph push (subscription and clientState) and queues
    /// a read of each calendar named; one that does not match refuses the whole push.
    /// Verifies Graph notifications (each must carry its subscription's `clientState`; one
    /// that does not refuses the whole delivery, and nothing is done) and acts on them: a change
    /// queues a read of the event it names (of the calendar when it names none); the
    /// lifecycle events get what Graph asks for:
    /// `missed` a full read, `reauthorizationRequired` a renewal by the sync leader now,
    /// `subscriptionRemoved` a new subscription and a full read of the gap.
    pub async fn graph_push(&self, body: &serde_json::Value) -> Result<usize, Refused> {
        let items = body["value"].as_array().ok_or(Refused)?;
        let mut verified = Vec::with_capacity(items.len());
        for n in items {
            let (Some(sub), Some(state)) =
                (n["subscriptionId"].as_str(), n["clientState"].as_str())
            else {
                return Err(Refused);
            };
            let mut found = None;
            for (i, cal) in self.calendars.iter().enumerate() {
                if matches!(cal.api, Api::Graph(_))
                    && self.channels(i).await.open.iter().any(|c| {
                        c.id == sub && constant_time_eq(c.secret.as_bytes(), state.as_bytes())
                    })
                {
                    found = Some(i);
                    break;
                }
            }
            let lifecycle = Lifecycle::of(n["lifecycleEvent"].as_str());
            verified.push((found.ok_or(Refused)?, sub, lifecycle, changed_event(n)));
        }
        let mut reads: BTreeMap<usize, ReadAsk> = BTreeMap::new();
        for (i, sub, lifecycle, event) in verified {
            let ask = match (lifecycle, event) {
                (Lifecycle::Change, Some(event)) => ReadAsk::events([event]),
                (Lifecycle::Change, None) => ReadAsk::changes(),
                (Lifecycle::Missed, _) => ReadAsk::full(),
                (Lifecycle::ReauthorizationRequired, _) => {
                    self.mark_channel(i, sub, |c| c.reauthorize = true).await;
                    continue;
                }
                (Lifecycle::SubscriptionRemoved, _) => {
                    self.drop_channel(i, sub, "Graph removed the subscription; subscribing again")
                        .await;
                    ReadAsk::full()
                }
            };
            reads.entry(i).or_default().merge(ask);
        }
        let calendars = reads.len();
        for (i, ask) in reads {
            self.ask(i, ask).await;
        }
        Ok(calendars)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_change_notification_names_its_event() {
        let by_data =
            json!({"resource": "Users/u/Events/AAMkAGI1", "resourceData": {"id": "AAMk-AGI_2="}});
        assert_eq!(changed_event(&by_data).as_deref(), Some("AAMk-AGI_2="));
        let by_path = json!({"resource": "Users/dr@clinic.example/Events/AAMkAGI1"});
        assert_eq!(changed_event(&by_path).as_deref(), Some("AAMkAGI1"));
        for odd in [
            json!({}),
            json!({"resource": "Users/u/Messages/AAMkAGI1"}),
            json!({"resourceData": {"id": ""}}),
            json!({"resourceData": {"id": "a b"}}),
            json!({"resourceData": {"id": "x".repeat(513)}}),
            json!({"resourceData": {"id": "../../subscriptions"}}),
        ] {
            assert_eq!(changed_event(&odd), None, "{odd}");
        }
    }

    #[test]
    fn lifecycle_events_are_told_apart_and_unknown_ones_read_everything() {
        assert_eq!(Lifecycle::of(None), Lifecycle::Change);
        assert_eq!(
            Lifecycle::of(Some("reauthorizationRequired")),
            Lifecycle::ReauthorizationRequired
        );
        assert_eq!(
            Lifecycle::of(Some("subscriptionRemoved")),
            Lifecycle::SubscriptionRemoved
        );
        assert_eq!(Lifecycle::of(Some("missed")), Lifecycle::Missed);
        assert_eq!(Lifecycle::of(Some("somethingNew")), Lifecycle::Missed);
    }
}
