//! Partners are tenants: over real HTTP, on SQLite and PostgreSQL, with partner A = `msp-a`
//! and B = `msp-b` (issue 10, items 1, 2, 3, 6, 7 and 14).
//!
//! - B adds Dave; A tries every path to get a credential for Dave or to learn about him.
//! - A deactivates or removes Dave (users API and A's SCIM): his session at B keeps working,
//!   his session for A ends.
//! - A refused add leaves no person behind.
//! - Login throttling cannot be used to lock a person out.
//! - SCIM lists the partner's existing members.
//! - Names and emails have length limits, and errors do not echo huge values.

use std::net::IpAddr;

use anyhow::{Context, Result, bail, ensure};
use psabridge_identity::password::PasswordHashing;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

mod common;
use common::{PASSWORD, Server};

/// A logged-in person: the cookie and CSRF token a browser would hold.
#[derive(Clone, Debug)]
struct Login {
    cookie: String,
    csrf: String,
    body: Value,
}

/// An HTTP client whose requests come from `ip` (any 127.x.y.z works on loopback), so the
/// server sees different client addresses.
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().ok())
        .build()
        .expect("client")
}

impl Server {
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

    async fn call(
        &self,
        client: &reqwest::Client,
        method: Method,
        path: &str,
        login: Option<&Login>,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value, reqwest::header::HeaderMap)> {
        let mut rb = client.request(method, format!("{}{path}", self.url));
        if let Some(l) = login {
            rb = rb
                .header("cookie", &l.cookie)
                .header("x-csrf-token", &l.csrf);
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
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
            headers,
        ))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        login: Option<&Login>,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value)> {
        let (st, v, _) = self.call(&self.http, method, path, login, body).await?;
        Ok((st, v))
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

    async fn try_login_from(
        &self,
        client: &reqwest::Client,
        body: Value,
    ) -> Result<(StatusCode, Value, Option<Login>)> {
        let (status, v, headers) = self
            .call(client, Method::POST, "/api/v1/auth/login", None, Some(body))
            .await?;
        let login = headers
            .get("set-cookie")
            .and_then(|c| c.to_str().ok())
            .and_then(|c| c.split(';').next())
            .filter(|_| status == StatusCode::OK)
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
        let (status, v, login) = self.try_login_from(&self.http, body).await?;
        if status != StatusCode::OK {
            bail!("login of {email}: {status} {v}");
        }
        login.context("no session cookie")
    }

    /// Whether a session still works (its own account page).
    async fn alive(&self, login: &Login) -> Result<bool> {
        let (st, _) = self
            .send(Method::GET, "/api/v1/auth/session", Some(login), None)
            .await?;
        Ok(st == StatusCode::OK)
    }

    async fn scim_token(&self, partner: &str) -> Result<String> {
        let (st, v) = self
            .as_vendor(
                Method::POST,
                &format!("/api/v1/partners/{partner}/scim/token"),
                json!({}),
            )
            .await?;
        ensure!(st == StatusCode::CREATED, "scim token: {st} {v}");
        Ok(v["token"].as_str().unwrap_or_default().to_string())
    }

    async fn scim(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value)> {
        let mut rb = self
            .http
            .request(method, format!("{}/scim/v2/{path}", self.url))
            .bearer_auth(token);
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/scim+json")
                .body(b.to_string());
        }
        let r = rb.send().await?;
        let status = r.status();
        let text = r.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }
}

macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() -> anyhow::Result<()> {
                let s = super::Server::start(false, "tenancy over HTTP")
                    .await?
                    .expect("sqlite");
                let r = super::$name(&s).await;
                s.stop().await;
                r
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() -> anyhow::Result<()> {
                let Some(s) = super::Server::start(true, "tenancy over HTTP").await? else {
                    return Ok(());
                };
                let r = super::$name(&s).await;
                s.stop().await;
                r
            }
        }
    };
}

on_both!(a_partner_cannot_take_over_or_learn_of_another_partners_person);
on_both!(deactivation_at_a_ends_only_what_belongs_to_a);
on_both!(a_refused_add_leaves_no_person_behind);
on_both!(an_attacker_cannot_lock_a_person_out);
on_both!(scim_lists_the_partners_existing_members);
on_both!(names_and_emails_have_length_limits);

