//! Our own load loops (reqwest, no compression asked): closed loop and fixed rate.

use std::time::{Duration, Instant};

pub struct Stats {
    pub requests: usize,
    pub errors: usize,
    pub seconds: f64,
    pub latencies_us: Vec<u64>,
}

impl Stats {
    fn empty() -> Stats {
        Stats {
            requests: 0,
            errors: 0,
            seconds: 0.0,
            latencies_us: Vec::new(),
        }
    }

    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    pub fn percentile(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }

    pub fn line(&self, name: &str) -> String {
        format!(
            "{name:<44} {:>9.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms   errors {}",
            self.rate(),
            self.percentile(0.50),
            self.percentile(0.99),
            self.percentile(1.0),
            self.errors
        )
    }
}

/// Closed loop: one client per token, each sending the next request when the last is answered.
pub async fn closed_loop(
    client: &reqwest::Client,
    url: &str,
    tokens: &[String],
    seconds: u64,
) -> Stats {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = tokens
        .iter()
        .map(|token| {
            let (client, url, token) = (client.clone(), url.to_owned(), token.clone());
            tokio::spawn(async move {
                let (mut latencies, mut errors) = (Vec::new(), 0);
                while Instant::now() < deadline {
                    let t = Instant::now();
                    match client.get(&url).bearer_auth(&token).send().await {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            latencies.push(t.elapsed().as_micros() as u64);
                        }
                        _ => errors += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut stats = Stats::empty();
    for t in tasks {
        let (l, e) = t.await.unwrap();
        stats.requests += l.len();
        stats.errors += e;
        stats.latencies_us.extend(l);
    }
    stats.seconds = started.elapsed().as_secs_f64();
    stats.latencies_us.sort_unstable();
    stats
}

/// Open loop at `rate` requests/s; latency counts from when each request was due, so a stall
/// shows up in the numbers instead of slowing the load down.
pub async fn open_loop(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    rate: u64,
    seconds: u64,
) -> Stats {
    let total = rate * seconds;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = started + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let (client, url, token) = (client.clone(), url.to_owned(), token.to_owned());
        tasks.push(tokio::spawn(async move {
            match client.get(&url).bearer_auth(&token).send().await {
                Ok(r) if r.status().is_success() => {
                    let _ = r.bytes().await;
                    Some(due.elapsed().as_micros() as u64)
                }
                _ => None,
            }
        }));
    }
    let mut stats = Stats::empty();
    for t in tasks {
        match t.await.unwrap() {
            Some(l) => stats.latencies_us.push(l),
            None => stats.errors += 1,
        }
    }
    stats.requests = stats.latencies_us.len();
    stats.seconds = seconds as f64;
    stats.latencies_us.sort_unstable();
    stats
}
