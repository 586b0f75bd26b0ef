//! The HTTP side of the Canvas client: auth, timeouts, bounded concurrency, retries of reads,
//! spans with the outbound `traceparent`, and paging through search bundles.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::propagation::Injector;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use tokio::sync::Semaphore;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use url::Url;

use super::Error;
use super::breaker::{Breaker, Permit};
use super::fhir::Bundle;
use super::give_way::Foreground;
use super::token::TokenSource;
use crate::config::Secret;
use crate::metrics::Metrics;

/// Searches stop after this many pages; a Canvas bug must not become an endless loop.
const MAX_PAGES: usize = 200;
/// Canvas's page size maximum (§7).
pub const PAGE_SIZE: &str = "100";
/// A `Retry-After` longer than this is not waited for inside a request.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub fhir_url: Url,
    pub token_url: Url,
    pub client_id: String,
    pub client_secret: Secret,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub max_concurrency: usize,
    pub max_retries: u32,
    pub retry_base: Duration,
    /// slotgate's own budget of Canvas calls per second (all callers together).
    pub requests_per_second: u32,
    /// Failures in a row that open the circuit, and how long it stays open.
    pub circuit_threshold: u32,
    pub circuit_cooldown: Duration,
}

/// How long a call may wait for the per-second budget before it is refused instead.
const MAX_BUDGET_WAIT: Duration = Duration::from_secs(2);

/// Background work's share of the budget and of the calls in flight: a quarter of each, so
/// a sweep of hundreds of clinicians leaves patients three quarters and never queues them.
const BACKGROUND_SHARE: u32 = 4;

#[derive(Clone)]
pub struct CanvasClient {
    inner: Arc<Inner>,
    /// Calls made for background work (sync sweeps, planning, inbound reads) take their own
    /// smaller share first and wait for it rather than fail.
    caller: Caller,
}

/// Whom a call is made for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Caller {
    Patient,
    Background,
    /// The sync sweep: background work polled on the idle-priority thread (`crate::idle`).
    Sweep,
}

struct Inner {
    http: reqwest::Client,
    /// Background work's own connections: patients' calls never queue on one a sweep's page
    /// is coming down.
    background_http: reqwest::Client,
    base: Url,
    token: TokenSource,
    permits: Semaphore,
    max_retries: u32,
    retry_base: Duration,
    budget: governor::DefaultDirectRateLimiter,
    background_permits: Semaphore,
    background_budget: governor::DefaultDirectRateLimiter,
    breaker: Breaker,
    /// Patient-facing calls in flight, which background calls give way to.
    foreground: Foreground,
    metrics: Option<Metrics>,
}

