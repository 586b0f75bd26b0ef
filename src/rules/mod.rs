//! Pure business rules: no I/O, no clock (`now` is a parameter), unit tests beside them.
pub mod eligibility;
pub mod model;
pub mod policy;
pub mod window;
