//! Chat and webhook channels of a partner: Microsoft Teams, Slack and a signed generic webhook.
//!
//! A channel's URL is the receiver's credential (whoever has a Slack or Teams webhook URL can
//! post to that channel), so it is sealed like a PSA secret and only ever opened for the
//! sender; the generic webhook's signing secret too. The rest (kind, name, on/off, the event
//! types it gets) is plain. Channel deliveries are ordinary outbox rows (`deliveries.channel`
//! is the kind), made by [`Store::record_routing`] beside the event's PSA deliveries.

use std::collections::BTreeSet;

use psabridge_core::channels::{ChannelKind, ChannelSubscription};
use psabridge_core::secret::Secret;
use sqlx::Row;

use crate::Millis;
use crate::db::{Store, with_read, with_tx};
use crate::error::{StoreError, corrupt};

/// A channel as settings show it (no URL, no secret: only whether the secret is set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    pub id: i64,
    pub partner_id: String,
    pub kind: ChannelKind,
    pub name: String,
    pub enabled: bool,
    pub event_types: BTreeSet<String>,
    pub has_signing_secret: bool,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A channel to add.
#[derive(Debug, Clone)]
pub struct NewChannel {
    pub partner_id: String,
    pub kind: ChannelKind,
    pub name: String,
    pub enabled: bool,
    pub event_types: BTreeSet<String>,
    pub url: Secret,
    pub signing_secret: Option<Secret>,
}

/// A change of a channel: `None` keeps what is stored.
#[derive(Debug, Clone, Default)]
pub struct ChannelChange {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub event_types: Option<BTreeSet<String>>,
    pub url: Option<Secret>,
    pub signing_secret: Option<Secret>,
}

/// What the sender needs: the channel and its opened secrets.
#[derive(Debug, Clone)]
pub struct ChannelSecrets {
    pub channel: Channel,
    pub url: Secret,
    pub signing_secret: Option<Secret>,
}

fn url_aad(id: i64) -> String {
    format!("channel:{id}:url")
}

fn signing_aad(id: i64) -> String {
    format!("channel:{id}:signing_secret")
}

const CHANNEL_COLUMNS: &str = "id, partner_id, kind, name, enabled, sealed_signing_secret IS NOT NULL AS has_signing_secret, \
     created_at, updated_at";

