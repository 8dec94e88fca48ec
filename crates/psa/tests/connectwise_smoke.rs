//! The ConnectWise connector against the ConnectWise simulator, over real HTTP.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, ensure};
use psabridge_core::secret::Secret;
use psabridge_core::settings::{PsaKind, TicketDefaults};
use psabridge_psa::{Connector, NewNote, NewTicket, PsaError};
use psabridge_sim::connectwise::{
    Config, DEMO_CLIENT_ID, DEMO_COMPANY, DEMO_PRIVATE_KEY, DEMO_PUBLIC_KEY, FaultKind, FaultRule,
    RateLimit, Simulator,
};
use serde_json::{Value, json};

struct H {
    sim: Simulator,
    cw: Arc<dyn Connector>,
    fixtures: Value,
}

fn settings(site: &str, extra: Value) -> serde_json::Map<String, Value> {
    let mut s = json!({
        "site_url": site,
        "company": DEMO_COMPANY,
        "public_key": DEMO_PUBLIC_KEY,
        "client_id": DEMO_CLIENT_ID,
        "page_size": 50,
    });
    if let (Some(m), Some(e)) = (s.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            m.insert(k.clone(), v.clone());
        }
    }
    s.as_object().cloned().unwrap_or_default()
}

fn connector(site: &str, extra: Value, private: &str) -> Result<Arc<dyn Connector>> {
    let mut secrets = BTreeMap::new();
    secrets.insert("private_key".to_string(), Secret::new(private));
    let http = reqwest::Client::builder().build()?;
    Ok(psabridge_psa::build(
        PsaKind::ConnectWise,
        http,
        &settings(site, extra),
        &secrets,
    )?)
}

async fn start(config: Config) -> Result<H> {
    let sim = Simulator::start(tokio::net::TcpListener::bind("127.0.0.1:0").await?, config).await?;
    let cw = connector(&sim.base_url(), json!({}), DEMO_PRIVATE_KEY)?;
    let fixtures = sim.fixtures();
    Ok(H { sim, cw, fixtures })
}

impl H {
    fn fx(&self, key: &str) -> String {
        self.fixtures[key].as_str().unwrap_or_default().to_string()
    }

    fn defaults(&self) -> TicketDefaults {
        let d = self.fixtures["defaults"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        TicketDefaults::from_pairs(
            d.iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default())),
        )
    }

    fn ticket(&self, reference: &str) -> NewTicket {
        NewTicket {
            company_id: self.fx("company_id"),
            contact_id: Some(self.fx("contact_id")),
            title: "Impossible travel sign-in for bob@acme.test".into(),
            description: "Sign-ins from two continents within 5 minutes.".into(),
            fields: self.defaults(),
            reference: reference.into(),
            contract_id: None,
            configuration_item_id: None,
        }
    }

    fn view(&self, id: &str) -> Value {
        self.sim
            .ticket(id.parse().unwrap_or_default())
            .unwrap_or(Value::Null)
    }
}

fn note(reference: &str) -> NewNote {
    NewNote {
        title: "Alert seen again".into(),
        text: format!("The alert fired again. [{reference}]"),
        reference: reference.into(),
    }
}

#[tokio::test]
async fn check_finds_the_codebase_and_names_what_is_wrong() -> Result<()> {
    let h = start(Config::default()).await?;
    let ok = h.cw.check().await?;
    assert!(ok.api_url.ends_with("/v2025_1/apis/3.0"), "{}", ok.api_url);
    assert!(ok.description.contains("demomsp"), "{}", ok.description);

    let site = h.sim.base_url();
    let err = |extra: Value, private: &str| {
        let c = connector(&site, extra, private);
        async move {
            c?.check()
                .await
                .err()
                .ok_or_else(|| anyhow::anyhow!("check passed"))
        }
    };
    let e = err(json!({"company": "nosuchmsp"}), DEMO_PRIVATE_KEY).await?;
    assert!(
        matches!(&e, PsaError::Auth(m) if m.contains("nosuchmsp") && m.contains("company")),
        "{e:?}"
    );
    let e = err(json!({}), "wrong").await?;
    assert!(
        matches!(&e, PsaError::Auth(m) if m.contains("private_key")),
        "{e:?}"
    );
    let e = err(json!({"client_id": "not-registered"}), DEMO_PRIVATE_KEY).await?;
    assert!(
        matches!(&e, PsaError::Auth(m) if m.contains("client_id")),
        "{e:?}"
    );
    // A configured codebase skips discovery.
    let c = connector(&site, json!({"codebase": "v4_6_release"}), DEMO_PRIVATE_KEY)?;
    assert!(c.check().await?.api_url.ends_with("/v4_6_release/apis/3.0"));
    // Nobody listens there.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = closed.local_addr()?.port();
    drop(closed);
    let c = connector(
        &format!("http://127.0.0.1:{port}"),
        json!({}),
        DEMO_PRIVATE_KEY,
    )?;
    assert!(matches!(c.check().await, Err(PsaError::Unreachable(_))));
    Ok(())
}

