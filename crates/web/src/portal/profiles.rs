//! Ticket profiles of a connection: its integration rules (an event set with a template, one
//! of them the default), the partner's event sets, the connection's templates, and "copy
//! settings" from one client's mapping to many. What uses an event set or a template is listed
//! beside it, so that a refused delete is never a surprise. The same functions as the JSON
//! API's `…/event-sets`, `…/templates`, `…/integration-rules` and `…/copy-settings`.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use psabridge_core::settings::PsaKind;
use psabridge_ops::OpsError;
use psabridge_ops::profiles::{
    CopySettingsRequest, EventSetRequest, IntegrationRuleRequest, TemplateRequest,
};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::connections::{DefaultField, default_fields};
use super::{AtPartner, FieldErrors, Frame, ops_error, page_error, render, see_other, url_encode};
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/p/{p}/connections/{id}/profiles", get(page))
        .route("/p/{p}/connections/{id}/event-sets", post(create_event_set))
        .route(
            "/p/{p}/connections/{id}/event-sets/{set}/delete",
            post(delete_event_set),
        )
        .route("/p/{p}/connections/{id}/templates", post(create_template))
        .route(
            "/p/{p}/connections/{id}/templates/{template}/delete",
            post(delete_template),
        )
        .route("/p/{p}/connections/{id}/rules", post(create_rule))
        .route(
            "/p/{p}/connections/{id}/rules/{rule}/default",
            post(make_default),
        )
        .route(
            "/p/{p}/connections/{id}/rules/{rule}/delete",
            post(delete_rule),
        )
        .route("/p/{p}/connections/{id}/copy-settings", post(copy_settings))
}

struct RuleRow {
    id: i64,
    name: String,
    event_set: String,
    template: String,
    default: bool,
}

struct SetRow {
    id: i64,
    name: String,
    event_types: String,
    used_by: Vec<String>,
}

struct TemplateRow {
    id: i64,
    name: String,
    fields: String,
    used_by: Vec<String>,
}

struct EventTypeChoice {
    key: String,
    name: String,
    checked: bool,
}

struct CategoryChoices {
    name: String,
    types: Vec<EventTypeChoice>,
}

/// Which form a refusal belongs to, its errors by field and what was typed.
#[derive(Default)]
struct Failed {
    form: &'static str,
    errors: FieldErrors,
    values: Vec<(String, String)>,
}

impl Failed {
    fn value(&self, name: &str) -> String {
        self.values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    /// The errors of `form`, if that is the form that failed.
    fn errors_of(&self, form: &str) -> FieldErrors {
        if self.form == form {
            self.errors.clone()
        } else {
            FieldErrors::default()
        }
    }
}

/// A form's problems: each field's own next to its input, the rest at the form's top.
struct FormErrors {
    by_field: FieldErrors,
    general: Vec<String>,
}

impl FormErrors {
    fn of(errors: FieldErrors, shown: &[&str]) -> FormErrors {
        // `event_types[2]` is shown at `event_types`, `to[1]` at `to`.
        let general = errors
            .0
            .iter()
            .filter(|(f, _)| {
                let base = f.split('[').next().unwrap_or(f);
                !shown.contains(&base) && !shown.contains(&f.as_str())
            })
            .map(|(f, p)| {
                if f.is_empty() {
                    p.clone()
                } else {
                    format!("{f}: {p}")
                }
            })
            .collect();
        FormErrors {
            by_field: errors,
            general,
        }
    }

