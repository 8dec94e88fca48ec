//! ConnectWise contract billing against the simulator over real HTTP: catalogue items found by
//! identifier and created once, the snapshot of agreements and their additions (one read for
//! the agreements, one per active recurring agreement: the API has no read of additions across
//! agreements), units and cost changed by one JSON Patch each, a product added in one POST,
//! and ConnectWise's own refusals carried in the error. Every write is checked through the
//! vendor's read API and through `/_sim/billing`.

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
use psabridge_psa::billing::ServiceSpec;
use psabridge_psa::{Connector, PsaError};
use psabridge_sim::connectwise::{
    Config, DEMO_CLIENT_ID, DEMO_COMPANY, DEMO_PRIVATE_KEY, DEMO_PUBLIC_KEY, Simulator,
};
use rust_decimal::Decimal;
use serde_json::{Value, json};

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn connect(sim: &Simulator) -> Result<Arc<dyn Connector>> {
    // Lists of one record a page: the billing reads page by ConnectWise's largest size anyway.
    let settings = json!({"site_url": sim.base_url(), "company": DEMO_COMPANY,
        "public_key": DEMO_PUBLIC_KEY, "client_id": DEMO_CLIENT_ID, "page_size": 1});
    let secrets = BTreeMap::from([("private_key".to_string(), Secret::new(DEMO_PRIVATE_KEY))]);
    Ok(psabridge_psa::build(
        PsaKind::ConnectWise,
        reqwest::Client::new(),
        settings.as_object().context("settings")?,
        &secrets,
    )?)
}

/// A GET of the vendor's API, as any ConnectWise client sends it.
async fn vendor_get(sim: &Simulator, path: &str, query: &[(&str, &str)]) -> Result<Value> {
    let answer = reqwest::Client::new()
        .get(format!("{}/{path}", sim.api_url()))
        .query(query)
        .basic_auth(
            format!("{DEMO_COMPANY}+{DEMO_PUBLIC_KEY}"),
            Some(DEMO_PRIVATE_KEY),
        )
        .header("clientId", DEMO_CLIENT_ID)
        .send()
        .await?;
    ensure!(answer.status().is_success(), "{path}: {}", answer.status());
    Ok(answer.json().await?)
}

/// The product's additions in force on the agreement, read through the vendor's API.
async fn additions_of(sim: &Simulator, agreement: &str, product: &str) -> Result<Vec<Value>> {
    let conditions = format!("product/id={product} and cancelledDate=null");
    let list = vendor_get(
        sim,
        &format!("finance/agreements/{agreement}/additions"),
        &[("conditions", &conditions)],
    )
    .await?;
    Ok(list.as_array().cloned().unwrap_or_default())
}

/// The line of `/_sim/billing` for (contract, service).
async fn sim_line(sim: &Simulator, contract: &str, service: &str) -> Result<Option<Value>> {
    let lines: Vec<Value> = reqwest::get(format!("{}/_sim/billing", sim.base_url()))
        .await?
        .json()
        .await?;
    Ok(lines
        .into_iter()
        .find(|l| l["contract_id"] == json!(contract) && l["service_id"] == json!(service)))
}

