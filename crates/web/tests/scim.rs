//! SCIM 2.0 over real HTTP, on SQLite and PostgreSQL: the PyPI compliance tester
//! (`scim2 … test`, from clients/scim-python) must pass, and the deprovisioning requests Okta
//! and Microsoft Entra really send are replayed, checking what they leave behind: the member
//! deactivated or removed, their sessions ended, and the Primary user and the last Security
//! Admin untouched.

use std::path::PathBuf;

use anyhow::{Result, bail, ensure};
use psabridge_identity::password::PasswordHashing;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

mod common;
use common::{PASSWORD, Server};

const SCIM_JSON: &str = "application/scim+json";

impl Server {
    /// A person with a password and a role at `partner`.
    async fn person(&self, email: &str, partner: &str, role: &str) -> Result<i64> {
        let id = self.store.create_user(email, email, 0).await?;
        let hash = PasswordHashing::FAST_INSECURE.hash(PASSWORD)?;
        self.store.set_password_hash(id, &hash).await?;
        self.store.add_membership(id, partner, role, 0).await?;
        Ok(id)
    }

    /// Log in as `email`; returns the session cookie.
    async fn login(&self, email: &str) -> Result<(String, String)> {
        let r = self
            .http
            .post(format!("{}/api/v1/auth/login", self.url))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await?;
        ensure!(
            r.status() == StatusCode::OK,
            "login of {email}: {}",
            r.status()
        );
        let cookie = r
            .headers()
            .get("set-cookie")
            .and_then(|c| c.to_str().ok())
            .and_then(|c| c.split(';').next())
            .unwrap_or_default()
            .to_string();
        let body: Value = r.json().await?;
        Ok((
            cookie,
            body["csrf_token"].as_str().unwrap_or_default().to_string(),
        ))
    }

    /// Whether a session cookie still works.
    async fn session_alive(&self, cookie: &str) -> Result<bool> {
        let r = self
            .http
            .get(format!("{}/api/v1/auth/session", self.url))
            .header("cookie", cookie)
            .send()
            .await?;
        Ok(r.status() == StatusCode::OK)
    }

    /// Issue msp-a's SCIM token with the vendor token.
    async fn scim_token(&self, partner: &str) -> Result<String> {
        let r = self
            .http
            .post(format!("{}/api/v1/partners/{partner}/scim/token", self.url))
            .bearer_auth(&self.vendor_token)
            .send()
            .await?;
        ensure!(r.status() == StatusCode::CREATED, "token: {}", r.status());
        let v: Value = r.json().await?;
        Ok(v["token"].as_str().unwrap_or_default().to_string())
    }

    /// A SCIM request; returns status, JSON body and headers.
    async fn scim(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value, reqwest::header::HeaderMap)> {
        let mut rb = self
            .http
            .request(method, format!("{}/scim/v2/{path}", self.url))
            .bearer_auth(token)
            .header("accept", SCIM_JSON);
        if let Some(b) = body {
            rb = rb.header("content-type", SCIM_JSON).body(b.to_string());
        }
        let r = rb.send().await?;
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            headers,
        ))
    }

    async fn audit_actions(&self, partner: &str) -> Result<Vec<String>> {
        Ok(self
            .store
            .audit_log(partner, None, 500)
            .await?
            .into_iter()
            .map(|e| e.action)
            .collect())
    }
}

macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() -> anyhow::Result<()> {
                let s = super::Server::start(false, "SCIM over HTTP")
                    .await?
                    .expect("sqlite");
                let r = super::$name(&s).await;
                s.stop().await;
                r
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() -> anyhow::Result<()> {
                let Some(s) = super::Server::start(true, "SCIM over HTTP").await? else {
                    return Ok(());
                };
                let r = super::$name(&s).await;
                s.stop().await;
                r
            }
        }
    };
}

on_both!(scim_compliance_tester);
on_both!(scim_sanity_probe);
on_both!(okta_replay);
on_both!(entra_replay);
on_both!(primary_and_last_security_admin_are_protected);
on_both!(tokens_and_scopes);

