//! The Canvas FHIR client: token, FHIR types, calls, typed errors. Knows nothing of HTTP routes.
pub mod fhir;
