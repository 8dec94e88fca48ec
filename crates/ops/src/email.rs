//! Email settings of a partner, per event type of the catalog: on/off and the recipients.
//!
//! The recipients are one string separated by `;`, as vendor screens take them; every address
//! is checked when saved (`psabridge_core::email::parse_address_list`), and a bad one is named
//! with its position. Email cannot be switched on where no SMTP server is configured: the
//! switch would only fill the delivery log with dead emails.

use psabridge_core::email::{EmailRule, parse_address_list};
use psabridge_core::event::FieldError;
use psabridge_identity::Permission;
use serde::Deserialize;

use crate::Ops;
use crate::acting::Acting;
use crate::audit::snapshot;
use crate::error::OpsError;
use crate::input::now;
use crate::views::{EmailSettingView, EmailSettingsView};

/// Email on or off for one event type, and to whom.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettingRequest {
    pub enabled: bool,
    /// Addresses separated by `;` (`a@x.com; Bea <b@y.com>`).
    #[serde(default)]
    pub addresses: String,
}

const NO_SMTP: &str = "email cannot be switched on: no SMTP server is configured (the [smtp] section of the configuration)";

impl Ops {
    /// Every event type of the catalog with its email switch and recipients.
    pub async fn email_settings(
        &self,
        acting: &Acting,
        partner: &str,
    ) -> Result<EmailSettingsView, OpsError> {
        self.partner_for(acting, partner, Permission::ViewSettings)
            .await?;
        let mut settings = self.store.email_settings(partner).await?;
        let catalog = self.event_catalog().await;
        Ok(EmailSettingsView {
            smtp_configured: self.engine.can_email(),
            event_types: catalog
                .iter()
                .map(|t| {
                    let rule = settings.by_event_type.remove(&t.key).unwrap_or_default();
                    EmailSettingView::of(t, &rule)
                })
                .collect(),
        })
    }

    /// Switch email on or off for one event type, with its recipients.
    pub async fn put_email_setting(
        &self,
        acting: &Acting,
        partner: &str,
        event_type: &str,
        req: EmailSettingRequest,
    ) -> Result<EmailSettingView, OpsError> {
        self.partner_for(acting, partner, Permission::ManageSettings)
            .await?;
        let catalog = self.event_catalog().await;
        let Some(t) = catalog.get(event_type) else {
            return Err(OpsError::NotFound(format!(
                "event type '{event_type}' is not in the catalog (GET /api/v1/event-types lists them)"
            )));
        };
        let addresses = parse_address_list(&req.addresses)
            .map_err(|e| OpsError::field("addresses", e.to_string()))?;
        if req.enabled && addresses.is_empty() {
            return Err(OpsError::field(
                "addresses",
                "at least one address is needed to switch email on",
            ));
        }
        if req.enabled && !self.engine.can_email() {
            return Err(OpsError::Conflict {
                title: "Email is not configured".into(),
                detail: format!("enabled: {NO_SMTP}"),
                errors: vec![FieldError::new("enabled", NO_SMTP)],
                references: Vec::new(),
            });
        }
        let rule = EmailRule {
            enabled: req.enabled,
            addresses,
        };
        let before = self
            .store
            .put_email_rule(partner, event_type, &rule, now())
            .await?;
        let before = EmailSettingView::of(t, &before);
        let after = EmailSettingView::of(t, &rule);
        self.audit(
            acting,
            Some(partner),
            "email_settings.put",
            &format!("email:{event_type}"),
            Some(&snapshot(&before)),
            Some(&snapshot(&after)),
        )
        .await;
        Ok(after)
    }
}
