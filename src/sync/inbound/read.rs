//! Reading one calendar: its changes (or the whole window) fetched from Google or Graph, each
//! meeting decided, and Canvas brought in line with what the calendar holds.

use std::collections::BTreeSet;

use jiff::Timestamp;

use super::canvas::{self, Mirror};
use super::meeting::{self, Decision, Meeting};
use super::state::Progress;
use super::{Api, Failure, Inbound, google, graph};
use crate::config::sync::InboundSettings;
use crate::store::sync::ReadAsk;

impl Inbound {
    /// The clinic location of the calendar's Other Events, and its time zone.
    fn location(&self, cal: &InboundSettings) -> Option<(String, jiff::tz::TimeZone)> {
        let clinic = self.services.policy();
        let locations = &clinic.rules.locations;
        let place = match &cal.location_id {
            Some(id) => locations.iter().find(|l| &l.id == id),
            None => locations.first(),
        }?;
        Some((place.id.clone(), place.timezone.clone()))
    }

    /// Reads the calendar (what changed, or everything when `full`) and brings Canvas in line.
    pub(super) async fn read(&self, index: usize, ask: &ReadAsk) -> Result<(), Failure> {
        let mut full = ask.full;
        let cal = &self.calendars[index];
        let (location, zone) = self
            .location(&cal.entry)
            .ok_or_else(|| Failure::Broken("no clinic location for its Other Events".into()))?;
        let mut progress = self.progress(index).await?;
        let now = Timestamp::now();
        let window = meeting::window(now, self.services.settings.sync.window_days);
        let (meetings, token) = match &cal.api {
            Api::Google(api) => {
                let since = if full {
                    None
                } else {
                    progress.sync_token.clone()
                };
                full |= since.is_none();
                let listing =
                    match google::list(api, &cal.entry.calendar, since.as_deref(), window).await {
                        Err(Failure::Gone) => {
                            // The token expired: everything again, duplicates impossible by identifier.
                            full = true;
                            google::list(api, &cal.entry.calendar, None, window).await?
                        }
                        other => other?,
                    };
                let meetings: Vec<Meeting> = listing
                    .items
                    .iter()
                    .filter_map(|v| meeting::google(v, &zone))
                    .collect();
                (meetings, listing.next_sync_token)
            }
            Api::Graph(api) => {
                // The events a push named, when that is all that is asked; else the window.
                let named = if ask.events_only() && !ask.events.is_empty() {
                    graph::events(api, &cal.entry.calendar, &ask.events).await?
                } else {
                    None
                };
                // A deleted event slotgate holds nothing for is most likely a whole recurring
                // series (its occurrences are held under their own ids): read the window.
                let named = named.filter(|found| {
                    found
                        .iter()
                        .all(|(id, v)| v.is_some() || progress.mirrors.contains_key(id))
                });
                match named {
                    Some(found) => {
                        let meetings = found
                            .into_iter()
                            .filter_map(|(id, v)| match v {
                                Some(v) => meeting::graph(&v, &zone),
                                None => Some(Meeting::gone(id)),
                            })
                            .collect();
                        (meetings, None)
                    }
                    None => {
                        full = true;
                        let items = graph::window(api, &cal.entry.calendar, window).await?;
                        let meetings = items
                            .iter()
                            .filter_map(|v| meeting::graph(v, &zone))
                            .collect();
                        (meetings, None)
                    }
                }
            }
        };
        let result = self
            .converge(index, &location, &mut progress, &meetings, full, window)
            .await;
        if result.is_ok() {
            // Only once every change is in Canvas: a failure re-reads from the old token.
            progress.sync_token = token;
            progress.last_sync = Some(now);
            progress.last_error = None;
            if full {
                progress.last_full_sync = Some(now);
            }
        }
        self.save(index, &progress).await?;
        result
    }

    async fn converge(
        &self,
        index: usize,
        location: &str,
        progress: &mut Progress,
        meetings: &[Meeting],
        full: bool,
        (from, to): (Timestamp, Timestamp),
    ) -> Result<(), Failure> {
        let cal = &self.calendars[index].entry;
        let mut seen = BTreeSet::new();
        for m in meetings {
            seen.insert(m.id.clone());
            let want = match meeting::decide(m, cal.all_day, from, to) {
                Decision::Ignore => continue,
                Decision::Hold(b) => Some(b),
                Decision::Release => None,
            };
            let known = progress.mirrors.get(&m.id);
            match (&want, known) {
                (Some(b), Some(k)) if k.holds(b) => continue,
                // Nothing known and nothing wanted: in a full read there is nothing to undo;
                // in a change it may be a meeting whose record was lost, so look.
                (None, None) if full => continue,
                _ => {}
            }
            let made = canvas::apply(
                &self.services,
                &self.outbound,
                cal,
                location,
                &m.id,
                want.as_ref(),
                known,
                true,
            )
            .await;
            match made {
                Ok(Some(mirror)) => {
                    progress.mirrors.insert(m.id.clone(), mirror);
                }
                Ok(None) => {
                    progress.mirrors.remove(&m.id);
                }
                Err(e) => {
                    let _ = self.save(index, progress).await;
                    return Err(e.into());
                }
            }
            self.save(index, progress).await?;
        }
        if full {
            // Meetings gone from the calendar (or out of the window) free their time.
            let gone: Vec<(String, Mirror)> = progress
                .mirrors
                .iter()
                .filter(|(id, _)| !seen.contains(*id))
                .map(|(id, m)| (id.clone(), m.clone()))
                .collect();
            for (id, mirror) in gone {
                canvas::apply(
                    &self.services,
                    &self.outbound,
                    cal,
                    location,
                    &id,
                    None,
                    Some(&mirror),
                    false,
                )
                .await?;
                progress.mirrors.remove(&id);
                self.save(index, progress).await?;
            }
        }
        Ok(())
    }
}
