//! The waitlist as the shared state keeps it: entries (patients waiting for an earlier time) and
//! offers (a held slot proposed to one entry). Plain data; the rules live in
//! `scheduling::waitlist`.

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::rules::model::Modality;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(example = "waiting")]
pub enum EntryStatus {
    Waiting,
    /// An offer is open for it.
    Offered,
}

impl EntryStatus {
    /// What an entry is, told by its offers rather than stored beside them (a stored status
    /// goes stale when an offer ends without the entry being rewritten).
    pub fn of(live_offer: bool) -> Self {
        if live_offer {
            EntryStatus::Offered
        } else {
            EntryStatus::Waiting
        }
    }
}

/// A patient waiting for an earlier time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub id: String,
    /// The token subject that made it (for listing) and the patient it is for.
    pub owner: String,
    pub patient: String,
    pub reason_code: String,
    pub duration: u32,
    pub patient_state: String,
    pub modality: Option<Modality>,
    pub practitioner_ids: Vec<String>,
    pub location_id: Option<String>,
    pub earliest_date: Option<Date>,
    pub latest_date: Date,
    /// Only times before this visit, which an accepted offer reschedules.
    pub before_appointment_id: Option<String>,
    /// That visit's start when the entry was made.
    pub before_start: Option<Timestamp>,
    pub created_at: Timestamp,
    /// Slots (`<practitioner>@<start>`) this entry was offered and let go: never offered again.
    #[serde(default)]
    pub passed: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferStatus {
    Open,
    /// A booking of it is under way (see `Offer::accepting`): it neither lapses nor may be
    /// declined meanwhile; it ends Accepted, or goes back to Open if nothing was booked.
    Accepting,
    Accepted,
    Declined,
    Expired,
}

/// A slot held for one entry until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    pub id: String,
    pub entry_id: String,
    pub patient: String,
    /// The signed slot id, as `/v1/availability` gives it.
    pub slot_id: String,
    /// The hold that keeps the slot for this offer, and its owner.
    pub hold_id: String,
    pub practitioner: String,
    pub location_id: String,
    pub start: Timestamp,
    pub end: Timestamp,
    pub modality: Modality,
    pub made_at: Timestamp,
    pub expires_at: Timestamp,
    pub status: OfferStatus,
    /// The webhook sinks were told of it.
    pub notified: bool,
    /// The booking identifier of the accept that holds it (while Accepting, and after).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepting: Option<String>,
}

impl OfferStatus {
    /// Open or Accepting: the offer still stands for its entry.
    pub fn is_live(self) -> bool {
        matches!(self, OfferStatus::Open | OfferStatus::Accepting)
    }
}

impl Offer {
    /// The owner of the offer's hold.
    pub fn hold_owner(id: &str) -> String {
        format!("waitlist:{id}")
    }

    /// How a slot is remembered in `Entry::passed`.
    pub fn slot_key(practitioner: &str, start: Timestamp) -> String {
        format!("{practitioner}@{}", start.as_second())
    }
}
