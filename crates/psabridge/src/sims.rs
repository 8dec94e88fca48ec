//! The built-in PSA simulators as the binary runs them: started by PSA, described in
//! `demo.json` (base URL and the credentials a user would type), and turned into the settings
//! of a connection.

use std::path::PathBuf;

use anyhow::{Context, Result};
use psabridge_core::secret::Secret;
use psabridge_core::settings::PsaKind;
use psabridge_sim::{autotask, connectwise, halopsa, kaseya_bms};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;

/// How to run a simulator.
#[derive(Debug, Clone, Default)]
pub struct SimOptions {
    /// Latency added to every API request, in milliseconds.
    pub latency_ms: u64,
    /// Keep the simulator's data in this file across restarts (Autotask).
    pub state_file: Option<PathBuf>,
    /// Requests per hour before 429, when raised above the vendor's published limit (demos,
    /// tests): Autotask's database limit, HaloPSA's rolling window scaled to an hour, Kaseya
    /// BMS's limit per endpoint, ConnectWise's throttle.
    pub hourly_limit: Option<u32>,
    /// HaloPSA: requests per rolling window, exactly (wins over `hourly_limit`).
    pub window_limit: Option<u32>,
    /// HaloPSA: the rolling window's length in seconds (Halo: 300).
    pub window_secs: Option<u64>,
}

/// A simulator running in this process.
pub enum Running {
    Autotask(autotask::Simulator),
    HaloPsa(halopsa::Simulator),
    KaseyaBms(kaseya_bms::Simulator),
    ConnectWise(connectwise::Simulator),
}

impl Running {
    pub async fn start(kind: PsaKind, listener: TcpListener, opts: &SimOptions) -> Result<Running> {
        let what = || format!("starting the {} simulator", kind.display_name());
        Ok(match kind {
            PsaKind::Autotask => {
                let mut config = autotask::Config {
                    state_file: opts.state_file.clone(),
                    base_latency_ms: opts.latency_ms,
                    ..Default::default()
                };
                if let Some(n) = opts.hourly_limit {
                    config.hourly_limit = n;
                }
                Running::Autotask(
                    autotask::Simulator::start(listener, config)
                        .await
                        .with_context(what)?,
                )
            }
            PsaKind::HaloPsa => Running::HaloPsa(
                halopsa::Simulator::start(listener, {
                    let mut c = halopsa::Config {
                        base_latency_ms: opts.latency_ms,
                        ..Default::default()
                    };
                    if let Some(n) = opts.hourly_limit {
                        // The same rate over Halo's rolling window.
                        let per_window = u64::from(n) * c.rate_window_secs / 3600;
                        c.rate_limit = u32::try_from(per_window.max(1)).unwrap_or(u32::MAX);
                    }
                    if let Some(secs) = opts.window_secs {
                        c.rate_window_secs = secs.max(1);
                    }
                    if let Some(n) = opts.window_limit {
                        c.rate_limit = n;
                    }
                    c
                })
                .await
                .with_context(what)?,
            ),
            PsaKind::KaseyaBms => Running::KaseyaBms(
                kaseya_bms::Simulator::start(listener, {
                    let mut c = kaseya_bms::Config {
                        base_latency_ms: opts.latency_ms,
                        ..Default::default()
                    };
                    if let Some(n) = opts.hourly_limit {
                        c.hourly_limit_per_endpoint = n;
                    }
                    c
                })
                .await
                .with_context(what)?,
            ),
            PsaKind::ConnectWise => Running::ConnectWise(
                connectwise::Simulator::start(listener, {
                    let mut c = connectwise::Config {
                        base_latency_ms: opts.latency_ms,
                        ..Default::default()
                    };
                    if let (Some(n), Some(limit)) = (opts.hourly_limit, c.rate_limit.as_mut()) {
                        let per_second = f64::from(n) / 3600.0;
                        if per_second > limit.per_second {
                            limit.per_second = per_second;
                        }
                    }
                    c
                })
                .await
                .with_context(what)?,
            ),
        })
    }

