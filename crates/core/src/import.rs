//! Importing a PSA's companies as clients, already mapped.
//!
//! An MSP's client list already lives in its PSA. Rather than typing each client again, the admin
//! picks companies from a connection and each becomes a client mapped to that company. This module
//! decides, for each chosen company, what an import does — without I/O, so a preview and the real
//! run can never disagree:
//!
//! - a company already mapped on the connection is **kept** as it is (importing twice never makes a
//!   second client);
//! - a company the PSA does not list, or lists inactive, is **skipped** with the reason;
//! - otherwise a client is **created** under a stable id: the one asked for, else
//!   `<connection>-<company>` (so a re-import of the same company lands on the same id), unless
//!   that id already belongs to a client mapped elsewhere on this connection.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// One company the admin chose, with an optional client id and name of their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub company: String,
    pub client: Option<String>,
    pub name: Option<String>,
}

/// A company as the PSA lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PsaCompany {
    pub name: String,
    pub active: bool,
}

/// What the import does with one chosen company.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Line {
    /// A new client, mapped to the company.
    Create {
        company: String,
        client: String,
        name: String,
    },
    /// The company is already mapped on this connection: nothing changes.
    Kept { company: String, client: String },
    /// Nothing is written for this company, for `reason`.
    Skipped { company: String, reason: String },
}

impl Line {
    pub fn company(&self) -> &str {
        match self {
            Line::Create { company, .. }
            | Line::Kept { company, .. }
            | Line::Skipped { company, .. } => company,
        }
    }
}

/// The most characters of a client name; longer PSA names are cut.
pub const MAX_CLIENT_NAME: usize = 200;

/// Whether `id` may be a client id (as the API accepts them everywhere).
pub fn valid_client_id(id: &str) -> bool {
    (1..=100).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c))
}

/// The client id an imported company gets unless the admin names one: the connection and the
/// company id, with any character a client id cannot hold turned into `.` (HaloPSA's `12/3`, a
/// site of client 12, becomes `7-12.3`).
pub fn default_client_id(connection: i64, company: &str) -> String {
    let company: String = company
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_:-".contains(c) {
                c
            } else {
                '.'
            }
        })
        .collect();
    let mut id = format!("{connection}-{company}");
    id.truncate(100);
    id
}

/// Decide each chosen company's line, in the order chosen. `psa` is every company the PSA lists
/// (by id); `mapped` is this connection's mappings (company → client). A client the partner
/// already has under the chosen id (known from its events, unmapped here) is simply mapped. A
/// company chosen twice is decided once.
pub fn plan(
    connection: i64,
    chosen: &[Choice],
    psa: &BTreeMap<String, PsaCompany>,
    mapped: &BTreeMap<String, String>,
) -> Vec<Line> {
    let mut seen = BTreeSet::new();
    // Client ids taken by this run, so two choices can't land on one client.
    let mut taken: BTreeSet<String> = BTreeSet::new();
    let mapped_clients: BTreeSet<&String> = mapped.values().collect();
    let mut out = Vec::new();
    for c in chosen {
        if !seen.insert(c.company.clone()) {
            continue;
        }
        let skip = |reason: String| Line::Skipped {
            company: c.company.clone(),
            reason,
        };
        if let Some(client) = mapped.get(&c.company) {
            out.push(Line::Kept {
                company: c.company.clone(),
                client: client.clone(),
            });
            continue;
        }
        let Some(found) = psa.get(&c.company) else {
            out.push(skip("the PSA lists no such company".into()));
            continue;
        };
        if !found.active {
            out.push(skip("the company is inactive in the PSA".into()));
            continue;
        }
        let client = c
            .client
            .clone()
            .unwrap_or_else(|| default_client_id(connection, &c.company));
        if !valid_client_id(&client) {
            out.push(skip(format!(
                "client id '{}' is not 1 to 100 letters, digits, '.', '_', ':' or '-'",
                shorten(&client)
            )));
            continue;
        }
        if mapped_clients.contains(&client) || taken.contains(&client) {
            out.push(skip(format!(
                "client '{client}' is already mapped to another company on this connection"
            )));
            continue;
        }
        let name = c
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .unwrap_or(found.name.trim());
        let name: String = if name.is_empty() {
            client.clone()
        } else {
            name.chars().take(MAX_CLIENT_NAME).collect()
        };
        taken.insert(client.clone());
        out.push(Line::Create {
            company: c.company.clone(),
            client,
            name,
        });
    }
    out
}