#[tokio::test]
async fn lists_are_keyed_by_our_field_names_with_parents() -> Result<()> {
    let h = start(Config::default()).await?;
    let lists = h.cw.lists().await?;
    for f in PsaKind::ConnectWise.ticket_fields() {
        assert!(lists.contains_key(f.list), "{}: {:?}", f.list, lists.keys());
    }
    let d = h.defaults();
    let find = |key: &str, id: &str| {
        lists[key]
            .iter()
            .filter(|i| i.id == id)
            .cloned()
            .collect::<Vec<_>>()
    };
    // Every default is listed, active, under the chosen parent.
    for f in PsaKind::ConnectWise.ticket_fields() {
        let Some(v) = d.get(f.name) else { continue };
        let items = find(f.list, v);
        assert!(!items.is_empty(), "{} {v}", f.name);
        assert!(items.iter().all(|i| i.active), "{} {v}", f.name);
        if let Some(p) = f.parent {
            let parent = d.get(p).map(str::to_string);
            assert!(
                items.iter().any(|i| i.parent == parent),
                "{} {v} under {parent:?}",
                f.name
            );
        }
    }
    let close = find("status", &h.fx("close_status"));
    assert_eq!(close[0].parent.as_deref(), d.get("board"));
    // A subtype associated with two types is listed once per type.
    let workstation: Vec<_> = lists["subtype"]
        .iter()
        .filter(|i| i.label == "Workstation")
        .collect();
    assert_eq!(workstation.len(), 3);
    // Inactive values are listed as inactive; the inactive board's lists are not read.
    assert!(lists["status"].iter().any(|i| !i.active));
    assert!(
        lists["board"]
            .iter()
            .any(|i| !i.active && i.label == "Legacy Support")
    );
    assert!(!lists["board"].iter().any(|i| i.label == "Projects"));
    assert!(lists["priority"].len() >= 4 && lists["source"].len() >= 4);
    // Cached: a second read costs nothing.
    let before = h.sim.total_requests();
    h.cw.lists().await?;
    assert_eq!(h.sim.total_requests(), before);
    Ok(())
}

#[tokio::test]
async fn companies_page_through_every_active_company() -> Result<()> {
    let h = start(Config::default()).await?;
    let mut cursor: Option<String> = None;
    let mut all = Vec::new();
    let mut pages = 0;
    loop {
        let page = h.cw.companies(None, cursor.as_deref()).await?;
        pages += 1;
        ensure!(page.companies.len() <= 50);
        all.extend(page.companies);
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
        ensure!(pages < 20, "paging never ends");
    }
    assert!(pages >= 3, "{pages}");
    assert_eq!(
        all.len() as u64,
        h.fixtures["active_companies"].as_u64().unwrap_or(0)
    );
    let mut ids: Vec<&str> = all.iter().map(|c| c.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), all.len());
    let found = h.cw.companies(Some(&h.fx("search")), None).await?;
    assert_eq!(found.companies.len(), 1);
    assert_eq!(found.companies[0].id, h.fx("company_id"));
    assert_eq!(found.companies[0].name, h.fx("company_name"));
    assert!(found.next.is_none());
    assert!(matches!(
        h.cw.companies(None, Some("zz")).await,
        Err(PsaError::Invalid(_))
    ));
    Ok(())
}

#[tokio::test]
async fn contacts_and_contacts_by_email() -> Result<()> {
    let h = start(Config::default()).await?;
    let company = h.fx("company_id");
    let all = h.cw.contacts(&company).await?;
    assert!(all.len() >= 4);
    assert!(all.iter().all(|c| c.active && c.company_id == company));
    let bob =
        h.cw.find_contacts_by_email(&company, &h.fx("contact_email"))
            .await?;
    assert_eq!(bob.len(), 1);
    assert_eq!(bob[0].id, h.fx("contact_id"));
    assert_eq!(bob[0].email.as_deref(), Some("bob@acme.test"));
    let two =
        h.cw.find_contacts_by_email(&company, &h.fx("duplicate_email").to_uppercase())
            .await?;
    let mut ids: Vec<String> = two.iter().map(|c| c.id.clone()).collect();
    ids.sort();
    assert_eq!(json!(ids), h.fixtures["duplicate_contact_ids"]);
    let none =
        h.cw.find_contacts_by_email(&company, &h.fx("missing_email"))
            .await?;
    assert!(none.is_empty());
    Ok(())
}

