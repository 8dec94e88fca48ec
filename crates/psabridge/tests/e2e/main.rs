//! End-to-end tests of the spine: the real binary, each PSA's simulator over real HTTP, SQLite
//! and PostgreSQL. One test binary (each file under tests/ would be another slow link).

mod assets;
mod billing;
mod channels;
mod cli;
mod config;
mod connections;
mod connector;
mod email;
mod event_types;
mod faults;
mod harness;
mod import;
mod inputs;
mod metrics;
mod nodes;
mod portal;
mod profiles;
mod schemathesis;
mod spine;
mod wrong_tickets;

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

/// Run a scenario on every PSA's simulator, each on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! on_every_psa {
    ($name:ident) => {
        mod $name {
            use psabridge_core::settings::PsaKind;

            use $crate::harness::Db;

            $crate::on_every_psa!(@one $name, autotask_sqlite, Autotask, Sqlite);
            $crate::on_every_psa!(@one $name, autotask_postgres, Autotask, Postgres);
            $crate::on_every_psa!(@one $name, halopsa_sqlite, HaloPsa, Sqlite);
            $crate::on_every_psa!(@one $name, halopsa_postgres, HaloPsa, Postgres);
            $crate::on_every_psa!(@one $name, kaseya_bms_sqlite, KaseyaBms, Sqlite);
            $crate::on_every_psa!(@one $name, kaseya_bms_postgres, KaseyaBms, Postgres);
            $crate::on_every_psa!(@one $name, connectwise_sqlite, ConnectWise, Sqlite);
            $crate::on_every_psa!(@one $name, connectwise_postgres, ConnectWise, Postgres);
        }
    };
    (@one $name:ident, $test:ident, $kind:ident, $db:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() -> anyhow::Result<()> {
            super::$name(PsaKind::$kind, Db::$db).await
        }
    };
}