    pub fn base_url(&self) -> String {
        match self {
            Running::Autotask(s) => s.base_url(),
            Running::HaloPsa(s) => s.base_url(),
            Running::KaseyaBms(s) => s.base_url(),
            Running::ConnectWise(s) => s.base_url(),
        }
    }

    pub async fn shutdown(self) {
        match self {
            Running::Autotask(s) => s.shutdown().await,
            Running::HaloPsa(s) => s.shutdown().await,
            Running::KaseyaBms(s) => s.shutdown().await,
            Running::ConnectWise(s) => s.shutdown().await,
        }
    }
}

/// What `demo.json` says about a simulator at `base_url`: where it is and the credentials a
/// user would type into "Connect" (the simulators' defaults).
pub fn describe(kind: PsaKind, base_url: &str) -> Value {
    let base = base_url.trim_end_matches('/');
    let mut v = match kind {
        PsaKind::Autotask => {
            let user = autotask::Config::default().api_users[0].clone();
            json!({
                "base_url": base,
                "zone_discovery_url": base,
                "zone_url": format!("{base}/ATServicesRest/"),
                "username": user.username,
                "secret": user.secret,
                "integration_code": user.integration_code,
                "ci_product_id": autotask::ids::PRODUCT_MANAGED_ENDPOINT,
            })
        }
        PsaKind::HaloPsa => {
            let c = halopsa::Config::default();
            let client = c.api_clients.first();
            json!({
                "base_url": base,
                "resource_url": base,
                "auth_url": format!("{base}/auth"),
                "tenant": c.tenant,
                "client_id": client.map(|a| a.client_id.clone()),
                "client_secret": client.map(|a| a.client_secret.clone()),
                "asset_type_id": halopsa::ids::ASSET_TYPE_WORKSTATION,
            })
        }
        PsaKind::KaseyaBms => {
            let c = kaseya_bms::Config::default();
            json!({
                "base_url": base,
                "tenant": c.tenant,
                "username": c.username,
                "password": c.password,
            })
        }
        PsaKind::ConnectWise => {
            let c = connectwise::Config::default();
            let key = c.api_keys.first();
            json!({
                "base_url": base,
                "site_url": base,
                "company": c.company_id,
                "public_key": key.map(|k| k.public_key.clone()),
                "private_key": key.map(|k| k.private_key.clone()),
                "client_id": c.client_ids.first(),
                "configuration_type_id": connectwise::MANAGED_WORKSTATION_TYPE,
            })
        }
    };
    v["control_url"] = json!(format!("{base}/_sim"));
    v
}

/// The settings and secrets of a connection to the simulator described by `described`
/// (see [`describe`]): every described value the connector knows as a setting or a secret.
pub fn connection_settings(
    kind: PsaKind,
    described: &Value,
) -> (
    Map<String, Value>,
    std::collections::BTreeMap<String, Secret>,
) {
    let (known, secret_names) = psabridge_psa::known_settings(kind);
    let mut settings = Map::new();
    let mut secrets = std::collections::BTreeMap::new();
    for (k, v) in described.as_object().into_iter().flatten() {
        if secret_names.contains(&k.as_str()) {
            if let Some(s) = v.as_str() {
                secrets.insert(k.clone(), Secret::new(s));
            }
        } else if known.iter().any(|(n, _)| n == k) {
            settings.insert(k.clone(), v.clone());
        }
    }
    (settings, secrets)
}

/// The connection setting that holds our share of a PSA's request limit, with the value for
/// `per_hour` requests an hour.
pub fn budget_setting(kind: PsaKind, per_hour: u32) -> (&'static str, Value) {
    match kind {
        // HaloPSA counts a rolling five-minute window.
        PsaKind::HaloPsa => ("requests_per_window", json!((per_hour / 12).max(1))),
        // Autotask per database, Kaseya BMS per endpoint, ConnectWise per company.
        PsaKind::Autotask | PsaKind::KaseyaBms | PsaKind::ConnectWise => {
            ("requests_per_hour", json!(per_hour))
        }
    }
}
