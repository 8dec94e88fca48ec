//! `psabridge demo`: the whole product in one process on 127.0.0.1, with a simulator of each
//! PSA (Autotask, HaloPSA, Kaseya BMS, ConnectWise), an embedded SQLite file and one seeded
//! demo partner per PSA.
//!
//! The first start seeds; later starts on the same data directory keep everything (the
//! Autotask simulator's tickets too, in its state file) and only refresh what moved (ports).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use psabridge_core::billing::{ClientBilling, ServiceDefaults};
use psabridge_core::catalog::Catalog;
use psabridge_core::settings::{CompanyContact, EventRule, GroupingMode, PsaKind, TicketDefaults};
use psabridge_psa::{Company, ListItem, PsaLists};
use psabridge_store::billing::BillingService;
use psabridge_store::config::{MappingRow, NewConnection};
use psabridge_store::seal::KeyRing;
use psabridge_store::{Store, StoreError};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::app;
use crate::sims::{self, SimOptions};

/// Options of `psabridge demo`.
pub struct DemoOptions {
    pub data_dir: PathBuf,
    pub listen: String,
    /// Address of the Autotask simulator; the other simulators take the next ports (or any
    /// free port when this one is 0).
    pub sim_listen: String,
    /// `--metrics-listen` (`None`: the default address, if free).
    pub metrics_listen: Option<String>,
    /// Latency the simulators add to every call, to feel like the real thing.
    pub sim_latency_ms: u64,
    /// Simulators running elsewhere (their own processes), instead of built-in ones.
    pub sim_urls: BTreeMap<&'static str, String>,
    /// A database other than the data directory's SQLite file.
    pub database_url: Option<String>,
    /// Our share of Autotask's hourly request limit.
    pub psa_requests_per_hour: Option<u32>,
    /// Requests per rolling hour the built-in Autotask simulator allows.
    pub sim_hourly_limit: u32,
    pub synchronous: psabridge_store::Synchronous,
    /// The PSAs to run a simulator and a demo partner for (empty: all four).
    pub psas: Vec<PsaKind>,
    /// The SMTP server of the email channel (`--smtp-url`); without it email stays off, and
    /// emails to people (invitations) are written to `<data_dir>/mail` instead.
    pub smtp: Option<psabridge_engine::mail::SmtpConfig>,
    /// The sender of the demo's emails.
    pub smtp_from: String,
    /// More addresses PSA and identity-provider URLs may reach (`--outbound-allow`).
    pub outbound_allow: Vec<psabridge_core::outbound::Allowed>,
    /// Nothing off this machine is called (`--outbound-local-only`).
    pub outbound_local_only: bool,
    /// How long in-flight deliveries may take to finish at shutdown.
    pub drain_timeout: Duration,
}

/// A simulator the demo talks to: its own, or one running elsewhere.
enum SimHandle {
    Inside(sims::Running),
    Outside { base_url: String },
}

impl SimHandle {
    fn base_url(&self) -> String {
        match self {
            SimHandle::Inside(s) => s.base_url(),
            SimHandle::Outside { base_url } => base_url.trim_end_matches('/').to_string(),
        }
    }
}

/// The demo partners: one per PSA. The Autotask one keeps the id the demo always had.
pub const PARTNERS: [(PsaKind, &str, &str); 4] = [
    (PsaKind::Autotask, "demo-msp", "Demo MSP (Autotask)"),
    (PsaKind::HaloPsa, "demo-halo", "Demo MSP (HaloPSA)"),
    (PsaKind::KaseyaBms, "demo-bms", "Demo MSP (Kaseya BMS)"),
    (PsaKind::ConnectWise, "demo-cw", "Demo MSP (ConnectWise)"),
];
/// The contract service the demo bills usage as (the Autotask simulator seeds it on its
/// recurring contracts).
const DEMO_SERVICE: &str = "Managed Security Seat";

const CLIENTS: [(&str, &str); 4] = [
    ("client-001", "Acme Dental Group"),
    ("client-002", "Blue Harbor Legal"),
    ("client-003", "Cedar Ridge Logistics"),
    ("client-004", "Tailspin Toys (not mapped)"),
];

/// Where the simulator of the `n`th PSA listens: the next ports after `--sim-listen`.
fn sim_address(base: &str, n: u16) -> String {
    match base.rsplit_once(':') {
        Some((host, port)) => match port.parse::<u16>() {
            Ok(0) => format!("{host}:0"),
            Ok(p) => format!("{host}:{}", p.saturating_add(n)),
            Err(_) => base.to_string(),
        },
        None => base.to_string(),
    }
}

