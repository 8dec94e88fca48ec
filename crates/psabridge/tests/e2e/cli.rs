//! The `token` command: scopes and expiry checked and stored, mistakes named.

use std::process::Command;

use anyhow::{Context, Result, ensure};
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

/// `invite` and `password-link`: the operator's way to hand a person a link when no email
/// server is configured; a second link revokes the first; mistakes are named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_and_password_link_commands_print_single_links() -> Result<()> {
    use psabridge_identity::secret_token::token_hash;
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
    let run = |args: &[&str]| {
        let mut cmd = Command::new(BIN);
        cmd.arg(args[0])
            .arg("--config")
            .arg(&config)
            .args(&args[1..]);
        cmd.output()
    };
    let store = Store::open(
        &StoreOptions::new(format!("sqlite://{}", db.display())),
        KeyRing::parse(&key).map_err(|e| anyhow::anyhow!("{e}"))?,
    )
    .await?;
    store.create_partner("msp-a", "MSP A", 0).await?;
    let pat = store.create_user("pat@msp-a.test", "Pat", 0).await?;
    store.set_password_hash(pat, "phc").await?;

    for (args, named) in [
        (
            vec!["invite", "--partner", "nobody", "--email", "a@b.test"],
            "--partner",
        ),
        (
            vec!["invite", "--partner", "msp-a", "--email", "not-an-address"],
            "--email",
        ),
        (
            vec![
                "invite",
                "--partner",
                "msp-a",
                "--email",
                "a@b.test",
                "--role",
                "owner",
            ],
            "--role",
        ),
        (vec!["password-link", "--email", "nobody@b.test"], "--email"),
    ] {
        let out = run(&args)?;
        let err = String::from_utf8_lossy(&out.stderr);
        ensure!(
            !out.status.success() && err.contains(named),
            "{args:?}: {err}"
        );
    }

    let invite = |role: &'static str| {
        run(&[
            "invite",
            "--partner",
            "msp-a",
            "--email",
            "new@msp-a.test",
            "--role",
            role,
        ])
    };
    let first = invite("technician")?;
    ensure!(first.status.success(), "{first:?}");
    let first: serde_json::Value = serde_json::from_slice(&first.stdout)?;
    let second: serde_json::Value = serde_json::from_slice(&invite("admin")?.stdout)?;
    let (t1, t2) = (
        first["token"].as_str().unwrap_or_default(),
        second["token"].as_str().unwrap_or_default(),
    );
    ensure!(
        !t1.is_empty() && !t2.is_empty() && t1 != t2,
        "{first} {second}"
    );
    ensure!(
        store
            .invitation_by_token(&token_hash(t1), 1)
            .await?
            .is_none()
    );
    let (live, _) = store
        .invitation_by_token(&token_hash(t2), 1)
        .await?
        .context("the second link")?;
    ensure!(
        live.role == "admin" && live.partner_id == "msp-a",
        "{live:?}"
    );
    ensure!(store.user_by_email("new@msp-a.test").await?.is_none());
    // An account with a password gets no link.
    let out = run(&["invite", "--partner", "msp-a", "--email", "PAT@msp-a.test"])?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    ensure!(v.get("token").is_none() && v["note"].is_string(), "{v}");

    // A password link for Pat; a second revokes the first.
    let link = |_: ()| run(&["password-link", "--email", "pat@msp-a.test"]);
    let l1 = String::from_utf8(link(())?.stdout)?.trim().to_string();
    let l2 = String::from_utf8(link(())?.stdout)?.trim().to_string();
    ensure!(l1.len() == 64 && l1 != l2, "{l1} {l2}");
    ensure!(
        store
            .password_setup_user(&token_hash(&l1), 1)
            .await?
            .is_none()
    );
    ensure!(store.password_setup_user(&token_hash(&l2), 1).await? == Some(pat));
    store.close().await;
    Ok(())
}
