//! The audit log: who changed which setting when, with the setting before and after.
//!
//! Callers pass the API's own views of what changed, which never contain secrets (only the
//! names of the secrets that are set), so nothing secret can reach this table.

use serde_json::Value;
use sqlx::Row;

use crate::Millis;
use crate::db::{Store, like_contains, like_literal, with_read, with_write};
use crate::error::StoreError;

/// One change to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry<'a> {
    pub partner_id: Option<&'a str>,
    pub actor: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub before: Option<&'a Value>,
    pub after: Option<&'a Value>,
}

/// One recorded change.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: i64,
    pub partner_id: Option<String>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub at: Millis,
}

impl Store {
    pub async fn record_audit(&self, e: &NewAuditEntry<'_>, now: Millis) -> Result<(), StoreError> {
        let text = |v: Option<&Value>| v.map(Value::to_string);
        with_write!(self, pool => {
            sqlx::query(
                "INSERT INTO audit_log (partner_id, actor, action, target, before_json, after_json, at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(e.partner_id)
            .bind(e.actor)
            .bind(e.action)
            .bind(e.target)
            .bind(text(e.before))
            .bind(text(e.after))
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// A partner's changes, newest first; `before_id` pages backwards.
    pub async fn audit_log(
        &self,
        partner: &str,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.audit_log_filtered(
            partner,
            &AuditFilter {
                before_id,
                limit,
                ..AuditFilter::default()
            },
        )
        .await
    }

    /// A partner's changes that match `f`, newest first.
    pub async fn audit_log_filtered(
        &self,
        partner: &str,
        f: &AuditFilter,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        // LIKE patterns: the person's text is matched literally (its % and _ escaped).
        let like = |s: &Option<String>, prefix_only: bool| {
            s.as_ref().map(|t| {
                if prefix_only {
                    format!("{}%", like_literal(t))
                } else {
                    like_contains(t)
                }
            })
        };
        with_read!(self, pool => {
            let rows = sqlx::query(
                "SELECT id, partner_id, actor, action, target, before_json, after_json, at FROM audit_log \
                 WHERE partner_id = $1 AND ($2 IS NULL OR id < $2) \
                 AND ($4 IS NULL OR actor LIKE $4 ESCAPE '\\') AND ($5 IS NULL OR action LIKE $5 ESCAPE '\\') \
                 AND ($6 IS NULL OR at >= $6) AND ($7 IS NULL OR at < $7) \
                 ORDER BY id DESC LIMIT $3",
            )
            .bind(partner)
            .bind(f.before_id)
            .bind(f.limit.clamp(1, 1000))
            .bind(like(&f.actor, false))
            .bind(like(&f.action, true))
            .bind(f.since)
            .bind(f.until)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    let json = |c: &str| -> Result<Option<Value>, StoreError> {
                        let t: Option<String> = r.try_get(c)?;
                        Ok(t.and_then(|t| serde_json::from_str(&t).ok()))
                    };
                    Ok(AuditEntry {
                        id: r.try_get("id")?,
                        partner_id: r.try_get("partner_id")?,
                        actor: r.try_get("actor")?,
                        action: r.try_get("action")?,
                        target: r.try_get("target")?,
                        before: json("before_json")?,
                        after: json("after_json")?,
                        at: r.try_get("at")?,
                    })
                })
                .collect()
        })
    }
}

/// Which audit entries to read (every filter optional).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Entries with an id below this (paging backwards).
    pub before_id: Option<i64>,
    pub limit: i64,
    /// Who: a part of the actor (`ann@example.com`, `token:3`).
    pub actor: Option<String>,
    /// What: the start of the action (`connection.`, `auth.login`).
    pub action: Option<String>,
    /// When: from (inclusive) and until (exclusive), in milliseconds.
    pub since: Option<crate::Millis>,
    pub until: Option<crate::Millis>,
}
