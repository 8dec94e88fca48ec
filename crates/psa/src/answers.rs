//! Every pure reader of a PSA's answers, applied to one answer without the network.
//!
//! A connector reads what a PSA sends: error bodies in each vendor's shape, `Retry-After` and
//! `Link` headers, records of query answers (contracts, contacts, list items, statuses). A PSA
//! that answers something malformed — truncated JSON, a number where a string was documented,
//! a header with garbage — must leave a typed error or nothing, never a panic that takes a
//! delivery worker down. This is the seam the fuzz target `psa_answer` drives (fuzz/), and
//! what tests can call with an answer they saw in the wild.

use psabridge_core::settings::PsaKind;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

/// One answer as a PSA could send it.
#[derive(Debug, Clone)]
pub struct Answer<'a> {
    pub status: u16,
    /// Headers as (name, value) text; ones that are not valid HTTP are left out, as the HTTP
    /// client would have refused them.
    pub headers: Vec<(&'a str, &'a str)>,
    pub body: &'a str,
}

/// What each reader of `kind` made of `answer`, in words (for tests to look at; a fuzzer only
/// cares that it returns).
pub fn read(kind: PsaKind, answer: &Answer<'_>) -> Vec<String> {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut headers = HeaderMap::new();
    for (name, value) in &answer.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(n, v);
        }
    }
    let mut out = match kind {
        PsaKind::Autotask => crate::autotask::read_answer(status, &headers, answer.body),
        PsaKind::HaloPsa => crate::halopsa::read_answer(status, &headers, answer.body),
        PsaKind::ConnectWise => crate::connectwise::read_answer(status, &headers, answer.body),
        PsaKind::KaseyaBms => crate::kaseya_bms::read_answer(status, &headers, answer.body),
    };
    out.push(format!("{:?}", crate::http::retry_after(&headers)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(status: u16, headers: Vec<(&str, &str)>, body: &str) -> Vec<Vec<String>> {
        PsaKind::ALL
            .into_iter()
            .map(|k| {
                read(
                    k,
                    &Answer {
                        status,
                        headers: headers.clone(),
                        body,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn malformed_answers_are_read_without_panicking() {
        let bodies = [
            "",
            "{",
            "null",
            "[]",
            "[1, \"x\", null, {}]",
            r#"{"errors": [1, {"message": 2}, null]}"#,
            r#"{"items": [{"status": [], "endDate": "20"}, 5]}"#,
            r#"{"clients": {"id": "x"}, "record": [{"id": -1}]}"#,
            r#"{"result": {"totalRecords": "many"}, "Result": null}"#,
            r#"[{"id": {"a": 1}, "name": 5, "endDate": "2026-1\u00e9"}]"#,
            "<html><body>502 Bad Gateway</body></html>",
            "\u{0}\u{ffff}é",
        ];
        for status in [200, 400, 401, 403, 404, 409, 429, 500, 502, 503, 999] {
            for body in bodies {
                for headers in [
                    vec![],
                    vec![("retry-after", "-5")],
                    vec![("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")],
                    vec![("link", "<https://x/?page=abc>; rel=\"next\"")],
                    vec![("link", "garbage"), ("retry-after", "99999999999999999999")],
                ] {
                    let read = read_all(status, headers, body);
                    assert_eq!(read.len(), 4);
                }
            }
        }
    }

    #[test]
    fn an_error_answer_is_named_by_its_vendors_words() {
        let at = read(
            PsaKind::Autotask,
            &Answer {
                status: 500,
                headers: vec![],
                body: r#"{"errors":["Value is required for field: title"]}"#,
            },
        );
        assert!(
            at[0].starts_with("Invalid(") && at[2].contains("title"),
            "{at:?}"
        );
        let limited = read(
            PsaKind::HaloPsa,
            &Answer {
                status: 429,
                headers: vec![("retry-after", "7")],
                body: "",
            },
        );
        assert!(limited[0].starts_with("RateLimited"), "{limited:?}");
        assert_eq!(limited.last().map(String::as_str), Some("Some(7s)"));
    }
}
