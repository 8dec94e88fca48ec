//! Accounts of PSA Bridge, as pure decisions with no I/O.
//!
//! The web layer and the store do the talking; this crate decides. Keeping the decisions here
//! (who may do what, whether a code or password is right, whether an attempt must wait) means
//! each can be tested exhaustively, with time passed in rather than read from the clock.
//!
//! - [`roles`]: the roles of a partner's staff and THE permission matrix.
//! - [`password`]: Argon2id hashing and the password rules.
//! - [`totp`]: RFC 6238 codes with ±1 step skew and replay protection.
//! - [`recovery`]: single-use recovery codes, stored hashed.
//! - [`throttle`]: whether a login attempt is checked, needs its code first, or waits.
//! - [`people`]: length limits on a person's name and email.
//! - [`scim`]: SCIM 2.0 PATCH, filters, the identity providers' quirks, who may be deprovisioned.
//! - [`scopes`]: scopes of API tokens and the permissions each grants.
//! - [`secret_token`]: random tokens (sessions, CSRF, password setup) and their stored hash.
//! - [`sso`]: "Log in with the IdP": linking, enforcement and the require switch.

pub mod password;
pub mod people;
pub mod recovery;
pub mod roles;
pub mod scim;
pub mod scopes;
pub mod secret_token;
pub mod sso;
pub mod throttle;
pub mod totp;

pub use roles::{Permission, Role, allows};
