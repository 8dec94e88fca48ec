//! Time-based one-time passwords (RFC 6238): SHA-1, 6 digits, 30-second steps, the settings
//! every authenticator app supports.
//!
//! Time is passed in, never read here, so tests pin it. A code is accepted for the current
//! step and one step either side (clock skew), and each step at most once: the caller stores
//! the step that [`verify`] returns and passes it back as `last_used_step` (RFC 6238 §5.2).

use totp_rs::{Algorithm, Builder, Secret, Totp};

/// Seconds per step.
pub const STEP_SECONDS: u64 = 30;
/// Digits per code.
pub const DIGITS: u8 = 6;
/// Steps accepted either side of the current one.
pub const SKEW_STEPS: u16 = 1;
/// Bytes of a new secret (160 bits, the size RFC 4226 recommends).
pub const SECRET_BYTES: usize = 20;

/// Why a code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    #[error("the code is wrong or expired")]
    WrongCode,
    #[error("the code was already used")]
    Replayed,
    #[error("the stored secret is unusable")]
    BadSecret,
}

/// A new random secret (raw bytes; store it sealed).
pub fn new_secret() -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_BYTES];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut secret);
    secret
}

/// The secret as base32, for people who type it into an authenticator app.
pub fn secret_base32(secret: &[u8]) -> String {
    Secret::from(secret).to_base32()
}

/// The raw secret from its base32 form (as stored, sealed).
pub fn secret_from_base32(base32: &str) -> Result<Vec<u8>, TotpError> {
    Secret::try_from_base32(base32)
        .map(|s| s.as_ref().to_vec())
        .map_err(|_| TotpError::BadSecret)
}

fn totp(secret: &[u8], account: &str, issuer: &str) -> Result<Totp, TotpError> {
    let mut builder = Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_skew(SKEW_STEPS)
        .with_step_duration(STEP_SECONDS)
        .with_secret(secret);
    if !account.is_empty() {
        builder = builder
            .with_account_name(account.replace(':', "_"))
            .with_issuer(Some(issuer.replace(':', "_")));
    }
    builder.build().map_err(|_| TotpError::BadSecret)
}

/// The `otpauth://` URI an authenticator app reads (from a QR code or a link).
pub fn otpauth_uri(secret: &[u8], account: &str, issuer: &str) -> Result<String, TotpError> {
    totp(secret, account, issuer)?
        .to_url()
        .map_err(|_| TotpError::BadSecret)
}

/// The code for a given time (for tests and for people without an app nearby).
pub fn code_at(secret: &[u8], unix_seconds: u64) -> Result<String, TotpError> {
    Ok(totp(secret, "", "")?.generate(unix_seconds).to_string())
}

