//! Autotask configuration items (`ConfigurationItems`): an asset becomes one under the mapped
//! company, as the connection's Product (Autotask requires a product on every item), with our
//! reference in `referenceNumber`, the asset's name in `referenceTitle`, its serial in
//! `serialNumber`, and type, OS, IP and MAC in `notes` (Autotask's fields for those belong to
//! its own RMM integration and are read-only to the API).

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{Value, json};

use super::{AutotaskConnector, num};
use crate::PsaError;
use crate::assets::{AssetSpec, AssetSync};
use crate::http::text;

/// What the connection needs before it can push assets.
const NO_PRODUCT: &str = "the Autotask connection names no product for configuration items: \
     set its ci_product_id setting to the id of a Product";

impl AutotaskConnector {
    /// The fields of an item that come from the asset (written on create and on update).
    fn item_fields(asset: &AssetSpec) -> serde_json::Map<String, Value> {
        let f = &asset.fields;
        let mut m = serde_json::Map::new();
        m.insert("referenceTitle".into(), json!(f.name));
        m.insert("serialNumber".into(), json!(f.serial));
        let summary = f.summary();
        m.insert(
            "notes".into(),
            if summary.is_empty() {
                Value::Null
            } else {
                json!(summary)
            },
        );
        m.insert("isActive".into(), json!(true));
        m
    }
}

#[async_trait]
impl AssetSync for AutotaskConnector {
    async fn find_asset(
        &self,
        company_id: &str,
        reference: &str,
    ) -> Result<Option<String>, PsaError> {
        let found = self
            .query_all(
                "ConfigurationItems",
                vec![
                    json!({"op": "eq", "field": "companyID", "value": num("company", company_id)?}),
                    json!({"op": "eq", "field": "referenceNumber", "value": reference}),
                ],
                &["id"],
                1,
            )
            .await?;
        Ok(found.first().and_then(|i| i.get("id")).and_then(text))
    }

    async fn create_asset(&self, company_id: &str, asset: &AssetSpec) -> Result<String, PsaError> {
        let product = self
            .opts
            .ci_product_id
            .ok_or_else(|| PsaError::Invalid(NO_PRODUCT.into()))?;
        let mut body = Self::item_fields(asset);
        body.insert("companyID".into(), num("company", company_id)?);
        body.insert("productID".into(), json!(product));
        body.insert("referenceNumber".into(), json!(asset.reference));
        let answer = self
            .call(
                Method::POST,
                "ConfigurationItems",
                "ConfigurationItems",
                Some(&Value::Object(body)),
                true,
            )
            .await?;
        answer.get("itemId").and_then(text).ok_or_else(|| {
            PsaError::Invalid("Autotask created the configuration item without an id".into())
        })
    }

    async fn update_asset(&self, id: &str, asset: &AssetSpec) -> Result<(), PsaError> {
        let mut body = Self::item_fields(asset);
        body.insert("id".into(), num("configuration item", id)?);
        self.call(
            Method::PATCH,
            "ConfigurationItems",
            "ConfigurationItems",
            Some(&Value::Object(body)),
            true,
        )
        .await?;
        Ok(())
    }
}
