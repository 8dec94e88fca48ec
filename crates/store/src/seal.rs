//! Secrets at rest: sealed with XChaCha20-Poly1305, bound to where they are stored.
//!
//! A sealed value is `v1.<key id>.<nonce>.<ciphertext>` (base64url). The associated data names
//! the row and field (`connection:12:secret`), so a sealed value copied into another row or
//! field does not open. The key id is in every value, so keys can be rotated: new values are
//! sealed with the primary key, old ones still open with the key that sealed them.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use psabridge_core::secret::Secret;
use rand::RngCore;

use crate::error::StoreError;

/// The keys that seal and open secrets.
#[derive(Clone)]
pub struct KeyRing {
    primary: u8,
    keys: BTreeMap<u8, XChaCha20Poly1305>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "KeyRing {{ primary: {}, keys: {} }}",
            self.primary,
            self.keys.len()
        )
    }
}

impl KeyRing {
    /// Parse a key specification: one base64 key of 32 bytes (key id 1), or a comma-separated
    /// list `id:base64,...` whose first entry is the primary key.
    pub fn parse(spec: &str) -> Result<KeyRing, String> {
        let mut keys = BTreeMap::new();
        let mut primary = None;
        for (i, part) in spec
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .enumerate()
        {
            let (id, b64) = match part.split_once(':') {
                Some((id, b64)) => (
                    id.parse::<u8>().map_err(|_| {
                        format!("key entry {}: '{id}' is not a key id from 0 to 255", i + 1)
                    })?,
                    b64,
                ),
                None => (1, part),
            };
            let bytes = STANDARD
                .decode(b64)
                .or_else(|_| URL_SAFE_NO_PAD.decode(b64))
                .map_err(|_| format!("key entry {}: not base64", i + 1))?;
            if bytes.len() != 32 {
                return Err(format!(
                    "key entry {}: a key must be 32 bytes, this one is {}",
                    i + 1,
                    bytes.len()
                ));
            }
            let cipher = XChaCha20Poly1305::new_from_slice(&bytes).map_err(|e| e.to_string())?;
            if keys.insert(id, cipher).is_some() {
                return Err(format!("key id {id} appears twice"));
            }
            primary.get_or_insert(id);
        }
        Ok(KeyRing {
            primary: primary.ok_or("no key given")?,
            keys,
        })
    }

    /// A new random key, base64, for a key file or the environment.
    pub fn generate_key() -> String {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        STANDARD.encode(key)
    }

    /// Seal `plaintext` for the place named by `aad`.
    pub fn seal(&self, aad: &str, plaintext: &str) -> Result<String, StoreError> {
        let cipher = &self.keys[&self.primary];
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let nonce = XNonce::from(nonce);
        let ct = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| StoreError::Seal("encryption failed".into()))?;
        Ok(format!(
            "v1.{}.{}.{}",
            self.primary,
            URL_SAFE_NO_PAD.encode(nonce.as_slice()),
            URL_SAFE_NO_PAD.encode(ct)
        ))
    }

    /// Open a sealed value stored at the place named by `aad`.
    pub fn open(&self, aad: &str, sealed: &str) -> Result<Secret, StoreError> {
        let bad = || StoreError::Seal(format!("the sealed value for {aad} is malformed"));
        let mut parts = sealed.split('.');
        if parts.next() != Some("v1") {
            return Err(bad());
        }
        let kid: u8 = parts.next().and_then(|k| k.parse().ok()).ok_or_else(bad)?;
        let nonce = parts
            .next()
            .and_then(|n| URL_SAFE_NO_PAD.decode(n).ok())
            .ok_or_else(bad)?;
        let ct = parts
            .next()
            .and_then(|c| URL_SAFE_NO_PAD.decode(c).ok())
            .ok_or_else(bad)?;
        let nonce: [u8; 24] = nonce.try_into().map_err(|_| bad())?;
        let cipher = self.keys.get(&kid).ok_or_else(|| {
            StoreError::Seal(format!(
                "the value for {aad} was sealed with key {kid}, which is not configured"
            ))
        })?;
        let pt = cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| {
                StoreError::Seal(format!(
                    "the value for {aad} does not open with key {kid} (wrong key, or moved)"
                ))
            })?;
        String::from_utf8(pt)
            .map(Secret::new)
            .map_err(|_| StoreError::Seal(format!("the value for {aad} is not text")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_bound_to_its_place() {
        let ring = KeyRing::parse(&KeyRing::generate_key()).unwrap();
        let sealed = ring.seal("connection:1:secret", "hunter2").unwrap();
        assert!(!sealed.contains("hunter2"));
        assert_eq!(
            ring.open("connection:1:secret", &sealed).unwrap().expose(),
            "hunter2"
        );
        assert!(
            ring.open("connection:2:secret", &sealed).is_err(),
            "moved to another row"
        );
        let mut tampered = sealed.clone();
        tampered.pop();
        assert!(ring.open("connection:1:secret", &tampered).is_err());
    }

    #[test]
    fn rotation_keeps_old_values_readable() {
        let old = KeyRing::generate_key();
        let new = KeyRing::generate_key();
        let before = KeyRing::parse(&format!("1:{old}")).unwrap();
        let sealed_old = before.seal("a", "x").unwrap();
        let after = KeyRing::parse(&format!("2:{new},1:{old}")).unwrap();
        assert_eq!(after.open("a", &sealed_old).unwrap().expose(), "x");
        assert!(after.seal("a", "y").unwrap().starts_with("v1.2."));
        assert!(
            KeyRing::parse(&format!("2:{new}"))
                .unwrap()
                .open("a", &sealed_old)
                .is_err()
        );
    }

    #[test]
    fn bad_specs_say_why() {
        assert!(KeyRing::parse("").unwrap_err().contains("no key"));
        assert!(KeyRing::parse("a#c").unwrap_err().contains("base64"));
        assert!(KeyRing::parse("AAAA").unwrap_err().contains("32 bytes"));
    }
}
