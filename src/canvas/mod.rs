//! The Canvas client: token, FHIR types, calls, typed errors. Knows nothing of HTTP routes.
//! `shared/design/canvas-fhir.md` is the source of truth for every shape used here.

mod breaker;
mod client;
mod error;
pub mod fhir;
mod give_way;
pub mod licenses;
mod token;

use jiff::civil::Date;

const SLOT_PAGE_SIZE: &str = "500";
use reqwest::Method;

pub use client::{CanvasClient, ClientOptions};
pub use error::Error;

use crate::types::{PatientId, ScheduleId};
use fhir::{Appointment, Location, Patient, Practitioner, Schedule, Slot};

impl CanvasClient {
    pub async fn schedules(&self) -> Result<Vec<Schedule>, Error> {
        self.search("Schedule.search", "Schedule", &[]).await
    }

    /// Free slots of one schedule for the clinic-local dates `start..=end` (§3).
    pub async fn slots(
        &self,
        schedule: &ScheduleId,
        start: Date,
        end: Date,
        duration_minutes: u32,
    ) -> Result<Vec<Slot>, Error> {
        let (schedule, start, end, duration) = (
            schedule.to_string(),
            start.to_string(),
            end.to_string(),
            duration_minutes.to_string(),
        );
        // Canvas's own plugins ask for 500 Slots at once (§3): whether Slot search pages at 100
        // is unconfirmed, so ask for more and follow `next` if it does.
        self.search_pages(
            "Slot.search",
            "Slot",
            &[
                ("schedule", &schedule),
                ("start", &start),
                ("end", &end),
                ("duration", &duration),
            ],
            SLOT_PAGE_SIZE,
        )
        .await
    }

    /// Schedulable, active practitioners (Canvas's default search).
    pub async fn practitioners(&self) -> Result<Vec<Practitioner>, Error> {
        self.search("Practitioner.search", "Practitioner", &[])
            .await
    }

    pub async fn locations(&self) -> Result<Vec<Location>, Error> {
        self.search("Location.search", "Location", &[]).await
    }

    /// The patient, or `None` when Canvas does not know the key.
    pub async fn patient(&self, id: &PatientId) -> Result<Option<Patient>, Error> {
        self.read("Patient.read", "Patient", id.as_str()).await
    }

    pub async fn appointment(&self, id: &str) -> Result<Option<Appointment>, Error> {
        self.read("Appointment.read", "Appointment", id).await
    }

    /// `GET /Appointment?...` with Canvas's search parameters (§4 Search).
    pub async fn search_appointments(
        &self,
        params: &[(&str, &str)],
    ) -> Result<Vec<Appointment>, Error> {
        self.search("Appointment.search", "Appointment", params)
            .await
    }

    /// Creates an Appointment and returns its id. Canvas answers 201 with a `null` body and
    /// the id only in the `Location` header (§4 Create response). Never retried here: a write
    /// that may have happened is resolved by the caller (identifier search), not by resending.
    pub async fn create_appointment(&self, appointment: &Appointment) -> Result<String, Error> {
        const OP: &str = "Appointment.create";
        let body = serde_json::to_vec(appointment).map_err(|e| Error::Invalid {
            operation: OP,
            text: e.to_string(),
        })?;
        let answer = self
            .execute(OP, Method::POST, self.url("Appointment"), Some(body))
            .await?;
        answer
            .headers
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| created_id(l, "Appointment"))
            // Canvas made something it did not name: the caller looks it up by identifier.
            .ok_or(Error::WriteFailed {
                operation: OP,
                status: 201,
            })
    }

    /// `PUT /Appointment/<id>`: Canvas merges the fields sent and answers 200 `null` (§4 Update).
    pub async fn update_appointment(
        &self,
        id: &str,
        changes: &serde_json::Value,
    ) -> Result<(), Error> {
        const OP: &str = "Appointment.update";
        let body = serde_json::to_vec(changes).map_err(|e| Error::Invalid {
            operation: OP,
            text: e.to_string(),
        })?;
        self.execute(
            OP,
            Method::PUT,
            self.url(&format!("Appointment/{id}")),
            Some(body),
        )
        .await
        .map(drop)
    }

    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        operation: &'static str,
        resource: &str,
        id: &str,
    ) -> Result<Option<T>, Error> {
        // Ids go into a path segment; anything but Canvas's id alphabet cannot exist there.
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Ok(None);
        }
        match self
            .execute(
                operation,
                Method::GET,
                self.url(&format!("{resource}/{id}")),
                None,
            )
            .await
        {
            Ok(answer) => client::decode(operation, &answer.body).map(Some),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The id in a create's `Location` header: `…/<Type>/<id>/_history/1`, or without `_history`.
pub fn created_id(location: &str, resource: &str) -> Option<String> {
    let marker = format!("/{resource}/");
    let start = location.rfind(&marker)? + marker.len();
    let id = location[start..].split(['/', '?', '#']).next()?;
    (!id.is_empty()).then(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::created_id;

    #[test]
    fn location_header_forms() {
        let id = "621a66fc-9d5c-4de0-97fb-935d611ac176";
        for header in [
            format!("http://fumage-x.canvasmedical.com/Appointment/{id}/_history/1"),
            format!("https://fumage-x.canvasmedical.com/Appointment/{id}"),
            format!("/Appointment/{id}/_history/7"),
            format!("Appointment/{id}"),
        ] {
            let header = if header.starts_with("Appointment") {
                format!("/{header}")
            } else {
                header
            };
            assert_eq!(
                created_id(&header, "Appointment").as_deref(),
                Some(id),
                "{header}"
            );
        }
        assert_eq!(created_id("http://h/Appointment/", "Appointment"), None);
        assert_eq!(created_id("http://h/Patient/abc", "Appointment"), None);
    }
}
