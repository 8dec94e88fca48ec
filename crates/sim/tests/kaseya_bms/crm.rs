//! Accounts (companies), their locations and contacts.

use anyhow::{Result, ensure};
use psabridge_sim::kaseya_bms::Config;
use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{msg, start};

fn ids(v: &Value) -> Vec<i64> {
    v["result"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x["id"].as_i64())
        .collect()
}

#[tokio::test]
async fn account_summaries_page_with_total_records() -> Result<()> {
    let t = start(Config::default()).await?;
    let fixtures = t.sim.fixtures();
    let active = fixtures["active_companies"].as_u64().unwrap_or_default();
    ensure!(active >= 130, "{fixtures}");
    let mut seen = Vec::new();
    for page in 1..=3 {
        let (s, v) = t
            .get(&format!(
                "/v2/crm/accounts/summary?Filter.IsActive=true&PageSize=50&PageNumber={page}"
            ))
            .await?;
        ensure!(
            s == StatusCode::OK && v["totalRecords"] == active,
            "{s} {v}"
        );
        seen.extend(ids(&v));
    }
    ensure!(seen.len() as u64 == active, "{} of {active}", seen.len());
    let mut unique = seen.clone();
    unique.sort_unstable();
    unique.dedup();
    ensure!(unique.len() == seen.len(), "no account twice");
    // Page 0 is page 1; lower-case names bind too.
    let (_, p0) = t
        .get("/v2/crm/accounts/summary?filter.isactive=true&pagesize=50&pagenumber=0")
        .await?;
    let (_, p1) = t
        .get("/v2/crm/accounts/summary?Filter.IsActive=true&PageSize=50&PageNumber=1")
        .await?;
    ensure!(ids(&p0) == ids(&p1) && !ids(&p0).is_empty());
    // Without the filter, inactive accounts are there too.
    let (_, all) = t.get("/v2/crm/accounts/summary?PageSize=1").await?;
    ensure!(all["totalRecords"].as_u64() > Some(active), "{all}");
    Ok(())
}

#[tokio::test]
async fn account_filters_and_shapes() -> Result<()> {
    let t = start(Config::default()).await?;
    let (_, v) = t
        .get("/v2/crm/accounts/summary?Filter.AccountName=acme&Filter.IsActive=true")
        .await?;
    ensure!(
        v["totalRecords"] == 1,
        "inactive Acme Old Holdings excluded: {v}"
    );
    let a = &v["result"][0];
    ensure!(
        a["accountName"] == "Acme Ltd" && a["id"] == 12 && a["isActive"] == true,
        "{a}"
    );
    ensure!(
        a["accountCode"] == "ACME" && a["accountType"].is_string(),
        "{a}"
    );
    let loc = &a["locations"][0];
    ensure!(
        loc["locationName"] == "Head Office" && loc["isMain"] == true,
        "{loc}"
    );
    ensure!(loc["addresses"].is_array(), "{loc}");
    let (_, v) = t
        .get("/v2/crm/accounts/summary?Filter.AccountName=ACME")
        .await?;
    ensure!(
        v["totalRecords"] == 2,
        "contains, any case, both states: {v}"
    );
    let (_, v) = t.get("/v2/crm/accounts/summary/12").await?;
    ensure!(v["result"]["accountName"] == "Acme Ltd", "{v}");
    let (s, v) = t.get("/v2/crm/accounts/summary/999999").await?;
    ensure!(
        s == StatusCode::NOT_FOUND && v["success"] == false,
        "{s} {v}"
    );
    // The lookup: no totalRecords, inactive only when asked.
    let (_, v) = t.get("/v2/crm/accounts/lookup?Filter.Name=acme").await?;
    ensure!(
        v.get("totalRecords").is_none() && ids(&v) == vec![12],
        "{v}"
    );
    let (_, v) = t
        .get("/v2/crm/accounts/lookup?Filter.Name=acme&Filter.WithInactiveAccounts=true")
        .await?;
    ensure!(ids(&v).len() == 2, "{v}");
    ensure!(v["result"][0]["name"] == "Acme Ltd" && v["result"][0]["tenantName"].is_string());
    let (_, v) = t
        .get("/v2/crm/accounts/lookup?Filter.Ids=12&Filter.Ids=100")
        .await?;
    ensure!(ids(&v) == vec![12, 100], "{v}");
    // Locations of an account.
    let (_, v) = t.get("/v2/crm/accounts/12/locations/lookup").await?;
    ensure!(
        v["result"][0]
            == serde_json::json!({"id": 34, "name": "Head Office", "accountId": 12, "isMain": true}),
        "{v}"
    );
    let (s, _) = t.get("/v2/crm/accounts/999999/locations/lookup").await?;
    ensure!(s == StatusCode::NOT_FOUND);
    // A bad filter value is a binding error.
    let (s, v) = t
        .get("/v2/crm/accounts/summary?Filter.IsActive=maybe")
        .await?;
    ensure!(
        s == StatusCode::BAD_REQUEST && msg(&v).contains("IsActive"),
        "{s} {v}"
    );
    Ok(())
}

