//! Kaseya BMS contract billing against the simulator over real HTTP: the snapshot in a lookup
//! by ids, a summary page, the service's related contract services (and an account lookup
//! only when a contract carries no entry of the service); units changed as a new
//! effective-dated entry and cost alone through the bulk update, one request each; every write
//! checked through BMS's own read API and through `/_sim/billing`.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::{Context, Result, ensure};
use chrono::Utc;
use psabridge_core::billing::{
    ClientBilling, ClientFacts, ContractState, ServiceDefaults, ServiceLine, SyncDecision, decide,
};
use psabridge_core::secret::Secret;
use psabridge_core::settings::PsaKind;
use psabridge_psa::billing::{ContractBilling, ServiceSpec};
use psabridge_psa::{Connector, PsaError};
use psabridge_sim::kaseya_bms::{Config, Simulator};
use rust_decimal::Decimal;
use serde_json::{Value, json};

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

struct H {
    sim: Simulator,
    bms: Arc<dyn Connector>,
    http: reqwest::Client,
    token: String,
}

impl H {
    async fn start() -> Result<H> {
        let sim = Simulator::start(
            tokio::net::TcpListener::bind("127.0.0.1:0").await?,
            Config::default(),
        )
        .await?;
        let c = sim.config().clone();
        let settings = json!({"base_url": sim.base_url(), "tenant": c.tenant,
            "username": c.username, "requests_per_hour": 1_000_000});
        let secrets = BTreeMap::from([("password".to_string(), Secret::new(c.password.clone()))]);
        let bms = psabridge_psa::build(
            PsaKind::KaseyaBms,
            reqwest::Client::new(),
            settings.as_object().context("settings")?,
            &secrets,
        )?;
        let http = reqwest::Client::new();
        let login: Value = http
            .post(format!("{}/v2/security/authenticate", sim.base_url()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("GrantType", "password")
                    .append_pair("UserName", &c.username)
                    .append_pair("Password", &c.password)
                    .append_pair("Tenant", &c.tenant)
                    .finish(),
            )
            .send()
            .await?
            .json()
            .await?;
        let token = login["result"]["accessToken"]
            .as_str()
            .context("a token")?
            .to_string();
        Ok(H {
            sim,
            bms,
            http,
            token,
        })
    }

    fn billing(&self) -> &dyn ContractBilling {
        self.bms
            .contract_billing()
            .expect("Kaseya BMS has contract billing")
    }

    /// Requests the connector sent while `f` ran.
    fn requests(&self) -> u64 {
        self.bms.meter().total()
    }

    /// BMS's own read of the service's contract entries (`result` rows).
    async fn related(&self, service: &str) -> Result<Vec<Value>> {
        let v: Value = self
            .http
            .post(format!(
                "{}/v2/admin/finance/services/{service}/relatedservices/search",
                self.sim.base_url()
            ))
            .bearer_auth(&self.token)
            .json(&json!({"PageSize": 100, "PageNumber": 1}))
            .send()
            .await?
            .json()
            .await?;
        Ok(v["result"].as_array().cloned().unwrap_or_default())
    }

    async fn vendor_get(&self, path: &str) -> Result<Value> {
        let v: Value = self
            .http
            .get(format!("{}{path}", self.sim.base_url()))
            .bearer_auth(&self.token)
            .send()
            .await?
            .json()
            .await?;
        Ok(v["result"].clone())
    }

    /// The `/_sim/billing` line of (contract, service).
    async fn sim_line(&self, contract: &str, service: &str) -> Result<Option<Value>> {
        let all: Value = self
            .http
            .get(format!("{}/_sim/billing", self.sim.base_url()))
            .send()
            .await?
            .json()
            .await?;
        Ok(all
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["contract_id"] == contract && l["service_id"] == service)
            .cloned())
    }
}

/// The entry of `contract` with the latest effective date (then the highest id).
fn latest(rows: &[Value], contract: i64) -> Option<Value> {
    rows.iter()
        .filter(|r| r["contractId"] == contract)
        .max_by_key(|r| {
            (
                r["effectiveDate"].as_str().unwrap_or_default().to_string(),
                r["id"].as_i64(),
            )
        })
        .cloned()
}

