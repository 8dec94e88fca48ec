//! Building a connector from a stored connection's settings and secrets.
//!
//! Each connector module declares the settings and secret fields it reads (the API validates
//! connections against them) and builds itself from them; this module dispatches on the PSA
//! and holds the small readers the modules share.

use std::collections::BTreeMap;
use std::sync::Arc;

use psabridge_core::secret::Secret;
use psabridge_core::settings::PsaKind;
use serde_json::{Map, Value};
use thiserror::Error;

use crate::Connector;

/// A connection's settings are missing something or hold a bad value.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SettingsError {
    #[error("setting '{0}' is missing")]
    Missing(&'static str),
    #[error("setting '{field}': {problem}")]
    Bad {
        field: &'static str,
        problem: String,
    },
}

/// The settings a connection of `kind` may carry (name, meaning) and its secret fields.
pub fn known_settings(
    kind: PsaKind,
) -> (
    &'static [(&'static str, &'static str)],
    &'static [&'static str],
) {
    match kind {
        PsaKind::Autotask => (crate::autotask::SETTINGS, crate::autotask::SECRETS),
        PsaKind::HaloPsa => (crate::halopsa::SETTINGS, crate::halopsa::SECRETS),
        PsaKind::KaseyaBms => (crate::kaseya_bms::SETTINGS, crate::kaseya_bms::SECRETS),
        PsaKind::ConnectWise => (crate::connectwise::SETTINGS, crate::connectwise::SECRETS),
    }
}

/// The settings a connection of `kind` must carry, from its connector's own table. Secrets
/// (see [`known_settings`]) are always required.
pub fn required_settings(kind: PsaKind) -> &'static [&'static str] {
    match kind {
        PsaKind::Autotask => crate::autotask::REQUIRED,
        PsaKind::HaloPsa => crate::halopsa::REQUIRED,
        PsaKind::KaseyaBms => crate::kaseya_bms::REQUIRED,
        PsaKind::ConnectWise => crate::connectwise::REQUIRED,
    }
}

/// Does setting `name` say where the PSA is (a URL, a host or a region)? Changing one sends
/// the connection's secrets somewhere else, so it needs every secret given again.
pub fn is_location_setting(name: &str) -> bool {
    name.ends_with("_url") || name == "region"
}

/// Build the connector of a connection.
pub fn build(
    kind: PsaKind,
    http: reqwest::Client,
    settings: &Map<String, Value>,
    secrets: &BTreeMap<String, Secret>,
) -> Result<Arc<dyn Connector>, SettingsError> {
    match kind {
        PsaKind::Autotask => crate::autotask::from_settings(http, settings, secrets),
        PsaKind::HaloPsa => crate::halopsa::from_settings(http, settings, secrets),
        PsaKind::KaseyaBms => crate::kaseya_bms::from_settings(http, settings, secrets),
        PsaKind::ConnectWise => crate::connectwise::from_settings(http, settings, secrets),
    }
}

/// An optional string setting.
pub(crate) fn string(
    settings: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<String>, SettingsError> {
    match settings.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(_) => Err(SettingsError::Bad {
            field,
            problem: "must be a string".into(),
        }),
    }
}

/// A required string setting.
pub(crate) fn required(
    settings: &Map<String, Value>,
    field: &'static str,
) -> Result<String, SettingsError> {
    string(settings, field)?.ok_or(SettingsError::Missing(field))
}

/// An optional integer setting (a JSON number or a string of digits).
pub(crate) fn int(
    settings: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<i64>, SettingsError> {
    match settings.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or(SettingsError::Bad {
            field,
            problem: "must be an integer".into(),
        }),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| SettingsError::Bad {
            field,
            problem: "must be an integer".into(),
        }),
        Some(_) => Err(SettingsError::Bad {
            field,
            problem: "must be an integer".into(),
        }),
    }
}

/// An optional positive count that fits in `u32` (requests per hour, page sizes).
pub(crate) fn count(
    settings: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<u32>, SettingsError> {
    int(settings, field)?
        .map(|n| {
            u32::try_from(n)
                .ok()
                .filter(|n| *n > 0)
                .ok_or(SettingsError::Bad {
                    field,
                    problem: "must be a positive number".into(),
                })
        })
        .transpose()
}

/// An optional list of ids (strings or numbers).
pub(crate) fn id_list(
    settings: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<Vec<String>>, SettingsError> {
    let bad = || SettingsError::Bad {
        field,
        problem: "must be a list of ids".into(),
    };
    match settings.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| match x {
                Value::String(s) => Ok(s.trim().to_string()),
                Value::Number(n) => Ok(n.to_string()),
                _ => Err(bad()),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(bad()),
    }
}

/// A required secret.
pub(crate) fn secret(
    secrets: &BTreeMap<String, Secret>,
    field: &'static str,
) -> Result<Secret, SettingsError> {
    secrets
        .get(field)
        .cloned()
        .ok_or(SettingsError::Missing(field))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn m(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    /// A connection of each kind with only its required settings and its secrets builds, and
    /// one without any single one of them is refused naming it: the table and the builder agree.
    #[test]
    fn required_settings_are_what_each_builder_needs() {
        for kind in PsaKind::ALL {
            let (known, secret_names) = known_settings(kind);
            let required = required_settings(kind);
            let mut settings = Map::new();
            for name in required {
                assert!(known.iter().any(|(n, _)| n == name), "{kind:?} {name}");
                let value = match name.ends_with("_url") {
                    true => "https://psa.example.com",
                    false => "x",
                };
                settings.insert((*name).into(), json!(value));
            }
            // Kaseya BMS takes its host from `base_url` or `region`, either will do.
            if kind == PsaKind::KaseyaBms {
                settings.insert("region".into(), json!("us"));
            }
            let secrets: BTreeMap<String, Secret> = secret_names
                .iter()
                .map(|n| (n.to_string(), Secret::new("s")))
                .collect();
            let http = reqwest::Client::new();
            assert!(
                build(kind, http.clone(), &settings, &secrets).is_ok(),
                "{kind:?} builds from its required settings"
            );
            for name in required {
                let mut less = settings.clone();
                less.remove(*name);
                assert_eq!(
                    build(kind, http.clone(), &less, &secrets).err(),
                    Some(SettingsError::Missing(name)),
                    "{kind:?} without {name}"
                );
            }
            for (name, meaning) in known {
                assert_eq!(
                    meaning.ends_with("(required)"),
                    required.contains(name),
                    "{kind:?} {name}: its description and the table agree"
                );
            }
        }
    }

    #[test]
    fn readers_name_the_field_and_the_problem() {
        let s = m(json!({"a": " x ", "n": "12", "b": true, "l": [1, "2"], "z": 0, "e": ""}));
        assert_eq!(string(&s, "a"), Ok(Some("x".into())));
        assert_eq!(string(&s, "e"), Ok(None));
        assert_eq!(
            required(&s, "missing"),
            Err(SettingsError::Missing("missing"))
        );
        assert_eq!(int(&s, "n"), Ok(Some(12)));
        assert!(matches!(
            int(&s, "b"),
            Err(SettingsError::Bad { field: "b", .. })
        ));
        assert!(matches!(
            count(&s, "z"),
            Err(SettingsError::Bad { field: "z", .. })
        ));
        assert_eq!(id_list(&s, "l"), Ok(Some(vec!["1".into(), "2".into()])));
        assert_eq!(
            SettingsError::Bad {
                field: "b",
                problem: "must be a string".into()
            }
            .to_string(),
            "setting 'b': must be a string"
        );
    }
}
