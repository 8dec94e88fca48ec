//! The partner's configuration as routing sees it: a read-only snapshot.
//!
//! The store assembles a [`PartnerSettings`] from its tables; routing reads it and nothing else,
//! so that every decision can be tested without a database.

use std::collections::{BTreeMap, BTreeSet};

/// Which PSA a connection speaks to. Routing never branches on it; connectors do, and the
/// ticket fields a connection's defaults may name come from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PsaKind {
    Autotask,
    HaloPsa,
    KaseyaBms,
    ConnectWise,
}

/// One ticket field a PSA's ticket defaults may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketField {
    /// The key in defaults, overrides and the PSA's lists (`queue`, `sub_issue_type`).
    pub name: &'static str,
    /// What a person calls it (`sub-issue type`), for error messages.
    pub label: &'static str,
    /// The list whose ids the value must be one of (usually `name`; `close_status` uses
    /// `status`).
    pub list: &'static str,
    /// The field this one depends on: a value belongs to one value of the parent (a sub-issue
    /// type to its issue type, a ConnectWise status to its board).
    pub parent: Option<&'static str>,
}

const fn field(name: &'static str, label: &'static str) -> TicketField {
    TicketField {
        name,
        label,
        list: name,
        parent: None,
    }
}

const fn child(name: &'static str, label: &'static str, parent: &'static str) -> TicketField {
    TicketField {
        name,
        label,
        list: name,
        parent: Some(parent),
    }
}

const fn close(parent: Option<&'static str>) -> TicketField {
    TicketField {
        name: "close_status",
        label: "close status",
        list: "status",
        parent,
    }
}

const AUTOTASK_FIELDS: &[TicketField] = &[
    field("queue", "queue"),
    field("status", "status"),
    field("priority", "priority"),
    field("issue_type", "issue type"),
    child("sub_issue_type", "sub-issue type", "issue_type"),
    field("source", "source"),
    field("ticket_type", "ticket type"),
    close(None),
];

const HALOPSA_FIELDS: &[TicketField] = &[
    field("ticket_type", "ticket type"),
    field("status", "status"),
    field("priority", "priority"),
    field("sla", "SLA"),
    field("team", "team"),
    child("agent", "agent", "team"),
    field("category", "category"),
    field("urgency", "urgency"),
    field("impact", "impact"),
    close(None),
];

const KASEYA_BMS_FIELDS: &[TicketField] = &[
    field("queue", "queue"),
    field("status", "status"),
    field("priority", "priority"),
    field("ticket_type", "ticket type"),
    field("issue_type", "issue type"),
    child("sub_issue_type", "sub-issue type", "issue_type"),
    field("source", "source"),
    field("sla", "SLA"),
    close(None),
];

const CONNECTWISE_FIELDS: &[TicketField] = &[
    field("board", "board"),
    child("status", "status", "board"),
    child("type", "type", "board"),
    child("subtype", "subtype", "type"),
    child("item", "item", "board"),
    child("team", "team", "board"),
    field("priority", "priority"),
    field("source", "source"),
    close(Some("board")),
];