/// What came back from a successful call.
pub(super) struct Answer {
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

impl CanvasClient {
    pub fn new(options: ClientOptions, metrics: Option<Metrics>) -> Result<Self, Error> {
        let client = || {
            reqwest::Client::builder()
                .timeout(options.timeout)
                .connect_timeout(options.connect_timeout)
                .user_agent(concat!("slotgate/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| Error::Upstream {
                    operation: "client",
                    reason: e.to_string(),
                })
        };
        let (http, background_http) = (client()?, client()?);
        let mut base = options.fhir_url;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                background_http,
                base,
                token: TokenSource::new(
                    options.token_url,
                    options.client_id,
                    options.client_secret,
                ),
                permits: Semaphore::new(options.max_concurrency.max(1)),
                max_retries: options.max_retries,
                retry_base: options.retry_base,
                budget: governor::RateLimiter::direct(governor::Quota::per_second(
                    std::num::NonZeroU32::new(options.requests_per_second)
                        .unwrap_or(std::num::NonZeroU32::MIN),
                )),
                background_permits: Semaphore::new(
                    (options.max_concurrency / BACKGROUND_SHARE as usize).max(1),
                ),
                background_budget: governor::RateLimiter::direct(governor::Quota::per_second(
                    std::num::NonZeroU32::new(options.requests_per_second / BACKGROUND_SHARE)
                        .unwrap_or(std::num::NonZeroU32::MIN),
                )),
                breaker: Breaker::new(options.circuit_threshold, options.circuit_cooldown),
                foreground: Foreground::new(),
                metrics,
            }),
            caller: Caller::Patient,
        })
    }

    /// The same client for background work: its calls stay within a quarter of the Canvas
    /// budget and of the calls in flight, wait for their share instead of failing, and give
    /// way to patient-facing calls (`give_way`).
    pub fn background(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            caller: Caller::Background,
        }
    }

    /// The background client for the sync sweep, whose calls are polled on the idle-priority
    /// thread (`crate::idle`).
    pub fn sweep(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            caller: Caller::Sweep,
        }
    }

    /// The connections this client's calls use: patients', or background work's.
    fn http(&self) -> &reqwest::Client {
        match self.caller {
            Caller::Patient => &self.inner.http,
            Caller::Background | Caller::Sweep => &self.inner.background_http,
        }
    }

    /// Acquires (or reuses) a token: the readiness probe's question "does Canvas answer?".
    pub async fn ensure_token(&self) -> Result<(), Error> {
        let result = self.inner.token.get(&self.inner.http).await.map(drop);
        if let Some(m) = &self.inner.metrics {
            m.canvas_up.set(i64::from(result.is_ok()));
        }
        result
    }

    pub(super) fn url(&self, path: &str) -> Url {
        // The base always ends in '/', and paths are our own constants.
        self.inner
            .base
            .join(path)
            .unwrap_or_else(|_| self.inner.base.clone())
    }

    /// GETs a search and follows `next` links, returning every resource of type `resource`.
    pub(super) async fn search<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        resource: &str,
        params: &[(&str, &str)],
    ) -> Result<Vec<T>, Error> {
        self.search_pages(operation, resource, params, PAGE_SIZE)
            .await
    }

    /// Like `search`, asking for `page_size` per page.
    pub(super) async fn search_pages<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        resource: &str,
        params: &[(&str, &str)],
        page_size: &str,
    ) -> Result<Vec<T>, Error> {
        let mut url = self.url(resource);
        url.query_pairs_mut()
            .extend_pairs(params)
            .append_pair("_count", page_size);
        let full = page_size.parse::<usize>().ok();
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            let answer = self.execute(operation, Method::GET, url, None).await?;
            let page = read_page::<T>(operation, resource, &answer.body)?;
            if page.next.is_none() && full.is_some_and(|n| page.entries >= n) {
                // A full page without a next link may be Canvas silently capping the answer.
                tracing::warn!(
                    operation,
                    entries = page.entries,
                    "a full page without a next link"
                );
            }
            out.extend(page.resources);
            match page.next {
                Some(link) => url = self.resolve_link(operation, &link)?,
                None => return Ok(out),
            }
        }
        Err(Error::Upstream {
            operation,
            reason: format!("more than {MAX_PAGES} pages"),
        })
    }

    /// Canvas's paging links are relative to the FHIR root (`/Appointment?_offset=10`); an
    /// absolute link must stay on Canvas's origin, so the bearer token never leaves it.
    fn resolve_link(&self, operation: &'static str, link: &str) -> Result<Url, Error> {
        let base = &self.inner.base;
        let url = match link.strip_prefix('/') {
            Some(relative) => base.join(relative),
            None => base.join(link),
        }
        .map_err(|_| Error::Upstream {
            operation,
            reason: "unusable next link".into(),
        })?;
        if url.origin() != base.origin() {
            return Err(Error::Upstream {
                operation,
                reason: "next link points away from Canvas".into(),
            });
        }
        Ok(url)
    }

    /// One logical call: token, permit, span, retries (GET only) and one re-authentication.
    pub(super) async fn execute(
        &self,
        operation: &'static str,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, Error> {
        if self.caller != Caller::Sweep {
            return self.exchange(operation, method, url, body).await;
        }
        // The sweep is polled on an idle core (`crate::idle`): its exchanges with Canvas run on
        // the server's threads, so that nothing they start (a connection, a name lookup, a token
        // refresh every caller waits for) waits for that core or inherits its priority.
        let background = Self {
            inner: self.inner.clone(),
            caller: Caller::Background,
        };
        tokio::spawn(
            async move { background.exchange(operation, method, url, body).await }
                .in_current_span(),
        )
        .await
        .map_err(|_| Error::Unavailable {
            operation,
            reason: "the request was cancelled".into(),
            maybe_sent: false,
        })?
    }

    async fn exchange(
        &self,
        operation: &'static str,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, Error> {
        let span = tracing::info_span!(
            "canvas.request",
            otel.name = operation,
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            canvas.operation = operation,
            http.request.method = %method,
            http.response.status_code = tracing::field::Empty,
            fumage.correlation_id = tracing::field::Empty,
            retries = tracing::field::Empty,
        );
        let started = Instant::now();
        let result = match self.inner.breaker.permit(started) {
            Permit::Refused => Err(Error::Unavailable {
                operation,
                reason: "circuit open".into(),
                maybe_sent: false,
            }),
            Permit::Go => {
                let result = self
                    .attempts(operation, method, url, body)
                    .instrument(span.clone())
                    .await;
                self.inner
                    .breaker
                    .record(!counts_as_failure(&result), Instant::now());
                result
            }
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(Error::Timeout { .. }) => "timeout",
            Err(Error::Unavailable { .. }) => "unavailable",
            Err(Error::NotFound { .. }) => "not_found",
            Err(Error::Upstream { .. } | Error::WriteFailed { .. }) => "upstream_error",
            Err(_) => "refused",
        };
        span.record(
            "otel.status_code",
            if result.is_ok() { "OK" } else { "ERROR" },
        );
        if let Some(m) = &self.inner.metrics {
            m.canvas_requests
                .with_label_values(&[operation, outcome])
                .inc();
            m.canvas_duration
                .with_label_values(&[operation])
                .observe(started.elapsed().as_secs_f64());
        }
        result
    }

    async fn attempts(
        &self,
        operation: &'static str,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, Error> {
        let inner = &self.inner;
        let retry_reads = method == Method::GET;
        let is_write = !retry_reads;
        let mut retries = 0u32;
        let mut reauthenticated = false;
        loop {
            let token = inner.token.get(self.http()).await?;
            let (background, patient) = if self.caller != Caller::Patient {
                let share = inner.background_permits.acquire().await;
                inner.background_budget.until_ready().await;
                inner.foreground.give_way().await;
                (Some(share), None)
            } else {
                (None, Some(inner.foreground.begin()))
            };
            self.spend_budget(operation).await?;
            let permit = inner.permits.acquire().await;
            let sent = self.send_once(&method, &url, &token, body.as_deref()).await;
            drop(permit);
            drop(background);
            let response = match sent {
                Ok(r) => r,
                Err(e) => {
                    let error = transport_error(operation, &e, is_write);
                    if retry_reads && e.is_connect() && retries < inner.max_retries {
                        retries += 1;
                        tokio::time::sleep(self.backoff(retries, None)).await;
                        continue;
                    }
                    return Err(error);
                }
            };
            let status = response.status();
            let span = tracing::Span::current();
            span.record("http.response.status_code", status.as_u16());
            span.record("retries", retries);
            if let Some(id) = response
                .headers()
                .get("fumage-correlation-id")
                .and_then(|v| v.to_str().ok())
            {
                span.record("fumage.correlation_id", id);
            }
            if status == StatusCode::UNAUTHORIZED && !reauthenticated {
                // Canvas's advice: re-acquire the token once, then give up (§1).
                inner.token.invalidate(&token).await;
                reauthenticated = true;
                continue;
            }
            if retry_reads && is_retryable(status) && retries < inner.max_retries {
                let hint = retry_after(response.headers());
                if hint.is_none_or(|h| h <= MAX_RETRY_AFTER) {
                    retries += 1;
                    tokio::time::sleep(self.backoff(retries, hint)).await;
                    continue;
                }
            }
            let headers = response.headers().clone();
            let body = response
                .bytes()
                .await
                .map_err(|e| transport_error(operation, &e, is_write))?;
            drop(patient);
            if status.is_success() {
                return Ok(Answer { headers, body });
            }
            if is_write {
                return Err(Error::from_write_status(operation, status.as_u16(), &body));
            }
            return Err(Error::from_status(operation, status.as_u16(), &body));
        }
    }

    async fn send_once(
        &self,
        method: &Method,
        url: &Url,
        token: &Secret,
        body: Option<&[u8]>,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let mut headers = trace_headers();
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        let mut request = self
            .http()
            .request(method.clone(), url.clone())
            .headers(headers)
            .bearer_auth(token.expose());
        if let Some(body) = body {
            request = request
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        request.send().await
    }

    /// One call's share of slotgate's own per-second budget: a short wait, or a refusal.
    async fn spend_budget(&self, operation: &'static str) -> Result<(), Error> {
        let budget = &self.inner.budget;
        match budget.check() {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ));
                if wait > MAX_BUDGET_WAIT {
                    return Err(Error::Unavailable {
                        operation,
                        reason: "slotgate's Canvas budget is spent".into(),
                        maybe_sent: false,
                    });
                }
                tokio::time::timeout(MAX_BUDGET_WAIT, budget.until_ready())
                    .await
                    .map_err(|_| Error::Unavailable {
                        operation,
                        reason: "slotgate's Canvas budget is spent".into(),
                        maybe_sent: false,
                    })
            }
        }
    }

    /// Whether the circuit to Canvas is open (failing fast).
    pub fn circuit_open(&self) -> bool {
        self.inner.breaker.is_open()
    }

    /// Exponential backoff with full jitter, never shorter than Canvas's `Retry-After`.
    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let ceiling = self
            .inner
            .retry_base
            .saturating_mul(1 << attempt.saturating_sub(1).min(10));
        let jittered = ceiling.mul_f64(fastrand::f64());
        retry_after.map_or(jittered, |hint| hint.max(jittered))
    }
}

