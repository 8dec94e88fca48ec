//! Ticket and note writes, validated as ConnectWise validates them.
//!
//! A ticket needs `summary` (at most 100 characters) and `company`; `board` defaults to the
//! API member's default board, `status` to the board's default status, `priority` to the
//! default priority. Statuses, types, subtypes, items and teams must belong to the ticket's
//! board, a subtype must be associated with the type, and inactive values are refused.
//! `initialDescription` and `initialInternalAnalysis` are taken on create only: they become
//! the ticket's first notes and are never returned. A closed status sets `closedFlag`,
//! `closedDate` and `closedBy`; an open one clears them.

use serde_json::{Map, Value, json};

use super::errors::{ApiError, FieldError};
use super::store::*;

pub const SUMMARY_MAX: usize = 100;

/// How a reference was given: `{"id": 5}`, `{"id": "5"}`, `{"name": "…"}`, `{"identifier": "…"}`.
pub(super) fn find_ref<'a>(
    db: &'a Db,
    table: &str,
    given: &Value,
    board: Option<i64>,
) -> Option<&'a Value> {
    if let Some(id) = id_of(given) {
        return db.get(table, id);
    }
    let by = |key: &str| given.get(key).and_then(Value::as_str).map(str::to_string);
    let (key, wanted) = if let Some(n) = by("identifier") {
        ("identifier", n)
    } else {
        ("name", by("name")?)
    };
    db.table(table).values().find(|r| {
        r.get(key)
            .and_then(Value::as_str)
            .is_some_and(|v| v.eq_ignore_ascii_case(&wanted))
            && board.is_none_or(|b| board_of(r) == Some(b))
    })
}

fn is_given(v: Option<&Value>) -> bool {
    v.is_some_and(|v| !v.is_null())
}

