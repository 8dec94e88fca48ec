//! The partner portal in a real browser: Playwright (`playwright-core`, pinned in
//! `clients/portal-node`) drives Debian's Chromium against a real `psabridge demo`, with
//! axe-core checking every screen. The scenarios are in `clients/portal-node/portal.mjs`;
//! screenshots of each screen land in `target/portal-screenshots/`.
//!
//! Without Chromium or the npm packages the test says SKIPPED loudly and passes, except when
//! `PSABRIDGE_TEST_REQUIRE_BROWSER=1` (CI sets it), where that is a failure.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::email::SmtpServer;
use crate::harness::{Db, Product, Sim};
use anyhow::{Context, Result, bail};

/// One spec's budget: it signs in, connects a PSA and waits for tickets.
const SPEC_LIMIT: Duration = Duration::from_secs(240);

fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/portal-node")
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// `None` when the browser and the packages are here; else why not.
pub fn browser_missing() -> Option<String> {
    let modules = client_dir().join("node_modules/playwright-core");
    if !modules.exists() {
        return Some(format!(
            "{} is missing: run `npm ci` in clients/portal-node (./scripts/test does)",
            modules.display()
        ));
    }
    if !chromium().exists() {
        return Some(format!(
            "no Chromium at {} (Debian's package `chromium`; .ci/run installs it; CHROMIUM names another)",
            chromium().display()
        ));
    }
    None
}

/// Skip loudly (`Ok(true)`), or fail when CI requires the browser.
pub fn skip_without_browser() -> Result<bool> {
    let Some(reason) = browser_missing() else {
        return Ok(false);
    };
    if std::env::var("PSABRIDGE_TEST_REQUIRE_BROWSER").as_deref() == Ok("1") {
        bail!("the portal's browser tests are required here, but: {reason}");
    }
    eprintln!("\n*** SKIPPED (portal browser tests): {reason} ***\n");
    Ok(true)
}

/// Run `clients/portal-node/<spec>` against `product`; its whole output on failure. With
/// `smtp_out`, the spec reads the mail the demo sent from the recording SMTP server's file.
pub async fn run_spec(
    product: &Product,
    spec: &str,
    smtp_out: Option<&Path>,
    idp_port: Option<u16>,
) -> Result<String> {
    let name = spec.trim_end_matches(".mjs");
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/portal-screenshots")
        .join(name);
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(client_dir().join(spec))
        .current_dir(client_dir())
        .env("PSABRIDGE_URL", product.api())
        .env("DEMO_JSON", product.dir.join("demo.json"))
        .env("ARTIFACTS_DIR", &artifacts)
        .env("CHROMIUM", chromium())
        .env(
            "SMTP_OUT",
            smtp_out.map(Path::as_os_str).unwrap_or_default(),
        )
        .env(
            "IDP_PORT",
            idp_port.map(|p| p.to_string()).unwrap_or_default(),
        )
        // Only the demo on 127.0.0.1 is ever called.
        .env("NO_PROXY", "*")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .kill_on_drop(true);
    let out = tokio::time::timeout(SPEC_LIMIT, cmd.output())
        .await
        .with_context(|| format!("{spec} ran longer than {SPEC_LIMIT:?}"))?
        .with_context(|| format!("running node {spec}"))?;
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("{spec} failed ({}):\n{text}", out.status);
    }
    Ok(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_scenarios_in_chromium() -> Result<()> {
    if skip_without_browser()? {
        return Ok(());
    }
    // Email goes to the real SMTP test server: invitations, and the notifications of (c).
    let Some(smtp) = SmtpServer::start("portal_scenarios_in_chromium")? else {
        if std::env::var("PSABRIDGE_TEST_REQUIRE_BROWSER").as_deref() == Ok("1") {
            bail!(
                "the portal's browser tests are required here, but the SMTP test server is missing"
            );
        }
        return Ok(());
    };
    let sim = Sim::start().await?;
    let smtp_url = smtp.url();
    // The spec's identity provider listens on a port the demo may reach (its outbound policy
    // refuses loopback otherwise): free when asked, taken by the spec a little later. Another
    // test can take it in between; then both start again on another port.
    let mut attempt = 0;
    let outcome = loop {
        attempt += 1;
        let idp_port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let allow = format!("127.0.0.1:{idp_port}");
        let product = Product::start_with(
            &sim,
            Db::Sqlite,
            "portal",
            &["--smtp-url", &smtp_url, "--outbound-allow", &allow],
        )
        .await?
        .context("the demo did not start")?;
        let outcome = run_spec(&product, "portal.mjs", Some(smtp.out()), Some(idp_port)).await;
        product.cleanup().await;
        match outcome {
            Err(e) if attempt < 3 && format!("{e:#}").contains("EADDRINUSE") => {
                eprintln!("the identity provider's port {idp_port} was taken; starting again");
            }
            other => break other,
        }
    };
    let output = outcome?;
    eprintln!("{output}");
    Ok(())
}
