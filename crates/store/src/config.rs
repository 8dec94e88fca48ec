//! The MSP's configuration: partners, API tokens, clients, PSA connections, event rules and
//! client → company mappings; and the routing snapshot assembled from them.

use std::collections::BTreeMap;

use psabridge_core::secret::Secret;
use psabridge_core::settings::{
    CompanyContact, ConnectionSettings, EventRule, EventSet, GroupingMode, Mapping,
    PartnerSettings, Profile, PsaKind, Refire, TicketDefaults,
};
use serde_json::{Map, Value};
use sqlx::Row;

use crate::Millis;
use crate::db::{Store, with_read, with_tx, with_write};
use crate::error::{StoreError, corrupt};

/// A partner (an MSP), identified by the vendor's own id for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partner {
    pub id: String,
    pub name: String,
    pub default_connection_id: Option<i64>,
    pub created_at: Millis,
}

/// Who an API token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The deploying vendor's platform: every partner.
    Vendor,
    /// One partner only.
    Partner(String),
}

/// A token to store: its hash, never the token.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    pub token_hash: &'a str,
    /// `None`: vendor-wide.
    pub partner: Option<&'a str>,
    pub name: &'a str,
    /// Scope names separated by spaces (`psabridge_identity::scopes::to_stored`).
    pub scopes: &'a str,
    pub expires_at: Option<Millis>,
    /// The person who made it while logged in.
    pub created_by_user: Option<i64>,
}

/// partner, id, name, scopes, expires_at: a live token's row.
type LiveTokenRow = (Option<String>, i64, String, String, Option<i64>);

/// A token as authentication needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenAuth {
    pub principal: Principal,
    pub id: i64,
    pub name: String,
    pub scopes: String,
    pub expires_at: Option<Millis>,
}

/// A token as the token list shows it (never the secret nor its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: i64,
    pub partner_id: Option<String>,
    pub name: String,
    pub scopes: String,
    pub created_at: Millis,
    pub created_by_user: Option<i64>,
    pub created_by_email: Option<String>,
    pub expires_at: Option<Millis>,
    pub last_used_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
}

/// Revoke the live tokens a person made, at one partner (`Some`) or everywhere (`None`), on
/// any executor (a pool or the transaction of a deactivation). Evaluates to the count.
macro_rules! revoke_tokens_of_user {
    ($executor:expr, $user:expr, $partner:expr, $now:expr) => {
        sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE created_by_user = $2 AND revoked_at IS NULL \
             AND ($3 IS NULL OR partner_id = $3)",
        )
        .bind($now)
        .bind($user)
        .bind($partner)
        .execute($executor)
        .await?
        .rows_affected()
    };
}
pub(crate) use revoke_tokens_of_user;

/// A client of a partner, with its mapping status for the client list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub id: String,
    pub name: String,
    pub created_at: Millis,
    /// The connections on which the client is mapped.
    pub mapped_on: Vec<i64>,
}

/// A PSA connection as stored, without its secrets.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    pub id: i64,
    pub partner_id: String,
    pub kind: PsaKind,
    pub name: String,
    pub enabled: bool,
    pub grouping: GroupingMode,
    /// Non-secret settings (user names, URLs, options) as the connector reads them.
    pub settings: Map<String, Value>,
    /// Names of the secret fields that are set (never their values).
    pub secret_fields: Vec<String>,
    pub catch_all: Option<CompanyContact>,
    pub defaults: TicketDefaults,
    /// The PSA's lists, as loaded on the last "Connect".
    pub lists: Option<Value>,
    pub lists_loaded_at: Option<Millis>,
    pub webhook_id: Option<String>,
    pub webhook_guid: Option<String>,
    /// Close a grouped ticket when every alert it stands for has resolved.
    pub close_on_resolve: bool,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A new connection.
#[derive(Debug, Clone)]
pub struct NewConnection {
    pub partner_id: String,
    pub kind: PsaKind,
    pub name: String,
    pub grouping: GroupingMode,
    pub settings: Map<String, Value>,
    pub secrets: BTreeMap<String, Secret>,
}

/// A client → company mapping on one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingRow {
    pub connection_id: i64,
    pub client_id: String,
    pub company_id: String,
    pub default_contact_id: Option<String>,
    pub create_tickets: bool,
    pub mapped_at: Millis,
    /// The mapping's own event set and template (`None`: the connection's default rule's).
    pub event_set_id: Option<i64>,
    pub template_id: Option<i64>,
    /// The PSA contract the client's tickets carry.
    pub contract_id: Option<String>,
    pub refire: Refire,
}

