//! Assets as ConnectWise configurations, against the simulator over real HTTP: found by our
//! reference (`tagNumber`) under their own company only, created once as the connection's
//! configuration type, updated by one JSON Patch; a connection without a type refused before
//! any request, and ConnectWise's own refusal carried in the error.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result, ensure};
use psabridge_core::assets::AssetFields;
use psabridge_core::secret::Secret;
use psabridge_core::settings::PsaKind;
use psabridge_psa::assets::AssetSpec;
use psabridge_psa::{Connector, PsaError};
use psabridge_sim::connectwise::{
    Config, DEMO_CLIENT_ID, DEMO_COMPANY, DEMO_PRIVATE_KEY, DEMO_PUBLIC_KEY,
    MANAGED_WORKSTATION_TYPE, Simulator,
};
use serde_json::{Value, json};

/// Acme Ltd, and another company of the seed.
const ACME: &str = "12";
const OTHER_COMPANY: &str = "3";

fn connect(sim: &Simulator, configuration_type: Option<i64>) -> Result<Arc<dyn Connector>> {
    let mut settings = json!({"site_url": sim.base_url(), "company": DEMO_COMPANY,
        "public_key": DEMO_PUBLIC_KEY, "client_id": DEMO_CLIENT_ID});
    if let Some(t) = configuration_type {
        settings["configuration_type_id"] = json!(t);
    }
    let secrets = BTreeMap::from([("private_key".to_string(), Secret::new(DEMO_PRIVATE_KEY))]);
    Ok(psabridge_psa::build(
        PsaKind::ConnectWise,
        reqwest::Client::new(),
        settings.as_object().context("settings")?,
        &secrets,
    )?)
}

/// The configuration as ConnectWise answers it.
async fn configuration(sim: &Simulator, id: &str) -> Result<Value> {
    let answer = reqwest::Client::new()
        .get(format!("{}/company/configurations/{id}", sim.api_url()))
        .basic_auth(
            format!("{DEMO_COMPANY}+{DEMO_PUBLIC_KEY}"),
            Some(DEMO_PRIVATE_KEY),
        )
        .header("clientId", DEMO_CLIENT_ID)
        .send()
        .await?;
    ensure!(answer.status().is_success(), "{id}: {}", answer.status());
    Ok(answer.json().await?)
}

fn workstation() -> AssetSpec {
    AssetSpec {
        reference: "dev-7f3a".into(),
        fields: AssetFields {
            name: "FRONT-DESK-01".into(),
            kind: Some("Workstation".into()),
            serial: Some("5CD1234".into()),
            os: Some("Windows 11".into()),
            ip: Some("192.0.2.10".into()),
            mac: None,
        },
    }
}

#[tokio::test]
async fn assets_become_configurations_once() -> Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sim = Simulator::start(listener, Config::default()).await?;
    let c = connect(&sim, Some(MANAGED_WORKSTATION_TYPE))?;
    let assets = c.asset_sync().context("ConnectWise has configurations")?;
    let mut spec = workstation();

    assert_eq!(assets.find_asset(ACME, &spec.reference).await?, None);
    let before = c.meter().total();
    let id = assets.create_asset(ACME, &spec).await?;
    assert_eq!(c.meter().total() - before, 1, "a create is one POST");
    assert_eq!(
        assets.find_asset(ACME, &spec.reference).await?,
        Some(id.clone()),
        "found again by our reference"
    );
    assert_eq!(
        assets.find_asset(ACME, "DEV-7F3A").await?,
        None,
        "our reference is exact"
    );
    assert_eq!(
        assets.find_asset(OTHER_COMPANY, &spec.reference).await?,
        None,
        "only under its own company"
    );

    let made = configuration(&sim, &id).await?;
    assert_eq!(made["name"], "FRONT-DESK-01");
    assert_eq!(made["tagNumber"], "dev-7f3a");
    assert_eq!(made["serialNumber"], "5CD1234");
    assert_eq!(made["osType"], "Windows 11");
    assert_eq!(made["ipAddress"], "192.0.2.10");
    assert_eq!(made["notes"], "Type: Workstation");
    assert_eq!(made["type"]["id"], MANAGED_WORKSTATION_TYPE);
    assert_eq!(made["company"]["id"], 12);
    assert_eq!(made["activeFlag"], true);

    spec.fields.os = Some("Windows 11 24H2".into());
    spec.fields.name = "FRONT-DESK-01A".into();
    spec.fields.mac = Some("00:1A:2B:3C:4D:5E".into());
    let before = c.meter().total();
    assets.update_asset(&id, &spec).await?;
    assert_eq!(c.meter().total() - before, 1, "an update is one PATCH");
    let changed = configuration(&sim, &id).await?;
    assert_eq!(changed["name"], "FRONT-DESK-01A");
    assert_eq!(changed["osType"], "Windows 11 24H2");
    assert_eq!(changed["macAddress"], "00:1A:2B:3C:4D:5E");
    assert_eq!(changed["tagNumber"], "dev-7f3a", "the reference stays");
    assert_eq!(changed["type"]["id"], MANAGED_WORKSTATION_TYPE);

    let gone = assets
        .update_asset("999999", &spec)
        .await
        .expect_err("gone");
    assert!(matches!(gone, PsaError::NotFound(_)), "{gone:?}");
    Ok(())
}

#[tokio::test]
async fn a_missing_or_unknown_configuration_type_is_refused() -> Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sim = Simulator::start(listener, Config::default()).await?;
    let spec = workstation();

    // Without a type the create is refused before any request, naming the setting.
    let bare = connect(&sim, None)?;
    let before = bare.meter().total();
    let err = bare
        .asset_sync()
        .context("asset sync")?
        .create_asset(ACME, &spec)
        .await
        .expect_err("no configuration type");
    assert!(
        matches!(&err, PsaError::Invalid(m) if m.contains("configuration_type_id")),
        "{err:?}"
    );
    assert_eq!(bare.meter().total(), before);

    // A type ConnectWise does not know is its refusal, in its words.
    let wrong = connect(&sim, Some(77))?;
    let err = wrong
        .asset_sync()
        .context("asset sync")?
        .create_asset(ACME, &spec)
        .await
        .expect_err("no such type");
    assert!(
        matches!(&err, PsaError::Invalid(m) if m.contains("type 77 was not found")),
        "{err:?}"
    );
    Ok(())
}
