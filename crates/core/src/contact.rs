//! Which PSA contact a new ticket is for.
//!
//! The alert's user, found by email among the company's contacts; else the mapping's default
//! contact; else the connection's catch-all contact. A ticket for the catch-all company never
//! looks the user up: the user is not a contact of the catch-all company.

/// Where the chosen contact came from (shown in the delivery log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactSource {
    UserEmail,
    MappingDefault,
    CatchAll,
}

impl ContactSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ContactSource::UserEmail => "user_email",
            ContactSource::MappingDefault => "mapping_default",
            ContactSource::CatchAll => "catch_all",
        }
    }
}

/// Choose among the contacts found by email (ids of active contacts of the ticket's company),
/// the mapping's default and the catch-all.
///
/// Several contacts sharing one email is real data; the oldest (lowest numeric id, then
/// lexical) wins, so the choice is stable from one alert to the next.
pub fn choose_contact(
    found_by_email: &[String],
    mapping_default: Option<&str>,
    catch_all: Option<&str>,
) -> Option<(String, ContactSource)> {
    if let Some(oldest) = found_by_email.iter().min_by(|a, b| {
        let key = |s: &str| (s.parse::<u64>().unwrap_or(u64::MAX), s.to_string());
        key(a).cmp(&key(b))
    }) {
        return Some((oldest.clone(), ContactSource::UserEmail));
    }
    if let Some(d) = mapping_default {
        return Some((d.to_string(), ContactSource::MappingDefault));
    }
    catch_all.map(|c| (c.to_string(), ContactSource::CatchAll))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn preference_order() {
        assert_eq!(
            choose_contact(&ids(&["30"]), Some("1"), Some("9")),
            Some(("30".into(), ContactSource::UserEmail))
        );
        assert_eq!(
            choose_contact(&[], Some("1"), Some("9")),
            Some(("1".into(), ContactSource::MappingDefault))
        );
        assert_eq!(
            choose_contact(&[], None, Some("9")),
            Some(("9".into(), ContactSource::CatchAll))
        );
        assert_eq!(choose_contact(&[], None, None), None);
    }

    #[test]
    fn two_matches_pick_the_oldest_stably() {
        assert_eq!(
            choose_contact(&ids(&["120", "31"]), None, None).unwrap().0,
            "31"
        );
        assert_eq!(
            choose_contact(&ids(&["31", "120"]), None, None).unwrap().0,
            "31"
        );
    }
}
