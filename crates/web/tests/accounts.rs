//! Accounts over real HTTP, on SQLite and PostgreSQL: login with password and TOTP, replay
//! and recovery codes, throttling, CSRF, sessions, deactivation, and the permission matrix
//! route by route.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use psabridge_identity::password::PasswordHashing;
use psabridge_web::ROUTES;
use psabridge_web::accounts::Access;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

mod common;
use common::{PASSWORD, Server};

/// A logged-in person: the cookie and CSRF token a browser would hold.
#[derive(Clone)]
struct Login {
    cookie: String,
    csrf: String,
    body: Value,
}

impl Server {
    fn advance(&self, seconds: u64) {
        self.state
            .accounts
            .clock
            .advance(Duration::from_secs(seconds));
    }

    fn now_seconds(&self) -> u64 {
        (self.state.accounts.clock.now_ms() / 1000) as u64
    }

    /// A person with a password and a role at `partner`.
    async fn person(&self, email: &str, partner: &str, role: &str) -> Result<i64> {
        let id = match self.store.user_by_email(email).await? {
            Some(u) => u.id,
            None => {
                let id = self.store.create_user(email, email, 0).await?;
                let hash = PasswordHashing::FAST_INSECURE.hash(PASSWORD)?;
                self.store.set_password_hash(id, &hash).await?;
                id
            }
        };
        self.store.add_membership(id, partner, role, 0).await?;
        Ok(id)
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        login: Option<&Login>,
        csrf: bool,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value, reqwest::header::HeaderMap)> {
        let mut rb = self.http.request(method, format!("{}{path}", self.url));
        if let Some(l) = login {
            rb = rb.header("cookie", &l.cookie);
            if csrf {
                rb = rb.header("x-csrf-token", &l.csrf);
            }
        }
        if let Some(b) = body {
            rb = rb.json(&b);
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

    async fn as_vendor(
        &self,
        method: Method,
        path: &str,
        body: Value,
    ) -> Result<(StatusCode, Value)> {
        let r = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.vendor_token)
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    async fn try_login(&self, body: Value) -> Result<(StatusCode, Value, Option<Login>)> {
        let (status, v, headers) = self
            .send(Method::POST, "/api/v1/auth/login", None, false, Some(body))
            .await?;
        let login = headers
            .get("set-cookie")
            .and_then(|c| c.to_str().ok())
            .and_then(|c| c.split(';').next())
            .map(|cookie| Login {
                cookie: cookie.to_string(),
                csrf: v["csrf_token"].as_str().unwrap_or_default().to_string(),
                body: v.clone(),
            });
        Ok((status, v, login))
    }

    async fn login(&self, email: &str, extra: Value) -> Result<Login> {
        let mut body = json!({"email": email, "password": PASSWORD});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let (status, v, login) = self.try_login(body).await?;
        if status != StatusCode::OK {
            bail!("login of {email}: {status} {v}");
        }
        login.context("no session cookie")
    }
}

/// The code an authenticator app would show, computed independently with totp-rs.
fn code(secret_base32: &str, at: u64) -> String {
    let secret = totp_rs::Secret::try_from_base32(secret_base32).unwrap();
    totp_rs::Builder::new()
        .with_secret(secret.as_ref())
        .build()
        .unwrap()
        .generate(at)
        .to_string()
}

macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() -> anyhow::Result<()> {
                let s = super::Server::start(false, "accounts over HTTP")
                    .await?
                    .expect("sqlite");
                let r = super::$name(&s).await;
                s.stop().await;
                r
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() -> anyhow::Result<()> {
                let Some(s) = super::Server::start(true, "accounts over HTTP").await? else {
                    return Ok(());
                };
                let r = super::$name(&s).await;
                s.stop().await;
                r
            }
        }
    };
}

on_both!(login_with_password_and_totp);
on_both!(users_roles_and_deactivation);
on_both!(throttling);
on_both!(permission_matrix_route_by_route);

