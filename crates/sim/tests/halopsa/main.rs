//! The HaloPSA simulator over real HTTP, called the way Halo's public clients call it.
//!
//! Every test starts its own simulator on 127.0.0.1:0.

mod auth;
mod client_library;
mod common;
mod contracts;
mod control;
mod faults_and_limits;
mod lists;
mod openapi;
mod writes;