/// Every key of a JSON document, with its path, for comparing shapes.
fn shape(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{path}.{k}");
                out.push(p.clone());
                shape(x, &p, out);
            }
        }
        Value::Array(a) => {
            for x in a {
                shape(x, &format!("{path}[]"), out);
            }
        }
        _ => {}
    }
}

fn shape_of(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    shape(v, "", &mut out);
    out.sort();
    out
}

/// Item 1 and 3: B adds Dave; A tries every path to a credential for Dave or to knowledge of
/// him.
async fn a_partner_cannot_take_over_or_learn_of_another_partners_person(s: &Server) -> Result<()> {
    s.person("ann@msp-a.test", "msp-a", "primary").await?;
    s.person("bea@msp-b.test", "msp-b", "primary").await?;
    let ann = s.login("ann@msp-a.test", json!({})).await?;
    let bea = s.login("bea@msp-b.test", json!({})).await?;

    // B adds Dave (new to the product) as an Admin: an invitation, emailed to Dave, and
    // nothing for B to use. Inviting again revokes the first link.
    let invite_dave = json!({"email": "dave@msp-b.test", "name": "Dave Bee", "role": "admin"});
    let (st, v) = s
        .send(
            Method::POST,
            "/api/v1/partners/msp-b/users",
            Some(&bea),
            Some(invite_dave.clone()),
        )
        .await?;
    ensure!(st == StatusCode::ACCEPTED, "B adds Dave: {st} {v}");
    ensure!(
        v["delivery"] == "emailed" && v["invitation"]["status"] == "pending",
        "{v}"
    );
    ensure!(!v.to_string().contains("token"), "B got a credential: {v}");
    let first_link = s
        .mail
        .token_for("dave@msp-b.test")
        .context("the first email")?;
    ensure!(
        s.store.user_by_email("dave@msp-b.test").await?.is_none(),
        "a person row before Dave accepted"
    );
    let (st, _) = s
        .send(
            Method::POST,
            "/api/v1/partners/msp-b/users",
            Some(&bea),
            Some(invite_dave),
        )
        .await?;
    ensure!(st == StatusCode::ACCEPTED);
    let second_link = s
        .mail
        .token_for("dave@msp-b.test")
        .context("the second email")?;
    ensure!(first_link != second_link);
    let (st, v) = s
        .send(
            Method::POST,
            "/api/v1/auth/password",
            None,
            Some(json!({"token": first_link, "password": PASSWORD})),
        )
        .await?;
    ensure!(
        st == StatusCode::UNPROCESSABLE_ENTITY && v["errors"][0]["path"] == "token",
        "the first link still works: {st} {v}"
    );
    let (st, v) = s
        .send(
            Method::POST,
            "/api/v1/auth/password",
            None,
            Some(json!({"token": second_link, "password": PASSWORD})),
        )
        .await?;
    ensure!(
        st == StatusCode::NO_CONTENT,
        "Dave accepts with the link: {st} {v}"
    );
    let (st, _) = s
        .send(
            Method::POST,
            "/api/v1/auth/password",
            None,
            Some(json!({"token": second_link, "password": "another long password"})),
        )
        .await?;
    ensure!(
        st == StatusCode::UNPROCESSABLE_ENTITY,
        "the link is single-use"
    );
    let dave_at_b = s.login("dave@msp-b.test", json!({})).await?;
    ensure!(dave_at_b.body["partner"] == "msp-b", "{:?}", dave_at_b.body);
    ensure!(dave_at_b.body["memberships"][0]["role"] == "admin");
    let dave_id = s
        .store
        .user_by_email("dave@msp-b.test")
        .await?
        .map(|u| u.id);
    ensure!(dave_id.is_some());
    let mails_before = s.mail.to("dave@msp-b.test").len();

    // A adds Dave's address, and an address nobody has: the same status and the same shape.
    let (st_dave, v_dave) = s
        .send(
            Method::POST,
            "/api/v1/partners/msp-a/users",
            Some(&ann),
            Some(json!({"email": "dave@msp-b.test", "role": "read_only"})),
        )
        .await?;
    let (st_new, v_new) = s
        .send(
            Method::POST,
            "/api/v1/partners/msp-a/users",
            Some(&ann),
            Some(json!({"email": "nobody-yet@elsewhere.test", "role": "read_only"})),
        )
        .await?;
    ensure!(st_dave.is_success(), "A adds Dave: {st_dave} {v_dave}");
    ensure!(
        st_dave == st_new,
        "the status says whether the email exists: {st_dave} vs {st_new}"
    );
    ensure!(
        shape_of(&v_dave) == shape_of(&v_new),
        "the shape says whether the email exists:\n{v_dave}\n{v_new}"
    );
    // Nothing of Dave's standing, and no credential.
    let text = v_dave.to_string();
    for leak in [
        "password_setup_token",
        "password_set",
        "totp_enabled",
        "Dave Bee",
        "token",
    ] {
        ensure!(!text.contains(leak), "A's answer holds {leak}: {text}");
    }
    ensure!(
        !shape_of(&v_dave).iter().any(|k| k.ends_with(".user_id")),
        "{text}"
    );

    // A cannot set a password for Dave with anything it was given, nor log in as him.
    for candidate in [&v_dave["password_setup_token"], &v_dave["token"]] {
        if let Some(t) = candidate.as_str() {
            let (st, _) = s
                .send(
                    Method::POST,
                    "/api/v1/auth/password",
                    None,
                    Some(json!({"token": t, "password": "attacker chosen password"})),
                )
                .await?;
            ensure!(!st.is_success(), "A set Dave's password");
        }
    }
    let (st, v, _) = s
        .try_login_from(
            &s.http,
            json!({"email": "dave@msp-b.test", "password": "attacker chosen password"}),
        )
        .await?;
    ensure!(st == StatusCode::UNAUTHORIZED, "{st} {v}");

    // Dave is not a member of A until he accepts: A's lists do not show him, and A cannot act
    // on his standing by his id.
    let (st, v) = s
        .send(
            Method::GET,
            "/api/v1/partners/msp-a/users",
            Some(&ann),
            None,
        )
        .await?;
    ensure!(st == StatusCode::OK, "{st} {v}");
    ensure!(
        !v.to_string().contains("Dave Bee")
            && !v["users"]
                .as_array()
                .context("users")?
                .iter()
                .any(|u| u["email"] == "dave@msp-b.test"),
        "A lists Dave: {v}"
    );
    if let Some(id) = dave_id {
        for (method, body) in [
            (Method::PATCH, Some(json!({"active": false}))),
            (Method::PATCH, Some(json!({"role": "admin"}))),
            (Method::DELETE, None),
        ] {
            let (st, v) = s
                .send(
                    method.clone(),
                    &format!("/api/v1/partners/msp-a/users/{id}"),
                    Some(&ann),
                    body,
                )
                .await?;
            ensure!(st == StatusCode::NOT_FOUND, "{method} Dave at A: {st} {v}");
        }
    }

    // A's SCIM cannot attach Dave either, nor see or touch him.
    let scim = s.scim_token("msp-a").await?;
    let (st, v) = s
        .scim(
            &scim,
            Method::POST,
            "msp-a/Users",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "dave@msp-b.test",
                "emails": [{"value": "dave@msp-b.test", "primary": true}],
                "active": true,
            })),
        )
        .await?;
    let text = v.to_string();
    ensure!(
        !text.contains("Dave Bee") && !text.contains("password"),
        "SCIM create answered {st} {text}"
    );
    let members = s.store.members_of("msp-a").await?;
    ensure!(
        !members.iter().any(|m| m.email == "dave@msp-b.test"),
        "A's SCIM made Dave a member of A without his consent"
    );
    if let Some(id) = dave_id {
        let (st, _) = s
            .scim(&scim, Method::GET, &format!("msp-a/Users/{id}"), None)
            .await?;
        ensure!(st == StatusCode::NOT_FOUND, "A's SCIM sees Dave: {st}");
        let (st, _) = s
            .scim(
                &scim,
                Method::PATCH,
                &format!("msp-a/Users/{id}"),
                Some(json!({
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "replace", "path": "active", "value": false}],
                })),
            )
            .await?;
        ensure!(
            st == StatusCode::NOT_FOUND,
            "A's SCIM deactivates Dave: {st}"
        );
    }
    let (st, v) = s
        .scim(
            &scim,
            Method::GET,
            "msp-a/Users?filter=userName%20eq%20%22dave%40msp-b.test%22",
            None,
        )
        .await?;
    ensure!(st == StatusCode::OK && v["totalResults"] == 0, "{st} {v}");

    // A's invitation reached Dave without a link (he has a password): only he can accept.
    let to_dave = s.mail.to("dave@msp-b.test");
    ensure!(
        to_dave.len() > mails_before,
        "A's invitation was not emailed"
    );
    ensure!(
        s.mail.token_for("dave@msp-b.test").is_none(),
        "an invitation to an account with a password carries a password link"
    );
    let (st, v) = s
        .send(
            Method::GET,
            "/api/v1/partners/msp-a/invitations",
            Some(&ann),
            None,
        )
        .await?;
    ensure!(st == StatusCode::OK, "{st} {v}");
    let pending = v["invitations"].as_array().context("invitations")?;
    ensure!(pending.len() == 2, "{v}");
    ensure!(!v.to_string().contains("Dave Bee"), "{v}");

    // A's audit log says what A did, nothing about Dave's standing.
    let (st, v) = s
        .send(
            Method::GET,
            "/api/v1/partners/msp-a/audit?limit=1000",
            Some(&ann),
            None,
        )
        .await?;
    ensure!(st == StatusCode::OK, "{st} {v}");
    let text = v.to_string();
    for leak in ["Dave Bee", "password_set", "totp_enabled", "\"admin\""] {
        ensure!(!text.contains(leak), "A's audit log holds {leak}: {text}");
    }

    // Dave, logged in as himself, sees A's invitation and accepts it.
    let (st, v) = s
        .send(
            Method::GET,
            "/api/v1/auth/invitations",
            Some(&dave_at_b),
            None,
        )
        .await?;
    ensure!(st == StatusCode::OK, "{st} {v}");
    let mine = v["invitations"].as_array().context("invitations")?;
    ensure!(mine.len() == 1 && mine[0]["partner"] == "msp-a", "{v}");
    let id = mine[0]["id"].as_i64().context("id")?;
    // Nobody else can accept it for him.
    let (st, _) = s
        .send(
            Method::POST,
            &format!("/api/v1/auth/invitations/{id}/accept"),
            Some(&ann),
            None,
        )
        .await?;
    ensure!(
        st == StatusCode::NOT_FOUND,
        "Ann accepted Dave's invitation: {st}"
    );
    let (st, v) = s
        .send(
            Method::POST,
            &format!("/api/v1/auth/invitations/{id}/accept"),
            Some(&dave_at_b),
            None,
        )
        .await?;
    ensure!(st == StatusCode::OK && v["partner"] == "msp-a", "{st} {v}");
    let at_a = s.store.member("msp-a", dave_id.unwrap_or_default()).await?;
    ensure!(
        at_a.as_ref()
            .is_some_and(|m| m.role == "read_only" && m.active),
        "{at_a:?}"
    );
    // His session for B still reaches B only; he opens A by logging in for it.
    let (st, _) = s
        .send(
            Method::GET,
            "/api/v1/partners/msp-a/users",
            Some(&dave_at_b),
            None,
        )
        .await?;
    ensure!(
        st == StatusCode::NOT_FOUND,
        "a session for B acted at A: {st}"
    );
    let dave_at_a = s
        .login("dave@msp-b.test", json!({"partner": "msp-a"}))
        .await?;
    let (st, _) = s
        .send(
            Method::GET,
            "/api/v1/partners/msp-a/users",
            Some(&dave_at_a),
            None,
        )
        .await?;
    ensure!(st == StatusCode::OK);
    Ok(())
}

