//! The API under test, shared by the accounts, tokens and SCIM tests: the real router on a
//! random port over a fresh SQLite file or PostgreSQL database, a vendor token, and two
//! partners (`msp-a`, `msp-b`, each with client `c1`). Each test file adds its own helpers
//! in its own `impl Server` block.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use psabridge_core::catalog::Catalog;
use psabridge_engine::mail::{MailError, Mailer, OutgoingMail};
use psabridge_engine::{ConnectorRegistry, Engine, EngineConfig};
use psabridge_identity::password::PasswordHashing;
use psabridge_store::seal::KeyRing;
use psabridge_store::testing::{TestDatabase, pg_url_or_skip};
use psabridge_store::{Store, StoreOptions};
use psabridge_web::AppState;
use psabridge_web::accounts::AccountsConfig;

/// Account emails (invitations), kept instead of sent.
#[derive(Debug, Default)]
pub struct MailCatcher {
    pub sent: Mutex<Vec<OutgoingMail>>,
}

#[async_trait::async_trait]
impl Mailer for MailCatcher {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        self.sent.lock().unwrap().push(mail.clone());
        Ok(())
    }

    fn sender_domain(&self) -> &str {
        "test.example"
    }
}

impl MailCatcher {
    /// The emails sent to `address` so far, oldest first.
    pub fn to(&self, address: &str) -> Vec<OutgoingMail> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.recipients.iter().any(|r| r.eq_ignore_ascii_case(address)))
            .cloned()
            .collect()
    }

    /// The link token in the latest email to `address`, if it has one.
    pub fn token_for(&self, address: &str) -> Option<String> {
        let mail = self.to(address).pop()?;
        let mut lines = mail.body.lines();
        lines.find(|l| l.trim() == "The token:")?;
        Some(lines.next()?.trim().to_string())
    }
}

pub const CATALOG: &str = "[[event_type]]\nkey = \"a\"\nname = \"Alert A\"\ncategory = \"X\"\n";
pub const PASSWORD: &str = "correct horse battery staple";

pub struct Server {
    pub url: String,
    pub state: AppState,
    pub store: Store,
    pub http: reqwest::Client,
    pub vendor_token: String,
    /// The invitations the API emailed.
    pub mail: Arc<MailCatcher>,
    _dir: Option<tempfile::TempDir>,
    pg: Option<TestDatabase>,
}

impl Server {
    /// Start on PostgreSQL (`pg`) or SQLite; `None` when PostgreSQL is wanted but not
    /// configured (the skip is reported under `what`).
    pub async fn start(pg: bool, what: &str) -> Result<Option<Server>> {
        Server::start_configured(pg, what, |_| {}).await
    }

    /// [`Server::start`], with the accounts settings changed by `configure`.
    pub async fn start_configured(
        pg: bool,
        what: &str,
        configure: impl FnOnce(&mut AccountsConfig),
    ) -> Result<Option<Server>> {
        let keys = KeyRing::parse(&KeyRing::generate_key()).unwrap();
        let (store, dir, db) = if pg {
            let Some(admin) = pg_url_or_skip(what) else {
                return Ok(None);
            };
            let db = TestDatabase::create(&admin).await?;
            let store = Store::open(&StoreOptions::new(&db.url), keys).await?;
            (store, None, Some(db))
        } else {
            let dir = tempfile::tempdir()?;
            let url = format!("sqlite://{}", dir.path().join("t.db").display());
            (
                Store::open(&StoreOptions::new(url), keys).await?,
                Some(dir),
                None,
            )
        };
        let engine = Engine::new(
            store.clone(),
            ConnectorRegistry::new(),
            Arc::new(Catalog::parse(CATALOG)?),
            EngineConfig::default(),
        );
        engine.catalog.follow(&store, 0).await?;
        let mut state = AppState::new(engine, None);
        let mail = Arc::new(MailCatcher::default());
        let mut accounts = AccountsConfig {
            secure_cookies: false,
            hashing: PasswordHashing::FAST_INSECURE,
            mailer: Some(mail.clone()),
            ..Default::default()
        };
        configure(&mut accounts);
        state.accounts = Arc::new(accounts);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = psabridge_web::router(state.clone())
            .into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await });
        // Made as the CLI makes it, before scopes existed: it holds every scope.
        let vendor_token = psabridge_web::auth::new_token();
        store
            .create_token(
                &psabridge_web::auth::token_hash(&vendor_token),
                None,
                "vendor",
                0,
            )
            .await?;
        let now = state.accounts.clock.now_ms();
        for p in ["msp-a", "msp-b"] {
            store
                .create_partner(p, &p.to_uppercase().replace('-', " "), now)
                .await?;
            store.put_client(p, "c1", "Client 1", now).await?;
        }
        Ok(Some(Server {
            url: format!("http://{addr}"),
            state,
            store,
            http: reqwest::Client::new(),
            vendor_token,
            mail,
            _dir: dir,
            pg: db,
        }))
    }

    /// One API request with a bearer token: the status and the answer as JSON (a non-JSON
    /// answer as a JSON string).
    pub async fn bearer(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(reqwest::StatusCode, serde_json::Value)> {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let res = rb.send().await?;
        let status = res.status();
        let text = res.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        ))
    }

    pub async fn stop(self) {
        self.store.close().await;
        if let Some(db) = self.pg {
            db.drop_database().await;
        }
    }
}
