//! Shared state behind one small trait: booking locks, holds, the overlay of bookings Canvas
//! does not show yet, and idempotency records. `memory` serves one process; a shared
//! implementation for several replicas plugs in behind the same trait.

#[doc(hidden)]
pub mod conformance;
pub mod memory;
pub mod redis;
mod redis_waitlist;
pub mod replicas;
pub mod sync;
pub mod waitlist;

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

/// A granted lock, or the ownership of a running idempotency key: give it back with
/// [`Store::unlock`] (or [`Store::finish`] / [`Store::interrupt`]). It lasts `lease` from its last
/// grant or renewal; a holder that stops renewing (it died) loses it within that time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The lock's name in the store.
    pub key: String,
    /// This holder's proof of ownership: writes fenced by the lease compare it.
    pub token: String,
    /// When the request that granted it was sent: the lease runs from no later than this.
    pub asked: tokio::time::Instant,
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

impl Hold {
    /// Whose allowance of holds this one counts against: the patient it is for, else the
    /// token's subject (a hold without a patient).
    pub fn counts_for(&self) -> String {
        match &self.patient {
            Some(p) => format!("patient:{p}"),
            None => format!("subject:{}", self.owner),
        }
    }
}

/// Time taken by a booking Canvas does not show yet: one made through slotgate (kept until the
/// cached answers show it), or one whose create is in flight or unconfirmed (`pending`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Booked {
    /// The Canvas id, or [`Pending::entry_id`] while the create is unconfirmed.
    pub appointment_id: String,
    pub practitioner: PractitionerId,
    pub start: Timestamp,
    pub end: Timestamp,
    pub expires_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
}

/// A create that was (or is about to be) sent and that Canvas has not confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The booking identifier the appointment carries at Canvas (from the Idempotency-Key).
    pub identifier: String,
    /// The patient it is for: their in-flight bookings count toward their limit.
    pub patient: String,
    /// When the time was claimed.
    pub since: Timestamp,
    /// The caller's hold it books (spent once Canvas shows the booking): its owner, and its id
    /// when the caller named one.
    #[serde(default)]
    pub hold_owner: String,
    #[serde(default)]
    pub hold_id: Option<String>,
}

impl Pending {
    /// The overlay entry of an unconfirmed create: one per identifier.
    pub fn entry_id(identifier: &str) -> String {
        format!("pending:{identifier}")
    }
}

/// What a new hold ran into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldOutcome {
    Created,
    /// Another caller's hold overlaps.
    Held,
    /// A booking Canvas does not show yet (or one in flight) overlaps.
    Booked,
    /// Whoever it counts for already holds the most slots allowed.
    LimitReached,
}

/// What claiming a booking's time ran into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The time is this booking's until it is confirmed or given back.
    Claimed,
    /// Another caller's hold overlaps.
    Held,
    /// Another booking (made or in flight) overlaps.
    Booked,
    /// This very booking (same identifier) is already in flight or unconfirmed.
    Unconfirmed,
    /// A lease the claim relies on is no longer the claimant's: nothing was written.
    Fenced,
}

/// A booking's claim on a clinician's time.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The entry, with `pending` set.
    pub booked: Booked,
    /// Holds of this subject do not stand in the way…
    pub hold_owner: String,
    /// …and, when named, only this one of theirs.
    pub hold_id: Option<String>,
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
    /// First use: this attempt owns the key while it renews the lease.
    Started(Lease),
    /// Done before with this body: replay the answer.
    Replay(StoredResponse),
    /// Used before with another body.
    Mismatch,
    /// Another attempt with this key is running (it renews its lease).
    InProgress,
    /// A previous attempt was interrupted, or stopped renewing (it died): this attempt owns the
    /// key now and gets what that one recorded, to finish it rather than repeat it.
    Resume(Lease, serde_json::Value),
}

#[derive(Debug, Clone, Copy)]
pub struct IdempotencyTtl {
    /// How long an attempt owns its key without renewing (lost within this when it dies).
    pub lease: Duration,
    /// How long answers are kept (24 h in the contract).
    pub record: Duration,
}

/// A reschedule that has started: until it is finished (the old appointment cancelled once the
/// new one exists) or found moot, the recovery loop finishes it if its request does not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    /// The appointment being replaced.
    pub old: String,
    /// The booking identifier of its replacement.
    pub identifier: String,
    pub since: Timestamp,
    /// Failed tries to finish it, and when the next may run (backing off).
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub next_try: Option<Timestamp>,
}

impl Move {
    /// One record per replacement: two reschedules of one appointment are two moves.
    pub fn field(&self) -> String {
        format!("{} {}", self.old, self.identifier)
    }
}

pub trait Store: Send + Sync {
    /// Waits up to `wait` for the lock `key`; the lease lasts `lease` unless renewed.
    fn lock(
        &self,
        key: String,
        lease: Duration,
        wait: Duration,
    ) -> BoxFuture<'_, StoreResult<Lease>>;
    /// Extends a lease (a lock's or an idempotency key's) to `lease` from now; `false` when it
    /// is no longer this holder's (it lapsed, or was released or taken).
    fn renew(&self, lease: Lease, duration: Duration) -> BoxFuture<'_, StoreResult<bool>>;
    /// Releases a lock if it is still this lease's.
    fn unlock(&self, lease: Lease) -> BoxFuture<'_, StoreResult<()>>;

