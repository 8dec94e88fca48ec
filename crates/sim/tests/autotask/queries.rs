//! Queries: filters, every operator, names in any case, limits, counts and paging.

use anyhow::{Result, ensure};
use psabridge_sim::autotask::{Config, ids};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{T, body, err, start};

async fn ids_of(t: &T, entity: &str, filter: Value) -> Result<Vec<i64>> {
    Ok(t.items(entity, filter)
        .await?
        .iter()
        .filter_map(|i| i["id"].as_i64())
        .collect())
}

#[tokio::test]
async fn filters_are_mandatory_and_checked() -> Result<()> {
    let t = start(Config::default()).await?;
    let (s, v) = t.query("Contacts", json!({"MaxRecords": 5})).await?;
    ensure!(
        s == StatusCode::INTERNAL_SERVER_ERROR && v["errors"].is_array(),
        "{s} {v}"
    );
    let (s, v) = t.call(Method::GET, "Contacts/query", None).await?;
    ensure!(s == StatusCode::INTERNAL_SERVER_ERROR, "{s} {v}");
    let (s, v) = t.query("Contacts", json!({"filter": []})).await?;
    ensure!(s == StatusCode::OK && v["items"] == json!([]), "{v}");
    let (s, v) = t
        .query(
            "Contacts",
            json!({"filter": [{"op": "eq", "field": "shoeSize", "value": 1}]}),
        )
        .await?;
    ensure!(
        s == StatusCode::INTERNAL_SERVER_ERROR
            && err(&v) == "Unable to find shoeSize in the Contact Entity.",
        "{v}"
    );
    let (_, v) = t
        .query(
            "Tickets",
            json!({"filter": [{"op": "eq", "field": "creatorType", "value": 1}]}),
        )
        .await?;
    ensure!(err(&v).contains("not queryable"), "{v}");
    let (_, v) = t
        .query(
            "Tickets",
            json!({"filter": [{"op": "like", "field": "title", "value": "x"}]}),
        )
        .await?;
    ensure!(err(&v).contains("like"), "{v}");
    for n in [0, 501] {
        let (s, v) = t
            .query(
                "Contacts",
                json!({"filter": [{"op": "gte", "field": "id", "value": 0}], "MaxRecords": n}),
            )
            .await?;
        ensure!(
            s == StatusCode::INTERNAL_SERVER_ERROR,
            "MaxRecords {n}: {v}"
        );
    }
    let many: Vec<Value> = (0..501)
        .map(|i| json!({"op": "eq", "field": "id", "value": i}))
        .collect();
    let (s, v) = t
        .query("Contacts", json!({"filter": [{"op": "or", "items": many}]}))
        .await?;
    ensure!(
        s == StatusCode::INTERNAL_SERVER_ERROR && err(&v).contains("500"),
        "{v}"
    );
    let (s, v) = t
        .query(
            "Contacts",
            json!({"filter": [{"op": "gte", "field": "id", "value": "abc"}]}),
        )
        .await?;
    ensure!(s == StatusCode::INTERNAL_SERVER_ERROR, "{v}");
    Ok(())
}

