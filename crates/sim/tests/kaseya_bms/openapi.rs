//! What the simulator serves, checked against Kaseya's BMS v2 OpenAPI document.
//!
//! `tests/fixtures/kaseya-bms-openapi-subset.json` is the part of the vendor's document for the
//! operations the simulator serves (made by `tests/fixtures/extract_openapi.py`). Every served
//! operation must be in the document; every answer must fit its documented envelope and DTO
//! (names compared in any case: the document is PascalCase, the wire camelCase); and the
//! request DTOs the simulator accepts must require exactly what the document requires.

use std::collections::BTreeSet;

use anyhow::{Result, ensure};
use psabridge_sim::kaseya_bms::Config;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{T, body, form, start};

#[path = "../fixtures/openapi_check.rs"]
mod check;
use check::{Doc, Names, only, without};

fn doc() -> Result<Doc> {
    Doc::load(
        include_str!("../fixtures/kaseya-bms-openapi-subset.json"),
        Names::AnyCase,
    )
}

/// Where the document is known to be wrong: these answers are checked against the schema inside
/// the envelope instead. The reference notes (§2.3) find every v2 answer wrapped in
/// `{success, error, result}`; the document alone declares this one bare.
const BARE_IN_THE_DOCUMENT: [&str; 1] = ["GET /v2/crm/accounts/summary/{id}"];

struct Run<'a> {
    t: &'a T,
    doc: Doc,
    called: BTreeSet<String>,
}

impl Run<'_> {
    /// Call `op` (`"METHOD /template"`) at `path`, expect success, check the answer.
    async fn call(&mut self, op: &str, path: &str, b: Option<Value>) -> Result<Value> {
        let (method, _) = op.split_once(' ').unwrap_or_default();
        let method = Method::from_bytes(method.as_bytes())?;
        let (s, v) = self.t.call(method, path, b).await?;
        ensure!(
            s == StatusCode::OK && v["success"] == true,
            "{op} at {path}: {s} {v}"
        );
        self.check(op, &v)?;
        Ok(v["result"].clone())
    }

    fn check(&mut self, op: &str, v: &Value) -> Result<()> {
        let schema = self.doc.response(op)?;
        if BARE_IN_THE_DOCUMENT.contains(&op) {
            self.doc.conforms(&schema, &v["result"], op)?;
        } else {
            self.doc.conforms(&schema, v, op)?;
        }
        self.called.insert(op.to_string());
        Ok(())
    }
}

