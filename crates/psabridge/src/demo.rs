//! `psabridge demo`: the whole product in one process on 127.0.0.1, with the Autotask
//! simulator, an embedded SQLite file and a seeded demo partner.
//!
//! The first start seeds; later starts on the same data directory keep everything (the
//! simulator's tickets too, in its state file) and only refresh what moved (ports).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use psabridge_core::catalog::Catalog;
use psabridge_core::secret::Secret;
use psabridge_core::settings::{CompanyContact, EventRule, GroupingMode, PsaKind, TicketDefaults};
use psabridge_psa::ListItem;
use psabridge_sim::autotask as sim;
use psabridge_store::config::{MappingRow, NewConnection};
use psabridge_store::seal::KeyRing;
use psabridge_store::{Store, StoreError};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;

use crate::app;

/// Options of `psabridge demo`.
pub struct DemoOptions {
    pub data_dir: PathBuf,
    pub listen: String,
    pub sim_listen: String,
    /// Latency the simulator adds to every call, to feel like the real thing.
    pub sim_latency_ms: u64,
    /// An Autotask simulator running elsewhere (its own process), instead of the built-in one.
    pub sim_url: Option<String>,
    /// A database other than the data directory's SQLite file.
    pub database_url: Option<String>,
    /// Our share of the PSA's hourly request limit.
    pub psa_requests_per_hour: Option<u32>,
    /// Requests per rolling hour the built-in simulator allows.
    pub sim_hourly_limit: u32,
    pub synchronous: psabridge_store::Synchronous,
}

/// The simulator the demo talks to: its own, or one running elsewhere.
enum SimHandle {
    Inside(sim::Simulator),
    Outside { base_url: String },
}

impl SimHandle {
    fn base_url(&self) -> String {
        match self {
            SimHandle::Inside(s) => s.base_url(),
            SimHandle::Outside { base_url } => base_url.trim_end_matches('/').to_string(),
        }
    }

    fn zone_url(&self) -> String {
        match self {
            SimHandle::Inside(s) => s.zone_url(),
            SimHandle::Outside { base_url } => {
                format!("{}/ATServicesRest/", base_url.trim_end_matches('/'))
            }
        }
    }
}

pub const PARTNER: &str = "demo-msp";
const CLIENTS: [(&str, &str); 4] = [
    ("client-001", "Acme Dental Group"),
    ("client-002", "Blue Harbor Legal"),
    ("client-003", "Cedar Ridge Logistics"),
    ("client-004", "Tailspin Toys (not mapped)"),
];

