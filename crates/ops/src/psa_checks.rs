//! Checks of what a request names against the PSA itself: a company and its contact, a
//! contract. Used by mappings (a client's company) and connections (the catch-all).

use psabridge_core::event::FieldError;
use psabridge_psa::PsaError;
use psabridge_store::config::Connection;

use crate::Ops;
use crate::error::OpsError;

/// A PSA's error as an operation's: what it refused, or that it did not answer.
pub fn psa_error(e: PsaError) -> OpsError {
    match &e {
        PsaError::Auth(_) | PsaError::Invalid(_) | PsaError::NotFound(_) => {
            OpsError::PsaRefused(e.to_string())
        }
        _ => OpsError::PsaUnavailable(e.to_string()),
    }
}

/// Who stands in for a missing contact of a company: for a mapping, the company's primary
/// contact as the PSA names it; for the catch-all, nobody.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum WithoutContact {
    CompanyPrimary,
    Nobody,
}

impl Ops {
    async fn connector_of(
        &self,
        conn: &Connection,
    ) -> Result<std::sync::Arc<dyn psabridge_psa::Connector>, OpsError> {
        self.engine
            .connectors
            .get(&self.store, conn)
            .await
            .map_err(|e| OpsError::Misconfigured(e.to_string()))
    }

    /// Check that `contract` is an active contract of `company` in the PSA.
    pub(crate) async fn check_contract(
        &self,
        conn: &Connection,
        company: &str,
        contract: &str,
    ) -> Result<(), OpsError> {
        let connector = self.connector_of(conn).await?;
        let contracts = connector.contracts(company).await.map_err(psa_error)?;
        match contracts.iter().find(|c| c.id == contract) {
            Some(c) if c.active => Ok(()),
            Some(c) => Err(OpsError::field(
                "contract",
                format!(
                    "'{contract}' (\"{}\") is not an active contract of company '{company}'",
                    c.name
                ),
            )),
            None => {
                let known: Vec<String> = contracts
                    .iter()
                    .filter(|c| c.active)
                    .map(|c| format!("{} \"{}\"", c.id, c.name))
                    .collect();
                Err(OpsError::field(
                    "contract",
                    format!(
                        "'{contract}' is not a contract of company '{company}' (active: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                ))
            }
        }
    }

    /// Check that `company` exists in the PSA and, if given, that `contact` is one of its
    /// contacts; where the PSA refuses tickets without a contact, that one can be found.
    /// Errors name `{path}company` and `{path}{contact_field}`.
    pub(crate) async fn check_company_contact(
        &self,
        conn: &Connection,
        company: &str,
        contact: Option<&str>,
        (path, contact_field): (&str, &str),
        without: WithoutContact,
    ) -> Result<(), OpsError> {
        let connector = self.connector_of(conn).await?;
        let contacts = match connector.contacts(company).await {
            Ok(c) => c,
            Err(PsaError::Invalid(m)) | Err(PsaError::NotFound(m)) => {
                return Err(OpsError::field(
                    format!("{path}company"),
                    format!("'{company}' is not a company of this PSA ({m})"),
                ));
            }
            Err(e) => return Err(psa_error(e)),
        };
        // A company with no contacts is indistinguishable from a missing one by contacts
        // alone: look it up among the companies then.
        if contacts.is_empty() {
            let mut cursor = None;
            let mut found = false;
            for _ in 0..50 {
                let page = connector
                    .companies(None, cursor.as_deref())
                    .await
                    .map_err(psa_error)?;
                found = page.companies.iter().any(|c| c.id == company);
                if found || page.next.is_none() {
                    break;
                }
                cursor = page.next;
            }
            if !found {
                return Err(OpsError::field(
                    format!("{path}company"),
                    format!("'{company}' is not an active company of this PSA"),
                ));
            }
        }
        if let Some(contact) = contact
            && !contacts.iter().any(|c| c.id == contact)
        {
            return Err(OpsError::Invalid(vec![FieldError::new(
                format!("{path}{contact_field}"),
                format!("'{contact}' is not an active contact of company '{company}'"),
            )]));
        }
        // A PSA that refuses tickets without a contact needs one named here, unless the PSA
        // names the company's primary contact (what a mapping without a default falls back to).
        if contact.is_none() && connector.tickets_need_contact() {
            let primary = match without {
                WithoutContact::CompanyPrimary => connector
                    .primary_contact(company)
                    .await
                    .map_err(psa_error)?,
                WithoutContact::Nobody => None,
            };
            if primary.is_none() {
                return Err(OpsError::field(
                    format!("{path}{contact_field}"),
                    format!(
                        "required: this PSA refuses tickets without a contact, and names no primary contact of company '{company}' to fall back to"
                    ),
                ));
            }
        }
        Ok(())
    }
}
