//! Autotask contract billing against the simulator over real HTTP: the snapshot of contracts
//! and service lines in three paged reads, unit changes as adjustments computed from what the
//! PSA holds, a new service created and added in one request each.

use std::collections::BTreeMap;
use std::str::FromStr;

use anyhow::{Context, Result};
use psabridge_core::billing::{ContractState, ServiceLine};
use psabridge_core::secret::Secret;
use psabridge_core::settings::PsaKind;
use psabridge_psa::billing::ServiceSpec;
use psabridge_sim::autotask::{Config, Simulator, ids};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

#[tokio::test]
async fn contract_billing_on_autotask() -> Result<()> {
    let config = Config::default();
    let user = config.api_users[0].clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sim = Simulator::start(listener, config).await?;
    let settings: Map<String, Value> =
        json!({"username": user.username, "zone_discovery_url": sim.base_url()})
            .as_object()
            .cloned()
            .context("settings")?;
    let secrets = BTreeMap::from([
        ("secret".to_string(), Secret::new(&user.secret)),
        (
            "integration_code".to_string(),
            Secret::new(&user.integration_code),
        ),
    ]);
    let connector = psabridge_psa::build(
        PsaKind::Autotask,
        reqwest::Client::new(),
        &settings,
        &secrets,
    )?;
    let billing = connector
        .contract_billing()
        .context("Autotask has contract billing")?;
    let now = chrono::Utc::now();

    let seat = billing
        .find_service("managed security seat")
        .await?
        .context("the seeded service")?;
    assert_eq!(seat.id, ids::SERVICE_SECURITY_SEAT.to_string());
    assert_eq!(billing.find_service("No such service").await?, None);

    let contracts = [
        ids::ACME_CONTRACT.to_string(),
        ids::ACME_OLD_CONTRACT.to_string(),
        "29699999".to_string(),
    ];
    // Warm the zone lookup so the count below is the snapshot's alone.
    connector.check().await?;
    let before = connector.meter().total();
    let snap = billing.billing_snapshot(&contracts, &seat.id, now).await?;
    assert_eq!(
        connector.meter().total() - before,
        3,
        "contracts, contract services, units"
    );
    assert_eq!(
        snap.contracts[&contracts[0]].state,
        ContractState::Found {
            active: true,
            billable_type: true
        }
    );
    assert_eq!(
        snap.contracts[&contracts[0]].company_id,
        ids::ACME.to_string()
    );
    assert_eq!(
        snap.contracts[&contracts[1]].state,
        ContractState::Found {
            active: false,
            billable_type: false
        }
    );
    assert!(!snap.contracts.contains_key(&contracts[2]));
    assert_eq!(
        snap.lines[&contracts[0]],
        ServiceLine {
            units: 0,
            unit_cost: dec("3.5")
        }
    );

    // Units move by the difference; the cost changes with them.
    billing
        .update_service_line(
            &contracts[0],
            &seat.id,
            Some((0, 12)),
            Some(dec("3.25")),
            now,
        )
        .await?;
    let snap = billing.billing_snapshot(&contracts, &seat.id, now).await?;
    assert_eq!(
        snap.lines[&contracts[0]],
        ServiceLine {
            units: 12,
            unit_cost: dec("3.25")
        }
    );
    billing
        .update_service_line(&contracts[0], &seat.id, Some((12, 9)), None, now)
        .await?;
    let snap = billing.billing_snapshot(&contracts, &seat.id, now).await?;
    assert_eq!(snap.lines[&contracts[0]].units, 9);

    // A new service, created once and added to another recurring contract with its units.
    let spec = ServiceSpec {
        name: "Device monitoring".into(),
        unit_cost: dec("1.00"),
        unit_price: dec("2.50"),
    };
    let device = billing.create_service(&spec).await?;
    assert_eq!(
        billing.find_service("Device monitoring").await?,
        Some(device.clone())
    );
    let other = ids::OTHER_COMPANY_CONTRACT.to_string();
    let before = connector.meter().total();
    billing
        .add_service_to_contract(&other, &device.id, 40, dec("1.00"), dec("2.50"), now)
        .await?;
    assert_eq!(connector.meter().total() - before, 1);
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
    // The seat service is not on that contract's snapshot for the device service... and the
    // device service is not on Acme's contract.
    let snap = billing
        .billing_snapshot(&contracts, &device.id, now)
        .await?;
    assert!(snap.lines.is_empty(), "{:?}", snap.lines);
    Ok(())
}