/// Run the demo until Ctrl-C.
pub async fn run(opts: DemoOptions) -> Result<()> {
    std::fs::create_dir_all(&opts.data_dir)
        .with_context(|| format!("--data-dir: cannot create {}", opts.data_dir.display()))?;
    let keys = demo_key(&opts.data_dir.join("secret.key"))?;

    let sim_config = sim::Config {
        state_file: Some(opts.data_dir.join("autotask-sim.json")),
        base_latency_ms: opts.sim_latency_ms,
        hourly_limit: opts.sim_hourly_limit,
        ..sim::Config::default()
    };
    let user = sim_config.api_users[0].clone();
    let simulator = match &opts.sim_url {
        Some(url) => SimHandle::Outside {
            base_url: url.clone(),
        },
        None => {
            let sim_listener = TcpListener::bind(&opts.sim_listen)
                .await
                .with_context(|| format!("--sim-listen: cannot listen on {}", opts.sim_listen))?;
            SimHandle::Inside(
                sim::Simulator::start(sim_listener, sim_config)
                    .await
                    .context("starting the Autotask simulator")?,
            )
        }
    };

    let listener = TcpListener::bind(&opts.listen)
        .await
        .with_context(|| format!("--listen: cannot listen on {}", opts.listen))?;
    let api_url = format!("http://{}", listener.local_addr()?);
    let mut store_options =
        psabridge_store::StoreOptions::new(opts.database_url.clone().unwrap_or_else(|| {
            format!("sqlite://{}", opts.data_dir.join("psabridge.db").display())
        }));
    store_options.synchronous = opts.synchronous;
    let catalog = crate::config::catalog(None)?;
    let engine_config = psabridge_engine::EngineConfig {
        sweep_interval: Duration::from_secs(15),
        sweep_age: Duration::from_secs(15),
        ..Default::default()
    };
    let running = app::start(
        &store_options,
        keys,
        catalog.clone(),
        engine_config,
        listener,
        Some(api_url.clone()),
    )
    .await?;

    let demo_file = opts.data_dir.join("demo.json");
    let info = match seeded(&running.store).await? {
        false => {
            let info = seed(
                &running,
                &simulator,
                &user,
                &catalog,
                &api_url,
                opts.psa_requests_per_hour,
            )
            .await?;
            write_private(&demo_file, &serde_json::to_string_pretty(&info)?)?;
            info
        }
        true => {
            let info = refresh(
                &running,
                &simulator,
                &demo_file,
                &api_url,
                opts.psa_requests_per_hour,
            )
            .await?;
            write_private(&demo_file, &serde_json::to_string_pretty(&info)?)?;
            info
        }
    };

    print_welcome(&info, &demo_file);
    app::stop_signal().await;
    eprintln!("stopping…");
    running.stop().await;
    if let SimHandle::Inside(s) = simulator {
        s.shutdown().await;
    }
    Ok(())
}

/// The demo's key file: made once, readable by its owner only.
fn demo_key(path: &Path) -> Result<KeyRing> {
    if !path.exists() {
        write_private(path, &KeyRing::generate_key())?;
    }
    crate::config::read_key_file(path)
}

/// Write a file only its owner can read (it holds a token or a key).
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

