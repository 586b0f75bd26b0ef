//! Shared state behind one small trait: booking locks, holds, the overlay of bookings Canvas
//! does not show yet, and idempotency records. `memory` serves one process; a shared
//! implementation for several replicas plugs in behind the same trait.

#[doc(hidden)]
pub mod conformance;
pub mod memory;
pub mod redis;
pub mod redis_sync;
pub mod replicas;
pub mod sync;
#[doc(hidden)]
pub mod sync_conformance;

use std::time::Duration;

use futures::future::BoxFuture;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::types::PractitionerId;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The shared state cannot be reached; writes must fail closed.
    #[error("shared state unavailable: {0}")]
    Unavailable(String),
    /// A lock was not granted within the wait.
    #[error("busy: {0}")]
    Busy(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A granted lock; give it back with [`Store::unlock`] (dropping it also releases an
/// in-process lock, and a shared one expires).
pub struct Lease {
    pub key: String,
    pub token: String,
    /// In-process locks hold their guard here.
    pub guard: Option<Box<dyn std::any::Any + Send + Sync>>,
}

/// A clinician's time set aside for one caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub id: String,
    /// Who may book it: the token's subject.
    pub owner: String,
    pub patient: Option<String>,
    pub slot_id: String,
    pub practitioner: PractitionerId,
    pub start: Timestamp,
    pub end: Timestamp,
    pub expires_at: Timestamp,
}

/// A booking made through slotgate, kept hidden until Canvas's answers show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Booked {
    pub appointment_id: String,
    pub practitioner: PractitionerId,
    pub start: Timestamp,
    pub end: Timestamp,
    pub expires_at: Timestamp,
}

/// What a new hold ran into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldOutcome {
    Created,
    /// Another caller's hold overlaps.
    Held,
    /// A booking Canvas does not show yet overlaps.
    Booked,
}

/// The answer stored for an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    pub status: u16,
    pub body: Vec<u8>,
    pub location: Option<String>,
}

/// What `begin` found for an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// First use: the caller now owns the key.
    Started,
    /// Done before with this body: replay the answer.
    Replay(StoredResponse),
    /// Used before with another body.
    Mismatch,
    /// The first request with this key is still running.
    InProgress,
    /// A previous attempt was interrupted (crashed, timed out, half done): the caller owns the key
    /// again and gets what that attempt recorded, to finish it rather than repeat it.
    Resume(serde_json::Value),
}

#[derive(Debug, Clone, Copy)]
pub struct IdempotencyTtl {
    /// How long an in-progress marker protects a key before a crashed request is assumed.
    pub marker: Duration,
    /// How long answers are kept (24 h in the contract).
    pub record: Duration,
}

pub trait Store: Send + Sync {
    /// Waits up to `wait` for the lock `key`; a granted lock expires after `ttl` if never
    /// released (a crashed replica).
    fn lock(&self, key: String, ttl: Duration, wait: Duration)
    -> BoxFuture<'_, StoreResult<Lease>>;
    fn unlock(&self, lease: Lease) -> BoxFuture<'_, StoreResult<()>>;

    /// Stores the hold unless another caller's hold or a fresh booking overlaps its time.
    fn put_hold(&self, hold: Hold, now: Timestamp) -> BoxFuture<'_, StoreResult<HoldOutcome>>;
    fn hold(&self, id: String, now: Timestamp) -> BoxFuture<'_, StoreResult<Option<Hold>>>;
    fn remove_hold(&self, id: String) -> BoxFuture<'_, StoreResult<bool>>;
    fn holds(&self, now: Timestamp) -> BoxFuture<'_, StoreResult<Vec<Hold>>>;

    /// Replaces any earlier entry of the same appointment.
    fn put_booked(&self, booked: Booked) -> BoxFuture<'_, StoreResult<()>>;
    fn remove_booked(&self, appointment_id: String) -> BoxFuture<'_, StoreResult<()>>;
    fn booked(&self, now: Timestamp) -> BoxFuture<'_, StoreResult<Vec<Booked>>>;

    /// Claims an idempotency key for a request whose body hashes to `fingerprint`.
    fn begin(
        &self,
        key: String,
        fingerprint: String,
        ttl: IdempotencyTtl,
        now: Timestamp,
    ) -> BoxFuture<'_, StoreResult<Begin>>;
    /// Records how far a running request got (kept if it is interrupted).
    fn progress(&self, key: String, progress: serde_json::Value) -> BoxFuture<'_, StoreResult<()>>;
    /// Stores the final answer, replayed for the same key and body.
    fn finish(
        &self,
        key: String,
        response: StoredResponse,
        now: Timestamp,
    ) -> BoxFuture<'_, StoreResult<()>>;
    /// Gives the key back without an answer; the next request with it resumes from the
    /// recorded progress.
    fn interrupt(&self, key: String) -> BoxFuture<'_, StoreResult<()>>;
}
