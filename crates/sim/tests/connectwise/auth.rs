//! Codebase discovery and authentication.

use anyhow::Result;
use psabridge_sim::connectwise::{
    Config, DEMO_CLIENT_ID, DEMO_COMPANY, DEMO_PRIVATE_KEY, DEMO_PUBLIC_KEY,
};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::common::{answer, basic, start};

#[tokio::test]
async fn companyinfo_names_the_codebase_and_null_for_an_unknown_company() -> Result<()> {
    let t = start(Config::default()).await?;
    let a = answer(
        t.http
            .get(format!("{}/login/companyinfo/DEMOMSP", t.sim.base_url()))
            .send()
            .await?,
    )
    .await?;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["Codebase"], "v2025_1/");
    assert_eq!(a.body["CompanyID"], DEMO_COMPANY);
    assert!(a.body["VersionCode"].is_string());
    let a = answer(
        t.http
            .get(format!("{}/login/companyinfo/nosuchco", t.sim.base_url()))
            .send()
            .await?,
    )
    .await?;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, Value::Null, "an unknown company is a JSON null");
    Ok(())
}

#[tokio::test]
async fn any_codebase_prefix_and_trailing_slashes_are_served() -> Result<()> {
    let t = start(Config::default()).await?;
    for prefix in ["v4_6_release", "v2025_1", "v2019_5"] {
        let url = format!("{}/{prefix}/apis/3.0/company/companies/", t.sim.base_url());
        let a = answer(t.request(Method::GET, &url).send().await?).await?;
        assert_eq!(a.status, StatusCode::OK, "{prefix}: {}", a.body);
        assert!(a.body.as_array().is_some_and(|x| !x.is_empty()));
    }
    Ok(())
}

#[tokio::test]
async fn each_credential_failure_is_refused() -> Result<()> {
    let t = start(Config::default()).await?;
    let url = t.url("company/companies");
    let call = |auth: Option<String>, client: Option<&str>| {
        let mut r = t.http.get(&url);
        if let Some(a) = auth {
            r = r.header("Authorization", a);
        }
        if let Some(c) = client {
            r = r.header("clientId", c);
        }
        async move { answer(r.send().await?).await }
    };
    let good = || Some(basic(DEMO_COMPANY, DEMO_PUBLIC_KEY, DEMO_PRIVATE_KEY));

    let ok = call(good(), Some(DEMO_CLIENT_ID)).await?;
    assert_eq!(ok.status, StatusCode::OK);
    // The company id is case-insensitive, as logins are.
    let ok = call(
        Some(basic("DemoMSP", DEMO_PUBLIC_KEY, DEMO_PRIVATE_KEY)),
        Some(DEMO_CLIENT_ID),
    )
    .await?;
    assert_eq!(ok.status, StatusCode::OK);

    let no_client = call(good(), None).await?;
    assert_eq!(no_client.status, StatusCode::UNAUTHORIZED);
    assert!(
        no_client.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("clientId")
    );
    let bad_client = call(good(), Some("00000000-0000-0000-0000-000000000000")).await?;
    assert_eq!(bad_client.status, StatusCode::UNAUTHORIZED);
    assert!(
        bad_client.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("clientId")
    );

    for auth in [
        None,
        Some(basic("othermsp", DEMO_PUBLIC_KEY, DEMO_PRIVATE_KEY)),
        Some(basic(DEMO_COMPANY, "wrongpub", DEMO_PRIVATE_KEY)),
        Some(basic(DEMO_COMPANY, DEMO_PUBLIC_KEY, "wrong-private")),
        Some("Basic not-base64!".to_string()),
        Some("Bearer abc".to_string()),
        // Without the company+ prefix.
        Some(format!(
            "Basic {}",
            base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                format!("{DEMO_PUBLIC_KEY}:{DEMO_PRIVATE_KEY}")
            )
        )),
    ] {
        let a = call(auth.clone(), Some(DEMO_CLIENT_ID)).await?;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(a.body["code"], "Unauthorized");
        assert!(a.body["message"].is_string());
    }
    Ok(())
}

#[tokio::test]
async fn the_header_and_parameter_names_are_case_insensitive() -> Result<()> {
    let t = start(Config::default()).await?;
    let a = answer(
        t.http
            .get(t.url("company/companies"))
            .header(
                "authorization",
                basic(DEMO_COMPANY, DEMO_PUBLIC_KEY, DEMO_PRIVATE_KEY),
            )
            .header("clientid", DEMO_CLIENT_ID)
            .query(&[
                ("CONDITIONS", "id=12"),
                ("PageSize", "5"),
                ("recordId", "<object>"),
            ])
            .send()
            .await?,
    )
    .await?;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(crate::common::ids(&a.body), vec![12]);
    Ok(())
}
