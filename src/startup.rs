//! The application factory used by `main` and by every test: binds the listener (port 0 in
//! tests), starts the embedded sandbox when no Canvas is configured, builds the state and the
//! HTTP server, and stops everything in order.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::{Compress, from_fn};
use actix_web::{App, HttpServer, web};
use tracing_actix_web::TracingLogger;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::api::limits::{self, Limits};
use crate::api::{self, AppState, context, docs::ApiDoc};
use crate::auth::Verifier;
use crate::canvas::{CanvasClient, ClientOptions};
use crate::config::{CanvasEndpoint, CanvasTarget, Secret, Settings, StateSettings, random_hex};
use crate::metrics::Metrics;
use crate::sandbox::notify::NotifyTarget;
use crate::sandbox::{ClinicSpec, Faults, Sandbox, SandboxOptions};
use crate::scheduling::Services;
use crate::scheduling::answer_cache::AnswerCache;
use crate::scheduling::directory::Directory;
use crate::scheduling::slot_cache::SlotCache;
use crate::scheduling::slot_id::SlotIds;
use crate::store::Store;
use crate::store::memory::MemoryStore;
use crate::store::sync::{MemorySyncStore, SyncStore};
use crate::sync::inbound::Inbound;
use crate::sync::leader::Leadership;
use crate::sync::outbound::SyncEngine;
use crate::telemetry::SlotgateRootSpan;
use std::sync::atomic::{AtomicBool, Ordering};