/// Clients from rows of `id, name, created_at, connection_id` (one row per mapping, a client's
/// rows adjacent), each with the connections it is mapped on.
pub(crate) fn clients_of_rows<R: Row>(rows: &[R]) -> Result<Vec<Client>, StoreError>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'v> String: sqlx::Decode<'v, R::Database> + sqlx::Type<R::Database>,
    for<'v> i64: sqlx::Decode<'v, R::Database> + sqlx::Type<R::Database>,
    for<'v> Option<i64>: sqlx::Decode<'v, R::Database> + sqlx::Type<R::Database>,
{
    let mut out: Vec<Client> = Vec::new();
    for row in rows {
        let id: String = row.try_get("id")?;
        let conn: Option<i64> = row.try_get("connection_id")?;
        if out.last().map(|c| c.id.as_str()) != Some(id.as_str()) {
            out.push(Client {
                id,
                name: row.try_get("name")?,
                created_at: row.try_get("created_at")?,
                mapped_on: Vec::new(),
            });
        }
        if let (Some(c), Some(last)) = (conn, out.last_mut()) {
            last.mapped_on.push(c);
        }
    }
    Ok(out)
}

/// The columns `mapping_of_row` reads, in one place for every query that reads mappings.
pub(crate) const MAPPING_COLUMNS: &str = "connection_id, client_id, company_id, default_contact_id, \
     create_tickets, mapped_at, event_set_id, template_id, contract_id, refire, reopen_within_secs";

pub(crate) fn mapping_of_row<R: Row>(r: &R) -> Result<MappingRow, StoreError>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'v> String: sqlx::Decode<'v, R::Database> + sqlx::Type<R::Database>,
    for<'v> Option<String>: sqlx::Decode<'v, R::Database> + sqlx::Type<R::Database>,
    for<'v> i64: sqlx::Decode<'v, R::Database> + sqlx::Type<R::Database>,
    for<'v> Option<i64>: sqlx::Decode<'v, R::Database> + sqlx::Type<R::Database>,
    for<'v> bool: sqlx::Decode<'v, R::Database> + sqlx::Type<R::Database>,
{
    Ok(MappingRow {
        connection_id: r.try_get("connection_id")?,
        client_id: r.try_get("client_id")?,
        company_id: r.try_get("company_id")?,
        default_contact_id: r.try_get("default_contact_id")?,
        create_tickets: r.try_get("create_tickets")?,
        mapped_at: r.try_get("mapped_at")?,
        event_set_id: r.try_get("event_set_id")?,
        template_id: r.try_get("template_id")?,
        contract_id: r.try_get("contract_id")?,
        refire: {
            let mode: String = r.try_get("refire")?;
            Refire::from_parts(&mode, r.try_get("reopen_within_secs")?)
                .ok_or_else(|| corrupt(format!("re-fire policy {mode}")))?
        },
    })
}

/// `TicketDefaults` ⇄ JSON object keyed by ticket field name (`{"queue": "8"}`).
pub fn defaults_to_json(d: &TicketDefaults) -> Value {
    Value::Object(
        d.iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect(),
    )
}

/// Parse the stored JSON of ticket defaults (fields that are not strings are ignored).
pub fn defaults_from_json(v: &Value) -> TicketDefaults {
    TicketDefaults::from_pairs(
        v.as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.as_str(), s))),
    )
}

fn parse_json(text: &str, what: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(format!("{what}: {e}")))
}

fn secret_aad(connection_id: i64, field: &str) -> String {
    format!("connection:{connection_id}:{field}")
}

const CONNECTION_COLUMNS: &str = "id, partner_id, kind, name, enabled, grouping_mode, settings, sealed_secrets, \
     catch_all_company, catch_all_contact, defaults, lists, lists_loaded_at, webhook_id, webhook_guid, close_on_resolve, \
     created_at, updated_at";

