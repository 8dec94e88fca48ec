//! Recurring services on contracts: services, contract services, their units per period, and
//! adjustments — the only way units move, create-only, and refused where Autotask refuses.

use anyhow::{Result, ensure};
use psabridge_sim::autotask::{Config, ids};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{T, err, start};

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

async fn units(t: &T, contract_service: i64) -> Result<Vec<Value>> {
    t.items(
        "ContractServiceUnits",
        json!([{"op": "eq", "field": "contractServiceID", "value": contract_service},
               {"op": "lte", "field": "startDate", "value": now()},
               {"op": "gte", "field": "endDate", "value": now()}]),
    )
    .await
}

#[tokio::test]
async fn seeded_contracts_carry_the_security_seat_service() -> Result<()> {
    let t = start(Config::default()).await?;
    let services = t
        .items(
            "Services",
            json!([{"op": "eq", "field": "name", "value": "Managed Security Seat"}]),
        )
        .await?;
    ensure!(
        services.len() == 1 && services[0]["periodType"] == 1,
        "{services:?}"
    );
    let on_acme = t
        .items(
            "ContractServices",
            json!([{"op": "eq", "field": "contractID", "value": ids::ACME_CONTRACT}]),
        )
        .await?;
    ensure!(on_acme.len() == 1, "{on_acme:?}");
    let rows = units(&t, ids::FIRST_CONTRACT_SERVICE).await?;
    ensure!(rows.len() == 1 && rows[0]["units"] == 0, "{rows:?}");
    Ok(())
}

#[tokio::test]
async fn adjustments_move_the_units_of_the_period() -> Result<()> {
    let t = start(Config::default()).await?;
    let adjust = |change: i64| {
        json!({"contractID": ids::ACME_CONTRACT, "serviceID": ids::SERVICE_SECURITY_SEAT,
               "unitChange": change, "effectiveDate": now()})
    };
    let (s, v) = t
        .call(
            Method::POST,
            &format!("Contracts/{}/ServiceAdjustments", ids::ACME_CONTRACT),
            Some(adjust(12)),
        )
        .await?;
    ensure!(s == StatusCode::OK && v["itemId"].is_i64(), "{s} {v}");
    let (s, v) = t
        .call(Method::POST, "ContractServiceAdjustments", Some(adjust(-2)))
        .await?;
    ensure!(s == StatusCode::OK, "{s} {v}");
    let rows = units(&t, ids::FIRST_CONTRACT_SERVICE).await?;
    ensure!(rows[0]["units"] == 10, "{rows:?}");
    ensure!(rows[0]["price"] == json!(60.0), "{rows:?}");

    // Below zero is refused, and changes nothing.
    let (s, v) = t
        .call(
            Method::POST,
            "ContractServiceAdjustments",
            Some(adjust(-11)),
        )
        .await?;
    ensure!(
        s == StatusCode::INTERNAL_SERVER_ERROR && err(&v).contains("fewer than zero"),
        "{s} {v}"
    );
    ensure!(units(&t, ids::FIRST_CONTRACT_SERVICE).await?[0]["units"] == 10);

    // Create-only: no query, no read, no update.
    for (method, path, body) in [
        (
            Method::POST,
            "ContractServiceAdjustments/query",
            Some(json!({"filter": [{"op": "exist", "field": "id"}]})),
        ),
        (Method::GET, "ContractServiceAdjustments/1", None),
        (
            Method::PATCH,
            "ContractServiceAdjustments",
            Some(json!({"id": 1})),
        ),
        (
            Method::GET,
            &format!("Contracts/{}/ServiceAdjustments", ids::ACME_CONTRACT),
            None,
        ),
    ] {
        let (s, _) = t.call(method.clone(), path, body).await?;
        ensure!(s == StatusCode::METHOD_NOT_ALLOWED, "{method} {path}: {s}");
    }
    // The count itself is read-only.
    let (s, _) = t
        .call(
            Method::PATCH,
            &format!("Contracts/{}/ServiceUnits", ids::ACME_CONTRACT),
            Some(json!({"id": 1, "units": 3})),
        )
        .await?;
    ensure!(s == StatusCode::METHOD_NOT_ALLOWED, "{s}");
    Ok(())
}

#[tokio::test]
async fn an_adjustment_adds_a_missing_service_and_only_recurring_contracts_take_one() -> Result<()>
{
    let t = start(Config::default()).await?;
    let (s, v) = t
        .call(
            Method::POST,
            "Services",
            Some(
                json!({"name": "Device monitoring", "unitPrice": 2.5, "unitCost": 1.0,
                        "periodType": 1, "billingCodeID": ids::BILLING_CODE_RECURRING}),
            ),
        )
        .await?;
    ensure!(s == StatusCode::OK, "{s} {v}");
    let service = v["itemId"].as_i64().unwrap_or_default();
    let (s, v) = t
        .call(
            Method::POST,
            "ContractServiceAdjustments",
            Some(
                json!({"contractID": ids::ACME_CONTRACT, "serviceID": service, "unitChange": 40,
                        "effectiveDate": now(), "adjustedUnitPrice": 2.25}),
            ),
        )
        .await?;
    ensure!(s == StatusCode::OK, "{s} {v}");
    let added = t
        .items(
            "ContractServices",
            json!([{"op": "eq", "field": "contractID", "value": ids::ACME_CONTRACT},
                   {"op": "eq", "field": "serviceID", "value": service}]),
        )
        .await?;
    ensure!(
        added.len() == 1 && added[0]["unitPrice"] == json!(2.25),
        "{added:?}"
    );
    let cs = added[0]["id"].as_i64().unwrap_or_default();
    ensure!(units(&t, cs).await?[0]["units"] == 40);

    // The inactive block-hours contract is not a Recurring Service contract.
    let (s, v) = t
        .call(
            Method::POST,
            &format!("Contracts/{}/Services", ids::ACME_OLD_CONTRACT),
            Some(json!({"serviceID": service})),
        )
        .await?;
    ensure!(
        s == StatusCode::INTERNAL_SERVER_ERROR && err(&v).contains("Recurring Service"),
        "{s} {v}"
    );
    // A service already on the contract is not added twice.
    let (s, v) = t
        .call(
            Method::POST,
            &format!("Contracts/{}/Services", ids::ACME_CONTRACT),
            Some(json!({"serviceID": service})),
        )
        .await?;
    ensure!(
        s == StatusCode::INTERNAL_SERVER_ERROR && err(&v).contains("already"),
        "{s} {v}"
    );
    Ok(())
}
