//! Routing: which connection, company, contacts, group key and ticket fields an event gets.
//!
//! Routing happens once per event, right after it is accepted, with the partner's settings of
//! that moment. Its result is stored on the delivery rows, so later deliveries do not depend on
//! settings changing under them.

use crate::event::NewEvent;
use crate::settings::{
    ConnectionSettings, EventRule, GroupingMode, PartnerSettings, Profile, Refire, TicketDefaults,
};

/// Where one event goes on one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub connection_id: i64,
    pub company_id: String,
    /// `true` when the client is mapped; `false` when this is the catch-all company.
    pub mapped: bool,
    /// The mapping's default contact (mapped clients only).
    pub default_contact_id: Option<String>,
    /// The connection's catch-all contact: the last resort.
    pub catch_all_contact_id: Option<String>,
    /// Which open ticket the event belongs to (see [`group_key`]).
    pub group_key: String,
    pub fields: TicketDefaults,
    /// The PSA contract of the client's mapping, carried by a new ticket.
    pub contract_id: Option<String>,
    /// What happens when the group's ticket is already closed.
    pub refire: Refire,
}

/// Why an event makes no delivery. Shown in the event's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    NoConnection,
    UnmappedWithoutCatchAll,
    TicketsOffForClient,
    TicketsOffForEventType,
    NotInEventSet,
    OffByDefault,
    ConnectionDisabled,
}

impl Skip {
    pub fn reason(&self) -> &'static str {
        match self {
            Skip::NoConnection => "the partner has no PSA connection for this client",
            Skip::UnmappedWithoutCatchAll => {
                "the client is not mapped and the connection has no catch-all company"
            }
            Skip::TicketsOffForClient => "ticket creation is off for this client's mapping",
            Skip::TicketsOffForEventType => "ticket creation is off for this event type",
            Skip::NotInEventSet => {
                "the event type is not in the event set that applies to this client"
            }
            Skip::OffByDefault => {
                "the event type is off by default and no event set or event rule turns it on"
            }
            Skip::ConnectionDisabled => "the PSA connection is disabled",
        }
    }
}

/// The result of routing one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routing {
    Deliver(Vec<Route>),
    Skip(Skip),
}

/// The group key: which open ticket an event lands on. Readable on purpose (the delivery log
/// shows it): `client|user|type` with the parts the grouping mode uses.
///
/// Without a user, events group by client and event type whatever the mode.
pub fn group_key(
    mode: GroupingMode,
    client: &str,
    user_email: Option<&str>,
    event_type: &str,
) -> String {
    // '|' cannot be confused with content: it is escaped inside the parts.
    let esc = |s: &str| s.replace('\\', "\\\\").replace('|', "\\|");
    match (mode, user_email) {
        (GroupingMode::User, Some(u)) => format!("client:{}|user:{}", esc(client), esc(u)),
        (GroupingMode::UserAndAlert, Some(u)) => {
            format!(
                "client:{}|user:{}|type:{}",
                esc(client),
                esc(u),
                esc(event_type)
            )
        }
        (GroupingMode::None, _) | (_, None) => {
            format!("client:{}|type:{}", esc(client), esc(event_type))
        }
    }
}

/// The ticket fields of an event on a connection, in layers, each laid over the one before
/// with [`TicketDefaults::overlaid_with`]: the connection's defaults, the client's template,
/// the event type's template, the event type's single-field overrides.
pub fn ticket_fields(
    conn: &ConnectionSettings,
    client_template: Option<i64>,
    rule: Option<&EventRule>,
) -> TicketDefaults {
    let mut fields = conn.defaults.clone();
    let template = |id: Option<i64>| id.and_then(|t| conn.templates.get(&t));
    if let Some(t) = template(client_template) {
        fields = fields.overlaid_with(t, conn.kind);
    }
    if let Some(r) = rule {
        if let Some(t) = template(r.template) {
            fields = fields.overlaid_with(t, conn.kind);
        }
        fields = fields.overlaid_with(&r.fields, conn.kind);
    }
    fields
}

