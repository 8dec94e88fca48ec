//! Recovery codes: the way in when the authenticator is lost. Ten random codes are shown once
//! at enrolment; only their hashes are stored, and each works once.

use rand::Rng;
use sha2::{Digest, Sha256};

/// How many codes a person gets.
pub const COUNT: usize = 10;

/// No 0/O or 1/I/L: codes are read from paper.
const ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";

/// A fresh set of codes, formatted `XXXXX-XXXXX` (about 49 bits each).
pub fn generate() -> Vec<String> {
    let mut rng = rand::rng();
    (0..COUNT)
        .map(|_| {
            let chars: String = (0..10)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                .collect();
            format!("{}-{}", &chars[..5], &chars[5..])
        })
        .collect()
}

/// The form a typed code is compared in: uppercase, without dashes or spaces.
pub fn normalize(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// What is stored of a code. A salted slow hash would add little: the codes are random and
/// lookups are throttled like passwords.
pub fn hash(code: &str) -> String {
    hex::encode(Sha256::digest(normalize(code).as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_formatted_and_hash_loosely() {
        let codes = generate();
        assert_eq!(codes.len(), COUNT);
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), COUNT);
        for c in &codes {
            assert_eq!(c.len(), 11);
            assert_eq!(&c[5..6], "-");
            assert_eq!(hash(c), hash(&c.to_lowercase().replace('-', " ")));
        }
        assert_ne!(hash(&codes[0]), hash(&codes[1]));
    }
}