/// The `[outbound] allow` entries of one simulator: each address of its host, on its port.
async fn sim_addresses(base_url: &str) -> Result<Vec<psabridge_core::outbound::Allowed>> {
    let url = reqwest::Url::parse(base_url)
        .with_context(|| format!("simulator URL '{base_url}' is not a URL"))?;
    let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']);
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("simulator URL '{base_url}': cannot resolve {host}"))?;
    Ok(addrs
        .map(|a| psabridge_core::outbound::Allowed {
            network: a.ip().into(),
            port: Some(port),
        })
        .collect())
}

/// Run the demo until Ctrl-C.
pub async fn run(opts: DemoOptions) -> Result<()> {
    std::fs::create_dir_all(&opts.data_dir)
        .with_context(|| format!("--data-dir: cannot create {}", opts.data_dir.display()))?;
    let keys = demo_key(&opts.data_dir.join("secret.key"))?;

    let mut simulators: Vec<(PsaKind, SimHandle)> = Vec::new();
    for (n, (kind, _, _)) in PARTNERS.iter().enumerate() {
        if !opts.psas.is_empty() && !opts.psas.contains(kind) {
            continue;
        }
        let handle = match opts.sim_urls.get(kind.as_str()) {
            Some(url) => SimHandle::Outside {
                base_url: url.clone(),
            },
            None => {
                let addr = sim_address(&opts.sim_listen, n as u16);
                let listener = TcpListener::bind(&addr).await.with_context(|| {
                    format!(
                        "--sim-listen: the {} simulator cannot listen on {addr}",
                        kind.display_name()
                    )
                })?;
                let sim_opts = SimOptions {
                    latency_ms: opts.sim_latency_ms,
                    state_file: (*kind == PsaKind::Autotask)
                        .then(|| opts.data_dir.join("autotask-sim.json")),
                    hourly_limit: Some(opts.sim_hourly_limit),
                    ..Default::default()
                };
                SimHandle::Inside(sims::Running::start(*kind, listener, &sim_opts).await?)
            }
        };
        simulators.push((*kind, handle));
    }

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
    // The demo calls its simulators over plain http on this machine: it allows exactly
    // them, and nothing else that is not public.
    let mut allow = opts.outbound_allow.clone();
    for (_, sim) in &simulators {
        allow.extend(sim_addresses(&sim.base_url()).await?);
    }
    let outbound = psabridge_core::outbound::OutboundPolicy {
        allow_http: true,
        allow,
        own_ports: vec![listener.local_addr()?.port()],
        local_only: opts.outbound_local_only,
        ..psabridge_core::outbound::OutboundPolicy::strict()
    };
    let engine_config = psabridge_engine::EngineConfig {
        outbound,
        sweep_interval: Duration::from_secs(15),
        sweep_age: Duration::from_secs(15),
        // Assets reported to the demo reach its PSAs within seconds.
        asset_sync_interval: Duration::from_secs(10),
        smtp: opts.smtp.clone(),
        drain_timeout: opts.drain_timeout,
        ..Default::default()
    };
    // Without an SMTP server, account emails (invitations and their links) are written to
    // the data directory, so a person invited in the demo can still read theirs.
    let account_mailer: Option<Arc<dyn psabridge_engine::mail::Mailer>> = match &opts.smtp {
        Some(_) => None,
        None => Some(Arc::new(
            psabridge_engine::mail::DirMailer::new(opts.data_dir.join("mail"), &opts.smtp_from)
                .map_err(|e| anyhow::anyhow!("--smtp-from: {e}"))?,
        )),
    };
    let running = app::start(
        &store_options,
        keys,
        catalog.clone(),
        engine_config,
        listener,
        Some(api_url.clone()),
        app::PeopleOptions {
            account_mailer,
            ..Default::default()
        },
    )
    .await?;
    let metrics_url = match app::bind_metrics(opts.metrics_listen.as_deref()).await? {
        Some(l) => Some(format!("http://{}/metrics", running.serve_metrics(l)?)),
        None => None,
    };

    let described: BTreeMap<PsaKind, Value> = simulators
        .iter()
        .map(|(k, h)| (*k, sims::describe(*k, &h.base_url())))
        .collect();
    let demo_file = opts.data_dir.join("demo.json");
    let mail_dir = opts
        .smtp
        .is_none()
        .then(|| opts.data_dir.join("mail").display().to_string());
    let mut info = match seeded(&running.store).await? {
        false => {
            seed(
                &running,
                &described,
                &catalog,
                &api_url,
                opts.psa_requests_per_hour,
            )
            .await?
        }
        true => {
            refresh(
                &running,
                &described,
                &demo_file,
                &api_url,
                opts.psa_requests_per_hour,
            )
            .await?
        }
    };
    info["mail_dir"] = json!(mail_dir);
    info["metrics_url"] = json!(metrics_url);
    info["config_file"] = json!(write_cli_config(
        &opts.data_dir,
        opts.database_url.as_deref()
    )?);
    write_private(&demo_file, &serde_json::to_string_pretty(&info)?)?;

    print_welcome(&info, &demo_file);
    app::stop_signal().await;
    eprintln!("stopping…");
    app::drain(running).await;
    for (_, s) in simulators {
        if let SimHandle::Inside(s) = s {
            s.shutdown().await;
        }
    }
    Ok(())
}