#[tokio::test]
async fn every_served_operation_answers_as_documented() -> Result<()> {
    let t = start(Config::default()).await?;
    let mut r = Run {
        t: &t,
        doc: doc()?,
        called: BTreeSet::new(),
    };

    // The token calls take a form.
    let c = t.sim.config();
    let (s, v) = body(
        t.http
            .post(t.url("/v2/security/authenticate"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("GrantType", "password"),
                ("UserName", c.username.as_str()),
                ("Password", c.password.as_str()),
                ("Tenant", c.tenant.as_str()),
            ]))
            .send()
            .await?,
    )
    .await?;
    ensure!(s == StatusCode::OK, "{s} {v}");
    r.check("POST /v2/security/authenticate", &v)?;
    let refresh = v["result"]["refreshToken"].as_str().unwrap_or_default();
    let access = v["result"]["accessToken"].as_str().unwrap_or_default();
    let (s, v) = body(
        t.http
            .post(t.url("/v2/security/refreshtoken"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("AccessToken", access), ("RefreshToken", refresh)]))
            .send()
            .await?,
    )
    .await?;
    ensure!(s == StatusCode::OK, "{s} {v}");
    r.check("POST /v2/security/refreshtoken", &v)?;

    r.call("GET /v2/security/userinfo", "/v2/security/userinfo", None)
        .await?;
    let accounts = r
        .call(
            "GET /v2/crm/accounts/summary",
            "/v2/crm/accounts/summary?PageSize=50&PageNumber=1",
            None,
        )
        .await?;
    ensure!(
        accounts.as_array().is_some_and(|a| !a.is_empty()),
        "{accounts}"
    );
    r.call(
        "GET /v2/crm/accounts/summary/{id}",
        "/v2/crm/accounts/summary/12",
        None,
    )
    .await?;
    r.call(
        "GET /v2/crm/accounts/lookup",
        "/v2/crm/accounts/lookup?Filter.WithInactiveAccounts=true",
        None,
    )
    .await?;
    r.call(
        "GET /v2/crm/accounts/{accountId}/locations/lookup",
        "/v2/crm/accounts/12/locations/lookup",
        None,
    )
    .await?;
    r.call(
        "GET /v2/crm/accounts/{accountId}/contacts/lookup",
        "/v2/crm/accounts/12/contacts/lookup",
        None,
    )
    .await?;
    r.call(
        "GET /v2/crm/contacts/search",
        "/v2/crm/contacts/search",
        None,
    )
    .await?;
    r.call(
        "GET /v2/crm/contacts/summary",
        "/v2/crm/contacts/summary?PageSize=100&PageNumber=1",
        None,
    )
    .await?;

    // Tickets: a full one, then each write.
    let ticket = t.ticket_body("checked against the document");
    r.doc.conforms(
        &r.doc.request("POST /v2/servicedesk/tickets")?,
        &ticket,
        "our TicketInputDto",
    )?;
    let created = r
        .call(
            "POST /v2/servicedesk/tickets",
            "/v2/servicedesk/tickets",
            Some(ticket.clone()),
        )
        .await?;
    let id = created["id"].as_i64().unwrap_or_default();
    let one = format!("/v2/servicedesk/tickets/{id}");
    r.call("GET /v2/servicedesk/tickets/{ticketId}", &one, None)
        .await?;
    let mut put = ticket.clone();
    put["Title"] = json!("replaced");
    r.call("PUT /v2/servicedesk/tickets/{ticketId}", &one, Some(put))
        .await?;
    let patch = json!([{"op": "replace", "path": "/PriorityId", "value": 1}]);
    r.doc.conforms(
        &r.doc.request("PATCH /v2/servicedesk/tickets/{ticketId}")?,
        &patch,
        "our JSON Patch",
    )?;
    r.call(
        "PATCH /v2/servicedesk/tickets/{ticketId}",
        &one,
        Some(patch),
    )
    .await?;
    let note = json!({"Details": "New alert", "IsInternal": true, "TypeId": 1,
                      "NoteDate": "2026-11-22T10:05:00Z"});
    r.doc.conforms(
        &r.doc
            .request("POST /v2/servicedesk/tickets/{ticketId}/notes")?,
        &note,
        "our TicketNotePostInputDto",
    )?;
    r.call(
        "POST /v2/servicedesk/tickets/{ticketId}/notes",
        &format!("{one}/notes"),
        Some(note),
    )
    .await?;
    r.call(
        "GET /v2/servicedesk/tickets/{ticketId}/notes",
        &format!("{one}/notes"),
        None,
    )
    .await?;
    let list = r
        .call(
            "GET /v2/servicedesk/tickets",
            "/v2/servicedesk/tickets?PageSize=100&PageNumber=1",
            None,
        )
        .await?;
    ensure!(list.as_array().is_some_and(|l| l.len() > 1), "{list}");
    let search = json!({"PageSize": 10, "PageNumber": 1, "Sort": "OpenDate desc",
                        "Filter": {"ExcludeCompleted": 1, "AccountIds": "12"}});
    r.doc.conforms(
        &r.doc.request("POST /v2/servicedesk/tickets/search")?,
        &search,
        "our GetTicketsInputDto",
    )?;
    r.call(
        "POST /v2/servicedesk/tickets/search",
        "/v2/servicedesk/tickets/search",
        Some(search),
    )
    .await?;
    let resolve = json!({"Comment": "Resolved by PSA Bridge", "IsInternal": true,
                         "IsPublishToKnowledgeBase": false});
    r.doc.conforms(
        &r.doc
            .request("POST /v2/servicedesk/tickets/{ticketId}/resolve")?,
        &resolve,
        "our ResolveTicketDto",
    )?;
    let done = r
        .call(
            "POST /v2/servicedesk/tickets/{ticketId}/resolve",
            &format!("{one}/resolve"),
            Some(resolve),
        )
        .await?;
    ensure!(done["completedDate"].is_string(), "{done}");
    // A completed ticket, in the list too.
    r.call(
        "GET /v2/servicedesk/tickets",
        "/v2/servicedesk/tickets?PageSize=100&PageNumber=1",
        None,
    )
    .await?;

    // Lookups.
    for (op, path) in [
        ("GET /v2/system/queues/lookup", "/v2/system/queues/lookup"),
        (
            "GET /v2/system/statuses/lookup",
            "/v2/system/statuses/lookup",
        ),
        (
            "GET /v2/system/priorities/lookup",
            "/v2/system/priorities/lookup",
        ),
        (
            "GET /v2/system/issuetypes/lookup",
            "/v2/system/issuetypes/lookup",
        ),
        (
            "GET /v2/system/issuetypes/{issueTypeId}/issuesubtypes/lookup",
            "/v2/system/issuetypes/7/issuesubtypes/lookup",
        ),
        ("GET /v2/system/slas/lookup", "/v2/system/slas/lookup"),
        (
            "GET /v2/system/worktypes/lookup",
            "/v2/system/worktypes/lookup",
        ),
        (
            "GET /v2/system/lookup/{tableName}",
            "/v2/system/lookup/TicketType",
        ),
        (
            "GET /v2/system/lookup/{tableName}",
            "/v2/system/lookup/TicketSource",
        ),
        (
            "GET /v2/system/tenantlookup/{tableName}",
            "/v2/system/tenantlookup/NoteType",
        ),
        (
            "GET /v2/finance/contracts/lookup",
            "/v2/finance/contracts/lookup?AccountId=12&ExcludeExpiredContracts=false",
        ),
    ] {
        let items = r.call(op, path, None).await?;
        ensure!(
            items.as_array().is_some_and(|a| !a.is_empty()),
            "{path}: {items}"
        );
    }

    // Every operation of the fixture was called.
    let all: BTreeSet<String> = r.doc.operations().into_iter().collect();
    let missed: Vec<_> = all.difference(&r.called).collect();
    ensure!(missed.is_empty(), "not exercised: {missed:?}");
    Ok(())
}

