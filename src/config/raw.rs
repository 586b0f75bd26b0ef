//! The configuration file as written: serde structs that mirror the TOML of the contract's
//! "Configuration" section. Nothing here is trusted until `validate` has turned it into
//! [`super::Settings`]. Unknown keys are refused so that a typo names itself. No `Debug` here: these
//! structs hold secrets in the clear, and `Settings` wraps them in `Secret`.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Deserializer};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    pub server: RawServer,
    pub canvas: RawCanvas,
    pub auth: RawAuth,
    pub cache: RawCache,
    pub rate_limit: RawRateLimit,
    pub booking: RawBooking,
    pub waitlist: RawWaitlist,
    pub sync: RawSync,
    pub state: RawState,
    pub sandbox: RawSandbox,
    pub telemetry: RawTelemetry,
    pub smart: RawSmart,
    #[serde(default)]
    pub reasons: Vec<RawReason>,
    #[serde(default)]
    pub practitioners: Vec<RawPractitioner>,
    #[serde(default)]
    pub locations: Vec<RawLocation>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: SocketAddr,
    pub trusted_proxies: Vec<String>,
    pub cors_origins: Vec<String>,
    pub max_body_bytes: u64,
    pub workers: u64,
    pub shutdown_timeout_seconds: u64,
    pub config_watch_seconds: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCanvas {
    #[serde(default, deserialize_with = "opt_string")]
    pub instance: Option<String>,
    #[serde(default)]
    pub fhir_url: Option<String>,
    #[serde(default)]
    pub token_url: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    pub client_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    pub client_secret: Option<String>,
    pub timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub max_concurrency: u64,
    pub max_retries: u64,
    pub retry_base_ms: u64,
    pub requests_per_second: u64,
    pub circuit_failures: u64,
    pub circuit_open_seconds: u64,
    pub write_settle_seconds: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default)]
    pub audience: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    pub hs256_secret: Option<String>,
    #[serde(default)]
    pub rs256_public_key_pem: Option<String>,
    #[serde(default)]
    pub es256_public_key_pem: Option<String>,
    #[serde(default)]
    pub jwks_url: Option<String>,
    pub patient_claim: String,
    pub leeway_seconds: u64,
    pub jwks_refresh_seconds: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    pub slot_ttl_seconds: u64,
    pub stale_if_error_seconds: u64,
    pub directory_ttl_seconds: u64,
    pub max_slot_entries: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    pub browse_per_minute: u64,
    pub book_per_minute: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBooking {
    pub min_notice_minutes: u64,
    pub max_horizon_days: u64,
    pub max_range_days: u64,
    pub hold_minutes: u64,
    pub patient_cancel_cutoff_hours: u64,
    pub max_active_per_patient: u64,
    pub max_holds_per_patient: u64,
    #[serde(default, deserialize_with = "opt_string")]
    pub slot_id_secret: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWaitlist {
    pub offer_minutes: u64,
    pub stop_hours_before: u64,
    pub max_entries_per_patient: u64,
    pub scan_interval_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSync {
    pub reconcile_interval_seconds: u64,
    pub window_days: u64,
    pub max_attempts: u64,
    pub retry_base_ms: u64,
    pub channel_ttl_seconds: u64,
    #[serde(default, deserialize_with = "opt_string")]
    pub canvas_webhook_secret: Option<String>,
    #[serde(default)]
    pub public_url: Option<String>,
    #[serde(default)]
    pub event_type: Option<RawCoding>,
    #[serde(default)]
    pub state_file: Option<String>,
    #[serde(default)]
    pub sinks: Vec<RawSink>,
    #[serde(default)]
    pub inbound: Vec<RawInbound>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCoding {
    pub system: String,
    #[serde(deserialize_with = "string")]
    pub code: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSink {
    pub name: String,
    pub kind: String,
    #[serde(default)]
    pub phi: Option<String>,
    #[serde(default)]
    pub baa: bool,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    pub secret: Option<String>,
    #[serde(default)]
    pub service_account_key_file: Option<String>,
    #[serde(default)]
    pub calendars: BTreeMap<String, String>,
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub token_url: Option<String>,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    pub client_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    pub client_secret: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInbound {
    pub kind: String,
    pub practitioner_id: String,
    pub calendar: String,
    #[serde(default)]
    pub location_id: Option<String>,
    #[serde(default)]
    pub sink: Option<String>,
    #[serde(default)]
    pub all_day: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    pub backend: String,
    #[serde(default)]
    pub redis_url: Option<String>,
    pub key_prefix: String,
    pub sync_lease_seconds: u64,
    pub lock_lease_ms: u64,
    pub recovery_interval_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSandbox {
    pub listen: SocketAddr,
    pub clinicians: u64,
    pub visits_per_day: u64,
    pub latency_ms: u64,
    pub error_rate: f64,
    pub reject_double_booking: bool,
    pub allow_public: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    pub log_format: String,
    pub log_filter: String,
    pub service_name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSmart {
    pub enabled: bool,
    #[serde(default)]
    pub booking_url: Option<String>,
    pub days: u64,
    #[serde(default)]
    pub public_url: Option<String>,
    pub max_age_seconds: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReason {
    #[serde(deserialize_with = "string")]
    pub code: String,
    pub system: String,
    pub display: String,
    #[serde(default)]
    pub durations: Vec<i64>,
    #[serde(default)]
    pub modalities: Vec<String>,
    #[serde(default)]
    pub specialties: Vec<String>,
    #[serde(default)]
    pub appointment_type: BTreeMap<String, RawCoding>,
    #[serde(default = "yes")]
    pub patient_bookable: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPractitioner {
    pub id: String,
    #[serde(default)]
    pub specialties: Vec<String>,
    #[serde(default)]
    pub modalities: Option<Vec<String>>,
    #[serde(default)]
    pub languages: Vec<String>,
    #[serde(default)]
    pub licensed_states: Option<Vec<String>>,
    #[serde(default)]
    pub telehealth_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLocation {
    #[serde(deserialize_with = "string")]
    pub schedule_key: String,
    pub id: String,
    pub timezone: String,
    pub state: String,
}

fn yes() -> bool {
    true
}

/// Environment overrides arrive as parsed values, so `SLOTGATE_CANVAS__CLIENT_ID=0123` would be
/// a number. Identifiers and secrets are text whatever they look like.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Int(i64),
    Uint(u64),
    Float(f64),
    Bool(bool),
}

impl From<Scalar> for String {
    fn from(s: Scalar) -> String {
        match s {
            Scalar::Text(t) => t,
            Scalar::Int(i) => i.to_string(),
            Scalar::Uint(u) => u.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Scalar::deserialize(d).map(String::from)
}

fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<Scalar>::deserialize(d).map(|o| o.map(String::from))
}
