//! Clients (a vendor's customers) and their mappings to PSA companies: the company, default
//! contact and contract are checked in the PSA; the event set and template must be the
//! partner's and the connection's; the re-fire policy is checked whole.

use psabridge_core::event::FieldError;
use psabridge_core::settings::Refire;
use psabridge_identity::Permission;
pub use psabridge_store::client_pages::ClientFilter;
use psabridge_store::config::MappingRow;
use serde::Deserialize;

use crate::Ops;
use crate::acting::Acting;
use crate::audit::snapshot;
use crate::error::OpsError;
use crate::input::{now, valid_id};
use crate::psa_checks::WithoutContact;
use crate::views::{ClientView, MappingView};

/// Longest name of a client, in characters.
const MAX_CLIENT_NAME: usize = 200;

const CLIENT_ID: &str = "ids are 1 to 100 letters, digits, '.', '_', ':' or '-'";

/// A client's name (the client is created if it is new).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRequest {
    pub name: String,
}

/// A client's mapping to a PSA company on one connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingRequest {
    pub company: String,
    #[serde(default)]
    pub default_contact: Option<String>,
    #[serde(default = "yes")]
    pub create_tickets: bool,
    /// Names the client if it is new (else its id is its name).
    #[serde(default)]
    pub client_name: Option<String>,
    /// The mapping's own event set and template (else the connection's default rule's).
    #[serde(default)]
    pub event_set: Option<i64>,
    #[serde(default)]
    pub template: Option<i64>,
    /// The PSA contract every ticket of this client carries.
    #[serde(default)]
    pub contract: Option<String>,
    #[serde(default)]
    pub refire: Option<RefireRequest>,
}

/// What an alert does when its group's last ticket is closed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefireRequest {
    /// `new_ticket` (default), `reopen` or `note_only`.
    pub mode: String,
    /// With `reopen` only: reopen a ticket closed less than this long ago (1 to 720 hours).
    #[serde(default)]
    pub reopen_within_hours: Option<i64>,
}

fn yes() -> bool {
    true
}

/// The re-fire policy of a request; the default is a new ticket.
pub fn refire_of(b: Option<&RefireRequest>) -> Result<Refire, OpsError> {
    let Some(b) = b else {
        return Ok(Refire::NewTicket);
    };
    match (b.mode.as_str(), b.reopen_within_hours) {
        ("reopen", None) => Err(OpsError::field(
            "refire.reopen_within_hours",
            "is required when mode is \"reopen\" (1 to 720)",
        )),
        ("reopen", Some(h)) if !(1..=720).contains(&h) => Err(OpsError::field(
            "refire.reopen_within_hours",
            format!("{h} is outside 1 to 720 hours"),
        )),
        ("new_ticket" | "note_only", Some(_)) => Err(OpsError::field(
            "refire.reopen_within_hours",
            "applies only when mode is \"reopen\"",
        )),
        (mode, h) => Refire::from_parts(mode, h.map(|h| h * 3600)).ok_or_else(|| {
            OpsError::field(
                "refire.mode",
                format!("'{mode}' is not a re-fire mode (new_ticket, reopen, note_only)"),
            )
        }),
    }
}

impl Ops {
    /// The partner's clients.
    pub async fn clients(
        &self,
        acting: &Acting,
        partner: &str,
    ) -> Result<Vec<ClientView>, OpsError> {
        self.partner_for(acting, partner, Permission::ViewSettings)
            .await?;
        Ok(self
            .store
            .clients(partner)
            .await?
            .iter()
            .map(ClientView::of)
            .collect())
    }

    pub async fn client(
        &self,
        acting: &Acting,
        partner: &str,
        client: &str,
    ) -> Result<ClientView, OpsError> {
        acting.require(partner, Permission::ViewSettings)?;
        Ok(ClientView::of(&self.store.client(partner, client).await?))
    }

