//! Routing accepted events into deliveries.

use std::collections::HashMap;

use psabridge_core::channels::{
    CHANNEL_CONNECTION_ID, ChannelSubscription, channel_group_key, channels_for,
};
use psabridge_core::email::{EMAIL_CHANNEL, EMAIL_CONNECTION_ID, EmailSettings, email_route};
use psabridge_core::routing::{Route, Routing, route};
use psabridge_core::settings::{PartnerSettings, Refire, TicketDefaults};
use psabridge_store::StoreError;
use psabridge_store::config::defaults_to_json;
use psabridge_store::outbox::{Delivery, NewDelivery, RoutingResult, StoredEvent};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::{Engine, Stats, now_ms};

/// Longest sleep of an idle router.
const ROUTER_SAFETY: std::time::Duration = std::time::Duration::from_secs(10);

/// Route until shut down: woken by every ingest commit (other nodes' too, on PostgreSQL).
pub async fn run(engine: Engine, shutdown: CancellationToken) {
    let notify = engine.store.accepted_notify();
    loop {
        match route_once(&engine).await {
            Ok(n) if n as i64 >= engine.config.route_batch => continue,
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "routing failed; will retry"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = notify.notified() => {
                // Let the commits of a burst gather: one routing batch instead of one each.
                tokio::time::sleep(engine.config.coalesce).await;
            }
            // A safety net: commits wake us, this node's in memory and (on PostgreSQL)
            // other nodes' by LISTEN/NOTIFY.
            _ = tokio::time::sleep(ROUTER_SAFETY) => {}
        }
    }
}

/// Route one batch; returns how many events it routed.
pub async fn route_once(engine: &Engine) -> Result<usize, StoreError> {
    let events = engine
        .store
        .unrouted_events(engine.config.route_batch)
        .await?;
    if events.is_empty() {
        return Ok(0);
    }
    let mut settings: HashMap<String, Option<PartnerSettings>> = HashMap::new();
    let mut email: HashMap<String, EmailSettings> = HashMap::new();
    let mut channels: HashMap<String, Vec<ChannelSubscription>> = HashMap::new();
    let mut decisions = Vec::with_capacity(events.len());
    let catalog = engine.catalog.fresh().await;
    for ev in events {
        if !settings.contains_key(&ev.partner_id) {
            let s = match engine.store.partner_settings(&ev.partner_id).await {
                Ok(mut s) => {
                    s.off_by_default = catalog.off_by_default.clone();
                    Some(s)
                }
                Err(StoreError::NotFound(_)) => None,
                Err(e) => return Err(e),
            };
            if s.is_some() {
                email.insert(
                    ev.partner_id.clone(),
                    engine.store.email_settings(&ev.partner_id).await?,
                );
                channels.insert(
                    ev.partner_id.clone(),
                    engine.store.channel_subscriptions(&ev.partner_id).await?,
                );
            }
            settings.insert(ev.partner_id.clone(), s);
        }
        let result = match settings.get(&ev.partner_id).and_then(Option::as_ref) {
            None => RoutingResult::Skip("the partner no longer exists".into()),
            Some(s) => with_channels(
                with_email(decide(&ev, s), &ev, email.get(&ev.partner_id)),
                &ev,
                channels
                    .get(&ev.partner_id)
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
            ),
        };
        match &result {
            RoutingResult::Skip(_) => Stats::inc(&engine.stats.events_skipped),
            RoutingResult::Deliver(_) => Stats::inc(&engine.stats.events_routed),
        }
        decisions.push((ev, result));
    }
    let n = decisions.len();
    let made = engine.store.record_routing(&decisions, now_ms()).await?;
    if made > 0 {
        engine.work.notify_one();
    }
    Ok(n)
}

fn decide(ev: &StoredEvent, settings: &PartnerSettings) -> RoutingResult {
    match route(&ev.event, settings) {
        Routing::Skip(why) => RoutingResult::Skip(why.reason().to_string()),
        Routing::Deliver(routes) => RoutingResult::Deliver(
            routes
                .into_iter()
                .map(|r| NewDelivery {
                    channel: "psa",
                    connection_id: r.connection_id,
                    group_key: r.group_key.clone(),
                    route: route_json(&r),
                })
                .collect(),
        ),
    }
}

/// A route as it is stored on its delivery (read back by [`StoredRoute::parse`]).
fn route_json(r: &Route) -> serde_json::Value {
    json!({
        "company_id": r.company_id,
        "mapped": r.mapped,
        "default_contact_id": r.default_contact_id,
        "catch_all_contact_id": r.catch_all_contact_id,
        "fields": defaults_to_json(&r.fields),
        "contract_id": r.contract_id,
        "refire": r.refire.mode(),
        "reopen_within_secs": r.refire.within_secs(),
    })
}

