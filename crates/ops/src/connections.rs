//! PSA connections: create (checked and connected before it is kept), change (changed access
//! checked against the PSA before anything is stored), delete (refused while still used,
//! unless forced), connect again; their ticket defaults and catch-all.

use std::collections::BTreeMap;

use psabridge_core::event::FieldError;
use psabridge_core::secret::Secret;
use psabridge_core::settings::{CompanyContact, GroupingMode, PsaKind};
use psabridge_engine::connect::{ConnectError, adopt, check_unsaved, connect};
use psabridge_engine::connectors::BuildError;
use psabridge_identity::Permission;
use psabridge_psa::PsaError;
use psabridge_store::config::{Connection, NewConnection};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::Ops;
use crate::acting::Acting;
use crate::audit::snapshot;
use crate::error::{OpsError, Reference};
use crate::input::{now, present};
use crate::psa_checks::WithoutContact;
use crate::ticket_fields::{check_parents, check_required, patched_defaults, ticket_fields};
use crate::views::{ConnectedView, ConnectionView};

/// Longest name of a connection, in characters.
const MAX_NAME: usize = 100;

/// A new connection: which PSA, its name, how alerts are grouped into tickets, and the
/// credentials and settings its connector needs (`psabridge_psa::known_settings`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewConnectionRequest {
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub grouping: Option<String>,
    pub credentials: Map<String, Value>,
    #[serde(default)]
    pub settings: Map<String, Value>,
}

/// A JSON merge patch of a connection: a field left out is kept; `null` removes the
/// catch-all (and is refused for every other field, which cannot be removed).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionPatch {
    #[serde(default, deserialize_with = "present")]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub enabled: Option<Option<bool>>,
    #[serde(default, deserialize_with = "present")]
    pub grouping: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub catch_all: Option<Option<CatchAll>>,
    /// A merge patch of the ticket defaults: `null` removes one field.
    #[serde(default, deserialize_with = "present")]
    pub defaults: Option<Option<Map<String, Value>>>,
    #[serde(default, deserialize_with = "present")]
    pub credentials: Option<Option<Map<String, Value>>>,
    #[serde(default, deserialize_with = "present")]
    pub settings: Option<Option<Map<String, Value>>>,
    /// Close a grouped ticket (with `defaults.close_status`) once every alert it stands for
    /// has resolved.
    #[serde(default, deserialize_with = "present")]
    pub close_on_resolve: Option<Option<bool>>,
}

/// The company (and contact) of tickets whose client has no mapping.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatchAll {
    pub company: String,
    #[serde(default)]
    pub contact: Option<String>,
}

/// Non-secret settings and sealed-to-be secrets of a connection.
type SplitCredentials = (Map<String, Value>, BTreeMap<String, Secret>);

