//! The tenant's records, and their JSON as the API writes it (camelCase, as ASP.NET Core's
//! default naming policy turns the Swagger's PascalCase names: `SLAId` → `slaId`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct Location {
    pub id: i64,
    pub name: String,
    pub is_main: bool,
    pub is_active: bool,
    pub city: String,
}

#[derive(Debug, Clone)]
pub struct Account {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub type_id: i64,
    pub type_name: String,
    pub is_active: bool,
    pub created_on: String,
    pub locations: Vec<Location>,
}

#[derive(Debug, Clone)]
pub struct Contact {
    pub id: i64,
    pub account_id: i64,
    pub location_id: i64,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub job_title: String,
    pub is_active: bool,
    pub is_poc: bool,
}

impl Contact {
    pub fn name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
    }
}

/// A lookup value (queues, priorities, SLAs, generic tables…).
#[derive(Debug, Clone)]
pub struct Item {
    pub id: i64,
    pub name: String,
    pub is_active: bool,
    pub is_default: bool,
}

#[derive(Debug, Clone)]
pub struct Status {
    pub id: i64,
    pub name: String,
    /// [?] The vendor does not document the meaning of `typeId`; here 1 = new, 2 = open,
    /// 3 = completed (a status of type 3 sets the ticket's `completedDate`).
    pub type_id: i64,
    pub is_system: bool,
    pub order: i64,
    pub is_active: bool,
    pub color: String,
}

pub const STATUS_TYPE_COMPLETED: i64 = 3;

#[derive(Debug, Clone)]
pub struct SubIssueType {
    pub id: i64,
    pub name: String,
    /// The issue types it belongs to (one sub-issue type may belong to several).
    pub issue_type_ids: Vec<i64>,
}

#[derive(Debug, Clone)]
pub struct Note {
    pub id: i64,
    pub details: String,
    pub is_internal: bool,
    pub type_id: i64,
    /// `NoteDate` of the input; answered as `createdOn`.
    pub note_date: String,
    pub created_by_name: String,
}

#[derive(Debug, Clone)]
pub struct Ticket {
    pub id: i64,
    pub number: String,
    pub title: String,
    pub details: String,
    pub account_id: i64,
    pub location_id: i64,
    pub contact_id: Option<i64>,
    pub queue_id: Option<i64>,
    pub status_id: i64,
    pub priority_id: i64,
    pub type_id: i64,
    pub issue_type_id: Option<i64>,
    pub sub_issue_type_id: Option<i64>,
    pub source_id: i64,
    pub sla_id: Option<i64>,
    pub contract_id: Option<i64>,
    pub assignee_id: Option<i64>,
    pub work_type_id: Option<i64>,
    pub open_date: String,
    pub due_date: Option<String>,
    pub completed_date: Option<String>,
    pub reopened_date: Option<String>,
    pub created_on: String,
    pub modified_on: String,
    pub last_status_update: String,
    pub created_by_name: String,
    pub notes: Vec<Note>,
}

/// A contract (`ContractLookupOutputDto`, `ClientContractSummaryOutputDto`), of one account.
#[derive(Debug, Clone)]
pub struct ContractRec {
    pub id: i64,
    pub account_id: i64,
    pub name: String,
    pub is_default: bool,
    pub sla_id: Option<i64>,
    pub is_active: bool,
    pub end_date: Option<String>,
    /// `contractType` as the summary names it: `Recurring Services`, `Block Hours`, ….
    pub contract_type: String,
    pub start_date: String,
    pub billing_cycle: String,
    pub number: String,
}

impl ContractRec {
    /// `status` as the summary writes it: `Inactive` when switched off, `Expired` past its end
    /// date, else `Active`. [?] The vendor's full list of statuses is not published.
    pub fn status(&self, today: &str) -> &'static str {
        if !self.is_active {
            "Inactive"
        } else if self.expired(today) {
            "Expired"
        } else {
            "Active"
        }
    }

    /// Has it ended before `today` (`YYYY-MM-DD`)?
    pub fn expired(&self, today: &str) -> bool {
        self.end_date
            .as_deref()
            .and_then(|d| d.get(..10))
            .is_some_and(|end| end < today)
    }
}

/// A catalogue service (`ServiceOutputDto`).
#[derive(Debug, Clone)]
pub struct CatalogueService {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
    pub unit_cost: f64,
    pub unit_price: f64,
    pub is_active: bool,
    pub is_taxable: bool,
    pub created_on: String,
    pub modified_on: String,
}