/// Does the event set of `profile` let `event_type` through? No event set: every type the
/// vendor has on by default, and an off-by-default type only where an event rule turns
/// tickets on for it.
fn admitted(
    settings: &PartnerSettings,
    profile: Profile,
    rule: Option<&EventRule>,
    event_type: &str,
) -> Result<(), Skip> {
    match profile.event_set {
        None if settings.off_by_default.contains(event_type)
            && !rule.is_some_and(|r| r.create_ticket) =>
        {
            Err(Skip::OffByDefault)
        }
        None => Ok(()),
        // A set that no longer exists lets nothing through rather than everything.
        Some(id) => settings
            .event_sets
            .get(&id)
            .is_some_and(|s| s.event_types.contains(event_type))
            .then_some(())
            .ok_or(Skip::NotInEventSet),
    }
}

/// Route one event. Pure: the same event and settings always give the same answer.
pub fn route(event: &NewEvent, settings: &PartnerSettings) -> Routing {
    let user = event.user.as_ref().map(|u| u.email.as_str());
    let mappings = settings
        .mappings
        .get(&event.client)
        .map(Vec::as_slice)
        .unwrap_or(&[]);

    let mut routes = Vec::new();
    let mut last_skip = None;

    if mappings.is_empty() {
        let Some(conn) = settings
            .default_connection
            .and_then(|id| settings.connection(id))
        else {
            return Routing::Skip(Skip::NoConnection);
        };
        let Some(catch_all) = &conn.catch_all else {
            return Routing::Skip(Skip::UnmappedWithoutCatchAll);
        };
        if !conn.enabled {
            return Routing::Skip(Skip::ConnectionDisabled);
        }
        let rule = conn.rules.get(&event.event_type);
        if rule.is_some_and(|r| !r.create_ticket) {
            return Routing::Skip(Skip::TicketsOffForEventType);
        }
        let profile = conn.default_profile;
        if let Err(skip) = admitted(settings, profile, rule, &event.event_type) {
            return Routing::Skip(skip);
        }
        routes.push(Route {
            connection_id: conn.id,
            company_id: catch_all.company_id.clone(),
            mapped: false,
            default_contact_id: None,
            catch_all_contact_id: catch_all.contact_id.clone(),
            group_key: group_key(conn.grouping, &event.client, user, &event.event_type),
            fields: ticket_fields(conn, profile.template, rule),
            contract_id: None,
            refire: Refire::NewTicket,
        });
        return Routing::Deliver(routes);
    }

    for m in mappings {
        let Some(conn) = settings.connection(m.connection_id) else {
            last_skip = Some(Skip::NoConnection);
            continue;
        };
        if !conn.enabled {
            last_skip = Some(Skip::ConnectionDisabled);
            continue;
        }
        if !m.create_tickets {
            last_skip = Some(Skip::TicketsOffForClient);
            continue;
        }
        let rule = conn.rules.get(&event.event_type);
        if rule.is_some_and(|r| !r.create_ticket) {
            last_skip = Some(Skip::TicketsOffForEventType);
            continue;
        }
        let profile = m.profile.or(conn.default_profile);
        if let Err(skip) = admitted(settings, profile, rule, &event.event_type) {
            last_skip = Some(skip);
            continue;
        }
        routes.push(Route {
            connection_id: conn.id,
            company_id: m.company_id.clone(),
            mapped: true,
            default_contact_id: m.default_contact_id.clone(),
            catch_all_contact_id: conn.catch_all.as_ref().and_then(|c| c.contact_id.clone()),
            group_key: group_key(conn.grouping, &event.client, user, &event.event_type),
            fields: ticket_fields(conn, profile.template, rule),
            contract_id: m.contract_id.clone(),
            refire: m.refire,
        });
    }
    if routes.is_empty() {
        Routing::Skip(last_skip.unwrap_or(Skip::NoConnection))
    } else {
        Routing::Deliver(routes)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde_json::Map;

    use super::*;
    use crate::event::{Action, EventUser, Severity};
    use crate::settings::{CompanyContact, EventSet, Mapping, PsaKind};

    fn event(client: &str, ty: &str, user: Option<&str>) -> NewEvent {
        NewEvent {
            id: "e".into(),
            partner: None,
            client: client.into(),
            event_type: ty.into(),
            action: Action::Trigger,
            occurred_at: None,
            severity: Severity::High,
            user: user.map(|e| EventUser {
                email: e.into(),
                name: None,
            }),
            title: None,
            details: None,
            data: Map::new(),
        }
    }

    fn conn(id: i64, grouping: GroupingMode) -> ConnectionSettings {
        ConnectionSettings {
            id,
            kind: PsaKind::Autotask,
            enabled: true,
            grouping,
            catch_all: Some(CompanyContact {
                company_id: "900".into(),
                contact_id: Some("9001".into()),
            }),
            defaults: TicketDefaults::from_pairs([
                ("queue", "8"),
                ("status", "1"),
                ("priority", "2"),
            ]),
            rules: BTreeMap::new(),
            templates: BTreeMap::new(),
            default_profile: Profile::default(),
        }
    }

    fn mapping(company: &str) -> Mapping {
        Mapping {
            connection_id: 1,
            company_id: company.into(),
            default_contact_id: None,
            create_tickets: true,
            profile: Profile::default(),
            contract_id: None,
            refire: Refire::NewTicket,
        }
    }

    fn settings(grouping: GroupingMode) -> PartnerSettings {
        let mut mappings = BTreeMap::new();
        mappings.insert(
            "acme".to_string(),
            vec![Mapping {
                default_contact_id: Some("1001".into()),
                ..mapping("100")
            }],
        );
        PartnerSettings {
            connections: vec![conn(1, grouping)],
            default_connection: Some(1),
            mappings,
            event_sets: BTreeMap::new(),
            off_by_default: Default::default(),
        }
    }

    fn single(r: Routing) -> Route {
        match r {
            Routing::Deliver(mut v) if v.len() == 1 => v.pop().unwrap(),
            other => panic!("expected one route, got {other:?}"),
        }
    }

    #[test]
    fn mapped_client_goes_to_its_company_with_its_default_contact() {
        let r = single(route(
            &event("acme", "x", Some("a@acme.com")),
            &settings(GroupingMode::User),
        ));
        assert_eq!(r.company_id, "100");
        assert!(r.mapped);
        assert_eq!(r.default_contact_id.as_deref(), Some("1001"));
        assert_eq!(r.catch_all_contact_id.as_deref(), Some("9001"));
        assert_eq!(r.fields.get("queue"), Some("8"));
    }

    #[test]
    fn unmapped_client_goes_to_the_catch_all() {
        let r = single(route(
            &event("stranger", "x", None),
            &settings(GroupingMode::User),
        ));
        assert_eq!(r.company_id, "900");
        assert!(!r.mapped);
        assert_eq!(r.default_contact_id, None);
        assert_eq!(r.catch_all_contact_id.as_deref(), Some("9001"));
    }

    #[test]
    fn unmapped_without_catch_all_is_skipped_with_a_reason() {
        let mut s = settings(GroupingMode::User);
        s.connections[0].catch_all = None;
        assert_eq!(
            route(&event("stranger", "x", None), &s),
            Routing::Skip(Skip::UnmappedWithoutCatchAll)
        );
        s.default_connection = None;
        assert_eq!(
            route(&event("stranger", "x", None), &s),
            Routing::Skip(Skip::NoConnection)
        );
    }

    #[test]
    fn rules_switch_tickets_off_and_override_fields() {
        let mut s = settings(GroupingMode::User);
        s.connections[0].rules.insert(
            "off".into(),
            EventRule {
                create_ticket: false,
                template: None,
                fields: TicketDefaults::default(),
            },
        );
        s.connections[0].rules.insert(
            "dark_web".into(),
            EventRule {
                create_ticket: true,
                template: None,
                fields: TicketDefaults::from_pairs([("queue", "29")]),
            },
        );
        assert_eq!(
            route(&event("acme", "off", None), &s),
            Routing::Skip(Skip::TicketsOffForEventType)
        );
        let r = single(route(&event("acme", "dark_web", None), &s));
        assert_eq!(r.fields.get("queue"), Some("29"));
        assert_eq!(
            r.fields.get("status"),
            Some("1"),
            "the rest comes from the connection"
        );
    }

    #[test]
    fn mapping_switch_and_disabled_connection_skip() {
        let mut s = settings(GroupingMode::User);
        s.mappings.get_mut("acme").unwrap()[0].create_tickets = false;
        assert_eq!(
            route(&event("acme", "x", None), &s),
            Routing::Skip(Skip::TicketsOffForClient)
        );
        let mut s = settings(GroupingMode::User);
        s.connections[0].enabled = false;
        assert_eq!(
            route(&event("acme", "x", None), &s),
            Routing::Skip(Skip::ConnectionDisabled)
        );
        assert_eq!(
            route(&event("other", "x", None), &s),
            Routing::Skip(Skip::ConnectionDisabled)
        );
    }

    #[test]
    fn group_keys_follow_the_mode() {
        let k = |m, u, t| group_key(m, "acme", u, t);
        assert_eq!(
            k(GroupingMode::User, Some("a@x.io"), "t1"),
            k(GroupingMode::User, Some("a@x.io"), "t2")
        );
        assert_ne!(
            k(GroupingMode::UserAndAlert, Some("a@x.io"), "t1"),
            k(GroupingMode::UserAndAlert, Some("a@x.io"), "t2")
        );
        assert_ne!(
            k(GroupingMode::User, Some("a@x.io"), "t1"),
            k(GroupingMode::User, Some("b@x.io"), "t1")
        );
        assert_eq!(
            k(GroupingMode::User, None, "t1"),
            k(GroupingMode::UserAndAlert, None, "t1")
        );
        assert_ne!(
            k(GroupingMode::User, None, "t1"),
            k(GroupingMode::User, None, "t2")
        );
        assert_eq!(
            k(GroupingMode::None, Some("a@x.io"), "t1"),
            k(GroupingMode::None, Some("b@x.io"), "t1")
        );
    }

    fn with_sets_and_templates() -> PartnerSettings {
        let mut s = settings(GroupingMode::User);
        let set = |name: &str, types: &[&str]| EventSet {
            name: name.into(),
            event_types: types.iter().map(|t| t.to_string()).collect(),
        };
        s.event_sets.insert(1, set("identity", &["mfa", "login"]));
        s.event_sets.insert(2, set("files", &["uploads"]));
        let c = &mut s.connections[0];
        c.templates.insert(
            10,
            TicketDefaults::from_pairs([("queue", "10"), ("issue_type", "4")]),
        );
        c.templates.insert(
            20,
            TicketDefaults::from_pairs([("priority", "3"), ("issue_type", "5")]),
        );
        s
    }

    #[test]
    fn the_mapping_event_set_filters_and_its_template_fills_fields() {
        let mut s = with_sets_and_templates();
        s.mappings.get_mut("acme").unwrap()[0].profile = Profile {
            event_set: Some(1),
            template: Some(10),
        };
        assert_eq!(
            route(&event("acme", "uploads", None), &s),
            Routing::Skip(Skip::NotInEventSet)
        );
        let r = single(route(&event("acme", "mfa", None), &s));
        assert_eq!(r.fields.get("queue"), Some("10"), "from the template");
        assert_eq!(r.fields.get("status"), Some("1"), "from the connection");
        assert_eq!(r.fields.get("issue_type"), Some("4"));
    }

    #[test]
    fn the_default_rule_applies_where_the_mapping_names_nothing_and_to_the_catch_all() {
        let mut s = with_sets_and_templates();
        s.connections[0].default_profile = Profile {
            event_set: Some(2),
            template: Some(20),
        };
        // The mapping names a template only: the event set comes from the default rule.
        s.mappings.get_mut("acme").unwrap()[0].profile.template = Some(10);
        assert_eq!(
            route(&event("acme", "mfa", None), &s),
            Routing::Skip(Skip::NotInEventSet)
        );
        let r = single(route(&event("acme", "uploads", None), &s));
        assert_eq!(r.fields.get("queue"), Some("10"));
        assert_eq!(
            r.fields.get("priority"),
            Some("2"),
            "template 20 is not used"
        );
        // Unmapped clients get the default rule whole.
        assert_eq!(
            route(&event("stranger", "mfa", None), &s),
            Routing::Skip(Skip::NotInEventSet)
        );
        let r = single(route(&event("stranger", "uploads", None), &s));
        assert_eq!(r.fields.get("priority"), Some("3"));
        assert_eq!(r.contract_id, None);
        assert_eq!(r.refire, Refire::NewTicket);
    }

    #[test]
    fn an_event_type_template_and_overrides_lie_over_the_client_template() {
        let mut s = with_sets_and_templates();
        s.mappings.get_mut("acme").unwrap()[0].profile.template = Some(10);
        s.connections[0].rules.insert(
            "mfa".into(),
            EventRule {
                create_ticket: true,
                template: Some(20),
                fields: TicketDefaults::from_pairs([("priority", "4")]),
            },
        );
        let r = single(route(&event("acme", "mfa", None), &s));
        assert_eq!(r.fields.get("queue"), Some("10"), "client template");
        assert_eq!(r.fields.get("issue_type"), Some("5"), "event type template");
        assert_eq!(r.fields.get("priority"), Some("4"), "event type override");
    }

    #[test]
    fn an_off_by_default_type_needs_an_event_set_or_a_rule() {
        let mut s = with_sets_and_templates();
        s.off_by_default.insert("usb".into());
        // No event set applies to the unmapped client nor to "beta" (mapped without one).
        s.mappings.insert("beta".into(), vec![mapping("200")]);
        for client in ["beta", "stranger"] {
            assert_eq!(
                route(&event(client, "usb", None), &s),
                Routing::Skip(Skip::OffByDefault),
                "{client}"
            );
            single(route(&event(client, "uploads", None), &s));
        }
        // An event set naming it lets it through; one that does not name it keeps it out.
        s.event_sets
            .get_mut(&2)
            .unwrap()
            .event_types
            .insert("usb".into());
        s.mappings.get_mut("acme").unwrap()[0].profile.event_set = Some(2);
        single(route(&event("acme", "usb", None), &s));
        s.mappings.get_mut("acme").unwrap()[0].profile.event_set = Some(1);
        assert_eq!(
            route(&event("acme", "usb", None), &s),
            Routing::Skip(Skip::NotInEventSet)
        );
        // A rule that turns tickets on is the partner saying yes, without an event set too.
        s.connections[0].rules.insert(
            "usb".into(),
            EventRule {
                create_ticket: true,
                template: None,
                fields: TicketDefaults::default(),
            },
        );
        single(route(&event("beta", "usb", None), &s));
        single(route(&event("stranger", "usb", None), &s));
    }

    #[test]
    fn a_vanished_event_set_lets_nothing_through() {
        let mut s = with_sets_and_templates();
        s.mappings.get_mut("acme").unwrap()[0].profile.event_set = Some(99);
        assert_eq!(
            route(&event("acme", "mfa", None), &s),
            Routing::Skip(Skip::NotInEventSet)
        );
    }

    #[test]
    fn contract_and_refire_come_from_the_mapping() {
        let mut s = settings(GroupingMode::User);
        let m = &mut s.mappings.get_mut("acme").unwrap()[0];
        m.contract_id = Some("44".into());
        m.refire = Refire::NoteOnly;
        let r = single(route(&event("acme", "x", None), &s));
        assert_eq!(r.contract_id.as_deref(), Some("44"));
        assert_eq!(r.refire, Refire::NoteOnly);
    }

    proptest! {
        /// Two events share a group key exactly when the grouping mode says they should.
        #[test]
        fn group_key_is_injective_on_what_the_mode_uses(
            c1 in "[a-z|\\\\]{1,4}", c2 in "[a-z|\\\\]{1,4}",
            u1 in proptest::option::of("[a-z|]{1,3}@x\\.io"), u2 in proptest::option::of("[a-z|]{1,3}@x\\.io"),
            t1 in "[a-z|]{1,3}", t2 in "[a-z|]{1,3}",
            mode in prop_oneof![Just(GroupingMode::User), Just(GroupingMode::UserAndAlert), Just(GroupingMode::None)],
        ) {
            let same = group_key(mode, &c1, u1.as_deref(), &t1) == group_key(mode, &c2, u2.as_deref(), &t2);
            let should = c1 == c2 && match mode {
                GroupingMode::None => t1 == t2,
                GroupingMode::User => match (&u1, &u2) {
                    (Some(a), Some(b)) => a == b,
                    (None, None) => t1 == t2,
                    _ => false,
                },
                GroupingMode::UserAndAlert => u1 == u2 && t1 == t2,
            };
            prop_assert_eq!(same, should);
        }

        /// Every routed event lands on a company that is either its mapping's or the catch-all.
        #[test]
        fn routes_land_on_the_mapping_or_the_catch_all(client in "[a-z]{1,6}", mapped in any::<bool>()) {
            let mut s = settings(GroupingMode::User);
            if mapped {
                s.mappings.insert(client.clone(), vec![mapping("555")]);
            } else {
                s.mappings.remove(&client);
            }
            let r = single(route(&event(&client, "x", None), &s));
            prop_assert_eq!(r.mapped, mapped);
            prop_assert_eq!(r.company_id.as_str(), if mapped { "555" } else { "900" });
        }
    }
}
