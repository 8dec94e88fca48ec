//! The vendor's event types over real HTTP, on SQLite and PostgreSQL: listed to partners,
//! defined only by the vendor, every bad field named, effective at once for ingestion on this
//! node and, within the recheck interval, on another node of the same database; a type in use
//! is deactivated (its new events refused), an unused one deleted.

use std::sync::Arc;

use anyhow::Result;
use psabridge_core::catalog::Catalog;
use psabridge_engine::catalog::{LiveCatalog, RECHECK};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

mod common;
use common::Server;

fn usb() -> Value {
    json!({"key": "usb.mass_storage", "name": "USB mass storage", "category": "Endpoint",
           "default_severity": "medium", "title_template": "{client_name}: USB storage used by {user}",
           "description_template": "{details}", "on_by_default": false})
}

fn event(id: &str, ty: &str) -> Value {
    json!({"id": id, "partner": "msp-a", "client": "c1", "type": ty, "severity": "high"})
}

fn keys_of(list: &Value) -> Vec<String> {
    list["event_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].as_str().unwrap().to_string())
        .collect()
}

async fn event_types_over_http(s: &Server) -> Result<()> {
    let vendor = s.vendor_token.clone();
    let partner = psabridge_web::auth::new_token();
    s.store
        .create_token(
            &psabridge_web::auth::token_hash(&partner),
            Some("msp-a"),
            "a",
            0,
        )
        .await?;
    // Another node of the same database, following the same rows.
    let other_node = LiveCatalog::fixed(Arc::new(Catalog::default()));
    other_node.follow(&s.store, 0).await?;

    // The catalog file seeded its type; partners can read the list.
    let (st, v) = s
        .bearer(&partner, Method::GET, "/api/v1/event-types", None)
        .await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(keys_of(&v), ["a"]);
    assert_eq!(v["event_types"][0]["active"], json!(true));
    assert_eq!(v["event_types"][0]["on_by_default"], json!(true));

    // Before it exists, its events are refused, naming the field.
    let (st, v) = s
        .bearer(
            &vendor,
            Method::POST,
            "/api/v1/events",
            Some(event("e0", "usb.mass_storage")),
        )
        .await?;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["path"], json!("type"), "{v}");

    // Only the vendor defines types.
    let (st, _) = s
        .bearer(&partner, Method::POST, "/api/v1/event-types", Some(usb()))
        .await?;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // Every bad field is named; nothing is stored.
    let (st, v) = s
        .bearer(
            &vendor,
            Method::POST,
            "/api/v1/event-types",
            Some(
                json!({"key": "Bad Key", "category": "C", "title_template": "{nope}",
                    "default_severity": "urgent", "colour": "red"}),
            ),
        )
        .await?;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let mut paths: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "colour",
            "default_severity",
            "key",
            "name",
            "title_template"
        ],
        "{v}"
    );

    // Created: effective at once for ingestion on this node.
    let (st, v) = s
        .bearer(&vendor, Method::POST, "/api/v1/event-types", Some(usb()))
        .await?;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["on_by_default"], json!(false));
    let (st, v) = s
        .bearer(
            &vendor,
            Method::POST,
            "/api/v1/events",
            Some(event("e1", "usb.mass_storage")),
        )
        .await?;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    // And on the other node within the recheck interval, without a restart.
    tokio::time::sleep(RECHECK + std::time::Duration::from_millis(50)).await;
    let seen = other_node.fresh().await;
    assert!(seen.accepting.get("usb.mass_storage").is_some());
    assert!(seen.off_by_default.contains("usb.mass_storage"));

    // A second create of the key is a conflict; PUT replaces it.
    let (st, _) = s
        .bearer(&vendor, Method::POST, "/api/v1/event-types", Some(usb()))
        .await?;
    assert_eq!(st, StatusCode::CONFLICT);
    let mut changed = usb();
    changed["name"] = json!("USB storage");
    changed["on_by_default"] = json!(true);
    let (st, v) = s
        .bearer(
            &vendor,
            Method::PUT,
            "/api/v1/event-types/usb.mass_storage",
            Some(changed),
        )
        .await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s
        .bearer(
            &partner,
            Method::GET,
            "/api/v1/event-types/usb.mass_storage",
            None,
        )
        .await?;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["name"], json!("USB storage"));
    // A body naming another key than the path is refused by field.
    let (st, v) = s
        .bearer(
            &vendor,
            Method::PUT,
            "/api/v1/event-types/other",
            Some(usb()),
        )
        .await?;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["path"], json!("key"), "{v}");
    // PUT of a new key creates it.
    let mut spare = usb();
    spare["key"] = json!("spare");
    let (st, _) = s
        .bearer(
            &vendor,
            Method::PUT,
            "/api/v1/event-types/spare",
            Some(spare),
        )
        .await?;
    assert_eq!(st, StatusCode::CREATED);

    // In use (an event names it): deactivated, not deleted; its new events are refused.
    let (st, v) = s
        .bearer(
            &vendor,
            Method::DELETE,
            "/api/v1/event-types/usb.mass_storage",
            None,
        )
        .await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["result"], json!("deactivated"));
    let (_, v) = s
        .bearer(
            &partner,
            Method::GET,
            "/api/v1/event-types/usb.mass_storage",
            None,
        )
        .await?;
    assert_eq!(v["active"], json!(false));
    let (st, v) = s
        .bearer(
            &vendor,
            Method::POST,
            "/api/v1/events",
            Some(event("e2", "usb.mass_storage")),
        )
        .await?;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    // Unused: deleted.
    let (st, v) = s
        .bearer(&vendor, Method::DELETE, "/api/v1/event-types/spare", None)
        .await?;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["result"], json!("deleted"));
    let (st, v) = s
        .bearer(&vendor, Method::GET, "/api/v1/event-types/spare", None)
        .await?;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    let (st, _) = s
        .bearer(&partner, Method::DELETE, "/api/v1/event-types/a", None)
        .await?;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // Reactivated by PUT with active: true.
    let mut back = usb();
    back["active"] = json!(true);
    let (st, _) = s
        .bearer(
            &vendor,
            Method::PUT,
            "/api/v1/event-types/usb.mass_storage",
            Some(back),
        )
        .await?;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = s
        .bearer(
            &vendor,
            Method::POST,
            "/api/v1/events",
            Some(event("e3", "usb.mass_storage")),
        )
        .await?;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");

    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_types_on_sqlite() -> Result<()> {
    let s = Server::start(false, "event_types_on_sqlite")
        .await?
        .unwrap();
    let r = event_types_over_http(&s).await;
    s.stop().await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_types_on_postgres() -> Result<()> {
    let Some(s) = Server::start(true, "event_types_on_postgres").await? else {
        return Ok(());
    };
    let r = event_types_over_http(&s).await;
    s.stop().await;
    r
}
