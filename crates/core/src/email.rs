//! The email channel's decisions: which events are emailed, to whom, and with what text.
//!
//! A partner switches email on per event type and gives the recipients as one string
//! separated by `;` (the way vendor screens take them). Each address is checked here, so a
//! typo is refused when it is typed, naming the address, rather than bouncing later.
//!
//! Email rides on the outbox like a PSA delivery, with two conventions that keep it out of
//! the PSA's way: its connection id is [`EMAIL_CONNECTION_ID`] (no PSA connection has it, so a
//! paused PSA never holds email back) and its group key is unique per event
//! ([`email_group_key`]), so an email never waits for another delivery.

use std::collections::BTreeMap;

use crate::catalog::EventType;
use crate::event::{Action, NewEvent};
use crate::render::{TemplateContext, truncate};

/// The connection id of every email delivery. Real connection ids start at 1.
pub const EMAIL_CONNECTION_ID: i64 = 0;

/// The channel name of email deliveries in the outbox (`deliveries.channel`).
pub const EMAIL_CHANNEL: &str = "email";

/// At most this many recipients per event type: a list is for a team, not a mailing.
pub const MAX_RECIPIENTS: usize = 50;

/// Subjects longer than this are cut (RFC 5322 advises lines under 78; headers fold, but a
/// subject nobody can read in a list helps no one).
pub const MAX_SUBJECT_CHARS: usize = 200;

/// One checked email address (`local@domain`), as typed (case kept).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why an address list was refused, naming the entry (0-based among the non-empty entries).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressListError {
    #[error("addresses[{index}] \"{address}\" is not an email address ({reason})")]
    NotAnAddress {
        index: usize,
        address: String,
        reason: &'static str,
    },
    #[error("more than {MAX_RECIPIENTS} addresses")]
    TooMany,
}

/// Characters RFC 5322 allows in an unquoted local part (`atext`), besides letters and digits.
const ATEXT_SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~";

/// Check one address. Deliberately narrower than RFC 5322: no quoted local parts, no
/// comments, no address literals, ASCII only — what a person types into a settings screen,
/// and what every SMTP server accepts.
pub fn parse_address(text: &str) -> Result<EmailAddress, &'static str> {
    let text = text.trim();
    let (local, domain) = text.rsplit_once('@').ok_or("no '@'")?;
    if local.is_empty() {
        return Err("nothing before '@'");
    }
    if local.len() > 64 {
        return Err("the part before '@' is longer than 64 characters");
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("misplaced '.' before '@'");
    }
    if !local
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || ATEXT_SPECIALS.contains(c))
    {
        return Err("a character not allowed before '@'");
    }
    if domain.is_empty() {
        return Err("nothing after '@'");
    }
    if domain.len() > 253 {
        return Err("the domain is longer than 253 characters");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err("the domain has no '.'");
    }
    for label in &labels {
        if label.is_empty() || label.len() > 63 {
            return Err("an empty or too long part in the domain");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a domain part starts or ends with '-'");
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err("a character not allowed in the domain");
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
    {
        return Err("the domain ends in a number");
    }
    Ok(EmailAddress(text.to_string()))
}

/// Parse `a@x.com; b@y.com`. Empty entries (a trailing `;`) are ignored; an address given
/// twice (in any case) is kept once. The first bad address is named with its position.
pub fn parse_address_list(text: &str) -> Result<Vec<EmailAddress>, AddressListError> {
    let mut out: Vec<EmailAddress> = Vec::new();
    let entries = text.split(';').map(str::trim).filter(|e| !e.is_empty());
    for (index, entry) in entries.enumerate() {
        let address = parse_address(entry).map_err(|reason| AddressListError::NotAnAddress {
            index,
            address: entry.to_string(),
            reason,
        })?;
        if !out
            .iter()
            .any(|a| a.0.eq_ignore_ascii_case(address.as_str()))
        {
            out.push(address);
        }
    }
    if out.len() > MAX_RECIPIENTS {
        return Err(AddressListError::TooMany);
    }
    Ok(out)
}

/// The list as the settings screen shows it: `a@x.com; b@y.com`.
pub fn format_address_list(addresses: &[EmailAddress]) -> String {
    addresses
        .iter()
        .map(EmailAddress::as_str)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A partner's email setting for one event type.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EmailRule {
    pub enabled: bool,
    pub addresses: Vec<EmailAddress>,
}

/// A partner's email settings, by event type key. Types not present are off.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EmailSettings {
    pub by_event_type: BTreeMap<String, EmailRule>,
}

