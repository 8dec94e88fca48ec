//! Invitations: the only way a partner adds a person.
//!
//! People are global (one account per email across partners); memberships are per partner.
//! A partner may therefore never attach an existing person, nor learn that one exists: it
//! invites an address, and the person accepts — after their own login, or, when they have no
//! password yet, through the single-use link emailed to them, which sets it. Until then no
//! person row is created or changed, and nothing about the person is read into the partner's
//! answer. One live invitation per partner and address: inviting again replaces it, so a
//! second link revokes the first.

use crate::Millis;
use crate::db::{Store, with_read, with_tx, with_write};
use crate::error::StoreError;
use crate::identity::email_key;

/// A pending invitation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub id: i64,
    pub partner_id: String,
    pub email: String,
    /// The name a person without an account gets.
    pub name: Option<String>,
    pub role: String,
    pub invited_by: String,
    pub created_at: Millis,
    pub expires_at: Millis,
}

/// An invitation to make (or to make again, replacing the partner's earlier one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInvitation<'a> {
    pub partner_id: &'a str,
    pub email: &'a str,
    pub name: Option<&'a str>,
    pub role: &'a str,
    /// SHA-256 of the link's token.
    pub token_hash: &'a str,
    pub invited_by: &'a str,
    pub expires_at: Millis,
}

/// What the invited address has in the product. Only for choosing the text of the email the
/// person receives: never part of the inviting partner's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invitee {
    /// No account: the link creates one with a password.
    NoAccount,
    /// An account without a password (made by an identity provider): the link sets one.
    NoPassword,
    /// An account with a password: the person logs in and accepts.
    Account,
}

/// The result of accepting through the emailed link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedByLink {
    pub user_id: i64,
    pub invitation: Invitation,
    /// The account was created by this acceptance.
    pub created: bool,
}

const COLUMNS: &str = "id, partner_id, email, name, role, invited_by, created_at, expires_at";

type Row = (
    i64,
    String,
    String,
    Option<String>,
    String,
    String,
    i64,
    i64,
);

fn from_row(r: Row) -> Invitation {
    Invitation {
        id: r.0,
        partner_id: r.1,
        email: r.2,
        name: r.3,
        role: r.4,
        invited_by: r.5,
        created_at: r.6,
        expires_at: r.7,
    }
}

/// Make the membership an invitation stands for, through `$executor` (a transaction). No
/// change if the person is a member already (provisioned meanwhile); Conflict for a second
/// Primary.
macro_rules! join {
    ($executor:expr, $user:expr, $invitation:expr, $now:expr) => {
        sqlx::query(
            "INSERT INTO memberships (user_id, partner_id, role, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id, partner_id) DO NOTHING",
        )
        .bind($user)
        .bind($invitation.partner_id.as_str())
        .bind($invitation.role.as_str())
        .bind($now)
        .execute($executor)
        .await
        .map_err(|e| {
            StoreError::conflict_or(e, || {
                format!("'{}' already has a Primary user", $invitation.partner_id)
            })
        })?
    };
}