/// Canvas unreachable, too slow or failing; its refusals (4xx) are answers.
fn counts_as_failure(result: &Result<Answer, Error>) -> bool {
    matches!(
        result,
        Err(Error::Unavailable { .. }
            | Error::Timeout { .. }
            | Error::Upstream { .. }
            | Error::WriteFailed { .. })
    )
}

fn is_retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 502 | 503 | 504)
}

/// `Retry-After` as delay-seconds or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let wait = jiff::Timestamp::now().duration_until(when);
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

pub(super) fn transport_error(
    operation: &'static str,
    e: &reqwest::Error,
    is_write: bool,
) -> Error {
    if e.is_connect() {
        Error::Unavailable {
            operation,
            reason: "connection failed".into(),
            maybe_sent: false,
        }
    } else if e.is_timeout() {
        Error::Timeout { operation }
    } else {
        Error::Unavailable {
            operation,
            reason: "connection lost".into(),
            maybe_sent: is_write,
        }
    }
}

/// One page of a search: its resources of the type asked for, how many entries it had, and
/// the link to the next.
struct Page<T> {
    resources: Vec<T>,
    entries: usize,
    next: Option<String>,
}

/// Reads a search page. Each entry is kept as the text it came in and read into `T` directly,
/// not built as a tree of JSON values first; Canvas may mix OperationOutcome warnings into a
/// bundle, so entries of other types are left out.
fn read_page<T: DeserializeOwned>(
    operation: &'static str,
    resource: &str,
    body: &[u8],
) -> Result<Page<T>, Error> {
    let bundle: Bundle<&RawValue> = decode(operation, body)?;
    let unreadable = |e: serde_json::Error| Error::Upstream {
        operation,
        reason: format!(
            "unreadable {resource}: {}",
            crate::error::redact_serde(&e.to_string())
        ),
    };
    let mut resources = Vec::with_capacity(bundle.entry.len());
    for entry in &bundle.entry {
        if resource_type(entry.resource)
            .map_err(unreadable)?
            .as_deref()
            == Some(resource)
        {
            resources.push(serde_json::from_str(entry.resource.get()).map_err(unreadable)?);
        }
    }
    Ok(Page {
        resources,
        entries: bundle.entry.len(),
        next: bundle.next_link().map(str::to_owned),
    })
}

