//! Which clinicians fit a set of filters: the same rules as availability, asked of the
//! clinician rather than of a slot (licensure over a window of dates instead of one date).

use jiff::civil::Date;

use super::directory::{Clinician, Place, Snapshot};
use crate::rules::eligibility::{offers_modality, offers_specialty};
use crate::rules::model::{Modality, Reason};
use crate::types::UsState;

#[derive(Debug, Default)]
pub struct Filters {
    pub state: Option<UsState>,
    pub reason: Option<Reason>,
    pub modality: Option<Modality>,
    pub location: Option<String>,
    pub specialty: Option<String>,
    pub language: Option<String>,
}

pub struct Eligible<'a> {
    pub clinician: &'a Clinician,
    /// Locations with a schedule for them (within the location filter).
    pub places: Vec<&'a Place>,
    /// States licensed on some day of the window.
    pub states: Vec<UsState>,
}

/// Clinicians with a schedule at a location where some modality passes every filter on some
/// day of `from..=to`: telehealth needs a licence for `state` (any licence without one); in
/// person a licence for the location's state, and for `state` too when given.
pub fn eligible<'a>(
    snapshot: &'a Snapshot,
    f: &Filters,
    from: Date,
    to: Date,
) -> Vec<Eligible<'a>> {
    let mut out: Vec<Eligible<'a>> = snapshot
        .clinicians
        .values()
        .filter_map(|c| {
            let profile = &c.profile;
            let places: Vec<&Place> = snapshot
                .schedules
                .iter()
                .filter(|s| s.id.practitioner == c.id)
                .filter_map(|s| snapshot.places.get(s.place))
                .filter(|p| f.location.as_ref().is_none_or(|l| l == &p.info.id))
                .collect();
            let fits = f
                .specialty
                .as_ref()
                .is_none_or(|s| profile.specialties.contains(s))
                && f.language
                    .as_ref()
                    .is_none_or(|l| profile.languages.contains(l))
                && f.reason
                    .as_ref()
                    .is_none_or(|r| offers_specialty(r, profile));
            if places.is_empty() || !fits {
                return None;
            }
            let l = &c.licensure;
            let states = l.states(from, to);
            let licensed = |m: Modality, place: &Place| match m {
                Modality::Telehealth => f
                    .state
                    .map_or(!states.is_empty(), |s| l.covers_any(s, from, to)),
                Modality::InPerson => {
                    l.covers_any(place.info.state, from, to)
                        && f.state.is_none_or(|s| l.covers_any(s, from, to))
                }
            };
            let can = Modality::ALL
                .into_iter()
                .filter(|m| f.modality.is_none_or(|wanted| wanted == *m))
                .filter(|m| profile.modalities.contains(m))
                .filter(|m| {
                    f.reason
                        .as_ref()
                        .is_none_or(|r| offers_modality(r, profile, *m))
                })
                .any(|m| places.iter().any(|p| licensed(m, p)));
            can.then_some(Eligible {
                clinician: c,
                places,
                states,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        a.clinician
            .name
            .cmp(&b.clinician.name)
            .then_with(|| a.clinician.id.cmp(&b.clinician.id))
    });
    out
}
