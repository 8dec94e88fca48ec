//! Assets reported per client, the per-mapping switch that pushes them to a PSA, and what each
//! connection's PSA holds of them (its record id and the fields last written there).

use psabridge_core::assets::{AssetFields, NewAsset};
use sqlx::Row;

use crate::Millis;
use crate::db::{Store, with_read, with_tx, with_write};
use crate::error::{StoreError, corrupt};
use crate::millis;

/// What a report did to the asset it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssetOutcome {
    /// First report of this asset.
    New,
    /// A field the PSA shows changed: pushed again where the client's assets are pushed.
    Changed,
    /// Nothing the PSA shows changed (at most the time it was last seen).
    Unchanged,
}

impl AssetOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AssetOutcome::New => "new",
            AssetOutcome::Changed => "changed",
            AssetOutcome::Unchanged => "unchanged",
        }
    }
}

/// An asset as stored, with what one connection holds of it (when asked for one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetRow {
    pub client_id: String,
    pub asset_id: String,
    pub fields: AssetFields,
    pub last_seen: Option<Millis>,
    pub changed_at: Millis,
}

/// What one connection's PSA holds of an asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetLink {
    pub connection_id: i64,
    pub psa_id: Option<String>,
    /// The fields last written to the PSA's record.
    pub pushed: Option<AssetFields>,
    pub pushed_at: Option<Millis>,
    pub error: Option<String>,
}

/// An asset due for a push on a connection: its mapping's PSA company and what the PSA holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetDue {
    pub asset: AssetRow,
    pub company_id: String,
    pub link: Option<AssetLink>,
}

fn fields_of(text: &str) -> Result<AssetFields, StoreError> {
    AssetFields::from_canonical(text).ok_or_else(|| corrupt("asset fields are not readable"))
}

