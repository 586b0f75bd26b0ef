//! Who is calling: JWT verification, scopes and the patient a token speaks for. Handlers name
//! the access they need as an extractor (`ReadAccess`, `BookAccess`, …), so no route can forget
//! its check.

mod extract;
mod jwks;
mod verify;

pub use extract::{
    AdminAccess, Authentication, BookAccess, ReadAccess, StaffAccess, gate, is_public,
};
pub use verify::{AuthError, DevToken, Verifier};

use crate::types::PatientId;

/// The contract's scopes, as found in the space-separated `scope` claim.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes {
    pub read: bool,
    pub book: bool,
    pub staff: bool,
    pub admin: bool,
}

impl Scopes {
    pub fn parse(claim: &str) -> Scopes {
        let mut s = Scopes::default();
        for scope in claim.split_ascii_whitespace() {
            match scope {
                "scheduling.read" => s.read = true,
                "scheduling.book" => s.book = true,
                "scheduling.staff" => s.staff = true,
                "scheduling.admin" => s.admin = true,
                _ => {}
            }
        }
        s
    }
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub`; used for rate limits, never logged in clear.
    pub subject: String,
    pub scopes: Scopes,
    /// The patient a patient-app token speaks for (`fhirUser: Patient/<key>`).
    pub patient: Option<PatientId>,
}

impl Principal {
    /// Staff act for any patient; anyone else only for their own.
    pub fn may_act_for(&self, patient: &PatientId) -> bool {
        self.scopes.staff || self.patient.as_ref() == Some(patient)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_ignore_unknown_entries() {
        let s = Scopes::parse("openid scheduling.read  scheduling.book profile");
        assert!(s.read && s.book && !s.staff && !s.admin);
        assert_eq!(Scopes::parse(""), Scopes::default());
    }

    #[test]
    fn only_staff_act_for_other_patients() {
        let me: PatientId = "a031d1ba40d74aebb8ed716716da05c2".parse().unwrap();
        let other: PatientId = "ee1c7803325b47b492008f3e7c9d7a3d".parse().unwrap();
        let patient = Principal {
            subject: "p".into(),
            scopes: Scopes::parse("scheduling.book"),
            patient: Some(me.clone()),
        };
        assert!(patient.may_act_for(&me));
        assert!(!patient.may_act_for(&other));
        let staff = Principal {
            subject: "s".into(),
            scopes: Scopes::parse("scheduling.staff"),
            patient: None,
        };
        assert!(staff.may_act_for(&other));
    }
}
