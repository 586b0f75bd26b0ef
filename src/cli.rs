//! Subcommands: serve (default), sandbox, openapi, check-config, token.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::auth::DevToken;
use crate::config::{CanvasTarget, Settings, Sources};
use crate::sandbox::{ClinicSpec, Faults, Sandbox, SandboxOptions};
use crate::startup::Application;
use crate::types::PatientId;

#[derive(Debug, Parser)]
#[command(
    name = "slotgate",
    version,
    about = "Scheduling API gateway for clinics on Canvas Medical"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (the default). Without Canvas settings, on the embedded sandbox.
    Serve,
    /// Run the Canvas-shaped sandbox alone.
    Sandbox(SandboxArgs),
    /// Print the OpenAPI document.
    Openapi,
    /// Validate a configuration file (with SLOTGATE_* overrides) and explain every mistake.
    CheckConfig { file: PathBuf },
    /// Mint a development token signed with the configured HS256 secret.
    Token(TokenArgs),
    /// Print a starter [[locations]] / [[practitioners]] configuration read from Canvas (with
    /// the [canvas] settings; the embedded sandbox when none).
    Discover,
    /// Exit 0 when the URL answers 2xx within two seconds (container health checks; the
    /// image has no shell or curl).
    Probe {
        #[arg(default_value = "http://127.0.0.1:8080/readyz")]
        url: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    #[arg(long, env = "SANDBOX_LISTEN", default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    #[arg(long, env = "SANDBOX_CLIENT_ID", default_value = "slotgate-sandbox")]
    pub client_id: String,
    #[arg(
        long,
        env = "SANDBOX_CLIENT_SECRET",
        default_value = "sandbox-secret",
        hide_env_values = true
    )]
    pub client_secret: String,
    /// 0: the demo clinic; N: a generated clinic of N clinicians.
    #[arg(long, env = "SANDBOX_CLINICIANS", default_value_t = 0)]
    pub clinicians: usize,
    #[arg(long, env = "SANDBOX_LATENCY_MS", default_value_t = 0)]
    pub latency_ms: u64,
    #[arg(long, env = "SANDBOX_ERROR_RATE", default_value_t = 0.0)]
    pub error_rate: f64,
    #[arg(long, env = "SANDBOX_REJECT_DOUBLE_BOOKING")]
    pub reject_double_booking: bool,
    /// Send Canvas appointment notifications here (slotgate's /v1/webhooks/canvas).
    #[arg(long, env = "SANDBOX_NOTIFY_URL")]
    pub notify_url: Option<String>,
    /// The whsec_ secret notifications are signed with (slotgate's [sync] canvas_webhook_secret).
    #[arg(long, env = "SANDBOX_NOTIFY_SECRET", hide_env_values = true)]
    pub notify_secret: Option<String>,
    /// Print the [[reasons]], [[locations]] and [[practitioners]] slotgate needs for this
    /// sandbox's clinic, and exit.
    #[arg(long)]
    pub print_rules: bool,
    /// Print the clinic's demo patients (Canvas id, name, state), and exit.
    #[arg(long)]
    pub list_patients: bool,
}

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// Canvas patient key the token speaks for (patient-app tokens).
    #[arg(long)]
    pub patient: Option<String>,
    #[arg(long, default_value = "scheduling.read scheduling.book")]
    pub scope: String,
    #[arg(long, default_value = "dev-user")]
    pub subject: String,
    #[arg(long, default_value_t = 60)]
    pub ttl_minutes: i64,
}

fn load_or_report() -> Result<Settings, ExitCode> {
    Settings::from_environment().map_err(|problems| {
        eprintln!("slotgate cannot start; the configuration has problems:\n{problems}");
        ExitCode::from(2)
    })
}