/// Memory for rendered availability answers.
const ANSWER_CACHE_BYTES: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("the embedded Canvas sandbox did not start: {0}")]
    Sandbox(std::io::Error),
    #[error("the Canvas client could not be built: {0}")]
    Canvas(#[from] crate::canvas::Error),
    #[error("the token verifier could not be built: {0}")]
    Auth(#[from] jsonwebtoken::errors::Error),
    #[error("[state] redis_url is not usable: {0}")]
    Redis(String),
    #[error("the calendar-sync state could not be loaded: {0}")]
    Sync(String),
}

pub struct Application {
    address: SocketAddr,
    server: Server,
    sandbox: Option<Sandbox>,
    settings: Arc<Settings>,
    /// Loops that run beside the server (directory refresh, …); stopped with it.
    background: Vec<tokio::task::JoinHandle<()>>,
    /// Flushed last, so a restart finds what was delivered and what was pending.
    sync_store: Arc<dyn SyncStore>,
    /// Its push channels are closed at shutdown, by the sync leader.
    inbound: Arc<Inbound>,
    leading: Arc<AtomicBool>,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Application, StartError> {
        let listener =
            TcpListener::bind(settings.server.listen).map_err(|source| StartError::Bind {
                address: settings.server.listen,
                source,
            })?;
        let address = listener.local_addr().map_err(|source| StartError::Bind {
            address: settings.server.listen,
            source,
        })?;
        let (endpoint, sandbox) = match &settings.canvas.target {
            CanvasTarget::Remote(endpoint) => (endpoint.clone(), None),
            CanvasTarget::Embedded(options) => {
                // The sandbox reports appointment changes to this slotgate, as a clinic's
                // Canvas notification protocol would.
                let mut own = address;
                if own.ip().is_unspecified() {
                    own.set_ip([127, 0, 0, 1].into());
                }
                let notify =
                    settings
                        .sync
                        .canvas_webhook_secret
                        .as_ref()
                        .map(|secret| NotifyTarget {
                            url: format!("http://{own}/v1/webhooks/canvas"),
                            secret: secret.expose().to_owned(),
                        });
                let (endpoint, sandbox) = start_sandbox(options, notify).await?;
                (endpoint, Some(sandbox))
            }
        };
        let metrics = Metrics::new();
        let canvas = canvas_client(&settings, endpoint, Some(metrics.clone()))?;
        let verifier = web::Data::new(Verifier::new(&settings.auth)?);
        let limits = web::Data::new(Limits::new(
            settings.rate_limit.browse_per_minute,
            settings.rate_limit.book_per_minute,
            settings.server.trusted_proxies.clone(),
        ));
        let settings = Arc::new(settings);
        let directory = Arc::new(Directory::new(
            canvas.clone(),
            crate::rules::model::Policy {
                rules: settings.rules.clone(),
                booking: settings.booking.clone(),
            },
            settings.cache.directory_ttl,
        ));
        let warm = verifier.clone();
        let background = vec![
            tokio::spawn(directory.clone().refresh_forever()),
            tokio::spawn(limits.clone().into_inner().sweep_forever()),
            tokio::spawn(async move { warm.warm_up().await }),
        ];
        let slot_cache = Arc::new(SlotCache::new(
            canvas.clone(),
            settings.cache.slot_ttl,
            settings.cache.stale_if_error,
            settings.cache.max_slot_entries,
            Some(metrics.clone()),
        ));
        let mut background = background;
        let (store, sync_store, leadership): (Arc<dyn Store>, Arc<dyn SyncStore>, Leadership) =
            match &settings.state {
                StateSettings::Memory => (
                    Arc::new(MemoryStore::new()),
                    Arc::new(
                        MemorySyncStore::new(settings.sync.state_file.clone())
                            .map_err(|e| StartError::Sync(e.to_string()))?,
                    ),
                    Leadership::Alone,
                ),
                StateSettings::Redis {
                    url,
                    key_prefix,
                    sync_lease,
                } => {
                    // Connected lazily: slotgate starts, and browses, while Redis is away.
                    let client = ::redis::Client::open(url.as_str()).map_err(|e| {
                        StartError::Redis(crate::store::redis::unavailable(e).to_string())
                    })?;
                    let conn = crate::store::redis::connection(&client)
                        .map_err(|e| StartError::Redis(e.to_string()))?;
                    background.extend(crate::store::replicas::spawn(
                        client,
                        conn.clone(),
                        format!("{key_prefix}invalidate"),
                        slot_cache.clone(),
                        metrics.clone(),
                    ));
                    (
                        Arc::new(crate::store::redis::RedisStore::new(
                            conn.clone(),
                            key_prefix,
                        )),
                        Arc::new(crate::store::sync::redis::RedisSyncStore::new(
                            conn.clone(),
                            key_prefix,
                        )),
                        Leadership::Lease {
                            conn,
                            key: format!("{key_prefix}sync:leader"),
                            period: *sync_lease,
                        },
                    )
                }
            };
        let services = Arc::new(Services {
            canvas,
            settings: settings.clone(),
            directory,
            slot_cache,
            slot_ids: SlotIds::new(settings.slot_id_secret.expose().as_bytes()),
            store,
            answers: AnswerCache::new(settings.cache.slot_ttl, ANSWER_CACHE_BYTES),
            log_key: crate::scheduling::log_key(settings.slot_id_secret.expose().as_bytes()),
            publisher: crate::scheduling::smart::Publisher::new(),
        });
        let sync = SyncEngine::new(
            services.clone(),
            sync_store.clone(),
            crate::sync::sinks(&settings.sync.sinks),
            settings.sync.retry_base,
            Some(metrics.clone()),
        );
        let inbound = Inbound::new(services.clone(), sync_store.clone(), sync.clone());
        // Rules reloads: announced by other replicas, SIGHUP, or a changed configuration file.
        background.push(crate::scheduling::reload::spawn(services.clone()));
        // Unconfirmed bookings and unfinished reschedules are finished on every replica.
        let told = sync.clone();
        background.push(crate::scheduling::recovery::spawn(
            services.clone(),
            Arc::new(move |ids| {
                let sync = told.clone();
                Box::pin(async move { sync.enqueue(&ids).await })
            }),
        ));
        // The sync work runs on one replica at a time; every replica enqueues and accepts pushes.
        let leading = Arc::new(AtomicBool::new(false));
        let (engine, calendars) = (sync.clone(), inbound.clone());
        // The waitlist's offers are made by the leader too: one replica at a time.
        let (matching, announcer, waitlist_metrics) =
            (services.clone(), sync.clone(), metrics.clone());
        background.push(sync.spawn_reporting());
        background.push(crate::scheduling::waitlist::matcher::spawn_reporting(
            services.clone(),
            metrics.clone(),
        ));
        background.push(crate::sync::leader::spawn(
            leadership,
            leading.clone(),
            move || {
                let mut tasks = engine.spawn();
                tasks.extend(calendars.spawn());
                let announcer = announcer.clone();
                tasks.push(crate::scheduling::waitlist::matcher::spawn(
                    matching.clone(),
                    Some(waitlist_metrics.clone()),
                    Arc::new(move |notice| {
                        let sync = announcer.clone();
                        Box::pin(async move { sync.announce_offer(notice).await })
                    }),
                ));
                tasks
            },
        ));
        let state = web::Data::new(AppState {
            services,
            sync,
            inbound: inbound.clone(),
            leading: leading.clone(),
        });
        let metrics = web::Data::new(metrics);
        let max_body = settings.server.max_body_bytes;
        let openapi = ApiDoc::openapi();
        let cors_origins = settings.server.cors_origins.clone();
        let routes = web::Data::new(context::KnownRoutes::from_openapi(&openapi));
        // On the demo (the embedded sandbox, with a token printed for it), the document's
        // examples book the demo patient into a slot that exists.
        let demo = sandbox
            .as_ref()
            .filter(|_| settings.auth.hs256_generated)
            .and_then(|s| {
                let clinic = s.control().clinic();
                clinic
                    .first_visit_patient()
                    .map(|p| api::spec::DemoPatient {
                        id: p.id.clone(),
                        state: p.state,
                    })
            });
        let spec = web::Data::new(api::spec::Spec::new(demo));
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(Compress::default())
                .wrap(from_fn(limits::limit))
                .wrap(from_fn(crate::auth::gate))
                .wrap(security_headers())
                .wrap(cors(&cors_origins))
                .wrap(from_fn(context::request_context))
                .wrap(TracingLogger::<SlotgateRootSpan>::new())
                .app_data(
                    web::JsonConfig::default()
                        .limit(max_body)
                        .error_handler(context::json_error),
                )
                .app_data(web::PayloadConfig::new(max_body))
                .app_data(web::QueryConfig::default().error_handler(context::query_error))
                .app_data(web::PathConfig::default().error_handler(context::path_error))
                .app_data(state.clone())
                .app_data(metrics.clone())
                .app_data(verifier.clone())
                .app_data(limits.clone())
                .app_data(routes.clone())
                .configure(api::configure)
                .app_data(spec.clone())
                .service(api::spec::serve)
                .service(web::redirect("/swagger-ui", "/swagger-ui/"))
                .service(
                    SwaggerUi::new("/swagger-ui/{_:.*}")
                        .config(utoipa_swagger_ui::Config::from("/api-docs/openapi.json")),
                )
                .default_service(web::to(context::fallback))
        })
        .shutdown_timeout(settings.server.shutdown_timeout.as_secs())
        // A client has this long to send its request head, and an idle connection closes.
        .client_request_timeout(std::time::Duration::from_secs(5))
        .client_disconnect_timeout(std::time::Duration::from_secs(2))
        .keep_alive(std::time::Duration::from_secs(30))
        // A compressed answer of 1 KiB or more leaves in two writes (the head as soon as the
        // body is pending on the encoder, then the body): with Nagle on, the second waits for
        // the client's delayed ACK of the first, about 40 ms on every kept-alive request.
        .tcp_nodelay(true)
        .listen(listener)
        .map_err(|source| StartError::Bind {
            address: settings.server.listen,
            source,
        })?;
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        Ok(Application {
            address,
            server: server.run(),
            sandbox,
            settings,
            background,
            sync_store,
            inbound,
            leading,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The embedded sandbox, when slotgate started one.
    pub fn sandbox(&self) -> Option<&Sandbox> {
        self.sandbox.as_ref()
    }

    /// A handle that stops the server gracefully (in-flight requests finish).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM/SIGINT or `handle().stop()`, then stops the sandbox.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        for task in &self.background {
            task.abort();
        }
        // Calendars stop posting here; a channel left open expires on its own. Only the
        // leader owns channels: another replica's shutdown must not close them.
        if self.leading.load(Ordering::SeqCst)
            && tokio::time::timeout(std::time::Duration::from_secs(5), self.inbound.close())
                .await
                .is_err()
        {
            tracing::warn!("push channels not all closed within 5 s");
        }
        if let Err(e) = self.sync_store.flush().await {
            tracing::warn!(error = %e, "calendar-sync state not saved at shutdown");
        }
        if let Some(sandbox) = self.sandbox {
            sandbox.stop().await;
        }
        result
    }
}

