//! Assets the vendor finds at a client (a laptop, a server, a firewall), their validation, and
//! the pure decision of what pushing one to the PSA as a configuration item needs.
//!
//! The vendor posts what it sees whenever it scans; most scans change nothing but the time the
//! asset was last seen. So an asset is pushed only when a field the PSA shows changed
//! ([`AssetFields`]: name, type, serial, OS, IP, MAC): `last_seen` is kept here and never costs
//! a PSA request. The vendor's asset id is our reference on the PSA's record (so an asset is
//! created once, even when the answer to its create was lost).

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::FieldError;
use crate::usage::{MAX_KEY_LEN, past_time};

/// Longest asset id: the PSAs' reference fields hold 50 characters (Autotask
/// `referenceNumber`), and the id is written there.
pub const MAX_ASSET_ID: usize = 50;
/// Longest name (Autotask's `referenceTitle` holds 200; the others as much or more).
pub const MAX_NAME: usize = 200;
/// Longest type, serial number and operating system.
pub const MAX_DETAIL: usize = 100;

/// What the PSA shows of an asset; a change here is what makes a push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AssetFields {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub serial: Option<String>,
    pub os: Option<String>,
    pub ip: Option<String>,
    pub mac: Option<String>,
}

impl AssetFields {
    /// A canonical text of the fields, compared to what was last pushed.
    pub fn canonical(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The fields from their canonical text (`None` for anything else).
    pub fn from_canonical(text: &str) -> Option<AssetFields> {
        serde_json::from_str(text).ok()
    }

    /// Type, OS, IP and MAC as one line for the PSA's notes field, where it has no field of
    /// its own for them.
    pub fn summary(&self) -> String {
        [
            ("Type", &self.kind),
            ("OS", &self.os),
            ("IP", &self.ip),
            ("MAC", &self.mac),
        ]
        .iter()
        .filter_map(|(label, v)| v.as_ref().map(|v| format!("{label}: {v}")))
        .collect::<Vec<_>>()
        .join("; ")
    }
}

/// One accepted asset report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAsset {
    /// Set when the vendor's token names the partner in the record.
    pub partner: Option<String>,
    pub client: String,
    /// The vendor's id of the asset, unique within the client.
    pub asset_id: String,
    pub fields: AssetFields,
    pub last_seen: Option<DateTime<Utc>>,
}

/// What pushing one asset to one PSA connection needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssetAction {
    /// Not in the PSA as far as we know: look for our reference, then create.
    Create,
    /// In the PSA, with fields that changed since the last push.
    Update,
    /// The PSA holds what we have.
    Unchanged,
}

/// Decide one asset's push from the PSA record we know of (`linked`: its id) and the fields
/// last pushed there.
pub fn decide(linked: bool, pushed: Option<&AssetFields>, current: &AssetFields) -> AssetAction {
    match (linked, pushed) {
        (false, _) => AssetAction::Create,
        (true, Some(p)) if p == current => AssetAction::Unchanged,
        (true, _) => AssetAction::Update,
    }
}

/// Validate one asset record; `path` is its JSON path in the body (`""` for a single record,
/// `assets[3]` in a batch).
pub fn parse_asset(
    value: &Value,
    path: &str,
    now: DateTime<Utc>,
) -> Result<NewAsset, Vec<FieldError>> {
    let at = |field: &str| {
        if path.is_empty() {
            field.to_string()
        } else {
            format!("{path}.{field}")
        }
    };
    let Some(obj) = value.as_object() else {
        let name = if path.is_empty() { "body" } else { path };
        return Err(vec![FieldError::new(name, "must be a JSON object")]);
    };
    let mut errors = Vec::new();
    for key in obj.keys() {
        if !KNOWN.contains(&key.as_str()) {
            errors.push(FieldError::new(
                at(key),
                format!("is not a field of an asset ({})", KNOWN.join(", ")),
            ));
        }
    }
    let mut text = |field: &str, required: bool, max: usize| -> Option<String> {
        match obj.get(field) {
            None | Some(Value::Null) if required => {
                errors.push(FieldError::new(at(field), "is required"));
                None
            }
            None | Some(Value::Null) => None,
            // A blank detail is "not known"; a blank partner names nobody.
            Some(Value::String(s)) if s.trim().is_empty() && (required || field == "partner") => {
                errors.push(FieldError::new(at(field), "must not be empty"));
                None
            }
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) if s.trim().chars().count() > max => {
                errors.push(FieldError::new(
                    at(field),
                    format!("must be at most {max} characters"),
                ));
                None
            }
            Some(Value::String(s)) if s.chars().any(char::is_control) => {
                errors.push(FieldError::new(
                    at(field),
                    "must not contain control characters",
                ));
                None
            }
            Some(Value::String(s)) => Some(s.trim().to_string()),
            Some(_) => {
                errors.push(FieldError::new(at(field), "must be a string"));
                None
            }
        }
    };
    let partner = text("partner", false, MAX_KEY_LEN);
    let client = text("client", true, MAX_KEY_LEN);
    let asset_id = text("asset_id", true, MAX_ASSET_ID);
    let name = text("name", true, MAX_NAME);
    let kind = text("type", false, MAX_DETAIL);
    let serial = text("serial", false, MAX_DETAIL);
    let os = text("os", false, MAX_DETAIL);
    let ip = text("ip", false, 64);
    let mac = text("mac", false, 64);
    let last_seen = text("last_seen", false, 64);
    let ip = ip.and_then(|ip| match ip.parse::<IpAddr>() {
        Ok(a) => Some(a.to_string()),
        Err(_) => {
            errors.push(FieldError::new(
                at("ip"),
                "must be an IPv4 or IPv6 address such as 192.0.2.10",
            ));
            None
        }
    });
    let mac = mac.and_then(|m| match normal_mac(&m) {
        Some(m) => Some(m),
        None => {
            errors.push(FieldError::new(
                at("mac"),
                "must be a MAC address of six hex pairs such as 00:1A:2B:3C:4D:5E",
            ));
            None
        }
    });
    let last_seen = last_seen.and_then(|s| {
        past_time(&s, &at("last_seen"), now)
            .map_err(|e| errors.push(e))
            .ok()
    });
    match (client, asset_id, name) {
        (Some(client), Some(asset_id), Some(name)) if errors.is_empty() => Ok(NewAsset {
            partner,
            client,
            asset_id,
            fields: AssetFields {
                name,
                kind,
                serial,
                os,
                ip,
                mac,
            },
            last_seen,
        }),
        _ => Err(errors),
    }
}

