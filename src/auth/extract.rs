//! Extractors that authenticate the caller and check one scope. A handler that takes
//! `ReadAccess` cannot run for a caller without `scheduling.read`.

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};

use super::{AuthError, Principal, Verifier};
use crate::error::{ApiError, Code};

fn authenticate(req: &HttpRequest) -> Result<Principal, ApiError> {
    let verifier = req
        .app_data::<web::Data<Verifier>>()
        .ok_or_else(|| ApiError::internal(&"no token verifier configured"))?;
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(AuthError::Missing);
    token
        .and_then(|t| verifier.verify(t))
        .map_err(|e| ApiError::new(Code::Unauthorized, e.to_string()))
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
                ready(authenticate(req).and_then(|p| {
                    let $s = p.scopes;
                    if $allowed {
                        Ok($name(p))
                    } else {
                        Err(ApiError::new(
                            Code::Forbidden,
                            concat!("This token lacks the ", $scope, " scope."),
                        ))
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
