//! Scenario `portal`: how long each portal page takes at an MSP's real size.
//!
//! The partner gets `--portal-clients` clients (a fifth of them mapped) and the Autotask
//! simulator `--portal-companies` more companies; a person signs in through the form, then each
//! page is requested `--portal-requests` times in a row. The time is the client's, on loopback:
//! the server's time plus a few tens of microseconds. Pages that read the PSA (the mapping
//! page's company search) include the simulator's answer, without added latency.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::{BenchArgs, Sut, client};

pub(super) async fn scenario_portal(args: &BenchArgs) -> Result<Value> {
    let sut = Sut::start(args, 0, None, 1_000_000).await?;
    let http = client()?;
    let (connection, token, partner) = sut.partner("autotask");
    let api = &sut.api;

    // A large PSA: many more companies to page through and search.
    let r = http
        .post(format!("{}/_sim/companies", sut.sim_url))
        .json(&json!({"count": args.portal_companies, "name_prefix": "Customer"}))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("adding companies to the simulator: {}", r.text().await?);
    }
    let first_company = r.json::<Value>().await?["first_id"]
        .as_i64()
        .context("the simulator's first new company")?;
    // Many clients, a fifth of them mapped (each mapping is checked in the PSA).
    for i in 0..args.portal_clients {
        let id = format!("bench-{i:05}");
        let r = http
            .put(format!("{api}/api/v1/partners/{partner}/clients/{id}"))
            .bearer_auth(&token)
            .json(&json!({"name": format!("Bench Client {i:05}")}))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("client {id}: {}", r.text().await?);
        }
        if i % 5 == 0 {
            let r = http
                .put(format!(
                    "{api}/api/v1/partners/{partner}/clients/{id}/mappings/{connection}"
                ))
                .bearer_auth(&token)
                .json(&json!({"company": (first_company + i as i64).to_string()}))
                .send()
                .await?;
            if !r.status().is_success() {
                bail!("mapping {id}: {}", r.text().await?);
            }
        }
    }

    // Redirects are not followed: the session cookie comes with the login's 303.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let cookie = sign_in(&browser, api, &sut.info["login"]).await?;
    let p = partner.as_str();
    let pages = [
        ("dashboard", format!("/p/{p}")),
        ("clients", format!("/p/{p}/clients")),
        ("clients, page 20", format!("/p/{p}/clients?page=20")),
        ("clients, searched", format!("/p/{p}/clients?q=Client+0123")),
        (
            "clients, not configured",
            format!("/p/{p}/clients?status=not_configured&page=10"),
        ),
        ("a client", format!("/p/{p}/clients/bench-00100")),
        ("delivery log", format!("/p/{p}/deliveries")),
        ("notification settings", format!("/p/{p}/notifications")),
        ("audit log", format!("/p/{p}/audit")),
        ("connections", format!("/p/{p}/connections")),
        (
            "connection credentials",
            format!("/p/{p}/connections/{connection}"),
        ),
        (
            "mapping (clients, paged)",
            format!("/p/{p}/connections/{connection}/mapping?page=5"),
        ),
        (
            "mapping, searched",
            format!("/p/{p}/connections/{connection}/mapping?q=Client+0123"),
        ),
        (
            "a company search in the PSA",
            format!(
                "/p/{p}/connections/{connection}/companies?for=bench-00100&search=Customer+1999"
            ),
        ),
        (
            "the PSA's companies, first page",
            format!("/p/{p}/connections/{connection}/companies?for=bench-00100"),
        ),
        (
            "ticket settings",
            format!("/p/{p}/connections/{connection}/defaults"),
        ),
        ("users", format!("/p/{p}/users")),
    ];
    let mut figures = Vec::new();
    let mut worst_p99 = 0u64;
    for (name, path) in &pages {
        let mut hist = Histogram::<u64>::new(3)?;
        for _ in 0..args.portal_requests {
            let started = Instant::now();
            let r = browser
                .get(format!("{api}{path}"))
                .header("cookie", &cookie)
                .send()
                .await?;
            let status = r.status();
            let body = r.bytes().await?;
            if status.as_u16() != 200 {
                bail!(
                    "{name} ({path}): {status}: {}",
                    String::from_utf8_lossy(&body)
                );
            }
            hist.record(started.elapsed().as_micros() as u64)?;
        }
        let p99 = hist.value_at_quantile(0.99);
        worst_p99 = worst_p99.max(p99);
        figures.push(
            json!({"page": name, "p50_ms": hist.value_at_quantile(0.5) as f64 / 1000.0,
                            "p99_ms": p99 as f64 / 1000.0, "max_ms": hist.max() as f64 / 1000.0}),
        );
    }
    Ok(json!({
        "scenario": "portal",
        "clients": args.portal_clients,
        "psa_companies": args.portal_companies,
        "requests_per_page": args.portal_requests,
        "worst_p99_ms": worst_p99 as f64 / 1000.0,
        "pages": figures,
    }))
}

/// Sign in through the portal's form, as a browser does; the session cookie.
async fn sign_in(http: &reqwest::Client, api: &str, login: &Value) -> Result<String> {
    let r = http.get(format!("{api}/login")).send().await?;
    let form_cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("psab_login_csrf="))
        .and_then(|c| c.split(';').next())
        .context("the login form's cookie")?
        .to_string();
    let page = r.text().await?;
    let token = page
        .split("name=\"login_csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("the login form's token")?
        .to_string();
    let r = http
        .post(format!("{api}/login"))
        .header("cookie", form_cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("email", login["email"].as_str().unwrap_or_default())
                .append_pair("password", login["password"].as_str().unwrap_or_default())
                .append_pair("login_csrf", &token)
                .finish(),
        )
        .send()
        .await?;
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("psab_session=") || c.starts_with("__Host-psab_session="))
        .and_then(|c| c.split(';').next())
        .map(str::to_string)
        .with_context(|| format!("signing in: {}", r.status()))
}
