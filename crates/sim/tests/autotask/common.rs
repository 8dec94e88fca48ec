//! The harness: a simulator, an HTTP client and the demo user's credentials.

use std::time::Duration;

use anyhow::{Result, ensure};
use psabridge_sim::autotask::{Config, Simulator};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub struct T {
    pub sim: Simulator,
    pub http: reqwest::Client,
    pub user: String,
    pub secret: String,
    pub code: String,
}

pub async fn start(config: Config) -> Result<T> {
    let user = config.api_users[0].clone();
    let sim = Simulator::start(tokio::net::TcpListener::bind("127.0.0.1:0").await?, config).await?;
    Ok(T {
        sim,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()?,
        user: user.username,
        secret: user.secret,
        code: user.integration_code,
    })
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

/// The first error message of an Autotask error body.
pub fn err(v: &Value) -> &str {
    v["errors"][0].as_str().unwrap_or("")
}

impl T {
    /// An authenticated request to an absolute URL.
    pub fn request(&self, method: Method, url: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .header("ApiIntegrationCode", &self.code)
            .header("UserName", &self.user)
            .header("Secret", &self.secret)
    }

    /// An authenticated request below `V1.0/`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value)> {
        let mut req = self.request(method, &format!("{}V1.0/{path}", self.sim.zone_url()));
        if let Some(b) = body {
            req = req.json(&b);
        }
        body_of(req).await
    }

    pub async fn query(&self, entity: &str, q: Value) -> Result<(StatusCode, Value)> {
        self.call(Method::POST, &format!("{entity}/query"), Some(q))
            .await
    }

    /// The items of a successful query.
    pub async fn items(&self, entity: &str, filter: Value) -> Result<Vec<Value>> {
        let (s, v) = self.query(entity, json!({ "filter": filter })).await?;
        ensure!(s == StatusCode::OK, "{s} {v}");
        Ok(v["items"].as_array().cloned().unwrap_or_default())
    }

    pub async fn new_ticket(&self, title: &str) -> Result<i64> {
        let (s, v) = self
            .call(
                Method::POST,
                "Tickets",
                Some(json!({"companyID": 29684101, "title": title, "status": 1, "priority": 2})),
            )
            .await?;
        ensure!(s == StatusCode::OK, "{s} {v}");
        v["itemId"]
            .as_i64()
            .ok_or_else(|| anyhow::anyhow!("no itemId: {v}"))
    }

    /// A control request under `/_sim/`.
    pub async fn control(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value)> {
        let mut req = self
            .http
            .request(method, format!("{}/_sim/{path}", self.sim.base_url()));
        if let Some(b) = body {
            req = req.json(&b);
        }
        body_of(req).await
    }

    pub async fn fault(&self, rule: Value) -> Result<()> {
        let (s, v) = self.control(Method::POST, "faults", Some(rule)).await?;
        ensure!(s == StatusCode::CREATED, "{s} {v}");
        Ok(())
    }
}

async fn body_of(req: reqwest::RequestBuilder) -> Result<(StatusCode, Value)> {
    body(req.send().await?).await
}
