//! `[sync]`: where Canvas appointments are mirrored (`[[sync.sinks]]`), at which PHI level,
//! and which calendars block time in Canvas (`[[sync.inbound]]`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use url::Url;

use super::raw::{RawSink, RawSync};
use super::validate::{Found, http_url, random_hex};
use super::{Secret, SyncSettings};
use crate::rules::model::TypeCoding;
use crate::types::PractitionerId;

/// How much of an appointment a sink may see (contract "PHI level per sink").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhiLevel {
    /// "Busy": no description, no location.
    Busy,
    /// "Patient visit" or the Other Event's title, modality and location; no patient data.
    Neutral,
    /// Patient name, reason, telehealth link: only for a sink covered by a BAA.
    Full,
}

#[derive(Debug, Clone)]
pub struct SinkSettings {
    pub name: String,
    pub phi: PhiLevel,
    pub target: SinkTarget,
}

#[derive(Debug, Clone)]
pub enum SinkTarget {
    Webhook {
        url: Url,
        secret: Secret,
    },
    Google {
        key: GoogleKey,
        calendars: BTreeMap<PractitionerId, String>,
        base_url: Url,
    },
    Graph(GraphSettings),
}

#[derive(Debug, Clone)]
pub struct GraphSettings {
    pub client_id: String,
    pub client_secret: Secret,
    pub token_url: Url,
    pub base_url: Url,
    pub calendars: BTreeMap<PractitionerId, String>,
}

/// The parts of a Google service-account key slotgate uses.
#[derive(Debug, Clone)]
pub struct GoogleKey {
    pub client_email: String,
    pub private_key: Secret,
    pub token_uri: Url,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalendarKind {
    Google,
    Graph,
}

#[derive(Debug, Clone)]
pub struct InboundSettings {
    pub practitioner: PractitionerId,
    pub calendar: String,
    pub location_id: Option<String>,
    /// The named sink, whose credentials reach this calendar.
    pub sink: String,
    pub access: CalendarAccess,
    pub all_day: bool,
}

/// How slotgate reaches an inbound calendar: the credentials of the sink it names.
#[derive(Debug, Clone)]
pub enum CalendarAccess {
    Google { key: GoogleKey, base_url: Url },
    Graph(GraphSettings),
}

impl InboundSettings {
    pub fn kind(&self) -> CalendarKind {
        match self.access {
            CalendarAccess::Google { .. } => CalendarKind::Google,
            CalendarAccess::Graph(_) => CalendarKind::Graph,
        }
    }
}

impl CalendarKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Google => "google",
            Self::Graph => "graph",
        }
    }
}

/// A Standard Webhooks secret: `whsec_` and the key in base64.
pub fn webhook_key(secret: &str) -> Option<Vec<u8>> {
    B64.decode(secret.strip_prefix("whsec_")?)
        .ok()
        .filter(|k| !k.is_empty())
}

fn google_key(found: &mut Found, key: &str, path: Option<&str>) -> Option<GoogleKey> {
    let Some(path) = path else {
        found.add(
            key,
            "required for a google sink: the service account's JSON key file",
        );
        return None;
    };
    let parsed: Option<serde_json::Value> = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let field =
        |v: &serde_json::Value, f: &str| v.get(f).and_then(|x| x.as_str()).map(str::to_owned);
    let got = parsed.as_ref().and_then(|v| {
        Some((
            field(v, "client_email")?,
            field(v, "private_key")?,
            field(v, "token_uri")?,
        ))
    });
    match got {
        Some((client_email, private_key, token_uri))
            if jsonwebtoken::EncodingKey::from_rsa_pem(private_key.as_bytes()).is_ok() =>
        {
            let token_uri = http_url(found, key, &token_uri)?;
            Some(GoogleKey {
                client_email,
                private_key: Secret::new(private_key),
                token_uri,
            })
        }
        _ => {
            found.add(key, format!("{path} is not a readable service-account key (client_email, private_key, token_uri)"));
            None
        }
    }
}

fn calendars(
    found: &mut Found,
    key: &str,
    raw: &BTreeMap<String, String>,
) -> BTreeMap<PractitionerId, String> {
    raw.iter()
        .filter_map(|(p, c)| match p.parse() {
            Ok(p) => Some((p, c.clone())),
            Err(_) => {
                found.add(format!("{key}.{p}"), "is not a Canvas practitioner id");
                None
            }
        })
        .collect()
}