/// A program of clients/scim-python/.venv, or `None` after saying loudly that the test is
/// skipped.
fn tester(program: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../clients/scim-python/.venv/bin")
        .join(program);
    if path.exists() {
        return Some(path);
    }
    eprintln!(
        "SKIPPED (SCIM tester): {} is missing; run ./scripts/test (or create the venv from \
         clients/scim-python/requirements.txt) to run the SCIM compliance testers",
        path.display()
    );
    None
}

/// `scim2 --url … test` from clients/scim-python/.venv (installed by ./scripts/test) must
/// exit 0: every check of scim2-tester passes.
async fn scim_compliance_tester(s: &Server) -> Result<()> {
    let Some(scim2) = tester("scim2") else {
        return Ok(());
    };
    let token = s.scim_token("msp-a").await?;
    let url = format!("{}/scim/v2/msp-a", s.url);
    let out = tokio::process::Command::new(&scim2)
        .args(["--url", &url, "test"])
        // The token goes through the environment, not the command line other users can read.
        .env("SCIM_CLI_HEADERS", format!("Authorization: Bearer {token}"))
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("scim2 test failed ({}):\n{stdout}\n{stderr}", out.status);
    }
    ensure!(
        stdout.contains("SUCCESS"),
        "no check ran:\n{stdout}\n{stderr}"
    );
    // The tester cleans up what it created; the audit log saw it all.
    let actions = s.audit_actions("msp-a").await?;
    ensure!(
        actions.iter().any(|a| a == "scim.user.create"),
        "{actions:?}"
    );
    ensure!(
        actions.iter().any(|a| a == "scim.user.update"),
        "{actions:?}"
    );
    ensure!(
        actions.iter().any(|a| a == "user.deprovision.remove"),
        "{actions:?}"
    );
    Ok(())
}

/// `scim-sanity probe` (the stricter CRUD lifecycle: POST → GET → PUT → PATCH active=false →
/// DELETE → 404, search, errors) must exit 0 on Users.
async fn scim_sanity_probe(s: &Server) -> Result<()> {
    let Some(probe) = tester("scim-sanity") else {
        return Ok(());
    };
    let token = s.scim_token("msp-a").await?;
    let url = format!("{}/scim/v2/msp-a", s.url);
    // scim-sanity takes the token only on its command line; it is a throwaway of this test.
    let out = tokio::process::Command::new(&probe)
        .args(["probe", &url, "--token", &token, "--i-accept-side-effects"])
        .args(["--resource", "User"])
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!(
            "scim-sanity probe failed ({}):\n{stdout}\n{stderr}",
            out.status
        );
    }
    ensure!(
        stdout.contains("passed"),
        "no check ran:\n{stdout}\n{stderr}"
    );
    eprintln!("{stdout}");
    let actions = s.audit_actions("msp-a").await?;
    ensure!(
        actions.iter().any(|a| a == "user.deprovision.deactivate"),
        "{actions:?}"
    );
    Ok(())
}

/// A provisioned person who can also log in with a password (to hold a session).
async fn provision(s: &Server, token: &str, body: Value) -> Result<(String, Value)> {
    let (status, v, headers) = s
        .scim(token, Method::POST, "msp-a/Users", Some(body))
        .await?;
    ensure!(status == StatusCode::CREATED, "create: {status} {v}");
    ensure!(
        headers
            .get("content-type")
            .and_then(|c| c.to_str().ok())
            .is_some_and(|c| c.starts_with(SCIM_JSON)),
        "content type"
    );
    let location = headers
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default();
    let id = v["id"].as_str().unwrap_or_default().to_string();
    ensure!(
        location.ends_with(&format!("/scim/v2/msp-a/Users/{id}"))
            && v["meta"]["location"] == location,
        "Location {location} and meta {v}"
    );
    ensure!(v["meta"]["resourceType"] == "User" && v["meta"]["created"].is_string());
    Ok((id, v))
}

async fn give_password(s: &Server, email: &str) -> Result<()> {
    let u = s
        .store
        .user_by_email(email)
        .await?
        .expect("provisioned person");
    let hash = PasswordHashing::FAST_INSECURE.hash(PASSWORD)?;
    s.store.set_password_hash(u.id, &hash).await?;
    Ok(())
}

