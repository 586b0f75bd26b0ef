//! Services that combine the clinic's rules, caches and Canvas into answers.
pub mod answer_cache;
pub mod availability;
#[cfg(test)]
mod availability_props;
pub mod directory;
pub mod slot_cache;
pub mod slot_id;
