//! Scopes of API tokens, and which routes each one opens.
//!
//! A token does not hold a role; it holds scopes. Each scope grants some of the matrix's
//! [`Permission`]s (or, for `events:write`, event ingestion, which no person does), so the
//! same `Access` entry of a route decides for people (through their role) and for tokens
//! (through their scopes): a token may call a route when one of its scopes grants what the
//! route needs. The table [`SCOPES`] is the only place this is written; the permission page
//! (docs/permissions.md) is generated from it.

use std::fmt;

use crate::roles::{Permission, Role, allows};

/// What a route needs from a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Need {
    /// A permission of the matrix, as a person's role would need it.
    Permission(Permission),
    /// Sending events (`POST /api/v1/events`): the vendor platform's own job.
    Ingest,
}

/// A scope of an API token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    EventsWrite,
    SettingsRead,
    SettingsWrite,
    DeliveriesRead,
    DeliveriesWrite,
    UsersRead,
    UsersWrite,
    AuditRead,
    TokensWrite,
}

use Permission as P;

/// THE scope table: each scope, its name, what it grants, and what it is for. A `…:write`
/// scope also grants the matching `…:read`: changing settings one cannot see is not useful,
/// and seeing them is less than changing them.
pub const SCOPES: [(Scope, &str, &[Need], &str); 9] = [
    (
        Scope::EventsWrite,
        "events:write",
        &[Need::Ingest],
        "send events (ingestion)",
    ),
    (
        Scope::SettingsRead,
        "settings:read",
        &[Need::Permission(P::ViewSettings)],
        "read partners, clients, connections, rules, mappings, templates, tokens",
    ),
    (
        Scope::SettingsWrite,
        "settings:write",
        &[
            Need::Permission(P::ViewSettings),
            Need::Permission(P::ManageSettings),
        ],
        "change them (and create partners, with a vendor-wide token)",
    ),
    (
        Scope::DeliveriesRead,
        "deliveries:read",
        &[Need::Permission(P::ViewDeliveries)],
        "read deliveries and events",
    ),
    (
        Scope::DeliveriesWrite,
        "deliveries:write",
        &[
            Need::Permission(P::ViewDeliveries),
            Need::Permission(P::OperateDeliveries),
        ],
        "retry deliveries, send test notifications",
    ),
    (
        Scope::UsersRead,
        "users:read",
        &[Need::Permission(P::ViewUsers)],
        "read the partner's people and roles",
    ),
    (
        Scope::UsersWrite,
        "users:write",
        &[
            Need::Permission(P::ViewUsers),
            Need::Permission(P::ManageUsers),
        ],
        "add people, change roles, deactivate or remove people",
    ),
    (
        Scope::AuditRead,
        "audit:read",
        &[Need::Permission(P::ViewAudit)],
        "read the audit log",
    ),
    (
        Scope::TokensWrite,
        "tokens:write",
        &[Need::Permission(P::ManageTokens)],
        "create and revoke API tokens (never with more scopes than the creator has)",
    ),
];

impl Scope {
    /// Every scope, in the order of [`SCOPES`].
    pub const ALL: [Scope; 9] = [
        Scope::EventsWrite,
        Scope::SettingsRead,
        Scope::SettingsWrite,
        Scope::DeliveriesRead,
        Scope::DeliveriesWrite,
        Scope::UsersRead,
        Scope::UsersWrite,
        Scope::AuditRead,
        Scope::TokensWrite,
    ];

