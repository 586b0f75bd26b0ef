//! Turns the file as written into [`Settings`], collecting every problem with its key.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use jiff::tz::TimeZone;
use url::Url;

use super::raw::*;
use super::*;
use crate::rules::model::{
    BookingPolicy, LocationInfo, Modality, PractitionerProfile, Reason, Rules, TypeCoding,
};
use crate::types::{PractitionerId, UsState};

/// Neither `instance` nor `fhir_url`: slotgate runs its own sandbox.
pub fn is_embedded(canvas: &RawCanvas) -> bool {
    canvas.instance.is_none() && canvas.fhir_url.is_none()
}

#[derive(Default)]
pub(super) struct Found(Vec<Problem>);

impl Found {
    pub(super) fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }

    /// Checks `lo <= value <= hi` and returns the value as the wanted integer type.
    pub(super) fn range<T: TryFrom<u64> + Default>(
        &mut self,
        key: &str,
        value: u64,
        lo: u64,
        hi: u64,
    ) -> T {
        if value < lo || value > hi {
            self.add(key, format!("must be between {lo} and {hi}, not {value}"));
            return T::default();
        }
        T::try_from(value).unwrap_or_default()
    }
}

pub fn validate(raw: RawSettings) -> Result<Settings, Problems> {
    let mut found = Found::default();
    let embedded = is_embedded(&raw.canvas);
    let server = server(&mut found, &raw.server);
    let canvas = canvas(&mut found, &raw.canvas, &raw.sandbox, raw.server.listen);
    let auth = auth(&mut found, raw.auth, embedded);
    let cache = CacheSettings {
        slot_ttl: secs(found.range(
            "cache.slot_ttl_seconds",
            raw.cache.slot_ttl_seconds,
            1,
            86_400,
        )),
        stale_if_error: secs(found.range(
            "cache.stale_if_error_seconds",
            raw.cache.stale_if_error_seconds,
            0,
            7 * 86_400,
        )),
        directory_ttl: secs(found.range(
            "cache.directory_ttl_seconds",
            raw.cache.directory_ttl_seconds,
            1,
            86_400,
        )),
        max_slot_entries: found.range(
            "cache.max_slot_entries",
            raw.cache.max_slot_entries,
            100,
            10_000_000,
        ),
    };
    let rate_limit = RateLimitSettings {
        browse_per_minute: found.range(
            "rate_limit.browse_per_minute",
            raw.rate_limit.browse_per_minute,
            1,
            // Up to "none to speak of": the gateway in front may do this job alone.
            1_000_000_000,
        ),
        book_per_minute: found.range(
            "rate_limit.book_per_minute",
            raw.rate_limit.book_per_minute,
            1,
            1_000_000,
        ),
    };
    let booking = booking(&mut found, &raw.booking);
    let smart = super::smart::smart(&mut found, &raw.smart, booking.max_horizon_days);
    let sync = super::sync::sync(&mut found, &raw.sync, embedded);
    let state = state(&mut found, &raw.state);
    let waitlist = WaitlistSettings {
        offer: secs(
            60 * found.range::<u64>(
                "waitlist.offer_minutes",
                raw.waitlist.offer_minutes,
                1,
                1440,
            ),
        ),
        stop_before: secs(
            3600 * found.range::<u64>(
                "waitlist.stop_hours_before",
                raw.waitlist.stop_hours_before,
                0,
                720,
            ),
        ),
        max_entries_per_patient: found.range(
            "waitlist.max_entries_per_patient",
            raw.waitlist.max_entries_per_patient,
            1,
            100,
        ),
        scan_interval: Duration::from_millis(found.range(
            "waitlist.scan_interval_ms",
            raw.waitlist.scan_interval_ms,
            100,
            600_000,
        )),
    };
    let leases = LeaseSettings {
        lock: Duration::from_millis(found.range(
            "state.lock_lease_ms",
            raw.state.lock_lease_ms,
            300,
            60_000,
        )),
        recovery_interval: Duration::from_millis(found.range(
            "state.recovery_interval_ms",
            raw.state.recovery_interval_ms,
            50,
            600_000,
        )),
    };
    let slot_id_secret = match raw.booking.slot_id_secret.filter(|s| !s.is_empty()) {
        Some(s) if s.len() >= 32 => Secret::new(s),
        Some(_) => {
            found.add(
                "booking.slot_id_secret",
                "must be at least 32 characters long",
            );
            Secret::new(String::new())
        }
        None if matches!(state, StateSettings::Redis { .. }) => {
            found.add(
                "booking.slot_id_secret",
                "required with backend = \"redis\": every replica must trust the others' slot ids",
            );
            Secret::new(String::new())
        }
        // One process: a secret of its own is enough.
        None => Secret::new(random_hex(32)),
    };
    let telemetry = telemetry(&mut found, raw.telemetry);
    let rules = Rules {
        reasons: reasons(&mut found, &raw.reasons),
        practitioners: practitioners(&mut found, &raw.practitioners),
        locations: locations(&mut found, &raw.locations),
    };
    if found.0.is_empty() {
        Ok(Settings {
            server,
            canvas,
            auth,
            cache,
            rate_limit,
            booking,
            slot_id_secret,
            state,
            leases,
            waitlist,
            telemetry,
            sync,
            smart,
            rules,
            origin: Origin::default(),
        })
    } else {
        Err(Problems(found.0))
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn server(found: &mut Found, raw: &RawServer) -> ServerSettings {
    let mut trusted_proxies = Vec::new();
    for (i, p) in raw.trusted_proxies.iter().enumerate() {
        match p.parse::<IpNet>() {
            Ok(net) => trusted_proxies.push(net),
            Err(_) => match p.parse::<IpAddr>() {
                Ok(ip) => trusted_proxies.push(IpNet::from(ip)),
                Err(_) => found.add(
                    format!("server.trusted_proxies[{i}]"),
                    format!("{p:?} is neither a CIDR (10.0.0.0/8) nor an IP address"),
                ),
            },
        }
    }
    for (i, origin) in raw.cors_origins.iter().enumerate() {
        let ok = Url::parse(origin).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.host().is_some()
                && u.path() == "/"
                && !origin.ends_with('/')
                && u.query().is_none()
        });
        if !ok {
            found.add(
                format!("server.cors_origins[{i}]"),
                format!("{origin:?} is not an origin like https://app.example.org"),
            );
        }
    }
    ServerSettings {
        listen: raw.listen,
        trusted_proxies,
        cors_origins: raw.cors_origins.clone(),
        max_body_bytes: found.range("server.max_body_bytes", raw.max_body_bytes, 1024, 16 << 20),
        workers: found.range("server.workers", raw.workers, 0, 256),
        shutdown_timeout: secs(found.range(
            "server.shutdown_timeout_seconds",
            raw.shutdown_timeout_seconds,
            0,
            300,
        )),
        config_watch: match found.range(
            "server.config_watch_seconds",
            raw.config_watch_seconds,
            0,
            86_400,
        ) {
            0 => None,
            n => Some(secs(n)),
        },
    }
}

