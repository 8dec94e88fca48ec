//! Test harness: the real `psabridge` binary, the Autotask simulator in its own process, real
//! HTTP between them, and SQLite or PostgreSQL underneath.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use psabridge_store::testing::{TestDatabase, pg_url_or_skip};
use serde_json::{Value, json};

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

/// The Autotask simulator, in its own process (it survives the product's crashes).
pub struct Sim {
    child: Child,
    pub base_url: String,
    pub zone_url: String,
    pub username: String,
    pub secret: String,
    pub integration_code: String,
    http: reqwest::Client,
}

impl Sim {
    pub async fn start() -> Result<Sim> {
        let mut child = Command::new(BIN)
            .args([
                "sim",
                "autotask",
                "--listen",
                "127.0.0.1:0",
                "--hourly-limit",
                "100000",
            ])
            .env("PSABRIDGE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let line = read_until(&mut child, Duration::from_secs(30), |l| l.starts_with('{'))?;
        let v: Value = serde_json::from_str(&line)?;
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        Ok(Sim {
            child,
            base_url: s("base_url"),
            zone_url: s("zone_url"),
            username: s("username"),
            secret: s("secret"),
            integration_code: s("integration_code"),
            http: reqwest::Client::new(),
        })
    }

    /// An Autotask REST call with the API user's headers.
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let mut req = self
            .http
            .request(method, format!("{}V1.0/{path}", self.zone_url))
            .header("ApiIntegrationCode", &self.integration_code)
            .header("UserName", &self.username)
            .header("Secret", &self.secret);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("Autotask {path} answered {status}: {v}");
        }
        Ok(v)
    }

    /// Every item of an Autotask query, following pages.
    pub async fn query(&self, entity: &str, filter: Value) -> Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut page = self
            .api(
                reqwest::Method::POST,
                &format!("{entity}/query"),
                Some(json!({"filter": filter})),
            )
            .await?;
        loop {
            items.extend(page["items"].as_array().cloned().unwrap_or_default());
            match page["pageDetails"]["nextPageUrl"].as_str() {
                Some(next) if !next.is_empty() => {
                    page = self
                        .http
                        .get(next)
                        .header("ApiIntegrationCode", &self.integration_code)
                        .header("UserName", &self.username)
                        .header("Secret", &self.secret)
                        .send()
                        .await?
                        .json()
                        .await?;
                }
                _ => return Ok(items),
            }
        }
    }

    /// Tickets made by PSA Bridge (they carry our reference in externalID).
    pub async fn our_tickets(&self) -> Result<Vec<Value>> {
        self.query(
            "Tickets",
            json!([{"op": "beginsWith", "field": "externalID", "value": "psabridge:"}]),
        )
        .await
    }

    pub async fn notes_of(&self, ticket_id: i64) -> Result<Vec<Value>> {
        self.query(
            "TicketNotes",
            json!([{"op": "eq", "field": "ticketID", "value": ticket_id}]),
        )
        .await
    }

    pub async fn ticket(&self, id: i64) -> Result<Value> {
        Ok(self
            .api(reqwest::Method::GET, &format!("Tickets/{id}"), None)
            .await?["item"]
            .clone())
    }

    /// Complete a ticket as a technician would.
    pub async fn complete(&self, ticket_id: i64) -> Result<()> {
        let r = self
            .http
            .post(format!(
                "{}/_sim/tickets/{ticket_id}/complete",
                self.base_url
            ))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("completing ticket {ticket_id}: {}", r.status());
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

    /// The contacts of a company, active ones with an email.
    pub async fn contacts(&self, company_id: &str) -> Result<Vec<Value>> {
        Ok(self
            .query(
                "Contacts",
                json!([{"op": "eq", "field": "companyID", "value": company_id}]),
            )
            .await?
            .into_iter()
            .filter(|c| {
                c["isActive"] == json!(1)
                    && c["emailAddress"].as_str().is_some_and(|e| !e.is_empty())
            })
            .collect())
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
    pub sim_url: String,
    pub http: reqwest::Client,
}

impl Product {
    /// Start a fresh product on `db`. `None` when `db` is PostgreSQL and no server is configured.
    pub async fn start(sim: &Sim, db: Db, test: &str) -> Result<Option<Product>> {
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
            sim_url: sim.base_url.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
        };
        p.launch()?;
        Ok(Some(p))
    }

    /// (Re)start the process on the same data.
    pub fn launch(&mut self) -> Result<()> {
        let mut cmd = Command::new(BIN);
        cmd.args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--sim-url",
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

    pub fn api(&self) -> String {
        self.info["api_url"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn token(&self) -> String {
        self.info["api_token"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn client_company(&self, client: &str) -> Option<String> {
        self.info["clients"]
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

pub fn ticket_id(e: &Value) -> i64 {
    delivery(e)["ticket"]["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(-1)
}