async fn okta_replay(s: &Server) -> Result<()> {
    s.person("owner@msp-a.test", "msp-a", "primary").await?;
    let t = s.scim_token("msp-a").await?;
    // "Test connection".
    let (status, v, _) = s
        .scim(&t, Method::GET, "msp-a/Users?startIndex=1&count=2", None)
        .await?;
    ensure!(status == StatusCode::OK, "{status} {v}");
    ensure!(v["schemas"][0] == "urn:ietf:params:scim:api:messages:2.0:ListResponse");
    // The partner's existing member (its owner, added in the product) is listed.
    ensure!(v["totalResults"] == 1 && v["startIndex"] == 1, "{v}");
    // Pre-create lookup: nobody yet.
    let lookup = "msp-a/Users?filter=userName%20eq%20%22alice%40msp-a.test%22";
    let (_, v, _) = s.scim(&t, Method::GET, lookup, None).await?;
    ensure!(v["totalResults"] == 0, "{v}");
    // Okta's create.
    let (id, created) = provision(
        s,
        &t,
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "alice@msp-a.test",
            "externalId": "00u1abcd",
            "name": {"givenName": "Alice", "familyName": "Anders"},
            "emails": [{"primary": true, "value": "alice@msp-a.test", "type": "work"}],
            "displayName": "Alice Anders",
            "locale": "en-US",
            "groups": [],
            "password": "never-stored-1!",
            "active": true
        }),
    )
    .await?;
    ensure!(created["active"] == true && created["userName"] == "alice@msp-a.test");
    ensure!(
        created.get("password").is_none(),
        "a password came back: {created}"
    );
    // The lookup now finds her, in any case.
    let lookup_upper = "msp-a/Users?filter=userName%20eq%20%22ALICE%40msp-a.test%22";
    let (_, v, _) = s.scim(&t, Method::GET, lookup_upper, None).await?;
    ensure!(
        v["totalResults"] == 1 && v["Resources"][0]["id"] == id,
        "{v}"
    );
    let (_, v, _) = s
        .scim(
            &t,
            Method::GET,
            "msp-a/Users?filter=externalId%20eq%20%2200u1abcd%22",
            None,
        )
        .await?;
    ensure!(v["totalResults"] == 1, "{v}");
    let (_, v, _) = s
        .scim(
            &t,
            Method::GET,
            "msp-a/Users?filter=emails%5Btype%20eq%20%22work%22%5D.value%20eq%20%22alice%40msp-a.test%22",
            None,
        )
        .await?;
    ensure!(v["totalResults"] == 1, "{v}");
    // Provisioned as Read-only.
    let member = s
        .store
        .member("msp-a", id.parse()?)
        .await?
        .expect("a member");
    ensure!(member.role == "read_only" && member.active, "{member:?}");
    // A second create with the same userName: 409 uniqueness.
    let (status, v, _) = s
        .scim(
            &t,
            Method::POST,
            "msp-a/Users",
            Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "Alice@msp-a.test"})),
        )
        .await?;
    ensure!(
        status == StatusCode::CONFLICT && v["scimType"] == "uniqueness",
        "{status} {v}"
    );
    ensure!(
        v["schemas"][0] == "urn:ietf:params:scim:api:messages:2.0:Error" && v["status"] == "409"
    );
    // Alice logs in; Okta's OIN deactivation (no path, object value) ends her session.
    give_password(s, "alice@msp-a.test").await?;
    let (cookie, _) = s.login("alice@msp-a.test").await?;
    ensure!(s.session_alive(&cookie).await?);
    let (status, v, _) = s
        .scim(
            &t,
            Method::PATCH,
            &format!("msp-a/Users/{id}"),
            Some(
                json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations":[{"op":"replace","value":{"active":false}}]}),
            ),
        )
        .await?;
    ensure!(
        status == StatusCode::OK && v["active"] == false,
        "{status} {v}"
    );
    ensure!(
        v["userName"] == "alice@msp-a.test" && v["displayName"] == "Alice Anders",
        "{v}"
    );
    ensure!(
        !s.session_alive(&cookie).await?,
        "the session survived deactivation"
    );
    let member = s.store.member("msp-a", id.parse()?).await?.expect("kept");
    ensure!(!member.active, "{member:?}");
    let (_, v, _) = s
        .scim(&t, Method::GET, &format!("msp-a/Users/{id}"), None)
        .await?;
    ensure!(v["active"] == false, "{v}");
    // She can no longer log in to msp-a.
    let r = s
        .http
        .post(format!("{}/api/v1/auth/login", s.url))
        .json(&json!({"email": "alice@msp-a.test", "password": PASSWORD}))
        .send()
        .await?;
    ensure!(
        r.status() != StatusCode::OK,
        "a deactivated member logged in"
    );
    // Okta AIW: PUT of the full user, reactivating then deactivating.
    let full = |active: bool| {
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": id,
               "userName": "alice@msp-a.test", "externalId": "00u1abcd",
               "name": {"givenName": "Alice", "familyName": "Anders"},
               "emails": [{"primary": true, "value": "alice@msp-a.test", "type": "work"}],
               "active": active})
    };
    let (status, v, _) = s
        .scim(
            &t,
            Method::PUT,
            &format!("msp-a/Users/{id}"),
            Some(full(true)),
        )
        .await?;
    ensure!(
        status == StatusCode::OK && v["active"] == true,
        "{status} {v}"
    );
    ensure!(v.get("displayName").is_none(), "PUT replaces: {v}");
    let (cookie, _) = s.login("alice@msp-a.test").await?;
    let (status, v, _) = s
        .scim(
            &t,
            Method::PUT,
            &format!("msp-a/Users/{id}"),
            Some(full(false)),
        )
        .await?;
    ensure!(
        status == StatusCode::OK && v["active"] == false,
        "{status} {v}"
    );
    ensure!(
        !s.session_alive(&cookie).await?,
        "the session survived the PUT"
    );
    let actions = s.audit_actions("msp-a").await?;
    for a in [
        "scim.token.create",
        "scim.user.create",
        "scim.user.update",
        "user.deprovision.deactivate",
    ] {
        ensure!(
            actions.iter().any(|x| x == a),
            "{a} not audited: {actions:?}"
        );
    }
    Ok(())
}