async fn login_with_password_and_totp(s: &Server) -> Result<()> {
    s.person("ann@msp-a.test", "msp-a", "primary").await?;

    // Wrong password and unknown email: the same answer.
    let (st1, v1, l1) = s
        .try_login(json!({"email": "ann@msp-a.test", "password": "wrong password!"}))
        .await?;
    let (st2, v2, _) = s
        .try_login(json!({"email": "nobody@msp-a.test", "password": "wrong password!"}))
        .await?;
    assert_eq!(
        (st1, st2),
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );
    assert_eq!(v1["detail"], v2["detail"]);
    assert!(l1.is_none());
    // Only JSON (a cross-site form cannot log a visitor in).
    let r = s
        .http
        .post(format!("{}/api/v1/auth/login", s.url))
        .header("content-type", "text/plain")
        .body(format!(
            r#"{{"email":"ann@msp-a.test","password":"{PASSWORD}"}}"#
        ))
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // A missing field is named.
    let (st, v, _) = s.try_login(json!({"email": "ann@msp-a.test"})).await?;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["errors"][0]["path"], "password", "{v}");

    // Password only (no TOTP yet): a session cookie, HttpOnly and SameSite=Lax.
    let (_, _, headers) = s
        .send(
            Method::POST,
            "/api/v1/auth/login",
            None,
            false,
            Some(json!({"email": "ANN@msp-a.test", "password": PASSWORD})),
        )
        .await?;
    let set_cookie = headers["set-cookie"].to_str()?;
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"));
    let ann = s.login("ann@msp-a.test", json!({})).await?;
    assert_eq!(ann.body["memberships"][0]["role"], "primary");
    assert_eq!(ann.body["partner"], "msp-a");
    assert_eq!(ann.csrf.len(), 64);
    let (st, v, _) = s
        .send(Method::GET, "/api/v1/auth/session", Some(&ann), false, None)
        .await?;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["user"]["email"], "ann@msp-a.test");
    assert_eq!(v["csrf_token"], ann.csrf.as_str());

    // Changing anything needs the CSRF token.
    let (st, _, _) = s
        .send(
            Method::POST,
            "/api/v1/auth/totp/enroll",
            Some(&ann),
            false,
            None,
        )
        .await?;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _, _) = s
        .send(
            Method::PATCH,
            "/api/v1/partners/msp-a",
            Some(&ann),
            false,
            Some(json!({"name": "Renamed"})),
        )
        .await?;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // TOTP enrolment: not active until confirmed.
    let (st, enrol, _) = s
        .send(
            Method::POST,
            "/api/v1/auth/totp/enroll",
            Some(&ann),
            true,
            None,
        )
        .await?;
    assert_eq!(st, StatusCode::OK, "{enrol}");
    let secret = enrol["secret"].as_str().context("secret")?.to_string();
    assert!(
        enrol["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    let (st, v, _) = s
        .send(
            Method::POST,
            "/api/v1/auth/totp/confirm",
            Some(&ann),
            true,
            Some(json!({"code": "000000"})),
        )
        .await?;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["path"], "code");
    // Still password-only until confirmed.
    s.login("ann@msp-a.test", json!({})).await?;
    let (st, confirmed, _) = s
        .send(
            Method::POST,
            "/api/v1/auth/totp/confirm",
            Some(&ann),
            true,
            Some(json!({"code": code(&secret, s.now_seconds())})),
        )
        .await?;
    assert_eq!(st, StatusCode::OK, "{confirmed}");
    let recovery: Vec<String> = serde_json::from_value(confirmed["recovery_codes"].clone())?;
    assert_eq!(recovery.len(), 10);

    // Logout ends the session.
    let (st, _, _) = s
        .send(Method::POST, "/api/v1/auth/logout", Some(&ann), true, None)
        .await?;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _, _) = s
        .send(Method::GET, "/api/v1/auth/session", Some(&ann), false, None)
        .await?;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    // Now the password alone is not enough.
    let (st, v, _) = s
        .try_login(json!({"email": "ann@msp-a.test", "password": PASSWORD}))
        .await?;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(v["second_factor_required"], true);
    let (st, _, _) = s
        .try_login(json!({"email": "ann@msp-a.test", "password": PASSWORD, "totp_code": "123456"}))
        .await?;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // The code that confirmed the enrolment is spent; the next step's works once.
    let spent = code(&secret, s.now_seconds());
    let (st, _, _) = s
        .try_login(json!({"email": "ann@msp-a.test", "password": PASSWORD, "totp_code": spent}))
        .await?;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "replayed code accepted");
    s.advance(30);
    let fresh = code(&secret, s.now_seconds());
    let ann = s
        .login("ann@msp-a.test", json!({"totp_code": fresh}))
        .await?;
    assert_eq!(ann.body["session"]["auth_method"], "password_totp");
    let (st, _, _) = s
        .try_login(json!({"email": "ann@msp-a.test", "password": PASSWORD, "totp_code": fresh}))
        .await?;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "replayed code accepted");

    // A recovery code works once.
    let by_recovery = s
        .login(
            "ann@msp-a.test",
            json!({"recovery_code": recovery[0].to_lowercase()}),
        )
        .await?;
    assert_eq!(by_recovery.body["session"]["auth_method"], "recovery_code");
    let (st, _, _) = s
        .try_login(
            json!({"email": "ann@msp-a.test", "password": PASSWORD, "recovery_code": recovery[0]}),
        )
        .await?;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    // Sessions: listed, and one can be revoked from another.
    let (st, v, _) = s
        .send(
            Method::GET,
            "/api/v1/auth/sessions",
            Some(&ann),
            false,
            None,
        )
        .await?;
    assert_eq!(st, StatusCode::OK);
    let sessions = v["sessions"].as_array().context("sessions")?;
    assert!(sessions.len() >= 2);
    let other = by_recovery.body["session"]["id"].as_i64().context("id")?;
    let (st, _, _) = s
        .send(
            Method::DELETE,
            &format!("/api/v1/auth/sessions/{other}"),
            Some(&ann),
            true,
            None,
        )
        .await?;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _, _) = s
        .send(
            Method::GET,
            "/api/v1/auth/session",
            Some(&by_recovery),
            false,
            None,
        )
        .await?;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    // Bearer tokens are unaffected by sessions and CSRF.
    let (st, _) = s
        .as_vendor(
            Method::PUT,
            "/api/v1/partners/msp-a/clients/c2",
            json!({"name": "Client 2"}),
        )
        .await?;
    assert!(st.is_success(), "{st}");

    // Everything above is in the partner's audit log.
    let (st, v, _) = s
        .send(
            Method::GET,
            "/api/v1/partners/msp-a/audit?limit=1000",
            Some(&ann),
            false,
            None,
        )
        .await?;
    assert_eq!(st, StatusCode::OK);
    let actions: Vec<&str> = v["entries"]
        .as_array()
        .context(format!("audit shape {v}"))?
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for a in [
        "auth.login",
        "auth.login_failed",
        "auth.logout",
        "auth.totp_enrolment_started",
        "auth.totp_enrolled",
        "auth.session_revoked",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    Ok(())
}

