//! The Canvas-shaped sandbox server.
pub mod slots;
