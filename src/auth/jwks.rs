//! Public keys from the identity provider's JWKS URL. Fetched at start-up and again when a
//! token names a `kid` we do not know (key rotation), but never more than once per
//! `[auth] jwks_refresh_seconds`, so forged `kid`s cannot make us hammer the provider.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::{Mutex, RwLock};
use url::Url;

pub struct Jwks {
    url: Url,
    http: reqwest::Client,
    min_refresh: Duration,
    keys: RwLock<HashMap<String, (Algorithm, Arc<DecodingKey>)>>,
    last_fetch: Mutex<Option<Instant>>,
}

impl Jwks {
    pub fn new(url: Url, min_refresh: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self {
            url,
            http,
            min_refresh,
            keys: RwLock::new(HashMap::new()),
            last_fetch: Mutex::new(None),
        }
    }

    /// The key with this id, refetching the set once if it is unknown and we may.
    pub async fn key(&self, kid: &str) -> Option<(Algorithm, Arc<DecodingKey>)> {
        if let Some(k) = self.keys.read().await.get(kid) {
            return Some(k.clone());
        }
        let mut last = self.last_fetch.lock().await;
        // Someone else may have fetched while we waited.
        if let Some(k) = self.keys.read().await.get(kid) {
            return Some(k.clone());
        }
        if last.is_some_and(|t| t.elapsed() < self.min_refresh) {
            return None;
        }
        *last = Some(Instant::now());
        self.fetch().await;
        self.keys.read().await.get(kid).cloned()
    }

    /// Replaces the key set; a failed fetch keeps the keys we had.
    pub async fn fetch(&self) {
        let set = match self.http.get(self.url.clone()).send().await {
            Ok(r) if r.status().is_success() => r.json::<JwkSet>().await.ok(),
            Ok(r) => {
                tracing::warn!(status = r.status().as_u16(), "the JWKS URL refused");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "the JWKS URL did not answer");
                None
            }
        };
        let Some(set) = set else { return };
        let keys: HashMap<_, _> = set
            .keys
            .iter()
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                // Only the asymmetric algorithms we verify; never a shared secret from a URL.
                let alg = match (&jwk.common.key_algorithm, &jwk.algorithm) {
                    (Some(KeyAlgorithm::RS256), AlgorithmParameters::RSA(_))
                    | (None, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
                    (Some(KeyAlgorithm::ES256), AlgorithmParameters::EllipticCurve(p))
                    | (None, AlgorithmParameters::EllipticCurve(p))
                        if p.curve == EllipticCurve::P256 =>
                    {
                        Algorithm::ES256
                    }
                    _ => return None,
                };
                let key = DecodingKey::from_jwk(jwk).ok()?;
                Some((kid, (alg, Arc::new(key))))
            })
            .collect();
        tracing::info!(keys = keys.len(), "JWKS loaded");
        *self.keys.write().await = keys;
    }
}
