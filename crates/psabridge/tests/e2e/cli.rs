//! The `token` command: scopes and expiry checked and stored, mistakes named.

use std::process::Command;

use anyhow::{Result, ensure};
use psabridge_store::seal::KeyRing;
use psabridge_store::{Store, StoreOptions};

use crate::harness::BIN;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_command_takes_scopes_and_expiry() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let key = KeyRing::generate_key();
    let db = dir.path().join("t.db");
    let config = dir.path().join("psabridge.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"sqlite://{}\"\nsecret_key = \"{key}\"\n",
            db.display()
        ),
    )?;
    let token = |args: &[&str]| {
        let mut cmd = Command::new(BIN);
        cmd.args(["token", "--config"]).arg(&config).args(args);
        cmd.output()
    };

    let bad = token(&["--scopes", "events:write,everything"])?;
    let err = String::from_utf8_lossy(&bad.stderr);
    ensure!(
        !bad.status.success() && err.contains("--scopes: entry 2") && err.contains("everything"),
        "{err}"
    );
    let bad = token(&["--partner", "nobody"])?;
    ensure!(
        !bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("--partner"),
        "{bad:?}"
    );
    let bad = token(&["--expires-in-days", "0"])?;
    ensure!(!bad.status.success(), "{bad:?}");

    let ok = token(&[
        "--name",
        "ingest",
        "--scopes",
        "events:write",
        "--expires-in-days",
        "30",
    ])?;
    let printed = String::from_utf8_lossy(&ok.stdout).trim().to_string();
    ensure!(
        ok.status.success() && printed.starts_with("psab_"),
        "{ok:?}"
    );
    let all = token(&[])?;
    ensure!(all.status.success(), "{all:?}");

    let store = Store::open(
        &StoreOptions::new(format!("sqlite://{}", db.display())),
        KeyRing::parse(&key).map_err(|e| anyhow::anyhow!("{e}"))?,
    )
    .await?;
    let tokens = store.tokens(None).await?;
    let ingest = tokens.iter().find(|t| t.name == "ingest");
    ensure!(
        ingest.is_some_and(|t| t.scopes == "events:write" && t.expires_at.is_some()),
        "{tokens:?}"
    );
    let cli = tokens.iter().find(|t| t.name == "cli");
    ensure!(
        cli.is_some_and(|t| t.scopes.split(' ').count() == 9 && t.expires_at.is_none()),
        "every scope, no expiry: {tokens:?}"
    );
    store.close().await;
    Ok(())
}