/// Split credentials into non-secret settings and secrets, checking names and presence.
fn split_credentials(
    kind: PsaKind,
    credentials: &Map<String, Value>,
    settings: &Map<String, Value>,
    require_all: bool,
) -> Result<SplitCredentials, OpsError> {
    let (known, secret_names) = psabridge_psa::known_settings(kind);
    let mut errors = Vec::new();
    let mut plain = Map::new();
    let mut secrets = BTreeMap::new();
    for (k, v) in credentials {
        if secret_names.contains(&k.as_str()) {
            match v.as_str().map(str::trim) {
                Some(t) if !t.is_empty() => {
                    secrets.insert(k.clone(), Secret::new(t));
                }
                _ => errors.push(FieldError::new(
                    format!("credentials.{k}"),
                    "must be a non-empty string",
                )),
            }
        } else if known.iter().any(|(n, _)| n == k) {
            plain.insert(k.clone(), v.clone());
        } else {
            errors.push(FieldError::new(
                format!("credentials.{k}"),
                "is not a credential of this PSA",
            ));
        }
    }
    for (k, v) in settings {
        if known.iter().any(|(n, _)| n == k) && !secret_names.contains(&k.as_str()) {
            plain.insert(k.clone(), v.clone());
        } else {
            errors.push(FieldError::new(
                format!("settings.{k}"),
                format!(
                    "is not a setting of this PSA (known: {})",
                    known.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    if let Some(url) = plain.get("zone_discovery_url") {
        match url.as_str() {
            Some(u) if u.starts_with("https://") || u.starts_with("http://") => {}
            _ => errors.push(FieldError::new(
                "credentials.zone_discovery_url",
                "must be an http(s) URL",
            )),
        }
    }
    if require_all {
        for name in psabridge_psa::required_settings(kind) {
            let given = matches!(plain.get(*name), Some(Value::String(v)) if !v.trim().is_empty())
                || matches!(plain.get(*name), Some(Value::Number(_)));
            if !given && !errors.iter().any(|e| e.path.ends_with(&format!(".{name}"))) {
                errors.push(FieldError::new(
                    format!("credentials.{name}"),
                    "is required",
                ));
            }
        }
        for name in secret_names {
            if !secrets.contains_key(*name)
                && !errors
                    .iter()
                    .any(|e| e.path == format!("credentials.{name}"))
            {
                errors.push(FieldError::new(
                    format!("credentials.{name}"),
                    "is required",
                ));
            }
        }
    }
    OpsError::check(errors).map(|()| (plain, secrets))
}

/// A change of where the PSA is (any URL, host or region) must bring every secret again: the
/// stored ones are never sent to a place they were not given for. Says whether it moved.
fn require_secrets_when_moved(
    kind: PsaKind,
    stored: &Map<String, Value>,
    changes: &Map<String, Value>,
    secrets: &BTreeMap<String, Secret>,
) -> Result<bool, OpsError> {
    let Some(moved) = changes
        .iter()
        .find(|(k, v)| psabridge_psa::is_location_setting(k) && stored.get(*k) != Some(*v))
        .map(|(k, _)| k)
    else {
        return Ok(false);
    };
    let (_, secret_names) = psabridge_psa::known_settings(kind);
    OpsError::check(
        secret_names
            .iter()
            .filter(|n| !secrets.contains_key(**n))
            .map(|n| {
                FieldError::new(
                    format!("credentials.{n}"),
                    format!("is required when {moved} changes"),
                )
            })
            .collect(),
    )
    .map(|()| true)
}

/// A failed "Connect", naming the credential most likely at fault.
pub fn connect_error(e: ConnectError) -> OpsError {
    let msg = e.to_string();
    let lower = msg.to_lowercase();
    let field = if lower.contains("integration code") {
        "credentials.integration_code"
    } else if lower.contains("user name or secret") || lower.contains("secret") {
        "credentials.secret"
    } else if lower.contains("knows no api user") || lower.contains("user name") {
        "credentials.username"
    } else if lower.contains("could not be reached") || lower.contains("zone discovery") {
        "credentials.zone_discovery_url"
    } else {
        "credentials"
    };
    match e {
        ConnectError::Psa(PsaError::Transient { .. })
        | ConnectError::Psa(PsaError::RateLimited { .. }) => OpsError::PsaNoAnswer(msg),
        ConnectError::Store(e) => e.into(),
        ConnectError::Refused { field, problem } => {
            OpsError::field(format!("credentials.{field}"), problem)
        }
        ConnectError::Settings(
            psabridge_psa::SettingsError::Missing(f)
            | psabridge_psa::SettingsError::Bad { field: f, .. },
        ) => OpsError::field(format!("credentials.{f}"), msg),
        _ => OpsError::ConnectFailed {
            field: field.to_string(),
            message: msg,
        },
    }
}

fn grouping_of(g: &str) -> Result<GroupingMode, OpsError> {
    GroupingMode::parse(g)
        .ok_or_else(|| OpsError::field("grouping", "must be user, user_and_alert or none"))
}

impl Ops {
    /// A connection as answers show it (with its breaker's pause).
    pub fn connection_view(&self, c: &Connection) -> ConnectionView {
        ConnectionView::of(
            c,
            self.engine.breakers.paused_for(c.id).map(|d| d.as_secs()),
        )
    }

    /// The partner's connections.
    pub async fn connections(
        &self,
        acting: &Acting,
        partner: &str,
    ) -> Result<Vec<ConnectionView>, OpsError> {
        self.partner_for(acting, partner, Permission::ViewSettings)
            .await?;
        let list = self.store.connections(Some(partner)).await?;
        Ok(list.iter().map(|c| self.connection_view(c)).collect())
    }

    /// One connection of the partner.
    pub async fn connection(
        &self,
        acting: &Acting,
        partner: &str,
        id: i64,
    ) -> Result<ConnectionView, OpsError> {
        acting.require(partner, Permission::ViewSettings)?;
        Ok(self.connection_view(&self.store.connection(partner, id).await?))
    }

    /// Create a connection and connect it ("Connect": check the credentials, load the PSA's
    /// lists, register its push). Nothing is kept of a connection that does not connect.
    pub async fn create_connection(
        &self,
        acting: &Acting,
        partner: &str,
        req: NewConnectionRequest,
    ) -> Result<ConnectedView, OpsError> {
        self.partner_for(acting, partner, Permission::ManageSettings)
            .await?;
        let kind = PsaKind::parse(&req.kind).ok_or_else(|| {
            OpsError::field(
                "kind",
                format!(
                    "'{}' is not a supported PSA (supported: {})",
                    req.kind,
                    PsaKind::ALL.map(PsaKind::as_str).join(", ")
                ),
            )
        })?;
        let grouping = req
            .grouping
            .as_deref()
            .map_or(Ok(GroupingMode::User), grouping_of)?;
        if req.name.trim().is_empty() || req.name.chars().count() > MAX_NAME {
            return Err(OpsError::field(
                "name",
                format!("must be 1 to {MAX_NAME} characters"),
            ));
        }
        let (settings, secrets) = split_credentials(kind, &req.credentials, &req.settings, true)?;
        // Where it points is checked before anything is stored or sent.
        self.engine
            .connectors
            .check_urls(&settings)
            .await
            .map_err(|e| match e {
                BuildError::Refused { field, problem } => {
                    OpsError::field(format!("credentials.{field}"), problem)
                }
                other => OpsError::Internal(other.to_string()),
            })?;
        let id = self
            .store
            .create_connection(
                &NewConnection {
                    partner_id: partner.to_string(),
                    kind,
                    name: req.name.trim().to_string(),
                    grouping,
                    settings,
                    secrets,
                },
                now(),
            )
            .await?;
        let conn = self.store.connection(partner, id).await?;
        match connect(&self.engine, &conn, self.public_url.as_deref()).await {
            Ok(done) => {
                let view = self.connection_view(&self.store.connection(partner, id).await?);
                self.audit(
                    acting,
                    Some(partner),
                    "connection.create",
                    &format!("connection:{id}"),
                    None,
                    Some(&snapshot(&view)),
                )
                .await;
                Ok(ConnectedView {
                    connection: view,
                    api_url: done.check.api_url,
                    webhook_note: done.webhook_note,
                })
            }
            Err(e) => {
                self.engine.connectors.forget(id);
                self.store.delete_connection(partner, id).await?;
                Err(connect_error(e))
            }
        }
    }

    /// Change a connection by a merge patch. Defaults are checked against the PSA's lists,
    /// each child against its parent and the PSA's required fields; a catch-all against the
    /// PSA; changed access against the PSA before anything is stored, so a refused change
    /// leaves the connection exactly as it was.
    pub async fn update_connection(
        &self,
        acting: &Acting,
        partner: &str,
        id: i64,
        patch: ConnectionPatch,
    ) -> Result<ConnectionView, OpsError> {
        let conn = self
            .connection_for(acting, partner, id, Permission::ManageSettings)
            .await?;
        let removed: Vec<FieldError> = [
            ("name", patch.name.as_ref().is_some_and(Option::is_none)),
            ("enabled", patch.enabled.is_some_and(|v| v.is_none())),
            (
                "grouping",
                patch.grouping.as_ref().is_some_and(Option::is_none),
            ),
            (
                "defaults",
                patch.defaults.as_ref().is_some_and(Option::is_none),
            ),
            (
                "credentials",
                patch.credentials.as_ref().is_some_and(Option::is_none),
            ),
            (
                "settings",
                patch.settings.as_ref().is_some_and(Option::is_none),
            ),
            (
                "close_on_resolve",
                patch.close_on_resolve.is_some_and(|v| v.is_none()),
            ),
        ]
        .into_iter()
        .filter(|(_, removed)| *removed)
        .map(|(f, _)| FieldError::new(f, "cannot be removed (null); leave it out to keep it"))
        .collect();
        OpsError::check(removed)?;
        let name = patch.name.flatten();
        let enabled = patch.enabled.flatten();
        let close_on_resolve = patch.close_on_resolve.flatten();
        let credentials = patch.credentials.flatten();
        let settings_patch = patch.settings.flatten();
        let before = snapshot(&self.connection_view(&conn));
        let grouping = patch
            .grouping
            .flatten()
            .as_deref()
            .map(grouping_of)
            .transpose()?;
        if let Some(n) = &name
            && (n.trim().is_empty() || n.chars().count() > MAX_NAME)
        {
            return Err(OpsError::field(
                "name",
                format!("must be 1 to {MAX_NAME} characters"),
            ));
        }
        let defaults = match patch.defaults.flatten() {
            Some(d) => {
                let merged = patched_defaults(conn.kind, &conn.defaults, &d);
                let f = ticket_fields(conn.kind, &merged, conn.lists.as_ref(), "defaults.")?;
                check_parents(conn.kind, &f, conn.lists.as_ref(), "defaults.")?;
                check_required(conn.kind, &f, "defaults.")?;
                Some(f)
            }
            None => None,
        };
        let catch_all = match patch.catch_all {
            Some(Some(ca)) => {
                self.check_company_contact(
                    &conn,
                    &ca.company,
                    ca.contact.as_deref(),
                    ("catch_all.", "contact"),
                    WithoutContact::Nobody,
                )
                .await?;
                Some(Some(CompanyContact {
                    company_id: ca.company,
                    contact_id: ca.contact,
                }))
            }
            Some(None) => Some(None),
            None => None,
        };
        let mut settings = None;
        let mut checked = None;
        let mut secrets_changed: Vec<String> = Vec::new();
        if credentials.is_some() || settings_patch.is_some() {
            let (plain, secrets) = split_credentials(
                conn.kind,
                credentials.as_ref().unwrap_or(&Map::new()),
                settings_patch.as_ref().unwrap_or(&Map::new()),
                false,
            )?;
            let moved = require_secrets_when_moved(conn.kind, &conn.settings, &plain, &secrets)?;
            let mut merged = conn.settings.clone();
            merged.extend(plain);
            if credentials.is_some() || moved {
                let mut prospective = conn.clone();
                prospective.settings = merged.clone();
                let mut all_secrets = self.store.connection_secrets(id).await?;
                all_secrets.extend(secrets.clone());
                let c = check_unsaved(&self.engine, &prospective, &all_secrets)
                    .await
                    .map_err(connect_error)?;
                self.store
                    .set_connection_access(id, &merged, &secrets, &c.lists_json(), now())
                    .await?;
                secrets_changed = secrets.keys().cloned().collect();
                checked = Some(c);
            } else {
                settings = Some(merged);
            }
        }
        self.store
            .update_connection(
                id,
                name.as_deref().map(str::trim),
                enabled,
                grouping,
                settings.as_ref(),
                catch_all.as_ref().map(|c| c.as_ref()),
                defaults.as_ref(),
                now(),
            )
            .await?;
        if let Some(on) = close_on_resolve {
            self.store.set_close_on_resolve(id, on, now()).await?;
        }
        let conn = self.store.connection(partner, id).await?;
        let mut after = snapshot(&self.connection_view(&conn));
        // Which secrets were replaced, by name: their values never reach the log.
        after["secrets_changed"] = serde_json::json!(secrets_changed);
        self.audit(
            acting,
            Some(partner),
            "connection.update",
            &format!("connection:{id}"),
            Some(&before),
            Some(&after),
        )
        .await;
        if let Some(c) = checked {
            adopt(&self.engine, &conn, c, self.public_url.as_deref())
                .await
                .map_err(connect_error)?;
        }
        Ok(self.connection_view(&self.store.connection(partner, id).await?))
    }

    /// Delete a connection. While the partner's default connection is this one or clients are
    /// mapped on it, the refusal names each reference, unless `force` (mappings go with it,
    /// pending deliveries become dead).
    pub async fn delete_connection(
        &self,
        acting: &Acting,
        partner: &str,
        id: i64,
        force: bool,
    ) -> Result<(), OpsError> {
        acting.require(partner, Permission::ManageSettings)?;
        let before = snapshot(&self.connection_view(&self.store.connection(partner, id).await?));
        let mut references = Vec::new();
        if self.store.partner(partner).await?.default_connection_id == Some(id) {
            references.push(Reference {
                what: "partner.default_connection".into(),
                detail:
                    "the partner's default connection (it takes the events of unmapped clients)"
                        .into(),
            });
        }
        for m in self.store.mappings(partner).await? {
            if m.connection_id == id {
                references.push(Reference {
                    what: format!("clients/{}/mappings/{id}", m.client_id),
                    detail: format!(
                        "client '{}' is mapped to company {}",
                        m.client_id, m.company_id
                    ),
                });
            }
        }
        if !references.is_empty() && !force {
            return Err(OpsError::Conflict {
                title: "The connection is still in use".into(),
                detail: format!(
                    "connection {id} is referenced {} time(s); remove those references first, or delete with ?force=true (mappings go with it, pending deliveries become dead)",
                    references.len()
                ),
                errors: Vec::new(),
                references,
            });
        }
        self.store.delete_connection(partner, id).await?;
        self.engine.connectors.forget(id);
        self.audit(
            acting,
            Some(partner),
            "connection.delete",
            &format!("connection:{id}"),
            Some(&before),
            None,
        )
        .await;
        Ok(())
    }

    /// "Connect" again: check the stored credentials, reload the PSA's lists, register its
    /// push.
    pub async fn reconnect(
        &self,
        acting: &Acting,
        partner: &str,
        id: i64,
    ) -> Result<ConnectedView, OpsError> {
        let conn = self
            .connection_for(acting, partner, id, Permission::ManageSettings)
            .await?;
        let done = connect(&self.engine, &conn, self.public_url.as_deref())
            .await
            .map_err(connect_error)?;
        Ok(ConnectedView {
            connection: self.connection_view(&self.store.connection(partner, id).await?),
            api_url: done.check.api_url,
            webhook_note: done.webhook_note,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_split_from_settings_and_each_missing_one_is_named() {
        for kind in PsaKind::ALL {
            let e = split_credentials(kind, &Map::new(), &Map::new(), true).unwrap_err();
            let (_, secret_names) = psabridge_psa::known_settings(kind);
            for name in secret_names {
                assert!(
                    e.field_errors()
                        .iter()
                        .any(|f| f.path == format!("credentials.{name}")),
                    "{kind:?} {name}"
                );
            }
        }
        let creds = json!({"nonsense": "x"});
        let e = split_credentials(
            PsaKind::Autotask,
            creds.as_object().unwrap(),
            &Map::new(),
            false,
        )
        .unwrap_err();
        assert_eq!(e.field_errors()[0].path, "credentials.nonsense");
    }

    #[test]
    fn a_null_patch_field_is_told_from_an_absent_one() {
        let p: ConnectionPatch =
            crate::input::from_json(json!({"catch_all": null, "name": "x"})).unwrap();
        assert!(matches!(p.catch_all, Some(None)));
        assert!(p.enabled.is_none());
        assert_eq!(p.name, Some(Some("x".to_string())));
    }
}