/// Settle a ticket draft: resolve references, apply defaults, check the rules. `prev` is the
/// stored ticket on an update.
fn settle(
    db: &Db,
    draft: &mut Map<String, Value>,
    prev: Option<&Value>,
    member: &str,
    default_board: i64,
) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    let summary = draft
        .get("summary")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim()
        .to_string();
    if summary.is_empty() {
        errors.push(FieldError::new(
            "NullValue",
            "summary",
            "The summary field is required.",
        ));
    } else if summary.chars().count() > SUMMARY_MAX {
        errors.push(FieldError::new(
            "InvalidLength",
            "summary",
            format!("The field summary must be a string with a maximum length of {SUMMARY_MAX}."),
        ));
    }

    // company (required) and contact
    match draft.get("company").filter(|v| !v.is_null()) {
        None => errors.push(FieldError::new(
            "NullValue",
            "company",
            "The company field is required.",
        )),
        Some(given) => match find_ref(db, COMPANIES, given, None) {
            Some(c) if !flag(c, "deletedFlag") => {
                draft.insert("company".into(), db.company_ref(c));
                if !is_given(draft.get("site")) || prev.is_none() {
                    draft.insert("site".into(), c["site"].clone());
                    draft.insert("siteName".into(), c["site"]["name"].clone());
                }
            }
            _ => errors.push(FieldError::new(
                "InvalidObject",
                "company",
                format!("company {} was not found.", describe(given)),
            )),
        },
    }
    if let Some(given) = draft.get("contact").filter(|v| !v.is_null()).cloned() {
        match find_ref(db, CONTACTS, &given, None) {
            Some(c) => {
                draft.insert("contact".into(), db.contact_ref(c));
                draft.insert("contactName".into(), json!(contact_name(c)));
                match contact_email(c) {
                    Some(e) => draft.insert("contactEmailAddress".into(), json!(e)),
                    None => draft.remove("contactEmailAddress"),
                };
            }
            None => errors.push(FieldError::new(
                "InvalidObject",
                "contact",
                format!("contact {} was not found.", describe(&given)),
            )),
        }
    } else {
        for k in ["contact", "contactName", "contactEmailAddress"] {
            draft.remove(k);
        }
    }

    // agreement: one of the ticket's company
    if let Some(given) = draft.get("agreement").filter(|v| !v.is_null()).cloned() {
        let company = ref_id(&Value::Object(draft.clone()), "company");
        match find_ref(db, AGREEMENTS, &given, None) {
            Some(a) if company.is_some() && ref_id(a, "company") != company => {
                errors.push(FieldError::new(
                    "InvalidObject",
                    "agreement",
                    format!(
                        "agreement {} does not belong to company {}.",
                        describe(&given),
                        company.unwrap_or_default()
                    ),
                ))
            }
            Some(a) => {
                draft.insert("agreement".into(), db.agreement_ref(a));
            }
            None => errors.push(FieldError::new(
                "InvalidObject",
                "agreement",
                format!("agreement {} was not found.", describe(&given)),
            )),
        }
    }

    // board, then what belongs to it
    let board_given = draft
        .get("board")
        .filter(|v| !v.is_null())
        .cloned()
        .unwrap_or_else(|| json!({"id": default_board}));
    let board = match find_ref(db, BOARDS, &board_given, None) {
        Some(b) if flag(b, "inactiveFlag") => {
            errors.push(FieldError::new(
                "InvalidObject",
                "board",
                format!("board {} is inactive.", describe(&board_given)),
            ));
            None
        }
        Some(b) => {
            draft.insert("board".into(), db.board_ref(b));
            id_of(b)
        }
        None => {
            errors.push(FieldError::new(
                "InvalidObject",
                "board",
                format!("board {} was not found.", describe(&board_given)),
            ));
            None
        }
    };
    if let Some(board) = board {
        let board_changed = prev.is_some_and(|p| ref_id(p, "board") != Some(board));
        // status: the board's default when none given (or the board changed without one)
        let status_given = draft.get("status").filter(|v| !v.is_null()).cloned();
        let status_given = match status_given {
            Some(s) if !(board_changed && prev.is_some_and(|p| p.get("status") == Some(&s))) => {
                Some(s)
            }
            _ => None,
        };
        let status = match status_given {
            Some(given) => match find_ref(db, STATUSES, &given, Some(board)) {
                Some(s) if board_of(s) != Some(board) => {
                    errors.push(FieldError::new(
                        "InvalidObject",
                        "status",
                        format!(
                            "status {} is not a status of board {board}.",
                            describe(&given)
                        ),
                    ));
                    None
                }
                Some(s) if flag(s, "inactive") => {
                    errors.push(FieldError::new(
                        "InvalidObject",
                        "status",
                        format!("status {} is inactive.", describe(&given)),
                    ));
                    None
                }
                Some(s) => Some(s),
                None => {
                    errors.push(FieldError::new(
                        "InvalidObject",
                        "status",
                        format!("status {} was not found.", describe(&given)),
                    ));
                    None
                }
            },
            None => db
                .on_board(STATUSES, board)
                .into_iter()
                .filter(|s| !flag(s, "inactive"))
                .find(|s| flag(s, "defaultFlag"))
                .or_else(|| {
                    db.on_board(STATUSES, board)
                        .into_iter()
                        .find(|s| !flag(s, "inactive") && !flag(s, "closedStatus"))
                }),
        };
        if let Some(s) = status {
            let closed = flag(s, "closedStatus");
            let was_closed = prev.is_some_and(|p| flag(p, "closedFlag"));
            draft.insert("status".into(), db.child_ref(STATUSES, s));
            draft.insert("closedFlag".into(), json!(closed));
            if closed && !was_closed {
                draft.insert("closedDate".into(), json!(super::now_text()));
                draft.insert("closedBy".into(), json!(member));
            } else if !closed {
                draft.remove("closedDate");
                draft.remove("closedBy");
            }
        }
        for (field, table, inactive_key) in [
            ("type", TYPES, "inactiveFlag"),
            ("subType", SUBTYPES, "inactiveFlag"),
            ("item", ITEMS, "inactiveFlag"),
            ("team", TEAMS, ""),
        ] {
            let Some(given) = draft.get(field).filter(|v| !v.is_null()).cloned() else {
                draft.remove(field);
                continue;
            };
            if board_changed && prev.is_some_and(|p| p.get(field) == Some(&given)) {
                // Values of the old board do not follow the ticket to a new one.
                draft.remove(field);
                continue;
            }
            match find_ref(db, table, &given, Some(board)) {
                Some(r) if board_of(r) != Some(board) => errors.push(FieldError::new(
                    "InvalidObject",
                    field,
                    format!(
                        "{field} {} does not belong to board {board}.",
                        describe(&given)
                    ),
                )),
                Some(r) if !inactive_key.is_empty() && flag(r, inactive_key) => {
                    errors.push(FieldError::new(
                        "InvalidObject",
                        field,
                        format!("{field} {} is inactive.", describe(&given)),
                    ))
                }
                Some(r) => {
                    draft.insert(field.into(), db.child_ref(table, r));
                }
                None => errors.push(FieldError::new(
                    "InvalidObject",
                    field,
                    format!("{field} {} was not found.", describe(&given)),
                )),
            }
        }
        if let (Some(t), Some(st)) = (
            ref_id(&Value::Object(draft.clone()), "type"),
            ref_id(&Value::Object(draft.clone()), "subType"),
        ) {
            let associated = db.get(SUBTYPES, st).is_some_and(|s| {
                s["typeAssociationIds"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x.as_i64() == Some(t)))
            });
            if !associated {
                errors.push(FieldError::new(
                    "InvalidObject",
                    "subType",
                    format!("subType {st} is not associated with type {t} on this board."),
                ));
            }
        }
    }

    // priority (default: the default priority), source, owner
    let prio_given = draft.get("priority").filter(|v| !v.is_null()).cloned();
    let prio = match &prio_given {
        Some(given) => find_ref(db, PRIORITIES, given, None),
        None => db
            .table(PRIORITIES)
            .values()
            .find(|p| flag(p, "defaultFlag")),
    };
    match prio {
        Some(p) => {
            draft.insert("priority".into(), db.priority_ref(p));
        }
        None => errors.push(FieldError::new(
            "InvalidObject",
            "priority",
            format!(
                "priority {} was not found.",
                prio_given.as_ref().map(describe).unwrap_or_default()
            ),
        )),
    }
    if let Some(given) = draft.get("source").filter(|v| !v.is_null()).cloned() {
        match find_ref(db, SOURCES, &given, None) {
            Some(s) => {
                draft.insert("source".into(), db.source_ref(s));
            }
            None => errors.push(FieldError::new(
                "InvalidObject",
                "source",
                format!("source {} was not found.", describe(&given)),
            )),
        }
    }
    if let Some(given) = draft.get("owner").filter(|v| !v.is_null()).cloned() {
        match find_ref(db, MEMBERS, &given, None) {
            Some(m) if !flag(m, "inactiveFlag") => {
                draft.insert("owner".into(), db.member_ref(m));
            }
            _ => errors.push(FieldError::new(
                "InvalidObject",
                "owner",
                format!("owner {} was not found or is inactive.", describe(&given)),
            )),
        }
    }
    for field in ["severity", "impact"] {
        match draft.get(field) {
            None | Some(Value::Null) => {
                draft.insert(field.into(), json!("Medium"));
            }
            Some(Value::String(s))
                if ["Low", "Medium", "High"]
                    .iter()
                    .any(|x| x.eq_ignore_ascii_case(s)) =>
            {
                let fixed = format!("{}{}", s[..1].to_uppercase(), s[1..].to_lowercase());
                draft.insert(field.into(), json!(fixed));
            }
            Some(other) => errors.push(FieldError::new(
                "InvalidEnum",
                field,
                format!("{other} is not a valid value for {field} (Low, Medium, High)."),
            )),
        }
    }
    if let Some(x) = draft.get("externalXRef")
        && !x.is_null()
        && !x.is_string()
    {
        errors.push(FieldError::new(
            "InvalidObject",
            "externalXRef",
            "externalXRef must be a string.",
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid("ticket", errors))
    }
}

