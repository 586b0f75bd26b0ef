//! Rate limits (governor): per authenticated subject, per client IP without a valid token,
//! with separate budgets for browsing (reads) and booking (writes). Health and metrics are
//! never limited. The client IP comes from `X-Forwarded-For` only when the peer is a trusted
//! proxy. Limits are per replica; the API gateway in front enforces global quotas.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};
use governor::clock::{Clock, DefaultClock, QuantaInstant};
use governor::{DefaultKeyedRateLimiter, NotUntil, Quota, RateLimiter};
use ipnet::IpNet;

use crate::auth::Authentication;
use crate::error::{ApiError, Code};

/// Above this many tracked keys, idle ones are dropped at once rather than at the next sweep.
const MAX_KEYS: usize = 100_000;

/// One budget per key, in memory that stays bounded however many keys appear.
struct Budgets {
    quota: Quota,
    max_keys: usize,
    limiter: RwLock<Arc<DefaultKeyedRateLimiter<String>>>,
}

impl Budgets {
    fn new(per_minute: u32, max_keys: usize) -> Self {
        let quota = Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN));
        Self {
            quota,
            max_keys,
            limiter: RwLock::new(Arc::new(RateLimiter::keyed(quota))),
        }
    }

    fn current(&self) -> Arc<DefaultKeyedRateLimiter<String>> {
        self.limiter
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn check(&self, key: String) -> Result<(), NotUntil<QuantaInstant>> {
        let mut limiter = self.current();
        if limiter.len() > self.max_keys {
            // Idle keys first; if that is not enough (a flood of new keys within their
            // refill time), every budget starts afresh: memory stays bounded, and the flood
            // meets the gateway's own quotas in front.
            limiter.retain_recent();
            if limiter.len() > self.max_keys {
                tracing::warn!(
                    keys = limiter.len(),
                    "rate-limit keys over their bound; starting afresh"
                );
                let fresh = Arc::new(RateLimiter::keyed(self.quota));
                *self.limiter.write().unwrap_or_else(|e| e.into_inner()) = fresh.clone();
                limiter = fresh;
            }
        }
        limiter.check_key(&key)
    }

    fn sweep(&self) {
        let limiter = self.current();
        limiter.retain_recent();
        limiter.shrink_to_fit();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.current().len()
    }
}

pub struct Limits {
    browse: Budgets,
    book: Budgets,
    trusted: Vec<IpNet>,
}

impl Limits {
    pub fn new(browse_per_minute: u32, book_per_minute: u32, trusted: Vec<IpNet>) -> Self {
        Self::bounded(browse_per_minute, book_per_minute, trusted, MAX_KEYS)
    }

    fn bounded(browse: u32, book: u32, trusted: Vec<IpNet>, max_keys: usize) -> Self {
        Self {
            browse: Budgets::new(browse, max_keys),
            book: Budgets::new(book, max_keys),
            trusted,
        }
    }

    /// Forgets keys whose budget is full again, so memory follows recent callers only.
    pub fn sweep(&self) {
        self.browse.sweep();
        self.book.sweep();
    }

    /// Sweeps every minute until the task is dropped.
    pub async fn sweep_forever(self: std::sync::Arc<Self>) {
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            self.sweep();
        }
    }

    fn check(&self, write: bool, key: String) -> Result<(), u64> {
        let budgets = if write { &self.book } else { &self.browse };
        budgets.check(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }
}

/// The client: the peer, or when the peer is a trusted proxy, the nearest address in
/// `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_ip(
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer = peer?;
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let chain: Vec<IpAddr> = forwarded_for
        .unwrap_or_default()
        .split(',')
        .filter_map(|part| part.trim().parse().ok())
        .collect();
    chain
        .iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or(chain.first())
        .copied()
        .or(Some(peer))
}

/// What one budget covers for an address: an IPv4 address, or an IPv6 /64 (one subscriber's
/// network: a single host can use any of its 2^64 addresses).
fn budget_address(ip: IpAddr) -> IpNet {
    // An IPv4 client seen through a dual-stack socket (::ffff:a.b.c.d) is that IPv4 client.
    let ip = ip.to_canonical();
    let prefix = if ip.is_ipv4() { 32 } else { 64 };
    IpNet::new(ip, prefix)
        .map(|n| n.trunc())
        .unwrap_or_else(|_| IpNet::from(ip))
}