/// A write with `b` fails as a validation failure (the failure envelope).
async fn refused(t: &T, path: &str, b: Value) -> Result<bool> {
    let (s, v) = t.call(Method::POST, path, Some(b)).await?;
    Ok(s.is_client_error() && v["success"] == false)
}

async fn accepted(t: &T, path: &str, b: Value) -> Result<Value> {
    let (s, v) = t.call(Method::POST, path, Some(b.clone())).await?;
    ensure!(
        s == StatusCode::OK && v["success"] == true,
        "{path} refused {b}: {s} {v}"
    );
    Ok(v["result"].clone())
}

#[tokio::test]
async fn the_request_dtos_require_what_the_document_requires() -> Result<()> {
    let doc = doc()?;
    let t = start(Config::default()).await?;

    // TicketInputDto: the required fields alone make a ticket; each one missing fails; the
    // documented optional collections are accepted.
    let tickets = "/v2/servicedesk/tickets";
    let schema = doc.request("POST /v2/servicedesk/tickets")?;
    let required = doc.required(&schema);
    ensure!(required.len() == 9, "{required:?}");
    let full = t.ticket_body("required fields");
    let minimal = only(&full, &required);
    doc.conforms(&schema, &minimal, "the minimal TicketInputDto")?;
    accepted(&t, tickets, minimal.clone()).await?;
    for field in &required {
        ensure!(
            refused(&t, tickets, without(&minimal, field)).await?,
            "a ticket without {field} was accepted"
        );
    }
    let mut extra = full.clone();
    for (k, v) in [
        ("Ccs", json!([])),
        ("SecondaryAssignees", json!([])),
        ("TempAttachments", json!([])),
        ("CustomFieldsData", json!([])),
        ("SoftwareAssetId", Value::Null),
        ("HardwareAssetId", Value::Null),
        ("ContractId", Value::Null),
        ("AssigneeId", Value::Null),
        ("WorkTypeId", Value::Null),
        ("DueDate", Value::Null),
    ] {
        extra[k] = v;
    }
    doc.conforms(&schema, &extra, "a TicketInputDto with its optional fields")?;
    let id = accepted(&t, tickets, extra).await?["id"]
        .as_i64()
        .unwrap_or_default();
    // Types: a string for an integer, a word for a date.
    let mut wrong = minimal.clone();
    wrong["AccountId"] = json!("twelve");
    ensure!(doc.conforms(&schema, &wrong, "w").is_err());
    ensure!(refused(&t, tickets, wrong).await?, "AccountId as text");
    let mut wrong = minimal.clone();
    wrong["OpenDate"] = json!("yesterday");
    ensure!(refused(&t, tickets, wrong).await?, "OpenDate not a date");

    // TicketNotePostInputDto.
    let notes = format!("/v2/servicedesk/tickets/{id}/notes");
    let schema = doc.request("POST /v2/servicedesk/tickets/{ticketId}/notes")?;
    let required = doc.required(&schema);
    ensure!(required.len() == 4, "{required:?}");
    let note = json!({"Details": "d", "IsInternal": false, "TypeId": 1,
                      "NoteDate": "2026-11-22T10:05:00Z"});
    doc.conforms(&schema, &note, "the minimal note")?;
    accepted(&t, &notes, note.clone()).await?;
    for field in &required {
        ensure!(
            refused(&t, &notes, without(&note, field)).await?,
            "a note without {field} was accepted"
        );
    }
    let mut extra = note.clone();
    for (k, v) in [
        ("StatusId", Value::Null),
        ("Attachments", json!([])),
        ("TempAttachments", json!([])),
        ("AttachmentIds", json!([])),
        ("EmailNotification", Value::Null),
    ] {
        extra[k] = v;
    }
    doc.conforms(&schema, &extra, "a note with its optional fields")?;
    accepted(&t, &notes, extra).await?;

    // ResolveTicketDto: only the comment is required.
    let resolve = format!("/v2/servicedesk/tickets/{id}/resolve");
    let schema = doc.request("POST /v2/servicedesk/tickets/{ticketId}/resolve")?;
    ensure!(
        doc.required(&schema) == ["Comment"],
        "{:?}",
        doc.required(&schema)
    );
    ensure!(
        refused(&t, &resolve, json!({"IsInternal": true})).await?,
        "no comment"
    );
    let minimal = json!({"Comment": "done"});
    doc.conforms(&schema, &minimal, "the minimal resolve")?;
    accepted(&t, &resolve, minimal).await?;

    // The token form: GrantType is the one required field.
    let schema = doc.request("POST /v2/security/authenticate")?;
    ensure!(
        doc.required(&schema) == ["GrantType"],
        "{:?}",
        doc.required(&schema)
    );
    let (s, v) = t.login(&[]).await?;
    ensure!(s == StatusCode::OK, "{s} {v}");
    let c = t.sim.config();
    let (s, v) = body(
        t.http
            .post(t.url("/v2/security/authenticate"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("UserName", c.username.as_str()),
                ("Password", c.password.as_str()),
                ("Tenant", c.tenant.as_str()),
            ]))
            .send()
            .await?,
    )
    .await?;
    ensure!(
        s.is_client_error() && v["success"] == false,
        "no GrantType: {s} {v}"
    );
    Ok(())
}

