//! The clinic as slotgate configuration (api-contract.md "Configuration"): what Canvas FHIR
//! does not carry, so that slotgate can run against this sandbox out of the box.

use std::fmt::Write;

use super::Clinic;

/// A TOML basic string.
fn quoted(value: &str) -> String {
    let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}

fn list<S: AsRef<str>>(values: &[S]) -> String {
    let items: Vec<String> = values.iter().map(|v| quoted(v.as_ref())).collect();
    format!("[{}]", items.join(", "))
}

impl Clinic {
    /// One `[[locations]]` per practice location and one `[[practitioners]]` per bookable
    /// clinician.
    pub fn slotgate_rules_toml(&self) -> String {
        let mut out = String::new();
        for location in &self.locations {
            // Writing to a String cannot fail.
            let _ = writeln!(
                out,
                "[[locations]]\t# {}\nschedule_key = {}\nid = {}\ntimezone = {}\nstate = {}\n",
                location.name,
                quoted(&location.key.to_string()),
                quoted(&location.id),
                quoted(location.timezone_name()),
                quoted(location.state.as_str()),
            );
        }
        for clinician in self.clinicians.iter().filter(|c| c.is_bookable()) {
            let _ = writeln!(
                out,
                "[[practitioners]]\t# {}\nid = {}\nspecialties = {}\nmodalities = {}\nlanguages = {}\n",
                clinician.display_name(),
                quoted(clinician.id.as_str()),
                list(&clinician.specialties),
                list(&clinician.modalities),
                list(&clinician.languages),
            );
        }
        out
    }

    /// One `[[reasons]]` per structured reason the sandbox knows, with the note types it
    /// accepts for each modality.
    pub fn slotgate_reasons_toml(&self) -> String {
        let code_of = |name: &str| {
            self.note_types
                .iter()
                .find(|n| n.name == name)
                .map(|n| (n.system.clone(), n.code.clone()))
                .unwrap_or_default()
        };
        let (tele_system, tele_code) = code_of("Telemedicine");
        let (office_system, office_code) = code_of("Office Visit");
        let mut out = String::new();
        for reason in &self.reasons {
            let _ = writeln!(
                out,
                "[[reasons]]\ncode = {}\nsystem = {}\ndisplay = {}\ndurations = [{}]\nmodalities = {}\nspecialties = {}\n\
                 appointment_type.telehealth = {{ system = {}, code = {} }}\n\
                 appointment_type.in_person = {{ system = {}, code = {} }}\n",
                quoted(&reason.code),
                quoted(&reason.system),
                quoted(&reason.display),
                reason
                    .durations
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                list(&reason.modalities),
                list(&reason.specialties),
                quoted(&tele_system),
                quoted(&tele_code),
                quoted(&office_system),
                quoted(&office_code),
            );
        }
        out
    }
}