    /// Every problem of `field` and its elements (`field[0]`, …), as one sentence.
    fn at(&self, field: &str) -> Option<String> {
        let all: Vec<String> = self
            .by_field
            .0
            .iter()
            .filter(|(f, _)| f == field || f.starts_with(&format!("{field}[")))
            .map(|(f, p)| {
                if f == field {
                    p.clone()
                } else {
                    format!("{f}: {p}")
                }
            })
            .collect();
        (!all.is_empty()).then(|| all.join("; "))
    }
}

#[derive(Template)]
#[template(path = "portal/profiles.html")]
struct ProfilesPage {
    frame: Frame,
    id: i64,
    connection: String,
    rules: Vec<RuleRow>,
    sets: Vec<SetRow>,
    templates: Vec<TemplateRow>,
    /// (id, name) of the event sets and templates, for the rule form's choices.
    set_choices: Vec<(i64, String)>,
    template_choices: Vec<(i64, String)>,
    categories: Vec<CategoryChoices>,
    template_fields: Vec<DefaultField>,
    rule_errors: FormErrors,
    set_errors: FormErrors,
    template_errors: FormErrors,
    copy_errors: FormErrors,
    /// A refused delete: what still uses the thing.
    delete_refusal: Option<(String, Vec<String>)>,
    failed: Failed,
}

#[derive(Deserialize, Default)]
struct Notice {
    done: Option<String>,
}

fn notice_of(n: &Notice) -> Option<String> {
    // Fixed sentences: nothing of the URL is echoed into the page.
    n.done.as_deref().map(|d| {
        match d {
            "rule" => "The integration rule was saved.",
            "default" => "That rule is now the connection's default.",
            "set" => "The event set was saved.",
            "template" => "The template was saved.",
            "deleted" => "Deleted.",
            "copied" => "The settings were copied.",
            _ => "Your changes were saved.",
        }
        .to_string()
    })
}

fn back(at: &AtPartner, id: i64, done: &str) -> Response {
    see_other(&format!(
        "/p/{}/connections/{id}/profiles?done={done}",
        url_encode(&at.partner)
    ))
}

async fn show(
    s: &AppState,
    at: &AtPartner,
    id: i64,
    notice: Option<String>,
    failed: Failed,
    delete_refusal: Option<(String, Vec<String>)>,
) -> Response {
    let acting = at.acting();
    let conn = match s.ops.connection(&acting, &at.partner, id).await {
        Ok(c) => c,
        Err(e) => return ops_error(e),
    };
    let (rules, sets, templates) = match (
        s.ops.integration_rules(&acting, &at.partner, id).await,
        s.ops.event_sets(&acting, &at.partner).await,
        s.ops.templates(&acting, &at.partner, id).await,
    ) {
        (Ok(r), Ok(e), Ok(t)) => (r, e, t),
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => return ops_error(e),
    };
    let stored = match s.store.connection(&at.partner, id).await {
        Ok(c) => c,
        Err(e) => return page_error(e.into()),
    };
    let catalog = s.event_catalog().await;
    let set_name = |set: Option<i64>| match set {
        None => "every event type".to_string(),
        Some(i) => sets
            .iter()
            .find(|e| e.id == i)
            .map_or_else(|| format!("event set {i}"), |e| e.name.clone()),
    };
    let template_name = |t: Option<i64>| match t {
        None => "the connection's ticket settings".to_string(),
        Some(i) => templates
            .iter()
            .find(|x| x.id == i)
            .map_or_else(|| format!("template {i}"), |x| x.name.clone()),
    };
    let mut set_rows = Vec::new();
    for e in &sets {
        let used_by = match s.ops.event_set_uses(&acting, &at.partner, e.id).await {
            Ok(r) => r.into_iter().map(|r| r.detail).collect(),
            Err(e) => return ops_error(e),
        };
        set_rows.push(SetRow {
            id: e.id,
            name: e.name.clone(),
            event_types: e
                .event_types
                .iter()
                .map(|k| catalog.get(k).map_or_else(|| k.clone(), |t| t.name.clone()))
                .collect::<Vec<_>>()
                .join(", "),
            used_by,
        });
    }
    let field_label = |name: &str| {
        conn_kind(conn.kind)
            .and_then(|k| k.ticket_field(name))
            .map_or(name, |f| f.label)
            .to_string()
    };
    let mut template_rows = Vec::new();
    for t in &templates {
        let used_by = match s.ops.template_uses(&acting, &at.partner, id, t.id).await {
            Ok(r) => r.into_iter().map(|r| r.detail).collect(),
            Err(e) => return ops_error(e),
        };
        template_rows.push(TemplateRow {
            id: t.id,
            name: t.name.clone(),
            fields: t
                .fields
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            format!(
                                "{}: {}",
                                field_label(k),
                                list_label(stored.lists.as_ref(), conn.kind, k, v)
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default(),
            used_by,
        });
    }
    // The event-set form: the catalog by category, what was ticked kept after a refusal.
    let ticked: Vec<&str> = failed
        .values
        .iter()
        .filter(|(n, _)| failed.form == "set" && n == "event_type")
        .map(|(_, v)| v.as_str())
        .collect();
    let mut categories: Vec<CategoryChoices> = Vec::new();
    for t in catalog.iter() {
        let choice = EventTypeChoice {
            key: t.key.clone(),
            name: t.name.clone(),
            checked: ticked.contains(&t.key.as_str()),
        };
        match categories.iter_mut().find(|c| c.name == t.category) {
            Some(c) => c.types.push(choice),
            None => categories.push(CategoryChoices {
                name: t.category.clone(),
                types: vec![choice],
            }),
        }
    }
    let template_values: Map<String, Value> = if failed.form == "template" {
        failed
            .values
            .iter()
            .filter_map(|(n, v)| {
                n.strip_prefix("fields.")
                    .map(|f| (f.to_string(), Value::String(v.clone())))
            })
            .collect()
    } else {
        Map::new()
    };
    let template_fields = match conn_kind(conn.kind) {
        Some(kind) => default_fields(
            kind,
            "fields",
            stored.lists.as_ref(),
            &template_values,
            &failed.errors_of("template"),
        ),
        None => Vec::new(),
    };
    let field_names: Vec<String> = template_fields
        .iter()
        .map(|f| f.input_name.clone())
        .collect();
    let field_names: Vec<&str> = field_names.iter().map(String::as_str).collect();
    let mut template_shown = vec!["name"];
    template_shown.extend(field_names);
    render(&ProfilesPage {
        frame: at
            .frame(
                s,
                "connections",
                format!("Ticket profiles: {}", conn.name),
                notice,
            )
            .await,
        id,
        connection: conn.name.clone(),
        rules: rules
            .iter()
            .map(|r| RuleRow {
                id: r.id,
                name: r.name.clone(),
                event_set: set_name(r.event_set),
                template: template_name(r.template),
                default: r.default,
            })
            .collect(),
        set_choices: sets.iter().map(|e| (e.id, e.name.clone())).collect(),
        template_choices: templates.iter().map(|t| (t.id, t.name.clone())).collect(),
        sets: set_rows,
        templates: template_rows,
        categories,
        template_fields,
        rule_errors: FormErrors::of(failed.errors_of("rule"), &["name", "event_set", "template"]),
        set_errors: FormErrors::of(failed.errors_of("set"), &["name", "event_types"]),
        template_errors: FormErrors::of(failed.errors_of("template"), &template_shown),
        copy_errors: FormErrors::of(failed.errors_of("copy"), &["from", "to"]),
        delete_refusal,
        failed,
    })
}

fn conn_kind(kind: &str) -> Option<PsaKind> {
    PsaKind::parse(kind)
}

/// A template's stored value in words: the PSA list's label where the list knows it.
fn list_label(lists: Option<&Value>, kind: &str, field: &str, v: &Value) -> String {
    let id = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let list = conn_kind(kind)
        .and_then(|k| k.ticket_field(field))
        .map(|f| f.list);
    list.and_then(|l| lists.and_then(|all| all.get(l)))
        .and_then(Value::as_array)
        .and_then(|items| {
            items
                .iter()
                .find(|i| i.get("id").and_then(Value::as_str) == Some(id.as_str()))
        })
        .and_then(|i| i.get("label").and_then(Value::as_str))
        .map_or(id.clone(), |label| format!("{label} ({id})"))
}

async fn page(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, id)): Path<(String, i64)>,
    Query(n): Query<Notice>,
) -> Response {
    show(&s, &at, id, notice_of(&n), Failed::default(), None).await
}

