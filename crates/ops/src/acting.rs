//! Who is acting, and what they may do: every operation checks it before it reads or changes
//! anything, whoever calls it (the HTTP API, the portal, the CLI).

use psabridge_identity::scopes::{Need, Scope, missing_scope};
use psabridge_identity::{Permission, Role, allows};
pub use psabridge_store::config::Principal;

use crate::error::OpsError;

/// What grants the acting principal its permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authority {
    /// An API token with these scopes.
    Scopes(Vec<Scope>),
    /// A logged-in person with this role at the partner they act for.
    Role(Role),
    /// The operator of the installation (the command line on the server): everything.
    Operator,
}

/// The acting principal of an operation: whose partner(s) it reaches, how the audit log names
/// it, and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acting {
    pub principal: Principal,
    /// As the audit log names it (`token:3 "vendor-platform"`, `user:5 "ann@example.com"`).
    pub actor: String,
    pub authority: Authority,
}

impl Acting {
    /// The installation's operator, acting for every partner (the command line).
    pub fn operator(actor: impl Into<String>) -> Acting {
        Acting {
            principal: Principal::Vendor,
            actor: actor.into(),
            authority: Authority::Operator,
        }
    }

    /// Does this principal reach `partner` at all? The check a caller makes before it reads a
    /// request's body, so that another partner's caller learns nothing from the answer.
    pub fn reaches(&self, partner: &str) -> Result<(), OpsError> {
        match &self.principal {
            Principal::Partner(p) if p != partner => {
                Err(OpsError::NotFound(format!("partner '{partner}'")))
            }
            _ => Ok(()),
        }
    }

    /// Whether the authority grants `permission`.
    pub fn may(&self, permission: Permission) -> bool {
        match &self.authority {
            Authority::Operator => true,
            Authority::Role(role) => allows(*role, permission),
            Authority::Scopes(held) => missing_scope(held, Need::Permission(permission)).is_none(),
        }
    }

    /// May this principal do `permission` at `partner`? A principal of another partner gets
    /// the answer a partner that does not exist gets, so nobody learns which partners exist.
    pub fn require(&self, partner: &str, permission: Permission) -> Result<(), OpsError> {
        self.reaches(partner)?;
        if self.may(permission) {
            return Ok(());
        }
        Err(OpsError::Forbidden(match &self.authority {
            Authority::Role(role) => format!(
                "the role {} does not allow {}",
                role.label(),
                permission.as_str()
            ),
            Authority::Scopes(held) => format!(
                "the token lacks the scope {} needed for {}",
                missing_scope(held, Need::Permission(permission)).map_or("?", |s| s.as_str()),
                permission.as_str()
            ),
            Authority::Operator => unreachable!("the operator may do everything"),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partner(authority: Authority) -> Acting {
        Acting {
            principal: Principal::Partner("acme".into()),
            actor: "user:1 \"ann@example.com\"".into(),
            authority,
        }
    }

    #[test]
    fn another_partner_is_not_found_not_forbidden() {
        let a = partner(Authority::Operator);
        assert!(matches!(
            a.require("globex", Permission::ViewSettings),
            Err(OpsError::NotFound(_))
        ));
        assert!(a.require("acme", Permission::ManageSettings).is_ok());
    }

    #[test]
    fn a_role_and_a_token_are_held_to_the_matrix_and_the_scopes() {
        let read_only = partner(Authority::Role(Role::ReadOnly));
        assert!(read_only.require("acme", Permission::ViewSettings).is_ok());
        let refused = read_only.require("acme", Permission::ManageSettings);
        assert!(matches!(refused, Err(OpsError::Forbidden(m)) if m.contains("does not allow")));
        let token = partner(Authority::Scopes(vec![]));
        assert!(matches!(
            token.require("acme", Permission::ViewSettings),
            Err(OpsError::Forbidden(m)) if m.contains("lacks the scope")
        ));
        let all = partner(Authority::Scopes(Scope::ALL.to_vec()));
        assert!(all.require("acme", Permission::ManageSettings).is_ok());
    }

    #[test]
    fn the_vendor_reaches_every_partner() {
        let v = Acting {
            principal: Principal::Vendor,
            actor: "token:1 \"platform\"".into(),
            authority: Authority::Scopes(Scope::ALL.to_vec()),
        };
        assert!(v.require("anyone", Permission::ManageSettings).is_ok());
    }
}
