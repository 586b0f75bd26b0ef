//! Who is calling: verified once per request by [`gate`], read by the extractors that check one
//! scope each. A handler that takes `ReadAccess` cannot run for a caller without
//! `scheduling.read`.

use std::future::{Ready, ready};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, http::header, web};

use super::{AuthError, Principal, Verifier};
use crate::error::{ApiError, Code};

/// The outcome of verifying this request's bearer token.
#[derive(Debug, Clone)]
pub struct Authentication(pub Result<Principal, AuthError>);

fn bearer(req: &ServiceRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// Verifies the bearer token once and keeps the outcome for the rate limiter and the
/// extractors. Requests without a token pass through; the extractors refuse them.
pub async fn gate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let outcome = match (bearer(&req), req.app_data::<web::Data<Verifier>>()) {
        // Public data needs no token, and one sent along is not looked at: a bad or expired
        // token must not make it fail, nor cost a verification (or a JWKS fetch).
        _ if is_public(req.path()) => Err(AuthError::Missing),
        (Some(token), Some(verifier)) => verifier.verify(&token).await,
        _ => Err(AuthError::Missing),
    };
    req.extensions_mut().insert(Authentication(outcome));
    next.call(req).await
}

/// Paths anyone may read without a token: the SMART Scheduling Links publication.
pub fn is_public(path: &str) -> bool {
    path.starts_with("/smart/")
}

fn authenticated(req: &HttpRequest) -> Result<Principal, ApiError> {
    match req.extensions().get::<Authentication>() {
        Some(Authentication(Ok(p))) => Ok(p.clone()),
        Some(Authentication(Err(e))) => Err(ApiError::new(Code::Unauthorized, e.to_string())),
        None => Err(ApiError::new(
            Code::Unauthorized,
            AuthError::Missing.to_string(),
        )),
    }
}

macro_rules! access {
    ($(#[$doc:meta])* $name:ident, $scope:literal, |$s:ident| $allowed:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(pub Principal);

        impl FromRequest for $name {
            type Error = ApiError;
            type Future = Ready<Result<Self, ApiError>>;

            fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
                ready(authenticated(req).and_then(|p| {
                    let $s = p.scopes;
                    if $allowed {
                        Ok($name(p))
                    } else {
                        Err(ApiError::new(Code::Forbidden, concat!("This token lacks the ", $scope, " scope.")))
                    }
                }))
            }
        }
    };
}

access!(
    /// Browsing: `scheduling.read` (staff tokens browse too).
    ReadAccess, "scheduling.read", |s| s.read || s.staff
);
access!(
    /// Holds and bookings: `scheduling.book`, or staff acting for a patient.
    BookAccess, "scheduling.book", |s| s.book || s.staff
);
access!(
    /// Staff-only operations: `scheduling.staff`.
    StaffAccess, "scheduling.staff", |s| s.staff
);
access!(
    /// Operations of the service itself: `scheduling.admin`.
    AdminAccess, "scheduling.admin", |s| s.admin
);