/// Item 2: Dave belongs to A and B; A deactivates, then removes him (users API and SCIM).
async fn deactivation_at_a_ends_only_what_belongs_to_a(s: &Server) -> Result<()> {
    s.person("ann@msp-a.test", "msp-a", "primary").await?;
    s.person("bea@msp-b.test", "msp-b", "primary").await?;
    let dave = s.person("dave@both.test", "msp-b", "admin").await?;
    s.person("dave@both.test", "msp-a", "technician").await?;
    let ann = s.login("ann@msp-a.test", json!({})).await?;

    for how in ["deactivate", "remove", "scim-deactivate", "scim-delete"] {
        let at_a = s
            .login("dave@both.test", json!({"partner": "msp-a"}))
            .await?;
        let at_b = s
            .login("dave@both.test", json!({"partner": "msp-b"}))
            .await?;
        // A session opened for A acts at A only.
        let (st, v) = s
            .send(
                Method::GET,
                "/api/v1/partners/msp-b/users",
                Some(&at_a),
                None,
            )
            .await?;
        ensure!(
            st == StatusCode::NOT_FOUND,
            "a session for A acted at B: {st} {v}"
        );
        let (st, _) = s
            .send(
                Method::GET,
                "/api/v1/partners/msp-a/users",
                Some(&at_a),
                None,
            )
            .await?;
        ensure!(st == StatusCode::OK);
        // Dave's API token at B.
        let (st, tok) = s
            .send(
                Method::POST,
                "/api/v1/partners/msp-b/tokens",
                Some(&at_b),
                Some(json!({"name": format!("dave {how}"), "scopes": ["settings:read"]})),
            )
            .await?;
        ensure!(st == StatusCode::CREATED, "{st} {tok}");
        let b_token = tok["token"].as_str().context("token")?.to_string();

        match how {
            "deactivate" => {
                let (st, v) = s
                    .send(
                        Method::PATCH,
                        &format!("/api/v1/partners/msp-a/users/{dave}"),
                        Some(&ann),
                        Some(json!({"active": false})),
                    )
                    .await?;
                ensure!(st == StatusCode::OK, "{st} {v}");
            }
            "remove" => {
                let (st, v) = s
                    .send(
                        Method::DELETE,
                        &format!("/api/v1/partners/msp-a/users/{dave}"),
                        Some(&ann),
                        None,
                    )
                    .await?;
                ensure!(st == StatusCode::NO_CONTENT, "{st} {v}");
            }
            "scim-deactivate" | "scim-delete" => {
                let scim = s.scim_token("msp-a").await?;
                let (st, v) = if how == "scim-deactivate" {
                    s.scim(
                        &scim,
                        Method::PATCH,
                        &format!("msp-a/Users/{dave}"),
                        Some(json!({
                            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                            "Operations": [{"op": "replace", "path": "active", "value": false}],
                        })),
                    )
                    .await?
                } else {
                    s.scim(&scim, Method::DELETE, &format!("msp-a/Users/{dave}"), None)
                        .await?
                };
                ensure!(st.is_success(), "{how}: {st} {v}");
            }
            _ => unreachable!(),
        }

        // His session for A has ended; his session at B works, and so does his B token.
        ensure!(!s.alive(&at_a).await?, "{how}: the session for A survived");
        ensure!(s.alive(&at_b).await?, "{how}: the session at B ended");
        let (st, v) = s
            .send(
                Method::GET,
                "/api/v1/partners/msp-b/users",
                Some(&at_b),
                None,
            )
            .await?;
        ensure!(st == StatusCode::OK, "{how}: B refused Dave: {st} {v}");
        let r = s
            .http
            .get(format!("{}/api/v1/partners/msp-b", s.url))
            .bearer_auth(&b_token)
            .send()
            .await?;
        ensure!(
            r.status() == StatusCode::OK,
            "{how}: Dave's B token: {}",
            r.status()
        );
        // He still logs in to B.
        s.login("dave@both.test", json!({"partner": "msp-b"}))
            .await?;
        // And his standing at B is untouched.
        let members = s.store.members_of("msp-b").await?;
        let at_b_now = members
            .iter()
            .find(|m| m.user_id == dave)
            .context("Dave at B")?;
        ensure!(at_b_now.active && at_b_now.role == "admin", "{at_b_now:?}");

        // Back to A for the next round.
        match how {
            "deactivate" | "scim-deactivate" => {
                s.store.set_member_active("msp-a", dave, true, 0).await?;
            }
            _ => {
                s.store
                    .add_membership(dave, "msp-a", "technician", 0)
                    .await?;
            }
        }
    }
    Ok(())
}