/// The fields an asset record may carry.
const KNOWN: [&str; 10] = [
    "partner",
    "client",
    "asset_id",
    "name",
    "type",
    "serial",
    "os",
    "ip",
    "mac",
    "last_seen",
];

/// A MAC address as six upper-case hex pairs joined by `:`, from `:`, `-` or `.`-separated or
/// bare forms.
fn normal_mac(text: &str) -> Option<String> {
    let hex: String = text
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | '.'))
        .collect();
    if hex.len() != 12 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let upper = hex.to_ascii_uppercase();
    Some(
        upper
            .as_bytes()
            .chunks(2)
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect::<Vec<_>>()
            .join(":"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-04T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_good_record_is_normalised() {
        let a = parse_asset(
            &json!({"client": "acme", "asset_id": "dev-7", "name": " FRONT-DESK-01 ",
                    "type": "Workstation", "serial": "5CD1234", "os": "Windows 11",
                    "ip": "192.0.2.10", "mac": "00-1a-2b-3c-4d-5e",
                    "last_seen": "2026-12-04T09:00:00+01:00"}),
            "",
            now(),
        )
        .unwrap();
        assert_eq!(a.fields.name, "FRONT-DESK-01");
        assert_eq!(a.fields.mac.as_deref(), Some("00:1A:2B:3C:4D:5E"));
        assert_eq!(a.fields.ip.as_deref(), Some("192.0.2.10"));
        assert_eq!(
            a.last_seen.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-12-04T08:00:00+00:00")
        );
        assert_eq!(
            a.fields.summary(),
            "Type: Workstation; OS: Windows 11; IP: 192.0.2.10; MAC: 00:1A:2B:3C:4D:5E"
        );
    }

    #[test]
    fn every_problem_is_named_by_its_path() {
        let errors = parse_asset(
            &json!({"client": "", "partner": " ", "asset_id": "x".repeat(51), "ip": "300.1.1.1",
                    "mac": "00:1A", "last_seen": "soon", "colour": "red"}),
            "assets[2]",
            now(),
        )
        .unwrap_err();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        for p in [
            "assets[2].colour",
            "assets[2].client",
            "assets[2].partner",
            "assets[2].asset_id",
            "assets[2].name",
            "assets[2].ip",
            "assets[2].mac",
            "assets[2].last_seen",
        ] {
            assert!(paths.contains(&p), "{p} in {paths:?}");
        }
    }

    #[test]
    fn a_push_is_needed_only_for_what_the_psa_shows() {
        let a = AssetFields {
            name: "pc".into(),
            ..AssetFields::default()
        };
        let b = AssetFields {
            os: Some("Windows 11".into()),
            ..a.clone()
        };
        assert_eq!(decide(false, None, &a), AssetAction::Create);
        assert_eq!(decide(false, Some(&a), &a), AssetAction::Create);
        assert_eq!(decide(true, Some(&a), &a), AssetAction::Unchanged);
        assert_eq!(decide(true, Some(&a), &b), AssetAction::Update);
        assert_eq!(decide(true, None, &a), AssetAction::Update);
    }

    proptest! {
        #[test]
        fn the_canonical_text_reads_back(name in "[a-zA-Z0-9 -]{1,40}", os in proptest::option::of("[a-z0-9 ]{0,20}")) {
            let f = AssetFields { name, os, ..AssetFields::default() };
            prop_assert_eq!(AssetFields::from_canonical(&f.canonical()), Some(f));
        }

        #[test]
        fn any_json_is_judged_without_panicking(v in proptest::arbitrary::any::<(String, u32, bool)>()) {
            let (s, n, b) = v;
            let _ = parse_asset(&json!({"client": s, "asset_id": n, "name": b, "mac": s, "ip": s}), "", now());
        }
    }
}