fn sink(found: &mut Found, i: usize, raw: &RawSink) -> Option<SinkSettings> {
    let key = |k: &str| format!("sync.sinks[{i}].{k}");
    let phi = match raw.phi.as_deref() {
        Some("busy") => PhiLevel::Busy,
        Some("neutral") | None => PhiLevel::Neutral,
        Some("full") if raw.baa => PhiLevel::Full,
        Some("full") => {
            found.add(
                key("phi"),
                "\"full\" sends patient data and needs baa = true on this sink",
            );
            return None;
        }
        Some(other) => {
            found.add(
                key("phi"),
                format!("{other:?} is not busy, neutral or full"),
            );
            return None;
        }
    };
    let target = match raw.kind.as_str() {
        "webhook" => {
            let url = match &raw.url {
                Some(u) => http_url(found, &key("url"), u),
                None => {
                    found.add(key("url"), "required for a webhook sink");
                    None
                }
            };
            let secret = raw.secret.clone().filter(|s| webhook_key(s).is_some());
            if secret.is_none() {
                found.add(
                    key("secret"),
                    "required, in the Standard Webhooks form whsec_<base64>",
                );
            }
            SinkTarget::Webhook {
                url: url?,
                secret: Secret::new(secret?),
            }
        }
        "google" => {
            let key_file = google_key(
                found,
                &key("service_account_key_file"),
                raw.service_account_key_file.as_deref(),
            );
            let base = raw
                .base_url
                .as_deref()
                .unwrap_or("https://www.googleapis.com/calendar/v3");
            let base_url = http_url(found, &key("base_url"), base);
            let calendars = calendars(found, &key("calendars"), &raw.calendars);
            SinkTarget::Google {
                key: key_file?,
                calendars,
                base_url: base_url?,
            }
        }
        "graph" => {
            let (tenant, client_id, secret) = (
                raw.tenant_id.clone(),
                raw.client_id.clone(),
                raw.client_secret.clone(),
            );
            for (k, v) in [
                ("tenant_id", &tenant),
                ("client_id", &client_id),
                ("client_secret", &secret),
            ] {
                if v.as_deref().is_none_or(str::is_empty) {
                    found.add(key(k), "required for a graph sink");
                }
            }
            let default_token = format!(
                "https://login.microsoftonline.com/{}/oauth2/v2.0/token",
                tenant.clone().unwrap_or_default()
            );
            let token_url = http_url(
                found,
                &key("token_url"),
                raw.token_url.as_deref().unwrap_or(&default_token),
            );
            let base_url = http_url(
                found,
                &key("base_url"),
                raw.base_url
                    .as_deref()
                    .unwrap_or("https://graph.microsoft.com/v1.0"),
            );
            let calendars = calendars(found, &key("calendars"), &raw.calendars);
            tenant?;
            SinkTarget::Graph(GraphSettings {
                client_id: client_id?,
                client_secret: Secret::new(secret?),
                token_url: token_url?,
                base_url: base_url?,
                calendars,
            })
        }
        _ => {
            found.add(key("kind"), "must be webhook, google or graph");
            return None;
        }
    };
    Some(SinkSettings {
        name: raw.name.clone(),
        phi,
        target,
    })
}

