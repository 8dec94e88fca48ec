//! "Log in with the IdP" over real HTTP against a real OpenID provider (npm oidc-provider on
//! 127.0.0.1), on SQLite and PostgreSQL: login to a session, linking by verified email, the
//! one-time confirmation, the partner chooser, just-in-time provisioning, "Require login with
//! the IdP" with its exemptions and its no-lock-out switch, the refused callbacks, and
//! back-channel logout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use psabridge_core::catalog::Catalog;
use psabridge_engine::{ConnectorRegistry, Engine, EngineConfig};
use psabridge_identity::password::PasswordHashing;
use psabridge_store::seal::KeyRing;
use psabridge_store::testing::{TestDatabase, pg_url_or_skip};
use psabridge_store::{Store, StoreOptions};
use psabridge_web::AppState;
use psabridge_web::accounts::AccountsConfig;
use psabridge_web::sso::CALLBACK_PATH;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[allow(dead_code)]
#[path = "../../oidc/tests/support/mod.rs"]
mod support;

const CATALOG: &str = "[[event_type]]\nkey = \"a\"\nname = \"Alert A\"\ncategory = \"X\"\n";
const PASSWORD: &str = "correct horse battery staple";
const TOTP_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
const CLIENT: &str = "psa-bridge";
const CLIENT_SECRET: &str = "bridge-secret-that-is-long-enough-0123456789";
const OTHER: &str = "other-app";
const OTHER_SECRET: &str = "other-secret-that-is-long-enough-0123456789";
const ID_TOKEN_TTL: u64 = 300;

struct World {
    url: String,
    state: AppState,
    store: Store,
    http: reqwest::Client,
    vendor_token: String,
    op: support::Op,
    receiver: support::Receiver,
    _dir: Option<tempfile::TempDir>,
    pg: Option<TestDatabase>,
}

/// What the provider's accounts are (sub, email, email_verified).
fn op_accounts() -> Value {
    let acc = |sub: &str, email: &str, verified: Value| json!({"sub": sub, "email": email, "email_verified": verified, "name": sub});
    json!([
        acc("tech", "tech@a.test", json!(true)),
        acc("admin", "admin@a.test", json!(true)),
        acc("prim", "prim@a.test", json!(true)),
        acc("unverified", "unverified@a.test", json!(false)),
        acc("multi", "multi@a.test", json!(true)),
        acc("newbie", "newbie@a.test", json!(true)),
        acc("newtech", "newtech@b.test", json!(true)),
        acc("nojit", "nojit@c.test", json!(true)),
        acc("unverified-new", "unverified-new@a.test", json!(false)),
        acc("elsewhere", "elsewhere@a.test", json!(true)),
    ])
}

impl World {
    async fn start(pg: bool, portal_url: Option<&str>) -> Result<Option<World>> {
        let keys = KeyRing::parse(&KeyRing::generate_key()).unwrap();
        let (store, dir, db) = if pg {
            let Some(admin) = pg_url_or_skip("sso over HTTP") else {
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let mut state = AppState::new(engine, Some(url.clone()));
        state.accounts = Arc::new(AccountsConfig {
            secure_cookies: false,
            hashing: PasswordHashing::FAST_INSECURE,
            ..Default::default()
        });
        state.sso = Arc::new(psabridge_web::sso::SsoConfig::with_portal_url(
            portal_url.map(str::to_owned),
        ));
        let app = psabridge_web::router(state.clone())
            .into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await });

        // The provider sends its back-channel logout tokens to a receiver of the test, which
        // hands them to the service (so the test can also replay one).
        let receiver = support::Receiver::start().await?;
        let op = support::start_op(&support::OpOptions {
            clients: json!([
                {
                    "client_id": CLIENT,
                    "client_secret": CLIENT_SECRET,
                    "redirect_uris": [format!("{url}{CALLBACK_PATH}")],
                    "backchannel_logout_uri": format!("{}/backchannel-logout", receiver.base)
                },
                {
                    "client_id": OTHER,
                    "client_secret": OTHER_SECRET,
                    "redirect_uris": [format!("{url}/other-callback")]
                }
            ]),
            accounts: op_accounts(),
            signing_key: None,
            id_token_ttl: Some(ID_TOKEN_TTL),
            scope_claims_in_id_token: true,
        })?;

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
        for p in ["msp-a", "msp-b", "msp-c"] {
            store.create_partner(p, p, now).await?;
        }
        Ok(Some(World {
            url,
            state,
            store,
            http: reqwest::Client::new(),
            vendor_token,
            op,
            receiver,
            _dir: dir,
            pg: db,
        }))
    }

