//! Services that combine the clinic's rules, caches and Canvas into answers.
pub mod directory;
