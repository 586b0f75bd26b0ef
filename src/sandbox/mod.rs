//! The Canvas sandbox: a Canvas-shaped FHIR server ("Fumage" plus the OAuth token endpoint)
//! that slotgate embeds for newcomers and every integration test talks to over real HTTP.
//!
//! It is faithful to the wire facts of `shared/design/canvas-fhir.md`, so whatever works
//! against it works against Canvas. The seed lives in [`clinic`], slot math in [`slots`],
//! appointment rules in [`appointments`]; `http` only routes.
//!
//! Where Canvas's behaviour is not documented, the sandbox picks the stricter or the more
//! likely answer and says so:
//! - `GET /Slot` with a well-formed schedule id that names no Schedule answers an empty
//!   bundle (slots come from calendars; no calendar, no slots); a missing or malformed id, a
//!   bad date or duration, or a range over 366 days is 400. `end` before `start` is empty.
//! - Appointment bodies: a missing or malformed field is 400 `invalid` (details "Bad request",
//!   the reason in `diagnostics`); unknown codes, locations, practitioners and patients, and a
//!   missing patient for a note type, are 422 `business-rule`. `status` is required on PUT
//!   too (FHIR 1..1), and an Other Event's `appointmentType` must be re-sent on PUT (§4).
//! - PUT deletes stored identifiers that were not sent again unless their period has ended,
//!   even when `identifier` is omitted altogether (§4: "identifiers not sent are deleted").
//! - A note-type appointment booked without a reason gets "No description given"; Other
//!   Events get no note (no note-id extension) and no reason.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::canvas::fhir;

pub mod appointments;
pub mod clinic;
mod http;
pub mod notify;
pub mod params;
pub mod slots;
mod state;

pub use clinic::Clinic;
use state::{Shared, today_utc};

/// How to start a sandbox. `Default` is the demo clinic on a random loopback port.
#[derive(Clone)]
pub struct SandboxOptions {
    /// Port 0 picks a random free port.
    pub listen: SocketAddr,
    /// The OAuth client credentials the token endpoint accepts.
    pub client_id: String,
    pub client_secret: String,
    pub clinic: ClinicSpec,
    pub faults: Faults,
    /// Canvas allows double booking unless configured otherwise (§4).
    pub reject_double_booking: bool,
    /// `expires_in` of issued tokens; Canvas: 36000 (ten hours).
    pub token_ttl_seconds: u64,
    /// Where to send appointment notifications, if anywhere.
    pub notify: Option<notify::NotifyTarget>,
}

/// By hand, so that the client secret a sandbox accepts is never printed.
impl std::fmt::Debug for SandboxOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxOptions")
            .field("listen", &self.listen)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("clinic", &self.clinic)
            .field("faults", &self.faults)
            .field("reject_double_booking", &self.reject_double_booking)
            .field("token_ttl_seconds", &self.token_ttl_seconds)
            .field("notify", &self.notify.as_ref().map(|_| "<target>"))
            .finish()
    }
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            client_id: "sandbox-client".into(),
            client_secret: "sandbox-secret".into(),
            clinic: ClinicSpec::Demo,
            faults: Faults::default(),
            reject_double_booking: false,
            token_ttl_seconds: 36_000,
            notify: None,
        }
    }
}

/// Which seed to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClinicSpec {
    Demo,
    Generated {
        clinicians: usize,
    },
    /// A generated clinic whose clinicians each have `visits_per_day` visits booked on every
    /// working day from yesterday to 30 days ahead.
    Booked {
        clinicians: usize,
        visits_per_day: usize,
    },
}

/// Failure modes to inject; changeable while running.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Added to every FHIR and token response.
    pub latency_ms: u64,
    /// Fraction (0.0..=1.0) of FHIR requests answered 503 OperationOutcome.
    pub error_rate: f64,
    /// Every request (token and FHIR) answered 503.
    pub down: bool,
    /// `POST /Appointment` stores the appointment, then waits this long before answering.
    pub stall_after_create_ms: u64,
    /// `POST /Appointment` waits this long before it stores the appointment (and answers).
    pub commit_late_ms: u64,
    /// The next this-many FHIR `PUT`s are answered 503 (a write that fails after others in
    /// the same operation succeeded).
    pub fail_next_puts: u32,
    /// Up to this much more latency, drawn uniformly per request.
    pub latency_jitter_ms: u64,
    /// Sent as `Retry-After` (seconds) on every 503 the faults make, when above 0.
    pub retry_after_seconds: u64,
    /// The next this-many `GET /Appointment?identifier=…` lookups answer 503.
    pub fail_next_lookups: u32,
    /// Fraction (0.0..=1.0) of `POST /Appointment`s that commit after a random delay of up to
    /// `late_commit_max_ms`, holding their answer until then, as `commit_late_ms` does.
    pub late_commit_rate: f64,
    pub late_commit_max_ms: u64,
    /// Fraction (0.0..=1.0) of FHIR requests whose answer is lost: the request is carried out
    /// (a create is stored), then the connection breaks before the body is complete.
    pub drop_rate: f64,
    /// The next this-many `POST /Appointment`s are stored, then their answer is lost that way.
    pub drop_next_creates: u32,
    /// The next this-many `POST /Appointment`s are stored, then answered 500 (a proxy or
    /// worker failing after Canvas committed).
    pub fail_after_next_creates: u32,
    /// Every FHIR answer is made at once, then held this long before it is sent: what it says
    /// may be out of date by the time it arrives, as over a slow network.
    pub hold_answers_ms: u64,
}

impl Faults {
    /// The fractions are fractions.
    pub fn check(&self) -> Result<(), &'static str> {
        for (name, rate) in [
            ("error_rate", self.error_rate),
            ("late_commit_rate", self.late_commit_rate),
            ("drop_rate", self.drop_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(name);
            }
        }
        Ok(())
    }
}

