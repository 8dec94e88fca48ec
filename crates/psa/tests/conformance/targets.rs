//! The PSAs under test: how to start each simulator and what a user would type for it.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use psabridge_core::secret::Secret;
use psabridge_core::settings::PsaKind;
use psabridge_psa::Connector;
use serde_json::{Map, Value, json};

/// A credential mistake a user can make, and what the connector must then say.
pub struct Mistake {
    pub what: &'static str,
    pub settings: Vec<(&'static str, Value)>,
    pub secrets: Vec<(&'static str, &'static str)>,
    /// `PsaError::class()` expected from `check()`, or `settings` when building must fail.
    pub class: &'static str,
    /// A word the message must contain (case-insensitive), naming what is wrong.
    pub mentions: &'static str,
}

/// One PSA's simulator, running, and the settings that reach it.
pub struct Target {
    pub kind: PsaKind,
    pub sim_url: String,
    pub settings: Map<String, Value>,
    pub secrets: BTreeMap<String, String>,
    pub mistakes: Vec<Mistake>,
    /// A fragment of the path of the create-ticket request (for fault rules).
    pub create_path: &'static str,
    /// A fragment of the path of the company-list request (for fault rules).
    pub companies_path: &'static str,
    _sim: Box<dyn Any + Send + Sync>,
}

impl Target {
    /// A connector built from the target's settings (with `extra` settings on top), the way
    /// the engine builds one from a stored connection.
    pub fn connector(&self, extra: &[(&str, Value)]) -> anyhow::Result<Arc<dyn Connector>> {
        let mut settings = self.settings.clone();
        for (k, v) in extra {
            settings.insert((*k).to_string(), v.clone());
        }
        let secrets = self
            .secrets
            .iter()
            .map(|(k, v)| (k.clone(), Secret::new(v)))
            .collect();
        Ok(psabridge_psa::build(
            self.kind,
            reqwest::Client::new(),
            &settings,
            &secrets,
        )?)
    }

