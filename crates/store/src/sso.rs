//! "Log in with the IdP": each partner's OpenID provider settings (client secret sealed),
//! exemptions from requiring it, logins in flight, verified identities waiting for the person
//! (a partner to choose, a link to confirm) and back-channel logout tokens already acted on.
//!
//! The decisions are made in `psabridge_identity::sso`; what must be atomic is done here: a
//! pending login is taken once (and only by the browser it is bound to), a logout token is
//! remembered once, and a partner's first administrator login through the provider is recorded
//! once.

use crate::Millis;
use crate::db::{Store, with_read, with_write};
use crate::error::StoreError;
use psabridge_core::secret::Secret;

fn client_secret_aad(partner: &str) -> String {
    format!("partner/{partner}/sso/client_secret")
}

fn pending_aad(state_hash: &str) -> String {
    format!("sso/pending/{state_hash}")
}

/// A partner's identity-provider settings, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoSettings {
    pub partner_id: String,
    pub issuer: String,
    pub client_id: String,
    /// Opened; never returned by the API nor logged (`Secret` redacts itself).
    pub client_secret: Secret,
    /// Scopes besides `openid`.
    pub scopes: Vec<String>,
    pub require_idp: bool,
    pub jit_enabled: bool,
    /// A role name (`psabridge_identity::Role::as_str`).
    pub jit_default_role: String,
    /// What the login button calls the provider ("Okta"); empty: not named.
    pub display_name: String,
    /// When an administrator first logged in through the provider; `None`: never.
    pub first_admin_idp_login_at: Option<Millis>,
    pub updated_at: Millis,
}

/// Settings to write. `client_secret: None` keeps the stored one (the API never shows it, so
/// an edit that does not retype it must not erase it).
#[derive(Debug, Clone)]
pub struct SsoSettingsUpdate<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub client_secret: Option<&'a str>,
    pub scopes: &'a [String],
    pub require_idp: bool,
    pub jit_enabled: bool,
    pub jit_default_role: &'a str,
    pub display_name: &'a str,
}

/// A verified identity waiting for the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoContinuation {
    /// `choose` (several partners) or `confirm` (prove the account once).
    pub kind: String,
    pub user_id: i64,
    pub issuer: String,
    pub subject: String,
    pub idp_sid: Option<String>,
    /// The partner the login started at (for `confirm`).
    pub partner_id: Option<String>,
    pub expires_at: Millis,
}

type SettingsTuple = (
    String,
    String,
    String,
    String,
    String,
    bool,
    bool,
    String,
    Option<i64>,
    i64,
    String,
);

type ContinuationTuple = (
    String,
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
);

impl Store {
    // ---- settings -------------------------------------------------------------------------

    /// A partner's identity-provider settings, if configured.
    pub async fn sso_settings(&self, partner: &str) -> Result<Option<SsoSettings>, StoreError> {
        let row: Option<SettingsTuple> = with_read!(self, pool => {
            sqlx::query_as(
                "SELECT partner_id, issuer, client_id, client_secret, scopes, require_idp, jit_enabled, \
                 jit_default_role, first_admin_idp_login_at, updated_at, display_name FROM sso_settings WHERE partner_id = $1",
            )
            .bind(partner)
            .fetch_optional(pool)
            .await?
        });
        row.map(|t| {
            Ok(SsoSettings {
                client_secret: self.inner.keys.open(&client_secret_aad(&t.0), &t.3)?,
                partner_id: t.0,
                issuer: t.1,
                client_id: t.2,
                scopes: t.4.split_whitespace().map(str::to_owned).collect(),
                require_idp: t.5,
                jit_enabled: t.6,
                jit_default_role: t.7,
                first_admin_idp_login_at: t.8,
                updated_at: t.9,
                display_name: t.10,
            })
        })
        .transpose()
    }

