//! Casing, wrappers, bare setup lists, paging, filters and float-typed ids.

use anyhow::{Result, ensure};
use psabridge_sim::halopsa::Config;
use serde_json::Value;

use crate::common::start;

fn arr(v: &Value, key: &str) -> Vec<Value> {
    v[key].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn routes_and_query_names_are_case_insensitive() -> Result<()> {
    let t = start(Config::default()).await?;
    let a = t.get("client?PAGEINATE=True&Page_Size=5&page_no=1").await?;
    let b = t.get("Client?pageinate=true&page_size=5&page_no=1").await?;
    ensure!(a == b && arr(&a, "clients").len() == 5, "{a}");
    ensure!(a["page_no"] == 1 && a["page_size"] == 5, "{a}");
    Ok(())
}

#[tokio::test]
async fn clients_page_with_record_count() -> Result<()> {
    let t = start(Config::default()).await?;
    let first = t
        .get("Client?pageinate=true&page_size=50&page_no=1")
        .await?;
    let total = first["record_count"].as_u64().unwrap_or(0);
    ensure!(total >= 130, "{total}");
    let mut seen = std::collections::BTreeSet::new();
    let mut page = 1;
    loop {
        let v = t
            .get(&format!(
                "Client?pageinate=true&page_size=50&page_no={page}"
            ))
            .await?;
        let items = arr(&v, "clients");
        if items.is_empty() {
            break;
        }
        for c in items {
            ensure!(
                c["inactive"] == false,
                "inactive clients are left out by default: {c}"
            );
            ensure!(
                seen.insert(c["id"].as_i64().unwrap_or(0)),
                "no client twice"
            );
        }
        page += 1;
    }
    ensure!(
        seen.len() as u64 == total && page >= 4,
        "{} of {total}, {page} pages",
        seen.len()
    );
    let with_inactive = t.get("Client?includeinactive=true&count=1000").await?;
    ensure!(with_inactive["record_count"].as_u64() > Some(total));
    let capped = t.get("Client?count=3").await?;
    ensure!(arr(&capped, "clients").len() == 3 && capped["record_count"].as_u64() == Some(total));
    let acme = t.get("Client?search=ACME").await?;
    let names: Vec<&str> = acme["clients"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    ensure!(names == ["Acme Ltd"], "{names:?}");
    Ok(())
}

#[tokio::test]
async fn sites_and_users_carry_float_ids() -> Result<()> {
    let t = start(Config::default()).await?;
    let sites = t.get("Site?client_id=12").await?;
    let list = arr(&sites, "sites");
    ensure!(list.len() == 2, "the inactive site is left out: {sites}");
    ensure!(
        list.iter()
            .all(|s| s["client_id"].is_f64() && s["client_id"] == 12.0),
        "{sites}"
    );
    let users = t.get("Users?search=bob@acme.test&client_id=12").await?;
    let u = arr(&users, "users");
    ensure!(
        u.len() == 1 && u[0]["site_id"].is_f64() && u[0]["emailaddress"] == "bob@acme.test",
        "{users}"
    );
    let shared = t.get("Users?search=shared@acme.test&client_id=12").await?;
    ensure!(arr(&shared, "users").len() == 2, "{shared}");
    let all = t
        .get("Users?search=shared@acme.test&client_id=12&includeinactive=true")
        .await?;
    ensure!(arr(&all, "users").len() == 3, "{all}");
    let site4 = t.get("Users?client_id=12&site_id=4").await?;
    ensure!(
        arr(&site4, "users").iter().all(|u| u["site_id"] == 4.0),
        "{site4}"
    );
    Ok(())
}

#[tokio::test]
async fn setup_lists_are_bare_arrays_with_their_filters() -> Result<()> {
    let t = start(Config::default()).await?;
    let statuses = t.get("Status").await?;
    let open = t.get("Status?excludeclosed=true").await?;
    ensure!(statuses.is_array() && open.is_array());
    let n = |v: &Value| v.as_array().map_or(0, Vec::len);
    ensure!(
        n(&statuses) > n(&open) && !open.as_array().into_iter().flatten().any(|s| s["id"] == 9)
    );
    ensure!(n(&t.get("TicketType?showinactive=true").await?) > n(&t.get("TicketType").await?));
    let prio = t.get("Priority?slaid=2").await?;
    ensure!(
        prio.as_array()
            .into_iter()
            .flatten()
            .all(|p| p["slaid"] == 2 && p["priorityid"].is_i64() && p["id"].is_string())
    );
    let teams = t.get("Team?includeagentsforteams=true").await?;
    let sec = teams
        .as_array()
        .into_iter()
        .flatten()
        .find(|x| x["name"] == "Security Operations")
        .cloned()
        .unwrap_or_default();
    ensure!(sec["agents"].as_array().map_or(0, Vec::len) == 3, "{sec}");
    let agents = t.get("Agent").await?;
    ensure!(
        agents
            .as_array()
            .into_iter()
            .flatten()
            .all(|a| a["isdisabled"] == false && a["id"] != 1),
        "{agents}"
    );
    ensure!(n(&t.get("Agent?includedisabled=true").await?) == n(&agents) + 1);
    let lookups = t.get("Lookup?lookupid=29").await?;
    ensure!(
        lookups
            .as_array()
            .into_iter()
            .flatten()
            .all(|l| l["lookupid"] == 29)
            && n(&lookups) == 4
    );
    let cats = t.get("Category?type_id=1").await?;
    ensure!(
        cats.as_array()
            .into_iter()
            .flatten()
            .any(|c| c["value"] == "Security")
    );
    let slas = t.get("SLA?showpriorities=true").await?;
    ensure!(
        slas[0]["priorities"].as_array().map_or(0, Vec::len) == 4,
        "{slas}"
    );
    let me = t.get("Agent/me").await?;
    ensure!(me["id"] == 1, "{me}");
    Ok(())
}

#[tokio::test]
async fn ticket_filters() -> Result<()> {
    let t = start(Config::default()).await?;
    let all = t.get("Tickets").await?;
    ensure!(all["record_count"] == 3, "{all}");
    let open = t.get("Tickets?open_only=True").await?;
    ensure!(open["record_count"] == 2, "{open}");
    let closed = t.get("Tickets?closed_only=true").await?;
    ensure!(closed["tickets"][0]["id"] == 102, "{closed}");
    let some = t.get("Tickets?ticketids=101,103,999").await?;
    ensure!(some["record_count"] == 2, "{some}");
    let paged = t
        .get("Tickets?pageinate=true&page_size=2&page_no=2")
        .await?;
    ensure!(
        arr(&paged, "tickets").len() == 1 && paged["record_count"] == 3,
        "{paged}"
    );
    let search = t.get("Tickets?search=vpn").await?;
    ensure!(search["record_count"] == 1, "{search}");
    let one = t.get("Tickets/101").await?;
    ensure!(one["id"] == 101 && one["summary"].is_string(), "{one}");
    let (s, v) = t.call(reqwest::Method::GET, "Tickets/999", None).await?;
    ensure!(
        s == reqwest::StatusCode::NOT_FOUND && v["Message"].is_string(),
        "{s} {v}"
    );
    Ok(())
}