/// Item 1: "A refused add (409) leaves no person row behind".
async fn a_refused_add_leaves_no_person_behind(s: &Server) -> Result<()> {
    s.person("ann@msp-a.test", "msp-a", "primary").await?;
    // A second Primary is refused: the partner has one.
    let (st, v) = s
        .as_vendor(
            Method::POST,
            "/api/v1/partners/msp-a/users",
            json!({"email": "ghost@nowhere.test", "role": "primary"}),
        )
        .await?;
    ensure!(st == StatusCode::CONFLICT, "{st} {v}");
    ensure!(
        s.store.user_by_email("ghost@nowhere.test").await?.is_none(),
        "a refused add left a person behind"
    );
    // Adding someone who is already a member: 409, nothing changes.
    let (st, v) = s
        .as_vendor(
            Method::POST,
            "/api/v1/partners/msp-a/users",
            json!({"email": "ANN@msp-a.test", "role": "read_only"}),
        )
        .await?;
    ensure!(st == StatusCode::CONFLICT, "{st} {v}");
    let members = s.store.members_of("msp-a").await?;
    ensure!(
        members.len() == 1 && members[0].role == "primary",
        "{members:?}"
    );
    // An accepted add writes no person either, until the person accepts.
    let (st, v) = s
        .as_vendor(
            Method::POST,
            "/api/v1/partners/msp-a/users",
            json!({"email": "later@nowhere.test", "role": "technician"}),
        )
        .await?;
    ensure!(st == StatusCode::ACCEPTED, "{st} {v}");
    ensure!(s.store.user_by_email("later@nowhere.test").await?.is_none());
    Ok(())
}

