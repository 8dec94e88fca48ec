//! People who log in, their roles per partner, sessions, TOTP state, recovery codes, password
//! setup links, identity-provider links and failed logins.
//!
//! Decisions (who may do what, whether a code is right) are made by the caller; this module
//! stores and fetches, and makes the few checks that must be atomic in SQL: a TOTP step and a
//! recovery code are each accepted once even under concurrent logins, and deactivating a
//! membership ends the person's sessions in the same transaction.

use crate::Millis;
use crate::db::{Store, with_read, with_tx, with_write};
use crate::error::StoreError;
use psabridge_core::secret::Secret;

/// The case-insensitive key of an email address.
pub fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

/// End every session of `$user` through `$executor` (a pool or a transaction).
macro_rules! revoke_all_sessions {
    ($executor:expr, $user:expr, $now:expr) => {
        sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
            .bind($now)
            .bind($user)
            .execute($executor)
            .await?
            .rows_affected()
    };
}

/// End the sessions of `$user` scoped to `$partner` through `$executor`: what deactivating or
/// removing a membership ends. Sessions for other partners, and person-wide ones (which stop
/// acting at the partner as soon as the membership is gone), are left alone.
macro_rules! revoke_partner_sessions {
    ($executor:expr, $user:expr, $partner:expr, $now:expr) => {
        sqlx::query(
            "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND partner_id = $3 AND revoked_at IS NULL",
        )
        .bind($now)
        .bind($user)
        .bind($partner)
        .execute($executor)
        .await?
        .rows_affected()
    };
}
pub(crate) use revoke_partner_sessions;

fn totp_aad(user: i64) -> String {
    format!("user/{user}/totp_secret")
}

/// A person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub name: String,
    /// Argon2id PHC string; `None` until the person sets a password.
    pub password_hash: Option<String>,
    /// Whether a confirmed TOTP authenticator is enrolled.
    pub totp_enabled: bool,
    pub totp_last_step: Option<i64>,
    pub active: bool,
    pub created_at: Millis,
}

/// A person's role at a partner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub partner_id: String,
    pub role: String,
    pub active: bool,
}

/// A member of a partner, as the partner's user list shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub user_id: i64,
    pub email: String,
    pub name: String,
    pub role: String,
    /// The membership is active and so is the person.
    pub active: bool,
    pub totp_enabled: bool,
    pub password_set: bool,
}

/// A session to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession<'a> {
    pub id_hash: &'a str,
    pub user_id: i64,
    /// The one partner the session acts at; `None`: every active membership of the person
    /// (only a password login of a person of several partners who chose none).
    pub partner_id: Option<&'a str>,
    pub auth_method: &'a str,
    pub idp_sid: Option<&'a str>,
    pub csrf_token: &'a str,
    pub client_address: Option<&'a str>,
    pub expires_at: Millis,
}

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: i64,
    pub user_id: i64,
    /// The scope: the one partner the session acts at, or `None` for every active
    /// membership of the person.
    pub partner_id: Option<String>,
    pub auth_method: String,
    pub idp_sid: Option<String>,
    pub csrf_token: String,
    pub client_address: Option<String>,
    pub created_at: Millis,
    pub last_seen_at: Millis,
    pub expires_at: Millis,
}

/// Recent failed logins for one key: how many since a time, and the latest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FailureCount {
    pub count: i64,
    pub last_at: Millis,
}

/// What throttling looks at for one login attempt (see `psabridge_identity::throttle`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoginFacts {
    /// Failures of the email from this address.
    pub pair: FailureCount,
    /// Failures of the email from every address.
    pub account: FailureCount,
    /// Failures from this address on every email.
    pub address: FailureCount,
    /// The email logged in from this address since the time asked about.
    pub known_address: bool,
}

/// Since when each count of [`Store::login_facts`] looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginWindows {
    pub pair_and_address_since: Millis,
    pub account_since: Millis,
    pub known_since: Millis,
}

const USER_COLUMNS: &str = "id, email, name, password_hash, totp_secret IS NOT NULL AS totp_enabled, \
     totp_last_step, deactivated_at, created_at";

type UserTuple = (
    i64,
    String,
    String,
    Option<String>,
    bool,
    Option<i64>,
    Option<i64>,
    i64,
);

