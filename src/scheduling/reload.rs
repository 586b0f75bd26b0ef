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

/// One reload at a time (the admin route, SIGHUP, a watched file and another replica's
/// announcement may coincide): the file read last is the one applied last.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Re-reads the configuration and applies its rules and `[booking]` if they are valid.
pub async fn reload(s: &Arc<Services>) -> Result<Reloaded, ReloadError> {
    let _one = ONE_AT_A_TIME.lock().await;
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

/// A secret as compared: a digest, never the value.
fn digest(secret: Option<&crate::config::Secret>) -> String {
    secret.map_or_else(String::new, |s| {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.expose().as_bytes());
        d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
    })
}

/// The clinic's own secrets of a section (one made up per process never counts as a change).
fn secrets(s: &Settings, section: &str) -> String {
    match section {
        "canvas" => match &s.canvas.target {
            crate::config::CanvasTarget::Remote(e) => digest(Some(&e.client_secret)),
            crate::config::CanvasTarget::Embedded(_) => String::new(),
        },
        "auth" if !s.auth.hs256_generated => digest(s.auth.hs256_secret.as_ref()),
        "sync" => digest(s.sync.canvas_webhook_secret.as_ref()),
        _ => String::new(),
    }
}

/// One section as compared: its settings (secrets print redacted) and its secrets' digests.
fn section(s: &Settings, name: &str) -> String {
    let shown = match name {
        "server" => format!("{:?}", s.server),
        "canvas" => format!("{:?}", s.canvas),
        "auth" => format!("{:?}", s.auth),
        "cache" => format!("{:?}", s.cache),
        "rate_limit" => format!("{:?}", s.rate_limit),
        "state" => format!("{:?}{:?}", s.state, s.leases),
        "telemetry" => format!("{:?}", s.telemetry),
        "smart" => format!("{:?}", s.smart),
        _ => format!("{:?}", s.sync),
    };
    shown + &secrets(s, name)
}

/// The sections, other than the rules and `[booking]`, whose values differ. (`[booking]
/// slot_id_secret` is not compared: without one configured, each load makes one up.)
pub fn needs_restart(running: &Settings, file: &Settings) -> Vec<&'static str> {
    const SECTIONS: [&str; 9] = [
        "server",
        "canvas",
        "auth",
        "cache",
        "rate_limit",
        "state",
        "telemetry",
        "sync",
        "smart",
    ];
    SECTIONS
        .into_iter()
        .filter(|name| section(running, name) != section(file, name))
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
                    // Counted as seen once read and judged (applied, or invalid); a reload that
                    // Canvas kept from applying is tried again on the next tick.
                    let outcome = reload(&s).await;
                    if !matches!(outcome, Err(ReloadError::Canvas(_))) {
                        seen = now;
                    }
                    report(outcome, false, &s);
                    continue;
                }
            };
            report(reload(&s).await, announce, &s);
        }
    })
}

fn report(outcome: Result<Reloaded, ReloadError>, announce: bool, s: &Services) {
    match outcome {
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
