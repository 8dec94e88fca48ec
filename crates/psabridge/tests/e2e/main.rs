//! End-to-end tests of the spine: the real binary, the simulator over real HTTP, SQLite and
//! PostgreSQL. One test binary (each file under tests/ would be another slow link).

mod config;
mod connector;
mod faults;
mod harness;
mod spine;

/// Run a scenario on SQLite and on PostgreSQL (skipped loudly without a server).
#[macro_export]
macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() -> anyhow::Result<()> {
                super::$name($crate::harness::Db::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() -> anyhow::Result<()> {
                super::$name($crate::harness::Db::Postgres).await
            }
        }
    };
}
