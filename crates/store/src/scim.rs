//! SCIM provisioning state: each partner's SCIM token (hashed) and the SCIM view of the
//! partner's members; and [`Store::deprovision`], the one place an identity provider's "this
//! person left" takes effect.
//!
//! Every member of the partner is a SCIM User, whether the identity provider created them or
//! a person was added in the product first: a member without SCIM attributes shows with their
//! email as userName and their name, and is adopted (gets attributes) the first time the
//! provider writes them. The SCIM id of a member is the person's user id. A member's `active`
//! is not stored here: it is the membership's state, so a deactivation from the product and
//! one from the identity provider are the same thing. A provider never reaches a person who
//! is not a member of its partner: creating one who has an account elsewhere writes nothing
//! ([`ScimCreated::NotMember`]).

use serde_json::Value;

use crate::Millis;
use crate::db::{Store, with_read, with_tx, with_write};
use crate::error::{StoreError, corrupt};
use crate::identity::email_key;
use psabridge_identity::Role;
use psabridge_identity::scim::{DeprovisionRefusal, may_deprovision};

/// A member as the identity provider sees them.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimUser {
    pub user_id: i64,
    pub user_name: String,
    pub external_id: Option<String>,
    /// The other SCIM attributes (displayName, name, emails…), as the provider sent them.
    pub attributes: Value,
    /// The membership and the person are both active.
    pub active: bool,
    pub role: String,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// What the identity provider sent for a new or replaced member.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimUserInput<'a> {
    pub user_name: &'a str,
    pub external_id: Option<&'a str>,
    /// The address the person logs in with (the work or primary email, else userName).
    pub email: &'a str,
    /// The person's name as shown in the product.
    pub display_name: &'a str,
    pub attributes: &'a Value,
}

/// The result of [`Store::scim_create_user`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimCreated {
    /// A new person, now a member.
    Created(i64),
    /// The person was already a member and is now managed by the identity provider.
    Adopted(i64),
    /// The email belongs to a person who is not a member of this partner: nothing was
    /// written (a partner's provider may not attach someone else's account; invite them).
    NotMember,
}

/// How a list is narrowed (one `eq` filter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScimLookup {
    UserName(String),
    ExternalId(String),
    Email(String),
    UserId(i64),
}

/// What deprovisioning does to the membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeprovisionAction {
    /// The membership stays, deactivated (SCIM `active:false`).
    Deactivate,
    /// The membership is removed (SCIM DELETE).
    Remove,
}

impl DeprovisionAction {
    fn audit_action(self) -> &'static str {
        match self {
            DeprovisionAction::Deactivate => "user.deprovision.deactivate",
            DeprovisionAction::Remove => "user.deprovision.remove",
        }
    }
}

/// The result of [`Store::deprovision`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deprovisioned {
    /// Done; this many sessions were ended and API tokens (made by the person for this
    /// partner) revoked.
    Done {
        sessions_ended: u64,
        tokens_revoked: u64,
    },
    /// Refused (and audited as refused): the member is the partner's break-glass account.
    Refused(DeprovisionRefusal),
}

/// A member's SCIM columns; for a member the provider has not written yet (no `scim_users`
/// row), userName is the email and the times are the membership's.
const SCIM_USER_COLUMNS: &str = "m.user_id, COALESCE(s.user_name, u.email), s.external_id, s.attributes, \
     (m.deactivated_at IS NULL AND u.deactivated_at IS NULL), m.role, \
     COALESCE(s.created_at, m.created_at), COALESCE(s.updated_at, m.created_at), u.email, u.name";

type ScimUserTuple = (
    i64,
    String,
    Option<String>,
    Option<String>,
    bool,
    String,
    i64,
    i64,
    String,
    String,
);

fn scim_user_from(t: ScimUserTuple) -> Result<ScimUser, StoreError> {
    let attributes = match t.3 {
        Some(json) => {
            serde_json::from_str(&json).map_err(|e| corrupt(format!("scim attributes: {e}")))?
        }
        // Added in the product: what the product knows of them.
        None => serde_json::json!({
            "displayName": t.9,
            "emails": [{"value": t.8, "type": "work", "primary": true}],
        }),
    };
    Ok(ScimUser {
        user_id: t.0,
        user_name: t.1,
        external_id: t.2,
        attributes,
        active: t.4,
        role: t.5,
        created_at: t.6,
        updated_at: t.7,
    })
}

