//! Simulators of PSA REST APIs, for demos, tests and vendors' own CI.
//!
//! Each simulator follows its vendor's published API (paths, authentication, JSON shapes,
//! query filters, paging, error bodies, limits) and can inject faults on demand. They share
//! nothing with PSA Bridge's connectors: both are written from the vendors' documents and meet
//! over HTTP, so a misread field name fails a test instead of passing on both sides.

pub mod autotask;
pub mod connectwise;
mod control;
mod faults;
pub mod halopsa;
pub mod kaseya_bms;
mod server;
mod stats;
