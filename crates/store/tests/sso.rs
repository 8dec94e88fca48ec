//! "Log in with the IdP" storage, told on SQLite and on PostgreSQL.

use anyhow::Result;
use psabridge_store::identity::NewSession;
use psabridge_store::seal::KeyRing;
use psabridge_store::sso::{SsoContinuation, SsoSettingsUpdate};
use psabridge_store::testing::{TestDatabase, pg_url_or_skip};
use psabridge_store::{Store, StoreError, StoreOptions};

const CLIENT_SECRET: &str = "client-secret-4f1c2a9b7e3d";

async fn sso(store: Store, dir: Option<&std::path::Path>) -> Result<()> {
    let now = 1_800_000_000_000i64;
    store.create_partner("msp-a", "MSP A", now).await?;
    store.create_partner("msp-b", "MSP B", now).await?;
    let ann = store.create_user("ann@example.com", "Ann", now).await?;
    store
        .add_membership(ann, "msp-a", "technician", now)
        .await?;

    // Settings: none until written; creating needs the secret; an edit without it keeps it.
    assert!(store.sso_settings("msp-a").await?.is_none());
    let scopes = vec!["email".to_owned(), "profile".to_owned()];
    let mut update = SsoSettingsUpdate {
        issuer: "https://idp.example",
        client_id: "bridge",
        client_secret: None,
        scopes: &scopes,
        require_idp: false,
        jit_enabled: true,
        jit_default_role: "read_only",
        display_name: "Example IdP",
    };
    assert!(matches!(
        store.put_sso_settings("msp-a", &update, now).await,
        Err(StoreError::Invalid(_))
    ));
    update.client_secret = Some(CLIENT_SECRET);
    store.put_sso_settings("msp-a", &update, now).await?;
    update.client_secret = None;
    update.jit_default_role = "technician";
    store.put_sso_settings("msp-a", &update, now + 1).await?;
    let s = store.sso_settings("msp-a").await?.expect("configured");
    assert_eq!(s.client_secret.expose(), CLIENT_SECRET);
    assert_eq!(s.scopes, scopes);
    assert_eq!(s.jit_default_role, "technician");
    assert!(s.jit_enabled && !s.require_idp);
    assert_eq!((s.first_admin_idp_login_at, s.updated_at), (None, now + 1));
    assert!(
        store
            .put_sso_settings("nobody", &update, now)
            .await
            .is_err()
    );

    // The first administrator login is recorded once; a new issuer forgets it.
    assert!(store.record_admin_idp_login("msp-a", now + 5).await?);
    assert!(!store.record_admin_idp_login("msp-a", now + 9).await?);
    assert_eq!(
        store
            .sso_settings("msp-a")
            .await?
            .unwrap()
            .first_admin_idp_login_at,
        Some(now + 5)
    );
    store.put_sso_settings("msp-a", &update, now + 10).await?;
    assert_eq!(
        store
            .sso_settings("msp-a")
            .await?
            .unwrap()
            .first_admin_idp_login_at,
        Some(now + 5),
        "the same issuer keeps it"
    );
    update.issuer = "https://other-idp.example";
    store.put_sso_settings("msp-a", &update, now + 11).await?;
    assert_eq!(
        store
            .sso_settings("msp-a")
            .await?
            .unwrap()
            .first_admin_idp_login_at,
        None
    );
    update.client_secret = Some("b-secret");
    store.put_sso_settings("msp-b", &update, now).await?;
    assert_eq!(
        store
            .partners_with_issuer("https://other-idp.example")
            .await?,
        vec!["msp-a".to_owned(), "msp-b".to_owned()]
    );
    assert!(
        store
            .partners_with_issuer("https://idp.example")
            .await?
            .is_empty()
    );

    // Exemptions: added once, listed, removed once.
    store.add_sso_exemption("msp-a", ann, now).await?;
    assert!(matches!(
        store.add_sso_exemption("msp-a", ann, now).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.sso_exemptions("msp-a").await?, vec![ann]);
    assert!(store.is_sso_exempt("msp-a", ann).await?);
    assert!(!store.is_sso_exempt("msp-b", ann).await?);
    store.remove_sso_exemption("msp-a", ann).await?;
    assert!(matches!(
        store.remove_sso_exemption("msp-a", ann).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(store.sso_exemptions("msp-a").await?.is_empty());

    // A pending login: only its browser takes it, once, before it expires.
    store
        .save_pending_login(
            "state-1",
            "browser-1",
            "msp-a",
            "{\"nonce\":\"n\"}",
            now + 600_000,
        )
        .await?;
    assert!(
        store
            .save_pending_login("state-1", "browser-2", "msp-a", "{}", now + 600_000)
            .await
            .is_err()
    );
    assert!(
        store
            .take_pending_login("state-1", "browser-2", now)
            .await?
            .is_none(),
        "another browser cannot take it"
    );
    let (partner, payload) = store
        .take_pending_login("state-1", "browser-1", now)
        .await?
        .expect("taken");
    assert_eq!(
        (partner.as_str(), payload.expose()),
        ("msp-a", "{\"nonce\":\"n\"}")
    );
    assert!(
        store
            .take_pending_login("state-1", "browser-1", now)
            .await?
            .is_none(),
        "used once"
    );
    store
        .save_pending_login("state-2", "browser-1", "msp-a", "{}", now + 10)
        .await?;
    assert!(
        store
            .take_pending_login("state-2", "browser-1", now + 10)
            .await?
            .is_none(),
        "expired"
    );

    // A continuation: read without using, then used once; replaced per browser.
    let waiting = SsoContinuation {
        kind: "choose".into(),
        user_id: ann,
        issuer: "https://idp.example".into(),
        subject: "sub-ann".into(),
        idp_sid: Some("sid-1".into()),
        partner_id: None,
        expires_at: now + 600_000,
    };
    store.put_sso_continuation("browser-1", &waiting).await?;
    assert_eq!(
        store.sso_continuation("browser-1", "choose", now).await?,
        Some(waiting.clone())
    );
    assert!(
        store
            .sso_continuation("browser-1", "confirm", now)
            .await?
            .is_none()
    );
    let confirm = SsoContinuation {
        kind: "confirm".into(),
        partner_id: Some("msp-a".into()),
        ..waiting.clone()
    };
    store.put_sso_continuation("browser-1", &confirm).await?;
    assert!(
        store
            .sso_continuation("browser-1", "choose", now)
            .await?
            .is_none()
    );
    assert_eq!(
        store
            .take_sso_continuation("browser-1", "confirm", now)
            .await?,
        Some(confirm)
    );
    assert!(
        store
            .take_sso_continuation("browser-1", "confirm", now)
            .await?
            .is_none()
    );
    store.put_sso_continuation("browser-1", &waiting).await?;
    assert!(
        store
            .sso_continuation("browser-1", "choose", now + 600_000)
            .await?
            .is_none(),
        "expired"
    );

    // Back-channel logout: a token id is acted on once; sessions end by sid or by subject.
    assert!(
        store
            .remember_logout_token("https://idp.example", "jti-1", now + 120_000, now)
            .await?
    );
    assert!(
        !store
            .remember_logout_token("https://idp.example", "jti-1", now + 120_000, now)
            .await?
    );
    assert!(
        store
            .remember_logout_token("https://other.example", "jti-1", now + 120_000, now)
            .await?
    );
    store
        .link_identity("https://idp.example", "sub-ann", ann, now)
        .await?;
    let session =
        |hash: &'static str, method: &'static str, sid: Option<&'static str>| NewSession {
            id_hash: hash,
            user_id: ann,
            partner_id: Some("msp-a"),
            auth_method: method,
            idp_sid: sid,
            csrf_token: "csrf",
            client_address: None,
            expires_at: now + 3_600_000,
        };
    store
        .create_session(&session("h1", "idp", Some("sid-1")), now)
        .await?;
    store
        .create_session(&session("h2", "idp", Some("sid-2")), now)
        .await?;
    store
        .create_session(&session("h3", "password", None), now)
        .await?;
    assert!(
        store
            .revoke_idp_sessions("https://other.example", Some("sid-1"), None, now)
            .await?
            .is_empty(),
        "another issuer ends nothing"
    );
    assert_eq!(
        store
            .revoke_idp_sessions("https://idp.example", Some("sid-1"), None, now)
            .await?,
        vec![ann]
    );
    assert!(store.session_by_hash("h1", now).await?.is_none());
    assert!(store.session_by_hash("h2", now).await?.is_some());
    assert_eq!(
        store
            .revoke_idp_sessions("https://idp.example", None, Some("sub-ann"), now)
            .await?,
        vec![ann]
    );
    assert!(store.session_by_hash("h2", now).await?.is_none());
    assert!(
        store.session_by_hash("h3", now).await?.is_some(),
        "a password session is not the provider's to end"
    );

    // The client secret is never in the database in clear.
    if let Some(dir) = dir {
        store.close().await;
        for entry in std::fs::read_dir(dir)? {
            let bytes = std::fs::read(entry?.path())?;
            assert!(
                !bytes
                    .windows(CLIENT_SECRET.len())
                    .any(|w| w == CLIENT_SECRET.as_bytes()),
                "the client secret is in a database file in clear"
            );
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sso_on_sqlite() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = Store::open(
        &StoreOptions::new(url),
        KeyRing::parse(&KeyRing::generate_key()).unwrap(),
    )
    .await?;
    sso(store, Some(dir.path())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sso_on_postgres() -> Result<()> {
    let Some(admin) = pg_url_or_skip("sso_on_postgres") else {
        return Ok(());
    };
    let db = TestDatabase::create(&admin).await?;
    let store = Store::open(
        &StoreOptions::new(&db.url),
        KeyRing::parse(&KeyRing::generate_key()).unwrap(),
    )
    .await?;
    let result = sso(store.clone(), None).await;
    store.close().await;
    db.drop_database().await;
    result
}
