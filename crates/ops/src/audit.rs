//! The audit entry every change writes: who, what, on what, and the views before and after
//! (the API's own views, which hold no secret, only the names of the secrets that are set).

use serde::Serialize;
use serde_json::Value;

use psabridge_store::Store;

use crate::Ops;
use crate::acting::Acting;

/// A view as the audit log keeps it.
pub fn snapshot<T: Serialize>(view: &T) -> Value {
    serde_json::to_value(view).unwrap_or(Value::Null)
}

/// Record a change in the audit log. The change has been committed already; a failure to
/// record it is logged, not returned, so a caller never retries a change that was made.
pub async fn record(
    store: &Store,
    actor: &str,
    partner: Option<&str>,
    action: &str,
    target: &str,
    before: Option<&Value>,
    after: Option<&Value>,
) {
    let entry = psabridge_store::audit::NewAuditEntry {
        partner_id: partner,
        actor,
        action,
        target,
        before,
        after,
    };
    if let Err(e) = store.record_audit(&entry, crate::input::now()).await {
        tracing::error!(action, target, error = %e, "recording a change in the audit log failed");
    }
}

impl Ops {
    /// Record a change made by `acting` (see [`record`]).
    pub async fn audit(
        &self,
        acting: &Acting,
        partner: Option<&str>,
        action: &str,
        target: &str,
        before: Option<&Value>,
        after: Option<&Value>,
    ) {
        record(
            &self.store,
            &acting.actor,
            partner,
            action,
            target,
            before,
            after,
        )
        .await;
    }
}