/// Item 6: failures from one address, or from many, cannot keep a person out.
async fn an_attacker_cannot_lock_a_person_out(s: &Server) -> Result<()> {
    s.person("ann@msp-a.test", "msp-a", "primary").await?;
    s.person("carl@msp-a.test", "msp-a", "technician").await?;
    let attacker = client_from("127.0.0.2");
    let anns_laptop = client_from("127.0.0.3");
    let office = client_from("127.0.0.4");
    let right = json!({"email": "ann@msp-a.test", "password": PASSWORD});
    let wrong = json!({"email": "ann@msp-a.test", "password": "wrong password!"});

    // Ann and Carl have logged in before from their usual places.
    let (st, v, _) = s.try_login_from(&anns_laptop, right.clone()).await?;
    ensure!(st == StatusCode::OK, "{st} {v}");
    let (st, v, _) = s
        .try_login_from(
            &office,
            json!({"email": "carl@msp-a.test", "password": PASSWORD}),
        )
        .await?;
    ensure!(st == StatusCode::OK, "{st} {v}");

    // One address hammers Ann's account: it is slowed down…
    let mut throttled = false;
    for _ in 0..12 {
        let (st, _, _) = s.try_login_from(&attacker, wrong.clone()).await?;
        throttled |= st == StatusCode::TOO_MANY_REQUESTS;
    }
    ensure!(throttled, "one address guessed 12 times unslowed");
    // …and Ann, elsewhere, logs in at once.
    let (st, v, _) = s.try_login_from(&anns_laptop, right.clone()).await?;
    ensure!(st == StatusCode::OK, "Ann is locked out: {st} {v}");

    // Many addresses guess Ann's password: Ann still gets in from her laptop, and, with her
    // TOTP code, from a place she has never used.
    let ann = s.login("ann@msp-a.test", json!({})).await?;
    let (st, enrol) = s
        .send(Method::POST, "/api/v1/auth/totp/enroll", Some(&ann), None)
        .await?;
    ensure!(st == StatusCode::OK, "{st} {enrol}");
    let secret = enrol["secret"].as_str().context("secret")?.to_string();
    let now = || (s.state.accounts.clock.now_ms() / 1000) as u64;
    let (st, v) = s
        .send(
            Method::POST,
            "/api/v1/auth/totp/confirm",
            Some(&ann),
            Some(json!({"code": code(&secret, now())})),
        )
        .await?;
    ensure!(st == StatusCode::OK, "{st} {v}");
    for i in 10..70 {
        let bot = client_from(&format!("127.0.1.{i}"));
        for _ in 0..2 {
            let (st, v, _) = s.try_login_from(&bot, wrong.clone()).await?;
            ensure!(
                st == StatusCode::UNAUTHORIZED || st == StatusCode::TOO_MANY_REQUESTS,
                "{st} {v}"
            );
        }
    }
    s.state
        .accounts
        .clock
        .advance(std::time::Duration::from_secs(30));
    let mut with_code = right.clone();
    with_code["totp_code"] = json!(code(&secret, now()));
    let (st, v, _) = s.try_login_from(&anns_laptop, with_code).await?;
    ensure!(
        st == StatusCode::OK,
        "Ann locked out of her laptop: {st} {v}"
    );
    s.state
        .accounts
        .clock
        .advance(std::time::Duration::from_secs(30));
    let hotel = client_from("127.0.0.5");
    // From there, the password alone is not checked: the code is asked for first (the same
    // answer for any email under attack, existing or not).
    let (st, v, _) = s.try_login_from(&hotel, right.clone()).await?;
    ensure!(
        st == StatusCode::UNAUTHORIZED && v["second_factor_required"] == true,
        "{st} {v}"
    );
    let mut with_code = right.clone();
    with_code["totp_code"] = json!(code(&secret, now()));
    let (st, v, _) = s.try_login_from(&hotel, with_code).await?;
    ensure!(
        st == StatusCode::OK,
        "the right password and TOTP were refused from a new place: {st} {v}"
    );

    // One address of a shared office NAT sprays many accounts: Carl, who logs in from that
    // office, still gets in with his password.
    for i in 0..40 {
        let (st, v, _) = s
            .try_login_from(
                &office,
                json!({"email": format!("user{i}@msp-a.test"), "password": "wrong password!"}),
            )
            .await?;
        ensure!(
            st == StatusCode::UNAUTHORIZED || st == StatusCode::TOO_MANY_REQUESTS,
            "{st} {v}"
        );
    }
    let (st, v, _) = s
        .try_login_from(
            &office,
            json!({"email": "carl@msp-a.test", "password": PASSWORD}),
        )
        .await?;
    ensure!(
        st == StatusCode::OK,
        "Carl is locked out by a neighbour: {st} {v}"
    );
    // Someone new at that office waits, minutes at most.
    s.person("newbie@msp-a.test", "msp-a", "read_only").await?;
    let (st, v, headers) = s
        .call(
            &office,
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "newbie@msp-a.test", "password": PASSWORD})),
        )
        .await?;
    ensure!(st == StatusCode::TOO_MANY_REQUESTS, "{st} {v}");
    let retry: u64 = headers["retry-after"].to_str()?.parse()?;
    ensure!((1..=300).contains(&retry), "{retry}");
    Ok(())
}