async fn entra_replay(s: &Server) -> Result<()> {
    let t = s.scim_token("msp-a").await?;
    let (id, _) = provision(
        s,
        &t,
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "externalId": "5f0c6b7e-0000-4000-8000-000000000001",
            "userName": "bob@msp-a.test",
            "active": "True",
            "displayName": "Bob Brown",
            "emails": [{"primary": true, "type": "work", "value": "bob@msp-a.test"}],
            "name": {"formatted": "Bob Brown", "familyName": "Brown", "givenName": "Bob"}
        }),
    )
    .await?;
    give_password(s, "bob@msp-a.test").await?;
    let (cookie, _) = s.login("bob@msp-a.test").await?;
    // Entra's attribute update: capitalised ops, filtered path.
    let (status, v, _) = s
        .scim(
            &t,
            Method::PATCH,
            &format!("msp-a/Users/{id}"),
            Some(json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations":[
                            {"op":"Replace","path":"displayName","value":"Bob B. Brown"},
                            {"op":"Add","path":"emails[type eq \"work\"].value","value":"bob@msp-a.test"}]})),
        )
        .await?;
    ensure!(
        status == StatusCode::OK && v["displayName"] == "Bob B. Brown",
        "{status} {v}"
    );
    ensure!(
        s.session_alive(&cookie).await?,
        "an attribute update ended the session"
    );
    // Entra's soft delete: capitalised op, string boolean.
    let (status, v, _) = s
        .scim(
            &t,
            Method::PATCH,
            &format!("msp-a/Users/{id}"),
            Some(
                json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations":[{"op":"Replace","path":"active","value":"False"}]}),
            ),
        )
        .await?;
    ensure!(
        status == StatusCode::OK && v["active"] == false,
        "{status} {v}"
    );
    ensure!(
        !s.session_alive(&cookie).await?,
        "the session survived the soft delete"
    );
    // Restored from the recycle bin.
    let (status, v, _) = s
        .scim(
            &t,
            Method::PATCH,
            &format!("msp-a/Users/{id}"),
            Some(
                json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations":[{"op":"Replace","path":"active","value":"True"}]}),
            ),
        )
        .await?;
    ensure!(
        status == StatusCode::OK && v["active"] == true,
        "{status} {v}"
    );
    let (cookie, _) = s.login("bob@msp-a.test").await?;
    // Hard delete 30 days later: 204, the membership is gone with the session; again: 404.
    let (status, _, _) = s
        .scim(&t, Method::DELETE, &format!("msp-a/Users/{id}"), None)
        .await?;
    ensure!(status == StatusCode::NO_CONTENT, "{status}");
    ensure!(
        !s.session_alive(&cookie).await?,
        "the session survived the delete"
    );
    ensure!(s.store.member("msp-a", id.parse()?).await?.is_none());
    let (status, v, _) = s
        .scim(&t, Method::DELETE, &format!("msp-a/Users/{id}"), None)
        .await?;
    ensure!(
        status == StatusCode::NOT_FOUND && v["status"] == "404",
        "{status} {v}"
    );
    let (status, _, _) = s
        .scim(&t, Method::GET, &format!("msp-a/Users/{id}"), None)
        .await?;
    ensure!(status == StatusCode::NOT_FOUND);
    // An unsupported filter is a SCIM error, not a wrong answer.
    let (status, v, _) = s
        .scim(
            &t,
            Method::GET,
            "msp-a/Users?filter=displayName%20co%20%22Bob%22",
            None,
        )
        .await?;
    ensure!(
        status == StatusCode::BAD_REQUEST && v["scimType"] == "invalidFilter",
        "{status} {v}"
    );
    let actions = s.audit_actions("msp-a").await?;
    ensure!(
        actions.iter().any(|a| a == "user.deprovision.remove"),
        "{actions:?}"
    );
    Ok(())
}

