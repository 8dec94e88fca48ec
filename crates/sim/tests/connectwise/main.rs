//! The ConnectWise simulator over real HTTP, called the way ConnectWise's public clients call
//! the real API. Every test starts its own simulator on 127.0.0.1:0.

mod agreements;
mod auth;
mod callbacks;
mod client_library;
mod common;
mod control;
mod faults;
mod openapi;
mod queries;
mod tickets;
