//! The Canvas-shaped sandbox server.
pub mod clinic;
pub mod slots;