pub(super) fn describe(given: &Value) -> String {
    id_of(given)
        .map(|i| i.to_string())
        .or_else(|| {
            given
                .get("name")
                .or_else(|| given.get("identifier"))
                .map(|v| v.to_string())
        })
        .unwrap_or_else(|| given.to_string())
}

/// Fields the API computes; a write may not set them.
const READ_ONLY: &[&str] = &[
    "id",
    "_info",
    "closedFlag",
    "closedDate",
    "closedBy",
    "dateResolved",
    "dateResponded",
    "actualHours",
    "hasChildTicket",
    "isInSla",
    "recordType",
];

/// `POST /service/tickets`.
pub fn create(
    db: &mut Db,
    body: &Value,
    member: &str,
    default_board: i64,
) -> Result<Value, ApiError> {
    let Some(given) = body.as_object() else {
        return Err(ApiError::BadRequest(
            "The request body must be a ticket object.".into(),
        ));
    };
    let mut draft: Map<String, Value> = given
        .iter()
        .filter(|(k, _)| !READ_ONLY.iter().any(|r| r.eq_ignore_ascii_case(k)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let description = draft.remove("initialDescription");
    let analysis = draft.remove("initialInternalAnalysis");
    let resolution = draft.remove("initialResolution");
    for k in [
        "initialDescriptionFrom",
        "contactEmailLookup",
        "processNotifications",
        "skipCallback",
    ] {
        draft.remove(k);
    }
    settle(db, &mut draft, None, member, default_board)?;
    let id = db.next_id(TICKETS, 1001);
    draft.insert("id".into(), json!(id));
    draft.insert("recordType".into(), json!("ServiceTicket"));
    for (k, v) in [
        ("customerUpdatedFlag", json!(false)),
        ("automaticEmailContactFlag", json!(false)),
        ("automaticEmailResourceFlag", json!(false)),
        ("automaticEmailCcFlag", json!(false)),
        ("approved", json!(true)),
        ("isInSla", json!(true)),
        ("hasChildTicket", json!(false)),
        ("hasMergedChildTicketFlag", json!(false)),
        ("billTime", json!("NoDefault")),
        ("billExpenses", json!("NoDefault")),
        ("billProducts", json!("NoDefault")),
        ("actualHours", json!(0.0)),
    ] {
        draft.entry(k).or_insert(v);
    }
    let mut info = db.info(member, None);
    info.insert(
        "notes_href".into(),
        json!(db.href(&format!("service/tickets/{id}/notes"))),
    );
    draft.insert("_info".into(), Value::Object(info));
    let ticket = Value::Object(draft);
    db.put(TICKETS, ticket.clone());
    for (text, detail, internal, res) in [
        (description, true, false, false),
        (analysis, false, true, false),
        (resolution, false, false, true),
    ] {
        if let Some(Value::String(t)) = text
            && !t.trim().is_empty()
        {
            let mut n = note(db, id, &t, (detail, internal, res), member);
            if detail {
                n[INITIAL_DESCRIPTION] = json!(true);
            }
            db.put(NOTES, n);
        }
    }
    Ok(clean(&ticket))
}

/// One JSON Patch operation's path: `status`, `/status`, `status/id`.
pub(super) fn patch_path(op: &Value) -> Result<Vec<String>, ApiError> {
    let path = op
        .get("path")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::BadRequest("Each patch operation needs a path.".into()))?;
    let segs: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if segs.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "'{path}' is not a patch path."
        )));
    }
    Ok(segs)
}

