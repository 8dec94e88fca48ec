//! HaloPSA contract billing against the simulator over real HTTP: the snapshot of contracts and
//! recurring invoice lines in two paged reads, units and cost set on the line with its invoice
//! re-posted whole, a recurring invoice created for a contract that has none, a new catalogue
//! item. Every write is checked through Halo's own read API and the simulator's `/_sim/billing`.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::{Context, Result, ensure};
use chrono::Utc;
use psabridge_core::billing::{
    ClientBilling, ClientFacts, ContractState, ServiceDefaults, ServiceLine, SyncDecision, decide,
};
use psabridge_core::secret::Secret;
use psabridge_psa::billing::ServiceSpec;
use psabridge_psa::{Connector, PsaError, halopsa};
use psabridge_sim::halopsa::{Config, Simulator, ids};
use rust_decimal::Decimal;
use serde_json::{Value, json};

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

struct Halo {
    sim: Simulator,
    http: reqwest::Client,
    token: String,
}

impl Halo {
    async fn start() -> Result<Halo> {
        let sim = Simulator::start(
            tokio::net::TcpListener::bind("127.0.0.1:0").await?,
            Config::default(),
        )
        .await?;
        let http = reqwest::Client::new();
        let answer: Value = http
            .post(format!("{}/auth/token?tenant=demo", sim.base_url()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials&client_id=psabridge-demo&client_secret=halo-demo-secret&scope=all")
            .send()
            .await?
            .json()
            .await?;
        let token = answer["access_token"]
            .as_str()
            .context("a token")?
            .to_string();
        Ok(Halo { sim, http, token })
    }

    fn connector(&self, page_size: Option<u32>) -> Result<Arc<dyn Connector>> {
        let mut settings = json!({
            "resource_url": self.sim.base_url(),
            "tenant": "demo",
            "client_id": "psabridge-demo",
        });
        if let Some(n) = page_size {
            settings["page_size"] = json!(n);
        }
        let secrets =
            BTreeMap::from([("client_secret".to_string(), Secret::new("halo-demo-secret"))]);
        let map = settings.as_object().cloned().unwrap_or_default();
        Ok(halopsa::from_settings(self.http.clone(), &map, &secrets)?)
    }

    /// A read through Halo's own API, as any Halo client makes it.
    async fn api(&self, path_and_query: &str) -> Result<Value> {
        let r = self
            .http
            .get(format!("{}/api/{path_and_query}", self.sim.base_url()))
            .bearer_auth(&self.token)
            .send()
            .await?;
        ensure!(r.status().is_success(), "{path_and_query}: {}", r.status());
        Ok(r.json().await?)
    }

    /// The lines billing `item` on `contract`, as Halo's recurring invoices hold them.
    async fn halo_lines(&self, contract: i64, item: i64) -> Result<Vec<Value>> {
        let v = self
            .api(&format!(
                "RecurringInvoice?contract_id={contract}&includelines=true"
            ))
            .await?;
        Ok(v["invoices"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|i| i["lines"].as_array().cloned().unwrap_or_default())
            .filter(|l| l["_itemid"] == json!(item) && l["contract_id"] == json!(contract))
            .collect())
    }

    /// The `/_sim/billing` rows of a contract and service.
    async fn sim_rows(&self, contract: i64, service: &str) -> Result<Vec<Value>> {
        let all: Value = self
            .http
            .get(format!("{}/_sim/billing", self.sim.base_url()))
            .send()
            .await?
            .json()
            .await?;
        Ok(all
            .as_array()
            .context("an array")?
            .iter()
            .filter(|r| {
                r["contract_id"] == json!(contract.to_string()) && r["service_id"] == json!(service)
            })
            .cloned()
            .collect())
    }

    /// Both views agree that `contract` bills `units` of `service` at `cost`, on one line.
    async fn expect_line(&self, contract: i64, service: &str, units: u64, cost: f64) -> Result<()> {
        let item: i64 = service.parse()?;
        let lines = self.halo_lines(contract, item).await?;
        ensure!(lines.len() == 1, "one line on {contract}: {lines:?}");
        ensure!(
            lines[0]["qty_order"].as_f64() == Some(units as f64)
                && lines[0]["unit_cost"].as_f64() == Some(cost),
            "Halo's line on {contract}: {}",
            lines[0]
        );
        let rows = self.sim_rows(contract, service).await?;
        ensure!(
            rows.len() == 1,
            "one /_sim/billing row on {contract}: {rows:?}"
        );
        ensure!(
            rows[0]["units"] == json!(units) && rows[0]["unit_cost"].as_f64() == Some(cost),
            "/_sim/billing on {contract}: {}",
            rows[0]
        );
        Ok(())
    }
}

#[tokio::test]
async fn contract_billing_on_halopsa() -> Result<()> {
    let halo = Halo::start().await?;
    let connector = halo.connector(None)?;
    let billing = connector
        .contract_billing()
        .context("HaloPSA has contract billing")?;
    let now = Utc::now();
    let meter = || connector.meter().total();

    // The seeded item, found by name whatever its case; a missing one is not.
    let seat = billing
        .find_service("managed security seat")
        .await?
        .context("the seeded item")?;
    assert_eq!(seat.id, ids::ITEM_SECURITY_SEAT.to_string());
    assert_eq!(seat.name, "Managed Security Seat");
    assert_eq!(billing.find_service("No such service").await?, None);

    let [acme, expired, head_office, other] = [
        ids::ACME_CONTRACT,
        ids::ACME_EXPIRED_CONTRACT,
        ids::ACME_HEAD_OFFICE_CONTRACT,
        ids::OTHER_CLIENT_CONTRACT,
    ]
    .map(|c| c.to_string());
    let contracts = [
        acme.clone(),
        expired.clone(),
        head_office.clone(),
        "4999".to_string(),
    ];
    // Warm the token and the site map so the count below is the snapshot's alone.
    connector.contracts("12").await?;
    let before = meter();
    let snap = billing.billing_snapshot(&contracts, &seat.id, now).await?;
    assert_eq!(meter() - before, 2, "one contract page, one invoice page");
    let found = |active| ContractState::Found {
        active,
        billable_type: true,
    };
    assert_eq!(snap.contracts[&acme].state, found(true));
    assert_eq!(snap.contracts[&acme].company_id, "12");
    assert_eq!(snap.contracts[&expired].state, found(false));
    assert_eq!(snap.contracts[&head_office].state, found(true));
    assert_eq!(snap.contracts[&head_office].company_id, "12/3");
    assert!(!snap.contracts.contains_key("4999"));
    assert_eq!(
        snap.lines,
        [(
            acme.clone(),
            ServiceLine {
                units: 25,
                unit_cost: dec("1.2")
            }
        )]
        .into()
    );

    // Units only: one read of the contract's invoice, one post of it with all its lines.
    let before = meter();
    billing
        .update_service_line(&acme, &seat.id, Some((25, 30)), None, now)
        .await?;
    assert_eq!(meter() - before, 2);
    halo.expect_line(ids::ACME_CONTRACT, &seat.id, 30, 1.2)
        .await?;
    let invoice = halo
        .api(&format!("RecurringInvoice/{}", ids::ACME_RECURRING_INVOICE))
        .await?;
    assert!(
        invoice["lines"].as_array().is_some_and(|l| l
            .iter()
            .any(|l| l["_itemid"] == json!(ids::ITEM_BACKUP) && l["qty_order"] == json!(2.0))),
        "the backup line is kept: {invoice}"
    );

    // Cost only.
    billing
        .update_service_line(&acme, &seat.id, None, Some(dec("1.35")), now)
        .await?;
    halo.expect_line(ids::ACME_CONTRACT, &seat.id, 30, 1.35)
        .await?;

    // The same figures again: the decision is Unchanged, so the sync writes nothing.
    let snap = billing.billing_snapshot(&contracts, &seat.id, now).await?;
    let facts = ClientFacts {
        billing: Some(ClientBilling {
            contract_id: Some(acme.clone()),
            add_service: true,
            unit_cost: Some(dec("1.35")),
            unit_price: None,
        }),
        contract: Some(snap.contracts[&acme].state.clone()),
        line: snap.lines.get(&acme).cloned(),
        high_water: Some(30),
    };
    let defaults = ServiceDefaults {
        name: seat.name.clone(),
        unit_cost: dec("1.2"),
        unit_price: dec("3.5"),
    };
    assert_eq!(decide(&facts, &defaults), SyncDecision::Unchanged);

    // Added to a contract without a recurring invoice: the invoice is created with the line.
    let before = meter();
    billing
        .add_service_to_contract(&head_office, &seat.id, 12, dec("1.1"), dec("3.5"), now)
        .await?;
    assert_eq!(
        meter() - before,
        3,
        "invoices read, contract read, invoice created"
    );
    halo.expect_line(ids::ACME_HEAD_OFFICE_CONTRACT, &seat.id, 12, 1.1)
        .await?;
    let created = halo
        .api(&format!(
            "RecurringInvoice?contract_id={head_office}&includelines=true"
        ))
        .await?;
    assert_eq!(created["record_count"], 1, "{created}");
    assert_eq!(created["invoices"][0]["client_id"], ids::ACME, "{created}");
    // Adding again (as after a lost answer) sets the line instead of adding a second one.
    billing
        .add_service_to_contract(&head_office, &seat.id, 14, dec("1.1"), dec("3.5"), now)
        .await?;
    halo.expect_line(ids::ACME_HEAD_OFFICE_CONTRACT, &seat.id, 14, 1.1)
        .await?;

    // Added to a contract whose recurring invoice bills something else: a line more.
    let before = meter();
    billing
        .add_service_to_contract(&other, &seat.id, 40, dec("1"), dec("3.5"), now)
        .await?;
    assert_eq!(meter() - before, 2, "invoices read, invoice posted");
    halo.expect_line(ids::OTHER_CLIENT_CONTRACT, &seat.id, 40, 1.0)
        .await?;
    let backup = halo
        .halo_lines(ids::OTHER_CLIENT_CONTRACT, ids::ITEM_BACKUP)
        .await?;
    assert_eq!(backup.len(), 1, "the other line is kept: {backup:?}");
    let snap = billing
        .billing_snapshot(&[head_office.clone(), other.clone()], &seat.id, now)
        .await?;
    assert_eq!(snap.lines[&head_office].units, 14);
    assert_eq!(
        snap.lines[&other],
        ServiceLine {
            units: 40,
            unit_cost: dec("1")
        }
    );
    Ok(())
}

#[tokio::test]
async fn the_snapshot_stops_paging_contracts_past_the_highest_wanted_id() -> Result<()> {
    let halo = Halo::start().await?;
    let connector = halo.connector(Some(2))?;
    let billing = connector.contract_billing().context("billing")?;
    let now = Utc::now();
    connector.contracts("12").await?;
    let seat = ids::ITEM_SECURITY_SEAT.to_string();
    for (wanted, requests) in [(ids::ACME_CONTRACT, 2), (ids::ACME_WAREHOUSE_CONTRACT, 4)] {
        let before = connector.meter().total();
        let snap = billing
            .billing_snapshot(&[wanted.to_string()], &seat, now)
            .await?;
        assert_eq!(
            connector.meter().total() - before,
            requests,
            "contract {wanted}: contract pages of two, then one invoice read"
        );
        assert_eq!(snap.contracts.len(), 1, "{snap:?}");
    }
    // A snapshot of only expired or missing contracts reads no invoices.
    let before = connector.meter().total();
    let snap = billing
        .billing_snapshot(&[ids::ACME_EXPIRED_CONTRACT.to_string()], &seat, now)
        .await?;
    assert_eq!(connector.meter().total() - before, 1);
    assert!(snap.lines.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_new_item_is_created_once_and_refusals_carry_halos_message() -> Result<()> {
    let halo = Halo::start().await?;
    let connector = halo.connector(None)?;
    let billing = connector.contract_billing().context("billing")?;
    let now = Utc::now();

    let spec = ServiceSpec {
        name: "Device monitoring".into(),
        unit_cost: dec("1.00"),
        unit_price: dec("2.50"),
    };
    assert_eq!(billing.find_service(&spec.name).await?, None);
    let device = billing.create_service(&spec).await?;
    assert_eq!(
        billing.find_service("device MONITORING").await?,
        Some(device.clone())
    );
    let item = halo.api(&format!("Item/{}", device.id)).await?;
    assert_eq!(item["name"], "Device monitoring", "{item}");
    assert_eq!(item["recurringprice"], 2.5, "{item}");
    assert_eq!(item["recurringcost"], 1.0, "{item}");
    assert_eq!(item["isrecurringitem"], true, "{item}");

    // Refused writes: Halo's bare-string 400 message reaches the error.
    let blank = ServiceSpec {
        name: " ".into(),
        ..spec.clone()
    };
    match billing.create_service(&blank).await {
        Err(PsaError::Invalid(m)) => assert!(m.contains("An item needs a name."), "{m}"),
        other => panic!("a nameless item: {other:?}"),
    }
    let warehouse = ids::ACME_WAREHOUSE_CONTRACT.to_string();
    match billing
        .add_service_to_contract(&warehouse, "9999", 3, dec("1"), dec("2"), now)
        .await
    {
        Err(PsaError::Invalid(m)) => assert!(m.contains("Item 9999 does not exist."), "{m}"),
        other => panic!("an unknown item: {other:?}"),
    }
    assert!(
        halo.sim_rows(ids::ACME_WAREHOUSE_CONTRACT, "9999")
            .await?
            .is_empty()
    );
    // A line the contract does not have cannot be updated.
    match billing
        .update_service_line(&warehouse, &device.id, Some((0, 5)), None, now)
        .await
    {
        Err(PsaError::Invalid(m)) => assert!(m.contains("not on a recurring invoice"), "{m}"),
        other => panic!("an update of a missing line: {other:?}"),
    }
    Ok(())
}
