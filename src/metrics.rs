//! Prometheus metrics. Labels are bounded: route templates, operations, outcomes, never raw
//! paths, ids or anything a patient typed.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// One registry per application, so that tests running several apps do not share counters.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub canvas_requests: IntCounterVec,
    pub canvas_duration: HistogramVec,
    pub canvas_up: IntGauge,
    /// 1 while the shared state (Redis) answers; absent meaning with the memory backend.
    pub redis_up: IntGauge,
    /// Booking attempts by outcome: `booked`, or the problem code that refused them.
    pub bookings: IntCounterVec,
    /// Slot cache lookups by outcome: hit, miss (one Canvas call), stale.
    pub slot_cache: IntCounterVec,
    /// Calendar-sync deliveries by sink and outcome (delivered, retried, dead).
    pub sync_deliveries: IntCounterVec,
    pub sync_pending: prometheus::IntGaugeVec,
    pub sync_dead: prometheus::IntGaugeVec,
    /// Age of the oldest undelivered change, per sink.
    pub sync_lag: prometheus::GaugeVec,
    /// Age of the oldest change not yet planned, per lane.
    pub sync_unplanned_age: prometheus::GaugeVec,
    pub sync_sweep_seconds: prometheus::Gauge,
    pub sync_sweep_progress: prometheus::Gauge,
    /// Waitlist entries waiting (or offered), as the sync leader last counted them.
    pub waitlist_entries: IntGauge,
    /// Waitlist offers by outcome: made, accepted, declined, expired.
    pub waitlist_offers: IntCounterVec,
    /// From an offer being made (the time opening) to its booking.
    pub waitlist_to_booked: prometheus::Histogram,
}

const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("slotgate".into()), None)
            .expect("a static prefix is a valid registry prefix");
        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests answered, by route template and status",
            ),
            &["method", "route", "status"],
        )
        .expect("static metric definition");
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route template",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["method", "route"],
        )
        .expect("static metric definition");
        let canvas_requests = IntCounterVec::new(
            Opts::new(
                "canvas_requests_total",
                "Calls to Canvas by operation and outcome",
            ),
            &["operation", "outcome"],
        )
        .expect("static metric definition");
        let canvas_duration = HistogramVec::new(
            HistogramOpts::new(
                "canvas_request_duration_seconds",
                "Canvas call latency by operation",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["operation"],
        )
        .expect("static metric definition");
        let canvas_up = IntGauge::new(
            "canvas_up",
            "1 when the last Canvas token request succeeded",
        )
        .expect("static metric definition");
        let redis_up = IntGauge::new(
            "redis_up",
            "1 when the shared state (Redis) answered its last health check",
        )
        .expect("static metric definition");
        let bookings = IntCounterVec::new(
            Opts::new(
                "bookings_total",
                "Booking attempts by outcome (booked, or the problem code)",
            ),
            &["outcome"],
        )
        .expect("static metric definition");
        let slot_cache = IntCounterVec::new(
            Opts::new("slot_cache_lookups_total", "Slot cache lookups by outcome"),
            &["outcome"],
        )
        .expect("static metric definition");
        let sync_deliveries = IntCounterVec::new(
            Opts::new(
                "sync_deliveries_total",
                "Calendar-sync deliveries by sink and outcome",
            ),
            &["sink", "outcome"],
        )
        .expect("static metric definition");
        let sync_pending = prometheus::IntGaugeVec::new(
            Opts::new("sync_pending", "Changes waiting for delivery, per sink"),
            &["sink"],
        )
        .expect("static metric definition");
        let sync_dead = prometheus::IntGaugeVec::new(
            Opts::new("sync_dead_letters", "Dead-lettered changes, per sink"),
            &["sink"],
        )
        .expect("static metric definition");
        let sync_lag = prometheus::GaugeVec::new(
            Opts::new(
                "sync_lag_seconds",
                "Age of the oldest undelivered change, per sink",
            ),
            &["sink"],
        )
        .expect("static metric definition");
        let sync_unplanned_age = prometheus::GaugeVec::new(
            Opts::new(
                "sync_unplanned_age_seconds",
                "Age of the oldest change not planned yet, per lane (fast: notifications, own writes, retries; sweep: since the running sweep began)",
            ),
            &["lane"],
        )
        .expect("static metric definition");
        let sync_sweep_seconds = prometheus::Gauge::new(
            "sync_sweep_duration_seconds",
            "How long the last full reconciliation sweep took",
        )
        .expect("static metric definition");
        let sync_sweep_progress = prometheus::Gauge::new(
            "sync_sweep_progress_ratio",
            "Share of clinicians the running sweep has compared (1 when none runs)",
        )
        .expect("static metric definition");
        let waitlist_entries = IntGauge::new(
            "waitlist_entries",
            "Waitlist entries waiting or offered (counted by the sync leader)",
        )
        .expect("static metric definition");
        let waitlist_offers = IntCounterVec::new(
            Opts::new("waitlist_offers_total", "Waitlist offers by outcome"),
            &["outcome"],
        )
        .expect("static metric definition");
        let waitlist_to_booked = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "waitlist_offer_to_booked_seconds",
                "From a waitlist offer being made to its booking",
            )
            .buckets(vec![
                10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
            ]),
        )
        .expect("static metric definition");
        for c in [
            Box::new(waitlist_entries.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(waitlist_offers.clone()),
            Box::new(waitlist_to_booked.clone()),
            Box::new(sync_deliveries.clone()),
            Box::new(sync_pending.clone()),
            Box::new(sync_dead.clone()),
            Box::new(sync_lag.clone()),
            Box::new(sync_unplanned_age.clone()),
            Box::new(sync_sweep_seconds.clone()),
            Box::new(sync_sweep_progress.clone()),
            Box::new(slot_cache.clone()),
            Box::new(http_requests.clone()),
            Box::new(http_duration.clone()),
            Box::new(canvas_requests.clone()),
            Box::new(canvas_duration.clone()),
            Box::new(canvas_up.clone()),
            Box::new(redis_up.clone()),
            Box::new(bookings.clone()),
        ] {
            registry
                .register(c)
                .expect("each metric is registered once");
        }
        Self {
            registry,
            http_requests,
            http_duration,
            canvas_requests,
            canvas_duration,
            canvas_up,
            redis_up,
            bookings,
            slot_cache,
            sync_deliveries,
            sync_pending,
            sync_dead,
            sync_lag,
            sync_unplanned_age,
            sync_sweep_seconds,
            sync_sweep_progress,
            waitlist_entries,
            waitlist_offers,
            waitlist_to_booked,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
