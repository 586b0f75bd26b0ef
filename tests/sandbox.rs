//! The Canvas sandbox over real HTTP on loopback, as slotgate and client teams use it.

#[path = "sandbox/helpers.rs"]
mod helpers;

#[path = "sandbox/appointment_rules.rs"]
mod appointment_rules;
#[path = "sandbox/appointment_search.rs"]
mod appointment_search;
#[path = "sandbox/appointments.rs"]
mod appointments;
#[path = "sandbox/auth.rs"]
mod auth;
#[path = "sandbox/directory.rs"]
mod directory;
#[path = "sandbox/faults.rs"]
mod faults;
#[path = "sandbox/patient_search.rs"]
mod patient_search;
#[path = "sandbox/slots.rs"]
mod slots;
