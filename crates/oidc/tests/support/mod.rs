//! A real OpenID provider (npm oidc-provider, clients/oidc-provider-node) on 127.0.0.1, a
//! browser that logs in through its pages, and a receiver for its back-channel logout calls.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use psabridge_core::secret::Secret;
use psabridge_oidc::{CallbackParams, IdpConfig, Provider};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub const PORTAL: &str = "portal";
pub const PORTAL_SECRET: &str = "portal-secret-that-is-long-enough-0123456789";
pub const OTHER: &str = "other-app";
pub const OTHER_SECRET: &str = "other-secret-that-is-long-enough-0123456789";

fn provider_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../clients/oidc-provider-node")
}

/// A running provider process, killed (by its own PID) when dropped.
pub struct Op {
    child: Child,
    pub issuer: String,
    stderr: Arc<Mutex<String>>,
}

impl Drop for Op {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Op {
    /// What the provider wrote on stderr so far (for failure messages).
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

/// Options of one provider instance.
pub struct OpOptions {
    pub clients: Value,
    pub accounts: Value,
    pub signing_key: Option<PathBuf>,
    pub id_token_ttl: Option<u64>,
    pub scope_claims_in_id_token: bool,
}

/// Why the provider cannot run here, or `None` when it can. Tests print it and pass: node and
/// the npm packages are installed by scripts/test in CI.
pub fn unavailable() -> Option<String> {
    if Command::new("node").arg("--version").output().is_err() {
        return Some("SKIPPED (OpenID provider: node not found)".into());
    }
    if !provider_dir().join("node_modules/oidc-provider").exists() {
        return Some(
            "SKIPPED (OpenID provider: run `npm ci` in clients/oidc-provider-node, as scripts/test does)"
                .into(),
        );
    }
    None
}

#[macro_export]
macro_rules! skip_without_provider {
    () => {
        if let Some(why) = support::unavailable() {
            eprintln!("\n*** {why} ***\n");
            return Ok(());
        }
    };
}

pub fn generate_key(path: &std::path::Path) -> Result<()> {
    let mut child = Command::new("node")
        .arg("provider.mjs")
        .arg("--generate-key")
        .arg(path)
        .current_dir(provider_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait()? {
            ensure!(status.success(), "key generation failed: {status}");
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("key generation did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn start_op(options: &OpOptions) -> Result<Op> {
    let mut command = Command::new("node");
    command
        .arg("provider.mjs")
        .current_dir(provider_dir())
        .env("OP_PORT", "0")
        .env("OP_CLIENTS", options.clients.to_string())
        .env("OP_ACCOUNTS", options.accounts.to_string())
        .env(
            "OP_SCOPE_CLAIMS_IN_ID_TOKEN",
            if options.scope_claims_in_id_token {
                "1"
            } else {
                "0"
            },
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(key) = &options.signing_key {
        command.env("OP_SIGNING_KEY", key);
    }
    if let Some(ttl) = options.id_token_ttl {
        command.env("OP_ID_TOKEN_TTL", ttl.to_string());
    }
    let mut child = command.spawn().context("starting node provider.mjs")?;

    let stderr = Arc::new(Mutex::new(String::new()));
    let mut err_pipe = child.stderr.take().expect("piped");
    let sink = stderr.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = err_pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let (tx, rx) = mpsc::channel();
    let out_pipe = child.stdout.take().expect("piped");
    std::thread::spawn(move || {
        for line in BufReader::new(out_pipe).lines().map_while(Result::ok) {
            if let Some(issuer) = line.strip_prefix("READY ") {
                let _ = tx.send(issuer.to_owned());
            }
        }
    });
    let mut op = Op {
        child,
        issuer: String::new(),
        stderr,
    };
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(issuer) => op.issuer = issuer,
        Err(e) => {
            let status = op.child.try_wait();
            bail!(
                "the provider did not start ({e}; process: {status:?}):\n{}",
                op.stderr()
            )
        }
    }
    Ok(op)
}

/// Standard accounts: verified, unverified, and a string boolean.
pub fn accounts() -> Value {
    json!([
        {"sub": "alice", "email": "alice@msp-a.test", "email_verified": true, "name": "Alice Admin"},
        {"sub": "bob", "email": "bob@msp-a.test", "email_verified": false, "name": "Bob"},
        {"sub": "carol", "email": "carol@msp-a.test", "email_verified": "true", "name": "Carol"},
        {"sub": "dave", "email": "dave@msp-a.test", "email_verified": "True", "name": "Dave"}
    ])
}

pub fn clients(receiver: &str) -> Value {
    json!([
        {
            "client_id": PORTAL,
            "client_secret": PORTAL_SECRET,
            "redirect_uris": [format!("{receiver}/callback")],
            "post_logout_redirect_uris": [format!("{receiver}/logged-out")],
            "backchannel_logout_uri": format!("{receiver}/backchannel-logout")
        },
        {
            "client_id": OTHER,
            "client_secret": OTHER_SECRET,
            "redirect_uris": [format!("{receiver}/other-callback")]
        }
    ])
}

pub fn portal_config(issuer: &str, receiver: &str) -> IdpConfig {
    IdpConfig {
        issuer: issuer.to_owned(),
        client_id: PORTAL.into(),
        client_secret: Secret::new(PORTAL_SECRET),
        redirect_uri: format!("{receiver}/callback"),
        scopes: vec!["email".into(), "profile".into()],
    }
}

pub fn other_config(issuer: &str, receiver: &str) -> IdpConfig {
    IdpConfig {
        issuer: issuer.to_owned(),
        client_id: OTHER.into(),
        client_secret: Secret::new(OTHER_SECRET),
        redirect_uri: format!("{receiver}/other-callback"),
        scopes: vec!["email".into(), "profile".into()],
    }
}

/// A loopback HTTP receiver standing in for the portal: it answers every request with 200 and
/// hands the bodies of POSTs to `/backchannel-logout` to the test.
pub struct Receiver {
    pub base: String,
    logouts: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<String>>,
}

impl Receiver {
    pub async fn start() -> Result<Receiver> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut data = Vec::new();
                    let mut buf = [0u8; 8192];
                    // Read the head, then as much body as Content-Length says.
                    let (head_end, length) = loop {
                        let Ok(n) = socket.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        data.extend_from_slice(&buf[..n]);
                        if let Some(pos) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&data[..pos]).to_ascii_lowercase();
                            let length = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (pos + 4, length);
                        }
                    };
                    while data.len() < head_end + length {
                        let Ok(n) = socket.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            break;
                        }
                        data.extend_from_slice(&buf[..n]);
                    }
                    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
                    if head.starts_with("POST /backchannel-logout") {
                        let body = String::from_utf8_lossy(&data[head_end..]).to_string();
                        let _ = tx.send(body);
                    }
                    let _ = socket
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncache-control: no-store\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                });
            }
        });
        Ok(Receiver {
            base,
            logouts: tokio::sync::Mutex::new(rx),
        })
    }

    /// The next logout token the provider posted.
    pub async fn next_logout_token(&self) -> Result<String> {
        let body = tokio::time::timeout(Duration::from_secs(15), self.logouts.lock().await.recv())
            .await
            .context("no back-channel logout call within 15 s")?
            .ok_or_else(|| anyhow!("receiver closed"))?;
        url::form_urlencoded::parse(body.as_bytes())
            .find(|(k, _)| k == "logout_token")
            .map(|(_, v)| v.into_owned())
            .ok_or_else(|| anyhow!("no logout_token in {body}"))
    }
}