/// A refusal shown on the page, next to its form's fields (422), or as an error page when it
/// is not about the input (a forbidden or missing thing).
async fn refused(
    s: &AppState,
    at: &AtPartner,
    id: i64,
    form: &'static str,
    values: Vec<(String, String)>,
    e: OpsError,
) -> Response {
    if matches!(e, OpsError::Forbidden(_) | OpsError::NotFound(_)) {
        return ops_error(e);
    }
    let failed = Failed {
        form,
        errors: FieldErrors::of(e),
        values,
    };
    let mut resp = show(s, at, id, None, failed, None).await;
    *resp.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    resp
}

fn field(form: &[(String, String)], name: &str) -> String {
    form.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default()
}

/// An id chosen in a select: empty is "none".
fn chosen_id(form: &[(String, String)], name: &str) -> Option<i64> {
    let v = field(form, name);
    // A value that is not a number names nothing the form offered; the operation refuses
    // `-1` as not found, by the field's name.
    (!v.is_empty()).then(|| v.parse().unwrap_or(-1))
}

async fn create_rule(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, id)): Path<(String, i64)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let req = IntegrationRuleRequest {
        name: field(&form, "name"),
        event_set: chosen_id(&form, "event_set"),
        template: chosen_id(&form, "template"),
        default: field(&form, "default") == "on",
    };
    match s
        .ops
        .create_integration_rule(&at.acting(), &at.partner, id, req)
        .await
    {
        Ok(_) => back(&at, id, "rule"),
        Err(e) => refused(&s, &at, id, "rule", form, e).await,
    }
}

async fn make_default(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, id, rule)): Path<(String, i64, i64)>,
) -> Response {
    match s
        .ops
        .make_default_integration_rule(&at.acting(), &at.partner, id, rule)
        .await
    {
        Ok(_) => back(&at, id, "default"),
        Err(e) => ops_error(e),
    }
}

async fn delete_rule(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, id, rule)): Path<(String, i64, i64)>,
) -> Response {
    match s
        .ops
        .delete_integration_rule(&at.acting(), &at.partner, id, rule)
        .await
    {
        Ok(()) => back(&at, id, "deleted"),
        Err(e) => ops_error(e),
    }
}

