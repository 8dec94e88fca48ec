//! Test harness: the real `psabridge` binary, a PSA simulator in its own process, real HTTP
//! between them, and SQLite or PostgreSQL underneath.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use psabridge_core::settings::PsaKind;
use psabridge_store::testing::{TestDatabase, pg_url_or_skip};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_psabridge");

/// Read stdout lines of a child until one satisfies `done`, with a deadline.
fn read_until(
    child: &mut Child,
    deadline: Duration,
    mut done: impl FnMut(&str) -> bool,
) -> Result<String> {
    let stdout = child.stdout.take().context("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let end = Instant::now() + deadline;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if done(&line) => {
                // Keep draining in the background so the child never blocks on a full pipe.
                std::thread::spawn(move || while rx.recv().is_ok() {});
                return Ok(line);
            }
            Ok(_) => {}
            Err(_) => bail!("the process did not say it was ready in {deadline:?}"),
        }
    }
}

/// A PSA simulator, in its own process (it survives the product's crashes). Tests read it
/// through its control surface (`/_sim/`), the same for every PSA, in PSA Bridge's terms.
pub struct Sim {
    child: Child,
    pub kind: PsaKind,
    pub base_url: String,
    pub username: String,
    pub secret: String,
    pub integration_code: String,
    http: reqwest::Client,
}

impl Sim {
    /// The Autotask simulator.
    pub async fn start() -> Result<Sim> {
        Sim::start_psa(PsaKind::Autotask).await
    }

    pub async fn start_psa(kind: PsaKind) -> Result<Sim> {
        Sim::start_psa_with(kind, &[]).await
    }

    /// [`Sim::start_psa`] with more `psabridge sim <psa>` flags (they win over the defaults).
    pub async fn start_psa_with(kind: PsaKind, extra_args: &[&str]) -> Result<Sim> {
        let mut cmd = Command::new(BIN);
        cmd.args([
            "sim",
            &kind.as_str().replace('_', "-"),
            "--listen",
            "127.0.0.1:0",
        ]);
        // Generous limits, as the demo has: these tests are about correctness under faults.
        cmd.args(["--hourly-limit", "100000"]);
        cmd.args(extra_args);
        let mut child = cmd
            .env("PSABRIDGE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let line = read_until(&mut child, Duration::from_secs(30), |l| l.starts_with('{'))?;
        let v: Value = serde_json::from_str(&line)?;
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        Ok(Sim {
            child,
            kind,
            base_url: s("base_url"),
            username: s("username"),
            secret: s("secret"),
            integration_code: s("integration_code"),
            http: reqwest::Client::new(),
        })
    }

    async fn control(&self, path: &str) -> Result<Value> {
        let r = self
            .http
            .get(format!("{}/_sim/{path}", self.base_url))
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("GET /_sim/{path}: {status} {v}");
        }
        Ok(v)
    }

    /// A ticket as the simulator holds it (`fields`, `notes`, `reference`, `closed`, …).
    pub async fn ticket(&self, id: &str) -> Result<Value> {
        self.control(&format!("tickets/{id}")).await
    }

    /// Tickets made by PSA Bridge (they carry our reference).
    pub async fn our_tickets(&self) -> Result<Vec<Value>> {
        Ok(self.control("tickets?limit=1000000").await?["tickets"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|t| {
                t["reference"]
                    .as_str()
                    .is_some_and(|r| r.contains("psabridge:"))
            })
            .collect())
    }

