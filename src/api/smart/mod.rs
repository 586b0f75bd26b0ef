//! SMART Scheduling Links (`$bulk-publish`): the manifest and its Location, Schedule and Slot
//! files, public (no token), rate limited per client IP, cacheable (`Cache-Control: public`,
//! a content-hash `ETag`, `If-None-Match` answered 304). 404 unless `[smart] enabled`.

pub mod render;

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{
    self, AcceptEncoding, ETag, Encoding, EntityTag, Header, IfNoneMatch,
};
use actix_web::{HttpRequest, HttpResponse, get, web};
use aws_lc_rs::digest;
use bytes::Bytes;
use ipnet::IpNet;
use serde::Serialize;
use url::Url;
use utoipa::ToSchema;

use super::AppState;
use crate::config::smart::SmartSettings;
use crate::error::ApiError;
use crate::scheduling::answer_cache::Encoded;
use crate::scheduling::smart::{File, Files};

const NDJSON: &str = "application/fhir+ndjson";

/// The bulk publication manifest, with SMART Scheduling Links' fields.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"transactionTime": "2026-12-04T17:00:00Z", "request": "https://scheduling.example.org/smart/$bulk-publish", "output": [{"type": "Location", "url": "https://scheduling.example.org/smart/Location.ndjson", "extension": {"state": ["CA", "NY"]}}, {"type": "Schedule", "url": "https://scheduling.example.org/smart/Schedule.ndjson", "extension": {"state": ["CA", "NY"]}}, {"type": "Slot", "url": "https://scheduling.example.org/smart/Slot.ndjson", "extension": {"state": ["CA", "NY"]}}], "error": []}))]
pub struct Manifest {
    /// When this data set was published (RFC 3339, whole seconds).
    #[serde(rename = "transactionTime")]
    pub transaction_time: String,
    /// The absolute URL of this manifest.
    pub request: String,
    /// One Location, one Schedule and one Slot file.
    pub output: Vec<Output>,
    /// Always empty: a publication that could not be built is not served.
    #[schema(value_type = Vec<Object>)]
    pub error: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"type": "Slot", "url": "https://scheduling.example.org/smart/Slot.ndjson", "extension": {"state": ["CA", "NY"]}}))]
pub struct Output {
    /// `Location`, `Schedule` or `Slot`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The absolute URL of the NDJSON file.
    pub url: String,
    pub extension: OutputExtension,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"state": ["CA", "NY"]}))]
pub struct OutputExtension {
    /// The states the file's data concerns (practice locations, and states served by video).
    pub state: Vec<String>,
}

/// The publication, or 404 while `[smart]` is disabled (as for any unknown path).
async fn published(state: &AppState) -> Result<(&SmartSettings, Arc<Files>), ApiError> {
    let smart = state
        .settings
        .smart
        .as_ref()
        .ok_or_else(|| ApiError::not_found("There is nothing at this address."))?;
    let files = state
        .publisher
        .files(&state.services, smart, render::render)
        .await?;
    Ok((smart, files))
}