async fn primary_and_last_security_admin_are_protected(s: &Server) -> Result<()> {
    s.person("owner@msp-a.test", "msp-a", "primary").await?;
    s.person("sec@msp-a.test", "msp-a", "security_admin")
        .await?;
    let t = s.scim_token("msp-a").await?;
    let (owner_cookie, _) = s.login("owner@msp-a.test").await?;
    // The identity provider pushes the existing members: they are adopted, roles kept.
    let (owner, v) = provision(
        s,
        &t,
        json!({"userName": "owner@msp-a.test", "active": true}),
    )
    .await?;
    ensure!(v["active"] == true, "{v}");
    let (sec, _) = provision(s, &t, json!({"userName": "sec@msp-a.test"})).await?;
    ensure!(s.store.member("msp-a", owner.parse()?).await?.unwrap().role == "primary");
    let deactivate = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                            "Operations":[{"op":"Replace","path":"active","value":"False"}]});
    for id in [&owner, &sec] {
        let (status, v, _) = s
            .scim(
                &t,
                Method::PATCH,
                &format!("msp-a/Users/{id}"),
                Some(deactivate.clone()),
            )
            .await?;
        ensure!(status == StatusCode::FORBIDDEN, "{status} {v}");
        ensure!(
            v["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("identity provider"),
            "{v}"
        );
        let (status, _, _) = s
            .scim(&t, Method::DELETE, &format!("msp-a/Users/{id}"), None)
            .await?;
        ensure!(status == StatusCode::FORBIDDEN, "{status}");
        ensure!(s.store.member("msp-a", id.parse()?).await?.unwrap().active);
    }
    let (status, v, _) = s
        .scim(
            &t,
            Method::PUT,
            &format!("msp-a/Users/{owner}"),
            Some(json!({"userName": "owner@msp-a.test", "active": false})),
        )
        .await?;
    ensure!(status == StatusCode::FORBIDDEN, "{status} {v}");
    ensure!(
        s.session_alive(&owner_cookie).await?,
        "the Primary lost their session"
    );
    let actions = s.audit_actions("msp-a").await?;
    ensure!(
        actions
            .iter()
            .any(|a| a == "user.deprovision.deactivate.refused")
            && actions
                .iter()
                .any(|a| a == "user.deprovision.remove.refused"),
        "{actions:?}"
    );
    // With a second Security Admin, the first may go.
    s.person("sec2@msp-a.test", "msp-a", "security_admin")
        .await?;
    let (status, v, _) = s
        .scim(
            &t,
            Method::PATCH,
            &format!("msp-a/Users/{sec}"),
            Some(deactivate),
        )
        .await?;
    ensure!(
        status == StatusCode::OK && v["active"] == false,
        "{status} {v}"
    );
    Ok(())
}