#[tokio::test]
async fn create_note_find_and_close() -> Result<()> {
    let h = start(Config::default()).await?;
    let mut t = h.ticket("CW-REF-1");
    t.title = format!("{} {}", t.title, "x".repeat(200));
    let created = h.cw.create_ticket(&t).await?;
    let v = h.view(&created.id);
    assert_eq!(v["reference"], "CW-REF-1");
    assert_eq!(v["company_id"], h.fx("company_id"));
    assert_eq!(v["contact_id"], h.fx("contact_id"));
    assert_eq!(v["description"], t.description);
    assert!(
        v["title"]
            .as_str()
            .is_some_and(|s| s.chars().count() <= 100)
    );
    for (k, want) in h.fixtures["defaults"]
        .as_object()
        .cloned()
        .unwrap_or_default()
    {
        assert_eq!(v["fields"][&k], want, "{k}");
    }
    assert_eq!(
        h.cw.find_ticket_by_reference("CW-REF-1")
            .await?
            .map(|r| r.id),
        Some(created.id.clone())
    );
    assert_eq!(h.cw.find_ticket_by_reference("CW-REF-2").await?, None);

    h.cw.add_note(&created.id, &note("N-1")).await?;
    assert!(h.cw.find_note_by_reference(&created.id, "N-1").await?);
    assert!(!h.cw.find_note_by_reference(&created.id, "N-2").await?);
    let v = h.view(&created.id);
    assert_eq!(v["notes"][0]["internal"], true);
    assert!(
        v["notes"][0]["text"]
            .as_str()
            .is_some_and(|s| s.contains("N-1"))
    );

    // Close without a status: the board's first closed status.
    h.cw.close_ticket(&created.id, None, &note("CLOSE-1"))
        .await?;
    let v = h.view(&created.id);
    assert_eq!(v["closed"], true);
    assert_eq!(v["status"], h.fx("close_status"));
    assert!(v["notes"].as_array().is_some_and(|n| {
        n.iter()
            .any(|n| n["text"].as_str().is_some_and(|s| s.contains("CLOSE-1")))
    }));

    // Close with a given status.
    let other = h.cw.create_ticket(&h.ticket("CW-REF-3")).await?;
    let lists = h.cw.lists().await?;
    let board = h.defaults().get("board").map(str::to_string);
    let last_closed = lists["status"]
        .iter()
        .filter(|s| s.parent == board && s.active && s.id != h.fx("close_status"))
        .filter(|s| s.label == "Closed")
        .map(|s| s.id.clone())
        .next()
        .unwrap_or_default();
    h.cw.close_ticket(&other.id, Some(&last_closed), &note("CLOSE-3"))
        .await?;
    assert_eq!(h.view(&other.id)["status"], last_closed);

    // States in one call, unknown ids absent; a technician's reopen shows.
    let open = h.cw.create_ticket(&h.ticket("CW-REF-4")).await?;
    let ids = vec![
        created.id.clone(),
        other.id.clone(),
        open.id.clone(),
        "999999".into(),
    ];
    let before = h.sim.total_requests();
    let states = h.cw.ticket_states(&ids).await?;
    assert_eq!(h.sim.total_requests() - before, 1);
    let closed: BTreeMap<String, bool> = states.iter().map(|s| (s.id.clone(), s.closed)).collect();
    assert_eq!(closed.len(), 3);
    assert!(closed[&created.id]);
    assert!(closed[&other.id]);
    assert!(!closed[&open.id]);

    // Unknown tickets.
    assert!(matches!(
        h.cw.add_note("999999", &note("X")).await,
        Err(PsaError::NotFound(_))
    ));
    assert!(matches!(
        h.cw.find_note_by_reference("999999", "X").await,
        Err(PsaError::NotFound(_))
    ));
    assert!(matches!(
        h.cw.close_ticket("999999", None, &note("X")).await,
        Err(PsaError::NotFound(_))
    ));
    Ok(())
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_found_not_made_twice() -> Result<()> {
    let h = start(Config::default()).await?;
    h.sim
        .add_fault(FaultRule {
            kind: FaultKind::AfterCommit,
            method: Some("POST".into()),
            path_contains: Some("/service/tickets".into()),
            count: Some(1),
            status: None,
            retry_after_secs: None,
            delay_ms: None,
            hold_ms: None,
            probability: None,
            entity: None,
            seed: None,
            body: None,
        })
        .map_err(anyhow::Error::msg)?;
    let e = h.cw.create_ticket(&h.ticket("CRASH-1")).await.err();
    assert!(e.as_ref().is_some_and(PsaError::outcome_unknown), "{e:?}");
    let found = h.cw.find_ticket_by_reference("CRASH-1").await?;
    assert!(found.is_some());
    let made: Vec<Value> = h
        .sim
        .tickets()
        .into_iter()
        .filter(|t| t["externalXRef"] == "CRASH-1")
        .collect();
    assert_eq!(made.len(), 1);
    assert_eq!(
        found.map(|f| f.id),
        made[0]["id"].as_i64().map(|i| i.to_string())
    );
    Ok(())
}

fn status_fault(status: u16, retry: Option<u64>, method: &str, path: &str) -> FaultRule {
    FaultRule {
        kind: FaultKind::Status,
        status: Some(status),
        retry_after_secs: retry,
        method: Some(method.into()),
        path_contains: Some(path.into()),
        count: Some(1),
        delay_ms: None,
        hold_ms: None,
        probability: None,
        entity: None,
        seed: None,
        body: None,
    }
}

#[tokio::test]
async fn failures_are_classified() -> Result<()> {
    let h = start(Config::default()).await?;
    h.sim
        .add_fault(status_fault(429, Some(3), "GET", "/service/tickets"))
        .map_err(anyhow::Error::msg)?;
    match h.cw.find_ticket_by_reference("R").await {
        Err(PsaError::RateLimited { retry_after, .. }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(3)))
        }
        other => panic!("{other:?}"),
    }
    h.sim
        .add_fault(status_fault(503, None, "POST", "/service/tickets"))
        .map_err(anyhow::Error::msg)?;
    let e = h.cw.create_ticket(&h.ticket("R-503")).await.err();
    assert!(
        matches!(
            e,
            Some(PsaError::Transient {
                outcome_unknown: true,
                ..
            })
        ),
        "{e:?}"
    );
    h.sim
        .add_fault(status_fault(500, None, "GET", "/company/contacts"))
        .map_err(anyhow::Error::msg)?;
    let e = h.cw.contacts("12").await.err();
    assert!(
        matches!(
            e,
            Some(PsaError::Transient {
                outcome_unknown: false,
                ..
            })
        ),
        "{e:?}"
    );
    h.sim
        .add_fault(FaultRule {
            kind: FaultKind::Drop,
            ..status_fault(500, None, "POST", "/notes")
        })
        .map_err(anyhow::Error::msg)?;
    let e = h.cw.add_note("1001", &note("D")).await.err();
    assert!(e.as_ref().is_some_and(PsaError::outcome_unknown), "{e:?}");
    // What ConnectWise rejects is invalid, with its message.
    let mut bad = h.ticket("R-BAD");
    bad.fields.set("status", "9"); // a status of another board
    let e = h.cw.create_ticket(&bad).await.err();
    assert!(
        matches!(&e, Some(PsaError::Invalid(m)) if m.contains("status")),
        "{e:?}"
    );
    let mut bad = h.ticket("R-BAD");
    bad.fields.set("priority", "high");
    assert!(
        matches!(h.cw.create_ticket(&bad).await, Err(PsaError::Invalid(m)) if m.contains("priority"))
    );
    // Every request was counted.
    assert_eq!(h.cw.meter().total(), h.sim.total_requests());
    Ok(())
}

