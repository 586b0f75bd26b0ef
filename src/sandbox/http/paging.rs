//! Search bundles with Fumage's offset paging: `total`, and relative `self`/`first`/`next`/
//! `last` links that keep the caller's other parameters; no links for an empty result (§7).

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde::Serialize;

use super::outcome::{FhirError, json};
use crate::canvas::fhir::{Bundle, BundleLink};
use crate::sandbox::params::{Page, Params};

fn url(path: &str, params: &Params, count: usize, offset: usize) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in params.without_paging() {
        query.append_pair(name, value);
    }
    query.append_pair("_count", &count.to_string());
    query.append_pair("_offset", &offset.to_string());
    format!("{path}?{}", query.finish())
}

fn links(path: &str, params: &Params, page: Page, total: usize) -> Vec<BundleLink> {
    if total == 0 {
        return Vec::new();
    }
    let link = |relation: &str, offset: usize| BundleLink {
        relation: relation.into(),
        url: url(path, params, page.count, offset),
    };
    let mut out = vec![link("self", page.offset), link("first", 0)];
    if page.offset + page.count < total {
        out.push(link("next", page.offset + page.count));
    }
    out.push(link("last", (total - 1) / page.count * page.count));
    out
}

/// One page of `matches` (already filtered and ordered), rendered with `render`.
pub fn searchset<M, T: Serialize>(
    path: &str,
    params: &Params,
    matches: Vec<M>,
    render: impl Fn(M) -> T,
) -> Result<HttpResponse, FhirError> {
    Ok(render_page(params, matches, render)?.respond(path, params))
}

/// A page picked and rendered, not yet written out: picked while the data is locked, written
/// out after, so that a large page never keeps others waiting for the lock.
pub struct RenderedPage<T> {
    page: Page,
    total: usize,
    resources: Vec<T>,
}

pub fn render_page<M, T>(
    params: &Params,
    matches: Vec<M>,
    render: impl Fn(M) -> T,
) -> Result<RenderedPage<T>, FhirError> {
    let page = params.page().map_err(FhirError::bad_request)?;
    let total = matches.len();
    let resources = page.slice(matches).into_iter().map(render).collect();
    Ok(RenderedPage {
        page,
        total,
        resources,
    })
}

impl<T: Serialize> RenderedPage<T> {
    pub fn bundle(self, path: &str, params: &Params) -> Bundle<T> {
        let links = links(path, params, self.page, self.total);
        Bundle::searchset(self.total as u64, links, self.resources)
    }

    pub fn respond(self, path: &str, params: &Params) -> HttpResponse {
        json(StatusCode::OK, &self.bundle(path, params))
    }
}