/// One service entry of a recurring-services contract (what `PostRecurringServices` creates,
/// `RelatedServicesListOutputDto` lists and the bulk update changes): the units, cost and
/// price of a service on a contract from `effective_date` on. A later entry of the same
/// service supersedes it from its own date.
#[derive(Debug, Clone)]
pub struct ContractServiceEntry {
    pub id: i64,
    pub contract_id: i64,
    pub service_id: i64,
    pub service_name: String,
    pub description: Option<String>,
    pub units: i64,
    pub unit_cost: f64,
    pub unit_price: f64,
    pub effective_date: String,
    pub sort_order: i64,
    pub created_on: String,
    pub modified_on: Option<String>,
}

/// Everything the tenant holds.
#[derive(Debug, Clone, Default)]
pub struct Db {
    pub tenant_id: i64,
    pub tenant_name: String,
    pub accounts: Vec<Account>,
    pub contacts: Vec<Contact>,
    pub queues: Vec<Item>,
    pub statuses: Vec<Status>,
    pub priorities: Vec<Item>,
    pub issue_types: Vec<Item>,
    pub sub_issue_types: Vec<SubIssueType>,
    pub slas: Vec<Item>,
    pub work_types: Vec<Item>,
    pub contracts: Vec<ContractRec>,
    /// The finance catalogue's services (Admin > Finance > Services).
    pub services: Vec<CatalogueService>,
    /// Service entries of recurring-services contracts, each effective from its date.
    pub contract_services: Vec<ContractServiceEntry>,
    pub next_service_id: i64,
    pub next_contract_service_id: i64,
    /// Generic lookup tables by lower-cased name: (name as created, values).
    pub tables: BTreeMap<String, (String, Vec<Item>)>,
    pub tickets: BTreeMap<i64, Ticket>,
    pub next_ticket_id: i64,
    pub next_note_id: i64,
    /// Names of the tables holding ticket types, sources and note types.
    pub ticket_type_table: String,
    pub source_table: String,
    pub note_type_table: String,
    /// The status the vendor uses when a ticket is resolved without one.
    pub default_close_status: i64,
    /// The status a reopened ticket gets.
    pub reopen_status: i64,
    /// The seed's facts for `/_sim/fixtures`.
    pub fixtures: Value,
}

fn name_of(items: &[Item], id: Option<i64>) -> Value {
    id.and_then(|id| items.iter().find(|i| i.id == id))
        .map_or(Value::Null, |i| Value::String(i.name.clone()))
}

impl Db {
    pub fn account(&self, id: i64) -> Option<&Account> {
        self.accounts.iter().find(|a| a.id == id)
    }

    pub fn contact(&self, id: i64) -> Option<&Contact> {
        self.contacts.iter().find(|c| c.id == id)
    }

    pub fn status(&self, id: i64) -> Option<&Status> {
        self.statuses.iter().find(|s| s.id == id)
    }

    pub fn table(&self, name: &str) -> &[Item] {
        self.tables
            .get(&name.to_ascii_lowercase())
            .map(|(_, v)| v.as_slice())
            .unwrap_or_default()
    }

    pub fn location(&self, account_id: i64, location_id: i64) -> Option<&Location> {
        self.account(account_id)?
            .locations
            .iter()
            .find(|l| l.id == location_id)
    }

