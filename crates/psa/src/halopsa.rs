//! Placeholder: replaced by the real connector on this branch before it merges.

use std::collections::BTreeMap;
use std::sync::Arc;

use psabridge_core::secret::Secret;
use serde_json::{Map, Value};

use crate::{Connector, SettingsError};

pub const SETTINGS: &[(&str, &str)] = &[];
pub const SECRETS: &[&str] = &[];

pub fn from_settings(
    _http: reqwest::Client,
    _settings: &Map<String, Value>,
    _secrets: &BTreeMap<String, Secret>,
) -> Result<Arc<dyn Connector>, SettingsError> {
    Err(SettingsError::Bad {
        field: "kind",
        problem: "not built yet".into(),
    })
}
