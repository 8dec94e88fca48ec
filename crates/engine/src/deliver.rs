//! Claiming deliveries and carrying out their plans.
//!
//! One delivery, one attempt:
//! 1. read the group's open ticket (ours, from the database — never a PSA search);
//! 2. ask the core for the plan (create, note, verify-then-note, or — when the group's ticket
//!    is closed — what the mapping's re-fire policy says: reopen it, note it, or create);
//! 3. carry it out through the connector, re-planning once if the PSA says the ticket is
//!    closed or gone;
//! 4. record success, or schedule a retry (backoff, `Retry-After`), or declare it dead.
//!
//! Creating exactly once across crashes: before sending a create we durably mark the
//! delivery "create sent", and every ticket carries our reference. An attempt that finds the
//! mark (an earlier attempt died or timed out after sending) first looks the reference up in
//! the PSA, and records the ticket it finds instead of creating another. A note likewise:
//! the mark names the ticket it went to, and the next attempt looks for the note there first,
//! even if that ticket has been closed since.

use std::time::Duration;

use chrono::Utc;
use psabridge_core::alerts;
use psabridge_core::contact::{Candidates, ContactSource, choose_contact, needs_company_primary};
use psabridge_core::plan::{ClosedTicket, OpenTicket, Plan, after_closed, plan};
use psabridge_core::render::{TemplateContext, truncate};
use psabridge_core::settings::Refire;
use psabridge_psa::{Connector, NewNote, NewTicket, PsaError};
use psabridge_store::from_millis;
use psabridge_store::outbox::{Attempt, Delivery, Failure, Success};
use rand::Rng;

use crate::router::{Rerouted, StoredRoute};
use crate::{Engine, Stats, now_ms};

/// What an attempt did, for the log and the outcome.
pub(crate) struct Run {
    create_sent: bool,
    note_sent: bool,
    summary: Vec<String>,
}

