//! One integration-test binary: helpers plus one file per capability. Tests start the real
//! application and the Canvas sandbox on random loopback ports and speak HTTP to them.

mod availability;
mod booking;
mod browse;
mod canvas_client;
mod canvas_plugin;
mod chaos;
mod cli;
mod events;
mod fhir;
mod first_booking;
mod guarantees;
mod health;
mod helpers;
mod holds;
mod inbound;
mod lifecycle;
mod locations;
mod openapi;
mod operators;
mod replicas;
mod security;
mod seed;
mod slot_cache;
mod slow_canvas;
mod smart;
mod sync;
mod sync_scale;
mod waitlist;
mod waitlist_guarantees;
mod wire;
