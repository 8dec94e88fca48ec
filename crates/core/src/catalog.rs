//! The event catalog: the event types a deploying vendor sends, read from a TOML text.
//!
//! The catalog is the vendor's, not the MSP's: it names the event types, groups them in
//! categories and gives each a default severity and the templates of its ticket text.
//! A malformed catalog is refused with its line and the reason, at start-up.

use std::collections::BTreeMap;

use serde::Deserialize;
use thiserror::Error;

use crate::event::Severity;

/// One event type of the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct EventType {
    /// Stable key producers send in `type` (`too_many_downloads`).
    pub key: String,
    /// What the portal shows (`Too many downloads`).
    pub name: String,
    pub category: String,
    pub default_severity: Severity,
    /// Ticket title template; `{placeholders}` are described in [`crate::render`].
    pub title: String,
    /// Ticket description template.
    pub description: String,
}

/// The whole catalog, by key.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    types: BTreeMap<String, EventType>,
}

#[derive(Debug, Error)]
pub enum CatalogError {
    #[error("line {line}: {reason}")]
    Syntax { line: usize, reason: String },
    #[error("line {line}: event type '{key}': {reason}")]
    Invalid {
        line: usize,
        key: String,
        reason: String,
    },
    #[error("the catalog defines no event type")]
    Empty,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(rename = "event_type", default)]
    event_types: Vec<toml::Spanned<RawType>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawType {
    key: String,
    name: String,
    category: String,
    #[serde(default = "medium")]
    severity: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

fn medium() -> String {
    "medium".into()
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

impl Catalog {
    /// Parse a catalog text. Errors carry the 1-based line of the offending entry.
    pub fn parse(text: &str) -> Result<Catalog, CatalogError> {
        let file: File = toml::from_str(text).map_err(|e| CatalogError::Syntax {
            line: e.span().map(|s| line_of(text, s.start)).unwrap_or(1),
            reason: e.message().to_string(),
        })?;
        let mut types = BTreeMap::new();
        for spanned in file.event_types {
            let line = line_of(text, spanned.span().start);
            let raw = spanned.into_inner();
            let invalid = |reason: String| CatalogError::Invalid {
                line,
                key: raw.key.clone(),
                reason,
            };
            if raw.key.is_empty()
                || !raw
                    .key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
            {
                return Err(invalid(
                    "key must be lower-case letters, digits, '_' or '.'".into(),
                ));
            }
            if raw.name.trim().is_empty() || raw.category.trim().is_empty() {
                return Err(invalid("name and category must not be empty".into()));
            }
            let default_severity = Severity::parse(&raw.severity).ok_or_else(|| {
                invalid(format!(
                    "severity '{}' is not one of critical, high, medium, low, info",
                    raw.severity
                ))
            })?;
            if types.contains_key(&raw.key) {
                return Err(invalid("is defined twice".into()));
            }
            let title = raw
                .title
                .clone()
                .unwrap_or_else(|| format!("{}: {{client_name}}", raw.name));
            let description = raw
                .description
                .clone()
                .unwrap_or_else(|| DEFAULT_DESCRIPTION.to_string());
            types.insert(
                raw.key.clone(),
                EventType {
                    key: raw.key,
                    name: raw.name,
                    category: raw.category,
                    default_severity,
                    title,
                    description,
                },
            );
        }
        if types.is_empty() {
            return Err(CatalogError::Empty);
        }
        Ok(Catalog { types })
    }

    /// A catalog of already checked types (the database's rows); a later duplicate key wins.
    pub fn from_types(types: impl IntoIterator<Item = EventType>) -> Catalog {
        Catalog {
            types: types.into_iter().map(|t| (t.key.clone(), t)).collect(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&EventType> {
        self.types.get(key)
    }

    /// Event types in key order.
    pub fn iter(&self) -> impl Iterator<Item = &EventType> {
        self.types.values()
    }

    pub fn len(&self) -> usize {
        self.types.len()
    }

    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }
}

/// Used when a catalog entry has no description template of its own.
pub const DEFAULT_DESCRIPTION: &str = "{details}\n\nClient: {client_name}\nUser: {user}\nSeverity: {severity}\nOccurred: {occurred_at}\n{data}";

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const SAMPLE: &str = r#"
[[event_type]]
key = "too_many_downloads"
name = "Too many downloads"
category = "Data leakage"
severity = "high"
title = "Too many downloads by {user}"

[[event_type]]
key = "too_many_uploads"
name = "Too many uploads"
category = "Data leakage"

[[event_type]]
key = "multiple_mfa_failures"
name = "Multiple MFA failures"
category = "Identity"
severity = "critical"

[[event_type]]
key = "dark_web.breach_report"
name = "Dark web breach report"
category = "Dark web"
"#;

    #[test]
    fn sample_parses() {
        let c = Catalog::parse(SAMPLE).unwrap();
        assert_eq!(c.len(), 4);
        assert_eq!(
            c.get("too_many_uploads").unwrap().default_severity,
            Severity::Medium
        );
    }

    #[test]
    fn errors_name_the_line() {
        let text = "[[event_type]]\nkey = \"a\"\nname = \"A\"\ncategory = \"X\"\n\n[[event_type]]\nkey = \"b\"\nname = \"B\"\ncategory = \"X\"\nseverity = \"urgent\"\n";
        let err = Catalog::parse(text).unwrap_err().to_string();
        assert!(err.starts_with("line 6:"), "{err}");
        assert!(err.contains("urgent"), "{err}");

        let err = Catalog::parse("[[event_type]]\nkey = \"a\"\nname = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("line 3:"), "{err}");

        let err =
            Catalog::parse("[[event_type]]\nkey = \"Bad Key\"\nname = \"n\"\ncategory = \"c\"\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("Bad Key"), "{err}");
    }

    #[test]
    fn duplicates_and_empty_are_refused() {
        let dup = format!(
            "{SAMPLE}\n[[event_type]]\nkey = \"too_many_uploads\"\nname = \"x\"\ncategory = \"y\"\n"
        );
        assert!(
            Catalog::parse(&dup)
                .unwrap_err()
                .to_string()
                .contains("defined twice")
        );
        assert!(matches!(Catalog::parse(""), Err(CatalogError::Empty)));
    }
}
