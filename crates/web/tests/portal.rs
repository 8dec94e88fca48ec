//! The partner portal over real HTTP, on SQLite and PostgreSQL, as a browser without
//! JavaScript uses it: the sign-in form and its own CSRF cookie, the pages each role sees, the
//! session's CSRF token and the permission table behind every form, refusals as pages, and
//! settings saved in the portal read back through the operations the API uses.
//! (The same screens in Chromium, with axe: crates/psabridge/tests/e2e/portal.rs.)

use anyhow::{Context, Result, ensure};
use psabridge_identity::password::PasswordHashing;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, LOCATION, SET_COOKIE};

mod common;
use common::{PASSWORD, Server};

/// A browser: its own cookie jar, redirects not followed (each is checked).
struct Browser {
    http: reqwest::Client,
    url: String,
}

impl Browser {
    fn new(server: &Server) -> Result<Browser> {
        Ok(Browser {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            url: server.url.clone(),
        })
    }

    async fn get(&self, path: &str) -> Result<(StatusCode, String, reqwest::header::HeaderMap)> {
        let r = self.http.get(format!("{}{path}", self.url)).send().await?;
        let (status, headers) = (r.status(), r.headers().clone());
        Ok((status, r.text().await?, headers))
    }

    async fn post(
        &self,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<(StatusCode, String, reqwest::header::HeaderMap)> {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .form(form)
            .send()
            .await?;
        let (status, headers) = (r.status(), r.headers().clone());
        Ok((status, r.text().await?, headers))
    }

    /// Sign in through the form, as a person would; where the portal sent the browser.
    async fn sign_in(&self, email: &str, password: &str) -> Result<(StatusCode, String)> {
        let (_, page, _) = self.get("/login?next=/p/msp-a/clients").await?;
        let login_csrf = hidden(&page, "login_csrf").context("the form has its token")?;
        let next = hidden(&page, "next").unwrap_or_default();
        let (status, body, headers) = self
            .post(
                "/login",
                &[
                    ("email", email),
                    ("password", password),
                    ("login_csrf", &login_csrf),
                    ("next", &next),
                ],
            )
            .await?;
        let to = headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        Ok((status, if to.is_empty() { body } else { to }))
    }

    /// The session's CSRF token, as the pages' forms carry it.
    async fn csrf(&self) -> Result<String> {
        let (_, page, _) = self.get("/p/msp-a/clients").await?;
        hidden(&page, "csrf_token").context("a signed-in page carries the CSRF token")
    }
}

/// The value of the hidden input `name` of a page.
fn hidden(page: &str, name: &str) -> Option<String> {
    let at = page.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &page[at + name.len() + 15..];
    rest.split('"').next().map(str::to_string)
}

async fn person(s: &Server, email: &str, partner: &str, role: &str) -> Result<i64> {
    let id = s.store.create_user(email, email, 0).await?;
    let hash = PasswordHashing::FAST_INSECURE.hash(PASSWORD)?;
    s.store.set_password_hash(id, &hash).await?;
    s.store.add_membership(id, partner, role, 0).await?;
    Ok(id)
}

async fn on_both(name: &str, scenario: impl AsyncFn(&Server) -> Result<()>) -> Result<()> {
    for pg in [false, true] {
        let Some(s) = Server::start(pg, name).await? else {
            continue;
        };
        let outcome = scenario(&s).await;
        s.stop().await;
        outcome.with_context(|| format!("on {}", if pg { "PostgreSQL" } else { "SQLite" }))?;
    }
    Ok(())
}

#[tokio::test]
async fn signing_in_goes_through_the_form_and_its_own_cookie() -> Result<()> {
    on_both("portal sign-in", async |s| {
        person(s, "ann@a.example", "msp-a", "admin").await?;
        let b = Browser::new(s)?;
        // Not signed in: every page sends the browser to the form, and back afterwards.
        let (status, _, headers) = b.get("/p/msp-a/clients").await?;
        ensure!(status == StatusCode::SEE_OTHER);
        ensure!(headers[LOCATION] == "/login?next=%2Fp%2Fmsp-a%2Fclients");

        // A form posted from elsewhere (no cookie of ours) signs nobody in.
        let outsider = Browser::new(s)?;
        let (status, _, headers) = outsider
            .post(
                "/login",
                &[
                    ("email", "ann@a.example"),
                    ("password", PASSWORD),
                    ("login_csrf", "forged"),
                ],
            )
            .await?;
        ensure!(status == StatusCode::FORBIDDEN, "{status}");
        ensure!(
            !headers
                .get_all(SET_COOKIE)
                .iter()
                .any(|c| c.to_str().unwrap_or_default().starts_with("psab_session=")),
            "no session for a forged form"
        );

        // A wrong password: the form again, with the reason, and no session.
        let (status, page) = b.sign_in("ann@a.example", "wrong password").await?;
        ensure!(status == StatusCode::UNAUTHORIZED, "{status}");
        ensure!(page.contains("The email, password or code is wrong."));

        let (status, to) = b.sign_in("ann@a.example", PASSWORD).await?;
        ensure!(status == StatusCode::SEE_OTHER, "{status}: {to}");
        ensure!(
            to == "/p/msp-a/clients",
            "back where the person wanted: {to}"
        );
        let (status, page, headers) = b.get("/p/msp-a").await?;
        ensure!(status == StatusCode::OK && page.contains("Tickets and notes per day"));
        let csp = headers[CONTENT_SECURITY_POLICY].to_str()?;
        ensure!(csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"));
        ensure!(headers["referrer-policy"] == "same-origin");
        ensure!(headers["cache-control"] == "no-store");
        ensure!(page.contains("<svg"), "the chart is drawn on the server");

        // Another partner's pages do not exist for this person.
        let (status, page, _) = b.get("/p/msp-b/clients").await?;
        ensure!(status == StatusCode::NOT_FOUND, "{status}");
        ensure!(page.contains("<html"), "refusals are pages");

        // Signing out ends the session (the token is the form's).
        let csrf = b.csrf().await?;
        let (status, _, _) = b.post("/logout", &[("csrf_token", &csrf)]).await?;
        ensure!(status == StatusCode::SEE_OTHER);
        let (status, _, headers) = b.get("/p/msp-a").await?;
        ensure!(
            status == StatusCode::SEE_OTHER && headers[LOCATION].to_str()?.starts_with("/login")
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_read_only_member_sees_no_controls_and_a_forced_post_is_refused() -> Result<()> {
    on_both("portal read-only", async |s| {
        person(s, "rita@a.example", "msp-a", "read_only").await?;
        let b = Browser::new(s)?;
        let (status, _) = b.sign_in("rita@a.example", PASSWORD).await?;
        ensure!(status == StatusCode::SEE_OTHER);
        let (_, client, _) = b.get("/p/msp-a/clients/c1").await?;
        ensure!(client.contains("Mappings"));
        ensure!(
            !client.contains("Send test notification"),
            "no test for read-only"
        );
        let (_, settings, _) = b.get("/p/msp-a/notifications").await?;
        ensure!(settings.contains("Alert A"));
        ensure!(!settings.contains("Save Alert A"), "no save button");
        ensure!(settings.contains(" disabled"), "fields are read-only");
        let (_, log, _) = b.get("/p/msp-a/deliveries").await?;
        ensure!(!log.contains("Retry"), "no retry for read-only");

        // The buttons are hidden, and the forms refused anyway: the same table as the API.
        let csrf = b.csrf().await?;
        let (status, page, _) = b
            .post(
                "/p/msp-a/notifications/a",
                &[
                    ("csrf_token", &csrf),
                    ("ticket", "default"),
                    ("addresses", "x@y.example"),
                ],
            )
            .await?;
        ensure!(status == StatusCode::FORBIDDEN, "{status}");
        ensure!(page.contains("does not allow manage_settings"), "{page}");
        let (status, _, _) = b
            .post(
                "/p/msp-a/clients/c1/test",
                &[("csrf_token", &csrf), ("event_type", "a")],
            )
            .await?;
        ensure!(status == StatusCode::FORBIDDEN);
        let (status, _, _) = b
            .post("/p/msp-a/deliveries/retry", &[("csrf_token", &csrf)])
            .await?;
        ensure!(status == StatusCode::FORBIDDEN);
        let email = s
            .state
            .ops
            .email_settings(&psabridge_ops::Acting::operator("test"), "msp-a")
            .await?;
        ensure!(email.event_types.iter().all(|t| t.addresses.is_empty()));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn settings_saved_in_the_portal_go_through_the_operations() -> Result<()> {
    on_both("portal settings", async |s| {
        person(s, "ann@a.example", "msp-a", "admin").await?;
        let b = Browser::new(s)?;
        b.sign_in("ann@a.example", PASSWORD).await?;
        let csrf = b.csrf().await?;

        // Without the session's token, or with another, a form changes nothing.
        for token in ["", "not-the-token"] {
            let (status, _, _) = b
                .post(
                    "/p/msp-a/notifications/a",
                    &[
                        ("csrf_token", token),
                        ("ticket", "default"),
                        ("addresses", "ops@a.example"),
                    ],
                )
                .await?;
            ensure!(status == StatusCode::FORBIDDEN, "token {token:?}: {status}");
        }

        // A bad address: the page again, the problem next to the field, nothing saved.
        let (status, page, _) = b
            .post(
                "/p/msp-a/notifications/a",
                &[
                    ("csrf_token", &csrf),
                    ("ticket", "default"),
                    ("addresses", "ops@a.example; not an address"),
                ],
            )
            .await?;
        ensure!(status == StatusCode::UNPROCESSABLE_ENTITY, "{status}");
        ensure!(page.contains("id=\"addresses-a-error\""), "{page}");
        ensure!(page.contains("aria-invalid=\"true\""));

        // Email cannot be switched on without SMTP: said next to the switch.
        let (status, page, _) = b
            .post(
                "/p/msp-a/notifications/a",
                &[
                    ("csrf_token", &csrf),
                    ("ticket", "default"),
                    ("email", "on"),
                    ("addresses", "ops@a.example"),
                ],
            )
            .await?;
        ensure!(status == StatusCode::UNPROCESSABLE_ENTITY, "{status}");
        ensure!(page.contains("no SMTP server is configured"));

        let (status, page, headers) = b
            .post(
                "/p/msp-a/notifications/a",
                &[
                    ("csrf_token", &csrf),
                    ("ticket", "default"),
                    ("addresses", "ops@a.example;bea@a.example"),
                ],
            )
            .await?;
        ensure!(
            status == StatusCode::SEE_OTHER,
            "{status}: {:?}",
            page.lines()
                .filter(|l| l.contains("error"))
                .collect::<Vec<_>>()
        );
        ensure!(headers[LOCATION].to_str()?.contains("saved=1"));
        let email = s
            .state
            .ops
            .email_settings(&psabridge_ops::Acting::operator("test"), "msp-a")
            .await?;
        let a = email
            .event_types
            .iter()
            .find(|t| t.event_type == "a")
            .context("a")?;
        ensure!(a.addresses == "ops@a.example; bea@a.example" && !a.enabled);

        // The change is in the audit log under the person's name, and the log's filters work.
        let (_, audit, _) = b.get("/p/msp-a/audit?what=email_settings.").await?;
        ensure!(audit.contains("email_settings.put") && audit.contains("ann@a.example"));
        let (_, audit, _) = b.get("/p/msp-a/audit?what=connection.").await?;
        ensure!(!audit.contains("email_settings.put"), "filtered out");
        let (status, audit, _) = b.get("/p/msp-a/audit?from=yesterday").await?;
        ensure!(status == StatusCode::OK && audit.contains("is not a date"));

        // The delivery log names a bad filter next to its field.
        let (_, log, _) = b.get("/p/msp-a/deliveries?since=soon").await?;
        ensure!(log.contains("since: ") && log.contains("RFC 3339"), "{log}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn people_are_invited_and_changed_under_the_apis_rules() -> Result<()> {
    on_both("portal users", async |s| {
        person(s, "sam@a.example", "msp-a", "security_admin").await?;
        let tech = person(s, "tom@a.example", "msp-a", "technician").await?;
        let primary = person(s, "pia@a.example", "msp-a", "primary").await?;
        let b = Browser::new(s)?;
        b.sign_in("sam@a.example", PASSWORD).await?;
        let csrf = b.csrf().await?;
        let (status, page, _) = b.get("/p/msp-a/users").await?;
        ensure!(status == StatusCode::OK && page.contains("tom@a.example"));
        ensure!(
            !page.contains("value=\"primary\">Primary (hand over"),
            "only the Primary hands Primary over"
        );

        // A bad address is named next to its field; nothing is sent.
        let (status, page, _) = b
            .post(
                "/p/msp-a/users",
                &[
                    ("csrf_token", &csrf),
                    ("email", "not an address"),
                    ("role", "admin"),
                ],
            )
            .await?;
        ensure!(status == StatusCode::UNPROCESSABLE_ENTITY, "{status}");
        ensure!(page.contains("id=\"invite-email-error\""));
        ensure!(s.mail.to("not an address").is_empty());

        let (status, _, _) = b
            .post(
                "/p/msp-a/users",
                &[
                    ("csrf_token", &csrf),
                    ("email", "new@a.example"),
                    ("role", "admin"),
                ],
            )
            .await?;
        ensure!(status == StatusCode::SEE_OTHER, "{status}");
        ensure!(
            s.mail.token_for("new@a.example").is_some(),
            "the link was emailed"
        );
        let (_, page, _) = b.get("/p/msp-a/users").await?;
        ensure!(
            page.contains("new@a.example as Admin"),
            "the invitation waits"
        );

        // A role change and a switch-off, through the API's own rules.
        let (status, _, _) = b
            .post(
                &format!("/p/msp-a/users/{tech}"),
                &[("csrf_token", &csrf), ("role", "read_only")],
            )
            .await?;
        ensure!(status == StatusCode::SEE_OTHER);
        let (status, _, _) = b
            .post(
                &format!("/p/msp-a/users/{tech}"),
                &[("csrf_token", &csrf), ("active", "off")],
            )
            .await?;
        ensure!(status == StatusCode::SEE_OTHER);
        let tom = s.store.member("msp-a", tech).await?.context("tom")?;
        ensure!(tom.role == "read_only" && !tom.active);

        // The Primary cannot be removed: said on the page, nothing changes.
        let (status, page, _) = b
            .post(
                &format!("/p/msp-a/users/{primary}/remove"),
                &[("csrf_token", &csrf)],
            )
            .await?;
        ensure!(status == StatusCode::CONFLICT, "{status}");
        ensure!(page.contains("cannot be removed"));
        ensure!(s.store.member("msp-a", primary).await?.is_some());

        // A Technician sees the people but no way to change them.
        let t = Browser::new(s)?;
        person(s, "ted@a.example", "msp-a", "technician").await?;
        t.sign_in("ted@a.example", PASSWORD).await?;
        let (_, page, _) = t.get("/p/msp-a/users").await?;
        ensure!(page.contains("sam@a.example") && !page.contains("Send the invitation"));
        let token = t.csrf().await?;
        let (status, _, _) = t
            .post(
                "/p/msp-a/users",
                &[
                    ("csrf_token", &token),
                    ("email", "x@a.example"),
                    ("role", "admin"),
                ],
            )
            .await?;
        ensure!(status == StatusCode::FORBIDDEN);
        Ok(())
    })
    .await
}

/// The code an authenticator app would show, computed independently with totp-rs.
fn app_code(secret_base32: &str, at_ms: i64) -> String {
    let secret = totp_rs::Secret::try_from_base32(secret_base32).expect("a base32 key");
    totp_rs::Builder::new()
        .with_secret(secret.as_ref())
        .build()
        .expect("a TOTP")
        .generate((at_ms / 1000) as u64)
        .to_string()
}

#[tokio::test]
async fn an_authenticator_is_enrolled_in_the_portal_and_then_asked_for() -> Result<()> {
    on_both("portal authenticator", async |s| {
        person(s, "ann@a.example", "msp-a", "read_only").await?;
        let b = Browser::new(s)?;
        b.sign_in("ann@a.example", PASSWORD).await?;
        let csrf = b.csrf().await?;
        let (_, page, _) = b.get("/p/msp-a/account").await?;
        ensure!(page.contains("Set up an authenticator"));
        let (status, page, _) = b
            .post("/p/msp-a/account/totp", &[("csrf_token", &csrf)])
            .await?;
        ensure!(
            status == StatusCode::OK && page.contains("<svg"),
            "a QR code"
        );
        let secret = page
            .split("id=\"totp-secret\">")
            .nth(1)
            .and_then(|r| r.split('<').next())
            .context("the key as text")?
            .to_string();
        let (status, page, _) = b
            .post(
                "/p/msp-a/account/totp/confirm",
                &[("csrf_token", &csrf), ("code", "000000")],
            )
            .await?;
        ensure!(status == StatusCode::UNPROCESSABLE_ENTITY && page.contains("id=\"code-error\""));
        let now = s.state.accounts.clock.now_ms();
        let (status, page, _) = b
            .post(
                "/p/msp-a/account/totp/confirm",
                &[("csrf_token", &csrf), ("code", &app_code(&secret, now))],
            )
            .await?;
        ensure!(
            status == StatusCode::OK && page.contains("id=\"recovery-codes\""),
            "{status}"
        );
        ensure!(
            s.store
                .user_by_email("ann@a.example")
                .await?
                .is_some_and(|u| u.totp_enabled)
        );

        // Next sign-in: the password alone is not enough, and the form says what is missing.
        let again = Browser::new(s)?;
        let (status, page) = again.sign_in("ann@a.example", PASSWORD).await?;
        ensure!(
            status == StatusCode::OK && page.contains("Enter the code"),
            "{status}"
        );
        ensure!(
            page.contains("aria-invalid=\"true\""),
            "the code field is marked"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn an_api_token_is_made_once_and_revoked_in_the_portal() -> Result<()> {
    on_both("portal tokens", async |s| {
        person(s, "ann@a.example", "msp-a", "admin").await?;
        let b = Browser::new(s)?;
        b.sign_in("ann@a.example", PASSWORD).await?;
        let csrf = b.csrf().await?;
        // No scope chosen: refused by name, nothing made.
        let (status, page, _) = b
            .post(
                "/p/msp-a/tokens",
                &[
                    ("csrf_token", &csrf),
                    ("name", "monitoring"),
                    ("expires_in_days", "30"),
                ],
            )
            .await?;
        ensure!(status == StatusCode::UNPROCESSABLE_ENTITY && page.contains("at least one scope"));
        let (status, page, _) = b
            .post(
                "/p/msp-a/tokens",
                &[
                    ("csrf_token", &csrf),
                    ("name", "monitoring"),
                    ("scope", "settings:read"),
                    ("expires_in_days", "30"),
                ],
            )
            .await?;
        ensure!(status == StatusCode::OK, "{status}");
        let token = page
            .split("id=\"new-token\">")
            .nth(1)
            .and_then(|r| r.split('<').next())
            .context("the token, shown once")?
            .to_string();
        let (status, _) = s
            .bearer(&token, reqwest::Method::GET, "/api/v1/partners/msp-a", None)
            .await?;
        ensure!(status == StatusCode::OK, "the token works: {status}");
        let (_, page, _) = b.get("/p/msp-a/tokens").await?;
        ensure!(!page.contains(&token), "never shown again");
        let id = s
            .store
            .tokens(Some("msp-a"))
            .await?
            .into_iter()
            .find(|t| t.name == "monitoring")
            .context("listed")?
            .id;
        let (status, _, _) = b
            .post(
                &format!("/p/msp-a/tokens/{id}/revoke"),
                &[("csrf_token", &csrf)],
            )
            .await?;
        ensure!(status == StatusCode::SEE_OTHER);
        let (status, _) = s
            .bearer(&token, reqwest::Method::GET, "/api/v1/partners/msp-a", None)
            .await?;
        ensure!(status == StatusCode::UNAUTHORIZED, "revoked: {status}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn clients_are_searched_filtered_and_paged_by_the_database() -> Result<()> {
    on_both("portal client pages", async |s| {
        person(s, "ann@a.example", "msp-a", "read_only").await?;
        // 120 clients besides c1, named out of id order; every tenth mapped.
        let conn = s
            .store
            .create_connection(
                &psabridge_store::config::NewConnection {
                    partner_id: "msp-a".into(),
                    kind: psabridge_core::settings::PsaKind::Autotask,
                    name: "Autotask".into(),
                    grouping: psabridge_core::settings::GroupingMode::User,
                    settings: serde_json::Map::new(),
                    secrets: Default::default(),
                },
                0,
            )
            .await?;
        for i in 0..120 {
            let id = format!("x{i:03}");
            s.store
                .put_client("msp-a", &id, &format!("Practice {:03}", 119 - i), 0)
                .await?;
            if i % 10 == 0 {
                s.store
                    .put_mapping(
                        "msp-a",
                        &psabridge_store::config::MappingRow {
                            connection_id: conn,
                            client_id: id.clone(),
                            company_id: format!("{}", 500 + i),
                            default_contact_id: None,
                            create_tickets: true,
                            mapped_at: 0,
                            event_set_id: None,
                            template_id: None,
                            contract_id: None,
                            refire: Default::default(),
                        },
                        None,
                    )
                    .await?;
            }
        }
        let b = Browser::new(s)?;
        b.sign_in("ann@a.example", PASSWORD).await?;
        // 121 clients, 50 a page, by name: "Client 1" first, then Practice 000 (x119) …
        let (status, page, _) = b.get("/p/msp-a/clients").await?;
        ensure!(status == StatusCode::OK, "{status}");
        ensure!(page.contains("121 clients, page 1 of 3"), "{page}");
        let first = page.find("Client 1").context("c1 listed")?;
        let second = page.find("Practice 000").context("x119 listed")?;
        ensure!(first < second, "ordered by name");
        ensure!(
            !page.contains("Practice 049"),
            "the second page is not on the first"
        );
        let (_, page, _) = b.get("/p/msp-a/clients?page=3").await?;
        ensure!(page.contains("page 3 of 3") && page.contains("Practice 119"));
        // Past the end: the last page.
        let (_, page, _) = b.get("/p/msp-a/clients?page=99").await?;
        ensure!(page.contains("page 3 of 3"));
        // Searched by name or id, any case; the mapped company is shown.
        let (_, page, _) = b.get("/p/msp-a/clients?q=PRACTICE+10").await?;
        ensure!(page.contains("10 clients"), "Practice 100..109");
        let (_, page, _) = b.get("/p/msp-a/clients?q=x010").await?;
        ensure!(
            page.contains("1 client.") && page.contains("Autotask: 510"),
            "{page}"
        );
        // Configured or not.
        let (_, page, _) = b.get("/p/msp-a/clients?status=configured").await?;
        ensure!(page.contains("12 clients."), "{page}");
        let (_, page, _) = b.get("/p/msp-a/clients?status=not_configured").await?;
        ensure!(page.contains("109 clients"), "{page}");
        // The mapping step pages and searches the same way.
        let (status, page, _) = b
            .get(&format!("/p/msp-a/connections/{conn}/mapping?q=x01"))
            .await?;
        ensure!(status == StatusCode::OK, "{status}");
        ensure!(
            page.contains("Practice 109") && page.contains("510"),
            "{page}"
        );
        ensure!(!page.contains("Practice 000"));
        // A client's own page shows only its mappings.
        let (status, page, _) = b.get("/p/msp-a/clients/x020").await?;
        ensure!(status == StatusCode::OK && page.contains("520") && !page.contains("510"));
        let (status, _, _) = b.get("/p/msp-a/clients/nobody").await?;
        ensure!(status == StatusCode::NOT_FOUND, "{status}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn the_security_screen_uses_the_apis_rules_and_shows_the_scim_token_once() -> Result<()> {
    on_both("portal security", async |s| {
        person(s, "sam@a.example", "msp-a", "security_admin").await?;
        let reader = person(s, "rob@a.example", "msp-a", "read_only").await?;
        let b = Browser::new(s)?;
        b.sign_in("sam@a.example", PASSWORD).await?;
        let csrf = b.csrf().await?;
        let (status, page, _) = b.get("/p/msp-a/security").await?;
        ensure!(status == StatusCode::OK, "{status}");
        ensure!(page.contains("No token: the provider cannot provision."));
        // A bad issuer is named next to its field; requiring the provider is refused until
        // an administrator has logged in through it.
        let (status, page, _) = b
            .post(
                "/p/msp-a/security/idp",
                &[
                    ("csrf_token", &csrf),
                    ("issuer", "not a url"),
                    ("client_id", "bridge"),
                    ("client_secret", "s3cret"),
                    ("display_name", "Okta"),
                ],
            )
            .await?;
        ensure!(status == StatusCode::UNPROCESSABLE_ENTITY, "{status}");
        ensure!(page.contains("id=\"issuer-error\"") && page.contains("must be an https URL"));
        ensure!(page.contains("value=\"Okta\""), "what was typed is kept");
        ensure!(
            !page.contains("s3cret"),
            "the secret is never rendered back"
        );
        // Exempting a person and removing the exemption, audited.
        let (status, _, _) = b
            .post(
                "/p/msp-a/security/exemptions",
                &[("csrf_token", &csrf), ("user", &reader.to_string())],
            )
            .await?;
        ensure!(status == StatusCode::SEE_OTHER, "{status}");
        ensure!(s.store.sso_exemptions("msp-a").await? == vec![reader]);
        let (_, page, _) = b.get("/p/msp-a/security").await?;
        ensure!(
            page.contains("rob@a.example (Read-only)"),
            "listed as exempt"
        );
        let (status, _, _) = b
            .post(
                &format!("/p/msp-a/security/exemptions/{reader}/remove"),
                &[("csrf_token", &csrf)],
            )
            .await?;
        ensure!(status == StatusCode::SEE_OTHER, "{status}");
        ensure!(s.store.sso_exemptions("msp-a").await?.is_empty());
        // The SCIM token: shown on the answer that made it, then never again.
        let (status, page, _) = b
            .post("/p/msp-a/security/scim-token", &[("csrf_token", &csrf)])
            .await?;
        ensure!(status == StatusCode::OK, "{status}");
        let token = page
            .split("id=\"scim-token\">")
            .nth(1)
            .and_then(|r| r.split('<').next())
            .context("the token, shown once")?
            .to_string();
        let r = s
            .http
            .get(format!("{}/scim/v2/msp-a/Users", s.url))
            .bearer_auth(&token)
            .send()
            .await?;
        ensure!(
            r.status() == StatusCode::OK,
            "the token works: {}",
            r.status()
        );
        let (_, page, _) = b.get("/p/msp-a/security").await?;
        ensure!(!page.contains(&token) && page.contains("A token is set"));
        let (status, _, _) = b
            .post(
                "/p/msp-a/security/scim-token/revoke",
                &[("csrf_token", &csrf)],
            )
            .await?;
        ensure!(status == StatusCode::SEE_OTHER, "{status}");
        let (_, audit, _) = b.get("/p/msp-a/audit?what=scim.").await?;
        ensure!(audit.contains("scim.token.create") && audit.contains("scim.token.revoke"));
        // A Read-only member sees the settings but no form, and a forced POST is refused.
        let r = Browser::new(s)?;
        r.sign_in("rob@a.example", PASSWORD).await?;
        let (status, page, _) = r.get("/p/msp-a/security").await?;
        if status == StatusCode::OK {
            ensure!(!page.contains("Test and save") && !page.contains("Issue a token"));
        } else {
            ensure!(status == StatusCode::FORBIDDEN, "{status}");
        }
        let rcsrf = r.csrf().await?;
        let (status, _, _) = r
            .post("/p/msp-a/security/scim-token", &[("csrf_token", &rcsrf)])
            .await?;
        ensure!(status == StatusCode::FORBIDDEN, "{status}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn usage_billing_is_set_up_and_synced_through_the_apis_operations() -> Result<()> {
    on_both("portal billing", async |s| {
        person(s, "ann@a.example", "msp-a", "admin").await?;
        person(s, "rob@a.example", "msp-a", "read_only").await?;
        let conn = s
            .store
            .create_connection(
                &psabridge_store::config::NewConnection {
                    partner_id: "msp-a".into(),
                    kind: psabridge_core::settings::PsaKind::Autotask,
                    name: "Autotask".into(),
                    grouping: psabridge_core::settings::GroupingMode::User,
                    settings: serde_json::Map::new(),
                    secrets: Default::default(),
                },
                0,
            )
            .await?;
        for (client, contract) in [("acme", Some("C-44")), ("bolt", None)] {
            s.store.put_client("msp-a", client, client, 0).await?;
            s.store
                .put_mapping(
                    "msp-a",
                    &psabridge_store::config::MappingRow {
                        connection_id: conn,
                        client_id: client.into(),
                        company_id: "500".into(),
                        default_contact_id: None,
                        create_tickets: true,
                        mapped_at: 0,
                        event_set_id: None,
                        template_id: None,
                        contract_id: contract.map(str::to_string),
                        refire: Default::default(),
                    },
                    None,
                )
                .await?;
        }
        let b = Browser::new(s)?;
        b.sign_in("ann@a.example", PASSWORD).await?;
        let csrf = b.csrf().await?;
        let (status, page, _) = b.get("/p/msp-a/billing").await?;
        ensure!(status == StatusCode::OK, "{status}");
        ensure!(page.contains("No sync has run yet."));
        ensure!(page.contains("no contract service set"));

        // The calendar: a bad zone named next to its field, then saved with the nightly hour.
        let (status, page, _) = b
            .post(
                "/p/msp-a/billing/calendar",
                &[
                    ("csrf_token", &csrf),
                    ("time_zone", "Mars/Olympus"),
                    ("anchor_day", "5"),
                    ("sync_hour", "3"),
                ],
            )
            .await?;
        ensure!(status == StatusCode::UNPROCESSABLE_ENTITY, "{status}");
        ensure!(page.contains("id=\"time_zone-error\"") && page.contains("unknown time zone"));
        ensure!(
            page.contains("value=\"Mars/Olympus\""),
            "what was typed is kept"
        );
        let (status, _, _) = b
            .post(
                "/p/msp-a/billing/calendar",
                &[
                    ("csrf_token", &csrf),
                    ("time_zone", "Europe/Berlin"),
                    ("anchor_day", "5"),
                    ("sync_hour", "3"),
                ],
            )
            .await?;
        ensure!(status == StatusCode::SEE_OTHER, "{status}");
        let (_, calendar) = s
            .bearer(
                &s.vendor_token,
                reqwest::Method::GET,
                "/api/v1/partners/msp-a/billing-calendar",
                None,
            )
            .await?;
        ensure!(calendar["time_zone"] == "Europe/Berlin" && calendar["anchor_day"] == 5);
        ensure!(calendar["sync_hour"] == 3, "{calendar}");
        let next = calendar["next_sync_at"]
            .as_str()
            .context("the next nightly sync")?;
        let next = chrono::DateTime::parse_from_rfc3339(next)?;
        let berlin = psabridge_core::billing::BillingCalendar::new("Europe/Berlin", 5)?;
        let local = next.with_timezone(&berlin.time_zone());
        ensure!(
            chrono::Timelike::hour(&local) == 3,
            "03:00 in Berlin: {next}"
        );

        // The contract service: a negative cost is named; then saved.
        let path = format!("/p/msp-a/connections/{conn}/billing");
        let (status, page, _) = b
            .post(
                &path,
                &[
                    ("csrf_token", &csrf),
                    ("service_name", "Managed security seat"),
                    ("metric", "users"),
                    ("unit_cost", "-1"),
                    ("unit_price", "6"),
                ],
            )
            .await?;
        ensure!(status == StatusCode::UNPROCESSABLE_ENTITY, "{status}");
        ensure!(page.contains("id=\"unit_cost-error\"") && page.contains("must not be negative"));
        let (status, _, _) = b
            .post(
                &path,
                &[
                    ("csrf_token", &csrf),
                    ("service_name", "Managed security seat"),
                    ("metric", "users"),
                    ("unit_cost", "3.50"),
                    ("unit_price", "6"),
                    ("create_if_missing", "on"),
                ],
            )
            .await?;
        ensure!(status == StatusCode::SEE_OTHER, "{status}");
        let service = s.store.billing_service(conn).await?.context("saved")?;
        ensure!(service.defaults.name == "Managed security seat" && service.create_if_missing);
        ensure!(service.defaults.unit_cost.to_string() == "3.5");

        // A client without a contract cannot be billed: said next to the switch.
        let (status, page, _) = b
            .post(
                &format!("{path}/bolt"),
                &[("csrf_token", &csrf), ("contract", ""), ("enabled", "on")],
            )
            .await?;
        ensure!(status == StatusCode::UNPROCESSABLE_ENTITY, "{status}");
        ensure!(page.contains("id=\"enabled-error\"") && page.contains("names no contract"));
        // A client with one: billed at its own cost. The PSA cannot be reached here, so the
        // page says so and still shows the mapping's contract.
        let (status, page, _) = b.get(&format!("{path}/acme")).await?;
        ensure!(status == StatusCode::OK, "{status}");
        ensure!(page.contains("The PSA answered") && page.contains("value=\"C-44\" checked"));
        let (status, _, _) = b
            .post(
                &format!("{path}/acme"),
                &[
                    ("csrf_token", &csrf),
                    ("contract", "C-44"),
                    ("enabled", "on"),
                    ("add_service", "on"),
                    ("unit_cost", "2.5"),
                    ("unit_price", ""),
                ],
            )
            .await?;
        ensure!(status == StatusCode::SEE_OTHER, "{status}");
        let billed = s.store.mapping_billings("msp-a", conn).await?;
        let acme = billed
            .iter()
            .find(|m| m.client_id == "acme")
            .context("acme")?;
        ensure!(acme.enabled && acme.billing.add_service);
        ensure!(acme.billing.unit_cost.map(|d| d.to_string()) == Some("2.5".into()));
        ensure!(acme.billing.unit_price.is_none());
        let (_, page, _) = b.get(&path).await?;
        ensure!(page.contains("Mapped clients (2)") && page.contains("cost 2.5 / price default"));

        // A preview from the portal leaves a run whose report the page shows.
        let (status, _, headers) = b
            .post(
                "/p/msp-a/billing/sync",
                &[("csrf_token", &csrf), ("action", "preview")],
            )
            .await?;
        ensure!(status == StatusCode::SEE_OTHER, "{status}");
        let to = headers[LOCATION].to_str()?.to_string();
        ensure!(to.starts_with("/p/msp-a/billing/runs/"), "{to}");
        let (status, page, _) = b.get(&to).await?;
        ensure!(status == StatusCode::OK, "{status}");
        ensure!(page.contains("A preview: nothing was written."), "{page}");
        ensure!(page.contains("by portal"));
        let audit = s.store.audit_log("msp-a", None, 50).await?;
        for action in [
            "billing_calendar.put",
            "billing_service.put",
            "mapping_billing.put",
            "billing.sync",
        ] {
            ensure!(
                audit
                    .iter()
                    .any(|e| e.action == action && e.actor.contains("ann@a.example")),
                "{action} audited as Ann"
            );
        }

        // A Read-only member sees the settings, no control, and a forced POST is refused.
        let reader = Browser::new(s)?;
        reader.sign_in("rob@a.example", PASSWORD).await?;
        let rcsrf = reader.csrf().await?;
        let (status, page, _) = reader.get("/p/msp-a/billing").await?;
        ensure!(status == StatusCode::OK, "{status}");
        ensure!(!page.contains("Sync now") && !page.contains("Save the calendar"));
        let (status, _, _) = reader
            .post(
                "/p/msp-a/billing/sync",
                &[("csrf_token", &rcsrf), ("action", "sync")],
            )
            .await?;
        ensure!(status == StatusCode::FORBIDDEN, "{status}");
        Ok(())
    })
    .await
}
