//! The Autotask simulator over real HTTP: what a client of the real API relies on.
//!
//! One test binary; each module covers one area. Every test starts its own simulator on
//! 127.0.0.1:0, so they run in parallel without sharing state.

mod billing;
mod client_library;
mod common;
mod contracts;
mod faults;
mod limits;
mod metadata;
mod queries;
mod state;
mod swagger;
mod tickets;
mod webhooks;
mod zone_and_auth;
