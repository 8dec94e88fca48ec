//! Limits on what describes a person, checked wherever a name or an email comes in (the
//! users API, invitations, SCIM, an identity provider's claims), so that no field of a
//! person is unbounded.

/// The longest email address (RFC 5321: a path is at most 256 octets, brackets included).
pub const EMAIL_MAX_CHARS: usize = 254;
/// The longest name of a person.
pub const NAME_MAX_CHARS: usize = 200;

/// Why a value is refused; the sentence names no value, so errors stay short.
pub fn check_length(value: &str, max: usize) -> Result<(), String> {
    let n = value.chars().count();
    if n > max {
        Err(format!("must have at most {max} characters (it has {n})"))
    } else {
        Ok(())
    }
}

/// A name as a person would see it: trimmed, control characters removed, and cut to
/// [`NAME_MAX_CHARS`]. For names that come from elsewhere (an identity provider's claims),
/// where refusing the login over a long name would help nobody.
pub fn clean_name(name: &str) -> String {
    name.trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(NAME_MAX_CHARS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_counted_in_characters_and_named_without_the_value() {
        assert!(check_length(&"é".repeat(NAME_MAX_CHARS), NAME_MAX_CHARS).is_ok());
        let e = check_length(&"é".repeat(NAME_MAX_CHARS + 1), NAME_MAX_CHARS).unwrap_err();
        assert_eq!(e, "must have at most 200 characters (it has 201)");
    }

    #[test]
    fn names_from_elsewhere_are_cut_and_cleaned() {
        assert_eq!(clean_name("  Ann\u{0}  Lee \n"), "Ann  Lee");
        assert_eq!(
            clean_name(&"x".repeat(5000)).chars().count(),
            NAME_MAX_CHARS
        );
    }
}
