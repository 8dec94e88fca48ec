//! Helpers for tests that need a real database of their own.
//!
//! PostgreSQL tests take the server's URL from `PSABRIDGE_TEST_PG_URL` (never `DATABASE_URL`,
//! which sqlx would read at compile time) and get a fresh database each, dropped afterwards.

use std::str::FromStr;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

/// The variable that names the PostgreSQL server for tests.
pub const PG_URL_VAR: &str = "PSABRIDGE_TEST_PG_URL";

/// The test PostgreSQL URL, or `None` after saying loudly that PostgreSQL tests are skipped.
pub fn pg_url_or_skip(test: &str) -> Option<String> {
    match std::env::var(PG_URL_VAR) {
        Ok(u) if !u.trim().is_empty() => Some(u),
        _ => {
            eprintln!("SKIPPED (PostgreSQL) {test}: set {PG_URL_VAR} to run it against PostgreSQL");
            None
        }
    }
}

/// A database made for one test.
pub struct TestDatabase {
    pub url: String,
    admin: String,
    name: String,
}

impl TestDatabase {
    /// Create an empty database on the server of `admin_url`.
    pub async fn create(admin_url: &str) -> Result<TestDatabase, sqlx::Error> {
        let name = format!("psab_t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(admin_url).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let mut url =
            url::Url::parse(admin_url).map_err(|e| sqlx::Error::Configuration(Box::new(e)))?;
        url.set_path(&format!("/{name}"));
        Ok(TestDatabase {
            url: url.to_string(),
            admin: admin_url.to_string(),
            name,
        })
    }

    /// Drop the database (connections to it are ended first).
    pub async fn drop_database(self) {
        let Ok(opts) = PgConnectOptions::from_str(&self.admin) else {
            return;
        };
        if let Ok(mut conn) = PgConnection::connect_with(&opts).await {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            )))
            .execute(&mut conn)
            .await;
            let _ = conn.close().await;
        }
    }
}

/// A backlog to load for a benchmark: `deliveries` pending deliveries (with their events,
/// already routed) on one connection, over `groups` group keys and `clients` client ids.
#[derive(Debug, Clone, Copy)]
pub struct Backlog<'a> {
    pub partner_id: &'a str,
    pub connection_id: i64,
    pub deliveries: u64,
    pub groups: u64,
    pub clients: u64,
    pub now: crate::Millis,
}

/// Rows written per transaction, so that the product's own writes never wait long.
const PRELOAD_CHUNK: u64 = 50_000;

impl crate::Store {
    /// Bulk-load a backlog straight into the tables (far faster than through the API): the
    /// deliveries copy the route of the connection's latest delivery, and each group's oldest
    /// becomes its queue head. Returns how many deliveries were written.
    pub async fn preload_backlog(&self, b: &Backlog<'_>) -> Result<u64, crate::StoreError> {
        use crate::db::with_tx;
        let series = match self.engine() {
            crate::Engine::Sqlite => {
                "WITH RECURSIVE n(i) AS (SELECT $1 UNION ALL SELECT i + 1 FROM n WHERE i < $2)"
            }
            crate::Engine::Postgres => {
                "WITH n(i) AS (SELECT generate_series($1::BIGINT, $2::BIGINT))"
            }
        };
        let events = format!(
            "{series} INSERT INTO events (partner_id, event_id, client_id, event_type, action, severity, \
             data, received_at, routed_at) \
             SELECT $3, 'backlog-' || i, 'backlog-client-' || (i % $4), 'saas.too_many_downloads', \
             'trigger', 'high', '{{}}', $5, $5 FROM n"
        );
        let mut written = 0;
        let mut first = 0u64;
        while first < b.deliveries {
            let last = (first + PRELOAD_CHUNK).min(b.deliveries) - 1;
            with_tx!(self, tx => {
                let events_before: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(pk), 0) FROM events")
                    .fetch_one(&mut *tx)
                    .await?;
                let deliveries_before: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM deliveries")
                    .fetch_one(&mut *tx)
                    .await?;
                sqlx::query(sqlx::AssertSqlSafe(events.clone()))
                    .bind(first as i64)
                    .bind(last as i64)
                    .bind(b.partner_id)
                    .bind(b.clients.max(1) as i64)
                    .bind(b.now)
                    .execute(&mut *tx)
                    .await?;
                written += sqlx::query(
                    "INSERT INTO deliveries (event_pk, partner_id, connection_id, channel, group_key, route, state, \
                     attempts, next_attempt_at, created_at, updated_at) \
                     SELECT e.pk, e.partner_id, $1, 'psa', 'backlog:g' || (e.pk % $2), \
                     COALESCE((SELECT route FROM deliveries WHERE connection_id = $1 ORDER BY id DESC LIMIT 1), '{}'), \
                     'pending', 0, $3, $3, $3 FROM events e WHERE e.pk > $4",
                )
                .bind(b.connection_id)
                .bind(b.groups.max(1) as i64)
                .bind(b.now)
                .bind(events_before)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                sqlx::query(
                    "INSERT INTO delivery_queues (connection_id, group_key, head_id, due_at) \
                     SELECT connection_id, group_key, MIN(id), $1 FROM deliveries WHERE id > $2 \
                     GROUP BY connection_id, group_key \
                     ON CONFLICT (connection_id, group_key) DO NOTHING",
                )
                .bind(b.now)
                .bind(deliveries_before)
                .execute(&mut *tx)
                .await?;
            });
            first = last + 1;
        }
        // A backlog a user lives with is hours old: PostgreSQL's autovacuum has analysed it
        // within a minute of such a load. Do that now, so the figures that follow measure that
        // steady state, not the planner's statistics of a moment after a bulk insert.
        if self.engine() == crate::Engine::Postgres {
            crate::db::with_write!(self, pool => {
                sqlx::query("ANALYZE events, deliveries, delivery_queues")
                    .execute(pool)
                    .await?;
            });
        }
        Ok(written)
    }
}
