//! The same load from a tool nobody here wrote: `oha` (`cargo install oha --locked`), run as a
//! separate process when it is on the PATH. It asks for compression and keeps connections
//! alive, as browsers and most HTTP stacks do.

use std::process::Command;

use serde_json::Value;

pub struct Oha {
    pub rate: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    /// Answers that were not 200, and transport errors.
    pub failures: u64,
}

impl Oha {
    pub fn line(&self, name: &str) -> String {
        format!(
            "{name:<44} {:>9.0} req/s   p50 {:>7.2} ms   p95 {:>7.2} ms   p99 {:>7.2} ms   failures {}",
            self.rate, self.p50_ms, self.p95_ms, self.p99_ms, self.failures
        )
    }
}

pub fn available() -> bool {
    Command::new("oha").arg("--version").output().is_ok()
}

/// `connections` clients for `seconds`; with `rate`, that many requests a second in all,
/// latency counted from when each was due (`--latency-correction`).
pub fn run(url: &str, token: &str, connections: usize, seconds: u64, rate: Option<u64>) -> Oha {
    run_with(url, token, connections, seconds, rate, &[])
}

/// `run`, with more of oha's options (`--rand-regex-url`: `url` is a pattern each request's
/// URL is drawn from).
pub fn run_with(
    url: &str,
    token: &str,
    connections: usize,
    seconds: u64,
    rate: Option<u64>,
    options: &[&str],
) -> Oha {
    let mut command = Command::new("oha");
    command.args(options);
    command
        .args(["--no-tui", "--output-format", "json"])
        .args(["-z", &format!("{seconds}s"), "-c", &connections.to_string()])
        .args(["-H", &format!("Authorization: Bearer {token}")]);
    if let Some(rate) = rate {
        command.args(["-q", &rate.to_string(), "--latency-correction"]);
    }
    let output = command.arg(url).output().expect("oha runs");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "oha's JSON ({e}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let ms = |v: &Value| v.as_f64().unwrap_or(f64::NAN) * 1000.0;
    let statuses = report["statusCodeDistribution"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let not_ok: u64 = statuses
        .iter()
        .filter(|(code, _)| code.as_str() != "200")
        .filter_map(|(_, n)| n.as_u64())
        .sum();
    // The requests still in flight when the time is up are cut off, not failed.
    let errors: u64 = report["errorDistribution"]
        .as_object()
        .map(|e| {
            e.iter()
                .filter(|(kind, _)| !kind.contains("deadline"))
                .filter_map(|(_, n)| n.as_u64())
                .sum()
        })
        .unwrap_or(0);
    Oha {
        rate: report["summary"]["requestsPerSec"]
            .as_f64()
            .unwrap_or(f64::NAN),
        p50_ms: ms(&report["latencyPercentiles"]["p50"]),
        p95_ms: ms(&report["latencyPercentiles"]["p95"]),
        p99_ms: ms(&report["latencyPercentiles"]["p99"]),
        failures: not_ok + errors,
    }
}
