//! The state file.

use anyhow::{Result, ensure};
use psabridge_sim::autotask::Config;
use reqwest::Method;
use serde_json::json;

use crate::common::start;

#[tokio::test]
async fn a_state_file_keeps_data_across_restarts() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("autotask-sim.json");
    let config = Config {
        state_file: Some(path.clone()),
        ..Config::default()
    };
    let t = start(config.clone()).await?;
    let id = t.new_ticket("persisted").await?;
    t.call(
        Method::POST,
        &format!("Tickets/{id}/Notes"),
        Some(json!({"description": "kept", "noteType": 1, "publish": 1})),
    )
    .await?;
    // Saved after changes without waiting for shutdown (debounced).
    let mut saved = false;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if std::fs::read_to_string(&path).is_ok_and(|s| s.contains("persisted")) {
            saved = true;
            break;
        }
    }
    ensure!(saved, "the state file is written after a change");
    t.sim.clone().shutdown().await;
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    ensure!(
        leftovers.len() == 1,
        "written by rename, no temporary file left: {leftovers:?}"
    );

    let t2 = start(config.clone()).await?;
    let (_, v) = t2.call(Method::GET, &format!("Tickets/{id}"), None).await?;
    ensure!(v["item"]["title"] == "persisted", "{v}");
    let (_, v) = t2
        .call(Method::GET, &format!("Tickets/{id}/Notes"), None)
        .await?;
    ensure!(
        v["items"][0]["description"] == "kept",
        "the notes index is rebuilt: {v}"
    );
    let next = t2.new_ticket("after restart").await?;
    ensure!(next > id, "ids continue");
    let (_, a) = t2.call(Method::GET, &format!("Tickets/{id}"), None).await?;
    let (_, b) = t2
        .call(Method::GET, &format!("Tickets/{next}"), None)
        .await?;
    let (a, b) = (
        a["item"]["ticketNumber"].as_str().unwrap_or(""),
        b["item"]["ticketNumber"].as_str().unwrap_or(""),
    );
    ensure!(
        a[..9] != b[..9] || b.ends_with(".0002"),
        "numbers continue: {a} {b}"
    );
    t2.sim.shutdown().await;

    std::fs::write(&path, "not json")?;
    let bad = psabridge_sim::autotask::Simulator::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await?,
        config,
    )
    .await;
    ensure!(
        bad.is_err(),
        "an unreadable state file is an error, not a silent reset"
    );
    Ok(())
}