/// A configuration file for the command-line tools (`billing sync`, `invite`, `token`) on the
/// demo's database and key; its path.
fn write_cli_config(data_dir: &Path, database_url: Option<&str>) -> Result<String> {
    let dir = data_dir
        .canonicalize()
        .with_context(|| format!("--data-dir: {}", data_dir.display()))?;
    let url = database_url
        .map(str::to_string)
        .unwrap_or_else(|| format!("sqlite://{}", dir.join("psabridge.db").display()));
    let path = dir.join("psabridge.toml");
    let text = format!(
        "# Written by `psabridge demo` so that the command-line tools work on the demo's data:\n\
         # psabridge billing sync --config {path} --partner demo-msp\n\
         database_url = {url:?}\n\
         secret_key_file = {key:?}\n",
        path = path.display(),
        key = dir.join("secret.key").display().to_string(),
    );
    write_private(&path, &text)?;
    Ok(path.display().to_string())
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

fn now() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn seeded(store: &Store) -> Result<bool> {
    for (_, id, _) in PARTNERS {
        match store.partner(id).await {
            Ok(_) => return Ok(true),
            Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(false)
}

/// Words that pick a sensible list value for each ticket field, first match wins.
fn hints(field: &str) -> &'static [&'static str] {
    match field {
        "queue" => &["security", "monitoring", "alert"],
        "status" => &["new"],
        "priority" => &["medium", "normal", "p3"],
        "source" => &["monitor", "integration", "alert", "email"],
        "ticket_type" | "type" => &["alert", "incident"],
        "board" => &["security", "service", "help"],
        "urgency" | "impact" => &["medium"],
        "issue_type" => &["security"],
        "close_status" => &["complete", "closed", "resolved"],
        _ => &[],
    }
}

/// Fields the demo leaves to the PSA (assignment, SLA and finer classification).
const LEFT_TO_THE_PSA: [&str; 7] = [
    "agent",
    "sla",
    "item",
    "subtype",
    "sub_issue_type",
    "category",
    "team",
];

/// Pick the active list item whose label contains one of `wanted` (case-insensitive), else the
/// first active one; for a dependent field, only among the items of the chosen parent.
fn pick(lists: &PsaLists, list: &str, wanted: &[&str], parent: Option<&str>) -> Option<String> {
    let items: Vec<&ListItem> = lists
        .get(list)?
        .iter()
        .filter(|i| i.active && (parent.is_none() || i.parent.as_deref() == parent))
        .collect();
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

/// Ticket defaults for a fresh connection, chosen from the PSA's lists.
fn demo_defaults(kind: PsaKind, lists: &PsaLists) -> TicketDefaults {
    let mut d = TicketDefaults::new();
    for f in kind.ticket_fields() {
        if LEFT_TO_THE_PSA.contains(&f.name) {
            continue;
        }
        let parent = f.parent.and_then(|p| d.get(p).map(str::to_string));
        if f.parent.is_some() && parent.is_none() {
            continue;
        }
        if let Some(id) = pick(lists, f.list, hints(f.name), parent.as_deref()) {
            d.set(f.name, id);
        }
    }
    d
}

async fn seed(
    running: &app::Running,
    described: &BTreeMap<PsaKind, Value>,
    catalog: &Catalog,
    api_url: &str,
    requests_per_hour: Option<u32>,
) -> Result<Value> {
    let store = &running.store;
    let vendor_token = psabridge_web::auth::new_token();
    store
        .create_token(
            &psabridge_web::auth::token_hash(&vendor_token),
            None,
            "demo vendor",
            now(),
        )
        .await?;
    let mut partners = Vec::new();
    for (kind, id, name) in PARTNERS {
        // Only the PSAs this demo runs (`--psa`).
        let Some(sim) = described.get(&kind) else {
            continue;
        };
        let p = seed_partner(
            running,
            kind,
            id,
            name,
            sim,
            catalog,
            api_url,
            requests_per_hour,
        )
        .await
        .with_context(|| format!("seeding the {} demo partner", kind.display_name()))?;
        partners.push(p);
    }
    // A Primary user for each partner, so that two partners (tenants) can be tried side by side.
    for p in &mut partners {
        p["login"] = seed_primary_user(store, p["id"].as_str().unwrap_or_default()).await?;
    }
    let first = partners.first().cloned().context("no PSA to run")?;
    let login = first["login"].clone();
    Ok(json!({
        "api_url": api_url,
        "portal_url": format!("{api_url}/"),
        "vendor_token": vendor_token,
        // The first partner (Autotask's, unless `--psa` leaves it out) at the top level, as
        // scripts written for one PSA expect.
        "api_token": first["api_token"],
        "partner": first["id"],
        "connection": first["connection"],
        "clients": first["clients"],
        "catch_all": first["catch_all"],
        "partners": partners,
        "event_types": catalog.iter().map(|t| t.key.clone()).collect::<Vec<_>>(),
        "simulators": simulators_json(described),
        "login": login,
    }))
}

/// One person to log in as: the Primary user of the first demo partner, with a random
/// password (kept, like the tokens, in the private demo.json and printed at start).
async fn seed_primary_user(store: &Store, partner: &str) -> Result<Value> {
    let email = format!("primary@{partner}.example");
    let password = psabridge_identity::secret_token::new_token()[..24].to_string();
    let hash = {
        let password = password.clone();
        tokio::task::spawn_blocking(move || {
            psabridge_identity::password::PasswordHashing::PRODUCTION.hash(&password)
        })
        .await??
    };
    let user = store.create_user(&email, "Demo Primary", now()).await?;
    store.set_password_hash(user, &hash).await?;
    store
        .add_membership(user, partner, "primary", now())
        .await?;
    Ok(json!({"email": email, "password": password, "partner": partner}))
}

fn simulators_json(described: &BTreeMap<PsaKind, Value>) -> Value {
    Value::Object(
        described
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.clone()))
            .collect(),
    )
}

/// One demo partner: a connection to its PSA's simulator, defaults from the PSA's lists, a
/// catch-all company, rules for every event type, and four clients (three mapped).
#[allow(clippy::too_many_arguments)]
async fn seed_partner(
    running: &app::Running,
    kind: PsaKind,
    partner: &str,
    partner_name: &str,
    sim: &Value,
    catalog: &Catalog,
    api_url: &str,
    requests_per_hour: Option<u32>,
) -> Result<Value> {
    let store = &running.store;
    let engine = &running.engine;
    store.create_partner(partner, partner_name, now()).await?;
    let token = psabridge_web::auth::new_token();
    store
        .create_token(
            &psabridge_web::auth::token_hash(&token),
            Some(partner),
            "demo",
            now(),
        )
        .await?;

    let (mut settings, secrets) = sims::connection_settings(kind, sim);
    if let Some(n) = requests_per_hour {
        let (key, value) = sims::budget_setting(kind, n);
        settings.insert(key.into(), value);
    }
    let conn_id = store
        .create_connection(
            &NewConnection {
                partner_id: partner.into(),
                kind,
                name: format!("{} (simulator)", kind.display_name()),
                grouping: GroupingMode::User,
                settings,
                secrets,
            },
            now(),
        )
        .await?;
    let connection = store.connection(partner, conn_id).await?;
    let connected = psabridge_engine::connect::connect(engine, &connection, Some(api_url))
        .await
        .with_context(|| format!("connecting to the {} simulator", kind.display_name()))?;
    let connector = engine
        .connectors
        .get(store, &store.connection(partner, conn_id).await?)
        .await?;

    // Companies: three customers to map, and the catch-all.
    let mut companies: Vec<Company> = Vec::new();
    let mut cursor = None;
    loop {
        let page = connector.companies(None, cursor.as_deref()).await?;
        companies.extend(page.companies.into_iter().filter(|c| c.active));
        match page.next {
            Some(n) if companies.len() < 500 => cursor = Some(n),
            _ => break,
        }
    }
    let customers: Vec<Company> = companies
        .iter()
        .filter(|c| c.id != "0" && !c.name.to_lowercase().contains("default"))
        .take(3)
        .cloned()
        .collect();
    if customers.len() < 3 {
        bail!("the simulator has fewer than three customer companies");
    }
    let catch_all = companies
        .iter()
        .find(|c| c.name.to_lowercase().contains("default"))
        .or_else(|| companies.iter().rev().find(|c| !customers.contains(c)))
        .cloned()
        .context("the simulator has no company to catch unmapped clients")?;
    let catch_all_contact = connector
        .contacts(&catch_all.id)
        .await?
        .into_iter()
        .next()
        .map(|c| c.id);

    let lists = &connected.lists;
    let defaults = demo_defaults(kind, lists);
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
    store.set_default_connection(partner, Some(conn_id)).await?;

    // Rules: every event type tickets; dark-web events get a high priority.
    let high = pick(lists, "priority", &["high", "p2"], None);
    for et in catalog.iter() {
        let mut fields = TicketDefaults::new();
        if et.category.to_lowercase().contains("dark web")
            && let Some(p) = &high
        {
            fields.set("priority", p.clone());
        }
        store
            .put_rule(
                conn_id,
                &et.key,
                &EventRule {
                    create_ticket: true,
                    template: None,
                    fields,
                },
            )
            .await?;
    }

    // Billing, where the connector has it: usage of "users" billed as the demo's security seat
    // service on each mapped company's active contract.
    let bills = connector.contract_billing().is_some();
    // Assets, where the connector pushes them: every mapped client's, as they are reported.
    let pushes_assets = connector.asset_sync().is_some();
    if bills {
        store
            .put_billing_service(&BillingService {
                connection_id: conn_id,
                defaults: ServiceDefaults {
                    name: DEMO_SERVICE.into(),
                    unit_cost: Decimal::new(350, 2),
                    unit_price: Decimal::new(600, 2),
                },
                metric: "users".into(),
                create_if_missing: true,
                updated_at: now(),
            })
            .await?;
    }

    let mut clients = Vec::new();
    for (i, (id, name)) in CLIENTS.iter().enumerate() {
        store.put_client(partner, id, name, now()).await?;
        let company = customers.get(i).filter(|_| i < 3);
        if let Some(company) = company {
            let contact = connector
                .contacts(&company.id)
                .await?
                .into_iter()
                .next()
                .map(|c| c.id);
            let contract = if bills {
                connector
                    .contracts(&company.id)
                    .await?
                    .into_iter()
                    .find(|c| c.active)
                    .map(|c| c.id)
            } else {
                None
            };
            store
                .put_mapping(
                    partner,
                    &MappingRow {
                        connection_id: conn_id,
                        client_id: id.to_string(),
                        company_id: company.id.clone(),
                        default_contact_id: contact,
                        create_tickets: true,
                        mapped_at: now(),
                        event_set_id: None,
                        template_id: None,
                        contract_id: contract.clone(),
                        refire: Default::default(),
                    },
                    Some(name),
                )
                .await?;
            if pushes_assets {
                store.set_push_assets(partner, conn_id, id, true).await?;
            }
            if let Some(contract) = contract {
                store
                    .put_mapping_billing(
                        partner,
                        conn_id,
                        id,
                        true,
                        &ClientBilling {
                            contract_id: Some(contract),
                            add_service: true,
                            unit_cost: None,
                            unit_price: None,
                        },
                    )
                    .await?;
            }
        }
        clients.push(json!({
            "id": id,
            "name": name,
            "psa_company_id": company.map(|c| c.id.clone()),
            "psa_company_name": company.map(|c| c.name.clone()),
        }));
    }
    Ok(json!({
        "id": partner,
        "name": partner_name,
        "psa": kind.as_str(),
        "api_token": token,
        "connection": conn_id,
        "clients": clients,
        "catch_all": {"company_id": catch_all.id, "company_name": catch_all.name, "contact_id": catch_all_contact},
    }))
}

/// A later start: keep the data, point each connection at its simulator's (possibly new)
/// address, and rewrite demo.json with the current URLs.
async fn refresh(
    running: &app::Running,
    described: &BTreeMap<PsaKind, Value>,
    demo_file: &Path,
    api_url: &str,
    requests_per_hour: Option<u32>,
) -> Result<Value> {
    let store = &running.store;
    let mut info: Value = std::fs::read_to_string(demo_file)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .context("the data directory was seeded but demo.json is missing or unreadable; remove the data directory to start afresh")?;
    let moved = info["api_url"].as_str() != Some(api_url);
    for (kind, partner, _) in PARTNERS {
        let Some(sim) = described.get(&kind) else {
            continue;
        };
        let (fresh, _) = sims::connection_settings(kind, sim);
        for mut c in store.connections(Some(partner)).await? {
            let mut changed = false;
            for (k, v) in &fresh {
                if c.settings.get(k) != Some(v) {
                    c.settings.insert(k.clone(), v.clone());
                    changed = true;
                }
            }
            if let Some(n) = requests_per_hour {
                let (key, value) = sims::budget_setting(kind, n);
                if c.settings.get(key) != Some(&value) {
                    c.settings.insert(key.into(), value);
                    changed = true;
                }
            }
            if changed {
                store
                    .update_connection(c.id, None, None, None, Some(&c.settings), None, None, now())
                    .await?;
            }
            if moved {
                // The API moved: the PSA's webhook still calls the old address. Register anew.
                store
                    .set_connection_webhook(c.id, None, None, None, now())
                    .await?;
                let c = store.connection(partner, c.id).await?;
                if let Err(e) =
                    psabridge_engine::connect::connect(&running.engine, &c, Some(api_url)).await
                {
                    eprintln!("warning: reconnecting the demo connection {}: {e}", c.name);
                }
            }
        }
    }
    info["api_url"] = json!(api_url);
    info["portal_url"] = json!(format!("{api_url}/"));
    info["simulators"] = simulators_json(described);

    Ok(info)
}

fn print_welcome(info: &Value, demo_file: &Path) {
    let api = info["api_url"].as_str().unwrap_or_default();
    let token = info["api_token"].as_str().unwrap_or_default();
    println!("PSA Bridge demo is running.");
    println!("  Portal:     {api}/  (open it in a browser and sign in with the login below)");
    println!(
        "  API:        {api}  (OpenAPI: {api}/api/v1/openapi.json, reference: {api}/api/docs)"
    );
    for p in info["partners"].as_array().into_iter().flatten() {
        let psa = p["psa"].as_str().unwrap_or_default();
        println!(
            "  Partner {:<10} → {} simulator at {}",
            p["id"].as_str().unwrap_or_default(),
            PsaKind::parse(psa).map_or("unknown PSA", PsaKind::display_name),
            info["simulators"][psa]["base_url"]
                .as_str()
                .unwrap_or_default()
        );
    }
    if let Some(email) = info["login"]["email"].as_str() {
        println!(
            "  Log in:     {email} / {}  (Primary of {}; the portal's form or POST {api}/api/v1/auth/login)",
            info["login"]["password"].as_str().unwrap_or_default(),
            info["login"]["partner"].as_str().unwrap_or_default()
        );
    }
    if let Some(m) = info["metrics_url"].as_str() {
        println!("  Metrics:    {m}  (Prometheus; deploy/grafana/psabridge.json graphs them)");
    }
    if let Some(dir) = info["mail_dir"].as_str() {
        println!("  Emails to people (invitations): written to {dir}");
    }
    println!(
        "  Everything a script needs (tokens, URLs, credentials): {}",
        demo_file.display()
    );
    println!();
    println!("Post an event (to the Autotask partner; each partner's token is in demo.json):");
    println!(
        "  curl -s -X POST {api}/api/v1/events -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\\n    -d '{{\"id\":\"evt-1\",\"client\":\"client-001\",\"type\":\"saas.too_many_downloads\",\"user\":{{\"email\":\"someone@example.com\"}}}}'"
    );
    println!("Then see its ticket:");
    println!("  curl -s {api}/api/v1/events/evt-1 -H 'Authorization: Bearer {token}'");
    println!();
    println!("Ctrl-C stops the demo; starting it again on the same --data-dir keeps everything.");
}
