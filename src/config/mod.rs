//! Typed settings, loaded once and validated once. Compiled-in defaults, then the file named by
//! `SLOTGATE_CONFIG`, then `SLOTGATE_<SECTION>__<KEY>` variables; a bad setting stops start-up
//! with a message naming its key, and `slotgate check-config` lists every one.

pub mod discover;
mod raw;
pub mod smart;
pub mod sync;
mod validate;

pub use validate::random_hex;

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ipnet::IpNet;
use url::Url;

use crate::rules::model::{BookingPolicy, Rules};

pub use raw::RawSettings;

const DEFAULTS: &str = include_str!("defaults.toml");
pub const DEMO_REASONS: &str = include_str!("demo.toml");

/// A value that must never reach a log, an error message or a `Debug` print.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    pub canvas: CanvasSettings,
    pub auth: AuthSettings,
    pub cache: CacheSettings,
    pub rate_limit: RateLimitSettings,
    pub booking: BookingPolicy,
    /// Signs `slot_id`s; every replica must share it.
    pub slot_id_secret: Secret,
    pub state: StateSettings,
    pub leases: LeaseSettings,
    pub waitlist: WaitlistSettings,
    pub telemetry: TelemetrySettings,
    pub sync: SyncSettings,
    /// SMART Scheduling Links (`[smart]`); none while disabled.
    pub smart: Option<smart::SmartSettings>,
    pub rules: Rules,
    /// Where these settings were read from: a reload reads the same places again.
    pub origin: Origin,
}

/// The sources a configuration was loaded from, kept to load it again.
#[derive(Clone, Default)]
pub struct Origin {
    pub file: Option<std::path::PathBuf>,
    pub environment: bool,
    pub overrides: Vec<String>,
}

/// Overrides are whole TOML documents, secrets and all: only their number is shown.
impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Origin")
            .field("file", &self.file)
            .field("environment", &self.environment)
            .field("overrides", &self.overrides.len())
            .finish()
    }
}

impl Origin {
    /// Loads the configuration again from the same sources.
    pub fn reload(&self) -> Result<Settings, Problems> {
        let overrides: Vec<&str> = self.overrides.iter().map(String::as_str).collect();
        Settings::load(&Sources {
            file: self.file.as_deref(),
            environment: self.environment,
            overrides: &overrides,
        })
    }
}

#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// The Canvas appointment type of Other Events (`[sync] event_type`; default "Generic Event").
    pub event_type: crate::rules::model::TypeCoding,
    pub reconcile_interval: Duration,
    /// The reconciler converges appointments from yesterday to this many days ahead.
    pub window_days: u32,
    /// Tries per message before it is dead-lettered.
    pub max_attempts: u32,
    /// The first retry's delay; doubled per attempt.
    pub retry_base: Duration,
    /// How long a Google watch channel or Graph subscription is asked to live.
    pub channel_ttl: Duration,
    /// Verifies `POST /v1/webhooks/canvas` (Standard Webhooks signature or bearer).
    pub canvas_webhook_secret: Option<Secret>,
    /// Where Google and Graph send their pushes.
    pub public_url: Option<Url>,
    /// Where the in-process sync state survives a restart (none: memory only).
    pub state_file: Option<std::path::PathBuf>,
    pub sinks: Vec<sync::SinkSettings>,
    pub inbound: Vec<sync::InboundSettings>,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// How often the configuration file is re-read for a rules reload (none: only on demand).
    pub config_watch: Option<Duration>,
    pub listen: SocketAddr,
    pub trusted_proxies: Vec<IpNet>,
    pub cors_origins: Vec<String>,
    pub max_body_bytes: usize,
    /// 0: one per CPU core.
    pub workers: usize,
    pub shutdown_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct CanvasSettings {
    pub target: CanvasTarget,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub max_concurrency: usize,
    pub max_retries: u32,
    pub retry_base: Duration,
    pub requests_per_second: u32,
    pub circuit_failures: u32,
    pub circuit_open: Duration,
    /// How long after slotgate stopped waiting Canvas may still apply a write.
    pub write_settle: Duration,
}

