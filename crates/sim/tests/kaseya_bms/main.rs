//! The Kaseya BMS simulator over real HTTP, called the way BMS's public clients call the
//! vendor: form login, bearer token, `Filter.X` query names, the envelope on every answer.
//!
//! Every test starts its own simulator on 127.0.0.1:0, so they run in parallel.

mod auth;
mod common;
mod contracts;
mod control;
mod crm;
mod faults;
mod limits;
mod lookups;
mod openapi;
mod tickets;
