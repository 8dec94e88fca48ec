//! The harness: a simulator, an HTTP client and a token.

use std::time::Duration;

use anyhow::{Result, ensure};
use psabridge_sim::halopsa::{Config, Simulator};
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub struct T {
    pub sim: Simulator,
    pub http: reqwest::Client,
    pub token: String,
}

pub async fn start(config: Config) -> Result<T> {
    let sim = Simulator::start(tokio::net::TcpListener::bind("127.0.0.1:0").await?, config).await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()?;
    let mut t = T {
        sim,
        http,
        token: String::new(),
    };
    let (s, v) = t
        .token("demo", "psabridge-demo", "halo-demo-secret")
        .await?;
    ensure!(s == StatusCode::OK, "{s} {v}");
    t.token = v["access_token"].as_str().unwrap_or_default().to_string();
    Ok(t)
}

/// The answer's body as JSON, or as a JSON string when it is not JSON.
pub async fn body(r: reqwest::Response) -> Result<(StatusCode, Value)> {
    let status = r.status();
    let text = r.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

impl T {
    /// `POST /auth/token?tenant=` with a form body, as the public clients send it.
    pub async fn token(&self, tenant: &str, id: &str, secret: &str) -> Result<(StatusCode, Value)> {
        let form = format!(
            "grant_type=client_credentials&client_id={id}&client_secret={secret}&scope=all"
        );
        body(
            self.http
                .post(format!(
                    "{}/auth/token?tenant={tenant}",
                    self.sim.base_url()
                ))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form)
                .send()
                .await?,
        )
        .await
    }

    /// An authenticated call below `/api/` (`path` may carry a query).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        json: Option<Value>,
    ) -> Result<(StatusCode, Value)> {
        let mut req = self
            .http
            .request(method, format!("{}/api/{path}", self.sim.base_url()))
            .bearer_auth(&self.token);
        if let Some(b) = json {
            req = req.json(&b);
        }
        body(req.send().await?).await
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        let (s, v) = self.call(Method::GET, path, None).await?;
        ensure!(s == StatusCode::OK, "GET {path}: {s} {v}");
        Ok(v)
    }

    /// A control request under `/_sim/`.
    pub async fn control(
        &self,
        method: Method,
        path: &str,
        json: Option<Value>,
    ) -> Result<(StatusCode, Value)> {
        let mut req = self
            .http
            .request(method, format!("{}/_sim/{path}", self.sim.base_url()));
        if let Some(b) = json {
            req = req.json(&b);
        }
        body(req.send().await?).await
    }

    pub async fn fault(&self, rule: Value) -> Result<()> {
        let (s, v) = self.control(Method::POST, "faults", Some(rule)).await?;
        ensure!(s == StatusCode::CREATED, "{s} {v}");
        Ok(())
    }
}
