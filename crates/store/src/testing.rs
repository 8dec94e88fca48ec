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