async fn tokens_and_scopes(s: &Server) -> Result<()> {
    s.person("owner@msp-a.test", "msp-a", "primary").await?;
    s.person("reader@msp-a.test", "msp-a", "read_only").await?;
    // A Read-only member may not issue the SCIM token; the Primary may, once per call.
    let (cookie, csrf) = s.login("reader@msp-a.test").await?;
    let r = s
        .http
        .post(format!("{}/api/v1/partners/msp-a/scim/token", s.url))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await?;
    ensure!(r.status() == StatusCode::FORBIDDEN, "{}", r.status());
    let (cookie, csrf) = s.login("owner@msp-a.test").await?;
    let r = s
        .http
        .post(format!("{}/api/v1/partners/msp-a/scim/token", s.url))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await?;
    ensure!(r.status() == StatusCode::CREATED, "{}", r.status());
    let first: Value = r.json().await?;
    let first = first["token"].as_str().unwrap_or_default().to_string();
    let (status, _, _) = s.scim(&first, Method::GET, "msp-a/Users", None).await?;
    ensure!(status == StatusCode::OK, "{status}");
    // A new token replaces the old one.
    let second = s.scim_token("msp-a").await?;
    let (status, v, _) = s.scim(&first, Method::GET, "msp-a/Users", None).await?;
    ensure!(
        status == StatusCode::UNAUTHORIZED && v["status"] == "401",
        "{status} {v}"
    );
    // The token is stored hashed: the plain text is nowhere in the database.
    ensure!(
        s.store.partner_of_scim_token(&second).await?.is_none()
            && s.store
                .partner_of_scim_token(&psabridge_identity::secret_token::token_hash(&second))
                .await?
                .as_deref()
                == Some("msp-a")
    );
    // msp-a's token does not open msp-b; API tokens and logins do not open SCIM.
    let (status, _, _) = s.scim(&second, Method::GET, "msp-b/Users", None).await?;
    ensure!(status == StatusCode::UNAUTHORIZED, "{status}");
    let (status, _, _) = s
        .scim(&s.vendor_token, Method::GET, "msp-a/Users", None)
        .await?;
    ensure!(status == StatusCode::UNAUTHORIZED, "{status}");
    let r = s
        .http
        .get(format!("{}/scim/v2/msp-a/Users", s.url))
        .header("cookie", &cookie)
        .send()
        .await?;
    ensure!(r.status() == StatusCode::UNAUTHORIZED, "{}", r.status());
    // A SCIM token is not an API token either.
    let r = s
        .http
        .get(format!("{}/api/v1/partners/msp-a/users", s.url))
        .bearer_auth(&second)
        .send()
        .await?;
    ensure!(r.status() == StatusCode::UNAUTHORIZED, "{}", r.status());
    // Discovery answers with the token and refuses writes.
    let (status, v, _) = s
        .scim(&second, Method::GET, "msp-a/ServiceProviderConfig", None)
        .await?;
    ensure!(
        status == StatusCode::OK && v["patch"]["supported"] == true,
        "{v}"
    );
    let (status, _, _) = s
        .scim(&second, Method::POST, "msp-a/Schemas", Some(json!({})))
        .await?;
    ensure!(status == StatusCode::METHOD_NOT_ALLOWED, "{status}");
    // Revoked: nothing works any more.
    let r = s
        .http
        .delete(format!("{}/api/v1/partners/msp-a/scim/token", s.url))
        .bearer_auth(&s.vendor_token)
        .send()
        .await?;
    ensure!(r.status() == StatusCode::NO_CONTENT, "{}", r.status());
    let (status, _, _) = s.scim(&second, Method::GET, "msp-a/Users", None).await?;
    ensure!(status == StatusCode::UNAUTHORIZED, "{status}");
    let actions = s.audit_actions("msp-a").await?;
    ensure!(
        actions.iter().any(|a| a == "scim.token.revoke"),
        "{actions:?}"
    );
    Ok(())
}
