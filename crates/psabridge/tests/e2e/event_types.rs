//! Event types defined at run time through the API of the real binary: a new type is accepted
//! and ticketed with its own title at once, without a restart; an off-by-default type makes no
//! ticket until the partner names it; a deactivated type refuses new events while the ones
//! accepted before still deliver; the definitions survive a restart.

use std::time::Duration;

use anyhow::{Result, ensure};
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Db, Product, Sim, delivery, ticket_id};
use crate::on_both;

const WAIT: Duration = Duration::from_secs(40);

fn ev(id: &str, ty: &str) -> Value {
    json!({"id": id, "client": "client-001", "type": ty, "severity": "high",
           "details": "a USB stick", "user": {"email": "usb@example.com", "name": "Usb User"}})
}

async fn as_vendor(
    p: &Product,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<(u16, Value)> {
    let vendor = p.info["vendor_token"].as_str().unwrap_or_default();
    let mut req = p
        .http
        .request(method, format!("{}{path}", p.api()))
        .bearer_auth(vendor);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

async fn event_types_at_run_time(db: Db) -> Result<()> {
    let sim = Sim::start().await?;
    let Some(mut p) = Product::start(&sim, db, "event_types_at_run_time").await? else {
        return Ok(());
    };
    let (s, body) = p.post_events(&ev("u-0", "endpoint.usb")).await?;
    ensure!(s == 422, "unknown before it is defined: {s} {body}");

    let (s, body) = as_vendor(
        &p,
        Method::POST,
        "/api/v1/event-types",
        Some(
            json!({"key": "endpoint.usb", "name": "USB storage", "category": "Endpoint",
                    "default_severity": "medium",
                    "title_template": "USB storage used by {user} at {client_name}",
                    "description_template": "{details}"}),
        ),
    )
    .await?;
    ensure!(s == 201, "{s} {body}");

    // Accepted and ticketed at once, with the type's own title.
    let (s, body) = p.post_events(&ev("u-1", "endpoint.usb")).await?;
    ensure!(s == 202, "{s} {body}");
    let e = &p.wait_done(&["u-1".into()], WAIT).await?[0];
    ensure!(delivery(e)["psa_action"] == "created", "{e}");
    let t = sim.ticket(&ticket_id(e)).await?;
    ensure!(
        t["title"]
            .as_str()
            .is_some_and(|s| s.starts_with("USB storage used by Usb User <usb@example.com> at ")),
        "title: {t}"
    );

    // Off by default: no ticket until the partner names it (here: an event rule turning
    // tickets on for it).
    let (s, body) = as_vendor(
        &p,
        Method::POST,
        "/api/v1/event-types",
        Some(
            json!({"key": "endpoint.printer", "name": "Printer", "category": "Endpoint",
                    "on_by_default": false}),
        ),
    )
    .await?;
    ensure!(s == 201, "{s} {body}");
    p.post_events(&ev("pr-1", "endpoint.printer")).await?;
    let e = &p.wait_done(&["pr-1".into()], WAIT).await?[0];
    ensure!(
        e["routing"]["state"] == "skipped"
            && e["routing"]["skip_reason"]
                .as_str()
                .is_some_and(|r| r.contains("off by default")),
        "{e}"
    );
    let path = format!(
        "/api/v1/partners/{}/connections/{}/rules/endpoint.printer",
        p.partner_id(),
        p.connection()
    );
    let (s, body) = p
        .call(Method::PUT, &path, Some(json!({"create_ticket": true})))
        .await?;
    ensure!(s == 200, "{s} {body}");
    p.post_events(&ev("pr-2", "endpoint.printer")).await?;
    let e = &p.wait_done(&["pr-2".into()], WAIT).await?[0];
    ensure!(delivery(e)["status"] == "delivered", "{e}");

    // Deactivated (events name it): new events refused; the definitions outlive a restart.
    let (s, body) = as_vendor(&p, Method::DELETE, "/api/v1/event-types/endpoint.usb", None).await?;
    ensure!(s == 200 && body["result"] == "deactivated", "{s} {body}");
    let (s, body) = p.post_events(&ev("u-2", "endpoint.usb")).await?;
    ensure!(s == 422, "refused once inactive: {s} {body}");
    p.stop();
    p.launch()?;
    let (s, body) = as_vendor(
        &p,
        Method::GET,
        "/api/v1/event-types/endpoint.printer",
        None,
    )
    .await?;
    ensure!(s == 200 && body["on_by_default"] == false, "{s} {body}");
    let (s, body) = as_vendor(&p, Method::GET, "/api/v1/event-types/endpoint.usb", None).await?;
    ensure!(s == 200 && body["active"] == false, "{s} {body}");
    p.cleanup().await;
    Ok(())
}
on_both!(event_types_at_run_time);
