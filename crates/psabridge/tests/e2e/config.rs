//! The configuration API over HTTP: Connect's precise errors, write-only secrets, validation
//! against the PSA's lists and the PSA itself, and partner scope.

use anyhow::{Context, Result, ensure};
use psabridge_core::settings::PsaKind;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Db, Product, Sim};
use crate::on_both;

async fn configuration_api(db: Db) -> Result<()> {
    let sim = Sim::start().await?;
    let Some(p) = Product::start(&sim, db, "configuration_api").await? else {
        return Ok(());
    };
    let vendor = p.info["vendor_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let call = |method: Method, path: String, token: String, body: Option<Value>| {
        let http = p.http.clone();
        let api = p.api();
        async move {
            let mut req = http
                .request(method, format!("{api}{path}"))
                .bearer_auth(token);
            if let Some(b) = body {
                req = req.json(&b);
            }
            let r = req.send().await?;
            let status = r.status().as_u16();
            let text = r.text().await?;
            anyhow::Ok((
                status,
                serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text)),
            ))
        }
    };
    let (s, _) = call(
        Method::POST,
        "/api/v1/partners".into(),
        vendor.clone(),
        Some(json!({"id": "msp-2", "name": "Second MSP"})),
    )
    .await?;
    ensure!(s == 201);
    let (s, tok) = call(
        Method::POST,
        "/api/v1/partners/msp-2/tokens".into(),
        vendor.clone(),
        Some(json!({"name": "t"})),
    )
    .await?;
    ensure!(
        s == 201
            && tok["token"]
                .as_str()
                .is_some_and(|t| t.starts_with("psab_")),
        "{tok}"
    );
    let partner2 = tok["token"].as_str().unwrap_or_default().to_string();
    let (s, _) = call(
        Method::GET,
        "/api/v1/partners/demo-msp/clients".into(),
        partner2.clone(),
        None,
    )
    .await?;
    ensure!(s == 404, "a partner token cannot see another partner");
    let (s, _) = call(
        Method::POST,
        "/api/v1/partners".into(),
        partner2.clone(),
        Some(json!({"id": "x", "name": "x"})),
    )
    .await?;
    ensure!(s == 403, "only the vendor creates partners");

    // Connect: each wrong credential is named.
    let good = json!({"username": sim.username, "secret": sim.secret, "integration_code": sim.integration_code, "zone_discovery_url": sim.base_url});
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        json!({"kind": "autotask", "name": "AT", "credentials": c})
    };
    for (field, body) in [
        (
            "credentials.username",
            with("username", json!("nobody@nowhere.example")),
        ),
        ("credentials.secret", with("secret", json!("wrong-secret"))),
        (
            "credentials.integration_code",
            with("integration_code", json!("WRONGCODE")),
        ),
        (
            "credentials.zone_discovery_url",
            with("zone_discovery_url", json!("http://127.0.0.1:9")),
        ),
    ] {
        let (s, v) = call(
            Method::POST,
            "/api/v1/partners/msp-2/connections".into(),
            partner2.clone(),
            Some(body),
        )
        .await?;
        ensure!(
            s == 422 && v["errors"][0]["path"] == field,
            "{field}: {s} {v}"
        );
        ensure!(
            !v.to_string().contains("wrong-secret") && !v.to_string().contains(&sim.secret),
            "no secret in errors: {v}"
        );
    }
    let (_, list) = call(
        Method::GET,
        "/api/v1/partners/msp-2/connections".into(),
        partner2.clone(),
        None,
    )
    .await?;
    ensure!(
        list["connections"].as_array().is_some_and(Vec::is_empty),
        "failed connects leave nothing: {list}"
    );
    let (s, v) = call(
        Method::POST,
        "/api/v1/partners/msp-2/connections".into(),
        partner2.clone(),
        Some(json!({"kind": "autotask", "name": "AT", "credentials": {"username": "u"}})),
    )
    .await?;
    ensure!(
        s == 422
            && v.to_string().contains("credentials.secret")
            && v.to_string().contains("credentials.integration_code"),
        "{v}"
    );

    let (s, conn) = call(
        Method::POST,
        "/api/v1/partners/msp-2/connections".into(),
        partner2.clone(),
        Some(json!({"kind": "autotask", "name": "AT", "credentials": good})),
    )
    .await?;
    ensure!(s == 201, "{conn}");
    ensure!(
        !conn.to_string().contains(&sim.secret)
            && !conn.to_string().contains(&sim.integration_code),
        "secrets are write-only: {conn}"
    );
    ensure!(
        conn["secrets_set"] == json!(["integration_code", "secret"])
            && conn["lists_loaded_at"].is_string(),
        "{conn}"
    );
    let id = conn["id"].as_i64().unwrap_or_default();
    let base = format!("/api/v1/partners/msp-2/connections/{id}");

    // Ticket fields are checked against the PSA's lists.
    let (s, v) = call(
        Method::PATCH,
        base.clone(),
        partner2.clone(),
        Some(json!({"defaults": {"queue": "99"}})),
    )
    .await?;
    ensure!(
        s == 422
            && v["errors"][0]["path"] == "defaults.queue"
            && v.to_string().contains("Monitoring Alert"),
        "{v}"
    );
    let (s, v) = call(
        Method::PATCH,
        base.clone(),
        partner2.clone(),
        Some(json!({"defaults": {"issue_type": "11", "sub_issue_type": "101"}})),
    )
    .await?;
    ensure!(
        s == 422 && v["errors"][0]["path"] == "defaults.sub_issue_type",
        "{v}"
    );
    let (s, v) = call(
        Method::PATCH,
        base.clone(),
        partner2.clone(),
        Some(json!({"defaults": {"queue": "29682970"}})),
    )
    .await?;
    ensure!(s == 422 && v.to_string().contains("inactive"), "{v}");
    let (s, v) = call(Method::PATCH, base.clone(), partner2.clone(), Some(json!({"defaults": {"queue": "8", "status": "1", "priority": "2", "issue_type": "10", "sub_issue_type": "101"}, "grouping": "user_and_alert"}))).await?;
    ensure!(
        s == 200 && v["defaults"]["sub_issue_type"] == "101" && v["grouping"] == "user_and_alert",
        "{v}"
    );
    let (s, v) = call(
        Method::PATCH,
        base.clone(),
        partner2.clone(),
        Some(json!({"colour": "red"})),
    )
    .await?;
    ensure!(s == 422 && v["errors"][0]["path"] == "colour", "{v}");

    // Catch-all and mappings are checked in the PSA.
    let (s, v) = call(
        Method::PATCH,
        base.clone(),
        partner2.clone(),
        Some(json!({"catch_all": {"company": "29684199", "contact": "30684101"}})),
    )
    .await?;
    ensure!(
        s == 422 && v["errors"][0]["path"] == "catch_all.contact",
        "a contact of another company: {v}"
    );
    let (s, _) = call(
        Method::PATCH,
        base.clone(),
        partner2.clone(),
        Some(json!({"catch_all": {"company": "29684199", "contact": "30684199"}})),
    )
    .await?;
    ensure!(s == 200);
    let (s, v) = call(
        Method::PUT,
        format!("/api/v1/partners/msp-2/clients/c-9/mappings/{id}"),
        partner2.clone(),
        Some(json!({"company": "12345"})),
    )
    .await?;
    ensure!(s == 422 && v["errors"][0]["path"] == "company", "{v}");
    let (s, v) = call(Method::PUT, format!("/api/v1/partners/msp-2/clients/c-9/mappings/{id}"), partner2.clone(), Some(json!({"company": "29684102", "default_contact": "30684106", "client_name": "Blue Harbor"}))).await?;
    ensure!(
        s == 200 && v["company"] == "29684102" && v["mapped_at"].is_string(),
        "{v}"
    );
    let (_, clients) = call(
        Method::GET,
        "/api/v1/partners/msp-2/clients".into(),
        partner2.clone(),
        None,
    )
    .await?;
    ensure!(
        clients["clients"][0]["status"] == "configured"
            && clients["clients"][0]["name"] == "Blue Harbor",
        "{clients}"
    );

    // Rules name catalog event types.
    let (s, v) = call(
        Method::PUT,
        format!("{base}/rules/no.such.type"),
        partner2.clone(),
        Some(json!({"create_ticket": true})),
    )
    .await?;
    ensure!(s == 422 && v["errors"][0]["path"] == "event_type", "{v}");
    let (s, v) = call(
        Method::PUT,
        format!("{base}/rules/dark_web.breach_report"),
        partner2.clone(),
        Some(json!({"create_ticket": true, "fields": {"queue": "29682969", "priority": "1"}})),
    )
    .await?;
    ensure!(s == 200 && v["fields"]["queue"] == "29682969", "{v}");

    // Live PSA reads.
    let (s, v) = call(
        Method::GET,
        format!("{base}/companies?search=acme"),
        partner2.clone(),
        None,
    )
    .await?;
    ensure!(
        s == 200 && v["companies"][0]["name"] == "Acme Dental Group",
        "{v}"
    );
    let (s, v) = call(
        Method::GET,
        format!("{base}/companies/29684101/contacts"),
        partner2.clone(),
        None,
    )
    .await?;
    ensure!(
        s == 200 && v["contacts"].as_array().is_some_and(|c| c.len() >= 3),
        "{v}"
    );

    // Every change is in the audit log: who, what, before and after, never a secret.
    let (s, _) = call(
        Method::PATCH,
        base.clone(),
        partner2.clone(),
        Some(json!({"credentials": {"secret": sim.secret.clone()}, "grouping": "none"})),
    )
    .await?;
    ensure!(s == 200);
    let (s, log) = call(
        Method::GET,
        "/api/v1/partners/msp-2/audit".into(),
        partner2.clone(),
        None,
    )
    .await?;
    ensure!(s == 200, "{log}");
    let entries = log["entries"].as_array().cloned().unwrap_or_default();
    let last = &entries[0];
    ensure!(
        last["action"] == "connection.update"
            && last["before"]["grouping"] == "user_and_alert"
            && last["after"]["grouping"] == "none"
            && last["after"]["secrets_changed"] == json!(["secret"])
            && last["actor"]
                .as_str()
                .is_some_and(|a| a.starts_with("token:")),
        "{last}"
    );
    ensure!(
        !log.to_string().contains(&sim.secret) && !log.to_string().contains(&sim.integration_code),
        "no secret in the audit log"
    );
    for action in [
        "partner.create",
        "token.create",
        "connection.create",
        "rule.put",
    ] {
        ensure!(
            entries.iter().any(|e| e["action"] == action),
            "{action} is logged: {log}"
        );
    }
    let (s, _) = call(
        Method::GET,
        "/api/v1/partners/demo-msp/audit".into(),
        partner2.clone(),
        None,
    )
    .await?;
    ensure!(s == 404, "another partner's log is not visible");

    // Deleting a connection still in use says what uses it; forced, it goes with its mappings.
    let (s, v) = call(Method::DELETE, base.clone(), partner2.clone(), None).await?;
    ensure!(
        s == 409
            && v["references"].as_array().is_some_and(|r| r
                .iter()
                .any(|r| r["what"] == format!("clients/c-9/mappings/{id}"))),
        "{s} {v}"
    );
    let (s, _) = call(
        Method::DELETE,
        format!("{base}?force=true"),
        partner2.clone(),
        None,
    )
    .await?;
    ensure!(s == 204);
    let (_, m) = call(
        Method::GET,
        "/api/v1/partners/msp-2/mappings".into(),
        partner2.clone(),
        None,
    )
    .await?;
    ensure!(m["mappings"].as_array().is_some_and(Vec::is_empty), "{m}");

    // Revoked tokens stop working.
    let (s, _) = call(
        Method::DELETE,
        format!("/api/v1/partners/msp-2/tokens/{}", tok["id"]),
        vendor.clone(),
        None,
    )
    .await?;
    ensure!(s == 204);
    let (s, _) = call(
        Method::GET,
        "/api/v1/partners/msp-2".into(),
        partner2.clone(),
        None,
    )
    .await?;
    ensure!(s == 401, "revoked on the node that revoked it at once");
    p.cleanup().await;
    Ok(())
}
on_both!(configuration_api);

