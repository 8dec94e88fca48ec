//! Accounts storage, told on SQLite and on PostgreSQL.

use anyhow::Result;
use psabridge_store::identity::{LoginWindows, NewSession};
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

    // Password setup links: once, before they expire; a second revokes the first.
    store
        .create_password_setup(ann, "first", now + 1000)
        .await?;
    store
        .create_password_setup(ann, "setup", now + 1000)
        .await?;
    assert_eq!(store.password_setup_user("first", now).await?, None);
    assert_eq!(store.use_password_setup("first", now).await?, None);
    assert_eq!(store.password_setup_user("setup", now).await?, Some(ann));
    assert_eq!(store.use_password_setup("setup", now).await?, Some(ann));
    assert_eq!(store.password_setup_user("setup", now).await?, None);
    assert_eq!(store.use_password_setup("setup", now).await?, None);
    store.create_password_setup(ann, "late", now + 1000).await?;
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

    // Failed logins: by account and address (the pair), by account, by address; a success
    // makes the address known and forgets the pair's failures only.
    for i in 0..3 {
        store
            .record_login_failure("ANN@example.com", "10.0.0.1", now + i)
            .await?;
    }
    store
        .record_login_failure("ann@example.com", "10.0.0.2", now + 3)
        .await?;
    store
        .record_login_failure("eve@example.com", "10.0.0.1", now + 5)
        .await?;
    let windows = |since: i64| LoginWindows {
        pair_and_address_since: since,
        account_since: since,
        known_since: since,
    };
    let f = store
        .login_facts("ann@example.com", "10.0.0.1", windows(now))
        .await?;
    assert_eq!((f.pair.count, f.pair.last_at), (3, now + 2));
    assert_eq!((f.account.count, f.account.last_at), (4, now + 3));
    assert_eq!((f.address.count, f.address.last_at), (4, now + 5));
    assert!(!f.known_address);
    let recent = store
        .login_facts("ann@example.com", "10.0.0.1", windows(now + 2))
        .await?;
    assert_eq!((recent.pair.count, recent.account.count), (1, 2));
    store
        .record_login_success("Ann@Example.com", "10.0.0.1", now + 6)
        .await?;
    let f = store
        .login_facts("ann@example.com", "10.0.0.1", windows(now))
        .await?;
    assert_eq!((f.pair.count, f.account.count, f.address.count), (0, 1, 1));
    assert!(f.known_address);
    let later = store
        .login_facts("ann@example.com", "10.0.0.1", windows(now + 7))
        .await?;
    assert!(
        !later.known_address,
        "known only since the time asked about"
    );
    assert!(
        !store
            .login_facts("ann@example.com", "10.0.0.2", windows(now))
            .await?
            .known_address
    );

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
    // Dan's sessions: one for each partner, and one person-wide.
    let session = |hash: &'static str, partner: Option<&'static str>| NewSession {
        id_hash: hash,
        user_id: dan,
        partner_id: partner,
        auth_method: "password",
        idp_sid: None,
        csrf_token: "csrf",
        client_address: None,
        expires_at: now + 3_600_000,
    };
    store
        .create_session(&session("s-t", Some("msp-t")), now)
        .await?;
    store
        .create_session(&session("s-u", Some("msp-u")), now)
        .await?;
    store.create_session(&session("s-all", None), now).await?;
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
    assert!(store.session_by_hash("s-t", now + 2).await?.is_none());
    assert!(
        store.session_by_hash("s-u", now + 2).await?.is_some(),
        "the session for another partner stays"
    );
    assert!(
        store.session_by_hash("s-all", now + 2).await?.is_some(),
        "a person-wide session stays (it no longer reaches the partner)"
    );
    Ok(())
}