    async fn stop(self) {
        self.store.close().await;
        if let Some(db) = self.pg {
            db.drop_database().await;
        }
    }

    /// A person with a password (and TOTP when asked) and a role at `partner`.
    async fn person(&self, email: &str, partner: &str, role: &str, with_totp: bool) -> Result<i64> {
        let id = match self.store.user_by_email(email).await? {
            Some(u) => u.id,
            None => {
                let id = self.store.create_user(email, email, 0).await?;
                let hash = PasswordHashing::FAST_INSECURE.hash(PASSWORD)?;
                self.store.set_password_hash(id, &hash).await?;
                if with_totp {
                    self.store.set_pending_totp(id, TOTP_SECRET).await?;
                    self.store.confirm_totp(id, 0, &[]).await?;
                }
                id
            }
        };
        self.store.add_membership(id, partner, role, 0).await?;
        Ok(id)
    }

    async fn vendor(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value)> {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.vendor_token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await?;
        let status = r.status();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    fn settings(&self, jit: bool, role: Option<&str>, require: bool) -> Value {
        let mut v = json!({
            "issuer": self.op.issuer,
            "client_id": CLIENT,
            "client_secret": CLIENT_SECRET,
            "scopes": ["email", "profile"],
            "jit_enabled": jit,
            "require_idp": require,
        });
        if let Some(r) = role {
            v["jit_default_role"] = json!(r);
        }
        v
    }

    /// Password login; the status and body.
    async fn password_login(&self, email: &str, totp: bool) -> Result<(StatusCode, Value)> {
        let mut body = json!({"email": email, "password": PASSWORD});
        if totp {
            body["totp_code"] = json!(self.code());
        }
        let r = self
            .http
            .post(format!("{}/api/v1/auth/login", self.url))
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    fn code(&self) -> String {
        // A fresh step each time (codes are single-use per step).
        self.state.accounts.clock.advance(Duration::from_secs(30));
        let at = (self.state.accounts.clock.now_ms() / 1000) as u64;
        let secret = totp_rs::Secret::try_from_base32(TOTP_SECRET).unwrap();
        totp_rs::Builder::new()
            .with_secret(secret.as_ref())
            .build()
            .unwrap()
            .generate(at)
            .to_string()
    }

    /// Start a login at `partner` in `browser`, sign in at the provider as `login`; the callback
    /// URL the provider sent the browser to (not yet visited).
    async fn through_provider(
        &self,
        browser: &reqwest::Client,
        partner: &str,
        login: &str,
    ) -> Result<url::Url> {
        let start = browser
            .get(format!("{}/api/v1/auth/sso/{partner}/start", self.url))
            .send()
            .await?;
        ensure!(
            start.status() == StatusCode::FOUND,
            "start: {} {}",
            start.status(),
            start.text().await?
        );
        let location = start
            .headers()
            .get("location")
            .context("no Location")?
            .to_str()?
            .to_owned();
        let auth = url::Url::parse(&location)?;
        let prefix = format!("{}{CALLBACK_PATH}", self.url);
        let params = support::log_in(browser, &auth, login, &prefix)
            .await
            .with_context(|| self.op.stderr())?;
        callback_url(&prefix, &params)
    }

    async fn visit(
        &self,
        browser: &reqwest::Client,
        url: &url::Url,
    ) -> Result<(StatusCode, Value)> {
        let r = browser.get(url.clone()).send().await?;
        let status = r.status();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    /// A whole login through the provider: the callback's status and body.
    async fn idp_login(
        &self,
        browser: &reqwest::Client,
        partner: &str,
        login: &str,
    ) -> Result<(StatusCode, Value)> {
        let cb = self.through_provider(browser, partner, login).await?;
        self.visit(browser, &cb).await
    }

    async fn audit_actions(&self, partner: &str) -> Result<Vec<(String, Value)>> {
        Ok(self
            .store
            .audit_log(partner, None, 1000)
            .await?
            .into_iter()
            .map(|e| (e.action, e.after.unwrap_or(Value::Null)))
            .collect())
    }

    async fn audited(
        &self,
        partner: &str,
        action: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Result<bool> {
        Ok(self
            .audit_actions(partner)
            .await?
            .iter()
            .any(|(a, after)| a == action && check(after)))
    }
}

fn callback_url(prefix: &str, p: &psabridge_oidc::CallbackParams) -> Result<url::Url> {
    let mut u = url::Url::parse(prefix)?;
    {
        let mut q = u.query_pairs_mut();
        for (k, v) in [
            ("code", &p.code),
            ("state", &p.state),
            ("iss", &p.iss),
            ("error", &p.error),
        ] {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
    }
    Ok(u)
}

fn with_param(u: &url::Url, key: &str, value: &str) -> url::Url {
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| {
            if k == key {
                (k.into_owned(), value.to_owned())
            } else {
                (k.into_owned(), v.into_owned())
            }
        })
        .collect();
    let mut out = u.clone();
    out.query_pairs_mut().clear().extend_pairs(pairs);
    out
}

async fn story(w: &World) -> Result<()> {
    let tech = w
        .person("tech@a.test", "msp-a", "technician", false)
        .await?;
    w.person("admin@a.test", "msp-a", "admin", false).await?;
    let prim = w.person("prim@a.test", "msp-a", "primary", true).await?;
    w.person("secadmin@a.test", "msp-a", "security_admin", false)
        .await?;
    w.person("unverified@a.test", "msp-a", "technician", true)
        .await?;
    w.person("multi@a.test", "msp-a", "technician", false)
        .await?;
    w.person("multi@a.test", "msp-b", "read_only", false)
        .await?;
    let listed = w
        .person("listed@a.test", "msp-a", "technician", false)
        .await?;

    // Settings: write-only secret, a bad issuer named by field, a privileged JIT role refused.
    let (st, v) = w
        .vendor(
            Method::PUT,
            "/api/v1/partners/msp-a/sso",
            Some(w.settings(true, None, false)),
        )
        .await?;
    ensure!(st == StatusCode::OK, "put settings: {st} {v}");
    ensure!(
        v["client_secret_set"] == json!(true) && v.get("client_secret").is_none(),
        "{v}"
    );
    ensure!(v["jit_default_role"] == "read_only", "{v}");
    let (_, got) = w
        .vendor(Method::GET, "/api/v1/partners/msp-a/sso", None)
        .await?;
    ensure!(
        !got.to_string().contains(CLIENT_SECRET),
        "the secret leaked: {got}"
    );
    let mut bad = w.settings(true, None, false);
    bad["issuer"] = json!("http://127.0.0.1:1");
    let (st, v) = w
        .vendor(Method::PUT, "/api/v1/partners/msp-b/sso", Some(bad))
        .await?;
    ensure!(
        st == StatusCode::UNPROCESSABLE_ENTITY && v.to_string().contains("issuer"),
        "{st} {v}"
    );
    let (st, v) = w
        .vendor(
            Method::PUT,
            "/api/v1/partners/msp-b/sso",
            Some(w.settings(true, Some("primary"), false)),
        )
        .await?;
    ensure!(
        st == StatusCode::UNPROCESSABLE_ENTITY && v.to_string().contains("jit_default_role"),
        "{st} {v}"
    );
    let (st, _) = w
        .vendor(
            Method::PUT,
            "/api/v1/partners/msp-b/sso",
            Some(w.settings(true, Some("technician"), false)),
        )
        .await?;
    ensure!(st == StatusCode::OK);
    let (st, _) = w
        .vendor(
            Method::PUT,
            "/api/v1/partners/msp-c/sso",
            Some(w.settings(false, None, false)),
        )
        .await?;
    ensure!(st == StatusCode::OK);

    // The switch is refused until an administrator logged in through the provider.
    let (st, v) = w
        .vendor(
            Method::PUT,
            "/api/v1/partners/msp-a/sso",
            Some(w.settings(true, None, true)),
        )
        .await?;
    ensure!(
        st == StatusCode::CONFLICT && v.to_string().contains("require_idp"),
        "{st} {v}"
    );

    // Link by verified email (one non-privileged match): a session through the provider.
    let browser = support::browser();
    let (st, v) = w.idp_login(&browser, "msp-a", "tech").await?;
    ensure!(
        st == StatusCode::OK && v["status"] == "logged_in",
        "tech: {st} {v}"
    );
    ensure!(
        v["user"]["id"] == json!(tech) && v["session"]["auth_method"] == "idp",
        "{v}"
    );
    let me = browser
        .get(format!("{}/api/v1/auth/session", w.url))
        .send()
        .await?;
    ensure!(me.status() == StatusCode::OK, "session: {}", me.status());
    ensure!(w.audited("msp-a", "auth.sso_linked", |_| true).await?);
    ensure!(
        w.audited("msp-a", "auth.login", |a| a["auth_method"] == "idp")
            .await?
    );
    let tech_browser = browser;

    // A Technician's IdP login does not prove the setup; an Admin's does.
    ensure!(
        w.store
            .sso_settings("msp-a")
            .await?
            .unwrap()
            .first_admin_idp_login_at
            .is_none()
    );
    let (st, v) = w.idp_login(&support::browser(), "msp-a", "admin").await?;
    ensure!(
        st == StatusCode::OK && v["status"] == "logged_in",
        "admin: {st} {v}"
    );
    ensure!(
        w.store
            .sso_settings("msp-a")
            .await?
            .unwrap()
            .first_admin_idp_login_at
            .is_some()
    );
    ensure!(
        w.audited("msp-a", "sso.first_admin_login", |_| true)
            .await?
    );

    // Enforcement on: a Technician's password login is refused; Primary, Security Admin and
    // the listed exception keep theirs; the email of several partners too.
    let (st, v) = w
        .vendor(
            Method::PUT,
            "/api/v1/partners/msp-a/sso",
            Some(w.settings(true, None, true)),
        )
        .await?;
    ensure!(
        st == StatusCode::OK && v["require_idp"] == json!(true),
        "{st} {v}"
    );
    let (st, v) = w.password_login("tech@a.test", false).await?;
    ensure!(st == StatusCode::FORBIDDEN, "tech password login: {st} {v}");
    ensure!(
        v["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("Your company requires Log in with"),
        "{v}"
    );
    ensure!(
        w.audited("msp-a", "auth.login_refused", |a| a["reason"]
            == "require_idp")
            .await?
    );
    let (st, v) = w.password_login("prim@a.test", true).await?;
    ensure!(st == StatusCode::OK, "primary: {st} {v}");
    let (st, v) = w.password_login("secadmin@a.test", false).await?;
    ensure!(st == StatusCode::OK, "security admin: {st} {v}");
    ensure!(
        w.audited(
            "msp-a",
            "auth.sso_exempt_password_login",
            |a| a["exemption"] == "security_admin"
        )
        .await?
    );
    let (st, _) = w.password_login("listed@a.test", false).await?;
    ensure!(st == StatusCode::FORBIDDEN);
    let (st, v) = w
        .vendor(
            Method::POST,
            "/api/v1/partners/msp-a/sso/exemptions",
            Some(json!({"user": listed})),
        )
        .await?;
    ensure!(st == StatusCode::CREATED, "{st} {v}");
    let (_, v) = w
        .vendor(Method::GET, "/api/v1/partners/msp-a/sso/exemptions", None)
        .await?;
    ensure!(v["exemptions"][0]["user"] == json!(listed), "{v}");
    let (st, v) = w.password_login("listed@a.test", false).await?;
    ensure!(st == StatusCode::OK, "listed: {st} {v}");
    let (st, _) = w.password_login("multi@a.test", false).await?;
    ensure!(st == StatusCode::OK, "several partners are exempt");
    let (st, _) = w
        .vendor(
            Method::DELETE,
            &format!("/api/v1/partners/msp-a/sso/exemptions/{listed}"),
            None,
        )
        .await?;
    ensure!(st == StatusCode::NO_CONTENT);
    let (st, _) = w.password_login("listed@a.test", false).await?;
    ensure!(st == StatusCode::FORBIDDEN, "no longer exempt");
    ensure!(
        w.audited("msp-a", "sso.exemption_removed", |_| true)
            .await?
    );

    // Only a Security Admin (or Primary) changes these: a Technician's session is refused.
    let r = tech_browser
        .get(format!("{}/api/v1/auth/session", w.url))
        .send()
        .await?;
    let csrf = r.json::<Value>().await?["csrf_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let r = tech_browser
        .put(format!("{}/api/v1/partners/msp-a/sso", w.url))
        .header("x-csrf-token", csrf)
        .json(&w.settings(true, None, false))
        .send()
        .await?;
    ensure!(
        r.status() == StatusCode::FORBIDDEN,
        "technician changed sso: {}",
        r.status()
    );

    // A privileged match confirms once with password + TOTP, then logs in directly.
    let browser = support::browser();
    let (st, v) = w.idp_login(&browser, "msp-a", "prim").await?;
    ensure!(
        st == StatusCode::OK && v["status"] == "confirm",
        "prim: {st} {v}"
    );
    let confirm = |password: &str, code: String| {
        browser
            .post(format!("{}/api/v1/auth/sso/confirm", w.url))
            .json(&json!({"password": password, "totp_code": code}))
            .send()
    };
    let r = confirm("wrong password", w.code()).await?;
    ensure!(
        r.status() == StatusCode::UNAUTHORIZED,
        "wrong password: {}",
        r.status()
    );
    ensure!(
        w.audited("msp-a", "auth.sso_confirm_failed", |_| true)
            .await?
    );
    let r = support::browser()
        .post(format!("{}/api/v1/auth/sso/confirm", w.url))
        .json(&json!({"password": PASSWORD, "totp_code": w.code()}))
        .send()
        .await?;
    ensure!(
        r.status() == StatusCode::BAD_REQUEST,
        "another browser confirmed: {}",
        r.status()
    );
    let r = confirm(PASSWORD, w.code()).await?;
    let st = r.status();
    let v: Value = r.json().await?;
    ensure!(
        st == StatusCode::OK && v["status"] == "logged_in" && v["user"]["id"] == json!(prim),
        "confirm: {st} {v}"
    );
    ensure!(
        w.audited("msp-a", "auth.sso_linked", |a| a["by"] == "password_totp")
            .await?
    );
    let (st, v) = w.idp_login(&support::browser(), "msp-a", "prim").await?;
    ensure!(
        st == StatusCode::OK && v["status"] == "logged_in",
        "prim again: {st} {v}"
    );

    // An unverified email never links silently: confirm.
    let (st, v) = w
        .idp_login(&support::browser(), "msp-a", "unverified")
        .await?;
    ensure!(
        st == StatusCode::OK && v["status"] == "confirm",
        "unverified: {st} {v}"
    );

    // The chooser: one identity, two partners on this provider; bound to the browser.
    let browser = support::browser();
    let (st, v) = w.idp_login(&browser, "msp-a", "multi").await?;
    ensure!(
        st == StatusCode::OK && v["status"] == "choose",
        "multi: {st} {v}"
    );
    let list: Value = browser
        .get(format!("{}/api/v1/auth/sso/choose", w.url))
        .send()
        .await?
        .json()
        .await?;
    let offered: Vec<&str> = list["partners"]
        .as_array()
        .context("partners")?
        .iter()
        .filter_map(|p| p["partner"].as_str())
        .collect();
    ensure!(offered == ["msp-a", "msp-b"], "{list}");
    let r = support::browser()
        .get(format!("{}/api/v1/auth/sso/choose", w.url))
        .send()
        .await?;
    ensure!(
        r.status() == StatusCode::BAD_REQUEST,
        "another browser sees the choice"
    );
    let r = browser
        .post(format!("{}/api/v1/auth/sso/choose", w.url))
        .json(&json!({"partner": "msp-c"}))
        .send()
        .await?;
    ensure!(
        r.status() == StatusCode::UNPROCESSABLE_ENTITY,
        "not offered: {}",
        r.status()
    );
    let r = browser
        .post(format!("{}/api/v1/auth/sso/choose", w.url))
        .json(&json!({"partner": "msp-b"}))
        .send()
        .await?;
    let st = r.status();
    let v: Value = r.json().await?;
    ensure!(
        st == StatusCode::OK && v["partner"] == "msp-b" && v["session"]["auth_method"] == "idp",
        "choose: {st} {v}"
    );
    let r = browser
        .post(format!("{}/api/v1/auth/sso/choose", w.url))
        .json(&json!({"partner": "msp-a"}))
        .send()
        .await?;
    ensure!(
        r.status() == StatusCode::BAD_REQUEST || r.status() == StatusCode::NOT_FOUND,
        "chosen twice: {}",
        r.status()
    );

    // JIT: Read-only by default, the chosen role when set; off → denied, nobody created.
    let (st, v) = w.idp_login(&support::browser(), "msp-a", "newbie").await?;
    ensure!(
        st == StatusCode::OK && v["status"] == "logged_in",
        "newbie: {st} {v}"
    );
    let newbie = w
        .store
        .user_by_email("newbie@a.test")
        .await?
        .context("provisioned")?;
    ensure!(w.store.member("msp-a", newbie.id).await?.unwrap().role == "read_only");
    ensure!(
        w.audited("msp-a", "auth.sso_provisioned", |a| a["role"]
            == "read_only")
            .await?
    );
    let (st, v) = w.idp_login(&support::browser(), "msp-b", "newtech").await?;
    ensure!(
        st == StatusCode::OK && v["status"] == "logged_in",
        "newtech: {st} {v}"
    );
    let newtech = w
        .store
        .user_by_email("newtech@b.test")
        .await?
        .context("provisioned")?;
    ensure!(w.store.member("msp-b", newtech.id).await?.unwrap().role == "technician");
    let (st, v) = w.idp_login(&support::browser(), "msp-c", "nojit").await?;
    ensure!(
        st == StatusCode::FORBIDDEN && v["reason"] == "provisioning_off",
        "nojit: {st} {v}"
    );
    ensure!(w.store.user_by_email("nojit@c.test").await?.is_none());
    ensure!(
        w.audited("msp-c", "auth.sso_failed", |a| a["reason"]
            == "provisioning_off")
            .await?
    );
    // Another partner's account is out of scope: msp-c's provider may not claim it.
    w.person("elsewhere@a.test", "msp-b", "read_only", false)
        .await?;
    let (st, v) = w
        .idp_login(&support::browser(), "msp-c", "elsewhere")
        .await?;
    ensure!(
        st == StatusCode::FORBIDDEN && v["reason"] == "outside_partner",
        "elsewhere: {st} {v}"
    );
    ensure!(
        w.store
            .user_of_identity(&w.op.issuer, "elsewhere")
            .await?
            .is_none()
    );
    let (st, v) = w
        .idp_login(&support::browser(), "msp-a", "unverified-new")
        .await?;
    ensure!(
        st == StatusCode::FORBIDDEN && v["reason"] == "unverified_email",
        "unverified-new: {st} {v}"
    );

    // Refused callbacks, each answered with an error and (where the partner is known) audited.
    // Bad state.
    let browser = support::browser();
    let cb = w.through_provider(&browser, "msp-a", "tech").await?;
    let (st, v) = w
        .visit(&browser, &with_param(&cb, "state", "forged"))
        .await?;
    ensure!(
        st == StatusCode::BAD_REQUEST && v["reason"] == "state",
        "bad state: {st} {v}"
    );
    // A replayed callback (state and nonce used once).
    let browser = support::browser();
    let cb = w.through_provider(&browser, "msp-a", "tech").await?;
    let (st, v) = w.visit(&browser, &cb).await?;
    ensure!(st == StatusCode::OK, "{st} {v}");
    let (st, v) = w.visit(&browser, &cb).await?;
    ensure!(
        st == StatusCode::BAD_REQUEST,
        "replay without a login in progress: {st} {v}"
    );
    // ... and with another login of this browser in progress, the used state stays used.
    let _next = browser
        .get(format!("{}/api/v1/auth/sso/msp-a/start", w.url))
        .send()
        .await?;
    let (st, v) = w.visit(&browser, &cb).await?;
    ensure!(
        st == StatusCode::BAD_REQUEST && v["reason"] == "state",
        "replay: {st} {v}"
    );
    // A callback from another browser.
    let browser = support::browser();
    let cb = w.through_provider(&browser, "msp-a", "tech").await?;
    let (st, _) = w.visit(&support::browser(), &cb).await?;
    ensure!(st == StatusCode::BAD_REQUEST, "another browser's callback");
    // Wrong issuer on the callback (RFC 9207 mix-up).
    let browser = support::browser();
    let cb = w.through_provider(&browser, "msp-a", "tech").await?;
    let (st, v) = w
        .visit(&browser, &with_param(&cb, "iss", "http://127.0.0.1:9/evil"))
        .await?;
    ensure!(st == StatusCode::UNAUTHORIZED, "wrong issuer: {st} {v}");
    ensure!(
        w.audited("msp-a", "auth.sso_failed", |a| a["check"]
            == "IssuerMismatch")
            .await?
    );
    // A code issued to another client (wrong audience): the provider refuses it to us.
    let browser = support::browser();
    let start = browser
        .get(format!("{}/api/v1/auth/sso/msp-a/start", w.url))
        .send()
        .await?;
    let auth = url::Url::parse(start.headers()["location"].to_str()?)?;
    let other_cb = format!("{}/other-callback", w.url);
    let auth = with_param(
        &with_param(&auth, "client_id", OTHER),
        "redirect_uri",
        &other_cb,
    );
    let params = support::log_in(&browser, &auth, "tech", &other_cb).await?;
    let prefix = format!("{}{CALLBACK_PATH}", w.url);
    let (st, v) = w.visit(&browser, &callback_url(&prefix, &params)?).await?;
    ensure!(
        st == StatusCode::UNAUTHORIZED,
        "other client's code: {st} {v}"
    );
    ensure!(
        w.audited("msp-a", "auth.sso_failed", |a| a["check"]
            == "TokenRejected")
            .await?
    );

    // Back-channel logout: the provider's token ends the session of its sid; a replay is refused.
    let browser = support::browser();
    let (st, v) = w.idp_login(&browser, "msp-a", "admin").await?;
    ensure!(st == StatusCode::OK, "{st} {v}");
    provider_logout(&browser, &w.op.issuer).await?;
    let token = w.receiver.next_logout_token().await?;
    let post = |t: String| {
        w.http
            .post(format!("{}/api/v1/auth/sso/backchannel-logout", w.url))
            .form(&[("logout_token", t)])
            .send()
    };
    let r = post(token.clone()).await?;
    ensure!(
        r.status() == StatusCode::OK,
        "logout: {} {}",
        r.status(),
        r.text().await?
    );
    let me = browser
        .get(format!("{}/api/v1/auth/session", w.url))
        .send()
        .await?;
    ensure!(
        me.status() == StatusCode::UNAUTHORIZED,
        "the session survived: {}",
        me.status()
    );
    ensure!(
        w.audited(
            "msp-a",
            "auth.sso_backchannel_logout",
            |a| a["sessions_ended"] == json!(1)
        )
        .await?
    );
    let r = post(token).await?;
    ensure!(
        r.status() == StatusCode::BAD_REQUEST,
        "replayed logout: {}",
        r.status()
    );
    ensure!(
        w.audited("msp-a", "auth.sso_logout_refused", |a| a["check"]
            == "LogoutReplayed")
            .await?
    );
    let r = post("not.a.token".into()).await?;
    ensure!(r.status() == StatusCode::BAD_REQUEST);
    let me = tech_browser
        .get(format!("{}/api/v1/auth/session", w.url))
        .send()
        .await?;
    ensure!(
        me.status() == StatusCode::OK,
        "another person's session ended"
    );

    // Deactivation ends the IdP sessions at once, and the provider cannot log them in again.
    let tech_user = w.store.user_by_id(tech).await?.unwrap();
    w.store
        .deactivate_user(tech_user.id, w.state.accounts.clock.now_ms())
        .await?;
    let me = tech_browser
        .get(format!("{}/api/v1/auth/session", w.url))
        .send()
        .await?;
    ensure!(me.status() == StatusCode::UNAUTHORIZED);
    let (st, v) = w.idp_login(&support::browser(), "msp-a", "tech").await?;
    ensure!(
        st == StatusCode::FORBIDDEN && v["reason"] == "deactivated",
        "deactivated: {st} {v}"
    );

    // Expired ID token: the callback comes after the token's lifetime (and the clock skew).
    let browser = support::browser();
    let cb = w.through_provider(&browser, "msp-a", "admin").await?;
    w.state
        .accounts
        .clock
        .advance(Duration::from_secs(ID_TOKEN_TTL + 120));
    let (st, v) = w.visit(&browser, &cb).await?;
    ensure!(st == StatusCode::UNAUTHORIZED, "expired: {st} {v}");
    ensure!(
        w.audited("msp-a", "auth.sso_failed", |a| a["check"] == "Expired")
            .await?
    );
    Ok(())
}

/// RP-initiated logout at the provider in the browser: its confirmation page, then "yes".
async fn provider_logout(browser: &reqwest::Client, issuer: &str) -> Result<()> {
    let meta: Value = browser
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .await?
        .json()
        .await?;
    let end = meta["end_session_endpoint"]
        .as_str()
        .context("end_session_endpoint")?;
    let page = browser.get(end).send().await?.text().await?;
    let xsrf = page
        .split("name=\"xsrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .context("no xsrf on the logout page")?;
    let action = page
        .split("action=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .context("no form action")?;
    let target = url::Url::parse(end)?.join(action)?;
    let done = browser
        .post(target)
        .form(&[("xsrf", xsrf), ("logout", "yes")])
        .send()
        .await?;
    if !(done.status().is_success() || done.status().is_redirection()) {
        bail!("logout answered {}", done.status());
    }
    Ok(())
}

async fn run(pg: bool) -> Result<()> {
    if let Some(why) = support::unavailable() {
        eprintln!("\n*** {why} ***\n");
        return Ok(());
    }
    let Some(w) = World::start(pg, None).await? else {
        return Ok(());
    };
    let result = story(&w).await;
    if result.is_err() {
        eprintln!("provider stderr:\n{}", w.op.stderr());
    }
    w.stop().await;
    result
}

/// With a portal configured, the callback redirects there (with the session cookie), and a
/// step that needs the person (the chooser) redirects to the portal's page for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sso_redirects_to_the_portal_when_one_is_set() -> Result<()> {
    if let Some(why) = support::unavailable() {
        eprintln!("\n*** {why} ***\n");
        return Ok(());
    }
    const PORTAL: &str = "https://portal.example";
    let w = World::start(false, Some(PORTAL)).await?.context("sqlite")?;
    let result = async {
        w.person("tech@a.test", "msp-a", "technician", false)
            .await?;
        w.person("multi@a.test", "msp-a", "technician", false)
            .await?;
        w.person("multi@a.test", "msp-b", "read_only", false)
            .await?;
        for p in ["msp-a", "msp-b"] {
            let (st, v) = w
                .vendor(
                    Method::PUT,
                    &format!("/api/v1/partners/{p}/sso"),
                    Some(w.settings(false, None, false)),
                )
                .await?;
            ensure!(st == StatusCode::OK, "{st} {v}");
        }
        let browser = support::browser();
        let cb = w.through_provider(&browser, "msp-a", "tech").await?;
        let r = browser.get(cb).send().await?;
        ensure!(r.status() == StatusCode::SEE_OTHER, "{}", r.status());
        ensure!(r.headers()["location"] == PORTAL);
        let me = browser
            .get(format!("{}/api/v1/auth/session", w.url))
            .send()
            .await?;
        ensure!(me.status() == StatusCode::OK, "no session: {}", me.status());
        let browser = support::browser();
        let cb = w.through_provider(&browser, "msp-a", "multi").await?;
        let r = browser.get(cb).send().await?;
        ensure!(r.status() == StatusCode::SEE_OTHER);
        ensure!(r.headers()["location"] == format!("{PORTAL}/sso/choose").as_str());
        Ok(())
    }
    .await;
    w.stop().await;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sso_on_sqlite() -> Result<()> {
    run(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sso_on_postgres() -> Result<()> {
    run(true).await
}