    /// `TicketOutputDto`.
    pub fn ticket_json(&self, t: &Ticket) -> Value {
        let account = self.account(t.account_id);
        let location = self.location(t.account_id, t.location_id);
        let contact = t.contact_id.and_then(|c| self.contact(c));
        let status = self.status(t.status_id);
        let priority = self.priorities.iter().find(|p| p.id == t.priority_id);
        let sub = t
            .sub_issue_type_id
            .and_then(|s| self.sub_issue_types.iter().find(|x| x.id == s));
        let mut v = json!({
            "id": t.id,
            "createdBy": 1,
            "createdOn": t.created_on,
            "modifiedBy": 1,
            "modifiedOn": t.modified_on,
            "ticketNumber": t.number,
            "title": t.title,
            "details": t.details,
            "accountId": t.account_id,
            "accountCode": account.map(|a| a.code.clone()),
            "accountName": account.map(|a| a.name.clone()),
            "locationId": t.location_id,
            "locationName": location.map(|l| l.name.clone()),
            "locationPhone": null,
            "contactId": t.contact_id,
            "contactName": contact.map(Contact::name),
            "contactPhone": null,
            "contactEmail": contact.map(|c| c.email.clone()),
            "softwareAssetId": null,
            "softwareAssetName": null,
            "hardwareAssetId": null,
            "hardwareAssetName": null,
            "vsaAssetId": null,
            "hasVsaAgent": 0,
        });
        let middle = json!({
            "statusId": t.status_id,
            "statusName": status.map(|s| s.name.clone()),
            "statusColor": status.map(|s| s.color.clone()),
            "statusForeColor": "#FFFFFF",
            "statusOrder": status.map_or(0, |s| s.order),
            "priorityId": t.priority_id,
            "priorityName": priority.map(|p| p.name.clone()),
            "priorityColor": "#F0AD4E",
            "typeId": t.type_id,
            "typeName": name_of(self.table(&self.ticket_type_table), Some(t.type_id)),
            "issueTypeId": t.issue_type_id,
            "issueTypeName": name_of(&self.issue_types, t.issue_type_id),
            "subIssueTypeId": t.sub_issue_type_id,
            "subIssueTypeName": sub.map(|s| s.name.clone()),
            "contractId": t.contract_id,
            "contractNumber": null,
            "contractName": null,
            "workTypeId": t.work_type_id,
            "workTypeName": name_of(&self.work_types, t.work_type_id),
        });
        let more = json!({
            "slaStatusEventId": null,
            "sourceId": t.source_id,
            "sourceName": name_of(self.table(&self.source_table), Some(t.source_id)),
            "openDate": t.open_date,
            "dueDate": t.due_date,
            "completedDate": t.completed_date,
            "lastActivityUpdate": t.modified_on,
            "lastStatusUpdate": t.last_status_update,
            "lastPriorityUpdate": t.created_on,
            "occurrenceCount": null,
            "lastOccurrenceDate": null,
            "cCs": [],
            "rmmTicketReference": null,
            "slaName": name_of(&self.slas, t.sla_id),
            "hasMetSLA": null,
            "firstResponseTargetTime": null,
            "firstResponseActualTime": null,
            "resolutionActualTime": t.completed_date,
            "resolutionTargetTime": null,
            "slaStatusEnum": null,
        });
        let last = json!({
            "tenantId": self.tenant_id,
            "queueId": t.queue_id,
            "queueName": name_of(&self.queues, t.queue_id),
            "assigneeId": t.assignee_id,
            "assigneeName": null,
            "ticketRecurringMasterId": null,
            "recurring": 0,
            "slaId": t.sla_id,
            "slaObjectiveId": null,
            "isScheduled": 0,
            "actualPauseMinutes": null,
            "actualFirstResponseMinutes": null,
            "actualResolutionMinutes": null,
            "isSLAPaused": 0,
            "reOpenedDate": t.reopened_date,
            "slaLastPausedTime": null,
            "slaLastResumedTime": null,
            "lastQueueUpdate": t.created_on,
            "hasPostedEntries": false,
            "secondaryAssignees": [],
            "createdByName": t.created_by_name,
            "totalExpenses": 0.0,
            "totalTimeSpent": 0.0,
            "isReadOnly": false,
            "openDateLocked": false,
            "integrationTypeId": null,
        });
        for part in [middle, more, last] {
            if let (Some(o), Value::Object(m)) = (v.as_object_mut(), part) {
                o.extend(m);
            }
        }
        v
    }

