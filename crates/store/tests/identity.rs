//! Accounts storage, told on SQLite and on PostgreSQL.

use anyhow::Result;
use psabridge_store::identity::NewSession;
use psabridge_store::seal::KeyRing;
use psabridge_store::testing::{TestDatabase, pg_url_or_skip};
use psabridge_store::{Store, StoreError, StoreOptions};

async fn accounts(store: Store, dir: Option<&std::path::Path>) -> Result<()> {
    let now = 1_800_000_000_000i64;
    store.create_partner("msp-a", "MSP A", now).await?;
    store.create_partner("msp-b", "MSP B", now).await?;

    // A person; the email is unique whatever its case.
    let ann = store.create_user("Ann@Example.com", "Ann", now).await?;
    assert!(matches!(
        store.create_user("ann@example.COM", "Other Ann", now).await,
        Err(StoreError::Conflict(_))
    ));
    let found = store
        .user_by_email("ANN@example.com")
        .await?
        .expect("found");
    assert_eq!(found.id, ann);
    assert_eq!(found.email, "Ann@Example.com");
    assert!(found.active && !found.totp_enabled && found.password_hash.is_none());
    store.set_password_hash(ann, "$argon2id$fake").await?;
    assert_eq!(
        store
            .user_by_id(ann)
            .await?
            .unwrap()
            .password_hash
            .as_deref(),
        Some("$argon2id$fake")
    );

    // Memberships: one Primary per partner; a person may belong to several partners.
    let bob = store.create_user("bob@example.com", "Bob", now).await?;
    store.add_membership(ann, "msp-a", "primary", now).await?;
    assert!(matches!(
        store.add_membership(bob, "msp-a", "primary", now).await,
        Err(StoreError::Conflict(_))
    ));
    store.add_membership(bob, "msp-a", "read_only", now).await?;
    assert!(matches!(
        store.add_membership(bob, "msp-a", "admin", now).await,
        Err(StoreError::Conflict(_))
    ));
    store.add_membership(bob, "msp-b", "primary", now).await?;
    assert!(matches!(
        store.set_member_role("msp-a", bob, "primary").await,
        Err(StoreError::Conflict(_))
    ));
    let of_bob = store.memberships_of(bob).await?;
    assert_eq!(of_bob.len(), 2);
    assert_eq!(of_bob[0].partner_id, "msp-a");
    assert_eq!(of_bob[0].role, "read_only");
    let members = store.members_of("msp-a").await?;
    assert_eq!(members.len(), 2);
    assert_eq!(members[0].email, "Ann@Example.com");
    assert!(members[0].password_set);

    // Primary passes from Ann to Bob; Ann becomes a Security Admin.
    store
        .transfer_primary("msp-a", ann, bob, "security_admin")
        .await?;
    assert_eq!(store.member("msp-a", bob).await?.unwrap().role, "primary");
    assert_eq!(
        store.member("msp-a", ann).await?.unwrap().role,
        "security_admin"
    );
    assert!(
        store
            .transfer_primary("msp-a", ann, bob, "admin")
            .await
            .is_err()
    );

    // TOTP: pending until confirmed, sealed at rest, replay-protected.
    store
        .set_pending_totp(ann, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
        .await?;
    assert!(store.totp_secret(ann).await?.is_none());
    assert_eq!(
        store.pending_totp(ann).await?.unwrap().expose(),
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
    );
    let codes = vec!["h1".to_string(), "h2".to_string()];
    store.confirm_totp(ann, 100, &codes).await?;
    assert!(
        store.confirm_totp(ann, 101, &codes).await.is_err(),
        "nothing pending"
    );
    assert!(store.user_by_id(ann).await?.unwrap().totp_enabled);
    assert!(store.pending_totp(ann).await?.is_none());
    assert!(store.totp_secret(ann).await?.is_some());
    assert!(
        !store.accept_totp_step(ann, 100).await?,
        "the confirming step is used"
    );
    assert!(store.accept_totp_step(ann, 101).await?);
    assert!(!store.accept_totp_step(ann, 101).await?, "replay");
    assert!(!store.accept_totp_step(ann, 99).await?, "an earlier step");

    // Recovery codes: each once.
    assert_eq!(store.recovery_codes_left(ann).await?, 2);
    assert!(store.use_recovery_code(ann, "h1", now).await?);
    assert!(!store.use_recovery_code(ann, "h1", now).await?);
    assert!(!store.use_recovery_code(bob, "h2", now).await?, "not Bob's");
    assert_eq!(store.recovery_codes_left(ann).await?, 1);

    // Sessions.
    let session = |hash: &'static str, user: i64| NewSession {
        id_hash: hash,
        user_id: user,
        partner_id: Some("msp-a"),
        auth_method: "password_totp",
        idp_sid: None,
        csrf_token: "csrf",
        client_address: Some("127.0.0.1"),
        expires_at: now + 3_600_000,
    };
    let s1 = store.create_session(&session("hash-1", ann), now).await?;
    let s2 = store.create_session(&session("hash-2", ann), now).await?;
    let s3 = store.create_session(&session("hash-3", bob), now).await?;
    let live = store
        .session_by_hash("hash-1", now + 1)
        .await?
        .expect("live");
    assert_eq!((live.id, live.user_id), (s1, ann));
    assert_eq!(live.partner_id.as_deref(), Some("msp-a"));
    assert!(
        store
            .session_by_hash("hash-1", now + 3_600_000)
            .await?
            .is_none(),
        "expired"
    );
    store.touch_session(s1, now + 10, now + 7_200_000).await?;
    assert!(
        store
            .session_by_hash("hash-1", now + 3_600_000)
            .await?
            .is_some(),
        "slid"
    );
    assert_eq!(store.sessions_of(ann, now).await?.len(), 2);
    assert!(matches!(
        store.revoke_session(bob, s1, now).await,
        Err(StoreError::NotFound(_))
    ));
    store.revoke_session(ann, s2, now).await?;
    assert!(store.session_by_hash("hash-2", now).await?.is_none());
    assert!(store.revoke_session(ann, s2, now).await.is_err());

    // Deactivating a membership ends the person's sessions at once.
    assert_eq!(store.set_member_active("msp-a", ann, false, now).await?, 1);
    assert!(store.session_by_hash("hash-1", now).await?.is_none());
    assert!(!store.member("msp-a", ann).await?.unwrap().active);
    store.set_member_active("msp-a", ann, true, now).await?;
    assert!(store.member("msp-a", ann).await?.unwrap().active);
    // Deactivating the person everywhere, too.
    assert_eq!(store.deactivate_user(bob, now).await?, 1);
    assert!(store.session_by_hash("hash-3", now).await?.is_none());
    assert!(!store.user_by_id(bob).await?.unwrap().active);
    let _ = s3;
    store.remove_membership("msp-a", ann, now).await?;
    assert!(store.member("msp-a", ann).await?.is_none());

    // Password setup links: once, before they expire.
    store
        .create_password_setup(ann, "setup", now + 1000)
        .await?;
    store.create_password_setup(ann, "late", now + 1000).await?;
    assert_eq!(store.password_setup_user("setup", now).await?, Some(ann));
    assert_eq!(store.use_password_setup("setup", now).await?, Some(ann));
    assert_eq!(store.password_setup_user("setup", now).await?, None);
    assert_eq!(store.use_password_setup("setup", now).await?, None);
    assert_eq!(store.use_password_setup("late", now + 1000).await?, None);

    // Identity-provider links, keyed on (issuer, subject).
    store
        .link_identity("https://idp", "sub-1", ann, now)
        .await?;
    assert!(matches!(
        store.link_identity("https://idp", "sub-1", bob, now).await,
        Err(StoreError::Conflict(_))
    ));
    store
        .link_identity("https://other", "sub-1", bob, now)
        .await?;
    assert_eq!(
        store.user_of_identity("https://idp", "sub-1").await?,
        Some(ann)
    );
    assert_eq!(store.user_of_identity("https://idp", "sub-2").await?, None);

    // Failed logins, by email (any case) and by address.
    for i in 0..3 {
        store
            .record_login_failure("ANN@example.com", "10.0.0.1", now + i)
            .await?;
    }
    store
        .record_login_failure("eve@example.com", "10.0.0.1", now + 5)
        .await?;
    let (by_email, by_address) = store
        .login_failures("ann@example.com", "10.0.0.1", now)
        .await?;
    assert_eq!((by_email.count, by_email.last_at), (3, now + 2));
    assert_eq!((by_address.count, by_address.last_at), (4, now + 5));
    let (recent, _) = store
        .login_failures("ann@example.com", "x", now + 2)
        .await?;
    assert_eq!(recent.count, 1);
    store.clear_login_failures("Ann@Example.com").await?;
    let (by_email, by_address) = store
        .login_failures("ann@example.com", "10.0.0.1", now)
        .await?;
    assert_eq!((by_email.count, by_address.count), (0, 1));

    // The TOTP secret is never in the database in clear.
    if let Some(dir) = dir {
        store.close().await;
        for entry in std::fs::read_dir(dir)? {
            let bytes = std::fs::read(entry?.path())?;
            assert!(
                !bytes
                    .windows(32)
                    .any(|w| w == b"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
                "the TOTP secret is in a database file in clear"
            );
        }
    }
    Ok(())
}

/// An identity provider's deprovisioning takes the person's sessions and the API tokens they
/// made for that partner with it, in one transaction; their tokens elsewhere stay.
async fn deprovisioning_revokes_tokens(store: Store) -> Result<()> {
    use psabridge_store::config::NewToken;
    use psabridge_store::scim::{DeprovisionAction, Deprovisioned};
    let now = 1_800_000_000_000i64;
    store.create_partner("msp-t", "MSP T", now).await?;
    store.create_partner("msp-u", "MSP U", now).await?;
    let dan = store.create_user("dan@example.com", "Dan", now).await?;
    store.add_membership(dan, "msp-t", "admin", now).await?;
    store.add_membership(dan, "msp-u", "admin", now).await?;
    let token = |hash: &'static str, partner: &'static str| NewToken {
        token_hash: hash,
        partner: Some(partner),
        name: "made by dan",
        scopes: "settings:read",
        expires_at: None,
        created_by_user: Some(dan),
    };
    store
        .create_scoped_token(&token("hash-t", "msp-t"), now)
        .await?;
    store
        .create_scoped_token(&token("hash-u", "msp-u"), now)
        .await?;
    assert!(store.principal_of_token("hash-t").await?.is_some());
    let done = store
        .deprovision(
            "msp-t",
            dan,
            DeprovisionAction::Deactivate,
            "scim",
            "test",
            now + 1,
        )
        .await?;
    assert!(
        matches!(
            done,
            Deprovisioned::Done {
                tokens_revoked: 1,
                ..
            }
        ),
        "{done:?}"
    );
    assert!(store.principal_of_token("hash-t").await?.is_none());
    assert!(
        store.principal_of_token("hash-u").await?.is_some(),
        "a token for another partner stays"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deprovisioning_revokes_tokens_on_sqlite() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = Store::open(
        &StoreOptions::new(url),
        KeyRing::parse(&KeyRing::generate_key()).unwrap(),
    )
    .await?;
    deprovisioning_revokes_tokens(store).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deprovisioning_revokes_tokens_on_postgres() -> Result<()> {
    let Some(admin) = pg_url_or_skip("deprovisioning_revokes_tokens_on_postgres") else {
        return Ok(());
    };
    let db = TestDatabase::create(&admin).await?;
    let store = Store::open(
        &StoreOptions::new(&db.url),
        KeyRing::parse(&KeyRing::generate_key()).unwrap(),
    )
    .await?;
    let result = deprovisioning_revokes_tokens(store.clone()).await;
    store.close().await;
    db.drop_database().await;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_on_sqlite() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = Store::open(
        &StoreOptions::new(url),
        KeyRing::parse(&KeyRing::generate_key()).unwrap(),
    )
    .await?;
    accounts(store, Some(dir.path())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_on_postgres() -> Result<()> {
    let Some(admin) = pg_url_or_skip("accounts_on_postgres") else {
        return Ok(());
    };
    let db = TestDatabase::create(&admin).await?;
    let store = Store::open(
        &StoreOptions::new(&db.url),
        KeyRing::parse(&KeyRing::generate_key()).unwrap(),
    )
    .await?;
    let result = accounts(store.clone(), None).await;
    store.close().await;
    db.drop_database().await;
    result
}
