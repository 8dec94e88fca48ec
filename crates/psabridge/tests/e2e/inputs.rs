//! Input the API refuses and files it keeps private: bodies that do not say they are JSON,
//! event ids that are not strings, and the SQLite database readable by its owner only.

use anyhow::{Result, ensure};
use serde_json::{Value, json};

use crate::harness::{Db, Product, Sim};
use crate::on_both;

async fn events_must_say_they_are_json_and_ids_are_strings(db: Db) -> Result<()> {
    let sim = Sim::start().await?;
    let Some(p) = Product::start(&sim, db, "events_must_say_they_are_json").await? else {
        return Ok(());
    };
    let body = json!({"id": "typed", "client": "client-001", "type": "saas.too_many_downloads"})
        .to_string();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut req = p
            .http
            .post(format!("{}/api/v1/events", p.api()))
            .bearer_auth(p.token())
            .body(body.clone());
        if let Some(t) = content_type {
            req = req.header("content-type", t);
        }
        let r = req.send().await?;
        let status = r.status().as_u16();
        let ctype = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        ensure!(
            status == 415 && ctype == "application/problem+json",
            "{content_type:?}: {status} {ctype}"
        );
    }
    let (s, v) = p
        .post_events(
            &json!({"id": 12345, "client": "client-001", "type": "saas.too_many_downloads"}),
        )
        .await?;
    let errors: Vec<Value> = v["results"][0]["errors"]
        .as_array()
        .or_else(|| v["errors"].as_array())
        .cloned()
        .unwrap_or_default();
    ensure!(
        s == 422 && errors.iter().any(|e| e["path"] == "id"),
        "a numeric id is refused naming the field: {s} {v}"
    );
    p.cleanup().await;
    Ok(())
}
on_both!(events_must_say_they_are_json_and_ids_are_strings);

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_database_is_readable_by_its_owner_only() -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let sim = Sim::start().await?;
    let Some(p) = Product::start(&sim, Db::Sqlite, "sqlite_is_private").await? else {
        return Ok(());
    };
    for name in ["psabridge.db", "psabridge.db-wal", "psabridge.db-shm"] {
        let path = p.dir.join(name);
        if name == "psabridge.db" || path.exists() {
            let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
            ensure!(mode == 0o600, "{name}: {mode:o}");
        }
    }
    p.cleanup().await;
    Ok(())
}

/// A local web server whose every answer carries a private word: as an HTML page, as text,
/// and as JSON without any PSA's error fields (`mode` picks which, per request).
fn private_server(
    word: &'static str,
) -> Result<(u16, std::sync::Arc<std::sync::atomic::AtomicUsize>)> {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let mode = std::sync::Arc::new(AtomicUsize::new(0));
    let m = mode.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 8192];
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(2)));
            let _ = stream.read(&mut buf);
            let (status, ctype, body) = match m.load(Ordering::Relaxed) % 4 {
                0 => (
                    "500 Internal Server Error",
                    "text/html",
                    format!("<html><body>{word} admin console</body></html>"),
                ),
                1 => (
                    "401 Unauthorized",
                    "text/plain",
                    format!("{word}: internal service"),
                ),
                2 => (
                    "400 Bad Request",
                    "application/json",
                    json!({"internal": word, "rows": [word]}).to_string(),
                ),
                _ => ("200 OK", "text/plain", format!("{word} private page")),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Ok((port, mode))
}

/// The fields of each PSA's "Connect" form, every URL pointed at `url`.
fn form_at(kind: psabridge_core::settings::PsaKind, url: &str) -> Value {
    use psabridge_core::settings::PsaKind;
    match kind {
        PsaKind::Autotask => {
            json!({"username": "api@x.example", "secret": "s", "integration_code": "IC", "zone_discovery_url": url})
        }
        PsaKind::HaloPsa => {
            json!({"resource_url": url, "auth_url": url, "client_id": "c", "client_secret": "s"})
        }
        PsaKind::KaseyaBms => {
            json!({"base_url": url, "tenant": "t", "username": "u", "password": "p"})
        }
        PsaKind::ConnectWise => {
            json!({"site_url": url, "company": "c", "public_key": "k", "private_key": "p", "client_id": "c"})
        }
    }
}