async fn users_roles_and_deactivation(s: &Server) -> Result<()> {
    let ann_id = s.person("ann@msp-a.test", "msp-a", "primary").await?;
    let ann = s.login("ann@msp-a.test", json!({})).await?;

    // Ann adds Bob, a new person: an invitation, and Bob gets a one-time link by email.
    let (st, v, _) = s
        .send(
            Method::POST,
            "/api/v1/partners/msp-a/users",
            Some(&ann),
            true,
            Some(json!({"email": "bob@msp-a.test", "name": "Bob", "role": "read_only"})),
        )
        .await?;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["invitation"]["email"], "bob@msp-a.test");
    let token = s.mail.token_for("bob@msp-a.test").context("Bob's email")?;
    let (st, v, _) = s
        .send(
            Method::POST,
            "/api/v1/partners/msp-a/users",
            Some(&ann),
            true,
            Some(json!({"email": "x@msp-a.test", "role": "owner"})),
        )
        .await?;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["errors"][0]["path"], "role");
    // The password rules, then the token works once.
    let (st, v, _) = s
        .send(
            Method::POST,
            "/api/v1/auth/password",
            None,
            false,
            Some(json!({"token": token, "password": "bob@msp-a.test"})),
        )
        .await?;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["errors"][0]["path"], "password");
    let (st, _, _) = s
        .send(
            Method::POST,
            "/api/v1/auth/password",
            None,
            false,
            Some(json!({"token": token, "password": PASSWORD})),
        )
        .await?;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _, _) = s
        .send(
            Method::POST,
            "/api/v1/auth/password",
            None,
            false,
            Some(json!({"token": token, "password": "another long password"})),
        )
        .await?;
    assert_eq!(
        st,
        StatusCode::UNPROCESSABLE_ENTITY,
        "the token is single-use"
    );
    let bob = s.login("bob@msp-a.test", json!({})).await?;
    let bob_id = s
        .store
        .user_by_email("bob@msp-a.test")
        .await?
        .context("Bob")?
        .id;

    // Read-only Bob cannot change settings or people.
    let (st, _, _) = s
        .send(
            Method::PATCH,
            "/api/v1/partners/msp-a",
            Some(&bob),
            true,
            Some(json!({"name": "Bob's"})),
        )
        .await?;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _, _) = s
        .send(
            Method::PATCH,
            &format!("/api/v1/partners/msp-a/users/{ann_id}"),
            Some(&bob),
            true,
            Some(json!({"active": false})),
        )
        .await?;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, v, _) = s
        .send(
            Method::GET,
            "/api/v1/partners/msp-a/users",
            Some(&bob),
            false,
            None,
        )
        .await?;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["users"].as_array().map(Vec::len), Some(2));

    // The Primary cannot be demoted, deactivated or removed.
    for body in [json!({"role": "admin"}), json!({"active": false})] {
        let (st, _, _) = s
            .send(
                Method::PATCH,
                &format!("/api/v1/partners/msp-a/users/{ann_id}"),
                Some(&ann),
                true,
                Some(body),
            )
            .await?;
        assert_eq!(st, StatusCode::CONFLICT);
    }
    let (st, _, _) = s
        .send(
            Method::DELETE,
            &format!("/api/v1/partners/msp-a/users/{ann_id}"),
            Some(&ann),
            true,
            None,
        )
        .await?;
    assert_eq!(st, StatusCode::CONFLICT);

    // Deactivation ends Bob's session at once, and he cannot log in.
    let (st, v, _) = s
        .send(
            Method::PATCH,
            &format!("/api/v1/partners/msp-a/users/{bob_id}"),
            Some(&ann),
            true,
            Some(json!({"active": false})),
        )
        .await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["active"], false);
    let (st, _, _) = s
        .send(
            Method::GET,
            "/api/v1/partners/msp-a/users",
            Some(&bob),
            false,
            None,
        )
        .await?;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _, _) = s
        .try_login(json!({"email": "bob@msp-a.test", "password": PASSWORD}))
        .await?;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // Primary goes only to an active member, and only from the Primary.
    let make_primary = json!({"role": "primary"});
    let (st, _, _) = s
        .send(
            Method::PATCH,
            &format!("/api/v1/partners/msp-a/users/{bob_id}"),
            Some(&ann),
            true,
            Some(make_primary.clone()),
        )
        .await?;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, _, _) = s
        .send(
            Method::PATCH,
            &format!("/api/v1/partners/msp-a/users/{bob_id}"),
            Some(&ann),
            true,
            Some(json!({"active": true, "role": "security_admin"})),
        )
        .await?;
    assert_eq!(st, StatusCode::OK);
    let bob = s.login("bob@msp-a.test", json!({})).await?;
    let (st, _, _) = s
        .send(
            Method::PATCH,
            &format!("/api/v1/partners/msp-a/users/{bob_id}"),
            Some(&bob),
            true,
            Some(make_primary.clone()),
        )
        .await?;
    assert_eq!(
        st,
        StatusCode::FORBIDDEN,
        "a Security Admin cannot take Primary"
    );
    let (st, v, _) = s
        .send(
            Method::PATCH,
            &format!("/api/v1/partners/msp-a/users/{bob_id}"),
            Some(&ann),
            true,
            Some(make_primary),
        )
        .await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["role"], "primary");
    let members = s.store.members_of("msp-a").await?;
    let ann_now = members
        .iter()
        .find(|m| m.user_id == ann_id)
        .context("ann")?;
    assert_eq!(ann_now.role, "security_admin");

    // A person may belong to several partners: MSP B invites Bob, who accepts after his own
    // login (no new password, and no link in the email).
    let (st, v) = s
        .as_vendor(
            Method::POST,
            "/api/v1/partners/msp-b/users",
            json!({"email": "BOB@msp-a.test", "role": "technician"}),
        )
        .await?;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    assert!(
        v.get("id").is_none() && !v.to_string().contains("token"),
        "{v}"
    );
    assert!(s.mail.token_for("bob@msp-a.test").is_none());
    let (st, v, _) = s
        .send(
            Method::GET,
            "/api/v1/auth/invitations",
            Some(&bob),
            false,
            None,
        )
        .await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    let id = v["invitations"][0]["id"].as_i64().context("invitation")?;
    assert_eq!(v["invitations"][0]["partner_name"], "MSP B");
    let (st, v, _) = s
        .send(
            Method::POST,
            &format!("/api/v1/auth/invitations/{id}/accept"),
            Some(&bob),
            false,
            None,
        )
        .await?;
    assert_eq!(
        st,
        StatusCode::FORBIDDEN,
        "accepting needs the CSRF token: {v}"
    );
    let (st, v, _) = s
        .send(
            Method::POST,
            &format!("/api/v1/auth/invitations/{id}/accept"),
            Some(&bob),
            true,
            None,
        )
        .await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["role"], "technician");
    let (st, v, _) = s
        .try_login(json!({"email": "bob@msp-a.test", "password": PASSWORD, "partner": "msp-b"}))
        .await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["partner"], "msp-b");
    assert_eq!(v["memberships"].as_array().map(Vec::len), Some(1));
    // Without a partner, a person of several partners gets a session for all of them.
    let (st, v, _) = s
        .try_login(json!({"email": "bob@msp-a.test", "password": PASSWORD}))
        .await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["partner"], Value::Null);
    assert_eq!(v["memberships"].as_array().map(Vec::len), Some(2));

    // Removing a member (Ann, no longer Primary) ends her sessions too.
    let (st, v, _) = s
        .send(
            Method::DELETE,
            &format!("/api/v1/partners/msp-a/users/{ann_id}"),
            Some(&bob),
            true,
            None,
        )
        .await?;
    assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
    let (st, _, _) = s
        .send(Method::GET, "/api/v1/auth/session", Some(&ann), false, None)
        .await?;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    Ok(())
}