/// Check `code` at `unix_seconds`. On success returns the step it belongs to, which the caller
/// must store as the new `last_used_step`; a code of that step or an earlier one is refused.
pub fn verify(
    secret: &[u8],
    code: &str,
    unix_seconds: u64,
    last_used_step: Option<u64>,
) -> Result<u64, TotpError> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TotpError::WrongCode);
    }
    let step = totp(secret, "", "")?
        .check(&code, unix_seconds)
        .ok_or(TotpError::WrongCode)?;
    match last_used_step {
        Some(last) if step <= last => Err(TotpError::Replayed),
        _ => Ok(step),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RFC_SHA1_SEED: &[u8] = b"12345678901234567890";

    /// RFC 6238 Appendix B, SHA-1 column (8 digits).
    const RFC_VECTORS: [(u64, &str); 6] = [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ];

    #[test]
    fn rfc_6238_appendix_b_sha1_eight_digits() {
        let t = Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(8)
            .with_step_duration(30)
            .with_secret(RFC_SHA1_SEED)
            .build()
            .unwrap();
        for (time, expected) in RFC_VECTORS {
            assert_eq!(t.generate(time).to_string(), expected, "t={time}");
        }
    }

    #[test]
    fn rfc_6238_appendix_b_other_algorithms() {
        let sha256 = b"12345678901234567890123456789012";
        let sha512 = b"1234567890123456789012345678901234567890123456789012345678901234";
        let vectors: [(u64, &str, &str); 6] = [
            (59, "46119246", "90693936"),
            (1111111109, "68084774", "25091201"),
            (1111111111, "67062674", "99943326"),
            (1234567890, "91819424", "93441116"),
            (2000000000, "90698825", "38618901"),
            (20000000000, "77737706", "47863826"),
        ];
        for (algorithm, seed, column) in [
            (Algorithm::SHA256, &sha256[..], 1),
            (Algorithm::SHA512, &sha512[..], 2),
        ] {
            let t = Builder::new()
                .with_algorithm(algorithm)
                .with_digits(8)
                .with_secret(seed)
                .build()
                .unwrap();
            for v in vectors {
                let expected = if column == 1 { v.1 } else { v.2 };
                assert_eq!(
                    t.generate(v.0).to_string(),
                    expected,
                    "{algorithm:?} t={}",
                    v.0
                );
            }
        }
    }

    #[test]
    fn our_six_digit_codes_are_the_last_six_rfc_digits() {
        for (time, expected) in RFC_VECTORS {
            assert_eq!(code_at(RFC_SHA1_SEED, time).unwrap(), expected[2..]);
            let step = verify(RFC_SHA1_SEED, &expected[2..], time, None).unwrap();
            assert_eq!(step, time / 30);
        }
        assert_eq!(
            secret_base32(RFC_SHA1_SEED),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        assert_eq!(
            secret_from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap(),
            RFC_SHA1_SEED
        );
        assert_eq!(secret_from_base32("not base32!"), Err(TotpError::BadSecret));
    }

    #[test]
    fn one_step_of_skew_either_side_and_no_more() {
        let at = 1234567890; // step 41152263
        let code = code_at(RFC_SHA1_SEED, at).unwrap();
        assert!(verify(RFC_SHA1_SEED, &code, at + 30, None).is_ok());
        assert!(verify(RFC_SHA1_SEED, &code, at - 30, None).is_ok());
        assert_eq!(
            verify(RFC_SHA1_SEED, &code, at + 60, None),
            Err(TotpError::WrongCode)
        );
        assert_eq!(
            verify(RFC_SHA1_SEED, &code, at - 60, None),
            Err(TotpError::WrongCode)
        );
    }

    #[test]
    fn a_step_is_accepted_once_and_never_an_earlier_one() {
        let at = 1234567890;
        let code = code_at(RFC_SHA1_SEED, at).unwrap();
        let step = verify(RFC_SHA1_SEED, &code, at, None).unwrap();
        assert_eq!(
            verify(RFC_SHA1_SEED, &code, at, Some(step)),
            Err(TotpError::Replayed)
        );
        // The previous step's code, still inside the skew window, is refused too.
        let earlier = code_at(RFC_SHA1_SEED, at - 30).unwrap();
        assert_eq!(
            verify(RFC_SHA1_SEED, &earlier, at, Some(step)),
            Err(TotpError::Replayed)
        );
        let next = code_at(RFC_SHA1_SEED, at + 30).unwrap();
        assert_eq!(
            verify(RFC_SHA1_SEED, &next, at + 30, Some(step)),
            Ok(step + 1)
        );
    }

    #[test]
    fn malformed_codes_and_secrets() {
        assert_eq!(
            verify(RFC_SHA1_SEED, "12345", 59, None),
            Err(TotpError::WrongCode)
        );
        assert_eq!(
            verify(RFC_SHA1_SEED, "abcdef", 59, None),
            Err(TotpError::WrongCode)
        );
        assert!(verify(RFC_SHA1_SEED, "287 082", 59, None).is_ok());
        assert_eq!(
            verify(b"short", "287082", 59, None),
            Err(TotpError::BadSecret)
        );
    }

    #[test]
    fn enrolment_uri() {
        let uri = otpauth_uri(RFC_SHA1_SEED, "alice@example.com", "PSA Bridge").unwrap();
        assert!(uri.starts_with("otpauth://totp/"), "{uri}");
        assert!(
            uri.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
            "{uri}"
        );
        assert_eq!(new_secret().len(), SECRET_BYTES);
        assert_ne!(new_secret(), new_secret());
    }

    proptest! {
        #[test]
        fn a_fresh_code_verifies_at_its_step(t in 60u64..4_000_000_000u64) {
            let secret = RFC_SHA1_SEED;
            let code = code_at(secret, t).unwrap();
            prop_assert_eq!(verify(secret, &code, t, None), Ok(t / 30));
            prop_assert_eq!(verify(secret, &code, t, Some(t / 30)), Err(TotpError::Replayed));
        }
    }
}
