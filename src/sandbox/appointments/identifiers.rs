//! Appointment identifiers (§4): the write side gives each an `id`, `use` usual and the
//! default period, and an update deletes the live ones that were not sent again.

use jiff::civil::Date;

use super::AppointmentError;
use super::write::invalid;
use crate::canvas::fhir::{Identifier, Period};
use crate::sandbox::params::parse_date;

/// Identifiers get an `id`, `use` usual and the default period; `assigner` is write-only (§4).
pub fn normalise_identifier(
    sent: &Identifier,
    id: Option<String>,
) -> Result<Identifier, AppointmentError> {
    if sent.value.as_deref().is_none_or(str::is_empty) {
        return Err(invalid("identifier: value is required"));
    }
    let period = sent.period.clone().unwrap_or_default();
    for date in [&period.start, &period.end].into_iter().flatten() {
        if parse_date(date).is_none() {
            return Err(invalid(format!(
                "identifier: period date '{date}' is not YYYY-MM-DD"
            )));
        }
    }
    Ok(Identifier {
        id: Some(id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string())),
        use_: Some(sent.use_.clone().unwrap_or_else(|| "usual".into())),
        identifier_type: sent.identifier_type.clone(),
        system: sent.system.clone(),
        value: sent.value.clone(),
        period: Some(Period {
            start: Some(period.start.unwrap_or_else(|| "1970-01-01".into())),
            end: Some(period.end.unwrap_or_else(|| "2100-12-31".into())),
        }),
        assigner: None,
    })
}

/// On update, sent identifiers with a known `id` replace it, others are added, and stored
/// ones not sent are deleted when their period ends in the future (§4).
pub fn merge_identifiers(
    current: &[Identifier],
    sent: &[Identifier],
    today: Date,
) -> Result<Vec<Identifier>, AppointmentError> {
    let mut out: Vec<Identifier> = current
        .iter()
        .filter(|kept| {
            let ended = kept
                .period
                .as_ref()
                .and_then(|p| p.end.as_deref())
                .and_then(parse_date)
                .is_some_and(|end| end <= today);
            ended && !sent.iter().any(|s| s.id.is_some() && s.id == kept.id)
        })
        .cloned()
        .collect();
    for identifier in sent {
        if let Some(id) = &identifier.id
            && !current.iter().any(|c| c.id.as_ref() == Some(id))
        {
            return Err(invalid(format!("identifier: unknown identifier id '{id}'")));
        }
        out.push(normalise_identifier(identifier, identifier.id.clone())?);
    }
    Ok(out)
}
