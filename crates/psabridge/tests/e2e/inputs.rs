//! Input the API refuses and files it keeps private: bodies that do not say they are JSON,
//! event ids that are not strings, and the SQLite database readable by its owner only.

use anyhow::{Result, ensure};
use serde_json::{Value, json};

use crate::harness::{Db, Product, Sim};
use crate::on_both;

async fn events_must_say_they_are_json_and_ids_are_strings(db: Db) -> Result<()> {
    let sim = Sim::start().await?;
    let Some(p) = Product::start(&sim, db, "events_must_say_they_are_json").await? else {
        return Ok(());
    };
    let body = json!({"id": "typed", "client": "client-001", "type": "saas.too_many_downloads"})
        .to_string();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut req = p
            .http
            .post(format!("{}/api/v1/events", p.api()))
            .bearer_auth(p.token())
            .body(body.clone());
        if let Some(t) = content_type {
            req = req.header("content-type", t);
        }
        let r = req.send().await?;
        let status = r.status().as_u16();
        let ctype = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        ensure!(
            status == 415 && ctype == "application/problem+json",
            "{content_type:?}: {status} {ctype}"
        );
    }
    let (s, v) = p
        .post_events(
            &json!({"id": 12345, "client": "client-001", "type": "saas.too_many_downloads"}),
        )
        .await?;
    let errors: Vec<Value> = v["results"][0]["errors"]
        .as_array()
        .or_else(|| v["errors"].as_array())
        .cloned()
        .unwrap_or_default();
    ensure!(
        s == 422 && errors.iter().any(|e| e["path"] == "id"),
        "a numeric id is refused naming the field: {s} {v}"
    );
    p.cleanup().await;
    Ok(())
}
on_both!(events_must_say_they_are_json_and_ids_are_strings);

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_database_is_readable_by_its_owner_only() -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let sim = Sim::start().await?;
    let Some(p) = Product::start(&sim, Db::Sqlite, "sqlite_is_private").await? else {
        return Ok(());
    };
    for name in ["psabridge.db", "psabridge.db-wal", "psabridge.db-shm"] {
        let path = p.dir.join(name);
        if name == "psabridge.db" || path.exists() {
            let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
            ensure!(mode == 0o600, "{name}: {mode:o}");
        }
    }
    p.cleanup().await;
    Ok(())
}
