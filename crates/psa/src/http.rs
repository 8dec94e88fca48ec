//! HTTP helpers every connector needs in the same form: reading `Retry-After`, naming what
//! really broke in a transport error, classifying a request that got no answer, and reading
//! the ids in vendor JSON. Kept in one place so that the connectors cannot drift apart on
//! what, for example, a lost answer to a write means.

use std::time::Duration;

use psabridge_core::render::truncate;
use serde_json::Value;

use crate::PsaError;

/// `Retry-After` as seconds or an HTTP date; a date already past asks for no wait at all.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    retry_after_header(headers).map(Option::unwrap_or_default)
}

/// `Retry-After` as seconds or an HTTP date; a date already past counts as no header.
pub(crate) fn retry_after_unless_past(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    retry_after_header(headers).flatten()
}

/// `Retry-After` read: `None` without a readable header, `Some(None)` for a date already past.
fn retry_after_header(headers: &reqwest::header::HeaderMap) -> Option<Option<Duration>> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .to_string();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Some(Duration::from_secs(secs)));
    }
    let when = chrono::DateTime::parse_from_rfc2822(&v).ok()?;
    Some(
        (when.with_timezone(&chrono::Utc) - chrono::Utc::now())
            .to_std()
            .ok(),
    )
}

/// The innermost cause of a transport error, which says what actually happened.
pub(crate) fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// A request that got no answer. Nothing reached the PSA when the connection failed
/// (`Unreachable`, naming `target`); otherwise the request may have been carried out, so a
/// write's outcome is unknown. `call` names the request, `timed_out` is how the connector
/// words a timeout ("timed out calling").
pub(crate) fn unanswered(
    e: &reqwest::Error,
    target: &str,
    call: &str,
    write: bool,
    timed_out: &str,
) -> PsaError {
    if e.is_connect() {
        return PsaError::Unreachable(format!("{target}: {}", root_cause(e)));
    }
    PsaError::Transient {
        retry_after: None,
        outcome_unknown: write,
        message: format!(
            "{} {call}: {}",
            if e.is_timeout() {
                timed_out
            } else {
                "lost the answer of"
            },
            root_cause(e)
        ),
    }
}

/// An answer whose body was lost on the way: the request may have been carried out.
pub(crate) fn lost_answer(e: &reqwest::Error, call: &str, write: bool) -> PsaError {
    PsaError::Transient {
        retry_after: None,
        outcome_unknown: write,
        message: format!("lost the answer of {call}: {}", root_cause(e)),
    }
}

/// What an error body that is not JSON was, never its text: a foreign server's page (an
/// internal admin page behind a URL a partner typed) must not come back through our answers
/// or logs. `empty` names an answer without a body.
pub(crate) fn plain_message(body: &str, empty: &str) -> String {
    let t = body.trim();
    if t.starts_with('<') {
        "an HTML error page".to_string()
    } else if t.is_empty() {
        empty.to_string()
    } else {
        format!("a non-JSON answer ({} bytes)", body.len())
    }
}

/// What a JSON error body without the vendor's documented error field was: its size only.
pub(crate) fn undocumented_json(body: &str) -> String {
    format!(
        "a JSON answer without the PSA's error fields ({} bytes)",
        body.len()
    )
}

/// A vendor's documented error text, as we show it: control characters removed, spaces
/// collapsed, at most 200 characters.
pub(crate) fn excerpt(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    truncate(&clean, 200)
}

/// A JSON string or number as text, exactly as written (`12.0` stays `12.0`).
pub(crate) fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// One of our ids (strings) as the number a PSA expects; `a_vendor` names the PSA with its
/// article ("an Autotask") for the refusal.
pub(crate) fn id_number(field: &str, id: &str, a_vendor: &str) -> Result<i64, PsaError> {
    id.trim()
        .parse::<i64>()
        .map_err(|_| PsaError::Invalid(format!("{field} '{id}' is not {a_vendor} id (a number)")))
}

/// Does `text` carry `reference` as a whole reference? Our references end in a delivery
/// number, so `psabridge:i:1` must not be found inside `psabridge:i:12`: an occurrence counts
/// only when no letter or digit follows it.
pub(crate) fn contains_reference(text: &str, reference: &str) -> bool {
    !reference.is_empty()
        && text.match_indices(reference).any(|(at, _)| {
            !text[at + reference.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
        })
}

#[cfg(test)]
mod reference_tests {
    use super::contains_reference;

    #[test]
    fn a_reference_is_never_found_inside_a_longer_one() {
        let r = "psabridge:inst:1";
        assert!(!contains_reference(
            "PSA Bridge reference: psabridge:inst:12",
            r
        ));
        assert!(contains_reference(
            "PSA Bridge reference: psabridge:inst:1",
            r
        ));
        assert!(contains_reference(
            "… psabridge:inst:12 and [psabridge:inst:1]",
            r
        ));
        assert!(contains_reference("psabridge:inst:1\nmore text", r));
        assert!(!contains_reference("anything", ""));
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderMap, RETRY_AFTER};

    use super::*;

    #[test]
    fn retry_after_past_dates() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        assert_eq!(retry_after_unless_past(&h), None);
        let past = (chrono::Utc::now() - chrono::Duration::seconds(90)).to_rfc2822();
        h.insert(RETRY_AFTER, past.parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        assert_eq!(retry_after_unless_past(&h), None);
        h.insert(RETRY_AFTER, "0".parse().unwrap());
        assert_eq!(retry_after_unless_past(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn ids_name_the_field_and_the_psa() {
        assert_eq!(id_number("x", " 42 ", "a Kaseya BMS"), Ok(42));
        assert_eq!(
            id_number("queue", "abc", "an Autotask"),
            Err(PsaError::Invalid(
                "queue 'abc' is not an Autotask id (a number)".into()
            ))
        );
        assert_eq!(text(&serde_json::json!(12.0)).as_deref(), Some("12.0"));
        assert_eq!(text(&serde_json::json!(null)), None);
    }

    #[test]
    fn plain_bodies_read_short() {
        assert_eq!(plain_message(" <html/> ", "none"), "an HTML error page");
        assert_eq!(plain_message(" \n", "none"), "none");
        // A foreign server's text never comes back, only its size.
        assert_eq!(plain_message(" x ", "none"), "a non-JSON answer (3 bytes)");
        assert_eq!(excerpt("a\u{7}b\n\n  c"), "a b c");
        assert!(excerpt(&"y".repeat(400)).chars().count() <= 200);
    }
}
