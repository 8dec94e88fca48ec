//! Operations against a real store, on SQLite and on PostgreSQL: the permission check comes
//! first, every refusal names its fields and changes nothing, references refuse a delete, and
//! each change writes its audit entry under the acting principal's name.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;
use psabridge_core::catalog::Catalog;
use psabridge_core::settings::{GroupingMode, PsaKind};
use psabridge_engine::{ConnectorRegistry, Engine, EngineConfig};
use psabridge_identity::Role;
use psabridge_identity::scopes::Scope;
use psabridge_ops::email::EmailSettingRequest;
use psabridge_ops::input::from_json;
use psabridge_ops::profiles::{EventSetRequest, IntegrationRuleRequest, TemplateRequest};
use psabridge_ops::{Acting, Authority, Ops, OpsError, Principal};
use psabridge_store::config::NewConnection;
use psabridge_store::seal::KeyRing;
use psabridge_store::testing::{TestDatabase, pg_url_or_skip};
use psabridge_store::{Store, StoreOptions};
use serde_json::json;

const CATALOG: &str = "[[event_type]]\nkey = \"a\"\nname = \"Alert A\"\ncategory = \"X\"\n\n\
                       [[event_type]]\nkey = \"b\"\nname = \"Alert B\"\ncategory = \"X\"\n";

struct Fixture {
    ops: Ops,
    store: Store,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<TestDatabase>,
}

async fn fixture(pg: bool, what: &str) -> Result<Option<Fixture>> {
    let keys = KeyRing::parse(&KeyRing::generate_key()).map_err(anyhow::Error::msg)?;
    let (store, dir, db) = if pg {
        let Some(admin) = pg_url_or_skip(what) else {
            return Ok(None);
        };
        let db = TestDatabase::create(&admin).await?;
        let store = Store::open(&StoreOptions::new(&db.url), keys).await?;
        (store, None, Some(db))
    } else {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        (
            Store::open(&StoreOptions::new(url), keys).await?,
            Some(dir),
            None,
        )
    };
    let engine = Engine::new(
        store.clone(),
        ConnectorRegistry::new(),
        Arc::new(Catalog::parse(CATALOG)?),
        EngineConfig::default(),
    );
    engine.catalog.follow(&store, 0).await?;
    store.create_partner("acme", "Acme IT", 1).await?;
    store.create_partner("globex", "Globex", 1).await?;
    Ok(Some(Fixture {
        ops: Ops::new(engine, None),
        store,
        _dir: dir,
        _pg: db,
    }))
}

fn person(role: Role) -> Acting {
    Acting {
        principal: Principal::Partner("acme".into()),
        actor: "user:7 \"ann@acme.example\"".into(),
        authority: Authority::Role(role),
    }
}

fn token_of(partner: &str) -> Acting {
    Acting {
        principal: Principal::Partner(partner.into()),
        actor: format!("token:3 \"{partner}-automation\""),
        authority: Authority::Scopes(Scope::ALL.to_vec()),
    }
}

fn paths(e: &OpsError) -> Vec<String> {
    e.field_errors().iter().map(|f| f.path.clone()).collect()
}