async fn create_event_set(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, id)): Path<(String, i64)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let req = EventSetRequest {
        name: field(&form, "name"),
        event_types: form
            .iter()
            .filter(|(n, _)| n == "event_type")
            .map(|(_, v)| v.clone())
            .collect(),
    };
    match s.ops.create_event_set(&at.acting(), &at.partner, req).await {
        Ok(_) => back(&at, id, "set"),
        Err(e) => refused(&s, &at, id, "set", form, e).await,
    }
}

/// A delete refused because something still uses the thing: the page again, with the list.
async fn still_used(s: &AppState, at: &AtPartner, id: i64, what: String, e: OpsError) -> Response {
    match e {
        OpsError::Conflict { references, .. } if !references.is_empty() => {
            let list = references.into_iter().map(|r| r.detail).collect();
            let mut resp = show(s, at, id, None, Failed::default(), Some((what, list))).await;
            *resp.status_mut() = axum::http::StatusCode::CONFLICT;
            resp
        }
        e => ops_error(e),
    }
}

async fn delete_event_set(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, id, set)): Path<(String, i64, i64)>,
) -> Response {
    match s.ops.delete_event_set(&at.acting(), &at.partner, set).await {
        Ok(()) => back(&at, id, "deleted"),
        Err(e) => still_used(&s, &at, id, "event set".into(), e).await,
    }
}

async fn create_template(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, id)): Path<(String, i64)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    // Fields left at "the connection's setting" are not part of the template.
    let fields: Map<String, Value> = form
        .iter()
        .filter_map(|(n, v)| {
            let v = v.trim();
            n.strip_prefix("fields.")
                .filter(|_| !v.is_empty())
                .map(|f| (f.to_string(), Value::String(v.to_string())))
        })
        .collect();
    let req = TemplateRequest {
        name: field(&form, "name"),
        fields,
    };
    match s
        .ops
        .create_template(&at.acting(), &at.partner, id, req)
        .await
    {
        Ok(_) => back(&at, id, "template"),
        Err(e) => refused(&s, &at, id, "template", form, e).await,
    }
}

async fn delete_template(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, id, template)): Path<(String, i64, i64)>,
) -> Response {
    match s
        .ops
        .delete_template(&at.acting(), &at.partner, id, template)
        .await
    {
        Ok(()) => back(&at, id, "deleted"),
        Err(e) => still_used(&s, &at, id, "template".into(), e).await,
    }
}

/// Client ids typed one per line, or separated by `;`, `,` or spaces.
fn client_list(text: &str) -> Vec<String> {
    text.split(|c: char| c == ';' || c == ',' || c.is_whitespace())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

async fn copy_settings(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, id)): Path<(String, i64)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let req = CopySettingsRequest {
        from: field(&form, "from"),
        to: client_list(&field(&form, "to")),
    };
    match s
        .ops
        .copy_mapping_settings(&at.acting(), &at.partner, id, req)
        .await
    {
        Ok(_) => back(&at, id, "copied"),
        Err(e) => refused(&s, &at, id, "copy", form, e).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_lists_split_on_any_usual_separator() {
        assert_eq!(
            client_list("acme; globex,initech\n  umbrella \r\n"),
            vec!["acme", "globex", "initech", "umbrella"]
        );
        assert!(client_list(" ;, \n").is_empty());
    }

    #[test]
    fn a_forms_errors_go_next_to_their_fields_and_the_rest_on_top() {
        let errors = FieldErrors(vec![
            ("event_types[1]".into(), "'x' is not an event type".into()),
            ("event_types".into(), "must name at least one".into()),
            ("name".into(), "must not be empty".into()),
            ("connection".into(), "is switched off".into()),
        ]);
        let f = FormErrors::of(errors, &["name", "event_types"]);
        assert_eq!(f.at("name").as_deref(), Some("must not be empty"));
        assert_eq!(
            f.at("event_types").as_deref(),
            Some("event_types[1]: 'x' is not an event type; must name at least one")
        );
        assert_eq!(f.general, vec!["connection: is switched off".to_string()]);
        assert_eq!(f.at("from"), None);
    }

    #[test]
    fn the_page_values_of_a_refused_form_stay_with_that_form() {
        let failed = Failed {
            form: "rule",
            errors: FieldErrors(vec![("name".into(), "too long".into())]),
            values: vec![("name".into(), "x".into())],
        };
        assert_eq!(failed.value("name"), "x");
        assert!(failed.errors_of("set").0.is_empty());
        assert_eq!(failed.errors_of("rule").0.len(), 1);
    }
}