async fn throttling(s: &Server) -> Result<()> {
    s.person("ann@msp-a.test", "msp-a", "primary").await?;
    for _ in 0..5 {
        let (st, _, _) = s
            .try_login(json!({"email": "ann@msp-a.test", "password": "wrong password!"}))
            .await?;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
    }
    // Now even the right password waits, without being checked.
    let (st, v, headers) = s
        .send(
            Method::POST,
            "/api/v1/auth/login",
            None,
            false,
            Some(json!({"email": "ann@msp-a.test", "password": PASSWORD})),
        )
        .await?;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{v}");
    let retry: u64 = headers["retry-after"].to_str()?.parse()?;
    assert!((1..=30).contains(&retry), "{retry}");
    s.advance(retry + 1);
    s.login("ann@msp-a.test", json!({})).await?;
    // A success clears the account's failures.
    let (st, _, _) = s
        .try_login(json!({"email": "ann@msp-a.test", "password": "wrong password!"}))
        .await?;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    Ok(())
}

/// Fill a route template with values that exist where it matters.
fn fill(route_path: &str, partner: &str, user: i64) -> String {
    route_path
        .replace("{p}", partner)
        .replace("{client}", "c1")
        .replace("{connection}", "1")
        .replace("{company}", "1")
        .replace("{event_type}", "a")
        .replace("{user}", &user.to_string())
        .replace("{id}", "1")
}

