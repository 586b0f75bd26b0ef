//! `[smart]`: SMART Scheduling Links, the public listing of open slots that appointment finders,
//! directories and aggregators read (`GET /smart/$bulk-publish`). Off unless enabled.

use std::time::Duration;

use url::Url;

use super::raw::RawSmart;
use super::validate::{Found, http_url};

/// The publication's settings; present only when `[smart] enabled = true`.
#[derive(Debug, Clone, PartialEq)]
pub struct SmartSettings {
    /// Where a Slot's deep link sends the patient, with `slot=<slot_id>` added to its query.
    pub booking_url: Url,
    /// Local dates published at each location, from today.
    pub days: u32,
    /// The base of the manifest's absolute URLs, ending in `/`; none: the request's own.
    pub public_url: Option<Url>,
    /// `Cache-Control: max-age`, and how long one build serves while availability is unchanged.
    pub max_age: Duration,
}

/// SMART's own ceiling: a publication is a near-term listing, and each day costs a Slot search per
/// schedule.
const MAX_DAYS: u64 = 90;

pub(super) fn smart(found: &mut Found, raw: &RawSmart, horizon_days: u32) -> Option<SmartSettings> {
    // Checked even while disabled, so that turning it on later finds no surprise.
    let booking_url = raw
        .booking_url
        .as_deref()
        .filter(|u| !u.trim().is_empty())
        .and_then(|u| http_url(found, "smart.booking_url", u));
    let public_url = raw
        .public_url
        .as_deref()
        .filter(|u| !u.trim().is_empty())
        .and_then(|u| base_url(found, u));
    let days: u32 = found.range("smart.days", raw.days, 1, MAX_DAYS);
    let max_age =
        Duration::from_secs(found.range("smart.max_age_seconds", raw.max_age_seconds, 1, 86_400));
    if !raw.enabled {
        return None;
    }
    // Only once it is on: a clinic with a horizon shorter than the default never set `days`.
    if days > horizon_days && horizon_days > 0 {
        found.add(
            "smart.days",
            format!(
                "{days} days would publish slots nobody may book: [booking] max_horizon_days is {horizon_days}"
            ),
        );
    }
    let Some(booking_url) = booking_url else {
        if raw
            .booking_url
            .as_deref()
            .is_none_or(|u| u.trim().is_empty())
        {
            found.add(
                "smart.booking_url",
                "required when smart.enabled = true: the booking site each published slot links to",
            );
        }
        return None;
    };
    Some(SmartSettings {
        booking_url,
        days,
        public_url,
        max_age,
    })
}

/// An absolute http(s) base without query or fragment, its path ending in `/` so that the
/// publication's paths join beneath it.
fn base_url(found: &mut Found, value: &str) -> Option<Url> {
    let mut url = http_url(found, "smart.public_url", value)?;
    if url.query().is_some() || url.fragment().is_some() {
        found.add(
            "smart.public_url",
            format!("{value:?} must be a base URL without a query or fragment"),
        );
        return None;
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Some(url)
}