pub async fn serve() -> ExitCode {
    let settings = match load_or_report() {
        Ok(s) => s,
        Err(code) => return code,
    };
    let telemetry = crate::telemetry::init(&settings.telemetry);
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "start-up failed");
            eprintln!("slotgate did not start: {e}");
            telemetry.shutdown();
            return ExitCode::FAILURE;
        }
    };
    print_banner(&app);
    tracing::info!(address = %app.address(), "slotgate is serving");
    let result = app.run_until_stopped().await;
    tracing::info!("slotgate stopped");
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("slotgate stopped with an error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_banner(app: &Application) {
    let mut address = app.address();
    if address.ip().is_unspecified() {
        address.set_ip([127, 0, 0, 1].into());
    }
    let settings = app.settings();
    println!("\nslotgate is listening on http://{address}");
    println!("  Swagger UI:   http://{address}/swagger-ui/");
    println!("  OpenAPI:      http://{address}/api-docs/openapi.json");
    if let (CanvasTarget::Embedded(_), Some(sandbox)) = (&settings.canvas.target, app.sandbox()) {
        println!("  Canvas:       embedded sandbox at {}", sandbox.base_url());
    }
    if let (Some(secret), true) = (&settings.auth.hs256_secret, settings.auth.hs256_generated) {
        let minter = DevToken {
            secret,
            issuer: &settings.auth.issuer,
            audience: &settings.auth.audience,
            patient_claim: &settings.auth.patient_claim,
        };
        let scope = "scheduling.read scheduling.book scheduling.staff scheduling.admin";
        if let Ok(token) = minter.mint("dev-staff", None, scope, 12 * 3600) {
            println!("\nA development token for this process (staff, all scopes, 12 hours);");
            println!("paste it into Swagger UI's \"Authorize\" dialog:\n\n{token}\n");
        }
        let demo = app.sandbox().map(|s| s.control().clinic());
        let patient = demo.as_ref().and_then(|c| c.first_visit_patient());
        if let Some(p) = patient {
            let scope = "scheduling.read scheduling.book";
            if let Ok(token) = minter.mint("dev-patient", Some(&p.id), scope, 12 * 3600) {
                println!(
                    "A demo patient, {} {} (in {}), Canvas id {}, and a token that speaks for",
                    p.given, p.family, p.state, p.id
                );
                println!("them (read and book, 12 hours): the patient app's view of the same API.");
                println!(
                    "Swagger UI's example bodies book them; `slotgate sandbox --list-patients` lists the others.\n\n{token}\n"
                );
                println!("For the README's walk-through in a shell:\n");
                println!(
                    "export BASE=http://{address} PATIENT={} TOKEN={token}\n",
                    p.id
                );
            }
        }
    }
}

pub async fn sandbox(args: SandboxArgs) -> ExitCode {
    let today = jiff::ZonedDateTime::now().date();
    if args.list_patients {
        let clinic = match args.clinicians {
            0 => crate::sandbox::Clinic::demo(today),
            n => crate::sandbox::Clinic::generated(n, today),
        };
        println!("{:<34} {:<24} state", "Canvas patient id", "name");
        for p in clinic.patients.iter().filter(|p| p.active) {
            println!(
                "{:<34} {:<24} {}",
                p.id.as_str(),
                format!("{} {}", p.given, p.family),
                p.state
            );
        }
        return ExitCode::SUCCESS;
    }
    if args.print_rules {
        let clinic = match args.clinicians {
            0 => crate::sandbox::Clinic::demo(today),
            n => crate::sandbox::Clinic::generated(n, today),
        };
        println!(
            "{}\n{}",
            crate::config::DEMO_REASONS,
            clinic.slotgate_rules_toml()
        );
        return ExitCode::SUCCESS;
    }
    if !(0.0..=1.0).contains(&args.error_rate) {
        eprintln!("--error-rate must be between 0.0 and 1.0");
        return ExitCode::from(2);
    }
    let sandbox = match Sandbox::start(SandboxOptions {
        listen: args.listen,
        client_id: args.client_id,
        client_secret: args.client_secret,
        clinic: match args.clinicians {
            0 => ClinicSpec::Demo,
            n => ClinicSpec::Generated { clinicians: n },
        },
        faults: Faults {
            latency_ms: args.latency_ms,
            error_rate: args.error_rate,
            ..Faults::default()
        },
        reject_double_booking: args.reject_double_booking,
        token_ttl_seconds: 36_000,
        notify: args
            .notify_url
            .clone()
            .map(|url| crate::sandbox::notify::NotifyTarget {
                url,
                secret: args.notify_secret.clone().unwrap_or_default(),
            }),
    })
    .await
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("the sandbox did not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("Canvas sandbox listening on {}", sandbox.base_url());
    let _ = tokio::signal::ctrl_c().await;
    sandbox.stop().await;
    ExitCode::SUCCESS
}

pub async fn probe(url: &str) -> ExitCode {
    let client = match reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(2))
        .build()
    {
        Ok(c) => c,
        Err(_) => return ExitCode::FAILURE,
    };
    match client.get(url).send().await {
        Ok(r) if r.status().is_success() => ExitCode::SUCCESS,
        Ok(r) => {
            eprintln!("{url} answered {}", r.status());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{url} did not answer: {e}");
            ExitCode::FAILURE
        }
    }
}

