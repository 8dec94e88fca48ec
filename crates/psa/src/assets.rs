//! Assets as the PSA's configuration items: created once under our reference (the vendor's
//! asset id), found again by it, and updated only where a field the PSA shows changed.

use async_trait::async_trait;
use psabridge_core::assets::AssetFields;

use crate::PsaError;

/// An asset to write to the PSA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetSpec {
    /// Our reference on the PSA's record: the vendor's asset id.
    pub reference: String,
    pub fields: AssetFields,
}

/// A PSA's configuration items. Connectors that have them return this from
/// [`crate::Connector::asset_sync`].
#[async_trait]
pub trait AssetSync: Send + Sync {
    /// The record of `company` that carries `reference`, if any: asked before every create,
    /// so that a create whose answer was lost is not made twice.
    async fn find_asset(
        &self,
        company_id: &str,
        reference: &str,
    ) -> Result<Option<String>, PsaError>;

    /// Create the record under `company`; its id.
    async fn create_asset(&self, company_id: &str, asset: &AssetSpec) -> Result<String, PsaError>;

    /// Write the asset's fields to the record `id`.
    async fn update_asset(&self, id: &str, asset: &AssetSpec) -> Result<(), PsaError>;
}