    /// Create or replace a partner's settings. Invalid when creating without a client secret.
    /// Changing the issuer forgets the first administrator login (it proved another provider).
    pub async fn put_sso_settings(
        &self,
        partner: &str,
        s: &SsoSettingsUpdate<'_>,
        now: Millis,
    ) -> Result<(), StoreError> {
        let sealed = s
            .client_secret
            .map(|v| self.inner.keys.seal(&client_secret_aad(partner), v))
            .transpose()?;
        let scopes = s.scopes.join(" ");
        with_write!(self, pool => {
            let updated = sqlx::query(
                "UPDATE sso_settings SET \
                 first_admin_idp_login_at = CASE WHEN issuer = $2 THEN first_admin_idp_login_at ELSE NULL END, \
                 issuer = $2, client_id = $3, client_secret = COALESCE($4, client_secret), scopes = $5, \
                 require_idp = $6, jit_enabled = $7, jit_default_role = $8, updated_at = $9, display_name = $10 \
                 WHERE partner_id = $1",
            )
            .bind(partner)
            .bind(s.issuer)
            .bind(s.client_id)
            .bind(sealed.as_deref())
            .bind(&scopes)
            .bind(s.require_idp)
            .bind(s.jit_enabled)
            .bind(s.jit_default_role)
            .bind(now)
            .bind(s.display_name)
            .execute(pool)
            .await?;
            if updated.rows_affected() == 0 {
                let Some(sealed) = sealed.as_deref() else {
                    return Err(StoreError::Invalid("client_secret: required".into()));
                };
                sqlx::query(
                    "INSERT INTO sso_settings (partner_id, issuer, client_id, client_secret, scopes, \
                     require_idp, jit_enabled, jit_default_role, updated_at, display_name) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(partner)
                .bind(s.issuer)
                .bind(s.client_id)
                .bind(sealed)
                .bind(&scopes)
                .bind(s.require_idp)
                .bind(s.jit_enabled)
                .bind(s.jit_default_role)
                .bind(now)
                .bind(s.display_name)
                .execute(pool)
                .await
                .map_err(|e| StoreError::conflict_or(e, || format!("partner '{partner}' not found")))?;
            }
        });
        Ok(())
    }

    /// Record that an administrator logged in through the partner's provider; the first time
    /// only. True when this was the first.
    pub async fn record_admin_idp_login(
        &self,
        partner: &str,
        now: Millis,
    ) -> Result<bool, StoreError> {
        with_write!(self, pool => {
            Ok(sqlx::query(
                "UPDATE sso_settings SET first_admin_idp_login_at = $1 \
                 WHERE partner_id = $2 AND first_admin_idp_login_at IS NULL",
            )
            .bind(now)
            .bind(partner)
            .execute(pool)
            .await?
            .rows_affected()
                == 1)
        })
    }

    /// The partners whose provider is this issuer, in id order.
    pub async fn partners_with_issuer(&self, issuer: &str) -> Result<Vec<String>, StoreError> {
        with_read!(self, pool => {
            Ok(sqlx::query_scalar("SELECT partner_id FROM sso_settings WHERE issuer = $1 ORDER BY partner_id")
                .bind(issuer)
                .fetch_all(pool)
                .await?)
        })
    }

    // ---- exemptions -----------------------------------------------------------------------

    /// Exempt a person from requiring the provider. Conflict if they are already.
    pub async fn add_sso_exemption(
        &self,
        partner: &str,
        user: i64,
        now: Millis,
    ) -> Result<(), StoreError> {
        with_write!(self, pool => {
            sqlx::query("INSERT INTO sso_exemptions (partner_id, user_id, created_at) VALUES ($1, $2, $3)")
                .bind(partner)
                .bind(user)
                .bind(now)
                .execute(pool)
                .await
                .map_err(|e| StoreError::conflict_or(e, || format!("user {user} is exempt already")))?;
        });
        Ok(())
    }

    /// Remove an exemption. NotFound if there is none.
    pub async fn remove_sso_exemption(&self, partner: &str, user: i64) -> Result<(), StoreError> {
        with_write!(self, pool => {
            let done = sqlx::query("DELETE FROM sso_exemptions WHERE partner_id = $1 AND user_id = $2")
                .bind(partner)
                .bind(user)
                .execute(pool)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("exemption of user {user}")));
            }
        });
        Ok(())
    }

    /// The exempt people of a partner, by user id.
    pub async fn sso_exemptions(&self, partner: &str) -> Result<Vec<i64>, StoreError> {
        with_read!(self, pool => {
            Ok(sqlx::query_scalar("SELECT user_id FROM sso_exemptions WHERE partner_id = $1 ORDER BY user_id")
                .bind(partner)
                .fetch_all(pool)
                .await?)
        })
    }

    pub async fn is_sso_exempt(&self, partner: &str, user: i64) -> Result<bool, StoreError> {
        with_read!(self, pool => {
            let found: Option<i64> = sqlx::query_scalar("SELECT user_id FROM sso_exemptions WHERE partner_id = $1 AND user_id = $2")
                .bind(partner)
                .bind(user)
                .fetch_optional(pool)
                .await?;
            Ok(found.is_some())
        })
    }

    // ---- logins in flight -----------------------------------------------------------------

    /// Keep a login sent to the provider: `payload` (the serialized pending login) is sealed.
    pub async fn save_pending_login(
        &self,
        state_hash: &str,
        browser_hash: &str,
        partner: &str,
        payload: &str,
        expires_at: Millis,
    ) -> Result<(), StoreError> {
        let sealed = self.inner.keys.seal(&pending_aad(state_hash), payload)?;
        with_write!(self, pool => {
            sqlx::query("DELETE FROM sso_pending_logins WHERE expires_at <= $1")
                .bind(expires_at - 24 * 3_600_000)
                .execute(pool)
                .await?;
            sqlx::query(
                "INSERT INTO sso_pending_logins (state_hash, browser_hash, partner_id, payload, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(state_hash)
            .bind(browser_hash)
            .bind(partner)
            .bind(sealed)
            .bind(expires_at)
            .execute(pool)
            .await
            .map_err(|e| StoreError::conflict_or(e, || "a login with this state exists".into()))?;
        });
        Ok(())
    }

    /// Take a pending login, once: the partner and the opened payload, if the state is known,
    /// bound to this browser and not expired. A second take of the same state finds nothing.
    pub async fn take_pending_login(
        &self,
        state_hash: &str,
        browser_hash: &str,
        now: Millis,
    ) -> Result<Option<(String, Secret)>, StoreError> {
        let row: Option<(String, String)> = with_write!(self, pool => {
            sqlx::query_as(
                "DELETE FROM sso_pending_logins WHERE state_hash = $1 AND browser_hash = $2 AND expires_at > $3 \
                 RETURNING partner_id, payload",
            )
            .bind(state_hash)
            .bind(browser_hash)
            .bind(now)
            .fetch_optional(pool)
            .await?
        });
        row.map(|(partner, sealed)| {
            Ok((
                partner,
                self.inner.keys.open(&pending_aad(state_hash), &sealed)?,
            ))
        })
        .transpose()
    }

    /// Keep a verified identity for the browser (replacing any earlier one).
    pub async fn put_sso_continuation(
        &self,
        browser_hash: &str,
        c: &SsoContinuation,
    ) -> Result<(), StoreError> {
        with_write!(self, pool => {
            sqlx::query(
                "INSERT INTO sso_continuations (browser_hash, kind, user_id, issuer, subject, idp_sid, partner_id, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (browser_hash) DO UPDATE SET kind = excluded.kind, user_id = excluded.user_id, \
                 issuer = excluded.issuer, subject = excluded.subject, idp_sid = excluded.idp_sid, \
                 partner_id = excluded.partner_id, expires_at = excluded.expires_at",
            )
            .bind(browser_hash)
            .bind(&c.kind)
            .bind(c.user_id)
            .bind(&c.issuer)
            .bind(&c.subject)
            .bind(&c.idp_sid)
            .bind(&c.partner_id)
            .bind(c.expires_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The browser's waiting identity of this kind, if not expired (without using it).
    pub async fn sso_continuation(
        &self,
        browser_hash: &str,
        kind: &str,
        now: Millis,
    ) -> Result<Option<SsoContinuation>, StoreError> {
        let row: Option<ContinuationTuple> = with_read!(self, pool => {
            sqlx::query_as(
                "SELECT kind, user_id, issuer, subject, idp_sid, partner_id, expires_at FROM sso_continuations \
                 WHERE browser_hash = $1 AND kind = $2 AND expires_at > $3",
            )
            .bind(browser_hash)
            .bind(kind)
            .bind(now)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(continuation_from))
    }

    /// Use the browser's waiting identity of this kind, once.
    pub async fn take_sso_continuation(
        &self,
        browser_hash: &str,
        kind: &str,
        now: Millis,
    ) -> Result<Option<SsoContinuation>, StoreError> {
        let row: Option<ContinuationTuple> = with_write!(self, pool => {
            sqlx::query_as(
                "DELETE FROM sso_continuations WHERE browser_hash = $1 AND kind = $2 AND expires_at > $3 \
                 RETURNING kind, user_id, issuer, subject, idp_sid, partner_id, expires_at",
            )
            .bind(browser_hash)
            .bind(kind)
            .bind(now)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(continuation_from))
    }

    // ---- back-channel logout --------------------------------------------------------------

    /// Remember a logout token's id until it expires. False if it was seen already (a replay).
    pub async fn remember_logout_token(
        &self,
        issuer: &str,
        jti: &str,
        expires_at: Millis,
        now: Millis,
    ) -> Result<bool, StoreError> {
        with_write!(self, pool => {
            sqlx::query("DELETE FROM sso_logout_tokens WHERE expires_at < $1")
                .bind(now)
                .execute(pool)
                .await?;
            Ok(sqlx::query(
                "INSERT INTO sso_logout_tokens (issuer, jti, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (issuer, jti) DO NOTHING",
            )
            .bind(issuer)
            .bind(jti)
            .bind(expires_at)
            .execute(pool)
            .await?
            .rows_affected()
                == 1)
        })
    }

    /// End the sessions opened through the provider `issuer`: the one with provider session
    /// `sid` when given, else every provider session of the person linked to `subject`.
    /// Returns the ended sessions' user ids (for the audit log).
    pub async fn revoke_idp_sessions(
        &self,
        issuer: &str,
        sid: Option<&str>,
        subject: Option<&str>,
        now: Millis,
    ) -> Result<Vec<i64>, StoreError> {
        with_write!(self, pool => {
            let ended: Vec<i64> = match (sid, subject) {
                (Some(sid), subject) => sqlx::query_scalar(
                    "UPDATE sessions SET revoked_at = $1 WHERE revoked_at IS NULL AND auth_method = 'idp' \
                     AND idp_sid = $2 AND user_id IN (SELECT user_id FROM user_identities WHERE issuer = $3 \
                     AND ($4 IS NULL OR subject = $4)) RETURNING user_id",
                )
                .bind(now)
                .bind(sid)
                .bind(issuer)
                .bind(subject)
                .fetch_all(pool)
                .await?,
                (None, Some(subject)) => sqlx::query_scalar(
                    "UPDATE sessions SET revoked_at = $1 WHERE revoked_at IS NULL AND auth_method = 'idp' \
                     AND user_id IN (SELECT user_id FROM user_identities WHERE issuer = $2 AND subject = $3) \
                     RETURNING user_id",
                )
                .bind(now)
                .bind(issuer)
                .bind(subject)
                .fetch_all(pool)
                .await?,
                (None, None) => Vec::new(),
            };
            Ok(ended)
        })
    }
}

fn continuation_from(t: ContinuationTuple) -> SsoContinuation {
    SsoContinuation {
        kind: t.0,
        user_id: t.1,
        issuer: t.2,
        subject: t.3,
        idp_sid: t.4,
        partner_id: t.5,
        expires_at: t.6,
    }
}
