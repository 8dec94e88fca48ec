//! The harness: a simulator, an HTTP client, a logged-in token.

use std::time::Duration;

use anyhow::{Result, ensure};
use psabridge_sim::kaseya_bms::{Config, Simulator};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub struct T {
    pub sim: Simulator,
    pub http: reqwest::Client,
    pub token: String,
}

pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
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
    let (s, v) = t.login(&[]).await?;
    ensure!(s == StatusCode::OK, "{s} {v}");
    t.token = v["result"]["accessToken"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    Ok(t)
}

/// The body as JSON (or a JSON string when it is not JSON).
pub async fn body(r: reqwest::Response) -> Result<(StatusCode, Value)> {
    let status = r.status();
    let text = r.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// A failure envelope's message.
pub fn msg(v: &Value) -> String {
    let e = &v["error"];
    let mut m = e["message"].as_str().unwrap_or_default().to_string();
    for s in e["subErrors"].as_array().into_iter().flatten() {
        m.push(' ');
        m.push_str(s.as_str().unwrap_or_default());
    }
    m
}

impl T {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    /// A URL-encoded login with the demo credentials, `over` replacing some fields.
    pub async fn login(&self, over: &[(&str, &str)]) -> Result<(StatusCode, Value)> {
        let c = self.sim.config();
        let mut fields = vec![
            ("grantType", "password"),
            ("userName", c.username.as_str()),
            ("password", c.password.as_str()),
            ("tenant", c.tenant.as_str()),
        ];
        for (k, v) in over {
            fields.retain(|(n, _)| !n.eq_ignore_ascii_case(k));
            fields.push((k, v));
        }
        body(
            self.http
                .post(self.url("/v2/security/authenticate"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form(&fields))
                .send()
                .await?,
        )
        .await
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body_json: Option<Value>,
    ) -> Result<(StatusCode, Value)> {
        let mut r = self.request(method, path);
        if let Some(b) = body_json {
            r = r.json(&b);
        }
        body(r.send().await?).await
    }

    pub async fn get(&self, path: &str) -> Result<(StatusCode, Value)> {
        self.call(Method::GET, path, None).await
    }

    /// The `result` of a successful call.
    pub async fn result(&self, method: Method, path: &str, b: Option<Value>) -> Result<Value> {
        let (s, v) = self.call(method, path, b).await?;
        ensure!(s == StatusCode::OK && v["success"] == true, "{s} {v}");
        Ok(v["result"].clone())
    }

    pub async fn control(
        &self,
        method: Method,
        path: &str,
        b: Option<Value>,
    ) -> Result<(StatusCode, Value)> {
        let mut r = self
            .http
            .request(method, self.url(&format!("/_sim/{path}")));
        if let Some(b) = b {
            r = r.json(&b);
        }
        body(r.send().await?).await
    }

    pub async fn fault(&self, rule: Value) -> Result<()> {
        let (s, v) = self.control(Method::POST, "faults", Some(rule)).await?;
        ensure!(s == StatusCode::CREATED, "{s} {v}");
        Ok(())
    }

    /// A valid ticket body (PascalCase, as the Swagger spells it).
    pub fn ticket_body(&self, title: &str) -> Value {
        json!({
            "Title": title, "Details": "Something happened.", "AccountId": 12, "LocationId": 34,
            "ContactId": 56, "QueueId": 3, "StatusId": 1, "PriorityId": 2, "TypeId": 2,
            "IssueTypeId": 7, "SubIssueTypeId": 19, "SourceId": 5, "SLAId": 1,
            "OpenDate": "2026-11-22T10:00:00Z", "UseDefaultContract": false,
        })
    }

    pub async fn new_ticket(&self, title: &str) -> Result<i64> {
        let r = self
            .result(
                Method::POST,
                "/v2/servicedesk/tickets",
                Some(self.ticket_body(title)),
            )
            .await?;
        r["id"]
            .as_i64()
            .ok_or_else(|| anyhow::anyhow!("no id: {r}"))
    }
}
