//! Lists: conditions, childConditions, fields, orderBy, paging and Link headers, counts.

use anyhow::Result;
use psabridge_sim::connectwise::Config;
use reqwest::{Method, StatusCode};

use crate::common::{ids, start};

/// The page numbers of a `Link` header, by rel, read the way pyconnectwise reads them.
fn links(h: &reqwest::header::HeaderMap) -> Vec<(String, u32)> {
    let Some(l) = h.get("link").and_then(|v| v.to_str().ok()) else {
        return vec![];
    };
    l.split(", ")
        .filter_map(|part| {
            // `page=(\d+)>; rel="(.*?)"`: page= must be the last parameter before '>'.
            let at = part.rfind("page=")?;
            let rest = &part[at + 5..];
            let (num, rest) = rest.split_once(">; rel=\"")?;
            let rel = rest.trim_end_matches('"');
            Some((rel.to_string(), num.parse().ok()?))
        })
        .collect()
}

#[tokio::test]
async fn pages_follow_link_headers_to_the_end() -> Result<()> {
    let t = start(Config::default()).await?;
    let q = [
        (
            "conditions",
            "deletedFlag=false and status/name!=\"Inactive\"",
        ),
        ("orderBy", "name asc"),
        ("pageSize", "50"),
    ];
    let fixtures = t.fixtures().await?;
    let total = fixtures["active_companies"].as_u64().unwrap_or(0);
    assert!(total >= 130, "{total}");
    let mut seen = Vec::new();
    let mut page = 1;
    let mut pages = 0;
    loop {
        let p = page.to_string();
        let mut qq = q.to_vec();
        qq.push(("page", &p));
        let a = t.get_q("company/companies", &qq).await?;
        assert_eq!(a.status, StatusCode::OK);
        pages += 1;
        let l = links(&a.headers);
        let raw = a
            .headers
            .get("link")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if page > 1 {
            assert!(l.contains(&("first".into(), 1)), "{raw}");
            assert!(l.contains(&("prev".into(), page - 1)), "{raw}");
        }
        seen.extend(ids(&a.body));
        match l.iter().find(|(rel, _)| rel == "next") {
            Some((_, n)) => {
                assert_eq!(*n, page + 1);
                assert!(raw.contains("conditions="), "links keep the query: {raw}");
                page = *n;
            }
            None => break,
        }
    }
    assert!(pages >= 3);
    assert_eq!(seen.len() as u64, total);
    let mut dedup = seen.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), seen.len(), "no company twice");
    // The count endpoint agrees.
    let c = t.get_q("company/companies/count", &q[..1]).await?;
    assert_eq!(c.body["count"].as_u64(), Some(total));
    Ok(())
}

#[tokio::test]
async fn page_size_defaults_to_25_and_is_capped_at_1000() -> Result<()> {
    let t = start(Config::default()).await?;
    let a = t.get("company/contacts").await?;
    assert_eq!(a.body.as_array().map(Vec::len), Some(25));
    let a = t.get_q("company/contacts", &[("pageSize", "5000")]).await?;
    let n = a.body.as_array().map(Vec::len).unwrap_or(0);
    let count = t.get("company/contacts/count").await?.body["count"]
        .as_u64()
        .unwrap_or(0) as usize;
    assert_eq!(n, count.min(1000));
    // Past the end: an empty array.
    let a = t.get_q("company/companies", &[("page", "99")]).await?;
    assert_eq!(a.body, serde_json::json!([]));
    Ok(())
}

#[tokio::test]
async fn conditions_filter_like_connectwise() -> Result<()> {
    let t = start(Config::default()).await?;
    let names = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect()
    };
    let a = t
        .get_q(
            "company/companies",
            &[("conditions", "name like \"acme%\"")],
        )
        .await?;
    let mut n = names(&a.body);
    n.sort();
    assert_eq!(n, vec!["Acme Holdings (old)", "Acme Ltd"]);
    let a = t
        .get_q(
            "company/companies",
            &[(
                "conditions",
                "deletedFlag=false AND status/name!=\"Inactive\" and name contains \"ACME\"",
            )],
        )
        .await?;
    assert_eq!(names(&a.body), vec!["Acme Ltd"]);
    let a = t
        .get_q(
            "company/companies",
            &[
                ("conditions", "id in (12, 2, 99999)"),
                ("fields", "id,name"),
            ],
        )
        .await?;
    assert_eq!(ids(&a.body), vec![2, 12]);
    assert_eq!(
        a.body[0].as_object().map(|o| o.len()),
        Some(2),
        "fields trim: {}",
        a.body[0]
    );
    let a = t
        .get_q(
            "company/companies",
            &[("conditions", "id=12"), ("fields", "id,status/name")],
        )
        .await?;
    assert_eq!(a.body[0]["status"], serde_json::json!({"name": "Active"}));
    let a = t
        .get_q(
            "company/companies",
            &[("conditions", "(id=12 or id=2) and not (id=2)")],
        )
        .await?;
    assert_eq!(ids(&a.body), vec![12]);
    let a = t
        .get_q(
            "company/companies",
            &[
                ("conditions", "dateAcquired > [2025-01-01T00:00:00Z]"),
                ("pageSize", "1000"),
            ],
        )
        .await?;
    assert!(!ids(&a.body).is_empty());
    let a = t
        .get_q("company/companies", &[("conditions", "id = = 3")])
        .await?;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(
        a.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("conditions")
    );
    Ok(())
}