/// Browsers may call the API only from the configured web apps' origins.
fn cors(origins: &[String]) -> actix_cors::Cors {
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "DELETE"])
        .allowed_headers([
            actix_web::http::header::AUTHORIZATION,
            actix_web::http::header::CONTENT_TYPE,
            actix_web::http::header::HeaderName::from_static("idempotency-key"),
            actix_web::http::header::HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            actix_web::http::header::LOCATION,
            actix_web::http::header::RETRY_AFTER,
            actix_web::http::header::HeaderName::from_static("x-request-id"),
        ])
        .max_age(3600);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}

/// Headers every answer carries: no sniffing, no framing, no referrer, and no caching of
/// what may be health data.
fn security_headers() -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new()
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("Cache-Control", "no-store"))
}

/// The Canvas client for these settings, at `endpoint`.
pub fn canvas_client(
    settings: &Settings,
    endpoint: CanvasEndpoint,
    metrics: Option<Metrics>,
) -> Result<CanvasClient, crate::canvas::Error> {
    CanvasClient::new(
        ClientOptions {
            fhir_url: endpoint.fhir_url,
            token_url: endpoint.token_url,
            client_id: endpoint.client_id,
            client_secret: endpoint.client_secret,
            timeout: settings.canvas.timeout,
            connect_timeout: settings.canvas.connect_timeout,
            max_concurrency: settings.canvas.max_concurrency,
            max_retries: settings.canvas.max_retries,
            retry_base: settings.canvas.retry_base,
            requests_per_second: settings.canvas.requests_per_second,
            circuit_threshold: settings.canvas.circuit_failures,
            circuit_cooldown: settings.canvas.circuit_open,
        },
        metrics,
    )
}

