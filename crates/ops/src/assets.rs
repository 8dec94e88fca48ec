//! Assets: the per-mapping switch that pushes a client's assets to the PSA, the list of a
//! partner's assets with what each PSA holds of them, and a push on demand.

use psabridge_engine::assets::{AssetReport, AssetSyncError, sync_connection};
use psabridge_identity::Permission;
use psabridge_store::assets::{AssetLink, AssetRow};
use serde::{Deserialize, Serialize};

use crate::Ops;
use crate::acting::Acting;
use crate::error::OpsError;

/// Most assets one list answers.
pub const MAX_LIST: i64 = 1000;

/// Push a client's assets to the mapped company, or stop.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushAssetsRequest {
    pub push: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushAssetsView {
    pub client: String,
    pub connection: i64,
    pub push: bool,
}

impl Ops {
    /// Switch pushing a client's assets on or off on one of its mappings.
    pub async fn put_push_assets(
        &self,
        acting: &Acting,
        partner: &str,
        client: &str,
        connection: i64,
        req: PushAssetsRequest,
    ) -> Result<PushAssetsView, OpsError> {
        self.connection_for(acting, partner, connection, Permission::ManageSettings)
            .await?;
        let Some(before) = self.store.push_assets(partner, connection, client).await? else {
            return Err(OpsError::NotFound(format!(
                "mapping of client '{client}' on connection {connection}"
            )));
        };
        self.store
            .set_push_assets(partner, connection, client, req.push)
            .await?;
        let view = PushAssetsView {
            client: client.to_string(),
            connection,
            push: req.push,
        };
        self.audit(
            acting,
            Some(partner),
            "mapping_assets.put",
            &format!("mapping:{client}:{connection}"),
            Some(&serde_json::json!({"push": before})),
            Some(&serde_json::json!({"push": req.push})),
        )
        .await;
        Ok(view)
    }

    /// A partner's assets (one client's, when given), with what each connection's PSA holds.
    pub async fn assets(
        &self,
        acting: &Acting,
        partner: &str,
        client: Option<&str>,
    ) -> Result<Vec<(AssetRow, Vec<AssetLink>)>, OpsError> {
        self.partner_for(acting, partner, Permission::ViewSettings)
            .await?;
        Ok(self.store.assets(partner, client, MAX_LIST).await?)
    }

    /// Push what is due on one connection now (what the periodic run does), with its report.
    pub async fn push_assets_now(
        &self,
        acting: &Acting,
        partner: &str,
        connection: i64,
    ) -> Result<AssetReport, OpsError> {
        self.connection_for(acting, partner, connection, Permission::ManageSettings)
            .await?;
        let report = sync_connection(&self.engine, partner, connection)
            .await
            .map_err(|e| match e {
                AssetSyncError::Store(s) => OpsError::Store(s),
                AssetSyncError::Busy => OpsError::Conflict {
                    title: "A push is running".into(),
                    detail: e.to_string(),
                    errors: Vec::new(),
                    references: Vec::new(),
                },
                AssetSyncError::Connector(m) => OpsError::Misconfigured(m),
            })?;
        self.audit(
            acting,
            Some(partner),
            "assets.push",
            &format!("connection:{connection}"),
            None,
            Some(
                &serde_json::json!({"created": report.created, "updated": report.updated,
                                     "failed": report.failed, "skipped": report.skipped}),
            ),
        )
        .await;
        Ok(report)
    }

    /// Whether each of a client's mappings pushes its assets, by connection.
    pub async fn asset_push_switches(
        &self,
        acting: &Acting,
        partner: &str,
        client: &str,
        connections: &[i64],
    ) -> Result<Vec<(i64, bool)>, OpsError> {
        self.partner_for(acting, partner, Permission::ViewSettings)
            .await?;
        let mut out = Vec::with_capacity(connections.len());
        for &c in connections {
            if let Some(push) = self.store.push_assets(partner, c, client).await? {
                out.push((c, push));
            }
        }
        Ok(out)
    }
}