async fn seeded(store: &Store) -> Result<bool> {
    match store.partner(PARTNER).await {
        Ok(_) => Ok(true),
        Err(StoreError::NotFound(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Pick the list item whose label contains one of `wanted` (case-insensitive), else the first
/// active one.
fn pick(lists: &psabridge_psa::PsaLists, field: &str, wanted: &[&str]) -> Option<String> {
    let items: Vec<&ListItem> = lists.get(field)?.iter().filter(|i| i.active).collect();
    wanted
        .iter()
        .find_map(|w| {
            items
                .iter()
                .find(|i| i.label.to_lowercase().contains(&w.to_lowercase()))
        })
        .or_else(|| items.first())
        .map(|i| i.id.clone())
}

async fn seed(
    running: &app::Running,
    simulator: &SimHandle,
    user: &sim::ApiUser,
    catalog: &Catalog,
    api_url: &str,
    requests_per_hour: Option<u32>,
) -> Result<Value> {
    let store = &running.store;
    let engine = &running.engine;
    let t = now();
    store.create_partner(PARTNER, "Demo MSP", t).await?;
    let token = psabridge_web::auth::new_token();
    store
        .create_token(
            &psabridge_web::auth::token_hash(&token),
            Some(PARTNER),
            "demo",
            t,
        )
        .await?;
    let vendor_token = psabridge_web::auth::new_token();
    store
        .create_token(
            &psabridge_web::auth::token_hash(&vendor_token),
            None,
            "demo vendor",
            t,
        )
        .await?;

    let mut settings = Map::new();
    settings.insert("username".into(), json!(user.username));
    settings.insert("zone_discovery_url".into(), json!(simulator.base_url()));
    if let Some(n) = requests_per_hour {
        settings.insert("requests_per_hour".into(), json!(n));
    }
    let mut secrets = std::collections::BTreeMap::new();
    secrets.insert("secret".to_string(), Secret::new(user.secret.clone()));
    secrets.insert(
        "integration_code".to_string(),
        Secret::new(user.integration_code.clone()),
    );
    let conn_id = store
        .create_connection(
            &NewConnection {
                partner_id: PARTNER.into(),
                kind: PsaKind::Autotask,
                name: "Autotask (simulator)".into(),
                grouping: GroupingMode::User,
                settings,
                secrets,
            },
            t,
        )
        .await?;
    let connection = store.connection(PARTNER, conn_id).await?;
    let connected = psabridge_engine::connect::connect(engine, &connection, Some(api_url))
        .await
        .context("connecting the demo partner to the simulator")?;
    let connector = engine
        .connectors
        .get(store, &store.connection(PARTNER, conn_id).await?)
        .await?;

    // Companies: three customers to map, and the catch-all.
    let mut companies = Vec::new();
    let mut cursor = None;
    loop {
        let page = connector.companies(None, cursor.as_deref()).await?;
        companies.extend(page.companies);
        match page.next {
            Some(n) if companies.len() < 500 => cursor = Some(n),
            _ => break,
        }
    }
    let catch_all = companies
        .iter()
        .find(|c| c.name.to_lowercase().contains("default"))
        .cloned()
        .context("the simulator has no catch-all (\"Default …\") company")?;
    let customers: Vec<_> = companies
        .iter()
        .filter(|c| c.id != "0" && c.id != catch_all.id && c.active)
        .take(3)
        .cloned()
        .collect();
    if customers.len() < 3 {
        bail!("the simulator has fewer than three customer companies");
    }
    let catch_all_contact = connector
        .contacts(&catch_all.id)
        .await?
        .into_iter()
        .next()
        .map(|c| c.id);

    let lists = &connected.lists;
    let mut defaults = TicketDefaults::new();
    for (field, hints) in [
        ("queue", &["monitoring", "alert"][..]),
        ("status", &["new"]),
        ("priority", &["medium"]),
        ("source", &["monitor", "integration", "other"]),
        ("ticket_type", &["alert", "incident"]),
    ] {
        if let Some(id) = pick(lists, field, hints) {
            defaults.set(field, id);
        }
    }
    store
        .update_connection(
            conn_id,
            None,
            None,
            None,
            None,
            Some(Some(&CompanyContact {
                company_id: catch_all.id.clone(),
                contact_id: catch_all_contact.clone(),
            })),
            Some(&defaults),
            now(),
        )
        .await?;
    store.set_default_connection(PARTNER, Some(conn_id)).await?;

    // Rules: every event type tickets; dark-web events go to a security queue if there is one.
    let security_queue = pick(lists, "queue", &["security"]);
    for et in catalog.iter() {
        let fields = if et.category.to_lowercase().contains("dark web") {
            let mut f = TicketDefaults::new();
            if let Some(q) = &security_queue {
                f.set("queue", q.clone());
            }
            if let Some(p) = pick(lists, "priority", &["high"]) {
                f.set("priority", p);
            }
            f
        } else {
            TicketDefaults::default()
        };
        store
            .put_rule(
                conn_id,
                &et.key,
                &EventRule {
                    create_ticket: true,
                    fields,
                },
            )
            .await?;
    }

    let mut clients = Vec::new();
    for (i, (id, name)) in CLIENTS.iter().enumerate() {
        store.put_client(PARTNER, id, name, now()).await?;
        let company = customers.get(i).filter(|_| i < 3);
        if let Some(company) = company {
            let contact = connector
                .contacts(&company.id)
                .await?
                .into_iter()
                .next()
                .map(|c| c.id);
            store
                .put_mapping(
                    PARTNER,
                    &MappingRow {
                        connection_id: conn_id,
                        client_id: id.to_string(),
                        company_id: company.id.clone(),
                        default_contact_id: contact,
                        create_tickets: true,
                        mapped_at: now(),
                    },
                    Some(name),
                )
                .await?;
        }
        clients.push(json!({
            "id": id,
            "name": name,
            "psa_company_id": company.map(|c| c.id.clone()),
            "psa_company_name": company.map(|c| c.name.clone()),
        }));
    }

    Ok(json!({
        "api_url": api_url,
        "api_token": token,
        "vendor_token": vendor_token,
        "partner": PARTNER,
        "connection": conn_id,
        "clients": clients,
        "catch_all": {"company_id": catch_all.id, "company_name": catch_all.name, "contact_id": catch_all_contact},
        "event_types": catalog.iter().map(|t| t.key.clone()).collect::<Vec<_>>(),
        "simulators": {"autotask": sim_json(simulator, user)},
    }))
}

fn sim_json(simulator: &SimHandle, user: &sim::ApiUser) -> Value {
    json!({
        "base_url": simulator.base_url(),
        "zone_url": simulator.zone_url(),
        "username": user.username,
        "secret": user.secret,
        "integration_code": user.integration_code,
        "control_url": format!("{}/_sim", simulator.base_url()),
    })
}

/// A later start: keep the data, point the connection at the simulator's (possibly new) port,
/// and rewrite demo.json with the current URLs.
async fn refresh(
    running: &app::Running,
    simulator: &SimHandle,
    demo_file: &Path,
    api_url: &str,
    requests_per_hour: Option<u32>,
) -> Result<Value> {
    let store = &running.store;
    let mut info: Value = std::fs::read_to_string(demo_file)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .context("the data directory was seeded but demo.json is missing or unreadable; remove the data directory to start afresh")?;
    let user = sim::Config::default().api_users[0].clone();
    for mut c in store.connections(Some(PARTNER)).await? {
        let rph = requests_per_hour.map(|n| json!(n));
        if c.settings.get("zone_discovery_url").and_then(Value::as_str)
            != Some(&simulator.base_url())
            || (rph.is_some() && c.settings.get("requests_per_hour") != rph.as_ref())
        {
            c.settings
                .insert("zone_discovery_url".into(), json!(simulator.base_url()));
            if let Some(n) = rph {
                c.settings.insert("requests_per_hour".into(), n);
            }
            store
                .update_connection(c.id, None, None, None, Some(&c.settings), None, None, now())
                .await?;
        }
    }
    if info["api_url"].as_str() != Some(api_url) {
        // The API moved: the PSA's webhook still calls the old address. Register a new one.
        for c in store.connections(Some(PARTNER)).await? {
            store
                .set_connection_webhook(c.id, None, None, None, now())
                .await?;
            let c = store.connection(PARTNER, c.id).await?;
            if let Err(e) =
                psabridge_engine::connect::connect(&running.engine, &c, Some(api_url)).await
            {
                eprintln!("warning: reconnecting the demo connection failed: {e}");
            }
        }
    }
    info["api_url"] = json!(api_url);
    info["simulators"]["autotask"] = sim_json(simulator, &user);
    Ok(info)
}

fn print_welcome(info: &Value, demo_file: &Path) {
    let api = info["api_url"].as_str().unwrap_or_default();
    let token = info["api_token"].as_str().unwrap_or_default();
    println!("PSA Bridge demo is running.");
    println!("  API:        {api}  (OpenAPI: {api}/api/v1/openapi.json)");
    println!(
        "  Autotask simulator: {}",
        info["simulators"]["autotask"]["base_url"]
            .as_str()
            .unwrap_or_default()
    );
    println!("  Everything a script needs: {}", demo_file.display());
    println!();
    println!("Post an event:");
    println!(
        "  curl -s -X POST {api}/api/v1/events -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\\n    -d '{{\"id\":\"evt-1\",\"client\":\"client-001\",\"type\":\"saas.too_many_downloads\",\"user\":{{\"email\":\"someone@example.com\"}}}}'"
    );
    println!("Then see its ticket:");
    println!("  curl -s {api}/api/v1/events/evt-1 -H 'Authorization: Bearer {token}'");
    println!();
    println!("Ctrl-C stops the demo; starting it again on the same --data-dir keeps everything.");
}