/// An entry's `resourceType`, read without building the rest of it.
fn resource_type(entry: &RawValue) -> Result<Option<Cow<'_, str>>, serde_json::Error> {
    #[derive(Deserialize)]
    struct Kind<'a> {
        #[serde(rename = "resourceType", borrow)]
        resource_type: Option<Cow<'a, str>>,
    }
    serde_json::from_str::<Kind>(entry.get()).map(|k| k.resource_type)
}

pub(super) fn decode<'a, T: Deserialize<'a>>(
    operation: &'static str,
    body: &'a [u8],
) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|e| Error::Upstream {
        operation,
        reason: format!("unreadable answer: {e}"),
    })
}

/// The W3C trace context of the current span as headers, so that Canvas-side logs join our
/// trace. Every request to Canvas carries it, the token request included.
pub(super) fn trace_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&context, &mut HeaderInjector(&mut headers))
    });
    headers
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(key), HeaderValue::try_from(value)) {
            self.0.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Thing {
        id: String,
    }

    fn page(body: &str) -> Result<Page<Thing>, Error> {
        read_page("Thing.search", "Thing", body.as_bytes())
    }

    #[test]
    fn a_page_keeps_its_own_type_however_the_type_is_written() {
        let read = page(
            r#"{"resourceType": "Bundle", "entry": [
                {"resource": {"resourceType": "OperationOutcome", "issue": []}},
                {"resource": {"id": "a", "resourceType": "Thing"}},
                {"resource": {"resourceType": "Th\u0069ng", "id": "b"}},
                {"resource": {"id": "c"}}
            ], "link": [{"relation": "next", "url": "/Thing?_offset=4"}]}"#,
        )
        .unwrap();
        let ids: Vec<&str> = read.resources.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(
            ids,
            ["a", "b"],
            "escaped type kept; warnings and untyped entries left out"
        );
        assert_eq!(read.entries, 4);
        assert_eq!(read.next.as_deref(), Some("/Thing?_offset=4"));
    }

    #[test]
    fn an_entry_that_cannot_be_read_fails_the_page() {
        for body in [
            r#"{"entry": [{"resource": {"resourceType": "Thing"}}]}"#,
            r#"{"entry": [{"resource": {"resourceType": 7, "id": "a"}}]}"#,
            r#"{"entry": [{"resource": "Thing"}]}"#,
            r#"{"entry": [{"fullUrl": "Thing/a"}]}"#,
        ] {
            assert!(matches!(page(body), Err(Error::Upstream { .. })), "{body}");
        }
    }
}