impl Store {
    /// Store a partner's asset reports in one transaction: each asset's latest fields and when
    /// it was last seen. Unknown clients are registered (unmapped), as events do.
    pub async fn record_assets(
        &self,
        partner: &str,
        assets: &[NewAsset],
        received_at: Millis,
    ) -> Result<Vec<AssetOutcome>, StoreError> {
        let outcomes = with_tx!(self, tx => {
            let mut outcomes = Vec::with_capacity(assets.len());
            for a in assets {
                let fields = a.fields.canonical();
                let before: Option<String> = sqlx::query_scalar(
                    "SELECT fields FROM assets WHERE partner_id = $1 AND client_id = $2 AND asset_id = $3",
                )
                .bind(partner)
                .bind(&a.client)
                .bind(&a.asset_id)
                .fetch_optional(&mut *tx)
                .await?;
                let outcome = match &before {
                    None => AssetOutcome::New,
                    Some(b) if *b == fields => AssetOutcome::Unchanged,
                    Some(_) => AssetOutcome::Changed,
                };
                sqlx::query(
                    "INSERT INTO clients (partner_id, id, name, created_at) VALUES ($1, $2, $2, $3) \
                     ON CONFLICT (partner_id, id) DO NOTHING",
                )
                .bind(partner)
                .bind(&a.client)
                .bind(received_at)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO assets (partner_id, client_id, asset_id, fields, last_seen, received_at, changed_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6) \
                     ON CONFLICT (partner_id, client_id, asset_id) DO UPDATE SET \
                     last_seen = CASE WHEN excluded.last_seen IS NULL THEN assets.last_seen \
                       WHEN assets.last_seen IS NULL OR excluded.last_seen > assets.last_seen \
                       THEN excluded.last_seen ELSE assets.last_seen END, \
                     received_at = excluded.received_at, \
                     changed_at = CASE WHEN assets.fields = excluded.fields THEN assets.changed_at \
                       ELSE excluded.changed_at END, \
                     fields = excluded.fields",
                )
                .bind(partner)
                .bind(&a.client)
                .bind(&a.asset_id)
                .bind(&fields)
                .bind(a.last_seen.map(millis))
                .bind(received_at)
                .execute(&mut *tx)
                .await?;
                outcomes.push(outcome);
            }
            outcomes
        });
        Ok(outcomes)
    }

    /// A partner's assets (of one client, when given), by client and asset id, with what
    /// `connection`'s PSA holds of each when one is named.
    pub async fn assets(
        &self,
        partner: &str,
        client: Option<&str>,
        limit: i64,
    ) -> Result<Vec<(AssetRow, Vec<AssetLink>)>, StoreError> {
        let assets: Vec<AssetRow> = with_read!(self, pool => {
            let rows = sqlx::query(
                "SELECT client_id, asset_id, fields, last_seen, changed_at FROM assets \
                 WHERE partner_id = $1 AND ($2 IS NULL OR client_id = $2) \
                 ORDER BY client_id, asset_id LIMIT $3",
            )
            .bind(partner)
            .bind(client)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            rows.iter().map(asset_of).collect::<Result<_, StoreError>>()?
        });
        let links: Vec<(String, String, AssetLink)> = with_read!(self, pool => {
            let rows = sqlx::query(
                "SELECT connection_id, client_id, asset_id, psa_id, pushed, pushed_at, error \
                 FROM asset_links WHERE partner_id = $1 AND ($2 IS NULL OR client_id = $2) \
                 ORDER BY connection_id",
            )
            .bind(partner)
            .bind(client)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| Ok((r.try_get("client_id")?, r.try_get("asset_id")?, link_of(r)?)))
                .collect::<Result<_, StoreError>>()?
        });
        Ok(assets
            .into_iter()
            .map(|a| {
                let mine = links
                    .iter()
                    .filter(|(c, id, _)| *c == a.client_id && *id == a.asset_id)
                    .map(|(_, _, l)| l.clone())
                    .collect();
                (a, mine)
            })
            .collect())
    }

    /// Assets due for a push on `connection`: of clients whose mapping there pushes assets,
    /// never written to the PSA or changed since, oldest change first.
    pub async fn assets_due(
        &self,
        connection: i64,
        limit: i64,
    ) -> Result<Vec<AssetDue>, StoreError> {
        with_read!(self, pool => {
            let rows = sqlx::query(
                "SELECT a.client_id, a.asset_id, a.fields, a.last_seen, a.changed_at, m.company_id, \
                 l.connection_id, l.psa_id, l.pushed, l.pushed_at, l.error \
                 FROM mappings m \
                 JOIN assets a ON a.partner_id = m.partner_id AND a.client_id = m.client_id \
                 LEFT JOIN asset_links l ON l.connection_id = m.connection_id \
                   AND l.client_id = a.client_id AND l.asset_id = a.asset_id \
                 WHERE m.connection_id = $1 AND m.push_assets \
                   AND (l.pushed IS NULL OR l.pushed <> a.fields) \
                 ORDER BY a.changed_at, a.client_id, a.asset_id LIMIT $2",
            )
            .bind(connection)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    let linked: Option<i64> = r.try_get("connection_id")?;
                    Ok(AssetDue {
                        asset: asset_of(r)?,
                        company_id: r.try_get("company_id")?,
                        link: match linked {
                            Some(_) => Some(link_of(r)?),
                            None => None,
                        },
                    })
                })
                .collect()
        })
    }

    /// Connections with at least one mapping that pushes assets.
    pub async fn connections_pushing_assets(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows: Vec<(String, i64)> = with_read!(self, pool => {
            sqlx::query_as(
                "SELECT DISTINCT partner_id, connection_id FROM mappings WHERE push_assets \
                 ORDER BY partner_id, connection_id",
            )
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    /// Record a push: the PSA's record id and the fields now written there (`pushed` `None`
    /// with `error`: the push failed and is tried again on the next sync).
    #[allow(clippy::too_many_arguments)]
    pub async fn record_asset_push(
        &self,
        partner: &str,
        connection: i64,
        client: &str,
        asset: &str,
        psa_id: Option<&str>,
        pushed: Option<&AssetFields>,
        error: Option<&str>,
        at: Millis,
    ) -> Result<(), StoreError> {
        with_write!(self, pool => {
            sqlx::query(
                "INSERT INTO asset_links (connection_id, partner_id, client_id, asset_id, psa_id, pushed, \
                 pushed_at, error, attempted_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (connection_id, client_id, asset_id) DO UPDATE SET \
                 psa_id = COALESCE(excluded.psa_id, asset_links.psa_id), \
                 pushed = CASE WHEN excluded.error IS NULL THEN excluded.pushed ELSE asset_links.pushed END, \
                 pushed_at = COALESCE(excluded.pushed_at, asset_links.pushed_at), \
                 error = excluded.error, attempted_at = excluded.attempted_at",
            )
            .bind(connection)
            .bind(partner)
            .bind(client)
            .bind(asset)
            .bind(psa_id)
            .bind(pushed.map(AssetFields::canonical))
            .bind(pushed.map(|_| at))
            .bind(error)
            .bind(at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The PSA record of a client's asset on a connection, once pushed (for linking tickets).
    pub async fn asset_psa_id(
        &self,
        connection: i64,
        client: &str,
        asset: &str,
    ) -> Result<Option<String>, StoreError> {
        let id: Option<Option<String>> = with_read!(self, pool => {
            sqlx::query_scalar(
                "SELECT psa_id FROM asset_links WHERE connection_id = $1 AND client_id = $2 AND asset_id = $3",
            )
            .bind(connection)
            .bind(client)
            .bind(asset)
            .fetch_optional(pool)
            .await?
        });
        Ok(id.flatten())
    }

    /// Switch pushing a client's assets on or off for one mapping; false when there is no
    /// such mapping.
    pub async fn set_push_assets(
        &self,
        partner: &str,
        connection: i64,
        client: &str,
        push: bool,
    ) -> Result<bool, StoreError> {
        let changed = with_write!(self, pool => {
            sqlx::query(
                "UPDATE mappings SET push_assets = $4 \
                 WHERE partner_id = $1 AND connection_id = $2 AND client_id = $3",
            )
            .bind(partner)
            .bind(connection)
            .bind(client)
            .bind(push)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(changed == 1)
    }

    /// Whether a mapping pushes its client's assets (`None`: no such mapping).
    pub async fn push_assets(
        &self,
        partner: &str,
        connection: i64,
        client: &str,
    ) -> Result<Option<bool>, StoreError> {
        let push: Option<bool> = with_read!(self, pool => {
            sqlx::query_scalar(
                "SELECT push_assets FROM mappings \
                 WHERE partner_id = $1 AND connection_id = $2 AND client_id = $3",
            )
            .bind(partner)
            .bind(connection)
            .bind(client)
            .fetch_optional(pool)
            .await?
        });
        Ok(push)
    }
}

fn asset_of<R: Row>(r: &R) -> Result<AssetRow, StoreError>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'v> String: sqlx::Decode<'v, R::Database> + sqlx::Type<R::Database>,
    for<'v> Option<String>: sqlx::Decode<'v, R::Database> + sqlx::Type<R::Database>,
    for<'v> i64: sqlx::Decode<'v, R::Database> + sqlx::Type<R::Database>,
    for<'v> Option<i64>: sqlx::Decode<'v, R::Database> + sqlx::Type<R::Database>,
{
    Ok(AssetRow {
        client_id: r.try_get("client_id")?,
        asset_id: r.try_get("asset_id")?,
        fields: fields_of(&r.try_get::<String, _>("fields")?)?,
        last_seen: r.try_get("last_seen")?,
        changed_at: r.try_get("changed_at")?,
    })
}

fn link_of<R: Row>(r: &R) -> Result<AssetLink, StoreError>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'v> String: sqlx::Decode<'v, R::Database> + sqlx::Type<R::Database>,
    for<'v> Option<String>: sqlx::Decode<'v, R::Database> + sqlx::Type<R::Database>,
    for<'v> i64: sqlx::Decode<'v, R::Database> + sqlx::Type<R::Database>,
    for<'v> Option<i64>: sqlx::Decode<'v, R::Database> + sqlx::Type<R::Database>,
{
    let pushed: Option<String> = r.try_get("pushed")?;
    Ok(AssetLink {
        connection_id: r.try_get("connection_id")?,
        psa_id: r.try_get("psa_id")?,
        pushed: pushed.as_deref().map(fields_of).transpose()?,
        pushed_at: r.try_get("pushed_at")?,
        error: r.try_get("error")?,
    })
}
