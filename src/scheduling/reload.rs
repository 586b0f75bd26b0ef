//! Operators change the clinic's rules without a restart: the configuration is read again from
//! where it came from, validated exactly as at start-up, and, when valid, the rules and booking
//! policy are replaced in one step together with a directory rebuilt from Canvas with them
//! (nothing changes when either fails). Settings that only a restart applies are named.

use std::sync::Arc;

use super::Services;
use crate::config::{Problems, Settings};
use crate::rules::model::Policy;

/// What a reload applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    pub reasons: usize,
    pub practitioners: usize,
    pub locations: usize,
    /// Sections of the file that differ from what this process runs with, and wait for a
    /// restart.
    pub needs_restart: Vec<&'static str>,
}

#[derive(Debug)]
pub enum ReloadError {
    /// The configuration is not valid: every problem, by key.
    Invalid(Problems),
    /// Valid, but Canvas could not be read to rebuild the directory with it.
    Canvas(crate::canvas::Error),
}

/// Re-reads the configuration and applies its rules and `[booking]` if they are valid.
pub async fn reload(s: &Arc<Services>) -> Result<Reloaded, ReloadError> {
    let origin = s.settings.origin.clone();
    // Reading a file is blocking work: off the async threads.
    let fresh = tokio::task::spawn_blocking(move || origin.reload())
        .await
        .map_err(|e| {
            ReloadError::Invalid(Problems(vec![crate::config::Problem {
                key: "SLOTGATE_CONFIG".into(),
                message: format!("could not be read: {e}"),
            }]))
        })?
        .map_err(ReloadError::Invalid)?;
    let needs_restart = needs_restart(&s.settings, &fresh);
    let reloaded = Reloaded {
        reasons: fresh.rules.reasons.len(),
        practitioners: fresh.rules.practitioners.len(),
        locations: fresh.rules.locations.len(),
        needs_restart,
    };
    s.directory
        .replace_policy(Policy {
            rules: fresh.rules,
            booking: fresh.booking,
        })
        .await
        .map_err(ReloadError::Canvas)?;
    // Answers rendered under the old rules go (their directory snapshot is gone, and so is the
    // epoch they were made in).
    s.slot_cache.touch();
    tracing::info!(
        reasons = reloaded.reasons,
        practitioners = reloaded.practitioners,
        locations = reloaded.locations,
        "rules reloaded"
    );
    Ok(reloaded)
}

/// The sections, other than the rules and `[booking]`, whose values differ (secrets compare as
/// redacted, so a secret made up per process never counts as a change).
pub fn needs_restart(running: &Settings, file: &Settings) -> Vec<&'static str> {
    let sections: [(&'static str, String, String); 8] = [
        (
            "server",
            format!("{:?}", running.server),
            format!("{:?}", file.server),
        ),
        (
            "canvas",
            format!("{:?}", running.canvas),
            format!("{:?}", file.canvas),
        ),
        (
            "auth",
            format!("{:?}", running.auth),
            format!("{:?}", file.auth),
        ),
        (
            "cache",
            format!("{:?}", running.cache),
            format!("{:?}", file.cache),
        ),
        (
            "rate_limit",
            format!("{:?}", running.rate_limit),
            format!("{:?}", file.rate_limit),
        ),
        (
            "state",
            format!("{:?}{:?}", running.state, running.leases),
            format!("{:?}{:?}", file.state, file.leases),
        ),
        (
            "telemetry",
            format!("{:?}", running.telemetry),
            format!("{:?}", file.telemetry),
        ),
        (
            "sync",
            format!("{:?}", running.sync),
            format!("{:?}", file.sync),
        ),
    ];
    sections
        .into_iter()
        .filter(|(_, a, b)| a != b)
        .map(|(name, _, _)| name)
        .collect()
}

/// Reloads on every replica's own schedule: when another replica announces a reload (through
/// Redis), on `SIGHUP` (then announced to the others), and, with `[server]
/// config_watch_seconds`, when the configuration file's content changed (a Kubernetes ConfigMap
/// reaches every pod's file by itself, so nothing is announced then).
pub fn spawn(s: Arc<Services>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut hangups =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let file = s.settings.origin.file.clone();
        let watch = s.settings.server.config_watch.filter(|_| file.is_some());
        let mut every =
            tokio::time::interval(watch.unwrap_or(std::time::Duration::from_secs(3600)));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let read = |file: Option<std::path::PathBuf>| async move {
            match file {
                Some(f) => tokio::fs::read(f).await.ok(),
                None => None,
            }
        };
        let mut seen = read(file.clone()).await;
        loop {
            let announce = tokio::select! {
                () = s.slot_cache.rules_changed() => false,
                Some(()) = async {
                    match hangups.as_mut() {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                } => true,
                _ = every.tick(), if watch.is_some() => {
                    let now = read(file.clone()).await;
                    if now == seen {
                        continue;
                    }
                    seen = now;
                    false
                }
            };
            match reload(&s).await {
                Ok(done) => {
                    if announce {
                        s.slot_cache.announce_rules_changed();
                    }
                    if !done.needs_restart.is_empty() {
                        tracing::warn!(sections = ?done.needs_restart, "changed settings wait for a restart");
                    }
                }
                Err(ReloadError::Invalid(problems)) => {
                    tracing::error!(
                        problems = problems.0.len(),
                        "rules not reloaded: the configuration is invalid\n{problems}"
                    );
                }
                Err(ReloadError::Canvas(e)) => {
                    tracing::error!(error = %e, "rules not reloaded: Canvas could not be read");
                }
            }
        }
    })
}