/// The outbound policy: a partner's PSA URL may not reach loopback, private, link-local or
/// this service's own addresses (only the operator's allow-list opens them, and the demo's
/// simulators), and what a foreign server answers never comes back in an error.
async fn outbound_urls_are_checked_and_foreign_bodies_never_echoed(db: Db) -> Result<()> {
    use psabridge_core::settings::PsaKind;
    use reqwest::Method;
    use std::sync::atomic::Ordering;
    const WORD: &str = "TOPSECRET-7f3a";
    let (allowed_port, mode) = private_server(WORD)?;
    let sim = Sim::start().await?;
    let allow = format!("127.0.0.1:{allowed_port}");
    let Some(p) = Product::start_with(
        &sim,
        db,
        "outbound_urls_are_checked",
        &["--outbound-allow", &allow],
    )
    .await?
    else {
        return Ok(());
    };
    let path = format!("/api/v1/partners/{}/connections", p.partner_id());
    let create = |kind: PsaKind, url: &str| json!({"kind": kind.as_str(), "name": "elsewhere", "credentials": form_at(kind, url)});

    // Refused before anything is stored or sent, naming the field and the setting.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?;
    closed.set_nonblocking(true)?;
    let not_allowed = format!("http://127.0.0.1:{}", closed.local_addr()?.port());
    let by_name = format!("http://localhost:{}", closed.local_addr()?.port());
    let own = p.api();
    for (kind, url, field, expected) in [
        (
            PsaKind::Autotask,
            "https://10.1.2.3",
            "zone_discovery_url",
            "private address 10.1.2.3 is not allowed; add it to [outbound] allow",
        ),
        (
            PsaKind::Autotask,
            "https://169.254.169.254/latest",
            "zone_discovery_url",
            "link-local address 169.254.169.254",
        ),
        (
            PsaKind::HaloPsa,
            "https://[::ffff:192.168.1.1]",
            "auth_url",
            "private address 192.168.1.1",
        ),
        (
            PsaKind::KaseyaBms,
            "100.64.1.1",
            "base_url",
            "shared (CGNAT) address 100.64.1.1",
        ),
        (
            PsaKind::ConnectWise,
            "https://0.0.0.0",
            "site_url",
            "unspecified address 0.0.0.0",
        ),
        (
            PsaKind::Autotask,
            not_allowed.as_str(),
            "zone_discovery_url",
            "loopback address 127.0.0.1",
        ),
        (
            PsaKind::Autotask,
            by_name.as_str(),
            "zone_discovery_url",
            "loopback address",
        ),
        (
            PsaKind::Autotask,
            own.as_str(),
            "zone_discovery_url",
            "is this service's own",
        ),
    ] {
        let (s, v) = p.call(Method::POST, &path, Some(create(kind, url))).await?;
        let problem = v["errors"][0]["problem"].as_str().unwrap_or_default();
        ensure!(
            s == 422
                && v["errors"][0]["path"] == format!("credentials.{field}")
                && problem.contains(expected),
            "{kind:?} {url}: {s} {v}"
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    ensure!(
        closed.accept().is_err(),
        "nothing reached a refused address"
    );
    let (_, list) = p.call(Method::GET, &path, None).await?;
    ensure!(
        list["connections"].as_array().map(Vec::len) == Some(1),
        "only the demo's connection: {list}"
    );

    // An allowed server that is not a PSA: whatever it answers, its text never comes back.
    let allowed = format!("http://127.0.0.1:{allowed_port}");
    for round in 0..4 {
        mode.store(round, Ordering::Relaxed);
        for kind in PsaKind::ALL {
            let (s, v) = p
                .call(Method::POST, &path, Some(create(kind, &allowed)))
                .await?;
            ensure!(s >= 400, "{kind:?} round {round}: {s} {v}");
            ensure!(
                !v.to_string().contains(WORD),
                "{kind:?} round {round}: the foreign body came back: {v}"
            );
        }
    }
    p.cleanup().await;
    Ok(())
}
on_both!(outbound_urls_are_checked_and_foreign_bodies_never_echoed);

/// What a request is for, method, path, content type, body; the status it must get and the
/// field its problem must name.
type Case<'a> = (
    &'a str,
    reqwest::Method,
    String,
    Option<&'a str>,
    Vec<u8>,
    u16,
    Option<&'a str>,
);

/// One raw request: method, path, content type and body; the answer's status, content type
/// and body as JSON (null when it is not JSON) and its length.
async fn raw(
    p: &Product,
    method: reqwest::Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Result<(u16, String, Value, usize)> {
    let mut req = p
        .http
        .request(method, format!("{}{path}", p.api()))
        .bearer_auth(p.token())
        .body(body);
    if let Some(t) = content_type {
        req = req.header("content-type", t);
    }
    let r = req.send().await?;
    let status = r.status().as_u16();
    let ctype = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bytes = r.bytes().await?;
    Ok((
        status,
        ctype,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        bytes.len(),
    ))
}

/// Every error under /api/ is problem+json with type, title and status, and bad input names
/// its field: axum's own rejections (path segment, query string, body too large), JSON
/// syntax, media type, unknown routes and methods; and the size limits of bodies, of an
/// event's `data` and of a client's name, with errors that never echo a big value.
async fn every_error_is_problem_json_and_bounded(db: Db) -> Result<()> {
    use reqwest::Method;
    let sim = Sim::start().await?;
    let Some(p) = Product::start(&sim, db, "every_error_is_problem_json").await? else {
        return Ok(());
    };
    let partner = p.partner_id();
    let conn = format!("/api/v1/partners/{partner}/connections");
    let json_ct = Some("application/json");
    let event = |id: &str, data: Value| json!({"id": id, "client": "client-001", "type": "saas.too_many_downloads", "data": data});
    let big_data = json!({"blob": "x".repeat(300 * 1024)});
    let cases: Vec<Case> = vec![
        ("bad path segment", Method::GET, format!("{conn}/abc"), None, vec![], 400, Some("(path)")),
        ("bad query string", Method::DELETE, format!("{conn}/1?force=null"), None, vec![], 400, Some("query.force")),
        ("JSON syntax", Method::POST, conn.clone(), json_ct, b"{\"kind\": ".to_vec(), 400, None),
        ("no content type", Method::POST, "/api/v1/events".into(), None, b"{}".to_vec(), 415, None),
        ("unsupported content type", Method::POST, "/api/v1/events".into(), Some("text/csv"), b"a,b".to_vec(), 415, None),
        ("unknown route", Method::GET, "/api/v1/nothing-here".into(), None, vec![], 404, None),
        ("bad hook path segment", Method::POST, "/hooks/autotask/abc".into(), json_ct, b"{}".to_vec(), 400, Some("(path)")),
        ("negative page cursor", Method::GET, format!("/api/v1/partners/{partner}/deliveries?before=-1"), None, vec![], 422, Some("before")),
        ("negative connection filter", Method::GET, format!("/api/v1/partners/{partner}/deliveries?connection=-3"), None, vec![], 422, Some("connection")),
        ("negative audit cursor", Method::GET, format!("/api/v1/partners/{partner}/audit?before=0"), None, vec![], 422, Some("before")),
        ("method not allowed", Method::PUT, "/api/v1/events".into(), json_ct, b"{}".to_vec(), 405, None),
        ("events body over 4 MiB", Method::POST, "/api/v1/events".into(), json_ct,
            json!({"events": [event("big", json!({"blob": "x".repeat(4200 * 1024)}))]}).to_string().into_bytes(), 413, Some("(body)")),
        ("other body over 1 MiB", Method::PUT, format!("/api/v1/partners/{partner}/clients/client-009"), json_ct,
            json!({"name": "n".repeat(1100 * 1024)}).to_string().into_bytes(), 413, Some("(body)")),
        ("event data over 256 KiB", Method::POST, "/api/v1/events".into(), json_ct,
            event("data-big", big_data.clone()).to_string().into_bytes(), 422, Some("data")),
        ("batch event data over 256 KiB", Method::POST, "/api/v1/events".into(), json_ct,
            json!({"events": [event("ok-1", json!({})), event("data-big-2", big_data.clone())]}).to_string().into_bytes(), 422, Some("events[1].data")),
        ("client name too long", Method::PUT, format!("/api/v1/partners/{partner}/clients/client-009"), json_ct,
            json!({"name": "n".repeat(300)}).to_string().into_bytes(), 422, Some("name")),
        ("big bad value", Method::POST, "/api/v1/events".into(), json_ct,
            json!({"id": "v", "client": "client-001", "type": "saas.too_many_downloads", "k".repeat(900 * 1024): 1}).to_string().into_bytes(), 422, None),
    ];
    for (what, method, path, ctype, body, want, field) in cases {
        let (status, got_ctype, v, len) = raw(&p, method, &path, ctype, body).await?;
        ensure!(
            status == want && got_ctype == "application/problem+json",
            "{what}: {status} {got_ctype} {v}"
        );
        ensure!(
            v["type"].is_string() && v["title"].is_string() && v["status"] == want,
            "{what}: the problem's shape: {v}"
        );
        if let Some(f) = field {
            ensure!(
                v["errors"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|e| e["path"] == f),
                "{what}: names {f}: {v}"
            );
        }
        ensure!(len < 8 * 1024, "{what}: a {len}-byte error");
    }
    // A SCIM route keeps SCIM's error schema.
    let (status, _, v, _) = raw(
        &p,
        Method::GET,
        &format!("/scim/v2/{partner}/Users/x"),
        None,
        vec![],
    )
    .await?;
    ensure!(
        status == 401 && v["schemas"][0] == "urn:ietf:params:scim:api:messages:2.0:Error",
        "SCIM: {status} {v}"
    );
    // So does axum's own rejection there (a query string that does not parse).
    let (status, ctype, v, _) = raw(
        &p,
        Method::GET,
        &format!("/scim/v2/{partner}/Users?startIndex=1&startIndex=2"),
        None,
        vec![],
    )
    .await?;
    ensure!(
        status == 400
            && ctype == "application/scim+json"
            && v["schemas"][0] == "urn:ietf:params:scim:api:messages:2.0:Error"
            && v["status"] == "400",
        "SCIM rejection: {status} {ctype} {v}"
    );
    p.cleanup().await;
    Ok(())
}
on_both!(every_error_is_problem_json_and_bounded);

/// Every PATCH is a JSON merge patch (RFC 7396): a field left out is kept, `null` removes
/// it, and a field that cannot be removed answers 422 naming it, changing nothing.
async fn every_patch_is_a_merge_patch(db: Db) -> Result<()> {
    use reqwest::Method;
    let sim = Sim::start().await?;
    let Some(p) = Product::start(&sim, db, "every_patch_is_a_merge_patch").await? else {
        return Ok(());
    };
    let partner_path = format!("/api/v1/partners/{}", p.partner_id());
    let conn_path = format!("{partner_path}/connections/{}", p.connection());

    // Partner: {} keeps the default connection; null removes it; an id sets it again.
    let (_, before) = p.call(Method::GET, &partner_path, None).await?;
    ensure!(before["default_connection"] == p.connection(), "{before}");
    let (s, v) = p
        .call(Method::PATCH, &partner_path, Some(json!({})))
        .await?;
    ensure!(
        s == 200 && v["default_connection"] == p.connection(),
        "{{}} keeps it: {s} {v}"
    );
    let (s, v) = p
        .call(
            Method::PATCH,
            &partner_path,
            Some(json!({"default_connection": null})),
        )
        .await?;
    ensure!(
        s == 200 && v["default_connection"].is_null(),
        "null removes it: {s} {v}"
    );
    let (s, v) = p
        .call(
            Method::PATCH,
            &partner_path,
            Some(json!({"default_connection": p.connection()})),
        )
        .await?;
    ensure!(
        s == 200 && v["default_connection"] == p.connection(),
        "{s} {v}"
    );

    // Connection: the whole body merges; what cannot be removed is named.
    let (_, before) = p.call(Method::GET, &conn_path, None).await?;
    for field in [
        "name",
        "enabled",
        "grouping",
        "defaults",
        "credentials",
        "close_on_resolve",
    ] {
        let (s, v) = p
            .call(Method::PATCH, &conn_path, Some(json!({ field: null })))
            .await?;
        ensure!(
            s == 422 && v["errors"][0]["path"] == field,
            "{field}: null is refused naming it: {s} {v}"
        );
    }
    let (s, v) = p
        .call(Method::PATCH, &conn_path, Some(json!({"enabled": false})))
        .await?;
    ensure!(
        s == 200
            && v["enabled"] == false
            && v["name"] == before["name"]
            && v["defaults"] == before["defaults"]
            && v["grouping"] == before["grouping"],
        "only enabled changed: {before} → {v}"
    );
    let (s, v) = p
        .call(Method::PATCH, &conn_path, Some(json!({"enabled": true})))
        .await?;
    ensure!(s == 200 && v["enabled"] == true, "{s} {v}");

    // Users: role and active cannot be removed; leaving them out keeps them.
    let (_, users) = p
        .call(Method::GET, &format!("{partner_path}/users"), None)
        .await?;
    let user = users["users"][0].clone();
    let user_path = format!("{partner_path}/users/{}", user["id"]);
    for field in ["role", "active"] {
        let (s, v) = p
            .call(Method::PATCH, &user_path, Some(json!({ field: null })))
            .await?;
        ensure!(
            s == 422 && v["errors"][0]["path"] == field,
            "user {field}: null is refused naming it: {s} {v}"
        );
    }
    let (s, v) = p.call(Method::PATCH, &user_path, Some(json!({}))).await?;
    ensure!(
        s == 200 && v["role"] == user["role"] && v["active"] == user["active"],
        "{{}} keeps the member as they were: {s} {v}"
    );
    p.cleanup().await;
    Ok(())
}
on_both!(every_patch_is_a_merge_patch);