/// Invitations: nothing about the person is written or read into the partner's side until
/// the person accepts; a second invitation replaces the first (and its link).
async fn invitations(store: Store) -> Result<()> {
    use psabridge_store::invitations::{Invitee, NewInvitation};
    let now = 1_800_000_000_000i64;
    let hour = 3_600_000;
    store.create_partner("msp-a", "MSP A", now).await?;
    store.create_partner("msp-b", "MSP B", now).await?;
    let bea = store.create_user("bea@b.test", "Bea", now).await?;
    store.add_membership(bea, "msp-b", "primary", now).await?;
    let invite = |email: &'static str, role: &'static str, hash: &'static str| NewInvitation {
        partner_id: "msp-a",
        email,
        name: Some("Suggested Name"),
        role,
        token_hash: hash,
        invited_by: "user:1",
        expires_at: now + hour,
    };

    // An address with an account elsewhere, and one with none: the same invitation.
    let (to_bea, who) = store
        .invite(&invite("BEA@b.test", "technician", "h-bea"), now)
        .await?;
    assert_eq!(who, Invitee::NoPassword, "bea has no password in this test");
    assert_eq!(to_bea.email, "BEA@b.test");
    let (to_new, who) = store
        .invite(&invite("new@a.test", "read_only", "h-new-1"), now)
        .await?;
    assert_eq!(who, Invitee::NoAccount);
    assert!(
        store.user_by_email("new@a.test").await?.is_none(),
        "no person row yet"
    );
    assert!(
        store.member("msp-a", bea).await?.is_none(),
        "not a member until she accepts"
    );
    assert_eq!(store.invitations_of_partner("msp-a", now).await?.len(), 2);

    // Inviting again replaces the first invitation and its link.
    let (again, _) = store
        .invite(&invite("new@a.test", "admin", "h-new-2"), now)
        .await?;
    assert_ne!(again.id, to_new.id);
    assert!(store.invitation_by_token("h-new-1", now).await?.is_none());
    assert_eq!(store.invitations_of_partner("msp-a", now).await?.len(), 2);

    // Bea accepts after her own login; someone else cannot accept for her.
    let eve = store.create_user("eve@e.test", "Eve", now).await?;
    assert!(matches!(
        store.accept_invitation(to_bea.id, eve, now).await,
        Err(StoreError::NotFound(_))
    ));
    let accepted = store.accept_invitation(to_bea.id, bea, now).await?;
    assert_eq!(accepted.role, "technician");
    let member = store.member("msp-a", bea).await?.expect("member");
    assert_eq!(
        (member.role.as_str(), member.name.as_str()),
        ("technician", "Bea")
    );
    assert!(matches!(
        store.accept_invitation(to_bea.id, bea, now).await,
        Err(StoreError::NotFound(_))
    ));
    // A member cannot be invited again.
    assert!(matches!(
        store
            .invite(&invite("bea@b.test", "admin", "h-x"), now)
            .await,
        Err(StoreError::Conflict(_))
    ));
    // Nor a second Primary (and the refusal writes nothing).
    let primary = store.create_user("pat@a.test", "Pat", now).await?;
    store
        .add_membership(primary, "msp-a", "primary", now)
        .await?;
    assert!(matches!(
        store
            .invite(&invite("ghost@a.test", "primary", "h-g"), now)
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(store.invitation_by_token("h-g", now).await?.is_none());

    // The new person accepts through the link: the account is made with the password.
    assert!(
        matches!(
            store
                .accept_invitation_with_password("h-new-2", "phc", now + hour)
                .await,
            Err(StoreError::NotFound(_))
        ),
        "expired"
    );
    let by_link = store
        .accept_invitation_with_password("h-new-2", "phc", now)
        .await?;
    assert!(by_link.created);
    let new = store.user_by_id(by_link.user_id).await?.expect("person");
    assert_eq!(
        (new.name.as_str(), new.password_hash.as_deref()),
        ("Suggested Name", Some("phc"))
    );
    assert_eq!(
        store.member("msp-a", new.id).await?.expect("member").role,
        "admin"
    );
    assert!(
        matches!(
            store
                .accept_invitation_with_password("h-new-2", "phc2", now)
                .await,
            Err(StoreError::NotFound(_))
        ),
        "single use"
    );

    // A link can never set the password of an account that has one.
    let pw = store
        .create_user("has-pw@b.test", "Has Password", now)
        .await?;
    store.set_password_hash(pw, "theirs").await?;
    store
        .invite(&invite("has-pw@b.test", "read_only", "h-pw"), now)
        .await?;
    assert!(matches!(
        store
            .accept_invitation_with_password("h-pw", "attacker", now)
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store
            .user_by_id(pw)
            .await?
            .unwrap()
            .password_hash
            .as_deref(),
        Some("theirs")
    );
    assert!(store.member("msp-a", pw).await?.is_none());
    // They decline instead.
    let theirs = store.invitations_for("HAS-PW@b.test", now).await?;
    assert_eq!(theirs.len(), 1);
    store.decline_invitation(theirs[0].id, pw).await?;
    assert!(
        store
            .invitations_for("has-pw@b.test", now)
            .await?
            .is_empty()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_on_sqlite() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = Store::open(
        &StoreOptions::new(url),
        KeyRing::parse(&KeyRing::generate_key()).unwrap(),
    )
    .await?;
    invitations(store).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_on_postgres() -> Result<()> {
    let Some(admin) = pg_url_or_skip("invitations_on_postgres") else {
        return Ok(());
    };
    let db = TestDatabase::create(&admin).await?;
    let store = Store::open(
        &StoreOptions::new(&db.url),
        KeyRing::parse(&KeyRing::generate_key()).unwrap(),
    )
    .await?;
    let result = invitations(store.clone()).await;
    store.close().await;
    db.drop_database().await;
    result
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