#[utoipa::path(
    get,
    path = "/smart/$bulk-publish",
    operation_id = "smart_bulk_publish",
    tag = "smart",
    security(()),
    params(("If-None-Match" = Option<String>, Header, description = "An `ETag` from an earlier answer: 304 while it still names this publication")),
    responses(
        (status = 200, description = "The SMART Scheduling Links manifest: where the Location, Schedule and Slot files are", body = Manifest, content_type = "application/json",
            headers(("ETag" = String, description = "Names the data; the same on every replica"), ("Cache-Control" = String, description = "`public, max-age=<[smart] max_age_seconds>`"))),
        (status = 304, description = "Unchanged since the `ETag` sent in `If-None-Match`; no body",
            headers(("ETag" = String), ("Cache-Control" = String))),
        (status = 404, description = "SMART Scheduling Links are not enabled here (`[smart] enabled`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 502, description = "Canvas failed and nothing is cached to publish (`upstream_error`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Canvas is unavailable and nothing is cached to publish (`upstream_unavailable`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 504, description = "Canvas was too slow and nothing is cached to publish (`upstream_timeout`)", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/smart/$bulk-publish")]
pub async fn manifest(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (smart, files) = published(&state).await?;
    let base = base_url(
        &request,
        smart.public_url.as_ref(),
        &state.settings.server.trusted_proxies,
    );
    let states: Vec<String> = files.states.iter().map(|s| s.to_string()).collect();
    let output = [
        ("Location", "smart/Location.ndjson"),
        ("Schedule", "smart/Schedule.ndjson"),
        ("Slot", "smart/Slot.ndjson"),
    ]
    .into_iter()
    .map(|(kind, path)| Output {
        kind: kind.into(),
        url: join(&base, path),
        extension: OutputExtension {
            state: states.clone(),
        },
    })
    .collect();
    let mut body = Manifest {
        transaction_time: String::new(),
        request: join(&base, "smart/$bulk-publish"),
        output,
        error: Vec::new(),
    };
    // The tag names the data (the files' content and where they are), not when this replica
    // read it: every replica answers the same ETag for the same data.
    let tag = manifest_tag(&body, &files);
    body.transaction_time = files.transaction_time.to_string();
    let bytes = serde_json::to_vec(&body).map_err(|e| ApiError::internal(&e))?;
    Ok(respond(
        &request,
        &Encoded::new(Bytes::from(bytes)),
        &tag,
        "application/json",
        smart.max_age,
        // Weak: replicas with the same data answer the same tag, but each its own
        // transactionTime, so the bytes may differ.
        true,
    ))
}

fn manifest_tag(unstamped: &Manifest, files: &Files) -> String {
    let mut text = serde_json::to_string(unstamped).unwrap_or_default();
    for file in [&files.location, &files.schedule, &files.slot] {
        text.push('|');
        text.push_str(&file.tag);
    }
    let hash = digest::digest(&digest::SHA256, text.as_bytes());
    hash.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

macro_rules! ndjson_file {
    ($name:ident, $path:literal, $operation:literal, $what:literal, $field:ident) => {
        #[utoipa::path(
            get,
            path = $path,
            operation_id = $operation,
            tag = "smart",
            security(()),
            params(("If-None-Match" = Option<String>, Header, description = "An `ETag` from an earlier answer: 304 while the file is unchanged")),
            responses(
                (status = 200, description = $what, body = String, content_type = "application/fhir+ndjson",
                    headers(("ETag" = String, description = "A hash of the content; the same on every replica"), ("Cache-Control" = String, description = "`public, max-age=<[smart] max_age_seconds>`"))),
                (status = 304, description = "Unchanged since the `ETag` sent in `If-None-Match`; no body",
                    headers(("ETag" = String), ("Cache-Control" = String))),
                (status = 404, description = "SMART Scheduling Links are not enabled here (`[smart] enabled`)", body = crate::error::Problem, content_type = "application/problem+json"),
                (status = 502, description = "Canvas failed and nothing is cached to publish (`upstream_error`)", body = crate::error::Problem, content_type = "application/problem+json"),
                (status = 503, description = "Canvas is unavailable and nothing is cached to publish (`upstream_unavailable`)", body = crate::error::Problem, content_type = "application/problem+json"),
                (status = 504, description = "Canvas was too slow and nothing is cached to publish (`upstream_timeout`)", body = crate::error::Problem, content_type = "application/problem+json"),
            )
        )]
        #[get($path)]
        pub async fn $name(
            request: HttpRequest,
            state: web::Data<AppState>,
        ) -> Result<HttpResponse, ApiError> {
            let (smart, files) = published(&state).await?;
            Ok(serve(&request, &files.$field, smart.max_age))
        }
    };
}

ndjson_file!(
    locations,
    "/smart/Location.ndjson",
    "smart_locations",
    "FHIR R4 `Location` resources, one per line: each practice location, and a virtual location (`virtual-<state>`) per state served by video",
    location
);
ndjson_file!(
    schedules,
    "/smart/Schedule.ndjson",
    "smart_schedules",
    "FHIR R4 `Schedule` resources, one per line: a clinician at a location, with the public reasons offered there as `serviceType`",
    schedule
);
ndjson_file!(
    slots,
    "/smart/Slot.ndjson",
    "smart_slots",
    "FHIR R4 `Slot` resources, one per line, for the next `[smart] days` days: `free`, `busy-tentative` (held) or `busy` (booked through slotgate, not yet in Canvas), each with a `booking-deep-link` extension",
    slot
);

fn serve(request: &HttpRequest, file: &File, max_age: Duration) -> HttpResponse {
    respond(request, &file.body, &file.tag, NDJSON, max_age, false)
}

/// The body in gzip when the client takes it (made once per publication), with a strong ETag
/// per encoding; 304 when `If-None-Match` names either.
fn respond(
    request: &HttpRequest,
    body: &Encoded,
    tag: &str,
    content_type: &str,
    max_age: Duration,
    weak: bool,
) -> HttpResponse {
    let gzip = <AcceptEncoding as Header>::parse(request)
        .ok()
        .and_then(|accept| accept.negotiate([Encoding::gzip(), Encoding::identity()].iter()))
        == Some(Encoding::gzip());
    let gzip_tag = format!("{tag}-gzip");
    let sent = if gzip {
        gzip_tag.clone()
    } else {
        tag.to_owned()
    };
    let unchanged = match <IfNoneMatch as Header>::parse(request) {
        Ok(IfNoneMatch::Any) => true,
        Ok(IfNoneMatch::Items(tags)) => tags.iter().any(|t| {
            t.weak_eq(&EntityTag::new_strong(tag.to_owned()))
                || t.weak_eq(&EntityTag::new_strong(gzip_tag.clone()))
        }),
        Err(_) => false,
    };
    let mut response = if unchanged {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header(ETag(EntityTag::new(weak, sent)))
        .insert_header((
            header::CACHE_CONTROL,
            format!("public, max-age={}", max_age.as_secs()),
        ))
        .insert_header((header::VARY, "Accept-Encoding"));
    if unchanged {
        return response.finish();
    }
    response.content_type(content_type);
    if gzip {
        response
            .insert_header((header::CONTENT_ENCODING, "gzip"))
            .body(body.gzip())
    } else {
        response.body(body.identity())
    }
}

fn join(base: &Url, path: &str) -> String {
    base.join(path)
        .map_or_else(|_| format!("{base}{path}"), String::from)
}

/// Where this publication is reached: `[smart] public_url`, else the request's own scheme and
/// host (the forwarded ones only from a trusted proxy: anyone else could make the manifest
/// point elsewhere for a shared cache).
pub(crate) fn base_url(request: &HttpRequest, public_url: Option<&Url>, trusted: &[IpNet]) -> Url {
    if let Some(url) = public_url {
        return url.clone();
    }
    let proxied = request
        .peer_addr()
        .is_some_and(|peer| trusted.iter().any(|net| net.contains(&peer.ip())));
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let config = request.app_config();
    let scheme = proxied
        .then(|| header("x-forwarded-proto"))
        .flatten()
        .filter(|s| s == "http" || s == "https")
        .unwrap_or_else(|| if config.secure() { "https" } else { "http" }.to_owned());
    let host = proxied
        .then(|| header("x-forwarded-host"))
        .flatten()
        .or_else(|| header(header::HOST.as_str()))
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    host.and_then(|h| origin(&scheme, &h))
        .or_else(|| origin(&scheme, config.host()))
        .unwrap_or_else(|| Url::parse("http://localhost/").expect("a valid URL literal"))
}

/// `scheme://host/` when `host` is a host and port, nothing more.
fn origin(scheme: &str, host: &str) -> Option<Url> {
    let url = Url::parse(&format!("{scheme}://{host}/")).ok()?;
    (url.host().is_some()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none())
    .then_some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_host_and_port_make_an_origin() {
        assert_eq!(
            origin("https", "api.example.org:8443").unwrap().as_str(),
            "https://api.example.org:8443/"
        );
        for bad in [
            "",
            "evil.example/path",
            "user@evil.example",
            "a b",
            "x?y",
            "x#y",
        ] {
            assert!(origin("http", bad).is_none(), "{bad:?}");
        }
    }
}
