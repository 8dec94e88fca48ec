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
    /// Autotask: requests per rolling hour before 429.
    pub hourly_limit: Option<u32>,
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
                halopsa::Simulator::start(
                    listener,
                    halopsa::Config {
                        base_latency_ms: opts.latency_ms,
                        ..Default::default()
                    },
                )
                .await
                .with_context(what)?,
            ),
            PsaKind::KaseyaBms => Running::KaseyaBms(
                kaseya_bms::Simulator::start(
                    listener,
                    kaseya_bms::Config {
                        base_latency_ms: opts.latency_ms,
                        ..Default::default()
                    },
                )
                .await
                .with_context(what)?,
            ),
            PsaKind::ConnectWise => Running::ConnectWise(
                connectwise::Simulator::start(
                    listener,
                    connectwise::Config {
                        base_latency_ms: opts.latency_ms,
                        ..Default::default()
                    },
                )
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
