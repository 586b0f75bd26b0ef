//! `waitlist.offer` messages to the webhook sinks: what an app needs to tell a patient of an
//! earlier time, at each sink's PHI level. `busy`: the offer and its times; `neutral`: with the
//! clinician, location and modality; `full`: with the patient's id too. Each offer is one
//! message id, so a receiver that sees it twice (a resend after a failure) can tell.

use serde_json::{Value, json};

use super::outbound::SyncEngine;
use super::sinks::Outcome;
use crate::canvas::fhir;
use crate::config::sync::PhiLevel;
use crate::scheduling::waitlist::announce::Notice;

pub fn data(notice: &Notice, level: PhiLevel) -> Value {
    let o = &notice.offer;
    let tz = &notice.timezone;
    let local = |t: jiff::Timestamp| fhir::Instant::new(t, tz.to_offset(t)).to_string();
    let mut slot = json!({"start": local(o.start), "end": local(o.end)});
    if level != PhiLevel::Busy {
        slot["practitioner"] = json!({"id": o.practitioner, "name": notice.practitioner_name});
        slot["location"] = json!({"id": o.location_id, "name": notice.location_name});
        slot["modality"] = json!(o.modality);
    }
    let mut data = json!({
        "offer_id": o.id,
        "waitlist_id": o.entry_id,
        "slot": slot,
        "expires_at": o.expires_at.to_string(),
    });
    if level == PhiLevel::Full {
        data["patient_id"] = json!(o.patient);
    }
    data
}

impl SyncEngine {
    /// Sends the offer to every sink that takes messages; `true` once all of them have it.
    pub async fn announce_offer(&self, notice: Notice) -> bool {
        let id = format!("msg_offer_{}", notice.offer.id.replace('-', ""));
        let mut all = true;
        for sink in self.sinks() {
            let data = data(&notice, sink.phi());
            if let Some(sent) = sink.announce("waitlist.offer", &id, &data) {
                match sent.await {
                    Outcome::Delivered { .. } => {}
                    Outcome::Retry { reason, .. } | Outcome::Failed(reason) => {
                        tracing::warn!(
                            sink = sink.name(),
                            reason,
                            "waitlist offer not delivered; sent again after a pause"
                        );
                        all = false;
                    }
                }
            }
        }
        all
    }
}
