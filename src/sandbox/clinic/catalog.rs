//! Note types and structured reasons for visit the sandbox knows (canvas-fhir.md §4, §9).

pub const SNOMED: &str = "http://snomed.info/sct";
/// Structured reasons for visit use the literal system `INTERNAL` in Canvas's examples.
pub const INTERNAL: &str = "INTERNAL";
/// The system of the Canvas MRN identifier on Patients (§6).
pub const CANVAS_MRN_SYSTEM: &str = "http://canvasmedical.com";

/// Whether booking this type creates a note (patient required) or is an "Other Event".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteCategory {
    Encounter,
    /// `NoteType.category = "schedule_event"`: no note, patient optional.
    ScheduleEvent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteType {
    pub name: String,
    pub system: String,
    pub code: String,
    pub category: NoteCategory,
    pub patient_required: bool,
    pub is_default: bool,
    /// Telehealth types fall back to the practitioner's meeting room link (§4).
    pub telehealth: bool,
}

impl NoteType {
    fn snomed(name: &str, code: &str) -> NoteType {
        NoteType {
            name: name.into(),
            system: SNOMED.into(),
            code: code.into(),
            category: NoteCategory::Encounter,
            patient_required: true,
            is_default: false,
            telehealth: false,
        }
    }
}

/// The out-of-the-box Canvas types: five note types and the "Generic Event" Other Event.
pub fn note_types() -> Vec<NoteType> {
    vec![
        NoteType::snomed("Home Visit", "439708006"),
        NoteType {
            telehealth: true,
            ..NoteType::snomed("Telemedicine", "448337001")
        },
        NoteType {
            is_default: true,
            ..NoteType::snomed("Office Visit", "308335008")
        },
        NoteType::snomed("Lab Visit", "31108002"),
        NoteType::snomed("Phone Call", "185317003"),
        NoteType {
            category: NoteCategory::ScheduleEvent,
            patient_required: false,
            ..NoteType::snomed("Generic Event", "272379006")
        },
    ]
}

/// A "Reason For Visit Setting Coding", plus what slotgate's `[[reasons]]` needs to offer it.
#[derive(Debug, Clone)]
pub struct VisitReason {
    pub system: String,
    pub code: String,
    pub display: String,
    pub durations: Vec<u32>,
    pub modalities: Vec<String>,
    /// Empty: any clinician.
    pub specialties: Vec<String>,
}

fn reason(code: &str, display: &str, durations: &[u32], specialties: &[&str]) -> VisitReason {
    VisitReason {
        system: INTERNAL.into(),
        code: code.into(),
        display: display.into(),
        durations: durations.to_vec(),
        modalities: vec!["telehealth".into(), "in_person".into()],
        specialties: specialties.iter().map(|s| (*s).into()).collect(),
    }
}

pub fn reasons() -> Vec<VisitReason> {
    vec![
        reason("INIV", "Initial Visit", &[30, 60], &["primary_care"]),
        reason("FLUP", "Follow-up Visit", &[20, 30], &[]),
        reason("THER", "Therapy Session", &[50], &["behavioral_health"]),
        VisitReason {
            modalities: vec!["in_person".into()],
            ..reason("DERM", "Skin Check", &[15, 30], &["dermatology"])
        },
        reason(
            "MEDR",
            "Medication Review",
            &[20],
            &["primary_care", "behavioral_health"],
        ),
    ]
}
