//! Email settings per partner and event type.
//!
//! The addresses are stored as the API shows them (`a@x.com; b@y.com`) after the API checked
//! them; reading them back parses them again, so a row that no longer parses (edited by hand)
//! is reported as corrupt instead of mailing a wrong address.
//!
//! Email deliveries themselves are ordinary outbox rows (`deliveries.channel = 'email'`), made by
//! [`Store::record_routing`] in the same transaction as the PSA deliveries of the event.

use psabridge_core::email::{EmailRule, EmailSettings, format_address_list, parse_address_list};
use sqlx::Row;

use crate::Millis;
use crate::db::{Store, with_read, with_write};
use crate::error::{StoreError, corrupt};

impl Store {
    /// A partner's email settings (event types without a row are off).
    pub async fn email_settings(&self, partner: &str) -> Result<EmailSettings, StoreError> {
        let rows: Vec<(String, bool, String)> = with_read!(self, pool => {
            let rows = sqlx::query(
                "SELECT event_type, enabled, addresses FROM email_settings WHERE partner_id = $1 ORDER BY event_type",
            )
            .bind(partner)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| Ok((r.try_get("event_type")?, r.try_get("enabled")?, r.try_get("addresses")?)))
                .collect::<Result<Vec<_>, StoreError>>()?
        });
        let mut settings = EmailSettings::default();
        for (event_type, enabled, addresses) in rows {
            let addresses = parse_address_list(&addresses).map_err(|e| {
                corrupt(format!(
                    "email settings of {partner}, event type {event_type}: {e}"
                ))
            })?;
            settings
                .by_event_type
                .insert(event_type, EmailRule { enabled, addresses });
        }
        Ok(settings)
    }

    /// Set the email rule of one event type; returns the rule it replaces (off when none).
    pub async fn put_email_rule(
        &self,
        partner: &str,
        event_type: &str,
        rule: &EmailRule,
        now: Millis,
    ) -> Result<EmailRule, StoreError> {
        let before = self
            .email_settings(partner)
            .await?
            .by_event_type
            .remove(event_type)
            .unwrap_or_default();
        with_write!(self, pool => {
            sqlx::query(
                "INSERT INTO email_settings (partner_id, event_type, enabled, addresses, updated_at) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (partner_id, event_type) DO UPDATE SET \
                 enabled = excluded.enabled, addresses = excluded.addresses, updated_at = excluded.updated_at",
            )
            .bind(partner)
            .bind(event_type)
            .bind(rule.enabled)
            .bind(format_address_list(&rule.addresses))
            .bind(now)
            .execute(pool)
            .await
            .map_err(|e| StoreError::conflict_or(e, || format!("partner '{partner}'")))?;
        });
        Ok(before)
    }
}