pub(super) fn http_url(found: &mut Found, key: &str, value: &str) -> Option<Url> {
    match Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
        _ => {
            found.add(key, format!("{value:?} is not an http(s) URL"));
            None
        }
    }
}

fn canvas(
    found: &mut Found,
    raw: &RawCanvas,
    sandbox: &RawSandbox,
    listen: std::net::SocketAddr,
) -> CanvasSettings {
    let target = if is_embedded(raw) {
        if !sandbox.allow_public && !listen.ip().is_loopback() {
            found.add(
                "canvas.instance",
                format!(
                    "no Canvas is configured, so slotgate would serve its demo sandbox (and print a staff token) on {listen}, which is not loopback; configure [canvas], or set sandbox.allow_public = true for a public demo"
                ),
            );
        }
        if !(0.0..=1.0).contains(&sandbox.error_rate) {
            found.add("sandbox.error_rate", "must be between 0.0 and 1.0");
        }
        CanvasTarget::Embedded(SandboxSettings {
            listen: sandbox.listen,
            clinicians: found.range("sandbox.clinicians", sandbox.clinicians, 0, 5000),
            visits_per_day: found.range("sandbox.visits_per_day", sandbox.visits_per_day, 0, 20),
            latency_ms: found.range("sandbox.latency_ms", sandbox.latency_ms, 0, 60_000),
            error_rate: sandbox.error_rate,
            reject_double_booking: sandbox.reject_double_booking,
        })
    } else {
        remote(found, raw)
    };
    let timeout_ms: u64 = found.range("canvas.timeout_ms", raw.timeout_ms, 100, 300_000);
    let connect_ms: u64 = found.range(
        "canvas.connect_timeout_ms",
        raw.connect_timeout_ms,
        10,
        60_000,
    );
    if connect_ms > timeout_ms && timeout_ms > 0 {
        found.add(
            "canvas.connect_timeout_ms",
            "must not exceed canvas.timeout_ms",
        );
    }
    CanvasSettings {
        target,
        timeout: Duration::from_millis(timeout_ms),
        connect_timeout: Duration::from_millis(connect_ms),
        max_concurrency: found.range("canvas.max_concurrency", raw.max_concurrency, 1, 1024),
        max_retries: found.range("canvas.max_retries", raw.max_retries, 0, 10),
        retry_base: Duration::from_millis(found.range(
            "canvas.retry_base_ms",
            raw.retry_base_ms,
            1,
            60_000,
        )),
        requests_per_second: found.range(
            "canvas.requests_per_second",
            raw.requests_per_second,
            1,
            100_000,
        ),
        circuit_failures: found.range("canvas.circuit_failures", raw.circuit_failures, 1, 1000),
        circuit_open: secs(found.range(
            "canvas.circuit_open_seconds",
            raw.circuit_open_seconds,
            1,
            3600,
        )),
        write_settle: secs(found.range(
            "canvas.write_settle_seconds",
            raw.write_settle_seconds,
            1,
            3600,
        )),
    }
}