#[tokio::test]
async fn services_are_found_and_contracts_snapshotted_in_few_requests() -> Result<()> {
    let h = H::start().await?;
    let billing = h.billing();
    let seat = billing
        .find_service("managed security seat")
        .await?
        .context("the seeded service")?;
    assert_eq!(seat.id, "77");
    assert_eq!(seat.name, "Managed Security Seat");
    assert_eq!(billing.find_service("No such service").await?, None);
    // A retired service is not offered by the lookup.
    assert_eq!(billing.find_service("Legacy Antivirus Seat").await?, None);

    h.bms.check().await?;
    let contracts = ["44".to_string(), "45".to_string(), "4999".to_string()];
    let before = h.requests();
    let snap = billing
        .billing_snapshot(&contracts, &seat.id, Utc::now())
        .await?;
    assert_eq!(
        h.requests() - before,
        4,
        "contracts by ids, a summary page, related services, accounts"
    );
    let acme = &snap.contracts["44"];
    assert_eq!(acme.company_id, "12");
    assert_eq!(
        acme.state,
        ContractState::Found {
            active: true,
            billable_type: true
        }
    );
    let lapsed = &snap.contracts["45"];
    assert_eq!(lapsed.company_id, "12");
    assert_eq!(
        lapsed.state,
        ContractState::Found {
            active: false,
            billable_type: false
        }
    );
    assert!(!snap.contracts.contains_key("4999"));
    assert_eq!(
        snap.lines["44"],
        ServiceLine {
            units: 0,
            unit_cost: dec("3.5")
        }
    );
    assert_eq!(snap.lines.len(), 1, "{:?}", snap.lines);

    // Where every contract carries the service, its rows name the account: no account lookup.
    // The demo's three customers each have a recurring contract with the seat on it.
    let customers = ["44".to_string(), "46".to_string(), "47".to_string()];
    let before = h.requests();
    let snap = billing
        .billing_snapshot(&customers, &seat.id, Utc::now())
        .await?;
    assert_eq!(h.requests() - before, 3);
    for (contract, company) in customers.iter().zip(["12", "100", "101"]) {
        assert_eq!(snap.contracts[contract].company_id, company);
        assert_eq!(
            snap.lines[contract],
            ServiceLine {
                units: 0,
                unit_cost: dec("3.5")
            }
        );
    }
    // Nothing to read for ids that cannot be BMS contracts.
    let before = h.requests();
    let empty = billing
        .billing_snapshot(&["x".to_string()], &seat.id, Utc::now())
        .await?;
    assert!(empty.contracts.is_empty());
    assert_eq!(h.requests() - before, 0);
    Ok(())
}

#[tokio::test]
async fn units_and_cost_change_one_request_each_and_a_second_sync_writes_nothing() -> Result<()> {
    let h = H::start().await?;
    let billing = h.billing();
    let now = Utc::now();
    let acme = vec!["44".to_string()];
    billing.billing_snapshot(&acme, "77", now).await?;

    // Units only: a new entry effective now, one request.
    let before = h.requests();
    billing
        .update_service_line("44", "77", Some((0, 12)), None, now)
        .await?;
    assert_eq!(h.requests() - before, 1);
    let snap = billing.billing_snapshot(&acme, "77", now).await?;
    assert_eq!(
        snap.lines["44"],
        ServiceLine {
            units: 12,
            unit_cost: dec("3.5")
        }
    );
    let rows = h.related("77").await?;
    let entry = latest(&rows, 44).context("an entry on 44")?;
    ensure!(
        entry["units"] == 12 && entry["unitCost"] == 3.5 && entry["unitPrice"] == 6.0,
        "{entry}"
    );
    ensure!(
        rows.iter().filter(|r| r["contractId"] == 44).count() == 2,
        "the first entry stays as history: {rows:?}"
    );
    let line = h.sim_line("44", "77").await?.context("sim line")?;
    ensure!(line["units"] == 12 && line["unit_cost"] == 3.5, "{line}");

    // Cost only: the bulk update of the entry in force, one request.
    let before = h.requests();
    billing
        .update_service_line("44", "77", None, Some(dec("3.25")), now)
        .await?;
    assert_eq!(h.requests() - before, 1);
    let snap = billing.billing_snapshot(&acme, "77", now).await?;
    assert_eq!(
        snap.lines["44"],
        ServiceLine {
            units: 12,
            unit_cost: dec("3.25")
        }
    );
    let entry = latest(&h.related("77").await?, 44).context("an entry on 44")?;
    ensure!(entry["units"] == 12 && entry["unitCost"] == 3.25, "{entry}");
    let line = h.sim_line("44", "77").await?.context("sim line")?;
    ensure!(line["units"] == 12 && line["unit_cost"] == 3.25, "{line}");

    // Both at once: one new entry.
    let before = h.requests();
    billing
        .update_service_line("44", "77", Some((12, 9)), Some(dec("3.5")), now)
        .await?;
    assert_eq!(h.requests() - before, 1);
    let snap = billing.billing_snapshot(&acme, "77", now).await?;
    let line = snap.lines["44"].clone();
    assert_eq!(
        line,
        ServiceLine {
            units: 9,
            unit_cost: dec("3.5")
        }
    );

    // What the PSA now holds is what the sync wants: the decision is to write nothing.
    let facts = ClientFacts {
        billing: Some(ClientBilling {
            contract_id: Some("44".into()),
            add_service: true,
            unit_cost: None,
            unit_price: None,
        }),
        contract: Some(snap.contracts["44"].state.clone()),
        line: Some(line),
        high_water: Some(9),
    };
    let defaults = ServiceDefaults {
        name: "Managed Security Seat".into(),
        unit_cost: dec("3.50"),
        unit_price: dec("6.00"),
    };
    assert_eq!(decide(&facts, &defaults), SyncDecision::Unchanged);
    // And an update with nothing to change sends nothing.
    let before = h.requests();
    billing
        .update_service_line("44", "77", None, None, now)
        .await?;
    assert_eq!(h.requests() - before, 0);
    Ok(())
}

