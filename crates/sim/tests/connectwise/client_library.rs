//! A public ConnectWise PSA client library (npm `connectwise-rest`) against the simulator.

use anyhow::{Result, ensure};
use psabridge_sim::connectwise::{
    Config, DEMO_CLIENT_ID, DEMO_COMPANY, DEMO_PRIVATE_KEY, DEMO_PUBLIC_KEY,
};
use reqwest::Method;
use serde_json::json;

use crate::common::start;

#[tokio::test]
async fn a_public_client_library_works_against_the_simulator() -> Result<()> {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/connectwise-node");
    if !dir.join("node_modules/connectwise-rest").exists() {
        eprintln!(
            "\n*** SKIPPED: the public client library check (connectwise-rest) did not run: run `npm ci` in clients/connectwise-node ***\n"
        );
        return Ok(());
    }
    let t = start(Config::default()).await?;
    // The check expects its first priorities request to be closed unanswered (CW_EXPECT_DROP).
    t.fault(json!({"kind": "drop", "count": 1, "method": "GET", "entity": "service/priorities"}))
        .await?;
    let out = tokio::process::Command::new("node")
        .arg("check.mjs")
        .current_dir(&dir)
        .env("CW_SITE", t.sim.base_url())
        .env("CW_COMPANY", DEMO_COMPANY)
        .env("CW_PUBLIC_KEY", DEMO_PUBLIC_KEY)
        .env("CW_PRIVATE_KEY", DEMO_PRIVATE_KEY)
        .env("CW_CLIENT_ID", DEMO_CLIENT_ID)
        .env("CW_EXPECT_DROP", "1")
        .output()
        .await;
    let out = match out {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "\n*** SKIPPED: the public client library check did not run: `node` is not installed ***\n"
            );
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        out.status.success(),
        "the client library check failed:\n{text}"
    );
    ensure!(text.contains("OK:"), "{text}");
    println!("{}", text.trim());
    // What the library did, as the simulator saw it.
    let stats = t.control(Method::GET, "stats", None).await?.body;
    let seen = |k: &str| stats["by_endpoint"][k].as_u64().unwrap_or(0);
    ensure!(seen("GET /login/companyinfo") >= 1, "{stats}");
    ensure!(seen("GET /company/companies") >= 4, "paging: {stats}");
    ensure!(seen("PATCH /service/tickets/{id}") >= 1, "{stats}");
    ensure!(stats["by_status"]["401"].as_u64() >= Some(1), "{stats}");
    ensure!(stats["by_status"]["dropped"] == 1, "{stats}");
    let ticket = t
        .sim
        .tickets()
        .into_iter()
        .find(|v| {
            v["externalXRef"]
                .as_str()
                .is_some_and(|r| r.starts_with("client-check-"))
        })
        .ok_or_else(|| anyhow::anyhow!("no ticket from the client"))?;
    ensure!(ticket["closedFlag"] == true, "{ticket}");
    let id = ticket["id"].as_i64().unwrap_or_default();
    ensure!(t.sim.notes_of(id).len() == 2, "{:?}", t.sim.notes_of(id));
    Ok(())
}