async fn operations_keep_their_rules(pg: bool) -> Result<()> {
    let Some(f) = fixture(pg, "ops::operations_keep_their_rules").await? else {
        return Ok(());
    };
    let admin = person(Role::Admin);
    let set: EventSetRequest = from_json(json!({"name": "Security", "event_types": ["a"]}))?;

    // Permission first: a read-only person may look, not change; another partner's token is
    // told the partner does not exist.
    let refused = f
        .ops
        .create_event_set(&person(Role::ReadOnly), "acme", set.clone())
        .await;
    assert!(
        matches!(refused, Err(OpsError::Forbidden(_))),
        "{refused:?}"
    );
    assert!(
        f.ops
            .event_sets(&person(Role::ReadOnly), "acme")
            .await?
            .is_empty()
    );
    let other = f
        .ops
        .create_event_set(&token_of("globex"), "acme", set.clone())
        .await;
    assert!(matches!(other, Err(OpsError::NotFound(_))), "{other:?}");

    // Every bad field is named by its path, and nothing is stored.
    let bad: EventSetRequest = from_json(json!({"name": " ", "event_types": ["a", "nope"]}))?;
    let e = f
        .ops
        .create_event_set(&admin, "acme", bad)
        .await
        .unwrap_err();
    assert_eq!(paths(&e), ["name", "event_types[1]"]);
    assert!(f.store.event_sets("acme").await?.is_empty());

    // A change is audited under the acting principal's name.
    let created = f.ops.create_event_set(&admin, "acme", set).await?;
    let log = f.store.audit_log("acme", None, 10).await?;
    assert_eq!(log[0].action, "event_set.create");
    assert_eq!(log[0].actor, admin.actor);
    assert_eq!(log[0].after.as_ref().unwrap()["name"], "Security");

    // A connection stored without "Connect" has no lists: a template naming a field is
    // refused by the field's path; an unknown field names the PSA's fields.
    let conn = f
        .store
        .create_connection(
            &NewConnection {
                partner_id: "acme".into(),
                kind: PsaKind::Autotask,
                name: "AT".into(),
                grouping: GroupingMode::User,
                settings: Default::default(),
                secrets: BTreeMap::new(),
            },
            1,
        )
        .await?;
    let t: TemplateRequest =
        from_json(json!({"name": "T", "fields": {"queue": "5", "colour": "red"}}))?;
    let e = f
        .ops
        .create_template(&admin, "acme", conn, t)
        .await
        .unwrap_err();
    let mut p = paths(&e);
    p.sort();
    assert_eq!(p, ["fields.colour", "fields.queue"]);

    // A rule must name the partner's event set; once it does, the set cannot be deleted, and
    // the refusal names the rule.
    let wrong: IntegrationRuleRequest =
        from_json(json!({"name": "R", "event_set": created.id + 100}))?;
    let e = f
        .ops
        .create_integration_rule(&admin, "acme", conn, wrong)
        .await
        .unwrap_err();
    assert_eq!(paths(&e), ["event_set"]);
    let rule: IntegrationRuleRequest =
        from_json(json!({"name": "R", "event_set": created.id, "default": true}))?;
    let rule = f
        .ops
        .create_integration_rule(&admin, "acme", conn, rule)
        .await?;
    match f.ops.delete_event_set(&admin, "acme", created.id).await {
        Err(OpsError::Conflict { references, .. }) => {
            assert_eq!(references[0].what, format!("integration-rules/{}", rule.id));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(f.store.event_sets("acme").await?.len(), 1);

    // Email: a bad address is named; switching on without SMTP is refused naming `enabled`.
    let bad: EmailSettingRequest =
        from_json(json!({"enabled": true, "addresses": "ops@acme.example; not an address"}))?;
    let e = f
        .ops
        .put_email_setting(&admin, "acme", "a", bad)
        .await
        .unwrap_err();
    assert_eq!(paths(&e), ["addresses"]);
    let on: EmailSettingRequest =
        from_json(json!({"enabled": true, "addresses": "ops@acme.example"}))?;
    let e = f
        .ops
        .put_email_setting(&admin, "acme", "a", on)
        .await
        .unwrap_err();
    assert!(matches!(&e, OpsError::Conflict { .. }), "{e:?}");
    assert_eq!(paths(&e), ["enabled"]);
    let off: EmailSettingRequest =
        from_json(json!({"enabled": false, "addresses": "ops@acme.example"}))?;
    let saved = f.ops.put_email_setting(&admin, "acme", "a", off).await?;
    assert_eq!(saved.addresses, "ops@acme.example");
    let unknown: EmailSettingRequest = from_json(json!({"enabled": false}))?;
    let e = f
        .ops
        .put_email_setting(&admin, "acme", "zzz", unknown)
        .await;
    assert!(matches!(e, Err(OpsError::NotFound(_))), "{e:?}");

    // The operator (the command line) may do everything, at every partner.
    let op = Acting::operator("cli");
    let list = f.ops.integration_rules(&op, "acme", conn).await?;
    assert_eq!(list.len(), 1);
    assert!(list[0].default);
    Ok(())
}

#[tokio::test]
async fn operations_keep_their_rules_sqlite() -> Result<()> {
    operations_keep_their_rules(false).await
}

#[tokio::test]
async fn operations_keep_their_rules_postgres() -> Result<()> {
    operations_keep_their_rules(true).await
}
