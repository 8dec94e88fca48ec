//! Opening the database, migrations, and the two-engine dispatch.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::error::StoreError;
use crate::ingest::IngestQueue;
use crate::seal::KeyRing;

/// Which database engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// SQLite's `synchronous` setting, which decides what "durable" means for an acknowledged
/// event: `Full` syncs the write-ahead log on every commit (survives power loss), `Normal`
/// syncs it at checkpoints (survives a crash of the process, not of the machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    #[default]
    Full,
    Normal,
}

impl FromStr for Synchronous {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "full" => Ok(Synchronous::Full),
            "normal" => Ok(Synchronous::Normal),
            other => Err(format!("'{other}' is not 'full' or 'normal'")),
        }
    }
}

/// How to open a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `sqlite://path/to/file.db` or `postgres://…`.
    pub url: String,
    pub synchronous: Synchronous,
    /// Connections for readers (SQLite) or for everything (PostgreSQL).
    pub max_connections: u32,
}

impl StoreOptions {
    pub fn new(url: impl Into<String>) -> Self {
        StoreOptions {
            url: url.into(),
            synchronous: Synchronous::Full,
            max_connections: 8,
        }
    }
}

#[derive(Clone)]
pub(crate) enum Db {
    /// One writer connection (SQLite has one writer; queuing in the pool beats lock retries)
    /// and a pool of readers, which WAL lets run beside the writer.
    Sqlite {
        write: SqlitePool,
        read: SqlitePool,
    },
    Postgres(PgPool),
}

pub(crate) struct Inner {
    pub(crate) db: Db,
    pub(crate) keys: KeyRing,
    pub(crate) ingest: IngestQueue,
}

/// The storage of PSA Bridge. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

