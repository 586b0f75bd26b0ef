//! The vocabulary every layer shares: ids and codes as newtypes that are valid once they exist.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// The 50 states plus DC, the territories Canvas accepts in addresses, and nothing else.
const US_STATES: [&str; 56] = [
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS",
    "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY",
    "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV",
    "WI", "WY", "DC", "PR", "GU", "VI", "AS", "MP",
];

/// A two-letter US state (or DC/territory) code, upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UsState([u8; 2]);

impl UsState {
    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }

    /// The state's name, as USPS writes it.
    pub fn name(&self) -> &'static str {
        US_STATES
            .iter()
            .position(|s| *s == self.as_str())
            .and_then(|i| US_STATE_NAMES.get(i))
            .copied()
            .unwrap_or("the United States")
    }
}

/// Names in the order of `US_STATES`.
const US_STATE_NAMES: [&str; 56] = [
    "Alabama",
    "Alaska",
    "Arizona",
    "Arkansas",
    "California",
    "Colorado",
    "Connecticut",
    "Delaware",
    "Florida",
    "Georgia",
    "Hawaii",
    "Idaho",
    "Illinois",
    "Indiana",
    "Iowa",
    "Kansas",
    "Kentucky",
    "Louisiana",
    "Maine",
    "Maryland",
    "Massachusetts",
    "Michigan",
    "Minnesota",
    "Mississippi",
    "Missouri",
    "Montana",
    "Nebraska",
    "Nevada",
    "New Hampshire",
    "New Jersey",
    "New Mexico",
    "New York",
    "North Carolina",
    "North Dakota",
    "Ohio",
    "Oklahoma",
    "Oregon",
    "Pennsylvania",
    "Rhode Island",
    "South Carolina",
    "South Dakota",
    "Tennessee",
    "Texas",
    "Utah",
    "Vermont",
    "Virginia",
    "Washington",
    "West Virginia",
    "Wisconsin",
    "Wyoming",
    "District of Columbia",
    "Puerto Rico",
    "Guam",
    "U.S. Virgin Islands",
    "American Samoa",
    "Northern Mariana Islands",
];

impl FromStr for UsState {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let upper = s.trim().to_ascii_uppercase();
        if US_STATES.contains(&upper.as_str()) {
            let b = upper.as_bytes();
            Ok(Self([b[0], b[1]]))
        } else {
            Err(ParseError(format!("{s:?} is not a US state code")))
        }
    }
}

impl TryFrom<String> for UsState {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        s.parse()
    }
}

impl From<UsState> for String {
    fn from(s: UsState) -> String {
        s.as_str().to_owned()
    }
}

/// Documented as the list of codes, so a schema-valid state is one slotgate accepts.
impl utoipa::PartialSchema for UsState {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("Two-letter US state, DC or territory code"))
            .enum_values(Some(US_STATES))
            .examples(["CA"])
            .into()
    }
}

impl utoipa::ToSchema for UsState {}

impl fmt::Display for UsState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn is_hex32(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

macro_rules! key_newtype {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                if is_hex32(s) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(ParseError(format!(
                        concat!("{:?} is not a ", $what, " (32 lower-case hex digits)"),
                        s
                    )))
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = ParseError;
            fn try_from(s: String) -> Result<Self, ParseError> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

key_newtype!(
    /// A Canvas Practitioner id, which is also the staff key in Schedule ids.
    PractitionerId,
    "Canvas practitioner id"
);
key_newtype!(
    /// A Canvas patient key.
    PatientId,
    "Canvas patient key"
);

/// A Canvas Schedule id, `Location.<practice location db id>-Staff.<staff key>` (canvas-fhir.md §2).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScheduleId {
    /// The integer practice-location id; the `schedule_key` of a `[[locations]]` entry.
    pub location_key: String,
    pub practitioner: PractitionerId,
}

impl FromStr for ScheduleId {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let bad = || ParseError(format!("{s:?} is not a Canvas schedule id"));
        let rest = s.strip_prefix("Location.").ok_or_else(bad)?;
        let (key, staff) = rest.split_once("-Staff.").ok_or_else(bad)?;
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        Ok(Self {
            location_key: key.to_owned(),
            practitioner: staff.parse().map_err(|_| bad())?,
        })
    }
}

impl fmt::Display for ScheduleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Location.{}-Staff.{}",
            self.location_key, self.practitioner
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_normalised_and_checked() {
        assert_eq!("ca".parse::<UsState>().unwrap().as_str(), "CA");
        assert_eq!(" NY ".parse::<UsState>().unwrap().to_string(), "NY");
        assert!("XX".parse::<UsState>().is_err());
        assert!("California".parse::<UsState>().is_err());
        assert!("".parse::<UsState>().is_err());
    }

    #[test]
    fn every_state_has_its_name() {
        assert_eq!("CA".parse::<UsState>().unwrap().name(), "California");
        assert_eq!(
            "DC".parse::<UsState>().unwrap().name(),
            "District of Columbia"
        );
        assert_eq!(
            "MP".parse::<UsState>().unwrap().name(),
            "Northern Mariana Islands"
        );
        assert_eq!("WY".parse::<UsState>().unwrap().name(), "Wyoming");
    }

    #[test]
    fn schedule_ids_round_trip() {
        let id: ScheduleId = "Location.12-Staff.e766816672f34a5b866771c773e38f3c"
            .parse()
            .unwrap();
        assert_eq!(id.location_key, "12");
        assert_eq!(id.practitioner.as_str(), "e766816672f34a5b866771c773e38f3c");
        assert_eq!(
            id.to_string(),
            "Location.12-Staff.e766816672f34a5b866771c773e38f3c"
        );
    }

    #[test]
    fn malformed_schedule_ids_are_refused() {
        for bad in [
            "Location.-Staff.e766816672f34a5b866771c773e38f3c",
            "Location.a1-Staff.e766816672f34a5b866771c773e38f3c",
            "Location.1-Staff.E766816672F34A5B866771C773E38F3C",
            "Location.1-Staff.e766",
            "Staff.e766816672f34a5b866771c773e38f3c",
        ] {
            assert!(bad.parse::<ScheduleId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn practitioner_ids_must_be_canvas_keys() {
        assert!(
            "4150cd20de8a470aa570a852859ac87e"
                .parse::<PractitionerId>()
                .is_ok()
        );
        assert!(
            "4150cd20-de8a-470a-a570-a852859ac87e"
                .parse::<PractitionerId>()
                .is_err()
        );
    }
}
