//! Rendered availability answers, so that the many patients asking the same question (a reason,
//! a state, this week) cost a lookup. An answer is reused only while it is exactly what a new
//! computation would give: until the Canvas data behind it reaches the slot TTL, until its first
//! slot falls inside the caller's minimum notice, and never across an invalidation (every
//! booking, hold or notification bumps the slot cache's epoch, which is part of the key).

use std::io::Write;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use jiff::Timestamp;
use moka::future::Cache;

/// Everything the answer depends on besides time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AnswerKey {
    /// The normalised question, including the caller's class (patient or staff).
    pub question: String,
    /// The slot cache's epoch when the answer was computed.
    pub epoch: u64,
    /// When the directory snapshot behind it was fetched.
    pub directory: Timestamp,
}

pub struct Answer {
    pub body: Arc<Encoded>,
    /// The first instant at which a fresh computation could differ.
    pub valid_until: Timestamp,
}

/// A rendered answer, and its gzip encoding made at most once: the many clients that ask for
/// compression (browsers, gateways, load tools) then cost a lookup, not a compression each.
pub struct Encoded {
    identity: Bytes,
    gzip: OnceLock<Bytes>,
}

impl Encoded {
    pub fn new(identity: Bytes) -> Encoded {
        Encoded {
            identity,
            gzip: OnceLock::new(),
        }
    }

    pub fn identity(&self) -> Bytes {
        self.identity.clone()
    }

    pub fn gzip(&self) -> Bytes {
        self.gzip
            .get_or_init(|| {
                let mut encoder = flate2::write::GzEncoder::new(
                    Vec::with_capacity(self.identity.len() / 4),
                    flate2::Compression::default(),
                );
                // Writing to a Vec cannot fail.
                let _ = encoder.write_all(&self.identity);
                Bytes::from(encoder.finish().unwrap_or_default())
            })
            .clone()
    }
}

/// The first instant at which a fresh computation could differ from this answer: when its
/// oldest Canvas data reaches the slot TTL, when its first slot falls inside the caller's
/// notice, or when a hold or fresh booking that hid slots lapses.
pub fn valid_until(
    now: Timestamp,
    earliest: Timestamp,
    first_offer: Option<Timestamp>,
    as_of: Timestamp,
    ttl: Duration,
    busy_changes: Option<Timestamp>,
) -> Timestamp {
    let notice = earliest.duration_since(now);
    let expires = as_of.saturating_add(ttl).unwrap_or(now);
    [
        first_offer.map(|f| f.saturating_sub(notice).unwrap_or(now)),
        busy_changes,
    ]
    .into_iter()
    .flatten()
    .fold(expires, Timestamp::min)
}

pub struct AnswerCache {
    answers: Cache<AnswerKey, Arc<Answer>>,
}

impl AnswerCache {
    pub fn new(ttl: Duration, max_bytes: u64) -> Self {
        Self {
            answers: Cache::builder()
                .max_capacity(max_bytes)
                // The body, and room for its gzip encoding once someone asks for it.
                .weigher(|k: &AnswerKey, a: &Arc<Answer>| {
                    let body = a.body.identity.len();
                    u32::try_from(k.question.len() + body + body / 2).unwrap_or(u32::MAX)
                })
                .time_to_live(ttl)
                .build(),
        }
    }

    pub async fn get(&self, key: &AnswerKey, now: Timestamp) -> Option<Arc<Encoded>> {
        let answer = self.answers.get(key).await?;
        (now < answer.valid_until).then(|| answer.body.clone())
    }

    pub async fn put(&self, key: AnswerKey, answer: Answer) {
        self.answers.insert(key, Arc::new(answer)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gzip_encoding_is_made_once_and_decodes_to_the_answer() {
        let body = Bytes::from(serde_json::to_vec(&vec!["a slot"; 500]).unwrap());
        let encoded = Encoded::new(body.clone());
        let gzip = encoded.gzip();
        assert!(
            gzip.len() < body.len() / 10,
            "{} of {}",
            gzip.len(),
            body.len()
        );
        assert_eq!(encoded.gzip().as_ptr(), gzip.as_ptr(), "made once");
        let mut decoded = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gzip[..]), &mut decoded)
            .unwrap();
        assert_eq!(decoded, body);
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn an_answer_lives_until_its_first_change() {
        let now = ts("2026-12-01T10:00:00Z");
        let earliest = ts("2026-12-01T12:00:00Z"); // two hours' notice
        let ttl = Duration::from_secs(60);
        // Only the data's age: fetched 20 s ago, reusable for 40 s more.
        assert_eq!(
            valid_until(now, earliest, None, ts("2026-12-01T09:59:40Z"), ttl, None),
            ts("2026-12-01T10:00:40Z")
        );
        // The first slot at 12:00:30 enters the notice at 10:00:30.
        assert_eq!(
            valid_until(
                now,
                earliest,
                Some(ts("2026-12-01T12:00:30Z")),
                ts("2026-12-01T10:00:00Z"),
                ttl,
                None
            ),
            ts("2026-12-01T10:00:30Z")
        );
        // A hold lapsing at 10:00:10 makes its slot reappear.
        assert_eq!(
            valid_until(
                now,
                earliest,
                None,
                ts("2026-12-01T10:00:00Z"),
                ttl,
                Some(ts("2026-12-01T10:00:10Z"))
            ),
            ts("2026-12-01T10:00:10Z")
        );
    }

    #[tokio::test]
    async fn an_expired_answer_is_not_served() {
        let cache = AnswerCache::new(Duration::from_secs(60), 1 << 20);
        let key = AnswerKey {
            question: "q".into(),
            epoch: 0,
            directory: Timestamp::UNIX_EPOCH,
        };
        cache
            .put(
                key.clone(),
                Answer {
                    body: Arc::new(Encoded::new(Bytes::from_static(b"{}"))),
                    valid_until: ts("2026-12-01T10:00:30Z"),
                },
            )
            .await;
        assert!(cache.get(&key, ts("2026-12-01T10:00:29Z")).await.is_some());
        assert!(cache.get(&key, ts("2026-12-01T10:00:30Z")).await.is_none());
        let later_epoch = AnswerKey { epoch: 1, ..key };
        assert!(
            cache
                .get(&later_epoch, ts("2026-12-01T10:00:00Z"))
                .await
                .is_none(),
            "an invalidation retires it"
        );
    }
}