    /// `TicketListDto` (the list and search endpoints).
    pub fn ticket_list_json(&self, t: &Ticket) -> Value {
        let full = self.ticket_json(t);
        let keep = [
            "id",
            "createdBy",
            "createdOn",
            "modifiedBy",
            "modifiedOn",
            "ticketNumber",
            "title",
            "details",
            "accountId",
            "locationId",
            "accountCode",
            "accountName",
            "locationName",
            "contactId",
            "contactName",
            "queueId",
            "queueName",
            "statusId",
            "statusName",
            "statusColor",
            "statusForeColor",
            "statusOrder",
            "priorityId",
            "priorityName",
            "priorityColor",
            "typeId",
            "typeName",
            "issueTypeId",
            "issueTypeName",
            "subIssueTypeId",
            "subIssueTypeName",
            "contractId",
            "contractNumber",
            "contractName",
            "assigneeId",
            "assigneeName",
            "workTypeId",
            "workTypeName",
            "ticketRecurringMasterId",
            "recurring",
            "slaStatusEventId",
            "sourceId",
            "slaId",
            "slaObjectiveId",
            "slaName",
            "isScheduled",
            "hardwareAssetId",
            "hasMetSLA",
            "openDate",
            "dueDate",
            "completedDate",
            "reOpenedDate",
            "lastActivityUpdate",
            "lastStatusUpdate",
            "lastPriorityUpdate",
            "lastQueueUpdate",
            "createdByName",
            "hardwareAssetName",
        ];
        let mut out = serde_json::Map::new();
        for k in keep {
            out.insert(k.to_string(), full.get(k).cloned().unwrap_or(Value::Null));
        }
        // Not nullable in `TicketListDto` (nullable in `TicketOutputDto`): 0 for none.
        if out.get("hardwareAssetId").is_some_and(Value::is_null) {
            out.insert("hardwareAssetId".into(), json!(0));
        }
        out.insert("tenantName".into(), json!(self.tenant_name));
        out.insert("customFields".into(), Value::Null);
        Value::Object(out)
    }

    /// `TicketNoteOutputDto`.
    pub fn note_json(&self, n: &Note) -> Value {
        json!({
            "id": n.id,
            "createdBy": 1,
            "createdOn": n.note_date,
            "modifiedBy": null,
            "modifiedOn": null,
            "details": n.details,
            "isInternal": n.is_internal,
            "typeId": n.type_id,
            "typeName": name_of(self.table(&self.note_type_table), Some(n.type_id)),
            "createdByName": n.created_by_name,
            "createdByEmail": null,
            "modifiedByName": null,
            "attachments": [],
        })
    }

    pub fn is_closed(&self, t: &Ticket) -> bool {
        t.completed_date.is_some()
            || self
                .status(t.status_id)
                .is_some_and(|s| s.type_id == STATUS_TYPE_COMPLETED)
    }

    /// The control surface's view of a ticket, in PSA Bridge's terms.
    pub fn normalised(&self, t: &Ticket) -> Value {
        let mut fields = serde_json::Map::new();
        let mut put = |k: &str, v: Option<i64>| {
            if let Some(v) = v {
                fields.insert(k.to_string(), Value::String(v.to_string()));
            }
        };
        put("queue", t.queue_id);
        put("status", Some(t.status_id));
        put("priority", Some(t.priority_id));
        put("ticket_type", Some(t.type_id));
        put("issue_type", t.issue_type_id);
        put("sub_issue_type", t.sub_issue_type_id);
        put("source", Some(t.source_id));
        put("sla", t.sla_id);
        json!({
            "id": t.id.to_string(),
            "number": t.number,
            "closed": self.is_closed(t),
            "status": t.status_id.to_string(),
            "company_id": t.account_id.to_string(),
            "location_id": t.location_id.to_string(),
            "contact_id": t.contact_id.map(|c| c.to_string()),
            "contract_id": t.contract_id.map(|c| c.to_string()),
            "title": t.title,
            "description": t.details,
            "reference": reference_in(&t.details),
            "fields": fields,
            "notes": t.notes.iter().map(|n| json!({"text": n.details, "internal": n.is_internal})).collect::<Vec<_>>(),
            "raw": self.ticket_json(t),
        })
    }

    pub fn fixtures(&self) -> Value {
        self.fixtures.clone()
    }
}

/// The reference a client stored in a ticket's details: the text after the last
/// `reference:` (any case) up to the end of its line or a closing bracket. BMS tickets have no
/// external-reference field, so PSA Bridge writes `… reference: <ref>` into the details, which
/// `Filter.Details` finds again.
pub fn reference_in(details: &str) -> Option<String> {
    let lower = details.to_ascii_lowercase();
    let at = lower.rfind("reference:")?;
    let rest = details[at + "reference:".len()..]
        .trim_start()
        .trim_start_matches('[');
    let r: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && !matches!(c, ']' | ')' | '<'))
        .collect();
    (!r.is_empty()).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_is_read_from_the_details() {
        assert_eq!(
            reference_in("Alert text\n\nPSA Bridge reference: psb-1-abc").as_deref(),
            Some("psb-1-abc")
        );
        assert_eq!(
            reference_in("x [PSA Bridge reference: r1]").as_deref(),
            Some("r1")
        );
        assert_eq!(reference_in("no marker"), None);
    }
}
