//! Rendered availability answers, so that the many patients asking the same question (a reason,
//! a state, this week) cost a lookup. An answer is reused only while it is exactly what a new
//! computation would give: until the Canvas data behind it reaches the slot TTL, until its first
//! slot falls inside the caller's minimum notice, and never across an invalidation (every
//! booking, hold or notification bumps the slot cache's epoch, which is part of the key).

use std::sync::Arc;
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
    pub body: Bytes,
    /// The first instant at which a fresh computation could differ.
    pub valid_until: Timestamp,
}

pub struct AnswerCache {
    answers: Cache<AnswerKey, Arc<Answer>>,
}

impl AnswerCache {
    pub fn new(ttl: Duration, max_bytes: u64) -> Self {
        Self {
            answers: Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_, a: &Arc<Answer>| u32::try_from(a.body.len()).unwrap_or(u32::MAX))
                .time_to_live(ttl)
                .build(),
        }
    }

    pub async fn get(&self, key: &AnswerKey, now: Timestamp) -> Option<Bytes> {
        let answer = self.answers.get(key).await?;
        (now < answer.valid_until).then(|| answer.body.clone())
    }

    pub async fn put(&self, key: AnswerKey, answer: Answer) {
        self.answers.insert(key, Arc::new(answer)).await;
    }
}
