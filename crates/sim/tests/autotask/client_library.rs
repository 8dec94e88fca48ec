//! A public Autotask client library (npm `@apigrate/autotask-restapi`) against the simulator.

use anyhow::{Result, ensure};
use psabridge_sim::autotask::Config;

use crate::common::start;

#[tokio::test]
async fn a_public_client_library_works_against_the_simulator() -> Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/autotask-node");
    if !dir.join("node_modules/@apigrate/autotask-restapi").exists() {
        eprintln!(
            "\n*** SKIPPED: the public client library check (@apigrate/autotask-restapi) did not run: run `npm ci` in clients/autotask-node ***\n"
        );
        return Ok(());
    }
    let t = start(Config::default()).await?;
    let out = tokio::process::Command::new("node")
        .arg("check.mjs")
        .current_dir(&dir)
        .env("AT_BASE_URL", t.sim.zone_url())
        .env("AT_USER", &t.user)
        .env("AT_SECRET", &t.secret)
        .env("AT_CODE", &t.code)
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
    // The library did its own zone discovery against the simulator.
    let stats = t.sim.request_stats();
    ensure!(stats.by_entity.contains_key("zoneInformation"), "{stats:?}");
    Ok(())
}
