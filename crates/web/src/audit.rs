//! The audit entry of a change made by a handler that is not (yet) an operation of
//! `psabridge_ops` (partners, tokens, deliveries, event types, usage, billing, import).

use serde_json::Value;

use crate::AppState;
use crate::auth::Caller;

/// Record a change in the audit log, as `psabridge_ops::Ops::audit` does.
pub(crate) async fn audit(
    s: &AppState,
    caller: &Caller,
    partner: Option<&str>,
    action: &str,
    target: &str,
    before: Option<&Value>,
    after: Option<&Value>,
) {
    psabridge_ops::audit::record(
        &s.store,
        &caller.1.0,
        partner,
        action,
        target,
        before,
        after,
    )
    .await;
}