#[tokio::test]
async fn order_by_and_descending() -> Result<()> {
    let t = start(Config::default()).await?;
    let a = t
        .get_q("service/priorities", &[("orderBy", "sortOrder desc")])
        .await?;
    assert_eq!(ids(&a.body), vec![5, 4, 3, 2, 1]);
    Ok(())
}

#[tokio::test]
async fn contacts_by_email_with_child_conditions() -> Result<()> {
    let t = start(Config::default()).await?;
    let t = &t;
    let find = |email: &'static str| {
        let child = format!(
            "communicationItems/value=\"{email}\" AND communicationItems/communicationType=\"Email\""
        );
        async move {
            t.get_q(
                "company/contacts",
                &[
                    ("conditions", "company/id=12 and inactiveFlag=false"),
                    ("childConditions", &child),
                ],
            )
            .await
        }
    };
    let a = find("bob@acme.test").await?;
    assert_eq!(ids(&a.body), vec![56]);
    assert_eq!(a.body[0]["company"]["id"], 12);
    assert_eq!(
        a.body[0]["communicationItems"][1]["communicationType"],
        "Email"
    );
    let a = find("SHARED@acme.test").await?;
    assert_eq!(
        ids(&a.body),
        vec![57, 58],
        "case-insensitive, inactive left out"
    );
    let a = find("nobody@acme.test").await?;
    assert_eq!(ids(&a.body), Vec::<i64>::new());
    // connectpyse's lower-case parameter name.
    let a = t
        .get_q(
            "company/contacts",
            &[(
                "childconditions",
                "communicationItems/value=\"bob@acme.test\"",
            )],
        )
        .await?;
    assert_eq!(ids(&a.body), vec![56]);
    Ok(())
}

#[tokio::test]
async fn board_lists_belong_to_their_board() -> Result<()> {
    let t = start(Config::default()).await?;
    let a = t
        .get_q(
            "service/boards",
            &[("conditions", "inactiveFlag=false and projectFlag=false")],
        )
        .await?;
    assert_eq!(ids(&a.body), vec![1, 2]);
    let a = t.get("service/boards/1/statuses").await?;
    assert!(
        a.body
            .as_array()
            .is_some_and(|s| s.iter().all(|x| x["board"]["id"] == 1))
    );
    assert!(
        a.body
            .as_array()
            .is_some_and(|s| s.iter().any(|x| x["closedStatus"] == true))
    );
    assert!(
        a.body
            .as_array()
            .is_some_and(|s| s.iter().any(|x| x["inactive"] == true))
    );
    let a = t
        .get_q(
            "service/boards/1/statuses",
            &[
                ("conditions", "closedStatus=true and inactive=false"),
                ("orderBy", "sortOrder asc"),
            ],
        )
        .await?;
    assert_eq!(a.body[0]["name"], "Resolved");
    let a = t.get("service/boards/2/subtypes").await?;
    assert!(a.body[0]["typeAssociationIds"].is_array());
    let a = t.get("service/boards/2/teams").await?;
    assert!(
        a.body
            .as_array()
            .is_some_and(|s| s.iter().all(|x| x["boardId"] == 2))
    );
    let a = t
        .get("service/boards/1/typeSubTypeItemAssociations")
        .await?;
    assert!(a.body[0]["type"]["id"].is_number() && a.body[0]["subType"]["id"].is_number());
    let a = t.get("service/boards/1/items/count").await?;
    assert_eq!(a.body["count"], 4);
    let a = t.get("service/boards/999/statuses").await?;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.body["code"], "NotFound");
    Ok(())
}

#[tokio::test]
async fn forward_only_paging_uses_page_id() -> Result<()> {
    let t = start(Config::default()).await?;
    let a = crate::common::answer(
        t.request(Method::GET, &t.url("company/companies?pageSize=40"))
            .header("pagination-type", "forward-only")
            .send()
            .await?,
    )
    .await?;
    let got = ids(&a.body);
    assert_eq!(got.len(), 40);
    let link = a
        .headers
        .get("link")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(
        link.ends_with(&format!("pageId={}>; rel=\"next\"", got[39])),
        "{link}"
    );
    Ok(())
}

#[tokio::test]
async fn unknown_records_and_urls_are_404() -> Result<()> {
    let t = start(Config::default()).await?;
    let a = t.get("company/companies/999999").await?;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.body["code"], "NotFound");
    let a = t.get("nothing/here").await?;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = t
        .send(
            Method::DELETE,
            "company/companies/12",
            serde_json::json!({}),
        )
        .await?;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    Ok(())
}

#[tokio::test]
async fn a_company_has_its_main_site() -> Result<()> {
    let t = start(Config::default()).await?;
    let a = t.get("company/companies/12/sites").await?;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body[0]["name"], "Main");
    assert_eq!(a.body[0]["company"]["id"], 12);
    assert_eq!(
        t.get("company/companies/999999/sites").await?.status,
        StatusCode::NOT_FOUND
    );
    Ok(())
}
