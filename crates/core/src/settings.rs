//! The partner's configuration as routing sees it: a read-only snapshot.
//!
//! The store assembles a [`PartnerSettings`] from its tables; routing reads it and nothing else,
//! so that every decision can be tested without a database.

use std::collections::BTreeMap;

/// Which PSA a connection speaks to. Routing never branches on it; connectors do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PsaKind {
    Autotask,
}

impl PsaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PsaKind::Autotask => "autotask",
        }
    }

    pub fn parse(s: &str) -> Option<PsaKind> {
        match s {
            "autotask" => Some(PsaKind::Autotask),
            _ => None,
        }
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

/// Ticket field values, each a PSA id as text. `None` leaves the field to the PSA's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TicketDefaults {
    pub queue: Option<String>,
    pub status: Option<String>,
    pub priority: Option<String>,
    pub issue_type: Option<String>,
    pub sub_issue_type: Option<String>,
    pub source: Option<String>,
    pub ticket_type: Option<String>,
}

impl TicketDefaults {
    /// The names of the fields, as the API and the PSA lists call them.
    pub const FIELDS: [&'static str; 7] = [
        "queue",
        "status",
        "priority",
        "issue_type",
        "sub_issue_type",
        "source",
        "ticket_type",
    ];

    pub fn get(&self, field: &str) -> Option<&str> {
        match field {
            "queue" => self.queue.as_deref(),
            "status" => self.status.as_deref(),
            "priority" => self.priority.as_deref(),
            "issue_type" => self.issue_type.as_deref(),
            "sub_issue_type" => self.sub_issue_type.as_deref(),
            "source" => self.source.as_deref(),
            "ticket_type" => self.ticket_type.as_deref(),
            _ => None,
        }
    }

    /// `self` with every field that `over` sets replaced by `over`'s value.
    ///
    /// An override of the issue type without a sub-issue type drops the inherited sub-issue
    /// type: a sub-issue type belongs to its issue type and must never be paired with another.
    pub fn overlaid_with(&self, over: &TicketDefaults) -> TicketDefaults {
        let pick = |a: &Option<String>, b: &Option<String>| b.clone().or_else(|| a.clone());
        let issue_overridden = over.issue_type.is_some() && over.issue_type != self.issue_type;
        TicketDefaults {
            queue: pick(&self.queue, &over.queue),
            status: pick(&self.status, &over.status),
            priority: pick(&self.priority, &over.priority),
            issue_type: pick(&self.issue_type, &over.issue_type),
            sub_issue_type: if issue_overridden {
                over.sub_issue_type.clone()
            } else {
                pick(&self.sub_issue_type, &over.sub_issue_type)
            },
            source: pick(&self.source, &over.source),
            ticket_type: pick(&self.ticket_type, &over.ticket_type),
        }
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
    /// Overrides of the connection's ticket defaults for this event type.
    pub fields: TicketDefaults,
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
}

/// A client mapped to a PSA company on one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub connection_id: i64,
    pub company_id: String,
    pub default_contact_id: Option<String>,
    pub create_tickets: bool,
}

/// Everything routing needs to know about one partner.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartnerSettings {
    pub connections: Vec<ConnectionSettings>,
    /// The connection that takes events of unmapped clients (to its catch-all company).
    pub default_connection: Option<i64>,
    /// Client id (the producer's) → its mappings, at most one per connection.
    pub mappings: BTreeMap<String, Vec<Mapping>>,
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
        TicketDefaults {
            issue_type: issue.map(Into::into),
            sub_issue_type: sub.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn overriding_the_issue_type_never_keeps_a_foreign_sub_issue_type() {
        let base = d(Some("10"), Some("101"));
        assert_eq!(
            base.overlaid_with(&d(Some("20"), None)),
            d(Some("20"), None)
        );
        assert_eq!(
            base.overlaid_with(&d(Some("20"), Some("201"))),
            d(Some("20"), Some("201"))
        );
        assert_eq!(
            base.overlaid_with(&d(None, Some("102"))),
            d(Some("10"), Some("102"))
        );
        assert_eq!(base.overlaid_with(&d(Some("10"), None)), base);
        assert_eq!(base.overlaid_with(&TicketDefaults::default()), base);
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
        assert_eq!(PsaKind::parse("autotask"), Some(PsaKind::Autotask));
    }
}
