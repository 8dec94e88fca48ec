//! The harness: a simulator, an HTTP client and the demo credentials.

use std::time::Duration;

use anyhow::{Result, ensure};
use base64::Engine as _;
use psabridge_sim::connectwise::{
    Config, DEMO_CLIENT_ID, DEMO_COMPANY, DEMO_PRIVATE_KEY, DEMO_PUBLIC_KEY, Simulator,
};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub struct T {
    pub sim: Simulator,
    pub http: reqwest::Client,
}

pub async fn start(config: Config) -> Result<T> {
    let sim = Simulator::start(tokio::net::TcpListener::bind("127.0.0.1:0").await?, config).await?;
    Ok(T {
        sim,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()?,
    })
}

pub fn basic(company: &str, public: &str, private: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{company}+{public}:{private}"))
    )
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

pub async fn answer(r: reqwest::Response) -> Result<Answer> {
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await?;
    Ok(Answer {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    })
}

impl T {
    /// `/v4_6_release/apis/3.0/{path}` (path may carry a query).
    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.sim.api_url())
    }

    /// An authenticated request (demo credentials) to an absolute URL.
    pub fn request(&self, method: Method, url: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .header(
                "Authorization",
                basic(DEMO_COMPANY, DEMO_PUBLIC_KEY, DEMO_PRIVATE_KEY),
            )
            .header("clientId", DEMO_CLIENT_ID)
            .header("Accept", "application/json")
    }

    pub async fn get(&self, path: &str) -> Result<Answer> {
        answer(self.request(Method::GET, &self.url(path)).send().await?).await
    }

    pub async fn get_q(&self, path: &str, q: &[(&str, &str)]) -> Result<Answer> {
        answer(
            self.request(Method::GET, &self.url(path))
                .query(q)
                .send()
                .await?,
        )
        .await
    }

    pub async fn send(&self, method: Method, path: &str, body: Value) -> Result<Answer> {
        answer(
            self.request(method, &self.url(path))
                .json(&body)
                .send()
                .await?,
        )
        .await
    }

    /// A control request under `/_sim/`.
    pub async fn control(&self, method: Method, path: &str, body: Option<Value>) -> Result<Answer> {
        let mut req = self
            .http
            .request(method, format!("{}/_sim/{path}", self.sim.base_url()));
        if let Some(b) = body {
            req = req.json(&b);
        }
        answer(req.send().await?).await
    }

    pub async fn fault(&self, rule: Value) -> Result<()> {
        let a = self.control(Method::POST, "faults", Some(rule)).await?;
        ensure!(a.status == StatusCode::CREATED, "{} {}", a.status, a.body);
        Ok(())
    }

    pub async fn fixtures(&self) -> Result<Value> {
        Ok(self.control(Method::GET, "fixtures", None).await?.body)
    }
}

/// The ids of a list answer.
pub fn ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["id"].as_i64())
        .collect()
}