/// Deliver one claimed delivery and record what happened.
pub async fn deliver_one(engine: &Engine, owner: &str, mut d: Delivery) {
    if d.channel == psabridge_core::email::EMAIL_CHANNEL {
        return crate::mail::deliver_email(engine, owner, d).await;
    }
    if psabridge_core::channels::ChannelKind::parse(&d.channel).is_some() {
        return crate::channels::deliver_channel(engine, owner, d).await;
    }
    let started = now_ms();
    // A retry asked for by hand goes out with today's settings, not those of its first try.
    let mut rerouted = None;
    if d.reroute {
        match crate::router::reroute(engine, owner, &mut d).await {
            Ok(Rerouted::Updated) => rerouted = Some("routed again with today's settings".into()),
            Ok(Rerouted::Kept(why)) => {
                rerouted = Some(format!("kept the route it had: {why}"));
            }
            Ok(Rerouted::LeaseLost) => return,
            Err(e) => {
                let why = format!("routing the retry again failed: {e}");
                fail(engine, owner, &d, started, 0, None, &why, Some(None), false).await;
                return;
            }
        }
    }
    // Without its connection or a connector, a delivery cannot go anywhere: dead, with why.
    let setup = async {
        let connection = engine
            .store
            .connection_by_id(d.connection_id)
            .await
            .map_err(|e| format!("the PSA connection is gone: {e}"))?;
        let connector = engine
            .connectors
            .get(&engine.store, &connection)
            .await
            .map_err(|e| format!("the PSA connection is misconfigured: {e}"))?;
        Ok::<_, String>((connection, connector))
    };
    let (connection, connector) = match setup.await {
        Ok(found) => found,
        Err(why) => {
            fail(engine, owner, &d, started, 0, None, &why, None, false).await;
            return;
        }
    };
    if psabridge_core::replay::outside_replay_window(
        d.event.received_at,
        d.replayed_at,
        now_ms(),
        engine.config.replay_window,
        d.create_sent_at.is_some() || d.note_sent_at.is_some(),
    ) {
        expire(engine, owner, &d, started).await;
        return;
    }
    let mut run = Run {
        create_sent: false,
        note_sent: false,
        summary: rerouted.into_iter().collect(),
    };
    let trust = if connection.webhook_id.is_some() {
        engine.config.trust_with_webhook
    } else {
        engine.config.trust_without_webhook
    };
    let (result, calls) = psabridge_psa::count_calls(attempt(
        engine,
        owner,
        &d,
        connector.as_ref(),
        &mut run,
        trust,
        connection.close_on_resolve,
    ))
    .await;
    let calls = calls as i64;
    match result {
        Ok(Some(ok)) => {
            engine.breakers.success(d.connection_id);
            let attempt = Attempt {
                attempt: d.attempts,
                started_at: started,
                finished_at: now_ms(),
                outcome: ok.psa_action.to_string(),
                psa_calls: calls,
                summary: Some(run.summary.join("; ")),
                error: None,
            };
            match engine
                .store
                .finish_delivery(&d, owner, &ok, &attempt, now_ms())
                .await
            {
                Ok(true) => {
                    crate::metrics::delivery(engine, d.connection_id, ok.psa_action);
                    let c = match ok.psa_action {
                        "created" => &engine.stats.tickets_created,
                        "noted" | "closed" => &engine.stats.notes_added,
                        _ => &engine.stats.deliveries_without_action,
                    };
                    Stats::inc(c);
                    // The next delivery of this group may be waiting for this one.
                    engine.work.notify_one();
                }
                Ok(false) => tracing::warn!(
                    delivery = d.id,
                    "lease lost before the outcome was recorded"
                ),
                Err(e) => {
                    tracing::error!(delivery = d.id, error = %e, "recording a delivery failed; its lease will expire and it will be retried")
                }
            }
        }
        Ok(None) => {
            tracing::warn!(
                delivery = d.id,
                "lease lost during the attempt; another worker has it"
            );
        }
        Err(e) => {
            if e.is_retryable() {
                engine.breakers.failure(d.connection_id, e.retry_after());
                crate::breaker::share_pause(engine, d.connection_id).await;
            }
            // Keep the "sent" marks while a ticket or note may exist that we have not seen.
            let unknown = if run.create_sent || run.note_sent {
                e.outcome_unknown()
            } else {
                d.create_sent_at.is_some() || d.note_sent_at.is_some()
            };
            let msg = format!("{} ({})", e, e.class());
            fail(
                engine,
                owner,
                &d,
                started,
                calls,
                Some(&run),
                &msg,
                e.is_retryable().then(|| e.retry_after()),
                unknown,
            )
            .await;
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn fail(
    engine: &Engine,
    owner: &str,
    d: &Delivery,
    started: i64,
    calls: i64,
    run: Option<&Run>,
    error: &str,
    retry: Option<Option<Duration>>,
    outcome_unknown: bool,
) {
    Stats::inc(&engine.stats.delivery_failures);
    let policy = engine.config.retry;
    // Attempts since the last retry asked for by hand: each such retry gets the whole policy.
    let failed = (d.attempts - d.attempts_before_retry).max(1) as u32;
    // `retry` is `None` when trying again cannot help; inside it, the PSA's Retry-After.
    // (A connection whose breaker opened is also kept from being claimed until it closes.)
    let retry_at = retry
        .filter(|_| !policy.is_exhausted(failed))
        .map(|retry_after| {
            let jitter: f64 = rand::rng().random();
            let mut at = now_ms() + policy.delay(failed, retry_after, jitter).as_millis() as i64;
            if outcome_unknown {
                // What we sent may still be in progress at the PSA: look for it only once it
                // has had time to land, or the look-up could miss it and we would send it twice.
                at = at.max(now_ms() + engine.config.settle.as_millis() as i64);
            }
            at
        });
    if retry_at.is_none() {
        Stats::inc(&engine.stats.deliveries_dead);
    }
    crate::metrics::delivery(
        engine,
        d.connection_id,
        if retry_at.is_some() { "retry" } else { "dead" },
    );
    let attempt = Attempt {
        attempt: d.attempts,
        started_at: started,
        finished_at: now_ms(),
        outcome: if retry_at.is_some() { "retry" } else { "dead" }.into(),
        psa_calls: calls,
        summary: run.map(|r| r.summary.join("; ")).filter(|s| !s.is_empty()),
        error: Some(error.to_string()),
    };
    tracing::warn!(
        delivery = d.id,
        attempt = d.attempts,
        error,
        retry = retry_at.is_some(),
        "delivery attempt failed"
    );
    if let Err(e) = engine
        .store
        .fail_delivery(
            d,
            owner,
            &Failure {
                error,
                retry_at,
                outcome_unknown,
                expired: false,
            },
            &attempt,
            now_ms(),
        )
        .await
    {
        tracing::error!(delivery = d.id, error = %e, "recording a failed attempt failed; its lease will expire");
    }
}

/// The note that goes with closing a ticket whose every alert has resolved: why, then `body`
/// (which carries `reference`, so that a retry finds it).
fn closing_note(body: &str, reference: &str) -> NewNote {
    NewNote {
        title: "Resolved: every alert of this ticket has resolved".into(),
        text: format!(
            "Every alert this ticket stands for has resolved, so PSA Bridge closed it.\n\n{body}"
        ),
        reference: reference.to_string(),
    }
}

/// Keep a delivery whose event is older than the replay window, unsent, as `expired`.
/// Record a message that went out without a PSA call (an email, a chat or webhook post):
/// delivered, with `action` as its outcome and `summary` in the log. If the record fails, the
/// lease expires and the message is sent again under the same id (Message-ID, webhook-id), so
/// the receiver can drop the copy.
pub(crate) async fn finish_sent(
    engine: &Engine,
    owner: &str,
    d: &Delivery,
    started: i64,
    action: &'static str,
    summary: String,
    ticket_number: Option<String>,
) {
    let attempt = Attempt {
        attempt: d.attempts,
        started_at: started,
        finished_at: now_ms(),
        outcome: action.into(),
        psa_calls: 0,
        summary: Some(summary),
        error: None,
    };
    let ok = Success {
        psa_action: action,
        ticket_id: None,
        ticket_number,
        contact_id: None,
        contact_source: None,
        open_alerts: None,
    };
    match engine
        .store
        .finish_delivery(d, owner, &ok, &attempt, now_ms())
        .await
    {
        Ok(true) => crate::metrics::delivery(engine, d.connection_id, action),
        Ok(false) => tracing::warn!(
            delivery = d.id,
            channel = %d.channel,
            "lease lost before the delivery's outcome was recorded"
        ),
        Err(e) => {
            tracing::error!(delivery = d.id, channel = %d.channel, error = %e, "recording a sent delivery failed; its lease will expire and it will be sent again under the same id")
        }
    }
}

pub(crate) async fn expire(engine: &Engine, owner: &str, d: &Delivery, started: i64) {
    let hours = engine.config.replay_window.as_secs() / 3600;
    let error = format!(
        "not sent: the event is older than the replay window ({hours} h); replay it on purpose to send it"
    );
    let attempt = Attempt {
        attempt: d.attempts,
        started_at: started,
        finished_at: now_ms(),
        outcome: "expired".into(),
        psa_calls: 0,
        summary: None,
        error: Some(error.clone()),
    };
    Stats::inc(&engine.stats.deliveries_expired);
    crate::metrics::delivery(engine, d.connection_id, "expired");
    let failure = Failure {
        error: &error,
        retry_at: None,
        outcome_unknown: false,
        expired: true,
    };
    match engine
        .store
        .fail_delivery(d, owner, &failure, &attempt, now_ms())
        .await
    {
        // The next delivery of this group may be waiting for this one.
        Ok(_) => engine.work.notify_one(),
        Err(e) => {
            tracing::error!(delivery = d.id, error = %e, "recording an expired delivery failed; its lease will expire")
        }
    }
}

/// The reference we put on a ticket: unique per installation and delivery, ≤ 50 characters.
pub fn reference(install_id: &str, delivery_id: i64) -> String {
    format!("psabridge:{install_id}:{delivery_id}")
}

/// Carry out one attempt. `Ok(None)` when the lease was lost.
async fn attempt(
    engine: &Engine,
    owner: &str,
    d: &Delivery,
    connector: &dyn Connector,
    run: &mut Run,
    trust: Duration,
    close_on_resolve: bool,
) -> Result<Option<Success>, PsaError> {
    let route = StoredRoute::parse(&d.route)
        .ok_or_else(|| PsaError::Invalid("the delivery's route is unreadable".into()))?;
    let action = d.event.event.action;
    let alert = alerts::alert_key(&d.event.event);
    let group = engine
        .store
        .open_group(d.connection_id, &d.group_key)
        .await
        .map_err(store_err)?;
    let open = group.as_ref().map(|g| OpenTicket {
        ticket_id: g.ticket_id.clone(),
        confirmed_open_at: from_millis(g.confirmed_open_at),
    });
    // The group's last closed ticket matters only to a policy other than "a new ticket", and
    // to a note an earlier attempt may have sent to it.
    let last_closed = match (&group, route.refire) {
        (None, Refire::Reopen { .. } | Refire::NoteOnly) => engine
            .store
            .last_closed_group(d.connection_id, &d.group_key)
            .await
            .map_err(store_err)?,
        (None, _) if d.note_sent_at.is_some() => engine
            .store
            .last_closed_group(d.connection_id, &d.group_key)
            .await
            .map_err(store_err)?,
        _ => None,
    };
    let closed = last_closed.as_ref().map(|c| ClosedTicket {
        ticket_id: c.ticket_id.clone(),
        closed_at: from_millis(c.closed_at),
    });
    let trust = chrono::Duration::from_std(trust).unwrap_or(chrono::Duration::MAX);
    let mut next = plan(
        action,
        open.as_ref(),
        closed.as_ref(),
        route.refire,
        Utc::now(),
        trust,
    );
    // A create that an earlier attempt may have sent must be looked up before anything else:
    // whatever the plan says now, that ticket may exist.
    if d.create_sent_at.is_some() {
        let reference = reference(&install_id(engine).await?, d.id);
        if let Some(found) = connector.find_ticket_by_reference(&reference).await? {
            run.summary.push(format!(
                "found ticket {} from an earlier attempt by its reference",
                found.id
            ));
            return Ok(Some(Success {
                psa_action: "created",
                ticket_id: Some(found.id),
                ticket_number: found.number,
                contact_id: None,
                contact_source: None,
                open_alerts: alerts::after_delivery(None, true, action, &alert, false).open,
            }));
        }
        run.summary
            .push("an earlier create did not land; creating".into());
    }
    // Likewise a note an earlier attempt may have sent: looked for on the ticket it was sent
    // to, whether that ticket is still the group's open one or has been closed since.
    if d.note_sent_at.is_some()
        && let Some(sent_to) = note_sent_to(d, group.as_ref(), last_closed.as_ref())
    {
        let reference = reference(&install_id(engine).await?, d.id);
        if connector
            .find_note_by_reference(&sent_to, &reference)
            .await?
        {
            run.summary.push(format!(
                "found the note on ticket {sent_to} from an earlier attempt"
            ));
            if let Some(g) = group.as_ref().filter(|g| g.ticket_id == sent_to) {
                let after = alerts::after_delivery(
                    g.open_alerts.as_deref(),
                    false,
                    action,
                    &alert,
                    close_on_resolve,
                );
                if after.close {
                    // That attempt meant to close the ticket too: close it if it is still open.
                    // (If the close itself was lost, the ticket gets its note a second time.)
                    let open = connector
                        .ticket_states(std::slice::from_ref(&g.ticket_id))
                        .await?
                        .iter()
                        .any(|t| !t.closed);
                    if open {
                        let note =
                            closing_note(&format!("PSA Bridge reference: {reference}"), &reference);
                        connector
                            .close_ticket(&g.ticket_id, route.fields.get("close_status"), &note)
                            .await?;
                    }
                }
                return Ok(Some(Success {
                    psa_action: if after.close { "closed" } else { "noted" },
                    ticket_id: Some(g.ticket_id.clone()),
                    ticket_number: g.ticket_number.clone(),
                    contact_id: None,
                    contact_source: None,
                    open_alerts: after.open,
                }));
            }
            // The ticket is closed now (by a technician, or by the attempt that sent the note
            // to reopen it): the event is on it, and nowhere else.
            let reopened = group.is_none()
                && matches!(&next, Plan::Reopen { ticket_id } if *ticket_id == sent_to);
            let number = last_closed
                .as_ref()
                .filter(|c| c.ticket_id == sent_to)
                .and_then(|c| c.ticket_number.clone());
            return Ok(Some(Success {
                psa_action: if reopened { "reopened" } else { "noted" },
                ticket_id: Some(sent_to),
                ticket_number: number,
                contact_id: None,
                contact_source: None,
                open_alerts: reopened
                    .then(|| alerts::after_delivery(None, true, action, &alert, false).open)
                    .flatten(),
            }));
        }
    }
    let ctx_client = client_name(engine, &d.partner_id, &d.event.event.client).await;
    let catalog = engine.catalog.fresh().await;
    let ctx = TemplateContext {
        event: &d.event.event,
        event_type: catalog.rendering.get(&d.event.event.event_type),
        client_name: ctx_client.as_deref(),
    };
    for _ in 0..3 {
        // (Known before `match` takes `next` apart.)
        let reopen = matches!(next, Plan::Reopen { .. });
        match next {
            Plan::Nothing { reason } => {
                run.summary.push(reason.to_string());
                return Ok(Some(Success {
                    psa_action: "none",
                    ticket_id: group.as_ref().map(|g| g.ticket_id.clone()),
                    ticket_number: None,
                    contact_id: None,
                    contact_source: None,
                    open_alerts: None,
                }));
            }
            Plan::VerifyThenNote { ticket_id } => {
                let states = connector
                    .ticket_states(std::slice::from_ref(&ticket_id))
                    .await?;
                match states.into_iter().find(|s| s.id == ticket_id) {
                    Some(s) if !s.closed => {
                        run.summary
                            .push(format!("ticket {ticket_id} verified open"));
                        let _ = engine
                            .store
                            .confirm_open(
                                d.connection_id,
                                &[(ticket_id.clone(), s.number.clone())],
                                now_ms(),
                            )
                            .await;
                        next = Plan::Note { ticket_id };
                    }
                    other => {
                        run.summary.push(format!(
                            "ticket {ticket_id} is {}",
                            if other.is_some() { "closed" } else { "gone" }
                        ));
                        close_group(engine, d, &ticket_id).await?;
                        // A closed ticket is one the re-fire policy may reopen or note; a
                        // gone one is not.
                        let closed = other.map(|_| ClosedTicket {
                            ticket_id: ticket_id.clone(),
                            closed_at: Utc::now(),
                        });
                        next = after_closed(action, closed.as_ref(), route.refire, Utc::now());
                    }
                }
            }
            Plan::Note { ticket_id } => {
                let note = alert_note(&ctx, reference(&install_id(engine).await?, d.id), None);
                if !engine
                    .store
                    .mark_note_sent(d.id, owner, now_ms(), &ticket_id)
                    .await
                    .map_err(store_err)?
                {
                    return Ok(None);
                }
                run.note_sent = true;
                let after = alerts::after_delivery(
                    group.as_ref().and_then(|g| g.open_alerts.as_deref()),
                    false,
                    action,
                    &alert,
                    close_on_resolve,
                );
                let sent = if after.close {
                    // The last alert of the ticket resolved: close it, the note says why.
                    let note = closing_note(&note.text, &note.reference);
                    connector
                        .close_ticket(&ticket_id, route.fields.get("close_status"), &note)
                        .await
                } else {
                    connector.add_note(&ticket_id, &note).await
                };
                match sent {
                    Ok(()) => {
                        run.summary.push(if after.close {
                            format!("every alert resolved: ticket {ticket_id} closed with a note")
                        } else {
                            format!("note added to ticket {ticket_id}")
                        });
                        return Ok(Some(Success {
                            psa_action: if after.close { "closed" } else { "noted" },
                            ticket_id: Some(ticket_id),
                            ticket_number: group.as_ref().and_then(|g| g.ticket_number.clone()),
                            contact_id: None,
                            contact_source: None,
                            open_alerts: after.open,
                        }));
                    }
                    Err(PsaError::NotFound(_)) => {
                        run.summary
                            .push(format!("ticket {ticket_id} no longer exists"));
                        close_group(engine, d, &ticket_id).await?;
                        next = after_closed(action, None, route.refire, Utc::now());
                    }
                    Err(e) => return Err(e),
                }
            }
            Plan::Reopen { ticket_id } | Plan::NoteClosed { ticket_id } => {
                let number = last_closed
                    .as_ref()
                    .filter(|c| c.ticket_id == ticket_id)
                    .and_then(|c| c.ticket_number.clone());
                match note_closed_ticket(
                    engine, owner, d, connector, run, &ctx, &route, &ticket_id, reopen,
                )
                .await?
                {
                    Sent::LeaseLost => return Ok(None),
                    Sent::Done => {
                        return Ok(Some(Success {
                            psa_action: if reopen { "reopened" } else { "noted" },
                            ticket_id: Some(ticket_id),
                            ticket_number: number,
                            contact_id: None,
                            contact_source: None,
                            open_alerts: reopen
                                .then(|| {
                                    alerts::after_delivery(None, true, action, &alert, false).open
                                })
                                .flatten(),
                        }));
                    }
                    Sent::Gone => {
                        run.summary
                            .push(format!("ticket {ticket_id} no longer exists"));
                        next = after_closed(action, None, route.refire, Utc::now());
                    }
                }
            }
            Plan::Create => {
                let (contact_id, source) = contact_for(engine, d, &route, connector, run).await?;
                let configuration_item_id = match d.event.event.data.get("asset_id") {
                    Some(serde_json::Value::String(asset)) => engine
                        .store
                        .asset_psa_id(d.connection_id, &d.event.event.client, asset)
                        .await
                        .map_err(store_err)?,
                    _ => None,
                };
                let ticket = NewTicket {
                    company_id: route.company_id.clone(),
                    contact_id: contact_id.clone(),
                    title: ctx.ticket_title(),
                    description: ctx.ticket_description(),
                    fields: route.fields.clone(),
                    reference: reference(&install_id(engine).await?, d.id),
                    contract_id: route.contract_id.clone(),
                    configuration_item_id,
                };
                if !engine
                    .store
                    .mark_create_sent(d.id, owner, now_ms())
                    .await
                    .map_err(store_err)?
                {
                    return Ok(None);
                }
                run.create_sent = true;
                let t = connector.create_ticket(&ticket).await?;
                run.summary.push(format!(
                    "ticket {} created for company {}",
                    t.id, route.company_id
                ));
                return Ok(Some(Success {
                    psa_action: "created",
                    ticket_id: Some(t.id),
                    ticket_number: t.number,
                    contact_id,
                    contact_source: source.map(ContactSource::as_str),
                    open_alerts: alerts::after_delivery(None, true, action, &alert, false).open,
                }));
            }
        }
    }
    Err(PsaError::Transient {
        retry_after: None,
        outcome_unknown: false,
        message: "the ticket kept changing state while we delivered; will try again".into(),
    })
}

/// The note of one alert: its title and description from the catalog templates, after an
/// optional reason, and our reference (which a retry searches for).
fn alert_note(ctx: &TemplateContext<'_>, reference: String, why: Option<&str>) -> NewNote {
    let preface = why.map(|w| format!("{w}\n\n")).unwrap_or_default();
    NewNote {
        title: truncate(&ctx.note_title(), 250),
        text: format!(
            "{preface}{}\n\nPSA Bridge reference: {reference}",
            ctx.ticket_description()
        ),
        reference,
    }
}

/// How sending to a closed ticket went.
enum Sent {
    Done,
    /// Another worker owns the delivery now; it will finish it.
    LeaseLost,
    /// The ticket no longer exists in the PSA.
    Gone,
}

/// The re-fire policy's answer to an alert for a closed ticket: reopen it with the alert as
/// the note (`reopen`), or only add the note. Marked "note sent" first, like any note, so
/// that a retry looks for it before sending it again.
#[allow(clippy::too_many_arguments)]
async fn note_closed_ticket(
    engine: &Engine,
    owner: &str,
    d: &Delivery,
    connector: &dyn Connector,
    run: &mut Run,
    ctx: &TemplateContext<'_>,
    route: &StoredRoute,
    ticket_id: &str,
    reopen: bool,
) -> Result<Sent, PsaError> {
    let why = if reopen {
        "The alert fired again soon after this ticket was closed, so PSA Bridge reopened it."
    } else {
        "The alert fired again after this ticket was closed; it stays closed (re-fire policy: note only)."
    };
    let note = alert_note(ctx, reference(&install_id(engine).await?, d.id), Some(why));
    if !engine
        .store
        .mark_note_sent(d.id, owner, now_ms(), ticket_id)
        .await
        .map_err(store_err)?
    {
        return Ok(Sent::LeaseLost);
    }
    run.note_sent = true;
    let sent = if reopen {
        connector
            .reopen_ticket(ticket_id, route.fields.get("status"), &note)
            .await
    } else {
        connector.add_note(ticket_id, &note).await
    };
    match sent {
        Ok(()) => {
            run.summary.push(if reopen {
                format!("closed ticket {ticket_id} reopened with a note (re-fire policy)")
            } else {
                format!("note added to closed ticket {ticket_id} (re-fire policy)")
            });
            Ok(Sent::Done)
        }
        Err(PsaError::NotFound(_)) => Ok(Sent::Gone),
        Err(e) => Err(e),
    }
}

/// The ticket an earlier attempt sent this delivery's note to: as recorded with the mark,
/// else (marks made before the ticket was recorded) the group's open or last closed ticket.
fn note_sent_to(
    d: &Delivery,
    open: Option<&psabridge_store::groups::OpenGroup>,
    last_closed: Option<&psabridge_store::groups::ClosedGroup>,
) -> Option<String> {
    d.note_ticket_id
        .clone()
        .or_else(|| open.map(|g| g.ticket_id.clone()))
        .or_else(|| last_closed.map(|c| c.ticket_id.clone()))
}

async fn close_group(engine: &Engine, d: &Delivery, ticket_id: &str) -> Result<(), PsaError> {
    Stats::inc(&engine.stats.tickets_found_closed);
    engine
        .store
        .close_tickets(d.connection_id, &[ticket_id.to_string()], now_ms())
        .await
        .map(|_| ())
        .map_err(store_err)
}

/// The contact of a new ticket (see `core::contact`): the user's by email (mapped companies
/// only), else the mapping's default, else the mapped company's primary contact, else, for the
/// catch-all company, the catch-all contact. The PSA's answers are cached.
async fn contact_for(
    engine: &Engine,
    d: &Delivery,
    route: &StoredRoute,
    connector: &dyn Connector,
    run: &mut Run,
) -> Result<(Option<String>, Option<ContactSource>), PsaError> {
    let mut found = Vec::new();
    if route.mapped
        && let Some(user) = &d.event.event.user
    {
        found = cached_contacts(engine, d, &route.company_id, &user.email, || async {
            Ok(connector
                .find_contacts_by_email(&route.company_id, &user.email)
                .await?
                .into_iter()
                .map(|c| c.id)
                .collect())
        })
        .await?;
    }
    let mut candidates = Candidates {
        found_by_email: &found,
        mapping_default: route.default_contact_id.as_deref(),
        company_primary: None,
        catch_all: route.catch_all_contact_id.as_deref(),
        mapped: route.mapped,
    };
    let primary = if needs_company_primary(&candidates) {
        cached_contacts(
            engine,
            d,
            &route.company_id,
            PRIMARY_CONTACT_KEY,
            || async {
                Ok(connector
                    .primary_contact(&route.company_id)
                    .await?
                    .into_iter()
                    .collect())
            },
        )
        .await?
    } else {
        Vec::new()
    };
    candidates.company_primary = primary.first().map(String::as_str);
    let chosen = choose_contact(&candidates);
    match &chosen {
        Some((id, src)) => run.summary.push(format!("contact {id} ({})", src.as_str())),
        None if route.mapped => run.summary.push(format!(
            "no contact: company {} names no primary contact and the mapping no default",
            route.company_id
        )),
        None => {}
    }
    Ok(chosen.map_or((None, None), |(id, src)| (Some(id), Some(src))))
}

/// The cache key of a company's primary contact (no email address is empty).
const PRIMARY_CONTACT_KEY: &str = "";

/// Contact ids of a company under `key` (an email, or [`PRIMARY_CONTACT_KEY`]), from the
/// cache or else from `ask` (whose answer is cached).
async fn cached_contacts<F, Fut>(
    engine: &Engine,
    d: &Delivery,
    company: &str,
    key: &str,
    ask: F,
) -> Result<Vec<String>, PsaError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<String>, PsaError>>,
{
    if let Some(ids) = engine.contacts.get(d.connection_id, company, key) {
        return Ok(ids);
    }
    let ids = ask().await?;
    engine
        .contacts
        .put(d.connection_id, company, key, ids.clone());
    Ok(ids)
}

async fn install_id(engine: &Engine) -> Result<String, PsaError> {
    engine.install_id().await.map_err(store_err)
}

/// The client's name as the partner gave it, if any (for ticket and message text).
pub(crate) async fn client_name(engine: &Engine, partner: &str, client: &str) -> Option<String> {
    engine
        .store
        .client_name(partner, client)
        .await
        .ok()
        .flatten()
}

/// A storage failure inside an attempt is retried like a transient PSA failure — but it is not
/// the PSA's fault, so it must not trip the PSA's breaker; the caller treats it the same way.
fn store_err(e: psabridge_store::StoreError) -> PsaError {
    PsaError::Transient {
        retry_after: None,
        outcome_unknown: false,
        message: format!("storage: {e}"),
    }
}
