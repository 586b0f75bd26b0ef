//! The Canvas-shaped sandbox server.
pub mod appointments;
pub mod clinic;
pub mod params;
pub mod slots;
