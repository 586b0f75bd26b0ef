//! Seed appointments go through the same validation as a POST, so the seed cannot drift from
//! what the sandbox accepts.

use jiff::SignedDuration;

use super::{AppointmentError, AppointmentWrite, Book, write};
use crate::canvas::fhir::{CodeableConcept, Coding, Identifier, Instant, Participant, Reference};
use crate::sandbox::clinic::{Clinic, SNOMED, SeedAppointment};

fn actor(kind: &str, id: &str) -> Participant {
    Participant {
        actor: Reference::to(kind, id),
        status: Some("accepted".into()),
    }
}

fn reason_code(seed: &SeedAppointment) -> CodeableConcept {
    CodeableConcept {
        coding: seed
            .reason_code
            .iter()
            .map(|code| Coding {
                code: Some(code.clone()),
                ..Coding::default()
            })
            .collect(),
        text: seed.reason_text.clone(),
    }
}

fn write_for(
    seed: &SeedAppointment,
    clinic: &Clinic,
) -> Result<AppointmentWrite, AppointmentError> {
    let location = clinic
        .location_by_key(seed.location)
        .ok_or_else(|| AppointmentError::Invalid(format!("seed location {}", seed.location)))?;
    let start = location
        .tz
        .to_ambiguous_timestamp(seed.date.to_datetime(seed.start))
        .compatible()
        .map_err(|e| AppointmentError::Invalid(e.to_string()))?;
    let end = start + SignedDuration::from_mins(seed.minutes);
    let mut participant = vec![actor("Practitioner", seed.practitioner.as_str())];
    participant.extend(seed.patient.iter().map(|p| actor("Patient", p.as_str())));
    Ok(AppointmentWrite {
        resource_type: Some("Appointment".into()),
        status: Some(seed.status.as_str().into()),
        appointment_type: Some(CodeableConcept {
            coding: vec![Coding {
                system: Some(SNOMED.into()),
                code: Some(seed.note_type_code.clone()),
                ..Coding::default()
            }],
            text: None,
        }),
        reason_code: Some(vec![reason_code(seed)]),
        supporting_information: Some(vec![Reference::to("Location", &location.id)]),
        start: Some(Instant::new(start, location.tz.to_offset(start)).to_string()),
        end: Some(Instant::new(end, location.tz.to_offset(end)).to_string()),
        participant: Some(participant),
        identifier: seed.identifier.as_ref().map(|(system, value)| {
            vec![Identifier {
                system: Some(system.clone()),
                value: Some(value.clone()),
                ..Identifier::default()
            }]
        }),
        ..AppointmentWrite::default()
    })
}

/// A book holding the clinic's seed appointments.
pub fn seeded_book(clinic: &Clinic, now: jiff::Timestamp) -> Result<Book, AppointmentError> {
    let mut book = Book::default();
    for seed in &clinic.appointments {
        let draft = write::new_draft(&write_for(seed, clinic)?, clinic)?;
        book.insert(seed.id.clone(), draft, false, now)?;
    }
    Ok(book)
}