/// A browser: a cookie store and no automatic redirects, so each hop is visible.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The first `<form ... action="...">` of a page, and its hidden inputs.
fn form_of(html: &str) -> Option<(String, Vec<(String, String)>)> {
    let form_start = html.find("<form")?;
    let form_tag_end = form_start + html[form_start..].find('>')?;
    let tag = &html[form_start..form_tag_end];
    let action = attribute(tag, "action")?;
    let mut hidden = Vec::new();
    let mut rest = &html[form_tag_end..];
    while let Some(i) = rest.find("<input") {
        let end = i + rest[i..].find('>').unwrap_or(rest.len() - i);
        let input = &rest[i..end];
        if attribute(input, "type").as_deref() == Some("hidden")
            && let (Some(n), Some(v)) = (attribute(input, "name"), attribute(input, "value"))
        {
            hidden.push((n, v));
        }
        rest = &rest[end..];
    }
    Some((action.replace("&amp;", "&"), hidden))
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let key = format!("{name}=\"");
    let start = tag.find(&key)? + key.len();
    let len = tag[start..].find('"')?;
    Some(tag[start..start + len].to_owned())
}

/// Follows an authorization URL through the provider's login page, signing in as `login`, until
/// the provider redirects to `redirect_prefix`; returns that callback's parameters.
pub async fn log_in(
    browser: &reqwest::Client,
    authorization_url: &url::Url,
    login: &str,
    redirect_prefix: &str,
) -> Result<CallbackParams> {
    drive(browser, authorization_url, Some(login), redirect_prefix).await
}