    /// Stores the hold unless its owner is at `max_per_owner` holds (see [`Hold::counts_for`]),
    /// another caller's hold overlaps, or a booking (made or in flight) does.
    fn put_hold(
        &self,
        hold: Hold,
        max_per_owner: u32,
        now: Timestamp,
    ) -> BoxFuture<'_, StoreResult<HoldOutcome>>;
    fn hold(&self, id: String, now: Timestamp) -> BoxFuture<'_, StoreResult<Option<Hold>>>;
    fn remove_hold(&self, id: String) -> BoxFuture<'_, StoreResult<bool>>;
    fn holds(&self, now: Timestamp) -> BoxFuture<'_, StoreResult<Vec<Hold>>>;

    /// Atomically: if every lease in `fences` is still its holder's, and no hold of someone
    /// else, no booking and no create in flight overlaps, writes the claim's pending entry.
    fn claim(
        &self,
        claim: Claim,
        fences: Vec<Lease>,
        now: Timestamp,
    ) -> BoxFuture<'_, StoreResult<ClaimOutcome>>;
    /// Replaces any earlier entry of the same appointment.
    fn put_booked(&self, booked: Booked) -> BoxFuture<'_, StoreResult<()>>;
    /// Replaces an entry that is still there (a pending create whose attempt still runs gets
    /// a later expiry); never recreates one that was removed or expired.
    fn refresh_booked(&self, booked: Booked) -> BoxFuture<'_, StoreResult<bool>>;
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
    /// Records how far a running attempt got (kept if it is interrupted); only its owner may.
    fn progress(
        &self,
        key: String,
        owner: Lease,
        progress: serde_json::Value,
    ) -> BoxFuture<'_, StoreResult<bool>>;
    /// Stores the final answer, replayed for the same key and body; `false` (and nothing
    /// written) when another attempt owns the key now.
    fn finish(
        &self,
        key: String,
        owner: Lease,
        response: StoredResponse,
    ) -> BoxFuture<'_, StoreResult<bool>>;
    /// Gives the key back without an answer; the next request with it resumes from the
    /// recorded progress. Only its owner may.
    fn interrupt(&self, key: String, owner: Lease) -> BoxFuture<'_, StoreResult<bool>>;

    /// Records (or updates) a reschedule whose new appointment's create is about to be sent.
    fn put_move(&self, m: Move) -> BoxFuture<'_, StoreResult<()>>;
    fn moves(&self) -> BoxFuture<'_, StoreResult<Vec<Move>>>;
    fn remove_move(&self, m: Move) -> BoxFuture<'_, StoreResult<()>>;

    /// Adds a waitlist entry unless its patient already has `max_per_patient` (waiting or
    /// offered); `false` then.
    fn add_entry(
        &self,
        entry: waitlist::Entry,
        max_per_patient: u32,
    ) -> BoxFuture<'_, StoreResult<bool>>;
    fn entries(&self) -> BoxFuture<'_, StoreResult<Vec<waitlist::Entry>>>;
    /// Adds `slot` to an entry's `passed` list, in place (never a rewrite of the whole entry
    /// from an older copy); `false` (nothing written) when the entry is gone.
    fn pass_slot(&self, entry_id: String, slot: String) -> BoxFuture<'_, StoreResult<bool>>;
    fn remove_entry(&self, id: String) -> BoxFuture<'_, StoreResult<bool>>;
    /// Stores a new offer only if, at that instant, its entry exists and has no live (Open or
    /// Accepting) offer; `false` (nothing written) otherwise.
    fn put_offer(&self, offer: waitlist::Offer) -> BoxFuture<'_, StoreResult<bool>>;
    fn offers(&self) -> BoxFuture<'_, StoreResult<Vec<waitlist::Offer>>>;
    /// Moves an offer from `from` to `to` atomically (one accept wins); the offer as it is now,
    /// or `None` when it was not in `from`.
    fn settle_offer(
        &self,
        id: String,
        from: waitlist::OfferStatus,
        to: waitlist::OfferStatus,
    ) -> BoxFuture<'_, StoreResult<Option<waitlist::Offer>>>;
    /// Open -> Accepting for the booking `identifier`, atomically: from then on neither a lapse
    /// nor a decline can end it. An offer this very booking already holds is returned as it
    /// is (a retry); `None` for any other.
    fn begin_accept(
        &self,
        id: String,
        identifier: String,
    ) -> BoxFuture<'_, StoreResult<Option<waitlist::Offer>>>;
    /// Marks an offer as announced to the sinks.
    fn offer_notified(&self, id: String) -> BoxFuture<'_, StoreResult<()>>;
    /// Forgets offers that ended before `before`.
    fn prune_offers(&self, before: Timestamp) -> BoxFuture<'_, StoreResult<()>>;
}
