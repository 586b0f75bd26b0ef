//! `POST /auth/token/`: OAuth2 client credentials on the Canvas EMR host (§1). Error bodies
//! follow RFC 6749, as django-oauth-toolkit answers them.

use actix_web::http::StatusCode;
use actix_web::web::{Bytes, Data};
use actix_web::{HttpResponse, http::header};
use serde_json::json;

use crate::sandbox::state::Shared;

/// The scope of a token issued without one: full system access.
const DEFAULT_SCOPE: &str = "system/*.*";

fn oauth_error(status: StatusCode, error: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({ "error": error }))
}

pub async fn issue(shared: Data<Shared>, body: Bytes) -> HttpResponse {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    // The client is authenticated before the grant is looked at.
    if !shared.client_matches(field("client_id"), field("client_secret")) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if field("grant_type") != Some("client_credentials") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let scope = field("scope")
        .filter(|s| !s.is_empty())
        .unwrap_or(DEFAULT_SCOPE);
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(json!({
            "access_token": shared.issue_token(),
            "expires_in": shared.token_ttl_seconds(),
            "token_type": "Bearer",
            "scope": scope,
        }))
}
