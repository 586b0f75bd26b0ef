//! The seed as Canvas renders it: FHIR Location, Practitioner, Patient and Schedule
//! resources in the shapes of canvas-fhir.md §2, §5 and §6.

use crate::canvas::fhir::{
    self, Address, CodeableConcept, Coding, ContactPoint, EXT_ISSUING_AUTHORITY_SHORT_NAME,
    EXT_ISSUING_AUTHORITY_STATE, EXT_ISSUING_AUTHORITY_URL, EXT_LICENSE_PRIMARY,
    EXT_MEETING_ROOM_LINK, EXT_PREFIX, EXT_PRIMARY_PRACTICE_LOCATION, Extension, HumanName,
    Identifier, NPI_SYSTEM, Narrative, Period, Qualification, Reference,
};
use crate::types::ScheduleId;

use super::catalog::CANVAS_MRN_SYSTEM;
use super::{Clinic, ClinicLocation, ClinicPatient, Clinician, Licence};

const TZ_CODE: &str = "http://hl7.org/fhir/StructureDefinition/tz-code";
const V2_0203: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";

fn npi(value: &str) -> Identifier {
    Identifier {
        system: Some(NPI_SYSTEM.into()),
        value: Some(value.into()),
        ..Identifier::default()
    }
}

/// A reference with its `type`, as Canvas reads return them.
pub fn typed_reference(resource_type: &str, id: &str) -> Reference {
    Reference {
        resource_type: Some(resource_type.into()),
        ..Reference::to(resource_type, id)
    }
}

fn contact(system: &str, value: String) -> ContactPoint {
    ContactPoint {
        system: Some(system.into()),
        value: Some(value),
        use_: Some("work".into()),
        rank: Some(1),
    }
}

impl ClinicLocation {
    pub fn to_fhir(&self, organization: &str) -> fhir::Location {
        fhir::Location {
            resource_type: "Location".into(),
            id: self.id.clone(),
            identifier: vec![npi(&self.npi)],
            status: Some("active".into()),
            name: Some(self.name.clone()),
            alias: vec![self.alias.clone()],
            description: Some(format!("{organization}: {}", self.name)),
            address: Some(Address {
                use_: Some("work".into()),
                line: vec![self.line.clone()],
                city: Some(self.city.clone()),
                state: Some(self.state.to_string()),
                postal_code: Some(self.postal_code.clone()),
                country: Some("USA".into()),
                ..Address::default()
            }),
        }
    }

    pub fn address(&self) -> Address {
        self.to_fhir("").address.unwrap_or_default()
    }
}

/// A licence in the "newer shape" a live Canvas returns (§5): short name first, then state,
/// then primary; the identifier system is the issuing-authority URL.
fn qualification(licence: &Licence) -> Qualification {
    let mut issuer_ext = vec![Extension::string(
        EXT_ISSUING_AUTHORITY_SHORT_NAME,
        &licence.issuer_short,
    )];
    if let Some(state) = licence.state {
        issuer_ext.push(Extension::string(
            EXT_ISSUING_AUTHORITY_STATE,
            state.as_str(),
        ));
    }
    issuer_ext.push(Extension {
        url: EXT_LICENSE_PRIMARY.into(),
        value_boolean: Some(licence.primary),
        ..Extension::default()
    });
    Qualification {
        identifier: vec![Identifier {
            system: Some(EXT_ISSUING_AUTHORITY_URL.into()),
            value: Some(licence.number.clone()),
            ..Identifier::default()
        }],
        code: CodeableConcept {
            coding: Vec::new(),
            text: Some(licence.kind.as_str().into()),
        },
        period: Some(Period {
            start: Some(licence.start.to_string()),
            end: Some(licence.end.to_string()),
        }),
        issuer: Some(Reference {
            display: Some(licence.issuer.clone()),
            extension: issuer_ext,
            ..Reference::default()
        }),
    }
}

impl Clinician {
    fn username(&self) -> String {
        format!("{}.{}", self.given, self.family).to_ascii_lowercase()
    }

    /// The one email Canvas requires of staff (§5), and what `email` searches match.
    pub fn email(&self) -> String {
        format!("{}@sandbox.example", self.username())
    }

    fn extensions(&self, clinic: &Clinic) -> Vec<Extension> {
        let mut out = vec![Extension::string(
            &format!("{EXT_PREFIX}practitioner-user-username"),
            &self.username(),
        )];
        if let Some(room) = &self.meeting_room {
            out.push(Extension {
                url: EXT_MEETING_ROOM_LINK.into(),
                value_url: Some(room.clone()),
                ..Extension::default()
            });
        }
        if let Some(location) = clinic.location_by_key(self.primary_location) {
            out.push(Extension {
                url: EXT_PRIMARY_PRACTICE_LOCATION.into(),
                value_reference: Some(typed_reference("Location", &location.id)),
                ..Extension::default()
            });
        }
        out
    }