pub async fn start_sandbox(
    options: &crate::config::SandboxSettings,
    notify: Option<NotifyTarget>,
) -> Result<(CanvasEndpoint, Sandbox), StartError> {
    // Fresh credentials per process: the sandbox is private to this slotgate.
    let client_id = format!("slotgate-{}", &random_hex(4));
    let client_secret = random_hex(24);
    let sandbox = Sandbox::start(SandboxOptions {
        listen: options.listen,
        client_id: client_id.clone(),
        client_secret: client_secret.clone(),
        clinic: match options.clinicians {
            0 => ClinicSpec::Demo,
            n if options.visits_per_day > 0 => ClinicSpec::Booked {
                clinicians: n,
                visits_per_day: options.visits_per_day,
            },
            n => ClinicSpec::Generated { clinicians: n },
        },
        faults: Faults {
            latency_ms: options.latency_ms,
            error_rate: options.error_rate,
            ..Faults::default()
        },
        reject_double_booking: options.reject_double_booking,
        token_ttl_seconds: 36_000,
        notify,
    })
    .await
    .map_err(StartError::Sandbox)?;
    let base = sandbox.base_url();
    let parse =
        |s: &str| url::Url::parse(s).map_err(|e| StartError::Sandbox(std::io::Error::other(e)));
    let endpoint = CanvasEndpoint {
        fhir_url: parse(&format!("{base}/"))?,
        token_url: parse(&format!("{base}/auth/token/"))?,
        client_id,
        client_secret: Secret::new(client_secret),
    };
    Ok((endpoint, sandbox))
}
