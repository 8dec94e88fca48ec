//! Ticket text: titles, descriptions and notes rendered from the catalog's templates.
//!
//! Templates use `{placeholder}` names (below); unknown names are left as written so a typo is
//! visible in the ticket rather than silently empty. Every PSA field has a length limit;
//! [`truncate`] cuts at a character boundary and says that it did.

use serde_json::{Map, Value};

use crate::catalog::EventType;
use crate::event::NewEvent;

/// The values a template can use.
pub struct TemplateContext<'a> {
    pub event: &'a NewEvent,
    pub event_type: Option<&'a EventType>,
    /// The client's display name, where the partner gave one.
    pub client_name: Option<&'a str>,
}

/// The placeholders a template may use.
pub const PLACEHOLDERS: &[&str] = &[
    "title",
    "details",
    "type",
    "type_name",
    "category",
    "severity",
    "client",
    "client_name",
    "user",
    "user_email",
    "user_name",
    "occurred_at",
    "event_id",
    "data",
];

impl TemplateContext<'_> {
    fn value(&self, name: &str) -> Option<String> {
        let e = self.event;
        Some(match name {
            "title" => e
                .title
                .clone()
                .or_else(|| self.event_type.map(|t| t.name.clone()))
                .unwrap_or_else(|| e.event_type.clone()),
            "details" => e.details.clone().unwrap_or_default(),
            "type" => e.event_type.clone(),
            "type_name" => self
                .event_type
                .map_or_else(|| e.event_type.clone(), |t| t.name.clone()),
            "category" => self
                .event_type
                .map(|t| t.category.clone())
                .unwrap_or_default(),
            "severity" => e.severity.as_str().to_string(),
            "client" => e.client.clone(),
            "client_name" => self.client_name.unwrap_or(&e.client).to_string(),
            "user" => match &e.user {
                Some(u) => match &u.name {
                    Some(n) => format!("{n} <{}>", u.email),
                    None => u.email.clone(),
                },
                None => "(no user)".into(),
            },
            "user_email" => e.user.as_ref().map(|u| u.email.clone()).unwrap_or_default(),
            "user_name" => e
                .user
                .as_ref()
                .and_then(|u| u.name.clone())
                .unwrap_or_default(),
            "occurred_at" => e
                .occurred_at
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_else(|| "(not given)".into()),
            "event_id" => e.id.clone(),
            "data" => render_data(&e.data),
            _ => return None,
        })
    }

    /// Render `template`, replacing each known `{name}`.
    pub fn render(&self, template: &str) -> String {
        let mut out = String::with_capacity(template.len() + 64);
        let mut rest = template;
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let after = &rest[start + 1..];
            match after.find('}') {
                Some(end) if self.value(&after[..end]).is_some() => {
                    out.push_str(&self.value(&after[..end]).unwrap_or_default());
                    rest = &after[end + 1..];
                }
                _ => {
                    out.push('{');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// The ticket's title (one line).
    pub fn ticket_title(&self) -> String {
        let template = self
            .event_type
            .map_or("{title}: {client_name}", |t| t.title.as_str());
        self.render(template)
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// The ticket's description.
    pub fn ticket_description(&self) -> String {
        let template = self
            .event_type
            .map_or(crate::catalog::DEFAULT_DESCRIPTION, |t| {
                t.description.as_str()
            });
        self.render(template).trim().to_string()
    }

    /// The note added to an open ticket for a later event of its group.
    pub fn note_title(&self) -> String {
        let verb = match self.event.action {
            crate::event::Action::Trigger => "Another alert",
            crate::event::Action::Resolve => "Resolved",
        };
        format!("{verb}: {}", self.ticket_title())
    }
}

/// Free-form `data`, one `key: value` line each, in key order.
fn render_data(data: &Map<String, Value>) -> String {
    let mut lines: Vec<String> = data
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}: {s}"),
            other => format!("{k}: {other}"),
        })
        .collect();
    lines.sort();
    lines.join("\n")
}

/// Marker appended when text was cut to fit a PSA field.
pub const TRUNCATED: &str = " …[truncated]";

/// Cut `text` to at most `max_chars` characters, marking the cut.
pub fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let keep = max_chars.saturating_sub(TRUNCATED.chars().count());
    let mut out: String = text.chars().take(keep).collect();
    out.push_str(TRUNCATED);
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::catalog::Catalog;
    use crate::event::parse_event;

    #[test]
    fn renders_known_placeholders_and_keeps_unknown_ones() {
        let cat = Catalog::parse(crate::catalog::tests::SAMPLE).unwrap();
        let e = parse_event(
            &json!({"id":"e1","client":"c1","type":"too_many_downloads","user":{"email":"a@b.co","name":"Ann"},
                     "data":{"files":12,"app":"OneDrive"}}),
            "",
            &cat,
        )
        .unwrap();
        let ctx = TemplateContext {
            event: &e,
            event_type: cat.get("too_many_downloads"),
            client_name: Some("Acme"),
        };
        assert_eq!(ctx.ticket_title(), "Too many downloads by Ann <a@b.co>");
        assert_eq!(ctx.render("{client_name}/{nope}/{"), "Acme/{nope}/{");
        let d = ctx.ticket_description();
        assert!(d.contains("app: OneDrive\nfiles: 12"), "{d}");
    }

    proptest! {
        #[test]
        fn truncate_respects_the_limit(s in ".{0,300}", max in 20usize..200) {
            let t = truncate(&s, max);
            prop_assert!(t.chars().count() <= max);
            if s.chars().count() <= max { prop_assert_eq!(t, s); } else { prop_assert!(t.ends_with(TRUNCATED)); }
        }
    }
}