#[tokio::test]
async fn contacts_by_email_account_and_state() -> Result<()> {
    let t = start(Config::default()).await?;
    let (_, v) = t
        .get("/v2/crm/contacts/search?Filter.EmailAddress=bob@acme.test&Filter.IsActive=true")
        .await?;
    ensure!(ids(&v) == vec![56], "{v}");
    let c = &v["result"][0];
    for k in [
        "accountId",
        "accountName",
        "locationId",
        "locationName",
        "firstName",
        "lastName",
        "emailAddress",
        "isActive",
        "isPoc",
        "hasClientPortalAccess",
    ] {
        ensure!(!c[k].is_null(), "{k}: {c}");
    }
    // The email filter ignores case: two active Acme contacts share one address, one inactive
    // contact has it too, and another company's contact.
    let (_, v) = t
        .get("/v2/crm/contacts/search?Filter.EmailAddress=SHARED@acme.test&Filter.AccountIds=12")
        .await?;
    ensure!(ids(&v) == vec![57, 58, 59], "{v}");
    let (_, v) = t
        .get("/v2/crm/contacts/search?Filter.EmailAddress=shared@acme.test&Filter.AccountIds=12&Filter.IsActive=true")
        .await?;
    ensure!(ids(&v) == vec![57, 58], "{v}");
    let (_, v) = t
        .get("/v2/crm/contacts/search?Filter.EmailAddress=shared@acme.test&Filter.IsActive=true")
        .await?;
    ensure!(ids(&v).len() == 3, "another company's too: {v}");
    let (_, v) = t
        .get("/v2/crm/contacts/search?Filter.EmailAddress=nobody@acme.test")
        .await?;
    ensure!(v["success"] == true && ids(&v).is_empty(), "{v}");
    // Paging of the search (no totalRecords: a list response).
    let (_, v) = t
        .get("/v2/crm/contacts/search?Filter.AccountIds=12&PageSize=2&PageNumber=2")
        .await?;
    ensure!(
        ids(&v) == vec![58, 59] && v.get("totalRecords").is_none(),
        "{v}"
    );
    // Per account: active only, with names.
    let (_, v) = t
        .get("/v2/crm/accounts/12/contacts/lookup?Filter.Name=bob")
        .await?;
    ensure!(
        v["result"][0]["name"] == "Bob Smith" && v["result"][0]["emailAddress"] == "bob@acme.test",
        "{v}"
    );
    // The summary is paged with totalRecords and lists emails.
    let (_, v) = t
        .get("/v2/crm/contacts/summary?Filter.AccountId=12&Filter.IsActive=true&PageSize=2")
        .await?;
    ensure!(v["totalRecords"] == 4 && ids(&v).len() == 2, "{v}");
    ensure!(
        v["result"][0]["emails"][0]["emailAddress"] == "bob@acme.test",
        "{v}"
    );
    Ok(())
}
