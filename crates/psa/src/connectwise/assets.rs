//! ConnectWise configurations (`company/configurations`): an asset becomes one under the mapped
//! company, as the connection's configuration type (ConnectWise requires a type on every
//! configuration and an asset carries none of ConnectWise's), with our reference in
//! `tagNumber`, the name in `name`, the serial in `serialNumber`, the OS in `osType`, the IP in
//! `ipAddress`, the MAC in `macAddress` and the asset's own type (which has no free-text field)
//! in `notes`.
//!
//! Why `tagNumber`: a configuration has no external-reference field; `tagNumber` (the asset
//! tag) holds 50 characters, exactly our reference's limit, is filterable in `conditions`, and
//! is not written by ConnectWise's RMM integrations (which own `deviceIdentifier`), whereas the
//! serial belongs to the hardware and may repeat across a vendor's re-installs.
//!
//! Requests: a look-up is one GET, a create one POST, an update one PATCH (JSON Patch
//! `replace` of every asset field, so a repeated update changes nothing).

use async_trait::async_trait;
use psabridge_core::assets::AssetFields;
use reqwest::Method;
use serde_json::{Value, json};

use super::{ConnectWiseConnector, num, quoted};
use crate::PsaError;
use crate::assets::{AssetSpec, AssetSync};
use crate::http::text;

const CONFIGURATIONS: &str = "company/configurations";
/// `name` of a configuration holds at most 100 characters.
const NAME_MAX: usize = 100;
/// What the connection needs before it can create configurations.
const NO_TYPE: &str = "the ConnectWise connection names no configuration type: set its \
     configuration_type_id setting to the id of a configuration type (company/configurations/types)";

/// The writable properties an asset fills, with their values (`null` clears one).
fn configuration_fields(asset: &AssetSpec) -> Vec<(&'static str, Value)> {
    let f = &asset.fields;
    let kind_note = AssetFields {
        kind: f.kind.clone(),
        ..AssetFields::default()
    }
    .summary();
    vec![
        (
            "name",
            json!(f.name.chars().take(NAME_MAX).collect::<String>()),
        ),
        ("serialNumber", json!(f.serial)),
        ("osType", json!(f.os)),
        ("ipAddress", json!(f.ip)),
        ("macAddress", json!(f.mac)),
        (
            "notes",
            if kind_note.is_empty() {
                Value::Null
            } else {
                json!(kind_note)
            },
        ),
        ("activeFlag", json!(true)),
    ]
}

#[async_trait]
impl AssetSync for ConnectWiseConnector {
    async fn find_asset(
        &self,
        company_id: &str,
        reference: &str,
    ) -> Result<Option<String>, PsaError> {
        let company = num("company", company_id)?;
        let found = self
            .get_all(
                CONFIGURATIONS,
                &[
                    (
                        "conditions",
                        format!("company/id={company} and tagNumber={}", quoted(reference)),
                    ),
                    ("fields", "id,tagNumber".to_string()),
                    ("orderBy", "id asc".to_string()),
                ],
                25,
            )
            .await?;
        // ConnectWise compares text without case; our references are exact.
        Ok(found
            .iter()
            .filter(|c| c.get("tagNumber").and_then(Value::as_str) == Some(reference))
            .filter_map(|c| c.get("id").and_then(Value::as_i64))
            .min()
            .map(|id| id.to_string()))
    }

    async fn create_asset(&self, company_id: &str, asset: &AssetSpec) -> Result<String, PsaError> {
        let kind = self
            .opts
            .configuration_type_id
            .ok_or_else(|| PsaError::Invalid(NO_TYPE.into()))?;
        let mut body: serde_json::Map<String, Value> = configuration_fields(asset)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        body.insert("type".into(), json!({"id": kind}));
        body.insert("company".into(), json!({"id": num("company", company_id)?}));
        body.insert("tagNumber".into(), json!(asset.reference));
        let answer = self
            .call(
                Method::POST,
                CONFIGURATIONS,
                &[],
                Some(&Value::Object(body)),
                true,
            )
            .await?;
        answer.body.get("id").and_then(text).ok_or_else(|| {
            PsaError::Invalid("ConnectWise created the configuration without an id".into())
        })
    }

    async fn update_asset(&self, id: &str, asset: &AssetSpec) -> Result<(), PsaError> {
        let id = num("configuration", id)?;
        let ops: Vec<Value> = configuration_fields(asset)
            .into_iter()
            .map(|(path, value)| json!({"op": "replace", "path": path, "value": value}))
            .collect();
        self.call(
            Method::PATCH,
            &format!("{CONFIGURATIONS}/{id}"),
            &[],
            Some(&Value::Array(ops)),
            true,
        )
        .await?;
        Ok(())
    }
}