/// Where Canvas is: a real instance, or the sandbox slotgate starts for itself.
#[derive(Debug, Clone)]
pub enum CanvasTarget {
    Remote(CanvasEndpoint),
    Embedded(SandboxSettings),
}

#[derive(Debug, Clone)]
pub struct CanvasEndpoint {
    /// The FHIR root, always ending in `/`.
    pub fhir_url: Url,
    pub token_url: Url,
    pub client_id: String,
    pub client_secret: Secret,
}

#[derive(Debug, Clone)]
pub struct SandboxSettings {
    pub listen: SocketAddr,
    /// 0: the demo clinic.
    pub clinicians: usize,
    /// Generated clinic: visits booked per clinician and working day.
    pub visits_per_day: usize,
    pub latency_ms: u64,
    pub error_rate: f64,
    pub reject_double_booking: bool,
}

#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub issuer: String,
    pub audience: String,
    pub hs256_secret: Option<Secret>,
    /// True when slotgate made the HS256 secret up for the embedded sandbox.
    pub hs256_generated: bool,
    pub rs256_public_key_pem: Option<String>,
    pub es256_public_key_pem: Option<String>,
    pub jwks_url: Option<Url>,
    pub patient_claim: String,
    pub leeway_seconds: u64,
    pub jwks_refresh_seconds: u64,
}

#[derive(Debug, Clone)]
pub struct CacheSettings {
    pub slot_ttl: Duration,
    pub stale_if_error: Duration,
    pub directory_ttl: Duration,
    pub max_slot_entries: u64,
}

#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    pub browse_per_minute: u32,
    pub book_per_minute: u32,
}

/// The waitlist (`[waitlist]`).
#[derive(Debug, Clone, Copy)]
pub struct WaitlistSettings {
    pub offer: Duration,
    pub stop_before: Duration,
    pub max_entries_per_patient: u32,
    pub scan_interval: Duration,
}

/// How long the shared state's locks live without renewal, and how often unfinished booking
/// work is looked for (both backends).
#[derive(Debug, Clone, Copy)]
pub struct LeaseSettings {
    pub lock: Duration,
    pub recovery_interval: Duration,
}

#[derive(Debug, Clone)]
pub enum StateSettings {
    Memory,
    Redis {
        url: Url,
        key_prefix: String,
        /// The sync leader's lease (renewed every third of it).
        sync_lease: Duration,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    pub log_format: LogFormat,
    pub log_filter: String,
    pub service_name: String,
}

/// One thing wrong with a configuration, named by its key (`canvas.client_secret`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Where the configuration comes from.
#[derive(Debug, Clone, Default)]
pub struct Sources<'a> {
    pub file: Option<&'a Path>,
    /// Read `SLOTGATE_<SECTION>__<KEY>` variables (off in tests that pin every value).
    pub environment: bool,
    /// Extra TOML documents merged last, in order, over file and environment (tests).
    pub overrides: &'a [&'a str],
}

impl Settings {
    /// Loads from `SLOTGATE_CONFIG` and the environment, as the server does.
    pub fn from_environment() -> Result<Settings, Problems> {
        let file = std::env::var_os("SLOTGATE_CONFIG").filter(|v| !v.is_empty());
        Settings::load(&Sources {
            file: file.as_deref().map(Path::new),
            environment: true,
            overrides: &[],
        })
    }