/// Behind a trusted reverse proxy, throttling sees the clients, not the proxy: one client's
/// failures do not throttle another's login, and a client cannot pick its address by writing
/// `X-Forwarded-For` itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_clients_are_told_apart() -> Result<()> {
    let s = Server::start_configured(false, "tenancy over HTTP", |a| {
        a.trusted_proxies = vec!["127.0.0.1/32".parse().expect("net")];
    })
    .await?
    .expect("sqlite");
    let r = async {
        s.person("ann@msp-a.test", "msp-a", "primary").await?;
        let proxy = client_from("127.0.0.1");
        let via = |client: &str, body: Value| {
            proxy
                .post(format!("{}/api/v1/auth/login", s.url))
                .header("x-forwarded-for", client)
                .json(&body)
                .send()
        };
        let wrong = json!({"email": "ann@msp-a.test", "password": "wrong password!"});
        let mut throttled = false;
        for _ in 0..8 {
            throttled |=
                via("203.0.113.66", wrong.clone()).await?.status() == StatusCode::TOO_MANY_REQUESTS;
        }
        ensure!(throttled, "the attacker behind the proxy was not slowed");
        let r = via(
            "198.51.100.7",
            json!({"email": "ann@msp-a.test", "password": PASSWORD}),
        )
        .await?;
        ensure!(
            r.status() == StatusCode::OK,
            "Ann, another client: {}",
            r.status()
        );
        // Not through the proxy: a made-up header changes nothing (127.0.0.9 is not trusted).
        let direct = client_from("127.0.0.9");
        let mut throttled = false;
        for i in 0..8 {
            let r = direct
                .post(format!("{}/api/v1/auth/login", s.url))
                .header("x-forwarded-for", format!("192.0.2.{i}"))
                .json(&wrong)
                .send()
                .await?;
            throttled |= r.status() == StatusCode::TOO_MANY_REQUESTS;
        }
        ensure!(
            throttled,
            "a client escaped throttling with X-Forwarded-For"
        );
        // The audit log names the real client.
        let entries = s.store.audit_log("msp-a", None, 500).await?;
        ensure!(
            entries.iter().any(|e| e
                .after
                .as_ref()
                .is_some_and(|a| a.to_string().contains("198.51.100.7"))),
            "the audit log does not name the client"
        );
        Ok(())
    }
    .await;
    s.stop().await;
    r
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