/// The key userName is unique on within a partner.
fn user_name_key(user_name: &str) -> String {
    user_name.trim().to_lowercase()
}

impl Store {
    // ---- the partner's SCIM token ---------------------------------------------------------

    /// Set the partner's SCIM token (its SHA-256 hash), replacing any previous one.
    pub async fn set_scim_token(
        &self,
        partner: &str,
        token_hash: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        with_write!(self, pool => {
            sqlx::query(
                "INSERT INTO scim_tokens (partner_id, token_hash, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (partner_id) DO UPDATE SET token_hash = excluded.token_hash, created_at = excluded.created_at",
            )
            .bind(partner)
            .bind(token_hash)
            .bind(now)
            .execute(pool)
            .await
            .map_err(|e| StoreError::conflict_or(e, || format!("partner '{partner}'")))?;
        });
        Ok(())
    }

    /// Revoke the partner's SCIM token. `false` if it had none.
    pub async fn revoke_scim_token(&self, partner: &str) -> Result<bool, StoreError> {
        with_write!(self, pool => {
            let done = sqlx::query("DELETE FROM scim_tokens WHERE partner_id = $1")
                .bind(partner)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// When the partner's SCIM token was issued, if it has one.
    pub async fn scim_token_issued_at(&self, partner: &str) -> Result<Option<Millis>, StoreError> {
        with_read!(self, pool => {
            Ok(sqlx::query_scalar("SELECT created_at FROM scim_tokens WHERE partner_id = $1")
                .bind(partner)
                .fetch_optional(pool)
                .await?)
        })
    }

    /// The partner a SCIM token (by hash) belongs to.
    pub async fn partner_of_scim_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<String>, StoreError> {
        with_read!(self, pool => {
            Ok(sqlx::query_scalar("SELECT partner_id FROM scim_tokens WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(pool)
                .await?)
        })
    }

    // ---- SCIM users -----------------------------------------------------------------------

    /// Provision a member: a person new to the product is created and joins the partner with
    /// `role`, inactive if `active` is false. A person who is already a member (added in the
    /// product before the identity provider was connected) is adopted, keeping their role and
    /// state, so the identity provider can later deprovision them. A person who has an
    /// account but is not a member is left alone ([`ScimCreated::NotMember`]). Conflict if
    /// the userName is taken at this partner or the person is already provisioned.
    pub async fn scim_create_user(
        &self,
        partner: &str,
        input: &ScimUserInput<'_>,
        role: Role,
        active: bool,
        now: Millis,
    ) -> Result<ScimCreated, StoreError> {
        let attributes = input.attributes.to_string();
        let email = input.email.trim();
        let created = with_tx!(self, tx => {
            let taken: Option<i64> = sqlx::query_scalar(
                "SELECT user_id FROM scim_users WHERE partner_id = $1 AND user_name_key = $2",
            )
            .bind(partner)
            .bind(user_name_key(input.user_name))
            .fetch_optional(&mut *tx)
            .await?;
            if taken.is_some() {
                return Err(StoreError::Conflict(format!("userName '{}' is taken", input.user_name)));
            }
            let existing: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE email_key = $1")
                .bind(email_key(email))
                .fetch_optional(&mut *tx)
                .await?;
            let member = match existing {
                None => false,
                Some(id) => {
                    let role: Option<String> = sqlx::query_scalar(
                        "SELECT role FROM memberships WHERE partner_id = $1 AND user_id = $2",
                    )
                    .bind(partner)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    role.is_some()
                }
            };
            if existing.is_some() && !member {
                // Someone's account, not a member here: this partner's provider may not
                // attach it. Nothing is written.
                return Ok(ScimCreated::NotMember);
            }
            let user_id = match existing {
                Some(id) => id,
                None => sqlx::query_scalar(
                    "INSERT INTO users (email, email_key, name, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
                )
                .bind(email)
                .bind(email_key(email))
                .bind(input.display_name)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?,
            };
            // A member the identity provider did not create (added in the product before
            // SCIM was set up) is adopted as is: role and state unchanged.
            if !member {
                sqlx::query(
                    "INSERT INTO memberships (user_id, partner_id, role, deactivated_at, created_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(user_id)
                .bind(partner)
                .bind(role.as_str())
                .bind(if active { None } else { Some(now) })
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "INSERT INTO scim_users (partner_id, user_id, user_name, user_name_key, external_id, email_key, \
                 attributes, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
            )
            .bind(partner)
            .bind(user_id)
            .bind(input.user_name)
            .bind(user_name_key(input.user_name))
            .bind(input.external_id)
            .bind(email_key(email))
            .bind(&attributes)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::conflict_or(e, || format!("'{email}' is already provisioned at '{partner}'")))?;
            if member { ScimCreated::Adopted(user_id) } else { ScimCreated::Created(user_id) }
        });
        Ok(created)
    }

    /// One provisioned member of a partner.
    pub async fn scim_user(
        &self,
        partner: &str,
        user: i64,
    ) -> Result<Option<ScimUser>, StoreError> {
        let (_, mut rows) = self
            .scim_users(partner, Some(&ScimLookup::UserId(user)), 0, 1)
            .await?;
        Ok(rows.pop())
    }

    /// The members of a partner as SCIM Users, by user id: (total matching, the page). Every
    /// member is listed, provisioned by the identity provider or not.
    pub async fn scim_users(
        &self,
        partner: &str,
        lookup: Option<&ScimLookup>,
        offset: i64,
        limit: i64,
    ) -> Result<(i64, Vec<ScimUser>), StoreError> {
        let (condition, text, id) = match lookup {
            None => ("$2 IS NULL AND $3 IS NULL", None, None),
            Some(ScimLookup::UserName(v)) => (
                "COALESCE(s.user_name_key, u.email_key) = $2 AND $3 IS NULL",
                Some(user_name_key(v)),
                None,
            ),
            Some(ScimLookup::ExternalId(v)) => {
                ("s.external_id = $2 AND $3 IS NULL", Some(v.clone()), None)
            }
            Some(ScimLookup::Email(v)) => (
                "COALESCE(s.email_key, u.email_key) = $2 AND $3 IS NULL",
                Some(email_key(v)),
                None,
            ),
            Some(ScimLookup::UserId(v)) => ("$2 IS NULL AND m.user_id = $3", None, Some(*v)),
        };
        let from = format!(
            "FROM memberships m JOIN users u ON u.id = m.user_id \
             LEFT JOIN scim_users s ON s.partner_id = m.partner_id AND s.user_id = m.user_id \
             WHERE m.partner_id = $1 AND {condition}"
        );
        let count_sql = format!("SELECT COUNT(*) {from}");
        let page_sql =
            format!("SELECT {SCIM_USER_COLUMNS} {from} ORDER BY m.user_id LIMIT $4 OFFSET $5");
        with_read!(self, pool => {
            let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql))
                .bind(partner)
                .bind(text.clone())
                .bind(id)
                .fetch_one(pool)
                .await?;
            let rows: Vec<ScimUserTuple> = sqlx::query_as(sqlx::AssertSqlSafe(page_sql))
                .bind(partner)
                .bind(text)
                .bind(id)
                .bind(limit)
                .bind(offset)
                .fetch_all(pool)
                .await?;
            Ok((total, rows.into_iter().map(scim_user_from).collect::<Result<Vec<_>, _>>()?))
        })
    }

    /// Replace a member's SCIM attributes; a member added in the product is adopted by the
    /// provider this way. Conflict if the new userName is taken. The person's login email and
    /// name are left alone: they may belong to other partners.
    pub async fn scim_update_user(
        &self,
        partner: &str,
        user: i64,
        input: &ScimUserInput<'_>,
        now: Millis,
    ) -> Result<(), StoreError> {
        with_tx!(self, tx => {
            let member: Option<i64> = sqlx::query_scalar(
                "SELECT user_id FROM memberships WHERE partner_id = $1 AND user_id = $2",
            )
            .bind(partner)
            .bind(user)
            .fetch_optional(&mut *tx)
            .await?;
            if member.is_none() {
                return Err(StoreError::NotFound(format!("user {user}")));
            }
            sqlx::query(
                "INSERT INTO scim_users (partner_id, user_id, user_name, user_name_key, external_id, email_key, \
                 attributes, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
                 ON CONFLICT (partner_id, user_id) DO UPDATE SET user_name = excluded.user_name, \
                 user_name_key = excluded.user_name_key, external_id = excluded.external_id, \
                 email_key = excluded.email_key, attributes = excluded.attributes, updated_at = excluded.updated_at",
            )
            .bind(partner)
            .bind(user)
            .bind(input.user_name)
            .bind(user_name_key(input.user_name))
            .bind(input.external_id)
            .bind(email_key(input.email))
            .bind(input.attributes.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::conflict_or(e, || format!("userName '{}' is taken", input.user_name)))?;
        });
        Ok(())
    }

    /// Deprovision a member on an identity provider's word (SCIM, and any later channel):
    /// deactivate or remove the membership, end the person's sessions for this partner and
    /// revoke the API tokens they made for it, in one transaction, and audit it with
    /// `reason`. The person's standing, sessions and tokens at other partners are untouched. Refused (and audited) for the partner's
    /// Primary user and its last active Security Admin, so that a compromised or
    /// misconfigured identity provider cannot lock the partner out.
    ///
    /// Anything else a person holds that must die with their access (for example API tokens
    /// owned by people) belongs in this transaction too.
    pub async fn deprovision(
        &self,
        partner: &str,
        user: i64,
        action: DeprovisionAction,
        actor: &str,
        reason: &str,
        now: Millis,
    ) -> Result<Deprovisioned, StoreError> {
        let outcome = with_tx!(self, tx => {
            let role: Option<String> = sqlx::query_scalar(
                "SELECT role FROM memberships WHERE partner_id = $1 AND user_id = $2",
            )
            .bind(partner)
            .bind(user)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(role) = role else {
                return Err(StoreError::NotFound(format!("user {user}")));
            };
            let role = Role::parse(&role).ok_or_else(|| corrupt(format!("role '{role}'")))?;
            let other_admins: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM memberships m JOIN users u ON u.id = m.user_id \
                 WHERE m.partner_id = $1 AND m.user_id <> $2 AND m.role = 'security_admin' \
                 AND m.deactivated_at IS NULL AND u.deactivated_at IS NULL",
            )
            .bind(partner)
            .bind(user)
            .fetch_one(&mut *tx)
            .await?;
            let outcome = match may_deprovision(role, usize::try_from(other_admins).unwrap_or(0)) {
                Err(refusal) => Deprovisioned::Refused(refusal),
                Ok(()) => {
                    match action {
                        DeprovisionAction::Deactivate => {
                            sqlx::query(
                                "UPDATE memberships SET deactivated_at = COALESCE(deactivated_at, $1) \
                                 WHERE partner_id = $2 AND user_id = $3",
                            )
                            .bind(now)
                            .bind(partner)
                            .bind(user)
                            .execute(&mut *tx)
                            .await?;
                        }
                        DeprovisionAction::Remove => {
                            sqlx::query("DELETE FROM memberships WHERE partner_id = $1 AND user_id = $2")
                                .bind(partner)
                                .bind(user)
                                .execute(&mut *tx)
                                .await?;
                        }
                    }
                    let ended = crate::identity::revoke_partner_sessions!(&mut *tx, user, partner, now);
                    // And the API tokens the person made for this partner.
                    let tokens = crate::config::revoke_tokens_of_user!(&mut *tx, user, Some(partner), now);
                    Deprovisioned::Done { sessions_ended: ended, tokens_revoked: tokens }
                }
            };
            let after = match outcome {
                Deprovisioned::Done { sessions_ended, tokens_revoked } => serde_json::json!({
                    "role": role.as_str(), "reason": reason, "sessions_ended": sessions_ended,
                    "tokens_revoked": tokens_revoked,
                }),
                Deprovisioned::Refused(refusal) => serde_json::json!({
                    "role": role.as_str(), "reason": reason, "refused": refusal.to_string(),
                }),
            };
            let action_name = match outcome {
                Deprovisioned::Done { .. } => action.audit_action().to_string(),
                Deprovisioned::Refused(_) => format!("{}.refused", action.audit_action()),
            };
            sqlx::query(
                "INSERT INTO audit_log (partner_id, actor, action, target, before_json, after_json, at) \
                 VALUES ($1, $2, $3, $4, NULL, $5, $6)",
            )
            .bind(partner)
            .bind(actor)
            .bind(action_name)
            .bind(format!("user:{user}"))
            .bind(after.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            outcome
        });
        Ok(outcome)
    }
}