/// Where one event's email goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailRoute {
    pub recipients: Vec<EmailAddress>,
    /// Unique per event (see the module docs).
    pub group_key: String,
}

/// The group key of an event's email: unique per (partner, event id), the outbox's own
/// uniqueness, and in a namespace (`email:`) that no PSA group key uses.
pub fn email_group_key(partner_id: &str, event_id: &str) -> String {
    format!("email:{partner_id}:{event_id}")
}

/// Does this event get an email, and to whom? Only when email is on for its type and there
/// is at least one recipient. Alerts and their resolutions are both sent: a resolution is
/// news to whoever read the alert.
pub fn email_route(
    partner_id: &str,
    event: &NewEvent,
    settings: &EmailSettings,
) -> Option<EmailRoute> {
    let rule = settings.by_event_type.get(&event.event_type)?;
    if !rule.enabled || rule.addresses.is_empty() {
        return None;
    }
    Some(EmailRoute {
        recipients: rule.addresses.clone(),
        group_key: email_group_key(partner_id, &event.id),
    })
}

/// The text of one email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailText {
    pub subject: String,
    pub body: String,
}

/// Subject and body from the catalog's ticket templates, so an email reads like the ticket
/// it stands beside (or instead of). A resolution says so in the subject.
pub fn render_email(
    event: &NewEvent,
    event_type: Option<&EventType>,
    client_name: Option<&str>,
) -> EmailText {
    let ctx = TemplateContext {
        event,
        event_type,
        client_name,
    };
    let title = ctx.ticket_title();
    let subject = match event.action {
        Action::Trigger => title,
        Action::Resolve => format!("Resolved: {title}"),
    };
    let body = format!(
        "{}\n\n--\nEvent {} ({}), sent by PSA Bridge.\n",
        ctx.ticket_description(),
        event.id,
        event.event_type
    );
    EmailText {
        subject: truncate(&subject, MAX_SUBJECT_CHARS),
        body,
    }
}

