//! Rate limits (governor): per authenticated subject, per client IP without a valid token,
//! with separate budgets for browsing (reads) and booking (writes). Health and metrics are
//! never limited. The client IP comes from `X-Forwarded-For` only when the peer is a trusted
//! proxy. Limits are per replica; the API gateway in front enforces global quotas.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;

use crate::auth::Authentication;
use crate::error::{ApiError, Code};

/// Above this many tracked keys, idle ones are dropped at once rather than at the next sweep.
const MAX_KEYS: usize = 100_000;

pub struct Limits {
    browse: DefaultKeyedRateLimiter<String>,
    book: DefaultKeyedRateLimiter<String>,
    trusted: Vec<IpNet>,
}

impl Limits {
    pub fn new(browse_per_minute: u32, book_per_minute: u32, trusted: Vec<IpNet>) -> Self {
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        Self {
            browse: RateLimiter::keyed(quota(browse_per_minute)),
            book: RateLimiter::keyed(quota(book_per_minute)),
            trusted,
        }
    }

    /// Forgets keys whose budget is full again, so memory follows recent callers only.
    pub fn sweep(&self) {
        for limiter in [&self.browse, &self.book] {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// Sweeps every minute until the task is dropped.
    pub async fn sweep_forever(self: std::sync::Arc<Self>) {
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            self.sweep();
        }
    }

    fn check(&self, write: bool, key: String) -> Result<(), u64> {
        let limiter = if write { &self.book } else { &self.browse };
        if limiter.len() > MAX_KEYS {
            limiter.retain_recent();
        }
        limiter.check_key(&key).map_err(|not_until| {
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
    let subject = match req.extensions().get::<Authentication>() {
        Some(Authentication(Ok(p))) => Some(format!("sub:{}", p.subject)),
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
            ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
        )
    });
    // Webhooks come in bursts from a few senders: they share the browsing budget.
    let write = !matches!(req.method().as_str(), "GET" | "HEAD" | "OPTIONS")
        && !req.path().starts_with("/v1/webhooks/");
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