fn user_from(t: UserTuple) -> User {
    User {
        id: t.0,
        email: t.1,
        name: t.2,
        password_hash: t.3,
        totp_enabled: t.4,
        totp_last_step: t.5,
        active: t.6.is_none(),
        created_at: t.7,
    }
}

/// id, email, name, role, membership deactivated, person deactivated, TOTP on, password set.
type MemberTuple = (
    i64,
    String,
    String,
    String,
    Option<i64>,
    Option<i64>,
    bool,
    bool,
);

const SESSION_COLUMNS: &str = "id, user_id, partner_id, auth_method, idp_sid, csrf_token, client_address, \
     created_at, last_seen_at, expires_at";

type SessionTuple = (
    i64,
    i64,
    Option<String>,
    String,
    Option<String>,
    String,
    Option<String>,
    i64,
    i64,
    i64,
);

fn session_from(t: SessionTuple) -> Session {
    Session {
        id: t.0,
        user_id: t.1,
        partner_id: t.2,
        auth_method: t.3,
        idp_sid: t.4,
        csrf_token: t.5,
        client_address: t.6,
        created_at: t.7,
        last_seen_at: t.8,
        expires_at: t.9,
    }
}

impl Store {
    // ---- people ---------------------------------------------------------------------------

    /// Create a person. Conflict if the email (in any case) already has an account.
    pub async fn create_user(
        &self,
        email: &str,
        name: &str,
        now: Millis,
    ) -> Result<i64, StoreError> {
        let email = email.trim();
        with_write!(self, pool => {
            sqlx::query_scalar(
                "INSERT INTO users (email, email_key, name, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(email)
            .bind(email_key(email))
            .bind(name)
            .bind(now)
            .fetch_one(pool)
            .await
            .map_err(|e| StoreError::conflict_or(e, || format!("a user with email '{email}' exists")))
        })
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email_key = $1");
        with_read!(self, pool => {
            let row: Option<UserTuple> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(email_key(email)).fetch_optional(pool).await?;
            Ok(row.map(user_from))
        })
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        with_read!(self, pool => {
            let row: Option<UserTuple> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?;
            Ok(row.map(user_from))
        })
    }

    pub async fn set_password_hash(&self, user: i64, hash: &str) -> Result<(), StoreError> {
        with_write!(self, pool => {
            let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                .bind(hash)
                .bind(user)
                .execute(pool)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("user {user}")));
            }
        });
        Ok(())
    }

    // ---- TOTP and recovery codes ----------------------------------------------------------

    /// Keep a newly generated secret (base32) until the person confirms it with a code.
    pub async fn set_pending_totp(&self, user: i64, secret_base32: &str) -> Result<(), StoreError> {
        let sealed = self.inner.keys.seal(&totp_aad(user), secret_base32)?;
        with_write!(self, pool => {
            sqlx::query("UPDATE users SET totp_pending = $1 WHERE id = $2")
                .bind(sealed)
                .bind(user)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The enrolled but unconfirmed secret (base32).
    pub async fn pending_totp(&self, user: i64) -> Result<Option<Secret>, StoreError> {
        self.sealed_totp(user, "totp_pending").await
    }

    /// The active secret (base32).
    pub async fn totp_secret(&self, user: i64) -> Result<Option<Secret>, StoreError> {
        self.sealed_totp(user, "totp_secret").await
    }

    async fn sealed_totp(&self, user: i64, column: &str) -> Result<Option<Secret>, StoreError> {
        let sql = format!("SELECT {column} FROM users WHERE id = $1");
        let sealed: Option<Option<String>> = with_read!(self, pool => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(user).fetch_optional(pool).await?
        });
        sealed
            .flatten()
            .map(|s| self.inner.keys.open(&totp_aad(user), &s))
            .transpose()
    }

    /// Make the pending secret the active one, record `step` as used, and replace the
    /// recovery codes, in one transaction.
    pub async fn confirm_totp(
        &self,
        user: i64,
        step: i64,
        recovery_code_hashes: &[String],
    ) -> Result<(), StoreError> {
        with_tx!(self, tx => {
            let done = sqlx::query(
                "UPDATE users SET totp_secret = totp_pending, totp_pending = NULL, totp_last_step = $1 \
                 WHERE id = $2 AND totp_pending IS NOT NULL",
            )
            .bind(step)
            .bind(user)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound("a pending TOTP enrolment".into()));
            }
            sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
                .bind(user)
                .execute(&mut *tx)
                .await?;
            for hash in recovery_code_hashes {
                sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                    .bind(user)
                    .bind(hash)
                    .execute(&mut *tx)
                    .await?;
            }
        });
        Ok(())
    }

    /// Record `step` as the last accepted TOTP step, only if it is later than the stored one.
    /// `false`: the step (or a later one) was already used — a replay, even if two logins race.
    pub async fn accept_totp_step(&self, user: i64, step: i64) -> Result<bool, StoreError> {
        with_write!(self, pool => {
            let done = sqlx::query(
                "UPDATE users SET totp_last_step = $1 WHERE id = $2 \
                 AND (totp_last_step IS NULL OR totp_last_step < $1)",
            )
            .bind(step)
            .bind(user)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Use a recovery code: `true` once per code, `false` for an unknown or used one.
    pub async fn use_recovery_code(
        &self,
        user: i64,
        code_hash: &str,
        now: Millis,
    ) -> Result<bool, StoreError> {
        with_write!(self, pool => {
            let done = sqlx::query(
                "UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL",
            )
            .bind(now)
            .bind(user)
            .bind(code_hash)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// How many unused recovery codes a person has left.
    pub async fn recovery_codes_left(&self, user: i64) -> Result<i64, StoreError> {
        with_read!(self, pool => {
            Ok(sqlx::query_scalar(
                "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
            )
            .bind(user)
            .fetch_one(pool)
            .await?)
        })
    }

    // ---- memberships ----------------------------------------------------------------------

    /// Give a person a role at a partner. Conflict if they are already a member, or if the
    /// role is Primary and the partner has one.
    pub async fn add_membership(
        &self,
        user: i64,
        partner: &str,
        role: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        with_write!(self, pool => {
            sqlx::query(
                "INSERT INTO memberships (user_id, partner_id, role, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(user)
            .bind(partner)
            .bind(role)
            .bind(now)
            .execute(pool)
            .await
            .map_err(|e| StoreError::conflict_or(e, || {
                format!("user {user} is already a member of '{partner}', or '{partner}' already has a primary user")
            }))?;
        });
        Ok(())
    }

    /// A person's memberships, active or not.
    pub async fn memberships_of(&self, user: i64) -> Result<Vec<Membership>, StoreError> {
        with_read!(self, pool => {
            let rows: Vec<(String, String, Option<i64>)> = sqlx::query_as(
                "SELECT partner_id, role, deactivated_at FROM memberships WHERE user_id = $1 ORDER BY partner_id",
            )
            .bind(user)
            .fetch_all(pool)
            .await?;
            Ok(rows
                .into_iter()
                .map(|(partner_id, role, d)| Membership { partner_id, role, active: d.is_none() })
                .collect())
        })
    }

    /// The members of a partner.
    pub async fn members_of(&self, partner: &str) -> Result<Vec<Member>, StoreError> {
        self.members(partner, None).await
    }

    /// One member of a partner.
    pub async fn member(&self, partner: &str, user: i64) -> Result<Option<Member>, StoreError> {
        Ok(self.members(partner, Some(user)).await?.into_iter().next())
    }

    async fn members(&self, partner: &str, user: Option<i64>) -> Result<Vec<Member>, StoreError> {
        with_read!(self, pool => {
            let rows: Vec<MemberTuple> = sqlx::query_as(
                "SELECT u.id, u.email, u.name, m.role, m.deactivated_at, u.deactivated_at, \
                        u.totp_secret IS NOT NULL, u.password_hash IS NOT NULL \
                 FROM memberships m JOIN users u ON u.id = m.user_id \
                 WHERE m.partner_id = $1 AND ($2 IS NULL OR u.id = $2) ORDER BY u.email_key",
            )
            .bind(partner)
            .bind(user)
            .fetch_all(pool)
            .await?;
            Ok(rows
                .into_iter()
                .map(|(user_id, email, name, role, md, ud, totp_enabled, password_set)| Member {
                    user_id,
                    email,
                    name,
                    role,
                    active: md.is_none() && ud.is_none(),
                    totp_enabled,
                    password_set,
                })
                .collect())
        })
    }

    /// Change a member's role.
    pub async fn set_member_role(
        &self,
        partner: &str,
        user: i64,
        role: &str,
    ) -> Result<(), StoreError> {
        with_write!(self, pool => {
            let done = sqlx::query("UPDATE memberships SET role = $1 WHERE partner_id = $2 AND user_id = $3")
                .bind(role)
                .bind(partner)
                .bind(user)
                .execute(pool)
                .await
                .map_err(|e| StoreError::conflict_or(e, || format!("'{partner}' already has a primary user")))?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("user {user}")));
            }
        });
        Ok(())
    }

    /// Hand Primary from one member to another; the former Primary becomes `former_role`.
    pub async fn transfer_primary(
        &self,
        partner: &str,
        from: i64,
        to: i64,
        former_role: &str,
    ) -> Result<(), StoreError> {
        with_tx!(self, tx => {
            let demoted = sqlx::query(
                "UPDATE memberships SET role = $1 WHERE partner_id = $2 AND user_id = $3 AND role = 'primary'",
            )
            .bind(former_role)
            .bind(partner)
            .bind(from)
            .execute(&mut *tx)
            .await?;
            let promoted = sqlx::query(
                "UPDATE memberships SET role = 'primary' WHERE partner_id = $1 AND user_id = $2 AND deactivated_at IS NULL",
            )
            .bind(partner)
            .bind(to)
            .execute(&mut *tx)
            .await?;
            if demoted.rows_affected() != 1 || promoted.rows_affected() != 1 {
                return Err(StoreError::Invalid("primary can only pass from the primary user to an active member".into()));
            }
        });
        Ok(())
    }

    /// Deactivate (or reactivate) a membership. Deactivating ends the person's sessions for
    /// this partner and revokes the API tokens they made for it, in the same transaction;
    /// their standing, sessions and tokens at other partners are untouched. Returns the
    /// number of sessions ended.
    pub async fn set_member_active(
        &self,
        partner: &str,
        user: i64,
        active: bool,
        now: Millis,
    ) -> Result<u64, StoreError> {
        let ended = with_tx!(self, tx => {
            let done = sqlx::query(
                "UPDATE memberships SET deactivated_at = $1 WHERE partner_id = $2 AND user_id = $3",
            )
            .bind(if active { None } else { Some(now) })
            .bind(partner)
            .bind(user)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("user {user}")));
            }
            if active {
                0
            } else {
                crate::config::revoke_tokens_of_user!(&mut *tx, user, Some(partner), now);
                revoke_partner_sessions!(&mut *tx, user, partner, now)
            }
        });
        Ok(ended)
    }

    /// Remove a person from a partner, ending their sessions for this partner and revoking
    /// the API tokens they made for it (nothing of theirs at other partners).
    pub async fn remove_membership(
        &self,
        partner: &str,
        user: i64,
        now: Millis,
    ) -> Result<(), StoreError> {
        with_tx!(self, tx => {
            let done = sqlx::query("DELETE FROM memberships WHERE partner_id = $1 AND user_id = $2")
                .bind(partner)
                .bind(user)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("user {user}")));
            }
            crate::config::revoke_tokens_of_user!(&mut *tx, user, Some(partner), now);
            revoke_partner_sessions!(&mut *tx, user, partner, now);
        });
        Ok(())
    }

    /// Deactivate a person everywhere (all memberships stay, the person cannot log in) and
    /// end every session and revoke every API token they made, in one transaction. For
    /// deprovisioning.
    pub async fn deactivate_user(&self, user: i64, now: Millis) -> Result<u64, StoreError> {
        let ended = with_tx!(self, tx => {
            let done = sqlx::query("UPDATE users SET deactivated_at = $1 WHERE id = $2")
                .bind(now)
                .bind(user)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("user {user}")));
            }
            crate::config::revoke_tokens_of_user!(&mut *tx, user, None::<&str>, now);
            revoke_all_sessions!(&mut *tx, user, now)
        });
        Ok(ended)
    }

    // ---- sessions -------------------------------------------------------------------------

    pub async fn create_session(&self, s: &NewSession<'_>, now: Millis) -> Result<i64, StoreError> {
        with_write!(self, pool => {
            Ok(sqlx::query_scalar(
                "INSERT INTO sessions (id_hash, user_id, partner_id, auth_method, idp_sid, csrf_token, \
                 client_address, created_at, last_seen_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9) RETURNING id",
            )
            .bind(s.id_hash)
            .bind(s.user_id)
            .bind(s.partner_id)
            .bind(s.auth_method)
            .bind(s.idp_sid)
            .bind(s.csrf_token)
            .bind(s.client_address)
            .bind(now)
            .bind(s.expires_at)
            .fetch_one(pool)
            .await?)
        })
    }

    /// The live session with this id hash: not revoked, not expired, of an active person.
    pub async fn session_by_hash(
        &self,
        id_hash: &str,
        now: Millis,
    ) -> Result<Option<Session>, StoreError> {
        let sql = format!(
            "SELECT {} FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.id_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > $2 AND u.deactivated_at IS NULL",
            SESSION_COLUMNS
                .split(", ")
                .map(|c| format!("s.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        with_read!(self, pool => {
            let row: Option<SessionTuple> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(id_hash)
                .bind(now)
                .fetch_optional(pool)
                .await?;
            Ok(row.map(session_from))
        })
    }

    /// Note activity on a session and slide its expiry (never past `absolute_end`).
    pub async fn touch_session(
        &self,
        id: i64,
        now: Millis,
        expires_at: Millis,
    ) -> Result<(), StoreError> {
        with_write!(self, pool => {
            sqlx::query("UPDATE sessions SET last_seen_at = $1, expires_at = $2 WHERE id = $3 AND revoked_at IS NULL")
                .bind(now)
                .bind(expires_at)
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// A person's live sessions, newest first.
    pub async fn sessions_of(&self, user: i64, now: Millis) -> Result<Vec<Session>, StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = $1 AND revoked_at IS NULL \
             AND expires_at > $2 ORDER BY id DESC"
        );
        with_read!(self, pool => {
            let rows: Vec<SessionTuple> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(user)
                .bind(now)
                .fetch_all(pool)
                .await?;
            Ok(rows.into_iter().map(session_from).collect())
        })
    }

    /// End one of a person's sessions. NotFound if it is not theirs or already ended.
    pub async fn revoke_session(
        &self,
        user: i64,
        session: i64,
        now: Millis,
    ) -> Result<(), StoreError> {
        with_write!(self, pool => {
            let done = sqlx::query(
                "UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(session)
            .bind(user)
            .execute(pool)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("session {session}")));
            }
        });
        Ok(())
    }

    /// End every session of a person.
    pub async fn revoke_sessions_of(&self, user: i64, now: Millis) -> Result<u64, StoreError> {
        Ok(with_write!(self, pool => { revoke_all_sessions!(pool, user, now) }))
    }

    // ---- password setup links -------------------------------------------------------------

    /// Issue a password setup link for a person (the operator's CLI). It replaces the
    /// person's unused links: a second link revokes the first.
    pub async fn create_password_setup(
        &self,
        user: i64,
        token_hash: &str,
        expires_at: Millis,
    ) -> Result<(), StoreError> {
        with_tx!(self, tx => {
            sqlx::query("DELETE FROM password_setup_tokens WHERE user_id = $1 AND used_at IS NULL")
                .bind(user)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO password_setup_tokens (token_hash, user_id, expires_at) VALUES ($1, $2, $3)")
                .bind(token_hash)
                .bind(user)
                .bind(expires_at)
                .execute(&mut *tx)
                .await?;
        });
        Ok(())
    }

    /// The person a setup link is for, without using it (to check the new password first).
    pub async fn password_setup_user(
        &self,
        token_hash: &str,
        now: Millis,
    ) -> Result<Option<i64>, StoreError> {
        with_read!(self, pool => {
            Ok(sqlx::query_scalar(
                "SELECT user_id FROM password_setup_tokens WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
            )
            .bind(token_hash)
            .bind(now)
            .fetch_optional(pool)
            .await?)
        })
    }

    /// Use a setup link: the person it is for, once, before it expires.
    pub async fn use_password_setup(
        &self,
        token_hash: &str,
        now: Millis,
    ) -> Result<Option<i64>, StoreError> {
        with_write!(self, pool => {
            Ok(sqlx::query_scalar(
                "UPDATE password_setup_tokens SET used_at = $1 \
                 WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1 RETURNING user_id",
            )
            .bind(now)
            .bind(token_hash)
            .fetch_optional(pool)
            .await?)
        })
    }

    // ---- identity-provider links ----------------------------------------------------------

    /// Link an identity `(issuer, subject)` to a person. Conflict if it is linked already.
    pub async fn link_identity(
        &self,
        issuer: &str,
        subject: &str,
        user: i64,
        now: Millis,
    ) -> Result<(), StoreError> {
        with_write!(self, pool => {
            sqlx::query("INSERT INTO user_identities (issuer, subject, user_id, linked_at) VALUES ($1, $2, $3, $4)")
                .bind(issuer)
                .bind(subject)
                .bind(user)
                .bind(now)
                .execute(pool)
                .await
                .map_err(|e| StoreError::conflict_or(e, || "the identity is linked already".into()))?;
        });
        Ok(())
    }

    /// The person an identity is linked to.
    pub async fn user_of_identity(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<i64>, StoreError> {
        with_read!(self, pool => {
            Ok(sqlx::query_scalar("SELECT user_id FROM user_identities WHERE issuer = $1 AND subject = $2")
                .bind(issuer)
                .bind(subject)
                .fetch_optional(pool)
                .await?)
        })
    }

    // ---- failed logins --------------------------------------------------------------------

    pub async fn record_login_failure(
        &self,
        email: &str,
        client_address: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        with_write!(self, pool => {
            sqlx::query("INSERT INTO login_failures (email_key, client_address, at) VALUES ($1, $2, $3)")
                .bind(email_key(email))
                .bind(client_address)
                .bind(now)
                .execute(pool)
                .await?;
            // Old rows are useless to throttling; keep the table small.
            sqlx::query("DELETE FROM login_failures WHERE at < $1")
                .bind(now - 24 * 3600 * 1000)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// What throttling needs to know about an attempt on `email` from `address` (its
    /// throttling key): the failures of the pair, of the email, of the address, and whether
    /// the email logged in from the address recently.
    pub async fn login_facts(
        &self,
        email: &str,
        address: &str,
        w: LoginWindows,
    ) -> Result<LoginFacts, StoreError> {
        let key = email_key(email);
        with_read!(self, pool => {
            let count = |sql: &'static str, a: Option<String>, b: Option<String>, since: Millis| {
                sqlx::query_as::<_, (i64, Option<i64>)>(sql)
                    .bind(a)
                    .bind(b)
                    .bind(since)
                    .fetch_one(pool)
            };
            let f = |(count, last): (i64, Option<i64>)| FailureCount { count, last_at: last.unwrap_or(0) };
            let pair = count(
                "SELECT COUNT(*), MAX(at) FROM login_failures WHERE email_key = $1 AND client_address = $2 AND at >= $3",
                Some(key.clone()), Some(address.to_string()), w.pair_and_address_since,
            ).await?;
            let account = count(
                "SELECT COUNT(*), MAX(at) FROM login_failures WHERE email_key = $1 AND $2 IS NULL AND at >= $3",
                Some(key.clone()), None, w.account_since,
            ).await?;
            let by_address = count(
                "SELECT COUNT(*), MAX(at) FROM login_failures WHERE $1 IS NULL AND client_address = $2 AND at >= $3",
                None, Some(address.to_string()), w.pair_and_address_since,
            ).await?;
            let known: Option<i64> = sqlx::query_scalar(
                "SELECT last_at FROM login_successes WHERE email_key = $1 AND client_address = $2 AND last_at >= $3",
            )
            .bind(&key)
            .bind(address)
            .bind(w.known_since)
            .fetch_optional(pool)
            .await?;
            Ok(LoginFacts {
                pair: f(pair),
                account: f(account),
                address: f(by_address),
                known_address: known.is_some(),
            })
        })
    }

    /// A successful login of `email` from `address`: the address becomes known to it, and
    /// the pair's failures are forgotten (the email's failures from elsewhere are kept: they
    /// are someone else's).
    pub async fn record_login_success(
        &self,
        email: &str,
        address: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        let key = email_key(email);
        with_tx!(self, tx => {
            sqlx::query(
                "INSERT INTO login_successes (email_key, client_address, last_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (email_key, client_address) DO UPDATE SET last_at = excluded.last_at",
            )
            .bind(&key)
            .bind(address)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM login_failures WHERE email_key = $1 AND client_address = $2")
                .bind(&key)
                .bind(address)
                .execute(&mut *tx)
                .await?;
        });
        Ok(())
    }
}