    /// Name a client, creating it if it is new.
    pub async fn put_client(
        &self,
        acting: &Acting,
        partner: &str,
        client: &str,
        req: ClientRequest,
    ) -> Result<ClientView, OpsError> {
        // An unknown partner is not found (404), not a client that refers to nothing.
        self.partner_for(acting, partner, Permission::ManageSettings)
            .await?;
        if !valid_id(client) {
            return Err(OpsError::field("client", CLIENT_ID));
        }
        let name = req.name.trim();
        if name.is_empty() || name.chars().count() > MAX_CLIENT_NAME {
            return Err(OpsError::field(
                "name",
                format!("must be 1 to {MAX_CLIENT_NAME} characters"),
            ));
        }
        let before = self
            .store
            .client(partner, client)
            .await
            .ok()
            .map(|c| snapshot(&ClientView::of(&c)));
        self.store.put_client(partner, client, name, now()).await?;
        let after = ClientView::of(&self.store.client(partner, client).await?);
        self.audit(
            acting,
            Some(partner),
            "client.put",
            &format!("client:{client}"),
            before.as_ref(),
            Some(&snapshot(&after)),
        )
        .await;
        Ok(after)
    }

    /// The partner's mappings, on every connection.
    pub async fn mappings(
        &self,
        acting: &Acting,
        partner: &str,
    ) -> Result<Vec<MappingView>, OpsError> {
        acting.require(partner, Permission::ViewSettings)?;
        Ok(self
            .store
            .mappings(partner)
            .await?
            .iter()
            .map(MappingView::of)
            .collect())
    }

    async fn mapping_of(
        &self,
        partner: &str,
        client: &str,
        connection: i64,
    ) -> Result<Option<MappingView>, OpsError> {
        Ok(self
            .store
            .mappings_of(partner, &[client.to_string()])
            .await?
            .iter()
            .find(|m| m.connection_id == connection)
            .map(MappingView::of))
    }

    /// One page of the partner's clients that `filter` selects (ordered by name), and how
    /// many match in all: a list screen reads its page, not every client.
    pub async fn client_page(
        &self,
        acting: &Acting,
        partner: &str,
        filter: &ClientFilter,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<ClientView>, i64), OpsError> {
        acting.require(partner, Permission::ViewSettings)?;
        let page = self
            .store
            .client_page(partner, filter, offset, limit)
            .await?;
        Ok((
            page.clients.iter().map(ClientView::of).collect(),
            page.total,
        ))
    }

    /// The mappings of these clients, on every connection.
    pub async fn mappings_of(
        &self,
        acting: &Acting,
        partner: &str,
        clients: &[String],
    ) -> Result<Vec<MappingView>, OpsError> {
        acting.require(partner, Permission::ViewSettings)?;
        Ok(self
            .store
            .mappings_of(partner, clients)
            .await?
            .iter()
            .map(MappingView::of)
            .collect())
    }