impl PsaKind {
    pub const ALL: [PsaKind; 4] = [
        PsaKind::Autotask,
        PsaKind::HaloPsa,
        PsaKind::KaseyaBms,
        PsaKind::ConnectWise,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PsaKind::Autotask => "autotask",
            PsaKind::HaloPsa => "halopsa",
            PsaKind::KaseyaBms => "kaseya_bms",
            PsaKind::ConnectWise => "connectwise",
        }
    }

    pub fn parse(s: &str) -> Option<PsaKind> {
        PsaKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The name people use (`Kaseya BMS`).
    pub fn display_name(self) -> &'static str {
        match self {
            PsaKind::Autotask => "Autotask",
            PsaKind::HaloPsa => "HaloPSA",
            PsaKind::KaseyaBms => "Kaseya BMS",
            PsaKind::ConnectWise => "ConnectWise PSA",
        }
    }

    /// The ticket fields this PSA's defaults may set, parents before their children.
    pub fn ticket_fields(self) -> &'static [TicketField] {
        match self {
            PsaKind::Autotask => AUTOTASK_FIELDS,
            PsaKind::HaloPsa => HALOPSA_FIELDS,
            PsaKind::KaseyaBms => KASEYA_BMS_FIELDS,
            PsaKind::ConnectWise => CONNECTWISE_FIELDS,
        }
    }

    /// The ticket fields a connection's defaults must set: the PSA refuses a ticket without
    /// them (Autotask's status and priority, Kaseya BMS's status and priority, ConnectWise's
    /// board; HaloPSA defaults every field itself).
    pub fn required_ticket_fields(self) -> &'static [&'static str] {
        match self {
            PsaKind::Autotask | PsaKind::KaseyaBms => &["status", "priority"],
            PsaKind::ConnectWise => &["board"],
            PsaKind::HaloPsa => &[],
        }
    }

    pub fn ticket_field(self, name: &str) -> Option<&'static TicketField> {
        self.ticket_fields().iter().find(|f| f.name == name)
    }

    /// Does `name` depend on `ancestor`, directly or through other fields?
    pub fn depends_on(self, name: &str, ancestor: &str) -> bool {
        let mut at = self.ticket_field(name).and_then(|f| f.parent);
        // Field tables are short and acyclic; the bound guards a mistaken table.
        for _ in 0..8 {
            match at {
                Some(p) if p == ancestor => return true,
                Some(p) => at = self.ticket_field(p).and_then(|f| f.parent),
                None => return false,
            }
        }
        false
    }
}

/// How alerts share tickets (seed: "User" and "User+Alert").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum GroupingMode {
    /// One open ticket per (client, user); every later alert of that user is a note.
    #[default]
    User,
    /// One open ticket per (client, user, event type).
    UserAndAlert,
    /// No grouping by user: one open ticket per (client, event type).
    None,
}

impl GroupingMode {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupingMode::User => "user",
            GroupingMode::UserAndAlert => "user_and_alert",
            GroupingMode::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<GroupingMode> {
        match s {
            "user" => Some(GroupingMode::User),
            "user_and_alert" => Some(GroupingMode::UserAndAlert),
            "none" => Some(GroupingMode::None),
            _ => None,
        }
    }
}

/// Ticket field values by field name (see [`PsaKind::ticket_fields`]), each a PSA id as text.
/// An absent field is left to the PSA's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TicketDefaults(BTreeMap<String, String>);

impl TicketDefaults {
    pub fn new() -> TicketDefaults {
        TicketDefaults::default()
    }

    /// Defaults from `(field, id)` pairs.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> TicketDefaults {
        TicketDefaults(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(String::as_str)
    }

    pub fn set(&mut self, field: &str, value: impl Into<String>) {
        self.0.insert(field.to_string(), value.into());
    }

    pub fn remove(&mut self, field: &str) -> Option<String> {
        self.0.remove(field)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `(field, id)` in field-name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// `self` with every field that `over` sets replaced by `over`'s value.
    ///
    /// Overriding a field with a different value drops the inherited values of the fields that
    /// depend on it (a sub-issue type of another issue type, a status of another board): a
    /// dependent value belongs to one parent and must never be paired with another.
    pub fn overlaid_with(&self, over: &TicketDefaults, kind: PsaKind) -> TicketDefaults {
        let changed: Vec<&str> = over
            .iter()
            .filter(|(k, v)| self.get(k) != Some(*v))
            .map(|(k, _)| k)
            .collect();
        let mut out = TicketDefaults(
            self.0
                .iter()
                .filter(|(k, _)| !changed.iter().any(|c| kind.depends_on(k, c)))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        );
        for (k, v) in over.iter() {
            out.set(k, v);
        }
        out
    }
}

/// A PSA company and, optionally, the contact to use there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompanyContact {
    pub company_id: String,
    pub contact_id: Option<String>,
}

/// What one event type does on one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRule {
    pub create_ticket: bool,
    /// A whole template for this event type (laid over the client's), if any.
    pub template: Option<i64>,
    /// Overrides of single ticket fields for this event type, laid over everything else.
    pub fields: TicketDefaults,
}

/// A named group of event types (seed: "event set"). A mapping that names one tickets only
/// those event types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSet {
    pub name: String,
    pub event_types: BTreeSet<String>,
}

