//! HaloPSA assets (`/api/Asset`): an asset becomes one of the mapped client's (or, for a
//! `client/site` company, of that site), as the connection's Asset Type (Halo requires a type
//! on every asset), with our reference as its asset tag (`inventory_number`, which the list
//! filters on), the name in `key_field`, the serial number in `key_field2`, the IP address in
//! `key_field3` (the key fields an asset type names: device name, serial number, IP address is
//! the usual hardware setup), the MAC address in `ethernetMacAddress`, and type, OS, IP and MAC
//! in `notes` (an asset's OS and type have no field of their own outside Halo's RMM
//! integrations).
//!
//! A `12` company's asset is looked up at any site of client 12 (a technician may move it
//! between sites without us making a second one); a `12/3` company's at site 3 only.
//!
//! Requests: a look-up is one GET filtered by client, site and tag; a create and an update are
//! one POST each (Halo's create-or-update by `id`).

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::{HaloConnector, field_id, field_str, id_of, num, parse_company, records, saved};
use crate::PsaError;
use crate::assets::{AssetSpec, AssetSync};

/// What the connection needs before it can push assets.
const NO_ASSET_TYPE: &str = "the HaloPSA connection names no asset type for assets: \
     set its asset_type_id setting to the id of an Asset Type";

/// Records asked for in a look-up by tag: one is expected; a few more show duplicates made by
/// hand, of which the oldest is kept.
const LOOKUP_COUNT: u32 = 20;

impl HaloConnector {
    /// The fields of an asset that come from the vendor (written on create and on update).
    fn asset_fields(asset: &AssetSpec) -> Map<String, Value> {
        let f = &asset.fields;
        let mut m = Map::new();
        m.insert("key_field".into(), json!(f.name));
        m.insert("key_field2".into(), json!(f.serial));
        m.insert("key_field3".into(), json!(f.ip));
        m.insert("ethernetMacAddress".into(), json!(f.mac));
        let summary = f.summary();
        m.insert(
            "notes".into(),
            if summary.is_empty() {
                Value::Null
            } else {
                json!(summary)
            },
        );
        m.insert("inactive".into(), json!(false));
        m
    }
}

#[async_trait]
impl AssetSync for HaloConnector {
    async fn find_asset(
        &self,
        company_id: &str,
        reference: &str,
    ) -> Result<Option<String>, PsaError> {
        let (client, site) = parse_company(company_id)?;
        let mut query = vec![
            ("client_id", client.to_string()),
            ("inventory_number", reference.to_string()),
            // A record a technician made inactive is still ours: found, and reactivated by the
            // next update, rather than duplicated.
            ("includeinactive", "true".into()),
            ("count", LOOKUP_COUNT.to_string()),
        ];
        if let Some(s) = site {
            query.push(("site_id", s.to_string()));
        }
        let answer = self.get("Asset", &query).await?;
        // Where the list shows the fields, keep exact matches of this company only (a filter
        // Halo ignored must not hand us another client's asset).
        Ok(records(&answer, "assets")
            .iter()
            .filter(|a| {
                a.get("inventory_number").is_none()
                    || field_str(a, "inventory_number").trim() == reference
            })
            .filter(|a| field_id(a, "client_id").is_none_or(|c| c == client))
            .filter(|a| site.is_none_or(|s| field_id(a, "site_id").is_none_or(|own| own == s)))
            .filter_map(|a| field_id(a, "id"))
            .min()
            .map(|id| id.to_string()))
    }

    async fn create_asset(&self, company_id: &str, asset: &AssetSpec) -> Result<String, PsaError> {
        let asset_type = self
            .opts
            .asset_type_id
            .ok_or_else(|| PsaError::Invalid(NO_ASSET_TYPE.into()))?;
        let (client, site) = parse_company(company_id)?;
        let mut body = Self::asset_fields(asset);
        body.insert("client_id".into(), json!(client));
        if let Some(s) = site {
            body.insert("site_id".into(), json!(s));
        }
        body.insert("assettype_id".into(), json!(asset_type));
        body.insert("inventory_number".into(), json!(asset.reference));
        let answer = self
            .call(
                Method::POST,
                "Asset",
                &[],
                Some(&json!([Value::Object(body)])),
                true,
            )
            .await?;
        saved(&answer)
            .and_then(|a| a.get("id"))
            .and_then(id_of)
            .filter(|id| *id > 0)
            .map(|id| id.to_string())
            .ok_or_else(|| PsaError::Transient {
                retry_after: None,
                outcome_unknown: true,
                message: "HaloPSA answered an asset create without an id".into(),
            })
    }

    async fn update_asset(&self, id: &str, asset: &AssetSpec) -> Result<(), PsaError> {
        let mut body = Self::asset_fields(asset);
        body.insert("id".into(), num("asset", id)?);
        let result = self
            .call(
                Method::POST,
                "Asset",
                &[],
                Some(&json!([Value::Object(body)])),
                true,
            )
            .await;
        match result {
            Ok(_) => Ok(()),
            // Halo refuses an id that names no asset with a 400 saying so: the record is gone.
            Err(PsaError::Invalid(m)) if names_missing_asset(&m, id) => Err(PsaError::NotFound(m)),
            Err(e) => Err(e),
        }
    }
}

/// Does a refusal say that asset `id` does not exist? ("Asset 5 does not exist.", and not
/// "Asset 51 …" nor "Site 5 …".)
fn names_missing_asset(message: &str, id: &str) -> bool {
    let lower = message.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let names_it = words
        .windows(2)
        .any(|w| w[0] == "asset" && w[1] == id.trim());
    names_it && (lower.contains("does not exist") || lower.contains("not found"))
}

#[cfg(test)]
mod tests {
    use super::names_missing_asset;

    #[test]
    fn only_a_refusal_naming_the_asset_means_it_is_gone() {
        let said = |m: &str| names_missing_asset(&format!("HaloPSA answered 400: {m}"), "5");
        assert!(said("Asset 5 does not exist."));
        assert!(said("asset 5 not found"));
        assert!(!said("Site 5 does not exist."));
        assert!(!said("Asset 51 does not exist."));
        assert!(!said("Asset 5 needs an assettype_id."));
    }
}