/// Run `$body` with `$pool` bound to the writer pool of whichever engine this is.
macro_rules! with_write {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.inner.db {
            $crate::db::Db::Sqlite { write: $pool, .. } => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}

/// Run `$body` with `$pool` bound to a reader pool.
macro_rules! with_read {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.inner.db {
            $crate::db::Db::Sqlite { read: $pool, .. } => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}

/// Run `$body` with `$tx` bound to a write transaction (`BEGIN IMMEDIATE` on SQLite, so a
/// transaction never fails half-way to upgrade its lock).
macro_rules! with_tx {
    ($store:expr, $tx:ident => $body:expr) => {
        match &$store.inner.db {
            $crate::db::Db::Sqlite { write, .. } => {
                let mut $tx = write.begin_with("BEGIN IMMEDIATE").await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
            $crate::db::Db::Postgres(pool) => {
                let mut $tx = pool.begin().await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
        }
    };
}

pub(crate) use {with_read, with_tx, with_write};

/// A LIKE pattern (for `LIKE … ESCAPE '\'`) matching `text` anywhere, its own `%`, `_` and
/// `\` taken literally.
pub(crate) fn like_contains(text: &str) -> String {
    format!("%{}%", like_literal(text))
}

/// `text` with LIKE's wildcards and the escape character escaped.
pub(crate) fn like_literal(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// Create the SQLite file readable by its owner only (0600), or narrow an existing one: it
/// holds sealed secrets, session hashes and the audit log.
fn private_file(path: &std::path::Path) -> Result<(), StoreError> {
    let fail = |e: std::io::Error| {
        StoreError::Invalid(format!("cannot make {} private: {e}", path.display()))
    };
    let mut open = std::fs::OpenOptions::new();
    open.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    open.open(path).map_err(fail)?;
    narrow_if_present(path)
}

fn narrow_if_present(path: &std::path::Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    if path.exists() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
            StoreError::Invalid(format!("cannot make {} private: {e}", path.display()))
        })?;
    }
    Ok(())
}

impl Store {
    /// Open (creating a SQLite file if needed) and migrate.
    pub async fn open(options: &StoreOptions, keys: KeyRing) -> Result<Store, StoreError> {
        let db = if let Some(path) = sqlite_path(&options.url) {
            if let Some(dir) = path.parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::Invalid(format!(
                        "cannot create the database directory {}: {e}",
                        dir.display()
                    ))
                })?;
            }
            if path.as_os_str() != ":memory:" {
                private_file(&path)?;
            }
            let connect = SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(match options.synchronous {
                    Synchronous::Full => SqliteSynchronous::Full,
                    Synchronous::Normal => SqliteSynchronous::Normal,
                })
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
                .pragma("temp_store", "memory")
                // The writer keeps a larger page cache (16 MB) than each reader (2 MB).
                .pragma("cache_size", "-16000");
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .connect_with(connect.clone())
                .await?;
            SQLITE_MIGRATIONS.run(&write).await?;
            // SQLite made the -wal and -shm files with the database's mode; older ones are
            // narrowed here too.
            for suffix in ["-wal", "-shm"] {
                let mut companion = path.clone().into_os_string();
                companion.push(suffix);
                narrow_if_present(std::path::Path::new(&companion))?;
            }
            let read = SqlitePoolOptions::new()
                .max_connections(options.max_connections.max(1))
                // Readers are opened on demand and closed when idle, so an idle node is small.
                .min_connections(0)
                .idle_timeout(Duration::from_secs(30))
                .connect_with(connect.read_only(true).pragma("cache_size", "-2000"))
                .await?;
            Db::Sqlite { write, read }
        } else if options.url.starts_with("postgres://") || options.url.starts_with("postgresql://")
        {
            let connect = PgConnectOptions::from_str(&options.url)?;
            let pool = PgPoolOptions::new()
                .max_connections(options.max_connections.max(2))
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(connect)
                .await?;
            POSTGRES_MIGRATIONS.run(&pool).await?;
            Db::Postgres(pool)
        } else {
            return Err(StoreError::Invalid(format!(
                "database URL must start with sqlite:// or postgres:// (got '{}')",
                redact_url(&options.url)
            )));
        };
        let store = Store {
            inner: Arc::new(Inner {
                db,
                keys,
                ingest: IngestQueue::detached(),
            }),
        };
        store.ensure_install_id().await?;
        Ok(store.with_ingest_writer())
    }

    pub fn engine(&self) -> Engine {
        match self.inner.db {
            Db::Sqlite { .. } => Engine::Sqlite,
            Db::Postgres(_) => Engine::Postgres,
        }
    }

    /// A random id of this installation, made once. It prefixes the references we put on PSA
    /// tickets, so two installations sharing one PSA never mistake each other's tickets.
    pub async fn install_id(&self) -> Result<String, StoreError> {
        with_read!(self, pool => {
            let v: Option<String> = sqlx::query_scalar("SELECT value FROM meta WHERE key = 'install_id'")
                .fetch_optional(pool)
                .await?;
            v.ok_or_else(|| StoreError::Corrupt("install id missing".into()))
        })
    }

    async fn ensure_install_id(&self) -> Result<(), StoreError> {
        let id: String = {
            use rand::Rng;
            let mut rng = rand::rng();
            (0..8)
                .map(|_| {
                    char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)])
                })
                .collect()
        };
        with_write!(self, pool => {
            sqlx::query("INSERT INTO meta (key, value) VALUES ('install_id', $1) ON CONFLICT (key) DO NOTHING")
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Close the pools after the ingest writer has drained.
    pub async fn close(&self) {
        self.inner.ingest.close().await;
        match &self.inner.db {
            Db::Sqlite { write, read } => {
                read.close().await;
                write.close().await;
            }
            Db::Postgres(p) => p.close().await,
        }
    }

    /// Is the database answering?
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_read!(self, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }
}

/// The migrations this build carries, per engine.
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

impl Store {
    /// The migrations of this build that the database has not applied (successfully): empty
    /// when its schema is current. A node that opened the store has migrated it, so this is
    /// non-empty only when someone rolled the schema back or the table is damaged.
    pub async fn migrations_missing(&self) -> Result<Vec<i64>, StoreError> {
        let (migrator, applied): (&sqlx::migrate::Migrator, Vec<i64>) = match &self.inner.db {
            Db::Sqlite { read, .. } => (
                &SQLITE_MIGRATIONS,
                sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                    .fetch_all(read)
                    .await?,
            ),
            Db::Postgres(pool) => (
                &POSTGRES_MIGRATIONS,
                sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                    .fetch_all(pool)
                    .await?,
            ),
        };
        Ok(migrator
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .map(|m| m.version)
            .filter(|v| !applied.contains(v))
            .collect())
    }
}

/// The file path of a `sqlite:` URL, or `None` for another scheme.
pub(crate) fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    Some(PathBuf::from(path))
}

/// A URL with any password replaced, for messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls() {
        assert_eq!(
            sqlite_path("sqlite://data/x.db"),
            Some(PathBuf::from("data/x.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:///abs/x.db?mode=rwc"),
            Some(PathBuf::from("/abs/x.db"))
        );
        assert_eq!(sqlite_path("postgres://h/db"), None);
        assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
    }
}
