//! Calendar sync: Canvas appointments mirrored to the clinic's calendars and webhooks.
//! Talks to Canvas through `canvas/`, never through `api/`.
pub mod inbound;
pub mod leader;
pub mod mapping;
pub mod offers;
pub mod outbound;
pub mod providers;
pub mod signature;
pub mod sinks;

use std::sync::Arc;

use crate::config::sync::{SinkSettings, SinkTarget};
use sinks::Sink;

/// The configured sinks, ready to deliver.
pub fn sinks(settings: &[SinkSettings]) -> Vec<Arc<dyn Sink>> {
    settings
        .iter()
        .map(|s| -> Arc<dyn Sink> {
            match &s.target {
                SinkTarget::Webhook { url, secret } => Arc::new(sinks::webhook::WebhookSink::new(
                    s.name.clone(),
                    s.phi,
                    url.clone(),
                    secret,
                )),
                SinkTarget::Google {
                    key,
                    calendars,
                    base_url,
                } => Arc::new(sinks::google::GoogleSink::new(
                    s.name.clone(),
                    s.phi,
                    key.clone(),
                    calendars.clone(),
                    base_url.clone(),
                )),
                SinkTarget::Graph(g) => Arc::new(sinks::graph::GraphSink::new(
                    s.name.clone(),
                    s.phi,
                    g.clone(),
                )),
            }
        })
        .collect()
}