pub(super) fn sync(found: &mut Found, raw: &RawSync, embedded: bool) -> SyncSettings {
    let reconcile: u64 = found.range(
        "sync.reconcile_interval_seconds",
        raw.reconcile_interval_seconds,
        1,
        86_400,
    );
    let window_days: u32 = found.range("sync.window_days", raw.window_days, 1, 365);
    let max_attempts: u32 = found.range("sync.max_attempts", raw.max_attempts, 1, 100);
    let public_url = raw
        .public_url
        .as_deref()
        .and_then(|u| http_url(found, "sync.public_url", u));
    let canvas_webhook_secret = match raw.canvas_webhook_secret.clone().filter(|s| !s.is_empty()) {
        Some(s) if s.len() >= 24 => Some(Secret::new(s)),
        Some(_) => {
            found.add(
                "sync.canvas_webhook_secret",
                "must be at least 24 characters (whsec_<base64> for signatures)",
            );
            None
        }
        // The embedded sandbox signs its notifications with a secret of this process's own.
        None if embedded => Some(Secret::new(format!("whsec_{}", B64.encode(random_hex(24))))),
        None => None,
    };
    let mut names = BTreeSet::new();
    let mut sinks = Vec::new();
    for (i, s) in raw.sinks.iter().enumerate() {
        if !names.insert(s.name.clone()) {
            found.add(
                format!("sync.sinks[{i}].name"),
                format!("{:?} is used by another sink", s.name),
            );
        }
        sinks.extend(sink(found, i, s));
    }
    let mut inbound = Vec::new();
    let mut watched = BTreeSet::new();
    for (i, e) in raw.inbound.iter().enumerate() {
        let key = |k: &str| format!("sync.inbound[{i}].{k}");
        let kind = match e.kind.as_str() {
            "google" => Some(CalendarKind::Google),
            "graph" => Some(CalendarKind::Graph),
            _ => {
                found.add(key("kind"), "must be google or graph");
                None
            }
        };
        let practitioner = e.practitioner_id.parse::<PractitionerId>().ok();
        if practitioner.is_none() {
            found.add(key("practitioner_id"), "is not a Canvas practitioner id");
        }
        if e.calendar.trim().is_empty() || e.calendar.contains(':') {
            found.add(key("calendar"), "must be a calendar id or mailbox (no ':')");
        } else if !watched.insert((e.kind.clone(), e.calendar.clone())) {
            found.add(key("calendar"), "is already watched by another entry");
        }
        // The calendar is reached with the credentials of the sink it names.
        let access = match (&e.sink, kind) {
            (None, _) => {
                found.add(
                    key("sink"),
                    "required: the google or graph sink whose credentials reach this calendar",
                );
                None
            }
            (Some(name), Some(kind)) => {
                let named = sinks.iter().find(|s: &&SinkSettings| &s.name == name);
                match (named.map(|s| &s.target), kind) {
                    (Some(SinkTarget::Google { key, base_url, .. }), CalendarKind::Google) => {
                        Some(CalendarAccess::Google {
                            key: key.clone(),
                            base_url: base_url.clone(),
                        })
                    }
                    (Some(SinkTarget::Graph(g)), CalendarKind::Graph) => {
                        Some(CalendarAccess::Graph(g.clone()))
                    }
                    (Some(_), _) => {
                        found.add(
                            key("sink"),
                            format!("names a sink that is not a {} sink", e.kind),
                        );
                        None
                    }
                    (None, _) if names.contains(name) => None, // the sink itself was refused
                    (None, _) => {
                        found.add(
                            key("sink"),
                            format!("names no [[sync.sinks]] entry {name:?}"),
                        );
                        None
                    }
                }
            }
            (Some(_), None) => None,
        };
        if let (Some(practitioner), Some(access), Some(sink)) = (practitioner, access, &e.sink) {
            inbound.push(InboundSettings {
                practitioner,
                calendar: e.calendar.clone(),
                location_id: e.location_id.clone(),
                sink: sink.clone(),
                access,
                all_day: e.all_day,
            });
        }
    }
    if !raw.inbound.is_empty() && public_url.is_none() {
        found.add(
            "sync.public_url",
            "required when [[sync.inbound]] calendars are configured",
        );
    }
    SyncSettings {
        event_type: raw.event_type.as_ref().map_or_else(
            // Canvas's out-of-the-box "Generic Event" (canvas-fhir.md §4, gcal_sync).
            || TypeCoding {
                system: "http://snomed.info/sct".into(),
                code: "272379006".into(),
            },
            |c| TypeCoding {
                system: c.system.clone(),
                code: c.code.clone(),
            },
        ),
        reconcile_interval: Duration::from_secs(reconcile),
        window_days,
        max_attempts,
        channel_ttl: Duration::from_secs(found.range(
            "sync.channel_ttl_seconds",
            raw.channel_ttl_seconds,
            2,
            7 * 86_400,
        )),
        retry_base: Duration::from_millis(found.range(
            "sync.retry_base_ms",
            raw.retry_base_ms,
            1,
            60_000,
        )),
        canvas_webhook_secret,
        public_url,
        state_file: raw.state_file.clone().map(PathBuf::from),
        sinks,
        inbound,
    }
}
