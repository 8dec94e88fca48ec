//! A public HaloPSA client library (PyPI `HaloPSA`, in `clients/halopsa-python`) against the
//! simulator.

use anyhow::{Result, ensure};
use psabridge_sim::halopsa::Config;

use crate::common::start;

#[tokio::test]
async fn a_public_client_library_works_against_the_simulator() -> Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/halopsa-python");
    let python = dir.join(".venv/bin/python");
    let skip = |why: &str| {
        eprintln!(
            "\n*** SKIPPED: the public client library check (PyPI HaloPSA) did not run: {why}: run `python3 -m venv .venv && .venv/bin/pip install --require-hashes --only-binary=:all: -r requirements.txt` in clients/halopsa-python ***\n"
        );
    };
    if !python.exists() {
        skip("its virtual environment is missing");
        return Ok(());
    }
    let t = start(Config::default()).await?;
    let c = t.sim.config().api_clients[0].clone();
    let out = tokio::process::Command::new(&python)
        .arg("check.py")
        .current_dir(&dir)
        .env("HALO_SIM_URL", t.sim.base_url())
        .env("HALO_TENANT", &t.sim.config().tenant)
        .env("HALO_CLIENT_ID", &c.client_id)
        .env("HALO_SECRET", &c.client_secret)
        .output()
        .await;
    let out = match out {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            skip("its Python is not installed");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.code() == Some(3) && text.contains("NOT INSTALLED") {
        skip(text.trim());
        return Ok(());
    }
    ensure!(
        out.status.success(),
        "the client library check failed:\n{text}"
    );
    ensure!(text.contains("OK:"), "{text}");
    eprintln!("{}", text.trim());

    // What the library did is in the simulator: the ticket, its note and its close.
    let ticket = t
        .sim
        .tickets()
        .into_iter()
        .find(|x| x["supplier_reference"] == "client-check-1");
    ensure!(
        ticket.as_ref().is_some_and(|x| x["hasbeenclosed"] == true),
        "{ticket:?}"
    );
    let id = ticket.and_then(|x| x["id"].as_i64()).unwrap_or_default();
    let notes = t.sim.actions_of(id);
    ensure!(
        notes.len() == 1 && notes[0]["hiddenfromuser"] == true,
        "{notes:?}"
    );
    let (_, stats) = t.control(reqwest::Method::GET, "stats", None).await?;
    let by = &stats["by_endpoint"];
    for key in [
        "POST /auth/token",
        "GET /api/Client",
        "GET /api/Site",
        "GET /api/Users",
        "GET /api/Status",
        "POST /api/Tickets",
        "POST /api/Actions",
        "GET /api/Tickets",
    ] {
        ensure!(
            by[key].as_u64().unwrap_or(0) > 0,
            "{key} was not called: {stats}"
        );
    }
    Ok(())
}
