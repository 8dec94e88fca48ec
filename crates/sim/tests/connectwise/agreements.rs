//! Agreements: `finance/agreements` with `conditions` like every list, and a ticket's
//! `agreement`, which must exist and belong to the ticket's company.

use anyhow::{Result, ensure};
use psabridge_sim::connectwise::Config;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{ids, start};

#[tokio::test]
async fn agreements_are_listed_by_company_and_status() -> Result<()> {
    let t = start(Config::default()).await?;
    let a = t
        .get_q("finance/agreements", &[("conditions", "company/id=12")])
        .await?;
    ensure!(
        a.status == StatusCode::OK && ids(&a.body) == [44, 45],
        "{}",
        a.body
    );
    ensure!(
        a.body[0]["agreementStatus"] == "Active" && a.body[1]["cancelledFlag"] == true,
        "{}",
        a.body
    );
    let active = t
        .get_q(
            "finance/agreements",
            &[
                ("conditions", "agreementStatus=\"Active\""),
                ("fields", "id,name"),
            ],
        )
        .await?;
    ensure!(ids(&active.body) == [44, 46, 47, 48], "{}", active.body);
    let count = t.get("finance/agreements/count").await?;
    ensure!(count.body == json!({"count": 5}), "{}", count.body);
    let one = t.get("finance/agreements/45").await?;
    ensure!(one.body["name"] == "Acme Block Hours 2025", "{}", one.body);
    Ok(())
}

#[tokio::test]
async fn a_ticket_takes_only_an_agreement_of_its_company() -> Result<()> {
    let t = start(Config::default()).await?;
    let ticket = |agreement: i64| json!({"summary": "Agreement test", "company": {"id": 12}, "agreement": {"id": agreement}});
    let made = t.send(Method::POST, "service/tickets", ticket(44)).await?;
    ensure!(made.status == StatusCode::CREATED, "{}", made.body);
    ensure!(
        made.body["agreement"]["id"] == 44
            && made.body["agreement"]["name"] == "Acme Managed Security",
        "{}",
        made.body
    );
    for (agreement, says) in [
        (4999, "was not found"),
        (46, "does not belong to company 12"),
    ] {
        let a = t
            .send(Method::POST, "service/tickets", ticket(agreement))
            .await?;
        ensure!(
            a.status == StatusCode::BAD_REQUEST,
            "{agreement}: {} {}",
            a.status,
            a.body
        );
        ensure!(
            a.body["code"] == "InvalidObject"
                && a.body["errors"][0]["field"] == "agreement"
                && a.body["errors"][0]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(says)),
            "{agreement}: {}",
            a.body
        );
    }
    Ok(())
}