/// What routing a retried delivery again with today's settings did.
pub(crate) enum Rerouted {
    /// The delivery now carries today's route.
    Updated,
    /// Today's settings no longer send the event to this connection: the delivery keeps the
    /// route it had (a retry asked for by hand still goes where it was going).
    Kept(String),
    /// Another worker has the delivery now.
    LeaseLost,
}

/// Route a retried delivery's event again with the partner's settings of now and record the
/// route of its connection on it (its group key stays: the group's order is already set).
pub(crate) async fn reroute(
    engine: &Engine,
    owner: &str,
    d: &mut Delivery,
) -> Result<Rerouted, StoreError> {
    let settings = match engine.store.partner_settings(&d.partner_id).await {
        Ok(mut s) => {
            s.off_by_default = engine.catalog.fresh().await.off_by_default.clone();
            s
        }
        Err(StoreError::NotFound(_)) => {
            return Ok(Rerouted::Kept("the partner no longer exists".into()));
        }
        Err(e) => return Err(e),
    };
    let today = match route(&d.event.event, &settings) {
        Routing::Skip(why) => return Ok(Rerouted::Kept(why.reason().to_string())),
        Routing::Deliver(routes) => routes
            .into_iter()
            .find(|r| r.connection_id == d.connection_id),
    };
    let Some(today) = today else {
        return Ok(Rerouted::Kept(
            "today's settings route the event to another connection".into(),
        ));
    };
    let stored = route_json(&today);
    if !engine
        .store
        .reroute_delivery(d.id, owner, &stored, now_ms())
        .await?
    {
        return Ok(Rerouted::LeaseLost);
    }
    d.route = stored;
    d.reroute = false;
    Ok(Rerouted::Updated)
}

/// Add the event's email, if its type is emailed: beside the PSA deliveries, or alone when
/// the PSA side skipped it. It is recorded in the same transaction as they are.
fn with_email(
    result: RoutingResult,
    ev: &StoredEvent,
    email: Option<&EmailSettings>,
) -> RoutingResult {
    let Some(route) = email.and_then(|s| email_route(&ev.partner_id, &ev.event, s)) else {
        return result;
    };
    let delivery = NewDelivery {
        channel: EMAIL_CHANNEL,
        connection_id: EMAIL_CONNECTION_ID,
        group_key: route.group_key,
        route: json!({
            "recipients": route.recipients.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        }),
    };
    match result {
        RoutingResult::Deliver(mut list) => {
            list.push(delivery);
            RoutingResult::Deliver(list)
        }
        RoutingResult::Skip(_) => RoutingResult::Deliver(vec![delivery]),
    }
}

/// Add a message for each chat or webhook channel that gets the event's type: beside the PSA
/// and email deliveries, or alone when the PSA side skipped it (the same rule as email).
fn with_channels(
    result: RoutingResult,
    ev: &StoredEvent,
    subscriptions: &[ChannelSubscription],
) -> RoutingResult {
    let messages: Vec<NewDelivery> = channels_for(subscriptions, &ev.event.event_type)
        .into_iter()
        .filter_map(|id| {
            let kind = subscriptions.iter().find(|s| s.channel_id == id)?.kind;
            Some(NewDelivery {
                channel: kind.as_str(),
                connection_id: CHANNEL_CONNECTION_ID,
                group_key: channel_group_key(&ev.partner_id, id, &ev.event.id),
                route: json!({ "channel_id": id }),
            })
        })
        .collect();
    if messages.is_empty() {
        return result;
    }
    match result {
        RoutingResult::Deliver(mut list) => {
            list.extend(messages);
            RoutingResult::Deliver(list)
        }
        RoutingResult::Skip(_) => RoutingResult::Deliver(messages),
    }
}

/// The route stored on a delivery, read back.
#[derive(Debug, Clone)]
pub struct StoredRoute {
    pub company_id: String,
    pub mapped: bool,
    pub default_contact_id: Option<String>,
    pub catch_all_contact_id: Option<String>,
    pub fields: TicketDefaults,
    pub contract_id: Option<String>,
    pub refire: Refire,
}

impl StoredRoute {
    pub fn parse(v: &serde_json::Value) -> Option<StoredRoute> {
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        Some(StoredRoute {
            company_id: s("company_id")?,
            mapped: v.get("mapped").and_then(|m| m.as_bool()).unwrap_or(false),
            default_contact_id: s("default_contact_id"),
            catch_all_contact_id: s("catch_all_contact_id"),
            fields: psabridge_store::config::defaults_from_json(
                v.get("fields").unwrap_or(&serde_json::Value::Null),
            ),
            contract_id: s("contract_id"),
            // Routes stored before re-fire policies existed meant "a new ticket".
            refire: Refire::from_parts(
                v.get("refire")
                    .and_then(|m| m.as_str())
                    .unwrap_or("new_ticket"),
                v.get("reopen_within_secs").and_then(|w| w.as_i64()),
            )
            .unwrap_or_default(),
        })
    }
}