fn remote(found: &mut Found, raw: &RawCanvas) -> CanvasTarget {
    let instance = raw.instance.as_deref();
    if let Some(i) = instance
        && (i.is_empty()
            || !i
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
    {
        found.add(
            "canvas.instance",
            format!("{i:?} is not a Canvas instance name (lower-case letters, digits, '-')"),
        );
    }
    let fhir = match (&raw.fhir_url, instance) {
        (Some(u), _) => http_url(found, "canvas.fhir_url", u),
        (None, Some(i)) => Url::parse(&format!("https://fumage-{i}.canvasmedical.com/")).ok(),
        (None, None) => None,
    };
    let token = match (&raw.token_url, instance) {
        (Some(u), _) => http_url(found, "canvas.token_url", u),
        (None, Some(i)) => Url::parse(&format!("https://{i}.canvasmedical.com/auth/token/")).ok(),
        (None, None) => {
            found.add(
                "canvas.token_url",
                "required when canvas.fhir_url is set without canvas.instance",
            );
            None
        }
    };
    let client_id = raw.client_id.clone().filter(|s| !s.is_empty());
    let client_secret = raw.client_secret.clone().filter(|s| !s.is_empty());
    if client_id.is_none() {
        found.add("canvas.client_id", "required to reach Canvas");
    }
    if client_secret.is_none() {
        found.add(
            "canvas.client_secret",
            "required to reach Canvas (set SLOTGATE_CANVAS__CLIENT_SECRET)",
        );
    }
    match (fhir, token, client_id, client_secret) {
        (Some(mut fhir_url), Some(token_url), Some(client_id), Some(secret)) => {
            if !fhir_url.path().ends_with('/') {
                let path = format!("{}/", fhir_url.path());
                fhir_url.set_path(&path);
            }
            CanvasTarget::Remote(CanvasEndpoint {
                fhir_url,
                token_url,
                client_id,
                client_secret: Secret::new(secret),
            })
        }
        // Problems were recorded; the value is never used.
        _ => CanvasTarget::Embedded(SandboxSettings {
            listen: ([127, 0, 0, 1], 0).into(),
            clinicians: 0,
            visits_per_day: 0,
            latency_ms: 0,
            error_rate: 0.0,
            reject_double_booking: false,
        }),
    }
}

fn pem(
    found: &mut Found,
    key: &str,
    value: Option<String>,
    check: fn(&[u8]) -> bool,
) -> Option<String> {
    let value = value.filter(|v| !v.trim().is_empty())?;
    // Either the PEM itself or the path of a file holding it (a mounted secret).
    let text = if value.contains("-----BEGIN") {
        value
    } else {
        match std::fs::read_to_string(&value) {
            Ok(t) => t,
            Err(e) => {
                found.add(key, format!("neither a PEM nor a readable file ({e})"));
                return None;
            }
        }
    };
    if check(text.as_bytes()) {
        Some(text)
    } else {
        found.add(key, "is not a PEM public key of that algorithm");
        None
    }
}

fn auth(found: &mut Found, raw: RawAuth, embedded: bool) -> AuthSettings {
    use jsonwebtoken::DecodingKey;
    let rs = pem(
        found,
        "auth.rs256_public_key_pem",
        raw.rs256_public_key_pem,
        |b| DecodingKey::from_rsa_pem(b).is_ok(),
    );
    let es = pem(
        found,
        "auth.es256_public_key_pem",
        raw.es256_public_key_pem,
        |b| DecodingKey::from_ec_pem(b).is_ok(),
    );
    let jwks = raw
        .jwks_url
        .as_deref()
        .and_then(|u| http_url(found, "auth.jwks_url", u));
    let mut hs = raw.hs256_secret.filter(|s| !s.is_empty());
    if let Some(s) = &hs
        && s.len() < 32
    {
        found.add(
            "auth.hs256_secret",
            "must be at least 32 characters (256 bits) long",
        );
    }
    let mut generated = false;
    if hs.is_none() && rs.is_none() && es.is_none() && jwks.is_none() {
        if embedded {
            // A newcomer's sandbox run: a secret for this process only, never a shared default.
            hs = Some(random_hex(32));
            generated = true;
        } else {
            found.add(
                "auth",
                "one of hs256_secret, rs256_public_key_pem, es256_public_key_pem or jwks_url is required",
            );
        }
    }
    let mut required = |key: &str, value: Option<String>, dev: &str| match value {
        Some(v) if !v.is_empty() => v,
        _ if embedded => dev.to_owned(),
        _ => {
            found.add(key, "required when slotgate talks to a real Canvas");
            String::new()
        }
    };
    let issuer = required("auth.issuer", raw.issuer, "slotgate-dev");
    let audience = required("auth.audience", raw.audience, "slotgate");
    if raw.patient_claim.is_empty() {
        found.add("auth.patient_claim", "must not be empty");
    }
    AuthSettings {
        issuer,
        audience,
        hs256_secret: hs.map(Secret::new),
        hs256_generated: generated,
        rs256_public_key_pem: rs,
        es256_public_key_pem: es,
        jwks_url: jwks,
        patient_claim: raw.patient_claim,
        leeway_seconds: found.range("auth.leeway_seconds", raw.leeway_seconds, 0, 300),
        jwks_refresh_seconds: found.range(
            "auth.jwks_refresh_seconds",
            raw.jwks_refresh_seconds,
            1,
            86_400,
        ),
    }
}

/// `bytes` random bytes from the operating system, hex encoded.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // The OS generator only fails when the process cannot run at all.
    aws_lc_rs::rand::fill(&mut buf).expect("the system random generator is available");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn booking(found: &mut Found, raw: &RawBooking) -> BookingPolicy {
    BookingPolicy {
        min_notice_minutes: found.range(
            "booking.min_notice_minutes",
            raw.min_notice_minutes,
            0,
            525_600,
        ),
        max_horizon_days: found.range("booking.max_horizon_days", raw.max_horizon_days, 1, 730),
        max_range_days: found.range("booking.max_range_days", raw.max_range_days, 1, 92),
        hold_minutes: found.range("booking.hold_minutes", raw.hold_minutes, 1, 1440),
        patient_cancel_cutoff_hours: found.range(
            "booking.patient_cancel_cutoff_hours",
            raw.patient_cancel_cutoff_hours,
            0,
            8760,
        ),
        max_active_per_patient: found.range(
            "booking.max_active_per_patient",
            raw.max_active_per_patient,
            1,
            1000,
        ),
        max_holds_per_patient: found.range(
            "booking.max_holds_per_patient",
            raw.max_holds_per_patient,
            1,
            100,
        ),
    }
}

fn state(found: &mut Found, raw: &RawState) -> StateSettings {
    match raw.backend.as_str() {
        "memory" => StateSettings::Memory,
        "redis" => match raw.redis_url.as_deref().map(Url::parse) {
            Some(Ok(url)) if matches!(url.scheme(), "redis" | "rediss") => StateSettings::Redis {
                url,
                key_prefix: raw.key_prefix.clone(),
                sync_lease: std::time::Duration::from_secs(found.range(
                    "state.sync_lease_seconds",
                    raw.sync_lease_seconds,
                    1,
                    300,
                )),
            },
            _ => {
                found.add(
                    "state.redis_url",
                    "required with backend = \"redis\": redis://host:port/db or rediss://…",
                );
                StateSettings::Memory
            }
        },
        other => {
            found.add("state.backend", format!("{other:?} is not memory or redis"));
            StateSettings::Memory
        }
    }
}

fn telemetry(found: &mut Found, raw: RawTelemetry) -> TelemetrySettings {
    let log_format = match raw.log_format.as_str() {
        "json" => LogFormat::Json,
        "pretty" => LogFormat::Pretty,
        other => {
            found.add(
                "telemetry.log_format",
                format!("{other:?} is not json or pretty"),
            );
            LogFormat::Json
        }
    };
    if tracing_subscriber::EnvFilter::try_new(&raw.log_filter).is_err() {
        found.add(
            "telemetry.log_filter",
            "is not a tracing filter like \"info,slotgate=debug\"",
        );
    }
    TelemetrySettings {
        log_format,
        log_filter: raw.log_filter,
        service_name: raw.service_name,
    }
}

fn modalities(found: &mut Found, key: &str, list: &[String]) -> Vec<Modality> {
    let mut out = Vec::new();
    for (j, m) in list.iter().enumerate() {
        match Modality::parse(m) {
            Some(m) if !out.contains(&m) => out.push(m),
            Some(_) => found.add(format!("{key}[{j}]"), format!("{m:?} is listed twice")),
            None => found.add(
                format!("{key}[{j}]"),
                format!("{m:?} is not telehealth or in_person"),
            ),
        }
    }
    out
}

fn reasons(found: &mut Found, raw: &[RawReason]) -> Vec<Reason> {
    let mut out = Vec::new();
    let mut codes = BTreeSet::new();
    for (i, r) in raw.iter().enumerate() {
        let key = |k: &str| format!("reasons[{i}].{k}");
        if r.code.trim().is_empty() {
            found.add(key("code"), "must not be empty");
        } else if !codes.insert(r.code.clone()) {
            found.add(
                key("code"),
                format!("{:?} is used by another reason", r.code),
            );
        }
        if r.system.trim().is_empty() {
            found.add(
                key("system"),
                "must not be empty (INTERNAL, SNOMED, ICD10, …)",
            );
        }
        if r.display.trim().is_empty() {
            found.add(key("display"), "must not be empty");
        }
        if r.durations.is_empty() {
            found.add(key("durations"), "a reason needs at least one duration");
        }
        let mut durations = Vec::new();
        for (j, d) in r.durations.iter().enumerate() {
            match u32::try_from(*d) {
                Ok(d) if (1..=480).contains(&d) => durations.push(d),
                _ => found.add(
                    format!("reasons[{i}].durations[{j}]"),
                    format!("{d} is not between 1 and 480 minutes"),
                ),
            }
        }
        durations.sort_unstable();
        durations.dedup();
        let allowed = modalities(found, &key("modalities"), &r.modalities);
        if r.modalities.is_empty() {
            found.add(key("modalities"), "a reason needs at least one modality");
        }
        let mut types = BTreeMap::new();
        for m in &allowed {
            match r.appointment_type.get(m.as_str()) {
                Some(c) if !c.system.is_empty() && !c.code.is_empty() => {
                    types.insert(*m, TypeCoding { system: c.system.clone(), code: c.code.clone() });
                }
                _ => found.add(
                    format!("reasons[{i}].appointment_type.{m}"),
                    format!("{m} is allowed, so it needs the Canvas appointment type it books ({{ system, code }})"),
                ),
            }
        }
        for k in r.appointment_type.keys() {
            if Modality::parse(k).is_none() {
                found.add(
                    format!("reasons[{i}].appointment_type.{k}"),
                    "is not telehealth or in_person",
                );
            }
        }
        out.push(Reason {
            code: r.code.clone(),
            system: r.system.clone(),
            display: r.display.clone(),
            durations,
            modalities: types,
            specialties: r.specialties.clone(),
            patient_bookable: r.patient_bookable,
        });
    }
    out
}

fn practitioners(
    found: &mut Found,
    raw: &[RawPractitioner],
) -> BTreeMap<PractitionerId, PractitionerProfile> {
    let mut out = BTreeMap::new();
    for (i, p) in raw.iter().enumerate() {
        let key = |k: &str| format!("practitioners[{i}].{k}");
        let Ok(id) = p.id.parse::<PractitionerId>() else {
            found.add(
                key("id"),
                format!("{:?} is not a Canvas practitioner id (32 hex digits)", p.id),
            );
            continue;
        };
        let mods = match &p.modalities {
            Some(list) => modalities(found, &key("modalities"), list),
            None => Modality::ALL.to_vec(),
        };
        let licensed_states = p.licensed_states.as_ref().map(|states| {
            states
                .iter()
                .enumerate()
                .filter_map(|(j, s)| match s.parse::<UsState>() {
                    Ok(s) => Some(s),
                    Err(e) => {
                        found.add(
                            format!("practitioners[{i}].licensed_states[{j}]"),
                            e.to_string(),
                        );
                        None
                    }
                })
                .collect()
        });
        if let Some(u) = &p.telehealth_url {
            http_url(found, &key("telehealth_url"), u);
        }
        let profile = PractitionerProfile {
            specialties: p.specialties.clone(),
            modalities: mods,
            languages: p.languages.clone(),
            licensed_states,
            telehealth_url: p.telehealth_url.clone(),
        };
        if out.insert(id, profile).is_some() {
            found.add(key("id"), format!("{:?} is listed twice", p.id));
        }
    }
    out
}

fn locations(found: &mut Found, raw: &[RawLocation]) -> Vec<LocationInfo> {
    let mut out: Vec<LocationInfo> = Vec::new();
    for (i, l) in raw.iter().enumerate() {
        let key = |k: &str| format!("locations[{i}].{k}");
        if l.schedule_key.is_empty() || !l.schedule_key.bytes().all(|b| b.is_ascii_digit()) {
            found.add(
                key("schedule_key"),
                format!(
                    "{:?} is not the <n> of Schedule ids Location.<n>-Staff.<key>",
                    l.schedule_key
                ),
            );
        } else if out.iter().any(|o| o.schedule_key == l.schedule_key) {
            found.add(
                key("schedule_key"),
                format!("{:?} is mapped twice", l.schedule_key),
            );
        }
        // Canvas writes Location ids as lower-case hyphenated UUIDs; so do we, to compare them.
        let id = match uuid::Uuid::parse_str(&l.id) {
            Ok(u) => u.to_string(),
            Err(_) => {
                found.add(
                    key("id"),
                    format!("{:?} is not a Canvas Location id (a UUID)", l.id),
                );
                l.id.clone()
            }
        };
        let timezone = TimeZone::get(&l.timezone);
        if timezone.is_err() {
            found.add(
                key("timezone"),
                format!("{:?} is not an IANA time zone", l.timezone),
            );
        }
        let state = l.state.parse::<UsState>();
        if let Err(e) = &state {
            found.add(key("state"), e.to_string());
        }
        if let (Ok(timezone), Ok(state)) = (timezone, state) {
            out.push(LocationInfo {
                schedule_key: l.schedule_key.clone(),
                id,
                timezone,
                state,
            });
        }
    }
    out
}