    pub fn load(sources: &Sources<'_>) -> Result<Settings, Problems> {
        if let Some(file) = sources.file
            && !file.is_file()
        {
            return Err(Problems(vec![Problem {
                key: "SLOTGATE_CONFIG".into(),
                message: format!("{} is not a readable file", file.display()),
            }]));
        }
        let raw = extract(&figment(sources, None))?;
        let mut settings = if validate::is_embedded(&raw.canvas) {
            // The embedded sandbox comes with the rules of the clinic it seeds; the clinic's
            // own file and environment still win over them.
            let demo = embedded_rules(raw.sandbox.clinicians);
            let raw = extract(&figment(sources, Some(&demo)))?;
            validate::validate(raw)
        } else {
            validate::validate(raw)
        }?;
        settings.origin = Origin {
            file: sources.file.map(Path::to_path_buf),
            environment: sources.environment,
            overrides: sources.overrides.iter().map(|s| (*s).to_owned()).collect(),
        };
        Ok(settings)
    }
}

/// Keys whose environment values are text even when they look like numbers (`0123`), because
/// figment would otherwise parse them and lose leading zeros.
const TEXT_KEYS: [&str; 9] = [
    "booking.slot_id_secret",
    "canvas.instance",
    "canvas.client_id",
    "canvas.client_secret",
    "auth.issuer",
    "auth.audience",
    "auth.hs256_secret",
    "sync.canvas_webhook_secret",
    "state.key_prefix",
];

fn figment(sources: &Sources<'_>, embedded_rules: Option<&str>) -> Figment {
    let mut figment = Figment::from(Toml::string(DEFAULTS));
    if let Some(rules) = embedded_rules {
        figment = figment.merge(Toml::string(rules));
    }
    if let Some(file) = sources.file {
        figment = figment.merge(Toml::file_exact(file));
    }
    if sources.environment {
        let is_text = |key: &str| {
            TEXT_KEYS
                .iter()
                .any(|k| k.replace('.', "__").eq_ignore_ascii_case(key))
        };
        figment = figment.merge(
            Env::prefixed("SLOTGATE_")
                .filter(move |k| !k.as_str().eq_ignore_ascii_case("config") && !is_text(k.as_str()))
                .split("__")
                .lowercase(true),
        );
        for key in TEXT_KEYS {
            let var = format!("SLOTGATE_{}", key.replace('.', "__").to_ascii_uppercase());
            if let Ok(value) = std::env::var(&var) {
                figment = figment.merge(Serialized::global(key, value));
            }
        }
    }
    for overrides in sources.overrides {
        figment = figment.merge(Toml::string(overrides));
    }
    figment
}

fn embedded_rules(clinicians: u64) -> String {
    let today = jiff::ZonedDateTime::now().date();
    let clinic = match clinicians {
        0 => crate::sandbox::Clinic::demo(today),
        n => crate::sandbox::Clinic::generated(n as usize, today),
    };
    format!("{DEMO_REASONS}\n{}", clinic.slotgate_rules_toml())
}

fn extract(figment: &Figment) -> Result<RawSettings, Problems> {
    figment.extract::<RawSettings>().map_err(|error| {
        Problems(
            error
                .into_iter()
                .map(|e| {
                    let source = e
                        .metadata
                        .as_ref()
                        .and_then(|m| m.source.as_ref())
                        .map(|s| format!(" (from {s})"))
                        .unwrap_or_default();
                    let mut path = e.path.clone();
                    if let figment::error::Kind::MissingField(field) = &e.kind
                        && path.last().map(String::as_str) != Some(field.as_ref())
                    {
                        path.push(field.to_string());
                    }
                    Problem {
                        key: if path.is_empty() {
                            "(top level)".into()
                        } else {
                            path.join(".")
                        },
                        message: format!("{}{source}", describe(&e.kind)),
                    }
                })
                .collect(),
        )
    })
}

fn describe(kind: &figment::error::Kind) -> String {
    use figment::error::Kind;
    match kind {
        Kind::UnknownField(_, expected) => {
            format!("unknown key; expected one of {}", expected.join(", "))
        }
        Kind::MissingField(_) => "required key is missing".into(),
        // TOML syntax errors quote the offending line, which may hold a secret: keep only
        // where it is and what is wrong.
        Kind::Message(m) => m
            .lines()
            .filter(|l| !l.contains('|') && !l.trim().is_empty())
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests;