#[tokio::test]
async fn throttling_is_rate_limited_with_the_wait() -> Result<()> {
    let h = start(Config {
        rate_limit: Some(RateLimit {
            per_second: 0.2,
            burst: 2,
        }),
        ..Config::default()
    })
    .await?;
    // companyinfo needs no token; the check's call and one more use the burst.
    h.cw.check().await?;
    h.cw.companies(None, None).await?;
    match h.cw.companies(None, None).await {
        Err(PsaError::RateLimited { retry_after, .. }) => {
            assert!(
                retry_after.is_some_and(|d| d >= Duration::from_secs(1)),
                "{retry_after:?}"
            )
        }
        other => panic!("{other:?}"),
    }
    Ok(())
}

/// A receiver of callouts: each request's headers and body, in order.
async fn receiver() -> Result<(
    String,
    tokio::sync::mpsc::UnboundedReceiver<(reqwest::header::HeaderMap, Vec<u8>)>,
)> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hooks/connectwise/7",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send((headers, body.to_vec()));
                    axum::http::StatusCode::NO_CONTENT
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hooks/connectwise/7", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, rx))
}

#[tokio::test]
async fn callbacks_are_registered_once_and_their_signed_callouts_read() -> Result<()> {
    let h = start(Config::default()).await?;
    let (url, mut rx) = receiver().await?;
    let reg =
        h.cw.register_status_webhook(&url, "unused")
            .await?
            .expect("ConnectWise takes callbacks");
    // Connecting again finds ours instead of registering a second one.
    let again = h.cw.register_status_webhook(&url, "unused").await?;
    assert_eq!(again.map(|r| r.id), Some(reg.id.clone()));
    let http = reqwest::Client::new();
    let auth = (
        format!("{DEMO_COMPANY}+{DEMO_PUBLIC_KEY}"),
        DEMO_PRIVATE_KEY,
    );
    let listed: Value = http
        .get(format!("{}/system/callbacks", h.sim.api_url()))
        .basic_auth(&auth.0, Some(auth.1))
        .header("clientId", DEMO_CLIENT_ID)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["type"], "Ticket");
    assert_eq!(listed[0]["level"], "owner");
    assert!(listed[0].get("__signingKey").is_none());

    // An API create calls back ("added", open); a technician's close calls back closed.
    let t = h.cw.create_ticket(&h.ticket("cb-1")).await?;
    let (hd, body) = rx.recv().await.expect("a callout for the create");
    let p =
        h.cw.read_push(&hd, &body, "unused")
            .await?
            .expect("a ticket");
    assert_eq!(
        (p.ticket_id.as_str(), p.closed),
        (t.id.as_str(), Some(false))
    );
    let calls_after_first = h.cw.meter().total();
    http.post(format!("{}/_sim/tickets/{}/close", h.sim.base_url(), t.id))
        .send()
        .await?
        .error_for_status()?;
    let (hd, body) = rx.recv().await.expect("a callout for the close");
    let p =
        h.cw.read_push(&hd, &body, "unused")
            .await?
            .expect("a ticket");
    assert_eq!(p.closed, Some(true));
    // The signing key was fetched once, not once per callout.
    assert_eq!(h.cw.meter().total(), calls_after_first);

    // A changed body, a missing signature, a key elsewhere: refused.
    let mut forged = body.clone();
    let at = forged.len() / 2;
    forged[at] ^= 1;
    assert!(matches!(
        h.cw.read_push(&hd, &forged, "unused").await,
        Err(psabridge_psa::PushError::Unauthenticated(_))
    ));
    assert!(matches!(
        h.cw.read_push(&reqwest::header::HeaderMap::new(), &body, "unused")
            .await,
        Err(psabridge_psa::PushError::Unauthenticated(_))
    ));
    let mut elsewhere: Value = serde_json::from_slice(&body)?;
    elsewhere["Metadata"]["key_url"] = json!("http://127.0.0.2:9/key");
    let elsewhere = serde_json::to_vec(&elsewhere)?;
    let mut hd2 = hd.clone();
    hd2.insert(
        "x-content-signature",
        psabridge_sim::connectwise::callback_signature("guess", &elsewhere).parse()?,
    );
    assert!(matches!(
        h.cw.read_push(&hd2, &elsewhere, "unused").await,
        Err(psabridge_psa::PushError::Unauthenticated(_))
    ));
    // Strangers naming other keys on our host do not make us spend the budget on them.
    let spent = h.cw.meter().total();
    for n in 900..905 {
        let mut other: Value = serde_json::from_slice(&body)?;
        other["Metadata"]["key_url"] = json!(format!(
            "{}/system/callbacks/{n}/signingKey",
            h.sim.api_url()
        ));
        let other = serde_json::to_vec(&other)?;
        let mut hd3 = hd.clone();
        hd3.insert(
            "x-content-signature",
            psabridge_sim::connectwise::callback_signature("guess", &other).parse()?,
        );
        assert!(h.cw.read_push(&hd3, &other, "unused").await.is_err());
    }
    assert!(h.cw.meter().total() <= spent + 1, "at most one key fetch");
    Ok(())
}