fn shorten(s: &str) -> String {
    if s.chars().count() <= 64 {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(64).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn psa(items: &[(&str, &str, bool)]) -> BTreeMap<String, PsaCompany> {
        items
            .iter()
            .map(|(id, name, active)| {
                (
                    id.to_string(),
                    PsaCompany {
                        name: name.to_string(),
                        active: *active,
                    },
                )
            })
            .collect()
    }

    fn choose(company: &str) -> Choice {
        Choice {
            company: company.into(),
            client: None,
            name: None,
        }
    }

    #[test]
    fn a_new_company_becomes_a_client_under_a_stable_id() {
        let lines = plan(
            7,
            &[choose("12"), choose("12/3")],
            &psa(&[("12", "Acme", true), ("12/3", "Acme / Leeds", true)]),
            &BTreeMap::new(),
        );
        assert_eq!(
            lines,
            vec![
                Line::Create {
                    company: "12".into(),
                    client: "7-12".into(),
                    name: "Acme".into()
                },
                Line::Create {
                    company: "12/3".into(),
                    client: "7-12.3".into(),
                    name: "Acme / Leeds".into()
                },
            ]
        );
    }

    #[test]
    fn a_mapped_company_is_kept_and_missing_or_inactive_ones_are_skipped() {
        let mapped = BTreeMap::from([("12".to_string(), "acme".to_string())]);
        let lines = plan(
            7,
            &[choose("12"), choose("13"), choose("14"), choose("12")],
            &psa(&[("12", "Acme", true), ("13", "Old", false)]),
            &mapped,
        );
        assert_eq!(lines.len(), 3, "a company chosen twice is decided once");
        assert_eq!(
            lines[0],
            Line::Kept {
                company: "12".into(),
                client: "acme".into()
            }
        );
        assert!(matches!(&lines[1], Line::Skipped { reason, .. } if reason.contains("inactive")));
        assert!(matches!(&lines[2], Line::Skipped { reason, .. } if reason.contains("no such")));
    }

    #[test]
    fn a_client_id_is_never_given_to_two_companies() {
        let mapped = BTreeMap::from([("12".to_string(), "acme".to_string())]);
        let mut a = choose("13");
        a.client = Some("acme".into());
        let mut b = choose("14");
        b.client = Some("beta".into());
        let mut c = choose("15");
        c.client = Some("beta".into());
        let mut bad = choose("16");
        bad.client = Some("no spaces".into());
        let lines = plan(
            7,
            &[a, b, c, bad],
            &psa(&[
                ("12", "A", true),
                ("13", "B", true),
                ("14", "C", true),
                ("15", "D", true),
                ("16", "E", true),
            ]),
            &mapped,
        );
        assert!(
            matches!(&lines[0], Line::Skipped { reason, .. } if reason.contains("already mapped"))
        );
        assert!(matches!(&lines[1], Line::Create { client, .. } if client == "beta"));
        assert!(
            matches!(&lines[2], Line::Skipped { reason, .. } if reason.contains("already mapped"))
        );
        assert!(
            matches!(&lines[3], Line::Skipped { reason, .. } if reason.contains("not 1 to 100"))
        );
    }

    #[test]
    fn an_admin_given_name_wins_and_long_names_are_cut() {
        let mut a = choose("12");
        a.name = Some("  Acme Ltd ".into());
        let long = "x".repeat(500);
        let lines = plan(
            1,
            &[a, choose("13")],
            &psa(&[("12", "ACME LIMITED", true), ("13", &long, true)]),
            &BTreeMap::new(),
        );
        assert!(matches!(&lines[0], Line::Create { name, .. } if name == "Acme Ltd"));
        assert!(
            matches!(&lines[1], Line::Create { name, .. } if name.chars().count() == MAX_CLIENT_NAME)
        );
    }

    proptest! {
        /// Whatever is chosen: one line per distinct company, every created client id valid and
        /// distinct from every other created or mapped one, and a second run over the result
        /// creates nothing.
        #[test]
        fn import_is_idempotent_and_never_shares_a_client(
            chosen in proptest::collection::vec(("[0-9a-z/ ]{1,6}", proptest::option::of("[a-z0-9 ]{1,4}")), 0..20),
            listed in proptest::collection::btree_map("[0-9a-z/ ]{1,6}", any::<bool>(), 0..20),
        ) {
            let psa: BTreeMap<String, PsaCompany> = listed
                .iter()
                .map(|(id, active)| (id.clone(), PsaCompany { name: format!("Co {id}"), active: *active }))
                .collect();
            let choices: Vec<Choice> = chosen
                .iter()
                .map(|(company, client)| Choice { company: company.clone(), client: client.clone(), name: None })
                .collect();
            let lines = plan(3, &choices, &psa, &BTreeMap::new());
            let distinct: BTreeSet<&String> = choices.iter().map(|c| &c.company).collect();
            prop_assert_eq!(lines.len(), distinct.len());
            let mut mapped = BTreeMap::new();
            for l in &lines {
                if let Line::Create { company, client, .. } = l {
                    prop_assert!(valid_client_id(client));
                    prop_assert!(!mapped.values().any(|c| c == client));
                    mapped.insert(company.clone(), client.clone());
                }
            }
            let again = plan(3, &choices, &psa, &mapped);
            let creates_again = again.iter().any(|l| matches!(l, Line::Create { .. }));
            prop_assert!(!creates_again, "a second run created clients");
        }
    }
}