fn channel_from_row<R: Row>(row: &R, event_types: BTreeSet<String>) -> Result<Channel, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    bool: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let kind: String = row.try_get("kind")?;
    Ok(Channel {
        id: row.try_get("id")?,
        partner_id: row.try_get("partner_id")?,
        kind: ChannelKind::parse(&kind).ok_or_else(|| corrupt(format!("channel kind {kind}")))?,
        name: row.try_get("name")?,
        enabled: row.try_get("enabled")?,
        event_types,
        has_signing_secret: row.try_get("has_signing_secret")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Replace the event types of channel `$id` inside transaction `$tx`.
macro_rules! set_event_types {
    ($tx:expr, $id:expr, $types:expr) => {{
        sqlx::query("DELETE FROM channel_event_types WHERE channel_id = $1")
            .bind($id)
            .execute(&mut *$tx)
            .await?;
        for t in $types {
            sqlx::query("INSERT INTO channel_event_types (channel_id, event_type) VALUES ($1, $2)")
                .bind($id)
                .bind(t.as_str())
                .execute(&mut *$tx)
                .await?;
        }
    }};
}

impl Store {
    /// The channels of a partner, by id.
    pub async fn channels(&self, partner: &str) -> Result<Vec<Channel>, StoreError> {
        with_read!(self, pool => {
            let sql = format!("SELECT {CHANNEL_COLUMNS} FROM channels WHERE partner_id = $1 ORDER BY id");
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(partner).fetch_all(pool).await?;
            let types: Vec<(i64, String)> = sqlx::query_as(
                "SELECT t.channel_id, t.event_type FROM channel_event_types t \
                 JOIN channels c ON c.id = t.channel_id WHERE c.partner_id = $1",
            )
            .bind(partner)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    let id: i64 = row.try_get("id")?;
                    let mine = types.iter().filter(|(c, _)| *c == id).map(|(_, t)| t.clone()).collect();
                    channel_from_row(row, mine)
                })
                .collect()
        })
    }

    /// One channel of a partner.
    pub async fn channel(&self, partner: &str, id: i64) -> Result<Channel, StoreError> {
        self.channels(partner)
            .await?
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(|| StoreError::NotFound(format!("channel {id}")))
    }

    /// What routing needs of a partner's channels: which are on and the event types they get.
    pub async fn channel_subscriptions(
        &self,
        partner: &str,
    ) -> Result<Vec<ChannelSubscription>, StoreError> {
        Ok(self
            .channels(partner)
            .await?
            .into_iter()
            .map(|c| ChannelSubscription {
                channel_id: c.id,
                kind: c.kind,
                enabled: c.enabled,
                event_types: c.event_types,
            })
            .collect())
    }

    /// Add a channel, its secrets sealed to it. A name the partner already uses is a conflict.
    pub async fn create_channel(&self, new: &NewChannel, now: Millis) -> Result<i64, StoreError> {
        let keys = &self.inner.keys;
        let id = with_tx!(self, tx => {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO channels (partner_id, kind, name, enabled, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
            )
            .bind(&new.partner_id)
            .bind(new.kind.as_str())
            .bind(&new.name)
            .bind(new.enabled)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| StoreError::conflict_or(e, || format!("a channel named '{}' already exists", new.name)))?;
            let signing = match &new.signing_secret {
                Some(s) => Some(keys.seal(&signing_aad(id), s.expose())?),
                None => None,
            };
            sqlx::query("UPDATE channels SET sealed_url = $1, sealed_signing_secret = $2 WHERE id = $3")
                .bind(keys.seal(&url_aad(id), new.url.expose())?)
                .bind(signing)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            set_event_types!(tx, id, &new.event_types);
            id
        });
        Ok(id)
    }

    /// Change a channel of a partner; answers it as it was before the change.
    pub async fn update_channel(
        &self,
        partner: &str,
        id: i64,
        change: &ChannelChange,
        now: Millis,
    ) -> Result<Channel, StoreError> {
        let before = self.channel(partner, id).await?;
        let keys = &self.inner.keys;
        with_tx!(self, tx => {
            sqlx::query(
                "UPDATE channels SET name = $1, enabled = $2, updated_at = $3 WHERE id = $4 AND partner_id = $5",
            )
            .bind(change.name.as_deref().unwrap_or(&before.name))
            .bind(change.enabled.unwrap_or(before.enabled))
            .bind(now)
            .bind(id)
            .bind(partner)
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::conflict_or(e, || {
                format!("a channel named '{}' already exists", change.name.as_deref().unwrap_or_default())
            }))?;
            if let Some(url) = &change.url {
                sqlx::query("UPDATE channels SET sealed_url = $1 WHERE id = $2")
                    .bind(keys.seal(&url_aad(id), url.expose())?)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(secret) = &change.signing_secret {
                sqlx::query("UPDATE channels SET sealed_signing_secret = $1 WHERE id = $2")
                    .bind(keys.seal(&signing_aad(id), secret.expose())?)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(types) = &change.event_types {
                set_event_types!(tx, id, types);
            }
        });
        Ok(before)
    }

    /// Remove a channel. Its deliveries still due die when they come up ("the channel was
    /// deleted"), visible in the delivery log.
    pub async fn delete_channel(&self, partner: &str, id: i64) -> Result<Channel, StoreError> {
        let before = self.channel(partner, id).await?;
        with_tx!(self, tx => {
            sqlx::query("DELETE FROM channel_event_types WHERE channel_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM channels WHERE id = $1 AND partner_id = $2")
                .bind(id)
                .bind(partner)
                .execute(&mut *tx)
                .await?;
        });
        Ok(before)
    }

    /// A channel with its secrets opened, for its sender only (`None`: it was deleted).
    pub async fn channel_secrets(&self, id: i64) -> Result<Option<ChannelSecrets>, StoreError> {
        let row: Option<(String, String, Option<String>)> = with_read!(self, pool => {
            sqlx::query_as("SELECT partner_id, sealed_url, sealed_signing_secret FROM channels WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        let Some((partner, sealed_url, sealed_signing)) = row else {
            return Ok(None);
        };
        let Ok(channel) = self.channel(&partner, id).await else {
            return Ok(None);
        };
        let keys = &self.inner.keys;
        Ok(Some(ChannelSecrets {
            channel,
            url: keys.open(&url_aad(id), &sealed_url)?,
            signing_secret: match sealed_signing {
                Some(s) => Some(keys.open(&signing_aad(id), &s)?),
                None => None,
            },
        }))
    }

    /// The PSA side of an event, for a channel message's ticket link: each PSA delivery of
    /// the event with its state and, once created or noted, the ticket.
    pub async fn psa_tickets_of_event(
        &self,
        event_pk: i64,
    ) -> Result<Vec<EventTicket>, StoreError> {
        with_read!(self, pool => {
            let rows: Vec<(i64, String, Option<String>, Option<String>)> = sqlx::query_as(
                "SELECT connection_id, state, ticket_id, ticket_number FROM deliveries \
                 WHERE event_pk = $1 AND channel = 'psa' ORDER BY id",
            )
            .bind(event_pk)
            .fetch_all(pool)
            .await?;
            Ok(rows
                .into_iter()
                .map(|(connection_id, state, ticket_id, ticket_number)| EventTicket {
                    connection_id,
                    settled: matches!(state.as_str(), "delivered" | "dead" | "expired"),
                    ticket_id,
                    ticket_number,
                })
                .collect())
        })
    }
}

/// One PSA delivery of an event, as a channel message sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTicket {
    pub connection_id: i64,
    /// Delivered, dead or expired: it will not make a ticket by itself any more.
    pub settled: bool,
    pub ticket_id: Option<String>,
    pub ticket_number: Option<String>,
}
