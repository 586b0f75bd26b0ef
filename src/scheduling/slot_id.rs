//! `slot_id`: an opaque, versioned token that carries everything needed to book a slot and
//! that the client cannot alter. Format: `s1.<base64url JSON>.<base64url HMAC-SHA256/128>`.
//! The key is shared by every replica (`[booking] slot_id_secret`), so any replica can trust a
//! slot another one offered.

use aws_lc_rs::{constant_time, hmac};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::rules::model::Modality;
use crate::types::PractitionerId;

const VERSION: &str = "s1";
const TAG_BYTES: usize = 16;

/// What a slot id says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotClaim {
    #[serde(rename = "p")]
    pub practitioner: PractitionerId,
    /// The location's `schedule_key` (the `<n>` of `Location.<n>-Staff.<key>`).
    #[serde(rename = "l")]
    pub location_key: String,
    /// Start, Unix seconds.
    #[serde(rename = "s")]
    pub start: i64,
    #[serde(rename = "d")]
    pub duration_minutes: u32,
    #[serde(rename = "m")]
    pub modality: Modality,
    #[serde(rename = "r")]
    pub reason: String,
}

impl SlotClaim {
    pub fn start(&self) -> Option<Timestamp> {
        Timestamp::from_second(self.start).ok()
    }

    pub fn end(&self) -> Option<Timestamp> {
        Timestamp::from_second(self.start + i64::from(self.duration_minutes) * 60).ok()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotIdError {
    #[error("is not a slot id from /v1/availability")]
    Malformed,
    #[error("was altered or issued by another deployment")]
    Tampered,
}

pub struct SlotIds {
    key: hmac::Key,
}

impl SlotIds {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    pub fn issue(&self, claim: &SlotClaim) -> String {
        // A struct of strings and integers always serialises.
        let payload = B64.encode(serde_json::to_vec(claim).unwrap_or_default());
        let signed = format!("{VERSION}.{payload}");
        let tag = hmac::sign(&self.key, signed.as_bytes());
        format!("{signed}.{}", B64.encode(&tag.as_ref()[..TAG_BYTES]))
    }

    pub fn verify(&self, token: &str) -> Result<SlotClaim, SlotIdError> {
        if token.len() > 1024 {
            return Err(SlotIdError::Malformed);
        }
        let (signed, tag) = token.rsplit_once('.').ok_or(SlotIdError::Malformed)?;
        let (version, payload) = signed.split_once('.').ok_or(SlotIdError::Malformed)?;
        if version != VERSION {
            return Err(SlotIdError::Malformed);
        }
        let tag = B64.decode(tag).map_err(|_| SlotIdError::Malformed)?;
        let expected = hmac::sign(&self.key, signed.as_bytes());
        constant_time::verify_slices_are_equal(&expected.as_ref()[..TAG_BYTES], &tag)
            .map_err(|_| SlotIdError::Tampered)?;
        let json = B64.decode(payload).map_err(|_| SlotIdError::Malformed)?;
        serde_json::from_slice(&json).map_err(|_| SlotIdError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim() -> SlotClaim {
        SlotClaim {
            practitioner: "4150cd20de8a470aa570a852859ac87e".parse().unwrap(),
            location_key: "1".into(),
            start: 1_796_140_800,
            duration_minutes: 30,
            modality: Modality::Telehealth,
            reason: "INIV".into(),
        }
    }

    #[test]
    fn a_slot_id_round_trips() {
        let ids = SlotIds::new(b"0123456789abcdef0123456789abcdef");
        let token = ids.issue(&claim());
        assert!(token.starts_with("s1."));
        assert_eq!(ids.verify(&token), Ok(claim()));
        assert_eq!(claim().end().unwrap().as_second() - claim().start, 1800);
    }

    #[test]
    fn any_change_is_detected() {
        let ids = SlotIds::new(b"0123456789abcdef0123456789abcdef");
        let token = ids.issue(&claim());
        let mut other = claim();
        other.start += 900;
        let forged_payload = B64.encode(serde_json::to_vec(&other).unwrap());
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!("s1.{forged_payload}.{}", parts[2]);
        assert_eq!(ids.verify(&forged), Err(SlotIdError::Tampered));
        let another_key = SlotIds::new(b"another deployment's secret.....");
        assert_eq!(another_key.verify(&token), Err(SlotIdError::Tampered));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let ids = SlotIds::new(b"k");
        for bad in [
            "",
            "s1",
            "s1..",
            "s2.e30.AAAA",
            "s1.!!!.AAAA",
            "x.y.z",
            &"a".repeat(5000),
        ] {
            assert!(ids.verify(bad).is_err(), "{bad}");
        }
    }
}