/// One request as the sandbox saw it (every route but `/_sandbox/*`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub method: String,
    pub path: String,
    pub query: String,
    pub traceparent: Option<String>,
    /// JSON bodies as sent; form bodies as an object with secrets masked.
    pub body: Option<serde_json::Value>,
    /// The response status; 499 when the client went away before the answer.
    pub status: u16,
}

impl JournalEntry {
    fn empty() -> JournalEntry {
        JournalEntry {
            method: String::new(),
            path: String::new(),
            query: String::new(),
            traceparent: None,
            body: None,
            status: 0,
        }
    }
}

/// A running sandbox. Dropping it stops the server without waiting; `stop` waits.
pub struct Sandbox {
    addr: SocketAddr,
    control: SandboxControl,
    handle: ServerHandle,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Sandbox {
    /// Binds, seeds and spawns the server on the current tokio runtime.
    pub async fn start(options: SandboxOptions) -> std::io::Result<Sandbox> {
        let today = today_utc();
        let clinic = match options.clinic {
            ClinicSpec::Demo => Clinic::demo(today),
            ClinicSpec::Generated { clinicians } => Clinic::generated(clinicians, today),
            ClinicSpec::Booked {
                clinicians,
                visits_per_day,
            } => Clinic::generated(clinicians, today).with_visits(visits_per_day),
        };
        let shared = Arc::new(Shared::new(&options, clinic).map_err(std::io::Error::other)?);
        let listener = TcpListener::bind(options.listen)?;
        let mut addr = listener.local_addr()?;
        if addr.ip().is_unspecified() {
            addr.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .wrap(from_fn(http::frontdoor::frontdoor))
                .configure(http::routes)
                .default_service(web::to(http::unknown_path))
        })
        .workers(2)
        .tcp_nodelay(true)
        .disable_signals()
        .shutdown_timeout(5)
        .listen(listener)?
        .run();
        let handle = server.handle();
        let task = tokio::spawn(server);
        Ok(Sandbox {
            addr,
            control: SandboxControl { shared },
            handle,
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:<port>`: the FHIR root, with the token endpoint at `/auth/token/`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn control(&self) -> SandboxControl {
        self.control.clone()
    }

    /// Stops accepting, lets requests in flight finish (up to 5 s), and waits for the end.
    pub async fn stop(mut self) {
        self.handle.stop(true).await;
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if self.task.is_some() {
            // The command is sent at once; nobody waits for it.
            drop(self.handle.stop(false));
        }
    }
}

/// A handle on a running sandbox's state, for tests and for slotgate's embedding.
#[derive(Clone, Debug)]
pub struct SandboxControl {
    shared: Arc<Shared>,
}

impl SandboxControl {
    pub fn set_faults(&self, faults: Faults) {
        self.shared.set_faults(faults);
    }

    pub fn faults(&self) -> Faults {
        self.shared.faults()
    }

    pub fn set_reject_double_booking(&self, on: bool) {
        self.shared.set_reject_double_booking(on);
    }

    /// Sends appointment notifications to `target` (or stops, with `None`).
    pub fn set_notify(&self, target: Option<notify::NotifyTarget>) {
        self.shared.set_notify(target);
    }

    /// A valid bearer token, so tests can change appointments the way Canvas's own UI would.
    pub fn issue_token(&self) -> String {
        self.shared.issue_token()
    }

    /// Every token issued so far stops working: the next FHIR call gets a 401.
    pub fn revoke_tokens(&self) {
        self.shared.revoke_tokens();
    }

    pub fn reject_double_booking(&self) -> bool {
        self.shared.reject_double_booking()
    }

    pub fn journal(&self) -> Vec<JournalEntry> {
        self.shared.journal()
    }

    pub fn clear_journal(&self) {
        self.shared.clear_journal();
    }

    /// Every appointment, in creation order, as `GET /Appointment/<id>` returns it.
    pub fn appointments(&self) -> Vec<fhir::Appointment> {
        self.shared.appointments()
    }

    /// The seed the sandbox serves.
    pub fn clinic(&self) -> Arc<Clinic> {
        self.shared.clinic.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shareable<T: Clone + Send + Sync + 'static>() {}

    #[test]
    fn handles_can_cross_threads() {
        shareable::<SandboxControl>();
        shareable::<Faults>();
        shareable::<SandboxOptions>();
        fn sendable<T: Send>() {}
        sendable::<Sandbox>();
    }

    #[test]
    fn debug_output_shows_no_secret_token_or_patient() {
        let options = SandboxOptions {
            client_secret: "very-secret-value".into(),
            notify: Some(notify::NotifyTarget {
                url: "http://127.0.0.1:1/hook".into(),
                secret: "whsec_c2VjcmV0LWtleQ==".into(),
            }),
            ..SandboxOptions::default()
        };
        let printed = format!("{options:?}");
        assert!(printed.contains("sandbox-client"), "{printed}");
        assert!(!printed.contains("very-secret-value"), "{printed}");
        assert!(!printed.contains("whsec_"), "{printed}");

        let clinic = Clinic::demo(today_utc());
        let family = clinic.patients[0].family.clone();
        let shared = Shared::new(&options, clinic).unwrap();
        let printed = format!(
            "{:?}",
            SandboxControl {
                shared: Arc::new(shared)
            }
        );
        assert!(!printed.contains("very-secret-value"), "{printed}");
        assert!(!printed.contains(&family), "{printed}");
    }

    #[test]
    fn faults_accept_partial_json() {
        let faults: Faults = serde_json::from_str(r#"{"down": true}"#).unwrap();
        assert_eq!(
            faults,
            Faults {
                down: true,
                ..Faults::default()
            }
        );
    }
}
