//! Locations, as Canvas knows them and the clinic maps them.

use crate::canvas::{self, CanvasClient};
use crate::rules::model::{LocationInfo, Rules};

/// A practice location a patient can be seen at.
#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    pub info: LocationInfo,
    pub name: String,
}

/// Canvas's active locations that the clinic mapped in `[[locations]]`, by name. Unmapped ones
/// cannot be scheduled (their zone and state are unknown), so they are left out.
pub async fn locations(canvas: &CanvasClient, rules: &Rules) -> Result<Vec<Place>, canvas::Error> {
    let mut places: Vec<Place> = canvas
        .locations()
        .await?
        .into_iter()
        .filter(|l| l.status.as_deref() != Some("inactive"))
        .filter_map(|l| {
            let info = rules.location_by_id(&l.id)?.clone();
            let name = l.name.or_else(|| l.alias.first().cloned()).unwrap_or(l.id);
            Some(Place { info, name })
        })
        .collect();
    places.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.info.id.cmp(&b.info.id)));
    Ok(places)
}