/// Apply JSON Patch operations (`replace`/`add`, `remove`; `status/id` sets `status` to
/// `{"id": …}`) to a record, the key of each path's first segment chosen by `key_of` (which
/// also refuses read-only and unknown fields, in the entity's own words).
pub(super) fn apply_json_patch(
    draft: &mut serde_json::Map<String, Value>,
    ops: &[Value],
    key_of: impl Fn(&serde_json::Map<String, Value>, &str) -> Result<String, ApiError>,
) -> Result<(), ApiError> {
    for op in ops {
        let kind = op
            .get("op")
            .and_then(Value::as_str)
            .unwrap_or("replace")
            .to_ascii_lowercase();
        let segs = patch_path(op)?;
        let key = key_of(draft, &segs[0])?;
        match kind.as_str() {
            "replace" | "add" => {
                let value = op.get("value").cloned().unwrap_or(Value::Null);
                let value = if segs.len() == 2 {
                    json!({ segs[1].clone(): value })
                } else {
                    value
                };
                draft.insert(key, value);
            }
            "remove" => {
                draft.remove(&key);
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "The patch operation '{other}' is not supported."
                )));
            }
        }
    }
    Ok(())
}

/// `PATCH /service/tickets/{id}` with a JSON Patch array.
pub fn patch(
    db: &mut Db,
    id: i64,
    body: &Value,
    member: &str,
    default_board: i64,
) -> Result<Value, ApiError> {
    let Some(prev) = db.get(TICKETS, id).cloned() else {
        return Err(ApiError::NotFound(format!(
            "Ticket with id {id} was not found."
        )));
    };
    let ops = match body {
        Value::Array(a) => a.clone(),
        Value::Object(_) => vec![body.clone()],
        _ => {
            return Err(ApiError::BadRequest(
                "The request body must be a JSON Patch array.".into(),
            ));
        }
    };
    let mut draft = prev.as_object().cloned().unwrap_or_default();
    apply_json_patch(&mut draft, &ops, |draft, first| {
        let key = draft
            .keys()
            .find(|k| k.eq_ignore_ascii_case(first))
            .cloned()
            .unwrap_or_else(|| first.to_string());
        if READ_ONLY.iter().any(|r| r.eq_ignore_ascii_case(&key)) || key.starts_with("initial") {
            return Err(ApiError::one(
                "ticket",
                FieldError::new("ReadOnly", &key, format!("{key} cannot be updated.")),
            ));
        }
        Ok(key)
    })?;
    settle(db, &mut draft, Some(&prev), member, default_board)?;
    draft.insert("id".into(), json!(id));
    let mut info = db.info(member, prev.get("_info"));
    info.insert(
        "notes_href".into(),
        json!(db.href(&format!("service/tickets/{id}/notes"))),
    );
    draft.insert("_info".into(), Value::Object(info));
    let ticket = Value::Object(draft);
    db.put(TICKETS, ticket.clone());
    Ok(clean(&ticket))
}