    pub fn to_fhir(&self, clinic: &Clinic) -> fhir::Practitioner {
        fhir::Practitioner {
            resource_type: "Practitioner".into(),
            id: self.id.to_string(),
            identifier: vec![npi(&self.npi)],
            active: Some(self.active),
            name: vec![HumanName {
                use_: Some("usual".into()),
                text: Some(self.display_name()),
                family: Some(self.family.clone()),
                given: vec![self.given.clone()],
                suffix: vec![self.credentials.clone()],
                ..HumanName::default()
            }],
            telecom: vec![
                contact("phone", format!("555010{}", &self.npi[6..])),
                contact("email", self.email()),
            ],
            address: clinic
                .location_by_key(self.primary_location)
                .map(ClinicLocation::address)
                .into_iter()
                .collect(),
            birth_date: Some(self.birth_date.to_string()),
            extension: self.extensions(clinic),
            qualification: self.licences.iter().map(qualification).collect(),
        }
    }
}

/// The IANA zone a patient in this state most likely lives in, for the tz-code extension.
fn patient_zone(state: &str) -> &'static str {
    match state {
        "CA" | "WA" => "America/Los_Angeles",
        "TN" | "TX" => "America/Chicago",
        "AZ" => "America/Phoenix",
        _ => "America/New_York",
    }
}

impl ClinicPatient {
    /// Every identifier the patient carries: the Canvas MRN, then external ones.
    pub fn identifiers(&self) -> Vec<Identifier> {
        let mrn = Identifier {
            use_: Some("usual".into()),
            identifier_type: Some(CodeableConcept {
                coding: vec![Coding {
                    system: Some(V2_0203.into()),
                    code: Some("MR".into()),
                    ..Coding::default()
                }],
                text: None,
            }),
            system: Some(CANVAS_MRN_SYSTEM.into()),
            value: Some(self.mrn.clone()),
            assigner: Some(Reference {
                display: Some("Canvas Medical".into()),
                ..Reference::default()
            }),
            ..Identifier::default()
        };
        let external = self.external_ids.iter().map(|(system, value)| Identifier {
            id: uuid::Uuid::parse_str(self.id.as_str())
                .ok()
                .map(|u| u.hyphenated().to_string()),
            use_: Some("usual".into()),
            system: Some(system.clone()),
            value: Some(value.clone()),
            period: Some(Period {
                start: Some("2020-01-01".into()),
                end: Some("2100-12-31".into()),
            }),
            ..Identifier::default()
        });
        std::iter::once(mrn).chain(external).collect()
    }

    /// The official name first (slotgate and Canvas's UI read that one), then the nickname
    /// as Canvas's patient read example shows it: `use: nickname`, the name in `given`.
    fn names(&self) -> Vec<HumanName> {
        let official = HumanName {
            use_: Some("official".into()),
            family: Some(self.family.clone()),
            given: vec![self.given.clone()],
            ..HumanName::default()
        };
        let nickname = self.nickname.as_ref().map(|n| HumanName {
            use_: Some("nickname".into()),
            given: vec![n.clone()],
            ..HumanName::default()
        });
        std::iter::once(official).chain(nickname).collect()
    }

    pub fn to_fhir(&self) -> fhir::Patient {
        fhir::Patient {
            resource_type: "Patient".into(),
            id: self.id.to_string(),
            identifier: self.identifiers(),
            active: Some(self.active),
            name: self.names(),
            telecom: vec![
                ContactPoint {
                    use_: Some("mobile".into()),
                    ..contact("phone", self.phone.clone())
                },
                ContactPoint {
                    use_: Some("home".into()),
                    ..contact("email", self.email.clone())
                },
            ],
            gender: Some(self.gender.clone()),
            birth_date: Some(self.birth_date.to_string()),
            address: vec![Address {
                use_: Some("home".into()),
                address_type: Some("both".into()),
                line: vec![self.line.clone()],
                city: Some(self.city.clone()),
                state: Some(self.state.to_string()),
                postal_code: Some(self.postal_code.clone()),
                country: Some("United States".into()),
            }],
            extension: vec![Extension {
                url: TZ_CODE.into(),
                value_code: Some(patient_zone(self.state.as_str()).into()),
                ..Extension::default()
            }],
        }
    }
}

/// One Schedule per (practice location, schedulable staff), id `Location.<n>-Staff.<key>` (§2).
pub fn schedule(location: &ClinicLocation, clinician: &Clinician) -> fhir::Schedule {
    let id = ScheduleId {
        location_key: location.key.to_string(),
        practitioner: clinician.id.clone(),
    };
    let comment = format!(
        "Schedule for {} at {}",
        clinician.display_name(),
        location.name
    );
    fhir::Schedule {
        resource_type: "Schedule".into(),
        id: id.to_string(),
        text: Some(Narrative {
            status: "generated".into(),
            div: format!("<div>{comment}</div>"),
        }),
        actor: vec![typed_reference("Practitioner", clinician.id.as_str())],
        comment: Some(comment),
    }
}