    pub async fn notes_of(&self, ticket_id: &str) -> Result<Vec<Value>> {
        Ok(self.ticket(ticket_id).await?["notes"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// The simulator's own counts (`/_sim/stats`).
    pub async fn stats(&self) -> Result<Value> {
        self.control("stats").await
    }

    /// Requests the simulator has answered through its API (its `/_sim/stats`).
    pub async fn requests(&self) -> Result<u64> {
        Ok(self.control("stats").await?["requests"]
            .as_u64()
            .unwrap_or_default())
    }

    /// Close a ticket as a technician would.
    pub async fn complete(&self, ticket_id: &str) -> Result<()> {
        let r = self
            .http
            .post(format!("{}/_sim/tickets/{ticket_id}/close", self.base_url))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("closing ticket {ticket_id}: {}", r.status());
        }
        Ok(())
    }

    pub async fn fault(&self, rule: Value) -> Result<()> {
        let r = self
            .http
            .post(format!("{}/_sim/faults", self.base_url))
            .json(&rule)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!(
                "adding fault {rule}: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }

    pub async fn clear_faults(&self) -> Result<()> {
        self.http
            .delete(format!("{}/_sim/faults", self.base_url))
            .send()
            .await?;
        Ok(())
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// The product: `psabridge demo` against the external simulator.
pub struct Product {
    child: Option<Child>,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub db_url: Option<String>,
    pg: Option<TestDatabase>,
    pub info: Value,
    pub kind: PsaKind,
    pub sim_url: String,
    pub http: reqwest::Client,
    /// More `demo` flags (e.g. `--smtp-url`), on every launch.
    pub extra_args: Vec<String>,
}

impl Product {
    /// Start a fresh product on `db`. `None` when `db` is PostgreSQL and no server is configured.
    pub async fn start(sim: &Sim, db: Db, test: &str) -> Result<Option<Product>> {
        Product::start_with(sim, db, test, &[]).await
    }

    /// [`Product::start`] with more `demo` flags.
    pub async fn start_with(
        sim: &Sim,
        db: Db,
        test: &str,
        extra_args: &[&str],
    ) -> Result<Option<Product>> {
        let tmp = tempfile::tempdir()?;
        let (db_url, pg) = match db {
            Db::Sqlite => (None, None),
            Db::Postgres => {
                let Some(admin) = pg_url_or_skip(test) else {
                    return Ok(None);
                };
                let pg = TestDatabase::create(&admin).await?;
                (Some(pg.url.clone()), Some(pg))
            }
        };
        let mut p = Product {
            child: None,
            dir: tmp.path().to_path_buf(),
            _tmp: Some(tmp),
            db_url,
            pg,
            info: Value::Null,
            kind: sim.kind,
            sim_url: sim.base_url.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
        };
        p.launch()?;
        Ok(Some(p))
    }

    /// (Re)start the process on the same data.
    pub fn launch(&mut self) -> Result<()> {
        let mut cmd = Command::new(BIN);
        let sim_flag = match self.kind {
            PsaKind::Autotask => "--sim-url".to_string(),
            other => format!("--{}-sim-url", other.as_str().replace('_', "-")),
        };
        cmd.args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--sim-listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            &sim_flag,
            &self.sim_url,
            "--data-dir",
        ])
        .arg(&self.dir)
        .env(
            "PSABRIDGE_LOG",
            std::env::var("PSABRIDGE_TEST_LOG").unwrap_or_else(|_| "error".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        if let Some(u) = &self.db_url {
            cmd.args(["--database-url", u]);
        }
        cmd.args(&self.extra_args);
        let mut child = cmd.spawn()?;
        read_until(&mut child, Duration::from_secs(60), |l| {
            l.contains("demo is running")
        })?;
        self.child = Some(child);
        self.info = serde_json::from_str(&std::fs::read_to_string(self.dir.join("demo.json"))?)?;
        Ok(())
    }

    /// Kill the process without warning (SIGKILL).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stop the process politely (SIGTERM) and wait for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe_free_sigterm(c.id());
            let end = Instant::now() + Duration::from_secs(20);
            while Instant::now() < end {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Send SIGTERM and wait for the process to exit on its own (error after `within`).
    pub fn sigterm_and_wait(&mut self, within: Duration) -> Result<std::process::ExitStatus> {
        let Some(mut c) = self.child.take() else {
            bail!("the product is not running");
        };
        unsafe_free_sigterm(c.id());
        let end = Instant::now() + within;
        while Instant::now() < end {
            if let Some(status) = c.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
        bail!("the product did not exit within {within:?} of SIGTERM")
    }

    /// Talk to another node on the same database from now on (its API URL).
    pub fn use_api(&mut self, api_url: &str) {
        self.info["api_url"] = Value::String(api_url.to_string());
    }

    pub fn api(&self) -> String {
        self.info["api_url"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The demo partner of this test's PSA, as demo.json describes it.
    pub fn partner(&self) -> &Value {
        self.info["partners"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["psa"] == self.kind.as_str()))
            .unwrap_or(&Value::Null)
    }

    pub fn partner_id(&self) -> String {
        self.partner()["id"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The partner's connection id.
    pub fn connection(&self) -> i64 {
        self.partner()["connection"].as_i64().unwrap_or_default()
    }

    /// The partner's catch-all: `company_id`, `contact_id`.
    pub fn catch_all(&self) -> &Value {
        &self.partner()["catch_all"]
    }

    pub fn token(&self) -> String {
        self.partner()["api_token"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Contacts of a company, through our API (the PSA's active contacts with an email).
    pub async fn contacts(&self, company: &str) -> Result<Vec<Value>> {
        let (status, v) = self
            .call(
                reqwest::Method::GET,
                &format!(
                    "/api/v1/partners/{}/connections/{}/companies/{company}/contacts",
                    self.partner_id(),
                    self.connection()
                ),
                None,
            )
            .await?;
        if status != 200 {
            bail!("contacts of {company}: {status} {v}");
        }
        Ok(v["contacts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c["email"].as_str().is_some_and(|e| !e.is_empty()))
            .collect())
    }

    pub fn client_company(&self, client: &str) -> Option<String> {
        self.partner()["clients"]
            .as_array()?
            .iter()
            .find(|c| c["id"] == client)
            .and_then(|c| c["psa_company_id"].as_str().map(str::to_string))
    }

    /// POST one body to the events endpoint; (status, body).
    pub async fn post_events(&self, body: &Value) -> Result<(u16, Value)> {
        let r = self
            .http
            .post(format!("{}/api/v1/events", self.api()))
            .bearer_auth(self.token())
            .json(body)
            .send()
            .await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    /// An authenticated request to our API.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.api()))
            .bearer_auth(self.token());
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    /// Wait until the product no longer holds `ticket_id` as a group's open ticket (it
    /// learned that the PSA closed it).
    pub async fn wait_group_closed(&self, ticket_id: &str, timeout: Duration) -> Result<()> {
        let end = Instant::now() + timeout;
        loop {
            let (status, v) = self
                .call(
                    reqwest::Method::GET,
                    &format!(
                        "/api/v1/partners/{}/connections/{}/groups",
                        self.partner_id(),
                        self.connection()
                    ),
                    None,
                )
                .await?;
            if status != 200 {
                bail!("groups: {status} {v}");
            }
            let open = v["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|g| g["ticket"]["id"] == ticket_id);
            if !open {
                return Ok(());
            }
            if Instant::now() > end {
                bail!("the product did not learn in {timeout:?} that ticket {ticket_id} closed");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub async fn event(&self, id: &str) -> Result<Value> {
        let r = self
            .http
            .get(format!("{}/api/v1/events/{id}", self.api()))
            .bearer_auth(self.token())
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("GET event {id}: {}", r.status());
        }
        Ok(r.json().await?)
    }

    /// Wait until every event's deliveries are finished (delivered or dead) or it was skipped.
    pub async fn wait_done(&self, ids: &[String], timeout: Duration) -> Result<Vec<Value>> {
        let end = Instant::now() + timeout;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            loop {
                let e = self.event(id).await?;
                let routing = e["routing"]["state"].as_str().unwrap_or("");
                let deliveries = e["deliveries"].as_array().cloned().unwrap_or_default();
                let finished = routing == "skipped"
                    || (routing == "routed"
                        && !deliveries.is_empty()
                        && deliveries
                            .iter()
                            .all(|d| matches!(d["status"].as_str(), Some("delivered" | "dead"))));
                if finished {
                    out.push(e);
                    break;
                }
                if Instant::now() > end {
                    bail!("event {id} not finished in {timeout:?}: {e}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(out)
    }

    pub async fn cleanup(mut self) {
        self.stop();
        if let Some(pg) = self.pg.take() {
            pg.drop_database().await;
        }
    }
}

impl Drop for Product {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A `psabridge serve` node on the database and key of a [`Product`] (which seeded them):
/// its own configuration file, listening on a port of its own, reaching the simulator.
pub struct Node {
    child: Option<Child>,
    config: PathBuf,
    pub api: String,
}

impl Node {
    /// Write the node's configuration next to the product's and start it; ready when
    /// `/readyz` answers 200. `engine` is extra `[engine]` TOML (e.g. `concurrency = 4`).
    pub async fn start(p: &Product, name: &str, engine: &str) -> Result<Node> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let sim_host = p
            .sim_url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let base = std::fs::read_to_string(p.dir.join("psabridge.toml"))?;
        let config = p.dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "{base}listen = \"127.0.0.1:{port}\"\n\
                 [outbound]\nallow = [\"{sim_host}\"]\nallow_http = true\n\
                 [metrics]\nlisten = \"off\"\n\
                 [engine]\nnode_name = \"{name}\"\n{engine}\n"
            ),
        )?;
        let mut node = Node {
            child: None,
            config,
            api: format!("http://127.0.0.1:{port}"),
        };
        node.launch().await?;
        Ok(node)
    }

    /// (Re)start the process; returns once it is ready.
    pub async fn launch(&mut self) -> Result<()> {
        let child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&self.config)
            .env(
                "PSABRIDGE_LOG",
                std::env::var("PSABRIDGE_TEST_LOG").unwrap_or_else(|_| "error".into()),
            )
            // (`serve` reads every PSABRIDGE_ variable as a setting.)
            .env_remove("PSABRIDGE_TEST_LOG")
            .env_remove("PSABRIDGE_TEST_THREADS")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        self.child = Some(child);
        let http = reqwest::Client::new();
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(format!("{}/readyz", self.api)).send().await
                && r.status() == 200
            {
                return Ok(());
            }
            if let Some(c) = self.child.as_mut()
                && let Some(status) = c.try_wait()?
            {
                bail!("node {} exited at start: {status}", self.config.display());
            }
            if Instant::now() > end {
                bail!("node {} not ready in 60 s", self.config.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kill the process without warning (SIGKILL).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn unsafe_free_sigterm(pid: u32) {
    // `kill -TERM` through the shell's utility keeps this crate free of unsafe code.
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

/// The one delivery of an event (these tests route each event to one connection).
pub fn delivery(e: &Value) -> &Value {
    &e["deliveries"][0]
}

pub fn ticket_id(e: &Value) -> String {
    delivery(e)["ticket"]["id"]
        .as_str()
        .unwrap_or("none")
        .to_string()
}