    /// A connector built with a mistake made.
    pub fn connector_with(&self, m: &Mistake) -> Result<Arc<dyn Connector>, String> {
        let mut settings = self.settings.clone();
        for (k, v) in &m.settings {
            if v.is_null() {
                settings.remove(*k);
            } else {
                settings.insert((*k).to_string(), v.clone());
            }
        }
        let mut secrets: BTreeMap<String, Secret> = self
            .secrets
            .iter()
            .map(|(k, v)| (k.clone(), Secret::new(v)))
            .collect();
        for (k, v) in &m.secrets {
            secrets.insert((*k).to_string(), Secret::new(*v));
        }
        psabridge_psa::build(self.kind, reqwest::Client::new(), &settings, &secrets)
            .map_err(|e| e.to_string())
    }
}

fn object(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

async fn listener() -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding a port for the simulator")
}

/// A port nothing listens on (bound, then released).
fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = l.local_addr().expect("its address").port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

pub async fn autotask() -> anyhow::Result<Target> {
    use psabridge_sim::autotask::{Config, Simulator};
    let config = Config::default();
    let user = config.api_users[0].clone();
    let sim = Simulator::start(listener().await?, config).await?;
    let url = sim.base_url();
    Ok(Target {
        kind: PsaKind::Autotask,
        sim_url: url.clone(),
        settings: object(json!({"username": user.username, "zone_discovery_url": url})),
        secrets: BTreeMap::from([
            ("secret".into(), user.secret.clone()),
            ("integration_code".into(), user.integration_code.clone()),
        ]),
        mistakes: vec![
            Mistake {
                what: "an unknown user name",
                settings: vec![("username", json!("nobody@nowhere.example"))],
                secrets: vec![],
                class: "auth",
                mentions: "user",
            },
            Mistake {
                what: "a wrong secret",
                settings: vec![],
                secrets: vec![("secret", "not-the-secret")],
                class: "auth",
                mentions: "",
            },
            Mistake {
                what: "a wrong integration code",
                settings: vec![],
                secrets: vec![("integration_code", "WRONGINTEGRATIONCODE0000000")],
                class: "auth",
                mentions: "integration",
            },
            Mistake {
                what: "a host where nothing answers",
                settings: vec![("zone_discovery_url", json!(dead_url()))],
                secrets: vec![],
                class: "unreachable",
                mentions: "",
            },
            Mistake {
                what: "no user name",
                settings: vec![("username", Value::Null)],
                secrets: vec![],
                class: "settings",
                mentions: "username",
            },
        ],
        create_path: "/Tickets",
        companies_path: "/Companies/query",
        _sim: Box::new(sim),
    })
}

pub async fn halopsa() -> anyhow::Result<Target> {
    use psabridge_sim::halopsa::{Config, Simulator};
    let config = Config::default();
    let (tenant, client_id, client_secret) = (
        config.tenant.clone(),
        config.api_clients[0].client_id.clone(),
        config.api_clients[0].client_secret.clone(),
    );
    let sim = Simulator::start(listener().await?, config).await?;
    let url = sim.base_url();
    Ok(Target {
        kind: PsaKind::HaloPsa,
        sim_url: url.clone(),
        // What a user types: the host with a trailing slash; the auth server is discovered.
        settings: object(
            json!({"resource_url": format!("{url}/"), "tenant": tenant, "client_id": client_id}),
        ),
        secrets: BTreeMap::from([("client_secret".into(), client_secret)]),
        mistakes: vec![
            Mistake {
                what: "a wrong client secret",
                settings: vec![],
                secrets: vec![("client_secret", "not-the-secret")],
                class: "auth",
                mentions: "client",
            },
            Mistake {
                what: "an unknown client id",
                settings: vec![("client_id", json!("someone-else"))],
                secrets: vec![],
                class: "auth",
                mentions: "client",
            },
            Mistake {
                what: "a wrong tenant",
                settings: vec![("tenant", json!("not-our-tenant"))],
                secrets: vec![],
                class: "auth",
                mentions: "tenant",
            },
            Mistake {
                what: "a host where nothing answers",
                settings: vec![("resource_url", json!(dead_url()))],
                secrets: vec![],
                class: "unreachable",
                mentions: "",
            },
            Mistake {
                what: "no client id",
                settings: vec![("client_id", Value::Null)],
                secrets: vec![],
                class: "settings",
                mentions: "client_id",
            },
        ],
        create_path: "/api/Tickets",
        companies_path: "/api/Client",
        _sim: Box::new(sim),
    })
}

pub async fn kaseya_bms() -> anyhow::Result<Target> {
    use psabridge_sim::kaseya_bms::{Config, Simulator};
    let config = Config::default();
    let (tenant, username, password) = (
        config.tenant.clone(),
        config.username.clone(),
        config.password.clone(),
    );
    let sim = Simulator::start(listener().await?, config).await?;
    let url = sim.base_url();
    Ok(Target {
        kind: PsaKind::KaseyaBms,
        sim_url: url.clone(),
        settings: object(
            json!({"base_url": format!("{url}/"), "tenant": tenant, "username": username}),
        ),
        secrets: BTreeMap::from([("password".into(), password)]),
        mistakes: vec![
            Mistake {
                what: "a wrong password",
                settings: vec![],
                secrets: vec![("password", "not-the-password")],
                class: "auth",
                mentions: "",
            },
            Mistake {
                what: "an unknown user",
                settings: vec![("username", json!("nobody"))],
                secrets: vec![],
                class: "auth",
                mentions: "",
            },
            Mistake {
                what: "a wrong tenant",
                settings: vec![("tenant", json!("not-our-company"))],
                secrets: vec![],
                class: "auth",
                mentions: "",
            },
            Mistake {
                what: "a host where nothing answers",
                settings: vec![("base_url", json!(dead_url()))],
                secrets: vec![],
                class: "unreachable",
                mentions: "",
            },
            Mistake {
                what: "no user name",
                settings: vec![("username", Value::Null)],
                secrets: vec![],
                class: "settings",
                mentions: "username",
            },
        ],
        create_path: "/v2/servicedesk/tickets",
        companies_path: "/v2/crm/accounts",
        _sim: Box::new(sim),
    })
}

pub async fn connectwise() -> anyhow::Result<Target> {
    use psabridge_sim::connectwise::{Config, Simulator};
    let config = Config::default();
    let (company, public_key, private_key, client_id) = (
        config.company_id.clone(),
        config.api_keys[0].public_key.clone(),
        config.api_keys[0].private_key.clone(),
        config.client_ids[0].clone(),
    );
    let sim = Simulator::start(listener().await?, config).await?;
    let url = sim.base_url();
    Ok(Target {
        kind: PsaKind::ConnectWise,
        sim_url: url.clone(),
        settings: object(json!({"site_url": format!("{url}/"), "company": company,
            "public_key": public_key, "client_id": client_id})),
        secrets: BTreeMap::from([("private_key".into(), private_key)]),
        mistakes: vec![
            Mistake {
                what: "an unknown company id",
                settings: vec![("company", json!("notacompany"))],
                secrets: vec![],
                class: "auth",
                mentions: "company",
            },
            Mistake {
                what: "a wrong private key",
                settings: vec![],
                secrets: vec![("private_key", "not-the-key")],
                class: "auth",
                mentions: "",
            },
            Mistake {
                what: "a wrong public key",
                settings: vec![("public_key", json!("notthekey"))],
                secrets: vec![],
                class: "auth",
                mentions: "",
            },
            Mistake {
                what: "a site where nothing answers",
                settings: vec![("site_url", json!(dead_url()))],
                secrets: vec![],
                class: "unreachable",
                mentions: "",
            },
            Mistake {
                what: "no client id",
                settings: vec![("client_id", Value::Null)],
                secrets: vec![],
                class: "settings",
                mentions: "client_id",
            },
        ],
        create_path: "/service/tickets",
        companies_path: "/company/companies",
        _sim: Box::new(sim),
    })
}