/// Item 14: members added in the product (before the identity provider) are listed.
async fn scim_lists_the_partners_existing_members(s: &Server) -> Result<()> {
    s.person("ann@msp-a.test", "msp-a", "primary").await?;
    let bob = s.person("bob@msp-a.test", "msp-a", "technician").await?;
    s.person("bea@msp-b.test", "msp-b", "primary").await?;
    let t = s.scim_token("msp-a").await?;
    let (st, v) = s.scim(&t, Method::GET, "msp-a/Users", None).await?;
    ensure!(st == StatusCode::OK, "{st} {v}");
    ensure!(v["totalResults"] == 2, "{v}");
    let names: Vec<&str> = v["Resources"]
        .as_array()
        .context("Resources")?
        .iter()
        .filter_map(|r| r["userName"].as_str())
        .collect();
    ensure!(
        names.contains(&"bob@msp-a.test") && !names.contains(&"bea@msp-b.test"),
        "{names:?}"
    );
    // Filters find them too, by userName and by email; B's people are not found.
    for filter in [
        "userName%20eq%20%22BOB%40msp-a.test%22",
        "emails.value%20eq%20%22bob%40msp-a.test%22",
    ] {
        let (st, v) = s
            .scim(
                &t,
                Method::GET,
                &format!("msp-a/Users?filter={filter}"),
                None,
            )
            .await?;
        ensure!(
            st == StatusCode::OK && v["totalResults"] == 1,
            "{filter}: {st} {v}"
        );
        ensure!(
            v["Resources"][0]["id"].as_str() == Some(bob.to_string().as_str()),
            "{v}"
        );
        ensure!(v["Resources"][0]["active"] == true, "{v}");
    }
    let (_, v) = s
        .scim(
            &t,
            Method::GET,
            "msp-a/Users?filter=userName%20eq%20%22bea%40msp-b.test%22",
            None,
        )
        .await?;
    ensure!(v["totalResults"] == 0, "{v}");
    // The identity provider can deprovision an existing member it did not create.
    let (st, v) = s
        .scim(
            &t,
            Method::PATCH,
            &format!("msp-a/Users/{bob}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "active", "value": false}],
            })),
        )
        .await?;
    ensure!(st == StatusCode::OK && v["active"] == false, "{st} {v}");
    let members = s.store.members_of("msp-a").await?;
    ensure!(
        members.iter().any(|m| m.user_id == bob && !m.active),
        "{members:?}"
    );
    Ok(())
}

