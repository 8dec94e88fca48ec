//! What one delivery does in the PSA, given what we know of its group's ticket.
//!
//! The product owns the truth about groups: a group key has at most one open ticket, recorded
//! by us when we created it and updated when the PSA tells us (webhook), when a sweep reads it,
//! or when we ask right before a note. The PSA is never searched to find "the" ticket.

use chrono::{DateTime, Duration, Utc};

use crate::event::Action;

/// What we know about the open ticket of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenTicket {
    pub ticket_id: String,
    /// When the PSA last confirmed (or told us) that the ticket is open.
    pub confirmed_open_at: DateTime<Utc>,
}

/// The action for one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// No open ticket: create one.
    Create,
    /// The open ticket is known to be open recently enough: add a note.
    Note { ticket_id: String },
    /// We believe the ticket is open but have not heard for too long: read its state first,
    /// then note it if open, or create a new ticket if it was closed.
    VerifyThenNote { ticket_id: String },
    /// Nothing to do in the PSA (e.g. a resolve for a group with no open ticket).
    Nothing { reason: &'static str },
}

/// Decide a delivery. `trust` is how long a confirmation of "open" stays good; it is long
/// when the PSA pushes ticket changes to us, short when we only learn by polling.
pub fn plan(
    action: Action,
    open: Option<&OpenTicket>,
    now: DateTime<Utc>,
    trust: Duration,
) -> Plan {
    match (action, open) {
        (Action::Resolve, None) => Plan::Nothing {
            reason: "resolve for a group with no open ticket",
        },
        (Action::Trigger, None) => Plan::Create,
        (_, Some(t)) if now - t.confirmed_open_at <= trust => Plan::Note {
            ticket_id: t.ticket_id.clone(),
        },
        (_, Some(t)) => Plan::VerifyThenNote {
            ticket_id: t.ticket_id.clone(),
        },
    }
}

/// After a verification found the ticket closed: a trigger opens a new ticket, a resolve has
/// nothing left to say.
pub fn after_closed(action: Action) -> Plan {
    match action {
        Action::Trigger => Plan::Create,
        Action::Resolve => Plan::Nothing {
            reason: "resolve for a group whose ticket is already closed",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(age_secs: i64, now: DateTime<Utc>) -> OpenTicket {
        OpenTicket {
            ticket_id: "42".into(),
            confirmed_open_at: now - Duration::seconds(age_secs),
        }
    }

    #[test]
    fn the_decision_table() {
        let now = Utc::now();
        let trust = Duration::seconds(60);
        assert_eq!(plan(Action::Trigger, None, now, trust), Plan::Create);
        assert!(matches!(
            plan(Action::Resolve, None, now, trust),
            Plan::Nothing { .. }
        ));
        assert_eq!(
            plan(Action::Trigger, Some(&t(10, now)), now, trust),
            Plan::Note {
                ticket_id: "42".into()
            }
        );
        assert_eq!(
            plan(Action::Resolve, Some(&t(10, now)), now, trust),
            Plan::Note {
                ticket_id: "42".into()
            }
        );
        assert_eq!(
            plan(Action::Trigger, Some(&t(60, now)), now, trust),
            Plan::Note {
                ticket_id: "42".into()
            }
        );
        assert_eq!(
            plan(Action::Trigger, Some(&t(61, now)), now, trust),
            Plan::VerifyThenNote {
                ticket_id: "42".into()
            }
        );
        assert_eq!(after_closed(Action::Trigger), Plan::Create);
        assert!(matches!(
            after_closed(Action::Resolve),
            Plan::Nothing { .. }
        ));
    }
}
