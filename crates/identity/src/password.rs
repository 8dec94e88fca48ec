//! Passwords: Argon2id hashes (PHC strings) and the rules a new password must meet.
//!
//! Hashing is deliberately slow; callers in async code run it on a blocking thread.

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};

/// The shortest password accepted. Length is what makes a password hard to guess; no
/// composition rules (NIST SP 800-63B).
pub const MIN_LENGTH: usize = 12;
/// The longest password accepted, so that hashing cost stays bounded.
pub const MAX_LENGTH: usize = 256;

/// Why a password was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRuleError {
    #[error("the password must have at least {MIN_LENGTH} characters")]
    TooShort,
    #[error("the password must have at most {MAX_LENGTH} characters")]
    TooLong,
    #[error("the password must not be the email address or its name part")]
    IsTheEmail,
}

/// Check a new password against the rules. `email` is the account's address.
pub fn check_rules(password: &str, email: &str) -> Result<(), PasswordRuleError> {
    let length = password.chars().count();
    if length < MIN_LENGTH {
        return Err(PasswordRuleError::TooShort);
    }
    if length > MAX_LENGTH {
        return Err(PasswordRuleError::TooLong);
    }
    let candidate = password.trim().to_lowercase();
    let email = email.trim().to_lowercase();
    let local_part = email.split('@').next().unwrap_or_default();
    if candidate == email || (!local_part.is_empty() && candidate == local_part) {
        return Err(PasswordRuleError::IsTheEmail);
    }
    Ok(())
}

/// Hashing failed (only on invalid parameters, which are constants here).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// Argon2id with chosen costs. Verification reads the costs from the stored hash, so hashes
/// made with other costs keep verifying.
#[derive(Debug, Clone, Copy)]
pub struct PasswordHashing {
    memory_kib: u32,
    iterations: u32,
}

impl PasswordHashing {
    /// OWASP's recommended Argon2id setting (19 MiB, 2 passes, 1 lane): about 20 ms optimised.
    pub const PRODUCTION: PasswordHashing = PasswordHashing {
        memory_kib: 19 * 1024,
        iterations: 2,
    };

    /// Cheap costs for tests and demos on slow machines; never for real accounts.
    pub const FAST_INSECURE: PasswordHashing = PasswordHashing {
        memory_kib: 64,
        iterations: 1,
    };

    fn argon2(self) -> Argon2<'static> {
        let params =
            Params::new(self.memory_kib, self.iterations, 1, None).expect("constant parameters");
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }

    /// Hash a password into a PHC string (`$argon2id$v=19$m=…`), with a fresh random salt.
    pub fn hash(self, password: &str) -> Result<String, HashError> {
        self.argon2()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| HashError(e.to_string()))
    }

    /// Does `password` match the stored PHC string? A malformed hash never matches.
    pub fn verify(self, password: &str, phc: &str) -> bool {
        self.argon2()
            .verify_password(password.as_bytes(), phc)
            .is_ok()
    }

    /// Spend the same work as a real verification, for an account that does not exist, so
    /// that the response time does not reveal which emails have accounts.
    pub fn verify_nothing(self, password: &str) {
        static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let dummy = DUMMY.get_or_init(|| {
            PasswordHashing::PRODUCTION
                .hash("no account has this password")
                .unwrap_or_default()
        });
        let _ = self.verify(password, dummy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let h = PasswordHashing::FAST_INSECURE;
        let a = h.hash("correct horse battery").unwrap();
        let b = h.hash("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$v=19$"));
        assert_ne!(a, b, "each hash has its own salt");
        assert!(h.verify("correct horse battery", &a));
        assert!(!h.verify("correct horse batterY", &a));
        assert!(!h.verify("correct horse battery", "not a hash"));
    }

    #[test]
    fn production_costs_are_in_the_hash_and_verify_with_any_setting() {
        let a = PasswordHashing::PRODUCTION
            .hash("a long enough secret")
            .unwrap();
        assert!(a.contains("m=19456,t=2,p=1"), "{a}");
        assert!(PasswordHashing::FAST_INSECURE.verify("a long enough secret", &a));
    }

    #[test]
    fn rules() {
        assert_eq!(
            check_rules("short", "a@b.c"),
            Err(PasswordRuleError::TooShort)
        );
        assert_eq!(
            check_rules(&"x".repeat(MAX_LENGTH + 1), "a@b.c"),
            Err(PasswordRuleError::TooLong)
        );
        assert_eq!(
            check_rules("Alice.Smith@Example.com", "alice.smith@example.com"),
            Err(PasswordRuleError::IsTheEmail)
        );
        assert_eq!(
            check_rules("alice.smith.", "alice.smith.@example.com"),
            Err(PasswordRuleError::IsTheEmail)
        );
        assert_eq!(check_rules("twelve chars", "alice@example.com"), Ok(()));
        // Length counts characters, not bytes.
        assert_eq!(
            check_rules("ééééééééééé", "a@b.c"),
            Err(PasswordRuleError::TooShort)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        #[test]
        fn any_password_verifies_only_itself(p in ".{0,40}", q in ".{0,40}") {
            let h = PasswordHashing::FAST_INSECURE;
            let stored = h.hash(&p).unwrap();
            prop_assert!(h.verify(&p, &stored));
            prop_assert_eq!(h.verify(&q, &stored), p == q);
        }
    }
}
