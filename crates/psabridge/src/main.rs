//! `psabridge`: the one binary of PSA Bridge.
//!
//! - `serve`   — the product for real use, configured by a file and the environment;
//! - `demo`    — the product with built-in PSA simulators and a seeded demo partner;
//! - `sim`     — a PSA simulator alone (for vendors' CI and tests);
//! - `migrate` — apply database migrations and exit;
//! - `keygen`  — print a new secret-sealing key;
//! - `token`   — issue an API token (the first vendor token comes from here);
//! - `invite`  — invite a person to a partner and print the link (no email server needed);
//! - `password-link` — print a one-time link to set an existing person's password;
//! - `bench`   — measure ingestion, PSA economy, latency and memory (BENCHMARKS.md);
//! - `openapi` — print the API's OpenAPI document.

mod app;
mod bench;
mod billing_cli;
mod config;
mod demo;
mod sims;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use psabridge_core::settings::PsaKind;

#[derive(Parser)]
#[command(
    name = "psabridge",
    version,
    about = "Vendor events become correct PSA tickets."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the product: API and delivery engine, no simulators, no seed data.
    Serve {
        /// Configuration file (TOML); environment variables PSABRIDGE_* override it.
        #[arg(long, env = "PSABRIDGE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Run everything on 127.0.0.1 with a simulator of each PSA and a demo partner per PSA.
    Demo {
        /// Where the SQLite file, the key and demo.json live.
        #[arg(long, default_value = "./psabridge-data")]
        data_dir: PathBuf,
        /// Address of the API.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Address of the Autotask simulator; HaloPSA, Kaseya BMS and ConnectWise take the
        /// next three ports (8082, 8083, 8084 by default).
        #[arg(long, default_value = "127.0.0.1:8081")]
        sim_listen: String,
        /// Address of the Prometheus metrics listener (`GET /metrics`), apart from the API;
        /// `off` for none. Default 127.0.0.1:9464, skipped with a warning when taken.
        #[arg(long)]
        metrics_listen: Option<String>,
        /// Latency the simulators add to every request, in milliseconds.
        #[arg(long, default_value_t = 0)]
        sim_latency_ms: u64,
        /// Use an Autotask simulator already running at this URL (`psabridge sim autotask`)
        /// instead of starting one inside the demo.
        #[arg(long)]
        sim_url: Option<String>,
        /// Use a HaloPSA simulator already running at this URL (`psabridge sim halopsa`).
        #[arg(long)]
        halopsa_sim_url: Option<String>,
        /// Use a Kaseya BMS simulator already running at this URL (`psabridge sim kaseya-bms`).
        #[arg(long)]
        kaseya_bms_sim_url: Option<String>,
        /// Use a ConnectWise simulator already running at this URL (`psabridge sim connectwise`).
        #[arg(long)]
        connectwise_sim_url: Option<String>,
        /// Use this database instead of the SQLite file in the data directory.
        #[arg(long, env = "PSABRIDGE_DEMO_DATABASE_URL")]
        database_url: Option<String>,
        /// Our share of Autotask's hourly request limit for the demo connection. The demo is
        /// generous so that a burst of test events is ticketed in minutes; a real MSP shares
        /// 10,000 requests an hour among all its integrations (the product's default share
        /// outside the demo is 5,000).
        #[arg(long, default_value_t = 90_000)]
        psa_requests_per_hour: u32,
        /// Requests per rolling hour the built-in simulator allows (Autotask: 10,000).
        #[arg(long, default_value_t = 100_000)]
        sim_hourly_limit: u32,
        /// SQLite sync setting: full (survives power loss) or normal (survives a crash).
        #[arg(long, default_value = "full")]
        sqlite_synchronous: String,
        /// Only these PSAs (comma-separated: autotask, halopsa, kaseya_bms, connectwise); all
        /// four by default.
        #[arg(long, value_delimiter = ',')]
        psa: Vec<String>,
        /// Send the email channel through this SMTP server: `smtp://127.0.0.1:2525` (no TLS),
        /// `smtp+starttls://…`, `smtps://…`, with `user:password@` if needed.
        #[arg(long)]
        smtp_url: Option<String>,
        /// The sender of the demo's emails.
        #[arg(long, default_value = "PSA Bridge <psabridge@demo.example>")]
        smtp_from: String,
        /// More addresses PSA and identity-provider URLs may reach, like `[outbound] allow`
        /// (`127.0.0.1:9000`, `10.0.0.0/8`); the demo's simulators are always allowed.
        #[arg(long, value_delimiter = ',')]
        outbound_allow: Vec<String>,
        /// Call nothing off this machine: public addresses are refused and names other than
        /// localhost are not even resolved (for fuzzers that choose PSA and identity-provider
        /// URLs; the simulators stay reachable).
        #[arg(long)]
        outbound_local_only: bool,
        /// On SIGTERM or Ctrl-C, how long deliveries in progress may take to finish before
        /// they are given back (due again, attempt not counted).
        #[arg(long, default_value_t = 30)]
        drain_timeout_secs: u64,
    },
    /// Run a PSA simulator alone.
    Sim {
        #[command(subcommand)]
        psa: SimCommand,
    },
    /// Apply database migrations and exit.
    Migrate {
        #[arg(long, env = "PSABRIDGE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Print a new random key for `secret_key` / `secret_key_file`.
    Keygen,
    /// Issue an API token and print it (once).
    Token {
        #[arg(long, env = "PSABRIDGE_CONFIG")]
        config: Option<PathBuf>,
        /// The partner the token acts for; without it the token is vendor-wide.
        #[arg(long)]
        partner: Option<String>,
        /// A name to recognise the token by.
        #[arg(long, default_value = "cli")]
        name: String,
        /// Comma-separated scopes (e.g. `events:write`); without it the token holds every scope.
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        /// Days until the token expires; without it, it does not.
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// Invite a person (by email) to a partner and print the invitation's link, once. For an
    /// installation without an email server: the operator, who is trusted across partners,
    /// hands the link to the person. Inviting again replaces the invitation and revokes its
    /// earlier link. An address whose account has a password gets no link: the person logs in
    /// and accepts.
    Invite {
        #[arg(long, env = "PSABRIDGE_CONFIG")]
        config: Option<PathBuf>,
        /// The partner the person is invited to.
        #[arg(long)]
        partner: String,
        /// The person's email address.
        #[arg(long)]
        email: String,
        /// primary, security_admin, admin, technician or read_only.
        #[arg(long, default_value = "read_only")]
        role: String,
        /// The name of a person who has no account yet.
        #[arg(long)]
        name: Option<String>,
        /// Days until the invitation and its link expire.
        #[arg(long, default_value_t = 7)]
        expires_in_days: u32,
    },
    /// Print a one-time link to set the password of an existing person (account recovery).
    /// It revokes the person's earlier links; using it ends their sessions.
    PasswordLink {
        #[arg(long, env = "PSABRIDGE_CONFIG")]
        config: Option<PathBuf>,
        /// The person's email address.
        #[arg(long)]
        email: String,
        /// Hours until the link expires.
        #[arg(long, default_value_t = 24)]
        expires_in_hours: u32,
    },
    /// Contract billing: write each client's usage high-water mark to its PSA contract.
    Billing {
        #[command(subcommand)]
        what: BillingCommand,
    },
    /// Measure throughput, latency, PSA economy and memory (see BENCHMARKS.md).
    Bench(bench::BenchArgs),
    /// Print the OpenAPI document of the HTTP API.
    Openapi,
}

#[derive(Subcommand)]
enum BillingCommand {
    /// Sync one partner now and print the report (what changed per client, or why not).
    Sync {
        #[arg(long, env = "PSABRIDGE_CONFIG")]
        config: Option<PathBuf>,
        /// The partner to sync.
        #[arg(long)]
        partner: String,
        /// Only report what would change; write nothing to the PSA.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum SimCommand {
    /// The HaloPSA REST API simulator (prints its URL and credentials as JSON).
    Halopsa {
        #[arg(long, default_value = "127.0.0.1:8082")]
        listen: String,
        /// Raise the limit to this many requests an hour (HaloPSA: 300 per rolling 5 minutes).
        #[arg(long)]
        hourly_limit: Option<u32>,
        /// Requests allowed per rolling window, exactly (overrides --hourly-limit); with
        /// --rate-window-secs, a tight limit that tests and benchmarks can reach in seconds.
        #[arg(long)]
        rate_limit: Option<u32>,
        /// Length of the rolling window in seconds (HaloPSA: 300).
        #[arg(long)]
        rate_window_secs: Option<u64>,
        /// Latency added to every request, in milliseconds.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
    },
    /// The Kaseya BMS REST API (v2) simulator (prints its URL and credentials as JSON).
    KaseyaBms {
        #[arg(long, default_value = "127.0.0.1:8083")]
        listen: String,
        /// Requests per hour per endpoint before 429 (Kaseya BMS: 1,500).
        #[arg(long)]
        hourly_limit: Option<u32>,
        /// Latency added to every request, in milliseconds.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
    },
    /// The ConnectWise PSA REST API simulator (prints its URL and credentials as JSON).
    Connectwise {
        #[arg(long, default_value = "127.0.0.1:8084")]
        listen: String,
        /// Raise the throttle to this many requests an hour (default 40 a second).
        #[arg(long)]
        hourly_limit: Option<u32>,
        /// Latency added to every request, in milliseconds.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
    },
    /// The Autotask REST API simulator (prints its URL and credentials as JSON).
    Autotask {
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: String,
        /// Keep the simulator's data in this file across restarts.
        #[arg(long)]
        state_file: Option<PathBuf>,
        /// Requests per rolling hour before 429 (Autotask: 10,000).
        #[arg(long, default_value_t = 10_000)]
        hourly_limit: u32,
        /// Latency added to every request, in milliseconds.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
    },
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PSABRIDGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,hyper=warn"));
    let json = std::env::var("PSABRIDGE_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    init_tracing();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(run(cli.command));
    if let Err(e) = &result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
    Ok(())
}

async fn run(command: Command) -> Result<()> {
    match command {
        Command::Serve { config } => {
            let settings = config::load(config.as_deref())?.check(true)?;
            let listener = tokio::net::TcpListener::bind(settings.listen)
                .await
                .with_context(|| format!("listen: cannot listen on {}", settings.listen))?;
            let metrics_listener = app::bind_metrics(settings.metrics_listen.as_deref()).await?;
            let running = app::start(
                &settings.store,
                settings.keys,
                settings.catalog,
                settings.engine,
                listener,
                settings.public_url,
                app::PeopleOptions {
                    trusted_proxies: settings.trusted_proxies,
                    ..Default::default()
                },
            )
            .await?;
            if let Some(l) = metrics_listener {
                let addr = running.serve_metrics(l)?;
                tracing::info!(%addr, "metrics at /metrics");
            }
            tracing::info!(addr = %running.addr, "PSA Bridge is serving");
            app::stop_signal().await;
            app::drain(running).await;
            Ok(())
        }
        Command::Demo {
            data_dir,
            listen,
            sim_listen,
            metrics_listen,
            sim_latency_ms,
            sim_url,
            halopsa_sim_url,
            kaseya_bms_sim_url,
            connectwise_sim_url,
            database_url,
            psa_requests_per_hour,
            sim_hourly_limit,
            sqlite_synchronous,
            psa,
            smtp_url,
            smtp_from,
            outbound_allow,
            outbound_local_only,
            drain_timeout_secs,
        } => {
            let outbound_allow = outbound_allow
                .iter()
                .map(|a| {
                    a.parse()
                        .map_err(|e| anyhow::anyhow!("--outbound-allow: {e}"))
                })
                .collect::<Result<Vec<_>>>()?;
            let smtp = smtp_url
                .map(|u| config::smtp_from_url(&u, &smtp_from))
                .transpose()?;
            let smtp_from_for_demo = smtp_from.clone();
            let psas = psa
                .iter()
                .map(|p| {
                    PsaKind::parse(p.trim()).with_context(|| {
                        format!(
                            "--psa: '{p}' is not a PSA (autotask, halopsa, kaseya_bms, connectwise)"
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let sim_urls = [
                ("autotask", sim_url),
                ("halopsa", halopsa_sim_url),
                ("kaseya_bms", kaseya_bms_sim_url),
                ("connectwise", connectwise_sim_url),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
            demo::run(demo::DemoOptions {
                synchronous: sqlite_synchronous
                    .parse()
                    .map_err(|e| anyhow::anyhow!("--sqlite-synchronous: {e}"))?,
                data_dir,
                listen,
                sim_listen,
                metrics_listen,
                sim_latency_ms,
                sim_urls,
                psas,
                database_url,
                psa_requests_per_hour: Some(psa_requests_per_hour),
                sim_hourly_limit,
                smtp,
                smtp_from: smtp_from_for_demo,
                outbound_allow,
                outbound_local_only,
                drain_timeout: std::time::Duration::from_secs(drain_timeout_secs),
            })
            .await
        }
        Command::Sim { psa } => {
            let (kind, listen, opts) = match psa {
                SimCommand::Autotask {
                    listen,
                    state_file,
                    hourly_limit,
                    latency_ms,
                } => (
                    PsaKind::Autotask,
                    listen,
                    sims::SimOptions {
                        latency_ms,
                        state_file,
                        hourly_limit: Some(hourly_limit),
                        ..Default::default()
                    },
                ),
                SimCommand::Halopsa {
                    listen,
                    hourly_limit,
                    rate_limit,
                    rate_window_secs,
                    latency_ms,
                } => (
                    PsaKind::HaloPsa,
                    listen,
                    sims::SimOptions {
                        latency_ms,
                        hourly_limit,
                        window_limit: rate_limit,
                        window_secs: rate_window_secs,
                        ..Default::default()
                    },
                ),
                SimCommand::KaseyaBms {
                    listen,
                    hourly_limit,
                    latency_ms,
                } => (
                    PsaKind::KaseyaBms,
                    listen,
                    sims::SimOptions {
                        latency_ms,
                        hourly_limit,
                        ..Default::default()
                    },
                ),
                SimCommand::Connectwise {
                    listen,
                    hourly_limit,
                    latency_ms,
                } => (
                    PsaKind::ConnectWise,
                    listen,
                    sims::SimOptions {
                        latency_ms,
                        hourly_limit,
                        ..Default::default()
                    },
                ),
            };
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .with_context(|| format!("--listen: cannot listen on {listen}"))?;
            let sim = sims::Running::start(kind, listener, &opts).await?;
            let mut described = sims::describe(kind, &sim.base_url());
            described["psa"] = serde_json::json!(kind.as_str());
            println!("{described}");
            app::stop_signal().await;
            sim.shutdown().await;
            Ok(())
        }
        Command::Migrate { config } => {
            let settings = config::load(config.as_deref())?.check(false)?;
            let store = psabridge_store::Store::open(&settings.store, settings.keys).await?;
            println!(
                "migrations applied to {}",
                psabridge_store::redact_url(&settings.store.url)
            );
            store.close().await;
            Ok(())
        }
        Command::Keygen => {
            println!("{}", psabridge_store::seal::KeyRing::generate_key());
            Ok(())
        }
        Command::Token {
            config,
            partner,
            name,
            scopes,
            expires_in_days,
        } => {
            let settings = config::load(config.as_deref())?.check(false)?;
            let store = psabridge_store::Store::open(&settings.store, settings.keys).await?;
            if let Some(p) = &partner {
                store
                    .partner(p)
                    .await
                    .with_context(|| format!("--partner: no partner '{p}'"))?;
            }
            use psabridge_identity::scopes::{self, Scope};
            let chosen = if scopes.is_empty() {
                Scope::ALL.to_vec()
            } else {
                scopes::parse_requested(&scopes, &Scope::ALL).map_err(|errors| {
                    let (i, why) = &errors[0];
                    anyhow::anyhow!("--scopes: entry {}: {why}", i + 1)
                })?
            };
            let now = chrono::Utc::now().timestamp_millis();
            let expires_at = match expires_in_days {
                Some(0) => anyhow::bail!("--expires-in-days: must be at least 1"),
                Some(d) => Some(now + i64::from(d) * 86_400_000),
                None => None,
            };
            let token = psabridge_web::auth::new_token();
            let hash = psabridge_web::auth::token_hash(&token);
            let stored = scopes::to_stored(&chosen);
            store
                .create_scoped_token(
                    &psabridge_store::config::NewToken {
                        token_hash: &hash,
                        partner: partner.as_deref(),
                        name: &name,
                        scopes: &stored,
                        expires_at,
                        created_by_user: None,
                    },
                    now,
                )
                .await?;
            println!("{token}");
            store.close().await;
            Ok(())
        }
        Command::Invite {
            config,
            partner,
            email,
            role,
            name,
            expires_in_days,
        } => {
            let settings = config::load(config.as_deref())?.check(false)?;
            let email = email.trim().to_string();
            if email.chars().count() > psabridge_identity::people::EMAIL_MAX_CHARS {
                anyhow::bail!("--email: at most 254 characters");
            }
            psabridge_core::email::parse_address(&email)
                .map_err(|why| anyhow::anyhow!("--email: not an email address ({why})"))?;
            let role = psabridge_identity::Role::parse(&role).with_context(|| {
                format!(
                    "--role: '{role}' is not one of primary, security_admin, admin, technician, read_only"
                )
            })?;
            let name = name
                .map(|n| psabridge_identity::people::clean_name(&n))
                .filter(|n| !n.is_empty());
            if expires_in_days == 0 {
                anyhow::bail!("--expires-in-days: must be at least 1");
            }
            let store = psabridge_store::Store::open(&settings.store, settings.keys).await?;
            store
                .partner(&partner)
                .await
                .with_context(|| format!("--partner: no partner '{partner}'"))?;
            let now = chrono::Utc::now().timestamp_millis();
            let token = psabridge_identity::secret_token::new_token();
            let (invitation, invitee) = store
                .invite(
                    &psabridge_store::invitations::NewInvitation {
                        partner_id: &partner,
                        email: &email,
                        name: name.as_deref(),
                        role: role.as_str(),
                        token_hash: &psabridge_identity::secret_token::token_hash(&token),
                        invited_by: "cli",
                        expires_at: now + i64::from(expires_in_days) * 86_400_000,
                    },
                    now,
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            store
                .record_audit(
                    &psabridge_store::audit::NewAuditEntry {
                        partner_id: Some(&partner),
                        actor: "cli",
                        action: "user.invite",
                        target: &format!("invitation:{}", invitation.id),
                        before: None,
                        after: Some(&serde_json::json!({
                            "email": invitation.email, "role": invitation.role, "delivery": "cli",
                        })),
                    },
                    now,
                )
                .await?;
            use psabridge_store::invitations::Invitee;
            let out = match invitee {
                Invitee::NoAccount | Invitee::NoPassword => serde_json::json!({
                    "invitation": invitation.id,
                    "token": token,
                    "use": "POST /api/v1/auth/password with {\"token\": \"<token>\", \"password\": \"<a new password>\"}: sets the password and accepts",
                }),
                Invitee::Account => serde_json::json!({
                    "invitation": invitation.id,
                    "note": "this address has an account with a password: the person logs in and accepts (GET /api/v1/auth/invitations, then POST /api/v1/auth/invitations/{id}/accept)",
                }),
            };
            println!("{out}");
            store.close().await;
            Ok(())
        }
        Command::PasswordLink {
            config,
            email,
            expires_in_hours,
        } => {
            let settings = config::load(config.as_deref())?.check(false)?;
            if expires_in_hours == 0 {
                anyhow::bail!("--expires-in-hours: must be at least 1");
            }
            let store = psabridge_store::Store::open(&settings.store, settings.keys).await?;
            let user = store.user_by_email(&email).await?.with_context(|| {
                format!("--email: no person has the address '{}'", email.trim())
            })?;
            let now = chrono::Utc::now().timestamp_millis();
            let token = psabridge_identity::secret_token::new_token();
            store
                .create_password_setup(
                    user.id,
                    &psabridge_identity::secret_token::token_hash(&token),
                    now + i64::from(expires_in_hours) * 3_600_000,
                )
                .await?;
            for m in store.memberships_of(user.id).await? {
                store
                    .record_audit(
                        &psabridge_store::audit::NewAuditEntry {
                            partner_id: Some(&m.partner_id),
                            actor: "cli",
                            action: "user.password_link",
                            target: &format!("user:{}", user.id),
                            before: None,
                            after: None,
                        },
                        now,
                    )
                    .await?;
            }
            println!("{token}");
            store.close().await;
            Ok(())
        }
        Command::Billing {
            what:
                BillingCommand::Sync {
                    config,
                    partner,
                    dry_run,
                },
        } => billing_cli::sync(config.as_deref(), &partner, dry_run).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Openapi => {
            println!("{}", psabridge_web::OPENAPI);
            Ok(())
        }
    }
}