/// Which event set and template apply. Used by mappings and by a connection's default
/// integration rule; `None` falls back (mapping → default rule → everything / no template).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Profile {
    pub event_set: Option<i64>,
    pub template: Option<i64>,
}

impl Profile {
    /// `self`, with what it leaves open taken from `fallback`.
    pub fn or(self, fallback: Profile) -> Profile {
        Profile {
            event_set: self.event_set.or(fallback.event_set),
            template: self.template.or(fallback.template),
        }
    }
}

/// What a new alert does when its group's last ticket is already closed (seed 001: a new
/// ticket; the other two are what MSPs ask for when technicians close tickets too early).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Refire {
    /// Open a new ticket.
    #[default]
    NewTicket,
    /// Reopen the closed ticket (with a note) when it was closed less than `within` ago;
    /// otherwise open a new one.
    Reopen { within: chrono::Duration },
    /// Add the alert as a note to the closed ticket and leave it closed.
    NoteOnly,
}

impl Refire {
    pub fn mode(&self) -> &'static str {
        match self {
            Refire::NewTicket => "new_ticket",
            Refire::Reopen { .. } => "reopen",
            Refire::NoteOnly => "note_only",
        }
    }

    /// The policy from its stored form: the mode and, for `reopen`, the window in seconds.
    pub fn from_parts(mode: &str, within_secs: Option<i64>) -> Option<Refire> {
        match (mode, within_secs) {
            ("new_ticket", _) => Some(Refire::NewTicket),
            ("note_only", _) => Some(Refire::NoteOnly),
            ("reopen", Some(s)) if s > 0 => Some(Refire::Reopen {
                within: chrono::Duration::seconds(s),
            }),
            _ => None,
        }
    }

    /// The window of `reopen`, in seconds.
    pub fn within_secs(&self) -> Option<i64> {
        match self {
            Refire::Reopen { within } => Some(within.num_seconds()),
            _ => None,
        }
    }

    /// The behaviour this policy causes, in the words the settings show.
    pub fn behaviour(&self) -> String {
        match self {
            Refire::NewTicket => {
                "An alert for a group whose ticket is closed opens a new ticket.".into()
            }
            Refire::Reopen { within } => format!(
                "An alert for a group whose ticket was closed less than {} ago reopens that \
                 ticket with a note; after that it opens a new ticket.",
                human_duration(*within)
            ),
            Refire::NoteOnly => "An alert for a group whose ticket is closed is added to that \
                                 ticket as a note; the ticket stays closed."
                .into(),
        }
    }
}

fn human_duration(d: chrono::Duration) -> String {
    let s = d.num_seconds();
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    // In hours, the unit the setting is given in.
    if s % 3600 == 0 {
        plural(s / 3600, "hour")
    } else if s % 60 == 0 {
        plural(s / 60, "minute")
    } else {
        plural(s, "second")
    }
}

/// One PSA connection of the partner.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionSettings {
    pub id: i64,
    pub kind: PsaKind,
    pub enabled: bool,
    pub grouping: GroupingMode,
    /// Where tickets of unmapped clients go.
    pub catch_all: Option<CompanyContact>,
    pub defaults: TicketDefaults,
    /// Per event type. An event type without a rule is ticketed with the connection defaults.
    pub rules: BTreeMap<String, EventRule>,
    /// Templates (integration profiles) by id: ticket fields laid over `defaults`.
    pub templates: BTreeMap<i64, TicketDefaults>,
    /// The default integration rule: the event set and template of every client whose
    /// mapping names none, and of unmapped clients.
    pub default_profile: Profile,
}

/// A client mapped to a PSA company on one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub connection_id: i64,
    pub company_id: String,
    pub default_contact_id: Option<String>,
    pub create_tickets: bool,
    /// The mapping's own event set and template (else the connection's default rule).
    pub profile: Profile,
    /// The PSA contract every ticket of this client carries.
    pub contract_id: Option<String>,
    pub refire: Refire,
}

/// Everything routing needs to know about one partner.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartnerSettings {
    pub connections: Vec<ConnectionSettings>,
    /// The connection that takes events of unmapped clients (to its catch-all company).
    pub default_connection: Option<i64>,
    /// Client id (the producer's) → its mappings, at most one per connection.
    pub mappings: BTreeMap<String, Vec<Mapping>>,
    /// The partner's event sets by id.
    pub event_sets: BTreeMap<i64, EventSet>,
    /// Event types the vendor defined as off by default: without an event set, or an event
    /// rule that turns tickets on for the type, they make no ticket. Not the partner's own
    /// setting: the engine fills it from the live catalog before routing.
    pub off_by_default: BTreeSet<String>,
}