    /// Map a client to a PSA company on a connection (replacing its mapping there). The
    /// company, contact and contract are checked in the PSA.
    pub async fn put_mapping(
        &self,
        acting: &Acting,
        partner: &str,
        client: &str,
        connection: i64,
        req: MappingRequest,
    ) -> Result<MappingView, OpsError> {
        acting.require(partner, Permission::ManageSettings)?;
        if !valid_id(client) {
            return Err(OpsError::field("client", CLIENT_ID));
        }
        let conn = self.store.connection(partner, connection).await?;
        let refire = refire_of(req.refire.as_ref())?;
        self.check_profile(
            partner,
            connection,
            req.event_set,
            req.template,
            ("event_set", "template"),
        )
        .await?;
        let contract = req
            .contract
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty());
        if let Some(c) = contract
            && !valid_id(c)
        {
            return Err(OpsError::field(
                "contract",
                "must be the PSA's id of a contract",
            ));
        }
        self.check_company_contact(
            &conn,
            &req.company,
            req.default_contact.as_deref(),
            ("", "default_contact"),
            WithoutContact::CompanyPrimary,
        )
        .await?;
        if let Some(c) = contract {
            self.check_contract(&conn, &req.company, c).await?;
        }
        let before = self.mapping_of(partner, client, connection).await?;
        let row = MappingRow {
            connection_id: connection,
            client_id: client.to_string(),
            company_id: req.company,
            default_contact_id: req.default_contact,
            create_tickets: req.create_tickets,
            mapped_at: now(),
            event_set_id: req.event_set,
            template_id: req.template,
            contract_id: contract.map(str::to_string),
            refire,
        };
        self.store
            .put_mapping(partner, &row, req.client_name.as_deref())
            .await?;
        if let Some(name) = req.client_name.as_deref().filter(|n| !n.trim().is_empty()) {
            self.store
                .put_client(partner, client, name.trim(), now())
                .await?;
        }
        let after = self
            .mapping_of(partner, client, connection)
            .await?
            .ok_or_else(|| OpsError::Internal("the mapping vanished".into()))?;
        self.audit(
            acting,
            Some(partner),
            "mapping.put",
            &format!("mapping:{client}:{connection}"),
            before.as_ref().map(snapshot).as_ref(),
            Some(&snapshot(&after)),
        )
        .await;
        Ok(after)
    }

    /// Remove a client's mapping on a connection (its events go to the catch-all again).
    pub async fn delete_mapping(
        &self,
        acting: &Acting,
        partner: &str,
        client: &str,
        connection: i64,
    ) -> Result<(), OpsError> {
        acting.require(partner, Permission::ManageSettings)?;
        let before = self.mapping_of(partner, client, connection).await?;
        self.store
            .delete_mapping(partner, connection, client)
            .await?;
        self.audit(
            acting,
            Some(partner),
            "mapping.delete",
            &format!("mapping:{client}:{connection}"),
            before.as_ref().map(snapshot).as_ref(),
            None,
        )
        .await;
        Ok(())
    }

    /// Is `set` an event set of the partner? Is `template` a template of connection `conn`?
    /// Errors name `path_set` / `path_template`.
    pub(crate) async fn check_profile(
        &self,
        partner: &str,
        conn: i64,
        set: Option<i64>,
        template: Option<i64>,
        (path_set, path_template): (&str, &str),
    ) -> Result<(), OpsError> {
        let mut errors = Vec::new();
        if let Some(id) = set
            && !self
                .store
                .event_sets(partner)
                .await?
                .iter()
                .any(|e| e.id == id)
        {
            errors.push(FieldError::new(
                path_set,
                format!("{id} is not an event set of this partner (GET …/event-sets lists them)"),
            ));
        }
        if let Some(id) = template
            && !self.store.templates(conn).await?.iter().any(|t| t.id == id)
        {
            errors.push(FieldError::new(
                path_template,
                format!(
                    "{id} is not a template of connection {conn} (GET …/connections/{conn}/templates lists them)"
                ),
            ));
        }
        OpsError::check(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refire(mode: &str, hours: Option<i64>) -> Result<Refire, OpsError> {
        refire_of(Some(&RefireRequest {
            mode: mode.into(),
            reopen_within_hours: hours,
        }))
    }

    #[test]
    fn the_refire_policy_is_checked_whole() {
        assert!(matches!(refire_of(None), Ok(Refire::NewTicket)));
        assert_eq!(
            refire("reopen", Some(24)).unwrap().within_secs(),
            Some(86_400)
        );
        let path = |r: Result<Refire, OpsError>| r.unwrap_err().field_errors()[0].path.clone();
        assert_eq!(path(refire("reopen", None)), "refire.reopen_within_hours");
        assert_eq!(
            path(refire("reopen", Some(721))),
            "refire.reopen_within_hours"
        );
        assert_eq!(
            path(refire("note_only", Some(1))),
            "refire.reopen_within_hours"
        );
        assert_eq!(path(refire("sometimes", None)), "refire.mode");
    }
}