fn connection_from_row<R: Row>(row: &R) -> Result<Connection, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    bool: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let kind: String = row.try_get("kind")?;
    let grouping: String = row.try_get("grouping_mode")?;
    let settings: String = row.try_get("settings")?;
    let sealed: String = row.try_get("sealed_secrets")?;
    let defaults: String = row.try_get("defaults")?;
    let lists: Option<String> = row.try_get("lists")?;
    let company: Option<String> = row.try_get("catch_all_company")?;
    let contact: Option<String> = row.try_get("catch_all_contact")?;
    let sealed = parse_json(&sealed, "connection secrets")?;
    Ok(Connection {
        id: row.try_get("id")?,
        partner_id: row.try_get("partner_id")?,
        kind: PsaKind::parse(&kind).ok_or_else(|| corrupt(format!("unknown PSA kind {kind}")))?,
        name: row.try_get("name")?,
        enabled: row.try_get("enabled")?,
        grouping: GroupingMode::parse(&grouping)
            .ok_or_else(|| corrupt(format!("unknown grouping {grouping}")))?,
        settings: match parse_json(&settings, "connection settings")? {
            Value::Object(m) => m,
            _ => Map::new(),
        },
        secret_fields: sealed
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default(),
        catch_all: company.map(|company_id| CompanyContact {
            company_id,
            contact_id: contact,
        }),
        defaults: defaults_from_json(&parse_json(&defaults, "ticket defaults")?),
        lists: lists.map(|l| parse_json(&l, "PSA lists")).transpose()?,
        lists_loaded_at: row.try_get("lists_loaded_at")?,
        webhook_id: row.try_get("webhook_id")?,
        webhook_guid: row.try_get("webhook_guid")?,
        close_on_resolve: row.try_get("close_on_resolve")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    // ---- partners -------------------------------------------------------------------------

    pub async fn create_partner(
        &self,
        id: &str,
        name: &str,
        now: Millis,
    ) -> Result<Partner, StoreError> {
        with_write!(self, pool => {
            sqlx::query("INSERT INTO partners (id, name, created_at) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(name)
                .bind(now)
                .execute(pool)
                .await
                .map_err(|e| StoreError::conflict_or(e, || format!("a partner with id '{id}' already exists")))?;
        });
        Ok(Partner {
            id: id.into(),
            name: name.into(),
            default_connection_id: None,
            created_at: now,
        })
    }

    pub async fn partner(&self, id: &str) -> Result<Partner, StoreError> {
        with_read!(self, pool => {
            let row = sqlx::query("SELECT id, name, default_connection_id, created_at FROM partners WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("partner '{id}'")))?;
            Ok(Partner {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                default_connection_id: row.try_get("default_connection_id")?,
                created_at: row.try_get("created_at")?,
            })
        })
    }

    pub async fn partners(&self) -> Result<Vec<Partner>, StoreError> {
        with_read!(self, pool => {
            let rows = sqlx::query("SELECT id, name, default_connection_id, created_at FROM partners ORDER BY id")
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(Partner {
                        id: row.try_get("id")?,
                        name: row.try_get("name")?,
                        default_connection_id: row.try_get("default_connection_id")?,
                        created_at: row.try_get("created_at")?,
                    })
                })
                .collect()
        })
    }

    /// Which connection takes the events of unmapped clients.
    pub async fn set_default_connection(
        &self,
        partner: &str,
        connection_id: Option<i64>,
    ) -> Result<(), StoreError> {
        if let Some(c) = connection_id {
            self.connection(partner, c).await?;
        }
        with_write!(self, pool => {
            let done = sqlx::query("UPDATE partners SET default_connection_id = $1 WHERE id = $2")
                .bind(connection_id)
                .bind(partner)
                .execute(pool)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("partner '{partner}'")));
            }
        });
        Ok(())
    }

    // ---- API tokens -----------------------------------------------------------------------

    /// Store a token by its hash (the caller keeps the token itself and shows it once).
    pub async fn create_token(
        &self,
        token_hash: &str,
        partner: Option<&str>,
        name: &str,
        now: Millis,
    ) -> Result<i64, StoreError> {
        with_write!(self, pool => {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO api_tokens (token_hash, partner_id, name, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(token_hash)
            .bind(partner)
            .bind(name)
            .bind(now)
            .fetch_one(pool)
            .await
            .map_err(|e| StoreError::conflict_or(e, || "partner not found for the token".into()))?;
            Ok(id)
        })
    }

    /// The principal of a token hash, if the token exists and is not revoked.
    /// Who a live token speaks for, and the token's id and name (for the audit log).
    pub async fn principal_of_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<(Principal, i64, String)>, StoreError> {
        with_read!(self, pool => {
            let row: Option<(Option<String>, i64, String)> = sqlx::query_as(
                "SELECT partner_id, id, name FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
            )
            .bind(token_hash)
            .fetch_optional(pool)
            .await?;
            Ok(row.map(|(p, id, name)| (p.map_or(Principal::Vendor, Principal::Partner), id, name)))
        })
    }

    pub async fn revoke_token(
        &self,
        id: i64,
        partner: Option<&str>,
        now: Millis,
    ) -> Result<(), StoreError> {
        with_write!(self, pool => {
            let done = sqlx::query(
                "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL \
                 AND ($3 IS NULL OR partner_id = $3)",
            )
            .bind(now)
            .bind(id)
            .bind(partner)
            .execute(pool)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("token {id}")));
            }
        });
        Ok(())
    }

    /// Store a token with its scopes, expiry and maker (the caller keeps the token itself and
    /// shows it once).
    pub async fn create_scoped_token(
        &self,
        t: &NewToken<'_>,
        now: Millis,
    ) -> Result<i64, StoreError> {
        with_write!(self, pool => {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO api_tokens (token_hash, partner_id, name, created_at, scopes, expires_at, created_by_user) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            )
            .bind(t.token_hash)
            .bind(t.partner)
            .bind(t.name)
            .bind(now)
            .bind(t.scopes)
            .bind(t.expires_at)
            .bind(t.created_by_user)
            .fetch_one(pool)
            .await
            .map_err(|e| StoreError::conflict_or(e, || "partner or user not found for the token".into()))?;
            Ok(id)
        })
    }

    /// What authentication needs of a token that is not revoked (expired ones included, so
    /// that the answer can say when it expired).
    pub async fn live_token(&self, token_hash: &str) -> Result<Option<TokenAuth>, StoreError> {
        with_read!(self, pool => {
            let row: Option<LiveTokenRow> = sqlx::query_as(
                "SELECT partner_id, id, name, scopes, expires_at FROM api_tokens \
                 WHERE token_hash = $1 AND revoked_at IS NULL",
            )
            .bind(token_hash)
            .fetch_optional(pool)
            .await?;
            Ok(row.map(|(p, id, name, scopes, expires_at)| TokenAuth {
                principal: p.map_or(Principal::Vendor, Principal::Partner),
                id,
                name,
                scopes,
                expires_at,
            }))
        })
    }

    /// The tokens of a partner (`Some`) or the vendor-wide ones (`None`), newest first,
    /// revoked ones included. Never the hash.
    pub async fn tokens(&self, partner: Option<&str>) -> Result<Vec<TokenRow>, StoreError> {
        with_read!(self, pool => {
            let rows = sqlx::query(
                "SELECT t.id, t.partner_id, t.name, t.scopes, t.created_at, t.created_by_user, u.email, \
                 t.expires_at, t.last_used_at, t.revoked_at \
                 FROM api_tokens t LEFT JOIN users u ON u.id = t.created_by_user \
                 WHERE ($1 IS NULL AND t.partner_id IS NULL) OR t.partner_id = $1 ORDER BY t.id DESC",
            )
            .bind(partner)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(TokenRow {
                        id: r.try_get(0)?,
                        partner_id: r.try_get(1)?,
                        name: r.try_get(2)?,
                        scopes: r.try_get(3)?,
                        created_at: r.try_get(4)?,
                        created_by_user: r.try_get(5)?,
                        created_by_email: r.try_get(6)?,
                        expires_at: r.try_get(7)?,
                        last_used_at: r.try_get(8)?,
                        revoked_at: r.try_get(9)?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(StoreError::from)
        })
    }

    /// Record that a token was used. Callers write this at most once a minute per token, not
    /// on every request.
    pub async fn touch_token(&self, id: i64, now: Millis) -> Result<(), StoreError> {
        with_write!(self, pool => {
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Revoke every live token a person made (at one partner, or everywhere), on its own.
    /// Deactivation and removal do the same inside their own transaction.
    pub async fn revoke_tokens_of_user(
        &self,
        user: i64,
        partner: Option<&str>,
        now: Millis,
    ) -> Result<u64, StoreError> {
        let revoked = with_write!(self, pool => {
            revoke_tokens_of_user!(pool, user, partner, now)
        });
        Ok(revoked)
    }

    // ---- clients --------------------------------------------------------------------------

    /// Create or rename a client.
    pub async fn put_client(
        &self,
        partner: &str,
        id: &str,
        name: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        with_write!(self, pool => {
            sqlx::query(
                "INSERT INTO clients (partner_id, id, name, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (partner_id, id) DO UPDATE SET name = excluded.name",
            )
            .bind(partner)
            .bind(id)
            .bind(name)
            .bind(now)
            .execute(pool)
            .await
            .map_err(|e| StoreError::conflict_or(e, || format!("partner '{partner}' does not exist")))?;
        });
        Ok(())
    }

    pub async fn clients(&self, partner: &str) -> Result<Vec<Client>, StoreError> {
        with_read!(self, pool => {
            let rows = sqlx::query(
                "SELECT c.id, c.name, c.created_at, m.connection_id FROM clients c \
                 LEFT JOIN mappings m ON m.partner_id = c.partner_id AND m.client_id = c.id \
                 WHERE c.partner_id = $1 ORDER BY c.id, m.connection_id",
            )
            .bind(partner)
            .fetch_all(pool)
            .await?;
            clients_of_rows(&rows)
        })
    }

    /// One client, read by its key (not by listing the partner's clients).
    pub async fn client(&self, partner: &str, id: &str) -> Result<Client, StoreError> {
        let found = with_read!(self, pool => {
            let rows = sqlx::query(
                "SELECT c.id, c.name, c.created_at, m.connection_id FROM clients c \
                 LEFT JOIN mappings m ON m.partner_id = c.partner_id AND m.client_id = c.id \
                 WHERE c.partner_id = $1 AND c.id = $2 ORDER BY m.connection_id",
            )
            .bind(partner)
            .bind(id)
            .fetch_all(pool)
            .await?;
            clients_of_rows(&rows)?
        });
        found
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::NotFound(format!("client '{id}'")))
    }

    /// A client's display name, if the client is known.
    pub async fn client_name(&self, partner: &str, id: &str) -> Result<Option<String>, StoreError> {
        with_read!(self, pool => {
            Ok(sqlx::query_scalar("SELECT name FROM clients WHERE partner_id = $1 AND id = $2")
                .bind(partner)
                .bind(id)
                .fetch_optional(pool)
                .await?)
        })
    }

    // ---- connections ----------------------------------------------------------------------

    /// Store a new connection with its secrets sealed to it.
    pub async fn create_connection(
        &self,
        new: &NewConnection,
        now: Millis,
    ) -> Result<i64, StoreError> {
        let keys = &self.inner.keys;
        let id = with_tx!(self, tx => {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO connections (partner_id, kind, name, grouping_mode, settings, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
            )
            .bind(&new.partner_id)
            .bind(new.kind.as_str())
            .bind(&new.name)
            .bind(new.grouping.as_str())
            .bind(Value::Object(new.settings.clone()).to_string())
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| StoreError::conflict_or(e, || format!("partner '{}' does not exist", new.partner_id)))?;
            let mut sealed = Map::new();
            for (field, value) in &new.secrets {
                sealed.insert(field.clone(), Value::String(keys.seal(&secret_aad(id, field), value.expose())?));
            }
            sqlx::query("UPDATE connections SET sealed_secrets = $1 WHERE id = $2")
                .bind(Value::Object(sealed).to_string())
                .bind(id)
                .execute(&mut *tx)
                .await?;
            id
        });
        Ok(id)
    }

    /// One connection of a partner.
    pub async fn connection(&self, partner: &str, id: i64) -> Result<Connection, StoreError> {
        let c = self.connection_by_id(id).await?;
        if c.partner_id != partner {
            return Err(StoreError::NotFound(format!("connection {id}")));
        }
        Ok(c)
    }

    /// A connection whoever owns it (for the engine and PSA callouts).
    pub async fn connection_by_id(&self, id: i64) -> Result<Connection, StoreError> {
        with_read!(self, pool => {
            let sql = format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE id = $1");
            let row = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(id)
                .fetch_optional(pool)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("connection {id}")))?;
            connection_from_row(&row)
        })
    }

    /// The connections of a partner, or of everyone when `partner` is `None`.
    pub async fn connections(&self, partner: Option<&str>) -> Result<Vec<Connection>, StoreError> {
        with_read!(self, pool => {
            let sql = format!(
                "SELECT {CONNECTION_COLUMNS} FROM connections WHERE ($1 IS NULL OR partner_id = $1) ORDER BY id"
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(partner).fetch_all(pool).await?;
            rows.iter().map(connection_from_row).collect()
        })
    }

    /// The opened secrets of a connection, for its connector only.
    pub async fn connection_secrets(
        &self,
        id: i64,
    ) -> Result<BTreeMap<String, Secret>, StoreError> {
        let sealed: String = with_read!(self, pool => {
            sqlx::query_scalar("SELECT sealed_secrets FROM connections WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("connection {id}")))?
        });
        let sealed = parse_json(&sealed, "connection secrets")?;
        let mut out = BTreeMap::new();
        for (field, v) in sealed.as_object().into_iter().flatten() {
            let v = v
                .as_str()
                .ok_or_else(|| corrupt("sealed secret is not text"))?;
            out.insert(
                field.clone(),
                self.inner.keys.open(&secret_aad(id, field), v)?,
            );
        }
        Ok(out)
    }

    /// Store what a checked change of a connection's access brings, all at once: its settings,
    /// the secrets it replaces (others are kept) and the PSA's lists as the check loaded them.
    pub async fn set_connection_access(
        &self,
        id: i64,
        settings: &Map<String, Value>,
        secrets: &BTreeMap<String, Secret>,
        lists: &Value,
        now: Millis,
    ) -> Result<(), StoreError> {
        with_tx!(self, tx => {
            let current: String = sqlx::query_scalar("SELECT sealed_secrets FROM connections WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("connection {id}")))?;
            let sealed = self.merge_sealed(id, &current, secrets)?;
            sqlx::query(
                "UPDATE connections SET sealed_secrets = $1, settings = $2, lists = $3, \
                 lists_loaded_at = $4, updated_at = $4 WHERE id = $5",
            )
            .bind(sealed)
            .bind(Value::Object(settings.clone()).to_string())
            .bind(lists.to_string())
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    /// `current` sealed secrets of connection `id` with `secrets` sealed over them.
    fn merge_sealed(
        &self,
        id: i64,
        current: &str,
        secrets: &BTreeMap<String, Secret>,
    ) -> Result<String, StoreError> {
        let mut map = match parse_json(current, "connection secrets")? {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        for (field, value) in secrets {
            let sealed = self
                .inner
                .keys
                .seal(&secret_aad(id, field), value.expose())?;
            map.insert(field.clone(), Value::String(sealed));
        }
        Ok(Value::Object(map).to_string())
    }

    /// Change the ordinary (non-secret) fields of a connection; `None` leaves a field alone.
    #[allow(clippy::too_many_arguments)]
    pub async fn update_connection(
        &self,
        id: i64,
        name: Option<&str>,
        enabled: Option<bool>,
        grouping: Option<GroupingMode>,
        settings: Option<&Map<String, Value>>,
        catch_all: Option<Option<&CompanyContact>>,
        defaults: Option<&TicketDefaults>,
        now: Millis,
    ) -> Result<(), StoreError> {
        with_tx!(self, tx => {
            let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM connections WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_none() {
                return Err(StoreError::NotFound(format!("connection {id}")));
            }
            if let Some(name) = name {
                sqlx::query("UPDATE connections SET name = $1 WHERE id = $2").bind(name).bind(id).execute(&mut *tx).await?;
            }
            if let Some(enabled) = enabled {
                sqlx::query("UPDATE connections SET enabled = $1 WHERE id = $2").bind(enabled).bind(id).execute(&mut *tx).await?;
            }
            if let Some(g) = grouping {
                sqlx::query("UPDATE connections SET grouping_mode = $1 WHERE id = $2").bind(g.as_str()).bind(id).execute(&mut *tx).await?;
            }
            if let Some(s) = settings {
                sqlx::query("UPDATE connections SET settings = $1 WHERE id = $2")
                    .bind(Value::Object(s.clone()).to_string())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(ca) = catch_all {
                sqlx::query("UPDATE connections SET catch_all_company = $1, catch_all_contact = $2 WHERE id = $3")
                    .bind(ca.map(|c| c.company_id.clone()))
                    .bind(ca.and_then(|c| c.contact_id.clone()))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(d) = defaults {
                sqlx::query("UPDATE connections SET defaults = $1 WHERE id = $2")
                    .bind(defaults_to_json(d).to_string())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("UPDATE connections SET updated_at = $1 WHERE id = $2").bind(now).bind(id).execute(&mut *tx).await?;
        });
        Ok(())
    }

    /// Record the PSA's lists as loaded by "Connect".
    pub async fn set_connection_lists(
        &self,
        id: i64,
        lists: &Value,
        now: Millis,
    ) -> Result<(), StoreError> {
        with_write!(self, pool => {
            sqlx::query("UPDATE connections SET lists = $1, lists_loaded_at = $2, updated_at = $2 WHERE id = $3")
                .bind(lists.to_string())
                .bind(now)
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Switch closing tickets on resolve for a connection.
    pub async fn set_close_on_resolve(
        &self,
        id: i64,
        on: bool,
        now: Millis,
    ) -> Result<(), StoreError> {
        with_write!(self, pool => {
            sqlx::query("UPDATE connections SET close_on_resolve = $1, updated_at = $2 WHERE id = $3")
                .bind(on)
                .bind(now)
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Record the PSA webhook that pushes ticket changes to us, and its signing secret.
    pub async fn set_connection_webhook(
        &self,
        id: i64,
        webhook_id: Option<&str>,
        guid: Option<&str>,
        secret: Option<&Secret>,
        now: Millis,
    ) -> Result<(), StoreError> {
        let sealed = secret
            .map(|s| {
                self.inner
                    .keys
                    .seal(&secret_aad(id, "webhook_secret"), s.expose())
            })
            .transpose()?;
        with_write!(self, pool => {
            sqlx::query(
                "UPDATE connections SET webhook_id = $1, webhook_guid = $2, webhook_secret = $3, updated_at = $4 WHERE id = $5",
            )
            .bind(webhook_id)
            .bind(guid)
            .bind(sealed)
            .bind(now)
            .bind(id)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The signing secret of a connection's webhook.
    pub async fn connection_webhook_secret(&self, id: i64) -> Result<Option<Secret>, StoreError> {
        let sealed: Option<String> = with_read!(self, pool => {
            sqlx::query_scalar("SELECT webhook_secret FROM connections WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
                .flatten()
        });
        sealed
            .map(|s| self.inner.keys.open(&secret_aad(id, "webhook_secret"), &s))
            .transpose()
    }

    /// Disconnect: delete a connection with its rules, mappings and groups. Deliveries already
    /// made stay in the log.
    pub async fn delete_connection(&self, partner: &str, id: i64) -> Result<(), StoreError> {
        with_tx!(self, tx => {
            sqlx::query("UPDATE partners SET default_connection_id = NULL WHERE id = $1 AND default_connection_id = $2")
                .bind(partner)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE deliveries SET state = 'dead', last_error = 'the PSA connection was deleted', lease_owner = NULL \
                 WHERE connection_id = $1 AND state IN ('pending', 'retrying', 'in_flight')",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM delivery_queues WHERE connection_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let done = sqlx::query("DELETE FROM connections WHERE id = $1 AND partner_id = $2")
                .bind(id)
                .bind(partner)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("connection {id}")));
            }
        });
        Ok(())
    }

    // ---- event rules ----------------------------------------------------------------------

    pub async fn put_rule(
        &self,
        connection_id: i64,
        event_type: &str,
        rule: &EventRule,
    ) -> Result<(), StoreError> {
        with_write!(self, pool => {
            sqlx::query(
                "INSERT INTO event_rules (connection_id, event_type, create_ticket, fields, template_id) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (connection_id, event_type) DO UPDATE SET create_ticket = excluded.create_ticket, fields = excluded.fields, \
                 template_id = excluded.template_id",
            )
            .bind(connection_id)
            .bind(event_type)
            .bind(rule.create_ticket)
            .bind(defaults_to_json(&rule.fields).to_string())
            .bind(rule.template)
            .execute(pool)
            .await
            .map_err(|e| StoreError::conflict_or(e, || "the template does not exist".to_string()))?;
        });
        Ok(())
    }

    pub async fn delete_rule(
        &self,
        connection_id: i64,
        event_type: &str,
    ) -> Result<(), StoreError> {
        with_write!(self, pool => {
            let done = sqlx::query("DELETE FROM event_rules WHERE connection_id = $1 AND event_type = $2")
                .bind(connection_id)
                .bind(event_type)
                .execute(pool)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("rule for '{event_type}'")));
            }
        });
        Ok(())
    }

    pub async fn rules(
        &self,
        connection_id: i64,
    ) -> Result<BTreeMap<String, EventRule>, StoreError> {
        with_read!(self, pool => {
            let rows: Vec<(String, bool, String, Option<i64>)> = sqlx::query_as(
                "SELECT event_type, create_ticket, fields, template_id FROM event_rules WHERE connection_id = $1 ORDER BY event_type",
            )
            .bind(connection_id)
            .fetch_all(pool)
            .await?;
            rows.into_iter()
                .map(|(t, create_ticket, fields, template)| {
                    Ok((
                        t,
                        EventRule {
                            create_ticket,
                            template,
                            fields: defaults_from_json(&parse_json(&fields, "rule fields")?),
                        },
                    ))
                })
                .collect()
        })
    }

    // ---- mappings -------------------------------------------------------------------------

    /// Map a client to a company on a connection (creating the client if it is new).
    pub async fn put_mapping(
        &self,
        partner: &str,
        m: &MappingRow,
        client_name: Option<&str>,
    ) -> Result<(), StoreError> {
        with_tx!(self, tx => {
            sqlx::query(
                "INSERT INTO clients (partner_id, id, name, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (partner_id, id) DO NOTHING",
            )
            .bind(partner)
            .bind(&m.client_id)
            .bind(client_name.unwrap_or(&m.client_id))
            .bind(m.mapped_at)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO mappings (connection_id, partner_id, client_id, company_id, default_contact_id, create_tickets, mapped_at, \
                 event_set_id, template_id, contract_id, refire, reopen_within_secs) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                 ON CONFLICT (connection_id, client_id) DO UPDATE SET company_id = excluded.company_id, \
                 default_contact_id = excluded.default_contact_id, create_tickets = excluded.create_tickets, \
                 event_set_id = excluded.event_set_id, template_id = excluded.template_id, contract_id = excluded.contract_id, \
                 refire = excluded.refire, reopen_within_secs = excluded.reopen_within_secs",
            )
            .bind(m.connection_id)
            .bind(partner)
            .bind(&m.client_id)
            .bind(&m.company_id)
            .bind(&m.default_contact_id)
            .bind(m.create_tickets)
            .bind(m.mapped_at)
            .bind(m.event_set_id)
            .bind(m.template_id)
            .bind(&m.contract_id)
            .bind(m.refire.mode())
            .bind(m.refire.within_secs())
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::conflict_or(e, || format!("connection {} does not exist", m.connection_id)))?;
        });
        Ok(())
    }

    pub async fn delete_mapping(
        &self,
        partner: &str,
        connection_id: i64,
        client: &str,
    ) -> Result<(), StoreError> {
        with_write!(self, pool => {
            let done = sqlx::query("DELETE FROM mappings WHERE partner_id = $1 AND connection_id = $2 AND client_id = $3")
                .bind(partner)
                .bind(connection_id)
                .bind(client)
                .execute(pool)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("mapping of client '{client}' on connection {connection_id}")));
            }
        });
        Ok(())
    }

    pub async fn mappings(&self, partner: &str) -> Result<Vec<MappingRow>, StoreError> {
        with_read!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {MAPPING_COLUMNS} FROM mappings WHERE partner_id = $1 ORDER BY client_id, connection_id"
            )))
            .bind(partner)
            .fetch_all(pool)
            .await?;
            rows.iter().map(mapping_of_row).collect()
        })
    }

    // ---- the routing snapshot -------------------------------------------------------------

    /// Everything routing needs to know about a partner, read consistently enough: each part
    /// is one query, and a change made between them only shifts which events see it.
    pub async fn partner_settings(&self, partner: &str) -> Result<PartnerSettings, StoreError> {
        let p = self.partner(partner).await?;
        let mut connections = Vec::new();
        for c in self.connections(Some(partner)).await? {
            let default_profile = self
                .integration_rules(c.id)
                .await?
                .into_iter()
                .find(|r| r.is_default)
                .map(|r| Profile {
                    event_set: r.event_set_id,
                    template: r.template_id,
                })
                .unwrap_or_default();
            connections.push(ConnectionSettings {
                id: c.id,
                kind: c.kind,
                enabled: c.enabled,
                grouping: c.grouping,
                catch_all: c.catch_all,
                defaults: c.defaults,
                rules: self.rules(c.id).await?,
                templates: self
                    .templates(c.id)
                    .await?
                    .into_iter()
                    .map(|t| (t.id, t.fields))
                    .collect(),
                default_profile,
            });
        }
        let mut mappings: BTreeMap<String, Vec<Mapping>> = BTreeMap::new();
        for m in self.mappings(partner).await? {
            mappings.entry(m.client_id).or_default().push(Mapping {
                connection_id: m.connection_id,
                company_id: m.company_id,
                default_contact_id: m.default_contact_id,
                create_tickets: m.create_tickets,
                profile: Profile {
                    event_set: m.event_set_id,
                    template: m.template_id,
                },
                contract_id: m.contract_id,
                refire: m.refire,
            });
        }
        let event_sets = self
            .event_sets(partner)
            .await?
            .into_iter()
            .map(|s| {
                (
                    s.id,
                    EventSet {
                        name: s.name,
                        event_types: s.event_types.into_iter().collect(),
                    },
                )
            })
            .collect();
        Ok(PartnerSettings {
            connections,
            default_connection: p.default_connection_id,
            mappings,
            event_sets,
            off_by_default: Default::default(),
        })
    }
}