/// Like [`log_in`], but the user cancels on the login page ("abort" of the dev interactions):
/// the provider answers the client with `error=access_denied`.
pub async fn cancel_login(
    browser: &reqwest::Client,
    authorization_url: &url::Url,
    redirect_prefix: &str,
) -> Result<CallbackParams> {
    drive(browser, authorization_url, None, redirect_prefix).await
}

async fn drive(
    browser: &reqwest::Client,
    authorization_url: &url::Url,
    login: Option<&str>,
    redirect_prefix: &str,
) -> Result<CallbackParams> {
    let mut next = authorization_url.clone();
    let mut form: Option<Vec<(String, String)>> = None;
    for _ in 0..20 {
        let response = match form.take() {
            Some(fields) => browser.post(next.clone()).form(&fields).send().await?,
            None => browser.get(next.clone()).send().await?,
        };
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .context("redirect without Location")?
                .to_str()?;
            let target = next.join(location)?;
            if target.as_str().starts_with(redirect_prefix) {
                return Ok(serde_urlencoded_callback(&target));
            }
            next = target;
            continue;
        }
        let html = response.text().await?;
        ensure!(status.is_success(), "{status} at {next}: {html}");
        ensure!(
            html.contains("name=\"prompt\" value=\"login\""),
            "unexpected page at {next}: {html}"
        );
        let Some(login) = login else {
            next = next.join(&format!("{}/abort", next.path()))?;
            continue;
        };
        let (action, mut fields) = form_of(&html).context("login form")?;
        fields.push(("login".into(), login.into()));
        fields.push(("password".into(), "any password".into()));
        fields.retain(|(k, _)| k != "prompt");
        fields.push(("prompt".into(), "login".into()));
        next = next.join(&action)?;
        form = Some(fields);
    }
    bail!("no callback after 20 hops")
}

fn serde_urlencoded_callback(url: &url::Url) -> CallbackParams {
    let mut params = CallbackParams::default();
    for (k, v) in url.query_pairs() {
        let v = Some(v.into_owned());
        match k.as_ref() {
            "code" => params.code = v,
            "state" => params.state = v,
            "iss" => params.iss = v,
            "error" => params.error = v,
            "error_description" => params.error_description = v,
            _ => {}
        }
    }
    params
}

/// RP-initiated logout in the browser: the provider's confirmation page, then "Yes, sign me out".
/// The provider then calls the back-channel logout URI of every client of that session.
pub async fn log_out(browser: &reqwest::Client, provider: &Provider, id_token: &str) -> Result<()> {
    let mut url = url::Url::parse(provider.end_session_endpoint().context("no end_session")?)?;
    url.query_pairs_mut().append_pair("id_token_hint", id_token);
    let page = browser.get(url.clone()).send().await?;
    let status = page.status();
    let html = page.text().await?;
    ensure!(status.is_success(), "{status}: {html}");
    let (action, mut fields) = form_of(&html).context("logout form")?;
    fields.push(("logout".into(), "yes".into()));
    let done = browser
        .post(url.join(&action)?)
        .form(&fields)
        .send()
        .await?;
    ensure!(
        done.status().is_success() || done.status().is_redirection(),
        "logout confirm answered {}",
        done.status()
    );
    Ok(())
}

/// Starts the standard provider and discovers it as the portal.
pub async fn standard() -> Result<(Op, Receiver, Provider)> {
    let receiver = Receiver::start().await?;
    let op = start_op(&OpOptions {
        clients: clients(&receiver.base),
        accounts: accounts(),
        signing_key: None,
        id_token_ttl: None,
        scope_claims_in_id_token: true,
    })?;
    let provider = Provider::discover(&portal_config(&op.issuer, &receiver.base))
        .await
        .map_err(|e| anyhow!("discovery: {e}\n{}", op.stderr()))?;
    Ok((op, receiver, provider))
}