#[tokio::test]
async fn contract_billing_on_connectwise() -> Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sim = Simulator::start(listener, Config::default()).await?;
    let fixtures = sim.fixtures();
    let fx = |key: &str| fixtures[key].as_str().unwrap_or_default().to_string();
    let connector = connect(&sim)?;
    let billing = connector
        .contract_billing()
        .context("ConnectWise has contract billing")?;
    let now = Utc::now();
    let meter = || connector.meter().total();

    // The seeded catalogue item, by its identifier in any case; a missing one is None.
    let seat = billing
        .find_service("managed security seat")
        .await?
        .context("the seeded service")?;
    assert_eq!(seat.id, fixtures["billing_service"]["id"].as_str().unwrap());
    assert_eq!(seat.name, "Managed Security Seat");
    assert_eq!(billing.find_service("No such service").await?, None);

    let (acme, cancelled, other, unknown) = (
        fx("contract_id"),
        fx("cancelled_contract_id"),
        fx("other_company_contract_id"),
        fx("unknown_contract_id"),
    );
    let contracts = [acme.clone(), cancelled.clone(), unknown.clone()];
    let before = meter();
    let snap = billing.billing_snapshot(&contracts, &seat.id, now).await?;
    assert_eq!(
        meter() - before,
        2,
        "agreements in one read, the additions of the one active recurring agreement"
    );
    assert_eq!(
        snap.contracts[&acme].state,
        ContractState::Found {
            active: true,
            billable_type: true
        }
    );
    assert_eq!(snap.contracts[&acme].company_id, fx("company_id"));
    assert_eq!(
        snap.contracts[&cancelled].state,
        ContractState::Found {
            active: false,
            billable_type: false
        },
        "a cancelled block of hours billed once"
    );
    assert!(!snap.contracts.contains_key(&unknown));
    assert_eq!(
        snap.lines[&acme],
        ServiceLine {
            units: 25,
            unit_cost: dec("1.2")
        }
    );
    assert_eq!(snap.lines.len(), 1);
    let four = [
        acme.clone(),
        cancelled.clone(),
        other.clone(),
        unknown.clone(),
    ];
    let before = meter();
    let wider = billing.billing_snapshot(&four, &seat.id, now).await?;
    assert_eq!(meter() - before, 3, "one more active recurring agreement");
    assert!(!wider.lines.contains_key(&other), "the seat is not on it");
    assert_eq!(
        sim_line(&sim, &acme, &seat.id).await?,
        Some(json!({"contract_id": acme, "service_id": seat.id,
            "service_name": "Managed Security Seat", "units": 25, "unit_cost": 1.2,
            "unit_price": 3.5}))
    );

    // Units only: one PATCH of the addition the snapshot found.
    let before = meter();
    billing
        .update_service_line(&acme, &seat.id, Some((25, 30)), None, now)
        .await?;
    assert_eq!(meter() - before, 1);
    let held = additions_of(&sim, &acme, &seat.id).await?;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0]["quantity"], json!(30.0));
    assert_eq!(held[0]["unitCost"], json!(1.2));
    let line = sim_line(&sim, &acme, &seat.id).await?.context("line")?;
    assert_eq!(
        (line["units"].clone(), line["unit_cost"].clone()),
        (json!(30), json!(1.2))
    );

    // Cost only.
    let before = meter();
    billing
        .update_service_line(&acme, &seat.id, None, Some(dec("1.45")), now)
        .await?;
    assert_eq!(meter() - before, 1);
    let held = additions_of(&sim, &acme, &seat.id).await?;
    assert_eq!(held[0]["quantity"], json!(30.0));
    assert_eq!(held[0]["unitCost"], json!(1.45));
    let line = sim_line(&sim, &acme, &seat.id).await?.context("line")?;
    assert_eq!(
        (line["units"].clone(), line["unit_cost"].clone()),
        (json!(30), json!(1.45))
    );

    // What the PSA now holds is what the sync wants: nothing more to write.
    let snap = billing.billing_snapshot(&contracts, &seat.id, now).await?;
    let facts = ClientFacts {
        billing: Some(ClientBilling {
            contract_id: Some(acme.clone()),
            add_service: true,
            unit_cost: Some(dec("1.45")),
            unit_price: None,
        }),
        contract: Some(snap.contracts[&acme].state.clone()),
        line: snap.lines.get(&acme).cloned(),
        high_water: Some(30),
    };
    let defaults = ServiceDefaults {
        name: seat.name.clone(),
        unit_cost: dec("3.5"),
        unit_price: dec("6"),
    };
    assert_eq!(decide(&facts, &defaults), SyncDecision::Unchanged);

    // A new service: created once, found again by name; a second create is refused by
    // ConnectWise, whose words the error carries.
    let spec = ServiceSpec {
        name: "Device Monitoring".into(),
        unit_cost: dec("1.00"),
        unit_price: dec("2.50"),
    };
    let device = billing.create_service(&spec).await?;
    assert_eq!(
        billing.find_service("device monitoring").await?,
        Some(device.clone())
    );
    let item = vendor_get(&sim, &format!("procurement/catalog/{}", device.id), &[]).await?;
    assert_eq!(item["identifier"], json!("Device Monitoring"));
    assert_eq!(
        (item["price"].clone(), item["cost"].clone()),
        (json!(2.5), json!(1.0))
    );
    match billing.create_service(&spec).await {
        Err(PsaError::Invalid(m)) => assert!(m.contains("already in use"), "{m}"),
        other => panic!("a second item with the identifier: {other:?}"),
    }

    // Added to another recurring agreement with its units, in one request.
    let before = meter();
    billing
        .add_service_to_contract(&other, &device.id, 40, dec("1.00"), dec("2.50"), now)
        .await?;
    assert_eq!(meter() - before, 1);
    let held = additions_of(&sim, &other, &device.id).await?;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0]["quantity"], json!(40.0));
    assert_eq!(held[0]["billCustomer"], json!("Billable"));
    assert_eq!(
        sim_line(&sim, &other, &device.id).await?,
        Some(json!({"contract_id": other, "service_id": device.id,
            "service_name": "Device Monitoring", "units": 40, "unit_cost": 1.0,
            "unit_price": 2.5}))
    );
    let snap = billing
        .billing_snapshot(std::slice::from_ref(&other), &device.id, now)
        .await?;
    assert_eq!(
        snap.lines[&other],
        ServiceLine {
            units: 40,
            unit_cost: dec("1")
        }
    );
    let snap = billing
        .billing_snapshot(&contracts, &device.id, now)
        .await?;
    assert!(snap.lines.is_empty(), "{:?}", snap.lines);

    // A connector that has not read the line (a restart) reads it before its one PATCH.
    let fresh = connect(&sim)?;
    let fresh_billing = fresh.contract_billing().context("billing")?;
    // Learn the codebase first, so the count below is the update's alone.
    fresh.check().await?;
    let before = fresh.meter().total();
    fresh_billing
        .update_service_line(&other, &device.id, Some((40, 38)), None, now)
        .await?;
    assert_eq!(fresh.meter().total() - before, 2, "read the line, patch it");
    assert_eq!(
        additions_of(&sim, &other, &device.id).await?[0]["quantity"],
        json!(38.0)
    );

    // ConnectWise's refusals, in its words.
    let retired = fixtures["billing_service"]["inactive_id"]
        .as_str()
        .unwrap()
        .to_string();
    match billing
        .add_service_to_contract(&acme, &retired, 5, dec("1"), dec("2"), now)
        .await
    {
        Err(PsaError::Invalid(m)) => assert!(m.contains("is inactive"), "{m}"),
        other => panic!("an inactive product: {other:?}"),
    }
    match billing
        .add_service_to_contract(&unknown, &seat.id, 5, dec("1"), dec("2"), now)
        .await
    {
        Err(PsaError::NotFound(m)) => assert!(m.contains(&unknown), "{m}"),
        other => panic!("an unknown agreement: {other:?}"),
    }
    assert!(sim_line(&sim, &acme, &retired).await?.is_none());
    Ok(())
}
