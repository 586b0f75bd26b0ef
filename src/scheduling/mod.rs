//! Services that combine the clinic's rules, caches and Canvas into answers.
pub mod availability;
pub mod directory;
pub mod slot_cache;
pub mod slot_id;
