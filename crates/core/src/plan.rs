//! What one delivery does in the PSA, given what we know of its group's ticket.
//!
//! The product owns the truth about groups: a group key has at most one open ticket, recorded
//! by us when we created it and updated when the PSA tells us (webhook), when a sweep reads it,
//! or when we ask right before a note. The PSA is never searched to find "the" ticket.

use chrono::{DateTime, Duration, Utc};

use crate::event::Action;
use crate::settings::Refire;

/// What we know about the open ticket of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenTicket {
    pub ticket_id: String,
    /// When the PSA last confirmed (or told us) that the ticket is open.
    pub confirmed_open_at: DateTime<Utc>,
}

/// The group's most recent ticket, when it is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedTicket {
    pub ticket_id: String,
    /// When we learned that it closed.
    pub closed_at: DateTime<Utc>,
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
    /// The group's ticket is closed and the re-fire policy says to reopen it, with a note.
    Reopen { ticket_id: String },
    /// The group's ticket is closed and the re-fire policy says to add a note to it anyway.
    NoteClosed { ticket_id: String },
    /// Nothing to do in the PSA (e.g. a resolve for a group with no open ticket).
    Nothing { reason: &'static str },
}

/// Decide a delivery. `trust` is how long a confirmation of "open" stays good; it is long
/// when the PSA pushes ticket changes to us, short when we only learn by polling. `closed` is
/// the group's last ticket when it is closed and none is open; `refire` says what a new
/// alert does to it.
pub fn plan(
    action: Action,
    open: Option<&OpenTicket>,
    closed: Option<&ClosedTicket>,
    refire: Refire,
    now: DateTime<Utc>,
    trust: Duration,
) -> Plan {
    match (action, open) {
        (_, None) => when_closed(action, closed, refire, now),
        (_, Some(t)) if now - t.confirmed_open_at <= trust => Plan::Note {
            ticket_id: t.ticket_id.clone(),
        },
        (_, Some(t)) => Plan::VerifyThenNote {
            ticket_id: t.ticket_id.clone(),
        },
    }
}

/// After a verification found the group's ticket closed at `now` (or gone: then `closed` is
/// `None`): what the re-fire policy makes of this delivery.
pub fn after_closed(
    action: Action,
    closed: Option<&ClosedTicket>,
    refire: Refire,
    now: DateTime<Utc>,
) -> Plan {
    when_closed(action, closed, refire, now)
}

fn when_closed(
    action: Action,
    closed: Option<&ClosedTicket>,
    refire: Refire,
    now: DateTime<Utc>,
) -> Plan {
    if action == Action::Resolve {
        return Plan::Nothing {
            reason: "resolve for a group with no open ticket",
        };
    }
    let Some(c) = closed else {
        return Plan::Create;
    };
    match refire {
        Refire::NewTicket => Plan::Create,
        Refire::Reopen { within } if now - c.closed_at <= within => Plan::Reopen {
            ticket_id: c.ticket_id.clone(),
        },
        Refire::Reopen { .. } => Plan::Create,
        Refire::NoteOnly => Plan::NoteClosed {
            ticket_id: c.ticket_id.clone(),
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
        let plan = |a, o: Option<&OpenTicket>, n, t| plan(a, o, None, Refire::NewTicket, n, t);
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
        assert_eq!(
            after_closed(Action::Trigger, None, Refire::NewTicket, now),
            Plan::Create
        );
        assert!(matches!(
            after_closed(Action::Resolve, None, Refire::NewTicket, now),
            Plan::Nothing { .. }
        ));
    }

    fn closed(age_secs: i64, now: DateTime<Utc>) -> ClosedTicket {
        ClosedTicket {
            ticket_id: "7".into(),
            closed_at: now - Duration::seconds(age_secs),
        }
    }

    #[test]
    fn the_refire_policies() {
        let now = Utc::now();
        let trust = Duration::seconds(60);
        let day = Refire::Reopen {
            within: Duration::hours(24),
        };
        let p =
            |refire, c: Option<&ClosedTicket>| plan(Action::Trigger, None, c, refire, now, trust);
        let recent = closed(3600, now);
        let old = closed(2 * 86_400, now);
        let reopen = Plan::Reopen {
            ticket_id: "7".into(),
        };
        let note = Plan::NoteClosed {
            ticket_id: "7".into(),
        };
        // Default: always a new ticket.
        assert_eq!(p(Refire::NewTicket, Some(&recent)), Plan::Create);
        // Reopen within the window, else new.
        assert_eq!(p(day, Some(&recent)), reopen);
        assert_eq!(p(day, Some(&closed(86_400, now))), reopen);
        assert_eq!(p(day, Some(&closed(86_401, now))), Plan::Create);
        assert_eq!(p(day, Some(&old)), Plan::Create);
        // Note only, however old.
        assert_eq!(p(Refire::NoteOnly, Some(&old)), note);
        // A group that never had a ticket, or whose ticket is gone, gets a new one.
        for r in [Refire::NewTicket, day, Refire::NoteOnly] {
            assert_eq!(p(r, None), Plan::Create);
            assert!(matches!(
                plan(Action::Resolve, None, Some(&recent), r, now, trust),
                Plan::Nothing { .. }
            ));
        }
        // An open ticket wins over any closed one.
        let open = t(1, now);
        assert_eq!(
            plan(
                Action::Trigger,
                Some(&open),
                Some(&recent),
                Refire::NoteOnly,
                now,
                trust
            ),
            Plan::Note {
                ticket_id: "42".into()
            }
        );
        // A verification that finds the ticket closed just now reopens it under `reopen`.
        assert_eq!(
            after_closed(Action::Trigger, Some(&closed(0, now)), day, now),
            Plan::Reopen {
                ticket_id: "7".into()
            }
        );
    }
}
