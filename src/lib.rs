pub mod canvas;
pub mod sandbox;
pub mod types;