    fn row(self) -> &'static (Scope, &'static str, &'static [Need], &'static str) {
        SCOPES
            .iter()
            .find(|(s, ..)| *s == self)
            .expect("every scope has a row")
    }

    /// The name used in the API and the database (`settings:read`).
    pub fn as_str(self) -> &'static str {
        self.row().1
    }

    /// The inverse of [`Scope::as_str`].
    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Does this scope open a route that needs `need`?
    pub fn grants(self, need: Need) -> bool {
        self.row().2.contains(&need)
    }

    /// Whether a person with `role` could do everything this scope allows (a person cannot
    /// make a token that does more than they can). Ingestion is never a person's job, but a
    /// person who manages the partner's settings may make an ingestion token for it.
    pub fn within_role(self, role: Role) -> bool {
        self.row().2.iter().all(|need| match need {
            Need::Permission(p) => allows(role, *p),
            Need::Ingest => allows(role, Permission::ManageSettings),
        })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The scopes named in a token's stored form (names separated by spaces). Unknown names are
/// skipped: a scope removed from the code grants nothing.
pub fn parse_stored(stored: &str) -> Vec<Scope> {
    stored.split_whitespace().filter_map(Scope::parse).collect()
}

/// The stored form of a set of scopes, in table order without repeats.
pub fn to_stored(scopes: &[Scope]) -> String {
    Scope::ALL
        .into_iter()
        .filter(|s| scopes.contains(s))
        .map(Scope::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The first scope a token would need for `need`, if `held` does not grant it (for the 403:
/// "the token lacks the scope settings:write").
pub fn missing_scope(held: &[Scope], need: Need) -> Option<Scope> {
    if held.iter().any(|s| s.grants(need)) {
        return None;
    }
    // The narrowest scope that grants it: the one with fewest grants.
    Scope::ALL
        .into_iter()
        .filter(|s| s.grants(need))
        .min_by_key(|s| s.row().2.len())
}

/// Why a requested list of scopes was refused: `(index, message)` per bad entry.
pub type ScopeErrors = Vec<(usize, String)>;

/// Check the scope names asked for a new token against what the creator may hand out
/// (`grantable`). Every bad entry is named by its index; the result keeps table order.
pub fn parse_requested(
    requested: &[String],
    grantable: &[Scope],
) -> Result<Vec<Scope>, ScopeErrors> {
    let mut errors = Vec::new();
    let mut scopes = Vec::new();
    for (i, name) in requested.iter().enumerate() {
        match Scope::parse(name) {
            None => errors.push((
                i,
                format!(
                    "'{name}' is not a scope (known: {})",
                    Scope::ALL.map(Scope::as_str).join(", ")
                ),
            )),
            Some(s) if !grantable.contains(&s) => errors.push((
                i,
                format!("'{name}' is more than the creator of the token may grant"),
            )),
            Some(s) => scopes.push(s),
        }
    }
    if requested.is_empty() {
        errors.push((0, "at least one scope is needed".to_string()));
    }
    if errors.is_empty() {
        Ok(parse_stored(&to_stored(&scopes)))
    } else {
        Err(errors)
    }
}

/// The scopes table as Markdown, for docs/permissions.md.
pub fn scopes_markdown() -> String {
    let mut out = String::from("| Scope | Grants | For |\n|---|---|---|\n");
    for (_, name, needs, what) in SCOPES {
        let grants: Vec<String> = needs
            .iter()
            .map(|n| match n {
                Need::Permission(p) => format!("`{}`", p.as_str()),
                Need::Ingest => "event ingestion".to_string(),
            })
            .collect();
        out.push_str(&format!("| `{name}` | {} | {what} |\n", grants.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::Strategy;

    #[test]
    fn names_round_trip_and_table_lists_each_scope_once() {
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
        }
        let mut listed: Vec<_> = SCOPES.iter().map(|r| r.0).collect();
        listed.dedup();
        assert_eq!(listed, Scope::ALL.to_vec());
        assert_eq!(Scope::parse("settings"), None);
        assert_eq!(Scope::parse("Settings:Read"), None);
    }

    #[test]
    fn every_need_is_granted_by_some_scope() {
        for p in Permission::ALL {
            assert!(
                missing_scope(&[], Need::Permission(p)).is_some(),
                "{p:?} has no scope"
            );
        }
        assert_eq!(missing_scope(&[], Need::Ingest), Some(Scope::EventsWrite));
    }

    #[test]
    fn events_write_opens_ingestion_and_nothing_else() {
        for p in Permission::ALL {
            assert!(!Scope::EventsWrite.grants(Need::Permission(p)));
        }
        assert!(Scope::EventsWrite.grants(Need::Ingest));
    }

    #[test]
    fn read_scopes_grant_only_reading() {
        for s in Scope::ALL
            .into_iter()
            .filter(|s| s.as_str().ends_with(":read"))
        {
            for p in Permission::ALL {
                if s.grants(Need::Permission(p)) {
                    assert!(p.is_read_only(), "{s} grants {p:?}");
                }
            }
        }
    }

    #[test]
    fn missing_scope_names_the_narrowest() {
        let need = Need::Permission(Permission::ViewSettings);
        assert_eq!(
            missing_scope(&[Scope::EventsWrite], need),
            Some(Scope::SettingsRead)
        );
        assert_eq!(missing_scope(&[Scope::SettingsWrite], need), None);
        assert_eq!(
            missing_scope(
                &[Scope::SettingsRead],
                Need::Permission(Permission::ManageSettings)
            ),
            Some(Scope::SettingsWrite)
        );
    }

    #[test]
    fn stored_form_round_trips_in_table_order() {
        let s = [Scope::TokensWrite, Scope::EventsWrite, Scope::EventsWrite];
        assert_eq!(to_stored(&s), "events:write tokens:write");
        assert_eq!(
            parse_stored("events:write gone:scope tokens:write"),
            vec![Scope::EventsWrite, Scope::TokensWrite]
        );
    }

    #[test]
    fn the_migration_default_is_every_scope() {
        // migrations/*/0010_token_scopes.sql gives older tokens this string.
        assert_eq!(
            to_stored(&Scope::ALL),
            "events:write settings:read settings:write deliveries:read deliveries:write \
             users:read users:write audit:read tokens:write"
        );
    }

    #[test]
    fn requested_scopes_name_each_bad_entry() {
        let asked: Vec<String> = ["settings:read", "foo", "users:write"]
            .map(String::from)
            .to_vec();
        let grantable = [Scope::SettingsRead, Scope::EventsWrite];
        let errors = parse_requested(&asked, &grantable).unwrap_err();
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].0, 1);
        assert!(
            errors[0]
                .1
                .starts_with("'foo' is not a scope (known: events:write, ")
        );
        assert_eq!(errors[1].0, 2);
        assert!(parse_requested(&[], &grantable).is_err());
        assert_eq!(
            parse_requested(&["events:write".into()], &grantable).unwrap(),
            vec![Scope::EventsWrite]
        );
    }

    #[test]
    fn people_grant_no_more_than_their_role() {
        for role in Role::ALL {
            for s in Scope::ALL {
                if s.within_role(role) {
                    for (p, _) in crate::roles::MATRIX {
                        if s.grants(Need::Permission(p)) {
                            assert!(allows(role, p), "{role:?} could grant {s} ({p:?})");
                        }
                    }
                }
            }
        }
        assert!(!Scope::UsersWrite.within_role(Role::Admin));
        assert!(!Scope::SettingsWrite.within_role(Role::SecurityAdmin));
        assert!(Scope::SettingsRead.within_role(Role::ReadOnly));
        assert!(!Scope::EventsWrite.within_role(Role::Technician));
    }

    proptest::proptest! {
        /// Whatever is asked, what comes back is within what the creator may grant, or every
        /// refusal names an index that was asked.
        #[test]
        fn requested_scopes_never_exceed_the_grantable(
            asked in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(Scope::ALL.map(Scope::as_str).to_vec()).prop_map(String::from),
                    "[a-z:]{0,16}",
                ],
                0..12,
            ),
            grantable_mask in 0u16..512,
        ) {
            let grantable: Vec<Scope> = Scope::ALL
                .into_iter()
                .enumerate()
                .filter(|(i, _)| grantable_mask & (1 << i) != 0)
                .map(|(_, s)| s)
                .collect();
            match parse_requested(&asked, &grantable) {
                Ok(scopes) => {
                    proptest::prop_assert!(!scopes.is_empty());
                    for s in &scopes {
                        proptest::prop_assert!(grantable.contains(s));
                        proptest::prop_assert!(asked.iter().any(|a| a == s.as_str()));
                    }
                }
                Err(errors) => {
                    proptest::prop_assert!(!errors.is_empty());
                    for (i, _) in errors {
                        proptest::prop_assert!(i < asked.len().max(1));
                    }
                }
            }
        }

        /// The stored form reads back as the same set, whatever the order and repeats.
        #[test]
        fn stored_form_round_trips(picks in proptest::collection::vec(0usize..9, 0..20)) {
            let scopes: Vec<Scope> = picks.iter().map(|i| Scope::ALL[*i]).collect();
            let back = parse_stored(&to_stored(&scopes));
            for s in Scope::ALL {
                proptest::prop_assert_eq!(scopes.contains(&s), back.contains(&s));
            }
        }
    }

    #[test]
    fn markdown_has_a_row_per_scope() {
        let md = scopes_markdown();
        assert_eq!(md.lines().count(), 2 + Scope::ALL.len());
        assert!(md.contains("| `events:write` | event ingestion |"));
    }
}