/// Default issue type, default sub-issue type, and an override of both for one event type.
type Combination<'a> = (Option<&'a str>, Option<&'a str>, Option<(&'a str, &'a str)>);

/// The five ways an MSP uses issue and sub-issue types (none; a default issue type; a default
/// issue and sub-issue type; no default with an override per alert; a default with an
/// override per alert), each checked on the ticket the PSA holds; and a sub-issue type of
/// another issue type refused with the field named.
async fn issue_types_in_all_five_combinations(kind: PsaKind, db: Db) -> Result<()> {
    let sim = Sim::start_psa(kind).await?;
    let Some(p) = Product::start(&sim, db, "issue_type_combinations").await? else {
        return Ok(());
    };
    let conn_path = format!(
        "/api/v1/partners/{}/connections/{}",
        p.partner_id(),
        p.connection()
    );
    let (_, lists) = p
        .call(Method::GET, &format!("{conn_path}/lists"), None)
        .await?;
    let subs: Vec<(String, String)> = lists["lists"]["sub_issue_type"]
        .as_array()
        .or_else(|| lists["sub_issue_type"].as_array())
        .into_iter()
        .flatten()
        .filter(|i| i["active"] != false)
        .filter_map(|i| {
            Some((
                i["parent"].as_str()?.to_string(),
                i["id"].as_str()?.to_string(),
            ))
        })
        .collect();
    // Two issue types with a sub-issue type each.
    let (i1, s1) = subs.first().cloned().context("a sub-issue type")?;
    let (i2, s2) = subs
        .iter()
        .find(|(i, _)| *i != i1)
        .cloned()
        .context("a second issue type with a sub-issue type")?;
    let (_, conn) = p.call(Method::GET, &conn_path, None).await?;
    let base = conn["defaults"].as_object().cloned().unwrap_or_default();
    let overridden = "saas.too_many_downloads";
    let plain = "saas.too_many_uploads";
    // (default issue, default sub, override of issue and sub) → expected on each ticket.
    let combos: [Combination; 5] = [
        (None, None, None),
        (Some(&i1), None, None),
        (Some(&i1), Some(&s1), None),
        (None, None, Some((&i2, &s2))),
        (Some(&i1), Some(&s1), Some((&i2, &s2))),
    ];
    for (n, (issue, sub, over)) in combos.iter().enumerate() {
        // A merge patch: `null` removes a field, what is not named is kept.
        let mut defaults = base.clone();
        defaults.insert("issue_type".into(), Value::Null);
        defaults.insert("sub_issue_type".into(), Value::Null);
        if let Some(i) = issue {
            defaults.insert("issue_type".into(), json!(i));
        }
        if let Some(s) = sub {
            defaults.insert("sub_issue_type".into(), json!(s));
        }
        let (s, v) = p
            .call(
                Method::PATCH,
                &conn_path,
                Some(json!({"defaults": defaults})),
            )
            .await?;
        ensure!(s == 200, "combination {n}: {s} {v}");
        let fields = match over {
            Some((oi, os)) => json!({"issue_type": oi, "sub_issue_type": os}),
            None => json!({}),
        };
        let (s, v) = p
            .call(
                Method::PUT,
                &format!("{conn_path}/rules/{overridden}"),
                Some(json!({"create_ticket": true, "fields": fields})),
            )
            .await?;
        ensure!(s == 200, "combination {n}: {s} {v}");
        let user = format!("combo{n}@contoso.example");
        let a = format!("ic-{n}-a");
        let b = format!("ic-{n}-b");
        p.post_events(
            &json!({"id": a, "client": "client-001", "type": overridden, "user": {"email": user}}),
        )
        .await?;
        p.post_events(&json!({"id": b, "client": "client-001", "type": plain, "user": {"email": format!("other-{user}")}}))
            .await?;
        let done = p
            .wait_done(&[a.clone(), b.clone()], std::time::Duration::from_secs(30))
            .await?;
        let want_plain = (issue.map(str::to_string), sub.map(str::to_string));
        let want_over = match over {
            Some((oi, os)) => (Some(oi.to_string()), Some(os.to_string())),
            None => want_plain.clone(),
        };
        for (e, want) in [(&done[0], want_over), (&done[1], want_plain)] {
            let t = sim.ticket(&crate::harness::ticket_id(e)).await?;
            let got = (
                t["fields"]["issue_type"].as_str().map(str::to_string),
                t["fields"]["sub_issue_type"].as_str().map(str::to_string),
            );
            ensure!(
                got == want,
                "combination {n}, {}: want {want:?}, the ticket has {got:?}",
                e["type"]
            );
        }
    }
    // A sub-issue type of another issue type is refused, naming the field.
    let mut wrong = base.clone();
    wrong.insert("issue_type".into(), json!(i1));
    wrong.insert("sub_issue_type".into(), json!(s2));
    let (s, v) = p
        .call(Method::PATCH, &conn_path, Some(json!({"defaults": wrong})))
        .await?;
    ensure!(
        s == 422 && v["errors"][0]["path"] == "defaults.sub_issue_type",
        "{s} {v}"
    );
    let (s, v) = p
        .call(
            Method::PUT,
            &format!("{conn_path}/rules/{overridden}"),
            Some(json!({"create_ticket": true, "fields": {"sub_issue_type": s2}})),
        )
        .await?;
    ensure!(
        s == 422 && v.to_string().contains("sub_issue_type"),
        "{s} {v}"
    );
    p.cleanup().await;
    Ok(())
}

mod issue_types_in_all_five_combinations {
    use psabridge_core::settings::PsaKind;

    use crate::harness::Db;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kaseya_bms_sqlite() -> anyhow::Result<()> {
        super::issue_types_in_all_five_combinations(PsaKind::KaseyaBms, Db::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kaseya_bms_postgres() -> anyhow::Result<()> {
        super::issue_types_in_all_five_combinations(PsaKind::KaseyaBms, Db::Postgres).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn autotask_sqlite() -> anyhow::Result<()> {
        super::issue_types_in_all_five_combinations(PsaKind::Autotask, Db::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn autotask_postgres() -> anyhow::Result<()> {
        super::issue_types_in_all_five_combinations(PsaKind::Autotask, Db::Postgres).await
    }
}