pub fn openapi() -> ExitCode {
    print!("{}", crate::api::docs::openapi_json());
    ExitCode::SUCCESS
}

pub fn check_config(file: &Path) -> ExitCode {
    match Settings::load(&Sources {
        file: Some(file),
        environment: true,
        overrides: &[],
    }) {
        Ok(settings) => {
            let canvas = match &settings.canvas.target {
                CanvasTarget::Remote(e) => format!("Canvas at {}", e.fhir_url),
                CanvasTarget::Embedded(_) => "the embedded Canvas sandbox".to_owned(),
            };
            let smart = match &settings.smart {
                Some(smart) => format!(
                    "; publishes SMART Scheduling Links ({} days, booked at {})",
                    smart.days, smart.booking_url
                ),
                None => String::new(),
            };
            println!(
                "{}: OK. {} reasons, {} practitioners, {} locations; talks to {canvas}{smart}.",
                file.display(),
                settings.rules.reasons.len(),
                settings.rules.practitioners.len(),
                settings.rules.locations.len()
            );
            ExitCode::SUCCESS
        }
        Err(problems) => {
            println!("{}: {} problem(s)", file.display(), problems.0.len());
            for p in &problems.0 {
                println!("  - {p}");
            }
            ExitCode::FAILURE
        }
    }
}

pub fn token(args: TokenArgs) -> ExitCode {
    let settings = match load_or_report() {
        Ok(s) => s,
        Err(code) => return code,
    };
    let auth = &settings.auth;
    let secret = match (&auth.hs256_secret, auth.hs256_generated) {
        (Some(secret), false) => secret,
        _ => {
            eprintln!(
                "no [auth] hs256_secret is configured; development tokens need one (SLOTGATE_AUTH__HS256_SECRET)"
            );
            return ExitCode::from(2);
        }
    };
    let patient = match args.patient.as_deref().map(str::parse::<PatientId>) {
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => {
            eprintln!("--patient: {e}");
            return ExitCode::from(2);
        }
        None => None,
    };
    let minter = DevToken {
        secret,
        issuer: &auth.issuer,
        audience: &auth.audience,
        patient_claim: &auth.patient_claim,
    };
    match minter.mint(
        &args.subject,
        patient.as_ref(),
        &args.scope,
        args.ttl_minutes * 60,
    ) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("could not sign the token: {e}");
            ExitCode::FAILURE
        }
    }
}

pub async fn discover() -> ExitCode {
    let settings = match load_or_report() {
        Ok(s) => s,
        Err(code) => return code,
    };
    let (endpoint, _sandbox) = match &settings.canvas.target {
        CanvasTarget::Remote(endpoint) => (endpoint.clone(), None),
        CanvasTarget::Embedded(options) => {
            match crate::startup::start_sandbox(options, None).await {
                Ok((endpoint, sandbox)) => (endpoint, Some(sandbox)),
                Err(e) => {
                    eprintln!("slotgate discover: the embedded sandbox did not start: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    let source = endpoint.fhir_url.to_string();
    let canvas = match crate::startup::canvas_client(&settings, endpoint, None) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("slotgate discover: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Read-only: three searches, each followed through its pages.
    let read = tokio::try_join!(
        async { canvas.schedules().await.map_err(|e| ("Schedules", e)) },
        async {
            canvas
                .practitioners()
                .await
                .map_err(|e| ("Practitioners", e))
        },
        async { canvas.locations().await.map_err(|e| ("Locations", e)) },
    );
    match read {
        Ok((schedules, practitioners, locations)) => {
            let today = jiff::ZonedDateTime::now().date();
            print!(
                "{}",
                crate::config::discover::starter(
                    &source,
                    &schedules,
                    &practitioners,
                    &locations,
                    today
                )
            );
            ExitCode::SUCCESS
        }
        Err((what, e)) => {
            eprintln!(
                "slotgate discover: could not read {what} from Canvas at {source}: {e}\n\
                 check [canvas] instance (or fhir_url), client_id and client_secret, and that this machine reaches Canvas"
            );
            ExitCode::FAILURE
        }
    }
}