#[tokio::test]
async fn every_operator() -> Result<()> {
    let t = start(Config::default()).await?;
    let acme = ids::ACME;
    let acme_contacts = ids_of(
        &t,
        "Contacts",
        json!([{"op": "eq", "field": "companyID", "value": acme}]),
    )
    .await?;
    ensure!(acme_contacts.len() == 5, "{acme_contacts:?}");
    let all = ids_of(
        &t,
        "Contacts",
        json!([{"op": "gte", "field": "id", "value": 0}]),
    )
    .await?;
    ensure!(
        all.len() > 30 && all.windows(2).all(|w| w[0] < w[1]),
        "ascending ids: {all:?}"
    );
    let not_acme = ids_of(
        &t,
        "Contacts",
        json!([{"op": "noteq", "field": "companyID", "value": acme}]),
    )
    .await?;
    ensure!(not_acme.len() + acme_contacts.len() == all.len());
    let first = all[0];
    ensure!(
        ids_of(
            &t,
            "Contacts",
            json!([{"op": "gt", "field": "id", "value": first}])
        )
        .await?
        .len()
            == all.len() - 1
    );
    ensure!(
        ids_of(
            &t,
            "Contacts",
            json!([{"op": "lt", "field": "id", "value": all[2]}])
        )
        .await?
            == all[..2]
    );
    ensure!(
        ids_of(
            &t,
            "Contacts",
            json!([{"op": "lte", "field": "id", "value": all[2]}])
        )
        .await?
            == all[..3]
    );
    let begins = t
        .items(
            "Contacts",
            json!([{"op": "beginsWith", "field": "emailAddress", "value": "FRONT.desk@"}]),
        )
        .await?;
    ensure!(
        begins.len() == 2,
        "two contacts share the front desk's address: {begins:?}"
    );
    let ends = ids_of(
        &t,
        "Contacts",
        json!([{"op": "endsWith", "field": "emailaddress", "value": "@ACMEDENTAL.example"}]),
    )
    .await?;
    ensure!(ends == acme_contacts, "{ends:?}");
    let contains = t
        .items(
            "Companies",
            json!([{"op": "contains", "field": "companyName", "value": "harbor"}]),
        )
        .await?;
    ensure!(contains.len() == 2, "Blue Harbor, Harborview: {contains:?}");
    let with_email = ids_of(
        &t,
        "Contacts",
        json!([{"op": "exist", "field": "emailAddress"}]),
    )
    .await?;
    ensure!(with_email.len() == all.len());
    let no_mobile = ids_of(
        &t,
        "Contacts",
        json!([{"op": "notExist", "field": "mobilePhone"}]),
    )
    .await?;
    ensure!(no_mobile.len() == all.len());
    let inn = ids_of(
        &t,
        "Contacts",
        json!([{"op": "in", "field": "id", "value": [all[0], all[3].to_string(), 1]}]),
    )
    .await?;
    ensure!(inn == vec![all[0], all[3]], "{inn:?}");
    let not_in = ids_of(
        &t,
        "Contacts",
        json!([{"op": "notIn", "field": "id", "value": [all[0]]}]),
    )
    .await?;
    ensure!(not_in.len() == all.len() - 1);
    let inactive = ids_of(
        &t,
        "Contacts",
        json!([{"op": "eq", "field": "isActive", "value": "0"}]),
    )
    .await?;
    ensure!(inactive.len() >= 3, "a few inactive contacts: {inactive:?}");
    let active_companies = ids_of(
        &t,
        "Companies",
        json!([{"op": "eq", "field": "isActive", "value": "true"}]),
    )
    .await?;
    ensure!(
        !active_companies.contains(&29684190) && active_companies.contains(&0),
        "{active_companies:?}"
    );
    // Nested groups, names and keys in any case.
    let nested = t
        .query(
            "Contacts",
            json!({"FILTER": [{"OP": "and", "Items": [
                {"op": "EQ", "Field": "CompanyId", "Value": acme.to_string()},
                {"op": "or", "items": [
                    {"op": "beginswith", "field": "firstname", "value": "mar"},
                    {"op": "and", "items": [{"op": "eq", "field": "lastName", "value": "chen"}, {"op": "eq", "field": "isactive", "value": 1}]}
                ]}]}],
                "maxrecords": "10", "includefields": ["FirstName"]}),
        )
        .await?
        .1;
    let items = nested["items"].as_array().cloned().unwrap_or_default();
    ensure!(items.len() == 2, "{nested}");
    ensure!(
        items[0].as_object().is_some_and(|o| o.len() == 3
            && o.contains_key("firstName")
            && o.contains_key("id")
            && o.contains_key("userDefinedFields")),
        "id, the included field, userDefinedFields: {nested}"
    );
    ensure!(nested["pageDetails"]["requestCount"] == 10, "{nested}");
    // UDFs: one per query.
    let gold = ids_of(
        &t,
        "Companies",
        json!([{"op": "eq", "field": "Customer Ranking", "udf": true, "value": "gold"}]),
    )
    .await?;
    ensure!(gold == vec![acme], "{gold:?}");
    let (s, _) = t
        .query("Companies", json!({"filter": [{"op": "eq", "field": "Customer Ranking", "udf": true, "value": "Gold"}, {"op": "exist", "field": "Customer Ranking", "udf": true}]}))
        .await?;
    ensure!(s == StatusCode::INTERNAL_SERVER_ERROR, "one UDF per query");
    // Dates compare as dates.
    let id = t.new_ticket("dated").await?;
    let after = ids_of(
        &t,
        "Tickets",
        json!([{"op": "gt", "field": "createDate", "value": "2026-01-01T00:00:00.000000Z"}]),
    )
    .await?;
    let before = ids_of(
        &t,
        "Tickets",
        json!([{"op": "lt", "field": "createDate", "value": "2020-01-01"}]),
    )
    .await?;
    ensure!(
        after == vec![id] && before.is_empty(),
        "{after:?} {before:?}"
    );
    // MaxRecords caps a page.
    let (_, v) = t
        .query(
            "Contacts",
            json!({"filter": [{"op": "gte", "field": "id", "value": 0}], "MaxRecords": 5}),
        )
        .await?;
    ensure!(
        v["items"].as_array().map(Vec::len) == Some(5)
            && v["pageDetails"]["nextPageUrl"].is_string(),
        "{v}"
    );
    Ok(())
}