impl PartnerSettings {
    pub fn connection(&self, id: i64) -> Option<&ConnectionSettings> {
        self.connections.iter().find(|c| c.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(issue: Option<&str>, sub: Option<&str>) -> TicketDefaults {
        let mut t = TicketDefaults::new();
        if let Some(i) = issue {
            t.set("issue_type", i);
        }
        if let Some(s) = sub {
            t.set("sub_issue_type", s);
        }
        t
    }

    #[test]
    fn overriding_the_issue_type_never_keeps_a_foreign_sub_issue_type() {
        let k = PsaKind::Autotask;
        let base = d(Some("10"), Some("101"));
        assert_eq!(
            base.overlaid_with(&d(Some("20"), None), k),
            d(Some("20"), None)
        );
        assert_eq!(
            base.overlaid_with(&d(Some("20"), Some("201")), k),
            d(Some("20"), Some("201"))
        );
        assert_eq!(
            base.overlaid_with(&d(None, Some("102")), k),
            d(Some("10"), Some("102"))
        );
        assert_eq!(base.overlaid_with(&d(Some("10"), None), k), base);
        assert_eq!(base.overlaid_with(&TicketDefaults::default(), k), base);
    }

    #[test]
    fn a_new_board_drops_everything_that_belonged_to_the_old_one() {
        let k = PsaKind::ConnectWise;
        let base = TicketDefaults::from_pairs([
            ("board", "1"),
            ("status", "16"),
            ("type", "2"),
            ("subtype", "3"),
            ("priority", "4"),
            ("close_status", "18"),
        ]);
        let over = TicketDefaults::from_pairs([("board", "2"), ("status", "30")]);
        assert_eq!(
            base.overlaid_with(&over, k),
            TicketDefaults::from_pairs([("board", "2"), ("status", "30"), ("priority", "4")])
        );
        // Overriding a child alone keeps the parent.
        let over = TicketDefaults::from_pairs([("subtype", "9")]);
        assert_eq!(base.overlaid_with(&over, k).get("type"), Some("2"));
    }

    #[test]
    fn every_parent_is_a_field_of_the_same_psa_and_comes_first() {
        for k in PsaKind::ALL {
            let fields = k.ticket_fields();
            for (i, f) in fields.iter().enumerate() {
                if let Some(p) = f.parent {
                    let at = fields.iter().position(|g| g.name == p);
                    assert!(
                        at.is_some_and(|at| at < i),
                        "{}: {} before {}",
                        k.as_str(),
                        p,
                        f.name
                    );
                }
                assert!(
                    k.ticket_field(f.list).is_some(),
                    "{}: list {}",
                    k.as_str(),
                    f.list
                );
            }
        }
    }

    #[test]
    fn refire_policies_round_trip_and_say_what_they_do() {
        for r in [
            Refire::NewTicket,
            Refire::NoteOnly,
            Refire::Reopen {
                within: chrono::Duration::hours(24),
            },
        ] {
            assert_eq!(Refire::from_parts(r.mode(), r.within_secs()), Some(r));
        }
        assert_eq!(Refire::from_parts("reopen", None), None);
        assert_eq!(Refire::from_parts("reopen", Some(0)), None);
        assert_eq!(Refire::from_parts("sometimes", None), None);
        let r = Refire::Reopen {
            within: chrono::Duration::hours(1),
        };
        assert!(r.behaviour().contains("less than 1 hour ago reopens"));
        assert!(Refire::NoteOnly.behaviour().contains("stays closed"));
    }

    #[test]
    fn names_round_trip() {
        for m in [
            GroupingMode::User,
            GroupingMode::UserAndAlert,
            GroupingMode::None,
        ] {
            assert_eq!(GroupingMode::parse(m.as_str()), Some(m));
        }
        for k in PsaKind::ALL {
            assert_eq!(PsaKind::parse(k.as_str()), Some(k));
        }
    }
}