/// Item 7 (people): long names and emails are refused, naming the field, without echoing them.
async fn names_and_emails_have_length_limits(s: &Server) -> Result<()> {
    s.person("ann@msp-a.test", "msp-a", "primary").await?;
    let ann = s.login("ann@msp-a.test", json!({})).await?;
    // Big, but under the 1 MiB body limit (a larger body is 413 before it is read).
    let huge = "x".repeat(600 * 1024);
    for (body, field) in [
        (
            json!({"email": format!("{huge}@example.test"), "role": "read_only"}),
            "email",
        ),
        (
            json!({"email": "ok@example.test", "name": huge, "role": "read_only"}),
            "name",
        ),
    ] {
        let (st, v) = s
            .send(
                Method::POST,
                "/api/v1/partners/msp-a/users",
                Some(&ann),
                Some(body),
            )
            .await?;
        ensure!(st == StatusCode::UNPROCESSABLE_ENTITY, "{field}: {st}");
        ensure!(v["errors"][0]["path"] == field, "{v}");
        ensure!(v.to_string().len() < 4096, "the error echoes the value");
    }
    let (st, v) = s
        .send(
            Method::POST,
            "/api/v1/partners/msp-a/users",
            Some(&ann),
            Some(
                json!({"email": format!("{}@example.test", "y".repeat(250)), "role": "read_only"}),
            ),
        )
        .await?;
    ensure!(
        st == StatusCode::UNPROCESSABLE_ENTITY,
        "a 265-character email: {st} {v}"
    );
    // SCIM: a 600 KB displayName is refused too.
    let t = s.scim_token("msp-a").await?;
    let (st, v) = s
        .scim(
            &t,
            Method::POST,
            "msp-a/Users",
            Some(json!({"userName": "long@msp-a.test", "displayName": "z".repeat(600 * 1024)})),
        )
        .await?;
    ensure!(st == StatusCode::BAD_REQUEST, "{st}");
    ensure!(v.to_string().len() < 4096, "the error echoes the value");
    ensure!(s.store.user_by_email("long@msp-a.test").await?.is_none());
    Ok(())
}