async fn permission_matrix_route_by_route(s: &Server) -> Result<()> {
    let reader_id = s.person("reader@msp-a.test", "msp-a", "read_only").await?;
    s.person("primary@msp-b.test", "msp-b", "primary").await?;
    let reader = s.login("reader@msp-a.test", json!({})).await?;
    let mut checked = 0;
    for (route, access) in ROUTES {
        let (method, path) = route.split_once(' ').context("route")?;
        let method: Method = method.parse()?;
        let mutating = method != Method::GET;
        let body = mutating.then(|| json!({}));
        match access {
            Access::Partner(permission) => {
                // At the reader's own partner: reads pass, changes are refused.
                let own = fill(path, "msp-a", reader_id);
                let (st, v, _) = s
                    .send(method.clone(), &own, Some(&reader), true, body.clone())
                    .await?;
                if permission.is_read_only() {
                    assert!(
                        st != StatusCode::FORBIDDEN && st != StatusCode::UNAUTHORIZED,
                        "{route}: {st} {v}"
                    );
                    if !path.replace("{p}", "").contains('{') {
                        assert_eq!(st, StatusCode::OK, "{route}: {v}");
                    }
                } else {
                    assert_eq!(st, StatusCode::FORBIDDEN, "{route}: {v}");
                }
                // Another partner's routes do not exist for the reader.
                let other = fill(path, "msp-b", reader_id);
                let (st, v, _) = s
                    .send(method.clone(), &other, Some(&reader), true, body.clone())
                    .await?;
                assert_eq!(st, StatusCode::NOT_FOUND, "{route} at msp-b: {v}");
                checked += 1;
            }
            Access::Acting(permission) => {
                let (st, v, _) = s
                    .send(
                        method.clone(),
                        &fill(path, "msp-a", reader_id),
                        Some(&reader),
                        true,
                        body,
                    )
                    .await?;
                assert_eq!(permission.is_read_only(), !mutating);
                assert!(
                    st != StatusCode::FORBIDDEN && st != StatusCode::UNAUTHORIZED,
                    "{route}: {st} {v}"
                );
                if !path.contains('{') {
                    assert_eq!(st, StatusCode::OK, "{route}: {v}");
                }
                checked += 1;
            }
            Access::TokenOnly => {
                let (st, v, _) = s
                    .send(method.clone(), path, Some(&reader), true, body)
                    .await?;
                assert_eq!(st, StatusCode::FORBIDDEN, "{route}: {v}");
                checked += 1;
            }
            Access::Session | Access::Public => {}
        }
    }
    assert!(checked >= 30, "only {checked} routes checked");
    // The reader sees only their partner in the partner list.
    let (_, v, _) = s
        .send(Method::GET, "/api/v1/partners", Some(&reader), false, None)
        .await?;
    let ids: Vec<&str> = v["partners"]
        .as_array()
        .context("partners")?
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert_eq!(ids, vec!["msp-a"]);
    Ok(())
}
