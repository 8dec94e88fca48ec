//! Assets as HaloPSA assets, against the simulator over real HTTP: found by our reference (the
//! asset tag) under their client or site only, created once as the connection's asset type,
//! updated in place with one POST, a deleted asset reported gone; a connection without an
//! asset type refused with a reason, and Halo's own refusals passed on in its words.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result};
use psabridge_core::assets::AssetFields;
use psabridge_core::secret::Secret;
use psabridge_psa::assets::AssetSpec;
use psabridge_psa::{Connector, PsaError, halopsa};
use psabridge_sim::halopsa::{Config, Simulator, ids};
use serde_json::{Value, json};

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

    fn connector(&self, asset_type: Option<i64>) -> Result<Arc<dyn Connector>> {
        let mut settings = json!({
            "resource_url": self.sim.base_url(),
            "tenant": "demo",
            "client_id": "psabridge-demo",
        });
        if let Some(t) = asset_type {
            settings["asset_type_id"] = json!(t);
        }
        let secrets =
            BTreeMap::from([("client_secret".to_string(), Secret::new("halo-demo-secret"))]);
        let map = settings.as_object().cloned().unwrap_or_default();
        Ok(halopsa::from_settings(self.http.clone(), &map, &secrets)?)
    }

    /// The asset as Halo's own API answers it.
    async fn asset(&self, id: &str) -> Result<Value> {
        Ok(self
            .http
            .get(format!("{}/api/Asset/{id}", self.sim.base_url()))
            .bearer_auth(&self.token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    async fn delete_asset(&self, id: &str) -> Result<()> {
        self.http
            .delete(format!("{}/api/Asset/{id}", self.sim.base_url()))
            .bearer_auth(&self.token)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }
}

fn laptop(reference: &str) -> AssetSpec {
    AssetSpec {
        reference: reference.into(),
        fields: AssetFields {
            name: "FRONT-DESK-01".into(),
            kind: Some("Workstation".into()),
            serial: Some("5CD1234".into()),
            os: Some("Windows 11".into()),
            ip: Some("192.0.2.10".into()),
            mac: Some("00:1A:2B:3C:4D:5E".into()),
        },
    }
}

#[tokio::test]
async fn assets_become_halo_assets_once() -> Result<()> {
    let halo = Halo::start().await?;
    let c = halo.connector(Some(ids::ASSET_TYPE_WORKSTATION))?;
    let assets = c.asset_sync().context("HaloPSA has assets")?;
    let company = ids::ACME.to_string();
    let mut spec = laptop("dev-7f3a");

    assert_eq!(assets.find_asset(&company, &spec.reference).await?, None);
    let before = c.meter().total();
    let id = assets.create_asset(&company, &spec).await?;
    assert_eq!(c.meter().total() - before, 1, "a create is one POST");
    assert_eq!(
        assets.find_asset(&company, &spec.reference).await?,
        Some(id.clone()),
        "found again by our reference"
    );
    assert_eq!(
        assets
            .find_asset(&ids::ACME_HOLDINGS.to_string(), &spec.reference)
            .await?,
        None,
        "only under its own client"
    );

    let made = halo.asset(&id).await?;
    assert_eq!(made["inventory_number"], "dev-7f3a");
    assert_eq!(made["key_field"], "FRONT-DESK-01");
    assert_eq!(made["key_field2"], "5CD1234");
    assert_eq!(made["key_field3"], "192.0.2.10");
    assert_eq!(made["ethernetMacAddress"], "00:1A:2B:3C:4D:5E");
    assert_eq!(made["assettype_id"], ids::ASSET_TYPE_WORKSTATION);
    assert_eq!(made["client_id"], ids::ACME);
    assert_eq!(
        made["site_id"],
        ids::ACME_HEAD_OFFICE,
        "a client's asset is filed at its main site"
    );
    assert_eq!(made["inactive"], false);
    assert_eq!(
        made["notes"],
        "Type: Workstation; OS: Windows 11; IP: 192.0.2.10; MAC: 00:1A:2B:3C:4D:5E"
    );

    spec.fields.os = Some("Windows 11 24H2".into());
    spec.fields.name = "FRONT-DESK-01A".into();
    spec.fields.serial = None;
    let before = c.meter().total();
    assets.update_asset(&id, &spec).await?;
    assert_eq!(c.meter().total() - before, 1, "an update is one POST");
    let changed = halo.asset(&id).await?;
    assert_eq!(changed["key_field"], "FRONT-DESK-01A");
    assert_eq!(
        changed["key_field2"],
        Value::Null,
        "a serial gone is cleared"
    );
    assert!(
        changed["notes"]
            .as_str()
            .is_some_and(|n| n.contains("24H2"))
    );
    assert_eq!(
        changed["inventory_number"], "dev-7f3a",
        "the reference stays"
    );
    assert_eq!(changed["assettype_id"], ids::ASSET_TYPE_WORKSTATION);
    assert_eq!(changed["site_id"], ids::ACME_HEAD_OFFICE, "the site stays");

    // A record deleted in Halo is reported gone, so that the engine creates it again.
    halo.delete_asset(&id).await?;
    let err = assets.update_asset(&id, &spec).await.expect_err("deleted");
    assert!(matches!(err, PsaError::NotFound(_)), "{err:?}");
    assert_eq!(assets.find_asset(&company, &spec.reference).await?, None);
    Ok(())
}

#[tokio::test]
async fn an_asset_of_a_site_company_belongs_to_that_site() -> Result<()> {
    let halo = Halo::start().await?;
    let c = halo.connector(Some(ids::ASSET_TYPE_WORKSTATION))?;
    let assets = c.asset_sync().context("HaloPSA has assets")?;
    let warehouse = format!("{}/{}", ids::ACME, ids::ACME_WAREHOUSE);
    let head_office = format!("{}/{}", ids::ACME, ids::ACME_HEAD_OFFICE);
    let spec = laptop("dev-wh-1");

    let id = assets.create_asset(&warehouse, &spec).await?;
    let made = halo.asset(&id).await?;
    assert_eq!(made["client_id"], ids::ACME);
    assert_eq!(made["site_id"], ids::ACME_WAREHOUSE);
    assert_eq!(
        assets.find_asset(&warehouse, &spec.reference).await?,
        Some(id.clone())
    );
    assert_eq!(
        assets.find_asset(&head_office, &spec.reference).await?,
        None,
        "not under another site of the client"
    );
    // An update keeps the site.
    assets.update_asset(&id, &spec).await?;
    assert_eq!(halo.asset(&id).await?["site_id"], ids::ACME_WAREHOUSE);
    Ok(())
}

#[tokio::test]
async fn a_connection_without_a_usable_asset_type_is_refused() -> Result<()> {
    let halo = Halo::start().await?;
    let spec = laptop("dev-7f3a");
    let company = ids::ACME.to_string();

    // Without an asset type the create is refused before any request, saying what to set.
    let bare = halo.connector(None)?;
    let before = bare.meter().total();
    let err = bare
        .asset_sync()
        .context("asset sync")?
        .create_asset(&company, &spec)
        .await
        .expect_err("no asset type");
    assert!(
        matches!(&err, PsaError::Invalid(m) if m.contains("asset_type_id")),
        "{err:?}"
    );
    assert_eq!(bare.meter().total(), before);

    // An asset type Halo does not have is Halo's refusal, in its words.
    let wrong = halo.connector(Some(999))?;
    let err = wrong
        .asset_sync()
        .context("asset sync")?
        .create_asset(&company, &spec)
        .await
        .expect_err("no such asset type");
    assert!(
        matches!(&err, PsaError::Invalid(m) if m.contains("assettype_id") && m.contains("999")),
        "{err:?}"
    );
    Ok(())
}