#[tokio::test]
async fn get_queries_and_counts() -> Result<()> {
    let t = start(Config::default()).await?;
    let q = json!({"filter": [{"op": "eq", "field": "companyID", "value": ids::ACME}]});
    let r = t
        .request(
            Method::GET,
            &format!("{}V1.0/Contacts/query", t.sim.zone_url()),
        )
        .query(&[("search", q.to_string())])
        .send()
        .await?;
    let (s, v) = body(r).await?;
    ensure!(
        s == StatusCode::OK && v["items"].as_array().map(Vec::len) == Some(5),
        "{s} {v}"
    );
    let (_, c) = t
        .call(Method::POST, "Contacts/query/count", Some(q.clone()))
        .await?;
    ensure!(c == json!({"queryCount": 5}), "{c}");
    let r = t
        .request(
            Method::GET,
            &format!("{}V1.0/contacts/query/count", t.sim.zone_url()),
        )
        .query(&[("search", q.to_string())])
        .send()
        .await?;
    let (_, c) = body(r).await?;
    ensure!(c["queryCount"] == 5, "{c}");
    Ok(())
}

/// Follow `nextPageUrl` with `method` until it ends; the ids seen.
async fn follow(
    t: &T,
    first: &Value,
    method: Method,
    body_again: Option<&Value>,
) -> Result<Vec<i64>> {
    let mut seen: Vec<i64> = first["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["id"].as_i64())
        .collect();
    let mut next = first["pageDetails"]["nextPageUrl"]
        .as_str()
        .map(str::to_string);
    let mut pages = 1;
    while let Some(url) = next {
        ensure!(
            url.starts_with(&t.sim.zone_url()) && url.contains("/query/next?paging="),
            "absolute: {url}"
        );
        let mut req = t.request(method.clone(), &url);
        if let Some(b) = body_again {
            req = req.json(b);
        }
        let (s, page) = body(req.send().await?).await?;
        ensure!(s == StatusCode::OK, "{s} {page}");
        ensure!(
            page["pageDetails"]["prevPageUrl"].is_string(),
            "a later page links back: {page}"
        );
        ensure!(
            page["pageDetails"]["count"] == page["items"].as_array().map(Vec::len).unwrap_or(0),
            "{page}"
        );
        seen.extend(
            page["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["id"].as_i64()),
        );
        next = page["pageDetails"]["nextPageUrl"]
            .as_str()
            .map(str::to_string);
        pages += 1;
        ensure!(pages < 10, "paging does not end");
    }
    Ok(seen)
}

#[tokio::test]
async fn paging_across_more_than_500_records() -> Result<()> {
    let t = start(Config::default()).await?;
    let mut created = Vec::new();
    for i in 0..1030 {
        created.push(t.new_ticket(&format!("bulk {i}")).await?);
    }
    let q = json!({"filter": [{"op": "beginsWith", "field": "title", "value": "BULK"}]});
    let (_, first) = t.query("Tickets", q.clone()).await?;
    ensure!(first["items"].as_array().map(Vec::len) == Some(500));
    ensure!(first["pageDetails"]["count"] == 500 && first["pageDetails"]["requestCount"] == 500);
    ensure!(first["pageDetails"]["prevPageUrl"].is_null());
    // POST-originated: re-POST the body to the next link.
    let by_post = follow(&t, &first, Method::POST, Some(&q)).await?;
    ensure!(
        by_post == created,
        "every record once, in ascending id order ({} seen)",
        by_post.len()
    );
    // GET-originated: GET the next link.
    let r = t
        .request(
            Method::GET,
            &format!("{}V1.0/Tickets/query", t.sim.zone_url()),
        )
        .query(&[("search", q.to_string())])
        .send()
        .await?;
    let (_, first) = body(r).await?;
    let by_get = follow(&t, &first, Method::GET, None).await?;
    ensure!(by_get == created);
    // A previous-page link leads back to the page before.
    let next = first["pageDetails"]["nextPageUrl"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (_, second) = body(t.request(Method::GET, &next).send().await?).await?;
    let prev = second["pageDetails"]["prevPageUrl"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (_, back) = body(t.request(Method::GET, &prev).send().await?).await?;
    ensure!(
        back["items"] == first["items"],
        "prevPageUrl returns the first page"
    );
    let (_, c) = t.call(Method::POST, "Tickets/query/count", Some(q)).await?;
    ensure!(c["queryCount"] == 1030, "{c}");
    // A smaller page size carries through the links.
    let (_, small) = t
        .query("Tickets", json!({"filter": [{"op": "gte", "field": "id", "value": 0}], "MaxRecords": 400, "IncludeFields": ["title"]}))
        .await?;
    let all = follow(&t, &small, Method::GET, None).await?;
    ensure!(all == created);
    Ok(())
}
