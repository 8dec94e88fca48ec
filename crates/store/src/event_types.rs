//! Event types as rows: seeded from the catalog file, changed through the API, and read by
//! every node through a version counter so a change is effective at once without a restart.

use psabridge_core::event::Severity;
use psabridge_core::event_types::EventTypeDef;
use sqlx::Row;

use crate::Millis;
use crate::db::{Store, with_read, with_tx};
use crate::error::{StoreError, corrupt};

/// What DELETE did to a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    Deleted,
    /// Events or settings still name the type: it is kept, inactive.
    Deactivated,
}

fn def_from(r: &impl RowLike) -> Result<EventTypeDef, StoreError> {
    r.def()
}

trait RowLike {
    fn def(&self) -> Result<EventTypeDef, StoreError>;
}

macro_rules! impl_row_like {
    ($row:ty) => {
        impl RowLike for $row {
            fn def(&self) -> Result<EventTypeDef, StoreError> {
                let severity: String = self.try_get("default_severity")?;
                Ok(EventTypeDef {
                    key: self.try_get("key")?,
                    name: self.try_get("name")?,
                    category: self.try_get("category")?,
                    default_severity: Severity::parse(&severity)
                        .ok_or_else(|| corrupt(format!("event type severity '{severity}'")))?,
                    title: self.try_get("title_template")?,
                    description: self.try_get("description_template")?,
                    on_by_default: self.try_get("on_by_default")?,
                    active: self.try_get("active")?,
                })
            }
        }
    };
}
impl_row_like!(sqlx::sqlite::SqliteRow);
impl_row_like!(sqlx::postgres::PgRow);

impl Store {
    /// The version of the event types; every change raises it.
    pub async fn event_types_version(&self) -> Result<i64, StoreError> {
        Ok(with_read!(self, pool => {
            sqlx::query_scalar("SELECT version FROM event_types_version WHERE id = 1")
                .fetch_one(pool)
                .await?
        }))
    }

    /// Every event type, active or not, by key, with the version they were read at.
    pub async fn event_type_defs(&self) -> Result<(i64, Vec<EventTypeDef>), StoreError> {
        with_read!(self, pool => {
            let version: i64 = sqlx::query_scalar("SELECT version FROM event_types_version WHERE id = 1")
                .fetch_one(pool)
                .await?;
            let rows = sqlx::query("SELECT key, name, category, default_severity, title_template, description_template, on_by_default, active FROM event_types ORDER BY key")
                .fetch_all(pool)
                .await?;
            let defs = rows.iter().map(def_from).collect::<Result<Vec<_>, _>>()?;
            // A change between the two reads only makes the next check reload once more.
            Ok((version, defs))
        })
    }

    /// One event type by key, active or not.
    pub async fn event_type_def(&self, key: &str) -> Result<Option<EventTypeDef>, StoreError> {
        with_read!(self, pool => {
            let row = sqlx::query("SELECT key, name, category, default_severity, title_template, description_template, on_by_default, active FROM event_types WHERE key = $1")
                .bind(key)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(def_from).transpose()
        })
    }

    /// Insert the catalog file's types that are not rows yet; a type changed through the API
    /// keeps its row. Returns how many were added.
    pub async fn seed_event_types(
        &self,
        defs: &[EventTypeDef],
        now: Millis,
    ) -> Result<u64, StoreError> {
        let mut added = 0;
        with_tx!(self, tx => {
            for d in defs {
                let done = sqlx::query(
                    "INSERT INTO event_types (key, name, category, default_severity, title_template, description_template, on_by_default, active, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT (key) DO NOTHING",
                )
                .bind(&d.key)
                .bind(&d.name)
                .bind(&d.category)
                .bind(d.default_severity.as_str())
                .bind(&d.title)
                .bind(&d.description)
                .bind(d.on_by_default)
                .bind(d.active)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                added += done.rows_affected();
            }
            if added > 0 {
                sqlx::query("UPDATE event_types_version SET version = version + 1 WHERE id = 1")
                    .execute(&mut *tx)
                    .await?;
            }
        });
        Ok(added)
    }

    /// Create a type unless its key exists; `false` (nothing written) when it does. One
    /// statement decides, so two creates of one key at once cannot both succeed.
    pub async fn create_event_type(
        &self,
        d: &EventTypeDef,
        now: Millis,
    ) -> Result<bool, StoreError> {
        Ok(self.seed_event_types(std::slice::from_ref(d), now).await? == 1)
    }

    /// Create or replace one type; `true` when it was created.
    pub async fn put_event_type(&self, d: &EventTypeDef, now: Millis) -> Result<bool, StoreError> {
        let created = with_tx!(self, tx => {
            let existed: Option<String> = sqlx::query_scalar("SELECT key FROM event_types WHERE key = $1")
                .bind(&d.key)
                .fetch_optional(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO event_types (key, name, category, default_severity, title_template, description_template, on_by_default, active, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT (key) DO UPDATE SET \
                 name = excluded.name, category = excluded.category, default_severity = excluded.default_severity, \
                 title_template = excluded.title_template, description_template = excluded.description_template, \
                 on_by_default = excluded.on_by_default, active = excluded.active, updated_at = excluded.updated_at",
            )
            .bind(&d.key)
            .bind(&d.name)
            .bind(&d.category)
            .bind(d.default_severity.as_str())
            .bind(&d.title)
            .bind(&d.description)
            .bind(d.on_by_default)
            .bind(d.active)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE event_types_version SET version = version + 1 WHERE id = 1")
                .execute(&mut *tx)
                .await?;
            existed.is_none()
        });
        Ok(created)
    }

    /// Delete a type, or deactivate it when events, event rules, email settings or event sets
    /// still name it.
    pub async fn remove_event_type(&self, key: &str, now: Millis) -> Result<Removal, StoreError> {
        let removal = with_tx!(self, tx => {
            let exists: Option<String> = sqlx::query_scalar("SELECT key FROM event_types WHERE key = $1")
                .bind(key)
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_none() {
                return Err(StoreError::NotFound(format!("event type '{key}'")));
            }
            // Event sets hold a JSON array of keys; the quoted key is matched inside it.
            let in_use: Option<i32> = sqlx::query_scalar(
                "SELECT 1 FROM events WHERE event_type = $1 \
                 UNION ALL SELECT 1 FROM event_rules WHERE event_type = $1 \
                 UNION ALL SELECT 1 FROM email_settings WHERE event_type = $1 \
                 UNION ALL SELECT 1 FROM channel_event_types WHERE event_type = $1 \
                 UNION ALL SELECT 1 FROM event_sets WHERE event_types LIKE $2 \
                 LIMIT 1",
            )
            .bind(key)
            .bind(format!("%\"{key}\"%"))
            .fetch_optional(&mut *tx)
            .await?;
            let removal = if in_use.is_some() {
                sqlx::query("UPDATE event_types SET active = $1, updated_at = $2 WHERE key = $3")
                    .bind(false)
                    .bind(now)
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
                Removal::Deactivated
            } else {
                sqlx::query("DELETE FROM event_types WHERE key = $1")
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
                Removal::Deleted
            };
            sqlx::query("UPDATE event_types_version SET version = version + 1 WHERE id = 1")
                .execute(&mut *tx)
                .await?;
            removal
        });
        Ok(removal)
    }
}