/// Set a ticket's status (a technician on the board, or the control surface).
pub fn set_status(
    db: &mut Db,
    id: i64,
    status: i64,
    member: &str,
    default_board: i64,
) -> Result<Value, ApiError> {
    patch(
        db,
        id,
        &json!([{"op": "replace", "path": "status", "value": {"id": status}}]),
        member,
        default_board,
    )
}

fn note(db: &Db, ticket: i64, text: &str, flags: (bool, bool, bool), member: &str) -> Value {
    let (detail, internal, resolution) = flags;
    let id = db.next_id(NOTES, 5001);
    let m = db.member_by_identifier(member).map(|m| db.member_ref(m));
    let mut n = json!({
        "id": id, "ticketId": ticket, "text": text,
        "detailDescriptionFlag": detail, "internalAnalysisFlag": internal,
        "resolutionFlag": resolution, "issueFlag": false,
        "customerUpdatedFlag": false, "processNotifications": false,
        "dateCreated": super::now_text(), "createdBy": member,
        "internalFlag": internal, "externalFlag": detail || resolution,
        "_info": {"lastUpdated": super::now_text(), "updatedBy": member},
    });
    if let Some(m) = m {
        n["member"] = m;
    }
    n
}

/// `POST /service/tickets/{id}/notes`.
pub fn add_note(db: &mut Db, ticket: i64, body: &Value, member: &str) -> Result<Value, ApiError> {
    if db.get(TICKETS, ticket).is_none() {
        return Err(ApiError::NotFound(format!(
            "Ticket with id {ticket} was not found."
        )));
    }
    let text = body.get("text").and_then(Value::as_str).unwrap_or_default();
    if text.trim().is_empty() {
        return Err(ApiError::one(
            "serviceNote",
            FieldError::new("NullValue", "text", "The text field is required."),
        ));
    }
    let f = |k: &str| body.get(k).and_then(Value::as_bool).unwrap_or(false);
    let flags = (
        f("detailDescriptionFlag"),
        f("internalAnalysisFlag"),
        f("resolutionFlag"),
    );
    if !(flags.0 || flags.1 || flags.2) {
        return Err(ApiError::one(
            "serviceNote",
            FieldError::new(
                "InvalidObject",
                "detailDescriptionFlag",
                "At least one of detailDescriptionFlag, internalAnalysisFlag or resolutionFlag must be true.",
            ),
        ));
    }
    let mut n = note(db, ticket, text, flags, member);
    n["customerUpdatedFlag"] = json!(f("customerUpdatedFlag"));
    n["processNotifications"] = json!(f("processNotifications"));
    db.put(NOTES, n.clone());
    if let Some(Value::Object(t)) = db.tables_mut(TICKETS).get_mut(&ticket)
        && let Some(Value::Object(info)) = t.get_mut("_info")
    {
        info.insert("lastUpdated".into(), json!(super::now_text()));
        info.insert("updatedBy".into(), json!(member));
    }
    Ok(clean(&n))
}
