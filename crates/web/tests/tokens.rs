//! Scoped API tokens over real HTTP, on SQLite and PostgreSQL: each scope route by route,
//! bad scopes named, expiry, last use, revocation, tokens tied to the person who made them,
//! and the audit of all of it.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use psabridge_identity::password::PasswordHashing;
use psabridge_identity::scopes::{Need, Scope, missing_scope};
use psabridge_web::ROUTES;
use psabridge_web::accounts::Access;
use psabridge_web::auth::token_only_need;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

mod common;
use common::{PASSWORD, Server};

/// A logged-in person: the cookie and CSRF token a browser would hold.
struct Login {
    cookie: String,
    csrf: String,
}

/// Who sends a request.
enum As<'a> {
    Token(&'a str),
    Person(&'a Login),
}

impl Server {
    async fn call(
        &self,
        who: As<'_>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value)> {
        let mut rb = self.http.request(method, format!("{}{path}", self.url));
        match who {
            As::Token(t) => rb = rb.bearer_auth(t),
            As::Person(l) => {
                rb = rb
                    .header("cookie", &l.cookie)
                    .header("x-csrf-token", &l.csrf)
            }
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await?;
        let status = r.status();
        let text = r.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    async fn vendor(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value)> {
        self.call(As::Token(&self.vendor_token), method, path, body)
            .await
    }

    /// A new token made by `who` at `path`; returns (id, secret).
    async fn token(&self, who: As<'_>, path: &str, body: Value) -> Result<(i64, String)> {
        let (st, v) = self.call(who, Method::POST, path, Some(body)).await?;
        if st != StatusCode::CREATED {
            bail!("creating a token at {path}: {st} {v}");
        }
        Ok((
            v["id"].as_i64().context("id")?,
            v["token"].as_str().context("token")?.to_string(),
        ))
    }

    async fn person(&self, email: &str, partner: &str, role: &str) -> Result<i64> {
        let id = self.store.create_user(email, email, 0).await?;
        let hash = PasswordHashing::FAST_INSECURE.hash(PASSWORD)?;
        self.store.set_password_hash(id, &hash).await?;
        self.store.add_membership(id, partner, role, 0).await?;
        Ok(id)
    }

    async fn login(&self, email: &str) -> Result<Login> {
        let r = self
            .http
            .post(format!("{}/api/v1/auth/login", self.url))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await?;
        let cookie = r
            .headers()
            .get("set-cookie")
            .and_then(|c| c.to_str().ok())
            .and_then(|c| c.split(';').next())
            .context("no session cookie")?
            .to_string();
        let v: Value = r.json().await?;
        Ok(Login {
            cookie,
            csrf: v["csrf_token"].as_str().context("csrf")?.to_string(),
        })
    }

    /// The listed token with this id, at `list` (a token list route).
    async fn listed(&self, list: &str, id: i64) -> Result<Value> {
        let (st, v) = self.vendor(Method::GET, list, None).await?;
        assert_eq!(st, StatusCode::OK, "{v}");
        v["tokens"]
            .as_array()
            .context("tokens")?
            .iter()
            .find(|t| t["id"] == id)
            .cloned()
            .with_context(|| format!("token {id} not listed in {v}"))
    }

    async fn audit_actions(&self, partner: &str) -> Result<Vec<(String, String, String)>> {
        let (st, v) = self
            .vendor(
                Method::GET,
                &format!("/api/v1/partners/{partner}/audit"),
                None,
            )
            .await?;
        assert_eq!(st, StatusCode::OK, "{v}");
        Ok(v["entries"]
            .as_array()
            .context("entries")?
            .iter()
            .map(|e| {
                (
                    e["action"].as_str().unwrap_or_default().to_string(),
                    e["target"].as_str().unwrap_or_default().to_string(),
                    e["actor"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect())
    }
}

macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() -> anyhow::Result<()> {
                let s = super::Server::start(false, "scoped tokens over HTTP")
                    .await?
                    .expect("sqlite");
                let r = super::$name(&s).await;
                s.stop().await;
                r
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() -> anyhow::Result<()> {
                let Some(s) = super::Server::start(true, "scoped tokens over HTTP").await? else {
                    return Ok(());
                };
                let r = super::$name(&s).await;
                s.stop().await;
                r
            }
        }
    };
}

on_both!(each_scope_route_by_route);
on_both!(partner_tokens_by_scope);
on_both!(bad_scopes_and_expiry_requests_are_named);
on_both!(expiry_last_use_and_revocation);
on_both!(tokens_of_people);

/// A route's path with its parameters filled with things that do not exist (so that the
/// allowed calls change nothing: no token 1 is revoked, no person removed).
fn fill(route_path: &str, partner: &str) -> String {
    route_path
        .replace("{p}", partner)
        .replace("{client}", "c1")
        .replace("{connection}", "999999")
        .replace("{company}", "1")
        .replace("{event_type}", "a")
        .replace("{user}", "999999")
        .replace("{id}", "999999")
        .replace("{set}", "nope")
        .replace("{template}", "nope")
        .replace("{rule}", "nope")
}

/// For every scope, a vendor-wide token holding only it, sent to every route that takes
/// tokens: exactly the routes whose entry the scope grants let it through; the others answer
/// 403 naming the scope that is missing.
async fn each_scope_route_by_route(s: &Server) -> Result<()> {
    let mut allowed_somewhere = 0;
    for scope in Scope::ALL {
        let (_, token) = s
            .token(
                As::Token(&s.vendor_token),
                "/api/v1/tokens",
                json!({"name": format!("only {scope}"), "scopes": [scope.as_str()]}),
            )
            .await?;
        for (route, access) in ROUTES {
            let need = match access {
                Access::Partner(p) | Access::Acting(p) => Some(Need::Permission(*p)),
                Access::TokenOnly => token_only_need(route),
                Access::Public | Access::Session => continue,
            };
            let (method, path) = route.split_once(' ').context("route")?;
            // The portal's pages answer HTML for people signed in (tests/portal.rs).
            if psabridge_web::portal::is_portal_path(path) {
                continue;
            }
            let method: Method = method.parse()?;
            let body = (method != Method::GET).then(|| json!({}));
            let (st, v) = s
                .call(As::Token(&token), method, &fill(path, "msp-a"), body)
                .await?;
            let allowed = need.is_some_and(|n| scope.grants(n));
            if allowed {
                allowed_somewhere += 1;
                assert!(
                    st != StatusCode::FORBIDDEN && st != StatusCode::UNAUTHORIZED,
                    "{scope} on {route}: {st} {v}"
                );
            } else {
                assert_eq!(st, StatusCode::FORBIDDEN, "{scope} on {route}: {v}");
                let missing = need
                    .and_then(|n| missing_scope(&[scope], n))
                    .unwrap_or(Scope::EventsWrite);
                let detail = v["detail"].as_str().unwrap_or_default();
                assert!(
                    detail.contains(&format!("the token lacks the scope {missing}")),
                    "{scope} on {route}: {detail}"
                );
            }
        }
    }
    assert!(
        allowed_somewhere >= 40,
        "only {allowed_somewhere} allowed calls"
    );
    Ok(())
}

/// Partner tokens as integrations use them: events:write sends events and nothing else;
/// settings:read reads settings and cannot change them.
async fn partner_tokens_by_scope(s: &Server) -> Result<()> {
    let (_, ingest) = s
        .token(
            As::Token(&s.vendor_token),
            "/api/v1/partners/msp-a/tokens",
            json!({"name": "ingestion", "scopes": ["events:write"]}),
        )
        .await?;
    let event = json!({"id": "e1", "client": "c1", "type": "a"});
    let (st, v) = s
        .call(
            As::Token(&ingest),
            Method::POST,
            "/api/v1/events",
            Some(event),
        )
        .await?;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    for (method, path) in [
        (Method::GET, "/api/v1/partners/msp-a"),
        (Method::GET, "/api/v1/partners/msp-a/deliveries"),
        (Method::GET, "/api/v1/events/e1"),
        (Method::PATCH, "/api/v1/partners/msp-a"),
        (Method::GET, "/api/v1/partners/msp-a/tokens"),
        (Method::POST, "/api/v1/partners/msp-a/tokens"),
        (Method::GET, "/api/v1/partners/msp-a/audit"),
    ] {
        let body = (method != Method::GET).then(|| json!({"name": "x"}));
        let (st, v) = s.call(As::Token(&ingest), method, path, body).await?;
        assert_eq!(st, StatusCode::FORBIDDEN, "{path}: {v}");
    }

    let (_, reader) = s
        .token(
            As::Token(&s.vendor_token),
            "/api/v1/partners/msp-a/tokens",
            json!({"name": "reader", "scopes": ["settings:read"]}),
        )
        .await?;
    let (st, v) = s
        .call(
            As::Token(&reader),
            Method::GET,
            "/api/v1/partners/msp-a",
            None,
        )
        .await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s
        .call(
            As::Token(&reader),
            Method::GET,
            "/api/v1/partners/msp-a/clients",
            None,
        )
        .await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s
        .call(
            As::Token(&reader),
            Method::PUT,
            "/api/v1/partners/msp-a/clients/c1",
            Some(json!({"name": "Renamed"})),
        )
        .await?;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("settings:write"),
        "{v}"
    );
    let (st, v) = s
        .call(
            As::Token(&reader),
            Method::POST,
            "/api/v1/events",
            Some(json!({"id": "e2", "client": "c1", "type": "a"})),
        )
        .await?;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("events:write"),
        "{v}"
    );
    // Scopes do not widen the partner: the reader still cannot see another partner.
    let (st, _) = s
        .call(
            As::Token(&reader),
            Method::GET,
            "/api/v1/partners/msp-b",
            None,
        )
        .await?;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (_, v) = s
        .call(
            As::Token(&reader),
            Method::GET,
            "/api/v1/partners/msp-a/clients/c1",
            None,
        )
        .await?;
    assert_eq!(v["name"], "Client 1", "the refused change changed nothing");
    Ok(())
}

async fn bad_scopes_and_expiry_requests_are_named(s: &Server) -> Result<()> {
    let (st, v) = s
        .vendor(
            Method::POST,
            "/api/v1/partners/msp-a/tokens",
            Some(json!({"name": "t", "scopes": ["settings:read", "foo", "Events:Write"]})),
        )
        .await?;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let errors = v["errors"].as_array().context("errors")?;
    assert_eq!(errors.len(), 2, "{v}");
    assert_eq!(errors[0]["path"], "scopes[1]");
    let problem = errors[0]["problem"].as_str().unwrap_or_default();
    assert!(
        problem.starts_with("'foo' is not a scope (known: events:write, settings:read,"),
        "{problem}"
    );
    assert_eq!(errors[1]["path"], "scopes[2]");

    for (body, path) in [
        (json!({"name": "t", "scopes": []}), "scopes[0]"),
        (
            json!({"name": "t", "expires_in_days": 0}),
            "expires_in_days",
        ),
        (
            json!({"name": "t", "expires_in_days": 100000}),
            "expires_in_days",
        ),
        (json!({"name": "t", "expires_at": "tomorrow"}), "expires_at"),
        (
            json!({"name": "t", "expires_at": "2001-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (
            json!({"name": "t", "expires_in_days": 1, "expires_at": "2099-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (json!({"name": ""}), "name"),
    ] {
        let (st, v) = s
            .vendor(
                Method::POST,
                "/api/v1/partners/msp-a/tokens",
                Some(body.clone()),
            )
            .await?;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert_eq!(v["errors"][0]["path"], path, "{body}: {v}");
    }

    // A token passes on at most its own scopes.
    let (_, minter) = s
        .token(
            As::Token(&s.vendor_token),
            "/api/v1/partners/msp-a/tokens",
            json!({"name": "minter", "scopes": ["tokens:write", "settings:read"]}),
        )
        .await?;
    let (st, v) = s
        .call(
            As::Token(&minter),
            Method::POST,
            "/api/v1/partners/msp-a/tokens",
            Some(json!({"name": "wider", "scopes": ["settings:read", "settings:write"]})),
        )
        .await?;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["path"], "scopes[1]");
    let (st, v) = s
        .call(
            As::Token(&minter),
            Method::POST,
            "/api/v1/partners/msp-a/tokens",
            Some(json!({"name": "same"})),
        )
        .await?;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["scopes"], json!(["settings:read", "tokens:write"]));

    // Omitted scopes: every scope (as before scopes existed), and the answer says so.
    let (st, v) = s
        .vendor(
            Method::POST,
            "/api/v1/partners/msp-a/tokens",
            Some(json!({"name": "all"})),
        )
        .await?;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["scopes"].as_array().map(Vec::len), Some(Scope::ALL.len()));
    assert!(
        v["note"]
            .as_str()
            .unwrap_or_default()
            .contains("every scope")
    );
    assert_eq!(v["expires_at"], Value::Null);
    assert_eq!(v["created_by"], Value::Null);
    Ok(())
}

async fn expiry_last_use_and_revocation(s: &Server) -> Result<()> {
    let list = "/api/v1/partners/msp-a/tokens";
    let (id, token) = s
        .token(
            As::Token(&s.vendor_token),
            list,
            json!({"name": "short", "scopes": ["settings:read"], "expires_in_days": 2}),
        )
        .await?;
    let (unused_id, _) = s
        .token(
            As::Token(&s.vendor_token),
            list,
            json!({"name": "unused", "scopes": ["settings:read"], "expires_at": "2099-01-31T00:00:00Z"}),
        )
        .await?;
    let listed = s.listed(list, unused_id).await?;
    assert_eq!(listed["expires_at"], "2099-01-31T00:00:00.000Z");
    assert_eq!(listed["last_used_at"], Value::Null);
    assert!(listed.get("token").is_none() && listed.get("token_hash").is_none());

    let (st, v) = s
        .call(
            As::Token(&token),
            Method::GET,
            "/api/v1/partners/msp-a",
            None,
        )
        .await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    let listed = s.listed(list, id).await?;
    assert!(listed["last_used_at"].is_string(), "{listed}");
    assert_eq!(listed["status"], "active");
    assert_eq!(listed["scopes"], json!(["settings:read"]));
    // Nothing in any listing is a secret.
    let (_, all) = s.vendor(Method::GET, list, None).await?;
    assert!(!all.to_string().contains(&token));
    assert!(!all.to_string().contains("psab_"));

    // Two days later it has expired: 401 saying when, recorded in the audit log.
    s.state
        .accounts
        .clock
        .advance(Duration::from_secs(2 * 24 * 3600 + 1));
    let (st, v) = s
        .call(
            As::Token(&token),
            Method::GET,
            "/api/v1/partners/msp-a",
            None,
        )
        .await?;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
    let expires_at = listed["expires_at"].as_str().context("expires_at")?;
    assert_eq!(
        v["detail"].as_str().unwrap_or_default(),
        format!("the token expired on {expires_at}")
    );
    assert_eq!(s.listed(list, id).await?["status"], "expired");
    // The vendor-wide list holds only vendor-wide tokens.
    let (_, vendor_list) = s.vendor(Method::GET, "/api/v1/tokens", None).await?;
    assert!(
        vendor_list["tokens"]
            .as_array()
            .context("tokens")?
            .iter()
            .all(|t| t["partner"].is_null()),
        "{vendor_list}"
    );

    // Revocation works at once on this node, even for a token just used (cached).
    let (rid, rtoken) = s
        .token(
            As::Token(&s.vendor_token),
            list,
            json!({"name": "revoked soon", "scopes": ["settings:read"]}),
        )
        .await?;
    let (st, _) = s
        .call(
            As::Token(&rtoken),
            Method::GET,
            "/api/v1/partners/msp-a",
            None,
        )
        .await?;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = s
        .vendor(Method::DELETE, &format!("{list}/{rid}"), None)
        .await?;
    assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
    let (st, v) = s
        .call(
            As::Token(&rtoken),
            Method::GET,
            "/api/v1/partners/msp-a",
            None,
        )
        .await?;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(s.listed(list, rid).await?["status"], "revoked");
    let (st, _) = s
        .vendor(Method::DELETE, &format!("{list}/{rid}"), None)
        .await?;
    assert_eq!(st, StatusCode::NOT_FOUND, "a revoked token is revoked once");

    let audit = s.audit_actions("msp-a").await?;
    let has = |action: &str, id: i64| {
        audit
            .iter()
            .any(|(a, t, _)| a == action && *t == format!("token:{id}"))
    };
    assert!(has("token.create", id), "{audit:?}");
    assert!(has("token.expired_refused", id), "{audit:?}");
    assert!(has("token.revoke", rid), "{audit:?}");
    Ok(())
}

async fn tokens_of_people(s: &Server) -> Result<()> {
    let list = "/api/v1/partners/msp-a/tokens";
    s.person("ann@msp-a.test", "msp-a", "primary").await?;
    let carl_id = s.person("carl@msp-a.test", "msp-a", "admin").await?;
    let dave_id = s.person("dave@msp-a.test", "msp-a", "admin").await?;
    let eve_id = s.person("eve@msp-a.test", "msp-a", "admin").await?;
    let reader_id = s.person("rita@msp-a.test", "msp-a", "read_only").await?;
    let ann = s.login("ann@msp-a.test").await?;
    let carl = s.login("carl@msp-a.test").await?;

    // An Admin may not grant users:write (their role does not allow it) …
    let (st, v) = s
        .call(
            As::Person(&carl),
            Method::POST,
            list,
            Some(json!({"name": "too much", "scopes": ["settings:read", "users:write"]})),
        )
        .await?;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["path"], "scopes[1]");
    // … and by default gets what the role allows.
    let (st, v) = s
        .call(
            As::Person(&carl),
            Method::POST,
            list,
            Some(json!({"name": "carl's"})),
        )
        .await?;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let carl_token = v["token"].as_str().context("token")?.to_string();
    let carl_token_id = v["id"].as_i64().context("id")?;
    let scopes: Vec<&str> = v["scopes"]
        .as_array()
        .context("scopes")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(scopes.contains(&"settings:write") && scopes.contains(&"events:write"));
    assert!(!scopes.contains(&"users:write"), "{scopes:?}");
    assert_eq!(
        v["created_by"],
        json!({"user": carl_id, "email": "carl@msp-a.test"})
    );
    // A read-only person may not make tokens at all (the matrix).
    let rita = s.login("rita@msp-a.test").await?;
    let (st, _) = s
        .call(
            As::Person(&rita),
            Method::POST,
            list,
            Some(json!({"name": "r"})),
        )
        .await?;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let _ = reader_id;

    // Carl's token works (and is now cached) until Ann deactivates Carl: then at once.
    let (st, _) = s
        .call(
            As::Token(&carl_token),
            Method::GET,
            "/api/v1/partners/msp-a",
            None,
        )
        .await?;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = s
        .call(
            As::Person(&ann),
            Method::PATCH,
            &format!("/api/v1/partners/msp-a/users/{carl_id}"),
            Some(json!({"active": false})),
        )
        .await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s
        .call(
            As::Token(&carl_token),
            Method::GET,
            "/api/v1/partners/msp-a",
            None,
        )
        .await?;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
    let listed = s.listed(list, carl_token_id).await?;
    assert_eq!(listed["status"], "revoked");
    assert_eq!(listed["created_by"]["user"], carl_id);
    // Reactivating Carl does not bring the token back.
    let (st, _) = s
        .call(
            As::Person(&ann),
            Method::PATCH,
            &format!("/api/v1/partners/msp-a/users/{carl_id}"),
            Some(json!({"active": true})),
        )
        .await?;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s
        .call(
            As::Token(&carl_token),
            Method::GET,
            "/api/v1/partners/msp-a",
            None,
        )
        .await?;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    // Removing Dave from the partner revokes his tokens.
    let dave = s.login("dave@msp-a.test").await?;
    let (dave_token_id, dave_token) = s
        .token(
            As::Person(&dave),
            list,
            json!({"name": "dave's", "scopes": ["events:write"]}),
        )
        .await?;
    let (st, _) = s
        .call(
            As::Person(&ann),
            Method::DELETE,
            &format!("/api/v1/partners/msp-a/users/{dave_id}"),
            None,
        )
        .await?;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = s
        .call(
            As::Token(&dave_token),
            Method::POST,
            "/api/v1/events",
            Some(json!({"id": "e9", "client": "c1", "type": "a"})),
        )
        .await?;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(s.listed(list, dave_token_id).await?["status"], "revoked");

    // Deprovisioning (the store's deactivation of the person everywhere) revokes Eve's
    // tokens in the same transaction; the vendor's and Ann's are untouched.
    let eve = s.login("eve@msp-a.test").await?;
    let (eve_token_id, _) = s
        .token(As::Person(&eve), list, json!({"name": "eve's"}))
        .await?;
    let (ann_token_id, _) = s
        .token(As::Person(&ann), list, json!({"name": "ann's"}))
        .await?;
    let now = s.state.accounts.clock.now_ms();
    s.store.deactivate_user(eve_id, now).await?;
    assert_eq!(s.listed(list, eve_token_id).await?["status"], "revoked");
    assert_eq!(s.listed(list, ann_token_id).await?["status"], "active");
    assert_eq!(s.store.revoke_tokens_of_user(eve_id, None, now).await?, 0);
    let (st, _) = s
        .vendor(Method::GET, "/api/v1/partners/msp-a", None)
        .await?;
    assert_eq!(st, StatusCode::OK, "the vendor's token is nobody's");

    let audit = s.audit_actions("msp-a").await?;
    assert!(
        audit.iter().any(|(a, t, actor)| a == "token.create"
            && *t == format!("token:{carl_token_id}")
            && actor.starts_with(&format!("user:{carl_id} "))),
        "{audit:?}"
    );
    Ok(())
}
