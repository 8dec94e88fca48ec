//! Assets as Autotask configuration items, against the simulator over real HTTP: found by our
//! reference, created once as the connection's product, updated in place; and a connection
//! without a product refused with a reason.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use psabridge_core::assets::AssetFields;
use psabridge_core::secret::Secret;
use psabridge_core::settings::PsaKind;
use psabridge_psa::PsaError;
use psabridge_psa::assets::AssetSpec;
use psabridge_sim::autotask::{Config, Simulator, ids};
use serde_json::{Map, Value, json};

async fn connector(
    sim: &Simulator,
    product: Option<i64>,
) -> Result<std::sync::Arc<dyn psabridge_psa::Connector>> {
    let user = Config::default().api_users[0].clone();
    let mut settings: Map<String, Value> =
        json!({"username": user.username, "zone_discovery_url": sim.base_url()})
            .as_object()
            .cloned()
            .context("settings")?;
    if let Some(p) = product {
        settings.insert("ci_product_id".into(), json!(p));
    }
    let secrets = BTreeMap::from([
        ("secret".to_string(), Secret::new(&user.secret)),
        (
            "integration_code".to_string(),
            Secret::new(&user.integration_code),
        ),
    ]);
    Ok(psabridge_psa::build(
        PsaKind::Autotask,
        reqwest::Client::new(),
        &settings,
        &secrets,
    )?)
}

/// The item as Autotask answers it.
async fn item(sim: &Simulator, id: &str) -> Result<Value> {
    let user = Config::default().api_users[0].clone();
    let v: Value = reqwest::Client::new()
        .get(format!(
            "{}/ATServicesRest/V1.0/ConfigurationItems/{id}",
            sim.base_url()
        ))
        .header("UserName", &user.username)
        .header("Secret", &user.secret)
        .header("ApiIntegrationCode", &user.integration_code)
        .send()
        .await?
        .json()
        .await?;
    Ok(v["item"].clone())
}

#[tokio::test]
async fn assets_become_configuration_items_once() -> Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sim = Simulator::start(listener, Config::default()).await?;
    let c = connector(&sim, Some(ids::PRODUCT_MANAGED_ENDPOINT)).await?;
    let assets = c.asset_sync().context("Autotask has configuration items")?;
    let company = ids::ACME.to_string();
    let mut spec = AssetSpec {
        reference: "dev-7f3a".into(),
        fields: AssetFields {
            name: "FRONT-DESK-01".into(),
            kind: Some("Workstation".into()),
            serial: Some("5CD1234".into()),
            os: Some("Windows 11".into()),
            ip: Some("192.0.2.10".into()),
            mac: None,
        },
    };
    assert_eq!(assets.find_asset(&company, &spec.reference).await?, None);
    let id = assets.create_asset(&company, &spec).await?;
    assert_eq!(
        assets.find_asset(&company, &spec.reference).await?,
        Some(id.clone()),
        "found again by our reference"
    );
    assert_eq!(
        assets.find_asset("29684102", &spec.reference).await?,
        None,
        "only under its own company"
    );
    let made = item(&sim, &id).await?;
    assert_eq!(made["referenceTitle"], "FRONT-DESK-01");
    assert_eq!(made["referenceNumber"], "dev-7f3a");
    assert_eq!(made["serialNumber"], "5CD1234");
    assert_eq!(made["productID"], ids::PRODUCT_MANAGED_ENDPOINT);
    assert_eq!(made["companyID"], ids::ACME);
    assert_eq!(
        made["notes"],
        "Type: Workstation; OS: Windows 11; IP: 192.0.2.10"
    );

    spec.fields.os = Some("Windows 11 24H2".into());
    spec.fields.name = "FRONT-DESK-01A".into();
    let before = c.meter().total();
    assets.update_asset(&id, &spec).await?;
    assert_eq!(c.meter().total() - before, 1, "an update is one PATCH");
    let changed = item(&sim, &id).await?;
    assert_eq!(changed["referenceTitle"], "FRONT-DESK-01A");
    assert!(
        changed["notes"]
            .as_str()
            .is_some_and(|n| n.contains("24H2"))
    );
    assert_eq!(
        changed["referenceNumber"], "dev-7f3a",
        "the reference stays"
    );

    // Without a product the create is refused before any request, saying what to set.
    let bare = connector(&sim, None).await?;
    let before = bare.meter().total();
    let err = bare
        .asset_sync()
        .context("asset sync")?
        .create_asset(&company, &spec)
        .await
        .expect_err("no product");
    assert!(
        matches!(&err, PsaError::Invalid(m) if m.contains("ci_product_id")),
        "{err:?}"
    );
    assert_eq!(bare.meter().total(), before);

    // A product that does not exist is the PSA's refusal, in its words.
    let wrong = connector(&sim, Some(1)).await?;
    let err = wrong
        .asset_sync()
        .context("asset sync")?
        .create_asset(&company, &spec)
        .await
        .expect_err("no such product");
    assert!(format!("{err}").contains("productID"), "{err}");
    Ok(())
}