impl Store {
    /// Invite an address to a partner, replacing the partner's live invitation of it (and so
    /// revoking its link). Conflict if the address is a member of the partner already, or if
    /// the role is Primary and the partner has one. Nothing but the invitation is written.
    pub async fn invite(
        &self,
        n: &NewInvitation<'_>,
        now: Millis,
    ) -> Result<(Invitation, Invitee), StoreError> {
        let key = email_key(n.email);
        let email = n.email.trim();
        let out = with_tx!(self, tx => {
            let member: Option<i64> = sqlx::query_scalar(
                "SELECT m.user_id FROM memberships m JOIN users u ON u.id = m.user_id \
                 WHERE m.partner_id = $1 AND u.email_key = $2",
            )
            .bind(n.partner_id)
            .bind(&key)
            .fetch_optional(&mut *tx)
            .await?;
            if member.is_some() {
                return Err(StoreError::Conflict(format!(
                    "'{email}' is already a member of '{}'",
                    n.partner_id
                )));
            }
            if n.role == "primary" {
                let primary: Option<i64> = sqlx::query_scalar(
                    "SELECT user_id FROM memberships WHERE partner_id = $1 AND role = 'primary'",
                )
                .bind(n.partner_id)
                .fetch_optional(&mut *tx)
                .await?;
                if primary.is_some() {
                    return Err(StoreError::Conflict(format!(
                        "'{}' already has a Primary user",
                        n.partner_id
                    )));
                }
            }
            // Housekeeping: the partner's expired invitations, and the one this replaces.
            sqlx::query(
                "DELETE FROM invitations WHERE partner_id = $1 AND (email_key = $2 OR expires_at <= $3)",
            )
            .bind(n.partner_id)
            .bind(&key)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let sql = format!(
                "INSERT INTO invitations (partner_id, email, email_key, name, role, token_hash, \
                 invited_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 RETURNING {COLUMNS}"
            );
            let row: Row = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(n.partner_id)
                .bind(email)
                .bind(&key)
                .bind(n.name)
                .bind(n.role)
                .bind(n.token_hash)
                .bind(n.invited_by)
                .bind(now)
                .bind(n.expires_at)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| StoreError::conflict_or(e, || format!("partner '{}'", n.partner_id)))?;
            let password: Option<bool> = sqlx::query_scalar(
                "SELECT password_hash IS NOT NULL FROM users WHERE email_key = $1",
            )
            .bind(&key)
            .fetch_optional(&mut *tx)
            .await?;
            let invitee = match password {
                None => Invitee::NoAccount,
                Some(false) => Invitee::NoPassword,
                Some(true) => Invitee::Account,
            };
            (from_row(row), invitee)
        });
        Ok(out)
    }

    /// A partner's live invitations, oldest first.
    pub async fn invitations_of_partner(
        &self,
        partner: &str,
        now: Millis,
    ) -> Result<Vec<Invitation>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM invitations WHERE partner_id = $1 AND expires_at > $2 ORDER BY id"
        );
        with_read!(self, pool => {
            let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(partner)
                .bind(now)
                .fetch_all(pool)
                .await?;
            Ok(rows.into_iter().map(from_row).collect())
        })
    }

    /// Withdraw one of a partner's invitations (its link stops working).
    pub async fn revoke_invitation(
        &self,
        partner: &str,
        id: i64,
    ) -> Result<Invitation, StoreError> {
        let sql = format!(
            "DELETE FROM invitations WHERE partner_id = $1 AND id = $2 RETURNING {COLUMNS}"
        );
        with_write!(self, pool => {
            let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(partner)
                .bind(id)
                .fetch_optional(pool)
                .await?;
            row.map(from_row).ok_or_else(|| StoreError::NotFound(format!("invitation {id}")))
        })
    }

    /// The live invitations of a person's email, oldest first (the person's own list).
    pub async fn invitations_for(
        &self,
        email: &str,
        now: Millis,
    ) -> Result<Vec<Invitation>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM invitations WHERE email_key = $1 AND expires_at > $2 ORDER BY id"
        );
        with_read!(self, pool => {
            let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(email_key(email))
                .bind(now)
                .fetch_all(pool)
                .await?;
            Ok(rows.into_iter().map(from_row).collect())
        })
    }

    /// The live invitation of a link, and what its address has (to check the new password
    /// against the email before hashing it).
    pub async fn invitation_by_token(
        &self,
        token_hash: &str,
        now: Millis,
    ) -> Result<Option<(Invitation, Invitee)>, StoreError> {
        let sql =
            format!("SELECT {COLUMNS} FROM invitations WHERE token_hash = $1 AND expires_at > $2");
        with_read!(self, pool => {
            let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(token_hash)
                .bind(now)
                .fetch_optional(pool)
                .await?;
            let Some(invitation) = row.map(from_row) else {
                return Ok(None);
            };
            let password: Option<bool> = sqlx::query_scalar(
                "SELECT password_hash IS NOT NULL FROM users WHERE email_key = $1",
            )
            .bind(email_key(&invitation.email))
            .fetch_optional(pool)
            .await?;
            let invitee = match password {
                None => Invitee::NoAccount,
                Some(false) => Invitee::NoPassword,
                Some(true) => Invitee::Account,
            };
            Ok(Some((invitation, invitee)))
        })
    }

    /// The logged-in person `user` accepts invitation `id` addressed to their email: the
    /// membership is made and the invitation used up, in one transaction. NotFound if it is
    /// not theirs, used or expired; Conflict if it makes a second Primary.
    pub async fn accept_invitation(
        &self,
        id: i64,
        user: i64,
        now: Millis,
    ) -> Result<Invitation, StoreError> {
        let sql = format!(
            "DELETE FROM invitations WHERE id = $1 AND expires_at > $2 \
             AND email_key = (SELECT email_key FROM users WHERE id = $3) RETURNING {COLUMNS}"
        );
        let invitation = with_tx!(self, tx => {
            let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .bind(now)
                .bind(user)
                .fetch_optional(&mut *tx)
                .await?;
            let invitation = row
                .map(from_row)
                .ok_or_else(|| StoreError::NotFound(format!("invitation {id}")))?;
            join!(&mut *tx, user, &invitation, now);
            invitation
        });
        Ok(invitation)
    }

    /// The logged-in person `user` declines invitation `id` addressed to their email.
    pub async fn decline_invitation(&self, id: i64, user: i64) -> Result<Invitation, StoreError> {
        let sql = format!(
            "DELETE FROM invitations WHERE id = $1 \
             AND email_key = (SELECT email_key FROM users WHERE id = $2) RETURNING {COLUMNS}"
        );
        with_write!(self, pool => {
            let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .bind(user)
                .fetch_optional(pool)
                .await?;
            row.map(from_row).ok_or_else(|| StoreError::NotFound(format!("invitation {id}")))
        })
    }

    /// Accept through the emailed link: the address's account is created with this password
    /// (or, made by an identity provider without one, gets it), joins the partner, and the
    /// invitation is used up, in one transaction. NotFound for an unknown, used or expired
    /// link; Conflict when the account has a password already (its owner logs in and accepts
    /// instead; the invitation stays).
    pub async fn accept_invitation_with_password(
        &self,
        token_hash: &str,
        password_hash: &str,
        now: Millis,
    ) -> Result<AcceptedByLink, StoreError> {
        let sql = format!(
            "DELETE FROM invitations WHERE token_hash = $1 AND expires_at > $2 RETURNING {COLUMNS}"
        );
        let accepted = with_tx!(self, tx => {
            let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(token_hash)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            let invitation = row
                .map(from_row)
                .ok_or_else(|| StoreError::NotFound("the link".into()))?;
            let key = email_key(&invitation.email);
            let existing: Option<(i64, bool)> = sqlx::query_as(
                "SELECT id, password_hash IS NOT NULL FROM users WHERE email_key = $1",
            )
            .bind(&key)
            .fetch_optional(&mut *tx)
            .await?;
            let (user_id, created) = match existing {
                Some((_, true)) => {
                    return Err(StoreError::Conflict(
                        "this address has an account with a password: log in and accept the invitation".into(),
                    ));
                }
                Some((id, false)) => {
                    sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                        .bind(password_hash)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    (id, false)
                }
                None => {
                    let name = invitation.name.clone().unwrap_or_else(|| invitation.email.clone());
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO users (email, email_key, name, password_hash, created_at) \
                         VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    )
                    .bind(&invitation.email)
                    .bind(&key)
                    .bind(name)
                    .bind(password_hash)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| StoreError::conflict_or(e, || "the account was created meanwhile; try again".into()))?;
                    (id, true)
                }
            };
            join!(&mut *tx, user_id, &invitation, now);
            AcceptedByLink { user_id, invitation, created }
        });
        Ok(accepted)
    }
}