#[test]
fn the_check_catches_wrong_names_types_and_nulls() -> Result<()> {
    let doc = doc()?;
    let queue = doc.named("QueueLookupOutputDto")?;
    ensure!(
        doc.conforms(
            &queue,
            &json!({"id": 1, "name": "q", "isActive": true}),
            "q"
        )
        .is_ok()
    );
    ensure!(
        doc.conforms(&queue, &json!({"id": 1, "queueName": "q"}), "q")
            .is_err(),
        "misspelt"
    );
    ensure!(
        doc.conforms(&queue, &json!({"id": "1"}), "q").is_err(),
        "text for an integer"
    );
    ensure!(
        doc.conforms(&queue, &json!({"isActive": null}), "q")
            .is_err(),
        "null, not nullable"
    );
    ensure!(
        doc.conforms(&queue, &json!({"name": null}), "q").is_ok(),
        "nullable"
    );
    let ticket = doc.named("TicketOutputDto")?;
    ensure!(
        doc.conforms(&ticket, &json!({"openDate": "soon"}), "t")
            .is_err(),
        "date-time"
    );
    let input = doc.named("TicketInputDto")?;
    ensure!(
        doc.conforms(&input, &json!({"Title": "t"}), "i").is_err(),
        "required missing"
    );
    Ok(())
}