pub async fn limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let exempt = matches!(req.path(), "/healthz" | "/readyz" | "/metrics");
    let Some(limits) = req
        .app_data::<web::Data<Limits>>()
        .filter(|_| !exempt)
        .cloned()
    else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    // Public paths are counted per client IP whatever token comes along: a token is not
    // needed there, so it must not buy a budget of its own.
    let subject = match req.extensions().get::<Authentication>() {
        Some(Authentication(Ok(p))) if !crate::auth::is_public(req.path()) => {
            Some(format!("sub:{}", p.subject))
        }
        _ => None,
    };
    let key = subject.unwrap_or_else(|| {
        let peer = req.peer_addr().map(|a| a.ip());
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        let ip = client_ip(peer, forwarded, &limits.trusted);
        format!(
            "ip:{}",
            ip.map_or_else(|| "unknown".to_owned(), |ip| budget_address(ip).to_string())
        )
    });
    // Webhooks come in bursts from a few senders: they share the browsing budget.
    // FHIR's $find asks by POST: a question all the same.
    let write = !matches!(req.method().as_str(), "GET" | "HEAD" | "OPTIONS")
        && !req.path().starts_with("/v1/webhooks/")
        && req.path() != "/fhir/r4/Appointment/$find";
    if let Err(seconds) = limits.check(write, key) {
        let error = ApiError::new(Code::RateLimited, "Too many requests; slow down.")
            .with_retry_after(seconds.max(1));
        return Ok(req.error_response(error).map_into_boxed_body());
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        // An untrusted peer is the client, whatever it claims.
        assert_eq!(
            client_ip(Some(ip("203.0.113.9")), Some("1.2.3.4"), &trusted),
            Some(ip("203.0.113.9"))
        );
        // Behind our proxy: the nearest untrusted hop.
        assert_eq!(
            client_ip(
                Some(ip("10.0.0.5")),
                Some("1.2.3.4, 198.51.100.7"),
                &trusted
            ),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(
            client_ip(
                Some(ip("10.0.0.5")),
                Some("198.51.100.7, 10.0.0.9"),
                &trusted
            ),
            Some(ip("198.51.100.7"))
        );
        // Nothing usable in the header: the proxy itself.
        assert_eq!(
            client_ip(Some(ip("10.0.0.5")), Some("garbage"), &trusted),
            Some(ip("10.0.0.5"))
        );
        assert_eq!(
            client_ip(Some(ip("10.0.0.5")), None, &trusted),
            Some(ip("10.0.0.5"))
        );
    }

    #[test]
    fn memory_stays_bounded_however_many_keys_appear() {
        let l = Limits::bounded(1, 1, vec![], 100);
        // A flood of new callers, each spending its whole budget at once.
        for i in 0..1_000 {
            assert!(
                l.check(false, format!("k{i}")).is_ok(),
                "a new key's first request"
            );
            assert!(l.browse.len() <= 101, "{} keys", l.browse.len());
        }
        // A caller over budget stays limited while the flood is under the bound.
        let l = Limits::bounded(1, 1, vec![], 100);
        assert!(l.check(false, "me".into()).is_ok());
        for i in 0..50 {
            let _ = l.check(false, format!("k{i}"));
        }
        assert!(l.check(false, "me".into()).is_err());
    }

    #[test]
    fn an_ipv6_subscriber_is_one_budget_whatever_address_it_picks() {
        let a = budget_address(ip("2001:db8:1:2:aaaa::1"));
        assert_eq!(a, budget_address(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")));
        assert_ne!(a, budget_address(ip("2001:db8:1:3::1")));
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        assert_eq!(
            budget_address(ip("203.0.113.7")).to_string(),
            "203.0.113.7/32"
        );
        assert_ne!(
            budget_address(ip("203.0.113.7")),
            budget_address(ip("203.0.113.8"))
        );
        // IPv4 through a dual-stack socket is that IPv4 client, not one shared ::/64.
        assert_eq!(
            budget_address(ip("::ffff:203.0.113.7")),
            budget_address(ip("203.0.113.7"))
        );
        assert_ne!(
            budget_address(ip("::ffff:203.0.113.7")),
            budget_address(ip("::ffff:198.51.100.1"))
        );
    }

    #[test]
    fn budgets_are_per_key_and_per_kind() {
        let l = Limits::new(2, 1, vec![]);
        assert!(l.check(false, "a".into()).is_ok());
        assert!(l.check(false, "a".into()).is_ok());
        assert!(l.check(false, "a".into()).is_err());
        assert!(
            l.check(false, "b".into()).is_ok(),
            "another caller has its own budget"
        );
        assert!(
            l.check(true, "a".into()).is_ok(),
            "writes have their own budget"
        );
        let wait = l.check(true, "a".into()).unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
    }
}