#[tokio::test]
async fn a_created_service_is_found_again_and_added_to_another_contract() -> Result<()> {
    let h = H::start().await?;
    let billing = h.billing();
    let now = Utc::now();
    let spec = ServiceSpec {
        name: "Endpoint Backup Seat".into(),
        unit_cost: dec("1.00"),
        unit_price: dec("2.50"),
    };
    assert_eq!(billing.find_service(&spec.name).await?, None);
    let backup = billing.create_service(&spec).await?;
    assert_eq!(
        billing.find_service("endpoint backup seat").await?,
        Some(backup.clone())
    );
    let read = h
        .vendor_get(&format!("/v2/admin/finance/services/{}", backup.id))
        .await?;
    ensure!(
        read["name"] == "Endpoint Backup Seat"
            && read["unitCost"] == 1.0
            && read["unitPrice"] == 2.5
            && read["isActive"] == true,
        "{read}"
    );
    // Creating it twice is refused with BMS's own words.
    match billing.create_service(&spec).await {
        Err(PsaError::Invalid(m)) => ensure!(m.contains("already exists"), "{m}"),
        other => anyhow::bail!("a second create: {other:?}"),
    }

    // The third customer's contract: the service added with its units, one request.
    let third = vec!["47".to_string()];
    let snap = billing.billing_snapshot(&third, &backup.id, now).await?;
    assert_eq!(snap.contracts["47"].company_id, "101");
    assert!(snap.lines.is_empty());
    let before = h.requests();
    billing
        .add_service_to_contract("47", &backup.id, 40, dec("1.00"), dec("2.50"), now)
        .await?;
    assert_eq!(h.requests() - before, 1);
    let snap = billing.billing_snapshot(&third, &backup.id, now).await?;
    assert_eq!(
        snap.lines["47"],
        ServiceLine {
            units: 40,
            unit_cost: dec("1")
        }
    );
    let entry = latest(&h.related(&backup.id).await?, 47).context("an entry on 47")?;
    ensure!(
        entry["units"] == 40 && entry["unitPrice"] == 2.5 && entry["accountId"] == 101,
        "{entry}"
    );
    let line = h.sim_line("47", &backup.id).await?.context("sim line")?;
    ensure!(
        line["units"] == 40
            && line["unit_cost"] == 1.0
            && line["unit_price"] == 2.5
            && line["service_name"] == "Endpoint Backup Seat",
        "{line}"
    );
    // The new service is not on Acme's contract.
    let snap = billing
        .billing_snapshot(&["44".to_string()], &backup.id, now)
        .await?;
    assert!(snap.lines.is_empty(), "{:?}", snap.lines);
    Ok(())
}

#[tokio::test]
async fn refused_writes_carry_the_psas_words() -> Result<()> {
    let h = H::start().await?;
    let billing = h.billing();
    let now = Utc::now();
    match billing
        .add_service_to_contract("45", "77", 3, dec("1"), dec("2"), now)
        .await
    {
        Err(PsaError::Invalid(m)) => ensure!(m.contains("Recurring Services"), "{m}"),
        other => anyhow::bail!("adding to a Block Hours contract: {other:?}"),
    }
    match billing
        .add_service_to_contract("4999", "77", 3, dec("1"), dec("2"), now)
        .await
    {
        Err(PsaError::NotFound(m)) => ensure!(m.contains("4999"), "{m}"),
        other => anyhow::bail!("adding to a missing contract: {other:?}"),
    }
    match billing
        .add_service_to_contract("46", "79", 3, dec("1"), dec("2"), now)
        .await
    {
        Err(PsaError::Invalid(m)) => ensure!(m.contains("inactive"), "{m}"),
        other => anyhow::bail!("adding a retired service: {other:?}"),
    }
    // Updating a service that is not on the contract names it, and writes nothing.
    match billing
        .update_service_line("46", "78", Some((0, 5)), None, now)
        .await
    {
        Err(PsaError::NotFound(m)) => ensure!(m.contains("46"), "{m}"),
        other => anyhow::bail!("updating a missing line: {other:?}"),
    }
    ensure!(h.sim_line("46", "78").await?.is_none());
    ensure!(h.sim_line("45", "77").await?.is_none());
    Ok(())
}