/// A Message-ID that depends only on the delivery (and the installation and sender domain):
/// if an attempt's outcome is unknown and the email is sent again, the receiver sees the same
/// Message-ID and can drop the copy.
pub fn message_id(install_id: &str, delivery_id: i64, from_domain: &str) -> String {
    format!("<psabridge.{install_id}.{delivery_id}@{from_domain}>")
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::catalog::Catalog;
    use crate::event::parse_event;

    fn event(ty: &str, action: &str) -> NewEvent {
        let cat = Catalog::parse(crate::catalog::tests::SAMPLE).unwrap();
        parse_event(
            &json!({"id":"e1","client":"c1","type":ty,"action":action,
                    "user":{"email":"a@b.co","name":"Ann"},"data":{"files":12}}),
            "",
            &cat,
        )
        .unwrap()
    }

    fn settings(ty: &str, enabled: bool, list: &str) -> EmailSettings {
        EmailSettings {
            by_event_type: [(
                ty.to_string(),
                EmailRule {
                    enabled,
                    addresses: parse_address_list(list).unwrap(),
                },
            )]
            .into(),
        }
    }

    #[test]
    fn good_addresses_pass() {
        for a in [
            "a@x.com",
            "first.last+tag@sub.example.co.uk",
            "o'brien@example.ie",
            "x_y-z@a-b.io",
        ] {
            assert_eq!(parse_address(a).unwrap().as_str(), a);
        }
    }

    #[test]
    fn bad_addresses_are_refused() {
        for a in [
            "bob@",
            "@x.com",
            "bob",
            "bob@localhost",
            "bob@x..com",
            ".bob@x.com",
            "bo..b@x.com",
            "bob@-x.com",
            "bob@x.com-",
            "bob smith@x.com",
            "bob@x_y.com",
            "bob@1.2.3.4",
            "bób@x.com",
            "\"bob\"@x.com",
            "a@b@c.com",
        ] {
            assert!(parse_address(a).is_err(), "{a} was accepted");
        }
    }

    #[test]
    fn list_errors_name_the_entry() {
        let err = parse_address_list("alice@x.com; bob@; carol@y.com").unwrap_err();
        assert_eq!(
            err.to_string(),
            "addresses[1] \"bob@\" is not an email address (nothing after '@')"
        );
        let list = parse_address_list(" a@x.com;;B@Y.com; A@X.COM ;b@y.com;").unwrap();
        assert_eq!(format_address_list(&list), "a@x.com; B@Y.com");
        assert!(parse_address_list("").unwrap().is_empty());
        let many = (0..=MAX_RECIPIENTS)
            .map(|i| format!("u{i}@x.com"))
            .collect::<Vec<_>>()
            .join(";");
        assert_eq!(parse_address_list(&many), Err(AddressListError::TooMany));
    }

    #[test]
    fn only_switched_on_types_with_recipients_are_emailed() {
        let e = event("too_many_downloads", "trigger");
        let on = settings("too_many_downloads", true, "a@x.com; b@y.com");
        let route = email_route("p1", &e, &on).unwrap();
        assert_eq!(route.recipients.len(), 2);
        assert_eq!(route.group_key, "email:p1:e1");
        assert_eq!(
            email_route("p1", &e, &settings("too_many_downloads", false, "a@x.com")),
            None
        );
        assert_eq!(
            email_route("p1", &e, &settings("too_many_downloads", true, "")),
            None
        );
        assert_eq!(
            email_route("p1", &e, &settings("too_many_uploads", true, "a@x.com")),
            None
        );
        assert_eq!(email_route("p1", &e, &EmailSettings::default()), None);
    }

    #[test]
    fn text_comes_from_the_catalog_templates() {
        let cat = Catalog::parse(crate::catalog::tests::SAMPLE).unwrap();
        let e = event("too_many_downloads", "trigger");
        let t = render_email(&e, cat.get("too_many_downloads"), Some("Acme"));
        assert_eq!(t.subject, "Too many downloads by Ann <a@b.co>");
        assert!(t.body.contains("Client: Acme"), "{}", t.body);
        assert!(t.body.contains("files: 12"), "{}", t.body);
        assert!(
            t.body.contains("Event e1 (too_many_downloads)"),
            "{}",
            t.body
        );
        let r = render_email(
            &event("too_many_downloads", "resolve"),
            cat.get("too_many_downloads"),
            None,
        );
        assert_eq!(r.subject, "Resolved: Too many downloads by Ann <a@b.co>");
    }

    #[test]
    fn message_ids_are_stable_per_delivery() {
        assert_eq!(message_id("i1", 7, "x.com"), message_id("i1", 7, "x.com"));
        assert_ne!(message_id("i1", 7, "x.com"), message_id("i1", 8, "x.com"));
        assert_eq!(message_id("i1", 7, "x.com"), "<psabridge.i1.7@x.com>");
    }

    proptest! {
        #[test]
        fn well_formed_addresses_round_trip(
            local in "[a-z0-9][a-z0-9._+-]{0,20}[a-z0-9]",
            host in "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?",
            tld in "[a-z]{2,6}",
        ) {
            prop_assume!(!local.contains(".."));
            let a = format!("{local}@{host}.{tld}");
            prop_assert_eq!(parse_address(&a).map(|x| x.0), Ok(a.clone()));
        }

        #[test]
        fn a_list_of_good_addresses_keeps_each_once_in_order(
            names in proptest::collection::vec("[a-z]{1,8}", 0..10),
            sep in "[ ]{0,2};[ ]{0,2}",
        ) {
            let text = names.iter().map(|n| format!("{n}@x.com")).collect::<Vec<_>>().join(&sep);
            let list = parse_address_list(&text).unwrap();
            let mut expected: Vec<String> = Vec::new();
            for n in &names {
                let a = format!("{n}@x.com");
                if !expected.contains(&a) { expected.push(a); }
            }
            prop_assert_eq!(list.iter().map(|a| a.as_str().to_string()).collect::<Vec<_>>(), expected);
        }

        #[test]
        fn a_bad_entry_is_named_by_its_position(
            good in proptest::collection::vec("[a-z]{1,8}", 0..5),
            bad in "[a-z]{1,8}@?",
        ) {
            let mut entries: Vec<String> = good.iter().map(|n| format!("{n}@x.com")).collect();
            let at = entries.len();
            entries.push(bad.clone());
            let err = parse_address_list(&entries.join("; ")).unwrap_err();
            prop_assert_eq!(err, AddressListError::NotAnAddress {
                index: at,
                address: bad.clone(),
                reason: parse_address(&bad).unwrap_err(),
            });
        }

        #[test]
        fn parsing_never_panics(s in "\\PC{0,80}") {
            let _ = parse_address_list(&s);
        }
    }
}
