//! Token verification with jsonwebtoken. Each configured key is bound to one algorithm, and a
//! token is checked only with a key of the algorithm it names: `alg: none` and algorithm
//! confusion (an HS256 token "signed" with the RS256 public key) find no key and fail.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header,
};
use serde_json::{Map, Value};

use super::jwks::Jwks;
use super::{Principal, Scopes};
use crate::config::{AuthSettings, Secret};
use crate::types::PatientId;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("the token is not valid: {0}")]
    Invalid(&'static str),
}

pub struct Verifier {
    keys: Vec<(Algorithm, Arc<DecodingKey>)>,
    jwks: Option<Jwks>,
    issuer: String,
    audience: String,
    patient_claim: String,
    leeway: u64,
}

impl Verifier {
    pub fn new(settings: &AuthSettings) -> Result<Verifier, jsonwebtoken::errors::Error> {
        let mut keys = Vec::new();
        if let Some(secret) = &settings.hs256_secret {
            keys.push((
                Algorithm::HS256,
                Arc::new(DecodingKey::from_secret(secret.expose().as_bytes())),
            ));
        }
        if let Some(pem) = &settings.rs256_public_key_pem {
            keys.push((
                Algorithm::RS256,
                Arc::new(DecodingKey::from_rsa_pem(pem.as_bytes())?),
            ));
        }
        if let Some(pem) = &settings.es256_public_key_pem {
            keys.push((
                Algorithm::ES256,
                Arc::new(DecodingKey::from_ec_pem(pem.as_bytes())?),
            ));
        }
        let jwks = settings
            .jwks_url
            .clone()
            .map(|url| Jwks::new(url, Duration::from_secs(settings.jwks_refresh_seconds)));
        Ok(Verifier {
            keys,
            jwks,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            patient_claim: settings.patient_claim.clone(),
            leeway: settings.leeway_seconds,
        })
    }

    /// Loads the JWKS, if one is configured (start-up; a failure is retried on demand).
    pub async fn warm_up(&self) {
        if let Some(jwks) = &self.jwks {
            jwks.fetch().await;
        }
    }

    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        if token.len() > 8192 {
            return Err(AuthError::Invalid("too long"));
        }
        let header = decode_header(token).map_err(|_| AuthError::Invalid("malformed token"))?;
        let key = match (&header.kid, &self.jwks) {
            (Some(kid), Some(jwks)) => jwks
                .key(kid)
                .await
                .filter(|(alg, _)| *alg == header.alg)
                .map(|(_, k)| k),
            _ => None,
        }
        .or_else(|| {
            self.keys
                .iter()
                .find(|(alg, _)| *alg == header.alg)
                .map(|(_, key)| key.clone())
        })
        .ok_or(AuthError::Invalid("unsupported algorithm or unknown key"))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = self.leeway;
        let data = decode::<Map<String, Value>>(token.as_bytes(), &key, &validation)
            .map_err(|e| AuthError::Invalid(reason(e.kind())))?;
        self.principal(data.claims)
    }

    fn principal(&self, claims: Map<String, Value>) -> Result<Principal, AuthError> {
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .ok_or(AuthError::Invalid("no subject"))?
            .to_owned();
        let scopes = claims
            .get("scope")
            .and_then(Value::as_str)
            .map(Scopes::parse)
            .unwrap_or_default();
        let patient = match claims.get(&self.patient_claim).and_then(Value::as_str) {
            Some(reference) => match reference.strip_prefix("Patient/") {
                Some(key) => Some(
                    key.parse::<PatientId>()
                        .map_err(|_| AuthError::Invalid("the patient claim names no patient"))?,
                ),
                None => None,
            },
            None => None,
        };
        Ok(Principal {
            subject,
            scopes,
            patient,
        })
    }
}

fn reason(kind: &jsonwebtoken::errors::ErrorKind) -> &'static str {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::ExpiredSignature => "expired",
        K::ImmatureSignature => "not valid yet",
        K::InvalidIssuer => "wrong issuer",
        K::InvalidAudience => "wrong audience",
        K::InvalidSignature => "bad signature",
        K::MissingRequiredClaim(_) => "a required claim is missing",
        _ => "malformed token",
    }
}

/// Mints development tokens with the configured HS256 secret (`slotgate token`, the start-up
/// banner and the tests).
pub struct DevToken<'a> {
    pub secret: &'a Secret,
    pub issuer: &'a str,
    pub audience: &'a str,
    pub patient_claim: &'a str,
}

impl DevToken<'_> {
    pub fn mint(
        &self,
        subject: &str,
        patient: Option<&PatientId>,
        scope: &str,
        ttl_seconds: i64,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = jiff::Timestamp::now().as_second();
        let mut claims = Map::new();
        claims.insert("sub".into(), subject.into());
        claims.insert("iss".into(), self.issuer.into());
        claims.insert("aud".into(), self.audience.into());
        claims.insert("iat".into(), now.into());
        claims.insert("nbf".into(), now.into());
        claims.insert("exp".into(), (now + ttl_seconds).into());
        claims.insert("scope".into(), scope.into());
        if let Some(p) = patient {
            claims.insert(self.patient_claim.into(), format!("Patient/{p}").into());
        }
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(self.secret.expose().as_bytes()),
        )
    }
}
