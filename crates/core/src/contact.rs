//! Which PSA contact a new ticket is for.
//!
//! The alert's user, found by email among the company's contacts; else the mapping's default
//! contact; else, for a mapped company, that company's primary contact as the PSA names it;
//! else, for a ticket of the catch-all company, the catch-all contact. A contact always belongs
//! to the ticket's company: the catch-all contact never goes on a mapped company's ticket (the
//! PSA would refuse it). A ticket for the catch-all company never looks the user up: the user
//! is not a contact of the catch-all company.

/// Where the chosen contact came from (shown in the delivery log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactSource {
    UserEmail,
    MappingDefault,
    CompanyPrimary,
    CatchAll,
}

impl ContactSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ContactSource::UserEmail => "user_email",
            ContactSource::MappingDefault => "mapping_default",
            ContactSource::CompanyPrimary => "company_primary",
            ContactSource::CatchAll => "catch_all",
        }
    }
}

/// What is known about the contacts a new ticket may be for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Candidates<'a> {
    /// Ids of active contacts of the ticket's company with the alert user's email.
    pub found_by_email: &'a [String],
    pub mapping_default: Option<&'a str>,
    /// The primary contact of the ticket's company (read only when it is needed).
    pub company_primary: Option<&'a str>,
    pub catch_all: Option<&'a str>,
    /// The ticket goes to the client's mapped company, not to the catch-all company.
    pub mapped: bool,
}

/// Whether the choice needs the company's primary contact: a mapped company's ticket with
/// neither the user's contact nor a mapping default (so that the PSA is asked only then).
pub fn needs_company_primary(c: &Candidates<'_>) -> bool {
    c.mapped && c.found_by_email.is_empty() && c.mapping_default.is_none()
}

/// Choose among the candidates, in the order of the module's description.
///
/// Several contacts sharing one email is real data; the oldest (lowest numeric id, then
/// lexical) wins, so the choice is stable from one alert to the next.
pub fn choose_contact(c: &Candidates<'_>) -> Option<(String, ContactSource)> {
    if let Some(oldest) = c.found_by_email.iter().min_by(|a, b| {
        let key = |s: &str| (s.parse::<u64>().unwrap_or(u64::MAX), s.to_string());
        key(a).cmp(&key(b))
    }) {
        return Some((oldest.clone(), ContactSource::UserEmail));
    }
    if let Some(d) = c.mapping_default {
        return Some((d.to_string(), ContactSource::MappingDefault));
    }
    if c.mapped {
        return c
            .company_primary
            .map(|p| (p.to_string(), ContactSource::CompanyPrimary));
    }
    c.catch_all
        .map(|a| (a.to_string(), ContactSource::CatchAll))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn mapped<'a>(
        found: &'a [String],
        default: Option<&'a str>,
        primary: Option<&'a str>,
    ) -> Candidates<'a> {
        Candidates {
            found_by_email: found,
            mapping_default: default,
            company_primary: primary,
            catch_all: Some("9"),
            mapped: true,
        }
    }

    #[test]
    fn preference_order() {
        let found = ids(&["30"]);
        assert_eq!(
            choose_contact(&mapped(&found, Some("1"), Some("5"))),
            Some(("30".into(), ContactSource::UserEmail))
        );
        assert_eq!(
            choose_contact(&mapped(&[], Some("1"), Some("5"))),
            Some(("1".into(), ContactSource::MappingDefault))
        );
        assert_eq!(
            choose_contact(&mapped(&[], None, Some("5"))),
            Some(("5".into(), ContactSource::CompanyPrimary))
        );
        let catch_all = Candidates {
            catch_all: Some("9"),
            ..Candidates::default()
        };
        assert_eq!(
            choose_contact(&catch_all),
            Some(("9".into(), ContactSource::CatchAll))
        );
        assert_eq!(choose_contact(&Candidates::default()), None);
    }

    #[test]
    fn a_mapped_company_never_gets_the_catch_all_contact() {
        assert_eq!(choose_contact(&mapped(&[], None, None)), None);
    }

    #[test]
    fn the_primary_contact_is_asked_for_only_when_needed() {
        let found = ids(&["30"]);
        assert!(needs_company_primary(&mapped(&[], None, None)));
        assert!(!needs_company_primary(&mapped(&found, None, None)));
        assert!(!needs_company_primary(&mapped(&[], Some("1"), None)));
        assert!(!needs_company_primary(&Candidates::default()));
    }

    #[test]
    fn two_matches_pick_the_oldest_stably() {
        for found in [ids(&["120", "31"]), ids(&["31", "120"])] {
            assert_eq!(choose_contact(&mapped(&found, None, None)).unwrap().0, "31");
        }
    }

    proptest! {
        /// Whatever is known, a mapped company's ticket never carries the catch-all contact
        /// unless that id is also one of the company's own candidates.
        #[test]
        fn mapped_tickets_keep_to_their_company(
            found in proptest::collection::vec("[0-9]{1,3}", 0..3),
            default in proptest::option::of("[0-9]{1,3}"),
            primary in proptest::option::of("[0-9]{1,3}"),
        ) {
            let c = Candidates {
                found_by_email: &found,
                mapping_default: default.as_deref(),
                company_primary: primary.as_deref(),
                catch_all: Some("catch-all"),
                mapped: true,
            };
            if let Some((id, source)) = choose_contact(&c) {
                prop_assert_ne!(source, ContactSource::CatchAll);
                prop_assert_ne!(id, "catch-all");
            }
        }
    }
}
