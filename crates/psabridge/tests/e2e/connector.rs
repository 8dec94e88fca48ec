//! The Autotask connector against the simulator in-process: paging by `nextPageUrl`, and a
//! request count per operation.

use anyhow::{Result, ensure};
use psabridge_core::secret::Secret;
use psabridge_psa::Connector;
use psabridge_psa::autotask::{AutotaskConnector, AutotaskCredentials, AutotaskOptions};
use psabridge_sim::autotask::{Config, Simulator};
use serde_json::json;

#[tokio::test]
async fn the_connector_follows_page_links_and_counts_its_requests() -> Result<()> {
    let config = Config::default();
    let user = config.api_users[0].clone();
    let sim = Simulator::start(tokio::net::TcpListener::bind("127.0.0.1:0").await?, config).await?;
    let http = reqwest::Client::new();
    // 620 more contacts for one company: more than one page of 500.
    for i in 0..620 {
        let r = http
            .post(format!(
                "{}V1.0/Companies/29684105/Contacts",
                sim.zone_url()
            ))
            .header("ApiIntegrationCode", &user.integration_code)
            .header("UserName", &user.username)
            .header("Secret", &user.secret)
            .json(
                &json!({"firstName": "Bulk", "lastName": format!("Contact {i}"), "isActive": 1,
                          "emailAddress": format!("bulk{i}@evergreencpa.example")}),
            )
            .send()
            .await?;
        ensure!(r.status().is_success());
    }
    let connector = AutotaskConnector::new(
        reqwest::Client::new(),
        AutotaskCredentials {
            username: user.username.clone(),
            secret: Secret::new(user.secret.clone()),
            integration_code: Secret::new(user.integration_code.clone()),
            zone_discovery_url: sim.base_url(),
            impersonation_resource_id: None,
        },
        AutotaskOptions::default(),
    );
    let contacts = connector.contacts("29684105").await?;
    ensure!(
        contacts.len() == 620 + 3,
        "all active contacts across pages: {}",
        contacts.len()
    );
    let mut ids: Vec<&str> = contacts.iter().map(|c| c.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    ensure!(ids.len() == contacts.len(), "no contact twice");
    // Zone discovery + two pages.
    ensure!(
        connector.meter().total() == 3,
        "requests: {}",
        connector.meter().total()
    );
    let found = connector
        .find_contacts_by_email("29684105", "BULK7@evergreencpa.example")
        .await?;
    ensure!(
        found.len() == 1 && found[0].name == "Bulk Contact 7",
        "{found:?}"
    );
    ensure!(connector.meter().total() == 4, "one request per look-up");
    sim.shutdown().await;
    Ok(())
}
